//! `spec.access`, pure: validation into berth's grant model, the push role's desired documents,
//! and the plans for the repository policy and the push role. No client anywhere here.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::settings::ValidationSettings;
use crate::api::{
    ACCOUNT_ID_PATTERN, EcrRepositorySpec, GITHUB_ENVIRONMENT_PATTERN, GITHUB_REF_PATTERN, GITHUB_REPOSITORY_PATTERN,
    Grantee, MAX_EXTRA_STATEMENTS, MAX_GITHUB_REFS, MAX_PULL_GRANTS, MAX_PUSH_GRANTS, ORGANIZATION_ID_PATTERN,
    PRINCIPAL_ARN_PATTERN, SERVICE_PATTERN,
};
use crate::aws::ObservedRole;
use crate::error::Error;
use crate::policy::{self, Access, GITHUB_OIDC_HOST, GithubPusher, Principal};
use crate::reconcile::harness::Change;
use crate::reconcile::ownership::OWNER_TAG;

/// Name of the inline policy on a push role.
pub const PUSH_POLICY_NAME: &str = "berth-push";

static ACCOUNT_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(ACCOUNT_ID_PATTERN).unwrap());
static ORGANIZATION_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(ORGANIZATION_ID_PATTERN).unwrap());
static PRINCIPAL_ARN: LazyLock<Regex> = LazyLock::new(|| Regex::new(PRINCIPAL_ARN_PATTERN).unwrap());
static SERVICE: LazyLock<Regex> = LazyLock::new(|| Regex::new(SERVICE_PATTERN).unwrap());
static GITHUB_REPOSITORY: LazyLock<Regex> = LazyLock::new(|| Regex::new(GITHUB_REPOSITORY_PATTERN).unwrap());
static GITHUB_REF: LazyLock<Regex> = LazyLock::new(|| Regex::new(GITHUB_REF_PATTERN).unwrap());
static GITHUB_ENVIRONMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(GITHUB_ENVIRONMENT_PATTERN).unwrap());

/// What `spec.access` and `spec.extraPolicyStatements` declare, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredAccess {
    /// Grants other than GitHub Actions, plus the extra statements.
    pub grants: Access,
    /// GitHub repositories that push through berth's push role.
    pub pushers: Vec<GithubPusher>,
    /// The push role's name, when there are pushers.
    pub role_name: Option<String>,
}

impl DesiredAccess {
    /// Whether berth manages the repository policy at all.
    pub fn manages_policy(&self) -> bool {
        !self.grants.is_empty() || !self.pushers.is_empty()
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidSpec(message)
}

fn principal(field: &str, grantee: &Grantee, github: bool) -> Result<Option<Principal>, Error> {
    let kinds = [
        grantee.account_id.is_some(),
        grantee.organization_id.is_some(),
        grantee.arn.is_some(),
        grantee.service.is_some(),
        github,
    ];
    if kinds.iter().filter(|set| **set).count() != 1 {
        let choices = if field.contains("push") {
            "accountId, organizationId, arn, service, githubActions"
        } else {
            "accountId, organizationId, arn, service"
        };
        return Err(invalid(format!("{field}: set exactly one of {choices}")));
    }
    let check = |value: &String, pattern: &Regex, what: &str, name: &str| {
        if pattern.is_match(value) {
            Ok(())
        } else {
            Err(invalid(format!("{field}.{name}: '{value}' is not {what}")))
        }
    };
    Ok(if let Some(id) = &grantee.account_id {
        check(id, &ACCOUNT_ID, "a 12-digit AWS account id", "accountId")?;
        Some(Principal::Account(id.clone()))
    } else if let Some(id) = &grantee.organization_id {
        check(id, &ORGANIZATION_ID, "an AWS Organization id (o-...)", "organizationId")?;
        Some(Principal::Organization(id.clone()))
    } else if let Some(arn) = &grantee.arn {
        check(arn, &PRINCIPAL_ARN, "an IAM principal ARN or *", "arn")?;
        Some(Principal::Arn(arn.clone()))
    } else if let Some(service) = &grantee.service {
        check(
            service,
            &SERVICE,
            "an AWS service principal such as lambda.amazonaws.com",
            "service",
        )?;
        Some(Principal::Service(service.clone()))
    } else {
        None
    })
}

/// Validates the access of an object and derives its push role's name. The policies are also
/// rendered once here (with placeholder ARNs of real length) so that public access and size
/// limits are refused before any AWS call.
pub fn desired_access(
    spec: &EcrRepositorySpec,
    namespace: &str,
    object_name: &str,
    settings: &ValidationSettings,
) -> Result<DesiredAccess, Error> {
    let access = spec.access.clone().unwrap_or_default();
    if access.pull.len() > MAX_PULL_GRANTS {
        return Err(invalid(format!(
            "spec.access.pull: {} grants given, at most {MAX_PULL_GRANTS} are allowed",
            access.pull.len()
        )));
    }
    if access.push.len() > MAX_PUSH_GRANTS {
        return Err(invalid(format!(
            "spec.access.push: {} grants given, at most {MAX_PUSH_GRANTS} are allowed",
            access.push.len()
        )));
    }
    if spec.extra_policy_statements.len() > MAX_EXTRA_STATEMENTS {
        return Err(invalid(format!(
            "spec.extraPolicyStatements: {} statements given, at most {MAX_EXTRA_STATEMENTS} are allowed",
            spec.extra_policy_statements.len()
        )));
    }
    let mut desired = DesiredAccess {
        grants: Access {
            extra_statements: spec.extra_policy_statements.clone(),
            ..Access::default()
        },
        ..DesiredAccess::default()
    };
    for (index, grantee) in access.pull.iter().enumerate() {
        if let Some(principal) = principal(&format!("spec.access.pull[{index}]"), grantee, false)? {
            desired.grants.pull.push(principal);
        }
    }
    for (index, grant) in access.push.iter().enumerate() {
        let field = format!("spec.access.push[{index}]");
        if let Some(principal) = principal(&field, &grant.grantee, grant.github_actions.is_some())? {
            desired.grants.push.push(principal);
        }
        if let Some(github) = &grant.github_actions {
            desired
                .pushers
                .push(github_pusher(&format!("{field}.githubActions"), github)?);
        }
    }
    if !desired.pushers.is_empty() {
        desired.role_name = Some(policy::push_role_name(namespace, object_name));
    }

    let placeholder_role = desired.role_name.as_ref().map(|name| {
        format!(
            "arn:{}:iam::000000000000:role{}{name}",
            settings.partition, settings.iam_role_path
        )
    });
    policy::repository_policy(
        &settings.partition,
        &desired.grants,
        placeholder_role.as_deref(),
        settings.allow_public_access,
    )
    .map_err(|e| invalid(e.0))?;
    if !desired.pushers.is_empty() {
        let placeholder_provider = format!(
            "arn:{}:iam::000000000000:oidc-provider/{GITHUB_OIDC_HOST}",
            settings.partition
        );
        policy::github_trust_policy(&placeholder_provider, &desired.pushers).map_err(|e| invalid(e.0))?;
    }
    Ok(desired)
}

fn github_pusher(field: &str, github: &crate::api::GithubActionsGrant) -> Result<GithubPusher, Error> {
    if !GITHUB_REPOSITORY.is_match(&github.repository) || github.repository.len() > 200 {
        return Err(invalid(format!(
            "{field}.repository: '{}' is not a GitHub repository in the form org/repo",
            github.repository
        )));
    }
    if github.refs.is_empty() && github.environments.is_empty() {
        return Err(invalid(format!("{field}: list at least one ref or environment")));
    }
    for (list, values, pattern, what) in [
        (
            "refs",
            &github.refs,
            &*GITHUB_REF,
            "a git ref starting with refs/ (e.g. refs/heads/main)",
        ),
        (
            "environments",
            &github.environments,
            &*GITHUB_ENVIRONMENT,
            "a GitHub environment name (no ':')",
        ),
    ] {
        if values.len() > MAX_GITHUB_REFS {
            return Err(invalid(format!(
                "{field}.{list}: {} given, at most {MAX_GITHUB_REFS} are allowed",
                values.len()
            )));
        }
        for (index, value) in values.iter().enumerate() {
            if !pattern.is_match(value) || value.len() > 255 {
                return Err(invalid(format!("{field}.{list}[{index}]: '{value}' is not {what}")));
            }
        }
    }
    Ok(GithubPusher {
        repository: github.repository.clone(),
        refs: github.refs.clone(),
        environments: github.environments.clone(),
    })
}

/// What to do with the repository policy.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub enum PolicyChange {
    Set(Value),
    Delete,
}

impl Change for PolicyChange {
    fn operation(&self) -> &'static str {
        match self {
            PolicyChange::Set(_) => "SetRepositoryPolicy",
            PolicyChange::Delete => "DeleteRepositoryPolicy",
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            PolicyChange::Set(_) => "PolicyApplied",
            PolicyChange::Delete => "Deleted",
        }
    }

    fn field(&self) -> &'static str {
        "repositoryPolicy"
    }

    /// Removing berth's own policy follows a spec change; it is never drift.
    fn corrects_drift(&self) -> bool {
        matches!(self, PolicyChange::Set(_))
    }
}

/// Compares semantically: an equivalent policy in any spelling is left alone. Without a desired
/// policy, only a policy berth wrote is removed.
pub fn plan_repository_policy(desired: Option<&Value>, observed: Option<&Value>) -> Option<PolicyChange> {
    match (desired, observed) {
        (Some(desired), Some(observed)) if policy::equivalent(desired, observed) => None,
        (Some(desired), _) => Some(PolicyChange::Set(desired.clone())),
        (None, Some(observed)) if policy::is_berth_policy(observed) => Some(PolicyChange::Delete),
        (None, _) => None,
    }
}

/// The push role as it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredRole {
    pub name: String,
    pub path: String,
    pub permissions_boundary: Option<String>,
    pub trust_policy: Value,
    pub inline_policy: Value,
    pub tags: BTreeMap<String, String>,
}

/// A role observed with its inline push policy, both documents parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedPushRole {
    pub role: ObservedRole,
    pub trust_policy: Option<Value>,
    pub inline_policy: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum RoleChange {
    /// CreateRole (trust policy, boundary, tags), then the inline policy.
    Create,
    UpdateTrustPolicy,
    PutInlinePolicy,
    PutPermissionsBoundary,
}

impl Change for RoleChange {
    fn operation(&self) -> &'static str {
        match self {
            RoleChange::Create => "CreateRole",
            RoleChange::UpdateTrustPolicy => "UpdateAssumeRolePolicy",
            RoleChange::PutInlinePolicy => "PutRolePolicy",
            RoleChange::PutPermissionsBoundary => "PutRolePermissionsBoundary",
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            RoleChange::Create => "Created",
            _ => "Updated",
        }
    }

    fn field(&self) -> &'static str {
        match self {
            RoleChange::Create => "pushRole",
            RoleChange::UpdateTrustPolicy => "pushRole.trustPolicy",
            RoleChange::PutInlinePolicy => "pushRole.inlinePolicy",
            RoleChange::PutPermissionsBoundary => "pushRole.permissionsBoundary",
        }
    }

    fn corrects_drift(&self) -> bool {
        *self != RoleChange::Create
    }
}

/// Whether the role carries this object's ownership tag.
pub fn role_is_ours(role: &ObservedRole, owner: &str) -> bool {
    role.tags.get(OWNER_TAG).map(String::as_str) == Some(owner)
}

/// The changes that bring the push role to `desired`. A role of that name that berth does not
/// own for this object is never touched.
pub fn plan_role(
    desired: &DesiredRole,
    observed: Option<&ObservedPushRole>,
    owner: &str,
) -> Result<Vec<RoleChange>, Error> {
    let Some(observed) = observed else {
        return Ok(vec![RoleChange::Create, RoleChange::PutInlinePolicy]);
    };
    if !role_is_ours(&observed.role, owner) {
        return Err(Error::OwnedByOther(format!(
            "IAM role {} exists and is not owned by this EcrRepository (tag {} is not {owner}); berth leaves it alone",
            observed.role.name, OWNER_TAG
        )));
    }
    let mut changes = Vec::new();
    if !observed
        .trust_policy
        .as_ref()
        .is_some_and(|trust| policy::equivalent(trust, &desired.trust_policy))
    {
        changes.push(RoleChange::UpdateTrustPolicy);
    }
    if !observed
        .inline_policy
        .as_ref()
        .is_some_and(|inline| policy::equivalent(inline, &desired.inline_policy))
    {
        changes.push(RoleChange::PutInlinePolicy);
    }
    // a boundary is added or changed, never removed: removing one would widen the role
    if let Some(boundary) = &desired.permissions_boundary
        && observed.role.permissions_boundary.as_ref() != Some(boundary)
    {
        changes.push(RoleChange::PutPermissionsBoundary);
    }
    Ok(changes)
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;

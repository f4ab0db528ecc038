//! Applying `spec.access`: the GitHub Actions push role (IAM) and the repository policy (ECR).
//! The documents and plans come from `access` (pure); this module only observes and executes.

use serde_json::Value;

use super::access::{
    DesiredRole, ObservedPushRole, PUSH_POLICY_NAME, PolicyChange, RoleChange, plan_repository_policy, plan_role,
    role_is_ours,
};
use super::desired::DesiredRepository;
use super::scope::Scope;
use crate::aws::{AbsentAsNone, AwsErrorKind, NewRole};
use crate::error::{Error, Result};
use crate::policy::{self, GITHUB_AUDIENCE, GITHUB_OIDC_HOST};
use crate::reconcile::harness::Change;
use crate::reconcile::ownership::ownership_tags;
use crate::reconcile::runtime::Runtime;

/// A role younger than this may not yet be accepted by ECR as a principal (IAM propagates
/// new roles eventually).
const ROLE_PROPAGATION_SECONDS: i64 = 120;

/// Brings the push role and the repository policy to the spec; returns the push role's ARN.
/// `drift_only`: the spec did not change since the last sync, so any change is drift.
pub async fn apply_access(
    scope: &Scope<'_>,
    desired: &DesiredRepository,
    repository_arn: &str,
) -> Result<Option<String>> {
    let (repository, runtime) = (scope.repository, scope.runtime);
    let (push_role_arn, role_is_new) = match &desired.access.role_name {
        Some(role_name) => {
            let (arn, is_new) = ensure_push_role(scope, desired, role_name, repository_arn).await?;
            (Some(arn), is_new)
        }
        None => (None, false),
    };

    // Without access berth leaves the policy alone; after a spec change of an object it synced
    // before, it removes its own (a new object has nothing of berth's to remove).
    let synced_before = repository.status.as_ref().and_then(|s| s.observed_generation).is_some();
    if desired.access.manages_policy() || (!scope.drift_only && synced_before) {
        let desired_policy = policy::repository_policy(
            &desired.access.grants,
            push_role_arn.as_deref(),
            scope.kind.validation.allow_public_access,
        )
        .map_err(|e| Error::InvalidSpec(e.0))?;
        let observed_policy = runtime
            .registry
            .get_repository_policy(&desired.region, &desired.name)
            .await?
            .and_then(|text| policy::parse_policy(&text).ok());
        match plan_repository_policy(desired_policy.as_ref(), observed_policy.as_ref()) {
            Some(change @ PolicyChange::Set(_)) => {
                let PolicyChange::Set(document) = &change else {
                    unreachable!()
                };
                set_policy(runtime, desired, document, role_is_new).await?;
                let note = format!("repository policy of {} set from spec.access", desired.name);
                scope.report(&change, &note).await;
            }
            Some(change @ PolicyChange::Delete) => {
                runtime
                    .registry
                    .delete_repository_policy(&desired.region, &desired.name)
                    .await?;
                let note = format!(
                    "repository policy of {} removed: spec.access grants nothing",
                    desired.name
                );
                scope.event(change.reason(), change.operation(), &note).await;
            }
            None => {}
        }
    }

    // A push role that is no longer declared goes once the policy no longer names it.
    if desired.access.role_name.is_none()
        && let Some(old_arn) = repository.status.as_ref().and_then(|s| s.push_role_arn.as_deref())
    {
        delete_push_role(scope, desired, role_name_of(old_arn)).await?;
    }
    Ok(push_role_arn)
}

/// `arn:aws:iam::<account>:role/<path>/<name>` → `<name>`.
pub fn role_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

async fn set_policy(runtime: &Runtime, desired: &DesiredRepository, document: &Value, role_is_new: bool) -> Result<()> {
    let text = document.to_string();
    match runtime
        .registry
        .set_repository_policy(&desired.region, &desired.name, &text)
        .await
    {
        Ok(()) => Ok(()),
        // ECR refuses a principal that IAM has not propagated yet: retry with backoff rather
        // than report a terminal error.
        Err(mut error) if role_is_new && error.is_code("InvalidParameterException") => {
            error.kind = AwsErrorKind::Conflict;
            error.message = format!(
                "{} (the push role was created moments ago and IAM may not accept it as a principal yet; retrying)",
                error.message
            );
            Err(error.into())
        }
        Err(error) => Err(error.into()),
    }
}

/// The GitHub Actions OIDC provider: the flag, else the account's provider, else (only with
/// `--create-github-oidc-provider`) a new one tagged as berth's.
async fn github_provider(scope: &Scope<'_>) -> Result<String> {
    let (kind, iam) = (scope.kind, &scope.runtime.iam);
    if let Some(arn) = &kind.roles.github_provider_arn {
        return Ok(arn.clone());
    }
    kind.github_provider
        .get_or_try_init(|| async {
            if let Some(arn) = iam.find_oidc_provider(GITHUB_OIDC_HOST).await? {
                return Ok(arn);
            }
            if !kind.roles.create_github_provider {
                return Err(Error::Configuration(format!(
                    "spec.access.push[].githubActions needs the IAM OIDC provider for https://{GITHUB_OIDC_HOST}, and the account has none: create it, pass --github-oidc-provider-arn, or run berth with --create-github-oidc-provider"
                )));
            }
            let tags = ownership_tags(&format!("{}/github-oidc-provider", kind.validation.cluster_id));
            let url = format!("https://{GITHUB_OIDC_HOST}");
            let arn = iam.create_oidc_provider(&url, GITHUB_AUDIENCE, &tags).await?;
            tracing::info!(%arn, "created the GitHub Actions OIDC provider");
            Ok(arn)
        })
        .await
        .cloned()
}

async fn observe_role(runtime: &Runtime, name: &str) -> Result<Option<ObservedPushRole>> {
    let Some(role) = runtime.iam.get_role(name).await? else {
        return Ok(None);
    };
    let inline_policy = runtime
        .iam
        .get_role_policy(name, PUSH_POLICY_NAME)
        .await?
        .and_then(|text| policy::parse_policy(&text).ok());
    Ok(Some(ObservedPushRole {
        trust_policy: policy::parse_policy(&role.trust_policy).ok(),
        inline_policy,
        role,
    }))
}

/// Returns the role's ARN and whether it is new enough that IAM may still be propagating it.
async fn ensure_push_role(
    scope: &Scope<'_>,
    desired: &DesiredRepository,
    role_name: &str,
    repository_arn: &str,
) -> Result<(String, bool)> {
    let (roles, iam) = (&scope.kind.roles, &scope.runtime.iam);
    let provider = github_provider(scope).await?;
    let desired_role = DesiredRole {
        name: role_name.to_owned(),
        path: roles.path.clone(),
        permissions_boundary: roles.permissions_boundary.clone(),
        trust_policy: policy::github_trust_policy(&provider, &desired.access.pushers)
            .map_err(|e| Error::InvalidSpec(e.0))?,
        inline_policy: policy::push_role_inline_policy(repository_arn),
        tags: desired.ownership_tags(),
    };
    let observed = observe_role(scope.runtime, role_name).await?;
    let changes = plan_role(&desired_role, observed.as_ref(), &desired.owner)?;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let mut arn = observed.as_ref().map(|o| o.role.arn.clone()).unwrap_or_default();
    let mut is_new = observed
        .as_ref()
        .is_some_and(|o| now - o.role.created_at < ROLE_PROPAGATION_SECONDS);
    for change in changes {
        let operation = change.operation();
        match change {
            RoleChange::Create => {
                let description = format!(
                    "GitHub Actions push role for ECR repository {}, managed by berth",
                    desired.name
                );
                arn = iam
                    .create_role(&NewRole {
                        name: role_name,
                        path: &desired_role.path,
                        trust_policy: &desired_role.trust_policy.to_string(),
                        permissions_boundary: desired_role.permissions_boundary.as_deref(),
                        description: &description,
                        tags: &desired_role.tags,
                    })
                    .await?;
                is_new = true;
                let note = format!("created push role {arn} for GitHub Actions");
                scope.event(change.reason(), operation, &note).await;
            }
            RoleChange::UpdateTrustPolicy => {
                let document = desired_role.trust_policy.to_string();
                iam.update_trust_policy(role_name, &document).await?;
                let subjects: Vec<String> = policy::github_subjects(&desired.access.pushers).into_iter().collect();
                let note = format!("trust policy of {role_name} allows {subjects:?}");
                scope.report(&change, &note).await;
            }
            RoleChange::PutInlinePolicy => {
                let document = desired_role.inline_policy.to_string();
                iam.put_role_policy(role_name, PUSH_POLICY_NAME, &document).await?;
                // the first inline policy is part of creating the role, not a change of its own
                if !is_new || scope.drift_only {
                    let note =
                        format!("inline policy {PUSH_POLICY_NAME} of {role_name} allows push to {repository_arn}");
                    scope.report(&change, &note).await;
                }
            }
            RoleChange::PutPermissionsBoundary => {
                let boundary = desired_role.permissions_boundary.as_deref().unwrap_or_default();
                iam.put_permissions_boundary(role_name, boundary).await?;
                let note = format!("permissions boundary of {role_name} set to {boundary}");
                scope.report(&change, &note).await;
            }
        }
    }
    Ok((arn, is_new))
}

/// Deletes the push role if it is this object's: its inline policies first, as IAM requires.
pub async fn delete_push_role(scope: &Scope<'_>, desired: &DesiredRepository, role_name: &str) -> Result<()> {
    let iam = &scope.runtime.iam;
    let Some(role) = iam.get_role(role_name).await? else {
        return Ok(());
    };
    if !role_is_ours(&role, &desired.owner) {
        tracing::info!(role = role_name, "not deleting a push role this object does not own");
        return Ok(());
    }
    for policy_name in iam.list_role_policies(role_name).await? {
        iam.delete_role_policy(role_name, &policy_name).await?;
    }
    iam.delete_role(role_name).await.absent_as_none()?;
    let note = format!("deleted push role {}", role.arn);
    scope.event("Deleted", "DeleteRole", &note).await;
    Ok(())
}

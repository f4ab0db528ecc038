//! The reads of the EcrRepository pipeline: the repository and its tags, the push role with its
//! inline policy, the repository policy, and the GitHub OIDC provider the trust policy names.

use serde_json::Value;

use super::access::{DesiredRole, ObservedPushRole, PUSH_POLICY_NAME};
use super::desired::DesiredRepository;
use super::plan::ObservedState;
use super::scope::Scope;
use crate::error::{Error, Result};
use crate::policy::{self, GITHUB_AUDIENCE, GITHUB_OIDC_HOST};
use crate::reconcile::ownership::{check_own_tags, ownership_tags};
use crate::reconcile::runtime::Runtime;

/// A role younger than this may not yet be accepted by ECR as a principal (IAM propagates
/// new roles eventually).
const ROLE_PROPAGATION_SECONDS: i64 = 120;

/// How old an observation of the repository the plan may rest on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// This resync's snapshot of the region (a name it lacks is described on its own).
    Snapshot,
    /// For an object never reconciled, whose repository is most likely still to be created: a
    /// name the snapshot lacks is taken as absent (creating one that exists fails, and the
    /// reconcile then observes it `Fresh`); a listed one is described afresh.
    Listed,
    /// Described now: after a spec change the plan must not rest on an observation up to one
    /// resync old.
    Fresh,
}

/// The repository and its tags.
pub async fn repository(
    runtime: &Runtime,
    desired: &DesiredRepository,
    freshness: Freshness,
) -> Result<Option<ObservedState>> {
    let (observer, region, name) = (&runtime.observer, &desired.region, &desired.name);
    let repository = match freshness {
        Freshness::Snapshot => observer.observe(region, name).await?,
        Freshness::Listed => observer.observe_listed(region, name).await?,
        Freshness::Fresh => observer.observe_fresh(region, name).await?,
    };
    let Some(repository) = repository else {
        return Ok(None);
    };
    let tags = runtime.registry.list_tags(&desired.region, &repository.arn).await?;
    Ok(Some(ObservedState { repository, tags }))
}

/// The repository policy, parsed (an unparsable one counts as different from any desired one).
pub async fn repository_policy(runtime: &Runtime, desired: &DesiredRepository) -> Result<Option<Value>> {
    Ok(runtime
        .registry
        .get_repository_policy(&desired.region, &desired.name)
        .await?
        .and_then(|text| policy::parse_policy(&text).ok()))
}

/// The push role with its inline push policy, both documents parsed. The role comes from the
/// epoch's ListRoles (`fresh`: from GetRole, after a spec change); the inline policy, which no
/// listing returns, is one GetRolePolicy.
pub async fn role(scope: &Scope<'_>, name: &str, fresh: bool) -> Result<Option<ObservedPushRole>> {
    let (runtime, roles) = (scope.runtime, &scope.kind.push_roles);
    let role = if fresh {
        roles.observe_fresh(runtime.iam.as_ref(), name).await?
    } else {
        roles.observe(runtime.iam.as_ref(), runtime.epoch(), name).await?
    };
    let Some(role) = role else {
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

/// Whether an observed role is new enough that IAM may still be propagating it.
pub fn is_propagating(role: &ObservedPushRole) -> bool {
    k8s_openapi::jiff::Timestamp::now().as_second() - role.role.created_at < ROLE_PROPAGATION_SECONDS
}

/// The push role as it should be: trusted by the GitHub OIDC provider for the declared
/// repositories, allowed to push to `repository_arn`, under berth's path and boundary.
pub async fn desired_role(
    scope: &Scope<'_>,
    desired: &DesiredRepository,
    role_name: &str,
    repository_arn: &str,
) -> Result<DesiredRole> {
    let roles = &scope.kind.roles;
    let provider = github_provider(scope).await?;
    Ok(DesiredRole {
        name: role_name.to_owned(),
        path: roles.path.clone(),
        permissions_boundary: roles.permissions_boundary.clone(),
        trust_policy: policy::github_trust_policy(&provider, &desired.access.pushers)
            .map_err(|e| Error::InvalidSpec(e.0))?,
        inline_policy: policy::push_role_inline_policy(repository_arn),
        tags: desired.ownership_tags(),
    })
}

/// `arn:aws:iam::<account>:role/<path>/<name>` → `<name>`.
pub fn role_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
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
            check_own_tags(&tags).map_err(|e| Error::Configuration(format!("GitHub OIDC provider tags: {e}")))?;
            let url = format!("https://{GITHUB_OIDC_HOST}");
            let arn = iam.create_oidc_provider(&url, GITHUB_AUDIENCE, &tags).await?;
            tracing::info!(%arn, "created the GitHub Actions OIDC provider");
            Ok(arn)
        })
        .await
        .cloned()
}

//! Executes planned changes: the only place the EcrRepository reconciler writes to AWS. Each
//! change is made, then reported through the harness (its own reason, or `DriftCorrected`).

use serde_json::Value;

use super::access::{DesiredRole, PUSH_POLICY_NAME, PolicyChange, RoleChange, role_is_ours};
use super::desired::DesiredRepository;
use super::plan::RepositoryChange;
use super::scope::Scope;
use crate::aws::{AbsentAsNone, AwsErrorKind, NewRole, ObservedRepository};
use crate::error::{Error, Result};
use crate::policy;

/// What the executed changes have produced so far, for the phases after them and the status.
#[derive(Debug, Default)]
pub struct Executed {
    /// The repository as it is now.
    pub repository: Option<ObservedRepository>,
    /// This reconcile created the repository (it has no policy yet).
    pub created: bool,
    /// The push role's ARN, once observed or created.
    pub role_arn: Option<String>,
    /// The push role is young enough that IAM may still be propagating it.
    pub role_is_new: bool,
}

pub struct Executor<'a> {
    scope: &'a Scope<'a>,
    pub desired: &'a DesiredRepository,
    /// The push role as it should be, for the role changes.
    pub role: Option<DesiredRole>,
    pub executed: Executed,
}

impl<'a> Executor<'a> {
    pub fn new(scope: &'a Scope<'a>, desired: &'a DesiredRepository, repository: Option<ObservedRepository>) -> Self {
        Self {
            scope,
            desired,
            role: None,
            executed: Executed {
                repository,
                ..Executed::default()
            },
        }
    }

    /// Makes each change in order and reports it; stops at the first failure.
    pub async fn run(&mut self, changes: &[RepositoryChange]) -> Result<()> {
        for change in changes {
            if let Some(note) = self.execute(change).await? {
                self.scope.report(change, &note).await;
            }
        }
        Ok(())
    }

    /// One change; returns the note of its Event, or None when it is not worth one.
    async fn execute(&mut self, change: &RepositoryChange) -> Result<Option<String>> {
        let (desired, registry) = (self.desired, &self.scope.runtime.registry);
        let arn = || {
            self.executed
                .repository
                .as_ref()
                .map(|r| r.arn.clone())
                .unwrap_or_default()
        };
        let note = match change {
            RepositoryChange::Create => {
                // RepositoryAlreadyExists (created since we looked, or not listed yet) is a
                // transient conflict: the retry observes the repository and plans again.
                let created = registry
                    .create_repository(
                        &desired.region,
                        &desired.name,
                        &desired.settings,
                        desired.encryption_type,
                        desired.kms_key.as_deref(),
                        &desired.all_tags(),
                    )
                    .await?;
                self.executed.repository = Some(created);
                self.executed.created = true;
                format!("created repository {} in {}", desired.name, desired.region)
            }
            RepositoryChange::SetTagMutability(settings) => {
                registry
                    .put_tag_mutability(&desired.region, &desired.name, settings)
                    .await?;
                if let Some(repository) = &mut self.executed.repository {
                    repository.settings = settings.clone();
                }
                format!(
                    "imageTagMutability set to {:?} with exclusions {:?}",
                    settings.tag_mutability, settings.mutability_exclusions
                )
            }
            RepositoryChange::Tag(tags) => {
                registry.tag_resource(&desired.region, &arn(), tags).await?;
                let keys: Vec<&String> = tags.keys().collect();
                format!("tags set: {keys:?}")
            }
            RepositoryChange::Untag(keys) => {
                registry.untag_resource(&desired.region, &arn(), keys).await?;
                format!("tags removed: {keys:?}")
            }
            RepositoryChange::Role(role_change) => return self.execute_role(role_change).await,
            RepositoryChange::Policy(PolicyChange::Set(document)) => {
                self.set_policy(document).await?;
                format!("repository policy of {} set from spec.access", desired.name)
            }
            RepositoryChange::Policy(PolicyChange::Delete) => {
                registry
                    .delete_repository_policy(&desired.region, &desired.name)
                    .await?;
                format!(
                    "repository policy of {} removed: spec.access grants nothing",
                    desired.name
                )
            }
            RepositoryChange::DeleteRole(name) => return self.delete_role(name).await,
            RepositoryChange::DeleteRepository => {
                self.delete_repository().await?;
                format!("deleted repository {} in {}", desired.name, desired.region)
            }
        };
        Ok(Some(note))
    }

    async fn execute_role(&mut self, change: &RoleChange) -> Result<Option<String>> {
        let iam = &self.scope.runtime.iam;
        let role = self
            .role
            .as_ref()
            .expect("role changes are planned with the desired role");
        let name = role.name.as_str();
        if *change != RoleChange::PutInlinePolicy {
            // whether the write succeeds or not, what the epoch's listing said of the role (and
            // its confirmed tags and boundary) is no longer to be trusted: the next lookup reads it
            self.scope.kind.push_roles.invalidate(name).await;
        }
        let note = match change {
            RoleChange::Create => {
                let description = format!(
                    "GitHub Actions push role for ECR repository {}, managed by berth",
                    self.desired.name
                );
                let arn = iam
                    .create_role(&NewRole {
                        name,
                        path: &role.path,
                        trust_policy: &role.trust_policy.to_string(),
                        permissions_boundary: role.permissions_boundary.as_deref(),
                        description: &description,
                        tags: &role.tags,
                    })
                    .await?;
                let note = format!("created push role {arn} for GitHub Actions");
                self.executed.role_arn = Some(arn);
                self.executed.role_is_new = true;
                note
            }
            RoleChange::UpdateTrustPolicy => {
                iam.update_trust_policy(name, &role.trust_policy.to_string()).await?;
                let subjects: Vec<String> = policy::github_subjects(&self.desired.access.pushers)
                    .into_iter()
                    .collect();
                format!("trust policy of {name} allows {subjects:?}")
            }
            RoleChange::PutInlinePolicy => {
                iam.put_role_policy(name, PUSH_POLICY_NAME, &role.inline_policy.to_string())
                    .await?;
                // the first inline policy is part of creating the role, not a change of its own
                if self.executed.role_is_new && !self.scope.drift_only {
                    return Ok(None);
                }
                let repository_arn = self.executed.repository.as_ref().map(|r| r.arn.as_str());
                format!(
                    "inline policy {PUSH_POLICY_NAME} of {name} allows push to {}",
                    repository_arn.unwrap_or_default()
                )
            }
            RoleChange::PutPermissionsBoundary => {
                let boundary = role.permissions_boundary.as_deref().unwrap_or_default();
                iam.put_permissions_boundary(name, boundary).await?;
                format!("permissions boundary of {name} set to {boundary}")
            }
        };
        Ok(Some(note))
    }

    async fn set_policy(&self, document: &Value) -> Result<()> {
        let desired = self.desired;
        match self
            .scope
            .runtime
            .registry
            .set_repository_policy(&desired.region, &desired.name, &document.to_string())
            .await
        {
            Ok(()) => Ok(()),
            // ECR refuses a principal that IAM has not propagated yet: retry with backoff rather
            // than report a terminal error.
            Err(mut error) if self.executed.role_is_new && error.is_code("InvalidParameterException") => {
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

    /// Deletes the push role if it is this object's: its inline policies first, as IAM requires.
    async fn delete_role(&self, name: &str) -> Result<Option<String>> {
        let (iam, roles) = (&self.scope.runtime.iam, &self.scope.kind.push_roles);
        roles.invalidate(name).await;
        let Some(role) = iam.get_role(name).await? else {
            return Ok(None);
        };
        if !role_is_ours(&role, &self.desired.owner) {
            tracing::info!(role = name, "not deleting a push role this object does not own");
            return Ok(None);
        }
        for policy_name in iam.list_role_policies(name).await? {
            iam.delete_role_policy(name, &policy_name).await?;
        }
        iam.delete_role(name).await.absent_as_none()?;
        roles.forget(name).await;
        Ok(Some(format!("deleted push role {}", role.arn)))
    }

    async fn delete_repository(&self) -> Result<()> {
        let (desired, registry) = (self.desired, &self.scope.runtime.registry);
        let force = self.scope.repository.spec.force_delete;
        if !force {
            let images = registry.count_images(&desired.region, &desired.name).await?;
            if images > 0 {
                return Err(deletion_blocked(&desired.name, images));
            }
        }
        match registry
            .delete_repository(&desired.region, &desired.name, force)
            .await
            .absent_as_none()
        {
            Ok(_) => {}
            Err(e) if e.is_code("RepositoryNotEmptyException") => {
                let images = registry.count_images(&desired.region, &desired.name).await?;
                return Err(deletion_blocked(&desired.name, images));
            }
            Err(e) => return Err(e.into()),
        }
        self.scope.runtime.observer.forget(&desired.region, &desired.name).await;
        Ok(())
    }
}

fn deletion_blocked(name: &str, images: u64) -> Error {
    Error::DeletionBlocked(format!(
        "repository {name} still holds {images} images and spec.forceDelete is false: delete the images or set forceDelete: true"
    ))
}

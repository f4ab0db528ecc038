//! The EcrRepository pipeline around the pure steps: validate → observe → plan → execute →
//! status, and cleanup. The only part of the reconciler, with `apply_access`, that does IO.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::apply_access::{apply_access, delete_push_role, role_name_of};
use super::desired::{DesiredRepository, desired_repository};
use super::plan::{ObservedState, RepositoryChange, plan};
use super::scope::{KIND, Scope};
use super::settings::{Repositories, ValidationSettings};
use super::status::{Outcome, is_ready, needs_write, repository_status};
use crate::api::{DeletionPolicy, EcrRepository};
use crate::aws::AbsentAsNone;
use crate::error::{Error, Result};
use crate::images::stats::StatsTarget;
use crate::reconcile::ownership::{Ownership, ownership};
use crate::reconcile::runtime::{ObjectId, Runtime};

/// Present while deleting the object has something to clean up in AWS.
pub const FINALIZER: &str = "ecr.berth.dev/cleanup";
/// Server-side-apply field manager of the fields this controller owns.
pub const FIELD_MANAGER: &str = "berth";

/// True when the last reconcile found this generation in sync: any change needed now was made
/// outside berth (drift), not asked for by a spec change.
fn synced_this_generation(repository: &EcrRepository) -> bool {
    repository.status.as_ref().is_some_and(is_ready)
        && repository.status.as_ref().and_then(|s| s.observed_generation) == repository.metadata.generation
}

pub async fn apply(repository: &EcrRepository, kind: &Repositories, runtime: &Runtime) -> Result<Action> {
    let desired = desired_repository(repository, &kind.validation)?;
    check_identity_unchanged(repository, &desired)?;

    let id = ObjectId::of(KIND, repository);
    let epoch = runtime.epoch();
    let scope = Scope {
        repository,
        kind,
        runtime,
        drift_only: synced_this_generation(repository),
    };
    // Our own status write triggers another reconcile: skip AWS when this generation was
    // already found in sync during the current resync.
    if scope.drift_only && runtime.is_memo_current(&id, repository.metadata.generation, epoch) {
        return Ok(Action::await_change());
    }

    let observed = observe(runtime, &desired, !scope.drift_only).await?;
    let plan = plan(&desired, observed.as_ref(), repository.spec.adopt)?;
    ensure_finalizer(
        repository,
        runtime,
        repository.spec.deletion_policy == DeletionPolicy::Delete,
    )
    .await?;

    if plan.adopting {
        let note = format!("took over existing repository {}", desired.name);
        scope.event("Adopted", "TagResource", &note).await;
    }
    let mut current = observed.map(|o| o.repository);
    for change in &plan.changes {
        current = Some(execute(&scope, &desired, current, change).await?);
    }
    let current = current.expect("a repository exists after planning and applying");
    runtime.observer.record(&desired.region, current.clone()).await;

    let push_role_arn = apply_access(&scope, &desired, &current.arn).await?;
    write_status(
        repository,
        runtime,
        Outcome::Synced {
            repository: &current,
            push_role_arn,
        },
    )
    .await?;
    runtime.stats.track(
        id.key.clone(),
        StatsTarget {
            region: desired.region.clone(),
            repository: desired.name.clone(),
        },
        repository.status.as_ref(),
    );
    runtime.remember_synced(id, repository.metadata.generation, epoch);
    Ok(Action::await_change())
}

/// Makes one planned change and reports it; returns the repository as it is afterwards.
async fn execute(
    scope: &Scope<'_>,
    desired: &DesiredRepository,
    current: Option<crate::aws::ObservedRepository>,
    change: &RepositoryChange,
) -> Result<crate::aws::ObservedRepository> {
    let registry = &scope.runtime.registry;
    let arn = current.as_ref().map(|r| r.arn.clone()).unwrap_or_default();
    let (current, note) = match change {
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
            let note = format!("created repository {} in {}", desired.name, desired.region);
            scope.event("Created", "CreateRepository", &note).await;
            return Ok(created);
        }
        RepositoryChange::SetTagMutability(settings) => {
            registry
                .put_tag_mutability(&desired.region, &desired.name, settings)
                .await?;
            let current = current.map(|mut current| {
                current.settings = settings.clone();
                current
            });
            let note = format!(
                "imageTagMutability set to {:?} with exclusions {:?}",
                settings.tag_mutability, settings.mutability_exclusions
            );
            (current, note)
        }
        RepositoryChange::Tag(tags) => {
            registry.tag_resource(&desired.region, &arn, tags).await?;
            let keys: Vec<&String> = tags.keys().collect();
            (current, format!("tags set: {keys:?}"))
        }
        RepositoryChange::Untag(keys) => {
            registry.untag_resource(&desired.region, &arn, keys).await?;
            (current, format!("tags removed: {keys:?}"))
        }
    };
    scope.report(change, &note).await;
    Ok(current.expect("only a create plans changes for a repository that does not exist"))
}

/// The repository and its tags. `fresh` bypasses the per-resync snapshot: after a spec change
/// the plan must not rest on an observation up to one resync old.
async fn observe(runtime: &Runtime, desired: &DesiredRepository, fresh: bool) -> Result<Option<ObservedState>> {
    let repository = if fresh {
        runtime.observer.observe_fresh(&desired.region, &desired.name).await?
    } else {
        runtime.observer.observe(&desired.region, &desired.name).await?
    };
    let Some(repository) = repository else {
        return Ok(None);
    };
    let tags = runtime.registry.list_tags(&desired.region, &repository.arn).await?;
    Ok(Some(ObservedState { repository, tags }))
}

/// On clusters without CEL, `repositoryName` and `region` can still be edited: refuse to move
/// an object to another repository once it manages one.
fn check_identity_unchanged(repository: &EcrRepository, desired: &DesiredRepository) -> Result<()> {
    let Some(arn) = repository.status.as_ref().and_then(|s| s.repository_arn.as_deref()) else {
        return Ok(());
    };
    let (region, name) = crate::naming::repository_arn_parts(arn).unwrap_or_default();
    if name != desired.name {
        return Err(Error::InvalidSpec(format!(
            "spec.repositoryName is immutable: this object manages repository {name}, the spec now names {}",
            desired.name
        )));
    }
    if region != desired.region {
        return Err(Error::InvalidSpec(format!(
            "spec.region is immutable: this object manages a repository in {region}, the spec now names {}",
            desired.region
        )));
    }
    Ok(())
}

/// Deletion: with `Delete`, remove the repository if berth owns it; then release the object.
pub async fn cleanup(repository: &EcrRepository, kind: &Repositories, runtime: &Runtime) -> Result<Action> {
    if !repository.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if repository.spec.deletion_policy == DeletionPolicy::Delete {
        // whether access would be allowed does not matter for deleting what berth created
        let settings = ValidationSettings {
            allow_public_access: true,
            ..kind.validation.clone()
        };
        let desired = desired_repository(repository, &settings)?;
        let scope = Scope {
            repository,
            kind,
            runtime,
            drift_only: false,
        };
        if let Some(observed) = observe(runtime, &desired, true).await?
            && ownership(&observed.tags, &desired.owner) == Ownership::Ours
        {
            delete_repository(&scope, &desired).await?;
        }
        // the push role goes with the repository (only if it is this object's)
        let recorded = repository.status.as_ref().and_then(|s| s.push_role_arn.as_deref());
        if let Some(role_name) = desired.access.role_name.as_deref().or(recorded.map(role_name_of)) {
            delete_push_role(&scope, &desired, role_name).await?;
        }
    }
    ensure_finalizer(repository, runtime, false).await?;
    Ok(Action::await_change())
}

async fn delete_repository(scope: &Scope<'_>, desired: &DesiredRepository) -> Result<()> {
    let registry = &scope.runtime.registry;
    let force = scope.repository.spec.force_delete;
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
    scope.runtime.observer.forget(&desired.region, &desired.name).await;
    let note = format!("deleted repository {} in {}", desired.name, desired.region);
    scope.event("Deleted", "DeleteRepository", &note).await;
    Ok(())
}

fn deletion_blocked(name: &str, images: u64) -> Error {
    Error::DeletionBlocked(format!(
        "repository {name} still holds {images} images and spec.forceDelete is false: delete the images or set forceDelete: true"
    ))
}

/// Adds or removes the cleanup finalizer. A merge patch carrying the resourceVersion fails on a
/// concurrent change instead of overwriting another controller's finalizers.
async fn ensure_finalizer(repository: &EcrRepository, runtime: &Runtime, wanted: bool) -> Result<()> {
    let present = repository.finalizers().iter().any(|f| f == FINALIZER);
    if present == wanted {
        return Ok(());
    }
    let mut finalizers: Vec<String> = repository
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if wanted {
        finalizers.push(FINALIZER.to_owned());
    }
    let patch = json!({
        "metadata": {"resourceVersion": repository.resource_version(), "finalizers": finalizers}
    });
    api(repository, runtime)
        .patch(&repository.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn api(repository: &EcrRepository, runtime: &Runtime) -> Api<EcrRepository> {
    Api::namespaced(runtime.client.clone(), &repository.namespace().unwrap_or_default())
}

async fn write_status(repository: &EcrRepository, runtime: &Runtime, outcome: Outcome<'_>) -> Result<()> {
    let status = repository_status(
        repository.status.as_ref(),
        repository.metadata.generation,
        outcome,
        now(),
    );
    runtime
        .metrics
        .set_ready(KIND, ObjectId::of(KIND, repository).key, is_ready(&status));
    if !needs_write(repository.status.as_ref(), &status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "ecr.berth.dev/v1alpha1",
        "kind": "EcrRepository",
        "status": status,
    });
    api(repository, runtime)
        .patch_status(
            &repository.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

/// The failure in status (the harness publishes the Warning Event).
pub async fn write_failure(repository: &EcrRepository, runtime: &Runtime, error: &Error) {
    if matches!(
        error,
        Error::InvalidSpec(_) | Error::AdoptionRequired(_) | Error::OwnedByOther(_)
    ) {
        // not (or no longer) a repository berth manages for this object
        runtime.stats.untrack(&ObjectId::of(KIND, repository).key);
    }
    let outcome = Outcome::Failed {
        reason: error.reason(),
        message: error.to_string(),
    };
    if let Err(status_error) = write_status(repository, runtime, outcome).await {
        tracing::warn!(error = %status_error, "could not write the failure to status");
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

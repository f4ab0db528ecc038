//! Step 3 and the pipeline around it: the only part of the EcrRepository reconciler that does IO.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::apply_access::{apply_access, delete_push_role, role_name_of};
use super::desired::{DesiredRepository, ValidationSettings, desired_repository};
use super::plan::{Change, ObservedState, Ownership, ownership, plan};
use super::status::{Outcome, is_ready, needs_write, repository_status};
use crate::api::{DeletionPolicy, EcrRepository};
use crate::aws::AbsentAsNone;
use crate::controller::{Context, REPOSITORY_KIND};
use crate::error::{Error, Result};
use crate::reconcile::stats::StatsTarget;

/// Present while deleting the object has something to clean up in AWS.
pub const FINALIZER: &str = "ecr.berth.dev/cleanup";
/// Server-side-apply field manager of the fields this controller owns.
pub const FIELD_MANAGER: &str = "berth";

pub async fn reconcile(repository: Arc<EcrRepository>, ctx: Arc<Context>) -> Result<Action> {
    let result = if repository.metadata.deletion_timestamp.is_some() {
        cleanup(&repository, &ctx).await
    } else {
        apply(&repository, &ctx).await
    };
    if let Err(error) = &result {
        report_failure(&repository, &ctx, error).await;
    }
    result
}

/// True when the last reconcile found this generation in sync: any change needed now was made
/// outside berth (drift), not asked for by a spec change.
fn synced_this_generation(repository: &EcrRepository) -> bool {
    repository.status.as_ref().is_some_and(is_ready)
        && repository.status.as_ref().and_then(|s| s.observed_generation) == repository.metadata.generation
}

async fn apply(repository: &EcrRepository, ctx: &Context) -> Result<Action> {
    let desired = desired_repository(repository, &ctx.validation)?;
    check_identity_unchanged(repository, &desired)?;

    let key = ctx.object_key(repository);
    let epoch = ctx.observer.epoch();
    // Synced at this generation before: any change needed now is drift, not a spec edit.
    let drift_only = synced_this_generation(repository);
    // Our own status write triggers another reconcile: skip AWS when this generation was
    // already found in sync during the current resync.
    if drift_only && ctx.is_memo_current(&key, repository.metadata.generation, epoch) {
        return Ok(Action::await_change());
    }

    let observed = observe(ctx, &desired, !drift_only).await?;
    let mut plan_result = plan(&desired, observed.as_ref(), repository.spec.adopt)?;
    ensure_finalizer(
        repository,
        ctx,
        repository.spec.deletion_policy == DeletionPolicy::Delete,
    )
    .await?;

    if plan_result.adopting {
        publish(
            ctx,
            repository,
            EventType::Normal,
            "Adopted",
            "TagResource",
            &format!("took over existing repository {}", desired.name),
        )
        .await;
    }
    let mut current = observed.as_ref().map(|o| o.repository.clone());
    for change in plan_result.changes.drain(..) {
        match &change {
            Change::Create => {
                // RepositoryAlreadyExists (created since we looked, or not listed yet) is a
                // transient conflict: the retry observes the repository and plans again.
                let created = create(ctx, &desired).await?;
                let note = format!("created repository {} in {}", desired.name, desired.region);
                publish(ctx, repository, EventType::Normal, "Created", "CreateRepository", &note).await;
                current = Some(created);
            }
            Change::SetTagMutability(settings) => {
                ctx.registry
                    .put_tag_mutability(&desired.region, &desired.name, settings)
                    .await?;
                if let Some(current) = &mut current {
                    current.settings = settings.clone();
                }
                let note = format!(
                    "imageTagMutability set to {:?} with exclusions {:?}",
                    settings.tag_mutability, settings.mutability_exclusions
                );
                report_change(ctx, repository, drift_only, change.field(), change.operation(), &note).await;
            }
            Change::Tag(tags) => {
                let arn = current.as_ref().map(|r| r.arn.clone()).unwrap_or_default();
                ctx.registry.tag_resource(&desired.region, &arn, tags).await?;
                let keys: Vec<&String> = tags.keys().collect();
                let note = format!("tags set: {keys:?}");
                report_change(ctx, repository, drift_only, change.field(), change.operation(), &note).await;
            }
            Change::Untag(keys) => {
                let arn = current.as_ref().map(|r| r.arn.clone()).unwrap_or_default();
                ctx.registry.untag_resource(&desired.region, &arn, keys).await?;
                let note = format!("tags removed: {keys:?}");
                report_change(ctx, repository, drift_only, change.field(), change.operation(), &note).await;
            }
        }
    }
    let current = current.expect("a repository exists after planning and applying");
    ctx.observer.record(&desired.region, current.clone()).await;

    let push_role_arn = apply_access(repository, ctx, &desired, &current.arn, drift_only).await?;
    write_status(
        repository,
        ctx,
        Outcome::Synced {
            repository: &current,
            push_role_arn,
        },
    )
    .await?;
    ctx.stats.track(
        key.clone(),
        StatsTarget {
            region: desired.region.clone(),
            repository: desired.name.clone(),
        },
        repository.status.as_ref(),
    );
    ctx.remember_synced(key, repository.metadata.generation, epoch);
    Ok(Action::await_change())
}

/// The repository and its tags. `fresh` bypasses the per-resync snapshot: after a spec change
/// the plan must not rest on an observation up to one resync old.
async fn observe(ctx: &Context, desired: &DesiredRepository, fresh: bool) -> Result<Option<ObservedState>> {
    let repository = if fresh {
        ctx.observer.observe_fresh(&desired.region, &desired.name).await?
    } else {
        ctx.observer.observe(&desired.region, &desired.name).await?
    };
    let Some(repository) = repository else {
        return Ok(None);
    };
    let tags = ctx.registry.list_tags(&desired.region, &repository.arn).await?;
    Ok(Some(ObservedState { repository, tags }))
}

async fn create(ctx: &Context, desired: &DesiredRepository) -> Result<crate::aws::ObservedRepository> {
    Ok(ctx
        .registry
        .create_repository(
            &desired.region,
            &desired.name,
            &desired.settings,
            desired.encryption_type,
            desired.kms_key.as_deref(),
            &desired.all_tags(),
        )
        .await?)
}

/// On clusters without CEL, `repositoryName` and `region` can still be edited: refuse to move
/// an object to another repository once it manages one.
fn check_identity_unchanged(repository: &EcrRepository, desired: &DesiredRepository) -> Result<()> {
    let Some(arn) = repository.status.as_ref().and_then(|s| s.repository_arn.as_deref()) else {
        return Ok(());
    };
    // arn:aws:ecr:<region>:<account>:repository/<name>
    let mut parts = arn.splitn(6, ':');
    let region = parts.nth(3).unwrap_or_default();
    let name = parts
        .nth(1)
        .and_then(|rest| rest.strip_prefix("repository/"))
        .unwrap_or_default();
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

/// A Normal Event for a change: `DriftCorrected` (and the drift metric) when the spec did not
/// ask for it, else `reason`.
pub(super) async fn report_change(
    ctx: &Context,
    repository: &EcrRepository,
    drift: bool,
    field: &str,
    operation: &str,
    note: &str,
) {
    report_change_as(ctx, repository, drift, "Updated", field, operation, note).await;
}

pub(super) async fn report_change_as(
    ctx: &Context,
    repository: &EcrRepository,
    drift: bool,
    reason: &str,
    field: &str,
    operation: &str,
    note: &str,
) {
    if drift {
        ctx.metrics.drift_corrected(REPOSITORY_KIND, field);
        let note = format!("{field} was changed outside berth and set back: {note}");
        publish(ctx, repository, EventType::Normal, "DriftCorrected", operation, &note).await;
    } else {
        publish(ctx, repository, EventType::Normal, reason, operation, note).await;
    }
}

/// Deletion: with `Delete`, remove the repository if berth owns it; then release the object.
async fn cleanup(repository: &EcrRepository, ctx: &Context) -> Result<Action> {
    if !repository.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if repository.spec.deletion_policy == DeletionPolicy::Delete {
        // whether access would be allowed does not matter for deleting what berth created
        let settings = ValidationSettings {
            allow_public_access: true,
            ..ctx.validation.clone()
        };
        let desired = desired_repository(repository, &settings)?;
        if let Some(observed) = observe(ctx, &desired, true).await?
            && ownership(&observed.tags, &desired.owner) == Ownership::Ours
        {
            delete_repository(repository, ctx, &desired).await?;
        }
        // the push role goes with the repository (only if it is this object's)
        let recorded = repository.status.as_ref().and_then(|s| s.push_role_arn.as_deref());
        if let Some(role_name) = desired.access.role_name.as_deref().or(recorded.map(role_name_of)) {
            delete_push_role(repository, ctx, &desired, role_name).await?;
        }
    }
    ensure_finalizer(repository, ctx, false).await?;
    ctx.forget_object(&ctx.object_key(repository));
    Ok(Action::await_change())
}

async fn delete_repository(repository: &EcrRepository, ctx: &Context, desired: &DesiredRepository) -> Result<()> {
    let force = repository.spec.force_delete;
    if !force {
        let images = ctx.registry.count_images(&desired.region, &desired.name).await?;
        if images > 0 {
            return Err(deletion_blocked(&desired.name, images));
        }
    }
    match ctx
        .registry
        .delete_repository(&desired.region, &desired.name, force)
        .await
        .absent_as_none()
    {
        Ok(_) => {}
        Err(e) if e.is_code("RepositoryNotEmptyException") => {
            let images = ctx.registry.count_images(&desired.region, &desired.name).await?;
            return Err(deletion_blocked(&desired.name, images));
        }
        Err(e) => return Err(e.into()),
    }
    ctx.observer.forget(&desired.region, &desired.name).await;
    let note = format!("deleted repository {} in {}", desired.name, desired.region);
    publish(ctx, repository, EventType::Normal, "Deleted", "DeleteRepository", &note).await;
    Ok(())
}

fn deletion_blocked(name: &str, images: u64) -> Error {
    Error::DeletionBlocked(format!(
        "repository {name} still holds {images} images and spec.forceDelete is false: delete the images or set forceDelete: true"
    ))
}

/// Adds or removes the cleanup finalizer. A merge patch carrying the resourceVersion fails on a
/// concurrent change instead of overwriting another controller's finalizers.
async fn ensure_finalizer(repository: &EcrRepository, ctx: &Context, wanted: bool) -> Result<()> {
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
    api(repository, ctx)
        .patch(&repository.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn api(repository: &EcrRepository, ctx: &Context) -> Api<EcrRepository> {
    Api::namespaced(ctx.client.clone(), &repository.namespace().unwrap_or_default())
}

async fn write_status(repository: &EcrRepository, ctx: &Context, outcome: Outcome<'_>) -> Result<()> {
    let status = repository_status(
        repository.status.as_ref(),
        repository.metadata.generation,
        outcome,
        now(),
    );
    ctx.metrics
        .set_ready(REPOSITORY_KIND, ctx.object_key(repository), is_ready(&status));
    if !needs_write(repository.status.as_ref(), &status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "ecr.berth.dev/v1alpha1",
        "kind": "EcrRepository",
        "status": status,
    });
    api(repository, ctx)
        .patch_status(
            &repository.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

async fn report_failure(repository: &EcrRepository, ctx: &Context, error: &Error) {
    let key = ctx.object_key(repository);
    ctx.forget_synced(&key);
    if matches!(
        error,
        Error::InvalidSpec(_) | Error::AdoptionRequired(_) | Error::OwnedByOther(_)
    ) {
        // not (or no longer) a repository berth manages for this object
        ctx.stats.untrack(&key);
    }
    let message = error.to_string();
    let outcome = Outcome::Failed {
        reason: error.reason(),
        message: message.clone(),
    };
    if let Err(status_error) = write_status(repository, ctx, outcome).await {
        tracing::warn!(error = %status_error, "could not write the failure to status");
    }
    publish(
        ctx,
        repository,
        EventType::Warning,
        error.reason(),
        error.action(),
        &message,
    )
    .await;
}

/// Publishes an Event about `repository`; `action` is the AWS operation (or `Reconcile`), which
/// also keeps Events about different operations from folding into one series.
pub(super) async fn publish(
    ctx: &Context,
    repository: &EcrRepository,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    ctx.publish(&repository.object_ref(&()), type_, reason, action, note)
        .await;
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

//! The EcrRepository pipeline around the pure steps: validate → observe → plan → execute →
//! status, and cleanup. The only part of the reconciler, with `apply_access`, that does IO.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::access::{plan_repository_policy, plan_role};
use super::desired::{DesiredRepository, desired_repository};
use super::execute::Executor;
use super::observe;
use super::observe::Freshness;
use super::plan::{Plan, RepositoryChange, plan};
use super::scope::{KIND, Scope};
use super::settings::{Repositories, ValidationSettings};
use super::status::{Outcome, is_ready, needs_write, repository_status};
use crate::api::{DeletionPolicy, EcrRepository};
use crate::aws::AwsErrorKind;
use crate::error::{Error, Result};
use crate::images::stats::StatsTarget;
use crate::policy;
use crate::reconcile::ownership::{Ownership, owner_value, ownership};
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
    // Our own finalizer write triggers another reconcile (status writes do not): skip AWS when
    // this generation was already found in sync during the current resync.
    if scope.drift_only && runtime.is_memo_current(&id, repository.metadata.generation, epoch) {
        return Ok(Action::await_change());
    }

    // phase 1: the repository, its settings and tags. An object never reconciled plans from
    // the resync's listing of its region (no DescribeRepositories of its own): if its
    // repository was created since, creating it answers RepositoryAlreadyExists, and the plan
    // is made again from the repository described afresh.
    let freshness = if scope.drift_only {
        Freshness::Snapshot
    } else if repository.status.is_none() {
        Freshness::Listed
    } else {
        Freshness::Fresh
    };
    let observed = observe::repository(runtime, &desired, freshness).await?;
    let first_plan = plan(&desired, observed.as_ref(), repository.spec.adopt)?;
    runtime
        .set_finalizer(
            &api(repository, runtime),
            repository,
            FINALIZER,
            repository.spec.deletion_policy == DeletionPolicy::Delete,
        )
        .await?;
    // no later than a creation this reconcile makes (what berth then knows of the repository
    // is as old as that)
    let before_changes = tokio::time::Instant::now();
    let mut executor = Executor::new(&scope, &desired, observed.map(|o| o.repository));
    match execute_phase_one(&scope, &mut executor, &first_plan).await {
        Err(Error::Aws(error))
            if freshness == Freshness::Listed
                && error.kind == AwsErrorKind::Conflict
                && executor.executed.repository.is_none() =>
        {
            let observed = observe::repository(runtime, &desired, Freshness::Fresh).await?;
            let second_plan = match plan(&desired, observed.as_ref(), repository.spec.adopt) {
                Ok(second_plan) => second_plan,
                Err(refused) => {
                    // not this object's to manage (adoption required, owned by another): the
                    // finalizer this reconcile set for the creation goes again
                    if !repository.finalizers().iter().any(|f| f == FINALIZER) {
                        let objects = api(repository, runtime);
                        let current = objects.get(&repository.name_any()).await?;
                        runtime.set_finalizer(&objects, &current, FINALIZER, false).await?;
                    }
                    return Err(refused);
                }
            };
            executor = Executor::new(&scope, &desired, observed.map(|o| o.repository));
            execute_phase_one(&scope, &mut executor, &second_plan).await?;
        }
        result => result?,
    }
    let current = executor
        .executed
        .repository
        .clone()
        .expect("a repository exists after planning and applying");
    let created = executor.executed.created.then_some(before_changes);
    runtime.observer.record(&desired.region, current.clone(), created).await;

    // phase 2: the push role, whose inline policy names the repository's ARN
    if let Some(role_name) = &desired.access.role_name {
        let desired_role = observe::desired_role(&scope, &desired, role_name, &current.arn).await?;
        let observed_role = observe::role(&scope, role_name, !scope.drift_only).await?;
        let changes = plan_role(&desired_role, observed_role.as_ref(), &desired.owner)?;
        if let Some(observed_role) = &observed_role {
            executor.executed.role_arn = Some(observed_role.role.arn.clone());
            executor.executed.role_is_new = observe::is_propagating(observed_role);
        }
        executor.role = Some(desired_role);
        let changes: Vec<RepositoryChange> = changes.into_iter().map(RepositoryChange::Role).collect();
        executor.run(&changes).await?;
    }

    // phase 3: the repository policy, which names the push role's ARN. Without access berth
    // leaves the policy alone; after a spec change of an object it synced before, it removes
    // its own (a new object has nothing of berth's to remove).
    let synced_before = repository.status.as_ref().and_then(|s| s.observed_generation).is_some();
    if desired.access.manages_policy() || (!scope.drift_only && synced_before) {
        let desired_policy = policy::repository_policy(
            &kind.validation.partition,
            &desired.access.grants,
            executor.executed.role_arn.as_deref(),
            kind.validation.allow_public_access,
        )
        .map_err(|e| Error::InvalidSpec(e.0))?;
        let observed_policy = if executor.executed.created {
            None
        } else {
            observe::repository_policy(runtime, &desired).await?
        };
        if let Some(change) = plan_repository_policy(desired_policy.as_ref(), observed_policy.as_ref()) {
            executor.run(&[RepositoryChange::Policy(change)]).await?;
        }
    }

    // phase 4: a recorded push role that is no longer the declared one goes (no role declared,
    // or one under an older naming scheme), now that the policy no longer names it
    let recorded = repository.status.as_ref().and_then(|s| s.push_role_arn.as_deref());
    if let Some(name) = retired_role(recorded, desired.access.role_name.as_deref()) {
        executor.run(&[RepositoryChange::DeleteRole(name.to_owned())]).await?;
    }

    write_status(
        repository,
        runtime,
        Outcome::Synced {
            repository: &current,
            push_role_arn: executor.executed.role_arn.clone(),
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

/// The repository's changes, announced by an `Adopted` Event when the plan takes it over.
async fn execute_phase_one(scope: &Scope<'_>, executor: &mut Executor<'_>, plan: &Plan) -> Result<()> {
    if plan.adopting {
        let note = format!("took over existing repository {}", executor.desired.name);
        scope.event("Adopted", "TagResource", &note).await;
    }
    executor.run(&plan.changes).await
}

/// The recorded push role (`status.pushRoleArn`) when it is not the declared one: none is
/// declared any more, or the role was named under an older scheme. `DeleteRole` then removes it
/// only if its owner tag names this object.
pub fn retired_role<'a>(recorded_arn: Option<&'a str>, declared: Option<&str>) -> Option<&'a str> {
    let recorded = observe::role_name_of(recorded_arn?);
    (Some(recorded) != declared).then_some(recorded)
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

/// Deletion: with `Delete`, remove the repository if berth owns it, and its push role; then
/// release the object.
pub async fn cleanup(repository: &EcrRepository, kind: &Repositories, runtime: &Runtime) -> Result<Action> {
    if !repository.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if repository.spec.deletion_policy == DeletionPolicy::Delete {
        let recorded = recorded_repository(repository, &kind.validation);
        let scope = Scope {
            repository,
            kind,
            runtime,
            drift_only: false,
        };
        let observed = observe::repository(runtime, &recorded, Freshness::Fresh).await?;
        let mut changes = Vec::new();
        if observed.is_some_and(|observed| ownership(&observed.tags, &recorded.owner) == Ownership::Ours) {
            changes.push(RepositoryChange::DeleteRepository);
        }
        // the push role goes with the repository (only if it is this object's): the one status
        // recorded, and the one this object's name gives when the spec declares pushers (its
        // ARN may not have been recorded yet)
        let recorded_role = repository.status.as_ref().and_then(|s| s.push_role_arn.as_deref());
        let named_role = declares_pushers(repository).then(|| {
            crate::policy::push_role_name(&repository.namespace().unwrap_or_default(), &repository.name_any())
        });
        for role_name in named_role
            .as_deref()
            .into_iter()
            .chain(retired_role(recorded_role, named_role.as_deref()))
        {
            changes.push(RepositoryChange::DeleteRole(role_name.to_owned()));
        }
        Executor::new(&scope, &recorded, None).run(&changes).await?;
    }
    runtime
        .set_finalizer(&api(repository, runtime), repository, FINALIZER, false)
        .await?;
    Ok(Action::await_change())
}

/// What deletion works from: the repository that status recorded at creation and the object's
/// own identity (its owner tag value), never the current spec, which may have become invalid
/// or been edited since. Only a repository never recorded falls back to the spec's raw name and
/// region; the owner tag still decides whether it is deleted.
fn recorded_repository(repository: &EcrRepository, validation: &ValidationSettings) -> DesiredRepository {
    let namespace = repository.namespace().unwrap_or_default();
    let object_name = repository.name_any();
    let recorded = repository
        .status
        .as_ref()
        .and_then(|s| s.repository_arn.as_deref())
        .and_then(crate::naming::repository_arn_parts);
    let (region, name) = match recorded {
        Some((region, name)) => (region.to_owned(), name.to_owned()),
        None => (
            repository
                .spec
                .region
                .clone()
                .unwrap_or_else(|| validation.default_region.clone()),
            repository
                .spec
                .repository_name
                .clone()
                .unwrap_or_else(|| object_name.clone()),
        ),
    };
    DesiredRepository {
        name,
        region,
        owner: owner_value(&validation.cluster_id, &namespace, &object_name),
        ..DesiredRepository::default()
    }
}

/// Whether the spec declares GitHub Actions pushers (read without validating the spec).
fn declares_pushers(repository: &EcrRepository) -> bool {
    repository
        .spec
        .access
        .as_ref()
        .is_some_and(|access| access.push.iter().any(|grant| grant.github_actions.is_some()))
}

/// The EcrRepository API of the object's namespace.
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
    runtime.apply_status(repository, FIELD_MANAGER, &status).await
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
        progress: error.progress(),
    };
    if let Err(status_error) = write_status(repository, runtime, outcome).await {
        tracing::warn!(error = %status_error, "could not write the failure to status");
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::retired_role;

    const OLD: &str = "arn:aws:iam::123456789012:role/berth/payments-api-push";

    #[test]
    fn a_recorded_role_goes_when_undeclared_or_renamed() {
        // nothing recorded: nothing to remove
        assert_eq!(retired_role(None, Some("payments-api-1a2b3c4d-push")), None);
        assert_eq!(retired_role(None, None), None);
        // no role declared any more
        assert_eq!(retired_role(Some(OLD), None), Some("payments-api-push"));
        // the role under the old naming scheme, once the new one is declared
        assert_eq!(
            retired_role(Some(OLD), Some("payments-api-1a2b3c4d-push")),
            Some("payments-api-push")
        );
        // the declared role itself stays
        assert_eq!(retired_role(Some(OLD), Some("payments-api-push")), None);
    }
}

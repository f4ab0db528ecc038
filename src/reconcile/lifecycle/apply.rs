//! The LifecyclePolicy pipeline around the pure steps: validate → read the namespace's
//! repositories and policies → assign (`select`) → record the targets (`record`) → per governed
//! repository observe, plan and execute → preview from the image inventory → status. And
//! cleanup on deletion, from the record.

use std::collections::BTreeSet;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::{IMAGES_CONSUMER, Lifecycles};
use super::plan::{LifecycleChange, bounded_preview, has_errors, plan_policy, sorted_states};
use super::record::{Record, Target, full_message};
use super::select::{PolicyView, RepositoryView, assign, unhandled};
use crate::api::{
    EcrRepository, LifecycleMode, LifecyclePolicy, LifecyclePolicyStatus, LifecyclePreview, Progress,
    SelectedRepository, SelectionState, progress_conditions,
};
use crate::error::{Error, Result};
use crate::lifecycle;
use crate::reconcile::harness::{self, Change};
use crate::reconcile::runtime::{ObjectId, Runtime};

pub const KIND: &str = "LifecyclePolicy";
/// Present while the policy's rules are in force on some repository.
pub const FINALIZER: &str = "ecr.berth.dev/lifecycle-cleanup";
/// The LifecyclePolicy's own status fields.
pub const FIELD_MANAGER: &str = "berth";
/// The EcrRepository's `status.lifecyclePolicy`.
pub const REPOSITORY_FIELD_MANAGER: &str = "berth-lifecycle";
/// Governed repositories one reconcile works on at once (each a few AWS and apiserver calls;
/// the AWS rate budget paces them all).
const REPOSITORIES_AT_ONCE: usize = 8;

/// The validated rules and their rendering, or `InvalidSpec` naming the field.
fn desired_text(policy: &LifecyclePolicy) -> Result<(Vec<lifecycle::Rule>, String)> {
    let rules = lifecycle::rules(&policy.spec).map_err(|e| Error::InvalidSpec(e.0))?;
    let text = lifecycle::render(&rules).map_err(|e| Error::InvalidSpec(e.0))?;
    Ok((rules, text))
}

/// The EcrRepositories of the policy's namespace that can matter to it (those it selects, those
/// that name it as their governor, those its record holds: no other enters `assign` or
/// `unhandled` for this policy), and the namespace's valid LifecyclePolicies that are not being
/// deleted (an invalid or deleting policy selects nothing, so it cannot win a repository). Both
/// from the Controllers' stores. A view of every repository of the namespace per reconcile was
/// the largest transient allocation at scale.
async fn read_namespace(
    runtime: &Runtime,
    kind: &Lifecycles,
    policy: &LifecyclePolicy,
) -> (Vec<RepositoryView>, Vec<PolicyView>) {
    let namespace = policy.namespace().unwrap_or_default();
    let me = PolicyView::of(policy);
    let recorded: std::collections::HashSet<&str> = policy
        .status
        .iter()
        .flat_map(|status| &status.enforced)
        .flat_map(|group| group.names.iter().map(String::as_str))
        .collect();
    let relevant = |repository: &EcrRepository| {
        let status = repository.status.as_ref();
        me.selects_object(repository)
            || status.and_then(|s| s.lifecycle_policy.as_deref()) == Some(me.name.as_str())
            || status
                .and_then(|s| s.repository_arn.as_deref())
                .and_then(crate::naming::repository_arn_parts)
                .is_some_and(|(_, name)| recorded.contains(name))
    };
    let repositories = runtime.repositories.live(Some(&namespace)).await;
    let policies = kind.policies.live(Some(&namespace)).await;
    let repositories = repositories
        .iter()
        .filter(|r| relevant(r))
        .map(|r| RepositoryView::of(r))
        .collect();
    let policies = policies
        .iter()
        .filter(|p| lifecycle::rules(&p.spec).is_ok())
        .map(|p| PolicyView::of(p))
        .collect();
    (repositories, policies)
}

pub async fn apply(policy: &LifecyclePolicy, kind: &Lifecycles, runtime: &Runtime) -> Result<Action> {
    let (rules, text) = desired_text(policy)?;
    let id = ObjectId::of(KIND, policy);
    let (repositories, policies) = read_namespace(runtime, kind, policy).await;
    let me = PolicyView::of(policy);
    let assignment = assign(&me, &policies, &repositories);
    let enforce = policy.spec.mode == LifecycleMode::Enforce;
    // a new generation is a spec edit: changes are asked for, not drift, and images are re-read
    let spec_changed = policy.status.as_ref().and_then(|s| s.observed_generation) != policy.metadata.generation;
    let epoch = runtime.epoch();

    if enforce && !assignment.governed.is_empty() {
        runtime
            .set_finalizer(&api(policy, runtime), policy, FINALIZER, true)
            .await?;
    }

    // Write-ahead: a repository is in the record before berth puts rules on it, so that a
    // crash or a deletion between the two leaves nothing that cleanup does not know of.
    let recorded = recorded(policy);
    let mut record = recorded.clone();
    let mut unrecorded = BTreeSet::new();
    if enforce {
        for repository in &assignment.governed {
            match &repository.target {
                Some(target) if record.has_room_for(target) => record.insert(target.clone()),
                Some(_) => {
                    unrecorded.insert(repository.name.as_str());
                }
                None => {}
            }
        }
    }
    let mut written = policy.status.clone();
    if record != recorded {
        let mut status = policy.status.clone().unwrap_or_default();
        status.enforced = record.to_status();
        write_status(policy, runtime, written.as_ref(), &status).await?;
        written = Some(status);
    }

    let mut states = Vec::new();
    let mut previews = Vec::new();
    let mut first_error: Option<Error> = None;
    let mut retained = BTreeSet::new();
    // the recorded targets whose fate this pass decides; the rest are looked at below
    let mut handled = BTreeSet::new();
    let mut work = Vec::new();
    for repository in &assignment.governed {
        let Some(target) = &repository.target else {
            states.push(SelectedRepository {
                name: repository.name.clone(),
                state: SelectionState::Error,
                message: Some("the repository is not created yet (its status.repositoryArn is empty)".into()),
            });
            continue;
        };
        if unrecorded.contains(repository.name.as_str()) {
            states.push(SelectedRepository {
                name: repository.name.clone(),
                state: SelectionState::Error,
                message: Some(full_message()),
            });
            first_error.get_or_insert_with(|| Error::InvalidSpec(full_message()));
            continue;
        }
        retained.insert(target.repository());
        let governed_by_me = repository.governed_by.as_deref() == Some(me.name.as_str());
        if enforce || governed_by_me {
            handled.insert(target.clone());
        }
        work.push((repository, target, governed_by_me));
    }
    // Each repository's AWS work, several at once: one policy may govern thousands, and one
    // after another its rules reached the last of 2,500 repositories minutes after the first.
    // Each future is made when a slot frees up: made all at once, 2,500 of them held 25 MiB at
    // 10,000 repositories. (A loop rather than `buffered` over a mapping closure, whose
    // lifetimes the compiler cannot prove Send.)
    let mut work = work.into_iter();
    let mut running = futures::stream::FuturesOrdered::new();
    loop {
        while running.len() < REPOSITORIES_AT_ONCE {
            let Some((repository, target, governed_by_me)) = work.next() else {
                break;
            };
            let (text, rules) = (text.as_str(), rules.as_slice());
            running.push_back(async move {
                let outcome = if enforce {
                    let drift = governed_by_me && !spec_changed;
                    enforce_on(policy, kind, runtime, repository, target, text, drift, epoch).await
                } else if governed_by_me {
                    // Preview means the rules are not in force: take back what Enforce put there.
                    remove_from(policy, kind, runtime, repository, target).await
                } else {
                    Ok(())
                };
                let preview = preview_of(runtime, kind, rules, repository, target, spec_changed).await;
                (repository, target, governed_by_me, outcome, preview)
            });
        }
        // each result is taken in as it comes: collected first, 2,500 of them held 4.5 MiB
        let Some((repository, target, governed_by_me, outcome, preview)) = running.next().await else {
            break;
        };
        if !enforce && governed_by_me && outcome.is_ok() {
            record.remove(target);
        }
        let mut state = SelectedRepository {
            name: repository.name.clone(),
            state: if enforce {
                SelectionState::Applied
            } else {
                SelectionState::Previewed
            },
            message: None,
        };
        if let Err(error) = outcome {
            state.state = SelectionState::Error;
            state.message = Some(error.to_string());
            first_error.get_or_insert(error);
        }
        match preview {
            Ok(preview) => previews.push(preview),
            Err(error) if state.message.is_none() => state.message = Some(format!("no preview: {error}")),
            Err(_) => {}
        }
        states.push(state);
    }
    for (repository, winner) in &assignment.conflicts {
        states.push(SelectedRepository {
            name: repository.name.clone(),
            state: SelectionState::Conflict,
            message: Some(format!(
                "also selected by the older LifecyclePolicy {winner}, which governs it"
            )),
        });
    }
    for released in &assignment.released {
        let Some(target) = &released.repository.target else {
            continue;
        };
        handled.insert(target.clone());
        // another policy took it over and writes its own rules: nothing to remove
        if released.taken_over {
            record.remove(target);
            continue;
        }
        match remove_from(policy, kind, runtime, released.repository, target).await {
            Ok(()) => record.remove(target),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    // e.g. an EcrRepository deleted with deletionPolicy Retain: its ECR repository keeps
    // this policy's rules until they are taken off here
    let rest = unhandled(record.iter(), &handled, &me.name, &policies, &repositories);
    if let Some(error) = release_unhandled(policy, kind, runtime, &mut record, rest, Some(&text)).await {
        first_error.get_or_insert(error);
    }
    kind.retain(runtime, &id.key, retained);

    let states = sorted_states(states);
    let (preview, totals) = bounded_preview(previews);
    runtime.metrics.set_lifecycle_expiring(&id.key, totals.expire);
    let (status, reason, message) = if let Some(error) = &first_error {
        (error.progress(), error.reason(), summary_of_errors(&states, error))
    } else if has_errors(&states) {
        (
            Progress::Retrying,
            "RepositoryNotReady",
            "some selected repositories are not created yet".to_owned(),
        )
    } else {
        (
            Progress::Ready,
            if enforce { "Applied" } else { "Previewed" },
            summary(&states, enforce),
        )
    };
    let new_status = LifecyclePolicyStatus {
        observed_generation: policy.metadata.generation,
        selected: Some((assignment.governed.len() + assignment.conflicts.len()) as i64),
        conditions: progress_conditions(
            policy
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
            status,
            reason,
            &message,
            policy.metadata.generation,
            now(),
        ),
        repositories: states,
        preview,
        preview_totals: Some(totals),
        enforced: record.to_status(),
    };
    runtime
        .metrics
        .set_ready(KIND, id.key.clone(), status == Progress::Ready);
    write_status(policy, runtime, written.as_ref(), &new_status).await?;
    // the finalizer stays while the rules are (or were, until this pass) in force somewhere
    let in_force = enforce && !assignment.governed.is_empty();
    if !in_force && !policy_governs_anything(&repositories, &me.name) && record.is_empty() {
        runtime
            .set_finalizer(&api(policy, runtime), policy, FINALIZER, false)
            .await?;
    }

    if let Some(error) = first_error {
        // per-repository failures are in status already; back off like any other failure
        let reference = policy.object_ref(&());
        runtime
            .publish(
                &reference,
                EventType::Warning,
                error.reason(),
                error.action(),
                &error.to_string(),
            )
            .await;
        return Ok(Action::requeue(runtime.retry_after(id, &error)));
    }
    runtime.remember_synced(id, policy.metadata.generation, epoch);
    Ok(Action::await_change())
}

fn policy_governs_anything(repositories: &[RepositoryView], policy: &str) -> bool {
    repositories.iter().any(|r| r.governed_by.as_deref() == Some(policy))
}

fn summary(states: &[SelectedRepository], enforce: bool) -> String {
    let conflicts = states.iter().filter(|s| s.state == SelectionState::Conflict).count();
    let governed = states.len() - conflicts;
    let verb = if enforce { "applied to" } else { "previewed on" };
    match conflicts {
        0 => format!("rules {verb} {governed} repositories"),
        n => format!("rules {verb} {governed} repositories; {n} selected repositories are governed by an older policy"),
    }
}

fn summary_of_errors(states: &[SelectedRepository], error: &Error) -> String {
    let failed = states
        .iter()
        .filter(|s| s.state == SelectionState::Error)
        .count()
        .max(1);
    format!(
        "{failed} of {} repositories failed; first: {error}",
        states.len().max(1)
    )
}

/// Brings one governed repository's lifecycle policy to `text` and records the governor in
/// its status. A repository confirmed in sync during this resync is not read again.
#[allow(clippy::too_many_arguments)]
async fn enforce_on(
    policy: &LifecyclePolicy,
    kind: &Lifecycles,
    runtime: &Runtime,
    repository: &RepositoryView,
    target: &Target,
    text: &str,
    drift: bool,
    epoch: u64,
) -> Result<()> {
    let name = policy.name_any();
    let target = &target.repository();
    if !kind.is_confirmed(target, text, epoch) {
        // a repository berth created this resync has no lifecycle policy but the one berth puts
        let created = runtime.observer.created_this_resync(&target.region, &target.name).await;
        let observed = if created.is_some() {
            None
        } else {
            runtime
                .registry
                .get_lifecycle_policy(&target.region, &target.name)
                .await?
        };
        if let Some(change) = plan_policy(Some(text), observed.as_deref()) {
            runtime
                .registry
                .put_lifecycle_policy(&target.region, &target.name, text)
                .await?;
            // the rules changed: the preview reads the images afresh
            runtime.images.invalidate(target);
            let note = format!("lifecycle policy of {} set from LifecyclePolicy {name}", target.name);
            report_on_repository(runtime, policy, &repository.name, &change, drift, &note).await;
        }
        kind.confirm(target, text, epoch);
    }
    if repository.governed_by.as_deref() != Some(name.as_str()) {
        record_governor(runtime, policy, &repository.name, Some(&name)).await?;
    }
    Ok(())
}

/// Removes the lifecycle policy berth put on a repository and clears its record.
async fn remove_from(
    policy: &LifecyclePolicy,
    kind: &Lifecycles,
    runtime: &Runtime,
    repository: &RepositoryView,
    target: &Target,
) -> Result<()> {
    let target = &target.repository();
    let observed = runtime
        .registry
        .get_lifecycle_policy(&target.region, &target.name)
        .await?;
    if let Some(change) = plan_policy(None, observed.as_deref()) {
        runtime
            .registry
            .delete_lifecycle_policy(&target.region, &target.name)
            .await?;
        let note = format!(
            "lifecycle policy of {} removed: LifecyclePolicy {} no longer governs it",
            target.name,
            policy.name_any()
        );
        report_on_repository(runtime, policy, &repository.name, &change, false, &note).await;
    }
    kind.unconfirm(target);
    record_governor(runtime, policy, &repository.name, None).await
}

/// The preview of one repository from the image inventory (read afresh after a spec change).
async fn preview_of(
    runtime: &Runtime,
    kind: &Lifecycles,
    rules: &[lifecycle::Rule],
    repository: &RepositoryView,
    target: &Target,
    fresh: bool,
) -> Result<LifecyclePreview> {
    let target = &target.repository();
    runtime.images.retain(IMAGES_CONSUMER, target);
    // a repository berth created held no image then: as good as a read of that age, which
    // the preview accepts when it is younger than the images' max age
    let created = if fresh {
        None
    } else {
        runtime.observer.created_this_resync(&target.region, &target.name).await
    };
    let known_empty = created
        .filter(|at| at.elapsed() < kind.images_max_age)
        .and_then(|at| runtime.images.keep_empty(target, at));
    let images = match known_empty {
        Some(images) => images,
        None if fresh => runtime.images.read(target).await?,
        None => runtime.images.images(target, kind.images_max_age).await?,
    };
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let verdicts = lifecycle::evaluate(rules, &images, now);
    Ok(lifecycle::preview(&images, &verdicts).to_status(&repository.name))
}

/// A Normal Event on the EcrRepository whose lifecycle policy changed.
async fn report_on_repository(
    runtime: &Runtime,
    policy: &LifecyclePolicy,
    repository: &str,
    change: &LifecycleChange,
    drift: bool,
    note: &str,
) {
    let mut reference = policy.object_ref(&());
    reference.kind = Some("EcrRepository".into());
    reference.name = Some(repository.to_owned());
    reference.uid = None;
    reference.resource_version = None;
    reference.field_path = None;
    harness::report(runtime, KIND, &reference, change, drift, note).await;
    tracing::info!(repository, operation = change.operation(), "lifecycle policy changed");
}

/// Sets (or clears) `status.lifecyclePolicy` of an EcrRepository under `berth-lifecycle`.
/// Server-side apply removes the field when this manager applies a status without it.
async fn record_governor(
    runtime: &Runtime,
    policy: &LifecyclePolicy,
    repository: &str,
    governor: Option<&str>,
) -> Result<()> {
    let status = match governor {
        Some(name) => json!({"lifecyclePolicy": name}),
        None => json!({}),
    };
    let namespace = policy.namespace();
    match crate::writes::apply_status::<EcrRepository>(
        &runtime.client,
        namespace.as_deref(),
        repository,
        REPOSITORY_FIELD_MANAGER,
        &status,
    )
    .await
    {
        Ok(_) => Ok(()),
        // the repository object is gone: there is nothing to record on
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Deletion: remove the rules from every repository this policy governed (unless another
/// policy takes it over): those whose EcrRepository still names it as before, then every other
/// repository of the record where the rules in ECR are still this policy's. Then release the
/// object.
pub async fn cleanup(policy: &LifecyclePolicy, kind: &Lifecycles, runtime: &Runtime) -> Result<Action> {
    if !policy.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let (repositories, policies) = read_namespace(runtime, kind, policy).await;
    let me = PolicyView::of(policy);
    let assignment = assign(&me, &policies, &repositories);
    let recorded = recorded(policy);
    let mut record = recorded.clone();
    let mut handled = BTreeSet::new();
    let mut first_error = None;
    for released in &assignment.released {
        let outcome = match (&released.repository.target, released.taken_over) {
            (Some(target), false) => remove_from(policy, kind, runtime, released.repository, target).await,
            // the next policy takes over: clearing the record is what tells it to
            _ => record_governor(runtime, policy, &released.repository.name, None).await,
        };
        if let Some(target) = &released.repository.target {
            handled.insert(target.clone());
            if outcome.is_ok() {
                record.remove(target);
            }
        }
        if let Err(error) = outcome {
            first_error.get_or_insert(error);
        }
    }
    // an invalid spec renders nothing to compare with: its rules cannot be told from others'
    let text = desired_text(policy).ok().map(|(_, text)| text);
    let rest = unhandled(record.iter(), &handled, &me.name, &policies, &repositories);
    if let Some(error) = release_unhandled(policy, kind, runtime, &mut record, rest, text.as_deref()).await {
        first_error.get_or_insert(error);
    }
    if let Some(error) = first_error {
        // keep what was done: the retry starts from the smaller record
        if record != recorded {
            let mut status = policy.status.clone().unwrap_or_default();
            status.enforced = record.to_status();
            write_status(policy, runtime, policy.status.as_ref(), &status).await?;
        }
        return Err(error);
    }
    runtime
        .set_finalizer(&api(policy, runtime), policy, FINALIZER, false)
        .await?;
    Ok(Action::await_change())
}

/// The repositories the policy's status records.
fn recorded(policy: &LifecyclePolicy) -> Record {
    Record::from_status(
        policy
            .status
            .as_ref()
            .map(|s| s.enforced.as_slice())
            .unwrap_or_default(),
    )
}

/// Forgets the repositories another policy took over, and takes this policy's rules off the
/// orphaned ones; each leaves the record once done. Returns the first failure.
async fn release_unhandled(
    policy: &LifecyclePolicy,
    kind: &Lifecycles,
    runtime: &Runtime,
    record: &mut Record,
    rest: super::select::Unhandled,
    text: Option<&str>,
) -> Option<Error> {
    for target in &rest.taken_over {
        record.remove(target);
    }
    let mut first_error = None;
    for target in &rest.orphaned {
        match remove_if_ours(policy, kind, runtime, target, text).await {
            Ok(()) => record.remove(target),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error
}

/// Deletes the lifecycle policy of a recorded repository only if it is still `text` (this
/// policy's rendering) in the recorded registry: someone else's policy, or a repository that
/// is gone, is left alone. Without a text nothing is deleted.
async fn remove_if_ours(
    policy: &LifecyclePolicy,
    kind: &Lifecycles,
    runtime: &Runtime,
    target: &Target,
    text: Option<&str>,
) -> Result<()> {
    let Some(text) = text else {
        tracing::warn!(
            repository = target.name,
            region = target.region,
            "the spec does not render: lifecycle policy left alone"
        );
        return Ok(());
    };
    let repository = target.repository();
    kind.unconfirm(&repository);
    match runtime.observer.observe(&target.region, &target.name).await? {
        None => return Ok(()),
        // berth's credentials reach another registry now: not the repository that was recorded
        Some(observed) if !observed.registry_id.is_empty() && observed.registry_id != target.registry_id => {
            tracing::info!(
                repository = target.name,
                registry = observed.registry_id,
                recorded = target.registry_id,
                "another registry: lifecycle policy left alone"
            );
            return Ok(());
        }
        Some(_) => {}
    }
    let observed = runtime
        .registry
        .get_lifecycle_policy(&target.region, &target.name)
        .await?;
    match observed {
        Some(observed) if lifecycle::equivalent(text, &observed) => {
            let change = LifecycleChange::Delete;
            runtime
                .registry
                .delete_lifecycle_policy(&target.region, &target.name)
                .await?;
            let note = format!(
                "lifecycle policy of {} ({}) removed: LifecyclePolicy {} no longer governs it",
                target.name,
                target.region,
                policy.name_any()
            );
            harness::report(runtime, KIND, &policy.object_ref(&()), &change, false, &note).await;
        }
        Some(_) => {
            tracing::info!(
                repository = target.name,
                "the lifecycle policy is not this policy's any longer: left alone"
            );
        }
        None => {}
    }
    Ok(())
}

fn api(policy: &LifecyclePolicy, runtime: &Runtime) -> Api<LifecyclePolicy> {
    Api::namespaced(runtime.client.clone(), &policy.namespace().unwrap_or_default())
}

/// Applies `status` unless `current` (what the object holds now) is the same.
async fn write_status(
    policy: &LifecyclePolicy,
    runtime: &Runtime,
    current: Option<&LifecyclePolicyStatus>,
    status: &LifecyclePolicyStatus,
) -> Result<()> {
    if current == Some(status) {
        return Ok(());
    }
    runtime.apply_status(policy, FIELD_MANAGER, status).await
}

/// A whole-object failure: Ready=False with the error, the rest of the status kept.
pub async fn write_failure(policy: &LifecyclePolicy, runtime: &Runtime, error: &Error) {
    // read afresh: the failed pass may have written a larger record than `policy` shows, and
    // this write must not shrink it
    let current = match api(policy, runtime).get_status(&policy.name_any()).await {
        Ok(fresh) => fresh.status,
        Err(_) => policy.status.clone(),
    };
    let mut status = current.clone().unwrap_or_default();
    status.conditions = progress_conditions(
        &status.conditions,
        error.progress(),
        error.reason(),
        &error.to_string(),
        policy.metadata.generation,
        now(),
    );
    status.observed_generation = policy.metadata.generation;
    runtime.metrics.set_ready(KIND, ObjectId::of(KIND, policy).key, false);
    if let Err(status_error) = write_status(policy, runtime, current.as_ref(), &status).await {
        tracing::warn!(error = %status_error, "could not write the failure to status");
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

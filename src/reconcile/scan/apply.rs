//! The ScanPolicy pipeline: validate → find the region's governing policy (the oldest) →
//! record what was there → write the configuration when it differs → read which configuration
//! applies to each managed repository → status with the findings summary. And on deletion,
//! restore what was recorded.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::context::{AppliedScanning, IMAGES_CONSUMER, ReadMarker, RegionRules, ScanRecord, ScanTarget, Scans};
use super::findings;
use super::mapping::{config_of, frequency_name, recorded, registry_scanning, restored};
use crate::api::{
    EcrRepository, Progress, RecordedScanning, ScanPolicy, ScanPolicyStatus, ScanningStatus, progress_conditions,
};
use crate::aws::RegistryScanFrequency;
use crate::error::{Error, Result};
use crate::images::RepositoryRef;
use crate::reconcile::harness::{self, Change};
use crate::reconcile::runtime::{ObjectId, Runtime};
use crate::scan::{self, DesiredScanning, RepositoryFindings};
use crate::telemetry::ObjectKey;

/// One write of the registry scanning configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanChange {
    /// PutRegistryScanningConfiguration with the policy's rules.
    Apply,
    /// PutRegistryScanningConfiguration with the configuration found before berth's first write.
    Restore,
}

impl Change for ScanChange {
    fn operation(&self) -> &'static str {
        "PutRegistryScanningConfiguration"
    }

    fn reason(&self) -> &'static str {
        match self {
            ScanChange::Apply => "PolicyApplied",
            ScanChange::Restore => "Restored",
        }
    }

    fn field(&self) -> &'static str {
        "registryScanningConfiguration"
    }

    fn corrects_drift(&self) -> bool {
        *self == ScanChange::Apply
    }
}

pub const KIND: &str = "ScanPolicy";
/// Present while berth has written the registry configuration and must restore it.
pub const FINALIZER: &str = "ecr.berth.dev/scan-restore";
const FIELD_MANAGER: &str = "berth";

fn desired(policy: &ScanPolicy, scans: &Scans) -> Result<DesiredScanning> {
    let desired = scan::desired_scanning(&policy.spec, &scans.default_region).map_err(|e| Error::InvalidSpec(e.0))?;
    if let Some(rules) = &desired.findings
        && rules.refresh_interval < scans.min_refresh
    {
        return Err(Error::InvalidSpec(format!(
            "spec.findings.refreshInterval: {}s is shorter than the minimum of {}s (--min-findings-refresh)",
            rules.refresh_interval.as_secs(),
            scans.min_refresh.as_secs()
        )));
    }
    Ok(desired)
}

/// Who governs `region`: the oldest valid, not-deleting policy (creation time, then name), or
/// `Handover` while a policy that governed it is still putting back what it recorded (the next
/// one must record what is there after that).
enum Governor {
    /// The governing policy's name, if any policy governs the region.
    Policy(Option<String>),
    Handover,
}

async fn winner(runtime: &Runtime, scans: &Scans, region: &str) -> Result<Governor> {
    let policies = Api::<ScanPolicy>::all(runtime.client.clone())
        .list(&ListParams::default())
        .await?;
    let restoring = policies.items.iter().any(|p| {
        p.metadata.deletion_timestamp.is_some()
            && p.finalizers().iter().any(|f| f == FINALIZER)
            && p.status.as_ref().and_then(|s| s.region.as_deref()) == Some(region)
    });
    if restoring {
        return Ok(Governor::Handover);
    }
    Ok(Governor::Policy(
        policies
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| desired(p, scans).is_ok_and(|d| d.region == region))
            .min_by_key(|p| {
                (
                    p.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()),
                    p.name_any(),
                )
            })
            .map(|p| p.name_any()),
    ))
}

fn api(runtime: &Runtime) -> Api<ScanPolicy> {
    Api::all(runtime.client.clone())
}

pub async fn apply(policy: &ScanPolicy, scans: &Scans, runtime: &Runtime) -> Result<Action> {
    let desired = desired(policy, scans)?;
    let name = policy.name_any();
    let winner = match winner(runtime, scans, &desired.region).await? {
        Governor::Policy(winner) => winner,
        // the leaving policy triggers every policy when it is done
        Governor::Handover => return Ok(Action::requeue(std::time::Duration::from_secs(2))),
    };
    if let Some(winner) = winner.filter(|w| *w != name) {
        let message = format!(
            "the older ScanPolicy {} governs the scanning configuration of {}; this one is not applied",
            winner, desired.region
        );
        // another policy governs: nothing to do until one of them changes
        let status = status_with(policy, Progress::Stalled, "Conflict", &message);
        write_status(policy, runtime, &status).await?;
        runtime.metrics.set_ready(KIND, ObjectId::of(KIND, policy).key, false);
        return Ok(Action::await_change());
    }

    // the finalizer first: a status write would make this object's resourceVersion stale
    runtime.set_finalizer(&api(runtime), policy, FINALIZER, true).await?;
    let mut previous = policy.status.as_ref().and_then(|s| s.previous.clone());
    // Found in sync during this resync: a reconcile for a new summary (findings changed) does
    // not read the registry configuration again.
    let id = ObjectId::of(KIND, policy);
    let epoch = runtime.epoch();
    if previous.is_none() || !runtime.is_memo_current(&id, policy.metadata.generation, epoch) {
        previous = Some(apply_configuration(policy, runtime, &desired, previous).await?);
    }

    let (covered, covered_changed) = read_repository_scanning(policy, scans, runtime, &desired).await?;
    match &desired.findings {
        Some(rules) => {
            let rules = RegionRules {
                policy: name.clone(),
                thresholds: rules.thresholds,
                refresh_interval: rules.refresh_interval,
            };
            let before = scans
                .rules
                .lock()
                .expect("rules lock")
                .insert(desired.region.clone(), rules.clone());
            // a walk over every covered repository: only when they or the rules changed
            if covered_changed || before.as_ref() != Some(&rules) {
                track(scans, runtime, &desired.region, &name, &covered);
            }
        }
        None => scans.stop_region(runtime, &desired.region),
    }

    let (summary, non_compliant) = summarize(scans, &covered, desired.findings.as_ref());
    let mut status = status_with(
        policy,
        Progress::Ready,
        "Applied",
        &format!("registry scanning configuration of {} is in sync", desired.region),
    );
    status.previous = previous;
    status.region = Some(desired.region.clone());
    status.summary = summary;
    status.non_compliant = non_compliant;
    runtime.metrics.set_ready(KIND, ObjectId::of(KIND, policy).key, true);
    write_status(policy, runtime, &status).await?;
    runtime.remember_synced(id, policy.metadata.generation, epoch);
    Ok(Action::await_change())
}

/// Records the registry configuration found (before berth's first write, so that deleting the
/// policy restores it) and writes the policy's configuration when it differs; returns the record.
async fn apply_configuration(
    policy: &ScanPolicy,
    runtime: &Runtime,
    desired: &DesiredScanning,
    previous: Option<RecordedScanning>,
) -> Result<RecordedScanning> {
    let observed = runtime.registry.get_registry_scanning(&desired.region).await?;
    let previous = match previous {
        Some(previous) => previous,
        None => {
            let found = recorded(&observed);
            let mut status = policy.status.clone().unwrap_or_default();
            status.previous = Some(found.clone());
            status.region = Some(desired.region.clone());
            write_status(policy, runtime, &status).await?;
            found
        }
    };
    if config_of(&observed) != desired.config {
        runtime
            .registry
            .put_registry_scanning(&desired.region, &registry_scanning(&desired.config))
            .await?;
        let was_synced = policy
            .status
            .as_ref()
            .is_some_and(|s| s.observed_generation == policy.metadata.generation)
            && policy
                .status
                .as_ref()
                .and_then(|s| s.conditions.first())
                .is_some_and(|c| c.status == "True");
        let note = format!(
            "registry scanning configuration of {} set from ScanPolicy {}",
            desired.region,
            policy.name_any()
        );
        harness::report(
            runtime,
            KIND,
            &policy.object_ref(&()),
            &ScanChange::Apply,
            was_synced,
            &note,
        )
        .await;
    }
    Ok(previous)
}

/// The summary over the covered repositories, from what `berth-scan` last wrote on each.
fn summarize(
    scans: &Scans,
    covered: &[(ObjectKey, String)],
    rules: Option<&scan::FindingsRules>,
) -> (Option<crate::api::ScanSummary>, Vec<crate::api::NonCompliantRepository>) {
    let Some(rules) = rules else {
        return (None, Vec::new());
    };
    // borrowed from the records, under their lock: a copy of each record per summary took
    // megabytes at 10,000 repositories. Nothing else is locked or awaited while it is held.
    let records = scans.records.lock().expect("records lock");
    let entries: Vec<RepositoryFindings> = covered
        .iter()
        .map(|(key, repository)| {
            let findings = records.get(key).and_then(|record| record.findings.as_deref());
            RepositoryFindings::from_status(&key.0, &key.1, repository, findings)
        })
        .collect();
    let (summary, listed) = scan::summarize(&entries, &rules.thresholds);
    (Some(summary), listed)
}

/// Which configuration applies to each managed repository of the region (one call per 25
/// names), written to its `status.scanning`. Each repository is read once per resync, after a
/// spec change or a change of governing policy, and when it becomes managed (the repository
/// watch triggers the policy then). Returns the repositories the rules cover, and whether they
/// changed since the last reconcile.
async fn read_repository_scanning(
    policy: &ScanPolicy,
    scans: &Scans,
    runtime: &Runtime,
    desired: &DesiredScanning,
) -> Result<(Arc<Vec<(ObjectKey, String)>>, bool)> {
    let repositories = managed_repositories(runtime, &desired.region).await;
    let marker: ReadMarker = (runtime.epoch(), policy.metadata.uid.clone(), policy.metadata.generation);
    let unread: Vec<String> = {
        let mut reads = scans.scanning_read.lock().expect("read lock");
        let read = reads.entry(desired.region.clone()).or_default();
        if read.marker.as_ref() != Some(&marker) {
            read.marker = Some(marker.clone());
            read.applied.clear();
        }
        repositories
            .iter()
            .filter(|(_, name, _)| !read.applied.contains_key(name))
            .map(|(_, name, _)| name.clone())
            .collect()
    };
    if !unread.is_empty() {
        let answered = runtime.registry.repository_scanning(&desired.region, &unread).await?;
        let mut by_name: HashMap<String, AppliedScanning> = answered
            .into_iter()
            .map(|found| {
                let applied = AppliedScanning {
                    covered: found.frequency != RegistryScanFrequency::Manual,
                    scanning: Some(Box::new(ScanningStatus {
                        frequency: frequency_name(found.frequency).to_owned(),
                        applied_filter: found.applied_filter,
                    })),
                };
                (found.repository, applied)
            })
            .collect();
        let mut reads = scans.scanning_read.lock().expect("read lock");
        let read = reads.entry(desired.region.clone()).or_default();
        if read.marker.as_ref() == Some(&marker) {
            for name in unread {
                let applied = by_name.remove(&name).unwrap_or(AppliedScanning {
                    scanning: None,
                    covered: false,
                });
                read.applied.insert(name, applied);
            }
        }
    }
    // what each object's status should hold, against what berth-scan last wrote on it
    let mut covered = Vec::new();
    let mut unwritten = Vec::new();
    {
        let reads = scans.scanning_read.lock().expect("read lock");
        let Some(read) = reads.get(&desired.region) else {
            return Ok((Arc::default(), false));
        };
        for (key, name, object) in &repositories {
            let Some(applied) = read.applied.get(name) else {
                continue;
            };
            if applied.covered {
                covered.push((key.clone(), name.clone()));
            }
            scans.seed(key, object);
            if !scans.holds_scanning(key, applied.scanning.as_deref()) {
                unwritten.push((key.clone(), applied.scanning.clone()));
            }
        }
    }
    for (key, scanning) in unwritten {
        let mut current = scans.record(&key);
        current.scanning = scanning;
        findings::write_record(runtime, &key, &current).await?;
        scans.records.lock().expect("records lock").insert(key, current);
    }
    let mut reads = scans.scanning_read.lock().expect("read lock");
    let read = reads.entry(desired.region.clone()).or_default();
    if *read.covered == covered {
        return Ok((read.covered.clone(), false));
    }
    read.covered = Arc::new(covered);
    Ok((read.covered.clone(), true))
}

/// Every EcrRepository berth manages in `region`: (object key, ECR name, the object as the
/// store holds it).
async fn managed_repositories(runtime: &Runtime, region: &str) -> Vec<(ObjectKey, String, Arc<EcrRepository>)> {
    let mut managed = Vec::new();
    for repository in runtime.repositories.live(None).await {
        let Some((repository_region, name)) = repository
            .status
            .as_ref()
            .and_then(|s| s.repository_arn.as_deref())
            .and_then(crate::naming::repository_arn_parts)
        else {
            continue;
        };
        if repository_region == region {
            let key = (repository.namespace().unwrap_or_default(), repository.name_any());
            managed.push((key, name.to_owned(), repository.clone()));
        }
    }
    managed.sort_by(|a, b| a.0.cmp(&b.0));
    managed
}

/// The covered repositories become the findings refresher's targets; the others of the region
/// stop being read.
fn track(scans: &Scans, runtime: &Runtime, region: &str, policy: &str, covered: &[(ObjectKey, String)]) {
    let wanted: std::collections::BTreeMap<&ObjectKey, &String> = covered.iter().map(|(k, n)| (k, n)).collect();
    scans
        .targets
        .retain(|key, target| target.region != region || wanted.contains_key(key));
    for (key, repository) in covered {
        runtime.images.retain(
            IMAGES_CONSUMER,
            &RepositoryRef::new(region.to_owned(), repository.clone()),
        );
        scans.targets.track(
            key.clone(),
            ScanTarget {
                region: region.to_owned(),
                repository: repository.clone(),
                policy: policy.to_owned(),
            },
        );
    }
}

/// Deletion of the governing policy: put back what was recorded, clear what `berth-scan`
/// wrote on the repositories, and let the next-oldest policy of the region take over.
pub async fn cleanup(policy: &ScanPolicy, scans: &Scans, runtime: &Runtime) -> Result<Action> {
    if !policy.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    // the region recorded with `previous`, not the spec's (cleanup works from the record)
    let region = policy
        .status
        .as_ref()
        .and_then(|s| s.region.clone())
        .or_else(|| policy.spec.region.clone())
        .unwrap_or_else(|| scans.default_region.clone());
    if let Some(previous) = policy.status.as_ref().and_then(|s| s.previous.as_ref()) {
        let restore = restored(previous);
        let observed = runtime.registry.get_registry_scanning(&region).await?;
        if observed != restore {
            runtime.registry.put_registry_scanning(&region, &restore).await?;
            let note = format!(
                "registry scanning configuration of {region} restored to what it was before ScanPolicy {}",
                policy.name_any()
            );
            harness::report(
                runtime,
                KIND,
                &policy.object_ref(&()),
                &ScanChange::Restore,
                false,
                &note,
            )
            .await;
        }
    }
    // every repository of the region this policy wrote on
    let keys: Vec<ObjectKey> = managed_repositories(runtime, &region)
        .await
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    scans.stop_region(runtime, &region);
    scans.scanning_read.lock().expect("read lock").remove(&region);
    for key in keys {
        findings::write_record(runtime, &key, &ScanRecord::default()).await?;
        scans.records.lock().expect("records lock").remove(&key);
        runtime.metrics.forget_image_findings(&key);
    }
    runtime.set_finalizer(&api(runtime), policy, FINALIZER, false).await?;
    // the next-oldest policy of the region, if any, takes over now
    let _ = scans.recompute.send(String::new());
    Ok(Action::await_change())
}

fn status_with(policy: &ScanPolicy, progress: Progress, reason: &str, message: &str) -> ScanPolicyStatus {
    let previous = policy.status.clone().unwrap_or_default();
    ScanPolicyStatus {
        observed_generation: policy.metadata.generation,
        conditions: progress_conditions(
            &previous.conditions,
            progress,
            reason,
            message,
            policy.metadata.generation,
            now(),
        ),
        ..previous
    }
}

async fn write_status(policy: &ScanPolicy, runtime: &Runtime, status: &ScanPolicyStatus) -> Result<()> {
    if policy.status.as_ref() == Some(status) {
        return Ok(());
    }
    runtime.apply_status(policy, FIELD_MANAGER, status).await
}

pub async fn write_failure(policy: &ScanPolicy, runtime: &Runtime, error: &Error) {
    let status = status_with(policy, error.progress(), error.reason(), &error.to_string());
    runtime.metrics.set_ready(KIND, ObjectId::of(KIND, policy).key, false);
    if let Err(status_error) = write_status(policy, runtime, &status).await {
        tracing::warn!(error = %status_error, "could not write the failure to status");
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

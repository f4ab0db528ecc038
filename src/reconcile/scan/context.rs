//! The ScanPolicy kind's own state, shared by the controller and the findings refresher: the
//! governing policy and rules per region, the repositories whose findings are read, and what
//! `berth-scan` last wrote on each EcrRepository.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{EcrRepository, FindingCounts, ScanningStatus};
use crate::images::RepositoryRef;
use crate::images::rotation::Rotation;
use crate::reconcile::runtime::Runtime;
use crate::scan::Thresholds;
use crate::telemetry::ObjectKey;

pub const SCAN_COMPLIANT: &str = "ScanCompliant";
/// The inventory consumer name: a covered repository's images stay in memory between reads.
pub const IMAGES_CONSUMER: &str = "scan";

/// What `berth-scan` owns in one EcrRepository's status. It is applied whole, because
/// server-side apply removes the fields a manager leaves out. One per covered repository: the
/// scanning configuration, findings and condition are boxed, which keeps the map's slots small
/// (6 MiB for the unboxed map at 10,000 repositories, most of it empty slots).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanRecord {
    pub scanning: Option<Box<ScanningStatus>>,
    pub findings: Option<Box<FindingCounts>>,
    pub compliant: Option<Box<Condition>>,
    /// The last definite verdict (non-compliant or not), across scans in progress: what a
    /// crossing is judged against. Kept in memory only.
    pub non_compliant: Option<bool>,
    /// The object (uid) this record is of: an object deleted and created again under the same
    /// name starts from its own status, not from what was written on its predecessor.
    pub uid: Option<String>,
}

impl ScanRecord {
    /// What the object's status holds now (after a restart: no Event for a known state).
    pub fn from_status(repository: &EcrRepository) -> Self {
        let status = repository.status.as_ref();
        Self {
            scanning: status.and_then(|s| s.scanning.clone()),
            findings: status.and_then(|s| s.findings.clone()),
            compliant: status.and_then(|s| s.condition(SCAN_COMPLIANT).cloned()).map(Box::new),
            non_compliant: status
                .and_then(|s| s.condition(SCAN_COMPLIANT))
                .and_then(|c| verdict(&c.status)),
            uid: repository.metadata.uid.clone(),
        }
    }

    pub fn is_non_compliant(&self) -> bool {
        self.compliant.as_ref().is_some_and(|c| c.status == "False")
    }
}

/// True: non-compliant, false: compliant, None: nothing to judge (Unknown).
pub(super) fn verdict(status: &str) -> Option<bool> {
    match status {
        "False" => Some(true),
        "True" => Some(false),
        _ => None,
    }
}

/// A repository whose findings are read: where, and under which policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanTarget {
    pub region: String,
    pub repository: String,
    pub policy: String,
}

/// (resync epoch, governing policy uid, its generation) of a region's per-repository reads: a
/// new resync, another policy or a spec change reads everything again.
pub(super) type ReadMarker = (u64, Option<String>, Option<i64>);

/// What applies to one repository, as ECR answered.
pub(super) struct AppliedScanning {
    /// For `status.scanning`; None when ECR reported the repository as a failure.
    pub scanning: Option<Box<ScanningStatus>>,
    /// The rules cover it (scanned other than manually).
    pub covered: bool,
}

/// What is known of a region's per-repository scanning configuration.
#[derive(Default)]
pub(super) struct ScanningRead {
    pub marker: Option<ReadMarker>,
    /// Per ECR repository name read under `marker`.
    pub applied: HashMap<String, AppliedScanning>,
    /// The (object, ECR repository) pairs covered at the last reconcile.
    pub covered: Arc<Vec<(ObjectKey, String)>>,
}

/// The governing policy of a region and how it judges findings.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionRules {
    pub policy: String,
    pub thresholds: Thresholds,
    pub refresh_interval: Duration,
}

/// The ScanPolicy kind's own context, shared with the findings refresher.
pub struct Scans {
    pub default_region: String,
    /// The shortest `findings.refreshInterval` a policy may ask for (`--min-findings-refresh`).
    pub min_refresh: Duration,
    /// The repositories whose findings are read, in rotation.
    pub targets: Rotation<ScanTarget>,
    /// Per region, the governing policy's findings rules.
    pub(super) rules: Mutex<HashMap<String, RegionRules>>,
    /// What `berth-scan` last applied to each EcrRepository.
    pub(super) records: Mutex<HashMap<ObjectKey, ScanRecord>>,
    /// Per region: when its per-repository configuration was read, and what the rules cover.
    pub(super) scanning_read: Mutex<HashMap<String, ScanningRead>>,
    /// Names a policy whose status should be recomputed (its findings changed, or a winner
    /// left and the next-oldest takes over).
    pub recompute: tokio::sync::broadcast::Sender<String>,
}

impl Scans {
    pub fn new(default_region: String, min_refresh: Duration) -> Self {
        Self {
            default_region,
            min_refresh,
            targets: Rotation::default(),
            rules: Mutex::default(),
            records: Mutex::default(),
            scanning_read: Mutex::default(),
            recompute: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// The rules for `target`, unless its region is governed by another policy now.
    pub fn rules_for(&self, target: &ScanTarget) -> Option<RegionRules> {
        let rules = self.rules.lock().expect("rules lock");
        rules
            .get(&target.region)
            .filter(|rules| rules.policy == target.policy)
            .cloned()
    }

    pub fn record(&self, key: &ObjectKey) -> ScanRecord {
        self.records
            .lock()
            .expect("records lock")
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Keeps what was written and asks for the policy's summary to be recomputed.
    pub fn store(&self, key: &ObjectKey, record: ScanRecord, target: &ScanTarget) {
        self.records.lock().expect("records lock").insert(key.clone(), record);
        let _ = self.recompute.send(target.policy.clone());
    }

    /// The record of an object not known yet (after a restart, or created again under the same
    /// name): what its status holds.
    pub(super) fn seed(&self, key: &ObjectKey, object: &EcrRepository) {
        let mut records = self.records.lock().expect("records lock");
        if records.get(key).is_none_or(|record| record.uid != object.metadata.uid) {
            records.insert(key.clone(), ScanRecord::from_status(object));
        }
    }

    /// Whether the record of `key` holds `scanning` (what was last written on the object).
    pub(super) fn holds_scanning(&self, key: &ObjectKey, scanning: Option<&ScanningStatus>) -> bool {
        let records = self.records.lock().expect("records lock");
        records
            .get(key)
            .is_some_and(|record| record.scanning.as_deref() == scanning)
    }

    /// Stops reading findings in `region` (its policy left or no longer judges findings).
    pub(super) fn stop_region(&self, runtime: &Runtime, region: &str) {
        self.rules.lock().expect("rules lock").remove(region);
        let mut released = Vec::new();
        self.targets.retain(|_, target| {
            let keep = target.region != region;
            if !keep {
                released.push(RepositoryRef::new(target.region.clone(), target.repository.clone()));
            }
            keep
        });
        for repository in released {
            runtime.images.release(IMAGES_CONSUMER, &repository);
        }
    }
}

//! The ScanPolicy kind: the registry scanning configuration of a region (one effective policy
//! per region: the oldest), the configuration that applies to each managed repository, and the
//! findings of each covered repository's newest image. validate (`crate::scan`) → observe →
//! compare (`crate::scan`, pure) → execute and status (`apply`); findings in `findings`.

mod apply;
pub mod findings;
pub mod mapping;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use kube::runtime::controller::Action;

pub use apply::{FINALIZER, KIND};

use crate::api::ScanPolicy;
use crate::error::Error;
use crate::images::RepositoryRef;
use crate::images::rotation::Rotation;
use crate::reconcile::harness::{Change, Reconciler};
use crate::reconcile::runtime::{ObjectId, Runtime};
use crate::scan::Thresholds;
use crate::telemetry::ObjectKey;
use findings::{IMAGES_CONSUMER, ScanRecord};

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

/// A repository whose findings are read: where, and under which policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanTarget {
    pub region: String,
    pub repository: String,
    pub policy: String,
}

/// (resync epoch, policy generation, hash of the managed repositories) at which a region's
/// per-repository configuration was read, and the (object, ECR repository) pairs it covers.
type ScanningRead = ((u64, Option<i64>, u64), Vec<(ObjectKey, String)>);

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
    /// Namespaces whose EcrRepositories berth manages (empty: all).
    pub namespaces: Vec<String>,
    /// The repositories whose findings are read, in rotation.
    pub targets: Rotation<ScanTarget>,
    /// Per region, the governing policy's findings rules.
    rules: Mutex<HashMap<String, RegionRules>>,
    /// What `berth-scan` last applied to each EcrRepository.
    records: Mutex<HashMap<ObjectKey, ScanRecord>>,
    /// Per region: when its per-repository configuration was read, and what the rules cover.
    scanning_read: Mutex<HashMap<String, ScanningRead>>,
    /// Names a policy whose status should be recomputed (its findings changed, or a winner
    /// left and the next-oldest takes over).
    pub recompute: tokio::sync::broadcast::Sender<String>,
}

impl Scans {
    pub fn new(default_region: String, min_refresh: Duration, namespaces: Vec<String>) -> Self {
        Self {
            default_region,
            min_refresh,
            namespaces,
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

    fn seed(&self, key: &ObjectKey, record: ScanRecord) {
        self.records
            .lock()
            .expect("records lock")
            .entry(key.clone())
            .or_insert(record);
    }

    /// Stops reading findings in `region` (its policy left or no longer judges findings).
    fn stop_region(&self, runtime: &Runtime, region: &str) {
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

    /// Runs the findings refresher until dropped (the leader term ends).
    pub async fn refresh_loop(&self, runtime: &Runtime) {
        let interval = || {
            let rules = self.rules.lock().expect("rules lock");
            rules
                .values()
                .map(|r| r.refresh_interval)
                .min()
                .unwrap_or(Duration::from_secs(3600))
        };
        self.targets
            .cycle(interval, |key, target| async move {
                findings::refresh(self, runtime, &key, &target).await;
            })
            .await;
    }
}

#[async_trait]
impl Reconciler for Scans {
    type Object = ScanPolicy;
    const KIND: &'static str = KIND;

    async fn apply(&self, policy: &ScanPolicy, runtime: &Runtime) -> Result<Action, Error> {
        apply::apply(policy, self, runtime).await
    }

    async fn cleanup(&self, policy: &ScanPolicy, runtime: &Runtime) -> Result<Action, Error> {
        let action = apply::cleanup(policy, self, runtime).await?;
        let id = ObjectId::of(KIND, policy);
        runtime.forget_object(&id);
        Ok(action)
    }

    async fn write_failure(&self, policy: &ScanPolicy, runtime: &Runtime, error: &Error) {
        apply::write_failure(policy, runtime, error).await;
    }
}

//! The context every reconcile shares: clients, settings, the Event recorder, metrics, and the
//! per-object memos (in-sync generation, backoff) with their upkeep.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use super::REPOSITORY_KIND;
use crate::aws::{Iam, Registry, RepositoryObserver};
use crate::error::Error;
use crate::reconcile::repository::desired::ValidationSettings;
use crate::reconcile::stats::StatsTargets;
use crate::telemetry::Metrics;
/// Namespace/name of an object, for the per-object maps below.
pub use crate::telemetry::ObjectKey;

/// How berth manages push roles (`--iam-*`, `--github-oidc-provider-arn`,
/// `--create-github-oidc-provider`).
#[derive(Clone, Debug, Default)]
pub struct RoleSettings {
    pub path: String,
    pub permissions_boundary: Option<String>,
    pub github_provider_arn: Option<String>,
    pub create_github_provider: bool,
}

/// Everything a reconcile needs; shared by all controllers.
pub struct Context {
    pub client: Client,
    pub registry: Arc<dyn Registry>,
    pub iam: Arc<dyn Iam>,
    pub roles: RoleSettings,
    /// The GitHub OIDC provider's ARN, looked up (or created) once.
    pub github_provider: tokio::sync::OnceCell<String>,
    pub observer: RepositoryObserver,
    pub recorder: Recorder,
    pub validation: ValidationSettings,
    pub resync_interval: Duration,
    pub metrics: Arc<Metrics>,
    pub stats: StatsTargets,
    /// Consecutive transient failures per object, for exponential backoff.
    failures: Mutex<HashMap<ObjectKey, u32>>,
    /// (generation, resync epoch) of the last reconcile that found the object in sync.
    synced: Mutex<HashMap<ObjectKey, (Option<i64>, u64)>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        registry: Arc<dyn Registry>,
        iam: Arc<dyn Iam>,
        roles: RoleSettings,
        validation: ValidationSettings,
        resync_interval: Duration,
        reporter: Reporter,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            iam,
            roles,
            github_provider: tokio::sync::OnceCell::new(),
            metrics,
            stats: StatsTargets::default(),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            observer: RepositoryObserver::new(registry.clone()),
            registry,
            validation,
            resync_interval,
            failures: Mutex::default(),
            synced: Mutex::default(),
        }
    }

    pub fn object_key<K: Resource>(&self, object: &K) -> ObjectKey {
        (
            object.meta().namespace.clone().unwrap_or_default(),
            object.meta().name.clone().unwrap_or_default(),
        )
    }

    pub fn is_memo_current(&self, key: &ObjectKey, generation: Option<i64>, epoch: u64) -> bool {
        self.synced.lock().expect("memo lock").get(key) == Some(&(generation, epoch))
    }

    pub fn remember_synced(&self, key: ObjectKey, generation: Option<i64>, epoch: u64) {
        self.failures.lock().expect("failure lock").remove(&key);
        self.synced.lock().expect("memo lock").insert(key, (generation, epoch));
    }

    pub fn forget_synced(&self, key: &ObjectKey) {
        self.synced.lock().expect("memo lock").remove(key);
    }

    /// Drops everything kept about an object that is gone from the cluster.
    pub fn forget_object(&self, key: &ObjectKey) {
        self.forget_synced(key);
        self.failures.lock().expect("failure lock").remove(key);
        self.stats.untrack(key);
        self.metrics.forget_object(REPOSITORY_KIND, key);
    }

    /// Forgets every object that is no longer in the cluster. kube-runtime does not reconcile a
    /// deleted object that has no finalizer, so the gauges and memos learn of it here.
    pub fn forget_absent(&self, present: &HashSet<ObjectKey>) {
        let mut tracked: HashSet<ObjectKey> = self.metrics.tracked_objects(REPOSITORY_KIND).into_iter().collect();
        tracked.extend(self.stats.keys());
        tracked.extend(self.synced.lock().expect("memo lock").keys().cloned());
        tracked.extend(self.failures.lock().expect("failure lock").keys().cloned());
        for key in tracked.difference(present) {
            self.forget_object(key);
        }
    }

    /// A new leader term: observe afresh and trust no memo from an earlier term, since another
    /// replica may have acted meanwhile.
    pub(super) fn start_term(&self) {
        self.observer.start_resync();
        self.synced.lock().expect("memo lock").clear();
        self.failures.lock().expect("failure lock").clear();
    }

    /// Publishes an Event; a failure to record it is logged, never fails the reconcile.
    pub async fn publish(&self, reference: &ObjectReference, type_: EventType, reason: &str, action: &str, note: &str) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        tracing::info!(reason, operation = action, note, "event");
        if let Err(error) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }

    /// Jittered exponential backoff for transient errors; terminal errors wait for the resync
    /// (or a spec change), so that a permission or validation error does not hammer AWS.
    pub(super) fn retry_after(&self, key: ObjectKey, error: &Error) -> Duration {
        if !error.is_transient() {
            self.failures.lock().expect("failure lock").remove(&key);
            return match error {
                Error::DeletionBlocked(_) => self.resync_interval.min(Duration::from_secs(60)),
                _ => self.resync_interval,
            };
        }
        let mut failures = self.failures.lock().expect("failure lock");
        let attempt = failures.entry(key).or_default();
        *attempt = attempt.saturating_add(1);
        backoff_delay(*attempt, rand::random_range(0.5..1.5))
    }
}

/// 1s, 2s, 4s, ... capped at 5 minutes, scaled by `jitter`.
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let base = 2u64.saturating_pow(attempt.saturating_sub(1).min(16)).min(300);
    Duration::from_secs_f64(base as f64 * jitter)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", crate::naming::cut(text, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        assert_eq!(backoff_delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(5, 1.0), Duration::from_secs(16));
        assert_eq!(backoff_delay(40, 1.0), Duration::from_secs(300));
        assert_eq!(backoff_delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(backoff_delay(3, 1.5), Duration::from_secs(6));
    }

    #[test]
    fn long_event_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        let cut = truncate(&note, 1000);
        assert!(cut.len() <= 1003 && cut.ends_with('…'));
        assert_eq!(truncate("short", 1000), "short");
    }
}

//! The kind-agnostic runtime every reconciler shares: clients, the Event recorder, metrics, the
//! batched observer, the resync epoch, and the per-object memos (in-sync generation, backoff)
//! keyed by kind + namespace + name. What only one kind needs lives in that kind's module.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::fmt::Debug;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::events::Recorder;
use crate::api::EcrRepository;
use crate::aws::{AwsErrorKind, Iam, Registry, RepositoryObserver};
use crate::error::Error;
use crate::images::ImageInventory;
use crate::images::stats::StatsTargets;
use crate::telemetry::{Metrics, ObjectKey};

/// An object of one kind: the key of every per-object memo, so that two kinds' objects of the
/// same name never share state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub kind: &'static str,
    pub key: ObjectKey,
}

impl ObjectId {
    pub fn of<K: kube::Resource>(kind: &'static str, object: &K) -> Self {
        Self {
            kind,
            key: (
                object.meta().namespace.clone().unwrap_or_default(),
                object.meta().name.clone().unwrap_or_default(),
            ),
        }
    }
}

/// The reflector stores of one kind's Controllers in the current leader term (one per watched
/// scope). Reading them costs no apiserver request; at 10,000 repositories a list per reconcile
/// would decode every object each time.
pub struct Stores<K: Resource<DynamicType = ()> + Clone + 'static> {
    stores: tokio::sync::watch::Sender<Vec<Store<K>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Default for Stores<K> {
    fn default() -> Self {
        Self {
            stores: tokio::sync::watch::Sender::new(Vec::new()),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    /// The stores of a new term (the previous term's are dropped with its Controllers).
    pub fn replace(&self, stores: Vec<Store<K>>) {
        self.stores.send_replace(stores);
    }

    /// Every object in `namespace` (None: in every watched scope), not being deleted, once
    /// every store has been filled by its first list. Never an empty answer for a store that is
    /// not filled yet: a LifecyclePolicy would release every repository it governs.
    pub async fn live(&self, namespace: Option<&str>) -> Vec<Arc<K>> {
        let mut receiver = self.stores.subscribe();
        let waited = receiver
            .wait_for(|stores| !stores.is_empty())
            .await
            .map(|stores| stores.clone());
        let Ok(stores) = waited else {
            return std::future::pending().await;
        };
        let mut objects = Vec::new();
        for store in stores {
            if store.wait_until_ready().await.is_err() {
                // the term's reflector is gone, and the reconcile asking is being dropped with it
                std::future::pending::<()>().await;
            }
            objects.extend(store.state().into_iter().filter(|object| {
                let meta = object.meta();
                meta.deletion_timestamp.is_none()
                    && namespace.is_none_or(|namespace| meta.namespace.as_deref() == Some(namespace))
            }));
        }
        objects
    }
}

/// What one reconcile of any kind may use.
pub struct Runtime {
    pub client: Client,
    pub registry: Arc<dyn Registry>,
    pub iam: Arc<dyn Iam>,
    /// One DescribeRepositories per region per resync, shared by every kind.
    pub observer: RepositoryObserver,
    /// One DescribeImages pass per repository, shared by statistics and lifecycle previews.
    pub images: Arc<ImageInventory>,
    /// The repositories whose statistics the refresher reads.
    pub stats: Arc<StatsTargets>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub resync_interval: Duration,
    /// The EcrRepositories of every watched scope, as the repository Controllers' reflectors
    /// see them: other kinds read them here instead of listing them from the apiserver.
    pub repositories: Stores<EcrRepository>,
    /// Consecutive transient failures per object, for exponential backoff.
    failures: Mutex<HashMap<ObjectId, Failures>>,
    /// (generation, resync epoch) of the last reconcile that found the object in sync.
    synced: Mutex<HashMap<ObjectId, (Option<i64>, u64)>>,
}

impl Runtime {
    pub fn new(
        client: Client,
        registry: Arc<dyn Registry>,
        iam: Arc<dyn Iam>,
        resync_interval: Duration,
        reporter: Reporter,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            iam,
            metrics,
            images: Arc::new(ImageInventory::new(registry.clone())),
            stats: Arc::default(),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            observer: RepositoryObserver::new(registry.clone()),
            registry,
            resync_interval,
            repositories: Stores::default(),
            failures: Mutex::default(),
            synced: Mutex::default(),
        }
    }

    /// The current resync epoch: a memo from an earlier epoch is stale.
    pub fn epoch(&self) -> u64 {
        self.observer.epoch()
    }

    pub fn is_memo_current(&self, id: &ObjectId, generation: Option<i64>, epoch: u64) -> bool {
        self.synced.lock().expect("memo lock").get(id) == Some(&(generation, epoch))
    }

    pub fn remember_synced(&self, id: ObjectId, generation: Option<i64>, epoch: u64) {
        self.failures.lock().expect("failure lock").remove(&id);
        self.synced.lock().expect("memo lock").insert(id, (generation, epoch));
    }

    pub fn forget_synced(&self, id: &ObjectId) {
        self.synced.lock().expect("memo lock").remove(id);
    }

    /// Drops the shared memos and gauges of an object that is gone from the cluster.
    pub fn forget_object(&self, id: &ObjectId) {
        self.forget_synced(id);
        self.failures.lock().expect("failure lock").remove(id);
        self.metrics.forget_object(id.kind, &id.key);
    }

    /// The objects of `kind` that some memo or gauge still knows about.
    pub fn tracked(&self, kind: &'static str) -> HashSet<ObjectKey> {
        let mut tracked: HashSet<ObjectKey> = self.metrics.tracked_objects(kind).into_iter().collect();
        let of_kind = |id: &ObjectId| (id.kind == kind).then(|| id.key.clone());
        tracked.extend(self.synced.lock().expect("memo lock").keys().filter_map(of_kind));
        tracked.extend(self.failures.lock().expect("failure lock").keys().filter_map(of_kind));
        tracked
    }

    /// How many of the object's latest reconciles in a row AWS throttled (reset by a success
    /// or another failure; a request held back by berth's own rate budget leaves it as it is).
    pub fn throttled_in_a_row(&self, id: &ObjectId) -> u32 {
        self.failures
            .lock()
            .expect("failure lock")
            .get(id)
            .map_or(0, |failures| failures.throttled)
    }

    /// A new leader term: observe afresh and trust no memo from an earlier term, since another
    /// replica may have acted meanwhile.
    pub fn start_term(&self) {
        self.observer.start_resync();
        self.synced.lock().expect("memo lock").clear();
        self.failures.lock().expect("failure lock").clear();
    }

    /// Adds or removes `finalizer` on `object` through `api` (a finalizer is present only while
    /// there is something to clean up). A merge patch carrying the resourceVersion fails on a
    /// concurrent change instead of overwriting another controller's finalizers.
    pub async fn set_finalizer<K>(&self, api: &Api<K>, object: &K, finalizer: &str, wanted: bool) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        let present = object.finalizers().iter().any(|f| f == finalizer);
        if present == wanted {
            return Ok(());
        }
        let mut finalizers: Vec<String> = object
            .finalizers()
            .iter()
            .filter(|f| *f != finalizer)
            .cloned()
            .collect();
        if wanted {
            finalizers.push(finalizer.to_owned());
        }
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": object.resource_version(), "finalizers": finalizers}
        });
        match api
            .patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            // released already: a reconcile from a store that had not yet seen the object go
            Err(kube::Error::Api(status)) if status.code == 404 && !wanted => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Server-side applies `status` as the whole of what `manager` owns in `object`'s status:
    /// fields the manager applied before and leaves out now are removed.
    pub async fn apply_status<K, S>(&self, object: &K, manager: &str, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()>,
        S: serde::Serialize,
    {
        let meta = object.meta();
        crate::writes::apply_status::<K>(
            &self.client,
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
            manager,
            status,
        )
        .await?;
        Ok(())
    }

    /// Publishes an Event (a repeat with the same note bumps its series; a new note gets its own
    /// Event); a failure to record it is logged, never fails the reconcile.
    pub async fn publish(&self, reference: &ObjectReference, type_: EventType, reason: &str, action: &str, note: &str) {
        let note = truncate(note, 1000);
        tracing::info!(reason, operation = action, note, "event");
        if let Err(error) = self.recorder.publish(reference, type_, reason, action, &note).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }

    /// Jittered exponential backoff for transient errors; terminal errors wait for the resync
    /// (or a spec change), so that a permission or validation error does not hammer AWS.
    pub fn retry_after(&self, id: ObjectId, error: &Error) -> Duration {
        if error.is_silent_retry() {
            // the object changed under us: read it again soon, without counting a failure
            return Duration::from_millis(rand::random_range(200..1000));
        }
        if !error.is_transient() {
            self.failures.lock().expect("failure lock").remove(&id);
            return match error {
                Error::DeletionBlocked(_) => self.resync_interval.min(Duration::from_secs(60)),
                _ => self.resync_interval,
            };
        }
        let mut failures = self.failures.lock().expect("failure lock");
        let failures = failures.entry(id).or_default();
        failures.consecutive = failures.consecutive.saturating_add(1);
        match error.aws_kind() {
            Some(AwsErrorKind::Throttled) => failures.throttled = failures.throttled.saturating_add(1),
            Some(AwsErrorKind::RateLimited) => {}
            _ => failures.throttled = 0,
        }
        backoff_delay(failures.consecutive, rand::random_range(0.5..1.5))
    }
}

/// An object's failures in a row: all transient ones (the backoff), and AWS throttling (when
/// it is reported).
#[derive(Clone, Copy, Debug, Default)]
struct Failures {
    consecutive: u32,
    throttled: u32,
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

    #[test]
    fn objects_of_two_kinds_with_one_name_are_distinct() {
        let repository = ObjectId {
            kind: "EcrRepository",
            key: ("team".into(), "api".into()),
        };
        let policy = ObjectId {
            kind: "LifecyclePolicy",
            ..repository.clone()
        };
        assert_ne!(repository, policy);
    }
}

//! kube-runtime wiring: the shared context, one Controller per watched namespace, the resync
//! tick that refreshes the batched observation, and per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::api::EcrRepository;
use crate::aws::{EcrRegistry, Registry, RepositoryObserver, load_sdk_config};
use crate::config::RunArgs;
use crate::error::Error;
use crate::reconcile::repository::{self, desired::ValidationSettings};

/// Namespace/name of an object, for the per-object maps below.
pub type ObjectKey = (String, String);

/// Everything a reconcile needs; shared by all controllers.
pub struct Context {
    pub client: Client,
    pub registry: Arc<dyn Registry>,
    pub observer: RepositoryObserver,
    pub recorder: Recorder,
    pub validation: ValidationSettings,
    pub resync_interval: Duration,
    /// Consecutive transient failures per object, for exponential backoff.
    failures: Mutex<HashMap<ObjectKey, u32>>,
    /// (generation, resync epoch) of the last reconcile that found the object in sync.
    synced: Mutex<HashMap<ObjectKey, (Option<i64>, u64)>>,
}

impl Context {
    pub fn new(
        client: Client,
        registry: Arc<dyn Registry>,
        validation: ValidationSettings,
        resync_interval: Duration,
        reporter: Reporter,
    ) -> Self {
        Self {
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

    /// Publishes an Event; a failure to record it is logged, never fails the reconcile.
    pub async fn publish(&self, reference: &ObjectReference, type_: EventType, reason: &str, action: &str, note: &str) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }

    /// Jittered exponential backoff for transient errors; terminal errors wait for the resync
    /// (or a spec change), so that a permission or validation error does not hammer AWS.
    fn retry_after(&self, key: ObjectKey, error: &Error) -> Duration {
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
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn error_policy(repository: Arc<EcrRepository>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.retry_after(ctx.object_key(repository.as_ref()), error);
    tracing::warn!(
        namespace = repository.namespace().unwrap_or_default(),
        name = repository.name_any(),
        reason = error.reason(),
        retry_in = ?delay,
        %error,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The cluster id written into ownership tags: the flag, else the kube-system namespace's UID.
async fn cluster_id(client: &Client, flag: Option<String>) -> anyhow::Result<String> {
    if let Some(id) = flag {
        return Ok(id);
    }
    let namespace = Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
        .map_err(|e| {
            anyhow::anyhow!("could not read the kube-system namespace for the cluster id (pass --cluster-id): {e}")
        })?;
    namespace
        .uid()
        .ok_or_else(|| anyhow::anyhow!("kube-system has no uid; pass --cluster-id"))
}

/// Runs the operator until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let region = args
        .region
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no AWS region: pass --region or set AWS_REGION"))?;
    let cluster_id = cluster_id(&client, args.cluster_id.clone()).await?;
    let registry: Arc<dyn Registry> = Arc::new(EcrRegistry::new(load_sdk_config(&region).await));
    let reporter = Reporter {
        controller: "berth".into(),
        instance: std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok()),
    };
    let validation = ValidationSettings {
        default_region: region.clone(),
        cluster_id: cluster_id.clone(),
        require_namespace_prefix: args.require_namespace_prefix,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        registry,
        validation,
        args.resync_interval,
        reporter,
    ));
    tracing::info!(%region, %cluster_id, resync = ?args.resync_interval, "berth starting");

    // Each tick starts a new resync epoch (the next lookup per region describes it afresh) and
    // then enqueues every object.
    let (tick, _) = tokio::sync::broadcast::channel::<()>(4);
    let ticker = {
        let tick = tick.clone();
        let ctx = ctx.clone();
        let interval = args.resync_interval;
        tokio::spawn(async move {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                timer.tick().await;
                ctx.observer.start_resync();
                let _ = tick.send(());
            }
        })
    };

    let apis: Vec<Api<EcrRepository>> = if args.watch_namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        args.watch_namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let controllers = apis.into_iter().map(|api| {
        let resync = BroadcastStream::new(tick.subscribe()).filter_map(|t| async move { t.ok() });
        Controller::new(api, watcher::Config::default())
            .reconcile_all_on(resync)
            .shutdown_on_signal()
            .run(repository::reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => tracing::debug!(namespace = object.namespace, name = object.name, "reconciled"),
                    Err(error) => tracing::debug!(%error, "reconcile error"),
                }
            })
    });
    futures::future::join_all(controllers).await;
    ticker.abort();
    tracing::info!("berth stopped");
    Ok(())
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

//! The one harness that runs every kind's pipeline: a span naming the object, reconcile metrics,
//! apply or cleanup, and on failure the kind's failure status, a Warning Event and the backoff.
//! A kind implements [`Reconciler`]; [`reconcile`] and [`error_policy`] are what kube-runtime's
//! Controller calls.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::runtime::{ObjectId, Runtime};
use crate::error::Error;
use crate::telemetry::ObjectKey;

/// One write to AWS that a plan asked for: it knows its operation (the Event's action and the
/// audit log's `operation`), the Event reason it reports under, and the spec field it brings in
/// line (for `DriftCorrected`).
pub trait Change {
    fn operation(&self) -> &'static str;
    /// `Created`, `Updated`, `PolicyApplied`, `Deleted`, ...
    fn reason(&self) -> &'static str;
    fn field(&self) -> &'static str;
    /// Whether, made while the spec did not change, it sets back an out-of-band change (a
    /// `DriftCorrected` Event). Creations and removals report their own reason either way.
    fn corrects_drift(&self) -> bool {
        true
    }
}

/// A kind's pipeline. The harness owns what is common; the kind owns its steps.
#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    type Object: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static;
    /// The kind's name in logs, metrics and memo keys.
    const KIND: &'static str;

    /// validate → observe → plan → execute → status, for an object that is not being deleted.
    async fn apply(&self, object: &Self::Object, runtime: &Runtime) -> Result<Action, Error>;
    /// Deletion: clean up what was recorded, then release the finalizer.
    async fn cleanup(&self, object: &Self::Object, runtime: &Runtime) -> Result<Action, Error>;
    /// Records a failure in the object's status (the harness publishes the Warning Event).
    async fn write_failure(&self, object: &Self::Object, runtime: &Runtime, error: &Error);
    /// Drops what the kind keeps about an object that is gone from the cluster.
    fn forget(&self, _key: &ObjectKey, _runtime: &Runtime) {}
    /// The objects the kind keeps something about, beyond the runtime's memos and gauges.
    fn tracked(&self, _runtime: &Runtime) -> Vec<ObjectKey> {
        Vec::new()
    }
}

/// A kind's reconciler with the shared runtime: the context kube-runtime hands to each call.
pub struct Kind<R> {
    pub reconciler: R,
    pub runtime: Arc<Runtime>,
}

impl<R: Reconciler> Kind<R> {
    pub fn id(&self, object: &R::Object) -> ObjectId {
        ObjectId::of(R::KIND, object)
    }

    /// Forgets every object that is no longer in the cluster. kube-runtime does not reconcile a
    /// deleted object that has no finalizer, so the gauges and memos learn of it here.
    pub fn forget_absent(&self, present: &std::collections::HashSet<ObjectKey>) {
        let mut tracked = self.runtime.tracked(R::KIND);
        tracked.extend(self.reconciler.tracked(&self.runtime));
        for key in tracked.difference(present) {
            self.forget(key);
        }
    }

    /// Forgets everything kept about an object that is gone.
    pub fn forget(&self, key: &ObjectKey) {
        self.runtime.forget_object(&ObjectId {
            kind: R::KIND,
            key: key.clone(),
        });
        self.reconciler.forget(key, &self.runtime);
    }
}

/// Runs one reconcile in a span naming the object (so each log line, the AWS calls included,
/// carries kind, namespace and object name), counted and timed.
pub async fn reconcile<R: Reconciler>(object: Arc<R::Object>, kind: Arc<Kind<R>>) -> Result<Action, Error> {
    let meta = object.meta();
    let span = tracing::info_span!(
        "reconcile",
        kind = R::KIND,
        namespace = meta.namespace.as_deref().unwrap_or_default(),
        // not `name`: the JSON log format already uses that key for the span's own name
        object = meta.name.as_deref().unwrap_or_default(),
    );
    let runtime = &kind.runtime;
    let started = Instant::now();
    runtime.metrics.reconcile_started(R::KIND);
    let result = async {
        let result = if meta.deletion_timestamp.is_some() {
            kind.reconciler.cleanup(&object, runtime).await
        } else {
            kind.reconciler.apply(&object, runtime).await
        };
        if let Err(error) = &result
            && !error.is_silent_retry()
        {
            let id = kind.id(&object);
            runtime.forget_synced(&id);
            if !error.is_reported(runtime.throttled_in_a_row(&id)) {
                // Ready keeps what it said; the backoff retries (error_policy)
                return result;
            }
            // the Event first: whoever sees the failure in status finds its Event already there
            let note = error.to_string();
            runtime
                .publish(
                    &object.object_ref(&()),
                    EventType::Warning,
                    error.reason(),
                    error.action(),
                    &note,
                )
                .await;
            kind.reconciler.write_failure(&object, runtime, error).await;
        }
        result
    }
    .instrument(span)
    .await;
    runtime.metrics.reconcile_finished(
        R::KIND,
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

/// Backoff per object: jittered exponential for transient errors, the resync for terminal ones.
pub fn error_policy<R: Reconciler>(object: Arc<R::Object>, error: &Error, kind: Arc<Kind<R>>) -> Action {
    let id = kind.id(&object);
    let delay = kind.runtime.retry_after(id.clone(), error);
    if error.aws_kind() == Some(crate::aws::AwsErrorKind::RateLimited) {
        // berth pacing itself, counted in berth_aws_rate_limit_refusals_total: a warning per
        // refusal would flood the log exactly when berth is busiest
        tracing::debug!(kind = R::KIND, namespace = id.key.0, name = id.key.1, retry_in = ?delay, "reconcile paced by the AWS rate budget");
        return Action::requeue(delay);
    }
    tracing::warn!(
        kind = R::KIND,
        namespace = id.key.0,
        name = id.key.1,
        reason = error.reason(),
        retry_in = ?delay,
        %error,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Reports an executed change as a Normal Event on `reference`: `DriftCorrected` (and the drift
/// metric) when the spec did not ask for it, else the change's own reason.
pub async fn report<C: Change + ?Sized>(
    runtime: &Runtime,
    kind: &'static str,
    reference: &ObjectReference,
    change: &C,
    drift: bool,
    note: &str,
) {
    if drift && change.corrects_drift() {
        runtime.metrics.drift_corrected(kind, change.field());
        let note = format!("{} was changed outside berth and set back: {note}", change.field());
        runtime
            .publish(
                reference,
                EventType::Normal,
                "DriftCorrected",
                change.operation(),
                &note,
            )
            .await;
    } else {
        runtime
            .publish(reference, EventType::Normal, change.reason(), change.operation(), note)
            .await;
    }
}

//! Every Prometheus series berth exports (prefix `berth_`), in one registry that `/metrics`
//! renders. `docs/metrics.md` describes each of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::repository_gauges::RepositoryGauges;
use crate::scan::Counts;

/// Namespace/name of an object.
pub type ObjectKey = (String, String);

/// The per-call AWS series; cloned into the SDK interceptor (the handles share their values).
#[derive(Clone)]
pub struct AwsMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub budget: BudgetMetrics,
}

/// The rate budgets' series (`aws::RateBudget`), by service and region.
#[derive(Clone)]
pub struct BudgetMetrics {
    wait: HistogramVec,
    rate: GaugeVec,
    refusals: IntCounterVec,
}

impl BudgetMetrics {
    pub fn waited(&self, service: &str, region: &str, wait: Duration) {
        self.wait
            .with_label_values(&[service, region])
            .observe(wait.as_secs_f64());
    }

    pub fn set_rate(&self, service: &str, region: &str, rate: f64) {
        self.rate.with_label_values(&[service, region]).set(rate);
    }

    pub fn refused(&self, service: &str, region: &str) {
        self.refusals.with_label_values(&[service, region]).inc();
    }
}

impl AwsMetrics {
    /// Records one HTTP attempt of an AWS operation.
    pub fn record(&self, service: &str, operation: &str, outcome: &str, elapsed: Duration) {
        self.requests.with_label_values(&[service, operation, outcome]).inc();
        self.duration
            .with_label_values(&[service, operation])
            .observe(elapsed.as_secs_f64());
    }
}

pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    reconcile_errors: IntCounterVec,
    reconcile_duration: HistogramVec,
    pub aws: AwsMetrics,
    managed_objects: IntGaugeVec,
    drift_corrections: IntCounterVec,
    leader: IntGauge,
    resyncs: IntCounter,
    lifecycle_expiring: IntGaugeVec,
    watch_errors: IntCounterVec,
    /// Ready status per (kind, object), so that `managed_objects` moves by transitions.
    ready_by_object: Mutex<HashMap<(&'static str, ObjectKey), bool>>,
    /// Statistics and findings of each EcrRepository, outside the registry (see the module).
    repository_gauges: Mutex<RepositoryGauges>,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("each berth series is registered once");
    collector
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("berth".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
            )
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"),
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let opts = HistogramOpts::new(name, help).buckets(buckets);
            register(&registry, HistogramVec::new(opts, labels).expect("valid histogram"))
        };
        let seconds = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        Self {
            reconciles: counter("reconciles_total", "Reconciles run, by kind.", &["kind"]),
            reconcile_errors: counter(
                "reconcile_errors_total",
                "Reconciles that ended in an error, by kind and error reason.",
                &["kind", "reason"],
            ),
            reconcile_duration: histogram(
                "reconcile_duration_seconds",
                "Wall time of one reconcile, by kind.",
                &["kind"],
                seconds.clone(),
            ),
            aws: AwsMetrics {
                requests: counter(
                    "aws_requests_total",
                    "HTTP attempts made to AWS (retries count separately), by service, operation and outcome.",
                    &["service", "operation", "outcome"],
                ),
                duration: histogram(
                    "aws_request_duration_seconds",
                    "Latency of one HTTP attempt to AWS, by service and operation.",
                    &["service", "operation"],
                    seconds.clone(),
                ),
                budget: BudgetMetrics {
                    wait: histogram(
                        "aws_rate_limit_wait_seconds",
                        "How long an AWS request waited for its turn in its service's rate budget, by service and region.",
                        &["service", "region"],
                        [vec![0.0], seconds].concat(),
                    ),
                    rate: register(
                        &registry,
                        GaugeVec::new(
                            Opts::new(
                                "aws_rate_limit_requests_per_second",
                                "The current rate of a service's AWS rate budget (lowered when AWS throttles), by service and region.",
                            ),
                            &["service", "region"],
                        )
                        .expect("valid gauge"),
                    ),
                    refusals: counter(
                        "aws_rate_limit_refusals_total",
                        "AWS requests refused by their rate budget (their turn was beyond --aws-rate-limit-max-wait; the reconcile is retried), by service and region.",
                        &["service", "region"],
                    ),
                },
            },
            managed_objects: gauge(
                "managed_objects",
                "Objects this replica manages, by kind and Ready status.",
                &["kind", "ready"],
            ),
            drift_corrections: counter(
                "drift_corrections_total",
                "Out-of-band changes set back, by kind and field.",
                &["kind", "field"],
            ),
            leader: register(
                &registry,
                IntGauge::new(
                    "leader",
                    "1 while this replica holds the leader Lease (or runs without election).",
                )
                .expect("valid gauge"),
            ),
            resyncs: register(
                &registry,
                IntCounter::new(
                    "resyncs_total",
                    "Resync intervals started: at each, every object is looked at once, spread over the interval.",
                )
                .expect("valid counter"),
            ),
            lifecycle_expiring: gauge(
                "lifecycle_images_to_expire",
                "Images a LifecyclePolicy's rules would expire now, over the repositories it governs.",
                &["namespace", "policy"],
            ),
            watch_errors: counter(
                "watch_errors_total",
                "Errors of the watches that feed the controllers (retried by kube-runtime), by kind.",
                &["kind"],
            ),
            ready_by_object: Mutex::default(),
            repository_gauges: Mutex::default(),
            registry,
        }
    }

    pub fn reconcile_started(&self, kind: &str) {
        self.reconciles.with_label_values(&[kind]).inc();
    }

    pub fn reconcile_finished(&self, kind: &str, elapsed: Duration, error_label: Option<&str>) {
        self.reconcile_duration
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
        if let Some(reason) = error_label {
            self.reconcile_errors.with_label_values(&[kind, reason]).inc();
        }
    }

    pub fn watch_error(&self, kind: &str) {
        self.watch_errors.with_label_values(&[kind]).inc();
    }

    pub fn drift_corrected(&self, kind: &str, field: &str) {
        self.drift_corrections.with_label_values(&[kind, field]).inc();
    }

    pub fn resync_started(&self) {
        self.resyncs.inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records an object's Ready status; the gauge moves only on a transition.
    pub fn set_ready(&self, kind: &'static str, key: ObjectKey, ready: bool) {
        let previous = self
            .ready_by_object
            .lock()
            .expect("ready map lock")
            .insert((kind, key), ready);
        if previous == Some(ready) {
            return;
        }
        if let Some(previous) = previous {
            self.managed_objects
                .with_label_values(&[kind, ready_label(previous)])
                .dec();
        }
        self.managed_objects
            .with_label_values(&[kind, ready_label(ready)])
            .inc();
    }

    /// The preview of a LifecyclePolicy: how many images its rules would expire now.
    pub fn set_lifecycle_expiring(&self, key: &ObjectKey, images: i64) {
        self.lifecycle_expiring
            .with_label_values(&[key.0.as_str(), key.1.as_str()])
            .set(images);
    }

    pub fn forget_lifecycle(&self, key: &ObjectKey) {
        let _ = self
            .lifecycle_expiring
            .remove_label_values(&[key.0.as_str(), key.1.as_str()]);
    }

    /// The findings of an EcrRepository's newest image.
    pub fn set_image_findings(&self, key: &ObjectKey, repository: &str, counts: Counts) {
        self.gauges().set_findings(key, repository, counts);
    }

    pub fn forget_image_findings(&self, key: &ObjectKey) {
        self.gauges().forget_findings(key);
    }

    fn gauges(&self) -> std::sync::MutexGuard<'_, RepositoryGauges> {
        self.repository_gauges.lock().expect("repository gauges lock")
    }

    /// Forgets an object that is gone from the cluster.
    pub fn forget_object(&self, kind: &'static str, key: &ObjectKey) {
        let previous = self
            .ready_by_object
            .lock()
            .expect("ready map lock")
            .remove(&(kind, key.clone()));
        if let Some(previous) = previous {
            self.managed_objects
                .with_label_values(&[kind, ready_label(previous)])
                .dec();
        }
    }

    /// The objects of `kind` the Ready gauge knows about.
    pub fn tracked_objects(&self, kind: &'static str) -> Vec<ObjectKey> {
        let ready = self.ready_by_object.lock().expect("ready map lock");
        ready
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The EcrRepository objects that have statistics or findings gauges.
    pub fn objects_with_repository_gauges(&self) -> Vec<ObjectKey> {
        self.gauges().keys().cloned().collect()
    }

    /// Forgets every object, when this replica stops leading: the new leader reports them.
    pub fn forget_all_objects(&self) {
        self.ready_by_object.lock().expect("ready map lock").clear();
        *self.gauges() = RepositoryGauges::default();
        self.managed_objects.reset();
    }

    /// `last_pushed_at`: Unix seconds of the newest push, 0 for an empty repository.
    pub fn set_repository_stats(
        &self,
        key: &ObjectKey,
        repository: &str,
        image_count: i64,
        size_bytes: i64,
        last_pushed_at: i64,
    ) {
        self.gauges()
            .set_stats(key, repository, [image_count, size_bytes, last_pushed_at]);
    }

    pub fn forget_repository_stats(&self, key: &ObjectKey) {
        self.gauges().forget_stats(key);
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into memory cannot fail");
        let mut text = String::from_utf8(buffer).expect("the text format is UTF-8");
        self.gauges().render(&mut text);
        text
    }
}

fn ready_label(ready: bool) -> &'static str {
    if ready { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_objects_move_by_transitions_only() {
        let metrics = Metrics::new();
        let key = ("team".to_owned(), "api".to_owned());
        metrics.set_ready("EcrRepository", key.clone(), false);
        metrics.set_ready("EcrRepository", key.clone(), true);
        metrics.set_ready("EcrRepository", key.clone(), true);
        metrics.set_ready("EcrRepository", ("team".into(), "web".into()), true);
        let text = metrics.render();
        assert!(
            text.contains(r#"berth_managed_objects{kind="EcrRepository",ready="True"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"berth_managed_objects{kind="EcrRepository",ready="False"} 0"#),
            "{text}"
        );
        metrics.forget_object("EcrRepository", &key);
        assert!(
            metrics
                .render()
                .contains(r#"berth_managed_objects{kind="EcrRepository",ready="True"} 1"#)
        );
    }

    #[test]
    fn aws_attempts_are_counted_by_outcome_and_timed() {
        let metrics = Metrics::new();
        metrics
            .aws
            .record("ecr", "CreateRepository", "throttled", Duration::from_millis(5));
        metrics
            .aws
            .record("ecr", "CreateRepository", "success", Duration::from_millis(5));
        metrics
            .aws
            .record("ecr", "TagResource", "success", Duration::from_millis(5));
        let requests = |operation: &str, outcome: &str| {
            metrics
                .aws
                .requests
                .with_label_values(&["ecr", operation, outcome])
                .get()
        };
        assert_eq!(requests("CreateRepository", "throttled"), 1);
        assert_eq!(requests("CreateRepository", "success"), 1);
        assert_eq!(requests("TagResource", "success"), 1);
        assert_eq!(
            metrics
                .aws
                .duration
                .with_label_values(&["ecr", "CreateRepository"])
                .get_sample_count(),
            2
        );
        assert!(
            metrics.render().contains(
                r#"berth_aws_requests_total{operation="CreateRepository",outcome="throttled",service="ecr"} 1"#
            )
        );
    }

    #[test]
    fn watch_errors_are_counted_by_kind() {
        let metrics = Metrics::new();
        metrics.watch_error("LifecyclePolicy");
        metrics.watch_error("LifecyclePolicy");
        assert!(
            metrics
                .render()
                .contains(r#"berth_watch_errors_total{kind="LifecyclePolicy"} 2"#)
        );
    }

    #[test]
    fn repository_gauges_disappear_with_the_object() {
        let metrics = Metrics::new();
        let key = ("team".to_owned(), "api".to_owned());
        metrics.set_repository_stats(&key, "team/api", 3, 300, 1_700_000_000);
        assert!(
            metrics
                .render()
                .contains(r#"berth_repository_images{name="api",namespace="team",repository="team/api"} 3"#)
        );
        // another kind's object of the same name leaves them alone
        metrics.forget_object("LifecyclePolicy", &key);
        assert!(metrics.render().contains("berth_repository_images{"));
        let counts = Counts::of([(crate::scan::Severity::Critical, 1), (crate::scan::Severity::High, 4)]);
        metrics.set_image_findings(&key, "team/api", counts);
        assert!(
            metrics
                .render()
                .contains(r#"berth_image_findings{namespace="team",repository="team/api",severity="high"} 4"#)
        );
        assert_eq!(metrics.objects_with_repository_gauges(), std::slice::from_ref(&key));
        metrics.forget_repository_stats(&key);
        metrics.forget_image_findings(&key);
        let text = metrics.render();
        assert!(!text.contains("berth_repository_images{") && !text.contains("berth_image_findings{"));
    }
}

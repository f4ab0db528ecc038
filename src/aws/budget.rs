//! One AWS rate budget per service (ECR per region, IAM, STS), shared by every caller in the
//! process, so that throttling slows berth down instead of failing it.
//!
//! The budget sits in the HTTP client that each SDK client is built with (the only async hook
//! before an attempt goes on the wire), so it covers every operation and every SDK retry in one
//! place. A token bucket holds the current rate; when AWS answers "throttled" the rate is cut
//! multiplicatively and recovers additively (AIMD), between a floor and the configured rate.
//! Waiting is bounded: a caller whose token is further away than `max_wait` is refused at once
//! (`RateLimited`), and its reconcile is retried with backoff, so a reconcile is slowed but
//! never held for minutes without a trace.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::time::Instant;

use crate::telemetry::BudgetMetrics;

/// A throttled answer cuts the rate to this fraction of what it was.
const CUT: f64 = 0.5;
/// Throttled answers within this long of a cut are one congestion event: requests already in
/// flight at the old rate come back throttled too, and should not cut the rate again.
const CUT_COOLDOWN: Duration = Duration::from_secs(1);
/// The rate climbs back from nothing to the configured rate in this long (additive increase).
const RECOVERY: Duration = Duration::from_secs(10);
/// The floor is this fraction of the configured rate (at least `MIN_RATE_FLOOR`).
const FLOOR: f64 = 0.1;
const MIN_RATE_FLOOR: f64 = 0.5;

/// The configured rates: requests per second per service (ECR per region; IAM and STS are one
/// budget each) and the longest a request may wait for its turn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    pub ecr_per_second: f64,
    pub iam_per_second: f64,
    pub max_wait: Duration,
}

impl Default for RateLimits {
    /// Below AWS's own default throttles (see docs/design-decisions.md, "AWS rate budget").
    fn default() -> Self {
        Self {
            ecr_per_second: 20.0,
            iam_per_second: 10.0,
            max_wait: Duration::from_secs(5),
        }
    }
}

/// The error of a request refused by its budget: its turn was further away than the wait cap.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{service} rate budget ({region}): no turn within {max_wait:?} at {rate:.1} requests/s; retried later")]
pub struct RateLimited {
    pub service: &'static str,
    pub region: String,
    pub rate: f64,
    pub max_wait: Duration,
}

#[derive(Debug)]
struct Bucket {
    /// The current rate, requests per second, between the floor and the configured rate.
    rate: f64,
    /// Tokens on hand; negative while callers are waiting for reserved turns.
    tokens: f64,
    refilled: Instant,
    last_cut: Option<Instant>,
}

/// One service's budget (per region for ECR): a token bucket with AIMD feedback.
pub struct RateBudget {
    service: &'static str,
    region: String,
    max_rate: f64,
    min_rate: f64,
    max_wait: Duration,
    bucket: Mutex<Bucket>,
    metrics: BudgetMetrics,
}

impl fmt::Debug for RateBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateBudget({} {}: {:.1}/s)", self.service, self.region, self.rate())
    }
}

/// One second's worth of requests may go at once (at least one).
fn burst(rate: f64) -> f64 {
    rate.max(1.0)
}

impl RateBudget {
    pub fn new(
        service: &'static str,
        region: impl Into<String>,
        max_rate: f64,
        max_wait: Duration,
        metrics: BudgetMetrics,
    ) -> Self {
        let max_rate = max_rate.max(f64::MIN_POSITIVE);
        let budget = Self {
            service,
            region: region.into(),
            max_rate,
            min_rate: (max_rate * FLOOR).max(MIN_RATE_FLOOR).min(max_rate),
            max_wait,
            bucket: Mutex::new(Bucket {
                rate: max_rate,
                tokens: burst(max_rate),
                refilled: Instant::now(),
                last_cut: None,
            }),
            metrics,
        };
        budget.metrics.set_rate(service, &budget.region, max_rate);
        budget
    }

    /// The current rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.bucket.lock().expect("budget lock").rate
    }

    /// Adds the tokens earned since the last refill, and the additive recovery of the rate.
    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(burst(bucket.rate));
        bucket.rate = (bucket.rate + elapsed * self.max_rate / RECOVERY.as_secs_f64()).min(self.max_rate);
        bucket.refilled = now;
    }

    /// Takes the next turn: how long to wait before sending, or None (nothing taken) when the
    /// turn is further away than the wait cap.
    pub fn reserve(&self, now: Instant) -> Option<Duration> {
        let mut bucket = self.bucket.lock().expect("budget lock");
        self.refill(&mut bucket, now);
        let wait = if bucket.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - bucket.tokens) / bucket.rate)
        };
        // the gauge follows the recovery request by request
        self.metrics.set_rate(self.service, &self.region, bucket.rate);
        if wait > self.max_wait {
            return None;
        }
        bucket.tokens -= 1.0;
        Some(wait)
    }

    /// Waits for this request's turn (at most the wait cap), or refuses it.
    pub async fn acquire(&self) -> Result<Duration, RateLimited> {
        let Some(wait) = self.reserve(Instant::now()) else {
            self.metrics.refused(self.service, &self.region);
            return Err(RateLimited {
                service: self.service,
                region: self.region.clone(),
                rate: self.rate(),
                max_wait: self.max_wait,
            });
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.metrics.waited(self.service, &self.region, wait);
        Ok(wait)
    }

    /// AWS answered "throttled": cut the rate (once per congestion event), down to the floor.
    pub fn throttled(&self, now: Instant) {
        let mut bucket = self.bucket.lock().expect("budget lock");
        self.refill(&mut bucket, now);
        if bucket
            .last_cut
            .is_some_and(|cut| now.saturating_duration_since(cut) < CUT_COOLDOWN)
        {
            return;
        }
        bucket.rate = (bucket.rate * CUT).max(self.min_rate);
        bucket.tokens = bucket.tokens.min(burst(bucket.rate));
        bucket.last_cut = Some(now);
        tracing::info!(
            service = self.service,
            region = %self.region,
            rate = bucket.rate,
            "AWS throttled a request: rate budget lowered"
        );
        self.metrics.set_rate(self.service, &self.region, bucket.rate);
    }
}

/// Every budget of the process, made on first use: one per service, and per region for ECR.
/// Clones share them.
#[derive(Clone)]
pub struct RateBudgets {
    limits: RateLimits,
    /// One connection pool behind every budget.
    http: SharedHttpClient,
    metrics: BudgetMetrics,
    budgets: Arc<Mutex<HashMap<BudgetKey, Arc<RateBudget>>>>,
}

/// (service, region)
type BudgetKey = (&'static str, String);

impl fmt::Debug for RateBudgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateBudgets").field("limits", &self.limits).finish()
    }
}

impl RateBudgets {
    pub fn new(limits: RateLimits, http: SharedHttpClient, metrics: BudgetMetrics) -> Self {
        Self {
            limits,
            http,
            metrics,
            budgets: Arc::default(),
        }
    }

    /// The same budgets' connection pool and metrics with other limits (budgets made afresh).
    pub fn with_limits(&self, limits: RateLimits) -> Self {
        Self::new(limits, self.http.clone(), self.metrics.clone())
    }

    /// The budget of `service` ("ecr", "iam" or "sts") in `region` ("global" for IAM).
    pub fn budget(&self, service: &'static str, region: &str) -> Arc<RateBudget> {
        let rate = match service {
            "ecr" => self.limits.ecr_per_second,
            // STS is asked once at start; it shares IAM's (identity) rate
            _ => self.limits.iam_per_second,
        };
        self.budgets
            .lock()
            .expect("budgets lock")
            .entry((service, region.to_owned()))
            .or_insert_with(|| {
                Arc::new(RateBudget::new(
                    service,
                    region,
                    rate,
                    self.limits.max_wait,
                    self.metrics.clone(),
                ))
            })
            .clone()
    }

    /// The HTTP client for an SDK client of `service` in `region`.
    pub fn http_client(&self, service: &'static str, region: &str) -> BudgetedHttpClient {
        BudgetedHttpClient::new(self.http.clone(), self.budget(service, region))
    }
}

/// Marks a response that went through a budget: which one, and how long the request waited for
/// its turn (not part of AWS's latency).
#[derive(Clone, Debug)]
pub struct Admitted {
    pub budget: Arc<RateBudget>,
    pub waited: Duration,
}

/// An HTTP client that takes a turn from `budget` before each attempt.
#[derive(Clone, Debug)]
pub struct BudgetedHttpClient {
    inner: SharedHttpClient,
    budget: Arc<RateBudget>,
}

impl BudgetedHttpClient {
    pub fn new(inner: SharedHttpClient, budget: Arc<RateBudget>) -> Self {
        Self { inner, budget }
    }
}

impl HttpClient for BudgetedHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(BudgetedConnector {
            inner: self.inner.http_connector(settings, components),
            budget: self.budget.clone(),
        })
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct BudgetedConnector {
    inner: SharedHttpConnector,
    budget: Arc<RateBudget>,
}

impl HttpConnector for BudgetedConnector {
    fn call(&self, request: aws_smithy_runtime_api::client::orchestrator::HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let budget = self.budget.clone();
        HttpConnectorFuture::new(async move {
            // not retried by the SDK (no error kind): the reconcile's own backoff retries it
            let waited = budget
                .acquire()
                .await
                .map_err(|refused| ConnectorError::other(Box::new(refused), None))?;
            let mut response = inner.call(request).await?;
            response.add_extension(Admitted { budget, waited });
            Ok(response)
        })
    }
}

/// Tells a response's budget when AWS throttled it. An interceptor, not the connector, because
/// IAM and STS name the error only in the XML body, which is read by then.
#[derive(Clone, Debug, Default)]
pub struct BudgetFeedback;

impl Intercept for BudgetFeedback {
    fn name(&self) -> &'static str {
        "BerthRateBudget"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(response) = context.response()
            && let Some(admitted) = response.extension::<Admitted>()
            && super::interceptor::response_outcome(response) == "throttled"
        {
            admitted.budget.throttled(Instant::now());
        }
        Ok(())
    }
}

/// Whether `error` (or anything in its source chain) is a request refused by its budget.
pub fn is_rate_limited(error: &(dyn std::error::Error + 'static)) -> bool {
    super::error::caused_by::<RateLimited>(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(rate: f64, max_wait: Duration) -> RateBudget {
        RateBudget::new(
            "ecr",
            "eu-west-1",
            rate,
            max_wait,
            crate::telemetry::Metrics::new().aws.budget.clone(),
        )
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A burst of one second's worth goes at once; the rest is paced at the rate, and a turn
    /// beyond the wait cap is refused without taking anything.
    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate_then_refusal_beyond_the_cap() {
        let budget = budget(4.0, secs(1.0));
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(budget.reserve(now), Some(Duration::ZERO));
        }
        // the next four are a quarter of a second apart
        for n in 1..=4 {
            assert_eq!(budget.reserve(now), Some(secs(0.25 * n as f64)));
        }
        assert_eq!(budget.reserve(now), None, "1.25 s away: beyond the 1 s cap");
        assert_eq!(budget.reserve(now), None, "a refusal takes no turn");
        // a second later four turns have been earned back, all of them reserved already
        assert_eq!(budget.reserve(now + secs(1.0)), Some(secs(0.25)));
    }

    /// Over any stretch of time, no more than rate × time + burst requests are let through,
    /// however many callers ask at once.
    #[tokio::test(start_paused = true)]
    async fn many_callers_are_paced_to_the_rate() {
        let budget = Arc::new(budget(10.0, secs(60.0)));
        let started = Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (budget, sent) = (budget.clone(), sent.clone());
                tokio::spawn(async move {
                    budget.acquire().await.expect("within the cap");
                    sent.lock().unwrap().push(Instant::now() - started);
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        let sent = sent.lock().unwrap().clone();
        for t in [0.0, 0.5, 1.0, 2.0, 3.0, 4.0] {
            let by_then = sent.iter().filter(|at| **at <= secs(t)).count();
            assert!(by_then as f64 <= 10.0 * t + 10.0 + 1e-9, "{by_then} sent by {t} s");
        }
        // and none waited longer than it had to: 50 at 10/s with a burst of 10 take 4 s
        assert!(sent.iter().all(|at| *at <= secs(4.0 + 1e-6)), "{sent:?}");
    }

    /// A throttled answer halves the rate once per congestion event, down to the floor; the
    /// rate climbs back linearly to the configured one.
    #[tokio::test(start_paused = true)]
    async fn throttling_cuts_the_rate_and_it_recovers() {
        let budget = budget(20.0, secs(5.0));
        let t0 = Instant::now();
        budget.throttled(t0);
        assert_eq!(budget.rate(), 10.0);
        // answers to requests already in flight: one event (the rate only recovered a little)
        budget.throttled(t0 + secs(0.5));
        assert_eq!(budget.rate(), 11.0);
        // later throttles keep cutting, never below the floor (10% of 20/s)
        for n in 1..=10 {
            budget.throttled(t0 + secs(1.001 * n as f64));
            assert!(budget.rate() >= 2.0, "{}", budget.rate());
        }
        let floor = budget.rate();
        assert!(floor < 2.1, "floor {floor}");
        // recovery: + 2/s per second (20/s over 10 s), capped at the configured rate
        let later = t0 + secs(10.01 + 5.0);
        budget.reserve(later);
        let recovered = budget.rate();
        assert!((floor + 9.9..floor + 10.1).contains(&recovered), "{recovered}");
        budget.reserve(later + secs(60.0));
        assert_eq!(budget.rate(), 20.0);
    }

    /// A cut rate paces the waiting callers at the lower rate.
    #[tokio::test(start_paused = true)]
    async fn a_cut_rate_paces_new_turns_more_slowly() {
        let budget = budget(10.0, secs(10.0));
        let now = Instant::now();
        for _ in 0..10 {
            budget.reserve(now);
        }
        budget.throttled(now);
        // the bucket is empty; the next turn is one request at 5/s away
        assert_eq!(budget.reserve(now), Some(secs(0.2)));
    }

    /// The wait is real (on tokio's clock) and bounded by the cap; the refusal says why.
    #[tokio::test(start_paused = true)]
    async fn acquire_waits_for_the_turn_or_refuses() {
        let budget = budget(1.0, secs(2.0));
        let started = Instant::now();
        assert_eq!(budget.acquire().await, Ok(Duration::ZERO));
        assert_eq!(budget.acquire().await, Ok(secs(1.0)));
        assert_eq!(Instant::now() - started, secs(1.0));
        budget.reserve(Instant::now());
        budget.reserve(Instant::now());
        let refused = budget.acquire().await.unwrap_err();
        assert_eq!(refused.service, "ecr");
        assert!(refused.to_string().contains("no turn within 2s"), "{refused}");
        assert_eq!(Instant::now() - started, secs(1.0), "a refusal does not wait");
    }

    /// The real SDK client: its attempts take turns from the budget; an attempt beyond the wait
    /// cap is not sent, classified `RateLimited`, and counted as a refusal, not a request.
    #[tokio::test]
    async fn an_sdk_call_beyond_the_budget_is_refused_before_it_is_sent() {
        // a sent attempt fails as unreachable (and the SDK retries it)
        let sdk_config = crate::aws::unreachable_sdk_config();
        let metrics = crate::telemetry::Metrics::new();
        let limits = RateLimits {
            ecr_per_second: 0.1,
            iam_per_second: 10.0,
            max_wait: Duration::from_secs(1),
        };
        let clients = crate::aws::AwsClients::new(sdk_config, metrics.aws.clone()).rate_limited_to(limits);
        let result = clients.ecr("eu-west-1").describe_repositories().send().await;
        let error = crate::aws::AwsError::from_sdk("DescribeRepositories", result.unwrap_err());
        // the first attempt went out (unreachable); its retry had no turn within a second
        assert_eq!(error.kind, crate::aws::AwsErrorKind::RateLimited, "{error}");
        let text = metrics.render();
        assert!(
            text.contains(
                r#"berth_aws_requests_total{operation="DescribeRepositories",outcome="timeout",service="ecr"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"berth_aws_rate_limit_refusals_total{region="eu-west-1",service="ecr"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"berth_aws_rate_limit_requests_per_second{region="eu-west-1",service="ecr"} 0.1"#),
            "{text}"
        );
        // the budget is the region's, shared by every client of it
        assert_eq!(clients.budget("ecr", "eu-west-1").reserve(Instant::now()), None);
        assert!(clients.budget("ecr", "us-east-1").reserve(Instant::now()).is_some());
    }

    #[test]
    fn refusals_are_found_in_a_source_chain() {
        let refused = RateLimited {
            service: "iam",
            region: "global".into(),
            rate: 1.0,
            max_wait: secs(5.0),
        };
        let error = ConnectorError::other(Box::new(refused), None);
        assert!(is_rate_limited(&error));
        assert!(!is_rate_limited(&ConnectorError::io("reset".into())));
    }
}

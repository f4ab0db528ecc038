//! The shared AWS rate budget, end to end against the test bed: what AWS sees stays within the
//! configured rate, and throttling slows berth down without ever showing in a condition.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::proxy::{AwsProxy, Call};
use common::{Operator, Setup, metric_sum, setup, wait_for, wait_reason};
use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::{WatchStreamExt, watcher};

const REPOSITORIES: usize = 6;

/// Every Ready reason (as `name: reason`) the EcrRepositories of the test's namespace showed
/// while it watched.
struct ReasonsSeen {
    seen: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReasonsSeen {
    fn watch(s: &Setup) -> Self {
        let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let stream = watcher(s.repositories.clone(), watcher::Config::default()).applied_objects();
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                futures::pin_mut!(stream);
                while let Some(object) = stream.next().await {
                    let Ok(object) = object else { continue };
                    let conditions = object.status.map(|s| s.conditions).unwrap_or_default();
                    for condition in conditions.iter().filter(|c| c.type_ == "Ready") {
                        let name = object.metadata.name.as_deref().unwrap_or_default();
                        seen.lock().unwrap().insert(format!("{name}: {}", condition.reason));
                    }
                }
            }
        });
        Self { seen, task }
    }

    fn stop(self) -> BTreeSet<String> {
        self.task.abort();
        self.seen.lock().unwrap().clone()
    }
}

/// Every ECR request the proxy saw, in order of arrival.
fn ecr_requests(proxy: &AwsProxy) -> Vec<Call> {
    let mut calls: Vec<Call> = proxy
        .counts()
        .keys()
        // STS (asked once at start) has a budget of its own; these tests create no IAM role
        .filter(|operation| *operation != "GetCallerIdentity")
        .flat_map(|operation| proxy.invocations(operation).into_iter().flatten())
        .collect();
    calls.sort_by_key(|call| call.at);
    calls
}

async fn create_repositories(s: &Setup) -> Vec<String> {
    let names: Vec<String> = (0..REPOSITORIES).map(|i| format!("r{i}")).collect();
    for name in &names {
        s.create(
            name,
            serde_json::json!({
                "repositoryName": format!("{}/{name}", s.namespace),
                "tags": {"team": "budget"},
                "access": {"pull": [{"accountId": "111122223333"}]},
            }),
        )
        .await;
    }
    names
}

async fn wait_all_synced(s: &Setup, names: &[String], operator: &Operator) {
    for name in names {
        wait_reason(&s.repositories, name, "Synced", operator).await;
    }
}

/// With a low rate, AWS sees at most rate × time + burst requests over any stretch of time
/// (counted at the proxy), and everything still converges, with no failure in any condition.
/// Without the budget the first reconciles of six new repositories send their calls at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_rate_bounds_what_aws_sees() {
    let Some(s) = setup("e2e-budget-rate").await else {
        return;
    };
    const RATE: f64 = 3.0;
    let (proxy, operator) = s
        .operator_behind_proxy(&["--resync-interval", "1h", "--aws-ecr-max-requests-per-second", "3"])
        .await;
    let reasons = ReasonsSeen::watch(&s);
    let names = create_repositories(&s).await;
    wait_all_synced(&s, &names, &operator).await;
    let reasons = reasons.stop();

    let calls = ecr_requests(&proxy);
    assert!(
        calls.iter().all(|call| !call.operation.contains("Role")),
        "no IAM call expected"
    );
    // one second's worth at once, then the rate; 0.1 s of slack for the way to the proxy
    let burst = RATE;
    for (i, first) in calls.iter().enumerate() {
        for (j, last) in calls.iter().enumerate().skip(i) {
            let span = last.at - first.at;
            let requests = j - i + 1;
            let allowed = RATE * (span.as_secs_f64() + 0.1) + burst;
            assert!(
                requests as f64 <= allowed,
                "{requests} ECR requests within {span:?} (at most {allowed:.1} at {RATE}/s): {:?}",
                calls
                    .iter()
                    .map(|c| (&c.operation, c.at - calls[0].at))
                    .collect::<Vec<_>>()
            );
        }
    }
    let (_, metrics) = operator.get("/metrics").await.expect("/metrics answers");
    let waits = metric_sum(&metrics, "berth_aws_rate_limit_wait_seconds_sum", &[("service", "ecr")]);
    let refusals = metric_sum(&metrics, "berth_aws_rate_limit_refusals_total", &[("service", "ecr")]);
    eprintln!(
        "{} ECR requests over {:?}; waited {waits:.1} s in all, {refusals:.0} refused; reasons seen: {reasons:?}",
        calls.len(),
        calls.last().unwrap().at - calls[0].at,
    );
    // the budget did hold requests back (else this test proves nothing)
    assert!(waits > 0.0 || refusals > 0.0, "{metrics}");
    assert!(
        calls.len() as f64 > 2.0 * burst,
        "too few requests to tell: {}",
        calls.len()
    );
    // berth pacing itself never shows as a failure
    assert!(
        reasons
            .iter()
            .all(|r| !r.ends_with("RateLimited") && !r.ends_with("AwsThrottled")),
        "{reasons:?}"
    );
}

/// Under throttling (every third request answered ThrottlingException) everything converges,
/// the ECR budget's rate goes down, and no condition ever shows AwsThrottled; a throttle that
/// outlasts the SDK's retries is retried with backoff while Ready keeps what it said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_slows_berth_down_and_is_not_a_failure() {
    let Some(s) = setup("e2e-budget-throttle").await else {
        return;
    };
    let (proxy, operator) = s.operator_behind_proxy(&["--resync-interval", "1h"]).await;
    let reasons = ReasonsSeen::watch(&s);

    // the lowest ECR rate /metrics showed while converging
    let lowest_rate = Arc::new(Mutex::new(f64::MAX));
    let sampler = tokio::spawn({
        let (lowest_rate, addr) = (lowest_rate.clone(), operator.http_addr.clone());
        async move {
            loop {
                if let Some((_, text)) = common::http_get(&addr, "/metrics").await {
                    let rate = metric_sum(&text, "berth_aws_rate_limit_requests_per_second", &[("service", "ecr")]);
                    if rate > 0.0 {
                        let mut lowest = lowest_rate.lock().unwrap();
                        *lowest = lowest.min(rate);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    proxy.throttle_every(3);
    let names = create_repositories(&s).await;
    wait_all_synced(&s, &names, &operator).await;
    proxy.throttle_every(0);
    sampler.abort();
    let (_, metrics) = operator.get("/metrics").await.expect("/metrics answers");
    let throttled = metric_sum(&metrics, "berth_aws_requests_total", &[("outcome", "throttled")]);
    let lowest = *lowest_rate.lock().unwrap();
    eprintln!("{throttled} throttled answers; lowest ECR rate {lowest:.1}/s");
    assert!(throttled > 0.0, "the proxy throttled nothing");
    // at least one cut from the default 50/s (one per congestion event: how many depends on how
    // long converging takes, which berth keeps making shorter)
    assert!(lowest < 30.0, "the ECR rate never went down from 50/s: {lowest}");

    // a throttle that outlasts the SDK's retries: the reconcile of a spec change fails, and
    // is retried without touching the object's status
    let before = s.repositories.get("r0").await.unwrap();
    proxy.fail_always("DescribeRepositories", "ThrottlingException", "Rate exceeded");
    s.merge(
        "r0",
        serde_json::json!({"spec": {"tags": {"team": "budget", "tier": "2"}}}),
    )
    .await;
    let failed = wait_for(Duration::from_secs(30), || async {
        let (_, text) = operator.get("/metrics").await?;
        let failures = metric_sum(
            &text,
            "berth_reconcile_errors_total",
            &[("kind", "EcrRepository"), ("reason", "throttled")],
        );
        (failures >= 1.0).then_some(())
    })
    .await;
    proxy.stop_failing("DescribeRepositories");
    assert!(failed.is_some(), "no reconcile failed throttled");
    let during = s.repositories.get("r0").await.unwrap();
    assert_eq!(
        during.status.as_ref().map(|s| &s.conditions),
        before.status.as_ref().map(|s| &s.conditions),
        "a throttled reconcile changed the conditions"
    );
    let synced = wait_reason(&s.repositories, "r0", "Synced", &operator).await;
    assert!(synced.resource_version() != before.resource_version());
    let reasons = reasons.stop();
    assert!(
        reasons
            .iter()
            .all(|r| !r.ends_with("AwsThrottled") && !r.ends_with("RateLimited")),
        "{reasons:?}"
    );
    assert!(s.events("r0", "AwsThrottled").await.is_empty());
}

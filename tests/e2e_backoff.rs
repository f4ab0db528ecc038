//! Backoff that holds, end to end against the test bed: under a persistent throttle the attempts
//! follow berth's backoff (a status write does not re-trigger the reconcile) and the Ready
//! condition does not flap, the repeated failure is one Event series (reported once it has
//! persisted over `QUIET_THROTTLES` reconciles); a spec change still triggers a reconcile at
//! once.

mod common;

use std::time::Duration;

use common::{metric_sum, setup, wait_reason};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::{WatchStreamExt, watcher};

/// How long the throttle lasts once the first failure is in status.
const THROTTLED_FOR: Duration = Duration::from_secs(60);
/// Attempts the SDK makes per call (berth's standard retry configuration).
const SDK_ATTEMPTS: usize = 4;

/// The least wait berth's backoff allows after the n-th consecutive transient failure:
/// 2^(n-1) s scaled by the lowest jitter, 0.5.
fn least_backoff(failures: usize) -> Duration {
    Duration::from_secs_f64(0.5 * 2f64.powi(failures as i32 - 1))
}

fn ready(object: &berth::api::EcrRepository) -> Option<Condition> {
    let status = object.status.as_ref()?;
    status.conditions.iter().find(|c| c.type_ == "Ready").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_throttle_follows_the_backoff_and_ready_does_not_flap() {
    let Some(s) = setup("e2e-backoff").await else { return };
    // a long resync: only the backoff (and changes to the object) may start a reconcile
    let (proxy, operator) = s.operator_behind_proxy(&["--resync-interval", "1h"]).await;
    proxy.fail_always("DescribeRepositories", "ThrottlingException", "Rate exceeded");
    s.create(
        "api",
        serde_json::json!({"repositoryName": format!("{}/api", s.namespace)}),
    )
    .await;
    let failed = wait_reason(&s.repositories, "api", "AwsThrottled", &operator).await;
    let first_failure = ready(&failed).expect("a Ready condition");
    assert_eq!(first_failure.status, "False");

    // every version of the object while the throttle lasts
    let seen = watcher(
        s.repositories.clone(),
        watcher::Config::default().fields("metadata.name=api"),
    )
    .applied_objects()
    .take_until(tokio::time::sleep(THROTTLED_FOR))
    .filter_map(|object| async move { object.ok() })
    .collect::<Vec<_>>()
    .await;
    let calls = proxy.invocations("DescribeRepositories");
    let (_, metrics) = operator.get("/metrics").await.expect("/metrics answers");
    let reconciles = metric_sum(&metrics, "berth_reconciles_total", &[("kind", "EcrRepository")]) as usize;
    let gaps: Vec<Duration> = calls
        .windows(2)
        .map(|pair| pair[1][0].at - pair[0][pair[0].len() - 1].at)
        .collect();
    eprintln!(
        "{reconciles} reconciles, DescribeRepositories calls (attempts each): {:?}, gaps between calls: {gaps:?}",
        calls.iter().map(Vec::len).collect::<Vec<_>>()
    );

    // the status written by the first failure stays, unchanged and not rewritten
    assert!(!seen.is_empty());
    for object in &seen {
        assert_eq!(
            ready(object).as_ref(),
            Some(&first_failure),
            "Ready changed while the same failure repeated"
        );
        assert_eq!(
            object.resource_version(),
            failed.resource_version(),
            "the object was written again while the same failure repeated"
        );
    }
    // one call per reconcile, each retried by the SDK, and each next reconcile no sooner than
    // the backoff allows: a status write must not start one early
    assert_eq!(calls.len(), reconciles, "one DescribeRepositories call per reconcile");
    assert!(calls.iter().all(|call| call.len() <= SDK_ATTEMPTS));
    for (failures, gap) in gaps.iter().enumerate().map(|(i, gap)| (i + 1, *gap)) {
        assert!(
            gap >= least_backoff(failures),
            "reconcile {} started {gap:?} after failure {failures}; the backoff waits at least {:?} (gaps: {gaps:?})",
            failures + 1,
            least_backoff(failures)
        );
    }
    // and still being made: four reconciles take at most 1.5 + 3 + 6 s of backoff (highest
    // jitter) and the SDK's retries
    assert!(reconciles >= 4, "retries stopped after {reconciles} reconciles");

    // the same failure again and again is one Warning Event whose series counts the failures
    // reported: all but the first few throttled reconciles, which the rate budget absorbs
    let warnings = s.events("api", "AwsThrottled").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let count = warnings[0].series.as_ref().map_or(1, |series| series.count) as usize;
    let reported = calls.len() - berth::error::QUIET_THROTTLES as usize;
    // (a reconcile may have been under way when the calls were counted, its Event published
    // after the Events were listed, or another one failed in between)
    assert!(
        (reported - 1..=reported + 1).contains(&count),
        "series count {count} for {reported} reported failed reconciles"
    );

    // once the throttle is lifted, a spec change is reconciled at once, whatever the backoff
    proxy.stop_failing("DescribeRepositories");
    s.merge("api", serde_json::json!({"spec": {"tags": {"team": "ops"}}}))
        .await;
    let synced = wait_reason(&s.repositories, "api", "Synced", &operator).await;
    assert_eq!(ready(&synced).map(|c| c.status).as_deref(), Some("True"));
}

//! The statistics refresher: image count, total size and newest push of every managed
//! repository, read through the image inventory every `--stats-interval` (the reads spread
//! evenly over the interval) and published as gauges and in the status under the field manager
//! `berth-stats`, written only when the images changed. Reading through the inventory lets a
//! feature that retains a repository (the lifecycle preview) reuse this read instead of its own.
//!
//! It takes what it needs as arguments rather than the controller's context, so that `images`
//! stays below `controller` (no import circle).

use std::collections::BTreeMap;
use std::sync::Mutex;

use std::time::Duration;
use tokio::sync::Notify;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;

use super::{ImageInventory, RepositoryRef};
use crate::api::EcrRepositoryStatus;
use crate::aws::ImageStats;
use crate::telemetry::{Metrics, ObjectKey};

pub const STATS_FIELD_MANAGER: &str = "berth-stats";

/// The repository whose images an object's statistics count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsTarget {
    pub region: String,
    pub repository: String,
}

impl StatsTarget {
    /// The repository as the image inventory knows it.
    pub fn repository_ref(&self) -> RepositoryRef {
        RepositoryRef::new(&self.region, &self.repository)
    }
}

/// The three status fields `berth-stats` owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusStats {
    pub image_count: i64,
    pub size_bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pushed_at: Option<String>,
}

impl StatusStats {
    pub fn from_images(stats: &ImageStats) -> Self {
        Self {
            image_count: stats.image_count,
            size_bytes: stats.size_bytes,
            last_pushed_at: stats.last_pushed_at.and_then(rfc3339),
        }
    }

    pub fn from_status(status: &EcrRepositoryStatus) -> Option<Self> {
        Some(Self {
            image_count: status.image_count?,
            size_bytes: status.size_bytes?,
            last_pushed_at: status.last_pushed_at.clone(),
        })
    }
}

fn rfc3339(unix_seconds: i64) -> Option<String> {
    k8s_openapi::jiff::Timestamp::from_second(unix_seconds)
        .ok()
        .map(|t| t.to_string())
}

struct Tracked {
    target: StatsTarget,
    /// What the status holds now, as far as this replica knows.
    written: Option<StatusStats>,
    /// Visited at least once (new targets are visited before the cycle goes on).
    visited: bool,
}

/// The repositories the refresher visits; the EcrRepository reconciler adds the ones it owns.
#[derive(Default)]
pub struct StatsTargets {
    targets: Mutex<BTreeMap<ObjectKey, Tracked>>,
    added: Notify,
}

impl StatsTargets {
    pub fn track(&self, key: ObjectKey, target: StatsTarget, status: Option<&EcrRepositoryStatus>) {
        let mut targets = self.targets.lock().expect("stats lock");
        if targets.get(&key).is_some_and(|t| t.target == target) {
            return;
        }
        let written = status.and_then(StatusStats::from_status);
        targets.insert(
            key,
            Tracked {
                target,
                written,
                visited: false,
            },
        );
        self.added.notify_one();
    }

    pub fn untrack(&self, key: &ObjectKey) {
        self.targets.lock().expect("stats lock").remove(key);
    }

    pub fn keys(&self) -> Vec<ObjectKey> {
        self.targets.lock().expect("stats lock").keys().cloned().collect()
    }

    fn len(&self) -> usize {
        self.targets.lock().expect("stats lock").len()
    }

    /// A target never visited yet, marked visited: a new repository does not wait a cycle.
    fn next_new(&self) -> Option<(ObjectKey, StatsTarget)> {
        let mut targets = self.targets.lock().expect("stats lock");
        let (key, tracked) = targets.iter_mut().find(|(_, t)| !t.visited)?;
        tracked.visited = true;
        Some((key.clone(), tracked.target.clone()))
    }

    /// The target after `cursor` in key order, wrapping around: one step of the cycle.
    fn next_after(&self, cursor: Option<&ObjectKey>) -> Option<(ObjectKey, StatsTarget)> {
        let targets = self.targets.lock().expect("stats lock");
        let after = cursor.and_then(|c| {
            targets
                .range::<ObjectKey, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                .next()
        });
        after
            .or_else(|| targets.iter().next())
            .map(|(key, tracked)| (key.clone(), tracked.target.clone()))
    }

    /// Whether `stats` must be written: the target is still tracked as read and its status
    /// holds something else.
    fn needs_write(&self, key: &ObjectKey, target: &StatsTarget, stats: &StatusStats) -> bool {
        let targets = self.targets.lock().expect("stats lock");
        // untracked or retargeted meanwhile: this result is stale
        targets
            .get(key)
            .is_some_and(|tracked| &tracked.target == target && tracked.written.as_ref() != Some(stats))
    }

    fn written(&self, key: &ObjectKey, stats: StatusStats) {
        if let Some(tracked) = self.targets.lock().expect("stats lock").get_mut(key) {
            tracked.written = Some(stats);
        }
    }
}

/// How long to wait between two repositories so that a whole cycle takes `interval`.
pub fn pause_between(interval: Duration, targets: usize) -> Duration {
    interval / u32::try_from(targets.max(1)).unwrap_or(u32::MAX)
}

/// Runs until dropped (the leader term ends): new targets at once, then one step of the cycle
/// per pause, so that each repository is read once per `interval`.
pub async fn refresh_loop(
    inventory: &ImageInventory,
    targets: &StatsTargets,
    client: &Client,
    metrics: &Metrics,
    interval: Duration,
) {
    let refresher = Refresher {
        inventory,
        targets,
        client,
        metrics,
    };
    let mut cursor: Option<ObjectKey> = None;
    loop {
        let mut visited_new = false;
        while let Some((key, target)) = targets.next_new() {
            refresher.refresh(&key, &target).await;
            visited_new = true;
        }
        // a step of the cycle only after a pause, so a new target is not read twice in a row
        if !visited_new && let Some((key, target)) = targets.next_after(cursor.as_ref()) {
            refresher.refresh(&key, &target).await;
            cursor = Some(key);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause_between(interval, targets.len())) => {}
            _ = targets.added.notified() => {}
        }
    }
}

/// What one refresh needs, borrowed from the caller of `refresh_loop`.
struct Refresher<'a> {
    inventory: &'a ImageInventory,
    targets: &'a StatsTargets,
    client: &'a Client,
    metrics: &'a Metrics,
}

impl Refresher<'_> {
    async fn refresh(&self, key: &ObjectKey, target: &StatsTarget) {
        let images = match self.inventory.read(&target.repository_ref()).await {
            Ok(images) => ImageStats::from_images(&images),
            Err(error) => {
                tracing::warn!(namespace = key.0, name = key.1, %error, "could not read repository statistics");
                return;
            }
        };
        self.metrics.set_repository_stats(
            key,
            &target.repository,
            images.image_count,
            images.size_bytes,
            images.last_pushed_at.unwrap_or_default(),
        );
        let stats = StatusStats::from_images(&images);
        if !self.targets.needs_write(key, target, &stats) {
            return;
        }
        let patch = serde_json::json!({
            "apiVersion": "ecr.berth.dev/v1alpha1",
            "kind": "EcrRepository",
            "status": &stats,
        });
        let api = Api::<crate::api::EcrRepository>::namespaced(self.client.clone(), &key.0);
        match api
            .patch_status(
                &key.1,
                &PatchParams::apply(STATS_FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => self.targets.written(key, stats),
            Err(kube::Error::Api(status)) if status.code == 404 => self.targets.untrack(key),
            Err(error) => {
                tracing::warn!(namespace = key.0, name = key.1, %error, "could not write repository statistics")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ("team".into(), name.into())
    }

    fn target(name: &str) -> StatsTarget {
        StatsTarget {
            region: "eu-west-1".into(),
            repository: format!("team/{name}"),
        }
    }

    #[test]
    fn stats_render_as_status_fields() {
        let stats = StatusStats::from_images(&ImageStats {
            image_count: 2,
            size_bytes: 2048,
            last_pushed_at: Some(1_795_000_000),
        });
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            serde_json::json!({"imageCount": 2, "sizeBytes": 2048, "lastPushedAt": "2026-11-18T11:06:40Z"})
        );
        let empty = StatusStats::from_images(&ImageStats::default());
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            serde_json::json!({"imageCount": 0, "sizeBytes": 0})
        );
    }

    #[test]
    fn a_status_is_written_only_when_the_images_changed() {
        let targets = StatsTargets::default();
        let status = EcrRepositoryStatus {
            image_count: Some(1),
            size_bytes: Some(10),
            ..Default::default()
        };
        targets.track(key("api"), target("api"), Some(&status));
        let same = StatusStats {
            image_count: 1,
            size_bytes: 10,
            last_pushed_at: None,
        };
        assert!(!targets.needs_write(&key("api"), &target("api"), &same));
        let more = StatusStats {
            image_count: 2,
            size_bytes: 20,
            last_pushed_at: None,
        };
        assert!(targets.needs_write(&key("api"), &target("api"), &more));
        targets.written(&key("api"), more.clone());
        assert!(!targets.needs_write(&key("api"), &target("api"), &more));
        // a result for a target that was untracked meanwhile is dropped
        targets.untrack(&key("api"));
        assert!(!targets.needs_write(&key("api"), &target("api"), &more));
    }

    #[test]
    fn new_targets_first_then_a_wrapping_cycle_spread_over_the_interval() {
        let targets = StatsTargets::default();
        targets.track(key("a"), target("a"), None);
        targets.track(key("c"), target("c"), None);
        let first: Vec<String> = std::iter::from_fn(|| targets.next_new()).map(|(k, _)| k.1).collect();
        assert_eq!(first, ["a", "c"]);
        targets.track(key("b"), target("b"), None);
        assert_eq!(targets.next_new().map(|(k, _)| k.1).as_deref(), Some("b"));
        assert_eq!(targets.next_new(), None);
        let step = |cursor: &str| targets.next_after(Some(&key(cursor))).map(|(k, _)| k.1);
        assert_eq!(targets.next_after(None).map(|(k, _)| k.1).as_deref(), Some("a"));
        assert_eq!(step("a").as_deref(), Some("b"));
        assert_eq!(step("c").as_deref(), Some("a"));
        // a cursor whose target was untracked still moves on
        targets.untrack(&key("b"));
        assert_eq!(step("b").as_deref(), Some("c"));
        assert_eq!(pause_between(Duration::from_secs(3600), 3600), Duration::from_secs(1));
        assert_eq!(pause_between(Duration::from_secs(60), 0), Duration::from_secs(60));
    }
}

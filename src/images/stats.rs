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

use kube::Client;
use serde::Serialize;

use super::rotation::Rotation;
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

/// The repositories the refresher visits; the EcrRepository reconciler adds the ones it owns.
#[derive(Default)]
pub struct StatsTargets {
    rotation: Rotation<StatsTarget>,
    /// What each status holds now, as far as this replica knows.
    written: Mutex<BTreeMap<ObjectKey, StatusStats>>,
}

impl StatsTargets {
    pub fn track(&self, key: ObjectKey, target: StatsTarget, status: Option<&EcrRepositoryStatus>) {
        if self.rotation.track(key.clone(), target) {
            let mut written = self.written.lock().expect("stats lock");
            match status.and_then(StatusStats::from_status) {
                Some(stats) => written.insert(key, stats),
                None => written.remove(&key),
            };
        }
    }

    pub fn untrack(&self, key: &ObjectKey) {
        self.rotation.untrack(key);
        self.written.lock().expect("stats lock").remove(key);
    }

    pub fn keys(&self) -> Vec<ObjectKey> {
        self.rotation.keys()
    }

    /// Whether `stats` must be written: the target is still tracked as read and its status
    /// holds something else.
    fn needs_write(&self, key: &ObjectKey, target: &StatsTarget, stats: &StatusStats) -> bool {
        // untracked or retargeted meanwhile: this result is stale
        self.rotation.is_tracked(key, target) && self.written.lock().expect("stats lock").get(key) != Some(stats)
    }

    fn written(&self, key: &ObjectKey, stats: StatusStats) {
        self.written.lock().expect("stats lock").insert(key.clone(), stats);
    }
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
    let refresher = &Refresher {
        inventory,
        targets,
        client,
        metrics,
    };
    targets
        .rotation
        .cycle(
            || interval,
            |key, target| async move { refresher.refresh(&key, &target).await },
        )
        .await;
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
        let written = crate::writes::apply_status::<crate::api::EcrRepository>(
            self.client,
            Some(&key.0),
            &key.1,
            STATS_FIELD_MANAGER,
            &stats,
        );
        match written.await {
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
}

//! A rotation over tracked objects, shared by the refreshers that read something per repository
//! (statistics, scan findings): new objects first (spaced, never a burst), then one object per
//! `interval / N`, so that each is visited once per interval and the reads are spread evenly.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::telemetry::ObjectKey;

struct Entry<T> {
    target: T,
    /// Visited at least once (new targets are visited before the cycle goes on).
    visited: bool,
}

/// The objects a refresher visits, each with what it needs to know (`T`).
pub struct Rotation<T> {
    entries: Mutex<BTreeMap<ObjectKey, Entry<T>>>,
    added: Notify,
}

impl<T> Default for Rotation<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            added: Notify::new(),
        }
    }
}

impl<T: Clone + PartialEq> Rotation<T> {
    /// Tracks `key` with `target`; returns true when it is new or its target changed (it is
    /// then visited before the cycle goes on).
    pub fn track(&self, key: ObjectKey, target: T) -> bool {
        let mut entries = self.entries.lock().expect("rotation lock");
        if entries.get(&key).is_some_and(|e| e.target == target) {
            return false;
        }
        entries.insert(key, Entry { target, visited: false });
        self.added.notify_one();
        true
    }

    pub fn untrack(&self, key: &ObjectKey) {
        self.entries.lock().expect("rotation lock").remove(key);
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&self, mut keep: impl FnMut(&ObjectKey, &T) -> bool) {
        self.entries
            .lock()
            .expect("rotation lock")
            .retain(|key, entry| keep(key, &entry.target));
    }

    pub fn keys(&self) -> Vec<ObjectKey> {
        self.entries.lock().expect("rotation lock").keys().cloned().collect()
    }

    /// Whether `key` is tracked with exactly `target` (a result read for another target is stale).
    pub fn is_tracked(&self, key: &ObjectKey, target: &T) -> bool {
        self.entries
            .lock()
            .expect("rotation lock")
            .get(key)
            .is_some_and(|entry| &entry.target == target)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("rotation lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A target never visited yet, marked visited: a new repository does not wait a cycle.
    fn next_new(&self) -> Option<(ObjectKey, T)> {
        let mut entries = self.entries.lock().expect("rotation lock");
        let (key, entry) = entries.iter_mut().find(|(_, e)| !e.visited)?;
        entry.visited = true;
        Some((key.clone(), entry.target.clone()))
    }

    /// The target after `cursor` in key order, wrapping around: one step of the cycle.
    fn next_after(&self, cursor: Option<&ObjectKey>) -> Option<(ObjectKey, T)> {
        let entries = self.entries.lock().expect("rotation lock");
        let after = cursor.and_then(|c| {
            entries
                .range::<ObjectKey, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                .next()
        });
        after
            .or_else(|| entries.iter().next())
            .map(|(key, entry)| (key.clone(), entry.target.clone()))
    }

    /// Runs until dropped: new targets at once, then one step of the cycle per pause, so that
    /// each target is visited once per `interval()` (asked anew each step: it may change).
    pub async fn cycle<F, Fut>(&self, interval: impl Fn() -> Duration, mut visit: F)
    where
        F: FnMut(ObjectKey, T) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut cursor: Option<ObjectKey> = None;
        loop {
            let mut visited_new = false;
            while let Some((key, target)) = self.next_new() {
                // many new targets at once (a start, a new policy over 10,000 repositories) are
                // read one after another, at most one per second or per interval/N if shorter:
                // never a burst
                if visited_new {
                    tokio::time::sleep(new_target_spacing(interval(), self.len())).await;
                }
                visit(key, target).await;
                visited_new = true;
            }
            // a step of the cycle only after a pause, so a new target is not read twice in a row
            if !visited_new && let Some((key, target)) = self.next_after(cursor.as_ref()) {
                visit(key.clone(), target).await;
                cursor = Some(key);
            }
            tokio::select! {
                _ = tokio::time::sleep(pause_between(interval(), self.len())) => {}
                _ = self.added.notified() => {}
            }
        }
    }
}

/// The spacing between two new targets read in a row: interval/N, at most a second.
pub fn new_target_spacing(interval: Duration, targets: usize) -> Duration {
    pause_between(interval, targets).min(Duration::from_secs(1))
}

/// How long to wait between two targets so that a whole cycle takes `interval`.
pub fn pause_between(interval: Duration, targets: usize) -> Duration {
    interval / u32::try_from(targets.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ("team".into(), name.into())
    }

    #[test]
    fn new_targets_first_then_a_wrapping_cycle_spread_over_the_interval() {
        let rotation = Rotation::<u32>::default();
        assert!(rotation.track(key("a"), 1));
        assert!(rotation.track(key("c"), 1));
        assert!(!rotation.track(key("c"), 1), "the same target again is not new");
        let first: Vec<String> = std::iter::from_fn(|| rotation.next_new()).map(|(k, _)| k.1).collect();
        assert_eq!(first, ["a", "c"]);
        rotation.track(key("b"), 1);
        assert_eq!(rotation.next_new().map(|(k, _)| k.1).as_deref(), Some("b"));
        assert_eq!(rotation.next_new(), None);
        // a changed target is visited again before the cycle goes on
        assert!(rotation.track(key("a"), 2));
        assert_eq!(rotation.next_new(), Some((key("a"), 2)));
        let step = |cursor: &str| rotation.next_after(Some(&key(cursor))).map(|(k, _)| k.1);
        assert_eq!(rotation.next_after(None).map(|(k, _)| k.1).as_deref(), Some("a"));
        assert_eq!(step("a").as_deref(), Some("b"));
        assert_eq!(step("c").as_deref(), Some("a"));
        // a cursor whose target was untracked still moves on
        rotation.untrack(&key("b"));
        assert_eq!(step("b").as_deref(), Some("c"));
        assert!(rotation.is_tracked(&key("c"), &1) && !rotation.is_tracked(&key("c"), &2));
        rotation.retain(|k, _| k.1 != "c");
        assert_eq!(rotation.keys(), [key("a")]);
        assert_eq!(pause_between(Duration::from_secs(3600), 3600), Duration::from_secs(1));
        assert_eq!(pause_between(Duration::from_secs(60), 0), Duration::from_secs(60));
        // new targets: 10,000 under a 1h interval are read 0.36 s apart, a few at most 1 s apart
        assert_eq!(
            new_target_spacing(Duration::from_secs(3600), 10_000),
            Duration::from_millis(360)
        );
        assert_eq!(new_target_spacing(Duration::from_secs(3600), 3), Duration::from_secs(1));
    }
}

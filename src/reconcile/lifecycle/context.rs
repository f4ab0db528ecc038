//! The LifecyclePolicy kind's own state: which repositories were confirmed in sync during a
//! resync, and whose images each policy keeps in the inventory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::api::LifecyclePolicy;
use crate::images::RepositoryRef;
use crate::reconcile::runtime::{Runtime, Stores};
use crate::telemetry::ObjectKey;

/// The inventory consumer name: a governed repository's images stay in memory for previews.
pub const IMAGES_CONSUMER: &str = "lifecycle";

/// The LifecyclePolicy kind's own context.
pub struct Lifecycles {
    /// How old the images behind a preview may be (the statistics interval).
    pub images_max_age: Duration,
    /// Repositories found in sync with a text (by hash) during a resync epoch: not read again.
    confirmed: Mutex<HashMap<RepositoryRef, (u64, u64)>>,
    /// The repositories whose images each policy keeps in the inventory.
    retained: Mutex<HashMap<ObjectKey, BTreeSet<RepositoryRef>>>,
    /// The LifecyclePolicy Controllers' own stores: selection compares each policy with the
    /// others of its namespace without listing them from the apiserver on every reconcile.
    pub policies: Stores<LifecyclePolicy>,
}

impl Lifecycles {
    pub fn new(images_max_age: Duration) -> Self {
        Self {
            images_max_age,
            confirmed: Mutex::default(),
            retained: Mutex::default(),
            policies: Stores::default(),
        }
    }

    pub(super) fn is_confirmed(&self, target: &RepositoryRef, text: &str, epoch: u64) -> bool {
        let hash = crate::naming::fnv1a(text.as_bytes());
        self.confirmed.lock().expect("confirmed lock").get(target) == Some(&(hash, epoch))
    }

    pub(super) fn confirm(&self, target: &RepositoryRef, text: &str, epoch: u64) {
        let hash = crate::naming::fnv1a(text.as_bytes());
        self.confirmed
            .lock()
            .expect("confirmed lock")
            .insert(target.clone(), (hash, epoch));
    }

    pub(super) fn unconfirm(&self, target: &RepositoryRef) {
        self.confirmed.lock().expect("confirmed lock").remove(target);
    }

    /// Records the repositories `policy` previews; the inventory lets go of the images of a
    /// repository no policy previews any longer.
    pub(super) fn retain(&self, runtime: &Runtime, policy: &ObjectKey, repositories: BTreeSet<RepositoryRef>) {
        let mut retained = self.retained.lock().expect("retained lock");
        let before = if repositories.is_empty() {
            retained.remove(policy)
        } else {
            retained.insert(policy.clone(), repositories)
        };
        let still: BTreeSet<&RepositoryRef> = retained.values().flatten().collect();
        for repository in before.iter().flatten() {
            if !still.contains(repository) {
                runtime.images.release(IMAGES_CONSUMER, repository);
            }
        }
    }

    /// The policies that keep some repository's images.
    pub fn policies(&self) -> Vec<ObjectKey> {
        self.retained.lock().expect("retained lock").keys().cloned().collect()
    }

    /// The policies whose preview rests on `repository`'s images.
    pub fn policies_previewing(&self, repository: &RepositoryRef) -> Vec<ObjectKey> {
        let retained = self.retained.lock().expect("retained lock");
        retained
            .iter()
            .filter(|(_, repositories)| repositories.contains(repository))
            .map(|(policy, _)| policy.clone())
            .collect()
    }
}

//! The LifecyclePolicy kind: structured lifecycle rules applied to the EcrRepositories it
//! selects in its namespace, with a preview of what they would do. validate (`crate::lifecycle`)
//! → assign (`select`, pure) → plan (`plan`, pure) → execute and status (`apply`).

mod apply;
pub mod plan;
pub mod select;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use kube::runtime::controller::Action;

pub use apply::{FINALIZER, IMAGES_CONSUMER, KIND, REPOSITORY_FIELD_MANAGER};

use crate::api::LifecyclePolicy;
use crate::error::Error;
use crate::images::RepositoryRef;
use crate::reconcile::harness::Reconciler;
use crate::reconcile::runtime::{ObjectId, Runtime};
use crate::telemetry::ObjectKey;

/// The LifecyclePolicy kind's own context.
pub struct Lifecycles {
    /// How old the images behind a preview may be (the statistics interval).
    pub images_max_age: Duration,
    /// Repositories found in sync with a text (by hash) during a resync epoch: not read again.
    confirmed: Mutex<HashMap<RepositoryRef, (u64, u64)>>,
    /// The repositories whose images each policy keeps in the inventory.
    retained: Mutex<HashMap<ObjectKey, BTreeSet<RepositoryRef>>>,
}

impl Lifecycles {
    pub fn new(images_max_age: Duration) -> Self {
        Self {
            images_max_age,
            confirmed: Mutex::default(),
            retained: Mutex::default(),
        }
    }

    fn is_confirmed(&self, target: &RepositoryRef, text: &str, epoch: u64) -> bool {
        let hash = crate::naming::fnv1a(text.as_bytes());
        self.confirmed.lock().expect("confirmed lock").get(target) == Some(&(hash, epoch))
    }

    fn confirm(&self, target: &RepositoryRef, text: &str, epoch: u64) {
        let hash = crate::naming::fnv1a(text.as_bytes());
        self.confirmed
            .lock()
            .expect("confirmed lock")
            .insert(target.clone(), (hash, epoch));
    }

    fn unconfirm(&self, target: &RepositoryRef) {
        self.confirmed.lock().expect("confirmed lock").remove(target);
    }

    /// Records the repositories `policy` previews; the inventory lets go of the images of a
    /// repository no policy previews any longer.
    fn retain(&self, runtime: &Runtime, policy: &ObjectKey, repositories: BTreeSet<RepositoryRef>) {
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

#[async_trait]
impl Reconciler for Lifecycles {
    type Object = LifecyclePolicy;
    const KIND: &'static str = KIND;

    async fn apply(&self, policy: &LifecyclePolicy, runtime: &Runtime) -> Result<Action, Error> {
        apply::apply(policy, self, runtime).await
    }

    async fn cleanup(&self, policy: &LifecyclePolicy, runtime: &Runtime) -> Result<Action, Error> {
        let action = apply::cleanup(policy, self, runtime).await?;
        let id = ObjectId::of(KIND, policy);
        runtime.forget_object(&id);
        self.forget(&id.key, runtime);
        Ok(action)
    }

    async fn write_failure(&self, policy: &LifecyclePolicy, runtime: &Runtime, error: &Error) {
        apply::write_failure(policy, runtime, error).await;
    }

    fn forget(&self, key: &ObjectKey, runtime: &Runtime) {
        self.retain(runtime, key, BTreeSet::new());
        runtime.metrics.forget_lifecycle(key);
    }

    fn tracked(&self, _runtime: &Runtime) -> Vec<ObjectKey> {
        self.retained.lock().expect("retained lock").keys().cloned().collect()
    }
}

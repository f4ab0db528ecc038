//! The LifecyclePolicy kind: structured lifecycle rules applied to the EcrRepositories it
//! selects in its namespace, with a preview of what they would do. validate (`crate::lifecycle`)
//! → assign (`select`, pure) → plan (`plan`, pure) → execute and status (`apply`).

mod apply;
mod context;
pub mod plan;
pub mod record;
pub mod select;

use std::collections::BTreeSet;

use async_trait::async_trait;
use kube::runtime::controller::Action;

pub use apply::{FINALIZER, KIND, REPOSITORY_FIELD_MANAGER};
pub use context::{IMAGES_CONSUMER, Lifecycles};

use crate::api::LifecyclePolicy;
use crate::error::Error;
use crate::reconcile::harness::Reconciler;
use crate::reconcile::runtime::{ObjectId, Runtime};
use crate::telemetry::ObjectKey;

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
        self.policies()
    }
}

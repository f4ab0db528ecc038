//! The EcrRepository kind: validate (`desired`, `access`) → observe (`observe`) → plan
//! (`plan`, `access`; pure, in phases) → execute (`execute`) → status (`status`, pure), run
//! phase by phase by `apply`.

pub mod access;
mod apply;
pub mod desired;
mod execute;
mod observe;
pub mod plan;
mod scope;
pub mod settings;
pub mod status;

use async_trait::async_trait;
use kube::runtime::controller::Action;

pub use apply::FINALIZER;
pub use scope::KIND;
pub use settings::{Repositories, RoleSettings, ValidationSettings};

use crate::api::EcrRepository;
use crate::error::Error;
use crate::reconcile::harness::Reconciler;
use crate::reconcile::runtime::{ObjectId, Runtime};
use crate::telemetry::ObjectKey;

#[async_trait]
impl Reconciler for Repositories {
    type Object = EcrRepository;
    const KIND: &'static str = KIND;

    async fn apply(&self, repository: &EcrRepository, runtime: &Runtime) -> Result<Action, Error> {
        apply::apply(repository, self, runtime).await
    }

    async fn cleanup(&self, repository: &EcrRepository, runtime: &Runtime) -> Result<Action, Error> {
        let action = apply::cleanup(repository, self, runtime).await?;
        // released: nothing is kept about it any longer
        let id = ObjectId::of(KIND, repository);
        runtime.forget_object(&id);
        self.forget(&id.key, runtime);
        Ok(action)
    }

    async fn write_failure(&self, repository: &EcrRepository, runtime: &Runtime, error: &Error) {
        apply::write_failure(repository, runtime, error).await;
    }

    fn forget(&self, key: &ObjectKey, runtime: &Runtime) {
        runtime.stats.untrack(key);
        runtime.metrics.forget_repository_stats(key);
        runtime.metrics.forget_image_findings(key);
    }

    fn tracked(&self, runtime: &Runtime) -> Vec<ObjectKey> {
        let mut tracked = runtime.stats.keys();
        tracked.extend(runtime.metrics.objects_with_repository_gauges());
        tracked
    }
}

//! The ScanPolicy kind: the registry scanning configuration of a region (one effective policy
//! per region: the oldest), the configuration that applies to each managed repository, and the
//! findings of each covered repository's newest image. validate (`crate::scan`) → observe →
//! compare (`crate::scan`, pure) → execute and status (`apply`); findings in `findings`.

mod apply;
mod context;
pub mod findings;
pub mod mapping;

use async_trait::async_trait;
use kube::runtime::controller::Action;

pub use apply::{FINALIZER, KIND, ScanChange};
pub use context::{IMAGES_CONSUMER, RegionRules, SCAN_COMPLIANT, ScanRecord, ScanTarget, Scans};

use crate::api::ScanPolicy;
use crate::error::Error;
use crate::reconcile::harness::Reconciler;
use crate::reconcile::runtime::{ObjectId, Runtime};

#[async_trait]
impl Reconciler for Scans {
    type Object = ScanPolicy;
    const KIND: &'static str = KIND;

    async fn apply(&self, policy: &ScanPolicy, runtime: &Runtime) -> Result<Action, Error> {
        apply::apply(policy, self, runtime).await
    }

    async fn cleanup(&self, policy: &ScanPolicy, runtime: &Runtime) -> Result<Action, Error> {
        let action = apply::cleanup(policy, self, runtime).await?;
        let id = ObjectId::of(KIND, policy);
        runtime.forget_object(&id);
        Ok(action)
    }

    async fn write_failure(&self, policy: &ScanPolicy, runtime: &Runtime, error: &Error) {
        apply::write_failure(policy, runtime, error).await;
    }
}

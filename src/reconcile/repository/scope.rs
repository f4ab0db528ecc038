//! One reconcile's view of its object: the object, the kind's context and the shared runtime,
//! and whether the changes it makes are drift (the spec did not ask for them).

use kube::Resource;
use kube::runtime::events::EventType;

use super::settings::Repositories;
use crate::api::EcrRepository;
use crate::reconcile::harness::{self, Change};
use crate::reconcile::runtime::Runtime;

pub const KIND: &str = "EcrRepository";

pub struct Scope<'a> {
    pub repository: &'a EcrRepository,
    pub kind: &'a Repositories,
    pub runtime: &'a Runtime,
    /// Synced at this generation before: any change needed now was made outside berth.
    pub drift_only: bool,
}

impl Scope<'_> {
    /// A Normal Event about the repository (`action` is the AWS operation).
    pub async fn event(&self, reason: &str, action: &str, note: &str) {
        self.runtime
            .publish(
                &self.repository.object_ref(&()),
                EventType::Normal,
                reason,
                action,
                note,
            )
            .await;
    }

    /// Reports an executed change: its reason, or `DriftCorrected` when the spec did not ask.
    pub async fn report(&self, change: &impl Change, note: &str) {
        harness::report(
            self.runtime,
            KIND,
            &self.repository.object_ref(&()),
            change,
            self.drift_only,
            note,
        )
        .await;
    }
}

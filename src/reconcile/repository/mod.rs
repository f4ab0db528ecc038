//! The EcrRepository reconciler: validate (`desired`) → observe → plan (`plan`, pure) → apply →
//! status (`status`, pure).

mod apply;
pub mod desired;
pub mod plan;
pub mod status;

pub use apply::{FINALIZER, reconcile};

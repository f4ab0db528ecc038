//! The EcrRepository reconciler: validate (`desired`) → observe → plan (`plan`, pure) → apply →
//! status (`status`, pure).

pub mod access;
mod apply;
mod apply_access;
pub mod desired;
pub mod plan;
pub mod status;

pub use apply::{FINALIZER, reconcile};

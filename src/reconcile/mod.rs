//! One module per kind: validate → build desired state → plan (pure) → apply (IO) → status.

pub mod repository;
pub mod stats;

//! The reconcilers: one module per kind, run by one generic harness on a kind-agnostic runtime.
//! Dependencies point one way: api ← policy/lifecycle ← reconcile ← controller.

pub mod events;
pub mod harness;
pub mod lifecycle;
pub mod ownership;
pub mod repository;
pub mod runtime;
pub mod scan;

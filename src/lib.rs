//! berth: a Kubernetes operator that manages Amazon ECR declaratively.
//!
//! The pure core (`api` validation, `policy`, `lifecycle`, planning in `reconcile`) takes no
//! client; the IO lives in `aws`, `controller` and the `apply` halves of `reconcile`.
#![forbid(unsafe_code)]
#![deny(warnings)]

pub mod api;
pub mod aws;
pub mod config;
pub mod controller;
pub mod error;
pub mod images;
pub mod lifecycle;
pub mod naming;
pub mod policy;
pub mod reconcile;
pub mod scan;
pub mod telemetry;
pub mod writes;

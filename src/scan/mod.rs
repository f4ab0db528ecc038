//! Registry scanning, pure: validation of a ScanPolicy, berth's model of a registry scanning
//! configuration (compared as sets), ECR's repository filter wildcards, and the evaluation of
//! findings against thresholds. No IO and no Kubernetes client: it depends only on `crate::api`.
//!
//! The reconciler's path: `desired_scanning(&spec, region)` (refusing an invalid spec with a
//! message naming the field) → compare `desired.config` with the observed `ScanningConfig` (`==`
//! is the semantic comparison) → one `PutRegistryScanningConfiguration` when they differ; the
//! findings of each covered repository → `Counts` → `exceeded` / `is_compliant` for its
//! ScanCompliant condition, and `summarize` over all of them for the policy's status.

mod config;
mod findings;
mod validate;
mod wildcard;

pub use config::ScanningConfig;
pub use findings::{Counts, RepositoryFindings, Severity, Thresholds, exceeded, is_compliant, summarize};
pub use validate::{
    DEFAULT_REFRESH_INTERVAL, DesiredScanning, FindingsRules, InvalidScan, MAX_REFRESH_INTERVAL, desired_scanning,
};
pub use wildcard::filter_matches;

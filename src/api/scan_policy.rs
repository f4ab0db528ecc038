//! `ScanPolicy`: the registry's scanning configuration for one region, and findings thresholds.
//! The reconciler for this kind is not built yet; the type already carries the API of DESIGN.md.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Conditions;
use super::repository::REGION_PATTERN;

/// The registry scanning configuration of one region, and how findings are judged.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ecr.berth.dev",
    version = "v1alpha1",
    kind = "ScanPolicy",
    shortname = "ecrscan",
    category = "berth",
    status = "ScanPolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "The ECR registry scanning configuration of a region, managed by berth.",
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Scan", type_ = "string", json_path = ".spec.scanType"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicySpec {
    /// AWS region whose registry this configures. Defaults to the operator's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 32), regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,
    /// Basic or Enhanced (Amazon Inspector).
    pub scan_type: ScanType,
    /// At most 2 rules; Basic allows only ScanOnPush.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub rules: Vec<ScanRule>,
    /// Evaluate findings of berth-managed repositories against thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingsPolicy>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanType {
    #[default]
    Basic,
    Enhanced,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScanRule {
    pub frequency: ScanFrequency,
    /// Repository name filters with `*` wildcards; at most 100.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 256)))]
    pub repository_filters: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanFrequency {
    #[default]
    ScanOnPush,
    ContinuousScan,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FindingsPolicy {
    /// Above a threshold a repository's ScanCompliant condition becomes False.
    #[serde(default)]
    pub thresholds: SeverityThresholds,
    /// How often findings are read, e.g. 15m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = r"^[0-9]+(s|m|h)$"))]
    pub refresh_interval: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityThresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub critical: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub high: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub medium: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub low: Option<i64>,
}

/// Observed state of a ScanPolicy.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 8))]
    pub conditions: Conditions,
}

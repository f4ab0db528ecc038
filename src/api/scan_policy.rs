//! `ScanPolicy`: the registry's scanning configuration for one region, and findings thresholds.
//!
//! Validation lives in three layers that must agree: the schema below (types, enums, bounds,
//! patterns), the CEL rules below (cross-field rules), and `crate::scan::desired_scanning`, which
//! checks all of it again for clusters older than 1.25 that drop CEL, plus the refresh interval's
//! minimum, which CEL does not check.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Conditions;
use super::repository::REGION_PATTERN;

/// ECR's grammar of a scanning repository filter: lowercase letters, digits, `.`, `_`, `-`, `/`
/// and the `*` wildcard; starting and ending with a letter, digit or `*`, separators not doubled.
pub const SCAN_FILTER_PATTERN: &str = r"^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$";
/// A refresh interval: one to three groups of a number and a unit (`s`, `m`, `h`), e.g. `15m`,
/// `1h30m`. The number of digits is bounded so that no interval overflows.
pub const REFRESH_INTERVAL_PATTERN: &str = r"^([0-9]{1,6}[hms]){1,3}$";

/// ECR allows two registry scanning rules, one per frequency.
pub const MAX_SCAN_RULES: usize = 2;
/// ECR's bound on the filters of one scanning rule.
pub const MAX_REPOSITORY_FILTERS: usize = 100;
/// ECR's bound on the length of one scanning filter (its API refuses 256 characters).
pub const MAX_REPOSITORY_FILTER_LENGTH: usize = 255;
pub const MAX_REFRESH_INTERVAL_LENGTH: usize = 16;
/// Repositories listed in `status.nonCompliant`; `status.summary` counts them all.
pub const MAX_NON_COMPLIANT_LISTED: usize = 50;
/// The longest namespace name (a DNS label).
pub const MAX_NAMESPACE_LENGTH: usize = 63;
/// The longest object name (a DNS subdomain).
pub const MAX_OBJECT_NAME_LENGTH: usize = 253;
/// The longest ECR repository name.
pub const MAX_REPOSITORY_NAME_LENGTH: usize = 256;
/// Room for an image digest (`sha256:` and 64 hex digits) with a longer algorithm name.
pub const MAX_IMAGE_DIGEST_LENGTH: usize = 128;

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
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "NonCompliant", type_ = "integer", json_path = ".status.summary.nonCompliant"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("self.scanType != 'Basic' || !has(self.rules) || self.rules.all(r, r.frequency == 'ScanOnPush')")
        .message("spec.rules: scanType Basic allows only ScanOnPush rules (ContinuousScan needs Enhanced)"),
)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicySpec {
    /// AWS region whose registry this configures, e.g. eu-west-1. Defaults to the operator's
    /// region. One ScanPolicy is effective per region: the oldest; the others report Conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 32), regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,

    /// Basic (ECR's own scanner; scan on push or manual) or Enhanced (Amazon Inspector; scan on
    /// push or continuous).
    pub scan_type: ScanType,

    /// The registry's scanning rules, at most 2 and one per frequency. Repositories that match
    /// no rule are scanned manually only (Basic) or not at all (Enhanced). With Basic only
    /// ScanOnPush is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SCAN_RULES))]
    #[x_kube(
        validation = Rule::new("self.all(r, self.exists_one(s, s.frequency == r.frequency))")
            .message("spec.rules: frequencies must be unique (ECR allows one rule per frequency)"),
    )]
    pub rules: Vec<ScanRule>,

    /// Evaluate the findings of berth-managed repositories in this region against thresholds.
    /// Without it berth configures scanning only and reads no findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingsPolicy>,
}

/// The scanner of a registry.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ScanType {
    #[default]
    Basic,
    Enhanced,
}

/// One registry scanning rule: how often the repositories matching its filters are scanned.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScanRule {
    /// ScanOnPush (scan each pushed image) or ContinuousScan (Enhanced only: rescan as new
    /// vulnerabilities are published). Where filters of both rules match a repository,
    /// ContinuousScan applies.
    pub frequency: ScanFrequency,

    /// Repository name filters, 1 to 100, no duplicates. Each is 1 to 255 characters of
    /// lowercase letters, digits, `.`, `_`, `-`, `/` and the `*` wildcard. A filter without `*`
    /// matches every repository name that contains it; with `*` (any run of characters,
    /// including `/`), the whole name must match.
    #[schemars(
        length(min = 1, max = MAX_REPOSITORY_FILTERS),
        inner(length(min = 1, max = MAX_REPOSITORY_FILTER_LENGTH), regex(pattern = SCAN_FILTER_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub repository_filters: Vec<String>,
}

/// How often a scanning rule scans the repositories it matches.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScanFrequency {
    #[default]
    ScanOnPush,
    ContinuousScan,
}

/// How the findings of berth-managed repositories are judged and how often they are read.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FindingsPolicy {
    /// The most findings of each severity a compliant image may have. A repository whose newest
    /// image has more findings of some severity than its threshold gets ScanCompliant=False;
    /// a severity without a threshold is not limited.
    #[serde(default)]
    pub thresholds: SeverityThresholds,

    /// How often the findings of every covered repository are read, e.g. `15m`, `1h`, `90s`
    /// (units s, m, h; at least 1m, at most 168h). Defaults to 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = MAX_REFRESH_INTERVAL_LENGTH), regex(pattern = REFRESH_INTERVAL_PATTERN))]
    pub refresh_interval: Option<String>,
}

/// The most findings of each severity that an image may have and stay compliant.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityThresholds {
    /// The most CRITICAL findings allowed (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub critical: Option<i64>,
    /// The most HIGH findings allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub high: Option<i64>,
    /// The most MEDIUM findings allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub medium: Option<i64>,
    /// The most LOW findings allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub low: Option<i64>,
    /// The most INFORMATIONAL findings allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub informational: Option<i64>,
    /// The most findings of UNDEFINED severity (Inspector's UNTRIAGED) allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub undefined: Option<i64>,
}

/// Observed state of a ScanPolicy. Deterministic: no timestamps outside the conditions.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicyStatus {
    /// The metadata.generation that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Stalled, Reconciling; one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 8))]
    pub conditions: Conditions,

    /// The registry scanning configuration berth found before its first write to the region,
    /// recorded once; deleting the effective policy restores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<RecordedScanning>,

    /// The region `previous` was recorded in: cleanup restores there, whatever the spec or the
    /// operator's default region say by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 32), regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,

    /// Findings over every berth-managed repository of the region the policy covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ScanSummary>,

    /// Non-compliant repositories, worst first (most critical findings, then high, medium, low,
    /// informational, undefined, then namespace and name); at most 50, summary counts them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NON_COMPLIANT_LISTED))]
    pub non_compliant: Vec<NonCompliantRepository>,
}

/// A registry scanning configuration as ECR reported it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedScanning {
    /// Basic or Enhanced.
    pub scan_type: ScanType,
    /// The rules, at most 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SCAN_RULES))]
    pub rules: Vec<RecordedScanRule>,
}

/// One registry scanning rule as ECR reported it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedScanRule {
    /// ScanOnPush, ContinuousScan or Manual, as ECR reported it.
    pub frequency: RecordedFrequency,
    /// The rule's repository filters (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_REPOSITORY_FILTERS),
        inner(length(max = MAX_REPOSITORY_FILTER_LENGTH))
    )]
    pub repository_filters: Vec<String>,
}

/// A scan frequency as ECR reports it: besides the two a ScanPolicy declares, Manual (set by
/// hand, kept so that it can be restored exactly).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordedFrequency {
    #[default]
    ScanOnPush,
    ContinuousScan,
    Manual,
}

/// Findings summed over the covered repositories.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScanSummary {
    /// berth-managed repositories the policy covers (in its region).
    pub repositories: i64,
    /// Of those, repositories whose newest image has a completed scan.
    pub scanned: i64,
    /// Of those, repositories above a threshold.
    pub non_compliant: i64,
    /// CRITICAL findings over the scanned repositories.
    pub critical: i64,
    /// HIGH findings over the scanned repositories.
    pub high: i64,
    /// MEDIUM findings over the scanned repositories.
    pub medium: i64,
    /// LOW findings over the scanned repositories.
    pub low: i64,
    /// INFORMATIONAL findings over the scanned repositories.
    pub informational: i64,
    /// UNDEFINED (untriaged) findings over the scanned repositories.
    pub undefined: i64,
}

/// One repository above a threshold, with the findings of its newest image.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NonCompliantRepository {
    /// Namespace of the EcrRepository.
    #[schemars(length(max = MAX_NAMESPACE_LENGTH))]
    pub namespace: String,
    /// metadata.name of the EcrRepository.
    #[schemars(length(max = MAX_OBJECT_NAME_LENGTH))]
    pub name: String,
    /// Name of the ECR repository.
    #[schemars(length(max = MAX_REPOSITORY_NAME_LENGTH))]
    pub repository: String,
    /// CRITICAL findings.
    pub critical: i64,
    /// HIGH findings.
    pub high: i64,
    /// MEDIUM findings.
    pub medium: i64,
    /// LOW findings.
    pub low: i64,
    /// INFORMATIONAL findings.
    pub informational: i64,
    /// UNDEFINED (untriaged) findings.
    pub undefined: i64,
    /// Digest of the image the counts belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_IMAGE_DIGEST_LENGTH))]
    pub image_digest: Option<String>,
}

//! `LifecyclePolicy`: lifecycle rules applied to selected EcrRepositories of a namespace.
//!
//! Validation lives in three layers that must agree: the schema below (types, enums, bounds,
//! patterns), the CEL rules below (cross-field rules), and `crate::lifecycle::rules`, which
//! checks all of it again for clusters older than 1.25 that drop CEL.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Conditions;

/// A Kubernetes object name (DNS-1123 subdomain): how `spec.repositories` names EcrRepositories.
pub const OBJECT_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A label value: empty, or alphanumerics with `-`, `_`, `.` inside (at most 63 characters).
pub const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/// An entry of `tagPatterns`: image tag characters and `*` wildcards.
pub const TAG_WILDCARD_PATTERN: &str = r"^[A-Za-z0-9._*-]+$";
/// An entry of `tagPrefixes`: image tag characters, no wildcard.
pub const TAG_PREFIX_PATTERN: &str = r"^[A-Za-z0-9._-]+$";

/// Rules per policy: enough for any real retention scheme, and few enough that the CEL rules
/// comparing rules with each other stay cheap (50 × 50).
pub const MAX_LIFECYCLE_RULES: usize = 50;
/// berth's bound on rule priorities (ECR documents none); gaps leave room to insert rules.
pub const MAX_RULE_PRIORITY: i32 = 1000;
pub const MAX_RULE_DESCRIPTION_LENGTH: usize = 256;
/// Entries of one tagPatterns or tagPrefixes list: every entry must match, so long lists select
/// nothing, and each entry costs CEL and policy text.
pub const MAX_TAG_FILTERS: usize = 20;
/// The longest image tag.
pub const MAX_TAG_FILTER_LENGTH: usize = 128;
/// ECR refuses tag patterns with more than four `*`.
pub const MAX_WILDCARDS_PER_PATTERN: usize = 4;
/// ECR's countNumber is a 32-bit integer.
pub const MAX_COUNT_NUMBER: i64 = i32::MAX as i64;
/// Repositories named in `spec.repositories`; a selector serves larger sets.
pub const MAX_REPOSITORY_NAMES: usize = 100;
pub const MAX_MATCH_LABELS: usize = 20;
/// Entries of `status.repositories`, which keep the status far below etcd's object size limit;
/// `status.selected` counts them all.
pub const MAX_STATUS_REPOSITORIES: usize = 500;
pub const MAX_STATUS_MESSAGE_LENGTH: usize = 512;
/// Repositories listed in `status.preview`; `previewTotals` covers them all.
pub const MAX_PREVIEW_REPOSITORIES: usize = 100;
pub const MAX_PREVIEW_EXAMPLES: usize = 5;
pub const MAX_PREVIEW_EXAMPLE_LENGTH: usize = 256;
/// ECR repositories `status.enforced` records: one policy's rules on 10,000 repositories are
/// cleaned up after their EcrRepositories are gone.
pub const MAX_ENFORCED_REPOSITORIES: usize = 10_000;
/// The bytes of all names in `status.enforced` (10,000 names of about 50 characters). With the
/// rest of the status at its bounds (about 0.6 MB) the object stays below etcd's 1.5 MiB.
pub const MAX_ENFORCED_NAME_BYTES: usize = 512 * 1024;
/// (region, registry) groups in `status.enforced`.
pub const MAX_ENFORCED_GROUPS: usize = 100;
/// ECR's longest repository name.
pub const MAX_ECR_REPOSITORY_NAME_LENGTH: usize = 256;

/// Lifecycle rules that expire or archive images of the selected EcrRepositories.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ecr.berth.dev",
    version = "v1alpha1",
    kind = "LifecyclePolicy",
    namespaced,
    shortname = "ecrlp",
    category = "berth",
    status = "LifecyclePolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ECR lifecycle rules applied by berth to selected EcrRepositories.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Selected", type_ = "integer", json_path = ".status.selected"),
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
    printcolumn(
        name = "Expire",
        type_ = "integer",
        json_path = ".status.previewTotals.expire",
        priority = 1
    ),
    printcolumn(
        name = "Transition",
        type_ = "integer",
        json_path = ".status.previewTotals.transition",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("has(self.repositorySelector) != has(self.repositories)")
        .message("spec: set exactly one of repositorySelector and repositories"),
)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicySpec {
    /// Selects EcrRepositories of this namespace by label; set this or `repositories`. An empty
    /// selector selects every EcrRepository of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_selector: Option<RepositorySelector>,

    /// Selects EcrRepositories of this namespace by metadata.name (1 to 100, no duplicates); set
    /// this or `repositorySelector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(min = 1, max = MAX_REPOSITORY_NAMES),
        inner(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub repositories: Vec<String>,

    /// Enforce (default) puts the rendered policy on every selected repository; Preview only
    /// computes what the rules would do (status.preview) and changes nothing in AWS.
    #[serde(default)]
    pub mode: LifecycleMode,

    /// The rules, 1 to 50, with unique priorities. ECR evaluates them from the lowest priority
    /// number up; an image is acted on by at most one rule.
    #[schemars(length(min = 1, max = MAX_LIFECYCLE_RULES))]
    #[x_kube(
        validation = Rule::new("self.all(r, self.exists_one(s, s.priority == r.priority))")
            .message("spec.rules: priorities must be unique"),
        validation = Rule::new("self.all(r, r.selection.tagStatus != 'Any' || self.all(s, s.priority <= r.priority))")
            .message("spec.rules: tagStatus Any is only allowed in the rule with the highest priority number (ECR evaluates it last)"),
    )]
    pub rules: Vec<LifecycleRule>,
}

/// A label selector over the EcrRepositories of the namespace (matchLabels only).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySelector {
    /// Labels an EcrRepository must carry, all of them (at most 20). Empty selects every
    /// EcrRepository of the namespace.
    #[serde(default)]
    // `inner(...)` does not reach a map's values; the value schema is spelled out instead
    #[schemars(extend(
        "maxProperties" = MAX_MATCH_LABELS,
        "additionalProperties" = {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN}
    ))]
    #[x_kube(
        validation = Rule::new("self.all(k, size(k) >= 1 && size(k) <= 317)")
            .message("spec.repositorySelector.matchLabels: keys must be label keys of 1 to 317 characters ([prefix/]name)"),
    )]
    pub match_labels: BTreeMap<String, String>,
}

/// Whether berth applies the rules or only previews them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LifecycleMode {
    #[default]
    Enforce,
    Preview,
}

/// One lifecycle rule: which images it selects and what happens to them.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("self.selection.countType != 'SinceImagePulled' || self.action.type == 'Transition'")
        .message("spec.rules[]: countType SinceImagePulled is only allowed with action type Transition"),
    validation = Rule::new("self.selection.countType != 'SinceImageTransitioned' || self.action.type == 'Expire'")
        .message("spec.rules[]: countType SinceImageTransitioned needs action type Expire"),
)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    /// Evaluation order, 1 to 1000: ECR evaluates the lowest number first. Unique within the
    /// policy; need not be consecutive.
    #[schemars(range(min = 1, max = MAX_RULE_PRIORITY))]
    pub priority: i32,

    /// Free text kept in the rendered policy (at most 256 characters); ECR shows it, nothing
    /// evaluates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_RULE_DESCRIPTION_LENGTH))]
    pub description: Option<String>,

    /// Which images the rule selects.
    pub selection: LifecycleSelection,

    /// What happens to the selected images beyond the count: Expire or Transition.
    pub action: LifecycleAction,
}

/// Which images a lifecycle rule selects, and which of them it acts on.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("self.tagStatus != 'Tagged' || has(self.tagPatterns) != has(self.tagPrefixes)")
        .message("spec.rules[].selection: tagStatus Tagged needs exactly one of tagPatterns and tagPrefixes"),
    validation = Rule::new("self.tagStatus == 'Tagged' || (!has(self.tagPatterns) && !has(self.tagPrefixes))")
        .message("spec.rules[].selection: tagPatterns and tagPrefixes are only allowed with tagStatus Tagged"),
    validation = Rule::new("has(self.countUnit) == (self.countType != 'ImageCountMoreThan')")
        .message("spec.rules[].selection: countUnit is required with the Since* count types and not allowed with ImageCountMoreThan"),
    validation = Rule::new("self.countType != 'SinceImageTransitioned' || (has(self.storageClass) && self.storageClass == 'Archive')")
        .message("spec.rules[].selection: countType SinceImageTransitioned needs storageClass Archive"),
    validation = Rule::new("!has(self.storageClass) || self.storageClass != 'Archive' || self.countType == 'SinceImageTransitioned'")
        .message("spec.rules[].selection: storageClass Archive is only allowed with countType SinceImageTransitioned"),
)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSelection {
    /// Tagged (images with at least one tag matching tagPatterns or tagPrefixes), Untagged, or
    /// Any (all images; only in the rule with the highest priority number).
    pub tag_status: TagStatus,

    /// With Tagged: wildcard patterns, `*` matching any characters (at most 4 per pattern); the
    /// whole tag must match. An image is selected when every pattern matches one of its tags.
    /// 1 to 20 entries; set this or tagPrefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(min = 1, max = MAX_TAG_FILTERS),
        inner(length(min = 1, max = MAX_TAG_FILTER_LENGTH), regex(pattern = TAG_WILDCARD_PATTERN))
    )]
    #[x_kube(
        validation = Rule::new("self.all(p, !p.matches('^([^*]*[*]){5}'))")
            .message("spec.rules[].selection.tagPatterns: at most 4 '*' wildcards per pattern"),
    )]
    pub tag_patterns: Vec<String>,

    /// With Tagged: tag prefixes. An image is selected when every prefix starts one of its tags.
    /// 1 to 20 entries; set this or tagPatterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(min = 1, max = MAX_TAG_FILTERS),
        inner(length(min = 1, max = MAX_TAG_FILTER_LENGTH), regex(pattern = TAG_PREFIX_PATTERN))
    )]
    pub tag_prefixes: Vec<String>,

    /// ImageCountMoreThan keeps the newest countNumber selected images (by push time) and acts
    /// on the rest; SinceImagePushed, SinceImagePulled (Transition only; an image never pulled
    /// counts from its push) and SinceImageTransitioned (Archive, Expire only) act on images
    /// older than countNumber days by that time.
    pub count_type: CountType,

    /// The number of images to keep, or the age in days; 1 to 2147483647.
    #[schemars(range(min = 1, max = MAX_COUNT_NUMBER))]
    pub count_number: i64,

    /// Days: required with the Since* count types, not allowed with ImageCountMoreThan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<CountUnit>,

    /// The storage class of the images the rule looks at: Standard (default), or Archive, which
    /// is required with (and only allowed with) SinceImageTransitioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<StorageClass>,
}

/// Which images a rule considers by their tags.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TagStatus {
    #[default]
    Tagged,
    Untagged,
    Any,
}

/// How a rule decides which of its selected images to act on.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CountType {
    #[default]
    ImageCountMoreThan,
    SinceImagePushed,
    SinceImagePulled,
    SinceImageTransitioned,
}

impl CountType {
    /// The count types that measure an age (and therefore need a countUnit).
    pub fn is_age(self) -> bool {
        !matches!(self, Self::ImageCountMoreThan)
    }
}

/// The unit of an age in a lifecycle rule; ECR knows only days.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CountUnit {
    #[default]
    Days,
}

/// ECR's storage classes for images: Standard, or Archive (not pullable, cheaper).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StorageClass {
    #[default]
    Standard,
    Archive,
}

/// What a lifecycle rule does to the images it acts on.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("self.type != 'Transition' || (has(self.targetStorageClass) && self.targetStorageClass == 'Archive')")
        .message("spec.rules[].action: type Transition needs targetStorageClass Archive"),
    validation = Rule::new("self.type == 'Transition' || !has(self.targetStorageClass)")
        .message("spec.rules[].action: targetStorageClass is only allowed with type Transition"),
)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleAction {
    /// Expire deletes the images; Transition moves them to the archive storage class.
    #[serde(rename = "type")]
    pub type_: LifecycleActionType,

    /// With Transition, and only then: the storage class to move images to (Archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_storage_class: Option<StorageClass>,
}

/// The kinds of lifecycle action.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LifecycleActionType {
    #[default]
    Expire,
    Transition,
}

/// Observed state of a LifecyclePolicy. Deterministic: no timestamps outside the conditions.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyStatus {
    /// The metadata.generation that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Stalled, Reconciling; one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 8))]
    pub conditions: Conditions,

    /// How many EcrRepositories the policy selects, including those beyond the `repositories`
    /// list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected: Option<i64>,

    /// One entry per selected repository (at most 500; problems first when there are more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_STATUS_REPOSITORIES))]
    pub repositories: Vec<SelectedRepository>,

    /// What the rules would do now, per repository (at most 100 listed; previewTotals counts
    /// all of them). Computed by berth from the image inventory in both modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PREVIEW_REPOSITORIES))]
    pub preview: Vec<LifecyclePreview>,

    /// The preview summed over every selected repository, also those not listed in preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_totals: Option<PreviewTotals>,

    /// The ECR repositories that hold (or may hold) these rules, per region and registry:
    /// recorded before berth puts the rules, removed once berth took them off. Deletion cleans
    /// up from this record, so it works when the EcrRepositories are gone too; a repository
    /// whose lifecycle policy is no longer this policy's text keeps it. At most 10,000 names
    /// (512 KiB of names); repositories beyond that are not enforced (state Error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ENFORCED_GROUPS))]
    pub enforced: Vec<EnforcedRepositories>,
}

/// ECR repositories of one region and registry that hold a LifecyclePolicy's rules.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnforcedRepositories {
    /// The AWS region, e.g. eu-west-1.
    #[schemars(length(max = 64))]
    pub region: String,
    /// The registry (AWS account) id.
    #[schemars(length(max = 12))]
    pub registry_id: String,
    /// ECR repository names, sorted.
    #[schemars(
        length(max = MAX_ENFORCED_REPOSITORIES),
        inner(length(min = 1, max = MAX_ECR_REPOSITORY_NAME_LENGTH))
    )]
    pub names: Vec<String>,
}

/// How the policy stands with one selected repository.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SelectedRepository {
    /// metadata.name of the EcrRepository.
    #[schemars(length(max = 253))]
    pub name: String,
    /// Applied (the policy is on the repository), Previewed (mode Preview), Conflict (an older
    /// LifecyclePolicy selects it too and wins) or Error.
    pub state: SelectionState,
    /// Why, for Conflict (naming the winning policy) and Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_MESSAGE_LENGTH))]
    pub message: Option<String>,
}

/// The outcome of the policy for one selected repository.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SelectionState {
    #[default]
    Applied,
    Conflict,
    Error,
    Previewed,
}

/// What the rules would do now to one repository's images.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePreview {
    /// metadata.name of the EcrRepository.
    #[schemars(length(max = 253))]
    pub repository: String,
    /// Images a rule would expire.
    pub expire: i64,
    /// Images a rule would move to the archive.
    pub transition: i64,
    /// Images no rule acts on.
    pub keep: i64,
    /// Up to 5 images acted on, oldest first: their tags, or the digest of an untagged image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PREVIEW_EXAMPLES), inner(length(max = MAX_PREVIEW_EXAMPLE_LENGTH)))]
    pub examples: Vec<String>,
}

/// The preview summed over all selected repositories.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PreviewTotals {
    /// Repositories whose images were evaluated.
    pub repositories: i64,
    /// Images a rule would expire.
    pub expire: i64,
    /// Images a rule would move to the archive.
    pub transition: i64,
    /// Images no rule acts on.
    pub keep: i64,
}

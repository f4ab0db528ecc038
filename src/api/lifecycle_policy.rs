//! `LifecyclePolicy`: lifecycle rules applied to selected EcrRepositories of a namespace.
//! The reconciler for this kind is not built yet; the type already carries the API of DESIGN.md.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Conditions;

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
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicySpec {
    /// Selects EcrRepositories of this namespace by label (use this or `repositories`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_selector: Option<RepositorySelector>,
    /// Selects EcrRepositories of this namespace by name (use this or `repositorySelector`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 253)))]
    pub repositories: Vec<String>,
    /// Enforce (default) applies the rules; Preview only computes what they would do.
    #[serde(default)]
    pub mode: LifecycleMode,
    /// The rules, 1 to 50, with unique priorities.
    #[schemars(length(min = 1, max = 50))]
    pub rules: Vec<LifecycleRule>,
}

/// A label selector over EcrRepositories (matchLabels only).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySelector {
    /// Labels an EcrRepository must carry, all of them.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 20))]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LifecycleMode {
    #[default]
    Enforce,
    Preview,
}

/// One lifecycle rule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    /// Rules are evaluated from the lowest priority number up; unique.
    #[schemars(range(min = 1, max = 1000))]
    pub priority: i32,
    /// Free text kept in the rendered policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
    /// Which images the rule applies to.
    pub selection: LifecycleSelection,
    /// What happens to them.
    pub action: LifecycleAction,
}

/// Which images a lifecycle rule selects.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSelection {
    pub tag_status: TagStatus,
    /// Tag wildcard patterns (with Tagged; at most 4 `*` each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 128)))]
    pub tag_patterns: Vec<String>,
    /// Tag prefixes (with Tagged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 128)))]
    pub tag_prefixes: Vec<String>,
    pub count_type: CountType,
    /// The image count or the age in days; at least 1.
    #[schemars(range(min = 1))]
    pub count_number: i64,
    /// Days; exactly for the Since* count types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<CountUnit>,
    /// Storage class the rule looks at (Archive is required with SinceImageTransitioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<StorageClass>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TagStatus {
    #[default]
    Tagged,
    Untagged,
    Any,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CountType {
    #[default]
    ImageCountMoreThan,
    SinceImagePushed,
    SinceImagePulled,
    SinceImageTransitioned,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CountUnit {
    #[default]
    Days,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageClass {
    #[default]
    Standard,
    Archive,
}

/// What a lifecycle rule does to the images it selects.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleAction {
    #[serde(rename = "type")]
    pub type_: LifecycleActionType,
    /// With Transition: the storage class to move images to (Archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_storage_class: Option<StorageClass>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LifecycleActionType {
    #[default]
    Expire,
    Transition,
}

/// Observed state of a LifecyclePolicy.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 8))]
    pub conditions: Conditions,
    /// One entry per selected repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub repositories: Vec<SelectedRepository>,
    /// What the rules would do now, per repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub preview: Vec<LifecyclePreview>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SelectedRepository {
    pub name: String,
    pub state: SelectionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SelectionState {
    #[default]
    Applied,
    Conflict,
    Error,
    Previewed,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePreview {
    pub repository: String,
    pub expire: i64,
    pub transition: i64,
    pub keep: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub examples: Vec<String>,
}

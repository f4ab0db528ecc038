//! `EcrRepository`: one ECR repository, its settings, tags and lifecycle of ownership.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::access::RepositoryAccess;
use super::conditions::Conditions;
use super::scan_policy::{MAX_IMAGE_DIGEST_LENGTH, MAX_REPOSITORY_FILTER_LENGTH};
use super::string_map::StringMap;

/// ECR's repository name grammar: lowercase path components separated by `/`.
pub const REPOSITORY_NAME_PATTERN: &str = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$";
/// An AWS region code such as `eu-west-1` or `us-gov-east-1`.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$";
/// ECR's image tag mutability exclusion filter: tag characters and `*` wildcards.
pub const MUTABILITY_EXCLUSION_PATTERN: &str = r"^[0-9a-zA-Z._*-]{1,128}$";
/// Tag key prefix reserved for berth's own ownership tags.
pub const RESERVED_TAG_PREFIX: &str = "berth.dev/";

pub const MAX_MUTABILITY_EXCLUSIONS: usize = 5;
/// ECR allows 50 tags per repository (IAM 50 per role) and berth adds its two ownership tags.
pub const MAX_USER_TAGS: usize = 48;
/// AWS's bound on a tag value.
pub const MAX_TAG_VALUE_LENGTH: usize = 256;
/// Image tags listed with the findings of an image.
pub const MAX_FINDINGS_IMAGE_TAGS: usize = 10;
/// ECR's bound on an image tag.
pub const MAX_IMAGE_TAG_LENGTH: usize = 300;

// The boxed fields (`access`, `encryption.kmsKey`, `status.findings`, `status.scanning`; each
// absent on many objects, and read and written the same as unboxed) keep the object at 752
// bytes or less: kube-runtime's store keeps each object in an `Arc`, which jemalloc then serves
// from its 768-byte class instead of the 1,024-byte one (about 190 bytes less per stored
// object, measured; `docs/design-decisions.md`, "Memory per repository").
/// An Amazon ECR repository that berth creates (or adopts) and keeps as declared.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ecr.berth.dev",
    version = "v1alpha1",
    kind = "EcrRepository",
    namespaced,
    shortname = "ecrrepo",
    category = "berth",
    status = "EcrRepositoryStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An Amazon ECR repository managed declaratively by berth.",
    printcolumn(name = "Repository", type_ = "string", json_path = ".spec.repositoryName"),
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
        name = "Compliant",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ScanCompliant\")].status"
    ),
    printcolumn(name = "URI", type_ = "string", json_path = ".status.repositoryUri", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("has(self.repositoryName) == has(oldSelf.repositoryName)")
        .message("spec.repositoryName is immutable: it cannot be added or removed after creation"),
    validation = Rule::new("has(self.region) == has(oldSelf.region)")
        .message("spec.region is immutable: it cannot be added or removed after creation"),
)]
#[serde(rename_all = "camelCase")]
pub struct EcrRepositorySpec {
    /// Name of the ECR repository (ECR naming rules: lowercase path components separated by
    /// `/`). Defaults to metadata.name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 256), regex(pattern = REPOSITORY_NAME_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.repositoryName is immutable"))]
    pub repository_name: Option<String>,

    /// AWS region of the repository, e.g. eu-west-1. Defaults to the operator's region. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 32), regex(pattern = REGION_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.region is immutable"))]
    pub region: Option<String>,

    /// Whether image tags can be overwritten: Mutable (default) or Immutable.
    #[serde(default)]
    pub image_tag_mutability: TagMutability,

    /// Tag filters (wildcard `*` allowed) that keep the opposite mutability: with Immutable, tags
    /// matching these stay mutable (e.g. `latest`), and the reverse. At most 5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(length(min = 1, max = 128), regex(pattern = MUTABILITY_EXCLUSION_PATTERN)))]
    pub mutability_exclusions: Vec<String>,

    /// Encryption at rest, chosen when the repository is created. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.encryption is immutable: it is set at creation only"))]
    pub encryption: Encryption,

    /// User tags on the repository (at most 48: ECR allows 50 and berth adds two ownership
    /// tags). Keys 1-128 and values up to 256 characters of letters, digits, spaces and
    /// `_ . : / = + - @`. Keys starting with `aws:` or `berth.dev/` are reserved.
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    // `inner(...)` does not reach a map's values; the value schema is spelled out instead
    #[schemars(extend(
        "maxProperties" = MAX_USER_TAGS,
        "additionalProperties" = {"type": "string", "maxLength": MAX_TAG_VALUE_LENGTH}
    ))]
    #[x_kube(
        // eight literal prefixes instead of a regex or lowerAscii: constant CEL cost per key
        validation = Rule::new("self.all(k, ['aws:', 'awS:', 'aWs:', 'aWS:', 'Aws:', 'AwS:', 'AWs:', 'AWS:'].all(p, !k.startsWith(p)))")
            .message("spec.tags: keys starting with 'aws:' are reserved by AWS"),
        validation = Rule::new("self.all(k, !k.startsWith('berth.dev/'))")
            .message("spec.tags: keys starting with 'berth.dev/' are reserved for berth's ownership tags"),
        validation = Rule::new("self.all(k, size(k) >= 1 && size(k) <= 128)")
            .message("spec.tags: keys must be 1 to 128 characters"),
    )]
    pub tags: StringMap,

    /// Who may pull and push; rendered into the repository policy. Without it berth leaves the
    /// repository policy alone (and removes one it wrote earlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Box<RepositoryAccess>>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::access::extra_statements_schema")]
    pub extra_policy_statements: Vec<serde_json::Value>,

    /// What happens in AWS when this object is deleted: Retain (default) leaves the repository;
    /// Delete removes what berth created.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// With deletionPolicy Delete: also delete a repository that still holds images.
    #[serde(default)]
    pub force_delete: bool,

    /// Take over an existing repository that carries no berth ownership tag.
    #[serde(default)]
    pub adopt: bool,
}

/// Image tag mutability of a repository.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TagMutability {
    #[default]
    Mutable,
    Immutable,
}

/// Encryption at rest of a repository.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.type == 'Kms' || !has(self.kmsKey)")
    .message("spec.encryption.kmsKey is only allowed with type Kms"))]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// Aes256 (default, S3-managed keys) or Kms (AWS KMS).
    #[serde(rename = "type", default)]
    pub type_: EncryptionType,
    /// KMS key id, ARN or alias; only with type Kms. Without it ECR uses the AWS managed key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key: Option<Box<str>>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncryptionType {
    #[default]
    Aes256,
    Kms,
}

/// What deleting the EcrRepository object does in AWS.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// Observed state of an EcrRepository. Each field is written by one controller under its own
/// server-side-apply field manager (see docs/design-decisions.md).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EcrRepositoryStatus {
    /// The metadata.generation that the Ready condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ScanCompliant, ...; one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 8))]
    pub conditions: Conditions,
    /// URI to push to and pull from, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_uri: Option<String>,
    /// ARN of the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_arn: Option<String>,
    /// AWS account id of the registry that holds the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<String>,
    /// ARN of the IAM role that GitHub Actions assumes to push here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_role_arn: Option<String>,
    /// The LifecyclePolicy that currently governs this repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_policy: Option<String>,
    /// Vulnerability findings of the most recently pushed image (written by the ScanPolicy
    /// controller when a ScanPolicy with findings covers the repository's region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Box<FindingCounts>>,
    /// The registry scanning configuration that applies to this repository, as ECR reports it
    /// (written by the ScanPolicy controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanning: Option<Box<ScanningStatus>>,
    /// Number of images in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_count: Option<i64>,
    /// Total size of the images in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// When an image was last pushed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pushed_at: Option<String>,
}

/// Findings of one image by severity, and the state of its scan.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FindingCounts {
    /// Findings of severity CRITICAL.
    pub critical: i64,
    /// Findings of severity HIGH.
    pub high: i64,
    /// Findings of severity MEDIUM.
    pub medium: i64,
    /// Findings of severity LOW.
    pub low: i64,
    /// Findings of severity INFORMATIONAL.
    pub informational: i64,
    /// Findings of severity UNDEFINED (Amazon Inspector's UNTRIAGED).
    #[serde(default)]
    pub undefined: i64,
    /// Digest of the image the counts belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_IMAGE_DIGEST_LENGTH))]
    pub image_digest: Option<String>,
    /// Tags of that image (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FINDINGS_IMAGE_TAGS), inner(length(max = MAX_IMAGE_TAG_LENGTH)))]
    pub image_tags: Vec<String>,
    /// Complete (the counts are the scan's), InProgress, NotScanned (no scan yet), Unsupported
    /// (the scanner does not support the image) or Unavailable (the scan failed or its findings
    /// are not available). Only Complete carries counts.
    #[serde(default)]
    pub scan_status: ScanState,
    /// When the scan completed (RFC 3339), with Complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub completed_at: Option<String>,
}

/// The state of the scan of an image. Not a scan, a scan in progress and an unsupported image
/// are states, not errors.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ScanState {
    /// The scan finished and its findings are counted.
    Complete,
    /// The image is being scanned.
    InProgress,
    /// The image has not been scanned (yet).
    #[default]
    NotScanned,
    /// The scanner does not support the image (e.g. its operating system).
    Unsupported,
    /// The scan failed, or its findings are not available (any other state ECR reports).
    Unavailable,
}

/// The registry scanning configuration that applies to one repository.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScanningStatus {
    /// ScanOnPush, ContinuousScan or Manual (no rule matches: images are scanned only on
    /// request, or not at all with Enhanced).
    #[schemars(length(max = 32))]
    pub frequency: String,
    /// The filter of the registry rule that selects the repository, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_REPOSITORY_FILTER_LENGTH))]
    pub applied_filter: Option<String>,
}

impl EcrRepositoryStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::EcrRepository;

    #[test]
    fn a_stored_repository_fits_the_768_byte_allocation_class() {
        // an Arc adds two counters (16 bytes) to the object
        assert!(
            std::mem::size_of::<EcrRepository>() + 16 <= 768,
            "EcrRepository grew to {} bytes: box a field that most objects leave out",
            std::mem::size_of::<EcrRepository>()
        );
    }
}

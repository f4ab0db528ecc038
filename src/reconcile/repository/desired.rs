//! Step 1 of the pipeline: validate an EcrRepository and build the repository it declares.
//! The same rules as the schema and CEL, because clusters older than 1.25 drop CEL.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::access::{DesiredAccess, desired_access};
use super::settings::ValidationSettings;
use crate::api::{
    EcrRepository, EcrRepositorySpec, EncryptionType, MAX_MUTABILITY_EXCLUSIONS, MAX_USER_TAGS,
    MUTABILITY_EXCLUSION_PATTERN, REGION_PATTERN, REPOSITORY_NAME_PATTERN, RESERVED_TAG_PREFIX,
};
use crate::aws::{RepositorySettings, TagService, check_tag};
use crate::error::Error;
use crate::reconcile::ownership::{check_own_tags, owner_value, ownership_tags};

static REPOSITORY_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(REPOSITORY_NAME_PATTERN).unwrap());
static REGION: LazyLock<Regex> = LazyLock::new(|| Regex::new(REGION_PATTERN).unwrap());
static EXCLUSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(MUTABILITY_EXCLUSION_PATTERN).unwrap());
/// The ways KMS names a key: key id (a UUID, or `mrk-` and 32 hex digits for a multi-Region
/// key), alias name, key ARN or alias ARN. Not in the schema (the field predates the check);
/// anything else reaches CreateRepository, which AWS refuses and moto accepts.
static KMS_KEY: LazyLock<Regex> = LazyLock::new(|| {
    let id = "(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})";
    let alias = "alias/[A-Za-z0-9/_-]{1,250}";
    Regex::new(&format!(
        "^(?:{id}|{alias}|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{{12}}:(?:key/{id}|{alias}))$"
    ))
    .unwrap()
});

/// The repository an EcrRepository declares, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredRepository {
    pub name: String,
    pub region: String,
    pub settings: RepositorySettings,
    pub encryption_type: EncryptionType,
    pub kms_key: Option<String>,
    /// Declared user tags only.
    pub user_tags: BTreeMap<String, String>,
    /// The value of the `berth.dev/owner` tag: `<cluster-id>/<namespace>/<name>`.
    pub owner: String,
    pub access: DesiredAccess,
}

impl DesiredRepository {
    /// User tags plus the ownership tags: every tag the repository should carry.
    pub fn all_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.user_tags.clone();
        tags.extend(self.ownership_tags());
        tags
    }

    /// The two tags that mark what berth created for this object (repository, push role).
    pub fn ownership_tags(&self) -> BTreeMap<String, String> {
        ownership_tags(&self.owner)
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidSpec(message)
}

/// Validates `repository` and returns the repository it declares, or `InvalidSpec` with a
/// message naming the field.
pub fn desired_repository(
    repository: &EcrRepository,
    settings: &ValidationSettings,
) -> Result<DesiredRepository, Error> {
    let namespace = repository.metadata.namespace.as_deref().unwrap_or_default();
    let object_name = repository.metadata.name.as_deref().unwrap_or_default();
    let spec: &EcrRepositorySpec = &repository.spec;

    let name = spec.repository_name.clone().unwrap_or_else(|| object_name.to_owned());
    let name_field = if spec.repository_name.is_some() {
        "spec.repositoryName"
    } else {
        "metadata.name (the default spec.repositoryName)"
    };
    if !(2..=256).contains(&name.len()) || !REPOSITORY_NAME.is_match(&name) {
        return Err(invalid(format!(
            "{name_field}: '{name}' is not a valid ECR repository name (2-256 characters of lowercase letters, digits and . _ - separators, path components separated by /)"
        )));
    }
    if settings.require_namespace_prefix && !name.starts_with(&format!("{namespace}/")) {
        return Err(invalid(format!(
            "{name_field}: '{name}' must start with '{namespace}/' (the operator requires repository names to be prefixed with their namespace)"
        )));
    }

    let region = spec.region.clone().unwrap_or_else(|| settings.default_region.clone());
    if !REGION.is_match(&region) || region.len() > 32 {
        return Err(invalid(format!(
            "spec.region: '{region}' is not an AWS region code such as eu-west-1"
        )));
    }

    if spec.mutability_exclusions.len() > MAX_MUTABILITY_EXCLUSIONS {
        return Err(invalid(format!(
            "spec.mutabilityExclusions: {} filters given, at most {MAX_MUTABILITY_EXCLUSIONS} are allowed",
            spec.mutability_exclusions.len()
        )));
    }
    for (index, filter) in spec.mutability_exclusions.iter().enumerate() {
        if !EXCLUSION.is_match(filter) {
            return Err(invalid(format!(
                "spec.mutabilityExclusions[{index}]: '{filter}' must be 1-128 characters of letters, digits, . _ - and the * wildcard"
            )));
        }
    }

    if spec.encryption.type_ != EncryptionType::Kms && spec.encryption.kms_key.is_some() {
        return Err(invalid(
            "spec.encryption.kmsKey is only allowed with type Kms".to_owned(),
        ));
    }
    if let Some(key) = &spec.encryption.kms_key
        && !(1..=2048).contains(&key.len())
    {
        return Err(invalid(
            "spec.encryption.kmsKey must be 1 to 2048 characters".to_owned(),
        ));
    }
    if let Some(key) = &spec.encryption.kms_key
        && !KMS_KEY.is_match(key)
    {
        return Err(invalid(format!(
            "spec.encryption.kmsKey: '{key}' is not a KMS key id, key ARN, alias (alias/...) or alias ARN"
        )));
    }

    if spec.tags.len() > MAX_USER_TAGS {
        return Err(invalid(format!(
            "spec.tags: {} tags given, at most {MAX_USER_TAGS} are allowed",
            spec.tags.len()
        )));
    }
    for (key, value) in &spec.tags {
        check_tag(TagService::Ecr, key, value).map_err(|e| invalid(format!("spec.tags: {e}")))?;
        if key.starts_with(RESERVED_TAG_PREFIX) {
            return Err(invalid(format!(
                "spec.tags: key '{key}' uses the prefix '{RESERVED_TAG_PREFIX}', which berth reserves for ownership tags"
            )));
        }
    }

    let owner = owner_value(&settings.cluster_id, namespace, object_name);
    // berth's own tags go on the repository (ECR) and the push role (IAM): checked before any call
    check_own_tags(&ownership_tags(&owner)).map_err(|e| Error::Configuration(format!("ownership tags: {e}")))?;

    let access = desired_access(spec, namespace, object_name, settings)?;

    Ok(DesiredRepository {
        access,
        name,
        region,
        settings: RepositorySettings {
            tag_mutability: spec.image_tag_mutability,
            mutability_exclusions: spec.mutability_exclusions.iter().cloned().collect(),
        },
        encryption_type: spec.encryption.type_,
        kms_key: spec.encryption.kms_key.as_deref().map(str::to_owned),
        user_tags: spec.tags.to_btree_map(),
        owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TagMutability;
    use crate::reconcile::ownership::MANAGED_BY_TAG;

    fn object(spec: serde_json::Value) -> EcrRepository {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app", "namespace": "payments"},
            "spec": spec,
        }))
        .expect("test object deserializes")
    }

    fn settings() -> ValidationSettings {
        ValidationSettings::for_tests()
    }

    /// Asserts the object is refused with a message naming `field`.
    fn refused(spec: serde_json::Value, settings: &ValidationSettings, field: &str) {
        match desired_repository(&object(spec.clone()), settings) {
            Err(Error::InvalidSpec(message)) => {
                assert!(message.contains(field), "{spec}: '{message}' should name {field}")
            }
            other => panic!("{spec}: expected InvalidSpec naming {field}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_come_from_the_object_and_the_operator() {
        let desired = desired_repository(&object(serde_json::json!({})), &settings()).unwrap();
        assert_eq!(desired.name, "app");
        assert_eq!(desired.region, "eu-west-1");
        assert_eq!(desired.owner, "c1/payments/app");
        assert_eq!(desired.settings.tag_mutability, TagMutability::Mutable);
        assert_eq!(desired.encryption_type, EncryptionType::Aes256);
        assert_eq!(
            desired.all_tags().get(MANAGED_BY_TAG).map(String::as_str),
            Some("berth")
        );
    }

    #[test]
    fn accepts_a_full_valid_spec() {
        let spec = serde_json::json!({
            "repositoryName": "payments/payments-api", "region": "us-gov-east-1",
            "imageTagMutability": "Immutable", "mutabilityExclusions": ["latest", "dev-*"],
            "encryption": {"type": "Kms", "kmsKey": "alias/ecr"}, "tags": {"team": "payments"},
        });
        let desired = desired_repository(&object(spec), &settings()).unwrap();
        assert_eq!(desired.name, "payments/payments-api");
        assert_eq!(desired.region, "us-gov-east-1");
        assert_eq!(desired.settings.mutability_exclusions.len(), 2);
        assert_eq!(desired.kms_key.as_deref(), Some("alias/ecr"));
        let with_prefix = ValidationSettings {
            require_namespace_prefix: true,
            ..settings()
        };
        let spec = serde_json::json!({"repositoryName": "payments/payments-api"});
        assert!(desired_repository(&object(spec), &with_prefix).is_ok());
    }

    #[test]
    fn accepts_every_way_kms_names_a_key() {
        for key in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/ecr",
            "alias/aws/ecr",
            "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws:kms:us-east-2:111122223333:alias/team_keys/ecr-1",
        ] {
            let spec = serde_json::json!({"encryption": {"type": "Kms", "kmsKey": key}});
            assert!(desired_repository(&object(spec), &settings()).is_ok(), "{key}");
        }
    }

    #[test]
    fn accepts_48_user_tags_of_aws_characters() {
        let tags: serde_json::Map<String, serde_json::Value> = (0..MAX_USER_TAGS)
            .map(|i| (format!("k{i}"), serde_json::json!("v")))
            .collect();
        let desired = desired_repository(&object(serde_json::json!({"tags": tags})), &settings()).unwrap();
        assert_eq!(desired.user_tags.len(), 48);
        assert_eq!(desired.all_tags().len(), 50);
        let spec =
            serde_json::json!({"tags": {"Équipe": "paiements", "cost center": "a_b.c:d/e=f+g-h@i", "empty": ""}});
        assert!(desired_repository(&object(spec), &settings()).is_ok());
    }

    #[test]
    fn a_cluster_id_that_tags_cannot_hold_is_the_operator_s_configuration() {
        let bad = ValidationSettings {
            cluster_id: "prod,eu".into(),
            ..settings()
        };
        let error = desired_repository(&object(serde_json::json!({})), &bad).unwrap_err();
        assert!(
            matches!(&error, Error::Configuration(m) if m.contains("berth.dev/owner")),
            "{error:?}"
        );
    }

    #[test]
    fn refuses_each_broken_rule_naming_the_field() {
        let s = settings();
        refused(
            serde_json::json!({"repositoryName": "Payments"}),
            &s,
            "spec.repositoryName",
        );
        refused(serde_json::json!({"repositoryName": "a//b"}), &s, "spec.repositoryName");
        refused(serde_json::json!({"repositoryName": "a"}), &s, "spec.repositoryName");
        refused(
            serde_json::json!({"repositoryName": "x".repeat(257)}),
            &s,
            "spec.repositoryName",
        );
        refused(serde_json::json!({"region": "Europe"}), &s, "spec.region");
        refused(
            serde_json::json!({"mutabilityExclusions": ["a", "b", "c", "d", "e", "f"]}),
            &s,
            "spec.mutabilityExclusions",
        );
        refused(
            serde_json::json!({"mutabilityExclusions": ["bad tag"]}),
            &s,
            "spec.mutabilityExclusions[0]",
        );
        refused(
            serde_json::json!({"encryption": {"type": "Aes256", "kmsKey": "alias/x"}}),
            &s,
            "spec.encryption.kmsKey",
        );
        for key in [
            "my key",
            "alias/",
            "alias/with space",
            "arn:aws:s3:::bucket",
            "1234ABCD-12ab-34cd-56ef-1234567890ab",
        ] {
            refused(
                serde_json::json!({"encryption": {"type": "Kms", "kmsKey": key}}),
                &s,
                "spec.encryption.kmsKey",
            );
        }
        refused(serde_json::json!({"tags": {"aws:owner": "x"}}), &s, "spec.tags");
        refused(serde_json::json!({"tags": {"AWS:owner": "x"}}), &s, "spec.tags");
        refused(serde_json::json!({"tags": {"berth.dev/owner": "x"}}), &s, "spec.tags");
        refused(serde_json::json!({"tags": {"k": "v".repeat(257)}}), &s, "spec.tags");
        refused(serde_json::json!({"tags": {"k".repeat(129): "v"}}), &s, "spec.tags");
        refused(serde_json::json!({"tags": {"": "v"}}), &s, "spec.tags");
        // AWS's tag character set, checked before any call: the message names the key
        refused(serde_json::json!({"tags": {"cost~center": "v"}}), &s, "'cost~center'");
        refused(serde_json::json!({"tags": {"team": "a,b"}}), &s, "'team'");
        refused(serde_json::json!({"tags": {"team": "line\nbreak"}}), &s, "'team'");
        let too_many: serde_json::Map<String, serde_json::Value> = (0..MAX_USER_TAGS + 1)
            .map(|i| (format!("k{i}"), serde_json::json!("v")))
            .collect();
        refused(serde_json::json!({"tags": too_many}), &s, "at most 48");
        // metadata.name is the default repository name, and is checked as one
        let mut upper = object(serde_json::json!({}));
        upper.metadata.name = Some("a".into());
        assert!(matches!(desired_repository(&upper, &s), Err(Error::InvalidSpec(m)) if m.contains("metadata.name")));
        let with_prefix = ValidationSettings {
            require_namespace_prefix: true,
            ..settings()
        };
        refused(
            serde_json::json!({"repositoryName": "other/app"}),
            &with_prefix,
            "must start with 'payments/'",
        );
    }
}

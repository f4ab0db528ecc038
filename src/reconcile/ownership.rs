//! Ownership tags: what berth created carries `berth.dev/managed-by=berth` and
//! `berth.dev/owner=<cluster-id>/<namespace>/<name>`, and nothing else is ever touched.

use std::collections::BTreeMap;

use crate::aws::{MAX_TAG_VALUE_LENGTH, TagService, check_tag};

pub const MANAGED_BY_TAG: &str = "berth.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "berth";
pub const OWNER_TAG: &str = "berth.dev/owner";

/// `<cluster-id>/<namespace>/<name>`; when longer than AWS's 256-character tag value, its start
/// followed by `+<16 hex digits of a hash of the whole>`, 256 bytes in all. `+` is a tag
/// character of ECR and IAM and never part of a Kubernetes name, so a shortened value cannot
/// equal another object's full one.
pub fn owner_value(cluster_id: &str, namespace: &str, name: &str) -> String {
    crate::naming::shorten(
        &format!("{cluster_id}/{namespace}/{name}"),
        MAX_TAG_VALUE_LENGTH,
        |hash| format!("+{hash:016x}"),
    )
}

/// The longest cluster id: with it, the owner tags of the GitHub OIDC provider fit unshortened.
pub const MAX_CLUSTER_ID_LENGTH: usize = 100;

/// The cluster id goes into every owner tag: 1 to 100 tag characters.
pub fn check_cluster_id(cluster_id: &str) -> Result<(), String> {
    if !(1..=MAX_CLUSTER_ID_LENGTH).contains(&cluster_id.chars().count()) {
        return Err(format!(
            "the cluster id '{cluster_id}' must be 1 to {MAX_CLUSTER_ID_LENGTH} characters"
        ));
    }
    check_own_tags(&ownership_tags(&owner_value(cluster_id, "namespace", "name")))
        .map_err(|e| format!("the cluster id '{cluster_id}' cannot be written into tags: {e}"))
}

/// Checks tags berth itself writes against both services (the ownership tags go on the
/// repository in ECR and on the push role in IAM). Only the cluster id can make them fail.
pub fn check_own_tags(tags: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in tags {
        for service in [TagService::Ecr, TagService::Iam] {
            check_tag(service, key, value)?;
        }
    }
    Ok(())
}

/// The two tags that mark what berth created for the object `owner` names.
pub fn ownership_tags(owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (OWNER_TAG.to_owned(), owner.to_owned()),
    ])
}

/// Who owns an existing resource, judged by its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    Unowned,
    Other(String),
}

pub fn ownership(tags: &BTreeMap<String, String>, owner: &str) -> Ownership {
    match tags.get(OWNER_TAG) {
        Some(value) if value == owner => Ownership::Ours,
        Some(value) => Ownership::Other(value.clone()),
        None if tags.get(MANAGED_BY_TAG).map(String::as_str) == Some(MANAGED_BY_VALUE) => {
            Ownership::Other("berth (owner tag missing)".to_owned())
        }
        None => Ownership::Unowned,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn ownership_is_judged_by_the_owner_tag() {
        assert_eq!(ownership(&tags(&[]), "c1/ns/a"), Ownership::Unowned);
        assert_eq!(ownership(&tags(&[("team", "x")]), "c1/ns/a"), Ownership::Unowned);
        assert_eq!(ownership(&tags(&[(OWNER_TAG, "c1/ns/a")]), "c1/ns/a"), Ownership::Ours);
        assert_eq!(
            ownership(&tags(&[(OWNER_TAG, "c1/ns/b")]), "c1/ns/a"),
            Ownership::Other("c1/ns/b".into())
        );
        assert!(matches!(
            ownership(&tags(&[(MANAGED_BY_TAG, "berth")]), "c1/ns/a"),
            Ownership::Other(_)
        ));
    }

    #[test]
    fn long_owner_values_are_shortened_deterministically() {
        let long_name = "n".repeat(253);
        let owner = owner_value(&"c".repeat(36), "namespace", &long_name);
        assert_eq!(owner.len(), 256);
        assert!(owner.ends_with(&format!(
            "+{:016x}",
            crate::naming::fnv1a(format!("{}/namespace/{long_name}", "c".repeat(36)).as_bytes())
        )));
        assert_eq!(check_own_tags(&ownership_tags(&owner)), Ok(()));
        assert_eq!(owner, owner_value(&"c".repeat(36), "namespace", &long_name));
        assert_ne!(owner, owner_value(&"c".repeat(36), "namespace", &"m".repeat(253)));
    }

    #[test]
    fn berth_leaves_room_for_its_ownership_tags() {
        let tags = ownership_tags("c1/ns/a");
        assert_eq!(
            crate::api::MAX_USER_TAGS + tags.len(),
            crate::aws::MAX_TAGS_PER_RESOURCE
        );
        assert_eq!(check_own_tags(&tags), Ok(()));
        let message = check_own_tags(&ownership_tags("cluster~1/ns/a")).unwrap_err();
        assert!(message.contains(OWNER_TAG), "{message}");
        assert_eq!(check_cluster_id("0f9c2a4e-6b1d-4c1e-9a77-3c1d5e2f8a90"), Ok(()));
        assert!(check_cluster_id("").is_err());
        assert!(check_cluster_id(&"c".repeat(101)).is_err());
        assert!(check_cluster_id("prod,eu").unwrap_err().contains("prod,eu"));
    }

    /// A Kubernetes namespace: a DNS label.
    const NAMESPACE: &str = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
    /// An object name: a DNS subdomain (up to 253 characters).
    const NAME: &str = "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?";

    fn cluster_ids() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            r"[\p{L}\p{N} _.:/=+@-]{1,100}",
        ]
    }

    proptest! {
        #[test]
        fn ownership_tags_are_valid_tags_of_both_services(
            cluster_id in cluster_ids(),
            namespace in NAMESPACE,
            name in NAME,
        ) {
            prop_assert_eq!(check_cluster_id(&cluster_id), Ok(()));
            let owner = owner_value(&cluster_id, &namespace, &name);
            prop_assert!(owner.chars().count() <= MAX_TAG_VALUE_LENGTH && owner.len() <= 256);
            prop_assert_eq!(&owner, &owner_value(&cluster_id, &namespace, &name));
            for (key, value) in ownership_tags(&owner) {
                for service in [TagService::Ecr, TagService::Iam] {
                    prop_assert_eq!(check_tag(service, &key, &value), Ok(()), "{}={}", key, value);
                }
            }
            // the GitHub OIDC provider's tags
            prop_assert_eq!(check_own_tags(&ownership_tags(&format!("{cluster_id}/github-oidc-provider"))), Ok(()));
        }
    }
}

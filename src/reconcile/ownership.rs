//! Ownership tags: what berth created carries `berth.dev/managed-by=berth` and
//! `berth.dev/owner=<cluster-id>/<namespace>/<name>`, and nothing else is ever touched.

use std::collections::BTreeMap;

pub const MANAGED_BY_TAG: &str = "berth.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "berth";
pub const OWNER_TAG: &str = "berth.dev/owner";

/// `<cluster-id>/<namespace>/<name>`, shortened with a hash to fit AWS's 256-character tag value.
pub fn owner_value(cluster_id: &str, namespace: &str, name: &str) -> String {
    crate::naming::shorten(&format!("{cluster_id}/{namespace}/{name}"), 256, |hash| {
        format!("~{hash:016x}")
    })
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
        assert_eq!(owner, owner_value(&"c".repeat(36), "namespace", &long_name));
        assert_ne!(owner, owner_value(&"c".repeat(36), "namespace", &"m".repeat(253)));
    }
}

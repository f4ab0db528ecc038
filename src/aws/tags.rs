//! AWS's rules for resource tags, checked before any call: ECR (repositories) and IAM (roles,
//! OIDC providers) accept the same character set and lengths today, but each is named so that
//! a caller states which service will receive the tag.

use std::sync::LazyLock;

use regex::Regex;

/// The service a tag is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagService {
    Ecr,
    Iam,
}

/// Tag keys and values of both services: Unicode letters, digits, spaces and `_ . : / = + - @`.
pub const TAG_CHARACTERS_PATTERN: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$";
/// AWS's bound on a tag key, in characters (both services).
pub const MAX_TAG_KEY_LENGTH: usize = 128;
/// AWS's bound on a tag value, in characters (both services).
pub const MAX_TAG_VALUE_LENGTH: usize = 256;
/// Tags per resource (both services).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

static TAG_CHARACTERS: LazyLock<Regex> = LazyLock::new(|| Regex::new(TAG_CHARACTERS_PATTERN).unwrap());

impl TagService {
    fn name(self) -> &'static str {
        match self {
            TagService::Ecr => "ECR",
            TagService::Iam => "IAM",
        }
    }

    /// (key lengths, longest value) the service accepts.
    fn limits(self) -> (std::ops::RangeInclusive<usize>, usize) {
        match self {
            TagService::Ecr | TagService::Iam => (1..=MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH),
        }
    }
}

/// Whether `service` accepts the tag `key`=`value`; the message names the key and what is wrong.
/// The `aws:` prefix is refused too: AWS reserves it on every service.
pub fn check_tag(service: TagService, key: &str, value: &str) -> Result<(), String> {
    let (key_lengths, max_value) = service.limits();
    let service = service.name();
    if !key_lengths.contains(&key.chars().count()) {
        return Err(format!(
            "tag key '{key}' must be {} to {} characters ({service})",
            key_lengths.start(),
            key_lengths.end()
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!("tag key '{key}' uses the prefix 'aws:', which AWS reserves"));
    }
    if !TAG_CHARACTERS.is_match(key) {
        return Err(format!(
            "tag key '{key}' may only hold letters, digits, spaces and _ . : / = + - @ ({service})"
        ));
    }
    if value.chars().count() > max_value {
        return Err(format!(
            "the value of tag '{key}' is longer than {max_value} characters ({service})"
        ));
    }
    if !TAG_CHARACTERS.is_match(value) {
        return Err(format!(
            "the value of tag '{key}' may only hold letters, digits, spaces and _ . : / = + - @ ({service})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: [TagService; 2] = [TagService::Ecr, TagService::Iam];

    #[test]
    fn accepts_what_aws_documents() {
        for service in SERVICES {
            for (key, value) in [
                ("team", "payments"),
                ("cost center", "a_b.c:d/e=f+g-h@i"),
                ("Équipe", "paiements 42"),
                ("k", ""),
                (&"k".repeat(128), &"v".repeat(256)),
                ("berth.dev/owner", "c1/ns/app+0123456789abcdef"),
                ("aws-team", "x"),
            ] {
                assert_eq!(check_tag(service, key, value), Ok(()), "{key}={value}");
            }
        }
    }

    #[test]
    fn refuses_and_names_the_key() {
        for service in SERVICES {
            for (key, value) in [
                ("", "v"),
                (&*"k".repeat(129), "v"),
                ("k", &*"v".repeat(257)),
                ("aws:x", "v"),
                ("AWS:x", "v"),
                ("tilde~", "v"),
                ("k", "c1/ns/app~0123"),
                ("k", "a,b"),
                ("k", "line\nbreak"),
                ("k", "tab\t"),
                ("k*", "v"),
                ("k", "quote\""),
            ] {
                let message = check_tag(service, key, value).expect_err(&format!("{key:?}={value:?}"));
                assert!(message.contains(&format!("'{key}'")), "{message} should name {key}");
            }
        }
        // lengths are counted in characters, not bytes
        assert_eq!(check_tag(TagService::Iam, &"é".repeat(128), &"é".repeat(256)), Ok(()));
    }
}

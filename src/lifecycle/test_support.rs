//! Random valid rules and repositories for the property tests, from small alphabets of tags,
//! patterns and prefixes so that rules and images actually meet.

use proptest::prelude::*;

use super::rule::{Action, Count, Rule, TagFilter, TagSelection};
use crate::api::StorageClass;
use crate::images::{Image, ImageStorage};

pub const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
pub const DAY: i64 = 86_400;

const TAGS: &[&str] = &[
    "v1", "v2", "v10", "beta-1", "beta-2", "prod-1", "prod-2", "latest", "rc-1", "build-7",
];
const PATTERNS: &[&str] = &["v*", "*-1", "beta*", "*", "prod-*", "*a*", "v1", "*-*", "latest"];
const PREFIXES: &[&str] = &["v", "beta", "prod", "l", "rc-", "build", "v1"];

fn tag_selection() -> impl Strategy<Value = TagSelection> {
    let list = |alphabet: &'static [&'static str]| {
        prop::sample::subsequence(alphabet, 1..=2).prop_map(|entries| entries.into_iter().map(String::from).collect())
    };
    prop_oneof![
        list(PATTERNS).prop_map(|patterns| TagSelection::Tagged(TagFilter::Patterns(patterns))),
        list(PREFIXES).prop_map(|prefixes| TagSelection::Tagged(TagFilter::Prefixes(prefixes))),
        Just(TagSelection::Untagged),
        Just(TagSelection::Any),
    ]
}

/// Storage class, count and action in the combinations ECR accepts.
fn count_and_action() -> impl Strategy<Value = (StorageClass, Count, Action)> {
    let action = prop_oneof![Just(Action::Expire), Just(Action::TransitionToArchive)];
    prop_oneof![
        (1u32..6, action.clone()).prop_map(|(n, action)| (StorageClass::Standard, Count::MoreThan(n), action)),
        (1u32..30, action).prop_map(|(days, action)| (StorageClass::Standard, Count::SincePushed { days }, action)),
        (1u32..30).prop_map(|days| (
            StorageClass::Standard,
            Count::SincePulled { days },
            Action::TransitionToArchive
        )),
        (1u32..30).prop_map(|days| (StorageClass::Archive, Count::SinceTransitioned { days }, Action::Expire)),
    ]
}

/// 1 to 5 valid rules with unique priorities, in random order, `Any` only in the last one.
pub fn rules() -> impl Strategy<Value = Vec<Rule>> {
    let body = (tag_selection(), count_and_action(), prop::option::of("[a-z ]{0,12}"));
    (
        prop::collection::vec(body, 1..=5),
        prop::collection::btree_set(1u32..=1000, 5),
    )
        .prop_map(|(bodies, priorities)| {
            let highest = *priorities.iter().take(bodies.len()).max().expect("at least one rule");
            bodies
                .into_iter()
                .zip(priorities)
                .map(|((tags, (storage_class, count, action), description), priority)| {
                    let tags = match tags {
                        TagSelection::Any if priority != highest => TagSelection::Untagged,
                        tags => tags,
                    };
                    Rule {
                        priority,
                        description: description.filter(|d| !d.is_empty()),
                        tags,
                        storage_class,
                        count,
                        action,
                    }
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

/// One image; push times fall on whole hours of 40 days, half of them on the last 4 days, so
/// equal push times are common (the evaluator must not depend on how they are listed).
fn image() -> impl Strategy<Value = Image> {
    let times = (prop_oneof![0i64..40, 0i64..4], 0i64..3);
    (
        prop::sample::subsequence(TAGS, 0..=3),
        times,
        prop::option::of(0i64..40),
        prop::option::weighted(0.2, prop::option::weighted(0.8, 0i64..40)),
    )
        .prop_map(|(tags, (days_ago, hours_ago), pulled_days_ago, archived)| {
            let pushed_at = NOW - days_ago * DAY - hours_ago * 3600;
            Image {
                digest: String::new(),
                tags: tags.into_iter().map(String::from).collect(),
                pushed_at,
                last_pulled_at: pulled_days_ago.map(|days| (NOW - days * DAY).max(pushed_at)),
                // archived: Some(time or unknown); standard: None
                transitioned_at: archived.flatten().map(|days| (NOW - days * DAY).max(pushed_at)),
                storage: if archived.is_some() {
                    ImageStorage::Archive
                } else {
                    ImageStorage::Standard
                },
                size_bytes: 1 << 20,
            }
        })
}

/// A repository of 0 to 25 images with unique digests.
pub fn images() -> impl Strategy<Value = Vec<Image>> {
    prop::collection::vec(image(), 0..25).prop_map(|mut images| {
        for (index, image) in images.iter_mut().enumerate() {
            image.digest = format!("sha256:{:064x}", index * 7919 % 1009);
        }
        images
    })
}

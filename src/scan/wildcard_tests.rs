//! The filter semantics of ECR's documentation, table by table, and a cross-check against a
//! regular expression.

use proptest::prelude::*;

use super::*;

/// The table of the Amazon ECR User Guide: filters down, repository names across.
#[test]
fn the_documented_table() {
    let names = ["prod", "repo-prod", "prod-repo", "repo-prod-repo", "prodrepo"];
    let table: [(&str, [bool; 5]); 5] = [
        ("prod", [true, true, true, true, true]),
        ("*prod", [true, true, false, false, false]),
        ("prod*", [true, false, true, false, true]),
        ("*prod*", [true, true, true, true, true]),
        ("prod*repo", [false, false, true, false, true]),
    ];
    for (filter, expected) in table {
        for (name, expected) in names.iter().zip(expected) {
            assert_eq!(filter_matches(filter, name), expected, "{filter} vs {name}");
        }
    }
}

#[test]
fn wildcards_cross_slashes() {
    assert!(filter_matches("payments/*", "payments/api"));
    assert!(filter_matches("payments/*", "payments/team/api"));
    assert!(filter_matches("*/api", "payments/team/api"));
    assert!(filter_matches("*", "a/b/c"));
    assert!(filter_matches("payments*api", "payments/team/api"));
    assert!(!filter_matches("payments/*", "billing/payments/api"));
    // `*` may match nothing, so the separator itself must still be there
    assert!(filter_matches("payments/*", "payments/"));
    assert!(!filter_matches("payments/*", "payments"));
}

#[test]
fn several_wildcards() {
    assert!(filter_matches("*a*b*", "xaybz"));
    assert!(filter_matches("*a*b*", "ab"));
    assert!(!filter_matches("*a*b*", "ba"));
    assert!(filter_matches("team-*/*-api", "team-pay/payments-api"));
    assert!(!filter_matches("team-*/*-api", "team-pay/payments-api-v2"));
    assert!(filter_matches("**", ""));
    assert!(filter_matches("a**b", "ab"));
    // backtracking past an early, wrong choice
    assert!(filter_matches("*ab", "aab"));
    assert!(filter_matches("a*a*a", "aaaa"));
    assert!(!filter_matches("a*a*a", "aa"));
}

#[test]
fn with_a_wildcard_the_whole_name_must_match() {
    // a prefix alone does not match: the pattern is anchored at both ends
    assert!(!filter_matches("pay*s", "payments-api"));
    assert!(!filter_matches("*api", "payments/api-v2"));
    assert!(!filter_matches("pay*", "my-payments"));
    assert!(filter_matches("payments/api*", "payments/api"));
}

#[test]
fn without_a_wildcard_a_filter_matches_names_containing_it() {
    assert!(filter_matches("payments/api", "payments/api"));
    assert!(filter_matches("payments", "payments/api"));
    assert!(filter_matches("api", "payments/api-v2"));
    assert!(!filter_matches("payments/api", "payments/ap"));
    assert!(!filter_matches("payments", "pay"));
}

#[test]
fn other_characters_are_literal() {
    assert!(!filter_matches("a.b*", "axb"));
    assert!(filter_matches("a.b*", "a.bc"));
    assert!(!filter_matches("a?", "ab"));
    assert!(!filter_matches("", "anything"));
}

/// The same semantics as a regular expression: `.*` for each `*`, anchored when there is one.
fn reference(filter: &str, name: &str) -> bool {
    if !filter.contains('*') {
        return name.contains(filter);
    }
    let body: Vec<String> = filter.split('*').map(regex::escape).collect();
    regex::Regex::new(&format!("^{}$", body.join(".*")))
        .unwrap()
        .is_match(name)
}

proptest! {
    #[test]
    fn agrees_with_a_regular_expression(filter in "[ab/*.]{1,8}", name in "[ab/.]{0,10}") {
        prop_assert_eq!(filter_matches(&filter, &name), reference(&filter, &name), "{} vs {}", filter, name);
    }

    /// Any text, multi-byte characters and runs of `*` included: no panic, same answer twice.
    #[test]
    fn arbitrary_filters_never_panic(filter in "(\\*|.){0,12}", name in ".{0,16}") {
        prop_assert_eq!(filter_matches(&filter, &name), filter_matches(&filter, &name));
        if !filter.is_empty() && !filter.contains('*') {
            // without a wildcard, a filter matches by substring (ECR's documented behaviour)
            prop_assert_eq!(filter_matches(&filter, &name), name.contains(filter.as_str()));
        }
    }
}

//! Semantic comparison of scanning configurations, their round trip through the status, and
//! which rule applies to a repository.

use super::*;

fn config(scan_type: ScanType, rules: &[(ScanFrequency, &[&str])]) -> ScanningConfig {
    ScanningConfig::new(
        scan_type,
        rules
            .iter()
            .map(|(frequency, filters)| (*frequency, filters.iter().copied())),
    )
}

use ScanFrequency::{ContinuousScan, ScanOnPush};
use ScanType::{Basic, Enhanced};

#[test]
fn rule_and_filter_order_do_not_matter() {
    let a = config(
        Enhanced,
        &[
            (ScanOnPush, &["b/*", "a/*", "c"]),
            (ContinuousScan, &["prod-*", "payments/*"]),
        ],
    );
    let b = config(
        Enhanced,
        &[
            (ContinuousScan, &["payments/*", "prod-*"]),
            (ScanOnPush, &["c", "a/*", "b/*"]),
        ],
    );
    assert_eq!(a, b);
    // duplicates collapse
    let c = config(
        Enhanced,
        &[
            (ContinuousScan, &["payments/*", "prod-*", "payments/*"]),
            (ScanOnPush, &["c", "a/*", "b/*"]),
        ],
    );
    assert_eq!(a, c);
}

#[test]
fn differences_are_differences() {
    let base = config(Enhanced, &[(ScanOnPush, &["a/*"])]);
    assert_ne!(base, config(Basic, &[(ScanOnPush, &["a/*"])]));
    assert_ne!(base, config(Enhanced, &[(ContinuousScan, &["a/*"])]));
    assert_ne!(base, config(Enhanced, &[(ScanOnPush, &["a/*", "b/*"])]));
    assert_ne!(base, config(Enhanced, &[(ScanOnPush, &["a*"])]));
    assert_ne!(base, config(Enhanced, &[]));
}

#[test]
fn a_rule_without_filters_is_no_rule() {
    assert_eq!(
        config(Basic, &[(ScanOnPush, &[])]),
        config(Basic, &[]),
        "a rule that selects nothing"
    );
    assert_eq!(ScanningConfig::default(), config(Basic, &[]));
    assert_ne!(config(Enhanced, &[(ScanOnPush, &[])]), config(Basic, &[]));
}

#[test]
fn rules_of_one_frequency_merge() {
    let merged = config(Enhanced, &[(ScanOnPush, &["a"]), (ScanOnPush, &["b"])]);
    assert_eq!(merged, config(Enhanced, &[(ScanOnPush, &["b", "a"])]));
}

#[test]
fn effective_rule_of_a_repository() {
    let config = config(
        Enhanced,
        &[(ScanOnPush, &["*"]), (ContinuousScan, &["payments/*", "prod"])],
    );
    assert_eq!(
        config.effective("payments/api"),
        Some((ContinuousScan, "payments/*".to_owned())),
        "ContinuousScan wins where both rules match"
    );
    assert_eq!(
        config.effective("billing/prod-api"),
        Some((ContinuousScan, "prod".to_owned())),
        "a filter without wildcard matches names containing it"
    );
    assert_eq!(config.effective("billing/api"), Some((ScanOnPush, "*".to_owned())));
}

#[test]
fn no_rule_applies() {
    let config = config(Basic, &[(ScanOnPush, &["payments/*"])]);
    assert_eq!(config.effective("billing/api"), None);
    assert_eq!(ScanningConfig::default().effective("anything"), None);
}

#[test]
fn the_first_matching_filter_in_sorted_order_is_reported() {
    let config = config(Enhanced, &[(ScanOnPush, &["payments/*", "*/api", "payments"])]);
    assert_eq!(config.effective("payments/api"), Some((ScanOnPush, "*/api".to_owned())));
    assert_eq!(
        config.effective("payments/worker"),
        Some((ScanOnPush, "payments".to_owned()))
    );
}

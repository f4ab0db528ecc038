//! Thresholds (at the threshold is compliant, above is not), the summary and its ordering.

use super::*;

use Severity::{Critical, High, Informational, Low, Medium, Undefined};

#[test]
fn severity_labels() {
    let labels: Vec<&str> = Severity::ALL.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        ["critical", "high", "medium", "low", "informational", "undefined"]
    );
    assert_eq!(High.to_string(), "high");
}

#[test]
fn counts_by_severity() {
    let mut counts = Counts::of([(Critical, 1), (High, 4), (High, 1)]);
    assert_eq!(counts.get(High), 5);
    assert_eq!(counts.get(Low), 0);
    counts.set(Low, 2);
    counts.add(Undefined, u64::MAX);
    counts.add(Undefined, 1);
    assert_eq!(counts.get(Undefined), u64::MAX, "saturates");
    assert_eq!(counts.total(), u64::MAX);
    assert_eq!(Counts::of([(Medium, 2), (Informational, 3)]).total(), 5);
    let listed: Vec<(Severity, u64)> = Counts::of([(Low, 1)]).iter().collect();
    assert_eq!(listed[3], (Low, 1));
    assert_eq!(listed.len(), 6);
}

#[test]
fn counts_to_and_from_the_status() {
    let findings = FindingCounts {
        critical: 1,
        high: 2,
        medium: 3,
        low: 4,
        informational: 5,
        undefined: 6,
        image_digest: Some("sha256:abc".into()),
        ..FindingCounts::default()
    };
    let counts = Counts::from(&findings);
    assert_eq!(
        counts,
        Counts::of([
            (Critical, 1),
            (High, 2),
            (Medium, 3),
            (Low, 4),
            (Informational, 5),
            (Undefined, 6)
        ])
    );
    let back = FindingCounts {
        image_digest: Some("sha256:abc".into()),
        ..counts.into()
    };
    assert_eq!(back, findings);
    let negative = FindingCounts {
        high: -3,
        ..FindingCounts::default()
    };
    assert_eq!(Counts::from(&negative), Counts::default());
}

#[test]
fn worse_counts_order_higher() {
    // one critical is worse than any number of high findings
    assert!(Counts::of([(Critical, 1)]) > Counts::of([(High, 1000)]));
    assert!(Counts::of([(Critical, 1), (High, 2)]) > Counts::of([(Critical, 1), (High, 1)]));
    assert!(Counts::of([(Undefined, 1)]) > Counts::default());
}

#[test]
fn at_the_threshold_is_compliant_above_is_not() {
    let thresholds = Thresholds::of([(Critical, 0), (High, 5)]);
    let at = Counts::of([(High, 5), (Medium, 100)]);
    assert!(is_compliant(&at, &thresholds));
    assert_eq!(exceeded(&at, &thresholds), vec![]);
    let above = Counts::of([(High, 6)]);
    assert!(!is_compliant(&above, &thresholds));
    assert_eq!(exceeded(&above, &thresholds), vec![High]);
    let both = Counts::of([(Critical, 1), (High, 6)]);
    assert_eq!(exceeded(&both, &thresholds), vec![Critical, High], "worst first");
}

#[test]
fn unlimited_severities_never_fail() {
    let counts = Counts::of(Severity::ALL.map(|s| (s, 1_000)));
    assert!(is_compliant(&counts, &Thresholds::default()));
    assert!(Thresholds::default().is_empty());
    let undefined_only = Thresholds::of([(Undefined, 0)]);
    assert!(!undefined_only.is_empty());
    assert_eq!(exceeded(&counts, &undefined_only), vec![Undefined]);
    let mut thresholds = undefined_only;
    thresholds.set(Undefined, None);
    assert!(thresholds.is_empty());
    assert_eq!(thresholds.get(Undefined), None);
}

/// An entry whose names live as long as the test (the real entries borrow from the records).
fn entry(namespace: &str, name: &str, counts: Option<Counts>) -> RepositoryFindings<'static> {
    let owned = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    RepositoryFindings {
        namespace: owned(namespace.to_owned()),
        name: owned(name.to_owned()),
        repository: owned(format!("{namespace}/{name}")),
        counts,
        image_digest: counts.map(|_| owned(format!("sha256:{name}"))),
    }
}

#[test]
fn the_summary_counts_every_covered_repository() {
    let thresholds = Thresholds::of([(Critical, 0), (High, 5)]);
    let entries = [
        entry("payments", "api", Some(Counts::of([(Critical, 1), (High, 4)]))),
        entry("payments", "worker", Some(Counts::of([(High, 5), (Low, 7)]))),
        entry("billing", "api", Some(Counts::of([(High, 9), (Undefined, 2)]))),
        entry("billing", "new", None),
    ];
    let (summary, listed) = summarize(&entries, &thresholds);
    assert_eq!(
        summary,
        ScanSummary {
            repositories: 4,
            scanned: 3,
            non_compliant: 2,
            critical: 1,
            high: 18,
            medium: 0,
            low: 7,
            informational: 0,
            undefined: 2,
        }
    );
    assert_eq!(
        listed,
        vec![
            NonCompliantRepository {
                namespace: "payments".into(),
                name: "api".into(),
                repository: "payments/api".into(),
                critical: 1,
                high: 4,
                image_digest: Some("sha256:api".into()),
                ..NonCompliantRepository::default()
            },
            NonCompliantRepository {
                namespace: "billing".into(),
                name: "api".into(),
                repository: "billing/api".into(),
                high: 9,
                undefined: 2,
                image_digest: Some("sha256:api".into()),
                ..NonCompliantRepository::default()
            },
        ]
    );
}

#[test]
fn worst_first_then_namespace_and_name() {
    let thresholds = Thresholds::of([(Undefined, 0)]);
    let bad = |critical, high, medium, low, informational| {
        Some(Counts::of([
            (Critical, critical),
            (High, high),
            (Medium, medium),
            (Low, low),
            (Informational, informational),
            (Undefined, 1),
        ]))
    };
    let entries = [
        entry("z", "a", bad(0, 0, 0, 0, 0)),
        entry("b", "b", bad(0, 0, 0, 0, 1)),
        entry("a", "z", bad(0, 0, 0, 0, 0)),
        entry("a", "y", bad(0, 0, 0, 1, 0)),
        entry("a", "x", bad(0, 0, 1, 0, 0)),
        entry("a", "w", bad(0, 1, 0, 0, 0)),
        entry("a", "v", bad(1, 0, 0, 0, 0)),
        entry("a", "u", bad(1, 0, 0, 0, 0)),
        entry("a", "t", bad(0, 2, 0, 0, 0)),
    ];
    let (_, listed) = summarize(&entries, &thresholds);
    let order: Vec<String> = listed.iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect();
    assert_eq!(order, ["a/u", "a/v", "a/t", "a/w", "a/x", "a/y", "b/b", "a/z", "z/a"]);
    // the input order does not matter
    let mut reversed = entries.to_vec();
    reversed.reverse();
    assert_eq!(summarize(&reversed, &thresholds).1, listed);
}

#[test]
fn the_list_is_capped_the_summary_is_not() {
    let thresholds = Thresholds::of([(High, 0)]);
    let entries: Vec<RepositoryFindings> = (0..120u64)
        .map(|i| entry("ns", &format!("repo-{i:03}"), Some(Counts::of([(High, i + 1)]))))
        .collect();
    let (summary, listed) = summarize(&entries, &thresholds);
    assert_eq!(summary.non_compliant, 120);
    assert_eq!(summary.high, (1..=120).sum::<i64>());
    assert_eq!(listed.len(), MAX_NON_COMPLIANT_LISTED);
    assert_eq!(listed[0].name, "repo-119", "the worst is listed first");
    assert_eq!(listed[49].name, "repo-070");
}

#[test]
fn nothing_scanned_nothing_listed() {
    let (summary, listed) = summarize(&[entry("a", "b", None)], &Thresholds::of([(Critical, 0)]));
    assert_eq!(
        summary,
        ScanSummary {
            repositories: 1,
            ..ScanSummary::default()
        }
    );
    assert!(listed.is_empty());
    let (summary, listed) = summarize(&[], &Thresholds::default());
    assert_eq!(summary, ScanSummary::default());
    assert!(listed.is_empty());
}

#[test]
fn entries_from_the_repository_status() {
    let complete = FindingCounts {
        critical: 2,
        scan_status: ScanState::Complete,
        image_digest: Some("sha256:1".into()),
        ..FindingCounts::default()
    };
    let entry = RepositoryFindings::from_status("ns", "app", "ns/app", Some(&complete));
    assert_eq!(entry.counts, Some(Counts::of([(Critical, 2)])));
    assert_eq!(entry.image_digest, Some("sha256:1"));
    for state in [
        ScanState::InProgress,
        ScanState::NotScanned,
        ScanState::Unsupported,
        ScanState::Unavailable,
    ] {
        let findings = FindingCounts {
            scan_status: state,
            ..complete.clone()
        };
        let entry = RepositoryFindings::from_status("ns", "app", "ns/app", Some(&findings));
        assert_eq!(entry.counts, None, "{state:?}");
    }
    assert_eq!(
        RepositoryFindings::from_status("ns", "app", "ns/app", None).counts,
        None
    );
}

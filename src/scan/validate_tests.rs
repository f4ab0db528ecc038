//! Every rule of the CEL and the schema, again in Rust: each failing manifest is refused with a
//! message that starts with the field at fault.

use super::*;

fn spec(yaml: &str) -> ScanPolicySpec {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("manifest does not parse: {e}\n{yaml}"))
}

/// Asserts that the manifest is refused with a message starting with `field` and containing `why`.
fn refused(yaml: &str, field: &str, why: &str) {
    match desired_scanning(&spec(yaml), "eu-west-1") {
        Ok(desired) => panic!("accepted, expected {field}: {desired:?}\n{yaml}"),
        Err(InvalidScan(message)) => {
            assert!(
                message.starts_with(&format!("{field}: ")),
                "{message:?} should name {field}\n{yaml}"
            );
            assert!(message.contains(why), "{message:?} should say {why:?}\n{yaml}");
        }
    }
}

const VALID: &str = r#"
region: us-east-2
scanType: Enhanced
rules:
  - frequency: ContinuousScan
    repositoryFilters: ["payments/*", "prod"]
  - frequency: ScanOnPush
    repositoryFilters: ["*"]
findings:
  thresholds: {critical: 0, high: 5, undefined: 10}
  refreshInterval: 15m
"#;

#[test]
fn a_valid_spec_becomes_the_desired_scanning() {
    let desired = desired_scanning(&spec(VALID), "eu-west-1").unwrap();
    assert_eq!(
        desired,
        DesiredScanning {
            region: "us-east-2".into(),
            config: ScanningConfig::new(
                ScanType::Enhanced,
                [
                    (ScanFrequency::ScanOnPush, vec!["*"]),
                    (ScanFrequency::ContinuousScan, vec!["prod", "payments/*"]),
                ],
            ),
            findings: Some(FindingsRules {
                thresholds: Thresholds::of([(Severity::Critical, 0), (Severity::High, 5), (Severity::Undefined, 10)]),
                refresh_interval: Duration::from_secs(15 * 60),
            }),
        }
    );
}

#[test]
fn defaults() {
    let desired = desired_scanning(&spec("scanType: Basic"), "eu-west-1").unwrap();
    assert_eq!(desired.region, "eu-west-1", "the operator's region");
    assert_eq!(desired.config, ScanningConfig::default());
    assert_eq!(desired.findings, None);
    let desired = desired_scanning(&spec("{scanType: Basic, findings: {}}"), "eu-west-1").unwrap();
    assert_eq!(
        desired.findings,
        Some(FindingsRules {
            thresholds: Thresholds::default(),
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        })
    );
    assert_eq!(DEFAULT_REFRESH_INTERVAL, Duration::from_secs(3600));
}

#[test]
fn basic_allows_only_scan_on_push() {
    let basic = "scanType: Basic\nrules: [{frequency: ScanOnPush, repositoryFilters: ['*']}]";
    assert!(desired_scanning(&spec(basic), "eu-west-1").is_ok());
    refused(
        "scanType: Basic\nrules: [{frequency: ScanOnPush, repositoryFilters: ['*']}, {frequency: ContinuousScan, repositoryFilters: [a]}]",
        "spec.rules[1].frequency",
        "scanType Basic allows only ScanOnPush",
    );
}

#[test]
fn one_rule_per_frequency() {
    refused(
        "scanType: Enhanced\nrules: [{frequency: ContinuousScan, repositoryFilters: [a]}, {frequency: ContinuousScan, repositoryFilters: [b]}]",
        "spec.rules[1].frequency",
        "also the frequency of spec.rules[0]",
    );
}

#[test]
fn at_most_two_rules() {
    refused(
        "scanType: Enhanced\nrules: [{frequency: ContinuousScan, repositoryFilters: [a]}, {frequency: ScanOnPush, repositoryFilters: [b]}, {frequency: ScanOnPush, repositoryFilters: [c]}]",
        "spec.rules",
        "at most 2",
    );
}

#[test]
fn filters_are_bounded() {
    refused(
        "scanType: Enhanced\nrules: [{frequency: ScanOnPush, repositoryFilters: []}]",
        "spec.rules[0].repositoryFilters",
        "1 to 100",
    );
    let many: Vec<String> = (0..101).map(|i| format!("'r{i}'")).collect();
    refused(
        &format!(
            "scanType: Enhanced\nrules: [{{frequency: ScanOnPush, repositoryFilters: [{}]}}]",
            many.join(", ")
        ),
        "spec.rules[0].repositoryFilters",
        "101 filters given",
    );
    let long = "a".repeat(256);
    refused(
        &format!("scanType: Enhanced\nrules: [{{frequency: ScanOnPush, repositoryFilters: [ok, {long}]}}]"),
        "spec.rules[0].repositoryFilters[1]",
        "1 to 255 characters",
    );
    let longest = "a".repeat(255);
    assert!(
        desired_scanning(
            &spec(&format!(
                "scanType: Enhanced\nrules: [{{frequency: ScanOnPush, repositoryFilters: [{longest}]}}]"
            )),
            "eu-west-1"
        )
        .is_ok()
    );
    refused(
        "scanType: Enhanced\nrules: [{frequency: ScanOnPush, repositoryFilters: [a, b, a]}]",
        "spec.rules[0].repositoryFilters[2]",
        "listed twice (also spec.rules[0].repositoryFilters[0])",
    );
}

#[test]
fn filters_use_ecr_characters() {
    for good in ["*", "payments/*", "a.b_c-d/e*", "*-api", "team*/*", "a"] {
        let yaml = format!("scanType: Enhanced\nrules: [{{frequency: ScanOnPush, repositoryFilters: ['{good}']}}]");
        assert!(desired_scanning(&spec(&yaml), "eu-west-1").is_ok(), "{good}");
    }
    for bad in [
        "Payments/*",
        "a b",
        "a?",
        "/a",
        "a/",
        "a//b",
        "a..b",
        "-a",
        "a+b",
        "é",
        "",
    ] {
        refused(
            &format!("scanType: Enhanced\nrules: [{{frequency: ScanOnPush, repositoryFilters: ['{bad}']}}]"),
            "spec.rules[0].repositoryFilters[0]",
            "lowercase letters, digits",
        );
    }
}

#[test]
fn region_is_a_region_code() {
    refused(
        "{scanType: Basic, region: Europe}",
        "spec.region",
        "not an AWS region code",
    );
    refused(
        "{scanType: Basic, region: eu-west}",
        "spec.region",
        "not an AWS region code",
    );
    let desired = desired_scanning(&spec("{scanType: Basic, region: us-gov-east-1}"), "eu-west-1").unwrap();
    assert_eq!(desired.region, "us-gov-east-1");
}

#[test]
fn thresholds_are_not_negative() {
    for severity in ["critical", "high", "medium", "low", "informational", "undefined"] {
        refused(
            &format!("{{scanType: Basic, findings: {{thresholds: {{{severity}: -1}}}}}}"),
            &format!("spec.findings.thresholds.{severity}"),
            "negative",
        );
    }
    let zero = desired_scanning(
        &spec("{scanType: Basic, findings: {thresholds: {informational: 0}}}"),
        "eu-west-1",
    )
    .unwrap();
    assert_eq!(
        zero.findings.unwrap().thresholds,
        Thresholds::of([(Severity::Informational, 0)])
    );
}

#[test]
fn refresh_interval_is_a_positive_duration_of_at_most_a_week() {
    let interval = |text: &str| {
        desired_scanning(
            &spec(&format!("{{scanType: Basic, findings: {{refreshInterval: '{text}'}}}}")),
            "eu-west-1",
        )
        .map(|desired| desired.findings.unwrap().refresh_interval)
    };
    assert_eq!(interval("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(interval("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(interval("60s"), Ok(Duration::from_secs(60)));
    assert_eq!(interval("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(interval("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(interval("168h"), Ok(MAX_REFRESH_INTERVAL));
    let field = "spec.findings.refreshInterval";
    let refused_interval = |text: &str, why: &str| {
        refused(
            &format!("{{scanType: Basic, findings: {{refreshInterval: '{text}'}}}}"),
            field,
            why,
        )
    };
    // the operator's floor (--min-findings-refresh) is the controller's to check
    assert_eq!(interval("59s"), Ok(Duration::from_secs(59)));
    refused_interval("0m", "must be longer than zero");
    refused_interval("169h", "longer than the maximum of 168h");
    refused_interval("999999h", "longer than the maximum");
    for bad in ["15", "15 m", "1d", "m", "1.5h", "-1h", "1h1m1s1h", "15min", ""] {
        refused_interval(bad, "not a duration like");
    }
}

//! The ScanPolicy rules again, in Rust: apiservers older than 1.25 drop the CRD's CEL rules, so
//! the controller must refuse what CEL would have refused, before any AWS call, with a message
//! that names the field. Also checks the schema's bounds and patterns, which a CRD installed by
//! hand (or an older version of it) may lack, and the refresh interval's bounds, which the schema
//! cannot express.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use super::config::ScanningConfig;
use super::findings::{Severity, Thresholds};
use crate::api::{
    FindingsPolicy, MAX_REFRESH_INTERVAL_LENGTH, MAX_REPOSITORY_FILTER_LENGTH, MAX_REPOSITORY_FILTERS, MAX_SCAN_RULES,
    REFRESH_INTERVAL_PATTERN, REGION_PATTERN, SCAN_FILTER_PATTERN, ScanFrequency, ScanPolicySpec, ScanType,
    SeverityThresholds,
};

/// How often findings are read when the spec does not say.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);
/// The longest refresh interval (a week): findings older than that are not worth reporting.
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A ScanPolicy spec that ECR (or berth) cannot accept; the message starts with the field, e.g.
/// `spec.rules[1].frequency: ...`. The reconciler reports it as InvalidSpec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidScan(pub String);

/// What a valid ScanPolicy asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredScanning {
    /// The region whose registry it configures (the spec's, or the operator's).
    pub region: String,
    /// The registry scanning configuration to put.
    pub config: ScanningConfig,
    /// How findings are judged and read; `None`: berth reads no findings.
    pub findings: Option<FindingsRules>,
}

/// The findings part of a valid ScanPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingsRules {
    pub thresholds: Thresholds,
    pub refresh_interval: Duration,
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("berth's own patterns compile")
}

static REGION: LazyLock<Regex> = LazyLock::new(|| regex(REGION_PATTERN));
static SCAN_FILTER: LazyLock<Regex> = LazyLock::new(|| regex(SCAN_FILTER_PATTERN));
static REFRESH_INTERVAL: LazyLock<Regex> = LazyLock::new(|| regex(REFRESH_INTERVAL_PATTERN));

/// Validates the whole spec and returns what it asks for; `default_region` is the operator's
/// region, used when the spec names none.
pub fn desired_scanning(spec: &ScanPolicySpec, default_region: &str) -> Result<DesiredScanning, InvalidScan> {
    let region = match &spec.region {
        Some(region) => {
            if !(9..=32).contains(&region.len()) || !REGION.is_match(region) {
                return Err(InvalidScan(format!(
                    "spec.region: '{region}' is not an AWS region code such as eu-west-1"
                )));
            }
            region.clone()
        }
        None => default_region.to_owned(),
    };
    let config = scanning_config(spec)?;
    let findings = spec.findings.as_ref().map(findings_rules).transpose()?;
    Ok(DesiredScanning {
        region,
        config,
        findings,
    })
}

fn scanning_config(spec: &ScanPolicySpec) -> Result<ScanningConfig, InvalidScan> {
    if spec.rules.len() > MAX_SCAN_RULES {
        return Err(InvalidScan(format!(
            "spec.rules: {} rules given, at most {MAX_SCAN_RULES} are allowed (one per frequency)",
            spec.rules.len()
        )));
    }
    let mut frequencies: BTreeMap<ScanFrequency, usize> = BTreeMap::new();
    for (index, rule) in spec.rules.iter().enumerate() {
        let field = format!("spec.rules[{index}]");
        if spec.scan_type == ScanType::Basic && rule.frequency != ScanFrequency::ScanOnPush {
            return Err(InvalidScan(format!(
                "{field}.frequency: scanType Basic allows only ScanOnPush, not {:?} (ContinuousScan needs Enhanced)",
                rule.frequency
            )));
        }
        if let Some(first) = frequencies.insert(rule.frequency, index) {
            return Err(InvalidScan(format!(
                "{field}.frequency: {:?} is also the frequency of spec.rules[{first}]; ECR allows one rule per frequency",
                rule.frequency
            )));
        }
        check_filters(&format!("{field}.repositoryFilters"), &rule.repository_filters)?;
    }
    Ok(ScanningConfig::new(
        spec.scan_type,
        spec.rules
            .iter()
            .map(|rule| (rule.frequency, rule.repository_filters.iter().cloned())),
    ))
}

fn check_filters(field: &str, filters: &[String]) -> Result<(), InvalidScan> {
    if filters.is_empty() || filters.len() > MAX_REPOSITORY_FILTERS {
        return Err(InvalidScan(format!(
            "{field}: {} filters given, 1 to {MAX_REPOSITORY_FILTERS} are allowed",
            filters.len()
        )));
    }
    let mut seen = BTreeMap::new();
    for (index, filter) in filters.iter().enumerate() {
        if filter.is_empty() || filter.len() > MAX_REPOSITORY_FILTER_LENGTH || !SCAN_FILTER.is_match(filter) {
            return Err(InvalidScan(format!(
                "{field}[{index}]: '{filter}' must be 1 to {MAX_REPOSITORY_FILTER_LENGTH} characters of lowercase letters, digits, . _ - / and *, starting and ending with a letter, digit or *, without doubled separators"
            )));
        }
        if let Some(first) = seen.insert(filter.as_str(), index) {
            return Err(InvalidScan(format!(
                "{field}[{index}]: '{filter}' is listed twice (also {field}[{first}])"
            )));
        }
    }
    Ok(())
}

fn findings_rules(findings: &FindingsPolicy) -> Result<FindingsRules, InvalidScan> {
    Ok(FindingsRules {
        thresholds: thresholds(&findings.thresholds)?,
        refresh_interval: refresh_interval(findings.refresh_interval.as_deref())?,
    })
}

fn thresholds(given: &SeverityThresholds) -> Result<Thresholds, InvalidScan> {
    let mut thresholds = Thresholds::default();
    for (severity, maximum) in [
        (Severity::Critical, given.critical),
        (Severity::High, given.high),
        (Severity::Medium, given.medium),
        (Severity::Low, given.low),
        (Severity::Informational, given.informational),
        (Severity::Undefined, given.undefined),
    ] {
        let Some(maximum) = maximum else { continue };
        let maximum = u64::try_from(maximum).map_err(|_| {
            InvalidScan(format!(
                "spec.findings.thresholds.{severity}: {maximum} is negative; a threshold is the most findings allowed, 0 or more"
            ))
        })?;
        thresholds.set(severity, Some(maximum));
    }
    Ok(thresholds)
}

fn refresh_interval(given: Option<&str>) -> Result<Duration, InvalidScan> {
    const FIELD: &str = "spec.findings.refreshInterval";
    let Some(text) = given else {
        return Ok(DEFAULT_REFRESH_INTERVAL);
    };
    if text.len() > MAX_REFRESH_INTERVAL_LENGTH || !REFRESH_INTERVAL.is_match(text) {
        return Err(InvalidScan(format!(
            "{FIELD}: '{text}' is not a duration like 90s, 15m, 1h or 1h30m (units s, m, h)"
        )));
    }
    // the pattern bounds the digits, so the sum cannot overflow; 0s is refused below
    let interval = crate::config::parse_duration(text).unwrap_or(Duration::ZERO);
    // the floor (--min-findings-refresh, default 1m) is the operator's to set
    // and is checked by the controller; here only a zero interval is meaningless
    if interval.is_zero() {
        return Err(InvalidScan(format!("{FIELD}: '{text}' must be longer than zero")));
    }
    if interval > MAX_REFRESH_INTERVAL {
        return Err(InvalidScan(format!(
            "{FIELD}: '{text}' is longer than the maximum of 168h (a week)"
        )));
    }
    Ok(interval)
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

//! Findings by severity, thresholds, and the summary over many repositories. A repository is
//! non-compliant when its newest image has MORE findings of some severity than that severity's
//! threshold (at the threshold it is compliant); a severity without a threshold is not limited,
//! and a repository without a completed scan is neither compliant nor non-compliant.

use std::cmp::Reverse;
use std::fmt;

use crate::api::{FindingCounts, MAX_NON_COMPLIANT_LISTED, NonCompliantRepository, ScanState, ScanSummary};

/// The severities of ECR's findings, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl Severity {
    /// Every severity, worst first.
    pub const ALL: [Severity; 6] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Informational,
        Self::Undefined,
    ];

    /// The name used in status fields, metric labels and messages: `critical`, `high`, ...
    pub fn label(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Informational => "informational",
            Self::Undefined => "undefined",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Findings by severity. Ordered worst first: more critical findings is worse, then more high
/// ones, and so on down to undefined (the derived order compares severities in that order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Counts([u64; 6]);

impl Counts {
    /// Counts from (severity, count) pairs; a severity given twice adds up.
    pub fn of(counts: impl IntoIterator<Item = (Severity, u64)>) -> Self {
        let mut result = Self::default();
        for (severity, count) in counts {
            result.add(severity, count);
        }
        result
    }

    pub fn get(&self, severity: Severity) -> u64 {
        self.0[severity.index()]
    }

    pub fn set(&mut self, severity: Severity, count: u64) {
        self.0[severity.index()] = count;
    }

    /// Adds `count` findings of `severity` (saturating).
    pub fn add(&mut self, severity: Severity, count: u64) {
        let slot = &mut self.0[severity.index()];
        *slot = slot.saturating_add(count);
    }

    /// Every severity with its count, worst first.
    pub fn iter(&self) -> impl Iterator<Item = (Severity, u64)> + '_ {
        Severity::ALL.into_iter().map(|severity| (severity, self.get(severity)))
    }

    /// All findings.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0, |sum, count| sum.saturating_add(*count))
    }

    fn signed(&self, severity: Severity) -> i64 {
        i64::try_from(self.get(severity)).unwrap_or(i64::MAX)
    }
}

impl From<&FindingCounts> for Counts {
    /// The counts of an EcrRepository's `status.findings` (a negative count reads as 0).
    fn from(findings: &FindingCounts) -> Self {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Self([
            count(findings.critical),
            count(findings.high),
            count(findings.medium),
            count(findings.low),
            count(findings.informational),
            count(findings.undefined),
        ])
    }
}

impl From<Counts> for FindingCounts {
    /// The counts part of `status.findings`; the image and scan fields are left at their
    /// defaults for the caller to fill (`FindingCounts { image_digest, ..counts.into() }`).
    fn from(counts: Counts) -> Self {
        Self {
            critical: counts.signed(Severity::Critical),
            high: counts.signed(Severity::High),
            medium: counts.signed(Severity::Medium),
            low: counts.signed(Severity::Low),
            informational: counts.signed(Severity::Informational),
            undefined: counts.signed(Severity::Undefined),
            ..Self::default()
        }
    }
}

/// The most findings of each severity a compliant image may have; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Thresholds([Option<u64>; 6]);

impl Thresholds {
    /// Thresholds from (severity, maximum) pairs; the other severities are not limited.
    pub fn of(maxima: impl IntoIterator<Item = (Severity, u64)>) -> Self {
        let mut result = Self::default();
        for (severity, maximum) in maxima {
            result.set(severity, Some(maximum));
        }
        result
    }

    pub fn get(&self, severity: Severity) -> Option<u64> {
        self.0[severity.index()]
    }

    pub fn set(&mut self, severity: Severity, maximum: Option<u64>) {
        self.0[severity.index()] = maximum;
    }

    /// Whether no severity is limited (every scanned image is compliant).
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// The severities whose count is above their threshold, worst first; empty when compliant.
pub fn exceeded(counts: &Counts, thresholds: &Thresholds) -> Vec<Severity> {
    Severity::ALL
        .into_iter()
        .filter(|&severity| {
            thresholds
                .get(severity)
                .is_some_and(|maximum| counts.get(severity) > maximum)
        })
        .collect()
}

/// Whether no count is above its threshold.
pub fn is_compliant(counts: &Counts, thresholds: &Thresholds) -> bool {
    exceeded(counts, thresholds).is_empty()
}

/// One covered repository's findings, the input of [`summarize`]. It borrows its names: the
/// summary of a policy covering 10,000 repositories is made per reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositoryFindings<'a> {
    /// Namespace of the EcrRepository.
    pub namespace: &'a str,
    /// metadata.name of the EcrRepository.
    pub name: &'a str,
    /// Name of the ECR repository.
    pub repository: &'a str,
    /// The findings of the newest image when its scan is complete; `None` otherwise (no image,
    /// not scanned, in progress, unsupported, unavailable).
    pub counts: Option<Counts>,
    /// Digest of the image the counts belong to.
    pub image_digest: Option<&'a str>,
}

impl<'a> RepositoryFindings<'a> {
    /// The entry of an EcrRepository from its `status.findings`: counts only with a Complete
    /// scan.
    pub fn from_status(
        namespace: &'a str,
        name: &'a str,
        repository: &'a str,
        findings: Option<&'a FindingCounts>,
    ) -> Self {
        Self {
            namespace,
            name,
            repository,
            counts: findings
                .filter(|findings| findings.scan_status == ScanState::Complete)
                .map(Counts::from),
            image_digest: findings.and_then(|findings| findings.image_digest.as_deref()),
        }
    }
}

/// The summary over every covered repository and the non-compliant ones, worst first (most
/// critical findings, then high, medium, low, informational, undefined, then namespace and
/// name), at most `MAX_NON_COMPLIANT_LISTED` of them; the summary counts them all. Findings are
/// summed over the scanned repositories, compliant or not.
pub fn summarize(
    entries: &[RepositoryFindings],
    thresholds: &Thresholds,
) -> (ScanSummary, Vec<NonCompliantRepository>) {
    let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let mut totals = Counts::default();
    let mut scanned = 0;
    let mut non_compliant: Vec<(&RepositoryFindings, Counts)> = Vec::new();
    for entry in entries {
        let Some(counts) = entry.counts else { continue };
        scanned += 1;
        for (severity, count) in counts.iter() {
            totals.add(severity, count);
        }
        if !is_compliant(&counts, thresholds) {
            non_compliant.push((entry, counts));
        }
    }
    let summary = ScanSummary {
        repositories: to_i64(entries.len()),
        scanned: to_i64(scanned),
        non_compliant: to_i64(non_compliant.len()),
        critical: totals.signed(Severity::Critical),
        high: totals.signed(Severity::High),
        medium: totals.signed(Severity::Medium),
        low: totals.signed(Severity::Low),
        informational: totals.signed(Severity::Informational),
        undefined: totals.signed(Severity::Undefined),
    };
    non_compliant.sort_by(|(a, a_counts), (b, b_counts)| {
        (Reverse(a_counts), &a.namespace, &a.name, &a.repository).cmp(&(
            Reverse(b_counts),
            &b.namespace,
            &b.name,
            &b.repository,
        ))
    });
    let listed = non_compliant
        .into_iter()
        .take(MAX_NON_COMPLIANT_LISTED)
        .map(|(entry, counts)| NonCompliantRepository {
            namespace: entry.namespace.to_owned(),
            name: entry.name.to_owned(),
            repository: entry.repository.to_owned(),
            critical: counts.signed(Severity::Critical),
            high: counts.signed(Severity::High),
            medium: counts.signed(Severity::Medium),
            low: counts.signed(Severity::Low),
            informational: counts.signed(Severity::Informational),
            undefined: counts.signed(Severity::Undefined),
            image_digest: entry.image_digest.map(str::to_owned),
        })
        .collect();
    (summary, listed)
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;

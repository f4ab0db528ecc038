//! berth's model of a registry scanning configuration. Rules are keyed by frequency (ECR allows
//! one rule per frequency) and filters are a set, so rule order and filter order do not matter
//! and `==` is the semantic comparison; a rule without filters selects nothing and is the same as
//! no rule.

use std::collections::{BTreeMap, BTreeSet};

use super::wildcard::filter_matches;
use crate::api::{ScanFrequency, ScanType};

/// A registry scanning configuration: the scanner and, per frequency, the repository filters.
/// The default is what ECR reports for a registry never configured: Basic, no rules.
#[derive(Clone, Debug, Default, Eq)]
pub struct ScanningConfig {
    pub scan_type: ScanType,
    pub rules: BTreeMap<ScanFrequency, BTreeSet<String>>,
}

impl PartialEq for ScanningConfig {
    fn eq(&self, other: &Self) -> bool {
        self.scan_type == other.scan_type && self.effective_rules().eq(other.effective_rules())
    }
}

impl ScanningConfig {
    /// A configuration from rules given as (frequency, filters) pairs; the filters of two rules
    /// with the same frequency are merged.
    pub fn new<F, S>(scan_type: ScanType, rules: impl IntoIterator<Item = (ScanFrequency, F)>) -> Self
    where
        F: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut merged: BTreeMap<ScanFrequency, BTreeSet<String>> = BTreeMap::new();
        for (frequency, filters) in rules {
            merged
                .entry(frequency)
                .or_default()
                .extend(filters.into_iter().map(Into::into));
        }
        Self {
            scan_type,
            rules: merged,
        }
    }

    /// The rules that select something, in frequency order (ScanOnPush, ContinuousScan).
    fn effective_rules(&self) -> impl Iterator<Item = (&ScanFrequency, &BTreeSet<String>)> {
        self.rules.iter().filter(|(_, filters)| !filters.is_empty())
    }

    /// Which rule applies to the repository named `repository`, and the filter of that rule
    /// that selects it; `None` when no rule does (ECR then scans manually with Basic, and not
    /// at all with Enhanced).
    ///
    /// Where filters of both rules match, ContinuousScan applies: the Amazon ECR User Guide
    /// ("Filters to choose which repositories are scanned") says that ECR "enforces the
    /// continuous scanning filter over the scan on push filter". When several filters of the
    /// rule match, the first in sorted order is reported.
    pub fn effective(&self, repository: &str) -> Option<(ScanFrequency, String)> {
        [ScanFrequency::ContinuousScan, ScanFrequency::ScanOnPush]
            .into_iter()
            .find_map(|frequency| {
                let filters = self.rules.get(&frequency)?;
                let filter = filters.iter().find(|filter| filter_matches(filter, repository))?;
                Some((frequency, filter.clone()))
            })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

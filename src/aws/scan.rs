//! Registry scanning and image findings in berth's own types, and the pure mappings between
//! them and the SDK's types. These are the AWS side of the ScanPolicy kind; the API's own scan
//! types are mapped onto these elsewhere.

use aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput;
use aws_sdk_ecr::types::{
    ImageScanFindings, RegistryScanningConfiguration, RegistryScanningRule, RepositoryScanningConfiguration,
    ScanFrequency, ScanStatus, ScanType, ScanningRepositoryFilter, ScanningRepositoryFilterType,
};

/// Which scanner the registry uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RegistryScanType {
    /// ECR's own scanner (Clair); ECR's default.
    #[default]
    Basic,
    /// Amazon Inspector.
    Enhanced,
}

/// When the repositories a rule (or the registry) covers are scanned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RegistryScanFrequency {
    ScanOnPush,
    ContinuousScan,
    /// Only when someone starts a scan: what a repository no rule covers gets.
    #[default]
    Manual,
}

/// One rule of the registry's scanning configuration: a frequency for the repositories that
/// match any of its filters (ECR `WILDCARD` filters).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistryScanRule {
    pub frequency: RegistryScanFrequency,
    pub filters: Vec<String>,
}

/// The registry's scanning configuration (one per account and region).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistryScanning {
    pub scan_type: RegistryScanType,
    pub rules: Vec<RegistryScanRule>,
}

/// The scanning configuration that actually applies to one repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RepositoryScanning {
    pub repository: String,
    pub frequency: RegistryScanFrequency,
    /// The registry rule filter that matched the repository, if any.
    pub applied_filter: Option<String>,
}

/// How many findings an image's scan reported, by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeverityCounts {
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
    pub informational: i64,
    pub undefined: i64,
}

impl SeverityCounts {
    /// Adds `count` findings of `severity`, named as ECR or Inspector name it (any case);
    /// a name berth does not know (e.g. Inspector's `UNTRIAGED`) counts as undefined.
    pub fn add(&mut self, severity: &str, count: i64) {
        let slot = match severity.to_ascii_uppercase().as_str() {
            "CRITICAL" => &mut self.critical,
            "HIGH" => &mut self.high,
            "MEDIUM" => &mut self.medium,
            "LOW" => &mut self.low,
            "INFORMATIONAL" => &mut self.informational,
            _ => &mut self.undefined,
        };
        *slot += count;
    }

    pub fn total(&self) -> i64 {
        self.critical + self.high + self.medium + self.low + self.informational + self.undefined
    }
}

/// The state of an image's scan. Everything but a failed call is a state, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageFindings {
    /// The scan finished (basic `COMPLETE` or enhanced `ACTIVE`).
    Complete {
        counts: SeverityCounts,
        /// Unix seconds, when ECR reports it.
        completed_at: Option<i64>,
    },
    /// Pending or in progress.
    InProgress,
    /// The image was never scanned (`ScanNotFoundException`, or no scan status yet).
    NotScanned,
    /// The scanner does not support the image (`UNSUPPORTED_IMAGE`).
    Unsupported,
    /// No findings to be had (`FINDINGS_UNAVAILABLE`, `FAILED`, ...): AWS's description verbatim,
    /// or the status itself when AWS gives none.
    Unavailable(String),
}

/// What the first page of DescribeImageScanFindings settles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum FirstPage {
    /// The answer: no further page is read.
    Settled(ImageFindings),
    /// The scan is complete but carries no severity counts: count the findings of every page
    /// (this one included).
    CountFindings { completed_at: Option<i64> },
}

/// Reads the scan status first; a complete scan with severity counts needs no other page.
pub(super) fn first_page(output: &DescribeImageScanFindingsOutput) -> FirstPage {
    let Some(scan_status) = output.image_scan_status() else {
        return FirstPage::Settled(ImageFindings::NotScanned);
    };
    let Some(status) = scan_status.status() else {
        return FirstPage::Settled(ImageFindings::NotScanned);
    };
    let findings = output.image_scan_findings();
    let unavailable = || {
        let reason = scan_status
            .description()
            .filter(|d| !d.is_empty())
            .unwrap_or(status.as_str());
        FirstPage::Settled(ImageFindings::Unavailable(reason.to_owned()))
    };
    match status {
        ScanStatus::Complete | ScanStatus::Active => {
            let completed_at = findings.and_then(|f| f.image_scan_completed_at()).map(|t| t.secs());
            match findings.and_then(|f| f.finding_severity_counts()) {
                Some(by_severity) => {
                    let mut counts = SeverityCounts::default();
                    for (severity, count) in by_severity {
                        counts.add(severity.as_str(), i64::from(*count));
                    }
                    FirstPage::Settled(ImageFindings::Complete { counts, completed_at })
                }
                None => FirstPage::CountFindings { completed_at },
            }
        }
        ScanStatus::InProgress | ScanStatus::Pending => FirstPage::Settled(ImageFindings::InProgress),
        ScanStatus::UnsupportedImage => FirstPage::Settled(ImageFindings::Unsupported),
        // FINDINGS_UNAVAILABLE, FAILED, and the states in which no findings can be had
        // (SCAN_ELIGIBILITY_EXPIRED, LIMIT_EXCEEDED, IMAGE_ARCHIVED, any newer one)
        _ => unavailable(),
    }
}

/// Adds one page's basic and enhanced findings to `counts`.
pub(super) fn count_findings(counts: &mut SeverityCounts, findings: Option<&ImageScanFindings>) {
    let Some(findings) = findings else { return };
    for finding in findings.findings() {
        counts.add(finding.severity().map(|s| s.as_str()).unwrap_or_default(), 1);
    }
    for finding in findings.enhanced_findings() {
        counts.add(finding.severity().unwrap_or_default(), 1);
    }
}

fn frequency(sdk: &ScanFrequency) -> RegistryScanFrequency {
    match sdk {
        ScanFrequency::ScanOnPush => RegistryScanFrequency::ScanOnPush,
        ScanFrequency::ContinuousScan => RegistryScanFrequency::ContinuousScan,
        // MANUAL, and a frequency this SDK does not know: nothing scans automatically as far
        // as berth can tell
        _ => RegistryScanFrequency::Manual,
    }
}

fn sdk_frequency(frequency: RegistryScanFrequency) -> ScanFrequency {
    match frequency {
        RegistryScanFrequency::ScanOnPush => ScanFrequency::ScanOnPush,
        RegistryScanFrequency::ContinuousScan => ScanFrequency::ContinuousScan,
        RegistryScanFrequency::Manual => ScanFrequency::Manual,
    }
}

/// The registry's configuration as berth reads it; none at all is ECR's default (basic, no
/// rules). Filter types are not kept: ECR has only `WILDCARD`.
pub(super) fn registry_scanning(sdk: Option<&RegistryScanningConfiguration>) -> RegistryScanning {
    let Some(sdk) = sdk else {
        return RegistryScanning::default();
    };
    RegistryScanning {
        scan_type: match sdk.scan_type() {
            Some(ScanType::Enhanced) => RegistryScanType::Enhanced,
            _ => RegistryScanType::Basic,
        },
        rules: sdk
            .rules()
            .iter()
            .map(|rule| RegistryScanRule {
                frequency: frequency(rule.scan_frequency()),
                filters: rule
                    .repository_filters()
                    .iter()
                    .map(|f| f.filter().to_owned())
                    .collect(),
            })
            .collect(),
    }
}

pub(super) fn sdk_scan_type(scan_type: RegistryScanType) -> ScanType {
    match scan_type {
        RegistryScanType::Basic => ScanType::Basic,
        RegistryScanType::Enhanced => ScanType::Enhanced,
    }
}

/// The rules as PutRegistryScanningConfiguration takes them, every filter a `WILDCARD`.
pub(super) fn sdk_rules(scanning: &RegistryScanning) -> Vec<RegistryScanningRule> {
    scanning
        .rules
        .iter()
        .map(|rule| {
            let filters = rule
                .filters
                .iter()
                .map(|filter| {
                    ScanningRepositoryFilter::builder()
                        .filter(filter)
                        .filter_type(ScanningRepositoryFilterType::Wildcard)
                        .build()
                        .expect("filter and filter type are set")
                })
                .collect();
            RegistryScanningRule::builder()
                .scan_frequency(sdk_frequency(rule.frequency))
                .set_repository_filters(Some(filters))
                .build()
                .expect("frequency and filters are set")
        })
        .collect()
}

/// One repository's applied configuration; without a frequency, `scanOnPush` decides.
pub(super) fn repository_scanning(sdk: &RepositoryScanningConfiguration) -> RepositoryScanning {
    RepositoryScanning {
        repository: sdk.repository_name().unwrap_or_default().to_owned(),
        frequency: match sdk.scan_frequency() {
            Some(sdk_frequency) => frequency(sdk_frequency),
            None if sdk.scan_on_push() => RegistryScanFrequency::ScanOnPush,
            None => RegistryScanFrequency::Manual,
        },
        applied_filter: sdk.applied_scan_filters().first().map(|f| f.filter().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::types::{
        EnhancedImageScanFinding, FindingSeverity, ImageScanFinding, ImageScanStatus, RepositoryScanningConfiguration,
    };
    use aws_smithy_types::DateTime;

    fn output(status: Option<ScanStatus>, findings: Option<ImageScanFindings>) -> DescribeImageScanFindingsOutput {
        let mut builder = DescribeImageScanFindingsOutput::builder().set_image_scan_findings(findings);
        if let Some(status) = status {
            builder = builder.image_scan_status(
                ImageScanStatus::builder()
                    .status(status)
                    .description("The scan was completed successfully.")
                    .build(),
            );
        }
        builder.build()
    }

    #[test]
    fn severity_names_map_case_insensitively() {
        let mut counts = SeverityCounts::default();
        for (name, n) in [
            ("CRITICAL", 1),
            ("high", 2),
            ("Medium", 3),
            ("LOW", 4),
            ("informational", 5),
            ("UNDEFINED", 6),
            ("UNTRIAGED", 7),
            ("", 8),
        ] {
            counts.add(name, n);
        }
        assert_eq!(
            counts,
            SeverityCounts {
                critical: 1,
                high: 2,
                medium: 3,
                low: 4,
                informational: 5,
                undefined: 21,
            }
        );
        assert_eq!(counts.total(), 36);
    }

    #[test]
    fn a_complete_scan_with_counts_is_settled_by_its_first_page() {
        let findings = ImageScanFindings::builder()
            .image_scan_completed_at(DateTime::from_secs(1_700_000_000))
            .finding_severity_counts(FindingSeverity::Critical, 1)
            .finding_severity_counts(FindingSeverity::High, 3)
            .finding_severity_counts(FindingSeverity::Medium, 2)
            .finding_severity_counts(FindingSeverity::from("UNTRIAGED"), 4)
            // the listed findings are not counted again
            .findings(ImageScanFinding::builder().severity(FindingSeverity::Low).build())
            .build();
        let expected = ImageFindings::Complete {
            counts: SeverityCounts {
                critical: 1,
                high: 3,
                medium: 2,
                undefined: 4,
                ..Default::default()
            },
            completed_at: Some(1_700_000_000),
        };
        for status in [ScanStatus::Complete, ScanStatus::Active] {
            assert_eq!(
                first_page(&output(Some(status), Some(findings.clone()))),
                FirstPage::Settled(expected.clone())
            );
        }
    }

    #[test]
    fn a_complete_scan_without_counts_needs_its_findings_counted() {
        let findings = ImageScanFindings::builder()
            .image_scan_completed_at(DateTime::from_secs(1_700_000_000))
            .findings(ImageScanFinding::builder().severity(FindingSeverity::High).build())
            .build();
        assert_eq!(
            first_page(&output(Some(ScanStatus::Complete), Some(findings))),
            FirstPage::CountFindings {
                completed_at: Some(1_700_000_000)
            }
        );
        assert_eq!(
            first_page(&output(Some(ScanStatus::Active), None)),
            FirstPage::CountFindings { completed_at: None }
        );
    }

    #[test]
    fn other_statuses_are_states() {
        let settled = |status| match first_page(&output(status, None)) {
            FirstPage::Settled(findings) => findings,
            other => panic!("{other:?}"),
        };
        assert_eq!(settled(Some(ScanStatus::InProgress)), ImageFindings::InProgress);
        assert_eq!(settled(Some(ScanStatus::Pending)), ImageFindings::InProgress);
        assert_eq!(settled(Some(ScanStatus::UnsupportedImage)), ImageFindings::Unsupported);
        assert_eq!(settled(None), ImageFindings::NotScanned);
        let description = "The scan was completed successfully.";
        for status in [
            ScanStatus::Failed,
            ScanStatus::FindingsUnavailable,
            ScanStatus::ScanEligibilityExpired,
            ScanStatus::from("SOMETHING_NEW"),
        ] {
            assert_eq!(settled(Some(status)), ImageFindings::Unavailable(description.into()));
        }
        // no description: the status names the reason
        let bare = DescribeImageScanFindingsOutput::builder()
            .image_scan_status(
                ImageScanStatus::builder()
                    .status(ScanStatus::FindingsUnavailable)
                    .build(),
            )
            .build();
        assert_eq!(
            first_page(&bare),
            FirstPage::Settled(ImageFindings::Unavailable("FINDINGS_UNAVAILABLE".into()))
        );
        let no_status = DescribeImageScanFindingsOutput::builder()
            .image_scan_status(ImageScanStatus::builder().build())
            .build();
        assert_eq!(first_page(&no_status), FirstPage::Settled(ImageFindings::NotScanned));
    }

    #[test]
    fn basic_and_enhanced_findings_are_counted_by_severity() {
        let page = ImageScanFindings::builder()
            .findings(ImageScanFinding::builder().severity(FindingSeverity::High).build())
            .findings(
                ImageScanFinding::builder()
                    .severity(FindingSeverity::Informational)
                    .build(),
            )
            .findings(ImageScanFinding::builder().build())
            .enhanced_findings(EnhancedImageScanFinding::builder().severity("CRITICAL").build())
            .enhanced_findings(EnhancedImageScanFinding::builder().severity("high").build())
            .enhanced_findings(EnhancedImageScanFinding::builder().severity("UNTRIAGED").build())
            .build();
        let mut counts = SeverityCounts::default();
        count_findings(&mut counts, Some(&page));
        count_findings(&mut counts, None);
        count_findings(&mut counts, Some(&page));
        assert_eq!(
            counts,
            SeverityCounts {
                critical: 2,
                high: 4,
                informational: 2,
                undefined: 4,
                ..Default::default()
            }
        );
    }

    #[test]
    fn registry_scanning_maps_both_ways() {
        let scanning = RegistryScanning {
            scan_type: RegistryScanType::Enhanced,
            rules: vec![
                RegistryScanRule {
                    frequency: RegistryScanFrequency::ContinuousScan,
                    filters: vec!["payments/*".into(), "prod-*".into()],
                },
                RegistryScanRule {
                    frequency: RegistryScanFrequency::ScanOnPush,
                    filters: vec!["*".into()],
                },
            ],
        };
        let rules = sdk_rules(&scanning);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].scan_frequency(), &ScanFrequency::ContinuousScan);
        assert!(
            rules[0]
                .repository_filters()
                .iter()
                .all(|f| f.filter_type() == &ScanningRepositoryFilterType::Wildcard)
        );
        assert_eq!(sdk_scan_type(scanning.scan_type), ScanType::Enhanced);
        let sdk = RegistryScanningConfiguration::builder()
            .scan_type(sdk_scan_type(scanning.scan_type))
            .set_rules(Some(rules))
            .build();
        assert_eq!(registry_scanning(Some(&sdk)), scanning);

        assert_eq!(registry_scanning(None), RegistryScanning::default());
        assert_eq!(sdk_rules(&RegistryScanning::default()), vec![]);
        let manual = RegistryScanningConfiguration::builder()
            .scan_type(ScanType::Basic)
            .rules(
                RegistryScanningRule::builder()
                    .scan_frequency(ScanFrequency::Manual)
                    .set_repository_filters(Some(vec![]))
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(
            registry_scanning(Some(&manual)),
            RegistryScanning {
                scan_type: RegistryScanType::Basic,
                rules: vec![RegistryScanRule {
                    frequency: RegistryScanFrequency::Manual,
                    filters: vec![]
                }],
            }
        );
    }

    #[test]
    fn repository_scanning_reads_frequency_and_the_applied_filter() {
        let filter = ScanningRepositoryFilter::builder()
            .filter("payments")
            .filter_type(ScanningRepositoryFilterType::Wildcard)
            .build()
            .unwrap();
        let continuous = RepositoryScanningConfiguration::builder()
            .repository_name("payments/api")
            .scan_frequency(ScanFrequency::ContinuousScan)
            .applied_scan_filters(filter)
            .build();
        assert_eq!(
            repository_scanning(&continuous),
            RepositoryScanning {
                repository: "payments/api".into(),
                frequency: RegistryScanFrequency::ContinuousScan,
                applied_filter: Some("payments".into()),
            }
        );
        let on_push = RepositoryScanningConfiguration::builder()
            .repository_name("legacy")
            .scan_on_push(true)
            .build();
        assert_eq!(
            repository_scanning(&on_push).frequency,
            RegistryScanFrequency::ScanOnPush
        );
        let manual = RepositoryScanningConfiguration::builder()
            .repository_name("other")
            .scan_frequency(ScanFrequency::Manual)
            .build();
        assert_eq!(
            repository_scanning(&manual),
            RepositoryScanning {
                repository: "other".into(),
                frequency: RegistryScanFrequency::Manual,
                applied_filter: None,
            }
        );
    }

    #[test]
    fn registry_scanning_serializes_with_api_names() {
        let scanning = RegistryScanning {
            scan_type: RegistryScanType::Enhanced,
            rules: vec![RegistryScanRule {
                frequency: RegistryScanFrequency::ContinuousScan,
                filters: vec!["a*".into()],
            }],
        };
        let json = serde_json::to_value(&scanning).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"scanType": "Enhanced", "rules": [{"frequency": "ContinuousScan", "filters": ["a*"]}]})
        );
        assert_eq!(serde_json::from_value::<RegistryScanning>(json).unwrap(), scanning);
        assert_eq!(
            serde_json::from_value::<RegistryScanning>(serde_json::json!({})).unwrap(),
            RegistryScanning::default()
        );
    }
}

//! Findings: for every repository the governing ScanPolicy's rules cover, the newest image (from
//! the image inventory) and its scan findings, once per `refreshInterval`, spread over it. They
//! land in the EcrRepository's status (`findings`, `ScanCompliant`) under `berth-scan`, in
//! `berth_image_findings`, and in one Event per threshold crossing.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::EventType;
use serde_json::json;

use super::context::{SCAN_COMPLIANT, ScanRecord, ScanTarget, Scans, verdict};
use crate::api::{ConditionStatus, EcrRepository, FindingCounts, ScanState, set_condition};
use crate::aws::{Image, ImageFindings, SeverityCounts};
use crate::images::RepositoryRef;
use crate::reconcile::runtime::Runtime;
use crate::scan::{Thresholds, exceeded};
use crate::telemetry::ObjectKey;

/// The field manager of everything the ScanPolicy controller writes on an EcrRepository.
pub const FIELD_MANAGER: &str = "berth-scan";
const MAX_IMAGE_TAGS: usize = 10;

/// Applies `record` as the `berth-scan` part of the EcrRepository's status.
pub async fn write_record(runtime: &Runtime, key: &ObjectKey, record: &ScanRecord) -> Result<(), kube::Error> {
    let mut status = serde_json::Map::new();
    if let Some(scanning) = &record.scanning {
        status.insert("scanning".into(), json!(scanning));
    }
    if let Some(findings) = &record.findings {
        status.insert("findings".into(), json!(findings));
    }
    if let Some(condition) = &record.compliant {
        status.insert("conditions".into(), json!([condition]));
    }
    match crate::writes::apply_status::<EcrRepository>(&runtime.client, Some(&key.0), &key.1, FIELD_MANAGER, &status)
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The newest image by push time (the digest breaks ties, so the choice is stable).
pub fn newest(images: &[Image]) -> Option<&Image> {
    images
        .iter()
        .max_by(|a, b| (a.pushed_at, &a.digest).cmp(&(b.pushed_at, &b.digest)))
}

/// The status fields for one read of an image's findings.
pub fn finding_counts(image: &Image, findings: &ImageFindings) -> FindingCounts {
    let mut tags = image.tags.clone();
    tags.sort();
    tags.truncate(MAX_IMAGE_TAGS);
    let (state, counts, completed_at) = match findings {
        ImageFindings::Complete { counts, completed_at } => (ScanState::Complete, *counts, *completed_at),
        ImageFindings::InProgress => (ScanState::InProgress, SeverityCounts::default(), None),
        ImageFindings::NotScanned => (ScanState::NotScanned, SeverityCounts::default(), None),
        ImageFindings::Unsupported => (ScanState::Unsupported, SeverityCounts::default(), None),
        ImageFindings::Unavailable(_) => (ScanState::Unavailable, SeverityCounts::default(), None),
    };
    FindingCounts {
        critical: counts.critical,
        high: counts.high,
        medium: counts.medium,
        low: counts.low,
        informational: counts.informational,
        undefined: counts.undefined,
        image_digest: Some(image.digest.clone()),
        image_tags: tags,
        scan_status: state,
        completed_at: completed_at.and_then(rfc3339),
    }
}

fn rfc3339(unix_seconds: i64) -> Option<String> {
    k8s_openapi::jiff::Timestamp::from_second(unix_seconds)
        .ok()
        .map(|t| t.to_string())
}

/// The ScanCompliant condition for `findings` against `thresholds`: True within them, False
/// above one (naming each), Unknown while there is nothing complete to judge.
pub fn compliance(
    previous: Option<&Condition>,
    findings: Option<&FindingCounts>,
    unavailable: Option<&str>,
    thresholds: &Thresholds,
    now: Time,
) -> Condition {
    let previous: Vec<Condition> = previous.cloned().into_iter().collect();
    let (status, reason, message) = match findings {
        None => (
            ConditionStatus::Unknown,
            "NoImage",
            "the repository holds no image yet".to_owned(),
        ),
        Some(counts) if counts.scan_status != ScanState::Complete => {
            let (reason, message) = match counts.scan_status {
                ScanState::InProgress => ("ScanInProgress", "the newest image is being scanned".to_owned()),
                ScanState::Unsupported => ("UnsupportedImage", "ECR cannot scan the newest image".to_owned()),
                ScanState::Unavailable => (
                    "FindingsUnavailable",
                    format!("findings unavailable: {}", unavailable.unwrap_or("no reason given")),
                ),
                _ => ("NotScanned", "the newest image has not been scanned yet".to_owned()),
            };
            (ConditionStatus::Unknown, reason, message)
        }
        Some(counts) => {
            let counts = crate::scan::Counts::from(counts);
            let over = exceeded(&counts, thresholds);
            if over.is_empty() {
                (
                    ConditionStatus::True,
                    "WithinThresholds",
                    "findings of the newest image are within the thresholds".to_owned(),
                )
            } else {
                let parts: Vec<String> = over
                    .iter()
                    .map(|severity| {
                        let limit = thresholds.get(*severity).unwrap_or_default();
                        format!("{} {} > {limit}", severity.label(), counts.get(*severity))
                    })
                    .collect();
                (
                    ConditionStatus::False,
                    "ThresholdExceeded",
                    format!("newest image: {}", parts.join(", ")),
                )
            }
        }
    };
    set_condition(&previous, SCAN_COMPLIANT, status, reason, &message, None, now)
}

/// Runs the findings refresher until dropped (the leader term ends).
pub async fn refresh_loop(scans: &Scans, runtime: &Runtime) {
    let interval = || {
        let rules = scans.rules.lock().expect("rules lock");
        rules
            .values()
            .map(|r| r.refresh_interval)
            .min()
            .unwrap_or(Duration::from_secs(3600))
    };
    scans
        .targets
        .cycle(interval, |key, target| async move {
            refresh(scans, runtime, &key, &target).await;
        })
        .await;
}

/// One refresh of one repository's findings.
pub async fn refresh(scans: &Scans, runtime: &Runtime, key: &ObjectKey, target: &ScanTarget) {
    let Some(rules) = scans.rules_for(target) else {
        return; // the region's governing policy changed meanwhile
    };
    let repository = RepositoryRef::new(target.region.clone(), target.repository.clone());
    let images = match runtime.images.images(&repository, rules.refresh_interval).await {
        Ok(images) => images,
        Err(error) => {
            tracing::warn!(namespace = key.0, name = key.1, %error, "could not list images for findings");
            return;
        }
    };
    let previous = scans.record(key);
    let (findings, unavailable) = match newest(&images) {
        None => (None, None),
        Some(image) => {
            // an image whose digest and scan completion did not change is not counted again
            let known = previous.findings.as_ref().filter(|f| {
                f.image_digest.as_deref() == Some(image.digest.as_str()) && f.scan_status == ScanState::Complete
            });
            match runtime
                .registry
                .image_findings(&target.region, &target.repository, &image.digest)
                .await
            {
                Ok(ImageFindings::Complete { completed_at, .. })
                    if known.is_some_and(|f| f.completed_at == completed_at.and_then(rfc3339)) =>
                {
                    (known.cloned(), None)
                }
                Ok(findings) => {
                    let reason = match &findings {
                        ImageFindings::Unavailable(reason) => Some(reason.clone()),
                        _ => None,
                    };
                    (Some(Box::new(finding_counts(image, &findings))), reason)
                }
                Err(error) => {
                    tracing::warn!(namespace = key.0, name = key.1, %error, "could not read scan findings");
                    return;
                }
            }
        }
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let condition = compliance(
        previous.compliant.as_deref(),
        findings.as_deref(),
        unavailable.as_deref(),
        &rules.thresholds,
        now,
    );
    let record = ScanRecord {
        findings: findings.clone(),
        non_compliant: verdict(&condition.status).or(previous.non_compliant),
        compliant: Some(Box::new(condition.clone())),
        ..previous.clone()
    };
    match &findings {
        Some(counts) if counts.scan_status == ScanState::Complete => {
            let counts = crate::scan::Counts::from(counts.as_ref());
            runtime.metrics.set_image_findings(key, &target.repository, counts);
        }
        _ => runtime.metrics.forget_image_findings(key),
    }
    if record == previous {
        return;
    }
    if let Err(error) = write_record(runtime, key, &record).await {
        tracing::warn!(namespace = key.0, name = key.1, %error, "could not write scan findings");
        return;
    }
    scans.store(key, record.clone(), target);
    announce_crossing(runtime, key, previous.non_compliant, &condition).await;
}

/// One Warning Event when a repository goes above a threshold, one Normal Event when it comes
/// back within them; nothing while it stays where it was.
async fn announce_crossing(runtime: &Runtime, key: &ObjectKey, before: Option<bool>, now: &Condition) {
    let Some((type_, reason)) = crossing(before, now) else {
        return;
    };
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("ecr.berth.dev/v1alpha1".into()),
        kind: Some("EcrRepository".into()),
        namespace: Some(key.0.clone()),
        name: Some(key.1.clone()),
        ..Default::default()
    };
    runtime
        .publish(&reference, type_, reason, "DescribeImageScanFindings", &now.message)
        .await;
}

/// The Event a verdict deserves against the last definite one (`before`: was non-compliant):
/// Warning when it becomes non-compliant, Normal when it comes back within the thresholds, none
/// otherwise (Unknown while a scan runs is no verdict and no crossing).
pub fn crossing(before: Option<bool>, now: &Condition) -> Option<(EventType, &'static str)> {
    let was_non_compliant = before == Some(true);
    match (was_non_compliant, now.status.as_str()) {
        (false, "False") => Some((EventType::Warning, "ThresholdExceeded")),
        (true, "True") => Some((EventType::Normal, "WithinThresholds")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Severity;

    fn image(digest: &str, pushed_at: i64, tags: &[&str]) -> Image {
        Image {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at,
            ..Image::default()
        }
    }

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn the_newest_image_is_chosen_by_push_time_then_digest() {
        let images = [
            image("sha256:a", 10, &[]),
            image("sha256:c", 20, &[]),
            image("sha256:b", 20, &[]),
        ];
        assert_eq!(newest(&images).unwrap().digest, "sha256:c");
        assert_eq!(newest(&[]), None);
    }

    #[test]
    fn compliance_flips_above_a_threshold_and_keeps_its_transition_time() {
        let thresholds = Thresholds::of([(Severity::Critical, 0), (Severity::High, 5)]);
        let complete = |critical, high| FindingCounts {
            critical,
            high,
            scan_status: ScanState::Complete,
            ..FindingCounts::default()
        };
        let within = compliance(None, Some(&complete(0, 5)), None, &thresholds, at(10));
        assert_eq!(
            (within.status.as_str(), within.reason.as_str()),
            ("True", "WithinThresholds")
        );
        let over = compliance(Some(&within), Some(&complete(1, 9)), None, &thresholds, at(20));
        assert_eq!(
            (over.status.as_str(), over.reason.as_str()),
            ("False", "ThresholdExceeded")
        );
        assert!(
            over.message.contains("critical 1 > 0") && over.message.contains("high 9 > 5"),
            "{}",
            over.message
        );
        let still = compliance(Some(&over), Some(&complete(2, 9)), None, &thresholds, at(30));
        assert_eq!(still.last_transition_time, at(20));
        let pending = FindingCounts {
            scan_status: ScanState::InProgress,
            ..FindingCounts::default()
        };
        let unknown = compliance(Some(&still), Some(&pending), None, &thresholds, at(40));
        assert_eq!(
            (unknown.status.as_str(), unknown.reason.as_str()),
            ("Unknown", "ScanInProgress")
        );
        assert_eq!(compliance(None, None, None, &thresholds, at(1)).reason, "NoImage");
    }

    #[test]
    fn one_event_per_crossing_and_none_while_the_state_holds() {
        let condition = |status: &str| Condition {
            status: status.into(),
            type_: SCAN_COMPLIANT.into(),
            reason: "Test".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(0),
        };
        let (t, f, u) = (condition("True"), condition("False"), condition("Unknown"));
        assert_eq!(crossing(None, &f), Some((EventType::Warning, "ThresholdExceeded")));
        assert_eq!(
            crossing(Some(false), &f),
            Some((EventType::Warning, "ThresholdExceeded"))
        );
        assert_eq!(crossing(Some(true), &f), None);
        assert_eq!(crossing(Some(true), &u), None, "a scan in progress is no crossing");
        // non-compliant, then a scan in progress, then within: that is the way back under
        assert_eq!(crossing(Some(true), &t), Some((EventType::Normal, "WithinThresholds")));
        assert_eq!(crossing(Some(false), &t), None);
        assert_eq!(crossing(None, &t), None);
    }

    #[test]
    fn counts_carry_the_image_and_the_scan_state() {
        let findings = ImageFindings::Complete {
            counts: SeverityCounts {
                critical: 1,
                high: 3,
                ..SeverityCounts::default()
            },
            completed_at: Some(1_795_000_000),
        };
        let counts = finding_counts(&image("sha256:x", 1, &["v2", "latest"]), &findings);
        assert_eq!((counts.critical, counts.high), (1, 3));
        assert_eq!(counts.image_tags, ["latest", "v2"]);
        assert_eq!(counts.scan_status, ScanState::Complete);
        assert_eq!(counts.completed_at.as_deref(), Some("2026-11-18T11:06:40Z"));
        let none = finding_counts(&image("sha256:y", 1, &[]), &ImageFindings::NotScanned);
        assert_eq!((none.critical, none.scan_status), (0, ScanState::NotScanned));
    }
}

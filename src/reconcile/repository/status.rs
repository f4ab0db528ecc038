//! Step 4: the status fields that the EcrRepository controller owns (field manager `berth`).
//! Deterministic: the same outcome gives the same status, so an in-sync object is not written.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{EcrRepositoryStatus, Progress, READY, RECONCILING, STALLED, progress_conditions};
use crate::aws::ObservedRepository;

/// The outcome of one reconcile, as the Ready condition reports it.
pub enum Outcome<'a> {
    Synced {
        repository: &'a ObservedRepository,
        push_role_arn: Option<String>,
    },
    Failed {
        reason: &'a str,
        message: String,
        /// Stalled (terminal) or Retrying (transient).
        progress: Progress,
    },
}

/// Builds the `berth`-owned part of the status. On failure the last known repository
/// coordinates are kept, so that a passing AWS error does not blank the URI.
pub fn repository_status(
    previous: Option<&EcrRepositoryStatus>,
    generation: Option<i64>,
    outcome: Outcome<'_>,
    now: Time,
) -> EcrRepositoryStatus {
    let previous_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (conditions, uri, arn, registry_id, push_role_arn) = match outcome {
        Outcome::Synced {
            repository,
            push_role_arn,
        } => (
            progress_conditions(
                previous_conditions,
                Progress::Ready,
                "Synced",
                &format!("repository {} is in sync", repository.name),
                generation,
                now,
            ),
            Some(repository.uri.clone()),
            Some(repository.arn.clone()),
            Some(repository.registry_id.clone()),
            push_role_arn,
        ),
        Outcome::Failed {
            reason,
            message,
            progress,
        } => (
            progress_conditions(previous_conditions, progress, reason, &message, generation, now),
            previous.and_then(|s| s.repository_uri.clone()),
            previous.and_then(|s| s.repository_arn.clone()),
            previous.and_then(|s| s.registry_id.clone()),
            previous.and_then(|s| s.push_role_arn.clone()),
        ),
    };
    EcrRepositoryStatus {
        observed_generation: generation,
        conditions,
        repository_uri: uri,
        repository_arn: arn,
        registry_id,
        push_role_arn,
        ..Default::default()
    }
}

/// Whether the status reports Ready=True.
pub fn is_ready(status: &EcrRepositoryStatus) -> bool {
    status.condition(READY).is_some_and(|c| c.status == "True")
}

/// Whether `desired` differs from what `current` holds in the fields `berth` owns.
pub fn needs_write(current: Option<&EcrRepositoryStatus>, desired: &EcrRepositoryStatus) -> bool {
    let Some(current) = current else { return true };
    current.observed_generation != desired.observed_generation
        || current.repository_uri != desired.repository_uri
        || current.repository_arn != desired.repository_arn
        || current.registry_id != desired.registry_id
        || current.push_role_arn != desired.push_role_arn
        || [READY, STALLED, RECONCILING]
            .iter()
            .any(|type_| current.condition(type_) != desired.condition(type_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap())
    }

    fn throttled() -> Outcome<'static> {
        Outcome::Failed {
            reason: "AwsThrottled",
            message: "DescribeRepositories: ThrottlingException: Rate exceeded".into(),
            progress: Progress::Retrying,
        }
    }

    #[test]
    fn a_repeated_failure_gives_an_identical_status_and_no_write() {
        let first = repository_status(None, Some(1), throttled(), at(100));
        let second = repository_status(Some(&first), Some(1), throttled(), at(200));
        assert_eq!(
            second, first,
            "nothing in the status may depend on when the failure repeated"
        );
        assert!(!needs_write(Some(&first), &second));
        // another failure is news
        let denied = Outcome::Failed {
            reason: "AwsAccessDenied",
            message: "denied".into(),
            progress: Progress::Stalled,
        };
        assert!(needs_write(
            Some(&first),
            &repository_status(Some(&first), Some(1), denied, at(300))
        ));
    }
}

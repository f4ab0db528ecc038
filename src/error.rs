//! The one error type of the reconcilers. Each variant knows its condition/Event reason, its
//! metric label, and whether retrying without a spec change can help.

use crate::aws::AwsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec breaks a rule that the schema/CEL should have caught (clusters < 1.25 drop CEL).
    #[error("{0}")]
    InvalidSpec(String),
    /// The repository exists, carries no owner tag, and `spec.adopt` is false.
    #[error("{0}")]
    AdoptionRequired(String),
    /// The repository belongs to another cluster or object.
    #[error("{0}")]
    OwnedByOther(String),
    /// deletionPolicy Delete, but the repository still holds images and forceDelete is false.
    #[error("{0}")]
    DeletionBlocked(String),
    /// The operator's own configuration cannot serve this spec (e.g. no GitHub OIDC provider).
    #[error("{0}")]
    Configuration(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// The `reason` of the Ready condition and of the Warning Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::AdoptionRequired(_) => "AdoptionRequired",
            Error::OwnedByOther(_) => "OwnedByOther",
            Error::DeletionBlocked(_) => "DeletionBlocked",
            Error::Configuration(_) => "OperatorConfiguration",
            Error::Aws(aws) => aws.kind.reason(),
            Error::Kube(_) => "KubernetesError",
        }
    }

    /// The Warning Event's action: the AWS operation that failed, else `Reconcile`. Distinct
    /// actions keep the recorder from folding different failures into one series.
    pub fn action(&self) -> &'static str {
        match self {
            Error::Aws(aws) => aws.operation,
            _ => "Reconcile",
        }
    }

    /// The `reason` label of `berth_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::AdoptionRequired(_) => "adoption_required",
            Error::OwnedByOther(_) => "owned_by_other",
            Error::DeletionBlocked(_) => "deletion_blocked",
            Error::Configuration(_) => "configuration",
            Error::Aws(aws) => aws.kind.metric_label(),
            Error::Kube(_) => "kubernetes",
        }
    }

    /// How the object's conditions report this failure: terminal ones stall (kstatus
    /// `Stalled=True`), transient ones are retried (`Reconciling=True`).
    pub fn progress(&self) -> crate::api::Progress {
        if self.is_transient() {
            crate::api::Progress::Retrying
        } else {
            crate::api::Progress::Stalled
        }
    }

    /// A Kubernetes 409 (the object changed since it was read): retried at once from the newer
    /// object, without a failure status or Warning Event, since nothing is wrong. Likewise an
    /// AWS call refused by the leader fence: this replica's term is ending, the object is fine.
    pub fn is_silent_retry(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => status.code == 409,
            Error::Aws(aws) => aws.kind == crate::aws::AwsErrorKind::Fenced,
            _ => false,
        }
    }

    /// The AWS class of an AWS failure.
    pub fn aws_kind(&self) -> Option<crate::aws::AwsErrorKind> {
        match self {
            Error::Aws(aws) => Some(aws.kind),
            _ => None,
        }
    }

    /// Whether this failure is written to the object's status and published as a Warning
    /// Event, given how many reconciles in a row AWS throttled before it. Not for silent retries; not
    /// for a request berth's own rate budget held back (berth pacing itself is no failure);
    /// not for AWS throttling that outlasted the SDK's retries while it is brief: the budget
    /// has slowed down and the backoff retries, so Ready keeps what it said. Throttling that
    /// persists over `QUIET_THROTTLES` reconciles is reported (`AwsThrottled`), so that a
    /// reconcile is never held back for minutes without a trace.
    pub fn is_reported(&self, throttled_before: u32) -> bool {
        match self {
            _ if self.is_silent_retry() => false,
            Error::Aws(aws) => match aws.kind {
                crate::aws::AwsErrorKind::RateLimited => false,
                crate::aws::AwsErrorKind::Throttled => throttled_before >= QUIET_THROTTLES,
                _ => true,
            },
            _ => true,
        }
    }

    /// Whether retrying with backoff can succeed without the spec changing. Terminal errors are
    /// retried only at the resync interval, so that AWS is not hammered.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Aws(aws) => aws.kind.is_transient(),
            Error::Kube(_) => true,
            _ => false,
        }
    }
}

/// Consecutive throttled reconciles of one object that are retried without a status (about
/// 1 + 2 + 4 s of backoff plus the SDK's retries of each).
pub const QUIET_THROTTLES: u32 = 3;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsErrorKind;

    fn aws(kind: AwsErrorKind) -> Error {
        Error::Aws(AwsError {
            operation: "Op",
            kind,
            code: "Code".into(),
            message: "AWS's own words".into(),
        })
    }

    fn kube_status(code: u16) -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure("changed", "Conflict")
                .with_code(code)
                .boxed(),
        ))
    }

    /// The one table of error classes: retried with backoff, terminal (Stalled) until the spec
    /// or the configuration changes, or retried silently.
    #[test]
    fn every_error_has_one_class() {
        use crate::api::Progress::{Retrying, Stalled};
        let table = [
            (Error::InvalidSpec("spec.tags".into()), Stalled, "InvalidSpec", false),
            (Error::AdoptionRequired("x".into()), Stalled, "AdoptionRequired", false),
            (Error::OwnedByOther("x".into()), Stalled, "OwnedByOther", false),
            (Error::DeletionBlocked("x".into()), Stalled, "DeletionBlocked", false),
            (
                Error::Configuration("x".into()),
                Stalled,
                "OperatorConfiguration",
                false,
            ),
            (aws(AwsErrorKind::AccessDenied), Stalled, "AwsAccessDenied", false),
            (aws(AwsErrorKind::ClientError), Stalled, "AwsError", false),
            (aws(AwsErrorKind::Configuration), Stalled, "AwsConfiguration", false),
            (aws(AwsErrorKind::Throttled), Retrying, "AwsThrottled", false),
            (aws(AwsErrorKind::ServerError), Retrying, "AwsServerError", false),
            (aws(AwsErrorKind::Timeout), Retrying, "AwsTimeout", false),
            (aws(AwsErrorKind::Unreachable), Retrying, "AwsUnreachable", false),
            (aws(AwsErrorKind::Conflict), Retrying, "AwsConflict", false),
            (aws(AwsErrorKind::NotFound), Retrying, "AwsNotFound", false),
            (aws(AwsErrorKind::Fenced), Retrying, "LeaderTermOver", true),
            (kube_status(500), Retrying, "KubernetesError", false),
            (kube_status(409), Retrying, "KubernetesError", true),
        ];
        for (error, progress, reason, silent) in table {
            assert_eq!(error.progress(), progress, "{error:?}");
            assert_eq!(error.reason(), reason, "{error:?}");
            assert_eq!(error.is_silent_retry(), silent, "{error:?}");
            if !matches!(reason, "AwsThrottled" | "RateLimited") {
                assert_eq!(error.is_reported(0), !silent, "{error:?}");
            }
        }
        // berth pacing itself is never reported; AWS's throttling only once it persists
        let paced = aws(AwsErrorKind::RateLimited);
        assert_eq!((paced.progress(), paced.reason()), (Retrying, "RateLimited"));
        assert!(!paced.is_silent_retry(), "retried with backoff, not at once");
        assert!(!paced.is_reported(0) && !paced.is_reported(100));
        let throttled = aws(AwsErrorKind::Throttled);
        assert!(!throttled.is_reported(0) && !throttled.is_reported(QUIET_THROTTLES - 1));
        assert!(throttled.is_reported(QUIET_THROTTLES));
        // AWS's own message reaches the condition and the Event verbatim
        assert!(aws(AwsErrorKind::AccessDenied).to_string().contains("AWS's own words"));
    }

    #[test]
    fn warnings_name_the_failed_operation() {
        let aws = Error::Aws(AwsError {
            operation: "SetRepositoryPolicy",
            kind: AwsErrorKind::ClientError,
            code: "InvalidParameterException".into(),
            message: "bad".into(),
        });
        assert_eq!(aws.action(), "SetRepositoryPolicy");
        assert_eq!(Error::InvalidSpec("spec.tags".into()).action(), "Reconcile");
    }
}

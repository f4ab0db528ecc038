//! AWS errors, classified once so that callers decide on retry, reason and metric label.

use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_types::retry::ErrorKind;

/// What kind of failure an AWS call ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsErrorKind {
    Throttled,
    ServerError,
    Timeout,
    AccessDenied,
    NotFound,
    /// The resource changed under us (already exists, concurrent modification): retry.
    Conflict,
    /// A 4xx the request itself caused: validation, limits, conflicts.
    ClientError,
    /// No response: the connection could not be made or broke (DNS, TLS, refused, reset).
    Unreachable,
    /// The request could not even be built or sent as configured (no credentials, no region,
    /// an invalid endpoint): nothing will change until the operator's setup does.
    Configuration,
    /// Refused before it was sent: this replica's leader term may be over (see `Fence`). The
    /// term ends and whoever leads now does the work, so it is retried silently.
    Fenced,
    /// Refused before it was sent: the service's rate budget had no turn within the wait cap
    /// (see `RateBudget`). berth is pacing itself; retried with backoff, without a status.
    RateLimited,
}

impl AwsErrorKind {
    /// Whether retrying with backoff can succeed as things are. NotFound is: something that
    /// vanished between observing and writing is observed again (and recreated or forgotten).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Throttled
                | Self::ServerError
                | Self::Timeout
                | Self::Conflict
                | Self::NotFound
                | Self::Unreachable
                | Self::Fenced
                | Self::RateLimited
        )
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::Throttled => "AwsThrottled",
            Self::ServerError => "AwsServerError",
            Self::Timeout => "AwsTimeout",
            Self::AccessDenied => "AwsAccessDenied",
            Self::NotFound => "AwsNotFound",
            Self::Conflict => "AwsConflict",
            Self::ClientError => "AwsError",
            Self::Unreachable => "AwsUnreachable",
            Self::Configuration => "AwsConfiguration",
            Self::Fenced => "LeaderTermOver",
            Self::RateLimited => "RateLimited",
        }
    }

    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::AccessDenied => "access_denied",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::ClientError => "client_error",
            Self::Unreachable => "unreachable",
            Self::Configuration => "configuration",
            Self::Fenced => "fenced",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// A failed AWS call, with the service's own code and message kept verbatim.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn is_code(&self, code: &str) -> bool {
        self.code == code
    }

    pub fn from_sdk<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = error.code().map(str::to_owned);
        let kind = match &error {
            _ if super::fence::is_fenced(&error) => AwsErrorKind::Fenced,
            _ if super::budget::is_rate_limited(&error) => AwsErrorKind::RateLimited,
            SdkError::TimeoutError(_) => AwsErrorKind::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_timeout() => AwsErrorKind::Timeout,
            // the network failed: worth retrying
            SdkError::DispatchFailure(failure) if failure.is_io() => AwsErrorKind::Unreachable,
            SdkError::DispatchFailure(failure) => match failure.as_other() {
                // the connector's own verdict, e.g. on a connection closed before the answer
                // came (hyper's IncompleteMessage), which the SDK retries too
                Some(ErrorKind::TransientError) => AwsErrorKind::Unreachable,
                Some(ErrorKind::ServerError) => AwsErrorKind::ServerError,
                Some(ErrorKind::ThrottlingError) => AwsErrorKind::Throttled,
                // not a network failure: the request could not be sent as configured (the SDK
                // reports missing credentials and endpoint errors this way)
                _ => AwsErrorKind::Configuration,
            },
            SdkError::ResponseError(failure) => {
                classify_outcome(Some(failure.raw().status().as_u16()), code.as_deref(), false)
            }
            SdkError::ServiceError(failure) => {
                classify_outcome(Some(failure.raw().status().as_u16()), code.as_deref(), false)
            }
            // not even sent: no credentials, no region, a request that cannot be built
            _ => AwsErrorKind::Configuration,
        };
        let message = error
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
        AwsError {
            operation,
            kind,
            code: code.unwrap_or_else(|| kind.reason().to_owned()),
            message,
        }
    }
}

/// Whether `error` or anything in its source chain is a `T`.
pub(crate) fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<T>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// Reads "does not exist" (any code classified NotFound) as None, for lookups and idempotent
/// deletes.
pub trait AbsentAsNone<T> {
    fn absent_as_none(self) -> Result<Option<T>, AwsError>;
}

impl<T> AbsentAsNone<T> for Result<T, AwsError> {
    fn absent_as_none(self) -> Result<Option<T>, AwsError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.kind == AwsErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Classifies a call's outcome from the HTTP status, the AWS error code and whether it timed out.
pub fn classify_outcome(status: Option<u16>, code: Option<&str>, timed_out: bool) -> AwsErrorKind {
    if timed_out {
        return AwsErrorKind::Timeout;
    }
    let code = code.unwrap_or_default();
    if code.contains("Throttl")
        || matches!(code, "TooManyRequestsException" | "RequestLimitExceeded" | "SlowDown")
        || status == Some(429)
    {
        return AwsErrorKind::Throttled;
    }
    if code.contains("AccessDenied")
        || matches!(code, "UnauthorizedOperation" | "UnrecognizedClientException")
        || status == Some(403)
    {
        return AwsErrorKind::AccessDenied;
    }
    if code.ends_with("NotFoundException") || code == "NoSuchEntity" {
        return AwsErrorKind::NotFound;
    }
    if code.ends_with("AlreadyExistsException")
        || matches!(
            code,
            "ConcurrentModificationException" | "EntityAlreadyExists" | "ConcurrentModification"
        )
    {
        return AwsErrorKind::Conflict;
    }
    match status {
        Some(s) if s >= 500 => AwsErrorKind::ServerError,
        Some(_) => AwsErrorKind::ClientError,
        // no response at all: the connection failed
        None => AwsErrorKind::Timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_outcomes() {
        use AwsErrorKind::*;
        assert_eq!(
            classify_outcome(Some(400), Some("ThrottlingException"), false),
            Throttled
        );
        assert_eq!(classify_outcome(Some(400), Some("Throttling"), false), Throttled);
        assert_eq!(classify_outcome(Some(429), None, false), Throttled);
        assert_eq!(classify_outcome(Some(500), Some("ServerException"), false), ServerError);
        assert_eq!(classify_outcome(Some(503), None, false), ServerError);
        assert_eq!(classify_outcome(None, None, true), Timeout);
        assert_eq!(classify_outcome(None, None, false), Timeout);
        assert_eq!(
            classify_outcome(Some(400), Some("AccessDeniedException"), false),
            AccessDenied
        );
        assert_eq!(classify_outcome(Some(403), Some("Whatever"), false), AccessDenied);
        assert_eq!(
            classify_outcome(Some(400), Some("RepositoryNotFoundException"), false),
            NotFound
        );
        assert_eq!(classify_outcome(Some(404), Some("NoSuchEntity"), false), NotFound);
        assert_eq!(
            classify_outcome(Some(400), Some("InvalidParameterException"), false),
            ClientError
        );
        assert_eq!(
            classify_outcome(Some(400), Some("RepositoryAlreadyExistsException"), false),
            Conflict
        );
        // IAM's codes carry no Exception suffix
        assert_eq!(
            classify_outcome(Some(409), Some("EntityAlreadyExists"), false),
            Conflict
        );
        assert_eq!(
            classify_outcome(Some(409), Some("ConcurrentModification"), false),
            Conflict
        );
        assert!(Conflict.is_transient());
        assert!(Throttled.is_transient() && ServerError.is_transient() && Timeout.is_transient());
        assert!(!AccessDenied.is_transient() && !ClientError.is_transient());
        // gone between observing and writing: observe again
        assert!(NotFound.is_transient());
    }

    #[test]
    fn failures_without_a_response_say_what_is_wrong() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        type Sdk = SdkError<aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError, HttpResponse>;
        let classify = |error: Sdk| AwsError::from_sdk("DescribeRepositories", error);

        let unbuildable = classify(SdkError::construction_failure("a required field is missing"));
        assert_eq!(unbuildable.kind, AwsErrorKind::Configuration);
        // identity resolution fails before transmit: the SDK reports it as an `other` dispatch failure
        let no_credentials = classify(SdkError::dispatch_failure(ConnectorError::other(
            "no credentials in the chain".into(),
            None,
        )));
        assert_eq!(no_credentials.kind, AwsErrorKind::Configuration);
        assert!(!no_credentials.kind.is_transient());
        assert!(
            no_credentials.message.contains("no credentials"),
            "{}",
            no_credentials.message
        );

        let refused = classify(SdkError::dispatch_failure(ConnectorError::io(
            "connection refused".into(),
        )));
        assert_eq!(refused.kind, AwsErrorKind::Unreachable);
        assert!(refused.kind.is_transient());
        assert!(refused.message.contains("connection refused"), "{}", refused.message);

        let bad_endpoint = classify(SdkError::dispatch_failure(ConnectorError::user("invalid URI".into())));
        assert_eq!(bad_endpoint.kind, AwsErrorKind::Configuration);

        // what the SDK's connector reports when the connection closes before an answer
        let closed = classify(SdkError::dispatch_failure(ConnectorError::other(
            "connection closed before message completed".into(),
            Some(aws_smithy_types::retry::ErrorKind::TransientError),
        )));
        assert_eq!(closed.kind, AwsErrorKind::Unreachable);
        assert!(closed.kind.is_transient());
        let busy = classify(SdkError::dispatch_failure(ConnectorError::other(
            "busy".into(),
            Some(aws_smithy_types::retry::ErrorKind::ServerError),
        )));
        assert_eq!(busy.kind, AwsErrorKind::ServerError);

        let slow = classify(SdkError::dispatch_failure(ConnectorError::timeout(
            "read timed out".into(),
        )));
        assert_eq!(slow.kind, AwsErrorKind::Timeout);

        let response = HttpResponse::new(503.try_into().unwrap(), aws_smithy_types::body::SdkBody::empty());
        let garbled = classify(SdkError::response_error("unparsable body", response));
        assert_eq!(garbled.kind, AwsErrorKind::ServerError);

        // the leader fence refuses in an interceptor before transmit, which the SDK reports
        // as an `other` dispatch failure wrapping the interceptor's error
        use aws_smithy_runtime_api::client::interceptors::error::InterceptorError;
        let refused = InterceptorError::read_before_transmit("BerthLeaderFence", crate::aws::Fenced);
        let fenced = classify(SdkError::dispatch_failure(ConnectorError::other(
            Box::new(refused),
            None,
        )));
        assert_eq!(fenced.kind, AwsErrorKind::Fenced);
        assert!(fenced.kind.is_transient());
    }

    fn error(code: &str) -> AwsError {
        AwsError {
            operation: "Op",
            kind: classify_outcome(Some(400), Some(code), false),
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn absent_resources_read_as_none() {
        for code in [
            "NoSuchEntity",
            "RepositoryNotFoundException",
            "RepositoryPolicyNotFoundException",
        ] {
            assert_eq!(Err::<(), _>(error(code)).absent_as_none().unwrap(), None, "{code}");
        }
        assert_eq!(Ok::<_, AwsError>(7).absent_as_none().unwrap(), Some(7));
        assert!(Err::<(), _>(error("AccessDeniedException")).absent_as_none().is_err());
    }
}

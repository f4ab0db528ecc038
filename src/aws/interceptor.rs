//! One SDK interceptor, attached to every AWS client berth builds, that counts and times each
//! HTTP attempt by service, operation and outcome: no call site records metrics by hand.

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use super::error::{AwsErrorKind, classify_outcome};
use crate::telemetry::AwsMetrics;

/// The outcome label of one attempt.
pub fn attempt_outcome(status: Option<u16>, error_code: Option<&str>, timed_out: bool) -> &'static str {
    if !timed_out && error_code.is_none() && status.is_some_and(|s| s < 400) {
        return "success";
    }
    match classify_outcome(status, error_code, timed_out) {
        AwsErrorKind::Throttled => "throttled",
        AwsErrorKind::ServerError => "server_error",
        // (classify_outcome never says Fenced or RateLimited: such an attempt is not sent, nor counted)
        AwsErrorKind::Timeout
        | AwsErrorKind::Unreachable
        | AwsErrorKind::Configuration
        | AwsErrorKind::Fenced
        | AwsErrorKind::RateLimited => "timeout",
        AwsErrorKind::AccessDenied | AwsErrorKind::NotFound | AwsErrorKind::Conflict | AwsErrorKind::ClientError => {
            "client_error"
        }
    }
}

/// The AWS error code of a failed response: the `x-amzn-ErrorType` header (JSON protocols),
/// else `__type` in a JSON body, else `<Code>` in an XML body (IAM and STS).
pub fn error_code(error_type_header: Option<&str>, body: &[u8]) -> Option<String> {
    let strip = |code: &str| {
        // "ThrottlingException:http://..." or "com.amazonaws.ecr#ThrottlingException"
        let code = code.split(':').next().unwrap_or(code);
        code.rsplit('#').next().unwrap_or(code).trim().to_owned()
    };
    if let Some(header) = error_type_header.filter(|h| !h.is_empty()) {
        return Some(strip(header));
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        return json
            .get("__type")
            .or_else(|| json.get("code"))
            .and_then(|v| v.as_str())
            .map(strip);
    }
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(strip(&text[start..end]))
}

/// The outcome label of an attempt that got a response (4xx/5xx without a readable code still
/// count by their status).
pub fn response_outcome(response: &HttpResponse) -> &'static str {
    let status = response.status().as_u16();
    let code = (status >= 400)
        .then(|| {
            error_code(
                response.headers().get("x-amzn-errortype"),
                response.body().bytes().unwrap_or_default(),
            )
        })
        .flatten();
    attempt_outcome(Some(status), code.as_deref(), false)
}

#[derive(Debug)]
struct AttemptStarted(Instant);

impl Storable for AttemptStarted {
    type Storer = StoreReplace<Self>;
}

/// Records `berth_aws_requests_total` and `berth_aws_request_duration_seconds`.
#[derive(Clone)]
pub struct MetricsInterceptor {
    metrics: AwsMetrics,
}

impl std::fmt::Debug for MetricsInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsInterceptor")
    }
}

impl MetricsInterceptor {
    pub fn new(metrics: AwsMetrics) -> Self {
        Self { metrics }
    }
}

impl Intercept for MetricsInterceptor {
    fn name(&self) -> &'static str {
        "BerthMetrics"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(AttemptStarted(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // refused by the leader fence or the rate budget: it never left the process
        let refused_by_budget =
            matches!(context.output_or_error(), Some(Err(error)) if super::budget::is_rate_limited(error));
        if cfg.load::<super::fence::FencedAttempt>().is_some() || refused_by_budget {
            return Ok(());
        }
        // the wait for the rate budget's turn is berth's, not AWS's latency
        let waited = context
            .response()
            .and_then(|response| response.extension::<super::budget::Admitted>())
            .map(|admitted| admitted.waited)
            .unwrap_or_default();
        let elapsed = cfg
            .load::<AttemptStarted>()
            .map(|started| started.0.elapsed().saturating_sub(waited))
            .unwrap_or_default();
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_ascii_lowercase(), m.name().to_owned()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let outcome = match context.response() {
            Some(response) => response_outcome(response),
            // no response: timed out or the connection failed
            None => attempt_outcome(None, None, true),
        };
        tracing::debug!(%service, %operation, outcome, elapsed_ms = elapsed.as_millis() as u64, "aws call");
        self.metrics.record(&service, &operation, outcome, elapsed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_of_attempts() {
        assert_eq!(attempt_outcome(Some(200), None, false), "success");
        assert_eq!(
            attempt_outcome(Some(400), Some("ThrottlingException"), false),
            "throttled"
        );
        assert_eq!(attempt_outcome(Some(400), Some("Throttling"), false), "throttled");
        assert_eq!(attempt_outcome(Some(429), None, false), "throttled");
        assert_eq!(
            attempt_outcome(Some(400), Some("InvalidParameterException"), false),
            "client_error"
        );
        assert_eq!(attempt_outcome(Some(404), Some("NoSuchEntity"), false), "client_error");
        assert_eq!(attempt_outcome(Some(403), None, false), "client_error");
        assert_eq!(
            attempt_outcome(Some(500), Some("InternalFailure"), false),
            "server_error"
        );
        assert_eq!(attempt_outcome(Some(503), None, false), "server_error");
        assert_eq!(attempt_outcome(None, None, true), "timeout");
    }

    #[test]
    fn error_codes_from_each_protocol() {
        assert_eq!(
            error_code(Some("ThrottlingException:http://internal.amazon.com/"), b"").as_deref(),
            Some("ThrottlingException")
        );
        assert_eq!(
            error_code(
                None,
                br#"{"__type": "com.amazonaws.ecr#RepositoryNotFoundException", "message": "x"}"#
            )
            .as_deref(),
            Some("RepositoryNotFoundException")
        );
        let iam = br#"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"#;
        assert_eq!(error_code(None, iam).as_deref(), Some("Throttling"));
        assert_eq!(error_code(None, b"<html>500</html>"), None);
        assert_eq!(error_code(None, b""), None);
    }
}

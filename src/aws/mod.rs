//! The AWS edge: SDK clients per region, error classification, and the ECR adapter behind a
//! small trait so that the reconcilers never touch SDK types.

mod budget;
mod ecr;
mod error;
mod fence;
mod iam;
mod identity;
mod image;
mod interceptor;
mod observer;
mod roles;
mod scan;
mod tags;

pub use budget::{BudgetFeedback, RateBudget, RateBudgets, RateLimited, RateLimits, is_rate_limited};
pub use ecr::{EcrRegistry, ImageStats, ObservedRepository, Registry, RepositorySettings};
pub use error::{AbsentAsNone, AwsError, AwsErrorKind, classify_outcome};
pub use fence::{Fence, FenceInterceptor, Fenced, is_fenced};
pub use iam::{Iam, IamClient, ListedRole, NewRole, ObservedRole};
pub use identity::{caller_partition, partition_of};
pub use image::{Image, ImageStorage};
pub use interceptor::{MetricsInterceptor, attempt_outcome, error_code};
pub use observer::RepositoryObserver;
pub use roles::RoleObserver;
pub use scan::{
    ImageFindings, RegistryScanFrequency, RegistryScanRule, RegistryScanType, RegistryScanning, RepositoryScanning,
    SeverityCounts,
};
pub use tags::{
    MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH, MAX_TAGS_PER_RESOURCE, TAG_CHARACTERS_PATTERN, TagService, check_tag,
};

use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::telemetry::AwsMetrics;

/// Builds every AWS client berth uses from one configuration, each with the metrics
/// interceptor attached, so that every call is counted and timed, the ECR and IAM clients
/// with the leader fence, so that no call goes out of a lapsed leader term, and each behind its
/// service's rate budget (ECR per region), shared by every client of that service.
#[derive(Clone, Debug)]
pub struct AwsClients {
    sdk_config: aws_config::SdkConfig,
    interceptor: MetricsInterceptor,
    fence: FenceInterceptor,
    budgets: RateBudgets,
}

impl AwsClients {
    /// With the default rate limits (`RateLimits::default`).
    pub fn new(sdk_config: aws_config::SdkConfig, metrics: AwsMetrics) -> Self {
        let budgets = RateBudgets::new(
            RateLimits::default(),
            base_http_client(&sdk_config),
            metrics.budget.clone(),
        );
        Self {
            sdk_config,
            interceptor: MetricsInterceptor::new(metrics),
            fence: FenceInterceptor::new(Fence::open()),
            budgets,
        }
    }

    /// Refuses every ECR and IAM call while `fence` is closed.
    pub fn fenced_by(self, fence: Fence) -> Self {
        Self {
            fence: FenceInterceptor::new(fence),
            ..self
        }
    }

    /// Paces every call to `limits` (per service; ECR per region).
    pub fn rate_limited_to(self, limits: RateLimits) -> Self {
        Self {
            budgets: self.budgets.with_limits(limits),
            ..self
        }
    }

    pub fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        let config = aws_sdk_ecr::config::Builder::from(&self.sdk_config)
            .region(aws_config::Region::new(region.to_owned()))
            .http_client(self.budgets.http_client("ecr", region))
            .interceptor(self.interceptor.clone())
            .interceptor(self.fence.clone())
            .interceptor(BudgetFeedback)
            .build();
        aws_sdk_ecr::Client::from_conf(config)
    }

    /// IAM is global: one client, whatever the region.
    pub fn iam(&self) -> aws_sdk_iam::Client {
        let config = aws_sdk_iam::config::Builder::from(&self.sdk_config)
            .http_client(self.budgets.http_client("iam", "global"))
            .interceptor(self.interceptor.clone())
            .interceptor(self.fence.clone())
            .interceptor(BudgetFeedback)
            .build();
        aws_sdk_iam::Client::from_conf(config)
    }

    /// Not fenced: STS is asked once, at start and before any term, who berth is (a read).
    pub fn sts(&self) -> aws_sdk_sts::Client {
        let region = self.sdk_config.region().map_or("global", |region| region.as_ref());
        let config = aws_sdk_sts::config::Builder::from(&self.sdk_config)
            .http_client(self.budgets.http_client("sts", region))
            .interceptor(self.interceptor.clone())
            .interceptor(BudgetFeedback)
            .build();
        aws_sdk_sts::Client::from_conf(config)
    }

    /// The rate budget of `service` in `region` (as `ecr`, `iam` and `sts` use them).
    pub fn budget(&self, service: &'static str, region: &str) -> std::sync::Arc<RateBudget> {
        self.budgets.budget(service, region)
    }
}

/// The HTTP client behind every budget: the configuration's own, else the SDK's default HTTPS
/// client (the one a client without an explicit HTTP client gets), built once so that every
/// service shares its connection pool.
fn base_http_client(sdk_config: &aws_config::SdkConfig) -> SharedHttpClient {
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
    sdk_config.http_client().unwrap_or_else(|| {
        aws_smithy_runtime::client::defaults::default_http_client_plugin_v2(aws_config::BehaviorVersion::latest())
            .and_then(|plugin| {
                plugin
                    .runtime_components(&RuntimeComponentsBuilder::new("berth"))
                    .http_client()
            })
            .expect("the SDK's default HTTPS client is compiled in (feature default-https-client)")
    })
}

/// Loads the shared SDK configuration: the standard credential chain (IRSA, EKS Pod Identity,
/// environment), `AWS_ENDPOINT_URL` for emulators, and the SDK's standard retry with backoff
/// (its retry quota is shared per service and region by the whole process). The SDK's adaptive
/// mode was tried and left out: under a persistent throttle its client-side limiter held one
/// reconcile for minutes without the object ever saying it was throttled.
///
/// Timeouts: without them an answer that never comes (a half-open connection, a stalled
/// endpoint) holds its reconcile, and the single-flight describe every object of a region
/// waits on, forever. A timed-out attempt is retried like a 5xx. The attempt timeout also
/// covers an answer whose body stalls, so the SDK's stalled-stream protection (a throughput
/// check on every poll of every body, meant for long downloads) is off: it was about 4% of
/// berth's CPU while converging, for small JSON answers.
pub async fn load_sdk_config(region: &str) -> aws_config::SdkConfig {
    use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        .timeout_config(sdk_timeouts())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .load()
        .await
}

/// Connecting may take [`CONNECT_TIMEOUT`], one attempt [`ATTEMPT_TIMEOUT`], a call with its
/// retries [`OPERATION_TIMEOUT`].
fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SDK's own default for the behavior version berth uses (setting timeouts replaces it).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3100);
/// ECR and IAM answer in well under a second; a paginated describe page included.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Room for three timed-out attempts and the backoff between them.
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(35);

/// For unit tests of what happens before a request is sent: an SDK configuration for eu-west-1
/// with static credentials and an endpoint nothing listens on, so a sent call fails as
/// unreachable.
#[cfg(test)]
pub(crate) fn unreachable_sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_ecr::config::SharedCredentialsProvider::new(
            aws_sdk_ecr::config::Credentials::new("AKIDTEST", "secret", None, None, "test"),
        ))
        .build()
}

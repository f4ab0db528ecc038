//! The AWS edge: SDK clients per region, error classification, and the ECR adapter behind a
//! small trait so that the reconcilers never touch SDK types.

mod ecr;
mod error;
mod observer;

pub use ecr::{EcrRegistry, ObservedRepository, Registry, RepositorySettings};
pub use error::{AwsError, AwsErrorKind, classify_outcome};
pub use observer::RepositoryObserver;

/// Loads the shared SDK configuration: the standard credential chain (IRSA, EKS Pod Identity,
/// environment), `AWS_ENDPOINT_URL` for emulators, and the SDK's standard retry with backoff.
pub async fn load_sdk_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        .load()
        .await
}

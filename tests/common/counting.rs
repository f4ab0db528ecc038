//! A `Registry` that forwards every call to the real (moto-backed) ECR adapter and counts the
//! calls by operation: what the batched observer and the image inventory promise to save.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use berth::api::EncryptionType;
use berth::aws::{
    AwsClients, AwsError, EcrRegistry, Image, ImageFindings, ObservedRepository, Registry, RegistryScanning,
    RepositoryScanning, RepositorySettings,
};
use berth::telemetry::Metrics;

pub struct CountingRegistry {
    inner: EcrRegistry,
    calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl CountingRegistry {
    /// The ECR adapter on the test bed's moto, counted.
    pub fn on(sdk_config: aws_config::SdkConfig) -> Self {
        Self {
            inner: EcrRegistry::new(AwsClients::new(sdk_config, Metrics::new().aws.clone())),
            calls: Mutex::default(),
        }
    }

    /// Creates a repository with default settings and no tags (moto, no counting).
    pub async fn create_plain(&self, region: &str, name: &str) {
        self.inner
            .create_repository(
                region,
                name,
                &RepositorySettings::default(),
                EncryptionType::Aes256,
                None,
                &BTreeMap::new(),
            )
            .await
            .expect("CreateRepository");
    }

    /// How often `operation` (e.g. `DescribeImages`) was called so far.
    pub fn calls(&self, operation: &str) -> usize {
        self.calls.lock().unwrap().get(operation).copied().unwrap_or(0)
    }

    fn count(&self, operation: &'static str) -> &EcrRegistry {
        *self.calls.lock().unwrap().entry(operation).or_default() += 1;
        &self.inner
    }
}

#[async_trait]
impl Registry for CountingRegistry {
    async fn describe_repositories(
        &self,
        region: &str,
        each: &mut (dyn FnMut(ObservedRepository) + Send),
    ) -> Result<(), AwsError> {
        self.count("DescribeRepositories")
            .describe_repositories(region, each)
            .await
    }
    async fn describe_repository(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError> {
        self.count("DescribeRepository").describe_repository(region, name).await
    }
    async fn list_tags(&self, region: &str, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        self.count("ListTagsForResource").list_tags(region, arn).await
    }
    async fn create_repository(
        &self,
        region: &str,
        name: &str,
        settings: &RepositorySettings,
        encryption_type: EncryptionType,
        kms_key: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<ObservedRepository, AwsError> {
        self.count("CreateRepository")
            .create_repository(region, name, settings, encryption_type, kms_key, tags)
            .await
    }
    async fn put_tag_mutability(
        &self,
        region: &str,
        name: &str,
        settings: &RepositorySettings,
    ) -> Result<(), AwsError> {
        self.count("PutImageTagMutability")
            .put_tag_mutability(region, name, settings)
            .await
    }
    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
        self.count("TagResource").tag_resource(region, arn, tags).await
    }
    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), AwsError> {
        self.count("UntagResource").untag_resource(region, arn, keys).await
    }
    async fn count_images(&self, region: &str, name: &str) -> Result<u64, AwsError> {
        self.count("ListImages").count_images(region, name).await
    }
    async fn delete_repository(&self, region: &str, name: &str, force: bool) -> Result<(), AwsError> {
        self.count("DeleteRepository")
            .delete_repository(region, name, force)
            .await
    }
    async fn describe_images(&self, region: &str, name: &str) -> Result<Vec<Image>, AwsError> {
        self.count("DescribeImages").describe_images(region, name).await
    }
    async fn get_repository_policy(&self, region: &str, name: &str) -> Result<Option<String>, AwsError> {
        self.count("GetRepositoryPolicy")
            .get_repository_policy(region, name)
            .await
    }
    async fn set_repository_policy(&self, region: &str, name: &str, policy: &str) -> Result<(), AwsError> {
        self.count("SetRepositoryPolicy")
            .set_repository_policy(region, name, policy)
            .await
    }
    async fn delete_repository_policy(&self, region: &str, name: &str) -> Result<(), AwsError> {
        self.count("DeleteRepositoryPolicy")
            .delete_repository_policy(region, name)
            .await
    }
    async fn get_lifecycle_policy(&self, region: &str, name: &str) -> Result<Option<String>, AwsError> {
        self.count("GetLifecyclePolicy")
            .get_lifecycle_policy(region, name)
            .await
    }
    async fn put_lifecycle_policy(&self, region: &str, name: &str, text: &str) -> Result<(), AwsError> {
        self.count("PutLifecyclePolicy")
            .put_lifecycle_policy(region, name, text)
            .await
    }
    async fn delete_lifecycle_policy(&self, region: &str, name: &str) -> Result<(), AwsError> {
        self.count("DeleteLifecyclePolicy")
            .delete_lifecycle_policy(region, name)
            .await
    }
    async fn get_registry_scanning(&self, region: &str) -> Result<RegistryScanning, AwsError> {
        self.count("GetRegistryScanningConfiguration")
            .get_registry_scanning(region)
            .await
    }
    async fn put_registry_scanning(&self, region: &str, scanning: &RegistryScanning) -> Result<(), AwsError> {
        self.count("PutRegistryScanningConfiguration")
            .put_registry_scanning(region, scanning)
            .await
    }
    /// Counted once per method call, however many 25-name batches it sends.
    async fn repository_scanning(
        &self,
        region: &str,
        repositories: &[String],
    ) -> Result<Vec<RepositoryScanning>, AwsError> {
        self.count("BatchGetRepositoryScanningConfiguration")
            .repository_scanning(region, repositories)
            .await
    }
    /// Counted once per method call, however many pages it reads.
    async fn image_findings(&self, region: &str, repository: &str, digest: &str) -> Result<ImageFindings, AwsError> {
        self.count("DescribeImageScanFindings")
            .image_findings(region, repository, digest)
            .await
    }
}

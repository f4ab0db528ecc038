//! Batched observation against moto: one DescribeRepositories per region per resync serves
//! every lookup; a name missing from the snapshot is described on its own.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use berth::api::EncryptionType;
use berth::aws::{
    AwsClients, AwsError, EcrRegistry, ObservedRepository, Registry, RepositoryObserver, RepositorySettings,
};
use berth::images::Image;
use berth::telemetry::Metrics;

/// Forwards to the real (moto-backed) registry and counts the describe calls.
struct Counting {
    inner: EcrRegistry,
    describe_all: AtomicUsize,
    describe_one: AtomicUsize,
}

#[async_trait]
impl Registry for Counting {
    async fn describe_repositories(&self, region: &str) -> Result<Vec<ObservedRepository>, AwsError> {
        self.describe_all.fetch_add(1, Ordering::SeqCst);
        self.inner.describe_repositories(region).await
    }
    async fn describe_repository(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError> {
        self.describe_one.fetch_add(1, Ordering::SeqCst);
        self.inner.describe_repository(region, name).await
    }
    async fn list_tags(&self, region: &str, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        self.inner.list_tags(region, arn).await
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
        self.inner
            .create_repository(region, name, settings, encryption_type, kms_key, tags)
            .await
    }
    async fn put_tag_mutability(
        &self,
        region: &str,
        name: &str,
        settings: &RepositorySettings,
    ) -> Result<(), AwsError> {
        self.inner.put_tag_mutability(region, name, settings).await
    }
    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
        self.inner.tag_resource(region, arn, tags).await
    }
    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), AwsError> {
        self.inner.untag_resource(region, arn, keys).await
    }
    async fn count_images(&self, region: &str, name: &str) -> Result<u64, AwsError> {
        self.inner.count_images(region, name).await
    }
    async fn delete_repository(&self, region: &str, name: &str, force: bool) -> Result<(), AwsError> {
        self.inner.delete_repository(region, name, force).await
    }
    async fn describe_images(&self, region: &str, name: &str) -> Result<Vec<Image>, AwsError> {
        self.inner.describe_images(region, name).await
    }
    async fn get_repository_policy(&self, region: &str, name: &str) -> Result<Option<String>, AwsError> {
        self.inner.get_repository_policy(region, name).await
    }
    async fn set_repository_policy(&self, region: &str, name: &str, policy: &str) -> Result<(), AwsError> {
        self.inner.set_repository_policy(region, name, policy).await
    }
    async fn delete_repository_policy(&self, region: &str, name: &str) -> Result<(), AwsError> {
        self.inner.delete_repository_policy(region, name).await
    }
}

#[tokio::test]
async fn one_describe_per_region_per_resync() {
    let Some(testbed) = common::testbed() else { return };
    let registry = Arc::new(Counting {
        inner: EcrRegistry::new(AwsClients::new(
            common::sdk_config(&testbed).await,
            Metrics::new().aws.clone(),
        )),
        describe_all: AtomicUsize::new(0),
        describe_one: AtomicUsize::new(0),
    });
    let prefix = format!("observer-{}", common::unique_suffix());
    let names: Vec<String> = (0..20).map(|i| format!("{prefix}/repo-{i}")).collect();
    for name in &names {
        registry
            .create_repository(
                &testbed.region,
                name,
                &RepositorySettings::default(),
                EncryptionType::Aes256,
                None,
                &BTreeMap::new(),
            )
            .await
            .expect("create");
    }
    let observer = RepositoryObserver::new(registry.clone());

    let lookups = names.iter().map(|name| observer.observe(&testbed.region, name));
    let found = futures::future::join_all(lookups).await;
    assert!(found.iter().all(|r| matches!(r, Ok(Some(_)))), "{found:?}");
    assert_eq!(
        registry.describe_all.load(Ordering::SeqCst),
        1,
        "20 lookups share one DescribeRepositories"
    );
    assert_eq!(registry.describe_one.load(Ordering::SeqCst), 0);

    // a repository created after the snapshot is described on its own, not reported missing
    let late = format!("{prefix}/late");
    registry
        .create_repository(
            &testbed.region,
            &late,
            &RepositorySettings::default(),
            EncryptionType::Aes256,
            None,
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        observer.observe(&testbed.region, &late).await.unwrap().map(|r| r.name),
        Some(late.clone())
    );
    assert_eq!(registry.describe_all.load(Ordering::SeqCst), 1);
    assert_eq!(registry.describe_one.load(Ordering::SeqCst), 1);
    // ...and then remembered
    observer.observe(&testbed.region, &late).await.unwrap();
    assert_eq!(registry.describe_one.load(Ordering::SeqCst), 1);

    // a missing repository is None after its own describe
    assert!(
        observer
            .observe(&testbed.region, &format!("{prefix}/absent"))
            .await
            .unwrap()
            .is_none()
    );

    // the next resync describes the region once more
    observer.start_resync();
    for name in &names {
        observer.observe(&testbed.region, name).await.unwrap();
    }
    assert_eq!(registry.describe_all.load(Ordering::SeqCst), 2);
}

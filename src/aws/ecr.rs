//! The ECR adapter: the `Registry` trait speaks berth's own types; `EcrRegistry` implements it
//! with the AWS SDK, one client per region.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType as SdkEncryptionType, ImageTagMutability,
    ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType, Repository, Tag,
};

use super::AwsError;
use crate::api::{EncryptionType, TagMutability};

/// The settings of a repository that can change after creation.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RepositorySettings {
    pub tag_mutability: TagMutability,
    /// Tag filters that keep the opposite mutability; a set, as ECR treats it.
    pub mutability_exclusions: BTreeSet<String>,
}

/// A repository as ECR reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObservedRepository {
    pub name: String,
    pub arn: String,
    pub uri: String,
    pub registry_id: String,
    pub settings: RepositorySettings,
    pub encryption_type: EncryptionType,
    pub kms_key: Option<String>,
}

/// Everything berth asks of ECR about repositories.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Every repository of the region: one paginated DescribeRepositories.
    async fn describe_repositories(&self, region: &str) -> Result<Vec<ObservedRepository>, AwsError>;
    /// One repository, or None if it does not exist.
    async fn describe_repository(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError>;
    async fn list_tags(&self, region: &str, arn: &str) -> Result<BTreeMap<String, String>, AwsError>;
    async fn create_repository(
        &self,
        region: &str,
        name: &str,
        settings: &RepositorySettings,
        encryption_type: EncryptionType,
        kms_key: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<ObservedRepository, AwsError>;
    async fn put_tag_mutability(&self, region: &str, name: &str, settings: &RepositorySettings)
    -> Result<(), AwsError>;
    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError>;
    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), AwsError>;
    /// How many images the repository holds (paginated ListImages).
    async fn count_images(&self, region: &str, name: &str) -> Result<u64, AwsError>;
    async fn delete_repository(&self, region: &str, name: &str, force: bool) -> Result<(), AwsError>;
}

/// The SDK-backed registry; clients are built per region from one shared configuration.
pub struct EcrRegistry {
    sdk_config: aws_config::SdkConfig,
    clients: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
}

impl EcrRegistry {
    pub fn new(sdk_config: aws_config::SdkConfig) -> Self {
        Self {
            sdk_config,
            clients: Mutex::default(),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_ecr::Client {
        let mut clients = self.clients.lock().expect("client map lock poisoned");
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_ecr::config::Builder::from(&self.sdk_config)
                    .region(aws_config::Region::new(region.to_owned()))
                    .build();
                aws_sdk_ecr::Client::from_conf(config)
            })
            .clone()
    }
}

fn sdk_mutability(settings: &RepositorySettings) -> ImageTagMutability {
    match (settings.tag_mutability, settings.mutability_exclusions.is_empty()) {
        (TagMutability::Mutable, true) => ImageTagMutability::Mutable,
        (TagMutability::Mutable, false) => ImageTagMutability::MutableWithExclusion,
        (TagMutability::Immutable, true) => ImageTagMutability::Immutable,
        (TagMutability::Immutable, false) => ImageTagMutability::ImmutableWithExclusion,
    }
}

fn sdk_exclusions(settings: &RepositorySettings) -> Option<Vec<ImageTagMutabilityExclusionFilter>> {
    if settings.mutability_exclusions.is_empty() {
        return None;
    }
    Some(
        settings
            .mutability_exclusions
            .iter()
            .map(|filter| {
                ImageTagMutabilityExclusionFilter::builder()
                    .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                    .filter(filter)
                    .build()
                    .expect("filter type and filter are set")
            })
            .collect(),
    )
}

fn observed(repository: &Repository) -> ObservedRepository {
    let tag_mutability = match repository.image_tag_mutability() {
        Some(ImageTagMutability::Immutable | ImageTagMutability::ImmutableWithExclusion) => TagMutability::Immutable,
        _ => TagMutability::Mutable,
    };
    let encryption = repository.encryption_configuration();
    ObservedRepository {
        name: repository.repository_name().unwrap_or_default().to_owned(),
        arn: repository.repository_arn().unwrap_or_default().to_owned(),
        uri: repository.repository_uri().unwrap_or_default().to_owned(),
        registry_id: repository.registry_id().unwrap_or_default().to_owned(),
        settings: RepositorySettings {
            tag_mutability,
            mutability_exclusions: repository
                .image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_owned())
                .collect(),
        },
        encryption_type: match encryption.map(|e| e.encryption_type()) {
            Some(SdkEncryptionType::Kms | SdkEncryptionType::KmsDsse) => EncryptionType::Kms,
            _ => EncryptionType::Aes256,
        },
        kms_key: encryption.and_then(|e| e.kms_key()).map(str::to_owned),
    }
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value are set"))
        .collect()
}

#[async_trait]
impl Registry for EcrRegistry {
    async fn describe_repositories(&self, region: &str) -> Result<Vec<ObservedRepository>, AwsError> {
        let pages = self
            .client(region)
            .describe_repositories()
            .max_results(1000)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        pages
            .into_iter()
            .map(|item| {
                item.map(|r| observed(&r))
                    .map_err(|e| AwsError::from_sdk("DescribeRepositories", e))
            })
            .collect()
    }

    async fn describe_repository(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError> {
        match self
            .client(region)
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
        {
            Ok(output) => Ok(output.repositories().first().map(observed)),
            Err(e) => {
                let error = AwsError::from_sdk("DescribeRepositories", e);
                if error.is_code("RepositoryNotFoundException") {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn list_tags(&self, region: &str, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let output = self
            .client(region)
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListTagsForResource", e))?;
        Ok(output
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
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
        let encryption = EncryptionConfiguration::builder()
            .encryption_type(match encryption_type {
                EncryptionType::Aes256 => SdkEncryptionType::Aes256,
                EncryptionType::Kms => SdkEncryptionType::Kms,
            })
            .set_kms_key(kms_key.map(str::to_owned))
            .build()
            .expect("encryption type is set");
        let output = self
            .client(region)
            .create_repository()
            .repository_name(name)
            .image_tag_mutability(sdk_mutability(settings))
            .set_image_tag_mutability_exclusion_filters(sdk_exclusions(settings))
            .encryption_configuration(encryption)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateRepository", e))?;
        Ok(output.repository().map(observed).unwrap_or_default())
    }

    async fn put_tag_mutability(
        &self,
        region: &str,
        name: &str,
        settings: &RepositorySettings,
    ) -> Result<(), AwsError> {
        self.client(region)
            .put_image_tag_mutability()
            .repository_name(name)
            .image_tag_mutability(sdk_mutability(settings))
            .set_image_tag_mutability_exclusion_filters(sdk_exclusions(settings))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutImageTagMutability", e))?;
        Ok(())
    }

    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
        self.client(region)
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("TagResource", e))?;
        Ok(())
    }

    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), AwsError> {
        self.client(region)
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UntagResource", e))?;
        Ok(())
    }

    async fn count_images(&self, region: &str, name: &str) -> Result<u64, AwsError> {
        let items = self
            .client(region)
            .list_images()
            .repository_name(name)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        // ListImages lists one entry per tag: count distinct digests
        let mut digests = BTreeSet::new();
        for item in items {
            let image = item.map_err(|e| AwsError::from_sdk("ListImages", e))?;
            digests.insert(image.image_digest().unwrap_or_default().to_owned());
        }
        Ok(digests.len() as u64)
    }

    async fn delete_repository(&self, region: &str, name: &str, force: bool) -> Result<(), AwsError> {
        self.client(region)
            .delete_repository()
            .repository_name(name)
            .force(force)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteRepository", e))?;
        Ok(())
    }
}

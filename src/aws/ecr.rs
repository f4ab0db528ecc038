//! The ECR adapter: the `Registry` trait speaks berth's own types; `EcrRegistry` implements it
//! with the AWS SDK, one client per region.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ecr::types::{
    DescribeImagesFilter, EncryptionConfiguration, EncryptionType as SdkEncryptionType, ImageDetail, ImageIdentifier,
    ImageStatus, ImageStatusFilter, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType, Repository, Tag,
};

use super::image::{Image, ImageStorage};
use super::scan::{self, FirstPage, ImageFindings, RegistryScanning, RepositoryScanning, SeverityCounts};
use super::{AbsentAsNone, AwsClients, AwsError};
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

/// A repository's images in sum: what the stats refresher reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageStats {
    pub image_count: i64,
    pub size_bytes: i64,
    /// Unix seconds of the newest push, if any image exists.
    pub last_pushed_at: Option<i64>,
}

impl ImageStats {
    /// Sums the images in standard storage. The inventory also lists archived images (the
    /// lifecycle preview needs them), but the statistics count what a pull can reach, as they
    /// did when DescribeImages listed active images only.
    pub fn from_images(images: &[Image]) -> Self {
        images
            .iter()
            .filter(|image| image.storage == ImageStorage::Standard)
            .fold(ImageStats::default(), |mut stats, image| {
                stats.image_count += 1;
                stats.size_bytes += image.size_bytes;
                // 0 stands for a push time ECR did not report
                let pushed_at = Some(image.pushed_at).filter(|&t| t > 0);
                stats.last_pushed_at = stats.last_pushed_at.max(pushed_at);
                stats
            })
    }
}

/// Everything berth asks of ECR about repositories.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Every repository of the region (one paginated DescribeRepositories), handed to `each` as
    /// its page arrives: a region's whole listing is never held at once. On an error, `each`
    /// may have seen part of the repositories.
    async fn describe_repositories(
        &self,
        region: &str,
        each: &mut (dyn FnMut(ObservedRepository) + Send),
    ) -> Result<(), AwsError>;
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
    /// Every image of the repository, archived ones included (paginated DescribeImages). Only
    /// the image inventory calls this: one pass serves statistics, lifecycle preview and scan.
    async fn describe_images(&self, region: &str, name: &str) -> Result<Vec<Image>, AwsError>;
    /// The repository policy text, or None when the repository has none.
    async fn get_repository_policy(&self, region: &str, name: &str) -> Result<Option<String>, AwsError>;
    async fn set_repository_policy(&self, region: &str, name: &str, policy: &str) -> Result<(), AwsError>;
    async fn delete_repository_policy(&self, region: &str, name: &str) -> Result<(), AwsError>;
    /// The repository's lifecycle policy text, or None when it has none.
    async fn get_lifecycle_policy(&self, region: &str, name: &str) -> Result<Option<String>, AwsError>;
    /// One call replaces the whole policy: never a delete and a put.
    async fn put_lifecycle_policy(&self, region: &str, name: &str, text: &str) -> Result<(), AwsError>;
    /// Removes the lifecycle policy; one already gone is fine.
    async fn delete_lifecycle_policy(&self, region: &str, name: &str) -> Result<(), AwsError>;
    /// The registry's scanning configuration (GetRegistryScanningConfiguration).
    async fn get_registry_scanning(&self, region: &str) -> Result<RegistryScanning, AwsError>;
    /// Replaces the registry's scanning configuration in one call; `rules` is always sent, empty
    /// or not.
    async fn put_registry_scanning(&self, region: &str, scanning: &RegistryScanning) -> Result<(), AwsError>;
    /// The scanning configuration that applies to each repository
    /// (BatchGetRepositoryScanningConfiguration, at most 25 names a call). A repository ECR
    /// reports as a failure (e.g. not found) is left out.
    async fn repository_scanning(
        &self,
        region: &str,
        repositories: &[String],
    ) -> Result<Vec<RepositoryScanning>, AwsError>;
    /// The state of the image's scan and its findings counted by severity
    /// (DescribeImageScanFindings by digest). No scan, a scan in progress, an unsupported image
    /// or unavailable findings are states; only a failed call is an error.
    async fn image_findings(&self, region: &str, repository: &str, digest: &str) -> Result<ImageFindings, AwsError>;
}

/// BatchGetRepositoryScanningConfiguration takes at most this many repository names.
const SCANNING_BATCH: usize = 25;

/// The SDK-backed registry; clients are built per region from one shared configuration.
pub struct EcrRegistry {
    aws: AwsClients,
    clients: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
}

impl EcrRegistry {
    pub fn new(aws: AwsClients) -> Self {
        Self {
            aws,
            clients: Mutex::default(),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_ecr::Client {
        let mut clients = self.clients.lock().expect("client map lock poisoned");
        clients
            .entry(region.to_owned())
            .or_insert_with(|| self.aws.ecr(region))
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

/// The fields berth keeps of an image; a missing push time or size is 0.
fn image(detail: &ImageDetail) -> Image {
    Image {
        digest: detail.image_digest().unwrap_or_default().to_owned(),
        tags: detail.image_tags().to_vec(),
        pushed_at: detail.image_pushed_at().map(|t| t.secs()).unwrap_or_default(),
        last_pulled_at: detail.last_recorded_pull_time().map(|t| t.secs()),
        transitioned_at: detail.last_archived_at().map(|t| t.secs()),
        storage: match detail.image_status() {
            Some(ImageStatus::Archived) => ImageStorage::Archive,
            _ => ImageStorage::Standard,
        },
        size_bytes: detail.image_size_in_bytes().unwrap_or_default(),
    }
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value are set"))
        .collect()
}

#[async_trait]
impl Registry for EcrRegistry {
    async fn describe_repositories(
        &self,
        region: &str,
        each: &mut (dyn FnMut(ObservedRepository) + Send),
    ) -> Result<(), AwsError> {
        // converted item by item: only one page of the SDK's shapes is held at a time
        let mut items = self
            .client(region)
            .describe_repositories()
            .max_results(1000)
            .into_paginator()
            .items()
            .send();
        while let Some(repository) = items
            .try_next()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeRepositories", e))?
        {
            each(observed(&repository));
        }
        Ok(())
    }

    async fn describe_repository(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError> {
        let output = self
            .client(region)
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeRepositories", e))
            .absent_as_none()?;
        Ok(output.and_then(|o| o.repositories().first().map(observed)))
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

    async fn describe_images(&self, region: &str, name: &str) -> Result<Vec<Image>, AwsError> {
        // without a filter DescribeImages lists active images only
        let every_status = DescribeImagesFilter::builder()
            .image_status(ImageStatusFilter::Any)
            .build();
        let items = self
            .client(region)
            .describe_images()
            .repository_name(name)
            .filter(every_status)
            .max_results(1000)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        items
            .into_iter()
            .map(|item| {
                item.map(|detail| image(&detail))
                    .map_err(|e| AwsError::from_sdk("DescribeImages", e))
            })
            .collect()
    }

    async fn get_repository_policy(&self, region: &str, name: &str) -> Result<Option<String>, AwsError> {
        let output = self
            .client(region)
            .get_repository_policy()
            .repository_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetRepositoryPolicy", e))
            .absent_as_none()?;
        Ok(output.and_then(|o| o.policy_text().map(str::to_owned)))
    }

    async fn set_repository_policy(&self, region: &str, name: &str, policy: &str) -> Result<(), AwsError> {
        self.client(region)
            .set_repository_policy()
            .repository_name(name)
            .policy_text(policy)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SetRepositoryPolicy", e))?;
        Ok(())
    }

    async fn delete_repository_policy(&self, region: &str, name: &str) -> Result<(), AwsError> {
        // already gone is done
        self.client(region)
            .delete_repository_policy()
            .repository_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteRepositoryPolicy", e))
            .absent_as_none()?;
        Ok(())
    }

    async fn get_lifecycle_policy(&self, region: &str, name: &str) -> Result<Option<String>, AwsError> {
        let output = self
            .client(region)
            .get_lifecycle_policy()
            .repository_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetLifecyclePolicy", e))
            .absent_as_none()?;
        Ok(output.and_then(|o| o.lifecycle_policy_text().map(str::to_owned)))
    }

    async fn put_lifecycle_policy(&self, region: &str, name: &str, text: &str) -> Result<(), AwsError> {
        self.client(region)
            .put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(text)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutLifecyclePolicy", e))?;
        Ok(())
    }

    async fn delete_lifecycle_policy(&self, region: &str, name: &str) -> Result<(), AwsError> {
        self.client(region)
            .delete_lifecycle_policy()
            .repository_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteLifecyclePolicy", e))
            .absent_as_none()?;
        Ok(())
    }

    async fn get_registry_scanning(&self, region: &str) -> Result<RegistryScanning, AwsError> {
        let output = self
            .client(region)
            .get_registry_scanning_configuration()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetRegistryScanningConfiguration", e))?;
        Ok(scan::registry_scanning(output.scanning_configuration()))
    }

    async fn put_registry_scanning(&self, region: &str, scanning: &RegistryScanning) -> Result<(), AwsError> {
        self.client(region)
            .put_registry_scanning_configuration()
            .scan_type(scan::sdk_scan_type(scanning.scan_type))
            // always present, even empty: moto answers 500 to a request without it
            .set_rules(Some(scan::sdk_rules(scanning)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutRegistryScanningConfiguration", e))?;
        Ok(())
    }

    async fn repository_scanning(
        &self,
        region: &str,
        repositories: &[String],
    ) -> Result<Vec<RepositoryScanning>, AwsError> {
        let client = self.client(region);
        let mut scanning = Vec::with_capacity(repositories.len());
        for chunk in repositories.chunks(SCANNING_BATCH) {
            let output = client
                .batch_get_repository_scanning_configuration()
                .set_repository_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("BatchGetRepositoryScanningConfiguration", e))?;
            let failed: BTreeSet<&str> = output
                .failures()
                .iter()
                .filter_map(|failure| failure.repository_name())
                .collect();
            scanning.extend(
                output
                    .scanning_configurations()
                    .iter()
                    .filter(|config| !failed.contains(config.repository_name().unwrap_or_default()))
                    .map(scan::repository_scanning),
            );
        }
        Ok(scanning)
    }

    async fn image_findings(&self, region: &str, repository: &str, digest: &str) -> Result<ImageFindings, AwsError> {
        let mut pages = self
            .client(region)
            .describe_image_scan_findings()
            .repository_name(repository)
            .image_id(ImageIdentifier::builder().image_digest(digest).build())
            .max_results(1000)
            .into_paginator()
            .send();
        let read = |page: Option<Result<_, _>>| match page {
            None => Ok(None),
            Some(Ok(page)) => Ok(Some(page)),
            Some(Err(e)) => Err(AwsError::from_sdk("DescribeImageScanFindings", e)),
        };
        let first = match read(pages.next().await) {
            Ok(Some(page)) => page,
            Ok(None) => return Ok(ImageFindings::NotScanned),
            // the image exists but was never scanned
            Err(error) if error.is_code("ScanNotFoundException") => return Ok(ImageFindings::NotScanned),
            Err(error) => return Err(error),
        };
        let completed_at = match scan::first_page(&first) {
            FirstPage::Settled(findings) => return Ok(findings),
            FirstPage::CountFindings { completed_at } => completed_at,
        };
        let mut counts = SeverityCounts::default();
        scan::count_findings(&mut counts, first.image_scan_findings());
        while let Some(page) = read(pages.next().await)? {
            scan::count_findings(&mut counts, page.image_scan_findings());
        }
        Ok(ImageFindings::Complete { counts, completed_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(size_bytes: i64, pushed_at: i64, storage: ImageStorage) -> Image {
        Image {
            size_bytes,
            pushed_at,
            storage,
            ..Default::default()
        }
    }

    #[test]
    fn image_stats_sum_sizes_and_keep_the_newest_push() {
        let stats = ImageStats::from_images(&[
            stored(100, 1_700_000_000, ImageStorage::Standard),
            stored(50, 1_700_000_500, ImageStorage::Standard),
            stored(0, 0, ImageStorage::Standard),
        ]);
        assert_eq!(
            stats,
            ImageStats {
                image_count: 3,
                size_bytes: 150,
                last_pushed_at: Some(1_700_000_500)
            }
        );
        assert_eq!(ImageStats::from_images(&[]), ImageStats::default());
    }

    #[test]
    fn image_stats_leave_archived_images_out() {
        let stats = ImageStats::from_images(&[
            stored(100, 1_700_000_000, ImageStorage::Standard),
            stored(70, 1_700_000_900, ImageStorage::Archive),
        ]);
        assert_eq!(
            stats,
            ImageStats {
                image_count: 1,
                size_bytes: 100,
                last_pushed_at: Some(1_700_000_000)
            }
        );
    }

    #[test]
    fn image_details_map_to_the_kept_fields() {
        let detail = ImageDetail::builder()
            .image_digest("sha256:abc")
            .image_tags("v1")
            .image_tags("latest")
            .image_pushed_at(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .last_recorded_pull_time(aws_smithy_types::DateTime::from_secs(1_700_000_100))
            .last_archived_at(aws_smithy_types::DateTime::from_secs(1_700_000_200))
            .image_status(ImageStatus::Archived)
            .image_size_in_bytes(2048)
            .build();
        assert_eq!(
            image(&detail),
            Image {
                digest: "sha256:abc".into(),
                tags: vec!["v1".into(), "latest".into()],
                pushed_at: 1_700_000_000,
                last_pulled_at: Some(1_700_000_100),
                transitioned_at: Some(1_700_000_200),
                storage: ImageStorage::Archive,
                size_bytes: 2048,
            }
        );
        let active = ImageDetail::builder().image_status(ImageStatus::Active).build();
        assert_eq!(image(&active), Image::default());
    }
}

//! The image inventory: one paginated DescribeImages pass per repository serves the statistics,
//! the lifecycle preview and the scan of the newest image. Only the fields below are kept.

mod inventory;
pub mod stats;

pub use inventory::{ImageInventory, ImagesResult, RepositoryRef};

/// Where an image's layers are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ImageStorage {
    #[default]
    Standard,
    Archive,
}

/// One image of a repository, as DescribeImages reports it (times in Unix seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    /// `lastRecordedPullTime`; ECR records it at most once a day.
    pub last_pulled_at: Option<i64>,
    /// `lastArchivedAt`: when the image moved to the archive.
    pub transitioned_at: Option<i64>,
    pub storage: ImageStorage,
    pub size_bytes: i64,
}

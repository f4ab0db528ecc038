//! An image as berth keeps it: the fields of DescribeImages that statistics, lifecycle previews
//! and scans read, and nothing else (memory stays small per image).

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

//! The image inventory: one paginated DescribeImages pass per repository serves the statistics,
//! the lifecycle preview and the scan of the newest image. Only the fields of [`Image`] are kept.

mod inventory;
pub mod rotation;
pub mod stats;

/// The kept fields of an image; defined with the ECR adapter that fills them.
pub use crate::aws::{Image, ImageStorage};
pub use inventory::{ImageInventory, ImagesResult, RepositoryRef};

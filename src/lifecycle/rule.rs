//! berth's validated model of one lifecycle rule. Only `validate::rules` builds one from a spec,
//! so rendering and evaluation never meet a combination ECR would refuse: a Tagged rule always
//! has its filter, an age always has its unit, a transition always targets the archive.

use crate::api::StorageClass;
use crate::images::{Image, ImageStorage};

/// One lifecycle rule, as ECR evaluates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Evaluation order, lowest first; unique within a policy (1 to 1000).
    pub priority: u32,
    /// Free text carried into the policy; never empty (an empty description is no description).
    pub description: Option<String>,
    /// Which images the rule considers by their tags.
    pub tags: TagSelection,
    /// Which images the rule considers by their storage class.
    pub storage_class: StorageClass,
    /// Which of the considered images the rule acts on.
    pub count: Count,
    /// What happens to them.
    pub action: Action,
}

/// `tagStatus` with the tag filter that Tagged requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagSelection {
    /// Images with at least one tag, on which every entry of the filter matches some tag.
    Tagged(TagFilter),
    /// Images without tags.
    Untagged,
    /// All images.
    Any,
}

/// A Tagged rule's filter: every entry must match some tag of the image (AND).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagFilter {
    /// `tagPatternList`: `*` matches any characters, the pattern matches the whole tag.
    Patterns(Vec<String>),
    /// `tagPrefixList`: the tag starts with the prefix.
    Prefixes(Vec<String>),
}

/// `countType` with its `countNumber` (the unit of the ages is always days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// `imageCountMoreThan`: keeps the newest N images the rule selects, acts on the rest.
    MoreThan(u32),
    /// `sinceImagePushed`: acts on images pushed more than N days ago.
    SincePushed { days: u32 },
    /// `sinceImagePulled`: acts on images last pulled more than N days ago; an image never
    /// pulled counts from its push (ECR records pulls at most daily and only since 2021).
    SincePulled { days: u32 },
    /// `sinceImageTransitioned`: acts on archived images archived more than N days ago.
    SinceTransitioned { days: u32 },
}

/// What a rule does to the images it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Deletes the image.
    Expire,
    /// Moves the image to the archive storage class (the only transition ECR offers).
    TransitionToArchive,
}

pub const SECONDS_PER_DAY: i64 = 86_400;

impl Rule {
    /// Whether the image meets the rule's tag criteria and storage class: the images the rule
    /// "identifies", which count for it and which no lower-priority rule may act on.
    pub fn selects(&self, image: &Image) -> bool {
        let storage_matches = matches!(
            (self.storage_class, image.storage),
            (StorageClass::Standard, ImageStorage::Standard) | (StorageClass::Archive, ImageStorage::Archive)
        );
        storage_matches && self.tags.matches(&image.tags)
    }
}

impl TagSelection {
    /// Whether an image with these tags meets the tag criteria.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            Self::Tagged(filter) => !tags.is_empty() && filter.matches(tags),
            Self::Untagged => tags.is_empty(),
            Self::Any => true,
        }
    }
}

impl TagFilter {
    /// Whether every entry of the filter matches at least one of the tags.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            Self::Patterns(patterns) => patterns
                .iter()
                .all(|pattern| tags.iter().any(|tag| wildcard_matches(pattern, tag))),
            Self::Prefixes(prefixes) => prefixes
                .iter()
                .all(|prefix| tags.iter().any(|tag| tag.starts_with(prefix.as_str()))),
        }
    }
}

/// Shared with the scanning filters: one wildcard matcher for ECR's `*` patterns.
pub use crate::naming::wildcard_matches;

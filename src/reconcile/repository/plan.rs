//! Step 2: compare the desired repository with what ECR reports and decide what to change.
//! Pure: no client, unit-tested from YAML fixtures.

use std::collections::BTreeMap;

use super::desired::DesiredRepository;
use crate::api::EncryptionType;
use crate::aws::{ObservedRepository, RepositorySettings};
use crate::error::Error;
use crate::reconcile::harness::Change;
use crate::reconcile::ownership::{Ownership, ownership};

/// The repository as observed: its description and its tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct ObservedState {
    pub repository: ObservedRepository,
    pub tags: BTreeMap<String, String>,
}

/// One write to ECR.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum RepositoryChange {
    /// CreateRepository with every setting and all tags, in one call.
    Create,
    /// PutImageTagMutability with the mutability and its exclusion filters.
    SetTagMutability(RepositorySettings),
    /// TagResource with the tags to add or overwrite.
    Tag(BTreeMap<String, String>),
    /// UntagResource with the keys to remove.
    Untag(Vec<String>),
}

impl Change for RepositoryChange {
    /// The ECR operation that makes the change.
    fn operation(&self) -> &'static str {
        match self {
            RepositoryChange::Create => "CreateRepository",
            RepositoryChange::SetTagMutability(_) => "PutImageTagMutability",
            RepositoryChange::Tag(_) => "TagResource",
            RepositoryChange::Untag(_) => "UntagResource",
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            RepositoryChange::Create => "Created",
            _ => "Updated",
        }
    }

    /// The spec field the change brings back in line (for Events and metrics).
    fn field(&self) -> &'static str {
        match self {
            RepositoryChange::Create => "repository",
            RepositoryChange::SetTagMutability(_) => "imageTagMutability",
            RepositoryChange::Tag(_) | RepositoryChange::Untag(_) => "tags",
        }
    }
}

/// What the reconciler should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The repository exists without an owner tag and will be adopted (spec.adopt).
    pub adopting: bool,
    pub changes: Vec<RepositoryChange>,
}

pub fn plan(desired: &DesiredRepository, observed: Option<&ObservedState>, adopt: bool) -> Result<Plan, Error> {
    let Some(observed) = observed else {
        return Ok(Plan {
            adopting: false,
            changes: vec![RepositoryChange::Create],
        });
    };
    let adopting = match ownership(&observed.tags, &desired.owner) {
        Ownership::Ours => false,
        Ownership::Unowned if adopt => true,
        Ownership::Unowned => {
            return Err(Error::AdoptionRequired(format!(
                "repository {} already exists and is not managed by berth; set spec.adopt: true to take it over",
                desired.name
            )));
        }
        Ownership::Other(owner) => {
            return Err(Error::OwnedByOther(format!(
                "repository {} is owned by {owner}; berth will not touch it",
                desired.name
            )));
        }
    };

    check_encryption(desired, &observed.repository)?;

    let mut changes = Vec::new();
    if observed.repository.settings != desired.settings {
        changes.push(RepositoryChange::SetTagMutability(desired.settings.clone()));
    }
    let wanted_tags = desired.all_tags();
    let to_tag: BTreeMap<String, String> = wanted_tags
        .iter()
        .filter(|(key, value)| observed.tags.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if !to_tag.is_empty() {
        changes.push(RepositoryChange::Tag(to_tag));
    }
    // spec.tags is the whole set of user tags; AWS's own `aws:` tags cannot be removed.
    let to_untag: Vec<String> = observed
        .tags
        .keys()
        .filter(|key| !wanted_tags.contains_key(*key) && !key.to_ascii_lowercase().starts_with("aws:"))
        .cloned()
        .collect();
    if !to_untag.is_empty() {
        changes.push(RepositoryChange::Untag(to_untag));
    }
    Ok(Plan { adopting, changes })
}

/// Encryption is fixed at creation: a difference cannot be corrected, only reported.
fn check_encryption(desired: &DesiredRepository, observed: &ObservedRepository) -> Result<(), Error> {
    if desired.encryption_type != observed.encryption_type {
        return Err(Error::InvalidSpec(format!(
            "spec.encryption is immutable: repository {} is encrypted with {:?}, the spec asks for {:?}",
            desired.name, observed.encryption_type, desired.encryption_type
        )));
    }
    // ECR reports the key's ARN; an alias or key id cannot be compared without KMS, so only a
    // declared ARN is checked.
    if desired.encryption_type == EncryptionType::Kms
        && let (Some(wanted), Some(actual)) = (&desired.kms_key, &observed.kms_key)
        && wanted.starts_with("arn:")
        && wanted != actual
    {
        return Err(Error::InvalidSpec(format!(
            "spec.encryption.kmsKey is immutable: repository {} uses {actual}",
            desired.name
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

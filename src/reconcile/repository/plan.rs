//! Step 2: compare the desired repository with what ECR reports and decide what to change.
//! Pure: no client, unit-tested from YAML fixtures.

use std::collections::BTreeMap;

use super::access::{PolicyChange, RoleChange};
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

/// One write to AWS for an EcrRepository. The plan comes in phases, because each needs the
/// result of the one before: the repository (its ARN), the push role (its ARN), the repository
/// policy that names the role, and last the removal of a role no longer declared.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub enum RepositoryChange {
    /// CreateRepository with every setting and all tags, in one call.
    Create,
    /// PutImageTagMutability with the mutability and its exclusion filters.
    SetTagMutability(RepositorySettings),
    /// TagResource with the tags to add or overwrite.
    Tag(BTreeMap<String, String>),
    /// UntagResource with the keys to remove.
    Untag(Vec<String>),
    /// A change to the GitHub Actions push role.
    Role(RoleChange),
    /// SetRepositoryPolicy or DeleteRepositoryPolicy.
    Policy(PolicyChange),
    /// The push role named, if this object owns it (inline policies first).
    DeleteRole(String),
    /// DeleteRepository (deletionPolicy Delete; with forceDelete, with its images).
    DeleteRepository,
}

impl Change for RepositoryChange {
    fn operation(&self) -> &'static str {
        match self {
            RepositoryChange::Create => "CreateRepository",
            RepositoryChange::SetTagMutability(_) => "PutImageTagMutability",
            RepositoryChange::Tag(_) => "TagResource",
            RepositoryChange::Untag(_) => "UntagResource",
            RepositoryChange::Role(change) => change.operation(),
            RepositoryChange::Policy(change) => change.operation(),
            RepositoryChange::DeleteRole(_) => "DeleteRole",
            RepositoryChange::DeleteRepository => "DeleteRepository",
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            RepositoryChange::Create => "Created",
            RepositoryChange::Role(change) => change.reason(),
            RepositoryChange::Policy(change) => change.reason(),
            RepositoryChange::DeleteRole(_) | RepositoryChange::DeleteRepository => "Deleted",
            _ => "Updated",
        }
    }

    /// The spec field the change brings back in line (for Events and metrics).
    fn field(&self) -> &'static str {
        match self {
            RepositoryChange::Create | RepositoryChange::DeleteRepository => "repository",
            RepositoryChange::SetTagMutability(_) => "imageTagMutability",
            RepositoryChange::Tag(_) | RepositoryChange::Untag(_) => "tags",
            RepositoryChange::Role(change) => change.field(),
            RepositoryChange::Policy(change) => change.field(),
            RepositoryChange::DeleteRole(_) => "pushRole",
        }
    }

    fn corrects_drift(&self) -> bool {
        match self {
            RepositoryChange::Role(change) => change.corrects_drift(),
            RepositoryChange::Policy(change) => change.corrects_drift(),
            RepositoryChange::Create | RepositoryChange::DeleteRole(_) | RepositoryChange::DeleteRepository => false,
            _ => true,
        }
    }
}

/// What the reconciler should do.
#[derive(Clone, Debug, PartialEq)]
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

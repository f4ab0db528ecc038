//! The record of ECR repositories that hold a LifecyclePolicy's rules (`status.enforced`), pure.
//! Cleanup works from it, so it needs no EcrRepository to still exist; it is bounded so that the
//! status stays far below etcd's object size limit.

use std::collections::BTreeSet;

use crate::api::{EnforcedRepositories, MAX_ENFORCED_NAME_BYTES, MAX_ENFORCED_REPOSITORIES};
use crate::images::RepositoryRef;

/// One ECR repository: region, registry (account) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub region: String,
    pub registry_id: String,
    pub name: String,
}

impl Target {
    /// The repository an ARN names (`arn:<partition>:ecr:<region>:<account>:repository/<name>`).
    pub fn of_arn(arn: &str) -> Option<Self> {
        let (region, name) = crate::naming::repository_arn_parts(arn)?;
        let registry_id = arn.split(':').nth(4)?;
        (!region.is_empty() && !registry_id.is_empty() && !name.is_empty()).then(|| Self {
            region: region.to_owned(),
            registry_id: registry_id.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The image inventory's key (berth's credentials address one registry per region).
    pub fn repository(&self) -> RepositoryRef {
        RepositoryRef::new(&self.region, &self.name)
    }
}

/// The repositories a status records, and the bytes of their names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    targets: BTreeSet<Target>,
    name_bytes: usize,
}

impl Record {
    pub fn from_status(groups: &[EnforcedRepositories]) -> Self {
        let mut record = Self::default();
        for group in groups {
            for name in &group.names {
                record.insert(Target {
                    region: group.region.clone(),
                    registry_id: group.registry_id.clone(),
                    name: name.clone(),
                });
            }
        }
        record
    }

    /// Grouped by (region, registry), names sorted: only names repeat, and the status is
    /// deterministic.
    pub fn to_status(&self) -> Vec<EnforcedRepositories> {
        let mut groups: Vec<EnforcedRepositories> = Vec::new();
        for target in &self.targets {
            match groups.last_mut() {
                Some(group) if group.region == target.region && group.registry_id == target.registry_id => {
                    group.names.push(target.name.clone());
                }
                _ => groups.push(EnforcedRepositories {
                    region: target.region.clone(),
                    registry_id: target.registry_id.clone(),
                    names: vec![target.name.clone()],
                }),
            }
        }
        groups
    }

    /// Whether the record can take `target` as well: at most [`MAX_ENFORCED_REPOSITORIES`] names
    /// of at most [`MAX_ENFORCED_NAME_BYTES`] in all.
    pub fn has_room_for(&self, target: &Target) -> bool {
        self.targets.contains(target)
            || (self.targets.len() < MAX_ENFORCED_REPOSITORIES
                && self.name_bytes + target.name.len() <= MAX_ENFORCED_NAME_BYTES)
    }

    pub fn insert(&mut self, target: Target) {
        let bytes = target.name.len();
        if self.targets.insert(target) {
            self.name_bytes += bytes;
        }
    }

    pub fn remove(&mut self, target: &Target) {
        if self.targets.remove(target) {
            self.name_bytes -= target.name.len();
        }
    }

    pub fn contains(&self, target: &Target) -> bool {
        self.targets.contains(target)
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter()
    }
}

/// Why a selected repository is not enforced when the record is full.
pub fn full_message() -> String {
    format!(
        "not enforced: this policy already holds {MAX_ENFORCED_REPOSITORIES} repositories or \
         {} KiB of repository names, the most its status records; split the policy",
        MAX_ENFORCED_NAME_BYTES / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(region: &str, registry_id: &str, name: &str) -> Target {
        Target {
            region: region.into(),
            registry_id: registry_id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn an_arn_names_region_registry_and_repository() {
        let arn = "arn:aws:ecr:eu-west-1:123456789012:repository/payments/api";
        assert_eq!(
            Target::of_arn(arn),
            Some(target("eu-west-1", "123456789012", "payments/api"))
        );
        assert_eq!(Target::of_arn("arn:aws:ecr:eu-west-1:123456789012:nothing"), None);
        assert_eq!(Target::of_arn("arn:aws:ecr::123456789012:repository/x"), None);
    }

    #[test]
    fn the_status_groups_names_by_region_and_registry_and_reads_back_the_same() {
        let mut record = Record::default();
        for target in [
            target("us-east-1", "111111111111", "b"),
            target("eu-west-1", "111111111111", "z"),
            target("eu-west-1", "111111111111", "a"),
            target("eu-west-1", "222222222222", "a"),
        ] {
            record.insert(target);
        }
        let status = record.to_status();
        let groups: Vec<(&str, &str, Vec<&str>)> = status
            .iter()
            .map(|g| {
                (
                    g.region.as_str(),
                    g.registry_id.as_str(),
                    g.names.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("eu-west-1", "111111111111", vec!["a", "z"]),
                ("eu-west-1", "222222222222", vec!["a"]),
                ("us-east-1", "111111111111", vec!["b"]),
            ]
        );
        assert_eq!(Record::from_status(&status), record);
        assert!(Record::default().to_status().is_empty());
    }

    #[test]
    fn the_record_holds_ten_thousand_repositories_and_stays_small() {
        let mut record = Record::default();
        for i in 0..MAX_ENFORCED_REPOSITORIES {
            let next = target(
                "eu-west-1",
                "123456789012",
                &format!("team-{:04}/service-name-{i:05}", i % 100),
            );
            assert!(record.has_room_for(&next), "{i}");
            record.insert(next);
        }
        let first = record.iter().next().unwrap().clone();
        assert!(record.has_room_for(&first), "a recorded name needs no room");
        assert!(!record.has_room_for(&target("eu-west-1", "123456789012", "one-more")));
        record.remove(&first);
        assert!(record.has_room_for(&target("eu-west-1", "123456789012", "one-more")));
        let bytes = serde_json::to_vec(&record.to_status()).unwrap().len();
        assert!(bytes < 400 * 1024, "{bytes} bytes");
        // long names: the byte budget binds before the count does
        let mut record = Record::default();
        let long = |i: usize| target("eu-west-1", "123456789012", &format!("{i:05}{}", "x".repeat(251)));
        while record.has_room_for(&long(record.len())) {
            record.insert(long(record.len()));
        }
        assert_eq!(record.len(), MAX_ENFORCED_NAME_BYTES / 256);
        let bytes = serde_json::to_vec(&record.to_status()).unwrap().len();
        assert!(bytes < MAX_ENFORCED_NAME_BYTES + 16 * 1024, "{bytes} bytes");
    }
}

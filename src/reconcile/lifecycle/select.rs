//! Which EcrRepositories a LifecyclePolicy governs, pure: selection by labels or names, and the
//! tie-break between two policies that select one repository (the older wins: creation time,
//! then name), so that two policies never take turns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::record::Target;
use crate::api::{EcrRepository, LifecyclePolicy, StringMap};

/// What selection needs to know of an EcrRepository.
#[derive(Clone, Debug, PartialEq)]
pub struct RepositoryView {
    pub name: String,
    /// Compact: a policy's reconcile holds the views of the thousands of repositories it
    /// governs, and a copied `BTreeMap` takes a 640-byte node even for one label.
    pub labels: StringMap,
    /// `status.lifecyclePolicy`: the policy berth applied to it, if any.
    pub governed_by: Option<String>,
    /// The ECR repository it manages, from `status.repositoryArn` (None before it exists).
    pub target: Option<Target>,
}

impl RepositoryView {
    pub fn of(repository: &EcrRepository) -> Self {
        let status = repository.status.as_ref();
        Self {
            name: repository.metadata.name.clone().unwrap_or_default(),
            labels: repository
                .metadata
                .labels
                .iter()
                .flatten()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            governed_by: status.and_then(|s| s.lifecycle_policy.clone()),
            target: status
                .and_then(|s| s.repository_arn.as_deref())
                .and_then(Target::of_arn),
        }
    }
}

/// What selection needs to know of a LifecyclePolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyView {
    pub name: String,
    pub created: Option<Time>,
    pub selector: Selector,
    /// Being deleted: it governs nothing any longer.
    pub deleting: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// All of these labels.
    Labels(BTreeMap<String, String>),
    /// Exactly these object names.
    Names(Vec<String>),
}

impl PolicyView {
    pub fn of(policy: &LifecyclePolicy) -> Self {
        let spec = &policy.spec;
        let selector = match &spec.repository_selector {
            Some(selector) => Selector::Labels(selector.match_labels.clone()),
            None => Selector::Names(spec.repositories.clone()),
        };
        Self {
            name: policy.metadata.name.clone().unwrap_or_default(),
            created: policy.metadata.creation_timestamp.clone(),
            selector,
            deleting: policy.metadata.deletion_timestamp.is_some(),
        }
    }

    pub fn selects(&self, repository: &RepositoryView) -> bool {
        self.matches(&repository.name, |key| repository.labels.get(key))
    }

    /// `selects` on the object itself, without building its view.
    pub fn selects_object(&self, repository: &EcrRepository) -> bool {
        let name = repository.metadata.name.as_deref().unwrap_or_default();
        let labels = repository.metadata.labels.as_ref();
        self.matches(name, |key| labels.and_then(|labels| labels.get(key)))
    }

    fn matches<'a>(&self, name: &str, label: impl Fn(&str) -> Option<&'a String>) -> bool {
        if self.deleting {
            return false;
        }
        match &self.selector {
            Selector::Labels(selector) => selector.iter().all(|(key, value)| label(key) == Some(value)),
            Selector::Names(names) => names.iter().any(|selected| selected == name),
        }
    }

    /// The older policy wins: earlier creation, then the smaller name.
    fn precedes(&self, other: &PolicyView) -> bool {
        let created = |policy: &PolicyView| policy.created.as_ref().map(|t| t.0.as_second());
        (created(self), &self.name) < (created(other), &other.name)
    }
}

/// What one policy does with the repositories of its namespace.
#[derive(Debug, Default, PartialEq)]
pub struct Assignment<'a> {
    /// Selected, and this policy is the oldest that selects them.
    pub governed: Vec<&'a RepositoryView>,
    /// Selected, but an older policy wins: (repository, the winner's name).
    pub conflicts: Vec<(&'a RepositoryView, String)>,
    /// Carry this policy's rules but are no longer governed by it: remove them, unless another
    /// policy selects the repository now (it takes over).
    pub released: Vec<Released<'a>>,
}

#[derive(Debug, PartialEq)]
pub struct Released<'a> {
    pub repository: &'a RepositoryView,
    /// Another policy now selects it and will write its own rules.
    pub taken_over: bool,
}

/// The winner among `policies` for `repository`, if any selects it.
pub fn winner<'p>(policies: &'p [PolicyView], repository: &RepositoryView) -> Option<&'p PolicyView> {
    policies
        .iter()
        .filter(|policy| policy.selects(repository))
        .reduce(|best, policy| if policy.precedes(best) { policy } else { best })
}

/// `policy` against every repository and policy of its namespace (`policies` includes it).
pub fn assign<'a>(policy: &PolicyView, policies: &[PolicyView], repositories: &'a [RepositoryView]) -> Assignment<'a> {
    let mut assignment = Assignment::default();
    for repository in repositories {
        let winner = winner(policies, repository);
        match winner {
            Some(winner) if winner.name == policy.name => assignment.governed.push(repository),
            Some(winner) if policy.selects(repository) => assignment.conflicts.push((repository, winner.name.clone())),
            _ => {}
        }
        let ours_before = repository.governed_by.as_deref() == Some(policy.name.as_str());
        let ours_now = winner.is_some_and(|w| w.name == policy.name);
        if ours_before && !ours_now {
            assignment.released.push(Released {
                repository,
                taken_over: winner.is_some(),
            });
        }
    }
    assignment
}

/// The recorded repositories that a pass did not handle itself, by what becomes of them.
#[derive(Debug, Default, PartialEq)]
pub struct Unhandled {
    /// Another policy governs the repository now and writes its own rules: only forgotten.
    pub taken_over: Vec<Target>,
    /// Its EcrRepository is gone, or no longer governed by this policy without having been
    /// released: this policy's rules come off, if they are still there.
    pub orphaned: Vec<Target>,
}

/// Sorts the targets of `record` that are not in `handled` (`policies` includes `policy`).
pub fn unhandled<'t>(
    record: impl IntoIterator<Item = &'t Target>,
    handled: &BTreeSet<Target>,
    policy: &str,
    policies: &[PolicyView],
    repositories: &[RepositoryView],
) -> Unhandled {
    let by_target: HashMap<&Target, &RepositoryView> = repositories
        .iter()
        .filter_map(|repository| Some((repository.target.as_ref()?, repository)))
        .collect();
    let mut unhandled = Unhandled::default();
    for target in record.into_iter().filter(|t| !handled.contains(*t)) {
        let governor = by_target
            .get(target)
            .and_then(|repository| winner(policies, repository));
        match governor {
            Some(other) if other.name != policy => unhandled.taken_over.push(target.clone()),
            _ => unhandled.orphaned.push(target.clone()),
        }
    }
    unhandled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(name: &str, labels: &[(&str, &str)], governed_by: Option<&str>) -> RepositoryView {
        RepositoryView {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            governed_by: governed_by.map(Into::into),
            target: None,
        }
    }

    fn policy(name: &str, created: i64, selector: Selector) -> PolicyView {
        PolicyView {
            name: name.into(),
            created: Some(Time(k8s_openapi::jiff::Timestamp::from_second(created).unwrap())),
            selector,
            deleting: false,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Selector {
        Selector::Labels(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn selects_by_all_labels_or_by_name() {
        let prod = repository("api", &[("tier", "prod"), ("team", "a")], None);
        let dev = repository("web", &[("tier", "dev")], None);
        let by_label = policy("p", 1, labels(&[("tier", "prod")]));
        assert!(by_label.selects(&prod) && !by_label.selects(&dev));
        let by_two = policy("p", 1, labels(&[("tier", "prod"), ("team", "b")]));
        assert!(!by_two.selects(&prod));
        let by_name = policy("p", 1, Selector::Names(names(&["web"])));
        assert!(by_name.selects(&dev) && !by_name.selects(&prod));
        let mut deleting = by_name.clone();
        deleting.deleting = true;
        assert!(!deleting.selects(&dev));
    }

    #[test]
    fn selecting_the_object_agrees_with_selecting_its_view() {
        let object = |name: &str, labels: Option<serde_json::Value>| -> EcrRepository {
            let mut metadata = serde_json::json!({"name": name, "namespace": "team"});
            if let Some(labels) = labels {
                metadata["labels"] = labels;
            }
            serde_json::from_value(serde_json::json!({
                "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
                "metadata": metadata, "spec": {},
            }))
            .unwrap()
        };
        let objects = [
            object("api", Some(serde_json::json!({"tier": "prod", "team": "a"}))),
            object("web", Some(serde_json::json!({"tier": "dev"}))),
            object("bare", None),
        ];
        let mut deleting = policy("d", 1, labels(&[("tier", "dev")]));
        deleting.deleting = true;
        let policies = [
            policy("p", 1, labels(&[("tier", "prod")])),
            policy("q", 1, labels(&[("tier", "prod"), ("team", "b")])),
            policy("n", 1, Selector::Names(names(&["web", "bare"]))),
            policy("e", 1, labels(&[])),
            deleting,
        ];
        let mut selected = 0;
        for policy in &policies {
            for repository in &objects {
                let by_view = policy.selects(&RepositoryView::of(repository));
                assert_eq!(
                    policy.selects_object(repository),
                    by_view,
                    "{} {:?}",
                    policy.name,
                    repository.metadata.name
                );
                selected += usize::from(by_view);
            }
        }
        assert_eq!(
            selected,
            1 + 2 + 3,
            "p: api; n: web, bare; e (empty selector): all three"
        );
    }

    #[test]
    fn the_older_policy_wins_then_the_smaller_name_and_the_other_reports_a_conflict() {
        let repositories = vec![repository("api", &[("tier", "prod")], None)];
        let old = policy("zeta", 1, labels(&[("tier", "prod")]));
        let young = policy("alpha", 2, Selector::Names(names(&["api"])));
        let policies = vec![young.clone(), old.clone()];
        let for_old = assign(&old, &policies, &repositories);
        assert_eq!(for_old.governed.len(), 1);
        let for_young = assign(&young, &policies, &repositories);
        assert!(for_young.governed.is_empty());
        assert_eq!(for_young.conflicts[0].1, "zeta");
        // same age: the name decides, whatever the listing order
        let twin = policy("beta", 1, labels(&[("tier", "prod")]));
        let policies = vec![old.clone(), twin.clone()];
        assert_eq!(winner(&policies, &repositories[0]).unwrap().name, "beta");
        let reversed = vec![twin, old];
        assert_eq!(winner(&reversed, &repositories[0]).unwrap().name, "beta");
    }

    #[test]
    fn a_repository_that_leaves_is_released_or_taken_over() {
        let repositories = vec![
            repository("relabelled", &[("tier", "dev")], Some("keep")),
            repository("moved", &[("tier", "dev")], Some("keep")),
            repository("never", &[("tier", "dev")], None),
            repository("stays", &[("tier", "prod")], Some("keep")),
        ];
        let keep = policy("keep", 1, labels(&[("tier", "prod")]));
        let other = policy("other", 2, Selector::Names(names(&["moved"])));
        let policies = vec![keep.clone(), other];
        let assignment = assign(&keep, &policies, &repositories);
        let released: Vec<(&str, bool)> = assignment
            .released
            .iter()
            .map(|r| (r.repository.name.as_str(), r.taken_over))
            .collect();
        assert_eq!(released, [("relabelled", false), ("moved", true)]);
        assert_eq!(assignment.governed.len(), 1);
        // a policy being deleted releases everything it governed
        let mut deleting = keep.clone();
        deleting.deleting = true;
        let policies = vec![deleting.clone()];
        let assignment = assign(&deleting, &policies, &repositories);
        assert_eq!(assignment.released.len(), 3);
        assert!(assignment.governed.is_empty());
    }

    #[test]
    fn recorded_repositories_left_unhandled_are_taken_over_or_orphaned() {
        let target = |name: &str| Target {
            region: "eu-west-1".into(),
            registry_id: "123456789012".into(),
            name: format!("team/{name}"),
        };
        let with_target = |name: &str, tier: &str| RepositoryView {
            target: Some(target(name)),
            ..repository(name, &[("tier", tier)], None)
        };
        let repositories = vec![
            with_target("enforced", "prod"),
            with_target("moved", "dev"),
            with_target("unselected", "none"),
        ];
        let keep = policy("keep", 1, labels(&[("tier", "prod")]));
        let dev = policy("dev", 2, labels(&[("tier", "dev")]));
        let policies = vec![keep.clone(), dev];
        let record = [
            target("enforced"),
            target("moved"),
            target("unselected"),
            target("gone"),
        ];
        let handled = BTreeSet::from([target("enforced")]);
        let unhandled = unhandled(&record, &handled, "keep", &policies, &repositories);
        assert_eq!(unhandled.taken_over, [target("moved")]);
        assert_eq!(unhandled.orphaned, [target("unselected"), target("gone")]);
        // a governed repository that the pass left alone (Preview) is this policy's to clean
        let unhandled = super::unhandled(&record[..1], &BTreeSet::new(), "keep", &policies, &repositories);
        assert_eq!(unhandled.orphaned, [target("enforced")]);
    }
}

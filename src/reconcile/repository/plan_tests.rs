//! Planning from YAML fixtures: desired object + observed repository → changes or refusal.

use serde::Deserialize;

use super::*;
use crate::api::EcrRepository;
use crate::reconcile::repository::desired::desired_repository;
use crate::reconcile::repository::settings::ValidationSettings;

#[derive(Deserialize)]
struct Case {
    name: String,
    object: EcrRepository,
    #[serde(default)]
    observed: Option<ObservedState>,
    expect: Expect,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Expect {
    /// The error reason, when planning must refuse.
    error: Option<String>,
    adopting: bool,
    changes: Vec<RepositoryChange>,
}

fn settings() -> ValidationSettings {
    ValidationSettings::for_tests()
}

#[test]
fn plans_match_fixtures() {
    let cases: Vec<Case> =
        serde_saphyr::from_str(include_str!("../../../tests/fixtures/repository-plan.yaml")).expect("fixture parses");
    assert!(cases.len() >= 10, "the fixture file lost cases");
    for case in cases {
        let desired = desired_repository(&case.object, &settings())
            .unwrap_or_else(|e| panic!("{}: fixture object is invalid: {e}", case.name));
        let result = plan(&desired, case.observed.as_ref(), case.object.spec.adopt);
        match (&case.expect.error, result) {
            (Some(reason), Err(error)) => assert_eq!(error.reason(), reason, "{}: {error}", case.name),
            (Some(reason), Ok(plan)) => panic!("{}: expected {reason}, planned {plan:?}", case.name),
            (None, Err(error)) => panic!("{}: unexpected error {error}", case.name),
            (None, Ok(plan)) => {
                assert_eq!(plan.changes, case.expect.changes, "{}", case.name);
                assert_eq!(plan.adopting, case.expect.adopting, "{}: adopting", case.name);
            }
        }
    }
}

#[test]
fn every_change_knows_its_operation_reason_and_whether_it_corrects_drift() {
    use crate::reconcile::repository::access::{PolicyChange, RoleChange};
    let cases = [
        (RepositoryChange::Create, "CreateRepository", "Created", false),
        (
            RepositoryChange::Tag(Default::default()),
            "TagResource",
            "Updated",
            true,
        ),
        (RepositoryChange::Untag(vec![]), "UntagResource", "Updated", true),
        (
            RepositoryChange::Role(RoleChange::Create),
            "CreateRole",
            "Created",
            false,
        ),
        (
            RepositoryChange::Role(RoleChange::UpdateTrustPolicy),
            "UpdateAssumeRolePolicy",
            "Updated",
            true,
        ),
        (
            RepositoryChange::Policy(PolicyChange::Set(serde_json::json!({}))),
            "SetRepositoryPolicy",
            "PolicyApplied",
            true,
        ),
        (
            RepositoryChange::Policy(PolicyChange::Delete),
            "DeleteRepositoryPolicy",
            "Deleted",
            false,
        ),
        (RepositoryChange::DeleteRole("r".into()), "DeleteRole", "Deleted", false),
        (RepositoryChange::DeleteRepository, "DeleteRepository", "Deleted", false),
    ];
    for (change, operation, reason, corrects_drift) in cases {
        assert_eq!(change.operation(), operation, "{change:?}");
        assert_eq!(change.reason(), reason, "{change:?}");
        assert_eq!(change.corrects_drift(), corrects_drift, "{change:?}");
    }
}

mod properties {
    //! On arbitrary desired and observed repositories: planning never panics, is deterministic,
    //! and what it plans converges in one step (a second plan after the changes is empty).

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::api::TagMutability;
    use crate::reconcile::ownership::{MANAGED_BY_TAG, OWNER_TAG, ownership_tags};

    const OWNER: &str = "cluster/team/app";

    fn tag_map() -> impl Strategy<Value = BTreeMap<String, String>> {
        // a small alphabet so that desired and observed keys collide often
        prop::collection::btree_map("(aws:)?[ab]{1,2}", "[xy]{0,2}", 0..5)
    }

    fn repository_settings() -> impl Strategy<Value = RepositorySettings> {
        (any::<bool>(), prop::collection::btree_set("[ab*]{1,3}", 0..3)).prop_map(|(immutable, exclusions)| {
            RepositorySettings {
                tag_mutability: if immutable {
                    TagMutability::Immutable
                } else {
                    TagMutability::Mutable
                },
                mutability_exclusions: exclusions,
            }
        })
    }

    /// Who the observed repository's tags say owns it: us, nobody, another object, or a
    /// berth tag without an owner.
    fn owner_tags() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop_oneof![
            Just(ownership_tags(OWNER)),
            Just(BTreeMap::new()),
            Just(ownership_tags("cluster/team/other")),
            Just(BTreeMap::from([(MANAGED_BY_TAG.to_owned(), "berth".to_owned())])),
        ]
    }

    fn desired() -> impl Strategy<Value = DesiredRepository> {
        (
            repository_settings(),
            tag_map().prop_map(|tags| tags.into_iter().filter(|(k, _)| !k.starts_with("aws:")).collect()),
        )
            .prop_map(|(settings, user_tags)| DesiredRepository {
                name: "team/app".into(),
                region: "eu-west-1".into(),
                settings,
                user_tags,
                owner: OWNER.into(),
                ..Default::default()
            })
    }

    fn observed() -> impl Strategy<Value = ObservedState> {
        (repository_settings(), tag_map(), owner_tags()).prop_map(|(settings, mut tags, owner)| {
            tags.retain(|key, _| key != OWNER_TAG && key != MANAGED_BY_TAG);
            tags.extend(owner);
            ObservedState {
                repository: ObservedRepository {
                    name: "team/app".into(),
                    settings,
                    ..Default::default()
                },
                tags,
            }
        })
    }

    /// What ECR holds after the planned writes.
    fn applied(observed: &ObservedState, changes: &[RepositoryChange]) -> ObservedState {
        let mut after = observed.clone();
        for change in changes {
            match change {
                RepositoryChange::SetTagMutability(settings) => after.repository.settings = settings.clone(),
                RepositoryChange::Tag(tags) => after.tags.extend(tags.clone()),
                RepositoryChange::Untag(keys) => after.tags.retain(|key, _| !keys.contains(key)),
                other => panic!("planning an existing repository asked for {other:?}"),
            }
        }
        after
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn planning_converges_in_one_step(desired in desired(), observed in observed(), adopt in any::<bool>()) {
            let first = plan(&desired, Some(&observed), adopt);
            prop_assert_eq!(format!("{first:?}"), format!("{:?}", plan(&desired, Some(&observed), adopt)));
            let owner = observed.tags.get(OWNER_TAG).cloned();
            match first {
                Err(error) => {
                    let reason = error.reason();
                    let expected = match owner.as_deref() {
                        Some(OWNER) => "none",
                        Some(_) => "OwnedByOther",
                        None if observed.tags.contains_key(MANAGED_BY_TAG) => "OwnedByOther",
                        None => "AdoptionRequired",
                    };
                    prop_assert_eq!(reason, expected);
                }
                Ok(first) => {
                    prop_assert!(owner.as_deref() == Some(OWNER) || adopt);
                    prop_assert_eq!(first.adopting, owner.is_none());
                    let after = applied(&observed, &first.changes);
                    // ECR now holds exactly the declared tags, the ownership tags and AWS's own
                    // `aws:` tags (which cannot be removed), with the declared settings
                    let mut expected_tags = desired.all_tags();
                    expected_tags.extend(observed.tags.iter().filter(|(key, _)| key.starts_with("aws:")).map(|(k, v)| (k.clone(), v.clone())));
                    prop_assert_eq!(&after.tags, &expected_tags);
                    prop_assert_eq!(&after.repository.settings, &desired.settings);
                    let second = plan(&desired, Some(&after), false).expect("ours after the first plan");
                    prop_assert!(!second.adopting);
                    prop_assert!(second.changes.is_empty(), "not converged: {:?}", second.changes);
                }
            }
        }

        #[test]
        fn no_repository_means_one_creation(desired in desired(), adopt in any::<bool>()) {
            let planned = plan(&desired, None, adopt).expect("creation is always possible");
            prop_assert_eq!(planned.changes, vec![RepositoryChange::Create]);
        }
    }
}

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

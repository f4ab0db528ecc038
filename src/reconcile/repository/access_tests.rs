use serde_json::json;

use super::*;
use crate::api::EcrRepositorySpec;

fn settings() -> ValidationSettings {
    ValidationSettings::for_tests()
}

fn spec(access: Value) -> EcrRepositorySpec {
    serde_json::from_value(json!({"access": access})).unwrap()
}

fn error(access: Value) -> String {
    match desired_access(&spec(access.clone()), "payments", "api", &settings()) {
        Err(Error::InvalidSpec(message)) => message,
        other => panic!("{access} should be invalid, got {other:?}"),
    }
}

#[test]
fn grants_become_principals_and_pushers() {
    let access = json!({
        "pull": [{"accountId": "111122223333"}, {"organizationId": "o-a1b2c3d4e5"}],
        "push": [
            {"arn": "arn:aws:iam::111122223333:role/legacy-ci"},
            {"githubActions": {"repository": "acme/payments-api", "refs": ["refs/heads/main", "refs/tags/v*"]}},
        ],
    });
    let desired = desired_access(&spec(access), "payments", "api", &settings()).unwrap();
    assert_eq!(
        desired.grants.pull,
        [
            Principal::Account("111122223333".into()),
            Principal::Organization("o-a1b2c3d4e5".into())
        ]
    );
    assert_eq!(
        desired.grants.push,
        [Principal::Arn("arn:aws:iam::111122223333:role/legacy-ci".into())]
    );
    assert_eq!(desired.pushers.len(), 1);
    assert_eq!(desired.role_name.as_deref(), Some("payments-api-eb946ad9-push"));
    assert!(desired.manages_policy());

    let none = desired_access(&EcrRepositorySpec::default(), "payments", "api", &settings()).unwrap();
    assert!(!none.manages_policy());
    assert_eq!(none.role_name, None);
}

#[test]
fn invalid_grants_name_the_field() {
    assert!(error(json!({"pull": [{}]})).starts_with("spec.access.pull[0]: set exactly one of accountId"));
    assert!(
        error(json!({"pull": [{"accountId": "111122223333", "service": "lambda.amazonaws.com"}]}))
            .starts_with("spec.access.pull[0]: set exactly one")
    );
    assert!(error(json!({"pull": [{"accountId": "1234"}]})).starts_with("spec.access.pull[0].accountId"));
    assert!(error(json!({"pull": [{"organizationId": "org-1"}]})).starts_with("spec.access.pull[0].organizationId"));
    assert!(error(json!({"pull": [{"arn": "role/x"}]})).starts_with("spec.access.pull[0].arn"));
    assert!(error(json!({"pull": [{"service": "lambda"}]})).starts_with("spec.access.pull[0].service"));
    assert!(
        error(json!({"push": [{"arn": "arn:aws:iam::111122223333:root", "githubActions": {"repository": "a/b", "refs": ["refs/heads/main"]}}]}))
            .starts_with("spec.access.push[0]: set exactly one of accountId, organizationId, arn, service, githubActions")
    );
    assert!(
        error(json!({"push": [{"githubActions": {"repository": "acme", "refs": ["refs/heads/main"]}}]}))
            .starts_with("spec.access.push[0].githubActions.repository")
    );
    assert!(
        error(json!({"push": [{"githubActions": {"repository": "acme/api", "refs": ["main"]}}]}))
            .starts_with("spec.access.push[0].githubActions.refs[0]")
    );
    assert!(
        error(json!({"push": [{"githubActions": {"repository": "acme/api", "environments": ["a:b"]}}]}))
            .starts_with("spec.access.push[0].githubActions.environments[0]")
    );
    assert!(
        error(json!({"push": [{"githubActions": {"repository": "acme/api"}}]}))
            .contains("at least one ref or environment")
    );
    let many: Vec<Value> = (0..51).map(|_| json!({"accountId": "111122223333"})).collect();
    assert!(error(json!({"pull": many})).starts_with("spec.access.pull: 51 grants"));
}

#[test]
fn public_access_is_invalid_unless_the_operator_allows_it() {
    assert!(error(json!({"pull": [{"arn": "*"}]})).contains("--allow-public-access"));
    let allowed = ValidationSettings {
        allow_public_access: true,
        ..settings()
    };
    assert!(desired_access(&spec(json!({"pull": [{"arn": "*"}]})), "p", "a", &allowed).is_ok());
}

#[test]
fn the_repository_policy_is_compared_semantically() {
    let desired = json!({"Version": "2012-10-17", "Statement": [{"Sid": "BerthPull", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]}, "Action": ["ecr:BatchGetImage"]}]});
    let same = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "ecr:batchgetimage"}});
    assert_eq!(plan_repository_policy(Some(&desired), Some(&same)), None);
    let other = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "999999999999"}, "Action": "ecr:BatchGetImage"}});
    assert_eq!(
        plan_repository_policy(Some(&desired), Some(&other)),
        Some(PolicyChange::Set(desired.clone()))
    );
    assert_eq!(
        plan_repository_policy(Some(&desired), None),
        Some(PolicyChange::Set(desired.clone()))
    );
    // no access declared: berth's own policy is removed, anyone else's is left alone
    assert_eq!(plan_repository_policy(None, Some(&desired)), Some(PolicyChange::Delete));
    assert_eq!(plan_repository_policy(None, Some(&other)), None);
    assert_eq!(plan_repository_policy(None, None), None);
}

fn desired_role() -> DesiredRole {
    DesiredRole {
        name: "payments-api-eb946ad9-push".into(),
        path: "/berth/".into(),
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/boundary".into()),
        trust_policy: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity"}]}),
        inline_policy: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:PutImage", "Resource": "arn:r"}]}),
        tags: BTreeMap::new(),
    }
}

fn observed_role(owner: &str) -> ObservedPushRole {
    let desired = desired_role();
    ObservedPushRole {
        role: ObservedRole {
            name: desired.name.clone(),
            permissions_boundary: desired.permissions_boundary.clone(),
            tags: [(crate::reconcile::ownership::OWNER_TAG.to_owned(), owner.to_owned())].into(),
            ..ObservedRole::default()
        },
        trust_policy: Some(desired.trust_policy.clone()),
        inline_policy: Some(desired.inline_policy.clone()),
    }
}

#[test]
fn role_plans() {
    let desired = desired_role();
    assert_eq!(
        plan_role(&desired, None, "c1/payments/api").unwrap(),
        [RoleChange::Create, RoleChange::PutInlinePolicy]
    );
    assert_eq!(
        plan_role(&desired, Some(&observed_role("c1/payments/api")), "c1/payments/api").unwrap(),
        []
    );

    let mut changed = observed_role("c1/payments/api");
    changed.trust_policy =
        Some(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}));
    changed.inline_policy = None;
    changed.role.permissions_boundary = None;
    assert_eq!(
        plan_role(&desired, Some(&changed), "c1/payments/api").unwrap(),
        [
            RoleChange::UpdateTrustPolicy,
            RoleChange::PutInlinePolicy,
            RoleChange::PutPermissionsBoundary
        ]
    );

    // a boundary is never removed
    let no_boundary = DesiredRole {
        permissions_boundary: None,
        ..desired.clone()
    };
    assert_eq!(
        plan_role(&no_boundary, Some(&observed_role("c1/payments/api")), "c1/payments/api").unwrap(),
        []
    );

    match plan_role(&desired, Some(&observed_role("c2/payments/api")), "c1/payments/api") {
        Err(Error::OwnedByOther(message)) => assert!(message.contains("payments-api-eb946ad9-push"), "{message}"),
        other => panic!("expected OwnedByOther, got {other:?}"),
    }
    // a role of the desired name that another object of this cluster owns, or nobody, is
    // never taken over
    for owner in ["c1/payments-api/x", ""] {
        let mut other = observed_role(owner);
        if owner.is_empty() {
            other.role.tags.clear();
        }
        assert!(
            matches!(
                plan_role(&desired, Some(&other), "c1/payments/api"),
                Err(Error::OwnedByOther(_))
            ),
            "owner {owner:?}"
        );
    }
}

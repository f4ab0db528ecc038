use serde_json::json;

use super::*;
use crate::policy::equivalent;

const PULL: [&str; 3] = PULL_ACTIONS;
const PUSH: [&str; 7] = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
];

fn access(pull: Vec<Principal>, push: Vec<Principal>) -> Access {
    Access {
        pull,
        push,
        extra_statements: vec![],
    }
}

#[test]
fn each_principal_kind_renders_least_privilege() {
    let access = access(
        vec![
            Principal::Account("111122223333".into()),
            Principal::Organization("o-a1b2c3d4e5".into()),
            Principal::Arn("arn:aws:iam::111122223333:role/eks-nodes".into()),
            Principal::Service("lambda.amazonaws.com".into()),
        ],
        vec![Principal::Arn("arn:aws:iam::111122223333:role/legacy-ci".into())],
    );
    let policy = repository_policy(
        "aws",
        &access,
        Some("arn:aws:iam::123456789012:role/berth/team-api-push"),
        false,
    )
    .unwrap()
    .unwrap();
    let expected = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "BerthPull", "Effect": "Allow", "Action": PULL,
         "Principal": {"AWS": ["arn:aws:iam::111122223333:role/eks-nodes", "arn:aws:iam::111122223333:root"], "Service": ["lambda.amazonaws.com"]}},
        {"Sid": "BerthPullOrganizations", "Effect": "Allow", "Action": PULL, "Principal": "*",
         "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"]}}},
        {"Sid": "BerthPush", "Effect": "Allow", "Action": PUSH,
         "Principal": {"AWS": ["arn:aws:iam::111122223333:role/legacy-ci", "arn:aws:iam::123456789012:role/berth/team-api-push"]}},
    ]});
    assert_eq!(policy, expected);
    // deterministic: the same input renders the same text
    let again = repository_policy(
        "aws",
        &access,
        Some("arn:aws:iam::123456789012:role/berth/team-api-push"),
        false,
    )
    .unwrap();
    assert_eq!(again.unwrap().to_string(), policy.to_string());
}

#[test]
fn nothing_to_grant_renders_no_policy() {
    assert_eq!(repository_policy("aws", &Access::default(), None, false), Ok(None));
    let role_only = repository_policy("aws", &Access::default(), Some("arn:aws:iam::1:role/r"), false).unwrap();
    assert!(role_only.is_some());
}

#[test]
fn public_access_is_refused_unless_allowed() {
    let public = access(vec![Principal::Arn("*".into())], vec![]);
    let error = repository_policy("aws", &public, None, false).unwrap_err();
    assert!(
        error.0.contains("spec.access") && error.0.contains("--allow-public-access"),
        "{error}"
    );
    assert!(repository_policy("aws", &public, None, true).unwrap().is_some());

    // an organization grant is `*` with a condition: not public
    let organization = access(vec![Principal::Organization("o-a1b2c3d4e5".into())], vec![]);
    assert!(repository_policy("aws", &organization, None, false).is_ok());

    let mut extra = Access {
        extra_statements: vec![
            json!({"Sid": "Ok", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "ecr:BatchGetImage"}),
            json!({"Sid": "Open", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "ecr:BatchGetImage"}),
        ],
        ..Default::default()
    };
    let error = repository_policy("aws", &extra, None, false).unwrap_err();
    assert!(error.0.starts_with("spec.extraPolicyStatements[1]"), "{error}");
    // a Deny for everyone is not public access
    extra.extra_statements[1]["Effect"] = json!("Deny");
    assert!(repository_policy("aws", &extra, None, false).is_ok());
}

#[test]
fn extra_statements_must_be_statements() {
    let extra = Access {
        extra_statements: vec![json!("ecr:*")],
        ..Default::default()
    };
    let error = repository_policy("aws", &extra, None, false).unwrap_err();
    assert!(error.0.contains("spec.extraPolicyStatements[0]"), "{error}");
    let maybe = Access {
        extra_statements: vec![json!({"Effect": "Maybe", "Action": "ecr:*"})],
        ..Default::default()
    };
    assert!(repository_policy("aws", &maybe, None, false).is_err());
}

#[test]
fn oversized_policies_are_refused_before_any_call() {
    let many: Vec<Principal> = (0..200)
        .map(|i| {
            Principal::Arn(format!(
                "arn:aws:iam::111122223333:role/some-rather-long-role-name-{i:04}"
            ))
        })
        .collect();
    let error = repository_policy("aws", &access(many, vec![]), None, false).unwrap_err();
    assert!(error.0.contains("at most 10240"), "{error}");

    let pusher = GithubPusher {
        repository: "acme/payments-api".into(),
        refs: (0..60).map(|i| format!("refs/heads/release-{i:03}")).collect(),
        environments: vec![],
    };
    let error = github_trust_policy("arn:aws:iam::1:oidc-provider/x", &[pusher]).unwrap_err();
    assert!(error.0.contains("at most 2048"), "{error}");
}

#[test]
fn subjects_for_refs_and_environments() {
    let pushers = [GithubPusher {
        repository: "acme/payments-api".into(),
        refs: vec!["refs/heads/main".into(), "refs/tags/v*".into()],
        environments: vec!["production".into()],
    }];
    let subjects: Vec<String> = github_subjects(&pushers).into_iter().collect();
    assert_eq!(
        subjects,
        [
            "repo:acme/payments-api:environment:production",
            "repo:acme/payments-api:ref:refs/heads/main",
            "repo:acme/payments-api:ref:refs/tags/v*",
        ]
    );
}

#[test]
fn trust_policy_uses_string_like_only_for_wildcards() {
    let provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
    let pushers = [GithubPusher {
        repository: "acme/payments-api".into(),
        refs: vec!["refs/heads/main".into(), "refs/tags/v*".into()],
        environments: vec![],
    }];
    let trust = github_trust_policy(provider, &pushers).unwrap();
    let expected = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "BerthGitHubActions", "Effect": "Allow", "Principal": {"Federated": provider},
         "Action": "sts:AssumeRoleWithWebIdentity",
         "Condition": {"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": ["repo:acme/payments-api:ref:refs/heads/main"]}}},
        {"Sid": "BerthGitHubActionsPatterns", "Effect": "Allow", "Principal": {"Federated": provider},
         "Action": "sts:AssumeRoleWithWebIdentity",
         "Condition": {
            "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
            "StringLike": {"token.actions.githubusercontent.com:sub": ["repo:acme/payments-api:ref:refs/tags/v*"]}}},
    ]});
    assert_eq!(trust, expected);

    // exact refs only: one statement, no StringLike at all
    let exact = [GithubPusher {
        refs: vec!["refs/heads/main".into()],
        ..pushers[0].clone()
    }];
    let trust = github_trust_policy(provider, &exact).unwrap();
    assert_eq!(trust["Statement"].as_array().unwrap().len(), 1);
    assert!(!trust.to_string().contains("StringLike"));

    let nothing = [GithubPusher {
        refs: vec![],
        ..pushers[0].clone()
    }];
    assert!(github_trust_policy(provider, &nothing).is_err());
}

#[test]
fn inline_policy_scopes_push_to_one_repository() {
    let arn = "arn:aws:ecr:eu-west-1:123456789012:repository/team/api";
    let policy = push_role_inline_policy(arn);
    let expected = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]},
        {"Effect": "Allow", "Action": PUSH, "Resource": [arn]},
    ]});
    assert!(equivalent(&policy, &expected), "{policy}");
    assert!(is_berth_policy(&policy));
    assert!(!is_berth_policy(
        &json!({"Statement": {"Sid": "Mine", "Effect": "Allow"}})
    ));
}

#[test]
fn role_names_are_deterministic_and_fit_iam() {
    assert_eq!(
        push_role_name("payments", "payments-api"),
        "payments-payments-api-817d69d9-push"
    );
    // names that join alike get distinct roles
    assert_eq!(push_role_name("a-b", "c"), "a-b-c-31d7f645-push");
    assert_eq!(push_role_name("a", "b-c"), "a-b-c-4331d2a5-push");
    let long = push_role_name(&"n".repeat(63), &"r".repeat(200));
    assert_eq!(long.len(), 64);
    assert!(long.ends_with("-push"));
    assert_eq!(long, push_role_name(&"n".repeat(63), &"r".repeat(200)));
    assert_ne!(long, push_role_name(&"n".repeat(63), &"r".repeat(199)));
    assert!(long.chars().all(is_role_name_character));
    // a cut never leaves a doubled separator before the hash
    let cut = push_role_name(&"n".repeat(49), "r");
    assert!(cut.len() <= 64 && !cut.contains("--"), "{cut}");
    assert!(push_role_name("ns", "x/y é").chars().all(is_role_name_character));
}

fn is_role_name_character(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// A Kubernetes namespace: a DNS label.
const NAMESPACE: &str = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
/// An object name: a DNS subdomain (up to 253 characters), short ones more often.
const NAME: &str = "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?";
const SHORT_NAME: &str = "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?";

mod role_name_properties {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn pair() -> impl Strategy<Value = (String, String)> {
        prop_oneof![(NAMESPACE, NAME), (SHORT_NAME, SHORT_NAME), (NAMESPACE, SHORT_NAME),]
    }

    proptest! {
        #[test]
        fn role_names_fit_iam_and_are_deterministic((namespace, name) in pair()) {
            let role = push_role_name(&namespace, &name);
            prop_assert!(role.len() <= 64, "{} is {} long", role, role.len());
            prop_assert!(role.chars().all(is_role_name_character), "{}", role);
            prop_assert!(role.ends_with("-push"));
            prop_assert_eq!(&role, &push_role_name(&namespace, &name));
        }

        #[test]
        fn distinct_objects_get_distinct_roles(pairs in prop::collection::btree_set(pair(), 1..40)) {
            let mut seen = BTreeMap::new();
            for (namespace, name) in &pairs {
                if let Some(other) = seen.insert(push_role_name(namespace, name), (namespace, name)) {
                    prop_assert!(false, "{:?} and {:?} share a role", other, (namespace, name));
                }
            }
        }

        #[test]
        fn names_that_join_alike_get_distinct_roles(a in SHORT_NAME, b in SHORT_NAME, c in SHORT_NAME) {
            let roles: BTreeSet<String> = [
                push_role_name(&format!("{a}-{b}"), &c),
                push_role_name(&a, &format!("{b}-{c}")),
            ]
            .into();
            prop_assert_eq!(roles.len(), 2);
        }
    }
}

#[test]
fn accounts_render_as_root_arns_of_the_partition() {
    let grants = access(vec![Principal::Account("111122223333".into())], vec![]);
    for partition in ["aws", "aws-cn", "aws-us-gov"] {
        let policy = repository_policy(partition, &grants, None, false).unwrap().unwrap();
        assert_eq!(
            policy["Statement"][0]["Principal"]["AWS"],
            json!([format!("arn:{partition}:iam::111122223333:root")])
        );
        assert!(
            !policy.to_string().contains("arn:aws:") || partition == "aws",
            "{policy}"
        );
    }
    // the same grant compares equal to its bare-id spelling whatever the partition
    let cn = repository_policy("aws-cn", &grants, None, false).unwrap().unwrap();
    let mut bare = cn.clone();
    bare["Statement"][0]["Principal"]["AWS"] = json!("111122223333");
    assert!(equivalent(&cn, &bare));
}

#[test]
fn the_issuer_is_the_provider_arns_resource() {
    assert_eq!(
        issuer_of("arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"),
        Some("token.actions.githubusercontent.com")
    );
    assert_eq!(
        issuer_of("arn:aws-us-gov:iam::123456789012:oidc-provider/ghe.example.com/_services/token"),
        Some("ghe.example.com/_services/token")
    );
    assert_eq!(
        issuer_of("arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com/acme"),
        Some("token.actions.githubusercontent.com/acme")
    );
    for text in [
        "",
        "token.actions.githubusercontent.com",
        "arn:aws:iam::123456789012:role/token.actions.githubusercontent.com",
        "arn:aws:iam::123456789012:oidc-provider/",
        "arn:aws:sts::123456789012:oidc-provider/x",
        "arn:aws:iam:eu-west-1:123456789012:oidc-provider/x",
        "arn::iam::123456789012:oidc-provider/x",
    ] {
        assert_eq!(issuer_of(text), None, "{text}");
    }
}

#[test]
fn trust_policy_keys_name_the_providers_issuer() {
    let provider = "arn:aws-us-gov:iam::123456789012:oidc-provider/ghe.example.com/_services/token";
    let pushers = [GithubPusher {
        repository: "acme/payments-api".into(),
        refs: vec!["refs/heads/main".into(), "refs/tags/v*".into()],
        environments: vec![],
    }];
    let trust = github_trust_policy(provider, &pushers).unwrap();
    let exact = &trust["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(exact["ghe.example.com/_services/token:aud"], json!("sts.amazonaws.com"));
    assert_eq!(
        exact["ghe.example.com/_services/token:sub"],
        json!(["repo:acme/payments-api:ref:refs/heads/main"])
    );
    let patterns = &trust["Statement"][1]["Condition"]["StringLike"];
    assert_eq!(
        patterns["ghe.example.com/_services/token:sub"],
        json!(["repo:acme/payments-api:ref:refs/tags/v*"])
    );
    assert_eq!(trust["Statement"][0]["Principal"]["Federated"], json!(provider));
    assert!(!trust.to_string().contains(GITHUB_OIDC_HOST), "{trust}");

    let error = github_trust_policy("not-an-arn", &pushers).unwrap_err();
    assert!(error.0.contains("not an IAM OIDC provider ARN"), "{error}");
}

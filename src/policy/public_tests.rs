use serde_json::{Value, json};

use super::*;
use crate::policy::{Access, Principal, repository_policy};

const ORG: &str = "o-a1b2c3d4e5";

fn allow(principal: Value) -> Value {
    json!({"Effect": "Allow", "Principal": principal, "Action": "ecr:BatchGetImage"})
}

fn allow_if(principal: Value, condition: Value) -> Value {
    json!({"Effect": "Allow", "Principal": principal, "Action": "ecr:BatchGetImage", "Condition": condition})
}

/// Statements that grant everyone (or an unknown set): each must be refused.
fn public_corpus() -> Vec<(&'static str, Value)> {
    vec![
        ("principal string *", allow(json!("*"))),
        ("AWS *", allow(json!({"AWS": "*"}))),
        ("AWS [*]", allow(json!({"AWS": ["*"]}))),
        (
            "mixed list containing *",
            allow(json!({"AWS": ["arn:aws:iam::111122223333:root", "*"]})),
        ),
        ("wildcard account", allow(json!({"AWS": "arn:aws:iam::*:root"}))),
        (
            "partial wildcard ARN",
            allow(json!({"AWS": "arn:aws:iam::1111222233?3:role/ci"})),
        ),
        ("CanonicalUser *", allow(json!({"CanonicalUser": "*"}))),
        ("Federated *", allow(json!({"Federated": "*"}))),
        ("Service *", allow(json!({"Service": "*"}))),
        (
            "wildcard among several principal types",
            allow(json!({"AWS": "arn:aws:iam::111122223333:root", "Service": ["*"]})),
        ),
        (
            "unknown principal type",
            allow(json!({"Everyone": "arn:aws:iam::111122223333:root"})),
        ),
        ("lower-case principal type", allow(json!({"aws": "*"}))),
        ("empty principal map", allow(json!({}))),
        ("empty principal list", allow(json!({"AWS": []}))),
        ("principal list at top level", allow(json!(["*"]))),
        ("non-string principal", allow(json!({"AWS": 111122223333_u64}))),
        (
            "policy variable principal",
            allow(json!({"AWS": "${aws:PrincipalArn}"})),
        ),
        (
            "NotPrincipal with Allow",
            json!({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "ecr:BatchGetImage"}),
        ),
        (
            "NotPrincipal beside a specific Principal",
            json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                   "NotPrincipal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "ecr:BatchGetImage"}),
        ),
        (
            "lower-case notprincipal",
            json!({"Effect": "Allow", "notprincipal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "ecr:*"}),
        ),
        (
            "lower-case principal *",
            json!({"Effect": "Allow", "principal": "*", "Action": "ecr:*"}),
        ),
        (
            "case-variant principal beside a specific one",
            json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "PRINCIPAL": "*", "Action": "ecr:*"}),
        ),
        ("no principal at all", json!({"Effect": "Allow", "Action": "ecr:*"})),
        (
            "effect in another case",
            json!({"Effect": "allow", "Principal": "*", "Action": "ecr:*"}),
        ),
        ("null condition", allow_if(json!("*"), Value::Null)),
        ("empty condition", allow_if(json!("*"), json!({}))),
        ("empty operator block", allow_if(json!("*"), json!({"Bool": {}}))),
        (
            "empty StringEquals block",
            allow_if(json!({"AWS": "*"}), json!({"StringEquals": {}})),
        ),
        (
            "SecureTransport only",
            allow_if(json!("*"), json!({"Bool": {"aws:SecureTransport": "true"}})),
        ),
        (
            "SourceIp only",
            allow_if(json!("*"), json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})),
        ),
        (
            "non-identity key under StringEquals",
            allow_if(
                json!("*"),
                json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}),
            ),
        ),
        (
            "negated operator",
            allow_if(json!("*"), json!({"StringNotEquals": {"aws:PrincipalOrgID": ORG}})),
        ),
        (
            "IfExists operator",
            allow_if(json!("*"), json!({"StringEqualsIfExists": {"aws:PrincipalOrgID": ORG}})),
        ),
        (
            "Null operator",
            allow_if(json!("*"), json!({"Null": {"aws:PrincipalOrgID": "false"}})),
        ),
        (
            "ForAllValues is true when the key is absent",
            allow_if(
                json!("*"),
                json!({"ForAllValues:StringEquals": {"aws:PrincipalOrgID": ORG}}),
            ),
        ),
        (
            "StringLike *",
            allow_if(json!("*"), json!({"StringLike": {"aws:PrincipalOrgID": "*"}})),
        ),
        (
            "StringLike pattern over organization ids",
            allow_if(json!("*"), json!({"StringLike": {"aws:PrincipalOrgID": "o-*"}})),
        ),
        (
            "ArnLike with a wildcard account",
            allow_if(
                json!("*"),
                json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin"}}),
            ),
        ),
        (
            "ArnLike *",
            allow_if(json!("*"), json!({"ArnLike": {"aws:PrincipalArn": "*"}})),
        ),
        (
            "ArnLike any bucket",
            allow_if(
                json!({"Service": "*"}),
                json!({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}}),
            ),
        ),
        (
            "one wildcard value among restricting ones",
            allow_if(
                json!("*"),
                json!({"StringLike": {"aws:PrincipalAccount": ["111122223333", "*"]}}),
            ),
        ),
        (
            "empty value list",
            allow_if(json!("*"), json!({"StringEquals": {"aws:PrincipalOrgID": []}})),
        ),
        (
            "policy variable value",
            allow_if(
                json!("*"),
                json!({"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}}),
            ),
        ),
        (
            "org paths with a wildcard organization",
            allow_if(
                json!("*"),
                json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-*/r-ab12/*"}}),
            ),
        ),
        (
            "userid with a wildcard unique id",
            allow_if(json!("*"), json!({"StringLike": {"aws:userid": "*:ci"}})),
        ),
        (
            "misspelt operator",
            allow_if(json!("*"), json!({"stringequals": {"aws:PrincipalOrgID": ORG}})),
        ),
        (
            "lower-case condition element",
            json!({"Effect": "Allow", "Principal": "*", "Action": "ecr:*", "condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}}}),
        ),
        (
            "non-object condition",
            allow_if(json!("*"), json!("aws:PrincipalOrgID")),
        ),
        ("not an object", json!("ecr:*")),
    ]
}

/// Statements limited to known principals: each must be accepted.
fn safe_corpus() -> Vec<(&'static str, Value)> {
    vec![
        (
            "account root ARN",
            allow(json!({"AWS": "arn:aws:iam::111122223333:root"})),
        ),
        ("bare account id", allow(json!({"AWS": "111122223333"}))),
        (
            "role ARNs",
            allow(json!({"AWS": ["arn:aws:iam::111122223333:role/eks-nodes", "arn:aws:iam::444455556666:role/ci"]})),
        ),
        ("service", allow(json!({"Service": "lambda.amazonaws.com"}))),
        (
            "accounts and services",
            allow(json!({"AWS": ["arn:aws:iam::111122223333:root"], "Service": ["codebuild.amazonaws.com"]})),
        ),
        (
            "federated provider",
            allow(json!({"Federated": "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"})),
        ),
        (
            "canonical user",
            allow(json!({"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"})),
        ),
        (
            "specific principal with a trivial condition",
            allow_if(
                json!({"AWS": "111122223333"}),
                json!({"Bool": {"aws:SecureTransport": "true"}}),
            ),
        ),
        (
            "organization grant as berth renders it",
            allow_if(json!("*"), json!({"StringEquals": {"aws:PrincipalOrgID": [ORG]}})),
        ),
        (
            "organization grant, AWS *, condition key in another case",
            allow_if(
                json!({"AWS": "*"}),
                json!({"StringEquals": {"aws:principalorgid": ORG}}),
            ),
        ),
        (
            "organization plus a trivial condition",
            allow_if(
                json!("*"),
                json!({"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"aws:PrincipalOrgID": ORG}}),
            ),
        ),
        (
            "organizational unit path",
            allow_if(
                json!("*"),
                json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": format!("{ORG}/r-ab12/ou-ab12-11111111/*")}}),
            ),
        ),
        (
            "principal account",
            allow_if(
                json!("*"),
                json!({"StringEquals": {"aws:PrincipalAccount": ["111122223333", "444455556666"]}}),
            ),
        ),
        (
            "principal account as a number",
            allow_if(
                json!("*"),
                json!({"StringEquals": {"aws:PrincipalAccount": 111122223333_u64}}),
            ),
        ),
        (
            "roles of one account by pattern",
            allow_if(
                json!("*"),
                json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/ci-*"}}),
            ),
        ),
        (
            "service conditioned on the source account",
            allow_if(
                json!({"Service": "codebuild.amazonaws.com"}),
                json!({"StringEquals": {"aws:SourceAccount": "111122223333"}}),
            ),
        ),
        (
            "any service principal conditioned on the source account",
            allow_if(
                json!({"Service": "*"}),
                json!({"StringEquals": {"aws:SourceAccount": "111122223333"}}),
            ),
        ),
        (
            "source ARN of one account",
            allow_if(
                json!("*"),
                json!({"ArnLike": {"aws:SourceArn": "arn:aws:codebuild:eu-west-1:111122223333:project/*"}}),
            ),
        ),
        (
            "one role's sessions by unique id",
            allow_if(json!("*"), json!({"StringLike": {"aws:userid": "AROAEXAMPLEID:*"}})),
        ),
        (
            "Deny for everyone",
            json!({"Effect": "Deny", "Principal": "*", "Action": "ecr:*"}),
        ),
        (
            "Deny with NotPrincipal",
            json!({"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "ecr:DeleteRepository"}),
        ),
    ]
}

#[test]
fn every_public_statement_is_refused() {
    let corpus = public_corpus();
    assert!(corpus.len() >= 15);
    for (name, statement) in corpus {
        assert!(public_reason(&statement).is_some(), "{name}: {statement} was accepted");
    }
}

#[test]
fn every_safe_statement_is_accepted() {
    let corpus = safe_corpus();
    assert!(corpus.len() >= 10);
    for (name, statement) in corpus {
        assert_eq!(public_reason(&statement), None, "{name}: {statement} was refused");
    }
}

#[test]
fn the_reason_names_what_is_wrong() {
    let not_principal = json!({"Effect": "Allow", "NotPrincipal": {"AWS": "111122223333"}, "Action": "ecr:*"});
    assert!(public_reason(&not_principal).unwrap().contains("NotPrincipal"));
    assert!(
        public_reason(&allow(json!("*")))
            .unwrap()
            .contains("aws:PrincipalOrgID")
    );
}

#[test]
fn berth_grants_stay_accepted_and_wildcards_in_them_are_refused() {
    let organization = Access {
        pull: vec![Principal::Organization(ORG.into())],
        push: vec![Principal::Service("codebuild.amazonaws.com".into())],
        ..Default::default()
    };
    assert!(repository_policy("aws", &organization, None, false).unwrap().is_some());
    for wildcard in [
        Principal::Account("*".into()),
        Principal::Service("*".into()),
        Principal::Arn("arn:aws:iam::*:role/admin".into()),
    ] {
        let access = Access {
            pull: vec![wildcard.clone()],
            ..Default::default()
        };
        let error = repository_policy("aws", &access, None, false).unwrap_err();
        assert!(error.0.starts_with("spec.access"), "{wildcard:?}: {error}");
    }
}

#[test]
fn extra_statement_with_not_principal_is_refused_by_field() {
    let access = Access {
        pull: vec![Principal::Account("111122223333".into())],
        extra_statements: vec![json!({
            "Sid": "AllButOne", "Effect": "Allow",
            "NotPrincipal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        })],
        ..Default::default()
    };
    let error = repository_policy("aws", &access, None, false).unwrap_err();
    assert!(error.0.starts_with("spec.extraPolicyStatements[0]"), "{error}");
    assert!(
        error.0.contains("NotPrincipal") && error.0.contains("--allow-public-access"),
        "{error}"
    );
    // the operator flag lets it through
    assert!(repository_policy("aws", &access, None, true).unwrap().is_some());
}

//! The CEL rules of the CRDs, evaluated offline with kube's `cel` feature (the test bed's 1.20
//! apiserver does not run CEL).

use kube::core::cel::{validate_cel, validate_cel_update};

use super::*;

fn repository(spec: serde_json::Value) -> EcrRepository {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
        "metadata": {"name": "app", "namespace": "ns"}, "spec": spec,
    }))
    .unwrap()
}

fn rejects(spec: serde_json::Value, message_part: &str) {
    let errors = validate_cel(&repository(spec.clone())).expect_err(&format!("{spec} should be rejected"));
    assert!(
        format!("{errors:?}").contains(message_part),
        "{spec}: {errors:?} should mention {message_part}"
    );
}

fn rejects_update(old: serde_json::Value, new: serde_json::Value, message_part: &str) {
    let errors = validate_cel_update(&repository(new.clone()), &repository(old.clone()))
        .expect_err(&format!("{old} -> {new} should be rejected"));
    assert!(
        format!("{errors:?}").contains(message_part),
        "{errors:?} should mention {message_part}"
    );
}

#[test]
fn valid_specs_pass() {
    let spec = serde_json::json!({
        "repositoryName": "payments/api", "region": "eu-west-1", "imageTagMutability": "Immutable",
        "mutabilityExclusions": ["latest"], "encryption": {"type": "Kms", "kmsKey": "alias/ecr"},
        "tags": {"team": "payments", "Awesome": "yes", "aws-team": "ok"},
    });
    validate_cel(&repository(spec.clone())).unwrap();
    validate_cel_update(&repository(spec.clone()), &repository(spec)).unwrap();
    validate_cel(&repository(serde_json::json!({}))).unwrap();
}

#[test]
fn kms_key_only_with_kms() {
    rejects(
        serde_json::json!({"encryption": {"type": "Aes256", "kmsKey": "alias/x"}}),
        "kmsKey is only allowed",
    );
}

#[test]
fn reserved_tag_prefixes_are_rejected() {
    rejects(serde_json::json!({"tags": {"aws:x": "v"}}), "reserved by AWS");
    rejects(serde_json::json!({"tags": {"AwS:x": "v"}}), "reserved by AWS");
    rejects(serde_json::json!({"tags": {"berth.dev/owner": "v"}}), "ownership tags");
    rejects(serde_json::json!({"tags": {"k".repeat(129): "v"}}), "1 to 128");
}

#[test]
fn identity_fields_are_immutable() {
    rejects_update(
        serde_json::json!({"repositoryName": "team/a"}),
        serde_json::json!({"repositoryName": "team/b"}),
        "repositoryName is immutable",
    );
    rejects_update(
        serde_json::json!({"repositoryName": "team/a"}),
        serde_json::json!({}),
        "cannot be added or removed",
    );
    rejects_update(
        serde_json::json!({}),
        serde_json::json!({"repositoryName": "team/a"}),
        "cannot be added or removed",
    );
    rejects_update(
        serde_json::json!({"region": "eu-west-1"}),
        serde_json::json!({"region": "us-east-1"}),
        "region is immutable",
    );
    rejects_update(
        serde_json::json!({"region": "eu-west-1"}),
        serde_json::json!({}),
        "region is immutable",
    );
    rejects_update(
        serde_json::json!({"encryption": {"type": "Aes256"}}),
        serde_json::json!({"encryption": {"type": "Kms"}}),
        "encryption is immutable",
    );
}

#[test]
fn mutable_fields_may_change() {
    validate_cel_update(
        &repository(serde_json::json!({"imageTagMutability": "Immutable", "tags": {"a": "b"}})),
        &repository(serde_json::json!({"imageTagMutability": "Mutable"})),
    )
    .unwrap();
}

#[test]
fn access_grants_name_exactly_one_principal() {
    let valid = serde_json::json!({"access": {
        "pull": [{"accountId": "111122223333"}, {"organizationId": "o-a1b2c3d4e5"}, {"service": "lambda.amazonaws.com"}],
        "push": [
            {"arn": "arn:aws:iam::111122223333:role/legacy-ci"},
            {"githubActions": {"repository": "acme/api", "refs": ["refs/heads/main"]}},
            {"githubActions": {"repository": "acme/api", "environments": ["production"]}},
        ],
    }});
    validate_cel(&repository(valid)).unwrap();
    rejects(
        serde_json::json!({"access": {"pull": [{"accountId": "111122223333", "arn": "arn:aws:iam::111122223333:root"}]}}),
        "spec.access.pull[]: set exactly one",
    );
    rejects(
        serde_json::json!({"access": {"pull": [{}]}}),
        "spec.access.pull[]: set exactly one",
    );
    rejects(
        serde_json::json!({"access": {"push": [{"accountId": "111122223333", "githubActions": {"repository": "a/b", "refs": ["refs/heads/main"]}}]}}),
        "spec.access.push[]: set exactly one",
    );
    rejects(
        serde_json::json!({"access": {"push": [{"githubActions": {"repository": "a/b"}}]}}),
        "at least one ref or environment",
    );
}

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

// --- LifecyclePolicy -------------------------------------------------------------------------

fn lifecycle_policy(spec: serde_json::Value) -> LifecyclePolicy {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "LifecyclePolicy",
        "metadata": {"name": "keep-releases", "namespace": "ns"}, "spec": spec,
    }))
    .unwrap()
}

/// A valid policy exercising every count type, both actions and both storage classes.
fn valid_lifecycle_spec() -> serde_json::Value {
    serde_json::json!({
        "repositorySelector": {"matchLabels": {"tier": "prod", "app.kubernetes.io/part-of": "payments"}},
        "mode": "Preview",
        "rules": [
            {"priority": 1, "description": "keep the last 30 releases",
             "selection": {"tagStatus": "Tagged", "tagPatterns": ["v*", "*-*-*-*"], "countType": "ImageCountMoreThan", "countNumber": 30},
             "action": {"type": "Expire"}},
            {"priority": 2,
             "selection": {"tagStatus": "Tagged", "tagPrefixes": ["pr-"], "countType": "SinceImagePushed", "countUnit": "Days", "countNumber": 14},
             "action": {"type": "Expire"}},
            {"priority": 3,
             "selection": {"tagStatus": "Untagged", "countType": "SinceImagePulled", "countUnit": "Days", "countNumber": 30, "storageClass": "Standard"},
             "action": {"type": "Transition", "targetStorageClass": "Archive"}},
            {"priority": 4,
             "selection": {"tagStatus": "Untagged", "countType": "SinceImageTransitioned", "countUnit": "Days", "countNumber": 90, "storageClass": "Archive"},
             "action": {"type": "Expire"}},
            {"priority": 10,
             "selection": {"tagStatus": "Any", "countType": "ImageCountMoreThan", "countNumber": 500},
             "action": {"type": "Expire"}},
        ],
    })
}

/// `valid_lifecycle_spec` with `change` applied to its JSON.
fn lifecycle_spec_with(change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut spec = valid_lifecycle_spec();
    change(&mut spec);
    spec
}

fn rejects_lifecycle(spec: serde_json::Value, message_part: &str) {
    let errors = validate_cel(&lifecycle_policy(spec.clone())).expect_err(&format!("{spec} should be rejected"));
    assert!(
        format!("{errors:?}").contains(message_part),
        "{spec}: {errors:?} should mention {message_part}"
    );
}

#[test]
fn valid_lifecycle_policies_pass() {
    validate_cel(&lifecycle_policy(valid_lifecycle_spec())).unwrap();
    validate_cel(&lifecycle_policy(serde_json::json!({
        "repositories": ["payments-api", "payments.worker"],
        "rules": [{"priority": 1, "selection": {"tagStatus": "Untagged", "countType": "ImageCountMoreThan", "countNumber": 1},
                   "action": {"type": "Expire"}}],
    })))
    .unwrap();
    // the Any rule alone is also the last one
    validate_cel(&lifecycle_policy(serde_json::json!({
        "repositorySelector": {},
        "rules": [{"priority": 7, "selection": {"tagStatus": "Any", "countType": "SinceImagePushed", "countUnit": "Days", "countNumber": 1},
                   "action": {"type": "Expire"}}],
    })))
    .unwrap();
}

#[test]
fn lifecycle_selects_repositories_one_way() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["repositories"] = serde_json::json!(["payments-api"])),
        "spec: set exactly one of repositorySelector and repositories",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| {
            s.as_object_mut().unwrap().remove("repositorySelector");
        }),
        "spec: set exactly one of repositorySelector and repositories",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["repositorySelector"]["matchLabels"] = serde_json::json!({"": "x"})),
        "matchLabels: keys must be label keys",
    );
}

#[test]
fn lifecycle_priorities_are_unique() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][1]["priority"] = serde_json::json!(1)),
        "spec.rules: priorities must be unique",
    );
}

#[test]
fn lifecycle_any_only_in_the_last_rule() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][0]["priority"] = serde_json::json!(20)),
        "tagStatus Any is only allowed in the rule with the highest priority number",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| {
            s["rules"][0]["selection"] =
                serde_json::json!({"tagStatus": "Any", "countType": "ImageCountMoreThan", "countNumber": 3});
        }),
        "tagStatus Any is only allowed in the rule with the highest priority number",
    );
}

#[test]
fn lifecycle_tagged_needs_patterns_xor_prefixes() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][0]["selection"]["tagPrefixes"] = serde_json::json!(["v"])),
        "tagStatus Tagged needs exactly one of tagPatterns and tagPrefixes",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| {
            s["rules"][0]["selection"]
                .as_object_mut()
                .unwrap()
                .remove("tagPatterns");
        }),
        "tagStatus Tagged needs exactly one of tagPatterns and tagPrefixes",
    );
}

#[test]
fn lifecycle_untagged_and_any_have_no_tag_lists() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][2]["selection"]["tagPatterns"] = serde_json::json!(["v*"])),
        "tagPatterns and tagPrefixes are only allowed with tagStatus Tagged",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][4]["selection"]["tagPrefixes"] = serde_json::json!(["v"])),
        "tagPatterns and tagPrefixes are only allowed with tagStatus Tagged",
    );
}

#[test]
fn lifecycle_patterns_have_at_most_four_wildcards() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][0]["selection"]["tagPatterns"] = serde_json::json!(["v*", "*a*b*c*d*"])),
        "at most 4 '*' wildcards per pattern",
    );
}

#[test]
fn lifecycle_count_unit_exactly_with_since_types() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][0]["selection"]["countUnit"] = serde_json::json!("Days")),
        "countUnit is required with the Since* count types",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| {
            s["rules"][1]["selection"].as_object_mut().unwrap().remove("countUnit");
        }),
        "countUnit is required with the Since* count types",
    );
}

#[test]
fn lifecycle_since_image_pulled_only_transitions() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][2]["action"] = serde_json::json!({"type": "Expire"})),
        "countType SinceImagePulled is only allowed with action type Transition",
    );
}

#[test]
fn lifecycle_since_image_transitioned_expires_archived_images() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| {
            s["rules"][3]["selection"]
                .as_object_mut()
                .unwrap()
                .remove("storageClass");
        }),
        "countType SinceImageTransitioned needs storageClass Archive",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][3]["selection"]["storageClass"] = serde_json::json!("Standard")),
        "countType SinceImageTransitioned needs storageClass Archive",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| {
            s["rules"][3]["action"] = serde_json::json!({"type": "Transition", "targetStorageClass": "Archive"})
        }),
        "countType SinceImageTransitioned needs action type Expire",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][1]["selection"]["storageClass"] = serde_json::json!("Archive")),
        "storageClass Archive is only allowed with countType SinceImageTransitioned",
    );
}

#[test]
fn lifecycle_transition_targets_the_archive() {
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][2]["action"] = serde_json::json!({"type": "Transition"})),
        "type Transition needs targetStorageClass Archive",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][2]["action"]["targetStorageClass"] = serde_json::json!("Standard")),
        "type Transition needs targetStorageClass Archive",
    );
    rejects_lifecycle(
        lifecycle_spec_with(|s| s["rules"][0]["action"]["targetStorageClass"] = serde_json::json!("Archive")),
        "targetStorageClass is only allowed with type Transition",
    );
}

/// The bounds are schema keywords (they hold on every apiserver, with or without CEL), which
/// `validate_cel` does not evaluate: this checks they are in the schema.
#[test]
fn lifecycle_bounds_are_in_the_schema() {
    let crd = serde_json::to_value(<LifecyclePolicy as kube::CustomResourceExt>::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let rules = &spec["rules"];
    assert_eq!(
        (rules["minItems"].as_u64(), rules["maxItems"].as_u64()),
        (Some(1), Some(50))
    );
    let rule = &rules["items"]["properties"];
    assert_eq!(rule["priority"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(rule["description"]["maxLength"].as_u64(), Some(256));
    let selection = &rule["selection"]["properties"];
    assert_eq!(selection["countNumber"]["minimum"].as_f64(), Some(1.0));
    for list in ["tagPatterns", "tagPrefixes"] {
        assert_eq!(selection[list]["maxItems"].as_u64(), Some(20), "{list}");
        assert_eq!(selection[list]["items"]["maxLength"].as_u64(), Some(128), "{list}");
    }
    assert_eq!(spec["repositories"]["maxItems"].as_u64(), Some(100));
    assert_eq!(spec["repositories"]["items"]["maxLength"].as_u64(), Some(253));
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(status["preview"]["maxItems"].as_u64(), Some(100));
    assert_eq!(
        status["preview"]["items"]["properties"]["examples"]["maxItems"].as_u64(),
        Some(5)
    );
}

/// Every string, list and map of the LifecyclePolicy schema is bounded: the CEL cost budget
/// depends on it (descriptions for `kubectl explain` are checked for every kind in tests/crds.rs).
#[test]
fn lifecycle_schema_is_bounded() {
    let crd = serde_json::to_value(<LifecyclePolicy as kube::CustomResourceExt>::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let problems = kind_schema_problems(root);
    assert!(problems.is_empty(), "{problems:#?}");
}

// --- ScanPolicy ------------------------------------------------------------------------------

fn scan_policy(spec: serde_json::Value) -> ScanPolicy {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "ScanPolicy",
        "metadata": {"name": "default"}, "spec": spec,
    }))
    .unwrap()
}

fn valid_scan_spec() -> serde_json::Value {
    serde_json::json!({
        "region": "eu-west-1",
        "scanType": "Enhanced",
        "rules": [
            {"frequency": "ContinuousScan", "repositoryFilters": ["payments/*"]},
            {"frequency": "ScanOnPush", "repositoryFilters": ["*"]},
        ],
        "findings": {"thresholds": {"critical": 0, "high": 5}, "refreshInterval": "15m"},
    })
}

fn rejects_scan(spec: serde_json::Value, message_part: &str) {
    let errors = validate_cel(&scan_policy(spec.clone())).expect_err(&format!("{spec} should be rejected"));
    assert!(
        format!("{errors:?}").contains(message_part),
        "{spec}: {errors:?} should mention {message_part}"
    );
}

#[test]
fn valid_scan_policies_pass() {
    validate_cel(&scan_policy(valid_scan_spec())).unwrap();
    validate_cel(&scan_policy(serde_json::json!({"scanType": "Basic"}))).unwrap();
    validate_cel(&scan_policy(serde_json::json!({
        "scanType": "Basic", "rules": [{"frequency": "ScanOnPush", "repositoryFilters": ["*"]}],
    })))
    .unwrap();
    validate_cel(&scan_policy(serde_json::json!({
        "scanType": "Enhanced", "rules": [{"frequency": "ContinuousScan", "repositoryFilters": ["*"]}],
    })))
    .unwrap();
}

#[test]
fn scan_basic_allows_only_scan_on_push() {
    let mut spec = valid_scan_spec();
    spec["scanType"] = serde_json::json!("Basic");
    rejects_scan(spec, "spec.rules: scanType Basic allows only ScanOnPush rules");
    rejects_scan(
        serde_json::json!({"scanType": "Basic", "rules": [{"frequency": "ContinuousScan", "repositoryFilters": ["a"]}]}),
        "spec.rules: scanType Basic allows only ScanOnPush rules",
    );
}

#[test]
fn scan_frequencies_are_unique() {
    let mut spec = valid_scan_spec();
    spec["rules"][1]["frequency"] = serde_json::json!("ContinuousScan");
    rejects_scan(spec, "spec.rules: frequencies must be unique");
    rejects_scan(
        serde_json::json!({"scanType": "Basic", "rules": [
            {"frequency": "ScanOnPush", "repositoryFilters": ["a"]},
            {"frequency": "ScanOnPush", "repositoryFilters": ["b"]},
        ]}),
        "spec.rules: frequencies must be unique",
    );
}

/// The bounds and patterns are schema keywords, which `validate_cel` does not evaluate: this
/// checks they are in the schema, and that the patterns accept and refuse what they should.
#[test]
fn scan_bounds_are_in_the_schema() {
    let crd = serde_json::to_value(<ScanPolicy as kube::CustomResourceExt>::crd()).unwrap();
    assert_eq!(crd["spec"]["scope"], "Cluster");
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let spec = &root["spec"]["properties"];
    assert_eq!(spec["rules"]["maxItems"].as_u64(), Some(2));
    let filters = &spec["rules"]["items"]["properties"]["repositoryFilters"];
    assert_eq!(
        (filters["minItems"].as_u64(), filters["maxItems"].as_u64()),
        (Some(1), Some(100))
    );
    assert_eq!(filters["x-kubernetes-list-type"], "set");
    assert_eq!(
        (
            filters["items"]["minLength"].as_u64(),
            filters["items"]["maxLength"].as_u64()
        ),
        (Some(1), Some(255))
    );
    assert_eq!(filters["items"]["pattern"], SCAN_FILTER_PATTERN);
    let thresholds = &spec["findings"]["properties"]["thresholds"]["properties"];
    for severity in ["critical", "high", "medium", "low", "informational", "undefined"] {
        assert_eq!(thresholds[severity]["minimum"].as_f64(), Some(0.0), "{severity}");
    }
    let interval = &spec["findings"]["properties"]["refreshInterval"];
    assert_eq!(interval["pattern"], REFRESH_INTERVAL_PATTERN);
    let status = &root["status"]["properties"];
    assert_eq!(status["nonCompliant"]["maxItems"].as_u64(), Some(50));

    let filter = regex::Regex::new(SCAN_FILTER_PATTERN).unwrap();
    for good in ["*", "payments/*", "a.b_c-d/e*", "*-api", "team*/*"] {
        assert!(filter.is_match(good), "{good}");
    }
    for bad in ["Payments", "a b", "/a", "a/", "a//b", "a?"] {
        assert!(!filter.is_match(bad), "{bad}");
    }
    let duration = regex::Regex::new(REFRESH_INTERVAL_PATTERN).unwrap();
    for good in ["15m", "1h", "90s", "1h30m"] {
        assert!(duration.is_match(good), "{good}");
    }
    for bad in ["15", "1d", "15 m", "1.5h", ""] {
        assert!(!duration.is_match(bad), "{bad}");
    }
}

#[test]
fn scan_policy_printer_columns() {
    let crd = <ScanPolicy as kube::CustomResourceExt>::crd();
    let columns: Vec<(String, String)> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["Region", "Scan", "Ready", "Reason", "NonCompliant", "Age"]);
    assert_eq!(columns[4].1, ".status.summary.nonCompliant");
}

#[test]
fn repository_printer_columns_and_tag_values() {
    let crd = <EcrRepository as kube::CustomResourceExt>::crd();
    let names: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["Repository", "Ready", "Reason", "Compliant", "URI", "Age"]);
    let crd = serde_json::to_value(crd).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let tags = &root["spec"]["properties"]["tags"];
    assert_eq!(tags["maxProperties"].as_u64(), Some(48));
    assert_eq!(tags["additionalProperties"]["maxLength"].as_u64(), Some(256));
    let findings = &root["status"]["properties"]["findings"]["properties"];
    assert_eq!(findings["imageTags"]["maxItems"].as_u64(), Some(10));
    let states: Vec<&str> = findings["scanStatus"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["Complete", "InProgress", "NotScanned", "Unsupported", "Unavailable"]
    );
}

/// Every string and list of `schema` is bounded, and every property described: the CEL cost
/// budget and `kubectl explain` depend on it.
/// The unbounded strings, lists and maps under `schema`.
fn schema_problems(path: &str, schema: &serde_json::Value, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else { return };
    match object.get("type").and_then(|t| t.as_str()) {
        Some("string") if !object.contains_key("maxLength") && !object.contains_key("enum") => {
            problems.push(format!("{path}: string without maxLength"))
        }
        Some("array") if !object.contains_key("maxItems") => problems.push(format!("{path}: list without maxItems")),
        Some("object") if object.contains_key("additionalProperties") && !object.contains_key("maxProperties") => {
            problems.push(format!("{path}: map without maxProperties"))
        }
        _ => {}
    }
    if let Some(properties) = object.get("properties").and_then(|p| p.as_object()) {
        for (name, property) in properties {
            schema_problems(&format!("{path}.{name}"), property, problems);
        }
    }
    if let Some(items) = object.get("items") {
        schema_problems(&format!("{path}[]"), items, problems);
    }
    if let Some(values) = object.get("additionalProperties") {
        schema_problems(&format!("{path}{{}}"), values, problems);
    }
}

/// The unbounded fields of a kind's spec and status; conditions are the upstream
/// metav1.Condition type, bounded by Kubernetes itself.
fn kind_schema_problems(root: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    schema_problems("spec", &root["spec"], &mut problems);
    let mut status = root["status"].clone();
    status["properties"].as_object_mut().unwrap().remove("conditions");
    schema_problems("status", &status, &mut problems);
    problems
}

#[test]
fn scan_schema_is_bounded() {
    let crd = serde_json::to_value(<ScanPolicy as kube::CustomResourceExt>::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut problems = kind_schema_problems(root);
    // the scan fields of EcrRepository's status, and its tags
    let crd = serde_json::to_value(<EcrRepository as kube::CustomResourceExt>::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    for field in ["findings", "scanning"] {
        schema_problems(
            &format!("status.{field}"),
            &root["status"]["properties"][field],
            &mut problems,
        );
    }
    schema_problems("spec.tags", &root["spec"]["properties"]["tags"], &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

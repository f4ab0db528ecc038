//! `crds/` and the Helm chart's copy must be exactly what the code generates
//! (`berth crds --dir crds --chart charts/berth`).

use std::collections::BTreeSet;
use std::path::Path;

const REGENERATE: &str = "run: cargo run -- crds --dir crds --chart charts/berth";

/// `dir` (relative to the repository) holds exactly the generated CRD files, byte for byte.
fn assert_holds_the_generated_crds(dir: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut expected_files = BTreeSet::new();
    for crd in berth::api::crds() {
        let file = berth::api::crd_file_name(&crd);
        let committed = std::fs::read_to_string(path.join(&file))
            .unwrap_or_else(|e| panic!("{dir}/{file} is missing ({e}); {REGENERATE}"));
        assert!(
            committed == berth::api::crd_yaml(&crd),
            "{dir}/{file} differs from the generated CRD; {REGENERATE}"
        );
        expected_files.insert(file);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(present, expected_files, "{dir}/ holds files the code does not generate");
}

#[test]
fn committed_crds_match_the_code() {
    assert_holds_the_generated_crds("crds");
}

/// The chart installs and upgrades the CRDs from its own copy (Helm reads files inside the chart
/// only): it must be the same files as crds/.
#[test]
fn the_charts_crds_match_the_code() {
    assert_holds_the_generated_crds(&format!("charts/berth/{}", berth::api::CHART_CRD_DIR));
}

#[test]
fn crds_declare_the_three_kinds() {
    let kinds: Vec<String> = berth::api::crds().into_iter().map(|crd| crd.spec.names.kind).collect();
    assert_eq!(kinds, ["EcrRepository", "LifecyclePolicy", "ScanPolicy"]);
}

#[test]
fn stripping_removes_every_cel_rule() {
    for crd in berth::api::crds() {
        let mut value = serde_json::to_value(&crd).unwrap();
        berth::api::strip_cel_rules(&mut value);
        assert!(!value.to_string().contains("x-kubernetes-validations"));
        // the rest of the schema is untouched
        assert!(value.to_string().contains("openAPIV3Schema"));
    }
    let with_rules = serde_json::to_string(&<berth::api::EcrRepository as kube::CustomResourceExt>::crd()).unwrap();
    assert!(with_rules.contains("x-kubernetes-validations"));
}

/// Every property of `schema`, at any depth, with its path.
fn properties<'a>(path: &str, schema: &'a serde_json::Value, out: &mut Vec<(String, &'a serde_json::Value)>) {
    if let Some(map) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, property) in map {
            let path = format!("{path}.{name}");
            out.push((path.clone(), property));
            properties(&path, property, out);
        }
    }
    if let Some(items) = schema.get("items") {
        properties(&format!("{path}[]"), items, out);
    }
    if let Some(values) = schema.get("additionalProperties") {
        properties(&format!("{path}{{}}"), values, out);
    }
}

/// `kubectl explain` shows each field's description: no field of the finished kinds goes without.
#[test]
fn every_field_of_ecr_repository_lifecycle_policy_and_scan_policy_is_described() {
    for crd in berth::api::crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap()["openAPIV3Schema"].clone();
        let mut all = Vec::new();
        for part in ["spec", "status"] {
            properties(part, &schema["properties"][part], &mut all);
        }
        assert!(all.len() > 10, "{}: the schema has its fields", crd.spec.names.kind);
        let undescribed: Vec<&str> = all
            .iter()
            // conditions are the standard metav1.Condition, described by Kubernetes itself
            .filter(|(path, _)| !path.starts_with("status.conditions[]."))
            .filter(|(_, property)| property["description"].as_str().is_none_or(str::is_empty))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(
            undescribed.is_empty(),
            "{}: fields without a description: {undescribed:?}",
            crd.spec.names.kind
        );
    }
}

/// `docs/api-reference.md` must be what the schemas generate (`berth docs api-reference`).
#[test]
fn committed_api_reference_matches_the_schemas() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api-reference.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == berth::api::api_reference(),
        "docs/api-reference.md differs from the CRD schemas; run: cargo run -- docs api-reference > docs/api-reference.md"
    );
}

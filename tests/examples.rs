//! The manifests under `examples/manifests/` (the ones `scripts/demo` applies) are real: each
//! passes the CRDs' CEL rules, and applied as they are, with `berth run`, against the test
//! bed's apiserver and moto, loses no field to pruning, becomes Ready and does what its
//! comments say; deleted, each is released and leaves AWS as its deletionPolicy promises.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use berth::api::{EcrRepository, LifecyclePolicy, ScanPolicy, SelectionState};
use common::{Operator, ReadyStatus, TIMEOUT, registry_scanning, wait_for, wait_reason};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;

/// Every YAML document under `examples/manifests/`, file by file in name order: (file, document).
fn manifests() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/manifests")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let parsed: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        documents.extend(parsed.into_iter().filter(|d| !d.is_null()).map(|d| (name.clone(), d)));
    }
    documents
}

fn kind(document: &Value) -> &str {
    document["kind"].as_str().unwrap_or_default()
}

fn name(document: &Value) -> &str {
    document["metadata"]["name"].as_str().expect("metadata.name")
}

/// Each of the three kinds is in the examples, and each document passes its CRD's CEL rules
/// (which the test bed's 1.20 apiserver does not evaluate).
#[test]
fn every_example_is_a_valid_berth_object() {
    use kube::core::cel::validate_cel;
    let documents = manifests();
    let kinds: BTreeSet<&str> = documents.iter().map(|(_, d)| kind(d)).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["EcrRepository", "LifecyclePolicy", "ScanPolicy"])
    );
    for (file, document) in &documents {
        let errors = match kind(document) {
            "EcrRepository" => validate_cel(&serde_json::from_value::<EcrRepository>(document.clone()).unwrap()),
            "LifecyclePolicy" => validate_cel(&serde_json::from_value::<LifecyclePolicy>(document.clone()).unwrap()),
            "ScanPolicy" => validate_cel(&serde_json::from_value::<ScanPolicy>(document.clone()).unwrap()),
            other => panic!("{file}: unexpected kind {other}"),
        };
        errors.unwrap_or_else(|e| panic!("{file}: {} fails its CEL rules: {e:?}", name(document)));
    }
}

/// A kind of the examples: its typed Api for a document (namespaced or cluster-scoped).
trait Kind: ReadyStatus<DynamicType = ()> {
    fn api(client: &Client, document: &Value) -> Api<Self>;
}

fn namespace(document: &Value) -> &str {
    document["metadata"]["namespace"].as_str().expect("metadata.namespace")
}

impl Kind for EcrRepository {
    fn api(client: &Client, document: &Value) -> Api<Self> {
        Api::namespaced(client.clone(), namespace(document))
    }
}

impl Kind for LifecyclePolicy {
    fn api(client: &Client, document: &Value) -> Api<Self> {
        Api::namespaced(client.clone(), namespace(document))
    }
}

impl Kind for ScanPolicy {
    fn api(client: &Client, _: &Value) -> Api<Self> {
        Api::all(client.clone())
    }
}

/// The untyped Api for a document's object: what the apiserver stored, field by field.
fn raw_api<K: Kind>(client: &Client, document: &Value) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<K>(&());
    match document["metadata"]["namespace"].as_str() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side applies the document exactly as written, and checks that the apiserver kept
/// every field of it (a field the CRD does not declare would be pruned silently).
async fn apply<K: Kind>(client: &Client, file: &str, document: &Value) {
    let stored = raw_api::<K>(client, document)
        .patch(
            name(document),
            &PatchParams::apply("examples-test").force(),
            &Patch::Apply(document),
        )
        .await
        .unwrap_or_else(|e| panic!("{file}: applying {} failed: {e}", name(document)));
    let stored = serde_json::to_value(stored).unwrap();
    for part in ["spec", "metadata"] {
        if let Some(missing) = first_dropped(&document[part], &stored[part], part) {
            panic!("{file}: the apiserver dropped {missing} of {}", name(document));
        }
    }
}

/// The path of the first field of `written` that `stored` does not hold with the same value.
fn first_dropped(written: &Value, stored: &Value, path: &str) -> Option<String> {
    match (written, stored) {
        (Value::Object(written), Value::Object(stored)) => written.iter().find_map(|(key, value)| {
            first_dropped(value, stored.get(key).unwrap_or(&Value::Null), &format!("{path}.{key}"))
        }),
        (Value::Array(written), Value::Array(stored)) if written.len() == stored.len() => written
            .iter()
            .zip(stored)
            .enumerate()
            .find_map(|(i, (w, s))| first_dropped(w, s, &format!("{path}[{i}]"))),
        _ if written.is_number() && written.as_f64() == stored.as_f64() => None,
        _ => (written != stored).then(|| path.to_owned()),
    }
}

/// Waits until the document's object is Ready with `reason`, and returns it.
async fn ready<K: Kind>(client: &Client, document: &Value, reason: &str, operator: &Operator) -> K {
    wait_reason(&K::api(client, document), name(document), reason, operator).await
}

/// Deletes the document's object and waits until it is gone (its finalizer released).
async fn delete_and_wait_gone<K: Kind>(client: &Client, document: &Value, operator: &Operator) {
    let api = K::api(client, document);
    api.delete(name(document), &DeleteParams::default()).await.unwrap();
    let gone = wait_for(TIMEOUT, || async {
        api.get_opt(name(document)).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "{} {} was not released\n{}",
        kind(document),
        name(document),
        operator.log_text()
    );
}

async fn repository_exists(ecr: &aws_sdk_ecr::Client, repository: &str) -> bool {
    ecr.describe_repositories()
        .repository_names(repository)
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_become_ready_and_are_released() {
    let Some(testbed) = common::testbed() else { return };
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let sdk = common::sdk_config(&testbed).await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let documents = manifests();

    // the examples name their own namespace; berth watches it, manages ScanPolicies, and holds
    // the repositories to the tenancy guard the manifests' comments promise they pass
    let namespaces: BTreeSet<&str> = documents
        .iter()
        .filter_map(|(_, d)| d["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(
        namespaces.len(),
        1,
        "the examples use one team namespace: {namespaces:?}"
    );
    let namespace = namespaces.into_iter().next().unwrap();
    common::ensure_namespace(&client, namespace).await;
    let scanning_before = registry_scanning(&ecr).await;
    let operator = Operator::start(
        &testbed,
        namespace,
        &[
            "--create-github-oidc-provider",
            "--manage-scan-policies",
            "true",
            "--require-namespace-prefix",
        ],
    );

    for (file, document) in &documents {
        match kind(document) {
            "EcrRepository" => apply::<EcrRepository>(&client, file, document).await,
            "LifecyclePolicy" => apply::<LifecyclePolicy>(&client, file, document).await,
            "ScanPolicy" => apply::<ScanPolicy>(&client, file, document).await,
            other => panic!("{file}: unexpected kind {other}"),
        }
    }

    for (_, document) in &documents {
        match kind(document) {
            "EcrRepository" => {
                let object: EcrRepository = ready(&client, document, "Synced", &operator).await;
                let status = object.status.unwrap();
                let repository = document["spec"]["repositoryName"].as_str().unwrap();
                assert_eq!(
                    status.repository_arn.as_deref().map(|a| a.ends_with(repository)),
                    Some(true)
                );
                let policy = ecr.get_repository_policy().repository_name(repository).send().await;
                assert!(policy.is_ok(), "{repository}: no repository policy for spec.access");
                let github = document["spec"]["access"]["push"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|grant| grant.get("githubActions").is_some());
                let role = status
                    .push_role_arn
                    .as_deref()
                    .map(|arn| arn.rsplit('/').next().unwrap());
                assert_eq!(role.is_some(), github, "{repository}: pushRoleArn {role:?}");
                if let Some(role) = role {
                    assert!(common::iam_role(&iam, role).await.is_some(), "push role {role} missing");
                }
            }
            "LifecyclePolicy" => {
                let reason = match document["spec"]["mode"].as_str() {
                    Some("Preview") => "Previewed",
                    _ => "Applied",
                };
                let policy: LifecyclePolicy = ready(&client, document, reason, &operator).await;
                // exactly the repositories its selector (or list) names
                let selector = document["spec"]["repositorySelector"]["matchLabels"].as_object();
                let listed = document["spec"]["repositories"].as_array();
                let expected: BTreeSet<&str> = documents
                    .iter()
                    .filter(|(_, d)| kind(d) == "EcrRepository")
                    .filter(|(_, d)| match (selector, listed) {
                        (Some(labels), _) => labels.iter().all(|(key, value)| &d["metadata"]["labels"][key] == value),
                        (None, Some(names)) => names.iter().any(|n| n.as_str() == Some(name(d))),
                        (None, None) => false,
                    })
                    .map(|(_, d)| name(d))
                    .collect();
                let selected = policy.status.unwrap().repositories;
                let names: BTreeSet<&str> = selected.iter().map(|entry| entry.name.as_str()).collect();
                assert_eq!(names, expected, "the repositories {} governs", name(document));
                for entry in &selected {
                    let repository = documents
                        .iter()
                        .find(|(_, d)| kind(d) == "EcrRepository" && name(d) == entry.name)
                        .map(|(_, d)| d["spec"]["repositoryName"].as_str().unwrap())
                        .unwrap();
                    if reason == "Previewed" {
                        assert_eq!(entry.state, SelectionState::Previewed);
                        let put = ecr.get_lifecycle_policy().repository_name(repository).send().await;
                        assert!(put.is_err(), "Preview wrote a lifecycle policy on {repository}");
                    }
                }
            }
            "ScanPolicy" => {
                ready::<ScanPolicy>(&client, document, "Applied", &operator).await;
                // the registry holds the policy's scan type and filters
                let (scan_type, rules) = registry_scanning(&ecr).await;
                assert_eq!(scan_type, document["spec"]["scanType"].as_str().unwrap().to_uppercase());
                let filters: BTreeSet<String> = rules.into_iter().flat_map(|(_, filters)| filters).collect();
                let declared: BTreeSet<String> = document["spec"]["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|rule| rule["repositoryFilters"].as_array().cloned().unwrap_or_default())
                    .filter_map(|filter| filter.as_str().map(str::to_owned))
                    .collect();
                assert_eq!(filters, declared);
            }
            _ => unreachable!(),
        }
    }

    for (_, document) in documents.iter().rev() {
        match kind(document) {
            "EcrRepository" => delete_and_wait_gone::<EcrRepository>(&client, document, &operator).await,
            "LifecyclePolicy" => delete_and_wait_gone::<LifecyclePolicy>(&client, document, &operator).await,
            "ScanPolicy" => delete_and_wait_gone::<ScanPolicy>(&client, document, &operator).await,
            _ => unreachable!(),
        }
    }
    // AWS as each deletionPolicy promised: Delete took the repository, Retain kept it
    for (_, document) in documents.iter().filter(|(_, d)| kind(d) == "EcrRepository") {
        let repository = document["spec"]["repositoryName"].as_str().unwrap();
        let retained = document["spec"]["deletionPolicy"].as_str() != Some("Delete");
        assert_eq!(
            repository_exists(&ecr, repository).await,
            retained,
            "{repository} after delete (retained expected: {retained})"
        );
    }
    // the ScanPolicy's deletion gave the registry back the configuration it had
    assert_eq!(registry_scanning(&ecr).await, scanning_before);
}

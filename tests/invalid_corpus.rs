//! The bad-input corpus, `tests/invalid/<kind>/<rule>.yaml`: one manifest per validation rule of
//! each kind, each refused by the apiserver's schema or reported `InvalidSpec` + `Stalled` by
//! berth, with zero AWS calls (counted by the recording proxy).
//!
//! Each file starts with a header of `# key: value` lines:
//! - `breaks:` what the manifest gets wrong (for people);
//! - `expect: rejected <text>`: the apiserver refuses it, its error containing `<text>`;
//!   `expect: InvalidSpec <text>`: berth reports Ready=False and Stalled=True with reason
//!   InvalidSpec, the message containing `<text>`; `expect: either <text>`: a CEL rule, rejected
//!   by a CEL-capable apiserver, InvalidSpec on the test bed (whose CRDs have CEL stripped);
//! - `rule:` (any number) a CEL rule's message, quoted verbatim: every CEL message of the CRDs
//!   must be claimed by some file;
//! - `flags:` operator flags the case needs (it gets a berth of its own, in its own namespace);
//! - `reads:` for an update, the AWS read operations berth may make before refusing it.
//!
//! A file of two documents is an update: the first is created and must become Ready, the second
//! replaces it and is the invalid one. `${NAMESPACE}` in a file stands for the namespace the
//! case runs in (so repository names differ between runs).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use berth::api::{EcrRepository, LifecyclePolicy, ScanPolicy};
use common::{Operator, TIMEOUT, dynamic_condition, proxy::AwsProxy, wait_for, wait_reason};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Client, Resource};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/invalid");
/// The EcrRepository the LifecyclePolicy cases select.
const LIFECYCLE_TARGET: &str = "app";
/// Marks every object the corpus creates, so that leftovers of an interrupted run can be found.
const CORPUS_LABEL: &str = "test.berth.dev/corpus";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Rejected,
    InvalidSpec,
    /// A CEL rule: rejected where CEL runs, InvalidSpec where it does not.
    Either,
}

#[derive(Debug)]
struct Case {
    path: PathBuf,
    outcome: Outcome,
    /// What the apiserver's error or the condition's message must contain.
    text: String,
    rules: Vec<String>,
    flags: Vec<String>,
    reads: BTreeSet<String>,
    /// The file's YAML documents, `${NAMESPACE}` not yet substituted.
    documents: Vec<String>,
}

impl Case {
    fn name(&self) -> String {
        let relative = self.path.strip_prefix(CORPUS).unwrap_or(&self.path);
        relative.display().to_string()
    }

    fn is_update(&self) -> bool {
        self.documents.len() == 2
    }

    /// Document `index` as JSON, in `namespace`, labelled as the corpus's; a cluster-scoped
    /// object's name gets `suffix` (names are shared across namespaces and runs).
    fn document(&self, index: usize, namespace: &str, suffix: &str) -> serde_json::Value {
        let text = self.documents[index].replace("${NAMESPACE}", namespace);
        let mut document: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", self.name()));
        let metadata = &mut document["metadata"];
        metadata["labels"] = serde_json::json!({CORPUS_LABEL: "invalid"});
        if document["kind"] == "ScanPolicy" {
            let name = format!("{}-{suffix}", document["metadata"]["name"].as_str().unwrap());
            document["metadata"]["name"] = name.into();
        }
        document
    }
}

fn parse(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).expect("a readable corpus file");
    let mut header: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines().take_while(|line| line.starts_with('#')) {
        if let Some((key, value)) = line.trim_start_matches('#').trim().split_once(": ") {
            header.entry(key).or_default().push(value.trim());
        }
    }
    let one = |key: &str| -> Option<&str> { header.get(key).map(|values| values[0]) };
    let expect = one("expect").unwrap_or_else(|| panic!("{}: no '# expect:' line", path.display()));
    let (outcome, text_expected) = expect.split_once(' ').expect("'# expect: <outcome> <text>'");
    let outcome = match outcome {
        "rejected" => Outcome::Rejected,
        "InvalidSpec" => Outcome::InvalidSpec,
        "either" => Outcome::Either,
        other => panic!("{}: unknown outcome '{other}'", path.display()),
    };
    let words = |key: &str| -> Vec<String> {
        one(key)
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let documents: Vec<String> = text.split("\n---\n").map(str::to_owned).collect();
    assert!(
        (1..=2).contains(&documents.len()),
        "{}: one document, or two for an update",
        path.display()
    );
    assert!(
        one("breaks").is_some_and(|b| !b.is_empty()),
        "{}: say what it breaks",
        path.display()
    );
    Case {
        path: path.to_owned(),
        outcome,
        text: text_expected.to_owned(),
        rules: header
            .get("rule")
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        flags: words("flags"),
        reads: words("reads").into_iter().collect(),
        documents,
    }
}

/// Every corpus file, sorted, parsed.
fn corpus() -> Vec<Case> {
    let mut paths = Vec::new();
    for kind in std::fs::read_dir(CORPUS).expect("tests/invalid exists") {
        for file in std::fs::read_dir(kind.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths.iter().map(|p| parse(p)).collect()
}

/// Every `message` of an `x-kubernetes-validations` rule in berth's CRDs.
fn cel_messages() -> BTreeSet<String> {
    fn walk(value: &serde_json::Value, found: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(rules) = map.get("x-kubernetes-validations").and_then(|r| r.as_array()) {
                    found.extend(rules.iter().filter_map(|r| r["message"].as_str()).map(str::to_owned));
                }
                map.values().for_each(|v| walk(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    for crd in berth::api::crds() {
        walk(&serde_json::to_value(crd).unwrap(), &mut found);
    }
    found
}

/// A new CEL rule without a corpus file fails here; so does a file quoting a rule that is gone.
#[test]
fn every_cel_rule_has_a_corpus_file() {
    let messages = cel_messages();
    assert!(messages.len() >= 20, "the CRDs' CEL rules were not found: {messages:?}");
    let cases = corpus();
    let claimed: BTreeSet<String> = cases.iter().flat_map(|c| c.rules.clone()).collect();
    let unclaimed: Vec<_> = messages.difference(&claimed).collect();
    assert!(
        unclaimed.is_empty(),
        "CEL rules without a file in tests/invalid: {unclaimed:#?}"
    );
    let stale: Vec<_> = claimed.difference(&messages).collect();
    assert!(stale.is_empty(), "'# rule:' lines that quote no CEL rule: {stale:#?}");
    // a CEL rule is only caught by the controller where CEL does not run, and only CEL rules are
    for case in &cases {
        assert_eq!(
            case.outcome == Outcome::Either,
            !case.rules.is_empty(),
            "{}: 'either' goes with the '# rule:' it breaks",
            case.name()
        );
    }
    for case in &cases {
        assert!(
            case.reads.is_empty() || case.is_update(),
            "{}: '# reads:' is only for updates",
            case.name()
        );
        assert!(
            case.flags.is_empty() || !case.is_update(),
            "{}: updates run under the default flags",
            case.name()
        );
    }
}

/// The openAPIV3Schema of `kind` as berth serves it.
fn schema_of(kind: &str) -> serde_json::Value {
    let crd = berth::api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref(),
    )
    .unwrap()
}

/// The headers agree with the CRDs' CEL rules, evaluated offline (kube's `cel` feature): an
/// `either` case is refused by CEL with the message it quotes, which contains its text (so a
/// CEL-capable apiserver's error does too); an `InvalidSpec` case passes CEL (only berth can
/// refuse it, on any apiserver); an update's first document passes CEL.
#[test]
fn the_headers_agree_with_the_crds_cel_rules() {
    let validator = kube::core::cel::Validator::new();
    for case in corpus().iter().filter(|c| c.outcome != Outcome::Rejected) {
        let documents: Vec<serde_json::Value> = (0..case.documents.len())
            .map(|i| case.document(i, "corpus", "x"))
            .collect();
        let schema = schema_of(documents[0]["kind"].as_str().unwrap());
        if case.is_update() {
            validator
                .validate(&schema, &documents[0], None)
                .unwrap_or_else(|e| panic!("{}: the first document fails CEL: {e:?}", case.name()));
        }
        let old = case.is_update().then(|| &documents[0]);
        let verdict = validator.validate(&schema, documents.last().unwrap(), old);
        match case.outcome {
            Outcome::Either => {
                let errors = verdict
                    .expect_err(&format!("{}: CEL accepts it", case.name()))
                    .into_vec();
                let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
                for rule in &case.rules {
                    assert!(
                        messages.contains(&rule.as_str()),
                        "{}: {messages:?} lacks '{rule}'",
                        case.name()
                    );
                    assert!(
                        rule.contains(&case.text),
                        "{}: '{rule}' lacks '{}'",
                        case.name(),
                        case.text
                    );
                }
            }
            _ => assert!(verdict.is_ok(), "{}: CEL refuses it: {verdict:?}", case.name()),
        }
    }
}

/// berth's own validation of one document, as pure functions (no cluster, no AWS): the
/// message of its refusal, `Ok(())` when it accepts, or `None` when berth cannot even read the
/// document as its kind (e.g. an unknown enum value).
fn controller_verdict(case: &Case, document: &serde_json::Value) -> Option<Result<(), String>> {
    use berth::reconcile::repository::{ValidationSettings, desired::desired_repository};
    let mut document = document.clone();
    document["metadata"]["namespace"] = "corpus".into();
    Some(match document["kind"].as_str().unwrap() {
        "EcrRepository" => {
            let repository: EcrRepository = serde_json::from_value(document).ok()?;
            let settings = ValidationSettings {
                default_region: "eu-west-1".into(),
                cluster_id: "c1".into(),
                require_namespace_prefix: case.flags.iter().any(|f| f == "--require-namespace-prefix"),
                allow_public_access: false,
                iam_role_path: "/berth/".into(),
                partition: "aws".into(),
            };
            desired_repository(&repository, &settings)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        "LifecyclePolicy" => {
            let policy: LifecyclePolicy = serde_json::from_value(document).ok()?;
            berth::lifecycle::rules(&policy.spec)
                .and_then(|rules| berth::lifecycle::render(&rules))
                .map(drop)
                .map_err(|e| e.0)
        }
        "ScanPolicy" => {
            let policy: ScanPolicy = serde_json::from_value(document).ok()?;
            berth::scan::desired_scanning(&policy.spec, "eu-west-1")
                .map(drop)
                .map_err(|e| e.0)
        }
        other => panic!("no such kind in the corpus: {other}"),
    })
}

/// The three layers agree: what the schema rejects, berth refuses as well (naming the same
/// field) whenever it can read it at all, since a CRD installed by hand or an older one may lack
/// the bound.
#[test]
fn berth_also_refuses_what_the_schema_rejects() {
    let mut checked = 0;
    for case in corpus().iter().filter(|c| c.outcome == Outcome::Rejected) {
        let document = case.document(0, "corpus", "x");
        let Some(verdict) = controller_verdict(case, &document) else {
            continue;
        };
        let message = verdict.expect_err(&format!("{}: berth accepts it", case.name()));
        assert!(
            message.contains(&case.text),
            "{}: berth's message should name '{}': {message}",
            case.name(),
            case.text
        );
        checked += 1;
    }
    eprintln!("{checked} schema cases checked against berth's own validation");
    assert!(checked >= 30, "only {checked} schema cases could be checked");
}

fn resource(kind: &str) -> (ApiResource, bool) {
    match kind {
        "EcrRepository" => (ApiResource::erase::<EcrRepository>(&()), true),
        "LifecyclePolicy" => (ApiResource::erase::<LifecyclePolicy>(&()), true),
        "ScanPolicy" => (ApiResource::erase::<ScanPolicy>(&()), false),
        other => panic!("no such kind in the corpus: {other}"),
    }
}

fn api_for(client: &Client, document: &serde_json::Value, namespace: &str) -> Api<DynamicObject> {
    let (resource, namespaced) = resource(document["kind"].as_str().expect("a kind"));
    if namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

/// One berth (behind the shared proxy) and the namespace it watches, for cases of one flag set.
struct Group {
    namespace: String,
    operator: Operator,
}

/// An object created from a case, to check and delete.
struct Created<'a> {
    case: &'a Case,
    api: Api<DynamicObject>,
    name: String,
    operator_index: usize,
}

/// Creates `document`: Ok(name), or the apiserver's refusal.
async fn create(api: &Api<DynamicObject>, document: &serde_json::Value) -> Result<String, kube::Error> {
    let object: DynamicObject = serde_json::from_value(document.clone()).expect("a Kubernetes object");
    let created = api.create(&PostParams::default(), &object).await?;
    Ok(created.metadata.name.unwrap())
}

/// Checks an apiserver refusal against the case: expected, a 422, and naming the case's text.
fn check_refusal(case: &Case, error: kube::Error) {
    let kube::Error::Api(response) = &error else {
        panic!("{}: the apiserver did not answer: {error}", case.name());
    };
    assert!(
        matches!(case.outcome, Outcome::Rejected | Outcome::Either),
        "{}: the apiserver refused what berth should report as InvalidSpec: {}",
        case.name(),
        response.message
    );
    assert_eq!(response.code, 422, "{}: {}", case.name(), response.message);
    assert!(
        response.message.contains(&case.text),
        "{}: the apiserver's error should contain '{}': {}",
        case.name(),
        case.text,
        response.message
    );
}

/// Waits for Ready=False/InvalidSpec for the current generation, then checks Stalled and the
/// message.
async fn check_invalid_spec(case: &Case, api: &Api<DynamicObject>, name: &str, operator: &Operator) {
    let object = wait_reason(api, name, "InvalidSpec", operator).await;
    let ready = dynamic_condition(&object, "Ready").expect("a Ready condition");
    assert_eq!(ready["status"], "False", "{}: {ready}", case.name());
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&case.text),
        "{}: the InvalidSpec message should contain '{}': {message}",
        case.name(),
        case.text
    );
    let stalled =
        dynamic_condition(&object, "Stalled").unwrap_or_else(|| panic!("{}: no Stalled condition", case.name()));
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("InvalidSpec")),
        "{}: {stalled}",
        case.name()
    );
}

/// Deletes and waits until the object is gone (an invalid object holds no finalizer).
async fn delete_and_wait(api: &Api<DynamicObject>, name: &str, what: &str) {
    api.delete(name, &DeleteParams::default()).await.expect("delete");
    assert!(
        common::wait_deleted(api, name).await,
        "{what}: the object was never released: {:?}",
        api.get(name).await
    );
}

/// Waits until `/readyz` answers 200.
async fn wait_ready(operator: &Operator) {
    let ready = wait_for(TIMEOUT, || async {
        (operator.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "/readyz never turned 200\n{}", operator.log_text());
}

/// The operations of `counts` other than `excluded`.
fn without(counts: &BTreeMap<String, u64>, excluded: &[&str]) -> BTreeMap<String, u64> {
    counts
        .iter()
        .filter(|(operation, _)| !excluded.contains(&operation.as_str()))
        .map(|(operation, count)| (operation.clone(), *count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_manifest_is_refused_without_aws_calls() {
    let Some(s) = common::setup("invalid").await else {
        return;
    };
    let cases = corpus();
    let suffix = common::unique_suffix();

    // ScanPolicies are cluster-scoped: those an interrupted run left go first
    let scan_policies: Api<ScanPolicy> = Api::all(s.client.clone());
    let leftovers = ListParams::default().labels(CORPUS_LABEL);
    for left in scan_policies.list(&leftovers).await.expect("list ScanPolicies") {
        let _ = scan_policies
            .delete(&left.meta().name.clone().unwrap(), &DeleteParams::default())
            .await;
    }
    // the berth below manages every ScanPolicy of the cluster: another test's would make calls
    let others: Vec<String> = scan_policies
        .list(&ListParams::default().labels(&format!("!{CORPUS_LABEL}")))
        .await
        .expect("list ScanPolicies")
        .iter()
        .map(|p| p.meta().name.clone().unwrap_or_default())
        .collect();
    assert!(
        others.is_empty(),
        "ScanPolicies of other tests exist ({others:?}); the corpus counts every AWS call of a berth that manages them"
    );

    // one berth per flag set, each in its own namespace, all behind one proxy; the default one
    // manages ScanPolicies (berth leaves them alone when it watches namespaces, unless told)
    let proxy = AwsProxy::start(&s.testbed.aws_endpoint).await;
    // a resync or statistics read of the updates' Ready repositories would be counted
    let quiet = ["--resync-interval", "10m", "--stats-interval", "1h"];
    let flag_sets: BTreeSet<Vec<String>> = cases.iter().map(|c| c.flags.clone()).collect();
    let mut groups: Vec<(Vec<String>, Group)> = Vec::new();
    for (index, flags) in flag_sets.into_iter().enumerate() {
        let namespace = if flags.is_empty() {
            s.namespace.clone()
        } else {
            common::namespace(&s.client, "invalid-flags").await
        };
        let mut args: Vec<&str> = quiet.to_vec();
        if flags.is_empty() {
            args.extend(["--manage-scan-policies", "true"]);
        }
        args.extend(flags.iter().map(String::as_str));
        let instance = format!("-{index}");
        let operator = Operator::start_with(&s.testbed, &namespace, &proxy.endpoint, &instance, &args);
        groups.push((flags, Group { namespace, operator }));
    }
    for (_, group) in &groups {
        wait_ready(&group.operator).await;
    }
    let group_of = |case: &Case| {
        groups
            .iter()
            .position(|(flags, _)| *flags == case.flags)
            .expect("a group per flag set")
    };
    let default_group = groups.iter().position(|(flags, _)| flags.is_empty()).unwrap();

    // What berth calls with no objects at all: STS GetCallerIdentity once at start (the
    // partition of the ARNs it renders). Nothing else runs without objects: the resync, the
    // statistics and the findings refresher only visit objects. Measured here, so that the
    // exclusion below stays exact.
    let startup = proxy.counts();
    assert_eq!(
        startup,
        BTreeMap::from([("GetCallerIdentity".to_owned(), groups.len() as u64)]),
        "calls of berth with no objects"
    );
    const STARTUP_OPERATIONS: [&str; 1] = ["GetCallerIdentity"];

    // the updates' first documents: real repositories, Ready before anything is counted
    let updates: Vec<&Case> = cases.iter().filter(|c| c.is_update()).collect();
    let group = &groups[default_group].1;
    let mut update_objects = Vec::new();
    for case in &updates {
        let first = case.document(0, &group.namespace, &suffix);
        let api = api_for(&s.client, &first, &group.namespace);
        let name = create(&api, &first)
            .await
            .unwrap_or_else(|e| panic!("{}: the first document was refused: {e}", case.name()));
        update_objects.push((*case, api, name));
    }
    // The repository every LifecyclePolicy case names (`repositories: [app]`): were one of them
    // accepted, berth would read and put its lifecycle policy and list its images, and the proxy
    // would count that. (An invalid EcrRepository has no ARN in status, so it cannot serve.)
    let bait = serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
        "metadata": {"name": LIFECYCLE_TARGET, "labels": {CORPUS_LABEL: "target"}},
        "spec": {"repositoryName": format!("{}/{LIFECYCLE_TARGET}", group.namespace)},
    });
    let bait_api = api_for(&s.client, &bait, &group.namespace);
    create(&bait_api, &bait).await.expect("create the lifecycle target");
    let ready: Vec<(&Api<DynamicObject>, &str)> = update_objects
        .iter()
        .map(|(_, api, name)| (api, name.as_str()))
        .chain([(&bait_api, LIFECYCLE_TARGET)])
        .collect();
    for (api, name) in ready {
        wait_reason(api, name, "Synced", &group.operator).await;
        // the statistics refresher reads a new repository's images at once, then hourly
        let counted = wait_for(TIMEOUT, || async {
            api.get(name).await.ok()?.data["status"]["imageCount"].as_i64()
        })
        .await;
        assert!(
            counted.is_some(),
            "{name}: no statistics\n{}",
            group.operator.log_text()
        );
    }

    // every single-document case at once: create, check, delete; no AWS call may be made
    proxy.reset();
    let mut created = Vec::new();
    let mut refused = 0;
    for case in cases.iter().filter(|c| !c.is_update()) {
        let operator_index = group_of(case);
        let namespace = &groups[operator_index].1.namespace;
        let document = case.document(0, namespace, &suffix);
        let api = api_for(&s.client, &document, namespace);
        match create(&api, &document).await {
            Err(error) => {
                check_refusal(case, error);
                refused += 1;
            }
            Ok(name) => {
                assert!(
                    case.outcome != Outcome::Rejected,
                    "{}: the apiserver accepted it; expected a refusal containing '{}'",
                    case.name(),
                    case.text
                );
                created.push(Created {
                    case,
                    api,
                    name,
                    operator_index,
                });
            }
        }
    }
    for object in &created {
        let operator = &groups[object.operator_index].1.operator;
        check_invalid_spec(object.case, &object.api, &object.name, operator).await;
    }
    for object in &created {
        delete_and_wait(&object.api, &object.name, &object.case.name()).await;
    }
    let made = without(&proxy.counts(), &STARTUP_OPERATIONS);
    assert!(
        made.is_empty(),
        "AWS calls for {} invalid objects: {made:?}",
        created.len()
    );
    eprintln!(
        "corpus: {} rejected by the apiserver, {} InvalidSpec, {} updates",
        refused,
        created.len(),
        updates.len()
    );

    // the updates, one at a time: only the reads the case declares, never a write
    for (case, api, name) in &update_objects {
        proxy.reset();
        let second = case.document(1, &group.namespace, &suffix);
        let mut object: DynamicObject = serde_json::from_value(second).unwrap();
        object.metadata.resource_version = api.get(name).await.unwrap().metadata.resource_version;
        match api.replace(name, &PostParams::default(), &object).await {
            Err(error) => check_refusal(case, error),
            Ok(_) => check_invalid_spec(case, api, name, &group.operator).await,
        }
        let made = without(&proxy.counts(), &STARTUP_OPERATIONS);
        let unexpected: Vec<_> = made.keys().filter(|op| !case.reads.contains(*op)).collect();
        assert!(
            unexpected.is_empty(),
            "{}: AWS calls beyond the declared reads {:?}: {made:?}",
            case.name(),
            case.reads
        );
        assert!(made.keys().all(|op| !common::is_write(op)), "{made:?}");
        eprintln!("{}: AWS calls for the refused update: {made:?}", case.name());
        // deletionPolicy Retain: no finalizer, the repository stays in the emulator
        delete_and_wait(api, name, &case.name()).await;
    }
    delete_and_wait(&bait_api, LIFECYCLE_TARGET, "the lifecycle target").await;
}

//! The Argo CD health scripts in `docs/gitops/health/` judge berth's objects as documented,
//! run by Debian's `lua5.1` (Argo CD's dialect) on objects whose status is serialized from
//! berth's own status types and condition builders, so the samples follow the code.

use std::path::{Path, PathBuf};

use berth::api::{
    ConditionStatus, Conditions, EcrRepositoryStatus, LifecyclePolicyStatus, PreviewTotals, Progress, ScanPolicyStatus,
    ScanSummary, SelectedRepository, SelectionState, progress_conditions, set_condition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

const KINDS: [&str; 3] = ["EcrRepository", "LifecyclePolicy", "ScanPolicy"];
const SHARED_START: &str = "-- Shared by every berth kind";
const SHARED_END: &str = "-- End of the shared part.";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(kind: &str) -> PathBuf {
    root().join(format!("docs/gitops/health/{kind}.lua"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs the health script of `kind` on each object, as Argo CD does (the object as the
/// global `obj`): (status, message) per object. None when lua5.1 is missing outside CI.
fn health(kind: &str, objects: &[Value]) -> Option<Vec<(String, String)>> {
    let lua = std::env::var("BERTH_LUA").unwrap_or_else(|_| "lua5.1".into());
    if std::process::Command::new(&lua).arg("-v").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{lua} is missing (CI=true): scripts/testbed install provides it"
        );
        eprintln!("skipped: {lua} is not installed (scripts/testbed install)");
        return None;
    }
    // one directory per call: tests run in parallel, several on the same kind
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("berth-health-{}-{kind}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let harness = dir.join("harness.lua");
    std::fs::write(
        &harness,
        r#"local cjson = require("cjson")
local check = assert(loadfile(arg[1]))
for line in io.lines(arg[2]) do
  obj = cjson.decode(line)
  local hs = check()
  print(cjson.encode({status = hs.status, message = hs.message}))
end
"#,
    )
    .unwrap();
    let input = dir.join("objects.jsonl");
    let lines: Vec<String> = objects.iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = std::process::Command::new(&lua)
        .arg(&harness)
        .arg(script(kind))
        .arg(&input)
        .output()
        .expect("run lua");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "{kind}.lua failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let hs: Value = serde_json::from_str(line).unwrap();
            let text = |key: &str| hs[key].as_str().unwrap_or_default().to_owned();
            (text("status"), text("message"))
        })
        .collect::<Vec<_>>();
    assert_eq!(results.len(), objects.len());
    Some(results)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
}

/// Conditions as berth writes them for `progress`, describing `generation`.
fn conditions(progress: Progress, reason: &str, message: &str, generation: i64) -> Conditions {
    progress_conditions(&[], progress, reason, message, Some(generation), now())
}

/// The status of `kind` with these conditions, observed at `generation`.
fn status(kind: &str, conditions: Conditions, generation: i64) -> Value {
    let observed_generation = Some(generation);
    match kind {
        "EcrRepository" => serde_json::to_value(EcrRepositoryStatus {
            observed_generation,
            conditions,
            ..Default::default()
        }),
        "LifecyclePolicy" => serde_json::to_value(LifecyclePolicyStatus {
            observed_generation,
            conditions,
            ..Default::default()
        }),
        "ScanPolicy" => serde_json::to_value(ScanPolicyStatus {
            observed_generation,
            conditions,
            ..Default::default()
        }),
        other => panic!("unknown kind {other}"),
    }
    .unwrap()
}

fn object(kind: &str, generation: i64, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "ecr.berth.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "app", "namespace": "team", "generation": generation},
        "spec": {},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

/// Runs one script on `cases` (name, object, expected status, text the message contains).
fn judge(kind: &str, cases: Vec<(&str, Value, &str, &str)>) {
    let objects: Vec<Value> = cases.iter().map(|case| case.1.clone()).collect();
    let Some(results) = health(kind, &objects) else {
        return;
    };
    for ((name, _, expected, text), (status, message)) in cases.iter().zip(results) {
        assert_eq!(status, *expected, "{kind}, {name}: {message}");
        assert!(
            message.contains(text),
            "{kind}, {name}: message {message:?} lacks {text:?}"
        );
    }
}

#[test]
fn every_kind_reports_ready_stalled_reconciling_and_generation() {
    for kind in KINDS {
        let synced = conditions(Progress::Ready, "Synced", "in sync", 2);
        let mut deleting = object(kind, 2, Some(status(kind, synced.clone(), 2)));
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
        let mut blocked = object(
            kind,
            2,
            Some(status(
                kind,
                conditions(Progress::Stalled, "DeletionBlocked", "holds 3 images", 2),
                2,
            )),
        );
        blocked["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
        let mut stale_condition = status(kind, conditions(Progress::Ready, "Synced", "in sync", 1), 2);
        stale_condition["observedGeneration"] = json!(2);
        judge(
            kind,
            vec![
                (
                    "in sync",
                    object(kind, 2, Some(status(kind, synced.clone(), 2))),
                    "Healthy",
                    "in sync",
                ),
                ("no status yet", object(kind, 1, None), "Progressing", "waiting"),
                (
                    "spec changed since",
                    object(kind, 3, Some(status(kind, synced.clone(), 2))),
                    "Progressing",
                    "generation 3",
                ),
                (
                    "Ready describes an older generation",
                    object(kind, 2, Some(stale_condition)),
                    "Progressing",
                    "generation 2",
                ),
                (
                    "retrying",
                    object(
                        kind,
                        2,
                        Some(status(
                            kind,
                            conditions(Progress::Retrying, "AwsThrottled", "rate exceeded", 2),
                            2,
                        )),
                    ),
                    "Progressing",
                    "AwsThrottled: rate exceeded",
                ),
                (
                    "stalled",
                    object(
                        kind,
                        2,
                        Some(status(
                            kind,
                            conditions(Progress::Stalled, "InvalidSpec", "spec.tags: bad key", 2),
                            2,
                        )),
                    ),
                    "Degraded",
                    "InvalidSpec: spec.tags: bad key",
                ),
                (
                    "stalled by an older generation, spec changed since",
                    object(
                        kind,
                        3,
                        Some(status(kind, conditions(Progress::Stalled, "InvalidSpec", "bad", 2), 2)),
                    ),
                    "Progressing",
                    "generation 3",
                ),
                ("being deleted", deleting, "Progressing", "cleaning up"),
                ("deletion blocked", blocked, "Degraded", "DeletionBlocked"),
            ],
        );
    }
}

#[test]
fn a_repository_over_the_scan_thresholds_stays_healthy_and_says_so() {
    let kind = "EcrRepository";
    let mut conditions = conditions(Progress::Ready, "Synced", "repository team/app is in sync", 1);
    conditions.push(set_condition(
        &[],
        "ScanCompliant",
        ConditionStatus::False,
        "ThresholdExceeded",
        "newest image: critical 1 > 0",
        None,
        now(),
    ));
    let mut within = conditions.clone();
    within[1] = set_condition(
        &[],
        "ScanCompliant",
        ConditionStatus::True,
        "WithinThresholds",
        "findings within",
        None,
        now(),
    );
    judge(
        kind,
        vec![
            (
                "over the thresholds",
                object(kind, 1, Some(status(kind, conditions, 1))),
                "Healthy",
                "scan findings over the thresholds (newest image: critical 1 > 0)",
            ),
            (
                "within the thresholds",
                object(kind, 1, Some(status(kind, within, 1))),
                "Healthy",
                "in sync",
            ),
        ],
    );
}

#[test]
fn a_lifecycle_preview_and_conflicts_are_healthy_and_described() {
    let kind = "LifecyclePolicy";
    let preview = LifecyclePolicyStatus {
        observed_generation: Some(1),
        conditions: conditions(Progress::Ready, "Previewed", "2 repositories previewed", 1),
        repositories: vec![
            SelectedRepository {
                name: "app".into(),
                state: SelectionState::Previewed,
                message: None,
            },
            SelectedRepository {
                name: "web".into(),
                state: SelectionState::Conflict,
                message: Some("governed by team/older".into()),
            },
        ],
        preview_totals: Some(PreviewTotals {
            repositories: 2,
            expire: 7,
            transition: 0,
            keep: 3,
        }),
        ..Default::default()
    };
    let mut previewing = object(kind, 1, Some(serde_json::to_value(&preview).unwrap()));
    previewing["spec"]["mode"] = json!("Preview");
    let enforcing = LifecyclePolicyStatus {
        conditions: conditions(Progress::Ready, "Applied", "applied to 1 repository", 1),
        repositories: vec![],
        ..preview
    };
    let mut enforced = object(kind, 1, Some(serde_json::to_value(&enforcing).unwrap()));
    enforced["spec"]["mode"] = json!("Enforce");
    let waiting = LifecyclePolicyStatus {
        observed_generation: Some(1),
        conditions: conditions(Progress::Retrying, "RepositoryNotReady", "not created yet", 1),
        ..Default::default()
    };
    judge(
        kind,
        vec![
            (
                "preview",
                previewing.clone(),
                "Healthy",
                "preview only: 7 images would expire",
            ),
            (
                "conflict",
                previewing,
                "Healthy",
                "1 selected repositories are governed by an older policy",
            ),
            ("enforced", enforced, "Healthy", "applied to 1 repository"),
            (
                "repositories not created yet",
                object(kind, 1, Some(serde_json::to_value(&waiting).unwrap())),
                "Progressing",
                "RepositoryNotReady",
            ),
        ],
    );
}

#[test]
fn a_scan_policy_with_non_compliant_repositories_is_healthy_and_counts_them() {
    let kind = "ScanPolicy";
    let status = ScanPolicyStatus {
        observed_generation: Some(1),
        conditions: conditions(Progress::Ready, "Applied", "in sync", 1),
        summary: Some(ScanSummary {
            repositories: 5,
            scanned: 5,
            non_compliant: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    judge(
        kind,
        vec![(
            "two repositories over the thresholds",
            object(kind, 1, Some(serde_json::to_value(&status).unwrap())),
            "Healthy",
            "2 repositories exceed the findings thresholds",
        )],
    );
}

/// Argo CD needs each script whole; the part every kind shares must not drift between them.
#[test]
fn the_shared_part_is_the_same_in_every_script() {
    let shared = |kind: &str| {
        let text = read(&script(kind));
        let start = text.find(SHARED_START).expect("the shared part's first line");
        let end = text.find(SHARED_END).expect("the shared part's last line");
        text[start..end].to_owned()
    };
    for kind in KINDS {
        assert_eq!(shared(kind), shared(KINDS[0]), "{kind}.lua's shared part differs");
    }
}

/// docs/gitops.md embeds the scripts in an `argocd-cm` ConfigMap: the embedded text must be
/// the files' text.
#[test]
fn the_argocd_configmap_in_the_docs_holds_the_scripts() {
    let doc = read(&root().join("docs/gitops.md"));
    let block = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|block| block.contains("name: argocd-cm"))
        .expect("docs/gitops.md has a ```yaml block with the argocd-cm ConfigMap");
    let config_map: Value = serde_saphyr::from_str(block).expect("the argocd-cm block is YAML");
    assert_eq!(config_map["kind"], "ConfigMap");
    for kind in KINDS {
        let key = format!("resource.customizations.health.ecr.berth.dev_{kind}");
        assert_eq!(
            config_map["data"][&key].as_str(),
            Some(read(&script(kind)).as_str()),
            "{key} in docs/gitops.md differs from docs/gitops/health/{kind}.lua"
        );
    }
}

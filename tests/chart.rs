//! The Helm chart (charts/berth): `helm lint --strict`, what it renders, a server-side dry run of
//! both values files against the test bed's apiserver, and berth reconciling every kind under
//! exactly the chart's RBAC (impersonating its ServiceAccount), cluster-wide and namespaced.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth::api::{EcrRepository, LifecyclePolicy, ScanPolicy};
use common::{Operator, TIMEOUT, wait_deleted, wait_for, wait_reason};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

const CHART: &str = "charts/berth";
const FULL_VALUES: &str = "charts/berth/ci/full-values.yaml";
/// The test bed's apiserver: helm picks the API versions it serves (policy/v1beta1 PDBs).
const KUBE_VERSION: &str = "1.20.2";
/// The ScanPolicy of the end-to-end test governs this region alone (ScanPolicy is cluster-scoped
/// and the oldest policy of a region wins).
const SCAN_REGION: &str = "ca-central-1";

/// helm and kubectl from the test bed's env file.
struct Tools {
    helm: PathBuf,
    kubectl: PathBuf,
    /// helm needs a writable HOME for its cache and configuration
    home: PathBuf,
    testbed: common::Testbed,
}

fn tools() -> Option<Tools> {
    let testbed = common::testbed()?;
    let tool =
        |name: &str| PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("the test bed's env names {name}")));
    let home = PathBuf::from(std::env::var("BERTH_TESTBED").expect("BERTH_TESTBED")).join("helm-home");
    std::fs::create_dir_all(&home).expect("helm home");
    Some(Tools {
        helm: tool("BERTH_HELM"),
        kubectl: tool("BERTH_KUBECTL"),
        home,
        testbed,
    })
}

/// Runs `command` (feeding `stdin`): its stdout, or its stderr and stdout as the error.
fn run(command: &mut Command, stdin: Option<&str>) -> Result<String, String> {
    let mut child = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let input = stdin.unwrap_or_default().to_owned();
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    writer.join().expect("stdin writer").map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}\n{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl Tools {
    fn helm(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new(&self.helm).args(args).env("HOME", &self.home), None)
    }

    /// The chart rendered for `release` in `namespace` with extra helm arguments (`-f`, `--set`):
    /// every document as JSON.
    fn render(&self, release: &str, namespace: &str, values: &[&str]) -> Vec<Value> {
        let mut args = vec![
            "template",
            release,
            CHART,
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
        ];
        args.extend(values);
        let text = self.helm(&args).unwrap_or_else(|e| panic!("{e}"));
        serde_saphyr::from_multiple::<Value>(&text)
            .expect("helm renders YAML")
            .into_iter()
            .filter(|document| !document.is_null())
            .collect()
    }

    /// `kubectl` as the test bed's admin, `documents` on stdin.
    fn kubectl(&self, args: &[&str], documents: &[Value]) -> Result<String, String> {
        let stream: String = documents.iter().map(|d| format!("---\n{d}\n")).collect();
        run(Command::new(&self.kubectl).args(args), Some(&stream))
    }
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn deployment(documents: &[Value]) -> &Value {
    let deployments = of_kind(documents, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    deployments[0]
}

fn container(documents: &[Value]) -> &Value {
    &deployment(documents)["spec"]["template"]["spec"]["containers"][0]
}

fn container_args(documents: &[Value]) -> Vec<String> {
    container(documents)["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|a| a.as_str().expect("args are strings").to_owned())
        .collect()
}

/// Every `--flag` that `berth run --help` lists (but --help).
fn run_flags() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run", "--help"])
        .output()
        .expect("berth run --help");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .split_once(", ")
                .filter(|(short, _)| short.len() == 2)
                .map_or(line, |(_, long)| long);
            let flag = line.strip_prefix("--")?;
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (name != "help" && !name.is_empty()).then(|| format!("--{name}"))
        })
        .collect()
}

#[test]
fn lint_strict_with_default_and_full_values_and_the_schema_refuses_typos() {
    let Some(t) = tools() else { return };
    for values in [&[][..], &["-f", FULL_VALUES][..]] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(values);
        t.helm(&args).unwrap_or_else(|e| panic!("{e}"));
    }
    // values.schema.json: an unknown or mistyped value is an error, not silently ignored
    for wrong in [
        "replicas=2",
        "leaderElection.enabled=maybe",
        "logging.format=xml",
        "resyncInterval=soon",
    ] {
        let refused = t.helm(&["template", "x", CHART, "--set", wrong]);
        assert!(refused.is_err(), "{wrong} was accepted");
    }
}

/// Every operator flag can be set from values: a fully loaded values file passes each one.
#[test]
fn every_run_flag_is_reachable_from_values() {
    let Some(t) = tools() else { return };
    let flags = run_flags();
    assert!(flags.len() >= 20 && flags.contains("--region"), "{flags:?}");
    let args = container_args(&t.render("full", "berth-system", &["-f", FULL_VALUES]));
    let missing: Vec<&String> = flags
        .iter()
        .filter(|flag| !args.iter().any(|a| a == *flag || a.starts_with(&format!("{flag}="))))
        .collect();
    assert!(
        missing.is_empty(),
        "flags no value reaches: {missing:?}\nrendered args: {args:?}"
    );
}

#[test]
fn default_values_give_a_hardened_pod_with_probes_leader_election_and_a_pdb() {
    let Some(t) = tools() else { return };
    let documents = t.render("rel", "berth-system", &[]);
    let deployment = deployment(&documents);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = container(&documents);
    for context in [&pod["securityContext"], &container["securityContext"]] {
        assert_eq!(context["runAsNonRoot"], true);
        assert!(
            context["runAsUser"].as_u64().is_some_and(|uid| uid > 0),
            "numeric non-root uid"
        );
        assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "berth talks to the apiserver"
    );

    let args = container_args(&documents);
    for arg in [
        "--leader-election",
        "--lease-namespace=berth-system",
        "--metrics-addr=0.0.0.0:8080",
        "--health-addr=0.0.0.0:8081",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} missing from {args:?}");
    }
    // the probes hit the health port by name: the one --health-addr binds
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let health = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "health")
        .expect("a health port");
    assert_eq!(health["containerPort"], 8081);
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "health");
    let pod_name = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .expect("POD_NAME");
    assert_eq!(pod_name["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");

    let pdbs = of_kind(&documents, "PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1);
    assert_eq!(pdbs[0]["apiVersion"], "policy/v1beta1", "what a 1.20 apiserver serves");
    assert_eq!(pdbs[0]["spec"]["minAvailable"], 1);
    assert_eq!(
        pdbs[0]["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let services = of_kind(&documents, "Service");
    assert_eq!(services[0]["spec"]["ports"][0]["targetPort"], "metrics");
    // monitoring objects only when asked for
    assert!(of_kind(&documents, "ServiceMonitor").is_empty() && of_kind(&documents, "PrometheusRule").is_empty());
    let newer = t.render("rel", "berth-system", &["--kube-version", "1.30.0"]);
    assert_eq!(of_kind(&newer, "PodDisruptionBudget")[0]["apiVersion"], "policy/v1");

    // IRSA: the ServiceAccount carries the role annotation from values
    let full = t.render("rel", "berth-system", &["-f", FULL_VALUES]);
    let account = of_kind(&full, "ServiceAccount")[0];
    assert!(account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_string());
    assert_eq!(deployment_account(&full), &account["metadata"]["name"]);
}

fn deployment_account(documents: &[Value]) -> &Value {
    &deployment(documents)["spec"]["template"]["spec"]["serviceAccountName"]
}

/// (kind, namespace, rule) of every RBAC rule the chart renders.
fn rbac_rules(documents: &[Value]) -> Vec<(String, String, Value)> {
    documents
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .flat_map(|d| {
            let kind = d["kind"].as_str().unwrap().to_owned();
            let namespace = d["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
            let rules = d["rules"].as_array().cloned().unwrap_or_default();
            rules
                .into_iter()
                .map(move |rule| (kind.clone(), namespace.clone(), rule))
        })
        .collect()
}

/// Where (kind, namespace) a rule names `resource`.
fn granted(documents: &[Value], resource: &str) -> BTreeSet<(String, String)> {
    rbac_rules(documents)
        .into_iter()
        .filter(|(_, _, rule)| rule["resources"].as_array().unwrap().iter().any(|r| r == resource))
        .map(|(kind, namespace, _)| (kind, namespace))
        .collect()
}

fn at(places: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    places
        .iter()
        .map(|(kind, namespace)| (kind.to_string(), namespace.to_string()))
        .collect()
}

/// Least privilege: cluster-wide rules only for a cluster-wide install, the Lease in the release
/// namespace, kube-system only without a cluster id, ScanPolicies only where berth manages them.
#[test]
fn rbac_follows_the_mode() {
    let Some(t) = tools() else { return };
    let cluster_wide = t.render("rel", "berth-system", &[]);
    assert_eq!(granted(&cluster_wide, "ecrrepositories"), at(&[("ClusterRole", "")]));
    assert_eq!(granted(&cluster_wide, "scanpolicies"), at(&[("ClusterRole", "")]));
    assert_eq!(granted(&cluster_wide, "events"), at(&[("ClusterRole", "")]));
    assert_eq!(granted(&cluster_wide, "leases"), at(&[("Role", "berth-system")]));
    let kube_system = rbac_rules(&cluster_wide)
        .into_iter()
        .find(|(_, _, rule)| rule["resources"] == json!(["namespaces"]))
        .expect("kube-system is read for the cluster id");
    assert_eq!(kube_system.2["resourceNames"], json!(["kube-system"]));
    assert_eq!(kube_system.2["verbs"], json!(["get"]));
    let with_cluster_id = t.render("rel", "berth-system", &["--set", "clusterId=prod"]);
    assert!(granted(&with_cluster_id, "namespaces").is_empty());

    let watching = ["--set", "watchNamespaces={team-a,team-b}", "--set", "clusterId=prod"];
    let namespaced = t.render("rel", "berth-system", &watching);
    let in_teams = at(&[("Role", "team-a"), ("Role", "team-b")]);
    assert_eq!(granted(&namespaced, "ecrrepositories"), in_teams);
    assert_eq!(granted(&namespaced, "events"), in_teams);
    assert!(granted(&namespaced, "scanpolicies").is_empty());
    assert!(of_kind(&namespaced, "ClusterRole").is_empty() && of_kind(&namespaced, "ClusterRoleBinding").is_empty());
    let mut forced = watching.to_vec();
    forced.extend(["--set", "manageScanPolicies=true"]);
    let forced = t.render("rel", "berth-system", &forced);
    assert_eq!(granted(&forced, "scanpolicies"), at(&[("ClusterRole", "")]));
    // Events about cluster-scoped objects go to default
    assert!(granted(&forced, "events").contains(&("Role".to_owned(), "default".to_owned())));

    let no_election = t.render("rel", "berth-system", &["--set", "leaderElection.enabled=false"]);
    assert!(granted(&no_election, "leases").is_empty());
    let no_rbac = t.render("rel", "berth-system", &["--set", "rbac.create=false"]);
    assert!(rbac_rules(&no_rbac).is_empty() && of_kind(&no_rbac, "ClusterRoleBinding").is_empty());
}

/// The chart's CRD templates render exactly the generated CRDs (plus the chart's labels and
/// the keep annotation); `crds.keep` and `crds.install` switch those off.
#[test]
fn crd_templates_render_the_generated_crds_and_keep_them() {
    let Some(t) = tools() else { return };
    let documents = t.render("rel", "berth-system", &[]);
    let rendered = of_kind(&documents, "CustomResourceDefinition");
    assert_eq!(rendered.len(), 3);
    for crd in berth::api::crds() {
        let name = crd.metadata.name.clone().unwrap();
        let found = rendered
            .iter()
            .find(|d| d["metadata"]["name"] == name.as_str())
            .expect("rendered");
        assert_eq!(found["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
        assert_eq!(found["metadata"]["labels"]["app.kubernetes.io/name"], "berth");
        let mut without_chart_metadata = (*found).clone();
        without_chart_metadata["metadata"]
            .as_object_mut()
            .unwrap()
            .retain(|key, _| key == "name");
        // compared as CRDs: helm writes the schema's float bounds (1.0) as integers (1)
        let rendered: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(without_chart_metadata).expect("a CRD");
        assert!(rendered == crd, "{name}: the chart renders another CRD");
    }
    let not_kept = t.render("rel", "berth-system", &["--set", "crds.keep=false"]);
    assert!(
        of_kind(&not_kept, "CustomResourceDefinition")
            .iter()
            .all(|crd| crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null())
    );
    let not_installed = t.render("rel", "berth-system", &["--set", "crds.install=false"]);
    assert!(of_kind(&not_installed, "CustomResourceDefinition").is_empty());
}

/// The alerts use series berth exports (docs/metrics.md lists every one).
#[test]
fn alerts_use_documented_metric_names() {
    let Some(t) = tools() else { return };
    let documented = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md")).unwrap();
    let documents = t.render("rel", "berth-system", &["-f", FULL_VALUES]);
    let rule = of_kind(&documents, "PrometheusRule")[0];
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let alerts: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for wanted in [
        "BerthReconcileErrors",
        "BerthObjectsNotReady",
        "BerthRepeatedDrift",
        "BerthCriticalFindings",
        "BerthLeaderMissing",
    ] {
        assert!(alerts.contains(&wanted), "{wanted} missing from {alerts:?}");
    }
    for rule in rules {
        let expr = rule["expr"].as_str().unwrap();
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("berth_"));
        for name in names {
            assert!(
                documented.contains(&format!("`{name}`")),
                "{name} (in {expr}) is no documented series"
            );
        }
    }
}

/// Stand-ins for prometheus-operator's CRDs, which the test bed does not have: they accept any
/// spec, so the dry run checks these two objects' apiVersion, kind and metadata only.
fn monitoring_stand_in_crds() -> Vec<Value> {
    [("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")]
        .into_iter()
        .map(|(kind, plural)| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
                "spec": {
                    "group": "monitoring.coreos.com", "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
                },
            })
        })
        .collect()
}

async fn ensure_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("create namespace {name}: {error}"),
    }
}

/// Both values files as the apiserver would take them (`kubectl apply --dry-run=server`), CEL
/// rules stripped as a 1.20 apiserver requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dry_run_accepts_default_and_full_values() {
    let Some(t) = tools() else { return };
    let client = common::kube_client().await;
    t.kubectl(&["apply", "-f", "-"], &monitoring_stand_in_crds())
        .unwrap_or_else(|e| panic!("{e}"));
    let established = [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ]
    .map(|name| format!("crd/{name}"));
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=30s"];
    wait.extend(established.iter().map(String::as_str));
    t.kubectl(&wait, &[]).unwrap_or_else(|e| panic!("{e}"));
    let namespace = common::namespace(&client, "chart-dry").await;
    // the namespaces full-values.yaml watches
    for watched in ["team-a", "team-b"] {
        ensure_namespace(&client, watched).await;
    }
    for values in [&[][..], &["-f", FULL_VALUES][..]] {
        let mut documents = t.render("dry", &namespace, values);
        documents.iter_mut().for_each(berth::api::strip_cel_rules);
        let output = t
            .kubectl(&["apply", "--dry-run=server", "-f", "-"], &documents)
            .unwrap_or_else(|e| panic!("{values:?}: {e}"));
        let accepted = output.lines().filter(|l| l.ends_with("(server dry run)")).count();
        assert_eq!(accepted, documents.len(), "{values:?}:\n{output}");
    }
}

/// A copy of the admin kubeconfig whose every request impersonates `user`.
fn impersonating_kubeconfig(path: &Path, user: &str) {
    let admin = std::fs::read_to_string(std::env::var("KUBECONFIG").expect("KUBECONFIG")).unwrap();
    let mut config: Value = serde_saphyr::from_str(&admin).expect("a kubeconfig");
    for entry in config["users"].as_array_mut().expect("users") {
        entry["user"]["as"] = json!(user);
    }
    // JSON is YAML
    std::fs::write(path, config.to_string()).unwrap();
}

/// Renders the chart, applies its ServiceAccount and RBAC (nothing else), and starts `berth run`
/// with the Deployment's own arguments (the addresses moved to loopback) as that ServiceAccount.
async fn start_under_chart(t: &Tools, release: &str, namespace: &str, values: &[&str]) -> (Operator, Vec<Value>) {
    let documents = t.render(release, namespace, values);
    let access: Vec<Value> = documents
        .iter()
        .filter(|d| {
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
            ]
            .contains(&d["kind"].as_str().unwrap_or_default())
        })
        .cloned()
        .collect();
    t.kubectl(&["apply", "-f", "-"], &access)
        .unwrap_or_else(|e| panic!("{e}"));
    let account = deployment_account(&documents)
        .as_str()
        .expect("a ServiceAccount name")
        .to_owned();
    let kubeconfig = PathBuf::from(std::env::var("BERTH_TESTBED").unwrap()).join(format!("kubeconfig-{release}"));
    impersonating_kubeconfig(&kubeconfig, &format!("system:serviceaccount:{namespace}:{account}"));

    let http_addr = format!("127.0.0.1:{}", common::free_port());
    let args: Vec<String> = container_args(&documents)
        .into_iter()
        .map(|arg| match arg.split_once('=') {
            Some((flag @ ("--metrics-addr" | "--health-addr"), _)) => format!("{flag}={http_addr}"),
            _ => arg,
        })
        .collect();
    // the downward API's values in a Pod
    let pod_name = format!("{release}-pod");
    let operator = Operator::start_exact(
        &format!("chart-{release}"),
        &t.testbed.aws_endpoint,
        kubeconfig.to_str().unwrap(),
        &args,
        &[("POD_NAME", &pod_name), ("POD_NAMESPACE", namespace)],
        http_addr,
    );
    // the probes' paths answer once berth is up (CRDs served, Lease decided)
    let container = container(&documents);
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().expect("an HTTP probe");
        let answered = wait_for(TIMEOUT, || async { (operator.get(path).await?.0 == 200).then_some(()) }).await;
        assert!(
            answered.is_some(),
            "{probe} {path} never answered 200:\n{}",
            operator.log_text()
        );
    }
    (operator, documents)
}

/// Nothing berth asked the apiserver for was refused: a refusal is logged (kube's error names
/// the reason Forbidden) and a refused list or watch counts in berth_watch_errors_total.
async fn assert_nothing_forbidden(operator: &Operator) {
    let log = operator.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "a request was refused:\n{log}"
    );
    let (_, metrics) = operator.get("/metrics").await.expect("/metrics answers");
    assert_eq!(
        common::metric_sum(&metrics, "berth_watch_errors_total", &[]),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        common::metric_sum(&metrics, "berth_reconcile_errors_total", &[("reason", "kubernetes")]),
        0.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_runs_every_kind_under_exactly_the_charts_rbac() {
    let Some(t) = tools() else { return };
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let region = format!("region={}", t.testbed.region);

    // cluster-wide (the default): objects in another namespace than the release's, the cluster id
    // from kube-system, ScanPolicies managed
    let release_namespace = common::namespace(&client, "chart-rbac").await;
    let apps = common::namespace(&client, "chart-apps").await;
    let release = format!("c{}", common::unique_suffix());
    let values = ["--set", &region, "--set", "iam.createGithubOidcProvider=true"];
    let (operator, _) = start_under_chart(&t, &release, &release_namespace, &values).await;

    let repositories: Api<EcrRepository> = Api::namespaced(client.clone(), &apps);
    let spec = json!({
        "repositoryName": format!("{apps}/app"), "deletionPolicy": "Delete",
        "access": {
            "pull": [{"accountId": "111122223333"}],
            "push": [{"githubActions": {"repository": "acme/app", "refs": ["refs/heads/main"]}}],
        },
    });
    repositories
        .create(&PostParams::default(), &common::object("app", spec))
        .await
        .expect("create EcrRepository");
    let synced = wait_reason(&repositories, "app", "Synced", &operator).await;
    assert!(synced.status.unwrap().push_role_arn.is_some(), "the push role was made");
    // Events are written, under the Pod's name as reporting instance
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &apps);
    let created = events.list(&Default::default()).await.unwrap().items;
    let created = created
        .iter()
        .find(|e| e.reason.as_deref() == Some("Created"))
        .expect("a Created Event");
    assert_eq!(
        created.reporting_instance.as_deref(),
        Some(format!("{release}-pod").as_str())
    );

    let lifecycle_policies: Api<LifecyclePolicy> = Api::namespaced(client.clone(), &apps);
    let lifecycle: LifecyclePolicy = serde_json::from_value(json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "LifecyclePolicy", "metadata": {"name": "keep"},
        "spec": {"repositories": ["app"], "rules": [{"priority": 1,
            "selection": {"tagStatus": "Untagged", "countType": "ImageCountMoreThan", "countNumber": 2},
            "action": {"type": "Expire"}}]},
    }))
    .unwrap();
    lifecycle_policies
        .create(&PostParams::default(), &lifecycle)
        .await
        .expect("create LifecyclePolicy");
    wait_reason(&lifecycle_policies, "keep", "Applied", &operator).await;

    common::remove_scan_policies_in(&client, SCAN_REGION).await;
    let scan_policies: Api<ScanPolicy> = Api::all(client.clone());
    let scan: ScanPolicy = serde_json::from_value(json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "ScanPolicy", "metadata": {"name": release},
        "spec": {"region": SCAN_REGION, "scanType": "Basic",
            "rules": [{"frequency": "ScanOnPush", "repositoryFilters": [format!("{apps}/*")]}]},
    }))
    .unwrap();
    scan_policies
        .create(&PostParams::default(), &scan)
        .await
        .expect("create ScanPolicy");
    wait_reason(&scan_policies, &release, "Applied", &operator).await;

    // deletion: finalizers released, what berth made removed
    lifecycle_policies
        .delete("keep", &DeleteParams::default())
        .await
        .unwrap();
    scan_policies.delete(&release, &DeleteParams::default()).await.unwrap();
    repositories.delete("app", &DeleteParams::default()).await.unwrap();
    for gone in [
        wait_deleted(&lifecycle_policies, "keep").await,
        wait_deleted(&scan_policies, &release).await,
        wait_deleted(&repositories, "app").await,
    ] {
        assert!(gone, "not released:\n{}", operator.log_text());
    }
    assert_nothing_forbidden(&operator).await;
    drop(operator);

    // namespaced: Roles in the watched namespace only, no ScanPolicy rules
    let release_namespace = common::namespace(&client, "chart-ns").await;
    let team_a = common::namespace(&client, "chart-team-a").await;
    let release = format!("n{}", common::unique_suffix());
    let watch = format!("watchNamespaces[0]={team_a}");
    let (operator, documents) =
        start_under_chart(&t, &release, &release_namespace, &["--set", &region, "--set", &watch]).await;
    for (kind, _, rule) in rbac_rules(&documents) {
        let resources = rule["resources"].to_string();
        assert!(
            !resources.contains("scanpolicies"),
            "{kind} grants ScanPolicies: {rule}"
        );
        assert!(
            kind == "Role" || !resources.contains("ecrrepositories"),
            "a ClusterRole grants EcrRepositories in namespaced mode: {rule}"
        );
    }
    let repositories: Api<EcrRepository> = Api::namespaced(client.clone(), &team_a);
    let spec = json!({"repositoryName": format!("{team_a}/app"), "deletionPolicy": "Delete"});
    repositories
        .create(&PostParams::default(), &common::object("app", spec))
        .await
        .expect("create EcrRepository");
    wait_reason(&repositories, "app", "Synced", &operator).await;
    repositories.delete("app", &DeleteParams::default()).await.unwrap();
    assert!(wait_deleted(&repositories, "app").await, "{}", operator.log_text());
    assert_nothing_forbidden(&operator).await;
}

//! Shared harness for tests against the real test bed (`scripts/testbed up`): a kube-apiserver
//! with etcd, and moto. Under CI=true a missing test bed fails the test; elsewhere it skips.
#![allow(dead_code)]

pub mod apiserver;
pub mod counting;
pub mod http;
pub mod proxy;

pub use http::{http_get, http_post_json};
#[allow(unused_imports)] // not every test binary uses it
pub use proxy::is_write;
pub mod relay;

use berth::api::EcrRepository;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

/// The test bed's coordinates, from the env file `scripts/testbed up` writes.
pub struct Testbed {
    pub kubeconfig: String,
    pub aws_endpoint: String,
    pub region: String,
}

/// Returns the test bed, or None (with a one-line reason) when it is not up outside CI.
pub fn testbed() -> Option<Testbed> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match (std::env::var("KUBECONFIG"), std::env::var("AWS_ENDPOINT_URL")) {
        (Ok(kubeconfig), Ok(aws_endpoint)) if std::env::var("BERTH_TESTBED").is_ok() => Some(Testbed {
            kubeconfig,
            aws_endpoint,
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-west-1".into()),
        }),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the test bed is not up (CI=true): run the tests through scripts/test")
        }
        _ => {
            eprintln!("skipped: the test bed is not up (run: scripts/testbed up, then source its env file)");
            None
        }
    }
}

pub async fn kube_client() -> Client {
    Client::try_default().await.expect("a kube client from KUBECONFIG")
}

pub async fn sdk_config(testbed: &Testbed) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(testbed.region.clone()))
        .endpoint_url(&testbed.aws_endpoint)
        .load()
        .await
}

/// Installs berth's CRDs (CEL rules stripped: a 1.20 apiserver answers 500 to them) and checks
/// that each is Established.
pub async fn install_crds(client: &Client) {
    berth::api::install_crds(client, true).await.expect("install CRDs");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in berth::api::crds() {
        let current = crds.get(&crd.name_any()).await.expect("CRD present");
        let established = current.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            established
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "CRD {} not Established",
            crd.name_any()
        );
    }
}

/// A fresh namespace for one test (namespaces are never deleted: the test bed has no
/// controller-manager to finalize them).
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", unique_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    name
}

/// Creates the namespace `name` unless it exists (a fixed name, e.g. the examples' own, that
/// earlier runs on this test bed may have created already).
pub async fn ensure_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("create namespace {name}: {error}"),
    }
}

/// A short suffix that differs between tests and runs.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:x}{}",
        (nanos ^ std::process::id()) & 0xfffff,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Polls `check` every 200 ms until it returns Some, or gives up after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `berth run` process for one test: watches only `namespace`, with its own cluster id and a
/// short resync interval. Killed when dropped; its log is kept under the test bed's directory.
pub struct Operator {
    child: std::process::Child,
    pub cluster_id: String,
    pub log: std::path::PathBuf,
    /// host:port of /metrics, /healthz and /readyz.
    pub http_addr: String,
}

/// A loopback port that is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Operator {
    pub fn start(testbed: &Testbed, namespace: &str, extra_args: &[&str]) -> Operator {
        Self::start_with(testbed, namespace, &testbed.aws_endpoint, "", extra_args)
    }

    /// `aws_endpoint` may be a proxy in front of moto; `instance` tells apart several
    /// operators of one test (its log file name).
    pub fn start_with(
        testbed: &Testbed,
        namespace: &str,
        aws_endpoint: &str,
        instance: &str,
        extra_args: &[&str],
    ) -> Operator {
        Self::spawn(testbed, namespace, aws_endpoint, instance, None, extra_args)
    }

    /// Runs berth with another kubeconfig (e.g. the test bed's unprivileged tenant identity).
    pub fn start_as(testbed: &Testbed, namespace: &str, kubeconfig: &str, extra_args: &[&str]) -> Operator {
        Self::spawn(
            testbed,
            namespace,
            &testbed.aws_endpoint,
            "",
            Some(kubeconfig),
            extra_args,
        )
    }

    /// The most general start: `kubeconfig` None is the test bed's own.
    pub fn spawn(
        testbed: &Testbed,
        namespace: &str,
        aws_endpoint: &str,
        instance: &str,
        kubeconfig: Option<&str>,
        extra_args: &[&str],
    ) -> Operator {
        // operators talking to moto directly go through the recording proxy when one records
        let recording = (aws_endpoint == testbed.aws_endpoint)
            .then(|| proxy::recording_endpoint(aws_endpoint))
            .flatten();
        let aws_endpoint = recording.as_deref().unwrap_or(aws_endpoint);
        let cluster_id = format!("test-{namespace}");
        // a short resync unless the test sets its own
        let resync: &[&str] = if extra_args.contains(&"--resync-interval") {
            &[]
        } else {
            &["--resync-interval", "3s"]
        };
        let http_addr = format!("127.0.0.1:{}", free_port());
        let args: Vec<String> = ["--watch-namespace", namespace, "--cluster-id", &cluster_id]
            .into_iter()
            .chain(["--region", &testbed.region])
            .chain(["--metrics-addr", &http_addr, "--health-addr", &http_addr])
            .chain(resync.iter().copied())
            .chain(extra_args.iter().copied())
            .map(str::to_owned)
            .collect();
        Self::launch(
            &format!("{namespace}{instance}"),
            aws_endpoint,
            kubeconfig,
            &args,
            &[],
            cluster_id,
            http_addr,
        )
    }

    /// Runs `berth run` with exactly `args` (which must bind `http_addr` with --metrics-addr and
    /// --health-addr) and `env` on top of the test bed's; e.g. the arguments a rendered Helm
    /// chart passes. The log is `berth-<log_name>.log` under the test bed's directory.
    pub fn start_exact(
        log_name: &str,
        aws_endpoint: &str,
        kubeconfig: &str,
        args: &[String],
        env: &[(&str, &str)],
        http_addr: String,
    ) -> Operator {
        Self::launch(
            log_name,
            aws_endpoint,
            Some(kubeconfig),
            args,
            env,
            String::new(),
            http_addr,
        )
    }

    fn launch(
        log_name: &str,
        aws_endpoint: &str,
        kubeconfig: Option<&str>,
        args: &[String],
        env: &[(&str, &str)],
        cluster_id: String,
        http_addr: String,
    ) -> Operator {
        let dir = std::path::PathBuf::from(std::env::var("BERTH_TESTBED").unwrap_or_else(|_| "target".into()));
        let log = dir.join(format!("berth-{log_name}.log"));
        let log_file = std::fs::File::create(&log).expect("operator log file");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        let child = command
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info,berth=debug")
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .envs(env.iter().copied())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start berth run");
        Operator {
            child,
            cluster_id,
            log,
            http_addr,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (crashed or returned), None while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("query the operator process")
    }

    /// GET `path` on the operator's HTTP port: (status code, body), or None if it does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.http_addr, path).await
    }

    /// The current value of one series (exact label set as rendered), 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await.unwrap_or_default();
        metric_value(&text, series).unwrap_or(0.0)
    }

    /// Sends a signal (`kill -<signal>`) without waiting: e.g. STOP freezes it, CONT resumes it.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Sends a signal (`kill -<signal>`), then waits up to `timeout` for the exit code.
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal(signal);
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ECR client on the test bed's moto for `region` (which may differ from the test bed's).
pub async fn ecr_client(testbed: &Testbed, region: &str) -> aws_sdk_ecr::Client {
    let config = aws_sdk_ecr::config::Builder::from(&sdk_config(testbed).await)
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

/// A repository's tags as ECR holds them (read directly, not through berth).
pub async fn repository_tags(ecr: &aws_sdk_ecr::Client, arn: &str) -> std::collections::BTreeMap<String, String> {
    let output = ecr
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("ListTagsForResource");
    output
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

/// The IAM role `name`, or None when IAM has no such role.
pub async fn iam_role(iam: &aws_sdk_iam::Client, name: &str) -> Option<aws_sdk_iam::types::Role> {
    match iam.get_role().role_name(name).send().await {
        Ok(output) => output.role,
        Err(e) if format!("{e:?}").contains("NoSuchEntity") => None,
        Err(e) => panic!("GetRole: {e:?}"),
    }
}

/// Puts one image (a hand-made manifest, unique per `seed`) and returns its digest.
pub async fn put_image(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str, seed: &str) -> String {
    let output = ecr
        .put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(image_manifest(seed))
        .send()
        .await
        .expect("PutImage");
    output
        .image()
        .and_then(|image| image.image_id())
        .and_then(|id| id.image_digest())
        .expect("PutImage returns the digest")
        .to_owned()
}

/// Hands moto one DescribeImageScanFindings answer to give (see `seed_scan_findings` for how
/// moto 5.2.5 matches it). `result` is the exact response JSON, e.g. `{"repositoryName": ..,
/// "imageId": {"imageDigest": ..}, "imageScanStatus": {..}, "imageScanFindings": {..}}`;
/// `repositoryName` and `imageId` are required (moto matches on them).
pub async fn seed_scan_result(testbed: &Testbed, region: &str, result: serde_json::Value) {
    let addr = testbed.aws_endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = serde_json::json!({"results": [result], "region": region});
    let answer = http_post_json(addr, "/moto-api/static/ecr/scan-finding-results", &body).await;
    assert!(
        matches!(answer, Some((201, _))),
        "moto refused the seeded scan findings: {answer:?}"
    );
}

/// Makes moto report a finished scan of the image `digest` in `repository` with these finding
/// counts (severity names as ECR spells them, e.g. `[("CRITICAL", 1), ("HIGH", 3)]`), and
/// returns the completion time it reports (Unix seconds, now).
///
/// What works with moto 5.2.5:
/// - `POST {AWS_ENDPOINT_URL}/moto-api/static/ecr/scan-finding-results` with the JSON body
///   `{"results": [<response>], "region": "<region>"}` answers 201. An optional
///   `"account_id"` (default `123456789012`, the account of requests without
///   `x-moto-account-id`) selects another account.
/// - `<response>` is the exact DescribeImageScanFindings response, returned verbatim:
///   `{"repositoryName": "<repository>", "imageId": {"imageDigest": "<digest>"},
///   "imageScanStatus": {"status": "COMPLETE", "description": "..."},
///   "imageScanFindings": {"imageScanCompletedAt": <epoch seconds>,
///   "findingSeverityCounts": {"CRITICAL": 1, "HIGH": 3, ...}, "findings": []}}`.
///   (moto also turns an ISO-8601 string timestamp into epoch seconds.)
/// - Until `StartImageScan` ran for the image, DescribeImageScanFindings answers
///   `ScanNotFoundException` whatever was seeded; so this seeds first, then starts the scan
///   (moto allows one scan per image and day: `LimitExceededException` means it already ran).
/// - A seeded result waits until the first DescribeImageScanFindings for its repository and
///   image (matched by `imageTag` or `imageDigest` against the image); moto then binds it to
///   that request's `imageId` exactly as sent (`{"imageDigest": ...}` is what berth sends) and
///   answers every later request with that `imageId` the same. A request with another `imageId`
///   shape (say by tag) consumes the next seeded result, or else gets moto's fixed fake (one
///   HIGH finding). `maxResults` and `nextToken` play no part: there is one page.
/// - Once bound, the answer never changes: seeding the same image again has no effect on
///   requests with the bound `imageId`. To change an image's findings, push another image.
pub async fn seed_scan_findings(
    testbed: &Testbed,
    region: &str,
    repository: &str,
    digest: &str,
    counts: &[(&str, i64)],
) -> i64 {
    let completed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let by_severity: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(severity, count)| (severity.to_string(), (*count).into()))
        .collect();
    let result = serde_json::json!({
        "repositoryName": repository,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
        "imageScanFindings": {
            "imageScanCompletedAt": completed_at,
            "vulnerabilitySourceUpdatedAt": completed_at,
            "findingSeverityCounts": by_severity,
            "findings": [],
        },
    });
    seed_scan_result(testbed, region, result).await;
    let started = ecr_client(testbed, region)
        .await
        .start_image_scan()
        .repository_name(repository)
        .image_id(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(digest)
                .build(),
        )
        .send()
        .await;
    if let Err(error) = started {
        use aws_sdk_ecr::error::ProvideErrorMetadata;
        assert_eq!(
            error.code(),
            Some("LimitExceededException"),
            "StartImageScan: {}",
            aws_sdk_ecr::error::DisplayErrorContext(&error)
        );
    }
    completed_at
}

/// The sum of every series of `name` whose labels include all of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let matches = labels
                .iter()
                .all(|(key, wanted)| label_text.split(',').any(|pair| pair == format!("{key}=\"{wanted}\"")));
            matches.then(|| value.trim().parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The value of `series` (name with its labels exactly as rendered) in a Prometheus text page.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A minimal image manifest that moto's PutImage accepts; `seed` makes the digest unique.
pub fn image_manifest(seed: &str) -> String {
    let hex = |s: &str| {
        format!(
            "{:0>64}",
            s.bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .chars()
                .take(64)
                .collect::<String>()
        )
    };
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": format!("sha256:{}", hex(&format!("c{seed}")))},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1000, "digest": format!("sha256:{}", hex(&format!("l{seed}")))}],
    })
    .to_string()
}

pub const TIMEOUT: Duration = Duration::from_secs(40);

/// One test's view of the test bed: clients and its own namespace.
pub struct Setup {
    pub testbed: Testbed,
    pub client: Client,
    pub namespace: String,
    pub repositories: Api<EcrRepository>,
    pub ecr: aws_sdk_ecr::Client,
}

pub async fn setup(prefix: &str) -> Option<Setup> {
    let testbed = testbed()?;
    let client = kube_client().await;
    install_crds(&client).await;
    let namespace = namespace(&client, prefix).await;
    let repositories = Api::namespaced(client.clone(), &namespace);
    let ecr = aws_sdk_ecr::Client::new(&sdk_config(&testbed).await);
    Some(Setup {
        testbed,
        client,
        namespace,
        repositories,
        ecr,
    })
}

pub fn object(name: &str, spec: serde_json::Value) -> EcrRepository {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Waits until the object `name` is gone (its finalizers, if any, released).
pub async fn wait_deleted<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(TIMEOUT, || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await
    .is_some()
}

/// A kind whose status has a Ready condition and an observedGeneration.
pub trait ReadyStatus: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug {
    /// (the Ready condition's reason, the status's observedGeneration)
    fn ready(&self) -> Option<(String, Option<i64>)>;
}

fn ready_of(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    generation: Option<i64>,
) -> Option<(String, Option<i64>)> {
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((ready.reason.clone(), generation))
}

impl ReadyStatus for EcrRepository {
    fn ready(&self) -> Option<(String, Option<i64>)> {
        let status = self.status.as_ref()?;
        ready_of(&status.conditions, status.observed_generation)
    }
}

impl ReadyStatus for berth::api::LifecyclePolicy {
    fn ready(&self) -> Option<(String, Option<i64>)> {
        let status = self.status.as_ref()?;
        ready_of(&status.conditions, status.observed_generation)
    }
}

impl ReadyStatus for berth::api::ScanPolicy {
    fn ready(&self) -> Option<(String, Option<i64>)> {
        let status = self.status.as_ref()?;
        ready_of(&status.conditions, status.observed_generation)
    }
}

/// Any kind read as JSON (e.g. objects applied from manifests whose kind is known at run time).
impl ReadyStatus for kube::api::DynamicObject {
    fn ready(&self) -> Option<(String, Option<i64>)> {
        let ready = dynamic_condition(self, "Ready")?;
        let observed = self.data["status"]["observedGeneration"].as_i64();
        Some((ready["reason"].as_str()?.to_owned(), observed))
    }
}

/// The status condition `type_` of an object read as JSON.
pub fn dynamic_condition<'a>(object: &'a kube::api::DynamicObject, type_: &str) -> Option<&'a serde_json::Value> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Waits until the object's Ready condition has `reason` for its current generation, and
/// returns the object; panics with its status and the operator's log otherwise.
pub async fn wait_reason<K: ReadyStatus>(api: &Api<K>, name: &str, reason: &str, operator: &Operator) -> K {
    let found = wait_for(TIMEOUT, || async {
        let object = api.get(name).await.ok()?;
        let (ready, observed) = object.ready()?;
        (ready == reason && observed == object.meta().generation).then_some(object)
    })
    .await;
    if let Some(object) = found {
        return object;
    }
    let current = api.get(name).await.map(|o| format!("{o:?}")).unwrap_or_default();
    panic!(
        "{name} never reached reason {reason}: {current}\n--- operator log ---\n{}",
        operator.log_text()
    )
}

impl Setup {
    /// The Events with `reason` about the object `name` in this test's namespace.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), &self.namespace);
        events
            .list(&kube::api::ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
            .collect()
    }

    /// Creates the EcrRepository `name` with `spec` in this test's namespace.
    pub async fn create(&self, name: &str, spec: serde_json::Value) {
        self.repositories
            .create(&PostParams::default(), &object(name, spec))
            .await
            .expect("create EcrRepository");
    }

    /// Waits until the EcrRepository `name` is gone (its finalizer, if any, released).
    pub async fn wait_gone(&self, name: &str) -> bool {
        wait_deleted(&self.repositories, name).await
    }

    /// Whether a DriftCorrected Event about `name` names `field`.
    /// Waits (up to `TIMEOUT`) for it: AWS holds the correction before berth has the answer and
    /// publishes the Event.
    pub async fn drift_reported(&self, name: &str, field: &str) -> bool {
        wait_for(TIMEOUT, || async {
            self.events(name, "DriftCorrected")
                .await
                .iter()
                .any(|e| e.note.as_deref().unwrap_or_default().starts_with(field))
                .then_some(())
        })
        .await
        .is_some()
    }

    /// A JSON merge patch of the EcrRepository `name`.
    pub async fn merge(&self, name: &str, patch: serde_json::Value) {
        self.repositories
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .expect("patch EcrRepository");
    }

    /// A recording proxy in front of moto and a `berth run` that talks to AWS through it.
    pub async fn operator_behind_proxy(&self, extra_args: &[&str]) -> (proxy::AwsProxy, Operator) {
        self.replica_behind_proxy("", extra_args).await
    }

    /// As `operator_behind_proxy`, one of several (`instance` names its log): each replica's
    /// AWS calls are counted by its own proxy.
    pub async fn replica_behind_proxy(&self, instance: &str, extra_args: &[&str]) -> (proxy::AwsProxy, Operator) {
        let proxy = proxy::AwsProxy::start(&self.testbed.aws_endpoint).await;
        let operator = Operator::start_with(&self.testbed, &self.namespace, &proxy.endpoint, instance, extra_args);
        (proxy, operator)
    }

    /// As `replica_behind_proxy`, and reaching the apiserver through a relay that can cut it off.
    pub async fn replica_behind_relays(
        &self,
        instance: &str,
        extra_args: &[&str],
    ) -> (proxy::AwsProxy, relay::ApiRelay, Operator) {
        let proxy = proxy::AwsProxy::start(&self.testbed.aws_endpoint).await;
        let relay = relay::ApiRelay::start(&self.testbed.kubeconfig, &format!("{}{instance}", self.namespace)).await;
        let operator = Operator::spawn(
            &self.testbed,
            &self.namespace,
            &proxy.endpoint,
            instance,
            Some(&relay.kubeconfig),
            extra_args,
        );
        (proxy, relay, operator)
    }
}

/// Leader election on a Lease of the test's own (in its namespace), with a short duration.
pub fn leader_args(lease_name: &str, namespace: &str, lease_duration: &str) -> Vec<String> {
    [
        "--leader-election",
        "--lease-name",
        lease_name,
        "--lease-namespace",
        namespace,
        "--lease-duration",
        lease_duration,
        "--stats-interval",
        "1h",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The identity holding the Lease `name`, if any.
pub async fn lease_holder(leases: &Api<k8s_openapi::api::coordination::v1::Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Deletes the ScanPolicies of `region` that an earlier, interrupted run left (their finalizers
/// released first): ScanPolicy is cluster-scoped and the oldest policy of a region wins, so a
/// test that owns a region starts from none.
/// (scan type, [(frequency, sorted filters)], sorted) of the region's registry scanning
/// configuration: sets, as ECR treats them. No configuration reads as ("", []).
pub async fn registry_scanning(ecr: &aws_sdk_ecr::Client) -> (String, Vec<(String, Vec<String>)>) {
    let output = ecr
        .get_registry_scanning_configuration()
        .send()
        .await
        .expect("GetRegistryScanningConfiguration");
    let configuration = output.scanning_configuration();
    let mut rules: Vec<(String, Vec<String>)> = configuration
        .map(|c| c.rules())
        .unwrap_or_default()
        .iter()
        .map(|rule| {
            let mut filters: Vec<String> = rule
                .repository_filters()
                .iter()
                .map(|f| f.filter().to_owned())
                .collect();
            filters.sort();
            (rule.scan_frequency().as_str().to_owned(), filters)
        })
        .collect();
    rules.sort();
    let scan_type = configuration
        .and_then(|c| c.scan_type())
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    (scan_type, rules)
}

pub async fn remove_scan_policies_in(client: &Client, region: &str) {
    use kube::api::{DeleteParams, Patch, PatchParams};
    let policies: Api<berth::api::ScanPolicy> = Api::all(client.clone());
    for left in policies.list(&Default::default()).await.expect("list ScanPolicies") {
        if left.spec.region.as_deref() == Some(region) {
            let release = serde_json::json!({"metadata": {"finalizers": null}});
            let name = left.name_any();
            let _ = policies
                .patch(&name, &PatchParams::default(), &Patch::Merge(&release))
                .await;
            let _ = policies.delete(&name, &DeleteParams::default()).await;
        }
    }
}

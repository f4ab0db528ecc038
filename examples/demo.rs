//! The demo's helper: `scripts/demo` applies `examples/manifests/` with kubectl while `berth run`
//! is running, and calls this program, one step at a time, for what kubectl cannot show:
//! waiting for berth, playing CI and the scanner (images and findings put into the emulator),
//! and what berth made in the emulated ECR and IAM.
//!
//! Steps: `crds`, `repositories`, `lifecycle`, `findings`, `scan`, `aws`, `audit`.

use std::time::Duration;

use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability};
use berth::api::{EcrRepository, LifecyclePolicy, ScanPolicy};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

/// The namespace of the examples' team (examples/manifests/01-repositories.yaml).
const NAMESPACE: &str = "team-payments";

struct Demo {
    client: Client,
    ecr: aws_sdk_ecr::Client,
    iam: aws_sdk_iam::Client,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let demo = Demo {
        client: Client::try_default().await?,
        ecr: aws_sdk_ecr::Client::new(&sdk),
        iam: aws_sdk_iam::Client::new(&sdk),
    };
    match std::env::args().nth(1).as_deref() {
        Some("crds") => berth::api::install_crds(&demo.client, true).await?,
        Some("repositories") => demo.repositories().await?,
        Some("lifecycle") => demo.lifecycle().await?,
        Some("findings") => demo.findings().await?,
        Some("scan") => demo.scan().await?,
        Some("aws") => demo.aws().await?,
        Some("audit") => demo.audit().await?,
        other => anyhow::bail!("unknown step {other:?}"),
    }
    Ok(())
}

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Polls every half second, up to a minute, until `check` gives a value.
async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    for _ in 0..120 {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

/// Every object of `api`, once there is one and `done` holds for all of them.
async fn wait_all<K>(api: &Api<K>, what: &str, done: impl Fn(&K) -> bool) -> anyhow::Result<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_until(what, || async {
        let list = api.list(&ListParams::default()).await?.items;
        Ok((!list.is_empty() && list.iter().all(&done)).then_some(list))
    })
    .await
}

/// Ready=True for the current generation, as `kubectl wait --for=condition=Ready` would see it.
fn ready(conditions: &[Condition], observed: Option<i64>, generation: Option<i64>) -> bool {
    observed == generation && conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn ready_reason(conditions: &[Condition]) -> String {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_default()
}

impl Demo {
    fn repositories_api(&self) -> Api<EcrRepository> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Waits for the repositories, shows what berth reports, plays CI (pushes images) and
    /// someone who changes a repository in the console.
    async fn repositories(&self) -> anyhow::Result<()> {
        step("berth creates the repositories (kubectl wait --for=condition=Ready ecrrepo --all)");
        let repositories = wait_all(&self.repositories_api(), "the EcrRepositories to be Ready", |r| {
            let status = r.status.clone().unwrap_or_default();
            ready(&status.conditions, status.observed_generation, r.metadata.generation)
        })
        .await?;
        for repository in repositories {
            let status = repository.status.clone().unwrap_or_default();
            println!("  {}", repository.name_any());
            println!("    Ready         {}", ready_reason(&status.conditions));
            println!("    repositoryUri {}", status.repository_uri.unwrap_or_default());
            if let Some(role) = status.push_role_arn {
                println!("    pushRoleArn   {role}   <- the GitHub workflow's role-to-assume");
            }
        }

        step("CI pushes images: payments-api pr-101, pr-102, v1.0 .. v1.34; payments-worker v1.0 .. v1.2");
        let api_repository = "team-payments/payments-api";
        for tag in ["pr-101", "pr-102"] {
            self.push(api_repository, tag, tag).await?;
        }
        for i in 0..35 {
            self.push(api_repository, &format!("v1.{i}"), &format!("api-{i}"))
                .await?;
        }
        for i in 0..3 {
            self.push(
                "team-payments/payments-worker",
                &format!("v1.{i}"),
                &format!("worker-{i}"),
            )
            .await?;
        }

        step("someone makes payments-api's tags mutable in the console; berth puts it back within a resync");
        self.ecr
            .put_image_tag_mutability()
            .repository_name(api_repository)
            .image_tag_mutability(ImageTagMutability::Mutable)
            .send()
            .await?;
        println!("  ECR now: MUTABLE");
        let restored = wait_until("berth to correct the drift", || async {
            let now = self
                .ecr
                .describe_repositories()
                .repository_names(api_repository)
                .send()
                .await?;
            let mutability = now.repositories()[0].image_tag_mutability().cloned();
            Ok(mutability.filter(|m| *m != ImageTagMutability::Mutable))
        })
        .await?;
        println!("  ECR now: {} (Immutable, 'latest' excluded)", restored.as_str());
        Ok(())
    }

    /// Puts one tagged image (a hand-made manifest: the emulator needs no layers).
    async fn push(&self, repository: &str, tag: &str, seed: &str) -> anyhow::Result<()> {
        let digest = |kind: &str| {
            let hash = seed.bytes().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
            format!("sha256:{kind}{hash:063x}")
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": digest("c")},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1000, "digest": digest("d")}],
        });
        self.ecr
            .put_image()
            .repository_name(repository)
            .image_manifest(manifest.to_string())
            .image_tag(tag)
            .send()
            .await?;
        Ok(())
    }

    /// The LifecyclePolicies: what their rules would expire now (status.preview, in both
    /// modes), and what ECR holds (nothing in Preview).
    async fn lifecycle(&self) -> anyhow::Result<()> {
        step("berth evaluates the LifecyclePolicy's rules against the images (status.preview)");
        let api: Api<LifecyclePolicy> = Api::namespaced(self.client.clone(), NAMESPACE);
        let policies = wait_all(&api, "the LifecyclePolicies to be Ready with a preview", |p| {
            let status = p.status.clone().unwrap_or_default();
            ready(&status.conditions, status.observed_generation, p.metadata.generation) && !status.preview.is_empty()
        })
        .await?;
        for policy in policies {
            let status = policy.status.unwrap_or_default();
            println!(
                "  {} (mode {:?}): {}",
                policy.metadata.name.unwrap_or_default(),
                policy.spec.mode,
                ready_reason(&status.conditions)
            );
            for preview in status.preview {
                let examples = if preview.examples.is_empty() {
                    String::new()
                } else {
                    format!("   e.g. {}", preview.examples.join(", "))
                };
                println!(
                    "    {:<16} would expire {:>2}, keep {:>2}{examples}",
                    preview.repository, preview.expire, preview.keep
                );
                let repository = format!("{NAMESPACE}/{}", preview.repository);
                println!(
                    "    {:<16} lifecycle policy in ECR: {}",
                    "",
                    self.lifecycle_rules(&repository).await
                );
            }
        }
        Ok(())
    }

    /// What ECR holds as the repository's lifecycle policy, in a few words.
    async fn lifecycle_rules(&self, repository: &str) -> String {
        let held = self.ecr.get_lifecycle_policy().repository_name(repository).send().await;
        let Some(text) = held.ok().and_then(|h| h.lifecycle_policy_text) else {
            return "none".to_owned();
        };
        let rules: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let descriptions: Vec<&str> = rules["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|rule| rule["description"].as_str())
            .collect();
        format!("{} rules ({})", descriptions.len(), descriptions.join("; "))
    }

    /// Plays the scanner: the emulator will report these findings for each repository's newest
    /// image (its `/moto-api` seeding endpoint, then StartImageScan).
    async fn findings(&self) -> anyhow::Result<()> {
        step("the scanner finds vulnerabilities in the newest images (seeded into the emulator)");
        let seeded: [(&str, &[(&str, i64)]); 2] = [
            (
                "team-payments/payments-api",
                &[("CRITICAL", 1), ("HIGH", 3), ("MEDIUM", 7)],
            ),
            ("team-payments/payments-worker", &[("MEDIUM", 2), ("LOW", 4)]),
        ];
        for (repository, counts) in seeded {
            let (digest, tags) = self.newest_image(repository).await?;
            self.seed_findings(repository, &digest, counts).await?;
            let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            println!("  {repository}:{} -> {}", tags.join(","), counts.join(", "));
        }
        Ok(())
    }

    /// The newest image as berth chooses it: latest push, then the greatest digest.
    async fn newest_image(&self, repository: &str) -> anyhow::Result<(String, Vec<String>)> {
        let images = self.ecr.describe_images().repository_name(repository).send().await?;
        let newest = images
            .image_details()
            .iter()
            .max_by_key(|image| (image.image_pushed_at().map(|t| t.secs()), image.image_digest()))
            .ok_or_else(|| anyhow::anyhow!("no image in {repository}"))?;
        Ok((
            newest.image_digest().unwrap_or_default().to_owned(),
            newest.image_tags().to_vec(),
        ))
    }

    async fn seed_findings(&self, repository: &str, digest: &str, counts: &[(&str, i64)]) -> anyhow::Result<()> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")?;
        let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let region = std::env::var("AWS_REGION")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let by_severity: serde_json::Map<String, serde_json::Value> =
            counts.iter().map(|(s, n)| (s.to_string(), (*n).into())).collect();
        let body = serde_json::json!({"region": region, "results": [{
            "repositoryName": repository, "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
            "imageScanFindings": {"imageScanCompletedAt": now, "findingSeverityCounts": by_severity, "findings": []},
        }]})
        .to_string();
        let request = format!(
            "POST /moto-api/static/ecr/scan-finding-results HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let response = http(address, &request).await?;
        anyhow::ensure!(
            response.contains(" 201 "),
            "the emulator refused the findings: {response}"
        );
        self.ecr
            .start_image_scan()
            .repository_name(repository)
            .image_id(ImageIdentifier::builder().image_digest(digest).build())
            .send()
            .await?;
        Ok(())
    }

    /// The ScanPolicy applied; each scanned repository judged against its thresholds.
    async fn scan(&self) -> anyhow::Result<()> {
        step("berth applies the ScanPolicy and judges the findings of each repository's newest image");
        let policies: Api<ScanPolicy> = Api::all(self.client.clone());
        let summary = wait_until("the ScanPolicy's summary", || async {
            let list = policies.list(&ListParams::default()).await?.items;
            let done = list.iter().find_map(|p| {
                let status = p.status.clone()?;
                let summary = status.summary.filter(|s| s.scanned >= 2)?;
                ready(&status.conditions, status.observed_generation, p.metadata.generation)
                    .then(|| (p.name_any(), ready_reason(&status.conditions), summary))
            });
            Ok(done)
        })
        .await?;
        let (name, reason, summary) = summary;
        println!("  {name}: {reason}");
        println!(
            "  summary: {} repositories, {} scanned, {} non-compliant; {} critical, {} high",
            summary.repositories, summary.scanned, summary.non_compliant, summary.critical, summary.high
        );
        for repository in self.repositories_api().list(&ListParams::default()).await?.items {
            let status = repository.status.unwrap_or_default();
            let compliant = status.condition("ScanCompliant").cloned();
            let Some(compliant) = compliant else { continue };
            println!(
                "  {:<16} ScanCompliant={:<7} {}: {}",
                repository.metadata.name.unwrap_or_default(),
                compliant.status,
                compliant.reason,
                compliant.message
            );
            if let Some(f) = status.findings.filter(|f| f.image_digest.is_some()) {
                println!(
                    "  {:<16} status.findings: critical {}, high {}, medium {}, low {} on {}",
                    "",
                    f.critical,
                    f.high,
                    f.medium,
                    f.low,
                    f.image_tags.join(",")
                );
            }
        }
        Ok(())
    }

    /// What exists in the emulated ECR and IAM now: the result of the manifests.
    async fn aws(&self) -> anyhow::Result<()> {
        step("what exists in (emulated) AWS: ECR");
        let repositories = self.ecr.describe_repositories().send().await?;
        if repositories.repositories().is_empty() {
            println!("  no repositories");
        }
        for repository in repositories.repositories() {
            let name = repository.repository_name().unwrap_or_default();
            let tags = self
                .ecr
                .list_tags_for_resource()
                .resource_arn(repository.repository_arn().unwrap_or_default())
                .send()
                .await?;
            let tags: Vec<String> = tags
                .tags()
                .iter()
                .map(|t| format!("{}={}", t.key(), t.value()))
                .collect();
            println!(
                "  repository {name}  ({})",
                repository
                    .image_tag_mutability()
                    .map(|m| m.as_str())
                    .unwrap_or_default()
            );
            println!("    tags: {}", tags.join(" "));
            println!("    lifecycle policy: {}", self.lifecycle_rules(name).await);
            if let Ok(policy) = self.ecr.get_repository_policy().repository_name(name).send().await {
                let policy: serde_json::Value = serde_json::from_str(policy.policy_text().unwrap_or("{}"))?;
                for statement in policy["Statement"].as_array().into_iter().flatten() {
                    let condition = match &statement["Condition"] {
                        serde_json::Value::Null => String::new(),
                        condition => format!(" if {condition}"),
                    };
                    println!(
                        "    policy {:<22} {}{condition}",
                        statement["Sid"].as_str().unwrap_or_default(),
                        statement["Principal"]
                    );
                }
            }
        }
        let scanning = self.ecr.get_registry_scanning_configuration().send().await?;
        if let Some(configuration) = scanning.scanning_configuration() {
            let rules: Vec<String> = configuration
                .rules()
                .iter()
                .map(|rule| {
                    let filters: Vec<&str> = rule.repository_filters().iter().map(|f| f.filter()).collect();
                    format!("{} {:?}", rule.scan_frequency().as_str(), filters)
                })
                .collect();
            let rules = if rules.is_empty() {
                vec!["(no rules)".to_owned()]
            } else {
                rules
            };
            println!(
                "  registry scanning: {} {}",
                configuration.scan_type().map(|t| t.as_str()).unwrap_or_default(),
                rules.join("; ")
            );
        }

        step("what exists in (emulated) AWS: IAM");
        let providers = self.iam.list_open_id_connect_providers().send().await?;
        for provider in providers.open_id_connect_provider_list() {
            println!("  OIDC provider {}", provider.arn().unwrap_or_default());
        }
        let roles = self.iam.list_roles().path_prefix("/berth/").send().await?;
        if roles.roles().is_empty() {
            println!("  no roles under /berth/");
        }
        for role in roles.roles() {
            println!("  role {}", role.arn());
            // IAM returns policy documents URL-encoded
            let trust = percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap_or("{}"))
                .decode_utf8()?;
            let trust: serde_json::Value = serde_json::from_str(&trust)?;
            for statement in trust["Statement"].as_array().into_iter().flatten() {
                for (_, conditions) in statement["Condition"].as_object().into_iter().flatten() {
                    let subject = &conditions["token.actions.githubusercontent.com:sub"];
                    if !subject.is_null() {
                        println!("    may be assumed by GitHub Actions runs of {subject}");
                    }
                }
            }
            let inline = self.iam.list_role_policies().role_name(role.role_name()).send().await?;
            println!("    inline policies: {}", inline.policy_names().join(", "));
        }
        Ok(())
    }

    /// The audit trail: the Events about the team's objects and berth's AWS calls by operation.
    async fn audit(&self) -> anyhow::Result<()> {
        step("kubectl get events -n team-payments (the audit trail)");
        let events: Api<Event> = Api::namespaced(self.client.clone(), NAMESPACE);
        for event in events.list(&ListParams::default()).await? {
            let regarding = event.regarding.and_then(|r| r.name).unwrap_or_default();
            println!(
                "  {:<8} {:<24} {:<16} {}",
                event.type_.unwrap_or_default(),
                event.reason.unwrap_or_default(),
                regarding,
                event.note.unwrap_or_default()
            );
        }
        if let Ok(address) = std::env::var("BERTH_DEMO_METRICS_ADDR") {
            step("curl /metrics: every AWS call berth made, by operation (one SDK interceptor counts them)");
            let request = format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n");
            let text = http(&address, &request).await?;
            let mut calls = std::collections::BTreeMap::<String, f64>::new();
            for line in text.lines().filter(|l| l.starts_with("berth_aws_requests_total{")) {
                let operation = line
                    .split("operation=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or("?");
                let count: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
                *calls.entry(operation.to_owned()).or_default() += count;
            }
            let line: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
            for chunk in line.chunks(4) {
                println!("  {}", chunk.join(", "));
            }
        }
        Ok(())
    }
}

/// Sends a bare HTTP/1.0 request and reads the whole answer (the demo has no HTTP client).
async fn http(address: &str, request: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

//! The demo that `scripts/demo` runs against the test bed while `berth run` is running:
//! declare a repository, watch berth create it, break it out of band, watch berth put it back,
//! preview and enforce a LifecyclePolicy over it, scan it under a ScanPolicy with thresholds,
//! then delete it.

use std::time::Duration;

use aws_sdk_ecr::types::ImageTagMutability;
use berth::api::{EcrRepository, LifecyclePolicy, ScanPolicy};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

const NAMESPACE: &str = "payments";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::try_default().await?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-west-1".into());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .load()
        .await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);

    step("installing the CRDs");
    berth::api::install_crds(&client, true).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(NAMESPACE).await?.is_none() {
        let namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))?;
        namespaces.create(&PostParams::default(), &namespace).await?;
    }
    let repositories: Api<EcrRepository> = Api::namespaced(client.clone(), NAMESPACE);

    step(
        "kubectl apply: EcrRepository payments/payments-api (Immutable, 'latest' stays mutable, org may pull, GitHub Actions may push from main, deletionPolicy Delete with forceDelete)",
    );
    let manifest = serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
        "metadata": {"name": "payments-api", "labels": {"tier": "prod"}},
        "spec": {
            "repositoryName": "payments/payments-api", "imageTagMutability": "Immutable",
            "mutabilityExclusions": ["latest"], "tags": {"team": "payments"}, "deletionPolicy": "Delete",
            "forceDelete": true,
            "access": {
                "pull": [{"organizationId": "o-a1b2c3d4e5"}],
                "push": [{"githubActions": {"repository": "acme/payments-api", "refs": ["refs/heads/main"]}}],
            },
        },
    });
    repositories
        .patch(
            "payments-api",
            &PatchParams::apply("demo").force(),
            &Patch::Apply(&manifest),
        )
        .await?;
    let ready = wait_ready(&repositories).await?;
    let status = ready.status.unwrap_or_default();
    println!(
        "  Ready: {}",
        status.condition("Ready").map(|c| c.message.as_str()).unwrap_or("?")
    );
    println!("  repositoryUri: {}", status.repository_uri.unwrap_or_default());
    println!(
        "  pushRoleArn:   {} (for the GitHub workflow)",
        status.push_role_arn.unwrap_or_default()
    );
    let policy = ecr
        .get_repository_policy()
        .repository_name("payments/payments-api")
        .send()
        .await?;
    let policy: serde_json::Value = serde_json::from_str(policy.policy_text().unwrap_or("{}"))?;
    for statement in policy["Statement"].as_array().into_iter().flatten() {
        println!(
            "  repository policy: {} -> {}",
            statement["Sid"].as_str().unwrap_or_default(),
            statement["Principal"]
        );
    }

    let described = ecr
        .describe_repositories()
        .repository_names("payments/payments-api")
        .send()
        .await?;
    let repository = &described.repositories()[0];
    println!("  in ECR: tag mutability {:?}", repository.image_tag_mutability());

    step("someone changes the repository in the console: tags become mutable");
    ecr.put_image_tag_mutability()
        .repository_name("payments/payments-api")
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await?;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = ecr
            .describe_repositories()
            .repository_names("payments/payments-api")
            .send()
            .await?;
        if now.repositories()[0].image_tag_mutability() == Some(&ImageTagMutability::ImmutableWithExclusion) {
            println!(
                "  berth set it back: {:?}",
                now.repositories()[0].image_tag_mutability()
            );
            break;
        }
    }

    lifecycle_story(&client, &ecr).await?;
    scan_story(&client, &ecr).await?;

    step("kubectl get events (the audit trail)");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    for event in events.list(&Default::default()).await? {
        println!(
            "  {:<8} {:<15} {}",
            event.type_.unwrap_or_default(),
            event.reason.unwrap_or_default(),
            event.note.unwrap_or_default()
        );
    }

    if let Ok(address) = std::env::var("BERTH_DEMO_METRICS_ADDR") {
        step("curl /metrics: every AWS call berth made, counted by one SDK interceptor");
        let text = http_get(&address, "/metrics").await.unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("berth_aws_requests_total{")) {
            println!("  {line}");
        }
    }

    step(
        "kubectl delete: deletionPolicy Delete removes the repository (forceDelete: with its images) and its push role",
    );
    repositories.delete("payments-api", &DeleteParams::default()).await?;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if repositories.get_opt("payments-api").await?.is_none() {
            break;
        }
    }
    let gone = ecr
        .describe_repositories()
        .repository_names("payments/payments-api")
        .send()
        .await
        .is_err();
    println!("  repository deleted from ECR: {gone}");
    Ok(())
}

/// 35 release images, a LifecyclePolicy that keeps 30: preview what it would do, then enforce.
async fn lifecycle_story(client: &Client, ecr: &aws_sdk_ecr::Client) -> anyhow::Result<()> {
    step("35 images pushed as v1.0 .. v1.34; LifecyclePolicy keep-releases (keep 30 'v*') in mode Preview");
    for i in 0..35 {
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100,
                       "digest": format!("sha256:{:064x}", 1000 + i)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1000,
                        "digest": format!("sha256:{:064x}", 2000 + i)}],
        });
        ecr.put_image()
            .repository_name("payments/payments-api")
            .image_manifest(manifest.to_string())
            .image_tag(format!("v1.{i}"))
            .send()
            .await?;
    }
    let policies: Api<LifecyclePolicy> = Api::namespaced(client.clone(), NAMESPACE);
    let manifest = |mode: &str| {
        serde_json::json!({
            "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "LifecyclePolicy",
            "metadata": {"name": "keep-releases"},
            "spec": {
                "repositorySelector": {"matchLabels": {"tier": "prod"}}, "mode": mode,
                "rules": [{"priority": 1, "description": "keep the last 30 release images",
                           "selection": {"tagStatus": "Tagged", "tagPatterns": ["v*"],
                                         "countType": "ImageCountMoreThan", "countNumber": 30},
                           "action": {"type": "Expire"}}],
            },
        })
    };
    let apply = PatchParams::apply("demo").force();
    policies
        .patch("keep-releases", &apply, &Patch::Apply(&manifest("Preview")))
        .await?;
    let previewed = wait_policy(&policies, "Previewed").await?;
    for preview in previewed.status.unwrap_or_default().preview {
        println!(
            "  preview {}: expire {}, keep {}, e.g. {:?}",
            preview.repository, preview.expire, preview.keep, preview.examples
        );
    }
    let in_ecr = ecr
        .get_lifecycle_policy()
        .repository_name("payments/payments-api")
        .send()
        .await
        .is_ok();
    println!("  lifecycle policy in ECR: {in_ecr} (Preview never writes it)");

    step("mode: Enforce");
    policies
        .patch("keep-releases", &apply, &Patch::Apply(&manifest("Enforce")))
        .await?;
    let enforced = wait_policy(&policies, "Applied").await?;
    let ready = enforced
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| format!("{} {} {}", c.status, c.reason, c.message))
        .unwrap_or_default();
    println!("  kubectl get ecrlp: keep-releases  Enforce  {ready}");
    let text = ecr
        .get_lifecycle_policy()
        .repository_name("payments/payments-api")
        .send()
        .await?;
    println!("  in ECR: {}", text.lifecycle_policy_text().unwrap_or_default());
    Ok(())
}

/// The emulator reports findings for the newest image; a ScanPolicy with thresholds judges them.
async fn scan_story(client: &Client, ecr: &aws_sdk_ecr::Client) -> anyhow::Result<()> {
    // the newest image, as berth chooses it: latest push, then the greatest digest
    let images = ecr
        .describe_images()
        .repository_name("payments/payments-api")
        .send()
        .await?;
    let newest = images
        .image_details()
        .iter()
        .max_by_key(|image| {
            (
                image.image_pushed_at().map(|t| t.secs()),
                image.image_digest().map(str::to_owned),
            )
        })
        .ok_or_else(|| anyhow::anyhow!("no image"))?;
    let digest = newest.image_digest().unwrap_or_default().to_owned();
    step(&format!(
        "the scanner reports 1 critical and 3 high findings for the newest image {:?} (seeded into the emulator)",
        newest.image_tags()
    ));
    seed_findings(ecr, &digest).await?;

    step("kubectl apply: ScanPolicy default (Enhanced, continuous scan of payments/*, at most 0 critical and 5 high)");
    let policies: Api<ScanPolicy> = Api::all(client.clone());
    let manifest = serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "ScanPolicy", "metadata": {"name": "default"},
        "spec": {
            "scanType": "Enhanced",
            "rules": [{"frequency": "ContinuousScan", "repositoryFilters": ["payments/*"]}],
            "findings": {"thresholds": {"critical": 0, "high": 5}, "refreshInterval": "15m"},
        },
    });
    policies
        .patch("default", &PatchParams::apply("demo").force(), &Patch::Apply(&manifest))
        .await?;
    let repositories: Api<EcrRepository> = Api::namespaced(client.clone(), NAMESPACE);
    for attempt in 0..120 {
        let object = repositories.get("payments-api").await?;
        let status = object.status.unwrap_or_default();
        if let (Some(compliant), Some(findings)) = (status.condition("ScanCompliant"), &status.findings)
            && compliant.status == "False"
        {
            println!(
                "  kubectl get ecrrepo: payments-api  Ready=True  Compliant={}",
                compliant.status
            );
            println!("  {}: {}", compliant.reason, compliant.message);
            println!(
                "  status.findings: critical {}, high {}, medium {} on {:?} ({})",
                findings.critical,
                findings.high,
                findings.medium,
                findings.image_tags,
                findings.image_digest.clone().unwrap_or_default()
            );
            if let Some(scanning) = &status.scanning {
                println!(
                    "  status.scanning: {} (filter {})",
                    scanning.frequency,
                    scanning.applied_filter.clone().unwrap_or_default()
                );
            }
            break;
        }
        anyhow::ensure!(attempt < 119, "payments-api never became non-compliant: {:?}", status);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..20 {
        let summary = policies.get("default").await?.status.and_then(|s| s.summary);
        if let Some(summary) = summary.filter(|s| s.non_compliant > 0) {
            println!(
                "  kubectl get ecrscan default: {} repositories, {} non-compliant, {} critical, {} high",
                summary.repositories, summary.non_compliant, summary.critical, summary.high
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step("kubectl delete scanpolicy default: the registry gets back the configuration it had");
    policies.delete("default", &DeleteParams::default()).await?;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if policies.get_opt("default").await?.is_none() {
            break;
        }
    }
    let configuration = ecr.get_registry_scanning_configuration().send().await?;
    let scan_type = configuration
        .scanning_configuration()
        .and_then(|c| c.scan_type())
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    println!("  registry scan type now: {scan_type}");
    Ok(())
}

/// Hands the emulator a finished scan for `digest` (its `/moto-api` seeding endpoint), then
/// starts the scan so that DescribeImageScanFindings answers with it.
async fn seed_findings(ecr: &aws_sdk_ecr::Client, digest: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let endpoint = std::env::var("AWS_ENDPOINT_URL")?;
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-west-1".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let body = serde_json::json!({"region": region, "results": [{
        "repositoryName": "payments/payments-api", "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
        "imageScanFindings": {"imageScanCompletedAt": now, "findingSeverityCounts": {"CRITICAL": 1, "HIGH": 3}, "findings": []},
    }]})
    .to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await?;
    let request = format!(
        "POST /moto-api/static/ecr/scan-finding-results HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    anyhow::ensure!(
        response.contains(" 201 "),
        "the emulator refused the findings: {response}"
    );
    ecr.start_image_scan()
        .repository_name("payments/payments-api")
        .image_id(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(digest)
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

async fn wait_policy(policies: &Api<LifecyclePolicy>, reason: &str) -> anyhow::Result<LifecyclePolicy> {
    for _ in 0..120 {
        let policy = policies.get("keep-releases").await?;
        let status = policy.status.clone().unwrap_or_default();
        let current = status.observed_generation == policy.metadata.generation;
        if let Some(ready) = status.conditions.iter().find(|c| c.type_ == "Ready")
            && current
            && ready.reason == reason
        {
            return Ok(policy);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("keep-releases did not reach {reason}")
}

/// A bare HTTP/1.0 GET (the demo has no HTTP client of its own).
async fn http_get(address: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

fn step(text: &str) {
    println!("\n==> {text}");
}

async fn wait_ready(repositories: &Api<EcrRepository>) -> anyhow::Result<EcrRepository> {
    for _ in 0..120 {
        let object = repositories.get("payments-api").await?;
        if let Some(ready) = object.status.as_ref().and_then(|s| s.condition("Ready")) {
            if ready.status == "True" {
                return Ok(object);
            }
            println!("  waiting: {} {}", ready.reason, ready.message);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!(
        "payments-api did not become Ready: {:?}",
        repositories.get("payments-api").await?.status
    )
}

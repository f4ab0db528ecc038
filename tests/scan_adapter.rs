//! The ECR adapter for registry scanning and image findings, against moto (skipped when the
//! test bed is not up) and, for paging moto does not do, against a fake ECR endpoint.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use berth::aws::{
    AwsClients, AwsErrorKind, EcrRegistry, ImageFindings, Registry, RegistryScanFrequency, RegistryScanRule,
    RegistryScanType, RegistryScanning, RepositoryScanning, SeverityCounts,
};
use berth::telemetry::Metrics;
use common::proxy::AwsProxy;

/// The registry scanning configuration is one per account and region: this test owns a region
/// no other test uses, so that tests running at the same time never see its configuration.
const SCANNING_REGION: &str = "ca-central-1";

async fn config_for(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// The adapter talking to AWS through `endpoint`.
async fn registry_at(endpoint: &str, region: &str) -> EcrRegistry {
    EcrRegistry::new(AwsClients::new(
        config_for(endpoint, region).await,
        Metrics::new().aws.clone(),
    ))
}

#[tokio::test]
async fn registry_scanning_round_trips_and_repository_scanning_is_read_in_batches_of_25() {
    let Some(testbed) = common::testbed() else { return };
    let region = SCANNING_REGION;
    let proxy = AwsProxy::start(&testbed.aws_endpoint).await;
    let registry = registry_at(&proxy.endpoint, region).await;
    let prefix = format!("scan-{}", common::unique_suffix());
    let names: Vec<String> = (0..30).map(|i| format!("{prefix}/r{i:02}")).collect();
    for name in &names {
        registry
            .create_repository(
                region,
                name,
                &Default::default(),
                berth::api::EncryptionType::Aes256,
                None,
                &Default::default(),
            )
            .await
            .expect("CreateRepository");
    }

    let filter = format!("{prefix}/*");
    let enhanced = RegistryScanning {
        scan_type: RegistryScanType::Enhanced,
        rules: vec![RegistryScanRule {
            frequency: RegistryScanFrequency::ContinuousScan,
            filters: vec![filter.clone()],
        }],
    };
    registry
        .put_registry_scanning(region, &enhanced)
        .await
        .expect("PutRegistryScanningConfiguration");
    assert_eq!(
        registry
            .get_registry_scanning(region)
            .await
            .expect("GetRegistryScanningConfiguration"),
        enhanced
    );

    // 30 repositories and one that does not exist: two calls, the missing one left out
    let mut asked = names.clone();
    asked.push(format!("{prefix}/missing"));
    proxy.reset();
    let scanning = registry
        .repository_scanning(region, &asked)
        .await
        .expect("BatchGetRepositoryScanningConfiguration");
    assert_eq!(
        proxy.counts().get("BatchGetRepositoryScanningConfiguration"),
        Some(&2),
        "31 names are two batches"
    );
    assert_eq!(scanning.len(), 30, "{scanning:?}");
    let seen: BTreeSet<&str> = scanning.iter().map(|s| s.repository.as_str()).collect();
    assert_eq!(seen, names.iter().map(String::as_str).collect());
    for entry in &scanning {
        assert_eq!(
            entry,
            &RepositoryScanning {
                repository: entry.repository.clone(),
                frequency: RegistryScanFrequency::ContinuousScan,
                applied_filter: Some(filter.clone()),
            }
        );
    }

    // an empty basic configuration (rules sent as an empty list)
    registry
        .put_registry_scanning(region, &RegistryScanning::default())
        .await
        .expect("PutRegistryScanningConfiguration without rules");
    assert_eq!(
        registry.get_registry_scanning(region).await.expect("read back"),
        RegistryScanning {
            scan_type: RegistryScanType::Basic,
            rules: vec![]
        }
    );
    let scanning = registry.repository_scanning(region, &names).await.expect("read again");
    assert_eq!(scanning.len(), 30);
    assert!(
        scanning
            .iter()
            .all(|s| s.frequency == RegistryScanFrequency::Manual && s.applied_filter.is_none()),
        "{scanning:?}"
    );

    // nothing to ask: no call
    proxy.reset();
    assert_eq!(registry.repository_scanning(region, &[]).await.unwrap(), vec![]);
    assert_eq!(proxy.counts().get("BatchGetRepositoryScanningConfiguration"), None);
}

#[tokio::test]
async fn image_findings_are_states_and_counts() {
    let Some(testbed) = common::testbed() else { return };
    let region = testbed.region.clone();
    let proxy = AwsProxy::start(&testbed.aws_endpoint).await;
    let registry = registry_at(&proxy.endpoint, &region).await;
    let ecr = common::ecr_client(&testbed, &region).await;
    let repository = format!("findings-{}/app", common::unique_suffix());
    ecr.create_repository()
        .repository_name(&repository)
        .send()
        .await
        .expect("CreateRepository");
    let digest = common::put_image(&ecr, &repository, "v1", &format!("{repository}-v1")).await;

    // pushed, never scanned
    assert_eq!(
        registry.image_findings(&region, &repository, &digest).await.unwrap(),
        ImageFindings::NotScanned
    );

    // a finished scan with counts: one call
    let completed_at = common::seed_scan_findings(
        &testbed,
        &region,
        &repository,
        &digest,
        &[("CRITICAL", 1), ("HIGH", 3), ("MEDIUM", 2)],
    )
    .await;
    proxy.reset();
    let findings = registry.image_findings(&region, &repository, &digest).await.unwrap();
    assert_eq!(
        findings,
        ImageFindings::Complete {
            counts: SeverityCounts {
                critical: 1,
                high: 3,
                medium: 2,
                ..Default::default()
            },
            completed_at: Some(completed_at),
        }
    );
    assert_eq!(proxy.counts().get("DescribeImageScanFindings"), Some(&1));
    // the seeded answer stays (moto bound it to berth's request shape)
    assert_eq!(
        registry.image_findings(&region, &repository, &digest).await.unwrap(),
        findings
    );

    // a finished scan without counts: basic and enhanced findings are counted by severity
    let listed = common::put_image(&ecr, &repository, "v2", &format!("{repository}-v2")).await;
    common::seed_scan_result(
        &testbed,
        &region,
        serde_json::json!({
            "repositoryName": repository,
            "imageId": {"imageDigest": listed},
            "imageScanStatus": {"status": "ACTIVE", "description": "Continuous scan is selected for image."},
            "imageScanFindings": {
                "imageScanCompletedAt": 1_700_000_000,
                "findings": [{"name": "CVE-1", "severity": "HIGH"}, {"name": "CVE-2", "severity": "LOW"}],
                "enhancedFindings": [
                    {"findingArn": "arn:1", "severity": "CRITICAL"},
                    {"findingArn": "arn:2", "severity": "UNTRIAGED"},
                ],
            },
        }),
    )
    .await;
    start_scan(&ecr, &repository, &listed).await;
    assert_eq!(
        registry.image_findings(&region, &repository, &listed).await.unwrap(),
        ImageFindings::Complete {
            counts: SeverityCounts {
                critical: 1,
                high: 1,
                low: 1,
                undefined: 1,
                ..Default::default()
            },
            completed_at: Some(1_700_000_000),
        }
    );

    // findings unavailable: AWS's description verbatim
    let unavailable = common::put_image(&ecr, &repository, "v3", &format!("{repository}-v3")).await;
    common::seed_scan_result(
        &testbed,
        &region,
        serde_json::json!({
            "repositoryName": repository,
            "imageId": {"imageDigest": unavailable},
            "imageScanStatus": {"status": "FINDINGS_UNAVAILABLE", "description": "Image scan findings are unavailable."},
        }),
    )
    .await;
    start_scan(&ecr, &repository, &unavailable).await;
    assert_eq!(
        registry
            .image_findings(&region, &repository, &unavailable)
            .await
            .unwrap(),
        ImageFindings::Unavailable("Image scan findings are unavailable.".into())
    );

    // an image that does not exist is not "not scanned": it is gone
    let missing = format!("sha256:{}", "0".repeat(64));
    let error = registry
        .image_findings(&region, &repository, &missing)
        .await
        .expect_err("no such image");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");

    // a real failure is an error
    proxy.fail_next("DescribeImageScanFindings", "AccessDeniedException", "not allowed");
    let error = registry
        .image_findings(&region, &repository, &digest)
        .await
        .expect_err("access denied");
    assert_eq!(error.kind, AwsErrorKind::AccessDenied, "{error}");
    assert_eq!(error.operation, "DescribeImageScanFindings");
}

async fn start_scan(ecr: &aws_sdk_ecr::Client, repository: &str, digest: &str) {
    ecr.start_image_scan()
        .repository_name(repository)
        .image_id(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(digest)
                .build(),
        )
        .send()
        .await
        .expect("StartImageScan");
}

/// moto answers with one page; a fake ECR endpoint serves two, the first without severity
/// counts, and records each request body.
#[tokio::test]
async fn findings_without_counts_are_counted_over_every_page() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let requests: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let recorded = requests.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let recorded = recorded.clone();
        async move {
            let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            recorded.lock().unwrap().push(request.clone());
            let page = match request.get("nextToken").and_then(|t| t.as_str()) {
                None => serde_json::json!({
                    "repositoryName": "team/app",
                    "imageId": {"imageDigest": "sha256:abc"},
                    "imageScanStatus": {"status": "COMPLETE"},
                    "imageScanFindings": {
                        "imageScanCompletedAt": 1_700_000_000,
                        "findings": [{"name": "CVE-1", "severity": "CRITICAL"}, {"name": "CVE-2", "severity": "HIGH"}],
                    },
                    "nextToken": "page-2",
                }),
                Some(_) => serde_json::json!({
                    "repositoryName": "team/app",
                    "imageId": {"imageDigest": "sha256:abc"},
                    "imageScanStatus": {"status": "COMPLETE"},
                    "imageScanFindings": {
                        "imageScanCompletedAt": 1_700_000_000,
                        "findings": [{"name": "CVE-3", "severity": "HIGH"}],
                        "enhancedFindings": [{"findingArn": "arn:4", "severity": "MEDIUM"}],
                    },
                }),
            };
            (
                [(axum::http::header::CONTENT_TYPE, "application/x-amz-json-1.1")],
                page.to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let registry = registry_at(&endpoint, "eu-west-1").await;
    let findings = registry
        .image_findings("eu-west-1", "team/app", "sha256:abc")
        .await
        .expect("two pages");
    assert_eq!(
        findings,
        ImageFindings::Complete {
            counts: SeverityCounts {
                critical: 1,
                high: 2,
                medium: 1,
                ..Default::default()
            },
            completed_at: Some(1_700_000_000),
        }
    );
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(request["repositoryName"], "team/app");
        assert_eq!(request["imageId"], serde_json::json!({"imageDigest": "sha256:abc"}));
    }
    assert_eq!(requests[1]["nextToken"], "page-2");
}

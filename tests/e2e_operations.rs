//! Running berth in production, end to end against the real test bed: metrics that match the
//! AWS calls actually made (counted by a proxy in front of moto), zero writes on a resync of an
//! in-sync repository, leader election with two processes, failover after kill -9, graceful
//! shutdown on SIGTERM, and repository statistics after image pushes.

mod common;

use std::time::Duration;

use aws_sdk_ecr::primitives::DateTime;
use common::proxy::AwsProxy;
use common::{Operator, Setup, TIMEOUT, is_write, leader_args, lease_holder, metric_sum, setup, wait_for, wait_reason};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

/// An EcrRepository with a name under the namespace and one tag.
async fn create_plain(s: &Setup, name: &str) {
    let spec = serde_json::json!({"repositoryName": format!("{}/{name}", s.namespace), "tags": {"team": "ops"}});
    s.create(name, spec).await;
}

/// Waits until the statistics refresher has written the status of `name`.
async fn wait_stats(s: &Setup, name: &str, images: i64) -> berth::api::EcrRepositoryStatus {
    wait_for(TIMEOUT, || async {
        let status = s.repositories.get(name).await.ok()?.status?;
        (status.image_count == Some(images)).then_some(status)
    })
    .await
    .unwrap_or_else(|| panic!("statistics of {name} never showed {images} images"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_aws_calls_made() {
    let Some(s) = setup("e2e-metrics").await else { return };
    // a long resync and stats interval: after the first reconcile and the first statistics
    // refresh, nothing else calls AWS, so both counts can be compared exactly
    let (proxy, operator) = s
        .operator_behind_proxy(&[
            "--resync-interval",
            "1h",
            "--stats-interval",
            "1h",
            "--log-format",
            "json",
        ])
        .await;
    create_plain(&s, "api").await;
    wait_reason(&s.repositories, "api", "Synced", &operator).await;
    wait_stats(&s, "api", 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (status, text) = operator.get("/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200);
    let made = proxy.counts();
    assert_eq!(
        made.get("CreateRepository"),
        Some(&1),
        "calls seen by the proxy: {made:?}"
    );
    assert!(made.contains_key("DescribeImages"), "calls seen by the proxy: {made:?}");
    for (operation, count) in &made {
        let reported = metric_sum(&text, "berth_aws_requests_total", &[("operation", operation)]);
        assert_eq!(
            reported, *count as f64,
            "{operation}: proxy saw {count}, /metrics says {reported}\n{text}"
        );
        let timed = metric_sum(
            &text,
            "berth_aws_request_duration_seconds_count",
            &[("operation", operation)],
        );
        assert_eq!(timed, *count as f64, "{operation} latency samples");
    }
    let total: u64 = made.values().sum();
    assert_eq!(metric_sum(&text, "berth_aws_requests_total", &[]), total as f64);
    // one STS call at start (the partition), everything else ECR
    assert_eq!(made.get("GetCallerIdentity"), Some(&1), "{made:?}");
    assert_eq!(
        metric_sum(&text, "berth_aws_requests_total", &[("service", "sts")]),
        1.0
    );
    assert_eq!(
        metric_sum(&text, "berth_aws_requests_total", &[("service", "ecr")]),
        total as f64 - 1.0
    );
    // a new object is planned from the region's listing, without a describe of its own that
    // would answer RepositoryNotFoundException: every call succeeded
    assert_eq!(
        metric_sum(&text, "berth_aws_requests_total", &[("outcome", "client_error")]),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "berth_aws_requests_total", &[("outcome", "success")]),
        total as f64
    );
    assert!(metric_sum(&text, "berth_reconciles_total", &[("kind", "EcrRepository")]) >= 1.0);
    assert_eq!(metric_sum(&text, "berth_reconcile_errors_total", &[]), 0.0);
    assert_eq!(
        metric_sum(
            &text,
            "berth_managed_objects",
            &[("kind", "EcrRepository"), ("ready", "True")]
        ),
        1.0
    );
    assert!(
        metric_sum(
            &text,
            "berth_reconcile_duration_seconds_count",
            &[("kind", "EcrRepository")]
        ) >= 1.0
    );
    assert_eq!(metric_sum(&text, "berth_leader", &[]), 1.0);

    // JSON logs: each AWS call made by a reconcile names the operation and the object
    let log = operator.log_text();
    let lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "no JSON log lines:\n{log}");
    let create_call = lines
        .iter()
        .find(|l| l["message"] == "aws call" && l["operation"] == "CreateRepository")
        .unwrap_or_else(|| panic!("no log line for CreateRepository:\n{log}"));
    let reconcile_span = create_call["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["kind"] == "EcrRepository"))
        .unwrap_or_else(|| panic!("the call is not inside a reconcile span: {create_call}"));
    assert_eq!(reconcile_span["namespace"], s.namespace.as_str());
    assert_eq!(reconcile_span["object"], "api");

    // throttled attempts are counted as such, and the SDK's retries make the call succeed
    proxy.reset();
    proxy.throttle_every(2);
    create_plain(&s, "web").await;
    wait_reason(&s.repositories, "web", "Synced", &operator).await;
    proxy.throttle_every(0);
    let text = operator.get("/metrics").await.unwrap().1;
    assert!(
        metric_sum(&text, "berth_aws_requests_total", &[("outcome", "throttled")]) >= 1.0,
        "{text}"
    );

    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_of_an_in_sync_repository_writes_nothing() {
    let Some(s) = setup("e2e-steady").await else { return };
    let (proxy, operator) = s.operator_behind_proxy(&["--stats-interval", "1h"]).await;
    for name in ["a", "b", "c"] {
        create_plain(&s, name).await;
    }
    for name in ["a", "b", "c"] {
        wait_reason(&s.repositories, name, "Synced", &operator).await;
        wait_stats(&s, name, 0).await;
    }
    let before = operator.metric("berth_reconciles_total{kind=\"EcrRepository\"}").await;
    proxy.reset();
    // three resyncs at --resync-interval 3s
    tokio::time::sleep(Duration::from_secs(10)).await;
    let made = proxy.counts();
    let writes: Vec<_> = made.iter().filter(|(op, _)| is_write(op)).collect();
    assert!(writes.is_empty(), "an in-sync resync wrote: {writes:?}");
    let batched = made.get("DescribeRepositories").copied().unwrap_or_default();
    assert!(
        (2..=4).contains(&batched),
        "one DescribeRepositories per resync, not per repository: {made:?}"
    );
    // reads per repository per resync: the tag read only (plus the shared describe)
    let tag_reads = made.get("ListTagsForResource").copied().unwrap_or_default();
    assert!(tag_reads <= 3 * batched, "{made:?}");
    assert!(
        operator.metric("berth_reconciles_total{kind=\"EcrRepository\"}").await >= before + 6.0,
        "the resyncs reconciled every object"
    );

    // an out-of-band change is set back at the next resync and counted as a drift correction
    let arn = s
        .repositories
        .get("a")
        .await
        .unwrap()
        .status
        .unwrap()
        .repository_arn
        .unwrap();
    s.ecr
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let restored = wait_for(TIMEOUT, || async {
        let tags = s.ecr.list_tags_for_resource().resource_arn(&arn).send().await.ok()?;
        tags.tags().iter().any(|t| t.key() == "team").then_some(())
    })
    .await;
    assert!(restored.is_some(), "drift not corrected\n{}", operator.log_text());
    // moto holds the tag before berth has its answer and counts the correction
    let counted = wait_for(TIMEOUT, || async {
        let text = operator.get("/metrics").await?.1;
        text.contains("berth_drift_corrections_total{").then_some(())
    })
    .await;
    assert!(counted.is_some(), "no drift correction counted");
    let text = operator.get("/metrics").await.unwrap().1;
    assert_eq!(
        metric_sum(
            &text,
            "berth_drift_corrections_total",
            &[("kind", "EcrRepository"), ("field", "tags")]
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_replicas_leads_and_the_other_takes_over_after_a_crash() {
    let Some(s) = setup("e2e-leader").await else { return };
    let lease_name = format!("berth-{}", s.namespace);
    let owned_args = leader_args(&lease_name, &s.namespace, "6s");
    let args: Vec<&str> = owned_args.iter().map(String::as_str).collect();
    let first = Operator::start_with(&s.testbed, &s.namespace, &s.testbed.aws_endpoint, "-1", &args);
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.namespace);
    let holder = wait_for(TIMEOUT, || lease_holder(&leases, &lease_name))
        .await
        .expect("the first replica takes the Lease");
    // the holder wrote the Lease under a field manager of its own, not one shared by replicas
    let managers: Vec<String> = leases
        .get(&lease_name)
        .await
        .expect("the Lease")
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| entry.manager)
        .collect();
    assert!(
        managers.contains(&format!("berth-leader-{holder}")),
        "managers {managers:?}, holder {holder}"
    );
    let mut second = Operator::start_with(&s.testbed, &s.namespace, &s.testbed.aws_endpoint, "-2", &args);
    create_plain(&s, "one").await;
    wait_reason(&s.repositories, "one", "Synced", &first).await;

    // both are ready (the standby has seen the leader), exactly one leads and calls AWS
    for operator in [&first, &second] {
        let ready = wait_for(TIMEOUT, || async {
            (operator.get("/readyz").await?.0 == 200).then_some(())
        })
        .await;
        assert!(ready.is_some(), "/readyz never turned 200\n{}", operator.log_text());
        assert_eq!(operator.get("/healthz").await.map(|r| r.0), Some(200));
    }
    assert_eq!(first.metric("berth_leader").await, 1.0);
    assert_eq!(second.metric("berth_leader").await, 0.0);
    // every replica asks STS once at start who it is (the partition; wrong credentials fail
    // the start); beyond that only the leader calls AWS
    let calls = |text: &str| {
        metric_sum(text, "berth_aws_requests_total", &[])
            - metric_sum(text, "berth_aws_requests_total", &[("service", "sts")])
    };
    assert!(calls(&first.get("/metrics").await.unwrap().1) > 0.0);
    assert_eq!(
        calls(&second.get("/metrics").await.unwrap().1),
        0.0,
        "the standby called AWS"
    );

    // kill -9 the leader: the standby takes over within the lease duration and converges a
    // new object within one more reconcile
    let mut first = first;
    first.signal_and_wait("KILL", Duration::from_secs(5)).expect("killed");
    let killed_at = std::time::Instant::now();
    create_plain(&s, "two").await;
    wait_reason(&s.repositories, "two", "Synced", &second).await;
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(6 + 10),
        "failover took {took:?}\n{}",
        second.log_text()
    );
    assert_eq!(second.metric("berth_leader").await, 1.0);
    assert!(calls(&second.get("/metrics").await.unwrap().1) > 0.0);
    drop(first);

    // SIGTERM: exit 0 within the shutdown bound, the Lease released for the next replica
    let status = second
        .signal_and_wait("TERM", Duration::from_secs(20 + 5))
        .expect("berth exits after SIGTERM within the shutdown timeout");
    assert!(status.success(), "exit status {status:?}\n{}", second.log_text());
    assert_eq!(
        lease_holder(&leases, &lease_name).await,
        None,
        "the Lease still has a holder"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_follow_the_images_pushed() {
    let Some(s) = setup("e2e-stats").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &["--stats-interval", "2s"]);
    create_plain(&s, "img").await;
    wait_reason(&s.repositories, "img", "Synced", &operator).await;
    wait_stats(&s, "img", 0).await;

    let repository_name = format!("{}/img", s.namespace);
    for seed in ["one", "two", "three"] {
        s.ecr
            .put_image()
            .repository_name(&repository_name)
            .image_manifest(common::image_manifest(&format!("{}{seed}", s.namespace)))
            .image_tag(seed)
            .send()
            .await
            .expect("PutImage");
    }
    let images = s
        .ecr
        .describe_images()
        .repository_name(&repository_name)
        .send()
        .await
        .expect("DescribeImages");
    let size: i64 = images
        .image_details()
        .iter()
        .filter_map(|i| i.image_size_in_bytes())
        .sum();
    let newest = images
        .image_details()
        .iter()
        .filter_map(|i| i.image_pushed_at())
        .max_by_key(|t| t.secs())
        .map(|t| t.secs())
        .expect("pushed images have a push time");
    assert!(size > 0, "moto reports image sizes");

    let status = wait_stats(&s, "img", 3).await;
    assert_eq!(status.size_bytes, Some(size));
    let expected_push = DateTime::from_secs(newest)
        .fmt(aws_sdk_ecr::primitives::DateTimeFormat::DateTime)
        .unwrap();
    assert_eq!(status.last_pushed_at.as_deref(), Some(expected_push.as_str()));

    let labels = [("namespace", s.namespace.as_str()), ("name", "img")];
    let text = operator.get("/metrics").await.unwrap().1;
    assert_eq!(metric_sum(&text, "berth_repository_images", &labels), 3.0, "{text}");
    assert_eq!(metric_sum(&text, "berth_repository_size_bytes", &labels), size as f64);
    assert_eq!(
        metric_sum(&text, "berth_repository_last_push_timestamp_seconds", &labels),
        newest as f64
    );
    // the statistics fields belong to their own field manager
    let object = s.repositories.get("img").await.unwrap();
    let managers: Vec<_> = object
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.iter().any(|m| m == "berth-stats"), "{managers:?}");

    // unchanged images: the status is not rewritten on the next refreshes
    let version = object.metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        s.repositories.get("img").await.unwrap().metadata.resource_version,
        version
    );
    // each resync interval started is counted (3 s here; the benchmark aligns its steady
    // window to this counter)
    let resyncs = operator.metric("berth_resyncs_total").await;
    assert!(resyncs >= 2.0, "{resyncs} resyncs counted after more than 6 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_the_lease_stops_at_once() {
    let Some(s) = setup("e2e-lost").await else { return };
    let proxy = AwsProxy::start(&s.testbed.aws_endpoint).await;
    let lease_name = format!("berth-{}", s.namespace);
    let owned_args = leader_args(&lease_name, &s.namespace, "6s");
    let args: Vec<&str> = owned_args.iter().map(String::as_str).collect();
    let operator = Operator::start_with(&s.testbed, &s.namespace, &proxy.endpoint, "", &args);
    create_plain(&s, "before").await;
    wait_reason(&s.repositories, "before", "Synced", &operator).await;

    // another replica takes the Lease (as after a network partition) and keeps renewing it
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.namespace);
    let intruder = {
        let leases = leases.clone();
        let lease_name = lease_name.clone();
        tokio::spawn(async move {
            loop {
                let now =
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now());
                let patch = serde_json::json!({"spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 6, "renewTime": now}});
                let _ = leases
                    .patch(
                        &lease_name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&patch),
                    )
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let stepped_down = wait_for(TIMEOUT, || async {
        (operator.metric("berth_leader").await == 0.0).then_some(())
    })
    .await;
    assert!(stepped_down.is_some(), "still leading\n{}", operator.log_text());

    // from now on nothing is written: a new object stays untouched, AWS sees no call
    proxy.reset();
    create_plain(&s, "after").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(s.repositories.get("after").await.unwrap().status, None);
    assert_eq!(proxy.counts(), Default::default(), "calls after losing the Lease");
    intruder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_with_a_fifth_of_the_calls_throttled() {
    let Some(s) = setup("e2e-faults").await else { return };
    let (proxy, operator) = s
        .operator_behind_proxy(&["--create-github-oidc-provider", "--stats-interval", "1h"])
        .await;
    proxy.throttle_every(5);
    let names: Vec<String> = (0..8).map(|i| format!("svc{i}")).collect();
    for name in &names {
        let spec = serde_json::json!({
            "repositoryName": format!("{}/{name}", s.namespace), "tags": {"team": "faults"},
            "access": {
                "pull": [{"accountId": "111122223333"}],
                "push": [{"githubActions": {"repository": format!("acme/{name}"), "refs": ["refs/heads/main"]}}],
            },
        });
        s.create(name, spec).await;
    }
    for name in &names {
        let ready = wait_reason(&s.repositories, name, "Synced", &operator).await;
        assert!(ready.status.unwrap().push_role_arn.is_some());
    }
    let text = operator.get("/metrics").await.unwrap().1;
    assert!(
        metric_sum(&text, "berth_aws_requests_total", &[("outcome", "throttled")]) >= 10.0,
        "{text}"
    );
    // nothing was created twice: one CreateRepository and one CreateRole reached AWS per object
    let made = proxy.counts();
    let throttled_creates = metric_sum(
        &text,
        "berth_aws_requests_total",
        &[("operation", "CreateRepository"), ("outcome", "throttled")],
    );
    assert_eq!(
        made.get("CreateRepository").copied().unwrap_or_default() as f64 - throttled_creates,
        names.len() as f64,
        "{made:?}"
    );
    let throttled_roles = metric_sum(
        &text,
        "berth_aws_requests_total",
        &[("operation", "CreateRole"), ("outcome", "throttled")],
    );
    assert_eq!(
        made.get("CreateRole").copied().unwrap_or_default() as f64 - throttled_roles,
        names.len() as f64,
        "{made:?}"
    );
    proxy.throttle_every(0);
}

/// The namespaced half of the RBAC table in docs/operations.md (berth watching one namespace
/// with --cluster-id needs no cluster-scoped access).
fn documented_role(namespace: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "berth", "namespace": namespace},
        "rules": [
            {"apiGroups": ["ecr.berth.dev"], "resources": ["ecrrepositories", "lifecyclepolicies"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["ecr.berth.dev"], "resources": ["ecrrepositories/status", "lifecyclepolicies/status"], "verbs": ["get", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]},
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_with_only_the_documented_rbac() {
    let Some(s) = setup("e2e-rbac").await else { return };
    let Ok(tenant) = std::env::var("BERTH_TENANT_KUBECONFIG") else {
        panic!("the test bed writes BERTH_TENANT_KUBECONFIG")
    };
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(s.client.clone(), &s.namespace);
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(documented_role(&s.namespace)).unwrap(),
        )
        .await
        .expect("create Role");
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(s.client.clone(), &s.namespace);
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "berth", "namespace": s.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "berth"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "berth:tenants"}],
    });
    bindings
        .create(&PostParams::default(), &serde_json::from_value(binding).unwrap())
        .await
        .expect("create RoleBinding");

    let operator = Operator::start_as(
        &s.testbed,
        &s.namespace,
        &tenant,
        &[
            "--leader-election",
            "--lease-namespace",
            &s.namespace,
            "--lease-duration",
            "6s",
            "--stats-interval",
            "2s",
        ],
    );
    let spec = serde_json::json!({"repositoryName": format!("{}/rbac", s.namespace), "deletionPolicy": "Delete"});
    s.create("rbac", spec).await;
    wait_reason(&s.repositories, "rbac", "Synced", &operator).await;
    wait_stats(&s, "rbac", 0).await;
    assert_eq!(s.events("rbac", "Created").await.len(), 1, "{}", operator.log_text());
    let ready = wait_for(TIMEOUT, || async {
        (operator.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;
    assert!(ready.is_some());
    // the finalizer (patch) works too: deletion completes
    s.repositories
        .delete("rbac", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let gone = s.wait_gone("rbac").await;
    assert!(gone, "{}", operator.log_text());
    assert!(
        !operator.log_text().contains("forbidden"),
        "a call was refused:\n{}",
        operator.log_text()
    );
}

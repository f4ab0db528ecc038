//! End to end: ScanPolicy with `berth run` against the real apiserver and moto. ScanPolicy is
//! cluster-scoped and the registry configuration is per region, so this suite keeps to a region
//! of its own and to one test function.

mod common;

use std::time::Duration;

use aws_sdk_ecr::types::{
    RegistryScanningRule, ScanFrequency, ScanType, ScanningRepositoryFilter, ScanningRepositoryFilterType,
};
use berth::api::ScanPolicy;
use common::{Operator, TIMEOUT, registry_scanning, setup, wait_for, wait_reason};
use kube::api::{Api, DeleteParams, PostParams};

const REGION: &str = "ap-southeast-2";

fn scan_policy(name: &str, spec: serde_json::Value) -> ScanPolicy {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "ScanPolicy",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("a ScanPolicy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_conflict_findings_thresholds_and_restore() {
    let Some(s) = setup("e2e-scan").await else { return };
    let ecr = common::ecr_client(&s.testbed, REGION).await;
    // this region belongs to this test: policies an earlier, interrupted run left go first
    common::remove_scan_policies_in(&s.client, REGION).await;
    let policies: Api<ScanPolicy> = Api::all(s.client.clone());
    let suffix = common::unique_suffix();

    // what the registry had before berth: basic scan-on-push for legacy-*
    let legacy = RegistryScanningRule::builder()
        .scan_frequency(ScanFrequency::ScanOnPush)
        .repository_filters(
            ScanningRepositoryFilter::builder()
                .filter("legacy-*")
                .filter_type(ScanningRepositoryFilterType::Wildcard)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    ecr.put_registry_scanning_configuration()
        .scan_type(ScanType::Basic)
        .rules(legacy)
        .send()
        .await
        .expect("PutRegistryScanningConfiguration");
    let before = registry_scanning(&ecr).await;

    let operator = Operator::start(
        &s.testbed,
        &s.namespace,
        &[
            "--manage-scan-policies",
            "true",
            "--min-findings-refresh",
            "2s",
            "--stats-interval",
            "2s",
        ],
    );
    let repository = format!("{}/app", s.namespace);
    s.create(
        "app",
        serde_json::json!({"repositoryName": repository, "region": REGION}),
    )
    .await;
    wait_reason(&s.repositories, "app", "Synced", &operator).await;
    let digest = common::put_image(&ecr, &repository, "v1", &format!("scan-{suffix}")).await;

    let first = format!("scan-a-{suffix}");
    let spec = serde_json::json!({
        "region": REGION, "scanType": "Enhanced",
        "rules": [{"frequency": "ContinuousScan", "repositoryFilters": [format!("{}/*", s.namespace)]}],
        "findings": {"thresholds": {"critical": 0, "high": 5}, "refreshInterval": "2s"},
    });
    policies
        .create(&PostParams::default(), &scan_policy(&first, spec))
        .await
        .expect("create ScanPolicy");
    let applied = wait_reason(&policies, &first, "Applied", &operator).await;

    // the registry holds exactly the spec; what was there before is recorded
    assert_eq!(
        registry_scanning(&ecr).await,
        (
            "ENHANCED".to_owned(),
            vec![("CONTINUOUS_SCAN".to_owned(), vec![format!("{}/*", s.namespace)])]
        )
    );
    let previous = applied
        .status
        .unwrap()
        .previous
        .expect("the configuration found is recorded");
    assert_eq!(previous.rules[0].repository_filters, ["legacy-*"]);

    // changed in the console: set back within a resync, reported as drift
    let applied_configuration = registry_scanning(&ecr).await;
    ecr.put_registry_scanning_configuration()
        .scan_type(ScanType::Basic)
        .set_rules(Some(vec![]))
        .send()
        .await
        .expect("PutRegistryScanningConfiguration");
    let corrected = wait_for(TIMEOUT, || async {
        (registry_scanning(&ecr).await == applied_configuration).then_some(())
    })
    .await;
    assert!(corrected.is_some(), "drift not corrected\n{}", operator.log_text());
    // counted as drift (the Event about a cluster-scoped object cannot be shown here: the test
    // bed's 1.20 apiserver accepts such events only in kube-system, current ones in default)
    let series = "berth_drift_corrections_total{field=\"registryScanningConfiguration\",kind=\"ScanPolicy\"}";
    let drift = wait_for(TIMEOUT, || async {
        (operator.metric(series).await >= 1.0).then_some(())
    })
    .await;
    assert!(drift.is_some(), "drift not counted\n{}", operator.log_text());

    // the configuration that applies to the repository lands in its status
    let (repositories, operator_ref) = (&s.repositories, &operator);
    let scanning_of = |name: &'static str| async move {
        wait_for(TIMEOUT, || async {
            let object = repositories.get(name).await.ok()?;
            object.status?.scanning
        })
        .await
        .unwrap_or_else(|| panic!("no status.scanning on {name}\n{}", operator_ref.log_text()))
    };
    assert_eq!(scanning_of("app").await.frequency, "ContinuousScan");

    // a repository managed later gets it too; and so does an object deleted and created again
    // under the same name (its repository retained): what berth-scan wrote on the first object
    // is not on the new one
    let late = serde_json::json!({"repositoryName": format!("{}/late", s.namespace), "region": REGION});
    s.create("late", late.clone()).await;
    assert_eq!(scanning_of("late").await.frequency, "ContinuousScan");
    s.repositories
        .delete("late", &DeleteParams::default())
        .await
        .expect("delete");
    let gone = wait_for(TIMEOUT, || async {
        s.repositories.get_opt("late").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the EcrRepository was not released");
    s.create("late", late).await;
    assert_eq!(scanning_of("late").await.frequency, "ContinuousScan");

    // findings above the threshold: exact counts, ScanCompliant False, one Warning, the gauge
    let counts = [("CRITICAL", 1), ("HIGH", 3), ("MEDIUM", 2)];
    common::seed_scan_findings(&s.testbed, REGION, &repository, &digest, &counts).await;
    let object = wait_for(TIMEOUT, || async {
        let object = s.repositories.get("app").await.ok()?;
        let compliant = object.status.as_ref()?.condition("ScanCompliant")?;
        (compliant.status == "False").then_some(object)
    })
    .await
    .unwrap_or_else(|| panic!("ScanCompliant never became False\n{}", operator.log_text()));
    let findings = object.status.unwrap().findings.expect("status.findings");
    assert_eq!(
        (findings.critical, findings.high, findings.medium, findings.low),
        (1, 3, 2, 0)
    );
    assert_eq!(findings.image_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(findings.image_tags, ["v1"]);
    tokio::time::sleep(Duration::from_secs(7)).await; // several refreshes
    let warnings = s.events("app", "ThresholdExceeded").await;
    assert_eq!(warnings.len(), 1, "one Warning per crossing: {warnings:?}");
    assert!(warnings[0].series.is_none(), "not repeated: {:?}", warnings[0].series);
    let series = format!(
        "berth_image_findings{{namespace=\"{}\",repository=\"{repository}\",severity=\"critical\"}}",
        s.namespace
    );
    assert_eq!(operator.metric(&series).await, 1.0);
    let summarized = wait_for(TIMEOUT, || async {
        let policy = policies.get(&first).await.ok()?;
        let status = policy.status?;
        (status.summary.as_ref()?.non_compliant == 1).then_some(status)
    })
    .await
    .unwrap_or_else(|| panic!("the summary never counted the repository\n{}", operator.log_text()));
    assert_eq!(summarized.non_compliant[0].name, "app");
    assert_eq!(summarized.non_compliant[0].critical, 1);

    // a newer image within the thresholds: back to compliant, one Normal Event
    tokio::time::sleep(Duration::from_secs(1)).await; // a later push time than v1's
    let fixed = common::put_image(&ecr, &repository, "v2", &format!("scan-fixed-{suffix}")).await;
    common::seed_scan_findings(&s.testbed, REGION, &repository, &fixed, &[("HIGH", 1)]).await;
    let compliant = wait_for(TIMEOUT, || async {
        let status = s.repositories.get("app").await.ok()?.status?;
        (status.condition("ScanCompliant")?.status == "True").then_some(status)
    })
    .await
    .unwrap_or_else(|| panic!("ScanCompliant never came back to True\n{}", operator.log_text()));
    let findings = compliant.findings.unwrap();
    assert_eq!((findings.critical, findings.high), (0, 1));
    assert_eq!(findings.image_digest.as_deref(), Some(fixed.as_str()));
    // the Event follows the status write that the wait above saw
    wait_for(TIMEOUT, || async {
        let events = s.events("app", "WithinThresholds").await;
        (!events.is_empty()).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no WithinThresholds Event\n{}", operator.log_text()));
    tokio::time::sleep(Duration::from_secs(7)).await; // several refreshes
    let within = s.events("app", "WithinThresholds").await;
    assert_eq!(within.len(), 1, "one Normal Event per crossing: {within:?}");
    assert!(within[0].series.is_none(), "not repeated: {:?}", within[0].series);
    assert_eq!(s.events("app", "ThresholdExceeded").await.len(), 1);

    // a second policy for the region: Conflict naming the first, the registry unchanged
    let second = format!("scan-b-{suffix}");
    let spec = serde_json::json!({"region": REGION, "scanType": "Basic",
        "rules": [{"frequency": "ScanOnPush", "repositoryFilters": ["*"]}]});
    policies
        .create(&PostParams::default(), &scan_policy(&second, spec))
        .await
        .expect("create second ScanPolicy");
    let conflict = wait_reason(&policies, &second, "Conflict", &operator).await;
    let message = &conflict.status.unwrap().conditions[0].message;
    assert!(message.contains(&first), "{message}");
    assert_eq!(registry_scanning(&ecr).await.0, "ENHANCED");

    // the winner goes: what it recorded is put back, and the next-oldest policy takes over
    policies.delete(&first, &DeleteParams::default()).await.expect("delete");
    let taken_over = wait_reason(&policies, &second, "Applied", &operator).await;
    assert_eq!(
        registry_scanning(&ecr).await,
        (
            "BASIC".to_owned(),
            vec![("SCAN_ON_PUSH".to_owned(), vec!["*".to_owned()])]
        )
    );
    let recorded = taken_over.status.unwrap().previous.expect("recorded by the new winner");
    assert_eq!(
        recorded.rules[0].repository_filters,
        ["legacy-*"],
        "the first policy restored the registry before the second recorded it"
    );

    // the last one goes: the registry gets back exactly what it had before berth
    policies
        .delete(&second, &DeleteParams::default())
        .await
        .expect("delete");
    let released = wait_for(TIMEOUT, || async {
        policies.get_opt(&second).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        released.is_some(),
        "the ScanPolicy was not released\n{}",
        operator.log_text()
    );
    assert_eq!(registry_scanning(&ecr).await, before);
    let cleared = wait_for(TIMEOUT, || async {
        let status = s.repositories.get("app").await.ok()?.status?;
        (status.findings.is_none() && status.scanning.is_none()).then_some(())
    })
    .await;
    assert!(cleared.is_some(), "berth-scan's fields stayed after the policy left");
}

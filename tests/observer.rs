//! Batched observation against moto: one DescribeRepositories per region per resync serves
//! every lookup; a name missing from the snapshot is described on its own. Likewise one
//! ListRoles per resync serves every push role lookup.

mod common;

use std::sync::Arc;

use berth::aws::{AwsClients, IamClient, RepositoryObserver, RoleObserver};
use berth::telemetry::Metrics;
use common::counting::CountingRegistry;

#[tokio::test]
async fn one_describe_per_region_per_resync() {
    let Some(testbed) = common::testbed() else { return };
    let registry = Arc::new(CountingRegistry::on(common::sdk_config(&testbed).await));
    let prefix = format!("observer-{}", common::unique_suffix());
    let names: Vec<String> = (0..20).map(|i| format!("{prefix}/repo-{i}")).collect();
    for name in &names {
        registry.create_plain(&testbed.region, name).await;
    }
    let observer = RepositoryObserver::new(registry.clone());

    let lookups = names.iter().map(|name| observer.observe(&testbed.region, name));
    let found = futures::future::join_all(lookups).await;
    assert!(found.iter().all(|r| matches!(r, Ok(Some(_)))), "{found:?}");
    assert_eq!(
        registry.calls("DescribeRepositories"),
        1,
        "20 lookups share one DescribeRepositories"
    );
    assert_eq!(registry.calls("DescribeRepository"), 0);

    // for an object never reconciled, a name the listing does not hold is taken as absent
    // without a describe of its own (creating it then answers RepositoryAlreadyExists, and the
    // reconcile describes it)...
    let unlisted = format!("{prefix}/unlisted");
    registry.create_plain(&testbed.region, &unlisted).await;
    assert!(
        observer
            .observe_listed(&testbed.region, &unlisted)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(registry.calls("DescribeRepositories"), 1);
    assert_eq!(registry.calls("DescribeRepository"), 0);
    // ...and a listed one is described afresh, as after a spec change
    assert!(
        observer
            .observe_listed(&testbed.region, &names[0])
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(registry.calls("DescribeRepository"), 1);
    // the unlisted name asked for as usual is described on its own and found
    assert!(observer.observe(&testbed.region, &unlisted).await.unwrap().is_some());
    assert_eq!(registry.calls("DescribeRepository"), 2);

    // a repository created after the snapshot is described on its own, not reported missing
    let late = format!("{prefix}/late");
    registry.create_plain(&testbed.region, &late).await;
    assert_eq!(
        observer.observe(&testbed.region, &late).await.unwrap().map(|r| r.name),
        Some(late.clone())
    );
    assert_eq!(registry.calls("DescribeRepositories"), 1);
    assert_eq!(registry.calls("DescribeRepository"), 3);
    // ...and then remembered
    observer.observe(&testbed.region, &late).await.unwrap();
    assert_eq!(registry.calls("DescribeRepository"), 3);
    // berth's own write replaces what the listing said of a repository
    let mut written = observer
        .observe(&testbed.region, &names[1])
        .await
        .unwrap()
        .expect("listed");
    written.kms_key = Some("alias/recorded".into());
    observer.record(&testbed.region, written.clone(), None).await;
    let after = observer.observe(&testbed.region, &names[1]).await.unwrap();
    assert_eq!(after.and_then(|r| r.kms_key).as_deref(), Some("alias/recorded"));
    assert_eq!(registry.calls("DescribeRepository"), 3);

    // a missing repository is None after its own describe, and is not described again
    // within the resync (a negative cache)
    let absent = format!("{prefix}/absent");
    for _ in 0..3 {
        assert!(observer.observe(&testbed.region, &absent).await.unwrap().is_none());
    }
    assert_eq!(
        registry.calls("DescribeRepository"),
        4,
        "one describe for the absent name"
    );
    // ...unless a fresh read is asked for (a spec change), or berth itself created it
    registry.create_plain(&testbed.region, &absent).await;
    assert!(
        observer
            .observe_fresh(&testbed.region, &absent)
            .await
            .unwrap()
            .is_some()
    );
    assert!(observer.observe(&testbed.region, &absent).await.unwrap().is_some());
    assert_eq!(registry.calls("DescribeRepository"), 5);

    // a repository berth created is known as such for the rest of the resync (its lifecycle
    // policy then needs no read), one found or deleted is not
    let made = format!("{prefix}/made");
    registry.create_plain(&testbed.region, &made).await;
    let observed = observer.observe_fresh(&testbed.region, &made).await.unwrap().unwrap();
    assert_eq!(
        observer.created_this_resync(&testbed.region, &made).await,
        None,
        "found, not created"
    );
    let at = tokio::time::Instant::now();
    observer.record(&testbed.region, observed.clone(), Some(at)).await;
    assert_eq!(observer.created_this_resync(&testbed.region, &made).await, Some(at));
    observer.forget(&testbed.region, &made).await;
    assert_eq!(
        observer.created_this_resync(&testbed.region, &made).await,
        None,
        "deleted since"
    );
    observer.record(&testbed.region, observed, Some(at)).await;

    // the next resync describes the region once more and forgets what was absent
    let gone = format!("{prefix}/gone");
    assert!(observer.observe(&testbed.region, &gone).await.unwrap().is_none());
    registry.create_plain(&testbed.region, &gone).await;
    assert!(
        observer.observe(&testbed.region, &gone).await.unwrap().is_none(),
        "absent within the resync"
    );
    observer.start_resync();
    assert!(observer.observe(&testbed.region, &gone).await.unwrap().is_some());
    for name in &names {
        observer.observe(&testbed.region, name).await.unwrap();
    }
    assert_eq!(registry.calls("DescribeRepositories"), 2);
    assert_eq!(
        observer.created_this_resync(&testbed.region, &made).await,
        None,
        "created in an earlier resync"
    );
}

/// A role under `path` trusted by `subject`'s account, tagged `owner`.
async fn create_role(iam: &aws_sdk_iam::Client, path: &str, name: &str, subject: &str, owner: &str) {
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{subject}:root")}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(trust.to_string())
        .permissions_boundary("arn:aws:iam::123456789012:policy/boundary")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("berth.dev/owner")
                .value(owner)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateRole");
}

/// The account a role's trust policy names, as observed.
fn trusted_account(role: &berth::aws::ObservedRole) -> String {
    let trust = berth::policy::parse_policy(&role.trust_policy).unwrap();
    trust["Statement"][0]["Principal"]["AWS"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn one_role_listing_per_resync_and_tags_read_once_per_role() {
    let Some(testbed) = common::testbed() else { return };
    // IAM calls are counted where they go on the wire
    let proxy = common::proxy::AwsProxy::start(&testbed.aws_endpoint).await;
    let counted = common::Testbed {
        aws_endpoint: proxy.endpoint.clone(),
        kubeconfig: testbed.kubeconfig.clone(),
        region: testbed.region.clone(),
    };
    let clients = AwsClients::new(common::sdk_config(&counted).await, Metrics::new().aws.clone());
    let iam = IamClient::new(&clients);
    let moto = aws_sdk_iam::Client::new(&common::sdk_config(&testbed).await);
    let path = format!("/berth/observer-{}/", common::unique_suffix());
    let names: Vec<String> = (0..3).map(|i| format!("observer-role-{i}")).collect();
    for name in &names {
        create_role(&moto, &path, name, "111122223333", "c1/team/a").await;
    }
    let observer = RoleObserver::new(&path);
    let calls = |operation: &str| proxy.counts().get(operation).copied().unwrap_or_default();

    // the first resync lists once and confirms each role's tags and boundary with GetRole
    for name in &names {
        let role = observer.observe(&iam, 1, name).await.unwrap().expect("listed");
        assert_eq!(role.tags.get("berth.dev/owner").map(String::as_str), Some("c1/team/a"));
        assert!(role.permissions_boundary.is_some(), "{role:?}");
    }
    assert_eq!((calls("ListRoles"), calls("GetRole")), (1, 3));
    // the next one only lists, and still sees the trust policy as it is now
    moto.update_assume_role_policy()
        .role_name(&names[0])
        .policy_document(
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    for name in &names {
        let role = observer.observe(&iam, 2, name).await.unwrap().expect("listed");
        assert_eq!(role.tags.get("berth.dev/owner").map(String::as_str), Some("c1/team/a"));
    }
    let changed = observer.observe(&iam, 2, &names[0]).await.unwrap().unwrap();
    assert_eq!(trusted_account(&changed), "arn:aws:iam::999999999999:root");
    assert_eq!((calls("ListRoles"), calls("GetRole")), (2, 3));

    // a role deleted and created again under its name (a new id) is read in full: its new
    // owner tag is seen
    moto.delete_role().role_name(&names[1]).send().await.unwrap();
    create_role(&moto, &path, &names[1], "111122223333", "someone/else").await;
    let recreated = observer.observe(&iam, 3, &names[1]).await.unwrap().unwrap();
    assert_eq!(
        recreated.tags.get("berth.dev/owner").map(String::as_str),
        Some("someone/else")
    );
    assert_eq!((calls("ListRoles"), calls("GetRole")), (3, 4));

    // a role created after the listing is read on its own, not reported missing; an absent
    // one is read once per resync (a negative cache)
    let late = "observer-role-late";
    create_role(&moto, &path, late, "111122223333", "c1/team/a").await;
    assert!(observer.observe(&iam, 3, late).await.unwrap().is_some());
    for _ in 0..3 {
        assert!(
            observer
                .observe(&iam, 3, "observer-role-absent")
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!((calls("ListRoles"), calls("GetRole")), (3, 6));

    // after berth writes a role, the next lookup reads it, even within the resync
    observer.invalidate(&names[2]).await;
    observer.observe(&iam, 3, &names[2]).await.unwrap().unwrap();
    observer.observe(&iam, 3, &names[2]).await.unwrap().unwrap();
    assert_eq!((calls("ListRoles"), calls("GetRole")), (3, 7));

    for name in names.iter().map(String::as_str).chain([late]) {
        moto.delete_role().role_name(name).send().await.unwrap();
    }
}

/// moto answers a whole-region DescribeRepositories in one page whatever `maxResults` says; the
/// recording proxy pages it as AWS does, so that berth's listing meets AWS's paging on the test
/// bed (and the benchmark measures what berth holds per page, not per region).
#[tokio::test]
async fn the_recording_proxy_pages_the_listing_as_aws_does() {
    let Some(testbed) = common::testbed() else { return };
    // a region of its own, so that no other test's repositories move the pages under it
    let region = "ca-west-1";
    let direct = common::ecr_client(&testbed, region).await;
    let prefix = format!("paging-{}", common::unique_suffix());
    let names: Vec<String> = (0..5).map(|i| format!("{prefix}/repo-{i}")).collect();
    for name in &names {
        direct
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .expect("CreateRepository");
    }
    let proxy = common::proxy::AwsProxy::start(&testbed.aws_endpoint).await;
    let through_proxy = aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(&common::sdk_config(&testbed).await)
            .region(aws_config::Region::new(region))
            .endpoint_url(&proxy.endpoint)
            .build(),
    );

    let pages: Vec<_> = through_proxy
        .describe_repositories()
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|page| page.expect("DescribeRepositories").repositories.unwrap_or_default())
        .collect();
    assert!(pages.iter().all(|page| page.len() <= 2), "{pages:?}");
    assert!(pages.len() >= 3, "5 repositories in pages of 2: {pages:?}");
    let listed: Vec<String> = pages
        .iter()
        .flatten()
        .filter_map(|repository| repository.repository_name.clone())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert_eq!(listed, names, "every repository once, in moto's order");
    assert_eq!(proxy.counts()["DescribeRepositories"], pages.len() as u64);

    // berth's listing (pages of 1,000) still sees them all
    let registry = berth::aws::EcrRegistry::new(AwsClients::new(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .endpoint_url(&proxy.endpoint)
            .load()
            .await,
        Metrics::new().aws.clone(),
    ));
    let mut seen = Vec::new();
    let mut each = |repository: berth::aws::ObservedRepository| {
        if repository.name.starts_with(&prefix) {
            seen.push(repository.name);
        }
    };
    berth::aws::Registry::describe_repositories(&registry, region, &mut each)
        .await
        .expect("DescribeRepositories");
    seen.sort();
    assert_eq!(seen, names);
    for name in &names {
        direct
            .delete_repository()
            .repository_name(name)
            .send()
            .await
            .expect("DeleteRepository");
    }
}

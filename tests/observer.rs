//! Batched observation against moto: one DescribeRepositories per region per resync serves
//! every lookup; a name missing from the snapshot is described on its own.

mod common;

use std::sync::Arc;

use berth::aws::RepositoryObserver;
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

    // a repository created after the snapshot is described on its own, not reported missing
    let late = format!("{prefix}/late");
    registry.create_plain(&testbed.region, &late).await;
    assert_eq!(
        observer.observe(&testbed.region, &late).await.unwrap().map(|r| r.name),
        Some(late.clone())
    );
    assert_eq!(registry.calls("DescribeRepositories"), 1);
    assert_eq!(registry.calls("DescribeRepository"), 1);
    // ...and then remembered
    observer.observe(&testbed.region, &late).await.unwrap();
    assert_eq!(registry.calls("DescribeRepository"), 1);

    // a missing repository is None after its own describe, and is not described again
    // within the resync (a negative cache)
    let absent = format!("{prefix}/absent");
    for _ in 0..3 {
        assert!(observer.observe(&testbed.region, &absent).await.unwrap().is_none());
    }
    assert_eq!(
        registry.calls("DescribeRepository"),
        2,
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
    assert_eq!(registry.calls("DescribeRepository"), 3);

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
}

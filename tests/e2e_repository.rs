//! End to end: `berth run` as a real process against the real apiserver and moto.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ecr::types::{ImageTagMutability, Tag};
use common::{Operator, TIMEOUT, object, setup, wait_for, wait_reason};
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams};

async fn describe(ecr: &aws_sdk_ecr::Client, name: &str) -> Option<aws_sdk_ecr::types::Repository> {
    match ecr.describe_repositories().repository_names(name).send().await {
        Ok(output) => output.repositories().first().cloned(),
        Err(e) if format!("{e:?}").contains("RepositoryNotFoundException") => None,
        Err(e) => panic!("DescribeRepositories: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_correct_drift_and_retain() {
    let Some(s) = setup("e2e-life").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &[]);
    let name = format!("{}/api", s.namespace);

    let spec = serde_json::json!({
        "repositoryName": name, "imageTagMutability": "Immutable", "mutabilityExclusions": ["latest"],
        "tags": {"team": "payments"},
    });
    s.create("api", spec).await;
    let ready = wait_reason(&s.repositories, "api", "Synced", &operator).await;

    // the repository exists with exactly the declared settings
    let repository = describe(&s.ecr, &name).await.expect("repository created");
    assert_eq!(
        repository.image_tag_mutability(),
        Some(&ImageTagMutability::ImmutableWithExclusion)
    );
    let exclusions: Vec<&str> = repository
        .image_tag_mutability_exclusion_filters()
        .iter()
        .map(|f| f.filter())
        .collect();
    assert_eq!(exclusions, ["latest"]);
    let status = ready.status.as_ref().unwrap();
    assert_eq!(status.repository_arn.as_deref(), repository.repository_arn());
    assert_eq!(status.repository_uri.as_deref(), repository.repository_uri());
    assert_eq!(status.registry_id.as_deref(), repository.registry_id());
    let arn = repository.repository_arn().unwrap().to_owned();
    let owner = format!("{}/{}/api", operator.cluster_id, s.namespace);
    let expected_tags: BTreeMap<String, String> = [
        ("team", "payments"),
        ("berth.dev/managed-by", "berth"),
        ("berth.dev/owner", owner.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(common::repository_tags(&s.ecr, &arn).await, expected_tags);
    assert_eq!(s.events("api", "Created").await.len(), 1);

    // once the statistics are in (an empty repository: 0 images, 0 bytes), a second look at an
    // unchanged object changes nothing in status
    let settled = wait_for(Duration::from_secs(20), || async {
        let current = s.repositories.get("api").await.ok()?;
        let status = current.status.as_ref()?;
        (status.image_count == Some(0) && status.size_bytes == Some(0)).then_some(current)
    })
    .await
    .expect("statistics written into status");
    assert_eq!(
        settled.status.as_ref().unwrap().conditions,
        ready.status.as_ref().unwrap().conditions
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = s.repositories.get("api").await.unwrap();
    assert_eq!(again.status, settled.status, "status changed without any change");
    assert_eq!(again.metadata.resource_version, settled.metadata.resource_version);

    // edit mutability and tags: applied
    s.merge(
        "api",
        serde_json::json!({"spec": {
            "imageTagMutability": "Mutable", "mutabilityExclusions": null, "tags": {"team": "checkout", "env": "prod"}
        }}),
    )
    .await;
    wait_reason(&s.repositories, "api", "Synced", &operator).await;
    let repository = describe(&s.ecr, &name).await.unwrap();
    assert_eq!(repository.image_tag_mutability(), Some(&ImageTagMutability::Mutable));
    let current_tags = common::repository_tags(&s.ecr, &arn).await;
    assert_eq!(current_tags.get("team").map(String::as_str), Some("checkout"));
    assert_eq!(current_tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(current_tags.len(), 4, "{current_tags:?}");

    // out-of-band changes are reverted within one resync, with a DriftCorrected Event
    s.ecr
        .put_image_tag_mutability()
        .repository_name(&name)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    s.ecr
        .tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("rogue").value("x").build().unwrap())
        .send()
        .await
        .unwrap();
    let reverted = wait_for(Duration::from_secs(20), || async {
        let repository = describe(&s.ecr, &name).await?;
        let current = common::repository_tags(&s.ecr, &arn).await;
        (repository.image_tag_mutability() == Some(&ImageTagMutability::Mutable) && !current.contains_key("rogue"))
            .then_some(())
    })
    .await;
    assert!(reverted.is_some(), "drift not corrected\n{}", operator.log_text());
    let drift = wait_for(Duration::from_secs(10), || async {
        let events = s.events("api", "DriftCorrected").await;
        (events.len() >= 2).then_some(events)
    })
    .await
    .expect("DriftCorrected events");
    let notes: Vec<String> = drift.iter().filter_map(|e| e.note.clone()).collect();
    assert!(notes.iter().any(|n| n.contains("imageTagMutability")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("tags")), "{notes:?}");

    // Retain: deleting the object leaves the repository
    s.repositories.delete("api", &DeleteParams::default()).await.unwrap();
    let gone = s.wait_gone("api").await;
    assert!(gone, "object not deleted (finalizer left?)");
    assert!(
        describe(&s.ecr, &name).await.is_some(),
        "Retain must keep the repository"
    );
    // the operator forgets the object: it leaves the managed-objects gauge and its statistics
    let forgotten = wait_for(TIMEOUT, || async {
        let text = operator.get("/metrics").await?.1;
        let managed = common::metric_sum(&text, "berth_managed_objects", &[("kind", "EcrRepository")]);
        let stats = common::metric_sum(&text, "berth_repository_images", &[("name", "api")]);
        (managed == 0.0 && stats == 0.0 && !text.contains("berth_repository_images{")).then_some(())
    })
    .await;
    assert!(forgotten.is_some(), "{:?}", operator.get("/metrics").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policy_removes_the_repository_unless_it_holds_images() {
    let Some(s) = setup("e2e-del").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &[]);

    // Delete on an empty repository: gone
    let empty = format!("{}/empty", s.namespace);
    s.create(
        "empty",
        serde_json::json!({"repositoryName": empty, "deletionPolicy": "Delete"}),
    )
    .await;
    let ready = wait_reason(&s.repositories, "empty", "Synced", &operator).await;
    assert!(
        ready
            .finalizers()
            .contains(&berth::reconcile::repository::FINALIZER.to_owned())
    );
    s.repositories.delete("empty", &DeleteParams::default()).await.unwrap();
    let gone = s.wait_gone("empty").await;
    assert!(gone, "object not released\n{}", operator.log_text());
    assert!(
        describe(&s.ecr, &empty).await.is_none(),
        "Delete must remove the repository"
    );

    // Delete with images and no forceDelete: blocked, nothing deleted
    let full = format!("{}/full", s.namespace);
    s.create(
        "full",
        serde_json::json!({"repositoryName": full, "deletionPolicy": "Delete"}),
    )
    .await;
    wait_reason(&s.repositories, "full", "Synced", &operator).await;
    for tag in ["v1", "v2"] {
        s.ecr
            .put_image()
            .repository_name(&full)
            .image_tag(tag)
            .image_manifest(common::image_manifest(tag))
            .send()
            .await
            .unwrap();
    }
    s.repositories.delete("full", &DeleteParams::default()).await.unwrap();
    let blocked = wait_reason(&s.repositories, "full", "DeletionBlocked", &operator).await;
    let message = &blocked.status.as_ref().unwrap().condition("Ready").unwrap().message;
    assert!(message.contains("2 images"), "{message}");
    assert!(
        describe(&s.ecr, &full).await.is_some(),
        "a repository with images must not be deleted"
    );

    // forceDelete lets it go
    s.merge("full", serde_json::json!({"spec": {"forceDelete": true}}))
        .await;
    let gone = s.wait_gone("full").await;
    assert!(gone, "object not released after forceDelete\n{}", operator.log_text());
    assert!(describe(&s.ecr, &full).await.is_none());

    // Retain carries no finalizer: nothing to clean up
    let kept = format!("{}/kept", s.namespace);
    s.create("kept", serde_json::json!({"repositoryName": kept})).await;
    let ready = wait_reason(&s.repositories, "kept", "Synced", &operator).await;
    assert!(ready.finalizers().is_empty(), "{:?}", ready.finalizers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_and_ownership() {
    let Some(s) = setup("e2e-own").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &[]);
    let name = format!("{}/legacy", s.namespace);
    s.ecr
        .create_repository()
        .repository_name(&name)
        .tags(Tag::builder().key("team").value("old").build().unwrap())
        .send()
        .await
        .unwrap();

    // refused without adopt, and nothing is written
    s.create("legacy", serde_json::json!({"repositoryName": name})).await;
    wait_reason(&s.repositories, "legacy", "AdoptionRequired", &operator).await;
    let arn = describe(&s.ecr, &name)
        .await
        .unwrap()
        .repository_arn()
        .unwrap()
        .to_owned();
    assert!(
        !common::repository_tags(&s.ecr, &arn)
            .await
            .contains_key("berth.dev/owner")
    );

    // accepted with it
    s.merge(
        "legacy",
        serde_json::json!({"spec": {"adopt": true, "tags": {"team": "new"}}}),
    )
    .await;
    wait_reason(&s.repositories, "legacy", "Synced", &operator).await;
    let adopted_tags = common::repository_tags(&s.ecr, &arn).await;
    assert_eq!(
        adopted_tags.get("berth.dev/owner"),
        Some(&format!("{}/{}/legacy", operator.cluster_id, s.namespace))
    );
    assert_eq!(adopted_tags.get("team").map(String::as_str), Some("new"));
    assert_eq!(s.events("legacy", "Adopted").await.len(), 1);

    // a second object naming the same repository is refused, even with adopt
    s.create(
        "twin",
        serde_json::json!({"repositoryName": name, "adopt": true, "tags": {"team": "twin"}}),
    )
    .await;
    let twin = wait_reason(&s.repositories, "twin", "OwnedByOther", &operator).await;
    assert!(
        twin.status
            .unwrap()
            .condition("Ready")
            .unwrap()
            .message
            .contains("legacy")
    );
    assert_eq!(
        common::repository_tags(&s.ecr, &arn)
            .await
            .get("team")
            .map(String::as_str),
        Some("new"),
        "the twin must not write"
    );
    assert!(!s.events("twin", "OwnedByOther").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_without_aws_calls() {
    let Some(s) = setup("e2e-bad").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &["--require-namespace-prefix"]);

    // the apiserver's schema refuses what it can: a bad repository name pattern
    let refused = s
        .repositories
        .create(
            &PostParams::default(),
            &object("bad", serde_json::json!({"repositoryName": "Not_Valid"})),
        )
        .await
        .expect_err("the schema refuses a bad name");
    assert!(refused.to_string().contains("repositoryName"), "{refused}");

    // CEL-only rules (dropped by this 1.20 apiserver) are caught by the controller
    let reserved = format!("{}/reserved", s.namespace);
    s.create(
        "reserved",
        serde_json::json!({"repositoryName": reserved, "tags": {"aws:team": "x"}}),
    )
    .await;
    let invalid = wait_reason(&s.repositories, "reserved", "InvalidSpec", &operator).await;
    let stalled = invalid
        .status
        .as_ref()
        .and_then(|s| s.condition("Stalled"))
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        invalid
            .status
            .unwrap()
            .condition("Ready")
            .unwrap()
            .message
            .contains("spec.tags")
    );
    assert!(
        describe(&s.ecr, &reserved).await.is_none(),
        "no repository for an invalid spec"
    );

    // the tenancy guard (a name of this run only: moto outlives a test bed's earlier runs)
    let foreign_name = format!("other-{}/app", s.namespace);
    s.create("foreign", serde_json::json!({"repositoryName": foreign_name}))
        .await;
    let foreign = wait_reason(&s.repositories, "foreign", "InvalidSpec", &operator).await;
    assert!(
        foreign
            .status
            .unwrap()
            .condition("Ready")
            .unwrap()
            .message
            .contains("must start with")
    );
    assert!(describe(&s.ecr, &foreign_name).await.is_none());
    assert!(!s.events("foreign", "InvalidSpec").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_object_whose_repository_appeared_after_the_listing_is_planned_from_a_fresh_read() {
    let Some(s) = setup("e2e-late").await else { return };
    // one resync for the whole test: the region's listing is taken once, by the first object
    let (proxy, operator) = s.operator_behind_proxy(&["--resync-interval", "1h"]).await;
    s.create(
        "first",
        serde_json::json!({"repositoryName": format!("{}/first", s.namespace)}),
    )
    .await;
    wait_reason(&s.repositories, "first", "Synced", &operator).await;
    // a new object is created from the listing alone: no DescribeRepositories of its own
    assert_eq!(proxy.invocations("DescribeRepositories").len(), 1);

    // created by someone else after the listing
    let name = format!("{}/appeared", s.namespace);
    s.ecr.create_repository().repository_name(&name).send().await.unwrap();
    s.create("appeared", serde_json::json!({"repositoryName": name})).await;
    wait_reason(&s.repositories, "appeared", "AdoptionRequired", &operator).await;
    s.merge("appeared", serde_json::json!({"spec": {"adopt": true}})).await;
    wait_reason(&s.repositories, "appeared", "Synced", &operator).await;
    assert_eq!(s.events("appeared", "Adopted").await.len(), 1);
    // the RepositoryAlreadyExists answer was handled in the same reconcile: never a Conflict
    assert!(s.events("appeared", "AwsConflict").await.is_empty());
    let creations = proxy.invocations("CreateRepository");
    assert_eq!(
        creations.len(),
        2,
        "first, and the one attempt that found the repository there"
    );
}

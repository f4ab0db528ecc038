//! Proves the test bed: CRDs install on the real apiserver, an EcrRepository round-trips, and
//! moto answers the ECR API through the SDK.

mod common;

use berth::api::{EcrRepository, EcrRepositorySpec, TagMutability};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};

#[tokio::test]
async fn crds_install_and_an_ecr_repository_round_trips() {
    let Some(_testbed) = common::testbed() else {
        return;
    };
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::namespace(&client, "harness").await;

    let repositories: Api<EcrRepository> = Api::namespaced(client.clone(), &namespace);
    let object = EcrRepository::new(
        "payments-api",
        EcrRepositorySpec {
            repository_name: Some("payments/payments-api".into()),
            image_tag_mutability: TagMutability::Immutable,
            ..Default::default()
        },
    );
    repositories
        .create(&PostParams::default(), &object)
        .await
        .expect("create EcrRepository");
    let read_back = repositories.get("payments-api").await.expect("read EcrRepository");
    assert_eq!(read_back.spec.repository_name.as_deref(), Some("payments/payments-api"));
    assert_eq!(read_back.spec.image_tag_mutability, TagMutability::Immutable);
    // defaults from the schema were applied by the apiserver
    assert_eq!(read_back.spec.deletion_policy, berth::api::DeletionPolicy::Retain);
    assert_eq!(read_back.spec.encryption.type_, berth::api::EncryptionType::Aes256);

    // the structural schema is enforced: an unknown enum value is refused
    let resource = ApiResource::erase::<EcrRepository>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
        "metadata": {"name": "bad"}, "spec": {"imageTagMutability": "Sometimes"}
    }))
    .unwrap();
    let refused = raw
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("a bad enum must be refused");
    assert!(refused.to_string().contains("imageTagMutability"), "{refused}");
}

#[tokio::test]
async fn moto_serves_ecr_through_the_sdk() {
    let Some(testbed) = common::testbed() else {
        return;
    };
    let ecr = aws_sdk_ecr::Client::new(&common::sdk_config(&testbed).await);
    let name = format!("harness/probe-{}", common::unique_suffix());
    let created = ecr
        .create_repository()
        .repository_name(&name)
        .send()
        .await
        .expect("CreateRepository");
    assert_eq!(
        created.repository().and_then(|r| r.repository_name()),
        Some(name.as_str())
    );
    let described = ecr
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .expect("DescribeRepositories");
    let repository = &described.repositories()[0];
    assert!(repository.repository_uri().unwrap().ends_with(&format!("/{name}")));
    ecr.delete_repository()
        .repository_name(&name)
        .send()
        .await
        .expect("DeleteRepository");
}

//! The image inventory against moto: DescribeImages maps to the kept image fields, concurrent
//! reads of a repository share one call, and kept images serve later reads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth::aws::{AwsErrorKind, ImageStats};
use berth::images::{ImageInventory, ImageStorage, RepositoryRef};
use common::counting::CountingRegistry;

#[tokio::test]
async fn one_describe_images_pass_serves_every_reader() {
    let Some(testbed) = common::testbed() else { return };
    let sdk_config = common::sdk_config(&testbed).await;
    let ecr = aws_sdk_ecr::Client::new(&sdk_config);
    let registry = Arc::new(CountingRegistry::on(sdk_config));
    let name = format!("inventory-{}/app", common::unique_suffix());
    registry.create_plain(&testbed.region, &name).await;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // v1 and latest name one image, v2 another
    for (tag, seed) in [("v1", "one"), ("latest", "one"), ("v2", "two")] {
        ecr.put_image()
            .repository_name(&name)
            .image_tag(tag)
            .image_manifest(common::image_manifest(seed))
            .send()
            .await
            .expect("put image");
    }

    let inventory = ImageInventory::new(registry.clone());
    let repository = RepositoryRef::new(&testbed.region, &name);
    let reads = futures::future::join_all((0..5).map(|_| inventory.read(&repository))).await;
    assert_eq!(
        registry.calls("DescribeImages"),
        1,
        "5 concurrent reads share one DescribeImages"
    );
    let images = reads.into_iter().next().unwrap().expect("images");
    let mut tags: Vec<Vec<String>> = images
        .iter()
        .map(|image| {
            let mut tags = image.tags.clone();
            tags.sort();
            tags
        })
        .collect();
    tags.sort();
    assert_eq!(tags, [vec!["latest", "v1"], vec!["v2"]]);
    for image in images.iter() {
        assert!(image.digest.starts_with("sha256:"), "{image:?}");
        assert!(image.pushed_at >= started - 5, "pushed after the test began: {image:?}");
        assert_eq!(image.storage, ImageStorage::Standard);
        assert_eq!(image.transitioned_at, None);
    }
    let stats = ImageStats::from_images(&images);
    assert_eq!(stats.image_count, 2);
    assert_eq!(stats.last_pushed_at, images.iter().map(|image| image.pushed_at).max());

    // nothing kept until a feature retains the repository; then kept images serve reads
    assert_eq!(inventory.kept(), 0);
    inventory.retain("lifecycle", &repository);
    inventory.read(&repository).await.expect("images");
    inventory
        .images(&repository, Duration::from_secs(3600))
        .await
        .expect("images");
    assert_eq!(registry.calls("DescribeImages"), 2);
    assert_eq!(inventory.kept(), 1);
    inventory.release("lifecycle", &repository);
    assert_eq!(inventory.kept(), 0);

    // a repository that does not exist is NotFound, kept nowhere
    let missing = RepositoryRef::new(&testbed.region, format!("{name}-missing"));
    let error = inventory.read(&missing).await.expect_err("no such repository");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

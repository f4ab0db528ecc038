//! berth's Event recorder against the real apiserver: a repeated Event bumps its series count,
//! a new note for the same reason gets an Event that shows it, and Events about a cluster-scoped
//! object land in `kube-system`.

mod common;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::events::{EventType, Reporter};
use kube::{Resource, ResourceExt};

use berth::reconcile::events::Recorder;

fn recorder(client: &kube::Client) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: "berth".into(),
            instance: Some("events-test".into()),
        },
    )
}

/// The Events in `namespace` with `reason` about the object named `name`, oldest first.
async fn events(client: &kube::Client, namespace: &str, name: &str, reason: &str) -> Vec<Event> {
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason) && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
}

fn series_count(event: &Event) -> i32 {
    event.series.as_ref().map_or(1, |s| s.count)
}

#[tokio::test]
async fn a_new_note_gets_an_event_that_shows_it_and_a_repeat_bumps_the_series() {
    let Some(s) = common::setup("events").await else { return };
    s.create("api", serde_json::json!({})).await;
    let regarding = s.repositories.get("api").await.unwrap().object_ref(&());
    let recorder = recorder(&s.client);
    let blocked = |note: &'static str| {
        let (recorder, regarding) = (&recorder, &regarding);
        async move {
            recorder
                .publish(regarding, EventType::Warning, "DeletionBlocked", "Reconcile", note)
                .await
                .expect("publish")
        }
    };

    blocked("the repository still holds 3 images").await;
    blocked("the repository still holds 3 images").await;
    let found = s.events("api", "DeletionBlocked").await;
    assert_eq!(found.len(), 1, "a repeat is one Event: {found:?}");
    assert_eq!(series_count(&found[0]), 2);

    blocked("the repository still holds 2 images").await;
    let found = events(&s.client, &s.namespace, "api", "DeletionBlocked").await;
    assert_eq!(found.len(), 2, "a new note is a new Event: {found:?}");
    assert_eq!(
        found[1].note.as_deref(),
        Some("the repository still holds 2 images"),
        "the latest Event shows the latest note"
    );
    // the earlier series is left as it was
    assert_eq!(found[0].note.as_deref(), Some("the repository still holds 3 images"));
    assert_eq!(series_count(&found[0]), 2);

    // back to a note seen before: that series goes on
    blocked("the repository still holds 3 images").await;
    let found = events(&s.client, &s.namespace, "api", "DeletionBlocked").await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(series_count(&found[0]), 3);
}

#[tokio::test]
async fn events_about_a_cluster_scoped_object_land_in_kube_system() {
    let Some(s) = common::setup("events-cluster").await else {
        return;
    };
    // the test's namespace is itself cluster-scoped, like a ScanPolicy
    let namespace = Api::<Namespace>::all(s.client.clone()).get(&s.namespace).await.unwrap();
    let regarding = namespace.object_ref(&());
    let recorder = recorder(&s.client);
    for _ in 0..2 {
        recorder
            .publish(
                &regarding,
                EventType::Normal,
                "Applied",
                "PutRegistryScanningConfiguration",
                "applied",
            )
            .await
            .expect("publish about a cluster-scoped object");
    }
    let found = events(&s.client, "kube-system", &namespace.name_any(), "Applied").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(series_count(&found[0]), 2);
    assert_eq!(found[0].note.as_deref(), Some("applied"));
}

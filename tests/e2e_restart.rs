//! Restarts, end to end (issue 14). berth is killed (SIGKILL) while it converges 200
//! EcrRepositories and a new process finishes the work: nothing created twice, nothing
//! missing, nothing leaked once the objects are deleted. And the apiserver berth talks to is
//! killed and started again under a running berth (an apiserver of the test's own on the test
//! bed's etcd; the objects change meanwhile through the shared one): berth reports watch
//! errors, does not exit, and converges what changed while it could not see it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use berth::api::EcrRepository;
use berth::policy;
use berth::reconcile::repository::FINALIZER;
use common::apiserver::ExtraApiserver;
use common::{Operator, Setup, is_write, leader_args, metric_sum, setup, wait_for, wait_reason};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

const REPOSITORIES: usize = 200;
/// berth is killed at the first poll (every 200 ms) that finds at least this many objects Ready.
const KILL_AFTER_READY: usize = 30;
const CONVERGE: Duration = Duration::from_secs(150);

/// Object `index`: every object deletes its repository with it; 30% grant pulls to an account
/// and an organization, 10% get a GitHub Actions push role (the benchmark's shares).
fn spec(namespace: &str, index: usize) -> Value {
    let mut spec = json!({
        "repositoryName": format!("{namespace}/svc-{index:03}"),
        "deletionPolicy": "Delete",
        "tags": {"team": "restart"},
    });
    match index % 10 {
        0..=2 => spec["access"]["pull"] = json!([{"accountId": "111122223333"}, {"organizationId": "o-a1b2c3d4e5"}]),
        3 => {
            spec["access"]["push"] = json!([{"githubActions": {
                "repository": format!("acme/svc-{index:03}"), "refs": ["refs/heads/main"],
            }}])
        }
        _ => {}
    }
    spec
}

fn has_push_role(index: usize) -> bool {
    index % 10 == 3
}

fn object_name(index: usize) -> String {
    format!("svc-{index:03}")
}

async fn iam(s: &Setup) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&common::sdk_config(&s.testbed).await)
}

/// The names of the objects whose Ready condition is Synced for their current generation.
async fn synced(s: &Setup) -> BTreeSet<String> {
    use common::ReadyStatus;
    let Ok(list) = s.repositories.list(&ListParams::default()).await else {
        return BTreeSet::new();
    };
    list.items
        .iter()
        .filter(|o| o.ready() == Some(("Synced".to_owned(), o.metadata.generation)))
        .map(|o| o.name_any())
        .collect()
}

/// ECR's repositories under `<namespace>/`: name → ARN.
async fn ecr_repositories(s: &Setup) -> BTreeMap<String, String> {
    let pages: Vec<_> = s.ecr.describe_repositories().into_paginator().send().collect().await;
    let prefix = format!("{}/", s.namespace);
    pages
        .into_iter()
        .flat_map(|page| page.expect("DescribeRepositories").repositories.unwrap_or_default())
        .filter_map(|r| Some((r.repository_name?, r.repository_arn?)))
        .filter(|(name, _)| name.starts_with(&prefix))
        .collect()
}

/// IAM's roles named after this test's namespace (push roles are `<namespace>-<name>-…-push`):
/// name → ARN.
async fn iam_roles(s: &Setup, iam: &aws_sdk_iam::Client) -> BTreeMap<String, String> {
    let pages: Vec<_> = iam.list_roles().into_paginator().send().collect().await;
    let prefix = format!("{}-", s.namespace);
    pages
        .into_iter()
        .flat_map(|page| page.expect("ListRoles").roles)
        .filter(|role| role.role_name().starts_with(&prefix))
        .map(|role| (role.role_name().to_owned(), role.arn().to_owned()))
        .collect()
}

/// berth's two ownership tags for the object `name`, as the operator `cluster_id` writes them.
fn ownership(cluster_id: &str, namespace: &str, name: &str) -> [(String, String); 2] {
    [
        ("berth.dev/managed-by".to_owned(), "berth".to_owned()),
        ("berth.dev/owner".to_owned(), format!("{cluster_id}/{namespace}/{name}")),
    ]
}

fn carries(tags: &BTreeMap<String, String>, expected: &[(String, String)]) -> bool {
    expected.iter().all(|(k, v)| tags.get(k) == Some(v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_berth_killed_while_converging_200_repositories_is_replaced_without_duplicates_or_leaks() {
    let Some(s) = setup("e2e-restart").await else { return };
    let iam = iam(&s).await;
    // a resync of 200 objects every 3 s (the harness's default) would keep the 8 concurrent
    // reconciles and the AWS budget busy with objects already in sync: the restart is what is
    // tested, and a new process reconciles every object once at start anyway
    let args = [
        "--create-github-oidc-provider",
        "--stats-interval",
        "1h",
        "--resync-interval",
        "60s",
    ];
    let (first_proxy, mut first) = s.replica_behind_proxy("-first", &args).await;

    // all 200 at once
    let creates = futures::stream::iter(0..REPOSITORIES)
        .map(|index| {
            let object = common::object(&object_name(index), spec(&s.namespace, index));
            let api = s.repositories.clone();
            async move { api.create(&PostParams::default(), &object).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(creates.iter().all(Result::is_ok), "{creates:?}");

    // kill it in the middle of the work
    let ready_at_kill = wait_for(CONVERGE, || async {
        let ready = synced(&s).await.len();
        (ready >= KILL_AFTER_READY).then_some(ready)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than {} Ready\n{}", KILL_AFTER_READY, first.log_text()));
    let killed = first.signal_and_wait("KILL", Duration::from_secs(10));
    assert!(killed.is_some(), "berth survived SIGKILL");
    let first_calls = first_proxy.counts();
    let in_ecr_at_kill = ecr_repositories(&s).await.len();
    eprintln!(
        "killed with {ready_at_kill} Ready and {in_ecr_at_kill} repositories in ECR; AWS calls so far: {first_calls:?}"
    );
    assert!(
        ready_at_kill < REPOSITORIES,
        "all {REPOSITORIES} were Ready before the kill: it interrupted nothing"
    );
    // the case a restart must get right: repositories created whose objects do not say so yet
    assert!(
        in_ecr_at_kill > ready_at_kill,
        "every repository created before the kill was already Ready: no half-done object to finish"
    );

    // a new process finishes the work
    let (second_proxy, second) = s.replica_behind_proxy("-second", &args).await;
    let started = Instant::now();
    let all_ready = wait_for(CONVERGE, || async {
        (synced(&s).await.len() == REPOSITORIES).then_some(())
    })
    .await;
    assert!(
        all_ready.is_some(),
        "{} of {REPOSITORIES} Ready after the restart\n{}",
        synced(&s).await.len(),
        second.log_text()
    );
    let second_calls = second_proxy.counts();
    eprintln!(
        "all Ready {:.1} s after the restart; AWS calls of the new process: {second_calls:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        second_calls.keys().any(|op| is_write(op)),
        "the new process wrote nothing: the kill interrupted nothing: {second_calls:?}"
    );

    // ECR holds exactly the declared repositories, IAM exactly the declared push roles, all
    // tagged as this cluster's
    let expected_repositories: BTreeSet<String> = (0..REPOSITORIES)
        .map(|i| format!("{}/{}", s.namespace, object_name(i)))
        .collect();
    let repositories = ecr_repositories(&s).await;
    assert_eq!(
        repositories.keys().cloned().collect::<BTreeSet<_>>(),
        expected_repositories
    );
    let expected_roles: BTreeSet<String> = (0..REPOSITORIES)
        .filter(|i| has_push_role(*i))
        .map(|i| policy::push_role_name(&s.namespace, &object_name(i)))
        .collect();
    let roles = iam_roles(&s, &iam).await;
    assert_eq!(roles.keys().cloned().collect::<BTreeSet<_>>(), expected_roles);
    let cluster_id = &second.cluster_id;
    let untagged: Vec<String> = futures::stream::iter(0..REPOSITORIES)
        .map(|index| {
            let name = object_name(index);
            let arn = repositories[&format!("{}/{name}", s.namespace)].clone();
            let expected = ownership(cluster_id, &s.namespace, &name);
            let s = &s;
            async move { (!carries(&common::repository_tags(&s.ecr, &arn).await, &expected)).then_some(name) }
        })
        .buffer_unordered(8)
        .filter_map(std::future::ready)
        .collect()
        .await;
    assert!(
        untagged.is_empty(),
        "repositories without berth's ownership tags: {untagged:?}"
    );
    for index in (0..REPOSITORIES).filter(|i| has_push_role(*i)) {
        let name = object_name(index);
        let role = common::iam_role(&iam, &policy::push_role_name(&s.namespace, &name))
            .await
            .expect("push role");
        let tags: BTreeMap<String, String> = role
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        assert!(
            carries(&tags, &ownership(cluster_id, &s.namespace, &name)),
            "{name}'s role: {tags:?}"
        );
    }

    // each object's status names its repository and role, and carries the cleanup finalizer
    let objects: BTreeMap<String, EcrRepository> = s
        .repositories
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|o| (o.name_any(), o))
        .collect();
    assert_eq!(objects.len(), REPOSITORIES);
    for index in 0..REPOSITORIES {
        let name = object_name(index);
        let object = &objects[&name];
        let status = object.status.as_ref().expect("status");
        assert_eq!(status.observed_generation, object.metadata.generation, "{name}");
        assert_eq!(
            status.repository_arn.as_ref(),
            Some(&repositories[&format!("{}/{name}", s.namespace)]),
            "{name}"
        );
        let role = has_push_role(index).then(|| roles[&policy::push_role_name(&s.namespace, &name)].clone());
        assert_eq!(status.push_role_arn, role, "{name}");
        assert!(
            object.finalizers().iter().any(|f| f == FINALIZER),
            "{name} has no finalizer"
        );
    }

    // deleting every object removes every repository and role, and no object stays behind
    s.repositories
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete all");
    let gone = wait_for(CONVERGE, || async {
        s.repositories
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    let stuck: Vec<String> = s
        .repositories
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    assert!(
        gone.is_some(),
        "objects stuck after delete: {stuck:?}\n{}",
        second.log_text()
    );
    assert_eq!(ecr_repositories(&s).await, BTreeMap::new(), "repositories leaked");
    assert_eq!(iam_roles(&s, &iam).await, BTreeMap::new(), "push roles leaked");
}

/// berth on an apiserver of the test's own, which is killed while berth runs: while it is
/// down, one object's tags change and another object is created through the shared apiserver;
/// once it is back, berth, the same process, converges both.
/// `leading`: with leader election on a Lease of 6 s, shorter than the outage.
async fn survives_an_apiserver_restart(prefix: &str, leading: bool) {
    let Some(s) = setup(prefix).await else { return };
    let mut apiserver = ExtraApiserver::start(&s.namespace).await;
    let owned_args = if leading {
        leader_args(&format!("berth-{}", s.namespace), &s.namespace, "6s")
    } else {
        vec!["--stats-interval".to_owned(), "1h".to_owned()]
    };
    let args: Vec<&str> = owned_args.iter().map(String::as_str).collect();
    let mut operator = Operator::spawn(
        &s.testbed,
        &s.namespace,
        &s.testbed.aws_endpoint,
        "",
        Some(&apiserver.kubeconfig),
        &args,
    );
    let declared =
        |name: &str, team: &str| json!({"repositoryName": format!("{}/{name}", s.namespace), "tags": {"team": team}});
    s.create("one", declared("one", "before")).await;
    s.create("two", declared("two", "before")).await;
    wait_reason(&s.repositories, "one", "Synced", &operator).await;
    wait_reason(&s.repositories, "two", "Synced", &operator).await;

    apiserver.kill();
    // berth notices: a watch fails (and, leading, its term lapses without a confirmed renewal)
    let noticed = wait_for(Duration::from_secs(60), || async {
        let text = operator.get("/metrics").await?.1;
        let watch_errors = metric_sum(&text, "berth_watch_errors_total", &[]);
        let stood_down = !leading || metric_sum(&text, "berth_leader", &[]) == 0.0;
        (watch_errors > 0.0 && stood_down).then_some(watch_errors)
    })
    .await;
    assert!(
        noticed.is_some(),
        "berth counted no watch error (or, leading, did not stand down) while its apiserver was down; exited: {:?}\n{}",
        operator.exited(),
        operator.log_text()
    );
    s.merge("one", json!({"spec": {"tags": {"team": "after"}}})).await;
    s.create("three", declared("three", "new")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(operator.exited(), None, "berth exited\n{}", operator.log_text());
    let three = format!("{}/three", s.namespace);
    assert!(
        !ecr_repositories(&s).await.contains_key(&three),
        "berth saw 'three' with its apiserver down"
    );

    apiserver.start_again().await;
    let back = Instant::now();
    let deadline = Duration::from_secs(90);
    for name in ["one", "three"] {
        let converged = wait_for(deadline, || async { synced(&s).await.contains(name).then_some(()) }).await;
        assert!(
            converged.is_some(),
            "{name} not converged after the apiserver came back\n{}",
            operator.log_text()
        );
    }
    let converged_after = back.elapsed();
    let repositories = ecr_repositories(&s).await;
    let one = common::repository_tags(&s.ecr, &repositories[&format!("{}/one", s.namespace)]).await;
    assert_eq!(one.get("team").map(String::as_str), Some("after"), "{one:?}");
    let created = common::repository_tags(&s.ecr, repositories.get(&three).expect("'three' created")).await;
    assert!(carries(
        &created,
        &ownership(&operator.cluster_id, &s.namespace, "three")
    ));
    assert_eq!(operator.exited(), None, "berth exited\n{}", operator.log_text());
    if leading {
        assert_eq!(operator.metric("berth_leader").await, 1.0, "{}", operator.log_text());
    }
    let watch_errors = metric_sum(
        &operator.get("/metrics").await.expect("metrics").1,
        "berth_watch_errors_total",
        &[],
    );
    eprintln!(
        "{prefix}: converged {:.1} s after the apiserver was back; {watch_errors} watch errors counted",
        converged_after.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_survives_its_apiserver_restarting() {
    survives_an_apiserver_restart("e2e-apirestart", false).await;
}

/// The term lapses while the apiserver is down; berth stands by, and leads again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_survives_its_apiserver_restarting() {
    survives_an_apiserver_restart("e2e-apileader", true).await;
}

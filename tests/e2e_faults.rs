//! Faults end to end: berth behind a proxy that gives 20% of all AWS requests a fault
//! (throttling, 5xx, no answer past the SDK's attempt timeout, a dropped connection, a write
//! carried out whose answer is lost) while it creates 30 EcrRepositories (pull grants, push
//! roles, a LifecyclePolicy) next to repositories and roles it does not own, then deletes them
//! all. Everything converges; nothing is created twice; nothing unowned is touched, neither
//! while creating nor while deleting; only `deletionPolicy: Delete` removes anything; no
//! finalizer is left behind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth::api::LifecyclePolicy;
use berth::policy::push_role_name;
use common::proxy::{AwsProxy, Call, Fault, Faults};
use common::{Operator, ReadyStatus, is_write, setup, wait_for};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const REPOSITORIES: usize = 30;
/// A fifth of all requests meet a fault; the seed makes the choice repeatable (in arrival
/// order, which concurrency varies from run to run).
const FRACTION: f64 = 0.2;
const SEED: u64 = 14;
/// The Warning Event reasons of failures retried with backoff (src/error.rs): the only ones a
/// fault may cause.
const TRANSIENT: [&str; 7] = [
    "AwsThrottled",
    "AwsServerError",
    "AwsTimeout",
    "AwsUnreachable",
    "AwsConflict",
    "AwsNotFound",
    "KubernetesError",
];
/// Long enough for a few delayed (timed-out) attempts in a row on a busy machine.
const CONVERGE: Duration = Duration::from_secs(150);

/// The regular objects: `r00`..`r29`; every third grants pull, every fifth has a push role,
/// the even ones are `deletionPolicy: Delete`, the first ten are governed by a LifecyclePolicy.
fn regular(i: usize) -> (String, serde_json::Value, bool) {
    let name = format!("r{i:02}");
    let mut access = serde_json::Map::new();
    if i.is_multiple_of(3) {
        access.insert("pull".into(), json!([{"accountId": "111122223333"}]));
    }
    if i.is_multiple_of(5) {
        access.insert(
            "push".into(),
            json!([{"githubActions": {"repository": format!("acme/{name}"), "refs": ["refs/heads/main"]}}]),
        );
    }
    let delete = i.is_multiple_of(2);
    let mut spec = json!({
        "tags": {"team": "payments"},
        "deletionPolicy": if delete { "Delete" } else { "Retain" },
    });
    if !access.is_empty() {
        spec["access"] = access.into();
    }
    (name, spec, delete)
}

fn governed(i: usize) -> bool {
    i < 10
}

/// What a repository or role berth does not own looks like: compared before and after.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tags: BTreeMap<String, String>,
    policies: BTreeMap<String, String>,
}

async fn repository_snapshot(ecr: &aws_sdk_ecr::Client, name: &str) -> Snapshot {
    let described = ecr
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name} is gone: {e:?}"));
    let arn = described.repositories()[0].repository_arn().unwrap().to_owned();
    let tags = common::repository_tags(ecr, &arn).await;
    let mut policies = BTreeMap::new();
    if let Ok(policy) = ecr.get_repository_policy().repository_name(name).send().await {
        policies.insert("repository".into(), policy.policy_text().unwrap_or_default().to_owned());
    }
    if let Ok(lifecycle) = ecr.get_lifecycle_policy().repository_name(name).send().await {
        policies.insert(
            "lifecycle".into(),
            lifecycle.lifecycle_policy_text().unwrap_or_default().to_owned(),
        );
    }
    Snapshot { tags, policies }
}

async fn role_snapshot(iam: &aws_sdk_iam::Client, name: &str) -> Snapshot {
    let role = common::iam_role(iam, name)
        .await
        .unwrap_or_else(|| panic!("role {name} is gone"));
    let tags = role
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    let mut policies = BTreeMap::new();
    policies.insert(
        "trust".into(),
        role.assume_role_policy_document().unwrap_or_default().to_owned(),
    );
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .expect("ListRolePolicies");
    for policy_name in inline.policy_names() {
        let document = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
            .expect("GetRolePolicy");
        policies.insert(policy_name.clone(), document.policy_document().to_owned());
    }
    Snapshot { tags, policies }
}

/// The repositories moto holds under `prefix`.
async fn repositories_under(ecr: &aws_sdk_ecr::Client, prefix: &str) -> Vec<aws_sdk_ecr::types::Repository> {
    let described = ecr.describe_repositories().send().await.expect("DescribeRepositories");
    described
        .repositories()
        .iter()
        .filter(|r| r.repository_name().unwrap_or_default().starts_with(prefix))
        .cloned()
        .collect()
}

/// The roles IAM holds whose names start with `prefix`.
async fn roles_under(iam: &aws_sdk_iam::Client, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut pages = iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        for role in page.expect("ListRoles").roles() {
            if role.role_name().starts_with(prefix) {
                names.push(role.role_name().to_owned());
            }
        }
    }
    names
}

/// Waits until every object of `api` named in `expected` is Ready with that reason for its
/// generation; panics naming those that are not, with the end of the operator's log.
async fn wait_all<K: ReadyStatus>(api: &Api<K>, expected: &BTreeMap<String, &str>, operator: &Operator) {
    let lagging = || async {
        let objects = api.list(&ListParams::default()).await.ok()?;
        let reached: BTreeSet<String> = objects
            .iter()
            .filter(|o| {
                let reason = expected.get(&o.name_any());
                o.ready()
                    .is_some_and(|(ready, observed)| Some(&ready.as_str()) == reason && observed == o.meta().generation)
            })
            .map(|o| o.name_any())
            .collect();
        Some(
            expected
                .keys()
                .filter(|name| !reached.contains(*name))
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let done = wait_for(CONVERGE, || async { lagging().await.filter(|l| l.is_empty()) }).await;
    if done.is_none() {
        let log = operator.log_text();
        let tail: Vec<&str> = log.lines().rev().take(150).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "not Ready as expected: {:?}\n--- operator log (end) ---\n{}",
            lagging().await,
            tail.join("\n")
        );
    }
}

/// Waits until `api` holds no object (every finalizer released).
async fn wait_empty<K>(api: &Api<K>, operator: &Operator)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let left = || async {
        let objects = api.list(&ListParams::default()).await.ok()?;
        Some(objects.iter().map(|o| o.name_any()).collect::<Vec<_>>())
    };
    if wait_for(CONVERGE, || async { left().await.filter(|l| l.is_empty()) })
        .await
        .is_none()
    {
        let log = operator.log_text();
        let tail: Vec<&str> = log.lines().rev().take(150).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "objects left (finalizer stuck?): {:?}\n{}",
            left().await,
            tail.join("\n")
        );
    }
}

/// The Warning Events about the objects `about`: (object, reason, note) → count of the series.
async fn warnings(events: &Api<Event>, about: &BTreeSet<String>) -> BTreeMap<(String, String, String), i32> {
    let listed = events.list(&ListParams::default()).await.expect("list Events");
    listed
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| {
            let name = e.regarding.as_ref().and_then(|r| r.name.clone())?;
            let count = e.series.as_ref().map_or(1, |s| s.count);
            let reason = e.reason?;
            about
                .contains(&name)
                .then(|| ((name, reason, e.note.unwrap_or_default()), count))
        })
        .collect()
}

/// The reasons of the Warning Events about `about` that are new or repeated since `before`.
async fn new_warning_reasons(
    events: &Api<Event>,
    about: &BTreeSet<String>,
    before: &BTreeMap<(String, String, String), i32>,
) -> Vec<String> {
    warnings(events, about)
        .await
        .into_iter()
        .filter(|(key, count)| before.get(key).is_none_or(|was| count > was))
        .map(|((_, reason, _), _)| reason)
        .collect()
}

/// The writes among `calls` that name `name`.
fn writes_naming<'a>(calls: &'a [Call], name: &str) -> Vec<&'a Call> {
    calls
        .iter()
        .filter(|c| is_write(&c.operation) && c.names(name))
        .collect()
}

/// No write named any of `unowned` (resources berth does not own).
fn assert_no_write_names<'a>(calls: &[Call], unowned: impl Iterator<Item = &'a String>) {
    for name in unowned {
        let writes = writes_naming(calls, name);
        assert!(
            writes.is_empty(),
            "writes naming {name}, which berth does not own: {writes:?}"
        );
    }
}

/// Names whose `operation` reached moto and succeeded more than once (created twice), and
/// names whose `operation` was carried out with its answer lost and then refused by moto as a
/// duplicate (berth retried and had to recover from AlreadyExists of its own resource).
fn creations(calls: &[Call], operation: &str, names: &[String]) -> (Vec<String>, Vec<String>) {
    let mut twice = Vec::new();
    let mut recovered = Vec::new();
    for name in names {
        let made: Vec<&Call> = calls
            .iter()
            .filter(|c| c.operation == operation && c.names(name))
            .collect();
        let succeeded = made.iter().filter(|c| c.upstream_status == Some(200)).count();
        if succeeded > 1 {
            twice.push(name.clone());
        }
        let lost = made
            .iter()
            .position(|c| c.upstream_status == Some(200) && c.fault == Some(Fault::LostAnswer));
        if let Some(lost) = lost
            && made[lost + 1..]
                .iter()
                .any(|c| c.upstream_status.is_some_and(|s| (400..500).contains(&s)))
        {
            recovered.push(name.clone());
        }
    }
    (twice, recovered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifth_of_aws_calls_failing_everything_converges_and_nothing_unowned_is_touched() {
    let Some(s) = setup("e2e-faults").await else { return };
    let ns = s.namespace.clone();
    let iam = aws_sdk_iam::Client::new(&common::sdk_config(&s.testbed).await);

    // what berth does not own, made directly in moto: a repository without ownership tags, one
    // owned by another berth, the push role name one object would use, and a role beside it
    let unowned = format!("{ns}/foreign");
    let other_owner = format!("{ns}/other-owner");
    for (name, tags) in [
        (&unowned, vec![("team", "platform")]),
        (
            &other_owner,
            vec![("berth.dev/managed-by", "berth"), ("berth.dev/owner", "elsewhere/ns/x")],
        ),
    ] {
        let tags: Vec<aws_sdk_ecr::types::Tag> = tags
            .into_iter()
            .map(|(k, v)| aws_sdk_ecr::types::Tag::builder().key(k).value(v).build().unwrap())
            .collect();
        s.ecr
            .create_repository()
            .repository_name(name)
            .set_tags(Some(tags))
            .send()
            .await
            .expect("CreateRepository");
        s.ecr
            .set_repository_policy()
            .repository_name(name)
            .policy_text(r#"{"Version":"2012-10-17","Statement":[{"Sid":"Theirs","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"ecr:BatchGetImage"}]}"#)
            .send()
            .await
            .expect("SetRepositoryPolicy");
    }
    let taken_role = push_role_name(&ns, "taken");
    let beside_role = format!("{ns}-ci");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codebuild.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    for role in [&taken_role, &beside_role] {
        iam.create_role()
            .role_name(role)
            .path("/berth/")
            .assume_role_policy_document(trust)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("team")
                    .value("platform")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("CreateRole");
        iam.put_role_policy()
            .role_name(role)
            .policy_name("berth-push")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#)
            .send()
            .await
            .expect("PutRolePolicy");
    }
    let unowned_repositories = [unowned.clone(), other_owner.clone()];
    let unowned_roles = [taken_role.clone(), beside_role.clone()];
    let mut before = Vec::new();
    for name in &unowned_repositories {
        before.push(repository_snapshot(&s.ecr, name).await);
    }
    for name in &unowned_roles {
        before.push(role_snapshot(&iam, name).await);
    }
    let unchanged = || async {
        let mut now = Vec::new();
        for name in &unowned_repositories {
            now.push(repository_snapshot(&s.ecr, name).await);
        }
        for name in &unowned_roles {
            now.push(role_snapshot(&iam, name).await);
        }
        now
    };

    // faults from berth's first call on; the explicit lost answers make sure that a creation
    // carried out but not heard happens at least once for each kind of resource
    let proxy = AwsProxy::start(&s.testbed.aws_endpoint).await;
    proxy.inject_faults(Faults::all(FRACTION, SEED));
    proxy.lose_next_answer("CreateRepository");
    proxy.lose_next_answer("CreateRole");
    let operator = Operator::start_with(
        &s.testbed,
        &ns,
        &proxy.endpoint,
        "",
        &[
            "--resync-interval",
            "5s",
            "--create-github-oidc-provider",
            "--stats-interval",
            "1h",
        ],
    );

    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    let mut push_roles = BTreeMap::new();
    for i in 0..REPOSITORIES {
        let (name, mut spec, delete) = regular(i);
        let repository = format!("{ns}/{name}");
        spec["repositoryName"] = json!(repository);
        let mut object = common::object(&name, spec);
        if governed(i) {
            object.metadata.labels = Some([("tier".to_owned(), "prod".to_owned())].into());
        }
        s.repositories
            .create(&PostParams::default(), &object)
            .await
            .expect("create EcrRepository");
        expected.insert(name.clone(), "Synced");
        if i.is_multiple_of(5) {
            push_roles.insert(push_role_name(&ns, &name), delete);
        }
        (if delete { &mut deleted } else { &mut kept }).push(repository);
    }
    // objects naming what berth does not own, all asking for deletion
    for (name, repository, reason) in [
        ("adopt-needed", &unowned, "AdoptionRequired"),
        ("owned-elsewhere", &other_owner, "OwnedByOther"),
    ] {
        s.create(name, json!({"repositoryName": repository, "deletionPolicy": "Delete"}))
            .await;
        expected.insert(name.to_owned(), reason);
    }
    let taken_repository = format!("{ns}/taken");
    s.create(
        "taken",
        json!({"repositoryName": taken_repository, "deletionPolicy": "Delete",
               "access": {"push": [{"githubActions": {"repository": "acme/taken", "refs": ["refs/heads/main"]}}]}}),
    )
    .await;
    expected.insert("taken".into(), "OwnedByOther");
    deleted.push(taken_repository.clone());

    let policies: Api<LifecyclePolicy> = Api::namespaced(s.client.clone(), &ns);
    let rules = json!([{"priority": 1, "selection": {"tagStatus": "Untagged", "countType": "SinceImagePushed", "countNumber": 7, "countUnit": "Days"}, "action": {"type": "Expire"}}]);
    let policy: LifecyclePolicy = serde_json::from_value(json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "LifecyclePolicy",
        "metadata": {"name": "keep"},
        "spec": {"repositorySelector": {"matchLabels": {"tier": "prod"}}, "rules": rules},
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create LifecyclePolicy");

    let events: Api<Event> = Api::namespaced(s.client.clone(), &ns);
    let regular_names: BTreeSet<String> = expected
        .iter()
        .filter(|(_, reason)| **reason == "Synced")
        .map(|(name, _)| name.clone())
        .chain(["keep".to_owned()])
        .collect();
    let started = std::time::Instant::now();
    wait_all(&s.repositories, &expected, &operator).await;
    wait_all(&policies, &[("keep".to_owned(), "Applied")].into(), &operator).await;
    eprintln!("converged under faults in {:.1} s", started.elapsed().as_secs_f64());

    // moto holds exactly the repositories and roles expected, each berth made carrying its
    // ownership tags
    let mut all_repositories: Vec<String> = kept.iter().chain(&deleted).cloned().collect();
    let mut held: Vec<String> = repositories_under(&s.ecr, &format!("{ns}/"))
        .await
        .iter()
        .map(|r| r.repository_name().unwrap().to_owned())
        .collect();
    held.sort();
    let mut wanted = all_repositories.clone();
    wanted.extend(unowned_repositories.iter().cloned());
    wanted.sort();
    assert_eq!(held, wanted);
    all_repositories.sort();
    for repository in &all_repositories {
        let object = repository.trim_start_matches(&format!("{ns}/")).to_owned();
        let tags = repository_snapshot(&s.ecr, repository).await.tags;
        let owner = format!("{}/{ns}/{object}", operator.cluster_id);
        assert_eq!(tags.get("berth.dev/owner"), Some(&owner), "{repository}: {tags:?}");
        assert_eq!(tags.get("berth.dev/managed-by").map(String::as_str), Some("berth"));
    }
    let mut roles = roles_under(&iam, &format!("{ns}-")).await;
    roles.sort();
    let mut wanted_roles: Vec<String> = push_roles
        .keys()
        .cloned()
        .chain(unowned_roles.iter().cloned())
        .collect();
    wanted_roles.sort();
    assert_eq!(roles, wanted_roles);
    for i in (0..REPOSITORIES).filter(|i| i.is_multiple_of(5)) {
        let role = push_role_name(&ns, &format!("r{i:02}"));
        let tags = role_snapshot(&iam, &role).await.tags;
        let owner = format!("{}/{ns}/r{i:02}", operator.cluster_id);
        assert_eq!(tags.get("berth.dev/owner"), Some(&owner), "{role}: {tags:?}");
    }

    // nothing created twice, and AlreadyExists of berth's own creation was recovered from
    let calls = proxy.calls();
    let role_names: Vec<String> = push_roles.keys().cloned().collect();
    let (twice, recovered_repositories) = creations(&calls, "CreateRepository", &all_repositories);
    assert!(twice.is_empty(), "repositories created twice: {twice:?}");
    let (twice, recovered_roles) = creations(&calls, "CreateRole", &role_names);
    assert!(twice.is_empty(), "roles created twice: {twice:?}");
    assert!(
        !recovered_repositories.is_empty() && !recovered_roles.is_empty(),
        "no lost creation was retried into AlreadyExists: repositories {recovered_repositories:?}, roles {recovered_roles:?}"
    );
    // nothing deleted that no spec asked to delete, nothing unowned written to or changed
    let deletes: Vec<&str> = calls
        .iter()
        .filter(|c| c.operation.starts_with("Delete"))
        .map(|c| c.operation.as_str())
        .collect();
    assert!(deletes.is_empty(), "deletes while creating: {deletes:?}");
    assert_no_write_names(&calls, unowned_repositories.iter().chain(&unowned_roles));
    assert_eq!(unchanged().await, before);

    // every connection closed without an answer for a while: berth reports that as a failure
    // it retries (Reconciling), never as one that waits for a fix (Stalled), and recovers
    let before_outage = warnings(&events, &regular_names).await;
    proxy.inject_faults(Faults {
        fraction: 1.0,
        kinds: vec![Fault::Drop],
        ..Faults::all(0.0, SEED)
    });
    let outage = wait_for(CONVERGE, || async {
        let reasons = new_warning_reasons(&events, &regular_names, &before_outage).await;
        reasons
            .iter()
            .any(|r| r == "AwsUnreachable" || !TRANSIENT.contains(&r.as_str()))
            .then_some(reasons)
    })
    .await;
    proxy.inject_faults(Faults::all(FRACTION, SEED + 1));
    let outage = outage.expect("no failure reported while every connection closed");
    assert!(
        outage.iter().all(|r| TRANSIENT.contains(&r.as_str())),
        "a closed connection reported as terminal: {outage:?}"
    );
    wait_all(&s.repositories, &expected, &operator).await;

    // delete everything with the faults on again: the policy first (it removes its rules)
    let delete_all = DeleteParams::default();
    policies
        .delete("keep", &delete_all)
        .await
        .expect("delete LifecyclePolicy");
    wait_empty(&policies, &operator).await;
    for i in (0..REPOSITORIES).filter(|i| governed(*i)) {
        let repository = format!("{ns}/r{i:02}");
        let lifecycle = s.ecr.get_lifecycle_policy().repository_name(&repository).send().await;
        assert!(lifecycle.is_err(), "{repository} kept the deleted policy's rules");
    }
    s.repositories
        .delete_collection(&delete_all, &ListParams::default())
        .await
        .expect("delete EcrRepositories");
    wait_empty(&s.repositories, &operator).await;

    // Delete: gone; Retain: kept, still berth's; unowned: as they were, never written to
    let mut held: Vec<String> = repositories_under(&s.ecr, &format!("{ns}/"))
        .await
        .iter()
        .map(|r| r.repository_name().unwrap().to_owned())
        .collect();
    held.sort();
    let mut wanted: Vec<String> = kept.iter().chain(&unowned_repositories).cloned().collect();
    wanted.sort();
    assert_eq!(held, wanted, "after deletion");
    let mut roles = roles_under(&iam, &format!("{ns}-")).await;
    roles.sort();
    let mut wanted_roles: Vec<String> = push_roles
        .iter()
        .filter(|(_, delete)| !**delete)
        .map(|(role, _)| role.clone())
        .chain(unowned_roles.iter().cloned())
        .collect();
    wanted_roles.sort();
    assert_eq!(roles, wanted_roles, "after deletion");
    let calls = proxy.calls();
    assert_no_write_names(&calls, unowned_repositories.iter().chain(&unowned_roles));
    assert_eq!(unchanged().await, before);
    // every removal named what a spec asked to remove: a Delete repository, its push role, or
    // the rules the deleted LifecyclePolicy had put on the repositories it governed
    let removable: Vec<String> = deleted
        .iter()
        .cloned()
        .chain(
            push_roles
                .iter()
                .filter(|(_, delete)| **delete)
                .map(|(role, _)| role.clone()),
        )
        .chain(
            (0..REPOSITORIES)
                .filter(|i| governed(*i))
                .map(|i| format!("{ns}/r{i:02}")),
        )
        .collect();
    let stray: Vec<&Call> = calls
        .iter()
        .filter(|c| c.operation.starts_with("Delete") || c.operation.starts_with("Untag"))
        .filter(|c| !removable.iter().any(|name| c.names(name)))
        .collect();
    assert!(stray.is_empty(), "removals no spec asked for: {stray:?}");
    for repository in &kept {
        let tags = repository_snapshot(&s.ecr, repository).await.tags;
        assert_eq!(tags.get("berth.dev/managed-by").map(String::as_str), Some("berth"));
    }

    // a fault is never reported as a failure that waits for someone to fix something
    let terminal: Vec<String> = new_warning_reasons(&events, &regular_names, &BTreeMap::new())
        .await
        .into_iter()
        .filter(|reason| !TRANSIENT.contains(&reason.as_str()))
        .collect();
    assert!(
        terminal.is_empty(),
        "faults reported as terminal failures: {terminal:?}"
    );

    // the faults really happened, every kind of them
    let mut by_kind: BTreeMap<Fault, u64> = BTreeMap::new();
    for ((kind, _), count) in proxy.fault_counts() {
        *by_kind.entry(kind).or_default() += count;
    }
    eprintln!(
        "{} requests, faults by kind: {by_kind:?}, by kind and operation: {:?}; all done in {:.1} s",
        calls.len(),
        proxy.fault_counts(),
        started.elapsed().as_secs_f64()
    );
    for kind in Fault::ALL {
        assert!(
            by_kind.get(&kind).copied().unwrap_or_default() >= 2,
            "{kind:?}: {by_kind:?}"
        );
    }
    let faulted: u64 = by_kind.values().sum();
    assert!(
        faulted as f64 >= 0.12 * calls.len() as f64,
        "{faulted} faults in {} requests",
        calls.len()
    );

    // clean up what Retain kept (the test bed's moto is shared)
    proxy.stop_faults();
    for repository in kept.iter().chain(&unowned_repositories) {
        let _ = s
            .ecr
            .delete_repository()
            .repository_name(repository)
            .force(true)
            .send()
            .await;
    }
    for (role, _) in push_roles.iter().filter(|(_, delete)| !**delete) {
        delete_role(&iam, role).await;
    }
    for role in &unowned_roles {
        delete_role(&iam, role).await;
    }
}

async fn delete_role(iam: &aws_sdk_iam::Client, role: &str) {
    if let Ok(listed) = iam.list_role_policies().role_name(role).send().await {
        for policy in listed.policy_names() {
            let _ = iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(policy)
                .send()
                .await;
        }
    }
    let _ = iam.delete_role().role_name(role).send().await;
}

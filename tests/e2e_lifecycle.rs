//! End to end: LifecyclePolicy with `berth run` against the real apiserver and moto.

mod common;

use std::time::Duration;

use berth::api::{LifecyclePolicy, LifecyclePolicyStatus, SelectionState};
use common::{Operator, Setup, TIMEOUT, setup, wait_for, wait_reason};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

/// keep the newest 30 `v*` images; expire untagged images after 7 days
fn rules() -> serde_json::Value {
    serde_json::json!([
        {"priority": 1, "description": "keep 30 releases",
         "selection": {"tagStatus": "Tagged", "tagPatterns": ["v*"], "countType": "ImageCountMoreThan", "countNumber": 30},
         "action": {"type": "Expire"}},
        {"priority": 2,
         "selection": {"tagStatus": "Untagged", "countType": "SinceImagePushed", "countNumber": 7, "countUnit": "Days"},
         "action": {"type": "Expire"}},
    ])
}

fn lifecycle_policy(name: &str, spec: serde_json::Value) -> LifecyclePolicy {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "LifecyclePolicy",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("a LifecyclePolicy")
}

fn policies(s: &Setup) -> Api<LifecyclePolicy> {
    Api::namespaced(s.client.clone(), &s.namespace)
}

/// The repository's lifecycle policy text in ECR, or None.
async fn ecr_policy(s: &Setup, repository: &str) -> Option<String> {
    match s.ecr.get_lifecycle_policy().repository_name(repository).send().await {
        Ok(output) => output.lifecycle_policy_text().map(str::to_owned),
        Err(e) if format!("{e:?}").contains("LifecyclePolicyNotFoundException") => None,
        Err(e) => panic!("GetLifecyclePolicy: {e:?}"),
    }
}

/// What berth renders for `spec.rules`.
fn rendered(rules: serde_json::Value) -> String {
    let policy = lifecycle_policy("x", serde_json::json!({"repositories": ["x"], "rules": rules}));
    let rules = berth::lifecycle::rules(&policy.spec).expect("valid rules");
    berth::lifecycle::render(&rules).expect("renders")
}

/// Waits until `check` holds for the ECR policy text of `repository`.
/// Puts a lifecycle policy berth did not write (expire beyond `count` images) on `repository`
/// and returns its text as ECR holds it.
async fn put_foreign_rules(s: &Setup, repository: &str, priority: i64, count: i64) -> String {
    let foreign = rendered(
        serde_json::json!([{"priority": priority, "selection": {"tagStatus": "Any",
        "countType": "ImageCountMoreThan", "countNumber": count}, "action": {"type": "Expire"}}]),
    );
    s.ecr
        .put_lifecycle_policy()
        .repository_name(repository)
        .lifecycle_policy_text(&foreign)
        .send()
        .await
        .expect("PutLifecyclePolicy");
    foreign
}

async fn wait_ecr_policy(s: &Setup, repository: &str, check: impl Fn(Option<&str>) -> bool) -> bool {
    wait_for(TIMEOUT, || async {
        let text = ecr_policy(s, repository).await;
        check(text.as_deref()).then_some(())
    })
    .await
    .is_some()
}

async fn governor(s: &Setup, name: &str) -> Option<String> {
    s.repositories.get(name).await.ok()?.status?.lifecycle_policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_follow_labels_selectors_conflicts_and_deletion_and_leave_others_alone() {
    let Some(s) = setup("e2e-lcp").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &[]);
    let ns = s.namespace.clone();
    for (name, labels) in [("api", Some("prod")), ("web", Some("prod")), ("own", None)] {
        let mut object = common::object(name, serde_json::json!({"repositoryName": format!("{ns}/{name}")}));
        if let Some(tier) = labels {
            object.metadata.labels = Some([("tier".to_owned(), tier.to_owned())].into());
        }
        s.repositories
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
    }
    for name in ["api", "web", "own"] {
        wait_reason(&s.repositories, name, "Synced", &operator).await;
    }
    // a repository no LifecyclePolicy selects keeps the lifecycle policy someone else put there
    let foreign = put_foreign_rules(&s, &format!("{ns}/own"), 5, 3).await;

    let spec = serde_json::json!({"repositorySelector": {"matchLabels": {"tier": "prod"}}, "rules": rules()});
    policies(&s)
        .create(&PostParams::default(), &lifecycle_policy("keep", spec))
        .await
        .expect("create LifecyclePolicy");
    let ready = wait_reason(&policies(&s), "keep", "Applied", &operator).await;
    let expected = rendered(rules());
    let states: Vec<(String, SelectionState)> = ready
        .status
        .unwrap()
        .repositories
        .into_iter()
        .map(|r| (r.name, r.state))
        .collect();
    assert_eq!(
        states,
        [
            ("api".to_owned(), SelectionState::Applied),
            ("web".to_owned(), SelectionState::Applied)
        ]
    );
    for name in ["api", "web"] {
        let text = ecr_policy(&s, &format!("{ns}/{name}")).await.expect("policy applied");
        assert!(berth::lifecycle::equivalent(&expected, &text), "{name}: {text}");
        assert_eq!(governor(&s, name).await.as_deref(), Some("keep"));
        assert!(!s.events(name, "LifecyclePolicyApplied").await.is_empty());
    }
    assert_eq!(
        ecr_policy(&s, &format!("{ns}/own")).await.as_deref(),
        Some(foreign.as_str())
    );

    // a policy for the dev tier, which governs nothing yet
    let dev_rules = serde_json::json!([{"priority": 1, "selection": {"tagStatus": "Untagged", "countType": "ImageCountMoreThan", "countNumber": 2}, "action": {"type": "Expire"}}]);
    let spec = serde_json::json!({"repositorySelector": {"matchLabels": {"tier": "dev"}}, "rules": dev_rules});
    policies(&s)
        .create(&PostParams::default(), &lifecycle_policy("dev", spec))
        .await
        .expect("create dev LifecyclePolicy");
    wait_reason(&policies(&s), "dev", "Applied", &operator).await;

    // relabelled: web moves from keep to dev, within seconds
    s.merge("web", serde_json::json!({"metadata": {"labels": {"tier": "dev"}}}))
        .await;
    let dev_text = rendered(dev_rules);
    assert!(
        wait_ecr_policy(&s, &format!("{ns}/web"), |text| text
            .is_some_and(|text| berth::lifecycle::equivalent(&dev_text, text)))
        .await,
        "web did not get the dev rules\n{}",
        operator.log_text()
    );
    assert!(
        wait_for(TIMEOUT, || async {
            (governor(&s, "web").await.as_deref() == Some("dev")).then_some(())
        })
        .await
        .is_some()
    );

    // deleting a LifecyclePolicy removes its rules from the repositories it governed
    policies(&s)
        .delete("dev", &DeleteParams::default())
        .await
        .expect("delete dev");
    assert!(
        wait_ecr_policy(&s, &format!("{ns}/web"), |text| text.is_none()).await,
        "web kept the rules of a deleted policy\n{}",
        operator.log_text()
    );
    assert!(
        wait_for(TIMEOUT, || async { governor(&s, "web").await.is_none().then_some(()) })
            .await
            .is_some()
    );
    assert!(!s.events("web", "LifecyclePolicyRemoved").await.is_empty());

    // a second, younger policy over api: Conflict naming the winner, and the winner's text stays
    let late_rules = serde_json::json!([{"priority": 1, "selection": {"tagStatus": "Any", "countType": "ImageCountMoreThan", "countNumber": 1}, "action": {"type": "Expire"}}]);
    let spec = serde_json::json!({"repositories": ["api"], "rules": late_rules});
    policies(&s)
        .create(&PostParams::default(), &lifecycle_policy("late", spec))
        .await
        .expect("create second LifecyclePolicy");
    let late = wait_reason(&policies(&s), "late", "Applied", &operator).await;
    let entry = &late.status.unwrap().repositories[0];
    assert_eq!(entry.state, SelectionState::Conflict);
    assert!(entry.message.as_deref().unwrap_or_default().contains("keep"));
    tokio::time::sleep(Duration::from_secs(4)).await; // a resync passes: no flapping
    let text = ecr_policy(&s, &format!("{ns}/api")).await.unwrap();
    assert!(
        berth::lifecycle::equivalent(&expected, &text),
        "the older policy's text stays"
    );
    assert_eq!(governor(&s, "api").await.as_deref(), Some("keep"));

    // the winner's selector no longer matches api: the younger policy takes it over
    policies(&s)
        .patch(
            "keep",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"repositorySelector": {"matchLabels": {"tier": "none"}}}})),
        )
        .await
        .expect("edit the selector");
    let late_text = rendered(late_rules);
    assert!(
        wait_ecr_policy(&s, &format!("{ns}/api"), |text| text
            .is_some_and(|text| berth::lifecycle::equivalent(&late_text, text)))
        .await,
        "late did not take api over\n{}",
        operator.log_text()
    );
    assert!(
        wait_for(TIMEOUT, || async {
            (governor(&s, "api").await.as_deref() == Some("late")).then_some(())
        })
        .await
        .is_some()
    );

    // both go: the rules are removed, the objects released, and the foreign policy stays
    policies(&s)
        .delete("late", &DeleteParams::default())
        .await
        .expect("delete late");
    policies(&s)
        .delete("keep", &DeleteParams::default())
        .await
        .expect("delete keep");
    for name in ["late", "keep"] {
        assert!(
            wait_for(TIMEOUT, || async {
                policies(&s).get_opt(name).await.ok()?.is_none().then_some(())
            })
            .await
            .is_some(),
            "{name} was not released\n{}",
            operator.log_text()
        );
    }
    assert!(wait_ecr_policy(&s, &format!("{ns}/api"), |text| text.is_none()).await);
    assert_eq!(governor(&s, "api").await, None);
    assert_eq!(
        ecr_policy(&s, &format!("{ns}/own")).await.as_deref(),
        Some(foreign.as_str())
    );
}

/// An EcrRepository labelled into the prod tier, naming `{namespace}/{name}`, once Synced.
async fn create_in_tier(s: &Setup, name: &str, adopt: bool, operator: &Operator) {
    let spec = serde_json::json!({"repositoryName": format!("{}/{name}", s.namespace), "adopt": adopt});
    let mut object = common::object(name, spec);
    object.metadata.labels = Some([("tier".to_owned(), "prod".to_owned())].into());
    s.repositories
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    wait_reason(&s.repositories, name, "Synced", operator).await;
}

/// The status of `policy` once it applies its rules to and previews exactly `count`
/// repositories (None if it does not within the timeout).
async fn previewed(s: &Setup, policy: &str, count: usize) -> Option<LifecyclePolicyStatus> {
    wait_for(TIMEOUT, || async {
        let status = policies(s).get(policy).await.ok()?.status?;
        let applied = status.repositories.iter().all(|r| r.state == SelectionState::Applied);
        (applied && status.repositories.len() == count && status.preview.len() == count).then_some(status)
    })
    .await
}

/// A repository berth created during the resync gets the rules without its lifecycle policy
/// being read first (nothing but berth has written it), and is previewed without reading its
/// images (it held none when berth created it); one berth found already there is read for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_go_on_a_repository_berth_created_without_reading_it_first() {
    let Some(s) = setup("e2e-lcnew").await else { return };
    let (proxy, operator) = s.operator_behind_proxy(&["--resync-interval", "1h"]).await;
    let ns = s.namespace.clone();
    let spec = serde_json::json!({"repositorySelector": {"matchLabels": {"tier": "prod"}}, "rules": rules()});
    policies(&s)
        .create(&PostParams::default(), &lifecycle_policy("keep", spec))
        .await
        .expect("create LifecyclePolicy");
    // the repositories join a policy already in force (its first preview reads afresh)
    wait_for(TIMEOUT, || async {
        policies(&s).get("keep").await.ok()?.status?.observed_generation
    })
    .await
    .expect("the policy reconciled");
    let found = format!("{ns}/found");
    s.ecr
        .create_repository()
        .repository_name(&found)
        .send()
        .await
        .expect("CreateRepository");
    create_in_tier(&s, "found", true, &operator).await;
    previewed(&s, "keep", 1).await.expect("found governed and previewed");
    // from here no image list answers: the preview of the repository berth creates must not
    // need one (the statistics' read of it waits)
    proxy.hold_answers("DescribeImages");
    create_in_tier(&s, "made", false, &operator).await;
    let governed = previewed(&s, "keep", 2).await;
    proxy.release_answers();
    let governed =
        governed.unwrap_or_else(|| panic!("made previewed without listing its images\n{}", operator.log_text()));
    assert!(
        governed.preview.iter().all(|p| p.keep == 0 && p.expire == 0),
        "{:?}",
        governed.preview
    );
    for name in ["made", "found"] {
        assert!(ecr_policy(&s, &format!("{ns}/{name}")).await.is_some(), "{name}");
        wait_for(TIMEOUT, || async {
            s.repositories.get(name).await.ok()?.status?.image_count
        })
        .await
        .unwrap_or_else(|| panic!("statistics of {name}"));
    }
    let reads = |operation: &str, repository: &str| {
        let needle = format!("\"repositoryName\":\"{repository}\"");
        proxy
            .calls()
            .iter()
            .filter(|c| c.operation == operation && c.body.contains(&needle))
            .count()
    };
    assert_eq!(reads("PutLifecyclePolicy", &format!("{ns}/made")), 1);
    assert_eq!(reads("PutLifecyclePolicy", &found), 1);
    assert_eq!(
        reads("GetLifecyclePolicy", &format!("{ns}/made")),
        0,
        "created by berth: not read"
    );
    assert_eq!(reads("GetLifecyclePolicy", &found), 1);
    // the statistics read each new repository once (held above); the preview of the one
    // berth created reads nothing more
    assert_eq!(
        reads("DescribeImages", &format!("{ns}/made")),
        1,
        "created by berth: only the statistics read its images"
    );
    assert!(reads("DescribeImages", &found) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_counts_exactly_and_never_writes_the_policy() {
    let Some(s) = setup("e2e-lcpre").await else { return };
    let (proxy, operator) = s.operator_behind_proxy(&[]).await;
    let repository = format!("{}/app", s.namespace);
    s.create("app", serde_json::json!({"repositoryName": repository})).await;
    wait_reason(&s.repositories, "app", "Synced", &operator).await;
    for i in 0..35 {
        s.ecr
            .put_image()
            .repository_name(&repository)
            .image_manifest(common::image_manifest(&format!("{}-{i}", s.namespace)))
            .image_tag(format!("v1.{i}"))
            .send()
            .await
            .expect("PutImage");
    }
    let spec = serde_json::json!({"repositories": ["app"], "mode": "Preview", "rules": rules()});
    policies(&s)
        .create(&PostParams::default(), &lifecycle_policy("preview", spec))
        .await
        .expect("create LifecyclePolicy");
    let previewed = wait_reason(&policies(&s), "preview", "Previewed", &operator).await;
    let status = previewed.status.unwrap();
    assert_eq!(status.repositories[0].state, SelectionState::Previewed);
    let preview = &status.preview[0];
    assert_eq!((preview.expire, preview.transition, preview.keep), (5, 0, 30));
    assert_eq!(preview.examples.len(), 5);
    assert!(preview.examples.iter().all(|e| e.starts_with("v1.")));
    let totals = status.preview_totals.expect("totals");
    assert_eq!((totals.repositories, totals.expire), (1, 5));
    assert_eq!(
        ecr_policy(&s, &repository).await,
        None,
        "Preview never writes the policy"
    );
    assert_eq!(proxy.counts().get("PutLifecyclePolicy"), None);
    let series = format!(
        "berth_lifecycle_images_to_expire{{namespace=\"{}\",policy=\"preview\"}}",
        s.namespace
    );
    assert_eq!(operator.metric(&series).await, 5.0);

    // switching to Enforce applies the rules, once
    policies(&s)
        .patch(
            "preview",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"mode": "Enforce"}})),
        )
        .await
        .expect("switch to Enforce");
    wait_reason(&policies(&s), "preview", "Applied", &operator).await;
    assert!(ecr_policy(&s, &repository).await.is_some());
    tokio::time::sleep(Duration::from_secs(7)).await; // two resyncs: in sync costs no write
    assert_eq!(proxy.counts().get("PutLifecyclePolicy"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rules_are_refused_naming_the_field_with_zero_aws_calls() {
    let Some(s) = setup("e2e-lcbad").await else { return };
    let (proxy, operator) = s.operator_behind_proxy(&[]).await;
    // duplicate priorities: the schema admits it on a cluster without CEL, the controller not
    let duplicate = serde_json::json!([
        {"priority": 1, "selection": {"tagStatus": "Any", "countType": "ImageCountMoreThan", "countNumber": 5}, "action": {"type": "Expire"}},
        {"priority": 1, "selection": {"tagStatus": "Untagged", "countType": "ImageCountMoreThan", "countNumber": 1}, "action": {"type": "Expire"}},
    ]);
    let spec = serde_json::json!({"repositories": ["app"], "rules": duplicate});
    policies(&s)
        .create(&PostParams::default(), &lifecycle_policy("bad", spec))
        .await
        .expect("the apiserver admits it");
    let refused = wait_reason(&policies(&s), "bad", "InvalidSpec", &operator).await;
    let status = refused.status.unwrap();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("spec.rules"), "{}", ready.message);
    // kstatus: a terminal failure stalls, so GitOps tools fail fast
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidSpec")
    );
    // the Warning follows the status write
    let warned = wait_for(TIMEOUT, || async {
        (!s.events("bad", "InvalidSpec").await.is_empty()).then_some(())
    })
    .await;
    assert!(warned.is_some(), "no InvalidSpec Warning");
    // the one call at start (STS, for the partition) is no call for the policy
    let made: Vec<_> = proxy
        .counts()
        .into_iter()
        .filter(|(op, _)| op != "GetCallerIdentity")
        .collect();
    assert!(made.is_empty(), "AWS was called: {made:?}");

    // fixed: Ready, and Stalled is gone (it selects no repository that exists, so still no call)
    let fixed = serde_json::json!({"spec": {"rules": [
        {"priority": 1, "selection": {"tagStatus": "Any", "countType": "ImageCountMoreThan", "countNumber": 5}, "action": {"type": "Expire"}},
    ]}});
    policies(&s)
        .patch("bad", &PatchParams::default(), &Patch::Merge(fixed))
        .await
        .expect("fix the rules");
    let ready = wait_reason(&policies(&s), "bad", "Applied", &operator).await;
    let conditions = ready.status.unwrap().conditions;
    assert_eq!(conditions.len(), 1, "only Ready is left: {conditions:?}");
}

/// `kubectl delete -f` of everything at once: the EcrRepositories (deletionPolicy Retain) go
/// together with the LifecyclePolicy, so cleanup cannot learn the governed repositories from
/// their status. It works from the policy's own record, and leaves a lifecycle policy that
/// someone else wrote in the meantime alone. An EcrRepository deleted on its own, or relabelled
/// out of the selection, loses the rules while the policy stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_everything_at_once_takes_the_rules_off_retained_repositories_but_not_foreign_ones() {
    let Some(s) = setup("e2e-lcall").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &[]);
    let ns = s.namespace.clone();
    let names = ["api", "web", "replaced", "alone"];
    for name in names {
        let mut object = common::object(name, serde_json::json!({"repositoryName": format!("{ns}/{name}")}));
        object.metadata.labels = Some([("tier".to_owned(), "prod".to_owned())].into());
        s.repositories
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
    }
    for name in names {
        wait_reason(&s.repositories, name, "Synced", &operator).await;
    }
    let spec = serde_json::json!({"repositorySelector": {"matchLabels": {"tier": "prod"}}, "rules": rules()});
    policies(&s)
        .create(&PostParams::default(), &lifecycle_policy("keep", spec))
        .await
        .expect("create LifecyclePolicy");
    let applied = wait_reason(&policies(&s), "keep", "Applied", &operator).await;
    // the record: every governed ECR repository by region and registry
    let enforced = applied.status.unwrap().enforced;
    assert_eq!(enforced.len(), 1, "{enforced:?}");
    assert_eq!(
        (enforced[0].region.as_str(), enforced[0].registry_id.as_str()),
        (s.testbed.region.as_str(), "123456789012")
    );
    let mut expected: Vec<String> = names.iter().map(|n| format!("{ns}/{n}")).collect();
    expected.sort();
    assert_eq!(enforced[0].names, expected);
    for name in names {
        assert!(ecr_policy(&s, &format!("{ns}/{name}")).await.is_some(), "{name}");
    }

    // deleted on its own (Retain): the ECR repository stays and loses the rules
    s.repositories
        .delete("alone", &DeleteParams::default())
        .await
        .expect("delete alone");
    assert!(s.wait_gone("alone").await);
    assert!(
        wait_ecr_policy(&s, &format!("{ns}/alone"), |text| text.is_none()).await,
        "a retained repository kept the rules of a policy that no longer governs it\n{}",
        operator.log_text()
    );

    // relabelled out of the selection: the rules come off as before, and leave the record
    s.merge("web", serde_json::json!({"metadata": {"labels": {"tier": "none"}}}))
        .await;
    assert!(
        wait_ecr_policy(&s, &format!("{ns}/web"), |text| text.is_none()).await,
        "web kept the rules after leaving the selection\n{}",
        operator.log_text()
    );
    let recorded = wait_for(TIMEOUT, || async {
        let status = policies(&s).get("keep").await.ok()?.status?;
        let names: Vec<String> = status.enforced.into_iter().flat_map(|g| g.names).collect();
        (names == [format!("{ns}/api"), format!("{ns}/replaced")]).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "the record still names web or alone");

    // berth frozen, so that nothing sets the rules back: someone else replaces one repository's
    // lifecycle policy, then everything is deleted, the repositories first
    operator.signal("STOP");
    let foreign = put_foreign_rules(&s, &format!("{ns}/replaced"), 9, 2).await;
    for name in ["api", "web", "replaced"] {
        s.repositories
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete EcrRepository");
    }
    policies(&s)
        .delete("keep", &DeleteParams::default())
        .await
        .expect("delete LifecyclePolicy");
    operator.signal("CONT");

    assert!(
        common::wait_deleted(&policies(&s), "keep").await,
        "the LifecyclePolicy was not released\n{}",
        operator.log_text()
    );
    for name in ["api", "web", "replaced"] {
        assert!(s.wait_gone(name).await, "{name} was not released");
    }
    for name in ["api", "web"] {
        assert_eq!(
            ecr_policy(&s, &format!("{ns}/{name}")).await,
            None,
            "{name} kept the rules of the deleted policy\n{}",
            operator.log_text()
        );
    }
    assert_eq!(
        ecr_policy(&s, &format!("{ns}/replaced")).await.as_deref(),
        Some(foreign.as_str()),
        "a lifecycle policy berth did not write was removed"
    );
    // Retain: the ECR repositories themselves stay
    let left = s
        .ecr
        .describe_repositories()
        .repository_names(format!("{ns}/api"))
        .send()
        .await
        .expect("DescribeRepositories");
    assert_eq!(left.repositories().len(), 1);
}

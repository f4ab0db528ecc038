//! spec.access end to end (real apiserver + moto + `berth run`): the repository policy equals
//! the rendering; the GitHub Actions push role, its trust and inline policies are exactly the
//! expected documents; editing refs updates only the trust policy; an out-of-band policy edit
//! is reverted; an in-sync resync writes nothing; removing the grant deletes the role.

mod common;

use std::time::Duration;

use berth::policy::{self, Access, GithubPusher, Principal};
use common::{Operator, Setup, TIMEOUT, iam_role as role, is_write, setup, wait_for, wait_reason};
use kube::api::DeleteParams;
use serde_json::{Value, json};

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/berth-boundary";

async fn iam(s: &Setup) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&common::sdk_config(&s.testbed).await)
}

async fn repository_policy(s: &Setup, name: &str) -> Option<Value> {
    match s.ecr.get_repository_policy().repository_name(name).send().await {
        Ok(output) => Some(serde_json::from_str(output.policy_text().unwrap()).unwrap()),
        Err(e) if format!("{e:?}").contains("RepositoryPolicyNotFoundException") => None,
        Err(e) => panic!("GetRepositoryPolicy: {e:?}"),
    }
}

/// The push role's trust policy, parsed; None if the role is not there.
async fn trust_policy(iam: &aws_sdk_iam::Client, role_name: &str) -> Option<Value> {
    let found = role(iam, role_name).await?;
    policy::parse_policy(found.assume_role_policy_document()?).ok()
}

/// The push role's inline push policy, parsed; None if it is not there.
async fn inline_policy(iam: &aws_sdk_iam::Client, role_name: &str) -> Option<Value> {
    let found = iam
        .get_role_policy()
        .role_name(role_name)
        .policy_name("berth-push")
        .send()
        .await
        .ok()?;
    policy::parse_policy(found.policy_document()).ok()
}

/// Widens a push role's trust policy out of band: any repository of any owner may assume it.
async fn widen_trust_policy(iam: &aws_sdk_iam::Client, role_name: &str, provider: &str) {
    iam.update_assume_role_policy()
        .role_name(role_name)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:*"}}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_policy_and_push_role_follow_the_spec() {
    let Some(s) = setup("e2e-access").await else { return };
    let (proxy, operator) = s
        .operator_behind_proxy(&[
            "--create-github-oidc-provider",
            "--iam-permissions-boundary",
            BOUNDARY,
            "--stats-interval",
            "1h",
        ])
        .await;
    let iam = iam(&s).await;
    let name = format!("{}/api", s.namespace);
    let access = json!({
        "pull": [{"accountId": "111122223333"}, {"organizationId": "o-a1b2c3d4e5"}, {"service": "lambda.amazonaws.com"}],
        "push": [
            {"arn": "arn:aws:iam::111122223333:role/legacy-ci"},
            {"githubActions": {"repository": "acme/payments-api", "refs": ["refs/heads/main", "refs/tags/v*"]}},
        ],
    });
    s.create("api", json!({"repositoryName": name, "access": access})).await;
    let ready = wait_reason(&s.repositories, "api", "Synced", &operator).await;
    let status = ready.status.unwrap();
    let role_name = policy::push_role_name(&s.namespace, "api");
    let role_arn = format!("arn:aws:iam::123456789012:role/berth/{role_name}");
    assert_eq!(status.push_role_arn.as_deref(), Some(role_arn.as_str()));

    // the repository policy is exactly berth's rendering, the role granted push
    let grants = Access {
        pull: vec![
            Principal::Account("111122223333".into()),
            Principal::Organization("o-a1b2c3d4e5".into()),
            Principal::Service("lambda.amazonaws.com".into()),
        ],
        push: vec![Principal::Arn("arn:aws:iam::111122223333:role/legacy-ci".into())],
        extra_statements: vec![],
    };
    let expected_policy = policy::repository_policy("aws", &grants, Some(&role_arn), false)
        .unwrap()
        .unwrap();
    assert_eq!(repository_policy(&s, &name).await, Some(expected_policy.clone()));

    // the role: path, boundary, ownership, trust and inline policies exactly as rendered
    let created = role(&iam, &role_name).await.expect("push role created");
    assert_eq!(created.path(), "/berth/");
    assert_eq!(
        created
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(BOUNDARY)
    );
    let owner = format!("{}/{}/api", operator.cluster_id, s.namespace);
    assert!(
        created
            .tags()
            .iter()
            .any(|t| t.key() == "berth.dev/owner" && t.value() == owner),
        "{:?}",
        created.tags()
    );
    let provider = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .unwrap()
        .open_id_connect_provider_list()
        .iter()
        .filter_map(|p| p.arn())
        .find(|arn| arn.ends_with("oidc-provider/token.actions.githubusercontent.com"))
        .expect("the GitHub OIDC provider exists")
        .to_owned();
    let pushers = |refs: &[&str]| {
        vec![GithubPusher {
            repository: "acme/payments-api".into(),
            refs: refs.iter().map(|r| r.to_string()).collect(),
            environments: vec![],
        }]
    };
    let trust = policy::parse_policy(created.assume_role_policy_document().unwrap()).unwrap();
    assert_eq!(
        trust,
        policy::github_trust_policy(&provider, &pushers(&["refs/heads/main", "refs/tags/v*"])).unwrap()
    );
    let inline = inline_policy(&iam, &role_name).await.expect("inline policy");
    let repository_arn = status.repository_arn.clone().unwrap();
    assert_eq!(inline, policy::push_role_inline_policy(&repository_arn));
    let listed = iam.list_role_policies().role_name(&role_name).send().await.unwrap();
    assert_eq!(listed.policy_names(), ["berth-push"]);
    assert_eq!(s.events("api", "PolicyApplied").await.len(), 1);
    assert!(!s.events("api", "Created").await.is_empty());

    // an in-sync repository costs no write on resync
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.reset();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let made = proxy.counts();
    let writes: Vec<_> = made.iter().filter(|(op, _)| is_write(op)).collect();
    assert!(writes.is_empty(), "writes on an in-sync resync: {writes:?}");
    assert!(
        made.get("GetRepositoryPolicy").copied().unwrap_or_default() >= 1,
        "{made:?}"
    );

    // editing refs changes the trust policy and nothing else
    proxy.reset();
    let edited = json!({"spec": {"access": {
        "pull": access["pull"].clone(),
        "push": [
            {"arn": "arn:aws:iam::111122223333:role/legacy-ci"},
            {"githubActions": {"repository": "acme/payments-api", "refs": ["refs/heads/main", "refs/heads/release"]}},
        ],
    }}});
    s.merge("api", edited).await;
    wait_reason(&s.repositories, "api", "Synced", &operator).await;
    let expected_trust =
        policy::github_trust_policy(&provider, &pushers(&["refs/heads/main", "refs/heads/release"])).unwrap();
    assert_eq!(trust_policy(&iam, &role_name).await.unwrap(), expected_trust);
    let writes: Vec<_> = proxy.counts().into_iter().filter(|(op, _)| is_write(op)).collect();
    assert_eq!(writes, [("UpdateAssumeRolePolicy".to_owned(), 1)]);

    // an out-of-band policy edit is set back within a resync and reported
    s.ecr
        .set_repository_policy()
        .repository_name(&name)
        .policy_text(r#"{"Version":"2012-10-17","Statement":[{"Sid":"Console","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"ecr:*"}]}"#)
        .send()
        .await
        .unwrap();
    let reverted = wait_for(TIMEOUT, || async {
        (repository_policy(&s, &name).await.as_ref() == Some(&expected_policy)).then_some(())
    })
    .await;
    assert!(
        reverted.is_some(),
        "policy drift not corrected\n{}",
        operator.log_text()
    );
    assert!(
        s.drift_reported("api", "repositoryPolicy").await,
        "{:?}",
        s.events("api", "DriftCorrected").await
    );

    // a trust policy widened out of band (any repository may assume the role) is set back too
    widen_trust_policy(&iam, &role_name, &provider).await;
    let restored = wait_for(TIMEOUT, || async {
        (trust_policy(&iam, &role_name).await? == expected_trust).then_some(())
    })
    .await;
    assert!(
        restored.is_some(),
        "trust policy drift not corrected\n{}",
        operator.log_text()
    );
    assert!(
        s.drift_reported("api", "pushRole.trustPolicy").await,
        "{:?}",
        s.events("api", "DriftCorrected").await
    );

    // removing the GitHub grant deletes the role (inline policy first) and its grant
    s.merge("api",
        json!({"spec": {"access": {"pull": access["pull"].clone(), "push": [{"arn": "arn:aws:iam::111122223333:role/legacy-ci"}]}}}),
    )
    .await;
    let gone = wait_for(TIMEOUT, || async {
        role(&iam, &role_name).await.is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "push role not deleted\n{}", operator.log_text());
    let current = wait_reason(&s.repositories, "api", "Synced", &operator).await;
    assert_eq!(current.status.unwrap().push_role_arn, None);
    let without_role = policy::repository_policy("aws", &grants, None, false).unwrap().unwrap();
    assert_eq!(repository_policy(&s, &name).await, Some(without_role));

    // no access at all: berth's policy is removed
    s.merge("api", json!({"spec": {"access": null}})).await;
    let removed = wait_for(TIMEOUT, || async {
        repository_policy(&s, &name).await.is_none().then_some(())
    })
    .await;
    assert!(
        removed.is_some(),
        "repository policy not removed\n{}",
        operator.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_iam_has_not_propagated_is_retried_and_delete_takes_the_role() {
    let Some(s) = setup("e2e-role").await else { return };
    let (proxy, operator) = s
        .operator_behind_proxy(&["--create-github-oidc-provider", "--stats-interval", "1h"])
        .await;
    let iam = iam(&s).await;
    // ECR refuses a principal IAM has not propagated yet; moto cannot, the proxy does once
    proxy.fail_next(
        "SetRepositoryPolicy",
        "InvalidParameterException",
        "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'",
    );
    let name = format!("{}/ci", s.namespace);
    let spec = json!({
        "repositoryName": name, "deletionPolicy": "Delete",
        "access": {"push": [{"githubActions": {"repository": "acme/ci", "environments": ["production"]}}]},
    });
    s.create("ci", spec).await;
    let ready = wait_reason(&s.repositories, "ci", "Synced", &operator).await;
    assert_eq!(
        proxy.counts().get("SetRepositoryPolicy"),
        Some(&2),
        "{:?}",
        proxy.counts()
    );
    // (other tests may race this one to create the shared OIDC provider: that conflict is
    // retried too, so only the policy refusal is counted here)
    let retried: Vec<_> = s
        .events("ci", "AwsConflict")
        .await
        .into_iter()
        .filter(|e| {
            e.note
                .as_deref()
                .unwrap_or_default()
                .contains("Invalid repository policy provided")
        })
        .collect();
    assert_eq!(retried.len(), 1, "one retried refusal");
    assert!(retried[0].note.as_deref().unwrap().contains("retrying"));
    // the Warning names the failed operation, so it is not folded into another conflict's series
    assert_eq!(retried[0].action.as_deref(), Some("SetRepositoryPolicy"));
    let text = operator.get("/metrics").await.unwrap().1;
    assert!(
        common::metric_sum(&text, "berth_reconcile_errors_total", &[("reason", "conflict")]) >= 1.0,
        "{text}"
    );
    assert_eq!(
        common::metric_sum(&text, "berth_reconcile_errors_total", &[("reason", "client_error")]),
        0.0,
        "the refusal was not reported as terminal: {text}"
    );

    let role_name = policy::push_role_name(&s.namespace, "ci");
    let created = role(&iam, &role_name).await.expect("push role");
    assert_eq!(ready.status.unwrap().push_role_arn.as_deref(), Some(created.arn()));
    let trust = policy::parse_policy(created.assume_role_policy_document().unwrap()).unwrap();
    assert!(
        trust.to_string().contains("repo:acme/ci:environment:production"),
        "{trust}"
    );

    // deletionPolicy Delete: the role and the repository go with the object
    delete_and_expect_all_gone(&s, &iam, &operator, "ci", &name, &role_name).await;
}

/// Deletes the EcrRepository `object` and waits until it is released, its push role
/// `role_name` is gone from IAM and its repository `repository` from ECR.
async fn delete_and_expect_all_gone(
    s: &Setup,
    iam: &aws_sdk_iam::Client,
    operator: &Operator,
    object: &str,
    repository: &str,
    role_name: &str,
) {
    s.repositories.delete(object, &DeleteParams::default()).await.unwrap();
    let gone = wait_for(TIMEOUT, || async {
        (s.repositories.get_opt(object).await.ok()?.is_none() && role(iam, role_name).await.is_none()).then_some(())
    })
    .await;
    assert!(gone.is_some(), "object or role still there\n{}", operator.log_text());
    let described = s.ecr.describe_repositories().repository_names(repository).send().await;
    assert!(described.is_err(), "the repository leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_access_is_refused_without_the_flag() {
    let Some(s) = setup("e2e-public").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &["--stats-interval", "1h"]);
    let name = format!("{}/open", s.namespace);
    let spec = json!({"repositoryName": name, "access": {"pull": [{"arn": "*"}]}});
    s.create("open", spec).await;
    let refused = wait_reason(&s.repositories, "open", "InvalidSpec", &operator).await;
    let message = refused.status.unwrap().conditions[0].message.clone();
    assert!(
        message.contains("spec.access") && message.contains("--allow-public-access"),
        "{message}"
    );
    assert!(
        s.ecr
            .describe_repositories()
            .repository_names(&name)
            .send()
            .await
            .is_err(),
        "nothing is created for an invalid spec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_flag_is_used_as_given() {
    let Some(s) = setup("e2e-provider").await else { return };
    let provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com/acme";
    let (proxy, operator) = s
        .operator_behind_proxy(&["--github-oidc-provider-arn", provider, "--stats-interval", "1h"])
        .await;
    let spec = json!({
        "repositoryName": format!("{}/flag", s.namespace),
        "access": {"push": [{"githubActions": {"repository": "acme/flag", "refs": ["refs/heads/main"]}}]},
    });
    s.create("flag", spec).await;
    wait_reason(&s.repositories, "flag", "Synced", &operator).await;
    let created = role(&iam(&s).await, &policy::push_role_name(&s.namespace, "flag"))
        .await
        .expect("push role");
    let trust = policy::parse_policy(created.assume_role_policy_document().unwrap()).unwrap();
    assert_eq!(trust["Statement"][0]["Principal"]["Federated"], provider);
    // the condition keys name the provider's own issuer, path included
    let keys = &trust["Statement"][0]["Condition"]["StringEquals"];
    assert!(
        keys.get("token.actions.githubusercontent.com/acme:sub").is_some(),
        "{trust}"
    );
    let made = proxy.counts();
    assert!(!made.contains_key("ListOpenIDConnectProviders"), "{made:?}");
    assert!(!made.contains_key("CreateOpenIDConnectProvider"), "{made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_to_creates_create_nothing_twice() {
    let Some(s) = setup("e2e-lost-answer").await else {
        return;
    };
    let (proxy, operator) = s
        .operator_behind_proxy(&["--create-github-oidc-provider", "--stats-interval", "1h"])
        .await;
    // both creates take effect in moto, but berth hears a 500 and tries again
    proxy.lose_next_answer("CreateRepository");
    proxy.lose_next_answer("CreateRole");
    let name = format!("{}/retry", s.namespace);
    let spec = json!({
        "repositoryName": name,
        "access": {"push": [{"githubActions": {"repository": "acme/retry", "refs": ["refs/heads/main"]}}]},
    });
    s.create("retry", spec).await;
    let ready = wait_reason(&s.repositories, "retry", "Synced", &operator).await;
    let made = proxy.counts();
    assert_eq!(made.get("CreateRepository"), Some(&2), "{made:?}");
    assert_eq!(made.get("CreateRole"), Some(&2), "{made:?}");
    // the second attempts met the first ones' results and were taken as conflicts, then observed
    assert!(!s.events("retry", "AwsConflict").await.is_empty());
    let repositories = s
        .ecr
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(repositories.repositories().len(), 1);
    let role_name = policy::push_role_name(&s.namespace, "retry");
    let created = role(&iam(&s).await, &role_name).await.expect("push role");
    assert_eq!(ready.status.unwrap().push_role_arn.as_deref(), Some(created.arn()));
    let inline = iam(&s)
        .await
        .list_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    assert_eq!(inline.policy_names(), ["berth-push"]);
}

/// Cleanup works from what status recorded, so a spec that became invalid (or was edited) after
/// creation neither sticks the finalizer nor leaks the repository or the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_works_from_the_record_when_the_spec_became_invalid() {
    let Some(s) = setup("e2e-record").await else { return };
    let operator = Operator::start(&s.testbed, &s.namespace, &["--create-github-oidc-provider"]);
    let iam = iam(&s).await;
    let name = format!("{}/rec", s.namespace);
    let spec = json!({
        "repositoryName": name, "deletionPolicy": "Delete",
        "access": {"push": [{"githubActions": {"repository": "acme/rec", "refs": ["refs/heads/main"]}}]},
    });
    s.create("rec", spec).await;
    let ready = wait_reason(&s.repositories, "rec", "Synced", &operator).await;
    let role_arn = ready.status.unwrap().push_role_arn.expect("push role recorded");
    let role_name = role_arn.rsplit('/').next().unwrap().to_owned();
    assert!(role(&iam, &role_name).await.is_some());

    // a tag key AWS reserves: the schema admits it where CEL is not evaluated, berth does not
    s.merge("rec", json!({"spec": {"tags": {"aws:owner": "x"}}})).await;
    wait_reason(&s.repositories, "rec", "InvalidSpec", &operator).await;

    delete_and_expect_all_gone(&s, &iam, &operator, "rec", &name, &role_name).await;
}

/// The requests of one steady resync, by operation: from the `index`-th `ListRoles` (the first
/// role lookup of each resync lists the roles) to the next one.
fn one_resync(proxy: &common::proxy::AwsProxy, index: usize) -> std::collections::BTreeMap<String, u64> {
    let starts: Vec<_> = proxy
        .invocations("ListRoles")
        .iter()
        .map(|calls| calls[0].at - Duration::from_micros(1))
        .collect();
    let mut counts = proxy.counts_since(Some(starts[index]));
    for (operation, later) in proxy.counts_since(Some(starts[index + 1])) {
        let count = counts
            .get_mut(&operation)
            .expect("a later call was counted since the start too");
        *count -= later;
    }
    counts.retain(|_, count| *count > 0);
    counts
}

/// Issue 14 ("bounded work"): a steady resync reads each push role once (its inline policy),
/// all of their trust policies coming from one `ListRoles` under berth's role path; the tags and
/// the boundary, which listings leave out, were confirmed once and are not read again. A trust
/// or inline policy changed out of band is still set back within a resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_resync_reads_each_push_role_once() {
    let Some(s) = setup("e2e-rolereads").await else { return };
    // a path of this test's own: the listing sees only its roles, whatever runs alongside
    let path = format!("/berth/{}/", s.namespace);
    let (proxy, operator) = s
        .operator_behind_proxy(&[
            "--create-github-oidc-provider",
            "--iam-role-path",
            &path,
            "--iam-permissions-boundary",
            BOUNDARY,
            "--stats-interval",
            "1h",
        ])
        .await;
    const ROLES: usize = 5;
    let objects: Vec<String> = (0..ROLES).map(|i| format!("app{i}")).collect();
    for object in &objects {
        let github = json!({"repository": format!("acme/{object}"), "refs": ["refs/heads/main"]});
        let spec = json!({
            "repositoryName": format!("{}/{object}", s.namespace),
            "access": {"push": [{"githubActions": github}]},
        });
        s.create(object, spec).await;
    }
    let mut repository_arns = Vec::new();
    for object in &objects {
        let ready = wait_reason(&s.repositories, object, "Synced", &operator).await;
        let status = ready.status.unwrap();
        let role_arn = status.push_role_arn.expect("push role recorded");
        assert!(role_arn.contains(&format!(":role{path}")), "{role_arn}");
        repository_arns.push(status.repository_arn.unwrap());
    }

    // the first resync after the creations confirms each role's tags and boundary (GetRole);
    // the two after it are steady
    proxy.reset();
    let steady = wait_for(TIMEOUT, || async {
        (proxy.invocations("ListRoles").len() >= 4).then_some(())
    })
    .await;
    assert!(
        steady.is_some(),
        "not one ListRoles per resync: {:?}\n{}",
        proxy.counts(),
        operator.log_text()
    );
    for index in [1, 2] {
        let made = one_resync(&proxy, index);
        let count = |operation: &str| made.get(operation).copied().unwrap_or_default();
        assert_eq!(count("ListRoles"), 1, "{made:?}");
        assert_eq!(count("GetRole"), 0, "{made:?}");
        assert_eq!(count("GetRolePolicy"), ROLES as u64, "{made:?}");
        let writes: Vec<_> = made.iter().filter(|(op, _)| is_write(op)).collect();
        assert!(writes.is_empty(), "writes on a steady resync: {writes:?}");
    }

    // a trust policy and an inline policy widened out of band are both set back
    let iam = iam(&s).await;
    let role_name = policy::push_role_name(&s.namespace, &objects[0]);
    let trust_before = trust_policy(&iam, &role_name).await.unwrap();
    let provider = trust_before["Statement"][0]["Principal"]["Federated"]
        .as_str()
        .expect("the trust policy names its OIDC provider");
    widen_trust_policy(&iam, &role_name, provider).await;
    iam.put_role_policy()
        .role_name(&role_name)
        .policy_name("berth-push")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let expected_inline = policy::push_role_inline_policy(&repository_arns[0]);
    let restored = wait_for(TIMEOUT, || async {
        let trust = trust_policy(&iam, &role_name).await?;
        let inline = inline_policy(&iam, &role_name).await?;
        (trust == trust_before && inline == expected_inline).then_some(())
    })
    .await;
    assert!(
        restored.is_some(),
        "push role drift not corrected\n{}",
        operator.log_text()
    );
    for field in ["pushRole.trustPolicy", "pushRole.inlinePolicy"] {
        assert!(
            s.drift_reported(&objects[0], field).await,
            "{field}: {:?}",
            s.events(&objects[0], "DriftCorrected").await
        );
    }
}

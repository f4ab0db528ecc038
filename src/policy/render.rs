//! Rendering least-privilege documents from berth's own grant model: the repository policy, the
//! GitHub Actions trust policy of a push role, and the role's inline push policy.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::public::public_reason;

pub const PULL_ACTIONS: [&str; 3] = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
];
pub const PUSH_ONLY_ACTIONS: [&str; 4] = [
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
];
/// ECR's limit on a repository policy.
pub const REPOSITORY_POLICY_MAX: usize = 10_240;
/// IAM's default limit on a role trust policy.
pub const TRUST_POLICY_MAX: usize = 2_048;
/// The issuer of GitHub.com's Actions tokens: the OIDC provider berth looks up or creates by default.
pub const GITHUB_OIDC_HOST: &str = "token.actions.githubusercontent.com";
/// The commercial AWS partition, for tests and placeholders only: berth renders the partition
/// it learns at start from STS.
pub const DEFAULT_PARTITION: &str = "aws";
pub const GITHUB_AUDIENCE: &str = "sts.amazonaws.com";
/// Every statement berth renders has a Sid with this prefix: a policy holding one is berth's.
pub const SID_PREFIX: &str = "Berth";

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Principal {
    /// An AWS account (its root ARN).
    Account(String),
    /// Every principal of an AWS Organization: `*` with an `aws:PrincipalOrgID` condition.
    Organization(String),
    /// An IAM principal ARN; `*` is everyone.
    Arn(String),
    /// An AWS service principal, e.g. `lambda.amazonaws.com`.
    Service(String),
}

/// The grants of one repository, in berth's terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Access {
    pub pull: Vec<Principal>,
    pub push: Vec<Principal>,
    /// Raw statements from `spec.extraPolicyStatements`, appended as they are.
    pub extra_statements: Vec<Value>,
}

impl Access {
    pub fn is_empty(&self) -> bool {
        self.pull.is_empty() && self.push.is_empty() && self.extra_statements.is_empty()
    }
}

/// Why a policy cannot be rendered; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

fn actions(push: bool) -> Vec<&'static str> {
    let mut actions: Vec<&str> = PULL_ACTIONS.to_vec();
    if push {
        actions.extend(PUSH_ONLY_ACTIONS);
    }
    actions
}

/// The statements for one access level: one for named principals, one for organizations.
/// Accounts become `arn:<partition>:iam::<id>:root`.
fn grant_statements(partition: &str, level: &str, principals: &[Principal], push: bool) -> Vec<Value> {
    let mut aws = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut organizations = BTreeSet::new();
    for principal in principals {
        match principal {
            Principal::Account(id) => {
                aws.insert(format!("arn:{partition}:iam::{id}:root"));
            }
            Principal::Arn(arn) => {
                aws.insert(arn.clone());
            }
            Principal::Service(service) => {
                services.insert(service.clone());
            }
            Principal::Organization(id) => {
                organizations.insert(id.clone());
            }
        }
    }
    let mut statements = Vec::new();
    if !aws.is_empty() || !services.is_empty() {
        let mut principal = serde_json::Map::new();
        if !aws.is_empty() {
            principal.insert("AWS".into(), json!(aws));
        }
        if !services.is_empty() {
            principal.insert("Service".into(), json!(services));
        }
        statements.push(json!({
            "Sid": format!("{SID_PREFIX}{level}"),
            "Effect": "Allow",
            "Principal": principal,
            "Action": actions(push),
        }));
    }
    if !organizations.is_empty() {
        statements.push(json!({
            "Sid": format!("{SID_PREFIX}{level}Organizations"),
            "Effect": "Allow",
            "Principal": "*",
            "Action": actions(push),
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": organizations}},
        }));
    }
    statements
}

/// Renders the repository policy, or None when there is nothing to grant. `push_role_arn` is
/// berth's GitHub Actions push role, granted push. Refuses public access unless allowed, and
/// anything over ECR's size limit, before any call. `partition` (`aws`, `aws-cn`, `aws-us-gov`)
/// is the one of the account's root ARNs.
pub fn repository_policy(
    partition: &str,
    access: &Access,
    push_role_arn: Option<&str>,
    allow_public: bool,
) -> Result<Option<Value>, RenderError> {
    let mut push = access.push.clone();
    if let Some(arn) = push_role_arn {
        push.push(Principal::Arn(arn.to_owned()));
    }
    if access.pull.is_empty() && push.is_empty() && access.extra_statements.is_empty() {
        return Ok(None);
    }
    let mut statements = grant_statements(partition, "Pull", &access.pull, false);
    statements.extend(grant_statements(partition, "Push", &push, true));
    for (index, statement) in access.extra_statements.iter().enumerate() {
        let effect = statement.get("Effect").and_then(Value::as_str);
        if !matches!(effect, Some("Allow" | "Deny")) {
            return Err(RenderError(format!(
                "spec.extraPolicyStatements[{index}] must be an IAM statement object with Effect Allow or Deny"
            )));
        }
        statements.push(statement.clone());
    }
    if !allow_public
        && let Some((index, reason)) = statements
            .iter()
            .enumerate()
            .find_map(|(index, statement)| public_reason(statement).map(|reason| (index, reason)))
    {
        let field = match index.checked_sub(statements.len() - access.extra_statements.len()) {
            Some(extra) => format!("spec.extraPolicyStatements[{extra}]"),
            None => "spec.access".to_owned(),
        };
        return Err(RenderError(format!(
            "{field} grants access to everyone: it {reason}; the operator refuses public repositories unless it runs with --allow-public-access"
        )));
    }
    let document = json!({"Version": "2012-10-17", "Statement": statements});
    let size = document.to_string().len();
    if size > REPOSITORY_POLICY_MAX {
        return Err(RenderError(format!(
            "spec.access renders a repository policy of {size} characters; ECR accepts at most {REPOSITORY_POLICY_MAX}"
        )));
    }
    Ok(Some(document))
}

/// One GitHub repository allowed to push, with the refs and environments it may push from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubPusher {
    pub repository: String,
    pub refs: Vec<String>,
    pub environments: Vec<String>,
}

/// The `sub` claims GitHub issues for these pushers, in a stable order.
pub fn github_subjects(pushers: &[GithubPusher]) -> BTreeSet<String> {
    let mut subjects = BTreeSet::new();
    for pusher in pushers {
        for reference in &pusher.refs {
            subjects.insert(format!("repo:{}:ref:{reference}", pusher.repository));
        }
        for environment in &pusher.environments {
            subjects.insert(format!("repo:{}:environment:{environment}", pusher.repository));
        }
    }
    subjects
}

/// The issuer an IAM OIDC provider stands for, host and optional path, which is also the prefix
/// of its condition keys: `arn:<partition>:iam::<account>:oidc-provider/ghe.example.com/_services/token`
/// → `ghe.example.com/_services/token`. None when the text is no OIDC provider ARN.
pub fn issuer_of(provider_arn: &str) -> Option<&str> {
    let fields: Vec<&str> = provider_arn.splitn(6, ':').collect();
    let [arn, partition, "iam", "", account, resource] = fields[..] else {
        return None;
    };
    if arn != "arn" || partition.is_empty() || account.is_empty() {
        return None;
    }
    let issuer = resource.strip_prefix("oidc-provider/")?.trim_end_matches('/');
    (!issuer.is_empty() && !issuer.starts_with('/')).then_some(issuer)
}

/// The trust policy of a push role: web identity from the GitHub OIDC provider, audience
/// `sts.amazonaws.com`, `sub` exactly one of the declared refs/environments (`StringLike` only
/// for the patterns that use a wildcard, in a statement of their own since conditions of one
/// statement must all hold). The condition keys name the provider's own issuer
/// (`token.actions.githubusercontent.com`, or a GitHub Enterprise Server's host and path).
pub fn github_trust_policy(provider_arn: &str, pushers: &[GithubPusher]) -> Result<Value, RenderError> {
    let issuer = issuer_of(provider_arn).ok_or_else(|| {
        RenderError(format!(
            "the GitHub OIDC provider '{provider_arn}' is not an IAM OIDC provider ARN (arn:<partition>:iam::<account>:oidc-provider/<issuer>)"
        ))
    })?;
    let subjects = github_subjects(pushers);
    let (patterns, exact): (Vec<String>, Vec<String>) =
        subjects.into_iter().partition(|s| s.contains('*') || s.contains('?'));
    let audience_key = format!("{issuer}:aud");
    let subject_key = format!("{issuer}:sub");
    let statement = |sid: String, subjects: &[String], wildcard: bool| {
        let condition = if wildcard {
            json!({"StringEquals": {audience_key.clone(): GITHUB_AUDIENCE}, "StringLike": {subject_key.clone(): subjects}})
        } else {
            json!({"StringEquals": {audience_key.clone(): GITHUB_AUDIENCE, subject_key.clone(): subjects}})
        };
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        })
    };
    let mut statements = Vec::new();
    if !exact.is_empty() {
        statements.push(statement(format!("{SID_PREFIX}GitHubActions"), &exact, false));
    }
    if !patterns.is_empty() {
        statements.push(statement(format!("{SID_PREFIX}GitHubActionsPatterns"), &patterns, true));
    }
    if statements.is_empty() {
        return Err(RenderError(
            "spec.access.push[].githubActions needs at least one ref or environment".into(),
        ));
    }
    let document = json!({"Version": "2012-10-17", "Statement": statements});
    let size = document.to_string().len();
    if size > TRUST_POLICY_MAX {
        return Err(RenderError(format!(
            "spec.access.push[].githubActions renders a trust policy of {size} characters; IAM accepts at most {TRUST_POLICY_MAX}: declare fewer refs/environments or use a wildcard"
        )));
    }
    Ok(document)
}

/// The inline policy of a push role: an authorization token (which ECR only grants on `*`) and
/// push to this one repository.
pub fn push_role_inline_policy(repository_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": format!("{SID_PREFIX}AuthorizationToken"), "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": format!("{SID_PREFIX}Push"), "Effect": "Allow", "Action": actions(true), "Resource": repository_arn},
        ]
    })
}

/// Whether berth wrote this policy: one of its statements carries berth's Sid prefix.
pub fn is_berth_policy(document: &Value) -> bool {
    let statements = match &document["Statement"] {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    statements
        .iter()
        .any(|s| s["Sid"].as_str().is_some_and(|sid| sid.starts_with(SID_PREFIX)))
}

/// The push role's name: `<namespace>-<name>-<hash>-push`, `<hash>` being 8 hex digits of a
/// hash of `<namespace>/<name>`, so that objects whose names join alike (`a-b`/`c`, `a`/`b-c`)
/// get distinct roles. `<namespace>-<name>` is cut to fit IAM's 64 characters; characters
/// outside IAM's set `[\w+=,.@-]` (none in Kubernetes names) become `-`. Deterministic.
/// (Before, the name was `<namespace>-<name>-push`; the reconciler moves such roles over.)
pub fn push_role_name(namespace: &str, name: &str) -> String {
    /// IAM's bound on a role name.
    const MAX_ROLE_NAME_LENGTH: usize = 64;
    let hash = crate::naming::fnv1a(format!("{namespace}/{name}").as_bytes()) as u32;
    let suffix = format!("-{hash:08x}-push");
    let base: String = format!("{namespace}-{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    // all ASCII now: bytes are characters
    let base = crate::naming::cut(&base, MAX_ROLE_NAME_LENGTH - suffix.len()).trim_end_matches('-');
    format!("{base}{suffix}")
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

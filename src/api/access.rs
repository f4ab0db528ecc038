//! `spec.access` of an EcrRepository: who may pull and push, rendered into the repository
//! policy (and, for GitHub Actions, a push role that CI assumes through OIDC).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const ACCOUNT_ID_PATTERN: &str = r"^[0-9]{12}$";
pub const ORGANIZATION_ID_PATTERN: &str = r"^o-[a-z0-9]{10,32}$";
/// An IAM or STS principal ARN, or `*` (everyone; refused unless the operator allows it).
pub const PRINCIPAL_ARN_PATTERN: &str = r"^(\*|arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[A-Za-z0-9+=,.@_/:*-]+)$";
pub const SERVICE_PATTERN: &str = r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com(\.cn)?$";
pub const GITHUB_REPOSITORY_PATTERN: &str = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$";
pub const GITHUB_REF_PATTERN: &str = r"^refs/[^\s:]+$";
pub const GITHUB_ENVIRONMENT_PATTERN: &str = r"^[^\s:][^:]{0,254}$";

pub const MAX_PULL_GRANTS: usize = 50;
pub const MAX_PUSH_GRANTS: usize = 20;
pub const MAX_GITHUB_REFS: usize = 20;
pub const MAX_EXTRA_STATEMENTS: usize = 20;

/// Who may pull and who may push.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryAccess {
    /// Principals allowed to pull (BatchGetImage, GetDownloadUrlForLayer,
    /// BatchCheckLayerAvailability). At most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(validation = Rule::new(
        "self.all(g, (has(g.accountId) ? 1 : 0) + (has(g.organizationId) ? 1 : 0) + (has(g.arn) ? 1 : 0) + (has(g.service) ? 1 : 0) == 1)"
    ).message("spec.access.pull[]: set exactly one of accountId, organizationId, arn, service"))]
    pub pull: Vec<Grantee>,

    /// Principals allowed to push (pull plus InitiateLayerUpload, UploadLayerPart,
    /// CompleteLayerUpload, PutImage). At most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub push: Vec<PushGrant>,
}

/// One principal: set exactly one of accountId, organizationId, arn, service.
// The one-kind rule sits on `pull` (a rule here would also land in the flattened PushGrant).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Grantee {
    /// An AWS account (12 digits): every principal of that account the account allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ACCOUNT_ID_PATTERN))]
    pub account_id: Option<String>,
    /// An AWS Organization id (o-...): every principal in the organization, through an
    /// aws:PrincipalOrgID condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ORGANIZATION_ID_PATTERN))]
    pub organization_id: Option<String>,
    /// An IAM role/user or STS principal ARN. `*` (everyone) is refused unless the operator
    /// runs with --allow-public-access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = PRINCIPAL_ARN_PATTERN))]
    pub arn: Option<String>,
    /// An AWS service principal, e.g. lambda.amazonaws.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), regex(pattern = SERVICE_PATTERN))]
    pub service: Option<String>,
}

/// One push principal: set exactly one of accountId, organizationId, arn, service,
/// githubActions.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "(has(self.accountId) ? 1 : 0) + (has(self.organizationId) ? 1 : 0) + (has(self.arn) ? 1 : 0) + (has(self.service) ? 1 : 0) + (has(self.githubActions) ? 1 : 0) == 1"
).message("spec.access.push[]: set exactly one of accountId, organizationId, arn, service, githubActions"))]
#[serde(rename_all = "camelCase")]
pub struct PushGrant {
    #[serde(flatten)]
    pub grantee: Grantee,
    /// GitHub Actions workflows of one repository: berth creates an IAM role they assume through
    /// the GitHub OIDC provider, limited to the listed refs and environments, and reports it in
    /// status.pushRoleArn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_actions: Option<GithubActionsGrant>,
}

/// Which GitHub workflows may push: a repository and the refs/environments they run for.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "(has(self.refs) ? size(self.refs) : 0) + (has(self.environments) ? size(self.environments) : 0) > 0"
).message("spec.access.push[].githubActions: list at least one ref or environment"))]
#[serde(rename_all = "camelCase")]
pub struct GithubActionsGrant {
    /// The GitHub repository, `org/repo`.
    #[schemars(length(min = 3, max = 200), regex(pattern = GITHUB_REPOSITORY_PATTERN))]
    pub repository: String,
    /// Git refs whose workflows may push, e.g. refs/heads/main or refs/tags/v* (`*` matches
    /// any characters). At most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 255), regex(pattern = GITHUB_REF_PATTERN)))]
    pub refs: Vec<String>,
    /// GitHub deployment environments whose jobs may push, e.g. production. At most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 255), regex(pattern = GITHUB_ENVIRONMENT_PATTERN)))]
    pub environments: Vec<String>,
}

/// `spec.extraPolicyStatements`: raw IAM statement objects, kept as they are.
pub fn extra_statements_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Raw IAM policy statements appended to the rendered repository policy (escape hatch). Each is an object with at least Effect. At most 20.",
        "type": "array",
        "maxItems": 20,
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

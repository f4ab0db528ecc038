//! What only the EcrRepository reconciler needs besides the shared runtime: the operator
//! settings its validation and push roles depend on, the GitHub OIDC provider it found, and the
//! push roles' batched observer.

use crate::aws::RoleObserver;

/// Operator settings that validation depends on.
#[derive(Clone, Debug, Default)]
pub struct ValidationSettings {
    pub default_region: String,
    pub cluster_id: String,
    pub require_namespace_prefix: bool,
    pub allow_public_access: bool,
    /// IAM path of the push roles (`--iam-role-path`).
    pub iam_role_path: String,
    /// The AWS partition berth runs in (`aws`, `aws-cn`, `aws-us-gov`), learnt at start from STS:
    /// the one of the ARNs it renders.
    pub partition: String,
}

#[cfg(test)]
impl ValidationSettings {
    /// Region eu-west-1, cluster id c1, role path /berth/, partition aws, everything else off.
    pub fn for_tests() -> Self {
        ValidationSettings {
            default_region: "eu-west-1".into(),
            cluster_id: "c1".into(),
            iam_role_path: "/berth/".into(),
            partition: crate::policy::DEFAULT_PARTITION.into(),
            ..ValidationSettings::default()
        }
    }
}

/// How berth manages push roles (`--iam-*`, `--github-oidc-provider-arn`,
/// `--create-github-oidc-provider`).
#[derive(Clone, Debug, Default)]
pub struct RoleSettings {
    pub path: String,
    pub permissions_boundary: Option<String>,
    pub github_provider_arn: Option<String>,
    pub create_github_provider: bool,
}

/// The EcrRepository kind's own context.
pub struct Repositories {
    pub validation: ValidationSettings,
    pub roles: RoleSettings,
    /// The GitHub OIDC provider's ARN, looked up (or created) once.
    pub github_provider: tokio::sync::OnceCell<String>,
    /// One ListRoles under `roles.path` per resync epoch serves every push role.
    pub push_roles: RoleObserver,
}

impl Repositories {
    pub fn new(validation: ValidationSettings, roles: RoleSettings) -> Self {
        Self {
            push_roles: RoleObserver::new(&roles.path),
            validation,
            roles,
            github_provider: tokio::sync::OnceCell::new(),
        }
    }
}

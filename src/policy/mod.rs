//! IAM policy documents: rendering from berth's grant model, and semantic comparison. No
//! Kubernetes or AWS SDK types: everything here is unit-tested without a server.

mod compare;
mod public;
mod render;

pub use compare::{canonical, equivalent, parse_policy};
pub use render::{
    Access, DEFAULT_PARTITION, GITHUB_AUDIENCE, GITHUB_OIDC_HOST, GithubPusher, PULL_ACTIONS, PUSH_ONLY_ACTIONS,
    Principal, REPOSITORY_POLICY_MAX, RenderError, SID_PREFIX, TRUST_POLICY_MAX, github_subjects, github_trust_policy,
    is_berth_policy, issuer_of, push_role_inline_policy, push_role_name, repository_policy,
};

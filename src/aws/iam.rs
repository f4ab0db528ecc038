//! The IAM adapter: the `Iam` trait speaks berth's own types (documents as text, as IAM stores
//! them); `IamClient` implements it with the AWS SDK.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;

use super::{AbsentAsNone, AwsClients, AwsError};

/// A role as IAM reports it; `trust_policy` is the raw (URL-encoded) document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedRole {
    pub name: String,
    /// IAM's unique id: a role deleted and created again under the same name gets a new one.
    pub id: String,
    pub arn: String,
    pub path: String,
    pub trust_policy: String,
    pub permissions_boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A role as `ListRoles` reports it: everything but the permissions boundary and the tags,
/// which IAM leaves out of listings (only `GetRole` returns them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedRole {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    /// The raw (URL-encoded) trust policy.
    pub trust_policy: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Roles per `ListRoles` page: IAM's maximum (its default is 100).
const LIST_ROLES_PAGE: i32 = 1000;

/// A role to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRole<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub trust_policy: &'a str,
    pub permissions_boundary: Option<&'a str>,
    pub description: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

/// Everything berth asks of IAM.
#[async_trait]
pub trait Iam: Send + Sync {
    /// The ARN of the OIDC provider whose URL host is `host`, if the account has one.
    async fn find_oidc_provider(&self, host: &str) -> Result<Option<String>, AwsError>;
    async fn create_oidc_provider(
        &self,
        url: &str,
        audience: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError>;
    async fn get_role(&self, name: &str) -> Result<Option<ObservedRole>, AwsError>;
    /// Every role whose path starts with `path_prefix` (paginated).
    async fn list_roles(&self, path_prefix: &str) -> Result<Vec<ListedRole>, AwsError>;
    /// Creates the role and returns its ARN.
    async fn create_role(&self, role: &NewRole<'_>) -> Result<String, AwsError>;
    async fn update_trust_policy(&self, name: &str, document: &str) -> Result<(), AwsError>;
    async fn put_permissions_boundary(&self, name: &str, boundary_arn: &str) -> Result<(), AwsError>;
    /// An inline policy's raw (URL-encoded) document, or None.
    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, AwsError>;
    async fn put_role_policy(&self, role: &str, policy: &str, document: &str) -> Result<(), AwsError>;
    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError>;
    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), AwsError>;
    async fn delete_role(&self, name: &str) -> Result<(), AwsError>;
}

pub struct IamClient {
    client: aws_sdk_iam::Client,
}

impl IamClient {
    pub fn new(aws: &AwsClients) -> Self {
        Self { client: aws.iam() }
    }
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value are set"))
        .collect()
}

#[async_trait]
impl Iam for IamClient {
    async fn find_oidc_provider(&self, host: &str) -> Result<Option<String>, AwsError> {
        let output = self
            .client
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListOpenIDConnectProviders", e))?;
        let suffix = format!(":oidc-provider/{host}");
        Ok(output
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn())
            .find(|arn| arn.ends_with(&suffix))
            .map(str::to_owned))
    }

    async fn create_oidc_provider(
        &self,
        url: &str,
        audience: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let output = self
            .client
            .create_open_id_connect_provider()
            .url(url)
            .client_id_list(audience)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateOpenIDConnectProvider", e))?;
        Ok(output.open_id_connect_provider_arn().unwrap_or_default().to_owned())
    }

    async fn get_role(&self, name: &str) -> Result<Option<ObservedRole>, AwsError> {
        let output = self
            .client
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetRole", e))
            .absent_as_none()?;
        Ok(output.and_then(|o| o.role).map(|role| ObservedRole {
            name: role.role_name().to_owned(),
            id: role.role_id().to_owned(),
            arn: role.arn().to_owned(),
            path: role.path().to_owned(),
            trust_policy: role.assume_role_policy_document().unwrap_or_default().to_owned(),
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_owned),
            tags: role
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
            created_at: role.create_date().secs(),
        }))
    }

    async fn list_roles(&self, path_prefix: &str) -> Result<Vec<ListedRole>, AwsError> {
        let roles = self
            .client
            .list_roles()
            .path_prefix(path_prefix)
            .max_items(LIST_ROLES_PAGE)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        roles
            .into_iter()
            .map(|role| {
                let role = role.map_err(|e| AwsError::from_sdk("ListRoles", e))?;
                Ok(ListedRole {
                    name: role.role_name().to_owned(),
                    id: role.role_id().to_owned(),
                    arn: role.arn().to_owned(),
                    path: role.path().to_owned(),
                    trust_policy: role.assume_role_policy_document().unwrap_or_default().to_owned(),
                    created_at: role.create_date().secs(),
                })
            })
            .collect()
    }

    async fn create_role(&self, role: &NewRole<'_>) -> Result<String, AwsError> {
        let output = self
            .client
            .create_role()
            .role_name(role.name)
            .path(role.path)
            .assume_role_policy_document(role.trust_policy)
            .set_permissions_boundary(role.permissions_boundary.map(str::to_owned))
            .description(role.description)
            .set_tags(Some(sdk_tags(role.tags)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateRole", e))?;
        Ok(output.role().map(|r| r.arn().to_owned()).unwrap_or_default())
    }

    async fn update_trust_policy(&self, name: &str, document: &str) -> Result<(), AwsError> {
        self.client
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateAssumeRolePolicy", e))?;
        Ok(())
    }

    async fn put_permissions_boundary(&self, name: &str, boundary_arn: &str) -> Result<(), AwsError> {
        self.client
            .put_role_permissions_boundary()
            .role_name(name)
            .permissions_boundary(boundary_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutRolePermissionsBoundary", e))?;
        Ok(())
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, AwsError> {
        let output = self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetRolePolicy", e))
            .absent_as_none()?;
        Ok(output.map(|o| o.policy_document().to_owned()))
    }

    async fn put_role_policy(&self, role: &str, policy: &str, document: &str) -> Result<(), AwsError> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutRolePolicy", e))?;
        Ok(())
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        let pages = self
            .client
            .list_role_policies()
            .role_name(role)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        pages
            .into_iter()
            .map(|name| name.map_err(|e| AwsError::from_sdk("ListRolePolicies", e)))
            .collect()
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), AwsError> {
        self.client
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteRolePolicy", e))?;
        Ok(())
    }

    async fn delete_role(&self, name: &str) -> Result<(), AwsError> {
        self.client
            .delete_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteRole", e))?;
        Ok(())
    }
}

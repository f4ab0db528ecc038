//! Batched observation of the push roles: one paginated `ListRoles` under berth's role path per
//! resync epoch gives every push role's trust policy, ARN and age, instead of one `GetRole` per
//! role. `ListRoles` leaves out the tags and the permissions boundary, so those come from
//! `GetRole`, read when berth meets a role it has not confirmed (after a start, a role it just
//! created or wrote, a role recreated out of band: a new role id); in between, they are taken as
//! last confirmed. A name found absent is not read again within the epoch (a negative cache).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{AwsError, Iam, ListedRole, ObservedRole};

#[derive(Default)]
struct Snapshot {
    /// The resync epoch the roles were listed in; None before the first listing.
    epoch: Option<u64>,
    roles: HashMap<String, ListedRole>,
    /// Names read on their own this epoch and found absent.
    absent: HashSet<String>,
}

/// What only `GetRole` tells, as last read for the role with this id.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Confirmed {
    id: String,
    permissions_boundary: Option<String>,
    tags: BTreeMap<String, String>,
}

pub struct RoleObserver {
    /// `--iam-role-path`: every push role lives under it.
    path: String,
    snapshot: tokio::sync::Mutex<Snapshot>,
    /// Role name → its tags and boundary as last read with `GetRole`.
    confirmed: std::sync::Mutex<HashMap<String, Confirmed>>,
}

impl RoleObserver {
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            snapshot: Default::default(),
            confirmed: Default::default(),
        }
    }

    /// The role from this epoch's listing (taken once, by the first caller), with its confirmed
    /// tags and boundary. A role missing from the listing (created since, or under another
    /// path), or whose tags and boundary are not confirmed for its id, is read with `GetRole`.
    pub async fn observe(&self, iam: &dyn Iam, epoch: u64, name: &str) -> Result<Option<ObservedRole>, AwsError> {
        let listed = {
            let mut snapshot = self.snapshot.lock().await;
            if snapshot.epoch != Some(epoch) {
                let roles = iam.list_roles(&self.path).await?;
                snapshot.roles = roles.into_iter().map(|r| (r.name.clone(), r)).collect();
                snapshot.absent.clear();
                snapshot.epoch = Some(epoch);
            }
            if snapshot.absent.contains(name) {
                return Ok(None);
            }
            snapshot.roles.get(name).cloned()
        };
        let confirmed = self.confirmed.lock().expect("confirmed roles lock").get(name).cloned();
        if let Some(role) = listed
            .zip(confirmed)
            .and_then(|(listed, confirmed)| merge(listed, confirmed))
        {
            return Ok(Some(role));
        }
        self.observe_fresh(iam, name).await
    }

    /// The role read with `GetRole`, bypassing (and updating) the listing.
    pub async fn observe_fresh(&self, iam: &dyn Iam, name: &str) -> Result<Option<ObservedRole>, AwsError> {
        let role = iam.get_role(name).await?;
        match &role {
            Some(role) => self.record(role).await,
            None => self.forget(name).await,
        }
        Ok(role)
    }

    async fn record(&self, role: &ObservedRole) {
        let mut snapshot = self.snapshot.lock().await;
        snapshot.absent.remove(&role.name);
        snapshot.roles.insert(role.name.clone(), listed_part(role));
        self.confirmed.lock().expect("confirmed roles lock").insert(
            role.name.clone(),
            Confirmed {
                id: role.id.clone(),
                permissions_boundary: role.permissions_boundary.clone(),
                tags: role.tags.clone(),
            },
        );
    }

    /// After berth changed the role (created it, or wrote its trust policy or boundary): the
    /// next lookup reads it with `GetRole`, so nothing rests on what was true before the write.
    pub async fn invalidate(&self, name: &str) {
        let mut snapshot = self.snapshot.lock().await;
        snapshot.absent.remove(name);
        snapshot.roles.remove(name);
        self.confirmed.lock().expect("confirmed roles lock").remove(name);
    }

    /// Records that a role does not exist (read absent, or deleted by berth).
    pub async fn forget(&self, name: &str) {
        let mut snapshot = self.snapshot.lock().await;
        snapshot.roles.remove(name);
        snapshot.absent.insert(name.to_owned());
        self.confirmed.lock().expect("confirmed roles lock").remove(name);
    }
}

/// The listed role with the tags and boundary confirmed for it; None when they were confirmed
/// for another role of the same name (deleted and created again since).
fn merge(listed: ListedRole, confirmed: Confirmed) -> Option<ObservedRole> {
    if listed.id != confirmed.id {
        return None;
    }
    Some(ObservedRole {
        name: listed.name,
        id: listed.id,
        arn: listed.arn,
        path: listed.path,
        trust_policy: listed.trust_policy,
        permissions_boundary: confirmed.permissions_boundary,
        tags: confirmed.tags,
        created_at: listed.created_at,
    })
}

/// What a listing would say of `role`.
fn listed_part(role: &ObservedRole) -> ListedRole {
    ListedRole {
        name: role.name.clone(),
        id: role.id.clone(),
        arn: role.arn.clone(),
        path: role.path.clone(),
        trust_policy: role.trust_policy.clone(),
        created_at: role.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> ObservedRole {
        ObservedRole {
            name: "team-api-push".into(),
            id: "AROAEXAMPLE1".into(),
            arn: "arn:aws:iam::123456789012:role/berth/team-api-push".into(),
            path: "/berth/".into(),
            trust_policy: "%7B%7D".into(),
            permissions_boundary: Some("arn:aws:iam::123456789012:policy/boundary".into()),
            tags: BTreeMap::from([("berth.dev/owner".into(), "c1/team/api".into())]),
            created_at: 1_700_000_000,
        }
    }

    fn confirmed(role: &ObservedRole) -> Confirmed {
        Confirmed {
            id: role.id.clone(),
            permissions_boundary: role.permissions_boundary.clone(),
            tags: role.tags.clone(),
        }
    }

    #[test]
    fn a_listed_role_with_its_confirmed_tags_and_boundary_is_the_role() {
        let role = role();
        assert_eq!(merge(listed_part(&role), confirmed(&role)), Some(role.clone()));
        // the trust policy is always the listing's
        let listed = ListedRole {
            trust_policy: "%7B%22Version%22%3A%222012-10-17%22%7D".into(),
            ..listed_part(&role)
        };
        assert_eq!(
            merge(listed, confirmed(&role)).map(|r| r.trust_policy),
            Some("%7B%22Version%22%3A%222012-10-17%22%7D".into())
        );
    }

    #[test]
    fn tags_confirmed_for_a_role_since_recreated_are_not_used() {
        let role = role();
        let recreated = ListedRole {
            id: "AROAEXAMPLE2".into(),
            ..listed_part(&role)
        };
        assert_eq!(merge(recreated, confirmed(&role)), None);
    }
}

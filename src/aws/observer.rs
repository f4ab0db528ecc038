//! Batched observation: one paginated DescribeRepositories per region per resync serves every
//! EcrRepository of that region. Objects whose spec just changed read their repository afresh.
//! A name found absent is not described again within the same resync (a negative cache).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

use super::{AwsError, ObservedRepository, Registry, RepositorySettings};
use crate::api::EncryptionType;

#[derive(Default)]
struct RegionSnapshot {
    /// The resync epoch this snapshot was taken in; None before the first describe.
    epoch: Option<u64>,
    repositories: HashSet<Listed>,
    /// Names described on their own this epoch and found absent.
    absent: HashSet<String>,
    /// The texts the listed repositories share (ARN and URI prefixes, registry ids), each once.
    shared: HashSet<Arc<str>>,
}

/// A listed repository as the snapshot keeps it, found by its name. A repository's ARN and URI
/// differ from every other's of the region only in the name: they are kept as a prefix shared
/// by all and the name (the whole strings took about 200 bytes per repository).
struct Listed {
    name: Box<str>,
    arn: Affixed,
    uri: Affixed,
    registry_id: Arc<str>,
    settings: RepositorySettings,
    encryption_type: EncryptionType,
    kms_key: Option<Box<str>>,
    /// When berth created it, if it did this epoch (and did not see it deleted since): nothing
    /// but berth has written to it yet, as far as berth can know, so its lifecycle policy needs
    /// no read before berth puts its own, and it held no image then.
    created: Option<Instant>,
}

/// A shared prefix followed by the repository's name, or the whole text when it does not end
/// with the name.
enum Affixed {
    BeforeName(Arc<str>),
    Whole(Box<str>),
}

impl Affixed {
    fn text(&self, name: &str) -> String {
        match self {
            Affixed::BeforeName(prefix) => format!("{prefix}{name}"),
            Affixed::Whole(text) => text.to_string(),
        }
    }
}

impl Listed {
    fn repository(&self) -> ObservedRepository {
        ObservedRepository {
            name: self.name.to_string(),
            arn: self.arn.text(&self.name),
            uri: self.uri.text(&self.name),
            registry_id: self.registry_id.to_string(),
            settings: self.settings.clone(),
            encryption_type: self.encryption_type,
            kms_key: self.kms_key.as_deref().map(str::to_owned),
        }
    }
}

impl std::borrow::Borrow<str> for Listed {
    fn borrow(&self) -> &str {
        &self.name
    }
}

impl std::hash::Hash for Listed {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Listed {}

impl RegionSnapshot {
    /// Keeps `repository` in place of what was known of its name (a name listed twice, by pages
    /// of a changing listing: the later answer wins). `created` None keeps what was known of
    /// its creation.
    fn keep(&mut self, repository: ObservedRepository, created: Option<Instant>) {
        let created = created.or_else(|| {
            self.repositories
                .get(repository.name.as_str())
                .and_then(|listed| listed.created)
        });
        let listed = Listed {
            arn: self.affix(&repository.arn, &repository.name),
            uri: self.affix(&repository.uri, &repository.name),
            registry_id: self.share(&repository.registry_id),
            name: repository.name.into_boxed_str(),
            settings: repository.settings,
            encryption_type: repository.encryption_type,
            kms_key: repository.kms_key.map(String::into_boxed_str),
            created,
        };
        self.repositories.replace(listed);
    }

    fn affix(&mut self, text: &str, name: &str) -> Affixed {
        match text.strip_suffix(name) {
            Some(prefix) => Affixed::BeforeName(self.share(prefix)),
            None => Affixed::Whole(text.into()),
        }
    }

    fn share(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.shared.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.shared.insert(shared.clone());
        shared
    }
}

/// What a region's snapshot says of one name.
enum Lookup {
    Listed(ObservedRepository),
    /// Described on its own this epoch and found absent.
    KnownAbsent,
    NotListed,
}

pub struct RepositoryObserver {
    registry: Arc<dyn Registry>,
    regions: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<RegionSnapshot>>>>,
    epoch: AtomicU64,
}

impl RepositoryObserver {
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self {
            registry,
            regions: Default::default(),
            epoch: AtomicU64::new(0),
        }
    }

    /// Marks every snapshot stale: the next lookup in each region describes it again.
    pub fn start_resync(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The current resync epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn region(&self, region: &str) -> Arc<tokio::sync::Mutex<RegionSnapshot>> {
        let mut regions = self.regions.lock().expect("region map lock poisoned");
        regions.entry(region.to_owned()).or_default().clone()
    }

    /// The repository from this resync's snapshot of its region (taken once, by the first
    /// caller); a repository missing from the snapshot is described on its own, because it may
    /// have been created since, or not be listed yet (ECR is eventually consistent).
    pub async fn observe(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError> {
        match self.snapshot_lookup(region, name).await? {
            Lookup::Listed(repository) => Ok(Some(repository)),
            Lookup::KnownAbsent => Ok(None),
            Lookup::NotListed => self.observe_fresh(region, name).await,
        }
    }

    /// For an object berth never reconciled: a name this resync's snapshot does not list is
    /// taken as absent without describing it (the repository is most likely still to be
    /// created; one created since the listing answers the creation with
    /// RepositoryAlreadyExists, and the caller then describes it). A listed one is described
    /// afresh, as after any spec change.
    pub async fn observe_listed(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError> {
        match self.snapshot_lookup(region, name).await? {
            Lookup::Listed(_) => self.observe_fresh(region, name).await,
            Lookup::KnownAbsent | Lookup::NotListed => Ok(None),
        }
    }

    async fn snapshot_lookup(&self, region: &str, name: &str) -> Result<Lookup, AwsError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let snapshot = self.region(region);
        let mut snapshot = snapshot.lock().await;
        if snapshot.epoch != Some(epoch) {
            // the stale snapshot goes first (the heap profile at 3,000 repositories held the
            // old snapshot, the SDK's whole listing and the new one at once at each resync)
            snapshot.repositories = HashSet::new();
            snapshot.absent.clear();
            snapshot.shared.clear();
            // kept as each page arrives: the region's whole listing is never held at once
            let mut keep = |repository| snapshot.keep(repository, None);
            self.registry.describe_repositories(region, &mut keep).await?;
            snapshot.epoch = Some(epoch);
        }
        Ok(match snapshot.repositories.get(name) {
            Some(listed) => Lookup::Listed(listed.repository()),
            None if snapshot.absent.contains(name) => Lookup::KnownAbsent,
            None => Lookup::NotListed,
        })
    }

    /// The repository described on its own, bypassing (and updating) the snapshot.
    pub async fn observe_fresh(&self, region: &str, name: &str) -> Result<Option<ObservedRepository>, AwsError> {
        let repository = self.registry.describe_repository(region, name).await?;
        match &repository {
            Some(repository) => self.record(region, repository.clone(), None).await,
            None => self.forget(region, name).await,
        }
        Ok(repository)
    }

    /// Keeps the snapshot true after berth's own writes; `created`: berth created the
    /// repository (no later than then), remembered for the rest of this resync.
    pub async fn record(&self, region: &str, repository: ObservedRepository, created: Option<Instant>) {
        let snapshot = self.region(region);
        let mut snapshot = snapshot.lock().await;
        snapshot.absent.remove(&repository.name);
        snapshot.keep(repository, created);
    }

    /// When berth created the repository, if it did during this resync (and did not see it
    /// deleted since).
    pub async fn created_this_resync(&self, region: &str, name: &str) -> Option<Instant> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let snapshot = self.region(region);
        let snapshot = snapshot.lock().await;
        if snapshot.epoch != Some(epoch) {
            return None;
        }
        snapshot.repositories.get(name).and_then(|listed| listed.created)
    }

    /// Records that a repository does not exist (described absent, or deleted by berth).
    pub async fn forget(&self, region: &str, name: &str) {
        let snapshot = self.region(region);
        let mut snapshot = snapshot.lock().await;
        snapshot.repositories.remove(name);
        snapshot.absent.insert(name.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, arn: &str) -> ObservedRepository {
        ObservedRepository {
            name: name.into(),
            arn: arn.into(),
            uri: format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/{name}"),
            registry_id: "123456789012".into(),
            kms_key: Some("alias/key".into()),
            ..ObservedRepository::default()
        }
    }

    #[test]
    fn a_kept_repository_reads_back_as_listed_and_shares_its_prefixes() {
        let mut snapshot = RegionSnapshot::default();
        let first = listed("team/api", "arn:aws:ecr:eu-west-1:123456789012:repository/team/api");
        let second = listed("team/web", "arn:aws:ecr:eu-west-1:123456789012:repository/team/web");
        // an ARN that does not end with the name is kept whole
        let odd = listed("team/odd", "arn:aws:ecr:eu-west-1:123456789012:repository/other");
        for repository in [&first, &second, &odd] {
            snapshot.keep(repository.clone(), None);
        }
        for repository in [&first, &second, &odd] {
            let kept = snapshot.repositories.get(repository.name.as_str()).expect("kept");
            assert_eq!(&kept.repository(), repository);
        }
        // one ARN prefix, one URI prefix, one registry id (the odd ARN is not shared)
        assert_eq!(snapshot.shared.len(), 3, "{:?}", snapshot.shared);
    }

    #[test]
    fn a_name_kept_twice_reads_back_as_the_later_answer() {
        let mut snapshot = RegionSnapshot::default();
        let earlier = listed("team/api", "arn:aws:ecr:eu-west-1:123456789012:repository/team/api");
        let later = ObservedRepository {
            kms_key: Some("alias/other".into()),
            ..earlier.clone()
        };
        snapshot.keep(earlier, None);
        snapshot.keep(later.clone(), None);
        assert_eq!(snapshot.repositories.len(), 1);
        assert_eq!(
            snapshot.repositories.get("team/api").map(Listed::repository),
            Some(later)
        );
    }

    #[test]
    fn a_later_record_keeps_when_berth_created_the_repository() {
        let mut snapshot = RegionSnapshot::default();
        let repository = listed("team/api", "arn:aws:ecr:eu-west-1:123456789012:repository/team/api");
        let created = Instant::now();
        snapshot.keep(repository.clone(), Some(created));
        snapshot.keep(repository, None);
        assert_eq!(
            snapshot.repositories.get("team/api").and_then(|l| l.created),
            Some(created)
        );
    }
}

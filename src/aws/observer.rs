//! Batched observation: one paginated DescribeRepositories per region per resync serves every
//! EcrRepository of that region. Objects whose spec just changed read their repository afresh.
//! A name found absent is not described again within the same resync (a negative cache).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

use super::{AwsError, ObservedRepository, Registry};

#[derive(Default)]
struct RegionSnapshot {
    /// The resync epoch this snapshot was taken in; None before the first describe.
    epoch: Option<u64>,
    repositories: HashSet<ByName>,
    /// Names described on their own this epoch and found absent.
    absent: HashSet<String>,
    /// Names berth created this epoch, and when: nothing but berth has written to them yet, as
    /// far as berth can know, so their lifecycle policy needs no read before berth puts its
    /// own, and they held no image then.
    created: HashMap<String, Instant>,
}

/// A listed repository, found in the snapshot by its name (which it holds already: a map keyed
/// by a copy of the name took one more string per repository).
struct ByName(ObservedRepository);

impl std::borrow::Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        &self.0.name
    }
}

impl std::hash::Hash for ByName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state)
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ByName {}

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
            snapshot.created.clear();
            let repositories = self.registry.describe_repositories(region).await?;
            snapshot.repositories.reserve(repositories.len());
            for repository in repositories {
                // a name listed twice (pages of a changing listing): the later answer wins
                snapshot.repositories.replace(ByName(repository));
            }
            snapshot.epoch = Some(epoch);
        }
        Ok(match snapshot.repositories.get(name) {
            Some(listed) => Lookup::Listed(listed.0.clone()),
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
        if let Some(created) = created {
            snapshot.created.insert(repository.name.clone(), created);
        }
        snapshot.absent.remove(&repository.name);
        snapshot.repositories.replace(ByName(repository));
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
        snapshot.created.get(name).copied()
    }

    /// Records that a repository does not exist (described absent, or deleted by berth).
    pub async fn forget(&self, region: &str, name: &str) {
        let snapshot = self.region(region);
        let mut snapshot = snapshot.lock().await;
        snapshot.repositories.remove(name);
        snapshot.created.remove(name);
        snapshot.absent.insert(name.to_owned());
    }
}

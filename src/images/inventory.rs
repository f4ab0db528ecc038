//! The image inventory: the one place that lists images. Every feature that needs a repository's
//! images (statistics, lifecycle preview, the scan of the newest image) reads them here, so that
//! one paginated DescribeImages pass serves them all:
//!
//! - concurrent reads of one repository share one DescribeImages pass (single flight);
//! - a result is kept in memory only while some feature retains the repository, so memory grows
//!   with what the features need, not with the number of repositories;
//! - every completed read is announced, so that a feature can recompute from images that another
//!   feature's read brought in (the lifecycle preview after the statistics refresh).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::Image;
use crate::aws::{AwsError, Registry};

/// A repository by region and name: the inventory's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryRef {
    pub region: String,
    pub name: String,
}

impl RepositoryRef {
    pub fn new(region: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            name: name.into(),
        }
    }
}

/// What a read ends in; cheap to clone, so every waiter of a shared read gets its own copy.
pub type ImagesResult = Result<Arc<[Image]>, AwsError>;

/// Announcements a receiver may fall behind by before it lags (and learns so from `recv`).
const ANNOUNCEMENT_CAPACITY: usize = 1024;

/// The images of repositories, read on demand and kept for the features that retain them.
/// Clones share one inventory.
#[derive(Clone)]
pub struct ImageInventory {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Arc<dyn Registry>,
    state: Mutex<State>,
    announcements: broadcast::Sender<RepositoryRef>,
}

#[derive(Default)]
struct State {
    /// The features that need each repository's images kept; no entry without a feature. A
    /// vector, not a set: it holds one or two names, and a set's node takes 192 bytes.
    consumers: HashMap<RepositoryRef, Vec<&'static str>>,
    kept: HashMap<RepositoryRef, Kept>,
    /// The read in flight per repository, which later readers join.
    reading: HashMap<RepositoryRef, Reading>,
    last_read_id: u64,
}

struct Kept {
    images: Arc<[Image]>,
    /// When the read that produced them started: their age is measured from there.
    read_at: Instant,
}

struct Reading {
    /// Tells this read from a later one for the same repository (after an invalidation).
    id: u64,
    result: watch::Receiver<Option<ImagesResult>>,
}

impl ImageInventory {
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self::with_announcement_capacity(registry, ANNOUNCEMENT_CAPACITY)
    }

    fn with_announcement_capacity(registry: Arc<dyn Registry>, capacity: usize) -> Self {
        let (announcements, _) = broadcast::channel(capacity);
        Self {
            shared: Arc::new(Shared {
                registry,
                state: Mutex::default(),
                announcements,
            }),
        }
    }

    /// The repository's images read now: one DescribeImages pass, shared with every concurrent
    /// read of the same repository. The result is kept if some feature retains the repository;
    /// a successful read is then announced to the subscribers.
    pub async fn read(&self, repository: &RepositoryRef) -> ImagesResult {
        let mut result = self.join_or_start(repository);
        let done = result
            .wait_for(Option::is_some)
            .await
            .expect("an image read ends with a result unless its task panicked");
        done.clone().expect("waited for a result")
    }

    /// The kept images if they are younger than `max_age`, else a fresh `read`.
    pub async fn images(&self, repository: &RepositoryRef, max_age: Duration) -> ImagesResult {
        let fresh = self
            .shared
            .lock()
            .kept
            .get(repository)
            .filter(|kept| kept.read_at.elapsed() < max_age)
            .map(|kept| kept.images.clone());
        match fresh {
            Some(images) => Ok(images),
            None => self.read(repository).await,
        }
    }

    /// The images of a repository berth created at `created`: none, without a DescribeImages.
    /// They are kept as if read then when some feature retains the repository, so that a push
    /// since shows once they are older than what a reader accepts. None when images are kept
    /// already (a read since, or an earlier call): they are read as any kept images are.
    pub fn keep_empty(&self, repository: &RepositoryRef, created: Instant) -> Option<Arc<[Image]>> {
        let mut state = self.shared.lock();
        if state.kept.contains_key(repository) {
            return None;
        }
        let images: Arc<[Image]> = Arc::from(Vec::new());
        if state.consumers.contains_key(repository) {
            let kept = Kept {
                images: images.clone(),
                read_at: created,
            };
            state.kept.insert(repository.clone(), kept);
        }
        Some(images)
    }

    /// `consumer` (a feature, e.g. "lifecycle") needs the repository's images kept.
    pub fn retain(&self, consumer: &'static str, repository: &RepositoryRef) {
        let mut state = self.shared.lock();
        let consumers = state.consumers.entry(repository.clone()).or_default();
        if !consumers.contains(&consumer) {
            consumers.push(consumer);
        }
    }

    /// `consumer` no longer needs the repository's images; the last one to go drops them.
    pub fn release(&self, consumer: &'static str, repository: &RepositoryRef) {
        let mut state = self.shared.lock();
        let Some(consumers) = state.consumers.get_mut(repository) else {
            return;
        };
        consumers.retain(|kept_for| *kept_for != consumer);
        if consumers.is_empty() {
            state.consumers.remove(repository);
            state.kept.remove(repository);
        }
    }

    /// How many repositories' images are kept now.
    pub fn kept(&self) -> usize {
        self.shared.lock().kept.len()
    }

    /// Announces the repository of every successful read, whoever asked for it. A receiver
    /// that falls behind by more than the channel's capacity gets `RecvError::Lagged` (and
    /// should then recompute everything it derives); it never holds the inventory up.
    pub fn subscribe(&self) -> broadcast::Receiver<RepositoryRef> {
        self.shared.announcements.subscribe()
    }

    /// Forgets the kept images and detaches a read in flight, whose result is then neither kept
    /// nor joined: the next `images` or `read` lists the repository afresh.
    pub fn invalidate(&self, repository: &RepositoryRef) {
        let mut state = self.shared.lock();
        state.kept.remove(repository);
        state.reading.remove(repository);
    }

    /// The read in flight for the repository, or a new one in a task of its own, so that it
    /// completes (and is kept and announced) even if every caller went away meanwhile.
    fn join_or_start(&self, repository: &RepositoryRef) -> watch::Receiver<Option<ImagesResult>> {
        let mut state = self.shared.lock();
        if let Some(reading) = state.reading.get(repository) {
            return reading.result.clone();
        }
        state.last_read_id += 1;
        let id = state.last_read_id;
        let (sender, receiver) = watch::channel(None);
        state.reading.insert(
            repository.clone(),
            Reading {
                id,
                result: receiver.clone(),
            },
        );
        drop(state);
        let shared = self.shared.clone();
        let repository = repository.clone();
        tokio::spawn(async move {
            let read_at = Instant::now();
            let result = shared
                .registry
                .describe_images(&repository.region, &repository.name)
                .await
                .map(Arc::from);
            shared.finish(&repository, id, read_at, &result);
            let succeeded = result.is_ok();
            // every waiter may have gone away: nobody to answer
            let _ = sender.send(Some(result));
            if succeeded {
                // no subscriber: nobody to tell
                let _ = shared.announcements.send(repository);
            }
        });
        receiver
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("image inventory lock poisoned")
    }

    /// Ends the read: later reads start afresh, and a successful result is kept if some feature
    /// retains the repository and the read was not invalidated meanwhile.
    fn finish(&self, repository: &RepositoryRef, id: u64, read_at: Instant, result: &ImagesResult) {
        let mut state = self.lock();
        if state.reading.get(repository).is_none_or(|reading| reading.id != id) {
            return;
        }
        state.reading.remove(repository);
        if let Ok(images) = result
            && state.consumers.contains_key(repository)
        {
            state.kept.insert(
                repository.clone(),
                Kept {
                    images: images.clone(),
                    read_at,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};

    use super::*;
    use crate::api::EncryptionType;
    use crate::aws::{
        AwsErrorKind, ImageFindings, ObservedRepository, RegistryScanning, RepositoryScanning, RepositorySettings,
    };

    /// How long a test waits for something that should happen at once.
    const DEADLINE: Duration = Duration::from_secs(5);

    /// Test double: counts DescribeImages calls (numbered from 1) and answers each with one
    /// image whose `size_bytes` is the call's number, once the test lets that call through.
    /// Nothing else is implemented.
    struct CountingRegistry {
        describe_images_calls: AtomicUsize,
        /// The calls allowed to answer; None lets every call through at once.
        released: Option<watch::Sender<BTreeSet<usize>>>,
        failing: AtomicBool,
    }

    impl CountingRegistry {
        fn open() -> Arc<Self> {
            Self::new(None)
        }

        /// Each call waits until `let_through` names it.
        fn gated() -> Arc<Self> {
            Self::new(Some(watch::Sender::new(BTreeSet::new())))
        }

        fn new(released: Option<watch::Sender<BTreeSet<usize>>>) -> Arc<Self> {
            Arc::new(Self {
                describe_images_calls: AtomicUsize::new(0),
                released,
                failing: AtomicBool::new(false),
            })
        }

        fn calls(&self) -> usize {
            self.describe_images_calls.load(Ordering::SeqCst)
        }

        fn let_through(&self, call: usize) {
            let released = self.released.as_ref().expect("a gated registry");
            released.send_modify(|released| {
                released.insert(call);
            });
        }

        /// Waits until `calls` DescribeImages calls have started.
        async fn started(&self, calls: usize) {
            let waiting = async {
                while self.calls() < calls {
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(DEADLINE, waiting)
                .await
                .unwrap_or_else(|_| panic!("{calls} DescribeImages calls never started"));
        }
    }

    #[async_trait]
    impl Registry for CountingRegistry {
        async fn describe_images(&self, _region: &str, name: &str) -> Result<Vec<Image>, AwsError> {
            let call = self.describe_images_calls.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(released) = &self.released {
                let mut released = released.subscribe();
                // a call the test never lets through fails the test instead of hanging it
                tokio::time::timeout(DEADLINE, released.wait_for(|released| released.contains(&call)))
                    .await
                    .unwrap_or_else(|_| panic!("DescribeImages call {call} was never let through"))
                    .expect("the test keeps the gate");
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(AwsError {
                    operation: "DescribeImages",
                    kind: AwsErrorKind::Throttled,
                    code: "ThrottlingException".into(),
                    message: "slow down".into(),
                });
            }
            Ok(vec![Image {
                digest: format!("sha256:{name}"),
                size_bytes: call as i64,
                ..Default::default()
            }])
        }

        async fn describe_repositories(
            &self,
            _: &str,
            _: &mut (dyn FnMut(ObservedRepository) + Send),
        ) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn describe_repository(&self, _: &str, _: &str) -> Result<Option<ObservedRepository>, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn list_tags(&self, _: &str, _: &str) -> Result<BTreeMap<String, String>, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn create_repository(
            &self,
            _: &str,
            _: &str,
            _: &RepositorySettings,
            _: EncryptionType,
            _: Option<&str>,
            _: &BTreeMap<String, String>,
        ) -> Result<ObservedRepository, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn put_tag_mutability(&self, _: &str, _: &str, _: &RepositorySettings) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn tag_resource(&self, _: &str, _: &str, _: &BTreeMap<String, String>) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn untag_resource(&self, _: &str, _: &str, _: &[String]) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn count_images(&self, _: &str, _: &str) -> Result<u64, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn delete_repository(&self, _: &str, _: &str, _: bool) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn get_repository_policy(&self, _: &str, _: &str) -> Result<Option<String>, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn set_repository_policy(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn delete_repository_policy(&self, _: &str, _: &str) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn get_lifecycle_policy(&self, _: &str, _: &str) -> Result<Option<String>, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn put_lifecycle_policy(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn delete_lifecycle_policy(&self, _: &str, _: &str) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn get_registry_scanning(&self, _: &str) -> Result<RegistryScanning, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn put_registry_scanning(&self, _: &str, _: &RegistryScanning) -> Result<(), AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn repository_scanning(&self, _: &str, _: &[String]) -> Result<Vec<RepositoryScanning>, AwsError> {
            unimplemented!("not used by the inventory")
        }
        async fn image_findings(&self, _: &str, _: &str, _: &str) -> Result<ImageFindings, AwsError> {
            unimplemented!("not used by the inventory")
        }
    }

    fn repository(name: &str) -> RepositoryRef {
        RepositoryRef::new("eu-west-1", format!("team/{name}"))
    }

    /// Which DescribeImages call produced these images (see `CountingRegistry`).
    fn call_of(images: &[Image]) -> i64 {
        images[0].size_bytes
    }

    async fn let_through_and_read(
        registry: &CountingRegistry,
        inventory: &ImageInventory,
        repository: &RepositoryRef,
        call: usize,
    ) -> ImagesResult {
        registry.let_through(call);
        inventory.read(repository).await
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn concurrent_reads_of_a_repository_share_one_describe_images() {
        let registry = CountingRegistry::gated();
        let inventory = ImageInventory::new(registry.clone());
        let (api, web) = (repository("api"), repository("web"));
        let reads = futures::future::join_all((0..8).map(|_| inventory.read(&api)));
        let other = inventory.read(&web);
        // join! polls the reads first: all of them have joined before a call may answer
        let (results, other, ()) = tokio::join!(reads, other, async {
            registry.started(2).await;
            registry.let_through(1);
            registry.let_through(2);
        });
        assert_eq!(registry.calls(), 2, "one call for api, one for web");
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert!(results.iter().all(|images| images[0].digest == "sha256:team/api"));
        assert!(results.iter().all(|images| Arc::ptr_eq(images, &results[0])));
        assert_eq!(other.unwrap()[0].digest, "sha256:team/web");
        // the read is over: the next one lists the repository again
        let_through_and_read(&registry, &inventory, &api, 3).await.unwrap();
        assert_eq!(registry.calls(), 3);
    }

    #[tokio::test]
    async fn nothing_is_kept_for_a_repository_no_feature_retains() {
        let registry = CountingRegistry::open();
        let inventory = ImageInventory::new(registry.clone());
        let api = repository("api");
        inventory.images(&api, HOUR).await.unwrap();
        inventory.images(&api, HOUR).await.unwrap();
        assert_eq!(registry.calls(), 2);
        assert_eq!(inventory.kept(), 0);
    }

    #[tokio::test]
    async fn kept_images_serve_reads_younger_than_max_age() {
        let registry = CountingRegistry::open();
        let inventory = ImageInventory::new(registry.clone());
        let api = repository("api");
        inventory.retain("lifecycle", &api);
        let first = inventory.images(&api, HOUR).await.unwrap();
        assert_eq!(inventory.kept(), 1);
        let again = inventory.images(&api, HOUR).await.unwrap();
        assert_eq!(registry.calls(), 1, "younger than an hour: served from memory");
        assert!(Arc::ptr_eq(&first, &again));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let older = inventory.images(&api, Duration::from_millis(10)).await.unwrap();
        assert_eq!(
            (registry.calls(), call_of(&older)),
            (2, 2),
            "older than max_age: read again"
        );
        // read() always lists, and refreshes what is kept
        inventory.read(&api).await.unwrap();
        assert_eq!(registry.calls(), 3);
        let kept = inventory.images(&api, Duration::from_millis(10)).await.unwrap();
        assert_eq!((registry.calls(), call_of(&kept)), (3, 3));
    }

    #[tokio::test]
    async fn a_created_repository_is_empty_without_a_read_until_its_images_age() {
        let registry = CountingRegistry::open();
        let inventory = ImageInventory::new(registry.clone());
        let (api, web) = (repository("api"), repository("web"));
        // not retained: nothing is kept, and the next read lists the repository
        assert!(inventory.keep_empty(&web, Instant::now()).unwrap().is_empty());
        assert_eq!(inventory.kept(), 0);
        inventory.retain("lifecycle", &api);
        assert!(inventory.keep_empty(&api, Instant::now()).unwrap().is_empty());
        assert_eq!(inventory.kept(), 1);
        assert!(inventory.images(&api, HOUR).await.unwrap().is_empty());
        assert_eq!(registry.calls(), 0, "no DescribeImages for a repository known empty");
        // a real read replaces it, and is not replaced by another empty one
        let read = inventory.read(&api).await.unwrap();
        assert_eq!(call_of(&read), 1);
        assert!(inventory.keep_empty(&api, Instant::now()).is_none(), "the read wins");
        assert_eq!(call_of(&inventory.images(&api, HOUR).await.unwrap()), 1);
        // its age counts from the creation: once older than a reader accepts, it is read
        let old = repository("old");
        inventory.retain("lifecycle", &old);
        let created = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        inventory.keep_empty(&old, created);
        let aged = inventory.images(&old, Duration::from_millis(10)).await.unwrap();
        assert_eq!((registry.calls(), call_of(&aged)), (2, 2));
    }

    #[tokio::test]
    async fn the_last_consumer_to_release_drops_the_kept_images() {
        let registry = CountingRegistry::open();
        let inventory = ImageInventory::new(registry.clone());
        let (api, web) = (repository("api"), repository("web"));
        inventory.retain("lifecycle", &api);
        inventory.retain("scan", &api);
        inventory.retain("lifecycle", &web);
        inventory.read(&api).await.unwrap();
        inventory.read(&web).await.unwrap();
        assert_eq!(inventory.kept(), 2);
        inventory.release("lifecycle", &api);
        assert_eq!(inventory.kept(), 2, "scan still retains api");
        inventory.release("scan", &api);
        assert_eq!(inventory.kept(), 1);
        inventory.images(&api, HOUR).await.unwrap();
        assert_eq!((registry.calls(), inventory.kept()), (3, 1), "api is no longer kept");
        // releasing what was never retained changes nothing
        inventory.release("scan", &web);
        assert_eq!(inventory.kept(), 1);
        inventory.release("lifecycle", &web);
        assert_eq!(inventory.kept(), 0);
    }

    #[tokio::test]
    async fn a_release_during_a_read_leaves_nothing_kept() {
        let registry = CountingRegistry::gated();
        let inventory = ImageInventory::new(registry.clone());
        let api = repository("api");
        inventory.retain("lifecycle", &api);
        let (images, ()) = tokio::join!(inventory.read(&api), async {
            registry.started(1).await;
            inventory.release("lifecycle", &api);
            registry.let_through(1);
        });
        images.unwrap();
        assert_eq!(inventory.kept(), 0);
    }

    #[tokio::test]
    async fn invalidate_makes_the_next_read_list_afresh() {
        let registry = CountingRegistry::gated();
        let inventory = ImageInventory::new(registry.clone());
        let api = repository("api");
        inventory.retain("lifecycle", &api);
        let_through_and_read(&registry, &inventory, &api, 1).await.unwrap();
        inventory.invalidate(&api);
        assert_eq!(inventory.kept(), 0);
        // a read in flight when invalidated is neither joined nor kept, even if it ends last
        let (stale, fresh) = tokio::join!(inventory.read(&api), async {
            registry.started(2).await;
            inventory.invalidate(&api);
            let fresh = let_through_and_read(&registry, &inventory, &api, 3).await;
            registry.let_through(2);
            fresh
        });
        assert_eq!((call_of(&stale.unwrap()), call_of(&fresh.unwrap())), (2, 3));
        let kept = inventory.images(&api, HOUR).await.unwrap();
        assert_eq!((registry.calls(), call_of(&kept)), (3, 3));
    }

    #[tokio::test]
    async fn a_failed_read_reaches_every_waiter_and_keeps_nothing() {
        let registry = CountingRegistry::gated();
        registry.failing.store(true, Ordering::SeqCst);
        let inventory = ImageInventory::new(registry.clone());
        let mut announcements = inventory.subscribe();
        let api = repository("api");
        inventory.retain("lifecycle", &api);
        let (first, second, ()) = tokio::join!(inventory.read(&api), inventory.read(&api), async {
            registry.started(1).await;
            registry.let_through(1);
        });
        assert_eq!(first.unwrap_err().kind, AwsErrorKind::Throttled);
        assert_eq!(second.unwrap_err().code, "ThrottlingException");
        assert_eq!((registry.calls(), inventory.kept()), (1, 0));
        assert_eq!(announcements.try_recv(), Err(TryRecvError::Empty));
        // the next read tries again
        registry.failing.store(false, Ordering::SeqCst);
        let_through_and_read(&registry, &inventory, &api, 2).await.unwrap();
        assert_eq!((registry.calls(), inventory.kept()), (2, 1));
    }

    #[tokio::test]
    async fn subscribers_hear_of_every_completed_read() {
        let registry = CountingRegistry::open();
        let inventory = ImageInventory::new(registry.clone());
        let mut announcements = inventory.subscribe();
        let api = repository("api");
        inventory.retain("lifecycle", &api);
        inventory.read(&api).await.unwrap();
        assert_eq!(announcements.recv().await.unwrap(), api);
        // served from memory: nothing new to announce
        inventory.images(&api, HOUR).await.unwrap();
        assert_eq!(announcements.try_recv(), Err(TryRecvError::Empty));
        // a repository nobody retains is announced too
        inventory.read(&repository("web")).await.unwrap();
        assert_eq!(announcements.recv().await.unwrap(), repository("web"));
    }

    #[tokio::test]
    async fn a_read_whose_callers_went_away_still_completes_and_is_kept() {
        let registry = CountingRegistry::gated();
        let inventory = ImageInventory::new(registry.clone());
        let mut announcements = inventory.subscribe();
        let api = repository("api");
        inventory.retain("lifecycle", &api);
        let abandoned = tokio::time::timeout(Duration::from_millis(1), inventory.read(&api)).await;
        assert!(abandoned.is_err(), "the read waits for the test to let it through");
        registry.let_through(1);
        assert_eq!(announcements.recv().await.unwrap(), api);
        assert_eq!((registry.calls(), inventory.kept()), (1, 1));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_does_not_hold_reads_up() {
        let registry = CountingRegistry::open();
        let inventory = ImageInventory::with_announcement_capacity(registry.clone(), 2);
        let mut announcements = inventory.subscribe();
        for name in ["a", "b", "c", "d"] {
            inventory.read(&repository(name)).await.unwrap();
        }
        assert_eq!(registry.calls(), 4);
        assert_eq!(announcements.recv().await, Err(RecvError::Lagged(2)));
        assert_eq!(announcements.recv().await.unwrap(), repository("c"));
        assert_eq!(announcements.recv().await.unwrap(), repository("d"));
    }
}

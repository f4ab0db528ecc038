//! What the watch hooks and filters remember of each object: a hash per object, keyed by a hash
//! of its namespace and name, kept true across deletions and relists.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use kube::Resource;
use kube::runtime::watcher;

/// A fingerprint per object of one watch (what a consumer acts on, hashed), to tell which events
/// change it. 16 bytes an object instead of copies of its names (kube-runtime's
/// `predicate_filter` kept its name, namespace and uid: about 250 bytes an object with the map's
/// slack, about 2.5 MiB at 10,000). Objects are keyed by a hash keyed at random per memory
/// (`RandomState`), so that no tenant can choose a name that shares another's; two objects that
/// did would at worst miss a trigger (the next resync makes up for it) or cause a spare one.
pub struct Fingerprints {
    keys: RandomState,
    /// object key hash → the fingerprint of the last event about it
    seen: HashMap<u64, u64>,
    /// during a relist, what `seen` held before it began
    before_relist: Option<HashMap<u64, u64>>,
}

impl Default for Fingerprints {
    fn default() -> Self {
        Self {
            keys: RandomState::new(),
            seen: HashMap::new(),
            before_relist: None,
        }
    }
}

impl Fingerprints {
    /// Takes in `event` and tells whether what is remembered changed: an object appeared, its
    /// fingerprint changed, or it left (deleted, or its fingerprint None: nothing of it to
    /// remember); at the end of a relist, whether an object left while the watch was down.
    /// `fingerprint` hashes what the consumer acts on with the keys it is given.
    pub fn changed<K: Resource>(
        &mut self,
        event: &watcher::Event<K>,
        fingerprint: impl FnOnce(&K, &RandomState) -> Option<u64>,
    ) -> bool {
        match event {
            watcher::Event::Init => {
                let seen = std::mem::take(&mut self.seen);
                match self.before_relist.as_mut() {
                    // a relist that starts again (a page failed): what it had not reached yet is
                    // still known, so unchanged objects do not all pass again at once
                    Some(before) => before.extend(seen),
                    None => self.before_relist = Some(seen),
                }
                false
            }
            watcher::Event::InitDone => self.before_relist.take().is_some_and(|gone| !gone.is_empty()),
            watcher::Event::Delete(object) => self.seen.remove(&self.key(object)).is_some(),
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                let key = self.key(object);
                let previous = match self.before_relist.as_mut() {
                    Some(before) => before.remove(&key),
                    None => self.seen.get(&key).copied(),
                };
                match fingerprint(object, &self.keys) {
                    Some(current) => {
                        self.seen.insert(key, current);
                        previous != Some(current)
                    }
                    None => {
                        self.seen.remove(&key);
                        previous.is_some()
                    }
                }
            }
        }
    }

    fn key<K: Resource>(&self, object: &K) -> u64 {
        let meta = object.meta();
        self.keys.hash_one((
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        ))
    }
}

/// Passes on an object only when what berth acts on changed since the last event about it: the
/// spec (generation), deletion, the finalizers, or the object itself (a new uid under the same
/// name). Status changes, berth's own writes included, do not pass: a failure status would
/// otherwise re-trigger the reconcile at once and defeat the backoff.
#[derive(Default)]
pub struct TriggerFilter(Fingerprints);

impl TriggerFilter {
    /// The object to reconcile for this event, if any.
    pub fn admit<K: Resource>(&mut self, event: watcher::Event<K>) -> Option<K> {
        let changed = self.0.changed(&event, |object, keys| {
            let meta = object.meta();
            Some(keys.hash_one((
                &meta.uid,
                meta.generation,
                meta.deletion_timestamp.is_some(),
                &meta.finalizers,
            )))
        });
        match event {
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) if changed => Some(object),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EcrRepository;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn repository(name: &str) -> EcrRepository {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
            "metadata": {"name": name, "namespace": "team", "generation": 1, "uid": format!("uid-{name}")},
            "spec": {},
        }))
        .unwrap()
    }

    fn passes(filter: &mut TriggerFilter, object: &EcrRepository) -> bool {
        filter.admit(watcher::Event::Apply(object.clone())).is_some()
    }

    #[test]
    fn only_generation_deletion_finalizers_and_a_new_uid_trigger_a_reconcile() {
        let mut filter = TriggerFilter::default();
        let before = repository("api");
        assert!(passes(&mut filter, &before), "the first event about an object passes");
        assert!(!passes(&mut filter, &before), "the same object again does not");

        let mut status_only = before.clone();
        status_only.status = Some(Default::default());
        status_only.metadata.resource_version = Some("42".into());
        status_only.metadata.managed_fields = Some(Vec::new());
        status_only.metadata.labels = Some([("tier".to_owned(), "a".to_owned())].into());
        assert!(
            !passes(&mut filter, &status_only),
            "status, labels and versions do not trigger"
        );

        let mut spec = before.clone();
        spec.metadata.generation = Some(2);
        let mut deleted = before.clone();
        deleted.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let mut finalized = before.clone();
        finalized.metadata.finalizers = Some(vec!["ecr.berth.dev/cleanup".into()]);
        let mut recreated = before.clone();
        recreated.metadata.uid = Some("another".into());
        for changed in [spec, deleted, finalized, recreated] {
            let mut filter = TriggerFilter::default();
            assert!(passes(&mut filter, &before));
            assert!(passes(&mut filter, &changed), "{:?}", changed.metadata);
        }
    }

    #[test]
    fn objects_are_told_apart_by_namespace_and_name() {
        let mut filter = TriggerFilter::default();
        let api = repository("api");
        let mut other_namespace = api.clone();
        other_namespace.metadata.namespace = Some("other".into());
        assert!(passes(&mut filter, &api));
        assert!(passes(&mut filter, &other_namespace));
        assert!(passes(&mut filter, &repository("web")));
        assert_eq!(filter.0.seen.len(), 3);
    }

    #[test]
    fn a_deleted_object_is_forgotten_and_passes_when_it_comes_back() {
        let mut filter = TriggerFilter::default();
        let api = repository("api");
        assert!(passes(&mut filter, &api));
        assert!(filter.admit(watcher::Event::Delete(api.clone())).is_none());
        assert_eq!(filter.0.seen.len(), 0);
        assert!(passes(&mut filter, &api));
    }

    #[test]
    fn a_relist_passes_only_what_changed_and_forgets_what_it_no_longer_lists() {
        let mut filter = TriggerFilter::default();
        let (kept, changed, gone) = (repository("kept"), repository("changed"), repository("gone"));
        for object in [&kept, &changed, &gone] {
            assert!(passes(&mut filter, object));
        }
        let mut changed_now = changed.clone();
        changed_now.metadata.generation = Some(2);

        assert!(filter.admit(watcher::Event::<EcrRepository>::Init).is_none());
        assert!(filter.admit(watcher::Event::InitApply(kept.clone())).is_none());
        assert!(filter.admit(watcher::Event::InitApply(changed_now.clone())).is_some());
        assert!(filter.admit(watcher::Event::<EcrRepository>::InitDone).is_none());
        assert_eq!(
            filter.0.seen.len(),
            2,
            "the object deleted while the watch was down is forgotten"
        );
        assert!(passes(&mut filter, &gone), "and passes as new if it comes back");
        assert!(!passes(&mut filter, &changed_now));
    }

    #[test]
    fn a_relist_that_starts_again_passes_nothing_unchanged() {
        let mut filter = TriggerFilter::default();
        let (a, b) = (repository("a"), repository("b"));
        assert!(passes(&mut filter, &a));
        assert!(passes(&mut filter, &b));

        // kube-runtime's watcher starts the list again when a page fails
        assert!(filter.admit(watcher::Event::<EcrRepository>::Init).is_none());
        assert!(filter.admit(watcher::Event::InitApply(a.clone())).is_none());
        assert!(filter.admit(watcher::Event::<EcrRepository>::Init).is_none());
        assert!(filter.admit(watcher::Event::InitApply(a.clone())).is_none());
        assert!(filter.admit(watcher::Event::InitApply(b.clone())).is_none());
        assert!(filter.admit(watcher::Event::<EcrRepository>::InitDone).is_none());
        assert_eq!(filter.0.seen.len(), 2);
        assert!(!passes(&mut filter, &a));
        assert!(!passes(&mut filter, &b));
    }

    /// A memory of whether an object has an ARN, as the scan hook keeps it.
    fn has_arn(memory: &mut Fingerprints, event: &watcher::Event<EcrRepository>) -> bool {
        memory.changed(event, |object, _| {
            object
                .status
                .as_ref()
                .and_then(|status| status.repository_arn.as_ref())
                .map(|_| 0)
        })
    }

    #[test]
    fn an_object_without_a_fingerprint_is_remembered_as_absent() {
        let mut memory = Fingerprints::default();
        let without = repository("api");
        let mut with = without.clone();
        with.status = Some(crate::api::EcrRepositoryStatus {
            repository_arn: Some("arn:aws:ecr:eu-west-1:123456789012:repository/team/api".into()),
            ..Default::default()
        });
        assert!(
            !has_arn(&mut memory, &watcher::Event::Apply(without.clone())),
            "nothing to remember"
        );
        assert!(
            has_arn(&mut memory, &watcher::Event::Apply(with.clone())),
            "it got an ARN"
        );
        assert!(!has_arn(&mut memory, &watcher::Event::Apply(with.clone())));
        assert!(
            has_arn(&mut memory, &watcher::Event::Apply(without.clone())),
            "it lost it"
        );
        assert!(memory.seen.is_empty());
        assert!(has_arn(&mut memory, &watcher::Event::Apply(with.clone())));
        assert!(has_arn(&mut memory, &watcher::Event::Delete(with)), "it left");
        assert!(
            !has_arn(&mut memory, &watcher::Event::Delete(without)),
            "it was not remembered"
        );
    }

    #[test]
    fn the_end_of_a_relist_tells_whether_an_object_left_while_the_watch_was_down() {
        let mut memory = Fingerprints::default();
        let (kept, gone) = (repository("kept"), repository("gone"));
        let uid = |object: &EcrRepository, keys: &RandomState| Some(keys.hash_one(&object.metadata.uid));
        for object in [&kept, &gone] {
            assert!(memory.changed(&watcher::Event::Apply(object.clone()), uid));
        }
        assert!(!memory.changed(&watcher::Event::<EcrRepository>::Init, uid));
        assert!(!memory.changed(&watcher::Event::InitApply(kept.clone()), uid));
        assert!(
            memory.changed(&watcher::Event::<EcrRepository>::InitDone, uid),
            "one left"
        );
        assert_eq!(memory.seen.len(), 1);
        // a relist that finds everything again reports nothing
        assert!(!memory.changed(&watcher::Event::<EcrRepository>::Init, uid));
        assert!(!memory.changed(&watcher::Event::InitApply(kept.clone()), uid));
        assert!(!memory.changed(&watcher::Event::<EcrRepository>::InitDone, uid));
    }
}

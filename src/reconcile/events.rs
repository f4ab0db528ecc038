//! berth's Event recorder: `events.k8s.io/v1` Events, one series per regarding object, type,
//! reason, action *and note*. kube's `Recorder` leaves the note out of its series key, so an Event
//! repeated with a new note (`DeletionBlocked` with a new image count) kept showing the first
//! note. Here the same note again bumps the series count of its Event, and a new note starts a
//! new Event that shows it (rather than rewriting the old Event's note: the audit trail keeps
//! both).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{EventType, Reporter};

/// A series not repeated for this long starts a new Event (kube's recorder uses the same).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// Series remembered at most; beyond, the one repeated longest ago is forgotten (its next
/// repeat starts a new Event).
const MAX_SERIES: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    /// api version, kind, namespace, name and uid of the regarding object
    regarding: [Option<String>; 5],
    type_: EventType,
    reason: String,
    action: String,
    /// FNV-1a of the note: the note itself may be 1000 bytes
    note: u64,
}

/// The Event a series was written to.
#[derive(Clone, Debug)]
struct Series {
    namespace: String,
    name: String,
    count: i32,
    last_observed: Timestamp,
}

pub struct Recorder {
    client: Client,
    reporter: Reporter,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Mutex::default(),
        }
    }

    /// Records one occurrence: the series count of its Event goes up when the same Event (note
    /// included) was published within [`SERIES_TTL`], else a new Event is created.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let key = SeriesKey {
            regarding: [
                regarding.api_version.clone(),
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ],
            type_,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: crate::naming::fnv1a(note.as_bytes()),
        };
        let now = Timestamp::now();
        let repeated = self.repeated(&key, now);
        let series = match repeated {
            Some(series) => match self.bump(&series, now).await {
                Ok(()) => Some(series),
                // the Event expired on the server (or was deleted): start a new one
                Err(kube::Error::Api(status)) if status.is_not_found() => None,
                Err(error) => return Err(error),
            },
            None => None,
        };
        let series = match series {
            Some(series) => series,
            None => self.create(regarding, type_, reason, action, note, now).await?,
        };
        self.remember(key, series);
        Ok(())
    }

    /// The series `key` continues, with its count and time already advanced; forgets expired
    /// series on the way.
    fn repeated(&self, key: &SeriesKey, now: Timestamp) -> Option<Series> {
        let all = self.series.lock().expect("event series lock");
        // expired series are dropped only when the cache is full (`remember`): a scan of the
        // whole cache on every Event was a measurable share of berth's CPU at scale
        all.get(key)
            .filter(|series| !expired(series, now))
            .map(|series| Series {
                count: series.count + 1,
                last_observed: now,
                ..series.clone()
            })
    }

    fn remember(&self, key: SeriesKey, series: Series) {
        let mut all = self.series.lock().expect("event series lock");
        if all.len() >= MAX_SERIES && !all.contains_key(&key) {
            let now = series.last_observed;
            all.retain(|_, series| !expired(series, now));
            // still full: forget the older half at once, so that a full cache costs one sort
            // per MAX_SERIES / 2 new series rather than a scan per Event
            if all.len() >= MAX_SERIES {
                let mut ages: Vec<Timestamp> = all.values().map(|series| series.last_observed).collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                all.retain(|_, series| series.last_observed > cutoff);
            }
        }
        all.insert(key, series);
    }

    async fn bump(&self, series: &Series, now: Timestamp) -> Result<(), kube::Error> {
        let patch = serde_json::json!({
            "series": {"count": series.count, "lastObservedTime": MicroTime(now)}
        });
        Api::<Event>::namespaced(self.client.clone(), &series.namespace)
            .patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }

    async fn create(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Series, kube::Error> {
        // An Event about a cluster-scoped object (a ScanPolicy) must live in kube-system: a 1.20
        // apiserver accepts no other namespace (422), later ones also `default`.
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "kube-system".to_owned());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            reason: Some(reason.to_owned()),
            action: Some(action.to_owned()),
            note: Some(note.to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..Event::default()
        };
        crate::writes::create(&self.client, Some(&namespace), &event).await?;
        Ok(Series {
            name: event.metadata.name.unwrap_or_default(),
            namespace,
            count: 1,
            last_observed: now,
        })
    }
}

fn expired(series: &Series, now: Timestamp) -> bool {
    now.duration_since(series.last_observed).unsigned_abs() >= SERIES_TTL
}

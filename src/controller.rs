//! kube-runtime wiring: the shared runtime, one Controller per kind and watched namespace (each
//! registered with one line in `run_controllers`), the resync tick that refreshes the batched
//! observation, the statistics refresher, leader election and graceful shutdown.

mod leader;
mod shutdown;
mod triggers;

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_stream::wrappers::BroadcastStream;

pub use leader::{Leadership, campaign};
pub use shutdown::Shutdown;
use triggers::{Fingerprints, TriggerFilter};

use crate::api::{EcrRepository, LifecyclePolicy, ScanPolicy};
use crate::aws::{AwsClients, EcrRegistry, Fence, Iam, IamClient, Registry, caller_partition, load_sdk_config};
use crate::config::RunArgs;
use crate::images;
use crate::reconcile::harness::{self, Kind, Reconciler};
use crate::reconcile::lifecycle::Lifecycles;
use crate::reconcile::repository::{Repositories, RoleSettings, ValidationSettings};
use crate::reconcile::runtime::Runtime;
use crate::reconcile::scan::Scans;
use crate::telemetry::{self, Health, Metrics, ObjectKey};

/// Every kind berth runs, with its own context and the shared runtime.
struct Kinds {
    runtime: Arc<Runtime>,
    repositories: Arc<Kind<Repositories>>,
    lifecycles: Arc<Kind<Lifecycles>>,
    scans: Arc<Kind<Scans>>,
}

/// The cluster id written into ownership tags: the flag, else the kube-system namespace's UID.
async fn cluster_id(client: &Client, flag: Option<String>) -> anyhow::Result<String> {
    if let Some(id) = flag {
        crate::reconcile::ownership::check_cluster_id(&id).map_err(|e| anyhow::anyhow!("--cluster-id: {e}"))?;
        return Ok(id);
    }
    let namespace = Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
        .map_err(|e| {
            anyhow::anyhow!("could not read the kube-system namespace for the cluster id (pass --cluster-id): {e}")
        })?;
    namespace
        .uid()
        .ok_or_else(|| anyhow::anyhow!("kube-system has no uid; pass --cluster-id"))
}

/// One Api per watched scope: all namespaces, or each `--watch-namespace`.
fn watched_apis<K>(client: &Client, args: &RunArgs) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    if args.watch_namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        args.watch_namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

/// Waits until a kind's API answers in every watched scope (the CRD is installed,
/// established, and RBAC lets berth list it).
async fn wait_for_crd<K>(apis: &[Api<K>], shutdown: &Shutdown) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    for api in apis {
        loop {
            match api.list_metadata(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(error) => tracing::warn!(kind = %K::kind(&()), %error, "API not served yet; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.requested() => anyhow::bail!("shutdown requested before the CRDs were served"),
            }
        }
    }
    Ok(())
}

/// Runs the operator until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    telemetry::serve(args.metrics_addr, args.health_addr, metrics.clone(), health.clone()).await?;

    let client = Client::try_default().await?;
    let region = args
        .region
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no AWS region: pass --region or set AWS_REGION"))?;
    let cluster_id = cluster_id(&client, args.cluster_id.clone()).await?;
    // with leader election, no ECR or IAM call goes out unless this replica's term is confirmed
    let fence = if args.leader_election {
        Fence::closed()
    } else {
        Fence::open()
    };
    let aws = AwsClients::new(load_sdk_config(&region).await, metrics.aws.clone())
        .fenced_by(fence.clone())
        .rate_limited_to(args.aws_rate_limits());
    // the partition of every ARN berth renders (aws, aws-cn, aws-us-gov): learnt once, here
    let partition = caller_partition(&aws).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot learn the AWS partition from STS GetCallerIdentity (check the credentials and their network access to STS): {e}"
        )
    })?;
    if let Some(arn) = &args.github_oidc_provider_arn
        && crate::policy::issuer_of(arn).is_none()
    {
        anyhow::bail!(
            "--github-oidc-provider-arn '{arn}' is not an IAM OIDC provider ARN (arn:<partition>:iam::<account>:oidc-provider/<issuer>)"
        );
    }
    let registry: Arc<dyn Registry> = Arc::new(EcrRegistry::new(aws.clone()));
    let iam: Arc<dyn Iam> = Arc::new(IamClient::new(&aws));
    let runtime = Arc::new(Runtime::new(
        client.clone(),
        registry,
        iam,
        args.resync_interval,
        reporter(),
        metrics.clone(),
    ));
    let roles = RoleSettings {
        path: args.iam_role_path.clone(),
        permissions_boundary: args.iam_permissions_boundary.clone(),
        github_provider_arn: args.github_oidc_provider_arn.clone(),
        create_github_provider: args.create_github_oidc_provider,
    };
    let validation = ValidationSettings {
        default_region: region.clone(),
        cluster_id: cluster_id.clone(),
        require_namespace_prefix: args.require_namespace_prefix,
        allow_public_access: args.allow_public_access,
        iam_role_path: args.iam_role_path.clone(),
        partition: partition.clone(),
    };
    let kinds = Kinds {
        repositories: Arc::new(Kind {
            reconciler: Repositories::new(validation, roles),
            runtime: runtime.clone(),
        }),
        lifecycles: Arc::new(Kind {
            reconciler: Lifecycles::new(args.stats_interval),
            runtime: runtime.clone(),
        }),
        scans: Arc::new(Kind {
            reconciler: Scans::new(region.clone(), args.min_findings_refresh),
            runtime: runtime.clone(),
        }),
        runtime,
    };
    tracing::info!(%region, %partition, %cluster_id, resync = ?args.resync_interval, "berth starting");

    wait_for_crd(&watched_apis::<EcrRepository>(&client, &args), &shutdown).await?;
    wait_for_crd(&watched_apis::<LifecyclePolicy>(&client, &args), &shutdown).await?;
    if args.manages_scan_policies() {
        wait_for_crd(&[Api::<ScanPolicy>::all(client.clone())], &shutdown).await?;
    }
    health.set_crds_served();

    if !args.leader_election {
        health.set_leader_decided();
        metrics.set_leader(true);
        lead_until_shutdown(&kinds, &args, &shutdown).await;
        tracing::info!("berth stopped");
        return Ok(());
    }

    let mut leadership = campaign(client.clone(), &args, fence).await?;
    let outcome = loop {
        tokio::select! {
            acquired = leadership.acquired(&health) => {
                if let Err(error) = acquired {
                    break Err(error);
                }
            }
            _ = shutdown.requested() => break Ok(()),
        }
        tracing::info!(identity = leadership.identity(), "became the leader");
        health.set_leader_decided();
        metrics.set_leader(true);
        tokio::select! {
            _ = lead_until_shutdown(&kinds, &args, &shutdown) => break Ok(()),
            _ = leadership.lost() => {
                // Dropping the term cancels every in-flight reconcile at its next await: a
                // replica without the Lease must not write (the fence already refuses AWS calls).
                tracing::warn!("leader term over: stopped reconciling, standing by");
                metrics.set_leader(false);
                metrics.forget_all_objects();
            }
        }
    };
    metrics.set_leader(false);
    leadership.release(Duration::from_secs(5)).await;
    tracing::info!("berth stopped");
    outcome
}

/// One leader term: runs the controllers, the resync ticker and the statistics refresher
/// until shutdown, then lets in-flight reconciles finish within `--shutdown-timeout`.
async fn lead_until_shutdown(kinds: &Kinds, args: &RunArgs, shutdown: &Shutdown) {
    kinds.runtime.start_term();
    let term = run_controllers(kinds, args, shutdown);
    let deadline = async {
        shutdown.requested().await;
        tokio::time::sleep(args.shutdown_timeout).await;
    };
    tokio::select! {
        _ = term => {}
        _ = deadline => tracing::warn!(timeout = ?args.shutdown_timeout, "in-flight reconciles did not finish in time; stopping anyway"),
    }
}

async fn run_controllers(kinds: &Kinds, args: &RunArgs, shutdown: &Shutdown) {
    let runtime = &kinds.runtime;
    // Each tick starts a new resync epoch (the next lookup per region describes it afresh);
    // every kind then reconciles each of its objects once, spread over the interval.
    let (tick, _) = tokio::sync::broadcast::channel::<()>(4);
    let ticker = async {
        let interval = args.resync_interval;
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            timer.tick().await;
            runtime.observer.start_resync();
            runtime.metrics.resync_started();
            let _ = tick.send(());
        }
    };
    let client = &runtime.client;
    let config = controller::Config::default().concurrency(args.max_concurrent_reconciles);
    let mut repositories = Vec::new();
    let mut lifecycles = Vec::new();
    for ((repository_api, policy_api), scope) in watched_apis::<EcrRepository>(client, args)
        .into_iter()
        .zip(watched_apis::<LifecyclePolicy>(client, args))
        .zip(watched_scopes(args))
    {
        let (lifecycle, mut lifecycle_hook) = lifecycle_controller(kinds, policy_api, scope, &config);
        let mut scan_hook = scan_trigger(kinds, args.manages_scan_policies());
        repositories.push(controller_for(repository_api, config.clone(), move |event| {
            lifecycle_hook(event);
            scan_hook(event);
        }));
        lifecycles.push(lifecycle);
    }
    runtime
        .repositories
        .replace(repositories.iter().map(Controller::store).collect());
    kinds
        .lifecycles
        .reconciler
        .policies
        .replace(lifecycles.iter().map(Controller::store).collect());
    let refresher = images::stats::refresh_loop(
        &runtime.images,
        &runtime.stats,
        client,
        &runtime.metrics,
        args.stats_interval,
    );
    let scans = async {
        if !args.manages_scan_policies() {
            return std::future::pending().await;
        }
        tokio::select! {
            _ = run_kind(&kinds.scans, vec![scan_controller(kinds, &config)], &tick, shutdown) => {}
            _ = crate::reconcile::scan::findings::refresh_loop(&kinds.scans.reconciler, runtime) => {}
        }
    };
    // The controllers end after a graceful shutdown; the ticker and the refresher end with them.
    tokio::select! {
        _ = run_kind(&kinds.repositories, repositories, &tick, shutdown) => {}
        _ = run_kind(&kinds.lifecycles, lifecycles, &tick, shutdown) => {}
        _ = scans => {}
        _ = ticker => {}
        _ = refresher => {}
    }
}

/// What berth never reads of the objects it watches, dropped before they enter a store: the
/// managed fields and kubectl's (or Argo CD's) last-applied copy of the spec are most of an
/// object's size.
fn strip<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Controller over `api` whose own watch triggers a reconcile only when something berth acts on
/// changed (`TriggerFilter`). The store still sees every change (stripped, see `strip`), and so
/// does `on_event`, which lets another kind react to this one without a watch of its own.
fn controller_for<K>(
    api: Api<K>,
    config: controller::Config,
    mut on_event: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let writer = reflector::store::Writer::default();
    let store = writer.as_reader();
    let events = watcher(api, watcher::Config::default()).modify(strip::<K>);
    let mut triggers = TriggerFilter::default();
    let changes = reflector::reflector(writer, events)
        .inspect_ok(move |event| on_event(event))
        .try_filter_map(move |event| futures::future::ready(Ok(triggers.admit(event))));
    Controller::for_stream(changes, store).with_config(config)
}

/// The namespace of each watched scope, in the order of `watched_apis` (None: all).
fn watched_scopes(args: &RunArgs) -> Vec<Option<String>> {
    if args.watch_namespaces.is_empty() {
        vec![None]
    } else {
        args.watch_namespaces.iter().cloned().map(Some).collect()
    }
}

/// The LifecyclePolicy Controller of one scope, and the hook its scope's EcrRepository watch
/// calls on every event. Besides its own kind it is triggered by EcrRepository changes that
/// selection reads (labels, the recorded policy, the ARN; not every status write), by an
/// EcrRepository leaving, and by the image inventory re-reading a repository a policy previews.
fn lifecycle_controller(
    kinds: &Kinds,
    policies: Api<LifecyclePolicy>,
    scope: Option<String>,
    config: &controller::Config,
) -> (
    Controller<LifecyclePolicy>,
    impl FnMut(&watcher::Event<EcrRepository>) + Send + 'static,
) {
    let config = config.clone().debounce(Duration::from_secs(1));
    let controller = controller_for(policies, config, |_| {});
    let store = controller.store();
    // what selection reads of each repository: labels, the recorded policy, the ARN
    let mut seen = Fingerprints::default();
    let (affected, affected_policies) = futures::channel::mpsc::unbounded();
    let on_repository = move |event: &watcher::Event<EcrRepository>| {
        let changed = seen.changed(event, |repository, keys| {
            let status = repository.status.as_ref();
            Some(keys.hash_one((
                &repository.metadata.labels,
                status.and_then(|s| s.lifecycle_policy.as_deref()),
                status.and_then(|s| s.repository_arn.as_deref()),
            )))
        });
        if !changed {
            return;
        }
        // the policies of the repository's namespace; of every namespace of the scope when
        // repositories left while the watch was down (the end of a relist names none)
        let namespace = object_of(event).map(|repository| repository.metadata.namespace.as_deref());
        for policy in store.state() {
            if namespace.is_none_or(|namespace| policy.metadata.namespace.as_deref() == namespace) {
                let _ = affected.unbounded_send(ObjectRef::from_obj(policy.as_ref()));
            }
        }
    };
    let lifecycles = kinds.lifecycles.clone();
    let refreshed = BroadcastStream::new(kinds.runtime.images.subscribe()).flat_map(move |repository| {
        let policies = match repository {
            Ok(repository) => lifecycles.reconciler.policies_previewing(&repository),
            Err(_) => Vec::new(),
        };
        let in_scope = |key: &ObjectKey| scope.as_deref().is_none_or(|namespace| key.0 == namespace);
        let refs: Vec<ObjectRef<LifecyclePolicy>> = policies
            .into_iter()
            .filter(in_scope)
            .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
            .collect();
        futures::stream::iter(refs)
    });
    let controller = controller
        .reconcile_on(coalesce(affected_policies, TRIGGER_WINDOW))
        .reconcile_on(coalesce(refreshed, TRIGGER_WINDOW));
    (controller, on_repository)
}

/// The object a watch event is about; None for the markers of a (re)list.
fn object_of<K>(event: &watcher::Event<K>) -> Option<&K> {
    match event {
        watcher::Event::Apply(object) | watcher::Event::InitApply(object) | watcher::Event::Delete(object) => {
            Some(object)
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// The hook on the EcrRepository watch that tells the ScanPolicies when the repositories they
/// may cover changed: one got its repository ARN (it exists in ECR now) or lost it, or left
/// (also while the watch was down). Their scanning configuration is then read without waiting
/// for the next resync.
fn scan_trigger(kinds: &Kinds, enabled: bool) -> impl FnMut(&watcher::Event<EcrRepository>) + Send + 'static {
    let recompute = kinds.scans.reconciler.recompute.clone();
    let mut with_arn = Fingerprints::default();
    move |event: &watcher::Event<EcrRepository>| {
        if !enabled {
            return;
        }
        let changed = with_arn.changed(event, |repository, _| {
            let status = repository.status.as_ref();
            status.and_then(|s| s.repository_arn.as_ref()).map(|_| 0)
        });
        if changed {
            // every policy looks (the empty name); the triggers are gathered, see `coalesce`
            let _ = recompute.send(String::new());
        }
    }
}

/// How long triggers that fire per repository (a repository's change, an image re-read, a
/// findings change) are gathered before the policies they name are reconciled, each once.
const TRIGGER_WINDOW: Duration = Duration::from_secs(5);

/// At most one trigger per object per `window`, however often the source fires. A policy's
/// reconcile walks every repository it governs, so a trigger per repository refresh made the
/// steady cost grow with N squared (the steady profile at 3,000 repositories: the ScanPolicy
/// summary pass about once a second); and a trigger per repository change while thousands
/// converge kept postponing the policy's reconcile (the Controller's debounce waits for a
/// quiet second), so its rules reached every repository at the end, one after another. The
/// first trigger of a window waits at most `window`.
fn coalesce<K>(
    triggers: impl futures::Stream<Item = ObjectRef<K>> + Send + 'static,
    window: Duration,
) -> impl futures::Stream<Item = ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + 'static,
{
    let gathered = futures::stream::unfold(Some(triggers.boxed()), move |triggers| async move {
        let mut triggers = triggers?;
        let mut gathered = HashSet::from([triggers.next().await?]);
        let window_ends = tokio::time::sleep(window);
        tokio::pin!(window_ends);
        loop {
            tokio::select! {
                _ = &mut window_ends => return Some((gathered, Some(triggers))),
                next = triggers.next() => match next {
                    Some(trigger) => {
                        gathered.insert(trigger);
                    }
                    // the source ended: deliver what was gathered, then end too
                    None => return Some((gathered, None)),
                },
            }
        }
    });
    gathered.flat_map(futures::stream::iter)
}

/// The ScanPolicy Controller (cluster-scoped: one for all). Besides its own kind it is triggered
/// when a policy's findings changed (its summary) or a region's winner left (all policies).
fn scan_controller(kinds: &Kinds, config: &controller::Config) -> Controller<ScanPolicy> {
    let config = config.clone().debounce(Duration::from_secs(1));
    let controller = controller_for(Api::<ScanPolicy>::all(kinds.runtime.client.clone()), config, |_| {});
    let store = controller.store();
    let recompute = BroadcastStream::new(kinds.scans.reconciler.recompute.subscribe()).flat_map(move |policy| {
        let refs: Vec<ObjectRef<ScanPolicy>> = match policy {
            Ok(name) if !name.is_empty() => vec![ObjectRef::new(&name)],
            // a winner left, or the receiver lagged: every policy looks again
            _ => store.state().iter().map(|p| ObjectRef::from_obj(p.as_ref())).collect(),
        };
        futures::stream::iter(refs)
    });
    controller.reconcile_on(coalesce(recompute, TRIGGER_WINDOW))
}

/// Runs one kind's Controllers (one per watched scope) with the shared harness, reconciles every
/// object once per resync (spread over the interval), and forgets objects that left the cluster.
async fn run_kind<R: Reconciler>(
    kind: &Arc<Kind<R>>,
    controllers: Vec<Controller<R::Object>>,
    tick: &tokio::sync::broadcast::Sender<()>,
    shutdown: &Shutdown,
) {
    let stores: Vec<Store<R::Object>> = controllers.iter().map(Controller::store).collect();
    let prune = async {
        for store in &stores {
            // an empty store before the first list would forget everything
            let _ = store.wait_until_ready().await;
        }
        let mut timer = tokio::time::interval(Duration::from_secs(5));
        loop {
            timer.tick().await;
            let present: HashSet<ObjectKey> = stores
                .iter()
                .flat_map(|store| store.state())
                .map(|object| (object.namespace().unwrap_or_default(), object.name_any()))
                .collect();
            kind.forget_absent(&present);
        }
    };
    let runs = controllers.into_iter().map(|controller| {
        let resync = spread_resync(controller.store(), tick, kind.runtime.resync_interval);
        controller
            .reconcile_on(resync)
            .graceful_shutdown_on(shutdown.requested_owned())
            .run(harness::reconcile::<R>, harness::error_policy::<R>, kind.clone())
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => tracing::debug!(
                        kind = R::KIND,
                        namespace = object.namespace,
                        name = object.name,
                        "reconciled"
                    ),
                    // the object is gone (deleted without a finalizer, or released by cleanup)
                    Err(controller::Error::ObjectNotFound(object)) => {
                        kind.forget(&(object.namespace.clone().unwrap_or_default(), object.name.clone()));
                    }
                    // counted and reported by the harness
                    Err(controller::Error::ReconcilerFailed(..)) => {}
                    // a watch that failed (RBAC, an API that went away, a dropped connection):
                    // kube-runtime retries it; say so and count it, never silently
                    Err(error) => {
                        tracing::warn!(kind = R::KIND, %error, "watch error");
                        kind.runtime.metrics.watch_error(R::KIND);
                    }
                }
            })
    });
    tokio::select! {
        _ = futures::future::join_all(runs) => {}
        _ = prune => {}
    }
}

/// At each tick, every object of `store` once, each at its own moment within `interval` (a
/// stable hash of its name, so each object is looked at once per interval, evenly spread):
/// enqueuing 10,000 objects at the tick would start a burst of AWS and apiserver calls at once.
fn spread_resync<K>(
    store: Store<K>,
    tick: &tokio::sync::broadcast::Sender<()>,
    interval: Duration,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    BroadcastStream::new(tick.subscribe())
        .filter_map(|tick| async move { tick.ok() })
        .flat_map(move |()| {
            let start = tokio::time::Instant::now();
            // kept for the whole interval: an offset and the names (about 70 bytes an object;
            // an `ObjectRef` with its copied uid and resourceVersion took about 200)
            let mut schedule: Vec<(u32, Option<Box<str>>, Box<str>)> = store
                .state()
                .iter()
                .map(|object| {
                    let meta = object.meta();
                    let (namespace, name) = (meta.namespace.as_deref(), meta.name.as_deref().unwrap_or_default());
                    (
                        resync_offset(namespace, name, interval),
                        namespace.map(Box::from),
                        Box::from(name),
                    )
                })
                .collect();
            schedule.sort_by_key(|(offset, ..)| *offset);
            futures::stream::iter(schedule).then(move |(offset, namespace, name)| async move {
                tokio::time::sleep_until(start + Duration::from_millis(offset.into())).await;
                let object = ObjectRef::new(&name);
                match namespace {
                    Some(namespace) => object.within(&namespace),
                    None => object,
                }
            })
        })
}

/// An object's moment within each resync interval, in milliseconds from its start (an interval
/// longer than 49 days is cut to that).
fn resync_offset(namespace: Option<&str>, name: &str, interval: Duration) -> u32 {
    let slots = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX).max(1);
    let key = format!("{}/{}", namespace.unwrap_or_default(), name);
    (crate::naming::fnv1a(key.as_bytes()) % u64::from(slots)) as u32
}

/// Events name berth and, in a Pod, the replica that wrote them.
fn reporter() -> Reporter {
    Reporter {
        controller: "berth".into(),
        instance: std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository() -> EcrRepository {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ecr.berth.dev/v1alpha1", "kind": "EcrRepository",
            "metadata": {"name": "api", "namespace": "team", "generation": 1},
            "spec": {},
        }))
        .unwrap()
    }

    fn named(name: &str) -> EcrRepository {
        let mut repository = repository();
        repository.metadata.name = Some(name.into());
        repository
    }

    #[test]
    fn stores_keep_neither_managed_fields_nor_the_last_applied_copy() {
        let mut object = repository();
        object.metadata.managed_fields = Some(vec![Default::default()]);
        object.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_owned(), "{\"spec\":{}}".to_owned()),
                ("team".to_owned(), "payments".to_owned()),
            ]
            .into(),
        );
        strip(&mut object);
        assert_eq!(object.metadata.managed_fields, None);
        assert_eq!(
            object.metadata.annotations,
            Some([("team".to_owned(), "payments".to_owned())].into())
        );
        let mut only_last_applied = repository();
        only_last_applied.metadata.annotations = Some([(LAST_APPLIED.to_owned(), "{}".to_owned())].into());
        strip(&mut only_last_applied);
        assert_eq!(only_last_applied.metadata.annotations, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resync_reconciles_every_object_once_spread_over_the_interval() {
        let interval = Duration::from_secs(600);
        let mut writer = reflector::store::Writer::<EcrRepository>::default();
        let count = 1000;
        for i in 0..count {
            writer.apply_watcher_event(&watcher::Event::Apply(named(&format!("repo-{i}"))));
        }
        let (tick, _) = tokio::sync::broadcast::channel::<()>(4);
        let mut resync = Box::pin(spread_resync(writer.as_reader(), &tick, interval));
        let start = tokio::time::Instant::now();
        tick.send(()).unwrap();
        let mut arrivals = Vec::new();
        for _ in 0..count {
            let object = resync.next().await.unwrap();
            arrivals.push((start.elapsed(), object.name));
        }
        let names: HashSet<&String> = arrivals.iter().map(|(_, name)| name).collect();
        assert_eq!(names.len(), count, "every object exactly once");
        // ten slices of the interval each get about a tenth of the objects
        let mut slices = [0usize; 10];
        for (at, _) in &arrivals {
            assert!(*at < interval, "{at:?}");
            slices[(at.as_secs() / 60) as usize] += 1;
        }
        assert!(slices.iter().all(|&n| (50..=150).contains(&n)), "{slices:?}");
        // and the next tick's pass puts each object at the same moment again
        let first = arrivals[0].clone();
        tokio::time::sleep_until(start + interval).await;
        let second_start = tokio::time::Instant::now();
        tick.send(()).unwrap();
        let again = resync.next().await.unwrap();
        assert_eq!((second_start.elapsed(), again.name), first);
    }

    #[tokio::test(start_paused = true)]
    async fn triggers_per_repository_reach_each_policy_once_per_window() {
        let (sender, triggers) = futures::channel::mpsc::unbounded::<ObjectRef<LifecyclePolicy>>();
        let window = Duration::from_secs(5);
        let mut coalesced = Box::pin(coalesce(triggers, window));
        let started = tokio::time::Instant::now();
        // 300 repository refreshes naming two policies within the window
        for index in 0..300 {
            let policy = if index % 3 == 0 { "tier-a" } else { "tier-c" };
            sender.unbounded_send(ObjectRef::new(policy).within("team")).unwrap();
        }
        let mut first = [coalesced.next().await.unwrap(), coalesced.next().await.unwrap()];
        first.sort_by_key(|reference| reference.name.clone());
        assert_eq!(first[0].name, "tier-a");
        assert_eq!(first[1].name, "tier-c");
        assert!(started.elapsed() <= window, "waited {:?}", started.elapsed());
        // nothing more for the triggers already delivered
        let quiet = tokio::time::timeout(window * 3, coalesced.next()).await;
        assert!(quiet.is_err(), "a trigger was delivered twice: {quiet:?}");
        // a later refresh is delivered again
        sender.unbounded_send(ObjectRef::new("tier-a").within("team")).unwrap();
        assert_eq!(coalesced.next().await.unwrap().name, "tier-a");
    }
}

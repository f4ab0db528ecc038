//! kube-runtime wiring: the shared context, one Controller per watched namespace, the resync
//! tick that refreshes the batched observation, per-object backoff, leader election and
//! graceful shutdown.

mod context;
mod leader;
mod shutdown;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio_stream::wrappers::BroadcastStream;
use tracing::Instrument;

pub use context::{Context, ObjectKey, RoleSettings, backoff_delay};
pub use leader::{Leadership, campaign};
pub use shutdown::Shutdown;

use crate::api::EcrRepository;
use crate::aws::{AwsClients, EcrRegistry, Iam, IamClient, Registry, load_sdk_config};
use crate::config::RunArgs;
use crate::error::Error;
use crate::reconcile::repository::{self, desired::ValidationSettings};
use crate::reconcile::stats;
use crate::telemetry::{self, Health, Metrics};

pub const REPOSITORY_KIND: &str = "EcrRepository";

fn error_policy(repository: Arc<EcrRepository>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.retry_after(ctx.object_key(repository.as_ref()), error);
    tracing::warn!(
        kind = REPOSITORY_KIND,
        namespace = repository.namespace().unwrap_or_default(),
        name = repository.name_any(),
        reason = error.reason(),
        retry_in = ?delay,
        %error,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Every reconcile runs in a span naming the object (so each log line, including the AWS
/// calls, carries kind, namespace and object name) and is counted and timed.
async fn reconcile_repository(repository: Arc<EcrRepository>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        kind = REPOSITORY_KIND,
        namespace = repository.namespace().unwrap_or_default(),
        // not `name`: the JSON log format already uses that key for the span's own name
        object = repository.name_any(),
    );
    let started = Instant::now();
    ctx.metrics.reconcile_started(REPOSITORY_KIND);
    let result = repository::reconcile(repository, ctx.clone()).instrument(span).await;
    ctx.metrics.reconcile_finished(
        REPOSITORY_KIND,
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

/// The cluster id written into ownership tags: the flag, else the kube-system namespace's UID.
async fn cluster_id(client: &Client, flag: Option<String>) -> anyhow::Result<String> {
    if let Some(id) = flag {
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

fn repository_apis(client: &Client, args: &RunArgs) -> Vec<Api<EcrRepository>> {
    if args.watch_namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        args.watch_namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

/// Waits until the EcrRepository API answers in every watched scope (the CRD is installed,
/// established, and RBAC lets berth list it).
async fn wait_for_crds(apis: &[Api<EcrRepository>], shutdown: &Shutdown) -> anyhow::Result<()> {
    for api in apis {
        loop {
            match api.list_metadata(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(error) => tracing::warn!(%error, "EcrRepository API not served yet; retrying"),
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
    let aws = AwsClients::new(load_sdk_config(&region).await, metrics.aws.clone());
    let registry: Arc<dyn Registry> = Arc::new(EcrRegistry::new(aws.clone()));
    let iam: Arc<dyn Iam> = Arc::new(IamClient::new(&aws));
    let roles = RoleSettings {
        path: args.iam_role_path.clone(),
        permissions_boundary: args.iam_permissions_boundary.clone(),
        github_provider_arn: args.github_oidc_provider_arn.clone(),
        create_github_provider: args.create_github_oidc_provider,
    };
    let reporter = Reporter {
        controller: "berth".into(),
        instance: std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok()),
    };
    let validation = ValidationSettings {
        default_region: region.clone(),
        cluster_id: cluster_id.clone(),
        require_namespace_prefix: args.require_namespace_prefix,
        allow_public_access: args.allow_public_access,
        iam_role_path: args.iam_role_path.clone(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        registry,
        iam,
        roles,
        validation,
        args.resync_interval,
        reporter,
        metrics.clone(),
    ));
    tracing::info!(%region, %cluster_id, resync = ?args.resync_interval, "berth starting");

    wait_for_crds(&repository_apis(&client, &args), &shutdown).await?;
    health.set_crds_served();

    if !args.leader_election {
        health.set_leader_decided();
        metrics.set_leader(true);
        lead_until_shutdown(&ctx, &args, &shutdown).await;
        tracing::info!("berth stopped");
        return Ok(());
    }

    let mut leadership = campaign(client.clone(), &args).await?;
    let outcome = loop {
        tokio::select! {
            acquired = leadership.acquired(&health, &args.lease_name) => {
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
            _ = lead_until_shutdown(&ctx, &args, &shutdown) => break Ok(()),
            _ = leadership.lost() => {
                // Dropping the term cancels every in-flight reconcile at its next await: a
                // replica without the Lease must not write.
                tracing::warn!("lost the leader Lease: stopped reconciling, standing by");
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
async fn lead_until_shutdown(ctx: &Arc<Context>, args: &RunArgs, shutdown: &Shutdown) {
    ctx.start_term();
    let term = run_controllers(ctx, args, shutdown);
    let deadline = async {
        shutdown.requested().await;
        tokio::time::sleep(args.shutdown_timeout).await;
    };
    tokio::select! {
        _ = term => {}
        _ = deadline => tracing::warn!(timeout = ?args.shutdown_timeout, "in-flight reconciles did not finish in time; stopping anyway"),
    }
}

async fn run_controllers(ctx: &Arc<Context>, args: &RunArgs, shutdown: &Shutdown) {
    // Each tick starts a new resync epoch (the next lookup per region describes it afresh) and
    // then enqueues every object.
    let (tick, _) = tokio::sync::broadcast::channel::<()>(4);
    let ticker = async {
        let interval = args.resync_interval;
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            timer.tick().await;
            ctx.observer.start_resync();
            let _ = tick.send(());
        }
    };
    let controllers: Vec<_> = repository_apis(&ctx.client, args)
        .into_iter()
        .map(|api| Controller::new(api, watcher::Config::default()))
        .collect();
    let stores: Vec<Store<EcrRepository>> = controllers.iter().map(Controller::store).collect();
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
                .map(|object| ctx.object_key(object.as_ref()))
                .collect();
            ctx.forget_absent(&present);
        }
    };
    let controllers = controllers.into_iter().map(|controller| {
        let resync = BroadcastStream::new(tick.subscribe()).filter_map(|t| async move { t.ok() });
        controller
            .reconcile_all_on(resync)
            .graceful_shutdown_on(shutdown.requested_owned())
            .run(reconcile_repository, error_policy, ctx.clone())
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => tracing::debug!(namespace = object.namespace, name = object.name, "reconciled"),
                    // the object is gone (deleted without a finalizer, or released by cleanup)
                    Err(controller::Error::ObjectNotFound(object)) => {
                        ctx.forget_object(&(object.namespace.clone().unwrap_or_default(), object.name.clone()));
                    }
                    Err(error) => tracing::debug!(%error, "reconcile error"),
                }
            })
    });
    // The controllers end after a graceful shutdown; the ticker and the refresher end with them.
    tokio::select! {
        _ = futures::future::join_all(controllers) => {}
        _ = ticker => {}
        _ = stats::refresh_loop(ctx, args.stats_interval) => {}
        _ = prune => {}
    }
}

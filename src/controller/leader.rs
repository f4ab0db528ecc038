//! Leader election through a coordination.k8s.io Lease (kube-lease-manager): one replica
//! reconciles, the others stand by and take over when its Lease expires.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RunArgs;
use crate::telemetry::Health;

pub struct Leadership {
    identity: String,
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    lease: Api<Lease>,
}

/// A replica's identity in the Lease: the Pod name (or host) plus a random suffix, so that two
/// processes on one host are distinct.
pub fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "berth".into());
    format!("{host}-{:06x}", rand::random_range(0..0x100_0000u32))
}

/// The server-side-apply field manager of a replica's Lease writes.
pub fn field_manager(identity: &str) -> String {
    format!("berth-leader-{identity}")
}

/// Starts competing for the Lease in the background.
pub async fn campaign(client: Client, args: &RunArgs) -> anyhow::Result<Leadership> {
    let duration = args.lease_duration.as_secs();
    anyhow::ensure!(duration >= 3, "--lease-duration must be at least 3s");
    let identity = identity();
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(duration)
        // renew a third of the duration before expiry
        .with_grace((duration / 3).max(1))
        // each replica writes under its own field manager, so that server-side apply refuses
        // (as a conflict) a second replica claiming the Lease at the same moment
        .with_field_manager(field_manager(&identity))
        .build()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "leader election Lease {}/{}: {e}",
                args.lease_namespace,
                args.lease_name
            )
        })?;
    let (leading, task) = manager.watch().await;
    tracing::info!(%identity, lease = %args.lease_name, namespace = %args.lease_namespace, "campaigning for leadership");
    Ok(Leadership {
        identity,
        leading,
        task,
        lease: Api::namespaced(client, &args.lease_namespace),
    })
}

impl Leadership {
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this replica leads. While standing by, marks the decision made once another
    /// live replica is seen holding the Lease.
    pub async fn acquired(&mut self, health: &Health, lease_name: &str) -> anyhow::Result<()> {
        let lease = self.lease.clone();
        let identity = self.identity.clone();
        let watch_holder = async {
            loop {
                if let Ok(Some(current)) = lease.get_opt(lease_name).await {
                    let holder = current.spec.and_then(|s| s.holder_identity).unwrap_or_default();
                    if !holder.is_empty() && holder != identity {
                        health.set_leader_decided();
                        // the decision is made for good: no more reads while standing by
                        return std::future::pending().await;
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        };
        tokio::select! {
            result = self.leading.wait_for(|leading| *leading) => {
                result.map_err(|_| anyhow::anyhow!("the leader election task stopped"))?;
            }
            _ = watch_holder => {}
        }
        Ok(())
    }

    /// Resolves when the Lease is lost (or the election task stopped).
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Gives the Lease up so that a standby replica takes over at once.
    pub async fn release(self, timeout: Duration) {
        drop(self.leading);
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("leader Lease released"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "could not release the leader Lease"),
            Ok(Err(error)) => tracing::warn!(%error, "the leader election task failed"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out; it will expire"),
        }
    }
}

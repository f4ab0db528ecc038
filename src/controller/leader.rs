//! Leader election through a coordination.k8s.io Lease (kube-lease-manager): one replica
//! reconciles, the others stand by and take over when its Lease expires.
//!
//! kube-lease-manager says when this replica becomes or stops being the holder, but not when a
//! renewal went through, and it notices a takeover only when it next reads the Lease. So the
//! term is also bounded by the AWS fence (`aws::Fence`): it begins and is extended only from a
//! Lease read back with this replica as holder, and closes on the monotonic clock `margin`
//! before that Lease expires, earlier than any other replica may take it over.

use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aws::Fence;
use crate::config::RunArgs;
use crate::telemetry::Health;

pub struct Leadership {
    identity: String,
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    lease: Api<Lease>,
    lease_name: String,
    timing: LeaseTiming,
    fence: Fence,
}

/// The timing of a term, from `--lease-duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeaseTiming {
    duration: Duration,
    /// The holder renews this long before the Lease expires.
    grace: Duration,
    /// The fence closes this long before the Lease expires: after the next renewal is due (so
    /// that a confirmed renewal extends the term before it lapses) and before any other replica
    /// may take over (so that the two never act at once, even with clocks this far apart).
    margin: Duration,
    /// How often the Lease is read while a renewal is due but not yet confirmed.
    poll: Duration,
}

impl LeaseTiming {
    fn new(duration_secs: u64) -> Self {
        let grace = (duration_secs / 3).max(1);
        let grace = Duration::from_secs(grace);
        Self {
            duration: Duration::from_secs(duration_secs),
            grace,
            margin: grace / 2,
            poll: grace / 8,
        }
    }
}

/// The end of this replica's term by a Lease it read at `now` (wall and monotonic clocks, taken
/// after the read): `margin` before the Lease expires by its renewTime, on the monotonic clock.
/// None when the Lease names another holder or that moment has passed.
fn term_deadline(lease: &Lease, identity: &str, margin: Duration, now: (SystemTime, Instant)) -> Option<Instant> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = SystemTime::from(spec.renew_time.as_ref()?.0);
    let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds?).ok()?);
    let closes = (renewed + duration).checked_sub(margin)?;
    let remaining = closes.duration_since(now.0).ok().filter(|r| !r.is_zero())?;
    Some(now.1 + remaining)
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()?
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())
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

/// Starts competing for the Lease in the background. `fence` (closed) opens only while this
/// replica's term is confirmed.
pub async fn campaign(client: Client, args: &RunArgs, fence: Fence) -> anyhow::Result<Leadership> {
    let duration = args.lease_duration.as_secs();
    anyhow::ensure!(duration >= 3, "--lease-duration must be at least 3s");
    let timing = LeaseTiming::new(duration);
    let identity = identity();
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(duration)
        .with_grace(timing.grace.as_secs())
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
        lease_name: args.lease_name.clone(),
        timing,
        fence,
    })
}

impl Leadership {
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Reads the Lease; with it, the wall and monotonic clocks right after the answer.
    async fn read(&self) -> (kube::Result<Option<Lease>>, (SystemTime, Instant)) {
        let lease = self.lease.get_opt(&self.lease_name).await;
        (lease, (SystemTime::now(), Instant::now()))
    }

    /// Waits until this replica leads: the election task says it holds the Lease and a read of
    /// the Lease confirms it, which begins the term (opens the fence). While standing by, marks
    /// the decision made once another live replica is seen holding the Lease.
    pub async fn acquired(&mut self, health: &Health) -> anyhow::Result<()> {
        let mut decided = false;
        loop {
            let leading = *self.leading.borrow_and_update();
            if leading || !decided {
                match self.read().await {
                    (Ok(Some(lease)), now) => {
                        if leading
                            && let Some(deadline) = term_deadline(&lease, &self.identity, self.timing.margin, now)
                        {
                            self.fence.begin(deadline);
                            if self.fence.check().is_ok() {
                                return Ok(());
                            }
                        }
                        if holder(&lease).is_some_and(|h| h != self.identity) && !decided {
                            health.set_leader_decided();
                            decided = true;
                        }
                    }
                    (Ok(None), _) => {}
                    (Err(error), _) => tracing::debug!(%error, "could not read the leader Lease"),
                }
            }
            // While the election task believes it leads, its belief is checked again soon (its
            // view may be older than a takeover); otherwise wait for it to change, polling only
            // until another holder has been seen.
            let wait = if leading {
                self.timing.poll
            } else if decided {
                Duration::MAX
            } else {
                Duration::from_secs(2)
            };
            tokio::select! {
                changed = self.leading.changed() => {
                    changed.map_err(|_| anyhow::anyhow!("the leader election task stopped"))?;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Resolves when this term is over: the election task says the Lease is lost, a read shows
    /// it no longer confirms this replica, or no renewal was confirmed before the term's
    /// deadline (the fence has refused AWS calls since that moment). The fence is closed on return.
    pub async fn lost(&mut self) {
        let mut leading = self.leading.clone();
        tokio::select! {
            _ = leading.wait_for(|leading| !*leading) => {
                tracing::warn!("the election task lost the leader Lease");
            }
            reason = self.confirm_renewals() => tracing::warn!(reason, "leader term over"),
        }
        self.fence.revoke();
    }

    /// Reads the Lease when a renewal is due and extends the fence by each confirmed one; returns
    /// why the term ended.
    async fn confirm_renewals(&self) -> &'static str {
        // a renewal is due this long before the term's deadline; the first read waits one poll
        // more, so that it usually finds the renewal done
        let before_deadline = self.timing.grace - self.timing.margin - self.timing.poll;
        loop {
            let Some(deadline) = self.fence.valid_until() else {
                return "no Lease renewal confirmed within the renew deadline: AWS calls refused";
            };
            let now = Instant::now();
            let due = deadline.checked_sub(before_deadline).unwrap_or(now);
            let wake = if now < due { due } else { now + self.timing.poll };
            let read = async {
                tokio::time::sleep_until(wake.into()).await;
                self.read().await
            };
            let (read, now) = tokio::select! {
                read = read => read,
                _ = tokio::time::sleep_until(deadline.into()) => continue,
            };
            match read {
                Ok(Some(lease)) => match term_deadline(&lease, &self.identity, self.timing.margin, now) {
                    Some(confirmed) => self.fence.extend(confirmed),
                    None => {
                        tracing::warn!(holder = holder(&lease), "the Lease no longer confirms this replica");
                        return "the Lease does not confirm this replica's term";
                    }
                },
                Ok(None) => return "the Lease is gone",
                Err(error) => {
                    tracing::debug!(%error, "could not read the leader Lease; the term lasts until its deadline")
                }
            }
        }
    }

    /// Gives the Lease up so that a standby replica takes over at once.
    pub async fn release(self, timeout: Duration) {
        self.fence.revoke();
        drop(self.leading);
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("leader Lease released"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "could not release the leader Lease"),
            Ok(Err(error)) => tracing::warn!(%error, "the leader election task failed"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out; it will expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: SystemTime, duration_secs: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed.try_into().unwrap())),
                lease_duration_seconds: Some(duration_secs),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_fence_closes_after_the_renewal_is_due_and_before_anyone_may_take_over() {
        for secs in [3, 4, 6, 15, 60] {
            let t = LeaseTiming::new(secs);
            assert!(t.grace < t.duration, "{t:?}");
            assert!(!t.margin.is_zero() && t.margin < t.grace, "{t:?}");
            // a renewal due at `grace` before expiry is read back before the fence closes
            assert!(t.poll * 2 <= t.grace - t.margin, "{t:?}");
        }
        assert_eq!(LeaseTiming::new(15).margin, Duration::from_millis(2500));
    }

    #[test]
    fn a_term_ends_a_margin_before_the_lease_it_read_expires() {
        let margin = Duration::from_secs(1);
        let wall = SystemTime::now();
        let mono = Instant::now();
        // renewed 2 s ago for 6 s: 4 s left, the fence closes after 3
        let read = lease("me", wall - Duration::from_secs(2), 6);
        let deadline = term_deadline(&read, "me", margin, (wall, mono)).unwrap();
        assert_eq!(deadline - mono, Duration::from_secs(3));
        // another holder, an expiring or an expired Lease: no term
        assert_eq!(term_deadline(&read, "other", margin, (wall, mono)), None);
        let late = lease("me", wall - Duration::from_secs(5), 6);
        assert_eq!(term_deadline(&late, "me", margin, (wall, mono)), None);
        let released = Lease {
            spec: Some(LeaseSpec::default()),
            ..Default::default()
        };
        assert_eq!(term_deadline(&released, "me", margin, (wall, mono)), None);
    }
}

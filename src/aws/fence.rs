//! The leader fence: one check, in an SDK interceptor on every ECR and IAM client, that refuses
//! an AWS call once this replica's leader term may be over. The term is valid until a deadline
//! on the monotonic clock (which keeps running while the process is frozen), extended only by a
//! confirmed Lease renewal; it is checked right before each attempt goes on the wire, so a write
//! that was about to happen when the process froze is refused when it resumes, whatever order
//! its timers and tasks wake up in.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// The error of a call refused by the fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this replica's leader term is over (no Lease renewal confirmed in time): AWS call refused")]
pub struct Fenced;

/// Whether AWS calls may go out now. Without leader election it is always open; with it, it
/// is open from `begin` until the deadline, which only `extend` moves, and only while the term
/// is still valid: once lapsed (or revoked) it stays closed until the next `begin`.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// None: no leader election. Some(None): no valid term.
    term: Option<Arc<Mutex<Option<Instant>>>>,
}

impl Fence {
    /// A fence that never refuses (a single replica without leader election).
    pub fn open() -> Self {
        Self { term: None }
    }

    /// A fence that refuses until a term begins.
    pub fn closed() -> Self {
        Self {
            term: Some(Arc::default()),
        }
    }

    fn with_term<T>(&self, f: impl FnOnce(&mut Option<Instant>) -> T) -> Option<T> {
        let term = self.term.as_ref()?;
        let mut until = term.lock().expect("fence lock");
        Some(f(&mut until))
    }

    /// Ok while the term is valid; a lapsed term is closed for good.
    pub fn check(&self) -> Result<(), Fenced> {
        self.with_term(|until| match *until {
            Some(deadline) if Instant::now() < deadline => Ok(()),
            _ => {
                *until = None;
                Err(Fenced)
            }
        })
        .unwrap_or(Ok(()))
    }

    /// Starts a term valid until `deadline` (from a confirmed renewal).
    pub fn begin(&self, deadline: Instant) {
        self.with_term(|until| *until = (Instant::now() < deadline).then_some(deadline));
    }

    /// Moves the deadline later after a confirmed renewal, if the term is still valid.
    pub fn extend(&self, deadline: Instant) {
        self.with_term(|until| {
            *until = match *until {
                Some(current) if Instant::now() < current => Some(current.max(deadline)),
                _ => None,
            }
        });
    }

    /// Ends the term at once (the Lease is seen held by another replica, or the term ended).
    pub fn revoke(&self) {
        self.with_term(|until| *until = None);
    }

    /// The current term's deadline; None without a valid term (or without leader election).
    pub fn valid_until(&self) -> Option<Instant> {
        self.with_term(|until| until.filter(|deadline| Instant::now() < *deadline))
            .flatten()
    }
}

/// Marks an attempt the fence refused, so that the metrics interceptor does not count it as a
/// request: it never left the process.
#[derive(Debug)]
pub(crate) struct FencedAttempt;

impl Storable for FencedAttempt {
    type Storer = StoreReplace<Self>;
}

/// Checks the fence as the last step before an attempt is transmitted (after signing and any
/// retry backoff), so that no attempt of a lapsed term reaches AWS.
#[derive(Clone, Debug)]
pub struct FenceInterceptor {
    fence: Fence,
}

impl FenceInterceptor {
    pub fn new(fence: Fence) -> Self {
        Self { fence }
    }
}

impl Intercept for FenceInterceptor {
    fn name(&self) -> &'static str {
        "BerthLeaderFence"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.fence.check().map_err(|fenced| {
            let operation = cfg
                .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
                .map(|m| m.name().to_owned())
                .unwrap_or_default();
            tracing::info!(%operation, "AWS call refused: this replica's leader term is over");
            cfg.interceptor_state().store_put(FencedAttempt);
            Box::new(fenced) as BoxError
        })
    }
}

/// Whether `error` (or anything in its source chain) is a call refused by the fence.
pub fn is_fenced(error: &(dyn std::error::Error + 'static)) -> bool {
    super::error::caused_by::<Fenced>(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn without_leader_election_the_fence_is_open() {
        let fence = Fence::open();
        assert_eq!(fence.check(), Ok(()));
        fence.revoke();
        assert_eq!(fence.check(), Ok(()));
    }

    #[test]
    fn a_term_is_valid_until_its_deadline_only() {
        let fence = Fence::closed();
        assert_eq!(fence.check(), Err(Fenced), "no term yet");
        fence.begin(later(60_000));
        assert_eq!(fence.check(), Ok(()));
        fence.begin(later(30));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(fence.check(), Err(Fenced), "past the deadline");
        assert_eq!(fence.valid_until(), None);
    }

    #[test]
    fn a_renewal_extends_a_valid_term_but_never_revives_a_lapsed_one() {
        let fence = Fence::closed();
        fence.begin(later(30));
        fence.extend(later(60_000));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(fence.check(), Ok(()), "extended in time");
        // an older observation does not shorten the term
        let until = fence.valid_until().unwrap();
        fence.extend(later(10));
        assert_eq!(fence.valid_until(), Some(until));

        fence.begin(later(10));
        std::thread::sleep(Duration::from_millis(20));
        // lapsed before the renewal was confirmed: the term is over even without a check
        fence.extend(later(60_000));
        assert_eq!(fence.check(), Err(Fenced));
        assert_eq!(fence.valid_until(), None);
    }

    #[test]
    fn a_revoked_term_stays_closed_until_the_next_begins() {
        let fence = Fence::closed();
        let copy = fence.clone();
        fence.begin(later(60_000));
        fence.revoke();
        assert_eq!(copy.check(), Err(Fenced), "clones share the term");
        fence.extend(later(60_000));
        assert_eq!(copy.check(), Err(Fenced));
        fence.begin(later(60_000));
        assert_eq!(copy.check(), Ok(()));
        // a deadline already past begins nothing
        fence.begin(Instant::now() - Duration::from_millis(1));
        assert_eq!(copy.check(), Err(Fenced));
    }

    /// The real SDK client: a closed fence refuses the call before it is sent (nothing listens
    /// at the endpoint; a sent call would fail as unreachable), classified as `Fenced`, and the
    /// refused attempt is not counted as a request.
    #[tokio::test]
    async fn a_closed_fence_stops_an_sdk_call_before_it_is_sent() {
        let sdk_config = crate::aws::unreachable_sdk_config();
        let metrics = crate::telemetry::Metrics::new();
        let fence = Fence::closed();
        let clients = super::super::AwsClients::new(sdk_config, metrics.aws.clone()).fenced_by(fence.clone());
        let call = || async {
            let result = clients.ecr("eu-west-1").describe_repositories().send().await;
            crate::aws::AwsError::from_sdk("DescribeRepositories", result.unwrap_err()).kind
        };
        assert_eq!(call().await, crate::aws::AwsErrorKind::Fenced);
        assert!(
            !metrics.render().contains("DescribeRepositories"),
            "a refused attempt is not a request"
        );
        fence.begin(later(60_000));
        assert_eq!(call().await, crate::aws::AwsErrorKind::Unreachable, "sent once open");
    }

    #[test]
    fn fenced_errors_are_found_in_a_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] BoxError);
        let error = Outer(Box::new(Fenced));
        assert!(is_fenced(&error));
        assert!(!is_fenced(&Outer("other".into())));
    }
}

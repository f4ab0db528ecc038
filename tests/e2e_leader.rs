//! Exactly one leader, end to end: two `berth run` processes with leader election, each behind
//! its own recording AWS proxy. The leader is frozen (SIGSTOP) while a reconcile is about to
//! write, the other replica takes over and does the work, then the old leader resumes
//! (SIGCONT) with that write still pending and cut off from the apiserver (so it cannot hear
//! that it lost the Lease): it must send no AWS write after the takeover and stand down by
//! itself, then stand by once it hears from the apiserver again.

mod common;

use std::time::{Duration, Instant};

use common::{TIMEOUT, is_write, leader_args, lease_holder, setup, wait_for, wait_reason};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

const LEASE_SECONDS: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_that_resumes_after_a_takeover_writes_nothing() {
    let Some(s) = setup("e2e-fence").await else { return };
    let lease_name = format!("berth-{}", s.namespace);
    let owned_args = leader_args(&lease_name, &s.namespace, &format!("{LEASE_SECONDS}s"));
    let args: Vec<&str> = owned_args.iter().map(String::as_str).collect();
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.namespace);
    let spec =
        |name: &str| serde_json::json!({"repositoryName": format!("{}/{name}", s.namespace), "tags": {"team": "ops"}});

    // the first replica leads, the second stands by
    let (old_proxy, old_relay, old) = s.replica_behind_relays("-old", &args).await;
    let old_identity = wait_for(TIMEOUT, || lease_holder(&leases, &lease_name))
        .await
        .expect("the first replica takes the Lease");
    let (new_proxy, new) = s.replica_behind_proxy("-new", &args).await;
    s.create("one", spec("one")).await;
    wait_reason(&s.repositories, "one", "Synced", &old).await;
    assert_eq!(old.metric("berth_leader").await, 1.0);

    // A reconcile about to write when the leader freezes: its describe of a new repository
    // is answered "not found" by moto, but the answer reaches it only after it resumes.
    old_proxy.hold_answers("DescribeRepositories");
    s.create("pending", spec("pending")).await;
    let holding = wait_for(TIMEOUT, || async { (old_proxy.held_answers() > 0).then_some(()) }).await;
    assert!(
        holding.is_some(),
        "the leader never described 'pending'\n{}",
        old.log_text()
    );
    old.signal("STOP");

    // the other replica takes the Lease over and does the pending work, and more
    let new_identity = wait_for(TIMEOUT, || async {
        lease_holder(&leases, &lease_name).await.filter(|h| *h != old_identity)
    })
    .await
    .unwrap_or_else(|| panic!("the standby never took over\n{}", new.log_text()));
    let takeover = Instant::now();
    wait_reason(&s.repositories, "pending", "Synced", &new).await;
    s.create("after", spec("after")).await;
    s.merge("one", serde_json::json!({"spec": {"tags": {"team": "platform"}}}))
        .await;
    wait_reason(&s.repositories, "after", "Synced", &new).await;
    wait_reason(&s.repositories, "one", "Synced", &new).await;
    assert!(
        new_proxy.counts_since(Some(takeover)).keys().any(|op| is_write(op)),
        "the new leader wrote through its own proxy: {:?}",
        new_proxy.counts_since(Some(takeover))
    );

    // The old leader resumes with the stale "not found" answer already on its socket, and cut
    // off from the apiserver: only its own clock can tell it that its term is over.
    old_relay.cut();
    old_proxy.release_answers();
    old.signal("CONT");
    tokio::time::sleep(Duration::from_secs(2 * LEASE_SECONDS)).await;
    let cut_off = old_proxy.counts_since(Some(takeover));
    let stood_down = old.metric("berth_leader").await == 0.0;
    // back in touch: it sees the Lease taken, campaigns, and stays standing by
    old_relay.heal();
    tokio::time::sleep(Duration::from_secs(2 * LEASE_SECONDS)).await;

    let after_takeover = old_proxy.counts_since(Some(takeover));
    let writes: Vec<_> = after_takeover.iter().filter(|(op, _)| is_write(op)).collect();
    let reads: u64 = after_takeover
        .iter()
        .filter(|(op, _)| !is_write(op))
        .map(|(_, n)| n)
        .sum();
    assert!(
        writes.is_empty(),
        "the old leader wrote after the takeover: {writes:?} (and made {reads} reads; cut off: {cut_off:?})\n{}",
        old.log_text()
    );
    assert!(
        stood_down,
        "cut off from the apiserver, the old leader still reported berth_leader 1\n{}",
        old.log_text()
    );
    assert_eq!(old.metric("berth_leader").await, 0.0, "{}", old.log_text());
    assert_eq!(new.metric("berth_leader").await, 1.0, "{}", new.log_text());
    assert_eq!(
        lease_holder(&leases, &lease_name).await.as_deref(),
        Some(new_identity.as_str())
    );
    // the refused call was not a failure of the object: no Warning Event, status untouched
    assert!(s.events("pending", "LeaderTermOver").await.is_empty());
    wait_reason(&s.repositories, "pending", "Synced", &new).await;
    eprintln!("old leader after the takeover: no writes, {reads} reads: {after_takeover:?}");
}

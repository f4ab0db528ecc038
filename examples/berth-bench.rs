//! berth-bench: berth at scale on the test bed, measured from outside.
//!
//! Applies N EcrRepositories at once (shares of pull grants and GitHub Actions push roles, label
//! groups governed by LifecyclePolicies, one ScanPolicy), waits until all are Ready, then watches
//! K steady resyncs. AWS calls are counted by a recording proxy in front of moto (independent of
//! berth's own metrics), the operator's CPU and memory are read from /proc, apiserver requests
//! from the apiserver's own metrics. Prints a table and writes JSON.
//!
//! Run it with `scripts/bench` (brings the test bed up and builds in release mode), e.g.
//! `scripts/bench --repositories 1000 --resyncs 3`.

// the tests' bare HTTP client and recording proxy; the benchmark uses only part of them
#[allow(dead_code)]
#[path = "../tests/common/http.rs"]
mod bare_http;
#[allow(dead_code)]
#[path = "../tests/common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth::api::{EcrRepository, LifecyclePolicy, ScanPolicy};
use clap::Parser;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "berth at scale on the test bed: convergence, steady resyncs, CPU, memory, AWS calls")]
struct Args {
    /// EcrRepositories to apply at once.
    #[arg(long, default_value_t = 1000)]
    repositories: usize,
    /// Steady resyncs to measure after convergence.
    #[arg(long, default_value_t = 3)]
    resyncs: u32,
    /// berth's --resync-interval, in seconds.
    #[arg(long, default_value_t = 30)]
    resync_seconds: u64,
    /// Share of repositories with pull grants.
    #[arg(long, default_value_t = 0.3)]
    pull_share: f64,
    /// Share of repositories with a GitHub Actions push role.
    #[arg(long, default_value_t = 0.1)]
    push_share: f64,
    /// The berth binary to run (built in release mode by scripts/bench).
    #[arg(long, default_value = "target/release/berth")]
    berth: PathBuf,
    /// The AWS region the benchmark uses (its own, so that it does not meet other state).
    #[arg(long, default_value = "us-east-2")]
    region: String,
    /// berth's AWS rate budget (ECR and IAM requests per second): high by default, so that the
    /// benchmark measures berth's own cost rather than the budget's pacing.
    #[arg(long, default_value_t = 1000)]
    aws_requests_per_second: u32,
    /// Extra arguments for `berth run` (e.g. "--max-concurrent-reconciles=64").
    #[arg(long, allow_hyphen_values = true)]
    berth_arg: Vec<String>,
    /// Where the JSON result goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// How long to wait for convergence, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_seconds: u64,
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// ACK's per-object strategy reads each repository 8 times per resync (see DESIGN.md).
const ACK_READS_PER_REPOSITORY: f64 = 8.0;
const LABEL: &str = "bench.berth.dev/tier";
/// Label groups: a, b and c are governed by a LifecyclePolicy each, d by none.
const TIERS: [&str; 4] = ["a", "b", "c", "d"];

/// CPU seconds and memory of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct ProcessSample {
    cpu_seconds: f64,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn sample(pid: u32) -> ProcessSample {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name (which may hold spaces) start at ")"
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name
    let cpu_seconds = (field(11) + field(12)) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    ProcessSample {
        cpu_seconds,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    }
}

/// berth's metrics text (None while it does not answer).
async fn berth_metrics(http_addr: &str) -> Option<String> {
    let metrics = bare_http::http_get(http_addr, "/metrics");
    let (_, text) = tokio::time::timeout(Duration::from_secs(5), metrics).await.ok()??;
    Some(text)
}

/// `berth_resyncs_total` from berth's metrics endpoint (None while it does not answer, or
/// when it has no such counter).
async fn berth_resyncs(http_addr: &str) -> Option<u64> {
    berth_metrics(http_addr)
        .await?
        .lines()
        .find_map(|line| line.strip_prefix("berth_resyncs_total "))
        .and_then(|value| value.trim().parse().ok())
}

/// The repositories whose statistics gauges berth exports: its memory holds them too, and the
/// statistics reach new repositories one at a time (see docs/benchmark.md).
/// None when berth did not answer.
async fn repositories_with_statistics(http_addr: &str) -> Option<usize> {
    berth_metrics(http_addr).await.map(|text| {
        text.lines()
            .filter(|line| line.starts_with("berth_repository_images{"))
            .count()
    })
}

/// Requests the apiserver has served, by verb and resource (its own `apiserver_request_total`).
async fn apiserver_requests(client: &Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).expect("a request");
    let text = client.request_text(request).await.unwrap_or_default();
    let mut requests = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let (resource, subresource) = (label("resource"), label("subresource"));
        let key = if subresource.is_empty() {
            format!("{} {resource}", label("verb"))
        } else {
            format!("{} {resource}/{subresource}", label("verb"))
        };
        *requests.entry(key).or_insert(0.0) += value;
    }
    requests
}

/// What was served between two readings of `apiserver_requests`, by verb and resource.
fn requests_since(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(key, value)| (key.clone(), value - before.get(key).copied().unwrap_or(0.0)))
        .filter(|(_, served)| *served > 0.0)
        .collect()
}

fn repository(namespace: &str, index: usize, args: &Args) -> EcrRepository {
    let mut spec = json!({
        "repositoryName": format!("{namespace}/service-{index:05}"),
        "region": args.region,
        "tags": {"team": "bench", "cost-center": format!("cc-{}", index % 7)},
    });
    // spread the grants evenly rather than at random, so that every run has the same shares
    let every = |share: f64| share > 0.0 && (index as f64 * share).floor() != ((index + 1) as f64 * share).floor();
    if every(args.pull_share) {
        spec["access"]["pull"] = json!([{"accountId": "111122223333"}, {"organizationId": "o-a1b2c3d4e5"}]);
    }
    if every(args.push_share) {
        spec["access"]["push"] = json!([{"githubActions": {
            "repository": format!("acme/service-{index:05}"),
            "refs": ["refs/heads/main", "refs/tags/v*"],
        }}]);
    }
    let mut object = json!({
        "apiVersion": "ecr.berth.dev/v1alpha1",
        "kind": "EcrRepository",
        "metadata": {"name": format!("service-{index:05}"), "namespace": namespace, "labels": {LABEL: TIERS[index % TIERS.len()]}},
        "spec": spec,
    });
    // as `kubectl apply` and Argo CD write it: a second copy of the object in an annotation
    object["metadata"]["annotations"] = json!({LAST_APPLIED: object.to_string()});
    serde_json::from_value(object).expect("an EcrRepository")
}

fn lifecycle_policy(tier: &str, mode: &str) -> LifecyclePolicy {
    serde_json::from_value(json!({
        "apiVersion": "ecr.berth.dev/v1alpha1",
        "kind": "LifecyclePolicy",
        "metadata": {"name": format!("tier-{tier}")},
        "spec": {
            "mode": mode,
            "repositorySelector": {"matchLabels": {LABEL: tier}},
            "rules": [
                {"priority": 1, "selection": {"tagStatus": "Tagged", "tagPatterns": ["v*"],
                    "countType": "ImageCountMoreThan", "countNumber": 30}, "action": {"type": "Expire"}},
                {"priority": 2, "selection": {"tagStatus": "Untagged", "countType": "SinceImagePushed",
                    "countNumber": 7, "countUnit": "Days"}, "action": {"type": "Expire"}},
            ],
        },
    }))
    .expect("a LifecyclePolicy")
}

fn scan_policy(name: &str, namespace: &str, region: &str) -> ScanPolicy {
    serde_json::from_value(json!({
        "apiVersion": "ecr.berth.dev/v1alpha1",
        "kind": "ScanPolicy",
        "metadata": {"name": name},
        "spec": {
            "region": region,
            "scanType": "Enhanced",
            "rules": [{"frequency": "ContinuousScan", "repositoryFilters": [format!("{namespace}/*")]}],
            "findings": {"thresholds": {"critical": 0, "high": 5}},
        },
    }))
    .expect("a ScanPolicy")
}

fn is_ready<K: serde::Serialize>(object: &K) -> bool {
    let value = serde_json::to_value(object).unwrap_or_default();
    value["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn total(counts: &BTreeMap<String, u64>, writes: bool) -> u64 {
    counts
        .iter()
        .filter(|(operation, _)| proxy::is_write(operation) == writes)
        .map(|(_, n)| n)
        .sum()
}

struct Berth(std::process::Child);

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // interrupted (Ctrl-C, or SIGTERM from scripts/bench's caller), the benchmark stops its
    // berth too: dropping `run` drops the child's guard, where exiting at the signal left
    // berth running against a test bed that was going away
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = run(args) => result,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        _ = terminate.recv() => anyhow::bail!("terminated"),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let aws_endpoint = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| anyhow::anyhow!("the test bed is not up: run scripts/bench (or source the test bed's env)"))?;
    let client = Client::try_default().await?;
    berth::api::install_crds(&client, true).await?;

    let suffix = format!("{:06x}", rand::random_range(0..0x100_0000u32));
    let namespace = format!("bench-{suffix}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
        )
        .await?;

    let proxy = proxy::AwsProxy::start(&aws_endpoint).await;
    std::fs::create_dir_all(&args.out)?;
    let log_path = args.out.join(format!("berth-{}.log", args.repositories));
    let log = std::fs::File::create(&log_path)?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let http_addr = format!("127.0.0.1:{metrics_port}");
    let child = std::process::Command::new(&args.berth)
        .args([
            "run",
            "--watch-namespace",
            &namespace,
            "--cluster-id",
            &format!("bench-{suffix}"),
        ])
        .args([
            "--region",
            &args.region,
            "--resync-interval",
            &format!("{}s", args.resync_seconds),
        ])
        .args(["--metrics-addr", &http_addr, "--health-addr", &http_addr])
        .args(["--create-github-oidc-provider", "--manage-scan-policies", "true"])
        .args([
            format!("--aws-ecr-max-requests-per-second={}", args.aws_requests_per_second),
            format!("--aws-iam-max-requests-per-second={}", args.aws_requests_per_second),
        ])
        .args(&args.berth_arg)
        .env("RUST_LOG", "warn")
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot start {}: {e} (build it: cargo build --release)",
                args.berth.display()
            )
        })?;
    let berth = Berth(child);
    let pid = berth.0.id();

    let repositories: Api<EcrRepository> = Api::namespaced(client.clone(), &namespace);
    let policies: Api<LifecyclePolicy> = Api::namespaced(client.clone(), &namespace);
    let scans: Api<ScanPolicy> = Api::all(client.clone());
    let scan_name = format!("bench-{suffix}");

    // the clock starts when the objects are applied: berth has started and read its identity
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.reset();
    let requests_before = apiserver_requests(&client).await;
    let cpu_before = sample(pid).cpu_seconds;
    let started = Instant::now();
    for (tier, mode) in [("a", "Enforce"), ("b", "Enforce"), ("c", "Preview")] {
        policies
            .create(&PostParams::default(), &lifecycle_policy(tier, mode))
            .await?;
    }
    scans
        .create(
            &PostParams::default(),
            &scan_policy(&scan_name, &namespace, &args.region),
        )
        .await?;
    let created = futures::stream::iter(0..args.repositories)
        .map(|index| {
            let repositories = repositories.clone();
            let object = repository(&namespace, index, &args);
            async move { repositories.create(&PostParams::default(), &object).await }
        })
        .buffer_unordered(32)
        .filter(|result| std::future::ready(result.is_err()))
        .count()
        .await;
    anyhow::ensure!(created == 0, "{created} EcrRepositories could not be created");
    let applied_after = started.elapsed();

    // converged: every EcrRepository, LifecyclePolicy and the ScanPolicy is Ready
    let deadline = started + Duration::from_secs(args.timeout_seconds);
    let mut repositories_ready_after = None;
    loop {
        let listed = repositories.list(&ListParams::default()).await?;
        let ready = listed.items.iter().filter(|r| is_ready(*r)).count();
        if ready == args.repositories && repositories_ready_after.is_none() {
            repositories_ready_after = Some(started.elapsed());
        }
        let policies_ready = policies.list(&ListParams::default()).await?.items.iter().all(is_ready);
        let scan_ready = scans.get(&scan_name).await.map(|s| is_ready(&s)).unwrap_or(false);
        if ready == args.repositories && policies_ready && scan_ready {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "not converged after {}s: {ready}/{} EcrRepositories Ready (berth's log: {})",
                args.timeout_seconds,
                args.repositories,
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let converged_after = started.elapsed();
    let converged = sample(pid);
    let converge_counts = proxy.counts();
    let converge_requests = requests_since(&requests_before, &apiserver_requests(&client).await);

    // steady state: K resyncs with nothing changing (the benchmark itself stays quiet), from
    // the start of a resync interval, so that the window holds each object's look exactly K
    // times (it is spread over the interval at a fixed offset per object)
    match berth_resyncs(&http_addr).await {
        Some(resyncs) => {
            let next_interval = Instant::now() + Duration::from_secs(args.resync_seconds * 2);
            while berth_resyncs(&http_addr).await.is_none_or(|now| now == resyncs) {
                if Instant::now() > next_interval {
                    anyhow::bail!(
                        "berth started no resync interval within two (berth's log: {})",
                        log_path.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        // a berth without the counter (an older build, compared with this one): the window
        // starts mid-interval
        None => eprintln!("berth reports no berth_resyncs_total: the steady window is not aligned to its resyncs"),
    }
    // CPU from here: the wait (and berth answering its polls) is not the steady state's
    let steady_from = sample(pid);
    proxy.reset();
    let steady_requests_before = apiserver_requests(&client).await;
    let steady_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.resync_seconds * u64::from(args.resyncs))).await;
    let steady_seconds = steady_started.elapsed().as_secs_f64();
    let steady = sample(pid);
    let steady_counts = proxy.counts();
    let with_statistics = repositories_with_statistics(&http_addr).await;
    let steady_requests = requests_since(&steady_requests_before, &apiserver_requests(&client).await);

    let n = args.repositories as f64;
    let k = f64::from(args.resyncs);
    let steady_reads = total(&steady_counts, false) as f64 / n / k;
    let result = json!({
        "repositories": args.repositories,
        "pullShare": args.pull_share,
        "pushShare": args.push_share,
        "resyncSeconds": args.resync_seconds,
        "resyncs": args.resyncs,
        "appliedSeconds": applied_after.as_secs_f64(),
        "allReadySeconds": converged_after.as_secs_f64(),
        "repositoriesReadySeconds": repositories_ready_after.unwrap_or(converged_after).as_secs_f64(),
        "convergence": {
            "awsCalls": converge_counts,
            "awsReads": total(&converge_counts, false),
            "awsWrites": total(&converge_counts, true),
            "cpuSeconds": converged.cpu_seconds - cpu_before,
            "cpuMillisPerRepository": (converged.cpu_seconds - cpu_before) * 1000.0 / n,
            "apiserverRequests": converge_requests.values().sum::<f64>(),
            "apiserverRequestsByKind": converge_requests,
        },
        "steady": {
            "seconds": steady_seconds,
            "awsCalls": steady_counts,
            "awsWrites": total(&steady_counts, true),
            "readsPerRepositoryPerResync": steady_reads,
            "ackReadsPerRepositoryPerResync": ACK_READS_PER_REPOSITORY,
            "ackToBerthReadRatio": if steady_reads > 0.0 { ACK_READS_PER_REPOSITORY / steady_reads } else { f64::INFINITY },
            "cpuMillisPerRepositoryPerResync": (steady.cpu_seconds - steady_from.cpu_seconds) * 1000.0 / n / k,
            "apiserverRequestsPerResync": steady_requests.values().sum::<f64>() / k,
            "apiserverRequestsByKind": steady_requests,
        },
        "memory": {
            "peakRssMiB": steady.peak_rss_kib as f64 / 1024.0,
            "rssAfterConvergingMiB": converged.rss_kib as f64 / 1024.0,
            "rssSteadyMiB": steady.rss_kib as f64 / 1024.0,
            "peakRssKiBPerRepository": steady.peak_rss_kib as f64 / n,
            "repositoriesWithStatisticsGauges": with_statistics,
        },
    });
    let out = args.out.join(format!("bench-{}.json", args.repositories));
    std::fs::write(&out, serde_json::to_string_pretty(&result)?)?;
    print_table(&result, &converge_counts, &steady_counts);
    println!("\nJSON: {}", out.display());
    println!("berth's log: {}", log_path.display());

    // leave nothing behind in the cluster (the emulated repositories are retained, as
    // deletionPolicy Retain asks, and vanish with the test bed)
    drop(berth);
    let _ = scans.delete(&scan_name, &DeleteParams::default()).await;
    let _ = namespaces.delete(&namespace, &DeleteParams::default()).await;
    release_finalizers(&client, &namespace, &scan_name).await;
    Ok(())
}

/// berth is stopped: what still carries its finalizer is released so the namespace can go.
async fn release_finalizers(client: &Client, namespace: &str, scan_name: &str) {
    use kube::api::{Patch, PatchParams};
    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let repositories: Api<EcrRepository> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = repositories.list(&ListParams::default()).await {
        for object in list {
            let _ = repositories
                .patch(&object.name_any(), &PatchParams::default(), &release)
                .await;
        }
    }
    let policies: Api<LifecyclePolicy> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = policies.list(&ListParams::default()).await {
        for object in list {
            let _ = policies
                .patch(&object.name_any(), &PatchParams::default(), &release)
                .await;
        }
    }
    let scans: Api<ScanPolicy> = Api::all(client.clone());
    let _ = scans.patch(scan_name, &PatchParams::default(), &release).await;
}

fn print_table(result: &serde_json::Value, converge: &BTreeMap<String, u64>, steady: &BTreeMap<String, u64>) {
    let n = result["repositories"].as_f64().unwrap_or(1.0);
    let k = result["resyncs"].as_f64().unwrap_or(1.0);
    let f = |path: &[&str]| {
        let mut value = result;
        for key in path {
            value = &value[*key];
        }
        value.as_f64().unwrap_or(f64::NAN)
    };
    println!(
        "\nberth-bench: {n} EcrRepositories, {k} steady resyncs of {}s",
        f(&["resyncSeconds"])
    );
    println!("| figure | value |\n|---|---|");
    println!("| all Ready after | {:.1} s |", f(&["allReadySeconds"]));
    println!(
        "| every EcrRepository Ready after | {:.1} s |",
        f(&["repositoriesReadySeconds"])
    );
    println!(
        "| operator CPU to converge | {:.2} ms / repository |",
        f(&["convergence", "cpuMillisPerRepository"])
    );
    println!(
        "| AWS calls to converge | {:.2} / repository ({} writes) |",
        (f(&["convergence", "awsReads"]) + f(&["convergence", "awsWrites"])) / n,
        f(&["convergence", "awsWrites"])
    );
    println!(
        "| peak RSS | {:.0} MiB ({:.1} KiB / repository) |",
        f(&["memory", "peakRssMiB"]),
        f(&["memory", "peakRssKiBPerRepository"])
    );
    println!(
        "| RSS after converging / steady | {:.0} / {:.0} MiB |",
        f(&["memory", "rssAfterConvergingMiB"]),
        f(&["memory", "rssSteadyMiB"])
    );
    println!(
        "| repositories with statistics gauges at the end | {:.0} |",
        f(&["memory", "repositoriesWithStatisticsGauges"])
    );
    println!(
        "| steady AWS reads / repository / resync | {:.3} |",
        f(&["steady", "readsPerRepositoryPerResync"])
    );
    println!("| steady AWS writes | {} |", f(&["steady", "awsWrites"]));
    println!(
        "| ACK's reads / berth's reads (per repository per resync) | {:.1}x |",
        f(&["steady", "ackToBerthReadRatio"])
    );
    println!(
        "| steady CPU / repository / resync | {:.3} ms |",
        f(&["steady", "cpuMillisPerRepositoryPerResync"])
    );
    println!(
        "| steady apiserver requests / resync | {:.0} |",
        f(&["steady", "apiserverRequestsPerResync"])
    );
    println!("\n| operation | to converge | per resync, steady |\n|---|---|---|");
    let operations: std::collections::BTreeSet<&String> = converge.keys().chain(steady.keys()).collect();
    for operation in operations {
        println!(
            "| {operation} | {} | {:.1} |",
            converge.get(operation).copied().unwrap_or(0),
            steady.get(operation).copied().unwrap_or(0) as f64 / k
        );
    }
}

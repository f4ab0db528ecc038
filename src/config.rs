//! Operator configuration: command-line flags with environment fallbacks (Helm values map
//! onto them).

use std::{net::SocketAddr, time::Duration};

use clap::{Args, ValueEnum};

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Default AWS region for objects that set none.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// Written into ownership tags; default: the UID of the kube-system namespace.
    #[arg(long, env = "BERTH_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// Drift is found and corrected at least this often (e.g. 10m, 30s, 1h).
    #[arg(long, env = "BERTH_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// How many objects of each kind are reconciled at the same time; the rest wait in the
    /// queue. Bounds the AWS and apiserver requests in flight (and the memory they hold).
    #[arg(long, env = "BERTH_MAX_CONCURRENT_RECONCILES", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,

    /// Watch only these namespaces (repeatable); default: all.
    #[arg(long = "watch-namespace", env = "BERTH_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Tenancy guard: a repository's name must start with `<namespace>/`.
    #[arg(long, env = "BERTH_REQUIRE_NAMESPACE_PREFIX")]
    pub require_namespace_prefix: bool,

    /// Address of the Prometheus /metrics endpoint.
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,

    /// Address of /healthz and /readyz.
    #[arg(long, env = "BERTH_HEALTH_ADDR", default_value = "127.0.0.1:8081")]
    pub health_addr: SocketAddr,

    /// IAM path of every role berth creates (e.g. /berth/); scope berth's own IAM permissions to it.
    #[arg(long, env = "BERTH_IAM_ROLE_PATH", default_value = "/berth/", value_parser = parse_iam_path)]
    pub iam_role_path: String,

    /// Permissions boundary attached to every role berth creates, so that berth cannot grant more
    /// than the boundary allows.
    #[arg(long, env = "BERTH_IAM_PERMISSIONS_BOUNDARY")]
    pub iam_permissions_boundary: Option<String>,

    /// ARN of the IAM OIDC provider for GitHub Actions; default: the account's provider for
    /// token.actions.githubusercontent.com.
    #[arg(long, env = "BERTH_GITHUB_OIDC_PROVIDER_ARN")]
    pub github_oidc_provider_arn: Option<String>,

    /// Create (and tag) the GitHub Actions OIDC provider when the account has none.
    #[arg(long, env = "BERTH_CREATE_GITHUB_OIDC_PROVIDER")]
    pub create_github_oidc_provider: bool,

    /// Allow statements that grant access to anyone outside the account (a wildcard principal
    /// without a condition pinning the caller, NotPrincipal); refused as InvalidSpec otherwise.
    #[arg(long, env = "BERTH_ALLOW_PUBLIC_ACCESS")]
    pub allow_public_access: bool,

    /// How often each repository's image count, size and last push are refreshed; the
    /// DescribeImages calls are spread evenly over the interval.
    #[arg(long, env = "BERTH_STATS_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// The shortest `findings.refreshInterval` a ScanPolicy may ask for; shorter is refused as
    /// InvalidSpec. Raise it to cap the DescribeImageScanFindings rate.
    #[arg(long, env = "BERTH_MIN_FINDINGS_REFRESH", default_value = "1m", value_parser = parse_duration)]
    pub min_findings_refresh: Duration,

    /// Manage ScanPolicies (the registry-wide scanning configuration). Default: yes when berth
    /// watches all namespaces, no with --watch-namespace (a namespaced install leaves the
    /// registry's configuration to the cluster-wide one).
    #[arg(long, env = "BERTH_MANAGE_SCAN_POLICIES", value_parser = clap::builder::BoolishValueParser::new())]
    pub manage_scan_policies: Option<bool>,

    /// Elect one active replica through a coordination.k8s.io Lease; the others stand by.
    #[arg(long, env = "BERTH_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(long, env = "BERTH_LEASE_NAME", default_value = "berth-leader")]
    pub lease_name: String,

    /// Namespace of the Lease (in a Pod: its own namespace through the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// How long a Lease holds without renewal: a crashed leader is replaced after about this long.
    #[arg(long, env = "BERTH_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// On SIGTERM, how long in-flight reconciles may take before berth exits anyway.
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// The rate budget of ECR, per region: at most this many requests per second (retries
    /// included), lowered for a while when AWS throttles. Default: below ECR's own throttles.
    #[arg(long, env = "BERTH_AWS_ECR_MAX_REQUESTS_PER_SECOND", default_value = "50", value_parser = parse_rate)]
    pub aws_ecr_max_requests_per_second: f64,

    /// The rate budget of IAM (one for the account, global) and of STS.
    #[arg(long, env = "BERTH_AWS_IAM_MAX_REQUESTS_PER_SECOND", default_value = "10", value_parser = parse_rate)]
    pub aws_iam_max_requests_per_second: f64,

    /// The longest an AWS request waits for its turn in its rate budget; a request that would
    /// wait longer is not sent, and its reconcile is retried with backoff.
    #[arg(long, env = "BERTH_AWS_RATE_LIMIT_MAX_WAIT", default_value = "5s", value_parser = parse_duration)]
    pub aws_rate_limit_max_wait: Duration,

    /// Log format.
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// An IAM path: `/`, or `/` followed by path components each ending in `/`.
pub fn parse_iam_path(text: &str) -> Result<String, String> {
    let valid = text.starts_with('/')
        && text.ends_with('/')
        && text.len() <= 512
        && text.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !text.contains("//");
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not an IAM path such as /berth/ (starts and ends with /)"
        ))
    }
}

/// A rate in requests per second: a positive number up to 10,000 (fractions allowed).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 10_000.0 => Ok(rate),
        _ => Err(format!(
            "'{text}' is not a rate in requests per second (above 0, at most 10000)"
        )),
    }
}

/// Parses `90s`, `10m`, `1h`, `1h30m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!("unknown unit '{c}' in duration '{text}' (use s, m, h, d)"));
            }
        };
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("duration '{text}' needs a number before '{c}'"))?;
        total += number * unit;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(format!("'{text}' is not a positive duration like 30s, 10m or 1h"));
    }
    Ok(Duration::from_secs(total))
}

impl RunArgs {
    /// The AWS rate budgets these flags ask for.
    pub fn aws_rate_limits(&self) -> crate::aws::RateLimits {
        crate::aws::RateLimits {
            ecr_per_second: self.aws_ecr_max_requests_per_second,
            iam_per_second: self.aws_iam_max_requests_per_second,
            max_wait: self.aws_rate_limit_max_wait,
        }
    }

    /// Whether this berth manages ScanPolicies (see `--manage-scan-policies`).
    pub fn manages_scan_policies(&self) -> bool {
        self.manage_scan_policies.unwrap_or(self.watch_namespaces.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5m3").is_err());
    }

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("20"), Ok(20.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("20000").is_err());
    }

    #[test]
    fn parses_iam_paths() {
        assert_eq!(parse_iam_path("/berth/"), Ok("/berth/".into()));
        assert_eq!(parse_iam_path("/"), Ok("/".into()));
        assert!(parse_iam_path("/teams/ci/").is_ok());
        assert!(parse_iam_path("berth/").is_err());
        assert!(parse_iam_path("/berth").is_err());
        assert!(parse_iam_path("/a//b/").is_err());
        assert!(parse_iam_path("/with space/").is_err());
    }
}

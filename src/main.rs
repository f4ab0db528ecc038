#![forbid(unsafe_code)]
#![deny(warnings)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's allocator: berth makes many small, short-lived allocations on
/// several threads (decoded objects, AWS answers). In the benchmark at 3,000 repositories
/// (one run each, docs/performance.md) glibc's peaked at 70 MiB RSS and 4.53 ms of CPU per
/// repository to converge, jemalloc at 63 MiB and 3.30 ms, mimalloc at 112 MiB and 4.84 ms.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// berth: Amazon ECR, declared in Kubernetes.
#[derive(Parser)]
#[command(name = "berth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run(Box<berth::config::RunArgs>),
    /// Print the CRDs as multi-document YAML, or write one file per kind into --dir (and the
    /// same files into the Helm chart's CRD directory with --chart).
    Crds {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Helm chart's directory (e.g. charts/berth): its templates install these files.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Print generated documentation.
    Docs {
        #[command(subcommand)]
        page: DocsPage,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum DocsPage {
    /// The API reference of every kind, from the CRD schemas (docs/api-reference.md).
    ApiReference,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            // One TLS provider for kube and the AWS SDK alike.
            rustls::crypto::aws_lc_rs::default_provider()
                .install_default()
                .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
            berth::telemetry::init_tracing(args.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(berth::controller::run(*args))
        }
        Command::Crds { dir: None, chart: None } => {
            print!("{}", berth::api::crds_yaml());
            Ok(())
        }
        Command::Crds { dir, chart } => {
            let chart_dir = chart.map(|chart| chart.join(berth::api::CHART_CRD_DIR));
            for dir in dir.iter().chain(chart_dir.iter()) {
                std::fs::create_dir_all(dir)?;
                for crd in berth::api::crds() {
                    std::fs::write(dir.join(berth::api::crd_file_name(&crd)), berth::api::crd_yaml(&crd))?;
                }
            }
            Ok(())
        }
        Command::Docs {
            page: DocsPage::ApiReference,
        } => {
            print!("{}", berth::api::api_reference());
            Ok(())
        }
        Command::Version => {
            println!("berth {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

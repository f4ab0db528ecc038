//! One more kube-apiserver on the test bed's etcd, for a test that stops and starts an
//! apiserver under berth without touching the shared one (other tests run against it at the
//! same time). It runs the test bed's own binary with the test bed's own flags (certificates,
//! tokens, etcd), read from the running apiserver's command line, on a port of its own; both
//! serve the same objects, so the test changes them through the shared one while this one is down.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use super::{free_port, wait_for};

pub struct ExtraApiserver {
    /// A copy of the test bed's kubeconfig naming this apiserver.
    pub kubeconfig: String,
    pub port: u16,
    program: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// The test bed's apiserver command line (program first), from /proc.
fn testbed_command_line(testbed_dir: &str) -> Vec<String> {
    let pid = std::fs::read_to_string(format!("{testbed_dir}/kube-apiserver.pid"))
        .expect("the test bed's kube-apiserver.pid (scripts/testbed up)");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).expect("the test bed's apiserver is running");
    cmdline
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// `args` with the value of `--secure-port` (as `--secure-port N` or `--secure-port=N`) set to `port`.
fn with_secure_port(args: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--secure-port" {
            iter.next();
            out.extend(["--secure-port".to_owned(), port.to_string()]);
        } else if arg.starts_with("--secure-port=") {
            out.push(format!("--secure-port={port}"));
        } else {
            out.push(arg.clone());
        }
    }
    assert!(
        out.iter().any(|a| a.starts_with("--secure-port")),
        "no --secure-port among {args:?}"
    );
    out
}

impl ExtraApiserver {
    /// Starts it on a free port (`name` tells its log and kubeconfig apart) and waits until it
    /// answers /readyz.
    pub async fn start(name: &str) -> ExtraApiserver {
        let testbed_dir = std::env::var("BERTH_TESTBED").expect("BERTH_TESTBED");
        let mut command_line = testbed_command_line(&testbed_dir);
        let program = command_line.remove(0);
        let port = free_port();
        let args = with_secure_port(&command_line, port);
        let shared = std::env::var("KUBECONFIG").expect("KUBECONFIG");
        let text = std::fs::read_to_string(&shared).expect("read the kubeconfig");
        let server = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("server: "))
            .expect("a server line in the kubeconfig")
            .to_owned();
        let kubeconfig = format!("{shared}-{name}");
        std::fs::write(&kubeconfig, text.replace(&server, &format!("https://127.0.0.1:{port}")))
            .expect("write the kubeconfig");
        let mut apiserver = ExtraApiserver {
            kubeconfig,
            port,
            program,
            args,
            log: PathBuf::from(testbed_dir).join(format!("kube-apiserver-{name}.log")),
            child: None,
        };
        apiserver.start_again().await;
        apiserver
    }

    /// (Re)starts the process on its port and waits until it answers /readyz.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the extra apiserver is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the extra apiserver's log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kube-apiserver");
        self.child = Some(child);
        let client = self.client().await;
        let ready = wait_for(Duration::from_secs(90), || async {
            let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
            (client.request_text(request).await.ok()? == "ok").then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "the extra apiserver on port {} never became ready; log: {}",
            self.port,
            self.log.display()
        );
    }

    /// A client of this apiserver only.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a client config");
        kube::Client::try_from(config).expect("a client")
    }

    /// Kills it (SIGKILL: connections drop without a goodbye) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ExtraApiserver {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

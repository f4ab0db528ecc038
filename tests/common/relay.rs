//! A TCP relay in front of the kube-apiserver for one berth process, which can cut it off
//! (a network partition) and heal it: while cut, bytes wait in both directions. TLS passes
//! through untouched; the process gets a kubeconfig naming the relay.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ApiRelay {
    /// A copy of the test bed's kubeconfig whose server is the relay.
    pub kubeconfig: String,
    cut: Arc<watch::Sender<bool>>,
}

/// Copies one direction, holding each chunk while the link is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if cut.wait_for(|cut| !*cut).await.is_err() || to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl ApiRelay {
    /// Starts a relay to the server of `kubeconfig` (an `https://host:port` line) and writes
    /// `<kubeconfig>-<name>` pointing at it.
    pub async fn start(kubeconfig: &str, name: &str) -> ApiRelay {
        let text = std::fs::read_to_string(kubeconfig).expect("read the kubeconfig");
        let server = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("server: https://"))
            .expect("a server line in the kubeconfig")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relayed = listener.local_addr().unwrap().to_string();
        let copy = format!("{kubeconfig}-{name}");
        std::fs::write(&copy, text.replace(&server, &relayed)).expect("write the relayed kubeconfig");
        let cut = Arc::new(watch::channel(false).0);
        let link = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(&server).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (upstream_read, upstream_write) = upstream.into_split();
                tokio::spawn(pump(client_read, upstream_write, link.subscribe()));
                tokio::spawn(pump(upstream_read, client_write, link.subscribe()));
            }
        });
        ApiRelay { kubeconfig: copy, cut }
    }

    /// Cuts the process off the apiserver: nothing passes until `heal`.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Delivers what waited and lets everything pass again.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

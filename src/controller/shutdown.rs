//! SIGTERM/SIGINT, observed by whoever holds a clone of `Shutdown`.

use tokio::sync::watch;

/// Resolves `requested()` once the process is asked to stop. A second signal exits at once.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn on_signals() -> Self {
        let (sender, receiver) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: finishing in-flight work");
            let _ = sender.send(true);
            wait_for_signal().await;
            tracing::warn!("second signal: exiting at once");
            std::process::exit(1);
        });
        Self(receiver)
    }

    pub async fn requested(&self) {
        self.requested_owned().await
    }

    /// An owned future, for APIs that take `'static` futures.
    pub fn requested_owned(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut receiver = self.0.clone();
        async move {
            let _ = receiver.wait_for(|requested| *requested).await;
        }
    }
}

async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

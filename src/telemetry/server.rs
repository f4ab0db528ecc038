//! `/metrics` on the metrics address; `/healthz` and `/readyz` on the health address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::Metrics;

/// What `/readyz` reports: ready once the CRDs are served and the leader decision is made
/// (a standby replica is ready too: it is waiting by design).
#[derive(Debug, Default)]
pub struct Health {
    crds_served: AtomicBool,
    leader_decided: AtomicBool,
}

impl Health {
    pub fn set_crds_served(&self) {
        self.crds_served.store(true, Ordering::Release);
    }

    pub fn set_leader_decided(&self) {
        self.leader_decided.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.crds_served.load(Ordering::Acquire) && self.leader_decided.load(Ordering::Acquire)
    }
}

async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, &'static str) {
    if health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: CRDs not served yet or leader election undecided",
        )
    }
}

/// Binds both listeners (failing at once on a taken port) and serves them in the background.
/// The same address for both serves all three paths on one port.
pub async fn serve(
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
    metrics_state: Arc<Metrics>,
    health_state: Arc<Health>,
) -> anyhow::Result<()> {
    let metrics_router = Router::new().route("/metrics", get(metrics)).with_state(metrics_state);
    let health_router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health_state);
    let bind = |addr: SocketAddr| async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(requested = %addr, %bound, "HTTP listener bound");
        anyhow::Ok(listener)
    };
    if metrics_addr == health_addr {
        let listener = bind(metrics_addr).await?;
        tokio::spawn(serve_router(listener, metrics_router.merge(health_router)));
    } else {
        let metrics_listener = bind(metrics_addr).await?;
        let health_listener = bind(health_addr).await?;
        tokio::spawn(serve_router(metrics_listener, metrics_router));
        tokio::spawn(serve_router(health_listener, health_router));
    }
    Ok(())
}

async fn serve_router(listener: tokio::net::TcpListener, router: Router) {
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!(%error, "HTTP server stopped");
    }
}

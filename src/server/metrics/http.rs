//! `GET /metrics` over plain HTTP on `metrics.listen`: the OpenMetrics text of the server
//! and of the virtual servers it hosts. Nothing else is served there.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::server::Node;

/// What `prometheus_client` encodes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The bound socket of `metrics.listen`.
pub(in crate::server) struct Listener {
    socket: tokio::net::TcpListener,
    pub(in crate::server) addr: SocketAddr,
}

impl Listener {
    /// Binds `addr`; the error names `metrics.listen`.
    pub(in crate::server) async fn bind(addr: SocketAddr) -> anyhow::Result<Listener> {
        let socket = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics.listen: cannot listen on {addr} (tcp)"))?;
        let addr = socket
            .local_addr()
            .with_context(|| format!("metrics.listen: the address bound for {addr}"))?;
        Ok(Listener { socket, addr })
    }
}

/// Serves `GET /metrics` until the server shuts down.
pub(in crate::server) async fn serve(node: Arc<Node>, listener: Listener) {
    let mut shutdown = node.shutdown.subscribe();
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(node);
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let addr = listener.addr;
    tracing::info!("metrics served at http://{addr}/metrics");
    if let Err(e) = axum::serve(listener.socket, router)
        .with_graceful_shutdown(stopping)
        .await
    {
        tracing::error!("metrics at {addr}: {e}");
    }
}

async fn scrape(State(node): State<Arc<Node>>) -> Response {
    match node.metrics.scrape(&node).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!("cannot encode the metrics: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
                .into_response()
        }
    }
}

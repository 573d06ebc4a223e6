//! The HTTPS listener of `[web]`: the REST API under `/api/v1/` (`api.rs`, its operations in
//! `ops/`, its OpenAPI document in `openapi.rs`). Every API call becomes the `AdminCall` the
//! QUIC admin API carries and is answered by the same `admin::answer`, with the same role
//! and rights checks. Connections are served on the admin thread, beside the QUIC admin
//! API, so that a busy device fleet does not slow them.

mod api;
mod console;
mod openapi;
mod ops;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::Node;
use crate::config::WebConfig;
use crate::net::pki;

/// A TLS handshake that takes longer than this is dropped: it holds a connection slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

/// The bound socket of `web.listen` and the TLS configuration, made before the server
/// opens its database so that a bad certificate or a taken port stops the start at once.
pub(super) struct Listener {
    socket: tokio::net::TcpListener,
    tls: TlsAcceptor,
    pub(super) addr: SocketAddr,
}

impl Listener {
    /// Binds `web.listen` with `web.cert` and `web.key`; errors name the key at fault.
    pub(super) async fn bind(config: &WebConfig) -> anyhow::Result<Listener> {
        let chain = pki::load_certs(&config.cert).context("config key web.cert")?;
        let key = pki::load_key(&config.key).context("config key web.key")?;
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("config keys web.cert and web.key: the key is not the certificate's")?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let socket = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("web.listen: cannot listen on {} (tcp)", config.listen))?;
        let addr = socket
            .local_addr()
            .with_context(|| format!("web.listen: the address bound for {}", config.listen))?;
        Ok(Listener {
            socket,
            tls: TlsAcceptor::from(Arc::new(tls)),
            addr,
        })
    }
}

/// What every request handler is given.
#[derive(Clone)]
pub(super) struct Web {
    /// The physical server; its virtual servers are found through it.
    pub(super) host: Arc<Node>,
    /// The secrets the console's wizards hold between their steps.
    drafts: Arc<Mutex<console::Drafts>>,
}

fn router(web: Web) -> Router {
    Router::new()
        .nest("/api/v1", api::router())
        .merge(console::router())
        .fallback(api::no_such_operation)
        .with_state(web)
}

/// Serves HTTPS until the server shuts down.
pub(super) async fn serve(host: Arc<Node>, listener: Listener) {
    let mut shutdown = host.shutdown.subscribe();
    let stopped = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopped);
    let addr = listener.addr;
    let app = router(Web {
        host: host.clone(),
        drafts: Arc::default(),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tracing::info!("REST API and console served at https://{addr}/");
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = &mut stopped => return,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!("web.listen {addr}: cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let tls = listener.tls.clone();
        let app = app.clone();
        let mut stopping = host.shutdown.subscribe();
        let stopping = async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        };
        host.admin.spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!("web client {remote}: TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(ConnectInfo(remote));
                app.clone().oneshot(request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("web client {remote}: {e}");
                    }
                }
                _ = stopping => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
            }
        });
    }
}

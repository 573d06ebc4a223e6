//! A webhook receiver on 127.0.0.1 for the notification tests: HTTPS (hyper over
//! tokio-rustls, a certificate of the test deployment's CA) that checks each POST's
//! `X-Canopy-Signature` against the shared secret and records it. It can answer 500 to the
//! next N requests, and be stopped and started again on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One POST as it arrived.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: String,
    /// `X-Canopy-Delivery`.
    pub id: String,
    pub signature_ok: bool,
    pub body: serde_json::Value,
    /// Whether it was answered 2xx.
    pub accepted: bool,
}

#[derive(Default)]
struct State {
    fail_next: u32,
    deliveries: Vec<Delivery>,
}

pub struct HookReceiver {
    pub addr: SocketAddr,
    secret: String,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<Mutex<State>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `sha256=<hex>` of `body` with `secret`, as a receiver computes it.
pub fn expected_signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl HookReceiver {
    /// Listens on 127.0.0.1 with a certificate issued by the CA in `certs` (named `name`,
    /// for 127.0.0.1), checking signatures with `secret`.
    pub async fn start(certs: &Path, name: &str, secret: &str) -> HookReceiver {
        let issued =
            canopy::net::pki::issue_server(certs, name, &["127.0.0.1".into()], 30).unwrap();
        let chain = canopy::net::pki::load_certs(&issued.cert).unwrap();
        let key = canopy::net::pki::load_key(&issued.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut receiver = HookReceiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            secret: secret.to_string(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            state: Arc::default(),
            task: None,
        };
        receiver.up().await;
        receiver
    }

    /// Starts listening (again, on the same port once it has one).
    pub async fn up(&mut self) {
        assert!(self.task.is_none(), "already up");
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let acceptor = self.acceptor.clone();
        let state = self.state.clone();
        let secret = self.secret.clone();
        self.task = Some(tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let state = state.clone();
                let secret = secret.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, state.clone(), secret.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        }));
    }

    /// Stops listening: connections are refused until [`HookReceiver::up`].
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// The next `n` requests are answered 500.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Every POST so far, refused ones included.
    pub fn all(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().deliveries.clone()
    }

    /// The POSTs answered 2xx.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.all().into_iter().filter(|d| d.accepted).collect()
    }

    /// The events of the accepted POSTs, in the order they arrived.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.accepted()
            .iter()
            .flat_map(|d| d.body["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    secret: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = header("x-canopy-delivery");
    let signature = header("x-canopy-signature");
    let bytes = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let signature_ok = signature == expected_signature(&secret, &bytes);
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let mut state = state.lock().unwrap();
    let accepted = state.fail_next == 0 && signature_ok;
    state.fail_next = state.fail_next.saturating_sub(1);
    state.deliveries.push(Delivery {
        path,
        id,
        signature_ok,
        body,
        accepted,
    });
    let status = match (accepted, signature_ok) {
        (true, _) => StatusCode::NO_CONTENT,
        (false, false) => StatusCode::UNAUTHORIZED,
        (false, true) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    Ok(response)
}

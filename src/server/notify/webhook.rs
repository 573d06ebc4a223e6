//! A webhook channel's delivery: one HTTPS POST (HTTP/1.1 over rustls, hyper's client
//! connection, a new connection per delivery) of the JSON document, signed with the shared
//! secret. 2xx is accepted; anything else, or no answer within [`TIMEOUT`], is a failure.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};

use super::format;

/// The longest one delivery may take, connection and answer included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook's URL taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// A DNS name or an IP address (without brackets).
    pub host: String,
    pub port: u16,
    /// `host` or `host:port` as the URL says it, for the `Host` header.
    pub authority: String,
    /// The path and query, at least `/`.
    pub path: String,
}

/// Parses an `https://` URL (checked already by `model::notify::check_webhook_url`).
pub fn parse_url(url: &str) -> Result<Url, String> {
    crate::model::notify::check_webhook_url(url)?;
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = path.split('#').next().unwrap_or_default();
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if authority.contains('@') {
        return Err(format!("{url:?}: put no user or password in the URL"));
    }
    let bad_port = || format!("{url:?}: the port is not a number from 1 to 65535");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: no ']'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port())?,
            None if after.is_empty() => 443,
            None => return Err(bad_port()),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().map_err(|_| bad_port())?),
            None => (authority.to_string(), 443),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(format!("{url:?} has no host or port"));
    }
    Ok(Url {
        host,
        port,
        authority: authority.to_string(),
        path,
    })
}

/// A client TLS config trusting `ca` (the CA of a config file or an administrator), or the
/// system's roots (webpki-roots) without it.
pub fn tls_config(
    ca: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(certs) => {
            for cert in certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| format!("a CA certificate is not usable: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A webhook channel's receiver.
pub struct Webhook {
    pub url: Url,
    secret: String,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub fn new(url: &str, secret: String, tls: Arc<rustls::ClientConfig>) -> Result<Self, String> {
        Ok(Webhook {
            url: parse_url(url)?,
            secret,
            tls,
        })
    }

    /// POSTs `body` with its signature and the delivery id `delivery`.
    pub async fn post(&self, body: Vec<u8>, delivery: &str) -> Result<(), String> {
        match tokio::time::timeout(TIMEOUT, self.exchange(body, delivery)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
        }
    }

    async fn exchange(&self, body: Vec<u8>, delivery: &str) -> Result<(), String> {
        let url = &self.url;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| format!("{}: not a server name: {e}", url.host))?;
        let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", url.authority))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", url.authority))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP with {}: {e}", url.authority))?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::post(url.path.as_str())
            .header(hyper::header::HOST, url.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                format!("canopy/{}", crate::wire::SOFTWARE_VERSION),
            )
            .header("X-Canopy-Signature", format::signature(&self.secret, &body))
            .header("X-Canopy-Delivery", delivery)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot make the request: {e}"))?;
        let result = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                // Read (a little of) the answer so the connection ends cleanly.
                let _ = response.into_body().collect().await;
                match status.is_success() {
                    true => Ok(()),
                    false => Err(format!("the receiver answered HTTP {}", status.as_u16())),
                }
            }
            Err(e) => Err(format!("HTTP with {}: {e}", url.authority)),
        };
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let u = parse_url("https://hooks.example.com/canopy?x=1#frag").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.authority.as_str(),
                u.path.as_str()
            ),
            ("hooks.example.com", 443, "hooks.example.com", "/canopy?x=1")
        );
        let u = parse_url("https://127.0.0.1:8443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8443, "/")
        );
        let u = parse_url("https://[::1]:9000/h").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        assert!(parse_url("https://a:0/").is_err());
        assert!(parse_url("https://a:x/").is_err());
        assert!(parse_url("https://user:pw@a/").is_err());
        assert!(parse_url("http://a/").is_err());
    }
}

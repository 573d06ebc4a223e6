//! A client of the REST API for the tests: HTTP/1.1 over rustls to a server's `[web]`
//! listener on loopback, the server's certificate checked against the deployment's CA and
//! its name. One connection per request (`Connection: close`), so every answer is whole.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer: the status, the headers (names in lower case) and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The stable code of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Clone)]
pub struct Rest {
    pub addr: SocketAddr,
    name: String,
    tls: Arc<rustls::ClientConfig>,
    pub token: Option<String>,
    /// Sent as the `Cookie` header when set (the console's session).
    pub cookie: Option<String>,
}

impl Rest {
    /// A client of the server `name` listening at `addr`, trusting `ca` only.
    pub fn new(addr: SocketAddr, name: &str, ca: &[CertificateDer<'static>]) -> Rest {
        let mut roots = rustls::RootCertStore::empty();
        for cert in ca {
            roots.add(cert.clone()).unwrap();
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Rest {
            addr,
            name: name.to_string(),
            tls: Arc::new(tls),
            token: None,
            cookie: None,
        }
    }

    /// One request as given: `content_type` and `body` as they are, the token if logged in.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let name = ServerName::try_from(self.name.clone()).unwrap();
        let mut stream = connector.connect(name, tcp).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (413) before it has read all of a large body.
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        parse(&answer)
    }

    /// A request with a JSON body (or none).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        match body {
            Some(body) => {
                let bytes = serde_json::to_vec(body).unwrap();
                self.raw(method, path, Some("application/json"), &bytes)
                    .await
            }
            None => self.raw(method, path, None, &[]).await,
        }
    }

    /// `call`, which must answer `status`; its JSON.
    pub async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let answer = self.call(method, path, body).await;
        assert_eq!(
            answer.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }

    /// Logs in (to the virtual server `vserver` if given) and keeps the token.
    pub async fn login(&mut self, user: &str, password: &str, vserver: Option<&str>) -> Value {
        let mut body = serde_json::json!({ "user": user, "password": password });
        if let Some(name) = vserver {
            body["virtual_server"] = name.into();
        }
        let answer = self.expect(200, "POST", "/api/v1/login", Some(&body)).await;
        self.token = Some(answer["token"].as_str().unwrap().to_string());
        answer
    }
}

fn parse(answer: &[u8]) -> Answer {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let mut body = answer[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = unchunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

//! The browser harness of the web console's tests (tests/common/browser.rs), tested on its
//! own against a tiny HTTPS site served here on 127.0.0.1: a form whose input the next page
//! echoes, HTML-escaped, with a `Secure; HttpOnly; SameSite=Strict` cookie. The site's
//! certificate is self-signed, trusted by the browser only through its pinned public key;
//! one with another key must not load.

// The console's own helpers (`log_in`) are not used by the harness's tests.
#[allow(dead_code)]
#[path = "common/browser.rs"]
mod browser;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use browser::{Browser, BrowserOptions, spki_hash_of_cert_pem};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::PublicKeyData;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Each test, browser start included, is over within this.
const LIMIT: Duration = Duration::from_secs(60);
/// How long a page has to show what is awaited.
const WAIT: Duration = Duration::from_secs(10);

const FORM: &str = r#"<!doctype html>
<html><head><title>Form</title></head><body>
<h1 id="title">A form</h1>
<form method="post" action="/echo">
<input id="text" name="text" type="text" value="to be replaced">
<button id="send" type="submit">Send</button>
</form>
</body></html>"#;

/// The cookie that the result page sets.
const COOKIE: &str = "harness=set-by-echo; Path=/; Secure; HttpOnly; SameSite=Strict";

/// A self-signed certificate for 127.0.0.1: its PEM and the TLS acceptor serving with it.
fn certificate() -> (String, tokio_rustls::TlsAcceptor) {
    let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let chain = vec![CertificateDer::from(issued.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (
        issued.cert.pem(),
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    )
}

/// Serves the site over HTTPS on 127.0.0.1 with `acceptor`, until the test ends.
async fn serve(acceptor: tokio_rustls::TlsAcceptor) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A browser that refuses the certificate ends the handshake: nothing to serve.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), hyper::service::service_fn(site))
                    .await;
            });
        }
    });
    addr
}

async fn site(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let html = |status, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    };
    match (request.method().clone(), request.uri().path()) {
        (Method::GET, "/") => Ok(html(StatusCode::OK, FORM.into())),
        (Method::POST, "/echo") => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let text = form_field(&String::from_utf8_lossy(&body), "text").unwrap_or_default();
            let page = format!(
                "<!doctype html><html><head><title>Echo</title></head><body>\
                 <p id=\"echo\">You said: {}</p></body></html>",
                escape(&text)
            );
            let mut response = html(StatusCode::OK, page);
            response.headers_mut().insert(
                "set-cookie",
                hyper::header::HeaderValue::from_static(COOKIE),
            );
            Ok(response)
        }
        _ => Ok(html(StatusCode::NOT_FOUND, "not found".into())),
    }
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

/// Form decoding: `+` is a space, `%XX` a byte.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[test]
fn the_spki_pin_is_the_hash_of_the_certificates_public_key() {
    let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let spki = issued.signing_key.subject_public_key_info();
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let expected = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    assert_eq!(spki_hash_of_cert_pem(&issued.cert.pem()).unwrap(), expected);
    assert_eq!(expected.len(), 44);
    assert!(spki_hash_of_cert_pem("no certificate here").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_is_filled_submitted_and_its_echo_read_over_pinned_https() {
    tokio::time::timeout(LIMIT, async {
        let (pem, acceptor) = certificate();
        let addr = serve(acceptor).await;
        let opts = BrowserOptions {
            trust_spki: vec![spki_hash_of_cert_pem(&pem).unwrap()],
            ..BrowserOptions::default()
        };
        let browser = Browser::start(opts).await.unwrap();
        let processes = browser.processes();
        assert!(processes.len() > 1, "no Chromium below chromedriver");

        let url = format!("https://127.0.0.1:{}/", addr.port());
        browser.goto(&url).await.unwrap();
        assert_eq!(browser.current_url().await.unwrap(), url);
        assert_eq!(browser.text("#title").await.unwrap(), "A form");
        let said = r#"<b>tree & "leaves"</b>"#;
        browser.fill("#text", said).await.unwrap();
        browser.click("#send").await.unwrap();
        let echo = browser
            .wait_for_text("#echo", "You said:", WAIT)
            .await
            .unwrap();
        assert_eq!(echo, format!("You said: {said}"));
        assert_eq!(browser.texts("p").await.unwrap(), vec![echo]);
        assert!(browser.texts("#echo b").await.unwrap().is_empty());
        assert!(
            browser
                .source()
                .await
                .unwrap()
                .contains("&lt;b&gt;tree &amp;")
        );
        assert_eq!(
            browser.current_url().await.unwrap(),
            format!("https://127.0.0.1:{}/echo", addr.port())
        );

        let cookies = browser.cookies().await.unwrap();
        let cookie = cookies
            .iter()
            .find(|c| c.name == "harness")
            .unwrap_or_else(|| panic!("no cookie `harness` in {cookies:?}"));
        assert_eq!(cookie.value, "set-by-echo");
        assert!(cookie.secure && cookie.http_only, "{cookie:?}");
        assert_eq!(cookie.same_site.as_deref(), Some("Strict"));

        let shots = tempfile::tempdir().unwrap();
        let shot = shots.path().join("echo.png");
        browser.screenshot(&shot).await.unwrap();
        let png = std::fs::read(&shot).unwrap();
        assert!(png.len() > 8, "{} bytes", png.len());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        // Errors say where the browser is and what the page holds.
        let error = browser.click("#absent").await.unwrap_err().to_string();
        assert!(error.contains("#absent"), "{error}");
        assert!(error.contains("/echo"), "{error}");
        assert!(error.contains("You said:"), "{error}");
        let error = browser
            .wait_for_text("#echo", "never said", Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("last seen: texts [\"You said:"), "{error}");

        browser.close().await.unwrap();
        let left: Vec<_> = processes
            .into_iter()
            .filter(|&pid| browser::is_running(pid))
            .collect();
        assert!(left.is_empty(), "still running after close: {left:?}");
    })
    .await
    .expect("the test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_whose_key_is_not_pinned_does_not_load() {
    tokio::time::timeout(LIMIT, async {
        let (pinned, acceptor) = certificate();
        let trusted = serve(acceptor).await;
        let (_, acceptor) = certificate();
        let untrusted = serve(acceptor).await;
        let opts = BrowserOptions {
            trust_spki: vec![spki_hash_of_cert_pem(&pinned).unwrap()],
            ..BrowserOptions::default()
        };
        let browser = Browser::start(opts).await.unwrap();

        // Chromium shows its interstitial ("Your connection is not private") instead.
        let url = format!("https://127.0.0.1:{}/", untrusted.port());
        let error = format!("{:#}", browser.goto(&url).await.unwrap_err());
        assert!(error.contains("ERR_CERT_AUTHORITY_INVALID"), "{error}");
        assert!(error.contains(&url), "{error}");
        assert_eq!(
            browser.error_page().await.unwrap().as_deref(),
            Some("net::ERR_CERT_AUTHORITY_INVALID")
        );
        assert_eq!(browser.current_url().await.unwrap(), url);
        let source = browser.source().await.unwrap();
        assert!(!source.contains("A form"), "the page loaded: {source}");
        assert!(browser.texts("#title").await.unwrap().is_empty());

        // Nor does a site that is not there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("https://127.0.0.1:{}/", closed.local_addr().unwrap().port());
        drop(closed);
        let error = format!("{:#}", browser.goto(&gone).await.unwrap_err());
        assert!(error.contains("ERR_CONNECTION_REFUSED"), "{error}");

        // The same browser loads the same site under the pinned key.
        browser
            .goto(&format!("https://127.0.0.1:{}/", trusted.port()))
            .await
            .unwrap();
        assert_eq!(browser.text("#title").await.unwrap(), "A form");
        assert_eq!(browser.error_page().await.unwrap(), None);
        // The pin covers the key whatever the name: localhost, not in the certificate.
        browser
            .goto(&format!("https://localhost:{}/", trusted.port()))
            .await
            .unwrap();
        assert_eq!(browser.text("#title").await.unwrap(), "A form");

        // No name off loopback resolves.
        let error = format!(
            "{:#}",
            browser.goto("https://example.com/").await.unwrap_err()
        );
        assert!(error.contains("ERR_NAME_NOT_RESOLVED"), "{error}");
        browser.close().await.unwrap();
    })
    .await
    .expect("the test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_browser_leaves_no_process() {
    tokio::time::timeout(LIMIT, async {
        let browser = Browser::start(BrowserOptions::default()).await.unwrap();
        let dir = browser.dir();
        let processes = browser.processes();
        assert!(processes.len() > 1, "no Chromium below chromedriver");
        drop(browser);
        let left: Vec<_> = processes
            .into_iter()
            .filter(|&pid| browser::is_running(pid))
            .collect();
        assert!(left.is_empty(), "still running after drop: {left:?}");
        assert!(!dir.exists(), "{} is left", dir.display());
    })
    .await
    .expect("the test took too long");
}

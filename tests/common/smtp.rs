//! A small SMTP receiver on 127.0.0.1 for the notification tests: EHLO, STARTTLS (with a
//! certificate of the test deployment's CA), MAIL, RCPT, DATA, RSET, NOOP, QUIT. It refuses
//! MAIL before STARTTLS, so a message it records came over TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as it arrived.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent (dot-stuffing undone), CRLF line ends.
    pub data: String,
}

impl Mail {
    /// The value of header `name` (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    /// The body, quoted-printable decoded if it is so encoded.
    pub fn body(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("quoted-printable"));
        if !qp {
            return body.replace("\r\n", "\n");
        }
        let joined = body.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).replace("\r\n", "\n")
    }
}

pub struct SmtpReceiver {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpReceiver {
    /// Listens on 127.0.0.1 with a certificate issued by the CA in `certs` (named `name`,
    /// for 127.0.0.1).
    pub async fn start(certs: &Path, name: &str) -> SmtpReceiver {
        let issued =
            canopy::net::pki::issue_server(certs, name, &["127.0.0.1".into()], 30).unwrap();
        let chain = canopy::net::pki::load_certs(&issued.cert).unwrap();
        let key = canopy::net::pki::load_key(&issued.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let mails = kept.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = session(tcp, acceptor, mails).await;
                });
            }
        });
        SmtpReceiver { addr, mails, task }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

enum Next {
    Quit,
    StartTls,
}

async fn session(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let mut plain = BufReader::new(tcp);
    plain
        .get_mut()
        .write_all(b"220 receiver.test ESMTP canopy-test\r\n")
        .await?;
    match commands(&mut plain, false, &mails).await? {
        Next::Quit => return Ok(()),
        Next::StartTls => {}
    }
    let tls = acceptor.accept(plain.into_inner()).await?;
    let mut secure = BufReader::new(tls);
    commands(&mut secure, true, &mails).await?;
    Ok(())
}

async fn commands<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    tls: bool,
    mails: &Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<Next> {
    let mut from = String::new();
    let mut to = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(Next::Quit);
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if tls => b"250-receiver.test\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n",
            "EHLO" => b"250-receiver.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
            "HELO" | "NOOP" => b"250 ok\r\n",
            "STARTTLS" if !tls => {
                stream.get_mut().write_all(b"220 go ahead\r\n").await?;
                stream.get_mut().flush().await?;
                return Ok(Next::StartTls);
            }
            "MAIL" if !tls => b"530 5.7.0 Must issue a STARTTLS command first\r\n",
            "MAIL" => {
                from = address(&command);
                to.clear();
                b"250 ok\r\n"
            }
            "RCPT" => {
                to.push(address(&command));
                b"250 ok\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 ok\r\n"
            }
            "DATA" => {
                stream.get_mut().write_all(b"354 end with .\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    if stream.read_line(&mut line).await? == 0 {
                        return Ok(Next::Quit);
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                mails.lock().unwrap().push(Mail {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 queued\r\n"
            }
            "QUIT" => {
                stream.get_mut().write_all(b"221 bye\r\n").await?;
                return Ok(Next::Quit);
            }
            _ => b"502 not implemented\r\n",
        };
        stream.get_mut().write_all(reply).await?;
        stream.get_mut().flush().await?;
    }
}

/// The address of `MAIL FROM:<a@b>` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command.find('>').unwrap_or(command.len());
    command.get(start..end).unwrap_or_default().to_string()
}

//! An email channel's delivery: one plain-text message per batch through the server's SMTP
//! relay (`[notify.smtp]`), with lettre over rustls: STARTTLS required unless the config
//! says `starttls = "off"`, the relay's certificate checked against the configured CA or
//! the system's roots (webpki-roots), AUTH when a username is configured.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{NotifyFiles, SmtpConfig};

/// The longest one SMTP command may wait for the relay.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The relay every email channel of a server sends through.
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    describe: String,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl Relay {
    /// The relay of `config`, with the password and CA read from `files`; `hello` is the
    /// name the server gives in EHLO.
    pub fn new(config: &SmtpConfig, files: &NotifyFiles, hello: &str) -> Result<Relay, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("notify.smtp.from: {e}"))?;
        let tls = if config.starttls {
            let mut params = TlsParameters::builder(config.host.clone());
            if let Some(ca) = &files.smtp_ca {
                params = params.certificate_store(CertificateStore::None);
                for cert in ca {
                    let cert = Certificate::from_der(cert.to_vec())
                        .map_err(|e| format!("notify.smtp.ca_file: {e}"))?;
                    params = params.add_root_certificate(cert);
                }
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("notify.smtp: {e}"))?;
            Tls::Required(params)
        } else {
            Tls::None
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(TIMEOUT))
            .hello_name(ClientId::Domain(hello.to_string()));
        if let (Some(user), Some(password)) = (&config.username, &files.smtp_password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.0.clone()));
        }
        Ok(Relay {
            transport: builder.build(),
            from,
            describe: format!(
                "SMTP relay {}:{} (STARTTLS {})",
                config.host,
                config.port,
                if config.starttls { "required" } else { "off" }
            ),
        })
    }

    /// Sends one plain-text message to `to`.
    pub async fn send(&self, to: &[String], subject: &str, body: String) -> Result<(), String> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| format!("recipient {address:?}: {e}"))?;
            message = message.to(mailbox);
        }
        let message = message
            .body(body)
            .map_err(|e| format!("cannot make the message: {e}"))?;
        // Each command has its timeout; the whole exchange gets a bound too.
        let sending = self.transport.send(message);
        match tokio::time::timeout(TIMEOUT * 3, sending).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("{}: {e}", self.describe)),
            Err(_) => Err(format!("{}: no answer in time", self.describe)),
        }
    }
}

//! `[notify]` of a server's config: the SMTP relay and the notification channels the
//! config defines (administrators add more with `canopy notify`). Secrets are read from
//! files, never written in the config, and only when the server starts
//! ([`NotifyConfig::load_files`]), so parsing a config reads no other file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use super::ConfigError;
use crate::model::notify::{
    ChannelFilter, ChannelTarget, MAX_CHANNELS, MAX_RECIPIENTS, check_channel_name,
    check_email_address, check_webhook_url,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    smtp: Option<RawSmtp>,
    #[serde(default)]
    email: Vec<RawEmail>,
    #[serde(default)]
    webhook: Vec<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    server: String,
    #[serde(default = "required")]
    starttls: String,
    from: String,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

fn required() -> String {
    "required".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    name: String,
    to: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    min_severity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: String,
    url: String,
    secret_file: PathBuf,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    kinds: Vec<String>,
    min_severity: Option<String>,
}

/// `[notify]`, checked.
#[derive(Clone, Debug, Default)]
pub struct NotifyConfig {
    pub smtp: Option<SmtpConfig>,
    /// The config's channels, email first, each in the order written.
    pub channels: Vec<ConfigChannel>,
}

/// The SMTP relay every email channel sends through (`[notify.smtp]`).
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// STARTTLS required (the default); `false` only with `starttls = "off"`, for a relay
    /// on the same machine or a test: the mail then crosses the network in clear.
    pub starttls: bool,
    pub from: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The CA the relay's certificate must chain to; `None`: the system's roots
    /// (webpki-roots).
    pub ca_file: Option<PathBuf>,
}

/// A channel the config defines.
#[derive(Clone, Debug)]
pub struct ConfigChannel {
    pub name: String,
    pub target: ChannelTarget,
    pub filter: ChannelFilter,
    /// A webhook's shared secret.
    pub secret_file: Option<PathBuf>,
    /// The CA a webhook's server certificate must chain to; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// A secret read from a file: its `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct FileSecret(pub String);

impl std::fmt::Debug for FileSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileSecret(***)")
    }
}

/// What `[notify]` names in other files, read when the server starts.
#[derive(Debug, Default)]
pub struct NotifyFiles {
    pub smtp_password: Option<FileSecret>,
    pub smtp_ca: Option<Vec<CertificateDer<'static>>>,
    /// By channel name: a webhook's secret.
    pub secrets: HashMap<String, FileSecret>,
    /// By channel name: the CA of a webhook that names one.
    pub cas: HashMap<String, Vec<CertificateDer<'static>>>,
}

/// Parses `[notify]`; `invalid` makes an error naming a key, `anchored` resolves a path
/// from the config's directory.
pub(super) fn parse(
    raw: RawNotify,
    invalid: &dyn Fn(&'static str, String) -> ConfigError,
    anchored: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<NotifyConfig, ConfigError> {
    let smtp = match raw.smtp {
        None => None,
        Some(s) => {
            let (host, port) =
                host_port(&s.server).map_err(|e| invalid("notify.smtp.server", e))?;
            let starttls = match s.starttls.as_str() {
                "required" => true,
                "off" => false,
                other => {
                    return Err(invalid(
                        "notify.smtp.starttls",
                        format!("{other:?} is not \"required\" or \"off\""),
                    ));
                }
            };
            check_email_address(&s.from).map_err(|e| invalid("notify.smtp.from", e))?;
            if s.username.is_some() != s.password_file.is_some() {
                return Err(invalid(
                    "notify.smtp.password_file",
                    "give both username and password_file, or neither".into(),
                ));
            }
            if s.username.is_some() && !starttls {
                return Err(invalid(
                    "notify.smtp.starttls",
                    "\"off\" with a username would send the password in clear".into(),
                ));
            }
            Some(SmtpConfig {
                host,
                port,
                starttls,
                from: s.from,
                username: s.username,
                password_file: s.password_file.map(anchored),
                ca_file: s.ca_file.map(anchored),
            })
        }
    };
    let mut channels: Vec<ConfigChannel> = Vec::new();
    let named = |channels: &[ConfigChannel], name: &str, key: &'static str| {
        check_channel_name(name).map_err(|e| invalid(key, e))?;
        if channels.iter().any(|c| c.name == name) {
            return Err(invalid(key, format!("two channels are named {name:?}")));
        }
        Ok(())
    };
    for e in raw.email {
        named(&channels, &e.name, "notify.email.name")?;
        if smtp.is_none() {
            return Err(invalid(
                "notify.email",
                "email channels need [notify.smtp], the relay they send through".into(),
            ));
        }
        if e.to.is_empty() || e.to.len() > MAX_RECIPIENTS {
            return Err(invalid(
                "notify.email.to",
                format!("give 1 to {MAX_RECIPIENTS} addresses"),
            ));
        }
        for address in &e.to {
            check_email_address(address).map_err(|p| invalid("notify.email.to", p))?;
        }
        let filter = ChannelFilter::parse(&e.kinds, e.min_severity.as_deref())
            .map_err(|p| invalid("notify.email.kinds", p))?;
        channels.push(ConfigChannel {
            name: e.name,
            target: ChannelTarget::Email { to: e.to },
            filter,
            secret_file: None,
            ca_file: None,
        });
    }
    for w in raw.webhook {
        named(&channels, &w.name, "notify.webhook.name")?;
        check_webhook_url(&w.url).map_err(|e| invalid("notify.webhook.url", e))?;
        let filter = ChannelFilter::parse(&w.kinds, w.min_severity.as_deref())
            .map_err(|p| invalid("notify.webhook.kinds", p))?;
        channels.push(ConfigChannel {
            name: w.name,
            target: ChannelTarget::Webhook { url: w.url },
            filter,
            secret_file: Some(anchored(w.secret_file)),
            ca_file: w.ca_file.map(anchored),
        });
    }
    if channels.len() > MAX_CHANNELS {
        return Err(invalid(
            "notify",
            format!("at most {MAX_CHANNELS} channels"),
        ));
    }
    Ok(NotifyConfig { smtp, channels })
}

/// `host:port`, or `[v6]:port`.
fn host_port(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("{text:?} is not host:port (such as smtp.example.com:587)");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Reads a secret file: its text without the line end; refused empty.
fn read_secret(path: &Path, key: &'static str) -> Result<FileSecret, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read: {e}")))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    Ok(FileSecret(secret.to_string()))
}

fn read_ca(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    crate::net::pki::load_certs(path).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        problem: e.to_string(),
    })
}

impl NotifyConfig {
    /// Reads the password, secret and CA files `[notify]` names; an error names the file
    /// and the key.
    pub fn load_files(&self) -> Result<NotifyFiles, ConfigError> {
        let mut files = NotifyFiles::default();
        if let Some(smtp) = &self.smtp {
            if let Some(path) = &smtp.password_file {
                files.smtp_password = Some(read_secret(path, "notify.smtp.password_file")?);
            }
            if let Some(path) = &smtp.ca_file {
                files.smtp_ca = Some(read_ca(path, "notify.smtp.ca_file")?);
            }
        }
        for channel in &self.channels {
            if let Some(path) = &channel.secret_file {
                let secret = read_secret(path, "notify.webhook.secret_file")?;
                files.secrets.insert(channel.name.clone(), secret);
            }
            if let Some(path) = &channel.ca_file {
                let ca = read_ca(path, "notify.webhook.ca_file")?;
                files.cas.insert(channel.name.clone(), ca);
            }
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{GOOD, error_of, parse};

    const SMTP: &str =
        "\n[notify.smtp]\nserver = \"127.0.0.1:2525\"\nfrom = \"canopy@example.com\"\n";

    #[test]
    fn channels_are_read_with_their_defaults() {
        let text = format!(
            "{GOOD}{SMTP}\n[[notify.email]]\nname = \"ops\"\nto = [\"ops@example.com\"]\n\
             \n[[notify.webhook]]\nname = \"hook\"\nurl = \"https://127.0.0.1:8443/x\"\n\
             secret_file = \"hook.secret\"\nkinds = [\"login-failed\"]\nmin_severity = \"warning\"\n"
        );
        let c = parse(&text).unwrap();
        let smtp = c.notify.smtp.unwrap();
        assert!(smtp.starttls);
        assert_eq!((smtp.host.as_str(), smtp.port), ("127.0.0.1", 2525));
        assert_eq!(c.notify.channels.len(), 2);
        assert_eq!(
            c.notify.channels[1].secret_file.as_deref(),
            Some(std::path::Path::new("/etc/canopy/hook.secret"))
        );
        assert_eq!(
            c.notify.channels[1].filter.describe(),
            "login-failed >= warning"
        );
    }

    #[test]
    fn bad_notify_keys_are_named() {
        let hook = |url: &str| {
            format!(
                "{GOOD}\n[[notify.webhook]]\nname = \"h\"\nurl = \"{url}\"\nsecret_file = \"s\"\n"
            )
        };
        let e = error_of(&hook("http://example.com/"));
        assert!(
            e.contains("`notify.webhook.url`") && e.contains("https://"),
            "{e}"
        );
        let e = error_of(&format!(
            "{GOOD}\n[[notify.email]]\nname = \"m\"\nto = [\"a@b\"]\n"
        ));
        assert!(
            e.contains("`notify.email`") && e.contains("[notify.smtp]"),
            "{e}"
        );
        let e = error_of(&format!(
            "{GOOD}{SMTP}\n[[notify.email]]\nname = \"m\"\nto = [\"ab\"]\n"
        ));
        assert!(e.contains("`notify.email.to`"), "{e}");
        let e = error_of(&format!("{GOOD}{SMTP}starttls = \"maybe\"\n"));
        assert!(e.contains("`notify.smtp.starttls`"), "{e}");
        let e = error_of(&format!("{GOOD}{SMTP}username = \"u\"\n"));
        assert!(e.contains("`notify.smtp.password_file`"), "{e}");
        let e = error_of(&format!("{GOOD}{SMTP}colour = \"blue\"\n"));
        assert!(e.contains("colour"), "{e}");
        let e = error_of(&format!(
            "{GOOD}\n[notify.smtp]\nserver = \"nohost\"\nfrom = \"a@b\"\n"
        ));
        assert!(e.contains("`notify.smtp.server`"), "{e}");
        let twice = format!(
            "{}{}",
            hook("https://a/"),
            "\n[[notify.webhook]]\nname = \"h\"\nurl = \"https://b/\"\nsecret_file = \"s\"\n"
        );
        assert!(error_of(&twice).contains("`notify.webhook.name`"));
        let e = error_of(&format!("{}min_severity = \"loud\"\n", hook("https://a/")));
        assert!(e.contains("`notify.webhook.kinds`"), "{e}");
    }

    #[test]
    fn missing_secret_files_are_named_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{GOOD}\n[[notify.webhook]]\nname = \"h\"\nurl = \"https://a/\"\nsecret_file = \"s\"\n"
        );
        let c = super::super::ServerConfig::parse(&text, std::path::Path::new("c"), dir.path())
            .unwrap();
        let e = c.notify.load_files().unwrap_err().to_string();
        assert!(e.contains("`notify.webhook.secret_file`"), "{e}");
        std::fs::write(dir.path().join("s"), "").unwrap();
        let e = c.notify.load_files().unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        std::fs::write(dir.path().join("s"), "k3y\n").unwrap();
        let files = c.notify.load_files().unwrap();
        assert_eq!(files.secrets["h"].0, "k3y");
        assert_eq!(format!("{:?}", files.secrets["h"]), "FileSecret(***)");
    }
}

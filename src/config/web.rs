//! `[web]` of a server's config: the HTTPS listener of the REST API and the web console.
//! Without the section nothing is served over HTTPS.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// The port of `[web]` when `listen` names none: the QUIC listener's address, this port.
pub const WEB_PORT: u16 = 13299;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    listen: Option<String>,
    /// A certificate for browsers (a public CA's, say); by default the server's own.
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// Where and with which certificate the API and the console are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    /// Port 0 takes any free port.
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Checks `[web]`: `server_listen` is the QUIC listener, `tls` the server's own certificate
/// and key, used when the section names none.
pub(super) fn parse(
    raw: RawWeb,
    server_listen: SocketAddr,
    tls: (&PathBuf, &PathBuf),
    invalid: &dyn Fn(&'static str, String) -> ConfigError,
    anchored: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<WebConfig, ConfigError> {
    let listen = match raw.listen {
        None => SocketAddr::new(server_listen.ip(), WEB_PORT),
        Some(text) => text.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "web.listen",
                format!("{text:?} is not an address:port such as 0.0.0.0:{WEB_PORT}"),
            )
        })?,
    };
    if listen.port() != 0
        && listen.port() == server_listen.port()
        && listen.ip() == server_listen.ip()
    {
        // QUIC is UDP and this is TCP, so both could bind; one port for two things confuses
        // firewalls and people.
        return Err(invalid(
            "web.listen",
            format!("{listen} is the server's own `listen`: give the console a port of its own"),
        ));
    }
    let (cert, key) = match (raw.cert, raw.key) {
        (None, None) => (tls.0.clone(), tls.1.clone()),
        (Some(cert), Some(key)) => (anchored(cert), anchored(key)),
        (Some(_), None) => {
            return Err(invalid(
                "web.key",
                "web.cert is set: set web.key with it".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "web.cert",
                "web.key is set: set web.cert with it".into(),
            ));
        }
    };
    Ok(WebConfig { listen, cert, key })
}

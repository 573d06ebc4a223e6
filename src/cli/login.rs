//! `canopy login`: the session, and who the server is. Without `--server-name` or
//! `--fingerprint`, the first login to an address trusts the server's certificate (chained to
//! the CA) and remembers its fingerprint in `known_servers.toml` beside the session file;
//! later logins refuse another certificate, like ssh's known_hosts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::client::{self, AdminClient};
use super::session::{self, SessionFile};
use super::{LoginAddress, login_vserver, read_password};
use crate::model::{self, Fingerprint};
use crate::net::pki;

/// The flags of `canopy login`.
pub(super) struct LoginArgs {
    pub server: LoginAddress,
    pub vserver: Option<String>,
    pub ca: PathBuf,
    pub server_name: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    pub user: String,
    pub password_stdin: bool,
}

pub(super) async fn run(session_path: &Path, args: LoginArgs) -> anyhow::Result<()> {
    let LoginArgs {
        server,
        vserver,
        ca,
        server_name,
        fingerprint,
        user,
        password_stdin,
    } = args;
    // Checked before the password is asked for.
    let virtual_server = login_vserver(&server, vserver)?;
    if let Some(name) = &server_name {
        model::check_node_name(name).map_err(|e| anyhow::anyhow!("--server-name: {e}"))?;
    }
    let addr = resolve(&server.host, server.port).await?;
    let known_path = session::KnownServers::path_for(session_path);
    let mut known = session::KnownServers::load(&known_path)?;
    let pinned = known.get(addr)?;
    let password = read_password("Password: ", password_stdin, false)?;
    let ca = std::path::absolute(&ca).with_context(|| format!("{}", ca.display()))?;
    let mut client = login_connect(
        addr,
        pki::load_certs(&ca)?,
        virtual_server.clone(),
        server_name.clone(),
        fingerprint.or(pinned.filter(|_| server_name.is_none())),
        pinned.is_some() && fingerprint.is_none() && server_name.is_none(),
    )
    .await?;
    let seen = client.server_fingerprint;
    let (token, role, expires) = client.login(&user, &password).await?;
    let name = match &virtual_server {
        // The welcome names the virtual server itself, not its host.
        Some(v) => format!("virtual server {v} at {}", addr),
        None => client.server_name.clone(),
    };
    client.close().await;
    SessionFile {
        server: addr,
        virtual_server,
        ca,
        server_name,
        fingerprint: Some(seen.to_string()),
        user: user.clone(),
        token: token.0,
        expires,
    }
    .save(session_path)?;
    known.set(addr, seen);
    known.save(&known_path)?;
    println!(
        "logged in to {name} as {user} ({}) until {}",
        role.as_str(),
        model::format_time(expires)
    );
    match pinned {
        None => println!(
            "the server's certificate fingerprint {seen} is pinned: later logins to {} \
             refuse another (kept in {})",
            addr,
            known_path.display()
        ),
        Some(old) if old != seen => {
            println!("the server's certificate fingerprint is now {seen} (was {old})")
        }
        Some(_) => {}
    }
    Ok(())
}

/// The address to log in to: an IP address as it is, a DNS name by the system's resolver
/// configuration (the hosts file, then DNS), an IPv4 address first.
async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut ips = crate::net::resolve::AddressResolver::system()
        .lookup_all(host)
        .await?;
    ips.sort_by_key(|ip| !ip.is_ipv4());
    match ips.first() {
        Some(ip) => Ok(SocketAddr::new(*ip, port)),
        None => bail!("cannot resolve {host}: no address found"),
    }
}

/// `canopy login`'s connection. `known`: the fingerprint checked is the one remembered from
/// an earlier login, so a refusal says that the server changed.
async fn login_connect(
    addr: SocketAddr,
    ca: Vec<rustls_pki_types::CertificateDer<'static>>,
    virtual_server: Option<String>,
    name: Option<String>,
    fingerprint: Option<Fingerprint>,
    known: bool,
) -> anyhow::Result<AdminClient> {
    let identity = client::ServerIdentity { name, fingerprint };
    match AdminClient::connect_checked(addr, ca, virtual_server, &identity).await {
        Ok(client) => Ok(client),
        Err(client::ClientError::Connect { message, .. }) if known => bail!(
            "the server at {addr} changed since the last login to it: {message}. Refused. If \
             its certificate was renewed, check the new one (`canopy pki fingerprint` on it) and \
             log in with --fingerprint NEW-FINGERPRINT or --server-name NAME"
        ),
        Err(e) => Err(e.into()),
    }
}

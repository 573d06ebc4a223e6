//! A whole deployment on loopback in one directory: a CA, server certificates, configs, data
//! files and an administrator. `canopy demo` uses it, and so do the integration tests, so
//! both run exactly what an administrator would set up by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::client::AdminClient;
use crate::clock::now_ms;
use crate::config::ServerConfig;
use crate::model::{Account, Fingerprint, Role, ServerRow, ServerStatus};
use crate::net::pki;
use crate::server::{RunningServer, auth};
use crate::store::Store;
use crate::sync::link::LinkPolicy;
use crate::wire::msg::{AdminRequest, AdminResponse};

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "canopy-demo-password";

pub struct Deployment {
    pub dir: PathBuf,
    pub certs: PathBuf,
}

impl Deployment {
    /// Creates the deployment CA in `dir/certs`.
    pub fn create(dir: &Path) -> anyhow::Result<Deployment> {
        let certs = dir.join("certs");
        pki::init_ca(&certs, "Canopy deployment CA", 3650)?;
        Ok(Deployment {
            dir: dir.to_path_buf(),
            certs,
        })
    }

    /// Issues `name`'s certificate and writes its config (without starting it). The server
    /// listens on 127.0.0.1 at `port` (0: any free port) and, with `parent`, links to it.
    pub async fn add_server(
        &self,
        name: &str,
        port: u16,
        parent: Option<(SocketAddr, Fingerprint)>,
    ) -> anyhow::Result<ServerConfig> {
        if !self.certs.join(format!("{name}.pem")).exists() {
            pki::issue_server(&self.certs, name, &["127.0.0.1".to_string()], 825)?;
        }
        self.write_config(name, &config_text(name, port, parent))
            .await
    }

    /// Writes `name.toml` with `text` and bootstraps the administrator in its database.
    pub async fn write_config(&self, name: &str, text: &str) -> anyhow::Result<ServerConfig> {
        let path = self.dir.join(format!("{name}.toml"));
        // Owner only: it holds enrollment tokens.
        crate::store::private::write(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        let config = ServerConfig::load(&path)?;
        let data = config.data.clone();
        tokio::task::spawn_blocking(move || bootstrap_admin(&data)).await??;
        Ok(config)
    }

    pub fn fingerprint(&self, name: &str) -> anyhow::Result<Fingerprint> {
        let certs = pki::load_certs(&self.certs.join(format!("{name}.pem")))?;
        Ok(Fingerprint::of(&certs[0]))
    }

    pub fn ca(&self) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
        Ok(pki::load_certs(&self.certs.join(pki::CA_CERT_FILE))?)
    }

    /// An administrator's client of `server`, logged in.
    pub async fn admin(&self, server: SocketAddr) -> anyhow::Result<AdminClient> {
        let mut client = AdminClient::connect(server, self.ca()?).await?;
        client.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        Ok(client)
    }

    /// Registers `child` as a secondary of the server at `parent`, as
    /// `canopy server add-secondary` does.
    pub async fn register(
        &self,
        parent: SocketAddr,
        child: &str,
        group: &str,
    ) -> anyhow::Result<()> {
        self.register_as(parent, child, group, None).await
    }

    /// [`Deployment::register`], as a passive secondary the parent connects to at `passive`
    /// (`host:port`) if given.
    pub async fn register_as(
        &self,
        parent: SocketAddr,
        child: &str,
        group: &str,
        passive: Option<String>,
    ) -> anyhow::Result<()> {
        let path = self.certs.join(format!("{child}.pem"));
        let cert_pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let client = self.admin(parent).await?;
        let request = AdminRequest::AddSecondary {
            name: child.into(),
            group: group.into(),
            cert_pem,
            passive,
        };
        let result = client.call(request).await;
        client.close().await;
        result?;
        Ok(())
    }
}

impl Deployment {
    /// Writes an agent config `name.agent.toml` for the server at `server`, with short link
    /// timers for loopback, and loads it.
    pub fn agent_config(
        &self,
        name: &str,
        server: SocketAddr,
        token: Option<&str>,
    ) -> anyhow::Result<crate::agent::config::AgentConfig> {
        self.agent_config_at(name, &server.to_string(), token)
    }

    /// [`Deployment::agent_config`] for a server address as an agent config gives it, such
    /// as `127.0.0.1:13000/tenant-a` for a virtual server.
    pub fn agent_config_at(
        &self,
        name: &str,
        server: &str,
        token: Option<&str>,
    ) -> anyhow::Result<crate::agent::config::AgentConfig> {
        let mut text = format!(
            "server = \"{server}\"\nca = \"certs/ca.pem\"\ndata = \"data/{name}.agent.redb\"\nname = \"{name}\"\n\
             time_zone = \"Europe/Berlin\"\n"
        );
        if let Some(token) = token {
            text.push_str(&format!("token = \"{token}\"\n"));
        }
        text.push_str(
            "[[application]]\nname = \"Endpoint Security\"\n\n[link]\nkeep_alive_ms = 1000\n\
             idle_timeout_ms = 5000\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\nrejected_retry_s = 600\n",
        );
        let path = self.dir.join(format!("{name}.agent.toml"));
        crate::store::private::write(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(crate::agent::config::AgentConfig::load(&path)?)
    }
}

/// A config file as an administrator would write it, with short link timers for loopback.
pub fn config_text(name: &str, port: u16, parent: Option<(SocketAddr, Fingerprint)>) -> String {
    let mut text = format!(
        "name = \"{name}\"\ndata = \"data/{name}.redb\"\nlisten = \"127.0.0.1:{port}\"\n\n\
         [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{name}.pem\"\nkey = \"certs/{name}.key\"\n\n\
         [link]\nkeep_alive_ms = 1000\nidle_timeout_ms = 5000\nbackoff_initial_ms = 100\n\
         backoff_max_ms = 1000\ndegraded_after = {}\nfailed_after = {}\n",
        LinkPolicy::default().degraded_after,
        LinkPolicy::default().failed_after,
    );
    if let Some((addr, fingerprint)) = parent {
        text.push_str(&format!(
            "\n[parent]\naddress = \"{}\"\nport = {}\nfingerprint = \"{fingerprint}\"\n",
            addr.ip(),
            addr.port()
        ));
    }
    text
}

/// Creates the demo administrator in a server's database if it has no account yet.
fn bootstrap_admin(data: &Path) -> anyhow::Result<()> {
    crate::store::private::create_parent(data)?;
    let store = Store::open_server(data)?;
    let hash = auth::hash_password(ADMIN_PASSWORD).map_err(anyhow::Error::msg)?;
    let account = Account {
        name: ADMIN_USER.into(),
        role: Role::Administrator,
        password_hash: hash,
        created: now_ms(),
    };
    let result = store.bootstrap_account(account);
    store.close()?;
    match result {
        Ok(()) | Err(crate::store::StoreError::Rejected(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The tree as `server` sees it.
pub async fn tree(client: &AdminClient) -> anyhow::Result<Vec<ServerRow>> {
    Ok(client.servers().await?)
}

/// Waits until `check` holds for the tree seen from `server`, or fails after `limit`.
pub async fn wait_for_tree(
    client: &AdminClient,
    limit: Duration,
    what: &str,
    check: impl Fn(&[ServerRow]) -> bool,
) -> anyhow::Result<Vec<ServerRow>> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let rows = tree(client).await?;
        if check(&rows) {
            return Ok(rows);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}; the tree is {rows:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a server from its config.
pub async fn start(config: &ServerConfig) -> anyhow::Result<RunningServer> {
    RunningServer::start(config.clone()).await
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("dir", &self.dir)
            .finish()
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago, for a server that must come back on
/// the same port after a restart.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The parent half of a child's config: where the parent listens and who it is.
pub fn parent_of(server: &RunningServer) -> (SocketAddr, Fingerprint) {
    (server.local_addr(), server.node.fingerprint)
}

/// The enrollment token of every physical server of [`DemoTree`].
pub const DEMO_TOKEN: &str = "canopy-demo-enrollment-token";
/// The virtual server of [`DemoTree`].
pub const DEMO_TENANT: &str = "tenant-a";

/// The demo's tree, running in this process: a primary with two secondaries, one of which
/// has its own secondary, and a virtual server on the primary, each with a simulated fleet.
pub struct DemoTree {
    /// Primary first, then branch-1, branch-2, branch-1a.
    pub servers: Vec<RunningServer>,
    pub fleets: Vec<crate::agent::Agents>,
    /// (display path at the primary, devices) of every server.
    pub devices: Vec<(String, u32)>,
}

impl DemoTree {
    /// Builds the tree in `d` with `devices` simulated devices on each server (half on the
    /// virtual server), and waits until every link is up and every device connected.
    pub async fn start(d: &Deployment, devices: u32) -> anyhow::Result<DemoTree> {
        DemoTree::start_with(d, devices, "").await
    }

    /// [`DemoTree::start`], with `primary_extra` at the end of the primary's config.
    pub async fn start_with(
        d: &Deployment,
        devices: u32,
        primary_extra: &str,
    ) -> anyhow::Result<DemoTree> {
        let with_token = |name: &str, parent| {
            format!(
                "{}\n[[enrollment]]\ntoken = \"{DEMO_TOKEN}\"\ngroup = \"Managed devices\"\n",
                config_text(name, 0, parent)
            )
        };
        d.add_server("primary", 0, None).await?;
        let primary_config = with_token("primary", None) + primary_extra;
        let primary = start(&d.write_config("primary", &primary_config).await?).await?;
        let mut servers = vec![primary];
        for (name, parent) in [("branch-1", 0), ("branch-2", 0), ("branch-1a", 1)] {
            let parent_addr = servers[parent].local_addr();
            let link = Some(parent_of(&servers[parent]));
            d.add_server(name, 0, link).await?;
            let config = d.write_config(name, &with_token(name, link)).await?;
            d.register(parent_addr, name, "Managed devices").await?;
            servers.push(start(&config).await?);
        }
        let admin = d.admin(servers[0].local_addr()).await?;
        let create = crate::wire::msg::VirtualServerRequest::Create {
            name: DEMO_TENANT.into(),
            group: "Managed devices".into(),
        };
        let tenant_token = match admin.call(AdminRequest::VirtualServer(create)).await? {
            AdminResponse::VirtualServer(view) => view.enrollment_token.0,
            other => bail!("unexpected answer to vserver create: {other:?}"),
        };
        wait_for_tree(&admin, Duration::from_secs(30), "every link up", |rows| {
            rows.len() == 5 && rows.iter().all(|r| r.status == ServerStatus::Active)
        })
        .await?;
        admin.close().await;
        let tenant_devices = (devices / 2).max(1);
        let paths = [
            "primary",
            "primary/branch-1",
            "primary/branch-2",
            "primary/branch-1/branch-1a",
        ];
        let mut plan: Vec<(String, String, String, u32)> = paths
            .iter()
            .zip(&servers)
            .map(|(path, s)| {
                let address = s.local_addr().to_string();
                (path.to_string(), address, DEMO_TOKEN.to_string(), devices)
            })
            .collect();
        plan.push((
            format!("primary/{DEMO_TENANT}"),
            format!("{}/{DEMO_TENANT}", servers[0].local_addr()),
            tenant_token,
            tenant_devices,
        ));
        let mut fleets = Vec::new();
        let mut counts = Vec::new();
        for (i, (path, address, token, n)) in plan.into_iter().enumerate() {
            let name = format!("fleet-{}", path.replace('/', "-"));
            let config = d.agent_config_at(&name, &address, Some(&token))?;
            let simulation = crate::agent::Simulation {
                devices: n,
                seed: i as u64 + 1,
            };
            fleets.push(crate::agent::Agents::start(config, Some(simulation)).await?);
            counts.push((path, n));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let expected: u32 = counts.iter().map(|(_, n)| n).sum();
        loop {
            let connected: usize = fleets.iter().map(|f| f.counts().connected).sum();
            if connected == expected as usize {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("only {connected} of {expected} simulated devices connected within a minute");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(DemoTree {
            servers,
            fleets,
            devices: counts,
        })
    }

    pub fn primary(&self) -> &RunningServer {
        &self.servers[0]
    }

    pub fn total_devices(&self) -> u64 {
        self.devices.iter().map(|(_, n)| u64::from(*n)).sum()
    }

    /// Stops the fleets, then the servers from the leaves up.
    pub async fn stop(self) -> anyhow::Result<()> {
        for fleet in self.fleets {
            fleet.stop().await?;
        }
        for server in self.servers.into_iter().rev() {
            server.shutdown().await?;
        }
        Ok(())
    }
}

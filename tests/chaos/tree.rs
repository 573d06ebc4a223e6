//! The deployment under test: three `canopy serve` processes (primary -> branch-1 ->
//! branch-1a), a virtual server `tenant-a` on branch-1, and one `canopy agent --simulate`
//! fleet per server, every link through a [`Relay`]. Processes are killed with SIGKILL and
//! started again on the same port and files; dropping the tree kills them all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::{ADMIN_PASSWORD, ADMIN_USER, Deployment, config_text};
use canopy::model::Fingerprint;
use canopy::wire::msg::{AdminRequest, AdminResponse, VirtualServerRequest};

use crate::relay::{Counts, Relay};

pub const TOKEN: &str = "chaos-enrollment-token-0123456789";
pub const TENANT: &str = "tenant-a";

/// One server of the tree as the primary's administrator reaches it.
pub struct Node {
    pub name: &'static str,
    /// `--at` from the primary; `None` for the primary.
    pub at: Option<&'static str>,
    /// Index of its parent in [`NODES`].
    pub parent: Option<usize>,
    /// Its database, relative to the deployment's directory.
    pub data: &'static str,
}

/// The primary, branch-1, branch-1a and the virtual server on branch-1, parents first.
pub const NODES: [Node; 4] = [
    Node {
        name: "primary",
        at: None,
        parent: None,
        data: "data/primary.redb",
    },
    Node {
        name: "branch-1",
        at: Some("branch-1"),
        parent: Some(0),
        data: "data/branch-1.redb",
    },
    Node {
        name: "branch-1a",
        at: Some("branch-1/branch-1a"),
        parent: Some(1),
        data: "data/branch-1a.redb",
    },
    Node {
        name: TENANT,
        at: Some("branch-1/tenant-a"),
        parent: Some(1),
        data: "data/branch-1.redb.vservers/tenant-a.redb",
    },
];

/// The node indices of the subtree of `origin` (itself first).
pub fn subtree(origin: usize) -> Vec<usize> {
    let mut out = vec![origin];
    let mut i = 0;
    while i < out.len() {
        let at = out[i];
        out.extend((0..NODES.len()).filter(|&n| NODES[n].parent == Some(at)));
        i += 1;
    }
    out
}

/// A child process that can be killed and started again; killed when dropped.
pub struct Proc {
    pub name: String,
    dir: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    pub kills: u32,
    /// How it ended whenever it ended by itself (it never should).
    pub crashes: Vec<String>,
}

impl Proc {
    fn new(dir: &std::path::Path, name: &str, args: &[&str]) -> Proc {
        Proc {
            name: name.into(),
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            log: dir.join(format!("{name}.log")),
            child: None,
            kills: 0,
            crashes: Vec::new(),
        }
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .current_dir(&self.dir)
            .args(&self.args)
            .env("CANOPY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no close frame, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(Some(status)) = child.try_wait() {
                self.crashes.push(status.to_string());
            }
            let _ = child.kill();
            let _ = child.wait();
            self.kills += 1;
        }
    }

    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// How the process ended if it ended by itself (it never should).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An administrator's connection to one server that logs in again after it broke.
pub struct Admin {
    ca: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub addr: SocketAddr,
    client: Option<AdminClient>,
}

/// How long one admin request may take before it counts as failed.
const CALL_LIMIT: Duration = Duration::from_secs(5);

impl Admin {
    pub fn new(d: &Deployment, addr: SocketAddr) -> anyhow::Result<Admin> {
        Ok(Admin {
            ca: d.ca()?,
            addr,
            client: None,
        })
    }

    /// One request, at the server `at` below (through the tree); a broken connection is
    /// dropped and made again at the next call.
    pub async fn call(
        &mut self,
        at: Option<&str>,
        request: AdminRequest,
    ) -> Result<AdminResponse, String> {
        let outcome = tokio::time::timeout(CALL_LIMIT, async {
            if self.client.is_none() {
                let mut client = AdminClient::connect(self.addr, self.ca.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .login(ADMIN_USER, ADMIN_PASSWORD)
                    .await
                    .map_err(|e| e.to_string())?;
                self.client = Some(client);
            }
            let Some(client) = self.client.as_ref() else {
                return Err("no client".to_string());
            };
            match client.call_at(at, request).await {
                Ok(response) => Ok(response),
                Err(ClientError::Server { message, .. }) => Err(message),
                Err(e) => {
                    self.client = None;
                    Err(e.to_string())
                }
            }
        })
        .await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                self.client = None;
                Err(format!("no answer within {CALL_LIMIT:?}"))
            }
        }
    }

    /// Like [`Admin::call`], retried until it succeeds or `limit` passes.
    pub async fn call_until(
        &mut self,
        at: Option<&str>,
        request: AdminRequest,
        limit: Duration,
    ) -> anyhow::Result<AdminResponse> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.call(at, request.clone()).await {
                Ok(response) => return Ok(response),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    bail!("{request:?} at {at:?} failed for {limit:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The running tree.
pub struct Tree {
    pub d: Deployment,
    /// Primary, branch-1, branch-1a (as in [`NODES`]).
    pub servers: Vec<Proc>,
    /// One per node of [`NODES`], the virtual server's through branch-1.
    pub fleets: Vec<Proc>,
    pub relays: Vec<Relay>,
    /// The servers' own addresses (not the relays').
    pub addrs: Vec<SocketAddr>,
    /// Devices of each node of [`NODES`].
    pub devices: Vec<u32>,
}

/// A port below the kernel's ephemeral range, so that no relay or client socket takes it
/// while its server is down.
fn fixed_port() -> anyhow::Result<u16> {
    use rand::Rng;
    for _ in 0..100 {
        let port = rand::rng().random_range(20_000..32_000);
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port below 32000")
}

/// A server of the tree. Its change log is never trimmed: the post-mortem compares each
/// child's re-logged changes with its parent's whole log (trimming has `tests/trim.rs`).
fn server_text(name: &str, port: u16, parent: Option<(SocketAddr, Fingerprint)>) -> String {
    format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n\
         [change_log]\ntrim_every_s = 86400\n",
        config_text(name, port, parent)
    )
}

impl Tree {
    /// Builds the tree in `dir` with `devices` simulated devices per server (half on the
    /// virtual server), every link through a clean relay; returns once every link is up and
    /// every device enrolled.
    pub async fn build(dir: &std::path::Path, seed: u64, devices: u32) -> anyhow::Result<Tree> {
        let d = Deployment::create(dir)?;
        let mut addrs = Vec::new();
        let mut servers = Vec::new();
        let mut relays: Vec<Relay> = Vec::new();
        for (i, node) in NODES.iter().take(3).enumerate() {
            let port = fixed_port()?;
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
            let parent = match node.parent {
                Some(p) => {
                    let relay = Relay::start(addrs[p], seed * 100 + i as u64).await?;
                    let link = (relay.addr, d.fingerprint(NODES[p].name)?);
                    relays.push(relay);
                    Some(link)
                }
                None => None,
            };
            d.add_server(node.name, port, parent).await?;
            d.write_config(node.name, &server_text(node.name, port, parent))
                .await?;
            if let Some(p) = node.parent {
                d.register(addrs[p], node.name, "Managed devices").await?;
            }
            let config = format!("{}.toml", node.name);
            let mut server = Proc::new(dir, node.name, &["serve", "--config", &config]);
            server.start()?;
            servers.push(server);
            addrs.push(addr);
            let mut admin = Admin::new(&d, addr)?;
            admin
                .call_until(None, AdminRequest::ServerStatus, Duration::from_secs(30))
                .await?;
        }
        let mut admin = Admin::new(&d, addrs[1])?;
        let create = VirtualServerRequest::Create {
            name: TENANT.into(),
            group: "Managed devices".into(),
        };
        let tenant_token = match admin
            .call(None, AdminRequest::VirtualServer(create))
            .await
            .map_err(anyhow::Error::msg)?
        {
            AdminResponse::VirtualServer(view) => view.enrollment_token.0,
            other => bail!("unexpected answer to vserver create: {other:?}"),
        };

        let mut fleets = Vec::new();
        let mut counts = Vec::new();
        for (i, node) in NODES.iter().enumerate() {
            let host = if i == 3 { 1 } else { i };
            let relay = Relay::start(addrs[host], seed * 100 + 10 + i as u64).await?;
            let (server, token, n) = if i == 3 {
                let at = format!("{}/{TENANT}", relay.addr);
                (at, tenant_token.as_str(), (devices / 2).max(1))
            } else {
                (relay.addr.to_string(), TOKEN, devices)
            };
            relays.push(relay);
            let name = format!("fleet-{}", node.name);
            d.agent_config_at(&name, &server, Some(token))?;
            let config = format!("{name}.agent.toml");
            let n_text = n.to_string();
            let seed_text = (seed * 10 + i as u64).to_string();
            let args = [
                "agent",
                "--config",
                &config,
                "--simulate",
                &n_text,
                "--seed",
                &seed_text,
            ];
            let mut fleet = Proc::new(dir, &name, &args);
            fleet.start()?;
            fleets.push(fleet);
            counts.push(n);
        }
        let tree = Tree {
            d,
            servers,
            fleets,
            relays,
            addrs,
            devices: counts,
        };
        tree.wait_enrolled().await?;
        Ok(tree)
    }

    /// Waits until every server lists its fleet, connected, and every link is up.
    async fn wait_enrolled(&self) -> anyhow::Result<()> {
        let mut admin = Admin::new(&self.d, self.addrs[0])?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for (i, node) in NODES.iter().enumerate() {
            loop {
                let status = admin.call(node.at, AdminRequest::ServerStatus).await;
                let n = self.devices[i];
                if matches!(&status, Ok(AdminResponse::Status(s))
                    if s.devices == n && s.devices_connected == n)
                {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    bail!("{}: the fleet did not enroll: {status:?}", node.name);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    pub fn set_faulty(&self, on: bool) {
        for relay in &self.relays {
            relay.set_faulty(on);
        }
    }

    pub fn relay_counts(&self) -> Counts {
        let mut all = Counts::default();
        for relay in &self.relays {
            all.add(relay.counts());
        }
        all
    }

    /// Starts every process that is down.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for p in self.servers.iter_mut().chain(self.fleets.iter_mut()) {
            if !p.is_up() {
                p.start()?;
            }
        }
        Ok(())
    }

    /// Every process that ended by itself, with how (none should).
    pub fn crashes(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.servers.iter_mut().chain(self.fleets.iter_mut()) {
            if let Some(status) = p.exited() {
                p.crashes.push(status.to_string());
                p.child = None;
            }
            for how in &p.crashes {
                out.push(format!(
                    "{} ended by itself ({how}); see {}.log",
                    p.name, p.name
                ));
            }
        }
        out
    }

    /// Kills every process (the databases are then read by the checks).
    pub fn kill_all(&mut self) {
        for p in self.fleets.iter_mut().chain(self.servers.iter_mut()) {
            p.kill();
        }
    }

    pub fn data(&self, node: usize) -> PathBuf {
        self.d.dir.join(NODES[node].data)
    }
}

//! The device agent: its config, what it reports about itself, its link to its server, and
//! the executors of task types. `canopy agent` runs one device; `--simulate N` runs N
//! simulated devices in one process, each with its own identity and QUIC connection.
//! `canopy agent local-task ...` is for the device's user (see [`local`]).

pub mod apps;
pub mod config;
pub mod exec;
pub mod facts;
mod link;
pub mod local;
mod outbox;
mod planner;
pub mod run;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::Context;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;

use crate::model::Fingerprint;
use crate::net::pki;
use crate::net::resolve::AddressResolver;
use crate::net::tls::{self, ClientTrust, Transport};
use crate::store::Store;
use crate::store::agent::Identity;
use crate::store::sealing::{self, SecretKey};
use config::AgentConfig;
use local::Desk;

/// Where one device stands with its server, as the agent sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DeviceLinkState {
    Connecting = 0,
    Pending = 1,
    Connected = 2,
    Rejected = 3,
}

/// How many devices of an agent process are in each state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub connecting: usize,
    pub pending: usize,
    pub connected: usize,
    pub rejected: usize,
    /// Why the last attempt of a device of the process to connect failed, while any device
    /// is still connecting.
    pub last_failure: Option<String>,
}

/// What every device task of one agent process shares.
struct Shared {
    config: AgentConfig,
    store: Store,
    trust: ClientTrust,
    transport: Transport,
    shutdown: watch::Receiver<bool>,
    states: Vec<AtomicU8>,
    /// The real device's side for its user (none for a simulated fleet).
    desk: Option<Arc<Desk>>,
    /// Who the server is, beyond its chain to the CA.
    server_check: ServerCheck,
    /// Seals the passwords of the accounts this agent's tasks run under (`store::sealing`).
    secrets: Arc<SecretKey>,
    /// A simulated fleet: its devices are not this machine, whose accounts they do not use.
    simulated: bool,
    /// A simulated fleet's connection attempts in flight at once (see
    /// [`SIMULATED_HANDSHAKES`]); none for a real device.
    handshakes: Option<tokio::sync::Semaphore>,
    /// Why the last connection attempt of one of the devices failed: the agent's periodic
    /// report says it, so that an agent that cannot get in says why.
    last_failure: std::sync::Mutex<Option<String>>,
}

/// The most connection attempts a simulated fleet has in flight at once. Real devices each
/// have their own CPU; a fleet shares the bench machine's with the server, and attempts the
/// server refuses (beyond 256 handshakes in progress) would spend it on key exchanges that
/// come to nothing, and slow the attempts that do. Below the server's cap, a fleet's
/// devices queue for their turn here instead.
pub const SIMULATED_HANDSHAKES: usize = 128;

/// What the agent knows of its server's identity besides the CA. A name or fingerprint of
/// the config is checked by TLS ([`ClientTrust`]); without either, the fingerprint seen at
/// the first enrollment is pinned in the agent's database and checked here after each
/// handshake, before the hello (and its token) is sent. Revoked certificates, as servers
/// told, are refused whatever the config says.
struct ServerCheck {
    /// The config's `server`, which the pin is stored under.
    key: String,
    /// Neither `server_name` nor `server_fingerprint` is configured: trust on first use.
    learns: bool,
    pinned: std::sync::Mutex<Option<Fingerprint>>,
    revoked: std::sync::Mutex<HashSet<Fingerprint>>,
}

impl ServerCheck {
    /// Whether the server presenting `seen` may be sent the hello.
    fn check(&self, seen: Fingerprint) -> Result<(), String> {
        if lock(&self.revoked).contains(&seen) {
            return Err(format!(
                "the server at {} presents certificate {seen}, which is revoked in the deployment",
                self.key
            ));
        }
        match *lock(&self.pinned) {
            Some(pinned) if self.learns && pinned != seen => Err(format!(
                "the server at {} presents certificate {seen}, not {pinned} pinned at the first \
                 enrollment: refused (if the server's certificate was renewed, set server_name \
                 or server_fingerprint in the agent's config)",
                self.key
            )),
            _ => Ok(()),
        }
    }

    /// After the server's first answer: pins `seen` if nothing is pinned yet.
    async fn learn(&self, store: &Store, seen: Fingerprint) -> Result<(), String> {
        if !self.learns || lock(&self.pinned).is_some() {
            return Ok(());
        }
        let pinned = store
            .pin_server(&self.key, seen)
            .await
            .map_err(|e| format!("cannot pin the server's fingerprint: {e}"))?;
        if pinned == seen {
            tracing::info!(
                "pinned the fingerprint {seen} of the server at {}",
                self.key
            );
        }
        *lock(&self.pinned) = Some(pinned);
        self.check(seen)
    }

    /// Adds the revoked certificates a server told of, in memory and in the database.
    async fn learn_revoked(&self, store: &Store, revoked: Vec<Fingerprint>) {
        let new: Vec<Fingerprint> = {
            let mut known = lock(&self.revoked);
            revoked.into_iter().filter(|f| known.insert(*f)).collect()
        };
        if !new.is_empty()
            && let Err(e) = store.add_revoked_servers(new).await
        {
            tracing::error!("cannot store revoked server certificates: {e}");
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn last_failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Plain data: a panic elsewhere while it was held leaves nothing half-written.
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes why a connection attempt failed; a real device also logs it when the reason
    /// changes (a fleet of thousands would repeat it thousands of times).
    fn note_failure(&self, reason: &str) {
        let mut last = self.last_failure();
        if !self.simulated && last.as_deref() != Some(reason) {
            tracing::warn!(
                "cannot connect to the server {}:{}: {reason}",
                self.config.server_host,
                self.config.server_port
            );
        }
        *last = Some(reason.to_string());
    }

    fn set_state(&self, index: usize, state: DeviceLinkState) {
        if let Some(s) = self.states.get(index) {
            s.store(state as u8, Ordering::Relaxed);
        }
    }
}

/// The simulated fleet of `canopy agent --simulate N`.
#[derive(Clone, Copy, Debug)]
pub struct Simulation {
    pub devices: u32,
    pub seed: u64,
}

/// A running agent process: one device, or a simulated fleet.
pub struct Agents {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    endpoints: Vec<quinn::Endpoint>,
    tasks: tokio::task::JoinSet<()>,
    #[cfg(feature = "test-support")]
    device_ids: Vec<String>,
}

/// Devices per QUIC endpoint (one UDP socket each), so a large fleet spreads over cores.
const DEVICES_PER_ENDPOINT: usize = 2500;

impl Agents {
    pub async fn start(
        config: AgentConfig,
        simulation: Option<Simulation>,
    ) -> anyhow::Result<Agents> {
        let roots = pki::load_certs(&config.ca).context("config key ca")?;
        crate::store::private::create_parent(&config.data)
            .with_context(|| format!("creating the directory of {}", config.data.display()))?;
        let store = {
            let path = config.data.clone();
            tokio::task::spawn_blocking(move || Store::open_agent(&path)).await??
        };
        restrict_to_owner(&config.data)?;
        let secrets = Arc::new(SecretKey::load_or_create(&sealing::key_path(&config.data))?);
        let count = simulation.map_or(1, |s| s.devices as usize);
        let slots: Vec<String> = match simulation {
            None => vec!["agent".to_string()],
            Some(_) => (0..count).map(|i| format!("sim-{i}")).collect(),
        };
        let identities = store.identities(slots, make_identity).await?;
        let device_ids: Vec<String> = identities.iter().map(|i| i.device_id.clone()).collect();
        // Only a real device has a user who may change its local tasks.
        let desk = match simulation {
            None => Some(Arc::new(Desk::new(
                store.clone(),
                device_ids[0].clone(),
                &config.data,
            )?)),
            Some(_) => None,
        };
        let facts = match simulation {
            None => vec![facts::of_this_machine(&config).await],
            // A fleet shares the config's time zone, if it gives one.
            Some(s) => (0..s.devices)
                .map(|i| facts::simulated(i, s.seed))
                .map(|mut f| {
                    if let Some(zone) = &config.time_zone {
                        f.time_zone = zone.clone();
                    }
                    f
                })
                .collect(),
        };
        // A real device's applications are those of its config (some read live from the
        // machine); a simulated device's are those of its facts, and never change.
        let apps: Vec<Arc<apps::Applications>> = match simulation {
            None => vec![Arc::new(apps::Applications::from_config(&config))],
            Some(_) => facts
                .iter()
                .map(|f| Arc::new(apps::Applications::fixed(&f.applications)))
                .collect(),
        };
        let key = server_key(&config);
        let server_check = ServerCheck {
            learns: config.server_name.is_none() && config.server_fingerprint.is_none(),
            pinned: std::sync::Mutex::new(store.server_pin(&key).await?),
            revoked: std::sync::Mutex::new(store.revoked_servers().await?.into_iter().collect()),
            key,
        };
        let mut resolver = AddressResolver::system();
        let bind: SocketAddr = "0.0.0.0:0".parse()?;
        let server = resolver
            .resolve(&config.server_host, config.server_port, bind)
            .await?;
        let endpoints = (0..count.div_ceil(DEVICES_PER_ENDPOINT))
            .map(|_| crate::net::socket::client_endpoint(bind))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot open a UDP socket")?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            trust: ClientTrust {
                roots,
                pin: config.server_fingerprint,
                expected_name: config.server_name.clone(),
            },
            server_check,
            transport: Transport {
                keep_alive: config.keep_alive,
                idle_timeout: config.idle_timeout,
            },
            store,
            shutdown: shutdown_rx,
            states: (0..count)
                .map(|_| AtomicU8::new(DeviceLinkState::Connecting as u8))
                .collect(),
            desk: desk.clone(),
            secrets,
            simulated: simulation.is_some(),
            last_failure: std::sync::Mutex::new(None),
            handshakes: simulation
                .as_ref()
                .map(|_| tokio::sync::Semaphore::new(SIMULATED_HANDSHAKES)),
            config,
        });
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(desk) = desk {
            tasks.spawn(local::run_snapshots(desk.clone(), shared.shutdown.clone()));
            tasks.spawn(local::run_spool(desk, shared.shutdown.clone()));
        }
        let devices = identities.into_iter().zip(facts).zip(apps);
        for (index, ((identity, facts), apps)) in devices.enumerate() {
            let endpoint = endpoints[index / DEVICES_PER_ENDPOINT].clone();
            let device = link::Device::new(
                index,
                identity,
                facts,
                apps,
                shared.clone(),
                endpoint,
                server,
            )?;
            tasks.spawn(device.run());
        }
        Ok(Agents {
            shared,
            shutdown,
            endpoints,
            tasks,
            #[cfg(feature = "test-support")]
            device_ids,
        })
    }

    pub fn counts(&self) -> AgentCounts {
        let mut counts = AgentCounts::default();
        for state in &self.shared.states {
            match state.load(Ordering::Relaxed) {
                1 => counts.pending += 1,
                2 => counts.connected += 1,
                3 => counts.rejected += 1,
                _ => counts.connecting += 1,
            }
        }
        if counts.connecting > 0 {
            counts.last_failure = self.shared.last_failure().clone();
        }
        counts
    }

    /// Test support: the agent's database, for tests that look at its run log.
    #[cfg(feature = "test-support")]
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Test support: the id of the device (the first one of a simulated fleet).
    #[cfg(feature = "test-support")]
    pub fn device_id(&self) -> &str {
        &self.device_ids[0]
    }

    /// Test support: the ids of every device of the process.
    #[cfg(feature = "test-support")]
    pub fn device_ids(&self) -> &[String] {
        &self.device_ids
    }

    /// Test support: the local tasks the device holds (the first device's, for a simulated
    /// fleet), each with its user's change the server has not answered yet.
    #[cfg(feature = "test-support")]
    pub async fn local_tasks(&self) -> anyhow::Result<Vec<crate::store::agent::LocalTask>> {
        Ok(self.shared.store.local_tasks(self.device_id()).await?)
    }

    /// Closes every connection, lets peers hear of it, and closes the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.send_replace(true);
        for endpoint in &self.endpoints {
            endpoint.close(crate::wire::close::NORMAL.into(), b"agent stopping");
        }
        for endpoint in &self.endpoints {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(3), endpoint.wait_idle()).await;
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Some(desk) = &self.shared.desk
            && let Err(e) = desk.write_snapshot().await
        {
            tracing::warn!("cannot write the local tasks' snapshot: {e:#}");
        }
        let store = self.shared.store.clone();
        tokio::task::spawn_blocking(move || store.close()).await??;
        Ok(())
    }
}

/// The config's `server` as written: what a learned fingerprint is pinned under.
fn server_key(config: &AgentConfig) -> String {
    let host = &config.server_host;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    match &config.virtual_server {
        Some(name) => format!("{host}:{}/{name}", config.server_port),
        None => format!("{host}:{}", config.server_port),
    }
}

/// A new device identity: a fresh key, a self-signed certificate, a random id.
fn make_identity(slot: &str) -> Result<Identity, crate::store::StoreError> {
    let rejected = |e: pki::PkiError| {
        crate::store::StoreError::Rejected(format!("cannot make a device key: {e}"))
    };
    let (cert, key) = pki::self_signed_device(slot).map_err(rejected)?;
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
    Ok(Identity {
        device_id: id.iter().map(|b| format!("{b:02x}")).collect(),
        cert_der: cert.to_vec(),
        key_der: key.secret_der().to_vec(),
    })
}

fn client_config(shared: &Shared, identity: &Identity) -> anyhow::Result<quinn::ClientConfig> {
    let chain = vec![CertificateDer::from(identity.cert_der.clone())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
    Ok(tls::client_config(
        &shared.trust,
        Some((chain, key)),
        tls::ALPN_AGENT,
        &shared.transport,
    )?)
}

/// The agent's database holds its private key: owner only.
fn restrict_to_owner(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))
}

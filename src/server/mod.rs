//! The Administration Server runtime: wires the endpoint, the store, the federation links and
//! the admin API together. Decisions about links live in `sync`; bytes live in `wire`.

mod accept;
mod admin;
mod admin_thread;
mod agents;
pub mod auth;
mod devices;
mod fed;
mod groups;
mod link_seal;
mod login_guard;
mod metrics;
mod notify;
mod reply;
mod rights;
mod tasks;
mod vservers;
mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use crate::config::ServerConfig;
use crate::model::{
    Event, EventKind, Fingerprint, SecondaryRecord, ServerRow, Severity, UnixMillis,
};
use crate::net::pki;
use crate::net::tls::{self, CaVerifier, Transport};
use crate::store::Store;
use crate::store::sealing as secrets;
use crate::sync::topology::{self, SecondaryView};
use crate::wire::{SOFTWARE_VERSION, close};

/// Wall-clock time for records and events; server files use it as `super::now_ms`.
pub use crate::clock::now_ms;

/// A connected secondary or virtual server, as the parent holds it.
struct LiveChild {
    /// `None` for a virtual server's in-process link.
    conn: Option<quinn::Connection>,
    /// Administrators' requests relayed to it, each with where its answer goes.
    requests: tokio::sync::mpsc::Sender<Relayed>,
}

/// An administrator's request relayed to a child, with where its answer goes.
type Relayed = (
    crate::wire::msg::ForwardedRequest,
    tokio::sync::oneshot::Sender<crate::wire::msg::AdminResponse>,
);

/// A server's certificate chain and key.
type Identity = (
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
);

/// Everything one running server shares between its tasks.
pub struct Node {
    pub config: ServerConfig,
    pub store: Store,
    pub fingerprint: Fingerprint,
    pub listen: SocketAddr,
    pub started: UnixMillis,
    ca: CaVerifier,
    ca_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    identity: Identity,
    transport: Transport,
    endpoint: quinn::Endpoint,
    children: Mutex<HashMap<String, LiveChild>>,
    /// Bumped whenever anything in this server's subtree changes; the upstream link watches it.
    subtree_changed: watch::Sender<u64>,
    /// Set once when the server begins to shut down.
    shutdown: watch::Sender<bool>,
    upstream: Mutex<Option<crate::wire::msg::ParentLinkView>>,
    /// Approved devices connected right now, by device id.
    devices: Mutex<HashMap<String, agents::LiveDevice>>,
    /// Pending devices whose connection waits for an administrator's decision.
    waiting: agents::Waiting,
    sessions: auth::Sessions,
    /// How fast logins may be tried here, per account and per source address.
    login_guard: Mutex<login_guard::LoginGuard>,
    /// Checks and hashes passwords, shared with the virtual servers hosted here.
    passwords: Arc<auth::PasswordPool>,
    /// Where admin connections are served (shared with the virtual servers hosted here).
    admin: admin_thread::AdminRuntime,
    /// Seals task account passwords at rest.
    secrets: secrets::SecretKey,
    /// Set on a virtual server: the name of the physical server hosting it.
    virtual_host: Option<String>,
    /// This server's running virtual servers, by name.
    tenants: Mutex<HashMap<String, vservers::Tenant>>,
    /// Handshakes and connections in progress, counted against the limits.
    gate: Arc<accept::Gate>,
    /// The time zone of this server's own schedules (config `time_zone`, or the system's).
    zone: jiff::tz::TimeZone,
    /// Wakes the server's scheduler after a task changed.
    schedules_changed: tokio::sync::Notify,
    /// How many devices each task devices run on their own schedule reaches here, as last
    /// counted: the automatic randomized delay's window comes from it.
    reach_counts: Mutex<HashMap<crate::model::task::TaskId, u64>>,
    /// The notification channels (email, webhook); set once on a physical server, never
    /// on a virtual one.
    notifier: std::sync::OnceLock<Arc<notify::Notifier>>,
    /// A passive secondary's: the connections its parent opened to it.
    parent_dials: fed::ParentDials,
    /// The Prometheus metrics, shared with the virtual servers hosted here.
    metrics: Arc<metrics::Metrics>,
    /// How far the parent is behind this server's statistics, as the link last saw it.
    statistics_behind: metrics::StatisticsBehind,
}

/// What a server shares with the virtual servers it hosts: its identity and its endpoint.
struct Shared {
    fingerprint: Fingerprint,
    listen: SocketAddr,
    ca: CaVerifier,
    ca_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    identity: Identity,
    transport: Transport,
    endpoint: quinn::Endpoint,
    passwords: Arc<auth::PasswordPool>,
    admin: admin_thread::AdminRuntime,
    metrics: Arc<metrics::Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Node {
    fn new(
        config: ServerConfig,
        store: Store,
        secrets: secrets::SecretKey,
        shared: Shared,
        virtual_host: Option<String>,
    ) -> Node {
        let config_zone = config.time_zone.clone();
        store.observe_commits(shared.metrics.commit_observer(&config.name));
        let node = Node {
            fingerprint: shared.fingerprint,
            listen: shared.listen,
            started: now_ms(),
            ca: shared.ca,
            ca_certs: shared.ca_certs,
            identity: shared.identity,
            transport: shared.transport,
            endpoint: shared.endpoint,
            children: Mutex::new(HashMap::new()),
            subtree_changed: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            upstream: Mutex::new(None),
            devices: Mutex::new(HashMap::new()),
            waiting: agents::Waiting::default(),
            sessions: auth::Sessions::default(),
            login_guard: Mutex::new(login_guard::LoginGuard::default()),
            passwords: shared.passwords,
            admin: shared.admin,
            secrets,
            store,
            config,
            virtual_host,
            tenants: Mutex::new(HashMap::new()),
            gate: Arc::default(),
            zone: match &config_zone {
                Some(name) => crate::sched::zone_named(name).unwrap_or_else(|e| {
                    tracing::warn!("{e}; the server's schedules run on UTC");
                    jiff::tz::TimeZone::UTC
                }),
                None => jiff::tz::TimeZone::system(),
            },
            schedules_changed: tokio::sync::Notify::new(),
            reach_counts: Mutex::new(HashMap::new()),
            notifier: std::sync::OnceLock::new(),
            parent_dials: fed::ParentDials::default(),
            metrics: shared.metrics,
            statistics_behind: Default::default(),
        };
        if node.reports_up() {
            // The upstream link reports the runs whose statistics change.
            node.store.signals().follow_runs();
        }
        node
    }

    fn shared(&self) -> Shared {
        Shared {
            fingerprint: self.fingerprint,
            listen: self.listen,
            ca: self.ca.clone(),
            ca_certs: self.ca_certs.clone(),
            identity: (self.identity.0.clone(), self.identity.1.clone_key()),
            transport: self.transport,
            endpoint: self.endpoint.clone(),
            passwords: self.passwords.clone(),
            admin: self.admin.clone(),
            metrics: self.metrics.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Records an event in the server's log. Failing to store it is logged, not fatal.
    pub async fn event(&self, severity: Severity, kind: EventKind, message: String) {
        self.record_event(severity, kind, message, None).await;
    }

    /// An event about a group or a task: shown only to those who may read it.
    pub(crate) async fn event_about(
        &self,
        severity: Severity,
        kind: EventKind,
        message: String,
        about: crate::store::rights::Guarded,
    ) {
        self.record_event(severity, kind, message, Some(about))
            .await;
    }

    async fn record_event(
        &self,
        severity: Severity,
        kind: EventKind,
        message: String,
        about: Option<crate::store::rights::Guarded>,
    ) {
        Node::log_event(severity, kind, &message);
        let now = now_ms();
        let event = Event {
            seq: 0,
            time: now,
            severity,
            kind,
            message,
            origin: Vec::new(),
        };
        match self
            .store
            .append_event(event, about, self.config.events, now)
            .await
        {
            Ok(_) => self.metrics.event(self.name(), kind),
            Err(e) => tracing::error!("cannot record event: {e}"),
        }
    }

    /// An event of the event log, in the server's log too.
    fn log_event(severity: Severity, kind: EventKind, message: &str) {
        match severity {
            Severity::Info => info!(kind = kind.as_str(), "{message}"),
            Severity::Warning | Severity::Error => warn!(kind = kind.as_str(), "{message}"),
        }
    }

    fn bump_subtree(&self) {
        self.subtree_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether this server reports statistics to a parent.
    fn reports_up(&self) -> bool {
        self.config.parent.is_some() || self.is_virtual()
    }

    fn connected_names(&self) -> Vec<String> {
        lock(&self.children).keys().cloned().collect()
    }

    /// Rows for every server below this one, paths relative to this server.
    pub async fn subtree_rows(&self) -> anyhow::Result<Vec<ServerRow>> {
        let records = self.store.secondaries().await?;
        let tree = self.store.group_tree().await?;
        let live = self.connected_names();
        Ok(topology::subtree_rows(&views(&records, &live, &tree)))
    }

    /// The whole tree from this server down, this server first.
    pub async fn tree_rows(&self) -> anyhow::Result<Vec<ServerRow>> {
        let records = self.store.secondaries().await?;
        let tree = self.store.group_tree().await?;
        let live = self.connected_names();
        let listen = match &self.virtual_host {
            Some(host) => format!("{}/{} (on {host})", self.listen, self.name()),
            None => self.listen.to_string(),
        };
        let instance_id = self.store.instance_id().await?;
        let own = topology::OwnServer {
            name: self.name(),
            listen: &listen,
            version: SOFTWARE_VERSION,
            instance_id: &instance_id,
            devices: self.store.device_count().await?,
            virtual_server: self.is_virtual(),
            passive: self
                .config
                .parent
                .as_ref()
                .is_some_and(|p| p.dial.is_none()),
        };
        Ok(topology::tree_rows(
            &own,
            now_ms(),
            &views(&records, &live, &tree),
        ))
    }

    /// The group a device presenting `token` is enrolled into (as the config names it);
    /// `None` for an unknown token.
    fn enrollment_group(&self, token: &str) -> Option<crate::store::devices::TokenGroup> {
        // Compare digests so the time taken says nothing about how much of a token matched.
        let digest = |t: &str| ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
        let wanted = digest(token);
        self.config
            .enrollment
            .iter()
            .find(|e| digest(&e.token).as_ref() == wanted.as_ref())
            .map(|e| e.group.clone())
    }

    /// The path of a group, or its id in words if it is gone.
    async fn group_path(&self, id: u64) -> String {
        match self.store.group_tree().await {
            Ok(tree) => tree.path_of(id).unwrap_or_else(|| format!("group #{id}")),
            Err(e) => {
                tracing::error!("cannot read groups: {e}");
                format!("group #{id}")
            }
        }
    }

    /// Ids of the approved devices connected now.
    pub fn connected_devices(&self) -> std::collections::HashSet<String> {
        lock(&self.devices).keys().cloned().collect()
    }

    /// Test support: this server's link to its parent, if it has one.
    #[cfg(feature = "test-support")]
    pub fn parent_link(&self) -> Option<crate::wire::msg::ParentLinkView> {
        lock(&self.upstream).clone()
    }

    /// Test support: handshakes this server's endpoint has in progress.
    #[cfg(feature = "test-support")]
    pub fn handshakes_in_progress(&self) -> usize {
        self.gate.handshakes()
    }

    /// The time zone of this server's own schedules.
    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }

    fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

fn views<'a>(
    records: &'a [SecondaryRecord],
    live: &[String],
    tree: &crate::model::group::GroupTree,
) -> Vec<SecondaryView<'a>> {
    records
        .iter()
        .map(|record| SecondaryView {
            record,
            group: tree
                .path_of(record.group_id)
                .unwrap_or_else(|| format!("group #{}", record.group_id)),
            connected: live.contains(&record.name),
        })
        .collect()
}

/// A server running in this process; `canopy serve` runs one, tests run several.
pub struct RunningServer {
    pub node: Arc<Node>,
    tasks: tokio::task::JoinSet<()>,
    admin_thread: admin_thread::AdminThread,
    /// Where `GET /metrics` is served (`[metrics]`), if it is.
    metrics_addr: Option<SocketAddr>,
    /// Where the REST API and the console are served over HTTPS (`[web]`), if they are.
    web_addr: Option<SocketAddr>,
}

impl RunningServer {
    /// Opens the database, binds the port and starts serving (and, on a secondary, the link
    /// to the parent). Returns once the server accepts connections.
    pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
        // The secrets of `[notify]` first: a file missing stops the start, naming the key.
        let notify_files = config.notify.load_files()?;
        // Each file named by its config key, for the administrator to find the line.
        let chain = pki::load_certs(&config.cert).context("config key tls.cert")?;
        let key = pki::load_key(&config.key).context("config key tls.key")?;
        let ca_certs = pki::load_certs(&config.ca).context("config key tls.ca")?;
        let ca = CaVerifier::new(&ca_certs)?;
        // Before the database is opened: a port taken stops the start at once.
        let metrics_listener = match config.metrics {
            Some(addr) => Some(metrics::Listener::bind(addr).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(|l| l.addr);
        let web_listener = match &config.web {
            Some(web) => Some(web::Listener::bind(web).await?),
            None => None,
        };
        let web_addr = web_listener.as_ref().map(|l| l.addr);
        ca.verify_client_chain(&chain).with_context(|| {
            format!(
                "{}: this server's certificate is not issued by the CA in {}",
                config.cert.display(),
                config.ca.display()
            )
        })?;
        let fingerprint = Fingerprint::of(&chain[0]);
        let transport = Transport {
            keep_alive: config.keep_alive,
            idle_timeout: config.idle_timeout,
        };
        let server_config = tls::server_config(chain.clone(), key.clone_key(), &transport)?;
        crate::store::private::create_parent(&config.data)
            .with_context(|| format!("creating the directory of {}", config.data.display()))?;
        let store = {
            let path = config.data.clone();
            tokio::task::spawn_blocking(move || Store::open_server(&path)).await??
        };
        let secrets = secrets::SecretKey::load_or_create(&secrets::key_path(&config.data))?;
        let endpoint_config = tls::endpoint_config(&key)?;
        let endpoint =
            crate::net::socket::server_endpoint(endpoint_config, server_config, config.listen)
                .with_context(|| format!("cannot listen on {} (udp)", config.listen))?;
        let listen = endpoint.local_addr()?;
        let (admin, admin_thread) = admin_thread::AdminRuntime::start(&config.name)?;
        let shared = Shared {
            fingerprint,
            listen,
            ca,
            ca_certs,
            identity: (chain, key),
            transport,
            endpoint: endpoint.clone(),
            passwords: Arc::new(auth::PasswordPool::new(password_threads())?),
            admin,
            metrics: Arc::new(metrics::Metrics::new()),
        };
        let node = Arc::new(Node::new(config, store, secrets, shared, None));
        // Under `canopy serve` every thread is already in the server's span
        // (`cli::logging::runtime`): not twice.
        let current = tracing::Span::current();
        let span = match current.metadata() {
            Some(meta) if meta.name() == "server" => current,
            _ => info_span!("server", server = %node.name()),
        };
        node.event(
            Severity::Info,
            EventKind::ServerStarted,
            format!(
                "server {} {} started on {listen}",
                node.name(),
                SOFTWARE_VERSION
            ),
        )
        .instrument(span.clone())
        .await;
        let notifier = notify::Notifier::start(&node, notify_files)
            .instrument(span.clone())
            .await?;
        let _ = node.notifier.set(notifier);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(accept::accept_loop(node.clone()).instrument(span.clone()));
        tasks.spawn(tasks::prune_loop(node.clone()).instrument(span.clone()));
        tasks.spawn(tasks::schedule_loop(node.clone()).instrument(span.clone()));
        tasks.spawn(fed::dial_passive_secondaries(node.clone()).instrument(span.clone()));
        tasks.spawn(fed::trim_loop(node.clone()).instrument(span.clone()));
        if let Some(listener) = metrics_listener {
            tasks.spawn(metrics::serve(node.clone(), listener).instrument(span.clone()));
        }
        if let Some(listener) = web_listener {
            tasks.spawn(web::serve(node.clone(), listener).instrument(span.clone()));
        }
        if node.config.parent.is_some() {
            tasks.spawn(fed::upstream(node.clone()).instrument(span));
        }
        vservers::start_all(&node).await?;
        Ok(RunningServer {
            node,
            tasks,
            admin_thread,
            metrics_addr,
            web_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.node.listen
    }

    /// Where Prometheus metrics are served over HTTP (`GET /metrics`), if `[metrics]` says.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the REST API and the console are served over HTTPS (`[web]`), if they are.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// Closes every connection, waits for peers to be told, and closes the database.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let node = self.node.clone();
        node.shutdown.send_replace(true);
        node.event(
            Severity::Info,
            EventKind::ServerStopped,
            format!("server {} stopping", node.name()),
        )
        .await;
        node.endpoint
            .close(close::SHUTDOWN.into(), b"server shutting down");
        // wait_idle lets the close frames reach the peers so they notice at once.
        let _ = tokio::time::timeout(Duration::from_secs(3), node.endpoint.wait_idle()).await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Some(notifier) = node.notifier.get() {
            notifier.stop().await;
        }
        vservers::stop_all(&node).await;
        // After the virtual servers: one created by an administrator runs its tasks there.
        self.admin_thread.stop().await;
        let store = node.store.clone();
        tokio::task::spawn_blocking(move || store.close()).await??;
        Ok(())
    }

    /// Runs until SIGINT or SIGTERM, then shuts down cleanly.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
            _ = term.recv() => info!("SIGTERM received"),
        }
        self.shutdown().await
    }
}

/// Threads that check passwords: half the cores, at most two, so a flood of logins leaves
/// the rest of the machine to devices and links.
fn password_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| (n.get() / 2).clamp(1, 2))
        .unwrap_or(1)
}

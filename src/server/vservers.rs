//! Virtual servers: tenants hosted by a physical server. Each is a [`Node`] of its own with
//! its own redb file, groups, devices, tasks and accounts, but no listener and no children:
//! its devices and administrators reach it through the host's port by naming it in their
//! hello. It is a child of its host like a secondary, over an in-process link that runs the
//! same link logic (`fed::serve_child_link` / `fed::serve_parent_link`) on channels.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::Instrument;

use super::auth::Session;
use super::fed::{ChildLink, ParentLink, serve_child_link, serve_parent_link};
use super::reply::{PageBudget, Reply, after_path, error, internal, page_limit};
use super::{LiveChild, Node, lock, now_ms};
use crate::config::EnrollmentToken;
use crate::model::group::MANAGED_DEVICES_NAME;
use crate::model::{self, EventKind, Fingerprint, SecondaryRecord, Severity};
use crate::store::Store;
use crate::store::sealing::{self as secrets, SecretKey};
use crate::wire::msg::{
    AdminResponse, ChildMsg, ErrorKind, ParentMsg, Secret, VirtualServerRequest, VirtualServerView,
};

/// A running virtual server, as its host holds it.
pub(super) struct Tenant {
    pub(super) node: Arc<Node>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Where the host keeps the database of its virtual server `name`.
fn data_path(host: &Node, name: &str) -> PathBuf {
    let mut dir = host.config.data.clone().into_os_string();
    dir.push(".vservers");
    PathBuf::from(dir).join(format!("{name}.redb"))
}

impl Node {
    pub(super) fn is_virtual(&self) -> bool {
        self.virtual_host.is_some()
    }

    /// The enabled virtual server `name` of this server.
    pub(super) fn virtual_server(&self, name: &str) -> Option<Arc<Node>> {
        lock(&self.tenants).get(name).map(|t| t.node.clone())
    }
}

/// Starts every enabled virtual server of `host`; called once the host is serving.
pub(super) async fn start_all(host: &Arc<Node>) -> anyhow::Result<()> {
    for record in host.store.secondaries().await? {
        if record.virtual_server && !record.disabled {
            start(host, &record).await?;
        }
    }
    Ok(())
}

/// Opens a virtual server's database and starts it with its link to the host. Boxed: a
/// request relayed over that link may create another virtual server, and the compiler needs
/// a named future type to see that cycle through.
fn start<'a>(
    host: &'a Arc<Node>,
    record: &'a SecondaryRecord,
) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
    Box::pin(start_tenant(host, record))
}

async fn start_tenant(host: &Arc<Node>, record: &SecondaryRecord) -> anyhow::Result<()> {
    let path = data_path(host, &record.name);
    crate::store::private::create_parent(&path)?;
    let store = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || Store::open_server(&path)).await??
    };
    let secrets = secrets::SecretKey::load_or_create(&secrets::key_path(&path))?;
    let mut config = host.config.clone();
    config.name = record.name.clone();
    config.data = path;
    config.parent = None;
    config.enrollment = vec![EnrollmentToken {
        token: record.enrollment_token.clone(),
        group: Some(MANAGED_DEVICES_NAME.to_string()),
    }];
    let node = Arc::new(Node::new(
        config,
        store,
        secrets,
        host.shared(),
        Some(host.name().to_string()),
    ));
    let span = tracing::info_span!("virtual server", server = %record.name);
    let link = tokio::spawn(
        in_process_link(host.clone(), node.clone(), record.group_id).instrument(span.clone()),
    );
    let prune = tokio::spawn(super::tasks::prune_loop(node.clone()).instrument(span.clone()));
    let schedule = tokio::spawn(super::tasks::schedule_loop(node.clone()).instrument(span));
    lock(&host.tenants).insert(
        record.name.clone(),
        Tenant {
            node,
            tasks: vec![link, prune, schedule],
        },
    );
    Ok(())
}

/// Stops a virtual server: its link, its devices' connections, its database.
async fn stop(host: &Node, name: &str) -> anyhow::Result<()> {
    let Some(tenant) = lock(&host.tenants).remove(name) else {
        return Ok(());
    };
    let node = tenant.node;
    node.shutdown.send_replace(true);
    for task in tenant.tasks {
        task.abort();
        let _ = task.await;
    }
    lock(&host.children).remove(name);
    let conns: Vec<quinn::Connection> = lock(&node.devices)
        .values()
        .map(|d| d.conn.clone())
        .collect();
    for conn in conns {
        conn.close(
            crate::wire::close::SHUTDOWN.into(),
            b"virtual server disabled",
        );
    }
    let store = node.store.clone();
    tokio::task::spawn_blocking(move || store.close()).await??;
    Ok(())
}

/// Stops every virtual server of a host that is shutting down.
pub(super) async fn stop_all(host: &Node) {
    let names: Vec<String> = lock(&host.tenants).keys().cloned().collect();
    for name in names {
        if let Err(e) = stop(host, &name).await {
            tracing::error!("cannot stop the virtual server {name}: {e}");
        }
    }
}

/// The link between a host and one of its virtual servers: the host's side and the
/// tenant's side of the federation link logic, joined by channels. Ends when either node
/// shuts down.
async fn in_process_link(host: Arc<Node>, tenant: Arc<Node>, group_id: u64) {
    let name = tenant.name().to_string();
    loop {
        // What the hello and the welcome of a link over QUIC say.
        let read = async {
            let cursor = tenant.store.parent_position().await?;
            let epoch = tenant.store.log_state().await?.epoch;
            let log = host.store.log_for_child(cursor).await?;
            let instance = tenant.store.instance_id().await?;
            let events_held = host.store.events_held_from(&name, epoch).await?;
            Ok::<_, crate::store::StoreError>((cursor, epoch, log, instance, events_held))
        };
        let (cursor, child_epoch, (log, snapshot), instance, events_held) = match read.await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!("cannot read the link state of {name}: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // The link's key: the same at both ends, as a QUIC link's TLS session gives it.
        let key = match SecretKey::random() {
            Ok(key) => Arc::new(key),
            Err(e) => {
                tracing::error!("no key for the link to {name}: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (down_tx, down_rx) = channel::<ParentMsg>();
        let (up_tx, up_rx) = channel::<ChildMsg>();
        let (requests_tx, requests) = mpsc::channel(16);
        lock(&host.children).insert(
            name.clone(),
            LiveChild {
                conn: None,
                requests: requests_tx,
            },
        );
        let linked = host
            .store
            .update_secondary(&name, move |r| {
                r.last_connected = Some(now_ms());
                r.instance_id = instance.clone();
            })
            .await;
        if let Err(e) = linked {
            tracing::error!("cannot record the link to {name}: {e}");
        }
        host.bump_subtree();
        let snapshot_from = snapshot.as_ref().map(|s| s.from);
        let child = ChildLink {
            name: name.clone(),
            group_id,
            cursor,
            child_epoch,
            snapshot,
            rx: up_rx,
            tx: down_tx,
            requests,
            key: key.clone(),
        };
        let parent = ParentLink {
            parent_name: host.name().to_string(),
            registered_name: name.clone(),
            log,
            snapshot_from,
            events_held,
            rx: down_rx,
            tx: up_tx,
            key,
        };
        // Each side ends when the other drops its channels, and only between two effects:
        // a batch the tenant is applying is stored and counted before the link ends, so a new
        // link starts from the cursor that batch stored.
        let (down, up) = tokio::join!(
            serve_child_link(&host, child),
            serve_parent_link(&tenant, parent)
        );
        let reason = format!("host side: {down}; tenant side: {up}");
        lock(&host.children).remove(&name);
        host.bump_subtree();
        if host.is_shutting_down() || tenant.is_shutting_down() {
            return;
        }
        tracing::warn!("in-process link to {name} ended ({reason}); starting it again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A channel whose receiving end looks like a link's inbox.
fn channel<M: Send + 'static>() -> (mpsc::Sender<M>, super::fed::Inbox<M>) {
    let (tx, mut rx) = mpsc::channel::<M>(1024);
    let (inbox_tx, inbox) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if inbox_tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
        let _ = inbox_tx.send(Err("the link closed".to_string())).await;
    });
    (tx, inbox)
}

pub(super) async fn handle(
    host: &Arc<Node>,
    session: &Session,
    request: VirtualServerRequest,
) -> AdminResponse {
    if host.is_virtual() {
        return error(
            ErrorKind::InvalidInput,
            "a virtual server has no virtual servers of its own",
        );
    }
    let reply = match request {
        VirtualServerRequest::List { after, limit } => list(host, after.as_deref(), limit).await,
        VirtualServerRequest::Create { name, group } => create(host, session, name, group).await,
        VirtualServerRequest::Enable { name } => set_enabled(host, session, &name, true).await,
        VirtualServerRequest::Disable { name } => set_enabled(host, session, &name, false).await,
        VirtualServerRequest::Delete { name } => delete(host, session, &name).await,
    };
    reply.unwrap_or_else(|e| e)
}

async fn record(host: &Node, name: &str) -> Reply<SecondaryRecord> {
    let records = host.store.secondaries().await.map_err(internal)?;
    records
        .into_iter()
        .find(|r| r.virtual_server && r.name == name)
        .ok_or_else(|| error(ErrorKind::NotFound, format!("no virtual server {name:?}")))
}

async fn view(host: &Node, record: &SecondaryRecord) -> VirtualServerView {
    let group = host.group_path(record.group_id).await;
    let (devices, devices_connected) = match host.virtual_server(&record.name) {
        Some(node) => (
            node.store.device_count().await.unwrap_or(0),
            lock(&node.devices).len() as u64,
        ),
        None => (record.devices, 0),
    };
    VirtualServerView {
        name: record.name.clone(),
        group,
        enabled: !record.disabled,
        created: record.registered_at,
        devices,
        devices_connected,
        enrollment_token: Secret(record.enrollment_token.clone()),
        data: data_path(host, &record.name).display().to_string(),
    }
}

/// One page of virtual servers in name order; only the views the page holds are built.
async fn list(host: &Node, after: Option<&str>, limit: u32) -> Reply<AdminResponse> {
    let mut records = host.store.secondaries().await.map_err(internal)?;
    records.retain(|r| r.virtual_server);
    let mut budget = PageBudget::new(page_limit(limit));
    let mut virtual_servers: Vec<VirtualServerView> = Vec::new();
    for record in after_path(records, |r| r.name.as_str(), after) {
        let view = view(host, &record).await;
        if !budget.take(&view) {
            let next = virtual_servers.last().map(|v| v.name.clone());
            return Ok(AdminResponse::VirtualServers {
                virtual_servers,
                next,
            });
        }
        virtual_servers.push(view);
    }
    Ok(AdminResponse::VirtualServers {
        virtual_servers,
        next: None,
    })
}

async fn create(
    host: &Arc<Node>,
    session: &Session,
    name: String,
    group: String,
) -> Reply<AdminResponse> {
    model::check_display_name("a virtual server name", &name)
        .map_err(|e| error(ErrorKind::InvalidInput, e))?;
    if name.contains('/') {
        return Err(error(
            ErrorKind::InvalidInput,
            "a virtual server name cannot contain '/'",
        ));
    }
    let tree = host.store.group_tree().await.map_err(internal)?;
    let (group_id, group) = tree
        .resolve(&group)
        .and_then(|id| Some((id, tree.path_of(id)?)))
        .ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                format!("no group {group:?}: create it with `canopy group create`"),
            )
        })?;
    // A database left behind by an interrupted delete holds another tenant's data: a new
    // virtual server never opens it.
    let path = data_path(host, &name);
    for file in [path.clone(), secrets::key_path(&path)] {
        if file.exists() && record(host, &name).await.is_err() {
            return Err(error(
                ErrorKind::AlreadyExists,
                format!(
                    "{} is left from an earlier virtual server {name:?}: move it away (or choose another name) before creating one",
                    file.display()
                ),
            ));
        }
    }
    let record = SecondaryRecord {
        name: name.clone(),
        group_id,
        cert_der: Vec::new(),
        fingerprint: Fingerprint([0; 32]),
        registered_at: now_ms(),
        last_connected: None,
        version: crate::wire::SOFTWARE_VERSION.to_string(),
        instance_id: String::new(),
        address: None,
        subtree: Vec::new(),
        devices: 0,
        virtual_server: true,
        disabled: false,
        enrollment_token: super::auth::new_token(),
        passive: None,
    };
    let max = host.config.limits.max_virtual_servers;
    match host.store.add_secondary(record.clone(), max).await {
        Ok(()) => {}
        Err(crate::store::StoreError::Rejected(msg)) => {
            return Err(error(ErrorKind::AlreadyExists, msg));
        }
        Err(crate::store::StoreError::LimitReached(msg)) => {
            return Err(error(ErrorKind::LimitReached, msg));
        }
        Err(e) => return Err(internal(e)),
    }
    if let Err(e) = start(host, &record).await {
        let _ = host.store.remove_secondary(&name).await;
        return Err(internal(format!("cannot start the virtual server: {e}")));
    }
    let msg = format!(
        "virtual server {name} created in group {group:?} by {}",
        session.user
    );
    host.event(Severity::Info, EventKind::VirtualServerChanged, msg)
        .await;
    Ok(AdminResponse::VirtualServer(Box::new(
        view(host, &record).await,
    )))
}

async fn set_enabled(
    host: &Arc<Node>,
    session: &Session,
    name: &str,
    enabled: bool,
) -> Reply<AdminResponse> {
    let mut record = record(host, name).await?;
    record.disabled = !enabled;
    host.store
        .update_secondary(name, move |r| r.disabled = !enabled)
        .await
        .map_err(internal)?;
    let running = host.virtual_server(name).is_some();
    if enabled && !running {
        start(host, &record).await.map_err(internal)?;
    } else if !enabled && running {
        stop(host, name).await.map_err(internal)?;
    }
    let msg = format!(
        "virtual server {name} {} by {}",
        if enabled { "enabled" } else { "disabled" },
        session.user
    );
    host.event(Severity::Info, EventKind::VirtualServerChanged, msg)
        .await;
    host.bump_subtree();
    Ok(AdminResponse::VirtualServer(Box::new(
        view(host, &record).await,
    )))
}

async fn delete(host: &Arc<Node>, session: &Session, name: &str) -> Reply<AdminResponse> {
    record(host, name).await?;
    stop(host, name).await.map_err(internal)?;
    // The files first: if one cannot be removed, the virtual server stays registered
    // (stopped), and deleting it again tries again.
    let path = data_path(host, name);
    for file in [path.clone(), secrets::key_path(&path)] {
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(internal(format!("cannot remove {}: {e}", file.display())));
        }
    }
    host.store.remove_secondary(name).await.map_err(internal)?;
    let msg = format!("virtual server {name} deleted by {}", session.user);
    host.event(Severity::Info, EventKind::VirtualServerChanged, msg)
        .await;
    host.bump_subtree();
    Ok(AdminResponse::Done {
        message: format!("virtual server {name} deleted with its database"),
    })
}

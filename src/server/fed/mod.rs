//! Federation links (`canopy-fed/1`): the parent's side (`serve_child`) and the secondary's
//! side (`upstream`). When to reconnect and how healthy a link is is decided in
//! `sync::link`; this file only moves frames and records what happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::{Instrument, info_span};

mod child;
mod parent;
mod passive;
mod revoke;
mod trim;

pub(super) use child::serve_child_link;
pub(super) use parent::serve_parent_link;
pub(super) use passive::{
    ParentDials, check_passive_address, dial_passive_secondaries, parent_dialed,
};
pub(super) use revoke::revoke_certificate;
pub(super) use trim::trim_loop;

use super::metrics::Refused;
use super::{LiveChild, Node, link_seal, lock, now_ms};
use crate::model::limits::{SHORT_MAX, cut};
use crate::model::{EventKind, Fingerprint, SecondaryRecord, Severity};
use crate::net::conn::{describe_connection_error, describe_io};
use crate::net::resolve::AddressResolver;
use crate::net::tls::{self, ClientTrust};
use crate::store::sealing::SecretKey;
use crate::sync::link::{LinkHealth, UpstreamLink};
use crate::sync::replicate::{Cursor, LogState};
use crate::sync::snapshot::Snapshot;
use crate::wire::frame::MAX_FRAME;
use crate::wire::msg::{ChildHello, ChildMsg, ParentLinkView, ParentMsg};
use crate::wire::{self, FrameError, SOFTWARE_VERSION, close};

/// How long a peer may take to send its hello after the TLS handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HELLO: usize = 64 * 1024;

/// Closes a connection with a code and a reason the peer can print.
fn refuse(conn: &quinn::Connection, code: u32, reason: &str) {
    conn.close(code.into(), reason.as_bytes());
}

/// The parent's side of one secondary's connection.
pub(super) async fn serve_child(node: Arc<Node>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    let Some(chain) = tls::peer_chain(&conn) else {
        let msg = format!("secondary refused from {remote}: no certificate presented");
        node.metrics
            .handshake_refused(node.name(), Refused::Untrusted);
        node.event(Severity::Warning, EventKind::SecondaryRefused, msg)
            .await;
        refuse(
            &conn,
            close::UNTRUSTED,
            "a secondary must present its certificate",
        );
        return;
    };
    if let Err(e) = node.ca.verify_client_chain(&chain) {
        let msg = format!(
            "secondary refused from {remote}: certificate not issued by the deployment CA ({e})"
        );
        node.metrics
            .handshake_refused(node.name(), Refused::Untrusted);
        node.event(Severity::Warning, EventKind::SecondaryRefused, msg)
            .await;
        refuse(
            &conn,
            close::UNTRUSTED,
            "certificate not issued by this deployment's CA",
        );
        return;
    }
    let fingerprint = Fingerprint::of(&chain[0]);
    let registered = node.store.secondary_by_fingerprint(fingerprint).await;
    match node.store.revocation(fingerprint).await {
        Ok(None) => {}
        Ok(Some(revocation)) => {
            let registered = match &registered {
                Ok(Some(record)) => format!(" (registered here as {})", record.name),
                _ => String::new(),
            };
            let msg = format!(
                "secondary refused from {remote}{registered}: {}",
                revocation.describe()
            );
            node.metrics
                .handshake_refused(node.name(), Refused::Revoked);
            node.event(Severity::Warning, EventKind::SecondaryRefused, msg)
                .await;
            let reason = format!(
                "certificate revoked by {} at {}: {}",
                revocation.by,
                crate::model::format_time(revocation.revoked_at),
                revocation.reason
            );
            refuse(&conn, close::REVOKED, &reason);
            return;
        }
        Err(e) => {
            tracing::error!("cannot look up revocations: {e}");
            refuse(&conn, close::PROTOCOL, "internal error");
            return;
        }
    }
    let record = match registered {
        Ok(Some(record)) => record,
        Ok(None) => {
            let msg = format!(
                "secondary refused from {remote}: not registered (certificate fingerprint {fingerprint})"
            );
            node.metrics
                .handshake_refused(node.name(), Refused::NotRegistered);
            node.event(Severity::Warning, EventKind::SecondaryRefused, msg)
                .await;
            refuse(
                &conn,
                close::NOT_REGISTERED,
                "not registered as a secondary of this server",
            );
            return;
        }
        Err(e) => {
            tracing::error!("cannot look up secondary: {e}");
            refuse(&conn, close::PROTOCOL, "internal error");
            return;
        }
    };
    let name = record.name.clone();
    let span = info_span!("secondary", secondary = %name, %remote);
    // Whatever refused the link has been said where it was decided.
    let _ = serve_registered_child(node, conn, fingerprint, record)
        .instrument(span)
        .await;
}

/// Serves the link of a secondary whose certificate is registered here as `record`, on
/// `conn`, whichever end dialed; why it did not begin, if it did not.
async fn serve_registered_child(
    node: Arc<Node>,
    conn: quinn::Connection,
    fingerprint: Fingerprint,
    record: SecondaryRecord,
) -> Result<(), String> {
    let SecondaryRecord {
        name,
        group_id,
        instance_id: known_instance,
        ..
    } = record;
    let remote = conn.remote_address();
    let (mut send, mut recv) = match timeout(HELLO_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            tracing::debug!("secondary left before its hello: {e}");
            return Err(describe_connection_error(&e));
        }
        Err(_) => {
            refuse(&conn, close::PROTOCOL, "no hello in time");
            return Err("no hello in time".into());
        }
    };
    let hello: ChildHello =
        match timeout(HELLO_TIMEOUT, wire::read_hello(&mut recv, MAX_HELLO)).await {
            Ok(Ok(hello)) => hello,
            Ok(Err(e)) => {
                let kind = match e {
                    FrameError::VersionMismatch { .. } => EventKind::SecondaryRefused,
                    _ => EventKind::ProtocolError,
                };
                node.event(
                    Severity::Warning,
                    kind,
                    format!("secondary {name} refused from {remote}: {e}"),
                )
                .await;
                refuse(&conn, e.close_code(), &e.to_string());
                return Err(e.to_string());
            }
            Err(_) => {
                refuse(&conn, close::PROTOCOL, "no hello in time");
                return Err("no hello in time".into());
            }
        };
    let (requests_tx, requests) = mpsc::channel(16);
    // A secondary that reconnects before its old connection timed out replaces it.
    let live = LiveChild {
        conn: Some(conn.clone()),
        requests: requests_tx,
    };
    if let Some(old) = lock(&node.children).insert(name.clone(), live)
        && let Some(old) = old.conn
    {
        old.close(close::REPLACED.into(), b"replaced by a newer connection");
    }
    // Registered when the connection began, but maybe removed since: a removal deletes the
    // record before it closes the live link, so a link now in `children` is either closed by
    // it or sees here that the record is gone.
    if !still_registered(&node, fingerprint, &name).await {
        forget_child(&node, &name, &conn);
        refuse(
            &conn,
            close::REVOKED,
            "registration removed by an administrator",
        );
        return Err("registration removed by an administrator".into());
    }
    let cursor = Cursor {
        last_applied: hello.last_applied,
        epoch: hello.parent_epoch,
    };
    let (log, snapshot) = match node.store.log_for_child(cursor).await {
        Ok(log) => log,
        Err(e) => {
            tracing::error!("cannot read the change log: {e}");
            forget_child(&node, &name, &conn);
            refuse(&conn, close::PROTOCOL, "internal error");
            return Err("internal error".into());
        }
    };
    let events_held = match node.store.events_held_from(&name, hello.epoch).await {
        Ok(held) => held,
        Err(e) => {
            tracing::error!("cannot read the events held from {name}: {e}");
            forget_child(&node, &name, &conn);
            refuse(&conn, close::PROTOCOL, "internal error");
            return Err("internal error".into());
        }
    };
    let welcome = ParentMsg::Welcome {
        parent_name: node.name().to_string(),
        registered_name: name.clone(),
        group: node.group_path(group_id).await,
        log_epoch: log.epoch,
        log_last_seq: log.last_seq,
        events_held,
        snapshot_from: snapshot.as_ref().map(|s| s.from),
    };
    if let Err(e) = wire::write_frame(&mut send, &welcome).await {
        tracing::debug!("secondary left during the hello: {e}");
        forget_child(&node, &name, &conn);
        return Err("it left during the hello".into());
    }
    let address = remote.to_string();
    let mut version = hello.software_version.clone();
    let mut instance = hello.instance_id.clone();
    cut(&mut version, SHORT_MAX);
    cut(&mut instance, SHORT_MAX);
    let updated = node
        .store
        .update_secondary(&name, {
            let (version, instance) = (version.clone(), instance.clone());
            move |r| {
                r.last_connected = Some(now_ms());
                r.version = version.clone();
                r.instance_id = instance.clone();
                r.address = Some(address.clone());
            }
        })
        .await;
    if let Err(e) = updated {
        tracing::error!("cannot record the secondary's connection: {e}");
    }
    if !known_instance.is_empty() && known_instance != instance {
        let msg = format!(
            "secondary {name} is a new installation with the same certificate (instance id {instance}, was {known_instance}): it is brought up to date from this server's change log"
        );
        node.event(Severity::Warning, EventKind::SecondaryReinstalled, msg)
            .await;
    }
    node.event(
        Severity::Info,
        EventKind::SecondaryConnected,
        format!("connection to the secondary {name} established ({remote}, version {version})"),
    )
    .await;
    node.bump_subtree();

    let key = match link_seal::quic_link_key(&conn) {
        Ok(key) => key,
        Err(e) => {
            tracing::error!("no key for the link to {name}: {e}");
            forget_child(&node, &name, &conn);
            refuse(&conn, close::PROTOCOL, "internal error");
            return Err("internal error".into());
        }
    };
    let (rx, tx) = bridge::<ChildMsg, ParentMsg>(&conn, send, recv);
    let link = ChildLink {
        name: name.clone(),
        group_id,
        cursor,
        child_epoch: hello.epoch,
        snapshot,
        rx,
        tx,
        requests,
        key,
    };
    let reason = serve_child_link(&node, link).await;

    if forget_child(&node, &name, &conn) {
        node.event(
            Severity::Warning,
            EventKind::SecondaryDisconnected,
            format!("connection to the secondary {name} interrupted: {reason}"),
        )
        .await;
        node.bump_subtree();
    }
    Ok(())
}

/// Whether the certificate `fingerprint` is still registered here as `name`, and not revoked.
async fn still_registered(node: &Node, fingerprint: Fingerprint, name: &str) -> bool {
    let registered = node.store.secondary_by_fingerprint(fingerprint).await;
    let revoked = node.store.revocation(fingerprint).await;
    match (registered, revoked) {
        (Ok(Some(record)), Ok(None)) => record.name == name,
        (Ok(_), Ok(_)) => false,
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot look up the secondary's registration: {e}");
            false
        }
    }
}

/// Takes the secondary `name` out of the live links if `conn` is still its link; whether it
/// was.
fn forget_child(node: &Node, name: &str, conn: &quinn::Connection) -> bool {
    let mut children = lock(&node.children);
    let current = children.get(name).is_some_and(|c| {
        c.conn
            .as_ref()
            .is_some_and(|c| c.stable_id() == conn.stable_id())
    });
    if current {
        children.remove(name);
    }
    current
}

impl Node {
    /// A certificate revoked by the parent or above, new here: an event, and the link of a
    /// secondary registered here with that certificate is closed (it is refused from now on).
    pub(super) async fn revoked(&self, revocation: &crate::model::Revocation) {
        let msg = format!("learned from the parent: {}", revocation.describe());
        self.event(Severity::Warning, EventKind::CertificateRevoked, msg)
            .await;
        revoke::close_revoked_link(self, revocation.fingerprint).await;
    }
}

/// Messages in from a link: each, then why the link ended as its last item.
pub(super) type Inbox<M> = mpsc::Receiver<Result<M, String>>;

/// Carries a QUIC link's frames to and from channels, so the link logic below runs the same
/// over QUIC and over the in-process link of a virtual server. A protocol error closes the
/// connection with its code.
fn bridge<In, Out>(
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> (Inbox<In>, mpsc::Sender<Out>)
where
    In: serde::de::DeserializeOwned + Send + 'static,
    Out: serde::Serialize + Send + Sync + 'static,
{
    let (in_tx, in_rx) = mpsc::channel(1024);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(1024);
    let reader_conn = conn.clone();
    tokio::spawn(async move {
        loop {
            let item = match wire::read_frame::<_, In>(&mut recv, MAX_FRAME).await {
                Ok(Some(msg)) => Ok(msg),
                Ok(None) => Err("the peer closed the link".to_string()),
                Err(FrameError::Io(e)) => Err(reader_conn
                    .close_reason()
                    .map(|c| describe_connection_error(&c))
                    .unwrap_or_else(|| describe_io(&e))),
                Err(e) => {
                    refuse(&reader_conn, e.close_code(), &e.to_string());
                    Err(format!("protocol error: {e}"))
                }
            };
            let last = item.is_err();
            if in_tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if wire::write_frame(&mut send, &msg).await.is_err() {
                return;
            }
        }
        let _ = send.finish();
    });
    (in_rx, out_tx)
}

/// The parent's end of one child's link, whatever carries it.
pub(super) struct ChildLink {
    pub name: String,
    /// The group of this server the child is placed in, by id.
    pub group_id: u64,
    /// Where the child stands in this server's log, as its hello says.
    pub cursor: Cursor,
    /// The child's own log epoch, as its hello says.
    pub child_epoch: u64,
    /// What the child is sent instead of the entries it missed, trimmed from the log.
    pub snapshot: Option<Snapshot>,
    pub rx: Inbox<ChildMsg>,
    pub tx: mpsc::Sender<ParentMsg>,
    pub requests: mpsc::Receiver<super::Relayed>,
    /// Seals the task account passwords sent on this link.
    pub key: Arc<SecretKey>,
}

/// Sleeps until `at`, or forever without one.
pub(super) async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The secondary's side: keeps a link to the parent, reconnecting with backoff, and keeps
/// the parent told of this server's subtree.
pub(super) async fn upstream(node: Arc<Node>) {
    let Some(parent) = node.config.parent.clone() else {
        return;
    };
    let Some(dial) = &parent.dial else {
        return passive::wait_for_parent(node).await;
    };
    let mut link = UpstreamLink::new(node.config.link, Instant::now());
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut resolver = AddressResolver::system();
    let mut shutdown = node.shutdown.subscribe();
    let target = format!("{}:{}", dial.address, dial.port);
    let mut last_refusal: Option<String> = None;
    publish_link(&node, &link, &target);
    loop {
        if let Some(at) = link.poll_timeout() {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = shutdown.changed() => return,
            }
        }
        if node.is_shutting_down() {
            return;
        }
        if !link.poll_attempt(Instant::now()) {
            continue;
        }
        let attempt = match connect_parent(&node, &mut resolver, dial, parent.fingerprint).await {
            Ok(conn) => child_handshake(&node, conn).await,
            Err(e) => Err(e),
        };
        let error = match attempt {
            Ok(welcomed) => {
                last_refusal = None;
                link.handle_connected(Instant::now());
                publish_link(&node, &link, &target);
                let reason = serve_welcomed(&node, welcomed, &target).await;
                if node.is_shutting_down() {
                    return;
                }
                reason
            }
            Err(e) => {
                // A refusal says something an administrator must act on; say it once per cause.
                if last_refusal.as_deref() != Some(e.as_str()) {
                    let msg = format!("cannot connect to the parent server at {target}: {e}");
                    node.event(Severity::Warning, EventKind::ParentRefused, msg)
                        .await;
                    last_refusal = Some(e.clone());
                }
                e
            }
        };
        if let Some(change) = link.handle_failure(Instant::now(), error, &mut rng) {
            if matches!(change.to, LinkHealth::Degraded | LinkHealth::Failed) {
                let msg = format!(
                    "link to the parent server is {} after {} failed attempts in a row",
                    change.to.as_str(),
                    link.consecutive_failures()
                );
                node.event(Severity::Error, EventKind::ParentLinkHealth, msg)
                    .await;
            }
        }
        publish_link(&node, &link, &target);
    }
}

fn publish_link(node: &Node, link: &UpstreamLink, target: &str) {
    let since = link
        .connected_at()
        .map(|at| now_ms() - at.elapsed().as_millis() as i64);
    *lock(&node.upstream) = Some(ParentLinkView {
        address: target.to_string(),
        health: link.health().as_str().to_string(),
        consecutive_failures: link.consecutive_failures(),
        last_error: link.last_error().map(str::to_string),
        connected_since: since,
    });
}

/// A link to the parent once welcomed.
struct Welcomed {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    parent_name: String,
    /// The name the parent registered this server under.
    registered_name: String,
    /// The parent's log as its welcome said.
    log: LogState,
    /// Where the parent's snapshot begins, if it sends one.
    snapshot_from: Option<u64>,
    /// The highest of this server's events the parent holds.
    events_held: u64,
}

/// Serves a welcomed link to the parent, with the events that say it began and ended
/// (none for the end if the server is shutting down); why it ended.
async fn serve_welcomed(node: &Arc<Node>, welcomed: Welcomed, target: &str) -> String {
    let Welcomed {
        conn,
        send,
        recv,
        parent_name,
        registered_name,
        log,
        snapshot_from,
        events_held,
    } = welcomed;
    let msg = format!("connection to the parent server {parent_name} established ({target})");
    node.event(Severity::Info, EventKind::ParentConnected, msg)
        .await;
    let reason = match link_seal::quic_link_key(&conn) {
        Ok(key) => {
            let (rx, tx) = bridge::<ParentMsg, ChildMsg>(&conn, send, recv);
            let link = ParentLink {
                parent_name: parent_name.clone(),
                registered_name,
                log,
                snapshot_from,
                events_held,
                rx,
                tx,
                key,
            };
            serve_parent_link(node, link).await
        }
        Err(e) => e,
    };
    conn.close(close::SHUTDOWN.into(), b"link closed");
    if !node.is_shutting_down() {
        let msg = format!("connection to the parent server {parent_name} interrupted: {reason}");
        node.event(Severity::Warning, EventKind::ParentDisconnected, msg)
            .await;
    }
    reason
}

/// Dials the parent at `dial`, which must present the certificate `pin`.
async fn connect_parent(
    node: &Node,
    resolver: &mut AddressResolver,
    dial: &crate::config::ParentAddress,
    pin: Fingerprint,
) -> Result<quinn::Connection, String> {
    let addr = resolver
        .resolve(&dial.address, dial.port, node.listen)
        .await
        .map_err(|e| e.to_string())?;
    match node.store.revocation(pin).await {
        Ok(None) => {}
        Ok(Some(revocation)) => {
            return Err(format!(
                "the parent's pinned certificate is revoked: {}",
                revocation.describe()
            ));
        }
        Err(e) => return Err(format!("cannot read the revoked certificates: {e}")),
    }
    let trust = ClientTrust {
        roots: node.ca_certs.clone(),
        pin: Some(pin),
        expected_name: None,
    };
    let identity = (node.identity.0.clone(), node.identity.1.clone_key());
    let client = tls::client_config(&trust, Some(identity), tls::ALPN_FED, &node.transport)
        .map_err(|e| e.to_string())?;
    let connecting = node
        .endpoint
        .connect_with(client, addr, "canopy-parent")
        .map_err(|e| e.to_string())?;
    timeout(HELLO_TIMEOUT, connecting)
        .await
        .map_err(|_| "timed out connecting".to_string())?
        .map_err(|e| describe_connection_error(&e))
}

/// The child's side of a link's hello on `conn`, whichever end dialed: this server opens
/// the stream and says its hello; the parent answers with its welcome.
async fn child_handshake(node: &Node, conn: quinn::Connection) -> Result<Welcomed, String> {
    let cursor = node
        .store
        .parent_position()
        .await
        .map_err(|e| format!("cannot read the parent's cursor: {e}"))?;
    let epoch = node
        .store
        .log_state()
        .await
        .map_err(|e| format!("cannot read the change log: {e}"))?
        .epoch;
    let instance_id = node
        .store
        .instance_id()
        .await
        .map_err(|e| format!("cannot read the instance id: {e}"))?;
    let handshake = async {
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| describe_connection_error(&e))?;
        let hello = ChildHello {
            name: node.name().to_string(),
            software_version: SOFTWARE_VERSION.to_string(),
            instance_id,
            last_applied: cursor.last_applied,
            parent_epoch: cursor.epoch,
            epoch,
        };
        wire::write_hello(&mut send, &hello)
            .await
            .map_err(|e| e.to_string())?;
        match wire::read_frame::<_, ParentMsg>(&mut recv, MAX_HELLO).await {
            Ok(Some(ParentMsg::Welcome {
                parent_name,
                registered_name,
                log_epoch,
                log_last_seq,
                events_held,
                snapshot_from,
                ..
            })) => {
                let log = LogState {
                    epoch: log_epoch,
                    last_seq: log_last_seq,
                };
                let welcome = (
                    parent_name,
                    registered_name,
                    log,
                    snapshot_from,
                    events_held,
                );
                Ok((send, recv, welcome))
            }
            Ok(Some(_)) => Err("the parent sent something else than its welcome".to_string()),
            Ok(None) => Err("the parent closed the link during the hello".to_string()),
            Err(FrameError::Io(e)) => Err(describe_io(&e)),
            Err(e) => Err(e.to_string()),
        }
    };
    match timeout(HELLO_TIMEOUT, handshake).await {
        Ok(Ok((send, recv, welcome))) => {
            let (parent_name, registered_name, log, snapshot_from, events_held) = welcome;
            Ok(Welcomed {
                conn,
                send,
                recv,
                parent_name,
                registered_name,
                log,
                snapshot_from,
                events_held,
            })
        }
        Ok(Err(e)) => {
            // The parent may have closed the connection with a reason that says more.
            let e = conn
                .close_reason()
                .map(|c| describe_connection_error(&c))
                .unwrap_or(e);
            Err(e)
        }
        Err(_) => Err("timed out waiting for the parent's welcome".to_string()),
    }
}

/// The child's end of its link to the parent, whatever carries it.
pub(super) struct ParentLink {
    pub parent_name: String,
    /// The name the parent registered this server under: the first element of the paths
    /// of its statistics rows there.
    pub registered_name: String,
    /// The parent's log as its welcome said.
    pub log: LogState,
    /// Where the parent's snapshot begins, if it sends one (`sync::snapshot`).
    pub snapshot_from: Option<u64>,
    /// The highest of this server's events the parent holds, as its welcome said.
    pub events_held: u64,
    pub rx: Inbox<ParentMsg>,
    pub tx: mpsc::Sender<ChildMsg>,
    /// Seals the task account passwords received on this link.
    pub key: Arc<SecretKey>,
}

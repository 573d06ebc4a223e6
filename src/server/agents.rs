//! The device link (`canopy-agent/1`), the server's side: admission (token, pending,
//! approval, refusal), then run orders down and results up, each result stored once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;
use tracing::Instrument;

use super::{Node, link_seal, lock, now_ms};
use crate::model::device::{DeviceRecord, check_device_id};
use crate::model::task::DeviceProgress;
use crate::model::{EventKind, Fingerprint, RunRef, Severity};
use crate::net::conn::describe_io;
use crate::net::tls;
use crate::store::devices::{Admission, DeviceCaps};
use crate::wire::msg::{AgentHello, AgentToServer, ServerToAgent};
use crate::wire::{self, FrameError, FrameReader, close};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_AGENT_FRAME: usize = 1024 * 1024;
/// Messages queued for one device. Senders never wait: a device whose queue is full is
/// disconnected, and catches up from its stored orders when it reconnects.
const QUEUE: usize = 64;
const TOO_SLOW: &str = "the device did not keep up with the messages sent to it; \
                        reconnect to get its orders again";

/// A connected, approved device.
pub(super) struct LiveDevice {
    conn_id: usize,
    pub(super) conn: quinn::Connection,
    tx: mpsc::Sender<ServerToAgent>,
}

impl LiveDevice {
    /// Queues `msg` for the device without waiting, so that no admin request, federation
    /// link or other device ever waits for one device. If its queue is full, the device is
    /// disconnected: what it misses is either stored (run orders, replayed when it
    /// reconnects) or sent again at connect (its local tasks).
    pub(super) fn offer(&self, device_id: &str, msg: ServerToAgent) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            // Its session is ending; it gets the stored orders when it reconnects.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.conn.close_reason().is_none() {
                    tracing::warn!(
                        device = device_id,
                        queued = QUEUE,
                        "device disconnected: {TOO_SLOW}"
                    );
                    self.conn.close(close::TOO_SLOW.into(), TOO_SLOW.as_bytes());
                }
            }
        }
    }
}

/// Devices waiting for approval, woken when an administrator decides.
#[derive(Default)]
pub(super) struct Waiting {
    by_id: std::sync::Mutex<std::collections::HashMap<String, Arc<Notify>>>,
    /// When an event last said that devices were refused for a cap on devices: one a
    /// minute at most, since the refused may be many.
    full_noted_at: std::sync::atomic::AtomicI64,
}

impl Waiting {
    fn register(&self, id: &str) -> Arc<Notify> {
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// Whether a refusal for a cap on devices at `now` deserves an event.
    fn note_full(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.full_noted_at.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= 60_000)
            && self
                .full_noted_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Wakes the connection of a pending device after an administrator decided about it.
    pub(super) fn wake(&self, id: &str) {
        let map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(id) {
            n.notify_one();
        }
    }
}

fn refuse(conn: &quinn::Connection, code: u32, reason: &str) {
    conn.close(code.into(), reason.as_bytes());
}

/// Refuses a device that a cap on devices keeps out, telling it `told`; `why` goes to the
/// log, and to the event log once a minute at most, since the refused may be many.
async fn refuse_over_cap(
    node: &Node,
    conn: &quinn::Connection,
    name: &str,
    remote: std::net::SocketAddr,
    why: &str,
    told: &str,
) {
    tracing::warn!(device = %name, %remote, "device refused: {why}");
    if node.waiting.note_full(now_ms()) {
        let msg = format!("device {name} at {remote} refused, and others may be: {why}");
        node.event(Severity::Warning, EventKind::DeviceRefused, msg)
            .await;
    }
    refuse(conn, close::LIMIT, told);
}

pub(super) async fn serve_agent(node: Arc<Node>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    let Some(fingerprint) = tls::peer_chain(&conn).map(|chain| Fingerprint::of(&chain[0])) else {
        refuse(
            &conn,
            close::UNTRUSTED,
            "a device must present its certificate",
        );
        return;
    };
    let (send, mut recv) = match timeout(HELLO_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        _ => {
            refuse(&conn, close::PROTOCOL, "no hello in time");
            return;
        }
    };
    let mut hello: AgentHello =
        match timeout(HELLO_TIMEOUT, wire::read_hello(&mut recv, MAX_AGENT_FRAME)).await {
            Ok(Ok(hello)) => hello,
            Ok(Err(FrameError::Io(_))) | Err(_) => return,
            Ok(Err(e)) => {
                let msg = format!("device at {remote} refused: {e}");
                node.event(Severity::Warning, EventKind::DeviceRefused, msg)
                    .await;
                refuse(&conn, e.close_code(), &e.to_string());
                return;
            }
        };
    if let Err(e) = check_device_id(&hello.device_id) {
        refuse(&conn, close::PROTOCOL, &e);
        return;
    }
    // Only this much of what a device says about itself is kept (`model::limits`).
    hello.facts = hello.facts.capped();
    // A device of a virtual server is served by that server, on this one's port.
    let node = match &hello.virtual_server {
        None => node,
        Some(name) => match node.virtual_server(name) {
            Some(tenant) => tenant,
            None => {
                let msg = format!(
                    "device {} at {remote} refused: no enabled virtual server {name:?}",
                    hello.facts.display_name
                );
                node.event(Severity::Warning, EventKind::DeviceRefused, msg)
                    .await;
                refuse(
                    &conn,
                    close::AUTH,
                    &format!("no enabled virtual server {name:?}"),
                );
                return;
            }
        },
    };
    let span =
        tracing::info_span!("device", device = %hello.facts.display_name, id = %hello.device_id);
    admit(node, conn, send, recv, hello, fingerprint)
        .instrument(span)
        .await;
}

async fn admit(
    node: Arc<Node>,
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    hello: AgentHello,
    fingerprint: Fingerprint,
) {
    let remote = conn.remote_address();
    let name = hello.facts.display_name.clone();
    let token_group = match &hello.token {
        None => None,
        Some(token) => match node.enrollment_group(&token.0) {
            Some(group) => Some(group),
            None => {
                let msg = format!("device {name} at {remote} refused: unknown enrollment token");
                node.event(Severity::Warning, EventKind::DeviceRefused, msg)
                    .await;
                refuse(&conn, close::AUTH, "unknown enrollment token");
                return;
            }
        },
    };
    let now = now_ms();
    // Most connections are known devices coming back unchanged: decided without a commit.
    let admission = match node
        .store
        .readmit_device(&hello.device_id, fingerprint, &hello.facts, now)
        .await
    {
        Ok(Some(admitted)) => Ok(admitted),
        outcome => {
            if let Err(e) = outcome {
                tracing::warn!("cannot read the device's registration, writing it: {e}");
            }
            node.store
                .admit_device(
                    hello.device_id.clone(),
                    fingerprint,
                    hello.facts.clone(),
                    token_group,
                    DeviceCaps {
                        max_devices: node.config.limits.max_devices,
                        max_pending: node.config.limits.max_pending_devices,
                    },
                    now,
                )
                .await
        }
    };
    let admitted = match admission {
        Ok(admitted) => admitted,
        Err(e) => {
            tracing::error!("cannot admit device: {e}");
            refuse(&conn, close::PROTOCOL, "internal error");
            return;
        }
    };
    if let Some(path) = &admitted.missing_group {
        let msg = format!(
            "enrollment token's group {path:?} does not exist; device {name} placed in \"Unassigned devices\""
        );
        node.event(Severity::Warning, EventKind::DeviceEnrolled, msg)
            .await;
    }
    let mut group = admitted.group_path;
    let mut record = match admitted.admission {
        Admission::KeyChanged { record } => {
            let msg = format!(
                "device {} ({}) refused from {remote}: it presented another key ({fingerprint}) than the one it enrolled with ({})",
                record.name, record.id, record.fingerprint
            );
            node.event(Severity::Error, EventKind::DeviceRefused, msg)
                .await;
            refuse(
                &conn,
                close::UNTRUSTED,
                "this device is enrolled with another key",
            );
            return;
        }
        Admission::KeyInUse { other_id } => {
            let msg = format!(
                "device {name} at {remote} refused: its key is enrolled as device {other_id}"
            );
            node.event(Severity::Error, EventKind::DeviceRefused, msg)
                .await;
            refuse(
                &conn,
                close::UNTRUSTED,
                "this key is enrolled as another device",
            );
            return;
        }
        Admission::Rejected(record) => {
            tell_rejected(&conn, &mut send, &record).await;
            return;
        }
        Admission::TooManyPending { max_pending } => {
            let why = format!(
                "{max_pending} devices already wait for approval (limits.max_pending_devices); approve, reject or delete some"
            );
            refuse_over_cap(
                &node,
                &conn,
                &name,
                remote,
                &why,
                "too many devices wait for approval; try later",
            )
            .await;
            return;
        }
        Admission::TooManyDevices { max_devices } => {
            let why = format!(
                "the server has its limit of {max_devices} devices (limits.max_devices); delete some, or raise the limit"
            );
            let told =
                format!("the server has its limit of {max_devices} devices; ask its administrator");
            refuse_over_cap(&node, &conn, &name, remote, &why, &told).await;
            return;
        }
        Admission::Approved { record, new } => {
            if new {
                let msg = format!(
                    "device {} ({}) enrolled with a token from {remote}",
                    record.name, record.id
                );
                node.event(Severity::Info, EventKind::DeviceEnrolled, msg)
                    .await;
                node.bump_subtree();
            }
            record
        }
        Admission::Pending { record, new } => {
            if new {
                let msg = format!(
                    "device {} ({}) connected from {remote} without a token: waiting for approval",
                    record.name, record.id
                );
                node.event(Severity::Info, EventKind::DeviceEnrolled, msg)
                    .await;
                node.bump_subtree();
            }
            match wait_for_approval(&node, &conn, &mut send, record).await {
                Some(record) => {
                    // An administrator may have chosen the group when approving.
                    group = node.group_path(record.group_id).await;
                    record
                }
                None => return,
            }
        }
    };
    let accepted = ServerToAgent::Accepted {
        server_name: node.name().to_string(),
        group,
        revoked: revoked_for_agents(&node).await,
    };
    if wire::write_frame(&mut send, &accepted).await.is_err() {
        return;
    }
    record.last_seen = Some(now_ms());
    session(&node, &conn, send, recv, &record, admitted.orders).await;
}

/// At most this many revoked certificates are told to an agent (32 bytes each), the newest.
const REVOKED_TO_AGENTS: usize = 1000;

/// The server certificates revoked in the deployment as this server knows them, for an
/// agent's `Accepted`.
async fn revoked_for_agents(node: &Node) -> Vec<crate::model::Fingerprint> {
    match node.store.revocations().await {
        Ok(all) => all
            .into_iter()
            .rev()
            .take(REVOKED_TO_AGENTS)
            .map(|r| r.fingerprint)
            .collect(),
        Err(e) => {
            tracing::error!("cannot read the revoked certificates: {e}");
            Vec::new()
        }
    }
}

/// Keeps a pending device's connection until an administrator approves or rejects it, or
/// until `limits.pending_device_wait`: then the connection is closed and the agent, which
/// reconnects with backoff, waits again on a new one. So no connection is held for ever by
/// a device nobody decides about.
async fn wait_for_approval(
    node: &Node,
    conn: &quinn::Connection,
    send: &mut quinn::SendStream,
    record: DeviceRecord,
) -> Option<DeviceRecord> {
    if wire::write_frame(send, &ServerToAgent::Pending)
        .await
        .is_err()
    {
        return None;
    }
    let woken = node.waiting.register(&record.id);
    let wait = node.config.limits.pending_device_wait;
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let decided = loop {
        tokio::select! {
            _ = woken.notified() => {}
            _ = conn.closed() => break None,
            _ = &mut deadline => {
                let reason = format!("still waiting for approval after {} s; reconnect", wait.as_secs());
                refuse(conn, close::TIMEOUT, &reason);
                break None;
            }
        }
        match node.store.device(&record.id).await {
            Ok(Some(r)) if r.enrollment == crate::model::device::Enrollment::Approved => {
                break Some(r);
            }
            Ok(Some(r)) if r.enrollment == crate::model::device::Enrollment::Rejected => {
                tell_rejected(conn, send, &r).await;
                break None;
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                refuse(conn, close::REMOVED, "the device was deleted");
                break None;
            }
            Err(e) => {
                tracing::error!("cannot read device: {e}");
                break None;
            }
        }
    };
    node.waiting.forget(&record.id);
    decided
}

async fn tell_rejected(
    conn: &quinn::Connection,
    send: &mut quinn::SendStream,
    record: &DeviceRecord,
) {
    let reason = format!(
        "device {} was rejected by an administrator of this server",
        record.name
    );
    if wire::write_frame(send, &ServerToAgent::Rejected { reason })
        .await
        .is_ok()
    {
        let _ = send.finish();
        // Give the frame a moment to leave before the connection goes.
        let _ = timeout(Duration::from_secs(2), conn.closed()).await;
    }
    refuse(conn, close::AUTH, "rejected by an administrator");
}

/// An approved device's link: orders go down (queued ones first), results come up.
async fn session(
    node: &Arc<Node>,
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    record: &DeviceRecord,
    orders: Vec<crate::wire::msg::RunOrder>,
) {
    let id = record.id.clone();
    let key = match link_seal::quic_link_key(conn) {
        Ok(key) => key,
        Err(e) => {
            tracing::error!("no key for the device's link: {e}");
            refuse(conn, close::PROTOCOL, "internal error");
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let conn_id = conn.stable_id();
    if let Some(old) = lock(&node.devices).insert(
        id.clone(),
        LiveDevice {
            conn_id,
            conn: conn.clone(),
            tx: tx.clone(),
        },
    ) {
        old.conn
            .close(close::REPLACED.into(), b"replaced by a newer connection");
    }
    // Read again now that the device is registered above: a run started since its admission
    // is then in this read, or offered through the queue, or both (the agent runs a run once).
    let orders = match node.store.orders_for(&id).await {
        Ok(now) => now,
        Err(e) => {
            tracing::error!("cannot read the device's orders again: {e}");
            orders
        }
    };
    // A run stopped while the device was away: its cancel was not delivered, and the device
    // may still run it. The order goes again (the device runs a run once), then the cancel.
    let run_ids: Vec<u64> = orders.iter().filter_map(|o| o.run.ordered()).collect();
    // Most devices connect with nothing waiting: no read for them.
    let stopped = if run_ids.is_empty() {
        Vec::new()
    } else {
        match node.store.stopped_among(run_ids).await {
            Ok(stopped) => stopped,
            Err(e) => {
                tracing::error!("cannot read which of the device's runs were stopped: {e}");
                Vec::new()
            }
        }
    };
    // A run it starts by itself, stopped while it may not have heard.
    let owed = node.store.owed_cancels(&id).await.unwrap_or_else(|e| {
        tracing::error!("cannot read the cancels owed to the device: {e}");
        Vec::new()
    });
    let local_tasks = node.local_tasks_of(&id).await;
    let schedules = node.schedules_of(&id).await;
    let queued = local_tasks
        .into_iter()
        .map(ServerToAgent::LocalTask)
        .chain(schedules)
        .chain(orders.into_iter().map(ServerToAgent::Run))
        .chain(stopped.into_iter().map(|run_id| ServerToAgent::Cancel {
            run: RunRef::Ordered(run_id),
        }))
        .chain(owed.into_iter().map(|run| ServerToAgent::Cancel { run }));
    for msg in queued {
        let msg = link_seal::to_device(node, &key, msg);
        if wire::write_frame(&mut send, &msg).await.is_err() {
            break;
        }
    }
    // Keeps a frame read in part when the other branch of the select! wins.
    let mut frames = FrameReader::new(MAX_AGENT_FRAME);
    let reason = loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break "replaced by a newer connection".to_string() };
                let msg = link_seal::to_device(node, &key, msg);
                if let Err(e) = wire::write_frame(&mut send, &msg).await {
                    break e.to_string();
                }
            }
            frame = frames.read_frame::<AgentToServer>(&mut recv) => {
                match frame {
                    Ok(Some(AgentToServer::Received { run })) => {
                        if let Err(e) = node.device_progress(&id, run, DeviceProgress::Delivered).await {
                            tracing::error!(%run, "cannot record a delivery: {e}");
                        }
                    }
                    Ok(Some(AgentToServer::Progress { run, percent, paused })) => {
                        let progress = DeviceProgress::Progress { percent, paused };
                        if let Err(e) = node.device_progress(&id, run, progress).await {
                            tracing::error!(%run, "cannot record progress: {e}");
                        }
                    }
                    Ok(Some(AgentToServer::Started { run, at })) => {
                        if let Err(e) = node.device_progress(&id, run, DeviceProgress::Started { at }).await {
                            tracing::error!(%run, "cannot record a start: {e}");
                        }
                    }
                    Ok(Some(AgentToServer::Result(result))) => {
                        let run = result.run;
                        let progress = DeviceProgress::Finished {
                            started: result.started,
                            finished: result.finished,
                            // Cut to what the server keeps (`model::limits`).
                            outcome: result.outcome.capped(),
                        };
                        // Acknowledged once durable, also when it was known already (or its
                        // task is gone), so the device stops resending it.
                        match node.device_progress(&id, run, progress).await {
                            Ok(()) => {
                                if let Err(e) = wire::write_frame(&mut send, &ServerToAgent::ResultStored { run }).await {
                                    break e.to_string();
                                }
                            }
                            Err(e) => {
                                // Not acknowledged: the device keeps it and offers it again
                                // when it reconnects, by when the store may work again.
                                tracing::error!(%run, "cannot store a result: {e}; disconnecting the device so that it sends it again later");
                                refuse(conn, close::UNAVAILABLE, "the server cannot store results now; send them again later");
                                break format!("cannot store a result: {e}");
                            }
                        }
                    }
                    Ok(Some(AgentToServer::LocalTaskEdit { task_id, base_revision, schedule })) => {
                        node.device_edit(&id, task_id, base_revision, schedule).await;
                    }
                    Ok(None) => break "the device closed the link".to_string(),
                    Err(FrameError::Io(e)) => break describe_io(&e),
                    Err(e) => {
                        let msg = format!("device {} ({id}): {e}; closing its connection", record.name);
                        node.event(Severity::Error, EventKind::ProtocolError, msg).await;
                        refuse(conn, e.close_code(), &e.to_string());
                        break e.to_string();
                    }
                }
            }
        }
    };
    tracing::debug!("device link ended: {reason}");
    let current = {
        let mut devices = lock(&node.devices);
        let current = devices.get(&id).is_some_and(|d| d.conn_id == conn_id);
        if current {
            devices.remove(&id);
        }
        current
    };
    if current {
        let seen = now_ms();
        if let Err(e) = node
            .store
            .update_device(&id, move |r| {
                r.last_seen = Some(seen);
                Ok(())
            })
            .await
        {
            tracing::error!("cannot record when the device was last seen: {e}");
        }
    }
}

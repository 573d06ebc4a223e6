//! Accepting connections: address validation and handshake limits under load, the caps on
//! connections in total and per source address, then dispatch by ALPN.
//!
//! Under load an Initial from an address not yet validated is answered with a QUIC Retry,
//! which costs the server no state: only a peer that receives at its address comes back, with
//! a token. Handshakes end after [`HANDSHAKE_TIMEOUT`], not the idle timeout. Refusing is
//! left for validated peers beyond [`MAX_HANDSHAKES`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::timeout;

use super::metrics::Refused;
use super::{Node, admin, agents, fed, lock};
use crate::config::Limits;
use crate::model::{EventKind, Severity};
use crate::net::driver_route::{self, DriverRoute};
use crate::net::tls;
use crate::wire::close;

/// Handshakes in progress beyond which Initials from unvalidated addresses get a Retry.
const RETRY_ABOVE: usize = 64;
/// Handshakes in progress beyond which even validated peers are refused at once. A refused
/// peer backs off with jitter; an overloaded server that accepted everything would instead
/// drop packets, and every dropped handshake packet costs its peer a retransmission timeout.
const MAX_HANDSHAKES: usize = 256;
/// A handshake not done by then is abandoned: a live peer on a slow path needs far less.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the accept loop counts: handshakes in progress, and connections (handshakes
/// included) in total and per source address.
#[derive(Debug, Default)]
pub(super) struct Gate {
    handshakes: AtomicUsize,
    connections: Mutex<Connections>,
}

#[derive(Debug, Default)]
struct Connections {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Gate {
    #[cfg(feature = "test-support")]
    pub(super) fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// A place for one more connection from `ip`, or why there is none.
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Slot, String> {
        let mut conns = lock(&self.connections);
        if conns.total >= limits.max_connections {
            return Err(format!(
                "the server has too many connections (limit {})",
                limits.max_connections
            ));
        }
        let from_ip = conns.by_address.entry(ip).or_default();
        if *from_ip >= limits.max_connections_per_address {
            return Err(format!(
                "too many connections from {ip} (limit {})",
                limits.max_connections_per_address
            ));
        }
        *from_ip += 1;
        conns.total += 1;
        Ok(Slot {
            gate: self.clone(),
            ip,
        })
    }
}

/// One connection counted against the limits until it is dropped.
struct Slot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut conns = lock(&self.gate.connections);
        conns.total = conns.total.saturating_sub(1);
        if let Some(n) = conns.by_address.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                conns.by_address.remove(&self.ip);
            }
        }
    }
}

/// One handshake in progress until it is dropped, however its task ends.
struct Handshake(Arc<Gate>);

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn accept_loop(node: Arc<Node>) {
    let gate = node.gate.clone();
    let limits = node.config.limits;
    while let Some(incoming) = node.endpoint.accept().await {
        let in_progress = gate.handshakes.load(Ordering::Relaxed);
        let loaded = in_progress >= RETRY_ABOVE;
        if loaded && !incoming.remote_address_validated() {
            if let Err(e) = incoming.retry() {
                e.into_incoming().refuse();
            }
            continue;
        }
        if in_progress >= MAX_HANDSHAKES {
            incoming.refuse();
            node.metrics
                .handshake_refused(node.name(), Refused::Overloaded);
            continue;
        }
        let remote = incoming.remote_address();
        let (slot, refusal) = match gate.take(remote.ip(), &limits) {
            Ok(slot) => (Some(slot), None),
            // Under load, a peer over a limit gets no handshake to hear why.
            Err(_) if loaded => {
                incoming.refuse();
                node.metrics
                    .handshake_refused(node.name(), Refused::ConnectionLimit);
                continue;
            }
            Err(why) => (None, Some(why)),
        };
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            Err(e) => {
                tracing::debug!(%remote, "cannot accept: {e}");
                continue;
            }
        };
        // The accept just spawned the connection's driver, on this thread.
        let route = driver_route::take_last_route();
        gate.handshakes.fetch_add(1, Ordering::Relaxed);
        let handshake = Handshake(gate.clone());
        let node = node.clone();
        tokio::spawn(async move {
            let result = timeout(HANDSHAKE_TIMEOUT, connecting).await;
            drop(handshake);
            let conn = match result {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    // A peer that does not trust our CA, a port scan.
                    tracing::debug!(%remote, "handshake failed: {e}");
                    node.metrics.handshake_refused(node.name(), Refused::Tls);
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "handshake timed out");
                    node.metrics
                        .handshake_refused(node.name(), Refused::Timeout);
                    return;
                }
            };
            if let Some(why) = refusal {
                tracing::debug!(%remote, "connection refused: {why}");
                node.metrics
                    .handshake_refused(node.name(), Refused::ConnectionLimit);
                conn.close(close::LIMIT.into(), why.as_bytes());
                return;
            }
            // Counted until the protocol's handler is done with the connection.
            serve(node, conn, slot, route).await;
        });
    }
}

/// Hands a connection to its protocol. Each starts with the endpoint's limits (one
/// bidirectional stream, none unidirectional); the admin API raises them after a login.
async fn serve(
    node: Arc<Node>,
    conn: quinn::Connection,
    slot: Option<Slot>,
    route: Option<DriverRoute>,
) {
    match tls::alpn_of(&conn).as_deref() {
        Some(tls::ALPN_FED) => fed::serve_child(node, conn).await,
        Some(tls::ALPN_FED_PASSIVE) => fed::parent_dialed(node, conn).await,
        // On the admin thread, driver and all, so that it answers while devices keep this
        // runtime busy.
        Some(tls::ALPN_ADMIN) => {
            if let Some(route) = route {
                route.move_to(node.admin.handle.clone());
            }
            node.admin.clone().spawn(async move {
                let _slot = slot;
                admin::serve(node, conn).await;
            });
        }
        Some(tls::ALPN_AGENT) => agents::serve_agent(node, conn).await,
        _ => {
            let remote = conn.remote_address();
            node.metrics
                .handshake_refused(node.name(), Refused::UnknownProtocol);
            let msg = format!("peer {remote} refused: unknown protocol");
            node.event(Severity::Warning, EventKind::PeerRefused, msg)
                .await;
            conn.close(close::UNSUPPORTED.into(), b"unknown protocol");
        }
    }
}

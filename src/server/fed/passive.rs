//! Passive secondaries (`canopy-fed-passive/1`): a secondary in a DMZ that may not connect
//! out is registered on its parent with its address, and the parent connects to it. The
//! link is then the same as any other: the secondary opens its stream and says its hello,
//! the parent answers with its welcome, and both run the same sessions. Only who dials
//! differs, and with it who checks whose certificate when: the parent pins the secondary's
//! registered certificate as a client pins a server's; the secondary checks that the dialer
//! presents the certificate its `[parent]` pins, chained to the CA and not revoked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::{Instrument, info_span};

use super::{HELLO_TIMEOUT, Welcomed, child_handshake, refuse, serve_registered_child};
use super::{serve_welcomed, sleep_until_some};
use crate::model::{EventKind, Fingerprint, SecondaryRecord, Severity};
use crate::net::conn::describe_connection_error;
use crate::net::resolve::AddressResolver;
use crate::net::tls::{self, ClientTrust};
use crate::server::{Node, lock, now_ms};
use crate::sync::link::UpstreamLink;
use crate::wire::close;
use crate::wire::msg::ParentLinkView;

/// How often the parent looks at its registrations even when nothing said they changed.
const RESCAN: Duration = Duration::from_secs(30);

/// Connections the parent opened to this passive secondary, verified, on their way to the
/// loop that serves the link ([`wait_for_parent`]).
pub struct ParentDials {
    tx: mpsc::Sender<quinn::Connection>,
    rx: Mutex<Option<mpsc::Receiver<quinn::Connection>>>,
}

impl Default for ParentDials {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(2);
        ParentDials {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

/// A passive secondary's address as `server add-secondary --passive` takes it: `host:port`
/// with an IP address or a DNS name (an IPv6 address in brackets), port 1 to 65535.
pub fn check_passive_address(address: &str) -> Result<String, String> {
    let address = address.trim();
    split_address(address)?;
    Ok(address.to_string())
}

fn split_address(address: &str) -> Result<(&str, u16), String> {
    let expected = || format!("{address:?} is not HOST:PORT, such as dmz.example.org:13000");
    let (host, port) = address.rsplit_once(':').ok_or_else(expected)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(expected());
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(expected)?;
    Ok((host, port))
}

/// The secondary's side, from the accept loop: a connection that says it is the parent
/// dialing. Refused unless this server is passive and the dialer presents the certificate
/// its `[parent]` pins, chained to the deployment CA and not revoked.
pub async fn parent_dialed(node: Arc<Node>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    if let Err((code, reason)) = check_dialer(&node, &conn).await {
        let msg = format!(
            "a server at {remote} that connected as this server's parent was refused: {reason}"
        );
        node.event(Severity::Warning, EventKind::ParentRefused, msg)
            .await;
        refuse(&conn, code, &reason);
        return;
    }
    if node.parent_dials.tx.try_send(conn.clone()).is_err() {
        refuse(
            &conn,
            close::UNAVAILABLE,
            "busy with another connection from the parent",
        );
    }
}

async fn check_dialer(node: &Node, conn: &quinn::Connection) -> Result<(), (u32, String)> {
    let pin = match &node.config.parent {
        Some(parent) if parent.dial.is_none() => parent.fingerprint,
        _ => {
            return Err((
                close::UNSUPPORTED,
                "this server is not a passive secondary: it connects to its parent itself".into(),
            ));
        }
    };
    let Some(chain) = tls::peer_chain(conn) else {
        return Err((close::UNTRUSTED, "no certificate presented".into()));
    };
    node.ca.verify_client_chain(&chain).map_err(|e| {
        (
            close::UNTRUSTED,
            format!("certificate not issued by this deployment's CA ({e})"),
        )
    })?;
    let fingerprint = Fingerprint::of(&chain[0]);
    if fingerprint != pin {
        return Err((
            close::UNTRUSTED,
            format!("certificate {fingerprint} is not the parent's this server pins ({pin})"),
        ));
    }
    match node.store.revocation(fingerprint).await {
        Ok(None) => Ok(()),
        Ok(Some(revocation)) => Err((close::REVOKED, revocation.describe())),
        Err(e) => {
            tracing::error!("cannot look up revocations: {e}");
            Err((close::PROTOCOL, "internal error".into()))
        }
    }
}

/// The passive secondary's link to its parent: each connection the parent opens (checked
/// by [`parent_dialed`]) is served as the link, a newer one replacing the one before.
pub async fn wait_for_parent(node: Arc<Node>) {
    let Some(mut dials) = lock(&node.parent_dials.rx).take() else {
        return;
    };
    let mut shutdown = node.shutdown.subscribe();
    let mut last_error: Option<String> = None;
    let mut next: Option<quinn::Connection> = None;
    loop {
        publish_waiting(&node, None, last_error.clone());
        let conn = match next.take() {
            Some(conn) => conn,
            None => tokio::select! {
                conn = dials.recv() => match conn {
                    Some(conn) => conn,
                    None => return,
                },
                _ = shutdown.changed() => return,
            },
        };
        let target = conn.remote_address().to_string();
        let welcomed: Welcomed = match child_handshake(&node, conn.clone()).await {
            Ok(welcomed) => welcomed,
            Err(e) => {
                if last_error.as_deref() != Some(e.as_str()) {
                    let msg = format!("the parent's connection from {target} failed: {e}");
                    node.event(Severity::Warning, EventKind::ParentRefused, msg)
                        .await;
                }
                last_error = Some(e);
                continue;
            }
        };
        last_error = None;
        publish_waiting(&node, Some(&target), None);
        let served = serve_welcomed(&node, welcomed, &target);
        tokio::pin!(served);
        loop {
            tokio::select! {
                _ = &mut served => break,
                newer = dials.recv() => match newer {
                    // The parent dialed again: its old connection is gone for it.
                    Some(newer) => {
                        conn.close(close::REPLACED.into(), b"replaced by a newer connection");
                        if let Some(older) = next.replace(newer) {
                            older.close(close::REPLACED.into(), b"replaced by a newer connection");
                        }
                    }
                    None => return,
                },
            }
        }
        if node.is_shutting_down() {
            return;
        }
    }
}

/// What `server status` says of a passive secondary's link: up from `connected`, or
/// waiting for the parent.
fn publish_waiting(node: &Node, connected: Option<&str>, last_error: Option<String>) {
    *lock(&node.upstream) = Some(ParentLinkView {
        address: match connected {
            Some(from) => format!("passive: the parent connected from {from}"),
            None => "passive: waiting for the parent to connect".into(),
        },
        health: if connected.is_some() { "up" } else { "waiting" }.into(),
        consecutive_failures: 0,
        last_error,
        connected_since: connected.map(|_| now_ms()),
    });
}

/// The parent's side: a dial loop for each passive secondary registered here, started as
/// they are registered; each ends when its registration is removed.
pub async fn dial_passive_secondaries(node: Arc<Node>) {
    let mut changed = node.subtree_changed.subscribe();
    let mut shutdown = node.shutdown.subscribe();
    let mut dialing: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        match node.store.secondaries().await {
            Ok(records) => {
                dialing.retain(|_, loop_| !loop_.is_finished());
                for record in records {
                    if record.passive.is_none() || dialing.contains_key(&record.name) {
                        continue;
                    }
                    let span = info_span!("passive secondary", secondary = %record.name);
                    let task = dial_secondary(node.clone(), record.name.clone()).instrument(span);
                    dialing.insert(record.name, tokio::spawn(task));
                }
            }
            Err(e) => tracing::error!("cannot read the secondaries: {e}"),
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep(RESCAN) => {}
            _ = shutdown.changed() => break,
        }
    }
    for (_, loop_) in dialing {
        loop_.abort();
    }
}

/// Keeps the link to the passive secondary `name` up, dialing with backoff, while it is
/// registered here as passive.
async fn dial_secondary(node: Arc<Node>, name: String) {
    let mut link = UpstreamLink::new(node.config.link, Instant::now());
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut resolver = AddressResolver::system();
    let mut shutdown = node.shutdown.subscribe();
    let mut last_refusal: Option<String> = None;
    loop {
        tokio::select! {
            _ = sleep_until_some(link.poll_timeout()) => {}
            _ = shutdown.changed() => return,
        }
        if node.is_shutting_down() {
            return;
        }
        if !link.poll_attempt(Instant::now()) {
            continue;
        }
        let record = match node.store.secondaries().await {
            Ok(records) => records.into_iter().find(|r| r.name == name),
            Err(e) => {
                tracing::error!("cannot read the secondaries: {e}");
                None
            }
        };
        let Some(record) = record else { return };
        let Some(address) = record.passive.clone() else {
            return;
        };
        let outcome = match dial(&node, &mut resolver, &record, &address).await {
            Ok(conn) => {
                let result =
                    serve_registered_child(node.clone(), conn.clone(), record.fingerprint, record)
                        .await;
                conn.close(close::SHUTDOWN.into(), b"link closed");
                result
            }
            Err(e) => Err(e),
        };
        let error = match outcome {
            Ok(()) => {
                last_refusal = None;
                link.handle_connected(Instant::now());
                "the link ended".to_string()
            }
            Err(e) => {
                // Said once per cause, as a secondary says its parent's refusals.
                if last_refusal.as_deref() != Some(e.as_str()) && !node.is_shutting_down() {
                    let msg =
                        format!("cannot connect to the passive secondary {name} at {address}: {e}");
                    node.event(Severity::Warning, EventKind::SecondaryRefused, msg)
                        .await;
                    last_refusal = Some(e.clone());
                }
                e
            }
        };
        link.handle_failure(Instant::now(), error, &mut rng);
    }
}

/// Dials the passive secondary `record` at `address`; it must present its registered
/// certificate, chained to the deployment CA and not revoked.
async fn dial(
    node: &Node,
    resolver: &mut AddressResolver,
    record: &SecondaryRecord,
    address: &str,
) -> Result<quinn::Connection, String> {
    let (host, port) = split_address(address)?;
    let addr = resolver
        .resolve(host, port, node.listen)
        .await
        .map_err(|e| e.to_string())?;
    match node.store.revocation(record.fingerprint).await {
        Ok(None) => {}
        Ok(Some(revocation)) => return Err(revocation.describe()),
        Err(e) => return Err(format!("cannot read the revoked certificates: {e}")),
    }
    let trust = ClientTrust {
        roots: node.ca_certs.clone(),
        pin: Some(record.fingerprint),
        expected_name: None,
    };
    let identity = (node.identity.0.clone(), node.identity.1.clone_key());
    let client = tls::client_config(
        &trust,
        Some(identity),
        tls::ALPN_FED_PASSIVE,
        &node.transport,
    )
    .map_err(|e| e.to_string())?;
    let connecting = node
        .endpoint
        .connect_with(client, addr, "canopy-secondary")
        .map_err(|e| e.to_string())?;
    timeout(HELLO_TIMEOUT, connecting)
        .await
        .map_err(|_| "timed out connecting".to_string())?
        .map_err(|e| describe_connection_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_addresses() {
        assert_eq!(
            check_passive_address(" dmz.example.org:13000 ").unwrap(),
            "dmz.example.org:13000"
        );
        assert_eq!(split_address("[::1]:13001").unwrap(), ("::1", 13001));
        assert_eq!(split_address("127.0.0.1:1").unwrap(), ("127.0.0.1", 1));
        for bad in ["dmz", ":13000", "dmz:0", "dmz:70000", "dmz:x", "a b:1", ""] {
            let e = check_passive_address(bad).unwrap_err();
            assert!(e.contains("is not HOST:PORT"), "{bad}: {e}");
        }
    }
}

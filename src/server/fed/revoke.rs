//! Revoking a server certificate by hand (`canopy server revoke`): for this server's whole
//! subtree, whether or not it is registered here. At the primary, that is the whole
//! deployment; removing a secondary revokes only below the server that removes it.

use std::sync::Arc;

use super::super::auth::Session;
use super::super::reply::{error, internal};
use super::super::{Node, lock, now_ms};
use super::refuse;
use crate::model::{EventKind, Fingerprint, Revocation, Severity};
use crate::net::pki;
use crate::wire::close;
use crate::wire::msg::{AdminResponse, ErrorKind};

pub(in crate::server) async fn revoke_certificate(
    node: &Arc<Node>,
    session: &Session,
    name: String,
    cert_pem: String,
    reason: String,
) -> AdminResponse {
    if let Err(e) = crate::model::check_display_name("a certificate's name", &name) {
        return error(ErrorKind::InvalidInput, e);
    }
    let cert_der = match pki::parse_single_cert_pem(&cert_pem) {
        Ok(der) => der,
        Err(e) => return error(ErrorKind::InvalidInput, format!("certificate: {e}")),
    };
    let fingerprint = Fingerprint::of(&cert_der);
    if fingerprint == node.fingerprint {
        return error(
            ErrorKind::InvalidInput,
            "that is this server's own certificate: it cannot revoke itself",
        );
    }
    if node
        .config
        .parent
        .as_ref()
        .is_some_and(|p| p.fingerprint == fingerprint)
    {
        return error(
            ErrorKind::InvalidInput,
            "that is the parent server's certificate: revoke it at a server above it",
        );
    }
    let reason = match reason.trim() {
        "" => format!("revoked by {}", session.user),
        text => format!("revoked by {}: {text}", session.user),
    };
    let revocation = Revocation {
        fingerprint,
        name,
        by: node.name().to_string(),
        revoked_at: now_ms(),
        reason,
    };
    match node.store.revoke(revocation.clone()).await {
        Ok(true) => {}
        Ok(false) => {
            return AdminResponse::Done {
                message: format!("certificate {fingerprint} was revoked already"),
            };
        }
        Err(e) => return internal(e),
    }
    let msg = format!(
        "{}; it goes down the tree to every server below",
        revocation.describe()
    );
    node.event(Severity::Warning, EventKind::CertificateRevoked, msg)
        .await;
    close_revoked_link(node, fingerprint).await;
    AdminResponse::Done {
        message: format!(
            "certificate {fingerprint} revoked here and on every server below (as they connect); \
             a server presenting it is refused as a secondary, and agents refuse it as their \
             server"
        ),
    }
}

/// Closes the link of the secondary registered here with the revoked certificate
/// `fingerprint`, if one is connected; it is refused from now on.
pub(super) async fn close_revoked_link(node: &Node, fingerprint: Fingerprint) {
    let registered = match node.store.secondary_by_fingerprint(fingerprint).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!("cannot look up secondary: {e}");
            None
        }
    };
    let Some(record) = registered else {
        return;
    };
    let live = lock(&node.children).remove(&record.name);
    if let Some(conn) = live.and_then(|c| c.conn) {
        refuse(&conn, close::REVOKED, "certificate revoked");
        node.bump_subtree();
    }
}

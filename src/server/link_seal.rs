//! Task account passwords crossing this server's links: re-sealed from this server's key to
//! the link's as they go out, and from the link's to this server's as they come in
//! (`store::sealing`). A password that does not open is dropped with an error in the log,
//! and the message goes on without it: the device's run then fails saying that the account
//! has no password, which tells an administrator what to fix.

use std::sync::Arc;

use super::Node;
use crate::store::sealing::{SecretKey, reseal_account, reseal_change};
use crate::wire::msg::{ParentMsg, ServerToAgent};

/// The key of a QUIC link, from its TLS session.
pub(super) fn quic_link_key(conn: &quinn::Connection) -> Result<Arc<SecretKey>, String> {
    crate::net::link_key::link_key(conn).map(|bytes| Arc::new(SecretKey::from_bytes(&bytes)))
}

/// A change for a child, its task's password sealed for the link.
pub(super) fn to_child(node: &Node, link: &SecretKey, mut msg: ParentMsg) -> ParentMsg {
    if let ParentMsg::Change { change, .. } = &mut msg
        && let Err(e) = reseal_change(change, &node.secrets, link)
    {
        tracing::error!("a task sent to a secondary goes without its password: {e:#}");
    }
    msg
}

/// A change from the parent, its task's password sealed with this server's key.
pub(super) fn from_parent(node: &Node, link: &SecretKey, mut msg: ParentMsg) -> ParentMsg {
    if let ParentMsg::Change { change, .. } = &mut msg
        && let Err(e) = reseal_change(change, link, &node.secrets)
    {
        tracing::error!("a task from the parent is kept without its password: {e:#}");
    }
    msg
}

/// A message for a device, the password of the task it runs sealed for the link.
pub(super) fn to_device(node: &Node, link: &SecretKey, mut msg: ServerToAgent) -> ServerToAgent {
    let account = match &mut msg {
        ServerToAgent::Run(order) => &mut order.account,
        ServerToAgent::ScheduledTask(def) => &mut def.account,
        _ => return msg,
    };
    if let Err(e) = reseal_account(account, &node.secrets, link) {
        tracing::error!("a task sent to a device goes without its password: {e:#}");
    }
    msg
}

//! Servers of the tree as one server sees them.

use serde::{Deserialize, Serialize};

use super::UnixMillis;
use crate::model::Fingerprint;

/// A server certificate revoked in the deployment: when a secondary's registration is
/// removed, its certificate is revoked at that server and the revocation goes down the tree
/// in the change log. Every server that holds it refuses the certificate as a federation
/// peer, and tells its agents, which refuse a server presenting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub fingerprint: Fingerprint,
    /// The name the certificate was registered under where it was revoked.
    pub name: String,
    /// The server where it was revoked.
    pub by: String,
    pub revoked_at: UnixMillis,
    pub reason: String,
}

impl Revocation {
    /// The revocation in words, for events and refusals.
    pub fn describe(&self) -> String {
        format!(
            "certificate {} (registered as {}) revoked by {} at {}: {}",
            self.fingerprint,
            self.name,
            self.by,
            super::format_time(self.revoked_at),
            self.reason
        )
    }
}

/// How a server of the tree looks from the server asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum ServerStatus {
    /// Connected: its link to its parent is up (or it is the server asked).
    Active,
    /// Registered, but its link to its parent is down.
    Inactive,
    /// Below a server whose link is down: its state is not known from here.
    Unreachable,
}

impl ServerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Active => "Active",
            ServerStatus::Inactive => "Inactive",
            ServerStatus::Unreachable => "Unreachable",
        }
    }
}

/// One row of `canopy server list`: a server of the subtree below the server asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerRow {
    /// Display names from the server asked down to this one, joined by '/'.
    pub path: String,
    /// 0 for the server asked, 1 for its secondaries, and so on.
    pub depth: u32,
    pub name: String,
    /// The administration group of the parent this server is placed in (empty at depth 0).
    pub group: String,
    pub status: ServerStatus,
    pub version: String,
    /// The server's installation, as it last said (empty: not known yet); a reinstalled
    /// server has a new one.
    pub instance_id: String,
    pub address: Option<String>,
    pub last_connected: Option<UnixMillis>,
    /// Devices managed by that server, as last reported.
    pub devices: u64,
    /// A virtual server (a tenant hosted by its parent) rather than a physical one.
    pub virtual_server: bool,
    /// A passive secondary: its parent connects to it (a DMZ), rather than it to its parent.
    pub passive: bool,
}

/// The parent's record of a registered secondary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondaryRecord {
    pub name: String,
    /// The group of this server it is placed in, by id: a rename or a move of the group
    /// (or of a group above it) leaves it placed where it was.
    pub group_id: u64,
    /// The secondary's certificate (DER) as registered by the administrator.
    pub cert_der: Vec<u8>,
    pub fingerprint: Fingerprint,
    pub registered_at: UnixMillis,
    pub last_connected: Option<UnixMillis>,
    /// Software version the secondary reported when it last connected.
    pub version: String,
    /// The installation the secondary said it is when it last connected (empty: it has not
    /// connected yet). Made with its database: a reinstalled secondary has a new one.
    pub instance_id: String,
    /// Address the secondary last connected from.
    pub address: Option<String>,
    /// The secondary's own subtree as it last reported it, paths relative to the secondary.
    pub subtree: Vec<ServerRow>,
    /// Devices the secondary manages, as it last reported.
    pub devices: u64,
    /// A virtual server hosted by this server: no certificate, linked in-process.
    pub virtual_server: bool,
    /// A virtual server's: whether it runs, and the token its devices enroll with.
    pub disabled: bool,
    pub enrollment_token: String,
    /// A passive secondary's address (`host:port`): this server connects to it there, and
    /// it does not connect out. `None`: the secondary connects to this server.
    pub passive: Option<String>,
}

/// What an administrator account may do.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub enum Role {
    /// Everything, including accounts and the hierarchy.
    Administrator,
    /// Day-to-day work: groups, devices, tasks; not accounts or the hierarchy.
    Operator,
    /// Read only.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Result<Role, String> {
        match s.to_ascii_lowercase().as_str() {
            "administrator" | "admin" => Ok(Role::Administrator),
            "operator" => Ok(Role::Operator),
            "auditor" => Ok(Role::Auditor),
            other => Err(format!(
                "unknown role {other:?}; expected administrator, operator or auditor"
            )),
        }
    }
}

/// An internal administrator account of a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub name: String,
    pub role: Role,
    /// Argon2id hash in PHC string form; the password itself is never stored.
    pub password_hash: String,
    pub created: UnixMillis,
}

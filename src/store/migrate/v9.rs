//! Schema 9 to 10: a secondary's record says whether it is passive (its parent connects to
//! it, at the address it holds), and each row of the subtree it reported whether that server
//! is. Records stored before are of secondaries that connect out. The shapes of schema 9 are
//! declared here; the earlier steps write them.

use serde::{Deserialize, Serialize};

use super::v5::rewrite;
use crate::model::{Fingerprint, SecondaryRecord, ServerRow, ServerStatus, UnixMillis};
use crate::store::StoreError;
use crate::store::schema::SECONDARIES;

#[derive(Serialize, Deserialize)]
pub(super) struct ServerRowV9 {
    pub path: String,
    pub depth: u32,
    pub name: String,
    pub group: String,
    pub status: ServerStatus,
    pub version: String,
    pub instance_id: String,
    pub address: Option<String>,
    pub last_connected: Option<UnixMillis>,
    pub devices: u64,
    pub virtual_server: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SecondaryV9 {
    pub name: String,
    pub group_id: u64,
    pub cert_der: Vec<u8>,
    pub fingerprint: Fingerprint,
    pub registered_at: UnixMillis,
    pub last_connected: Option<UnixMillis>,
    pub version: String,
    pub instance_id: String,
    pub address: Option<String>,
    pub subtree: Vec<ServerRowV9>,
    pub devices: u64,
    pub virtual_server: bool,
    pub disabled: bool,
    pub enrollment_token: String,
}

impl ServerRowV9 {
    fn now(self) -> ServerRow {
        ServerRow {
            path: self.path,
            depth: self.depth,
            name: self.name,
            group: self.group,
            status: self.status,
            version: self.version,
            instance_id: self.instance_id,
            address: self.address,
            last_connected: self.last_connected,
            devices: self.devices,
            virtual_server: self.virtual_server,
            passive: false,
        }
    }
}

impl SecondaryV9 {
    fn now(self) -> SecondaryRecord {
        SecondaryRecord {
            name: self.name,
            group_id: self.group_id,
            cert_der: self.cert_der,
            fingerprint: self.fingerprint,
            registered_at: self.registered_at,
            last_connected: self.last_connected,
            version: self.version,
            instance_id: self.instance_id,
            address: self.address,
            subtree: self.subtree.into_iter().map(ServerRowV9::now).collect(),
            devices: self.devices,
            virtual_server: self.virtual_server,
            disabled: self.disabled,
            enrollment_token: self.enrollment_token,
            passive: None,
        }
    }
}

pub(in crate::store) fn from_9(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    rewrite(txn, SECONDARIES, SecondaryV9::now)
}

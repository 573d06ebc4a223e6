//! Schema 8 to 9: the record of a secondary, and each row of the subtree it reported, carry
//! the server's instance id. Records stored before have none until the server connects
//! again (an empty id). Events carry the path of the server they happened on: those stored
//! before happened here. The shapes of schema 8 are declared here; the earlier steps write
//! them.

use serde::{Deserialize, Serialize};

use super::v5::rewrite;
use super::v9::{SecondaryV9, ServerRowV9};
use crate::model::{Event, EventKind, Fingerprint, ServerStatus, Severity, UnixMillis};
use crate::store::schema::{EVENTS, SECONDARIES};
use crate::store::{StoreError, put_u64};

#[derive(Serialize, Deserialize)]
pub(super) struct ServerRowV8 {
    pub path: String,
    pub depth: u32,
    pub name: String,
    pub group: String,
    pub status: ServerStatus,
    pub version: String,
    pub address: Option<String>,
    pub last_connected: Option<UnixMillis>,
    pub devices: u64,
    pub virtual_server: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SecondaryV8 {
    pub name: String,
    pub group_id: u64,
    pub cert_der: Vec<u8>,
    pub fingerprint: Fingerprint,
    pub registered_at: UnixMillis,
    pub last_connected: Option<UnixMillis>,
    pub version: String,
    pub address: Option<String>,
    pub subtree: Vec<ServerRowV8>,
    pub devices: u64,
    pub virtual_server: bool,
    pub disabled: bool,
    pub enrollment_token: String,
}

impl ServerRowV8 {
    fn now(self) -> ServerRowV9 {
        ServerRowV9 {
            path: self.path,
            depth: self.depth,
            name: self.name,
            group: self.group,
            status: self.status,
            version: self.version,
            instance_id: String::new(),
            address: self.address,
            last_connected: self.last_connected,
            devices: self.devices,
            virtual_server: self.virtual_server,
        }
    }
}

impl SecondaryV8 {
    fn now(self) -> SecondaryV9 {
        SecondaryV9 {
            name: self.name,
            group_id: self.group_id,
            cert_der: self.cert_der,
            fingerprint: self.fingerprint,
            registered_at: self.registered_at,
            last_connected: self.last_connected,
            version: self.version,
            instance_id: String::new(),
            address: self.address,
            subtree: self.subtree.into_iter().map(ServerRowV8::now).collect(),
            devices: self.devices,
            virtual_server: self.virtual_server,
            disabled: self.disabled,
            enrollment_token: self.enrollment_token,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct EventV8 {
    pub seq: u64,
    pub time: UnixMillis,
    pub severity: Severity,
    pub kind: EventKind,
    pub message: String,
}

pub(in crate::store) fn from_8(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    rewrite(txn, SECONDARIES, SecondaryV8::now)?;
    if super::has_table(txn, redb::TableHandle::name(&EVENTS))? {
        let mut table = txn.open_table(EVENTS)?;
        let old: Vec<(u64, EventV8)> = crate::store::entries_u64(&table, 0.., usize::MAX)?;
        for (seq, e) in old {
            let event = Event {
                seq: e.seq,
                time: e.time,
                severity: e.severity,
                kind: e.kind,
                message: e.message,
                origin: Vec::new(),
            };
            put_u64(&mut table, seq, &event)?;
        }
    }
    Ok(())
}

//! Files of an older schema, brought to [`super::SCHEMA_VERSION`] in the transaction that
//! opens them. Each step decodes the values of the old shape, declared here, and writes
//! them in the new one.

use redb::{TableHandle, WriteTransaction};
use serde::Deserialize;

use super::schema::{
    CHANGE_LOG, DEVICES, GROUPS, PENDING_DEVICES, REVOCATIONS, RUN_ROWS, SECONDARIES,
};
use super::{StoreError, entries, put};
use crate::model::device::{DeviceRecord, Enrollment};
use crate::model::group::GroupTree;
use crate::model::{Fingerprint, UnixMillis};

/// A secondary as schema 2 stored it: placed in a group by path.
#[derive(Deserialize)]
struct SecondaryV2 {
    name: String,
    group: String,
    cert_der: Vec<u8>,
    fingerprint: Fingerprint,
    registered_at: UnixMillis,
    last_connected: Option<UnixMillis>,
    version: String,
    address: Option<String>,
    subtree: Vec<v8::ServerRowV8>,
    devices: u64,
    virtual_server: bool,
    disabled: bool,
    enrollment_token: String,
}

/// A statistics row as schema 2 stored it: without the epoch of the server it describes.
#[derive(Deserialize)]
struct StatsRowV2 {
    path: Vec<String>,
    depth: u32,
    task_id: u64,
    run_id: u64,
    counters: v6::CountersV6,
    version: u64,
}

#[cfg(test)]
mod tests;
mod v5;
#[cfg(test)]
mod v5_tests;
mod v6;
#[cfg(test)]
mod v6_tests;
mod v7;
#[cfg(test)]
mod v7_tests;
mod v8;
#[cfg(test)]
mod v8_tests;
mod v9;
#[cfg(test)]
mod v9_tests;
pub(super) use v5::from_5;
pub(super) use v6::from_6;
pub(super) use v7::from_7;
pub(super) use v8::from_8;
pub(super) use v9::from_9;

fn has_table(txn: &WriteTransaction, name: &str) -> Result<bool, StoreError> {
    Ok(txn.list_tables()?.any(|t| t.name() == name))
}

/// Schema 2 to 3: secondaries are placed by group id (a path that names no group any more
/// becomes id 0, which names none either); statistics rows get epoch 0, which any row of a
/// server that reports again replaces.
pub(super) fn from_2(txn: &WriteTransaction) -> Result<(), StoreError> {
    if has_table(txn, SECONDARIES.name())? {
        let tree = if has_table(txn, GROUPS.name())? {
            super::groups::tree_in(txn)?
        } else {
            GroupTree::new(Vec::new())
        };
        let mut table = txn.open_table(SECONDARIES)?;
        let old: Vec<(String, SecondaryV2)> = entries(&table)?;
        for (key, s) in old {
            let record = v8::SecondaryV8 {
                name: s.name,
                group_id: tree.resolve(&s.group).unwrap_or(0),
                cert_der: s.cert_der,
                fingerprint: s.fingerprint,
                registered_at: s.registered_at,
                last_connected: s.last_connected,
                version: s.version,
                address: s.address,
                subtree: s.subtree,
                devices: s.devices,
                virtual_server: s.virtual_server,
                disabled: s.disabled,
                enrollment_token: s.enrollment_token,
            };
            put(&mut table, &key, &record)?;
        }
    }
    if has_table(txn, RUN_ROWS.name())? {
        let mut table = txn.open_table(RUN_ROWS)?;
        let old: Vec<(String, StatsRowV2)> = entries(&table)?;
        for (key, r) in old {
            let row = v6::StatsRowV6 {
                path: r.path,
                depth: r.depth,
                task_id: r.task_id,
                run_id: r.run_id,
                counters: r.counters,
                version: r.version,
                epoch: 0,
            };
            put(&mut table, &key, &row)?;
        }
    }
    Ok(())
}

/// Schema 3 to 4: server files get the table of revoked certificates, and their change logs
/// may hold revocations (a new kind of entry, which a binary of schema 3 could not read;
/// hence the new version). Nothing stored changes shape. Agent files get their tables of
/// pinned and revoked servers when the agent opens them.
pub(super) fn from_3(txn: &WriteTransaction) -> Result<(), StoreError> {
    if has_table(txn, CHANGE_LOG.name())? {
        txn.open_table(REVOCATIONS)?;
    }
    Ok(())
}

/// Schema 4 to 5: server files get the set of pending devices, filled from the registry, so
/// that the cap on them (`limits.max_pending_devices`) counts the ones that already wait.
pub(super) fn from_4(txn: &WriteTransaction) -> Result<(), StoreError> {
    if !has_table(txn, DEVICES.name())? {
        return Ok(());
    }
    let pending: Vec<String> = entries::<DeviceRecord>(&txn.open_table(DEVICES)?)?
        .into_iter()
        .filter(|(_, device)| device.enrollment == Enrollment::Pending)
        .map(|(id, _)| id)
        .collect();
    let mut table = txn.open_table(PENDING_DEVICES)?;
    for id in pending {
        put(&mut table, &id, &())?;
    }
    Ok(())
}

//! The server file's tables and the keys of their rows, in one place: every module of the
//! store opens its tables from here, and the operations that span tables sit above it.

use redb::TableDefinition;

use super::{SeqTable, StoreError, StrTable, values};
use crate::model::device::DeviceRecord;
use crate::model::task::{RunId, TaskId};

/// Devices by id.
pub(crate) const DEVICES: StrTable = TableDefinition::new("devices");
/// Device id by certificate fingerprint, so a key is never enrolled twice.
pub(crate) const FINGERPRINTS: StrTable = TableDefinition::new("device_fingerprints");
/// The ids of the devices waiting for an administrator's decision (values empty), so that
/// their number is known without reading the registry.
pub(crate) const PENDING_DEVICES: StrTable = TableDefinition::new("pending_devices");
/// Orders not yet answered, by "device id/run id".
pub(crate) const ORDERS: StrTable = TableDefinition::new("device_orders");
/// Cancels of runs a device starts by itself, stopped while it may not have heard, by
/// "device id/run id": sent each time it connects until it reports on that run.
pub(crate) const OWED_CANCELS: StrTable = TableDefinition::new("owed_cancels");
/// The registry in name order: `name \0 id` to `()` (see `store::devices::order`).
pub(crate) const DEVICE_ORDER: StrTable = TableDefinition::new("device_order");
/// Groups by id.
pub(crate) const GROUPS: SeqTable = TableDefinition::new("groups");
/// Registered secondaries by display name.
pub(crate) const SECONDARIES: StrTable = TableDefinition::new("secondaries");
/// Administrator accounts by name.
pub(crate) const ACCOUNTS: StrTable = TableDefinition::new("accounts");
/// The event log by sequence number.
pub(crate) const EVENTS: SeqTable = TableDefinition::new("events");
/// What each of this server's own events is about, by its sequence number
/// ([`crate::store::rights::Guarded`]): a list shows an event only to those who may read
/// that. Events about nothing in particular, and those from below, have no row.
pub(crate) const EVENT_ABOUT: SeqTable = TableDefinition::new("event_about");
/// By child name: its log epoch and the highest of its events held here, `(u64, u64)`.
pub(crate) const EVENT_CURSORS: StrTable = TableDefinition::new("event_cursors");
/// The notification channels administrators added, by name
/// ([`crate::model::notify::StoredChannel`]); those of the config are not stored.
pub(crate) const NOTIFY_CHANNELS: StrTable = TableDefinition::new("notify_channels");
/// Where each notification channel is in the event log, by channel name
/// ([`crate::model::notify::ChannelCursor`]); config channels' too.
pub(crate) const NOTIFY_CURSORS: StrTable = TableDefinition::new("notify_cursors");
/// Rights lists ([`crate::model::rights::Acl`]) of groups (`g/` and the id, 20 digits) and
/// of tasks (`t/` and the id): see `store::rights`.
pub(crate) const RIGHTS: StrTable = TableDefinition::new("rights");
/// Tasks by id.
pub(crate) const TASKS: StrTable = TableDefinition::new("tasks");
/// Task id by display name: names are unique on a server.
pub(crate) const TASK_NAMES: StrTable = TableDefinition::new("task_names");
/// Runs by id.
pub(crate) const RUNS: StrTable = TableDefinition::new("task_runs");
/// The run of each scheduled occurrence made here, by "task id/key" (the civil date and time
/// the schedule names, the same on every server).
pub(crate) const OCCURRENCE_RUNS: StrTable = TableDefinition::new("occurrence_runs");
/// The last occurrence of each task the server's own scheduler dealt with, by task id.
pub(crate) const SCHEDULE_MARKS: StrTable = TableDefinition::new("schedule_marks");
/// The runs of chained tasks each run started, by "run id/chained run id" (empty values).
pub(crate) const CHAIN_RUNS: StrTable = TableDefinition::new("chain_runs");
/// Each task's revisions by "task id/revision" ([`crate::model::revision::TaskRevision`]).
pub(crate) const TASK_REVISIONS: StrTable = TableDefinition::new("task_revisions");
/// The deleted tasks kept with their history, by task id: when each was deleted.
pub(crate) const DELETED_TASKS: StrTable = TableDefinition::new("deleted_tasks");
/// Per-device records by "run id/device id".
pub(crate) const RUN_DEVICES: StrTable = TableDefinition::new("run_devices");
/// This server's change log: sequence number to [`LogEntry`].
pub(crate) const CHANGE_LOG: SeqTable = TableDefinition::new("change_log");
/// What each registered child applied of this server's change log, by its name: (epoch,
/// sequence number), kept so that the log can be trimmed while children are away.
pub(crate) const CHILD_LOG_ACKS: StrTable = TableDefinition::new("child_log_acks");
/// Local task id by the parent's task id.
pub(crate) const INHERITED_TASKS: StrTable = TableDefinition::new("inherited_tasks");
/// Local run id by the parent's run id.
pub(crate) const INHERITED_RUNS: StrTable = TableDefinition::new("inherited_runs");
/// Statistics rows reported from below, by "run id/path".
pub(crate) const RUN_ROWS: StrTable = TableDefinition::new("run_rows");
/// Runs whose end in this server's whole subtree is in the event log, by run id: the time
/// it was (a `run-finished` event is written once per run).
pub(crate) const RUNS_FINISHED: StrTable = TableDefinition::new("runs_finished");
/// Server certificates revoked in the deployment, by fingerprint (hex).
pub(crate) const REVOCATIONS: StrTable = TableDefinition::new("revocations");
/// While resynchronising with the parent: what an entry of its new log confirmed, by
/// "t/parent task id" and "r/parent run id" (empty values).
pub(crate) const RESYNC_CONFIRMED: StrTable = TableDefinition::new("resync_confirmed");

pub(crate) fn task_key(id: TaskId) -> String {
    format!("{id:020}")
}

pub(crate) fn run_key(id: RunId) -> String {
    format!("{id:020}")
}

pub(crate) fn record_key(run_id: RunId, device_id: &str) -> String {
    format!("{run_id:020}/{device_id}")
}

pub(crate) fn occurrence_key(
    task_id: TaskId,
    key: crate::model::schedule::LocalDateTime,
) -> String {
    format!("{task_id:020}/{key}")
}

pub(crate) fn order_key(device_id: &str, run_id: RunId) -> String {
    format!("{device_id}/{run_id:020}")
}

pub(crate) fn id_key(id: u64) -> String {
    format!("{id:020}")
}

pub(crate) fn row_key(run_id: RunId, path: &[String]) -> String {
    format!("{run_id:020}/{}", path.join("/"))
}

/// Reading a table's values the same way from a read or a write transaction.
pub(crate) trait OpenTables {
    fn values<V: serde::de::DeserializeOwned>(&self, table: StrTable)
    -> Result<Vec<V>, StoreError>;
    /// The values whose keys start with `prefix`, in key order.
    fn values_with_prefix<V: serde::de::DeserializeOwned>(
        &self,
        table: StrTable,
        prefix: &str,
    ) -> Result<Vec<V>, StoreError>;
}

impl OpenTables for redb::ReadTransaction {
    fn values<V: serde::de::DeserializeOwned>(
        &self,
        table: StrTable,
    ) -> Result<Vec<V>, StoreError> {
        values(&self.open_table(table)?)
    }

    fn values_with_prefix<V: serde::de::DeserializeOwned>(
        &self,
        table: StrTable,
        prefix: &str,
    ) -> Result<Vec<V>, StoreError> {
        let entries = super::entries_with_prefix::<V>(&self.open_table(table)?, prefix)?;
        Ok(entries.into_iter().map(|(_, v)| v).collect())
    }
}

impl OpenTables for redb::WriteTransaction {
    fn values<V: serde::de::DeserializeOwned>(
        &self,
        table: StrTable,
    ) -> Result<Vec<V>, StoreError> {
        values(&self.open_table(table)?)
    }

    fn values_with_prefix<V: serde::de::DeserializeOwned>(
        &self,
        table: StrTable,
        prefix: &str,
    ) -> Result<Vec<V>, StoreError> {
        let entries = super::entries_with_prefix::<V>(&self.open_table(table)?, prefix)?;
        Ok(entries.into_iter().map(|(_, v)| v).collect())
    }
}

/// How many devices are placed directly in each group, in one pass over the registry.
pub(crate) fn count_by_group(
    txn: &impl OpenTables,
) -> Result<std::collections::HashMap<u64, u64>, StoreError> {
    let mut counts = std::collections::HashMap::new();
    for device in txn.values::<DeviceRecord>(DEVICES)? {
        *counts.entry(device.group_id).or_insert(0) += 1;
    }
    Ok(counts)
}

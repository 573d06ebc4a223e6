//! This server's change log: what its children must apply, appended in the transaction of
//! the change it announces, with what `sync::inherit` says to log.

use redb::{ReadableDatabase, WriteTransaction};

use super::schema::CHANGE_LOG;
use super::{
    META, Store, StoreError, entries_u64, get, last_key_u64, put, put_u64, remove, signals,
};
use crate::model::Revocation;
use crate::model::link::Change;
use crate::model::task::{RunId, RunRecord, TaskRecord};
use crate::sync::inherit;
use crate::sync::replicate::LogState;
use crate::wire::msg::TaskChange;

/// One entry of the change log, with the children it concerns.
pub type LogEntry = crate::model::link::LogEntry<TaskRecord>;

/// In META: the log's epoch (a `u64`), made when the log is created and again when the
/// database is restored from a backup. See `sync::replicate`.
const LOG_EPOCH: &str = "log_epoch";
/// In META of a backup copy: the copy is a backup, so a server that opens it (it was
/// restored) starts a new epoch: its log is shorter than what its children applied.
pub(crate) const FROM_BACKUP: &str = "from_backup";

/// Marks a backup copy being written (see [`FROM_BACKUP`]).
pub(super) fn mark_as_backup(txn: &WriteTransaction) -> Result<(), StoreError> {
    put(&mut txn.open_table(META)?, FROM_BACKUP, &true)
}

/// Makes sure the log has an epoch: a new one for a new log (or one of a file from before
/// epochs), and for a database restored from a backup. Returns it, and whether it was made
/// because of a restore.
pub(super) fn ensure_epoch(txn: &WriteTransaction) -> Result<(u64, bool), StoreError> {
    let mut meta = txn.open_table(META)?;
    let restored = remove(&mut meta, FROM_BACKUP)?;
    match get::<u64>(&meta, LOG_EPOCH)? {
        Some(epoch) if !restored && epoch != 0 => Ok((epoch, false)),
        _ => {
            // Never 0, which means "none yet" in a cursor.
            let epoch = rand::random::<u64>().max(1);
            put(&mut meta, LOG_EPOCH, &epoch)?;
            Ok((epoch, restored))
        }
    }
}

fn append(txn: &WriteTransaction, entry: Option<LogEntry>) -> Result<(), StoreError> {
    match entry {
        Some(entry) => append_entry(txn, entry),
        None => Ok(()),
    }
}

pub(super) fn append_entry(txn: &WriteTransaction, entry: LogEntry) -> Result<(), StoreError> {
    let mut log = txn.open_table(CHANGE_LOG)?;
    let seq = last_key_u64(&log)?.unwrap_or(0) + 1;
    put_u64(&mut log, seq, &entry)?;
    signals::note_log(seq);
    Ok(())
}

/// The last sequence number of the change log of a database just opened (0 for a file
/// without one, such as an agent's).
pub(super) fn last_seq_of(db: &redb::Database) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    match txn.open_table(CHANGE_LOG) {
        Ok(log) => Ok(last_key_u64(&log)?.unwrap_or(0)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Logs a task as it now is, for the children it concerns (`before`: as it was, if it
/// existed); see [`inherit::log_upsert`].
pub(crate) fn log_task(
    txn: &WriteTransaction,
    before: Option<&TaskRecord>,
    task: &TaskRecord,
) -> Result<(), StoreError> {
    append(txn, inherit::log_upsert(before, task))
}

/// Logs `change` about `task` if the task concerns any child.
fn log_for(
    txn: &WriteTransaction,
    task: &TaskRecord,
    change: TaskChange,
) -> Result<(), StoreError> {
    append(txn, inherit::log_about(task, change))
}

pub(crate) fn log_task_deleted(
    txn: &WriteTransaction,
    task: &TaskRecord,
) -> Result<(), StoreError> {
    log_for(txn, task, Change::TaskDelete { task_id: task.id })
}

/// Logs a run's start: a chained run's as such.
pub(crate) fn log_run_started(
    txn: &WriteTransaction,
    task: &TaskRecord,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let change = match run.after_run {
        Some(after_run) => Change::ChainStart {
            task_id: task.id,
            run_id: run.run_id,
            revision: task.revision,
            after_run,
        },
        None => Change::RunStart {
            task_id: task.id,
            run_id: run.run_id,
            revision: task.revision,
            occurrence: run.occurrence,
        },
    };
    log_for(txn, task, change)
}

pub(crate) fn log_run_stopped(
    txn: &WriteTransaction,
    task: &TaskRecord,
    run_id: RunId,
) -> Result<(), StoreError> {
    let change = Change::RunStop {
        task_id: task.id,
        run_id,
    };
    log_for(txn, task, change)
}

pub(crate) fn log_run_paused(
    txn: &WriteTransaction,
    task: &TaskRecord,
    run_id: RunId,
    paused: bool,
) -> Result<(), StoreError> {
    let change = Change::RunPause {
        task_id: task.id,
        run_id,
        paused,
    };
    log_for(txn, task, change)
}

/// Logs a server certificate revoked here or above, for every child.
pub(crate) fn log_revocation(
    txn: &WriteTransaction,
    revocation: Revocation,
) -> Result<(), StoreError> {
    append(txn, Some(inherit::log_revocation(revocation)))
}

/// The log's epoch and last sequence number, in a write transaction.
pub(super) fn state_in(txn: &WriteTransaction) -> Result<LogState, StoreError> {
    let epoch = get::<u64>(&txn.open_table(META)?, LOG_EPOCH)?.unwrap_or(0);
    let last_seq = last_key_u64(&txn.open_table(CHANGE_LOG)?)?.unwrap_or(0);
    Ok(LogState { epoch, last_seq })
}

impl Store {
    /// The last sequence number of this server's change log (0 if empty).
    pub async fn log_last_seq(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(last_key_u64(&txn.open_table(CHANGE_LOG)?)?.unwrap_or(0)))
            .await
    }

    /// The log's epoch and last sequence number, as a child's link starts from them.
    pub async fn log_state(&self) -> Result<LogState, StoreError> {
        self.read(|txn| {
            let epoch = get::<u64>(&txn.open_table(META)?, LOG_EPOCH)?.unwrap_or(0);
            let last_seq = last_key_u64(&txn.open_table(CHANGE_LOG)?)?.unwrap_or(0);
            Ok(LogState { epoch, last_seq })
        })
        .await
    }

    /// The log entries with sequence numbers in `range`, at most `limit`.
    pub async fn log_entries(
        &self,
        range: std::ops::RangeInclusive<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, LogEntry)>, StoreError> {
        self.read(move |txn| entries_u64(&txn.open_table(CHANGE_LOG)?, range, limit))
            .await
    }
}

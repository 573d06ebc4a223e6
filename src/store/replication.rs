//! The durable half of the hierarchy: this server's change log (what its children must
//! apply), the cursor of its parent's log it has applied, the inherited tasks and runs by
//! their ids on the parent, and the statistics rows its children reported per run.
//!
//! Each of these changes in the same write transaction as what it describes: a task and the
//! log entry that announces it; a parent's change, its effect, the entry re-announcing it
//! to this server's children, and the cursor; a device's record, the run counters and the
//! run's statistics version.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tasks::{self, StartedRun};
use super::{
    META, SeqTable, Store, StoreError, StrTable, entries_u64, entries_with_prefix, get,
    last_key_u64, put, put_u64, remove,
};
use crate::model::UnixMillis;
use crate::model::device::{DeviceRecord, Enrollment};
use crate::model::group::{MANAGED_DEVICES, UNASSIGNED_DEVICES};
use crate::model::scope::Scope;
use crate::model::task::{ChangedBy, Inherited, RunId, RunRecord, TaskAccount, TaskId, TaskRecord};
use crate::sync::replicate::{Audience, Change};
use crate::sync::stats::{StatsRow, StatsTable};
use crate::wire::msg::TaskChange;

/// This server's change log: sequence number to [`LogEntry`].
const CHANGE_LOG: SeqTable = TableDefinition::new("change_log");
/// Local task id by the parent's task id.
const INHERITED_TASKS: StrTable = TableDefinition::new("inherited_tasks");
/// Local run id by the parent's run id.
const INHERITED_RUNS: StrTable = TableDefinition::new("inherited_runs");
/// Statistics rows reported from below, by "run id/path".
const RUN_ROWS: StrTable = TableDefinition::new("run_rows");
/// The last entry of the parent's log applied here.
const PARENT_CURSOR: &str = "parent_cursor";

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CHANGE_LOG)?;
    txn.open_table(INHERITED_TASKS)?;
    txn.open_table(INHERITED_RUNS)?;
    txn.open_table(RUN_ROWS)?;
    Ok(())
}

/// One entry of the change log, with the children it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub change: TaskChange,
    pub audience: Audience,
}

/// The children a task goes to: a group task that includes secondary and virtual servers,
/// or a task this server inherited (which goes on down the whole subtree).
pub fn audience(task: &TaskRecord) -> Option<Audience> {
    if task.inherited.is_some() {
        return Some(Audience::AllChildren);
    }
    match task.scope {
        Scope::Group {
            group_id,
            include_subgroups,
            include_secondaries: true,
        } => Some(Audience::Group {
            group_id,
            include_subgroups,
        }),
        _ => None,
    }
}

/// The task as children receive it: without its sealed password, which only this server's
/// key opens.
fn for_children(task: &TaskRecord) -> TaskRecord {
    let mut task = task.clone();
    if let TaskAccount::Specified { password, .. } = &mut task.settings.account {
        *password = None;
    }
    task
}

fn append(
    txn: &WriteTransaction,
    change: TaskChange,
    audience: Audience,
) -> Result<(), StoreError> {
    let mut log = txn.open_table(CHANGE_LOG)?;
    let seq = last_key_u64(&log)?.unwrap_or(0) + 1;
    put_u64(&mut log, seq, &LogEntry { change, audience })
}

/// Logs a task as it now is, for the children it concerns (`before`: as it was, if it
/// existed). A task that stops concerning any child is logged as deleted.
pub(crate) fn log_task(
    txn: &WriteTransaction,
    before: Option<&TaskRecord>,
    task: &TaskRecord,
) -> Result<(), StoreError> {
    match (audience(task), before.and_then(audience)) {
        (Some(audience), _) => append(
            txn,
            Change::TaskUpsert {
                task_id: task.id,
                revision: task.revision,
                task: for_children(task),
            },
            audience,
        ),
        (None, Some(audience)) => append(txn, Change::TaskDelete { task_id: task.id }, audience),
        (None, None) => Ok(()),
    }
}

/// Logs `change` about `task` if the task concerns any child.
fn log_for(
    txn: &WriteTransaction,
    task: &TaskRecord,
    change: TaskChange,
) -> Result<(), StoreError> {
    match audience(task) {
        Some(audience) => append(txn, change, audience),
        None => Ok(()),
    }
}

pub(crate) fn log_task_deleted(
    txn: &WriteTransaction,
    task: &TaskRecord,
) -> Result<(), StoreError> {
    log_for(txn, task, Change::TaskDelete { task_id: task.id })
}

pub(crate) fn log_run_started(
    txn: &WriteTransaction,
    task: &TaskRecord,
    run_id: RunId,
) -> Result<(), StoreError> {
    let change = Change::RunStart {
        task_id: task.id,
        run_id,
        revision: task.revision,
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

fn id_key(id: u64) -> String {
    format!("{id:020}")
}

fn row_key(run_id: RunId, path: &[String]) -> String {
    format!("{run_id:020}/{}", path.join("/"))
}

/// Deletes what a run leaves in these tables (its rows, its parent-run mapping).
pub(crate) fn forget_run(txn: &WriteTransaction, run: &RunRecord) -> Result<(), StoreError> {
    let mut rows = txn.open_table(RUN_ROWS)?;
    let keys: Vec<(String, StatsRow)> =
        entries_with_prefix(&rows, &format!("{:020}/", run.run_id))?;
    for (key, _) in keys {
        remove(&mut rows, &key)?;
    }
    if let Some(parent_run) = run.parent_run {
        remove(&mut txn.open_table(INHERITED_RUNS)?, &id_key(parent_run))?;
    }
    Ok(())
}

/// What applying a batch of the parent's changes asks of the runtime afterwards.
#[derive(Debug, Default)]
pub struct AppliedChanges {
    /// Runs started: their orders go to the devices connected now.
    pub started: Vec<StartedRun>,
    /// (device, run) pairs to be told to cancel.
    pub cancel: Vec<(String, RunId)>,
    /// Runs stopped: their statistics changed.
    pub stopped: Vec<RunId>,
    /// One line per change that did something, for the event log.
    pub described: Vec<String>,
    /// The cursor after the batch.
    pub cursor: u64,
}

/// A change out of order: the caller's applier and the stored cursor disagree.
fn out_of_order(seq: u64, cursor: u64) -> StoreError {
    StoreError::Rejected(format!(
        "change {seq} of the parent's log arrived out of order (applied up to {cursor})"
    ))
}

impl Store {
    /// The last sequence number of this server's change log (0 if empty).
    pub async fn log_last_seq(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(last_key_u64(&txn.open_table(CHANGE_LOG)?)?.unwrap_or(0)))
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

    /// The last change of the parent's log applied here.
    pub async fn parent_cursor(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(get::<u64>(&txn.open_table(META)?, PARENT_CURSOR)?.unwrap_or(0)))
            .await
    }

    /// Applies changes `seq` of the parent's log (named `parent`), in order, with the cursor,
    /// in one transaction: the whole batch is refused if the first one is not the next.
    pub async fn apply_parent_changes(
        &self,
        parent: String,
        changes: Vec<(u64, TaskChange)>,
        now: UnixMillis,
    ) -> Result<AppliedChanges, StoreError> {
        self.write(move |txn| {
            let mut out = AppliedChanges::default();
            let mut cursor = get::<u64>(&txn.open_table(META)?, PARENT_CURSOR)?.unwrap_or(0);
            for (seq, change) in &changes {
                if *seq != cursor + 1 {
                    return Err(out_of_order(*seq, cursor));
                }
                apply_one(txn, &parent, change, now, &mut out)?;
                cursor = *seq;
            }
            put(&mut txn.open_table(META)?, PARENT_CURSOR, &cursor)?;
            out.cursor = cursor;
            Ok(out)
        })
        .await
    }

    /// Keeps the rows of a report about run `run_id` that are newer than those held.
    /// `None` for an unknown run; otherwise whether anything changed.
    pub async fn merge_stats(
        &self,
        run_id: RunId,
        rows: Vec<StatsRow>,
    ) -> Result<Option<bool>, StoreError> {
        self.write(move |txn| {
            if tasks::run_in(txn, run_id)?.is_none() {
                return Ok(None);
            }
            let mut table = txn.open_table(RUN_ROWS)?;
            let held: Vec<(String, StatsRow)> =
                entries_with_prefix(&table, &format!("{run_id:020}/"))?;
            let mut merged = StatsTable::from_rows(held.into_iter().map(|(_, r)| r));
            let mut changed = false;
            for row in &rows {
                if merged.merge(row.clone()) {
                    put(&mut table, &row_key(run_id, &row.path), row)?;
                    changed = true;
                }
            }
            Ok(Some(changed))
        })
        .await
    }

    /// The rows held for a run, in path order.
    pub async fn stats_rows(&self, run_id: RunId) -> Result<Vec<StatsRow>, StoreError> {
        self.read(move |txn| {
            Ok(entries_with_prefix::<StatsRow>(
                &txn.open_table(RUN_ROWS)?,
                &format!("{run_id:020}/"),
            )?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
        })
        .await
    }

    /// The runs carrying out a parent's run, newest first, at most `limit`.
    pub async fn inherited_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.read(move |txn| {
            let map = txn.open_table(INHERITED_RUNS)?;
            let mut runs = Vec::new();
            for entry in map.iter()?.rev() {
                let (_, value) = entry?;
                let local: RunId = crate::wire::codec::decode(value.value())?;
                if let Some(run) = tasks::run_read(txn, local)? {
                    runs.push(run);
                }
                if runs.len() >= limit {
                    break;
                }
            }
            Ok(runs)
        })
        .await
    }
}

fn apply_one(
    txn: &WriteTransaction,
    parent: &str,
    change: &TaskChange,
    now: UnixMillis,
    out: &mut AppliedChanges,
) -> Result<(), StoreError> {
    let local_task = |parent_task: TaskId| -> Result<Option<TaskId>, StoreError> {
        get(&txn.open_table(INHERITED_TASKS)?, &id_key(parent_task))
    };
    match change {
        Change::Noop => {}
        Change::TaskUpsert {
            task_id,
            revision,
            task,
        } => {
            let existing = match local_task(*task_id)? {
                Some(id) => tasks::task_in(txn, id)?,
                None => None,
            };
            if let Some(old) = &existing
                && old
                    .inherited
                    .as_ref()
                    .is_some_and(|i| i.parent_revision >= *revision)
            {
                return Ok(());
            }
            let mut copy =
                inherited_copy(parent, *task_id, *revision, task, existing.as_ref(), now);
            copy.name = free_name(txn, &copy.name, copy.id, parent, *task_id)?;
            let stored = tasks::upsert_in(txn, copy, existing.as_ref())?;
            put(
                &mut txn.open_table(INHERITED_TASKS)?,
                &id_key(*task_id),
                &stored.id,
            )?;
            log_task(txn, existing.as_ref(), &stored)?;
            out.described.push(format!(
                "inherited task {:?} (revision {revision} of {parent}'s task #{task_id}) {}",
                stored.name,
                if existing.is_some() {
                    "updated"
                } else {
                    "added"
                }
            ));
        }
        Change::TaskDelete { task_id } => {
            let Some(id) = local_task(*task_id)? else {
                return Ok(());
            };
            remove(&mut txn.open_table(INHERITED_TASKS)?, &id_key(*task_id))?;
            if let Some((task, cancel)) = tasks::delete_in(txn, id)? {
                log_task_deleted(txn, &task)?;
                out.cancel.extend(cancel);
                out.described.push(format!(
                    "inherited task {:?} deleted by {parent}",
                    task.name
                ));
            }
        }
        Change::RunStart {
            task_id, run_id, ..
        } => {
            let Some(id) = local_task(*task_id)? else {
                return Ok(());
            };
            let mut runs = txn.open_table(INHERITED_RUNS)?;
            if runs.get(id_key(*run_id).as_str())?.is_some() {
                return Ok(());
            }
            let targets = managed_devices(txn)?;
            let started_by = format!("{parent} (run {run_id})");
            let Some(started) =
                tasks::start_in(txn, id, targets, None, started_by, Some(*run_id), now)?
            else {
                return Ok(());
            };
            put(&mut runs, &id_key(*run_id), &started.run.run_id)?;
            drop(runs);
            log_run_started(txn, &started.task, started.run.run_id)?;
            out.described.push(format!(
                "inherited task {:?} run {} started for {parent}'s run {run_id} on {} device(s)",
                started.task.name,
                started.run.run_id,
                started.run.counters.total()
            ));
            out.started.push(started);
        }
        Change::RunStop { run_id, .. } => {
            let local: Option<RunId> = get(&txn.open_table(INHERITED_RUNS)?, &id_key(*run_id))?;
            let Some(local) = local else {
                return Ok(());
            };
            if let Some(stopped) = tasks::stop_in(txn, local, now)? {
                if let Some(task) = tasks::task_in(txn, stopped.run.task_id)? {
                    log_run_stopped(txn, &task, local)?;
                }
                out.cancel
                    .extend(stopped.to_cancel.into_iter().map(|d| (d, local)));
                out.stopped.push(local);
                out.described.push(format!(
                    "inherited task {:?} run {local} stopped by {parent}",
                    stopped.run.task_name
                ));
            }
        }
    }
    Ok(())
}

/// The copy of a parent's task kept here: every device of this server and every server
/// below it, read-only, named as on the parent unless a task of this server has the name.
fn inherited_copy(
    parent: &str,
    parent_task_id: TaskId,
    revision: u32,
    task: &TaskRecord,
    existing: Option<&TaskRecord>,
    now: UnixMillis,
) -> TaskRecord {
    TaskRecord {
        id: existing.map(|t| t.id).unwrap_or(0),
        name: task.name.clone(),
        task_type: task.task_type.clone(),
        application: task.application.clone(),
        scope: Scope::Group {
            group_id: MANAGED_DEVICES,
            include_subgroups: true,
            include_secondaries: true,
        },
        settings: task.settings.clone(),
        created: existing.map(|t| t.created).unwrap_or(now),
        modified: now,
        revision: existing.map(|t| t.revision + 1).unwrap_or(1),
        changed_by: ChangedBy::Administrator(format!("{parent} (inherited)")),
        last_run: existing.and_then(|t| t.last_run),
        inherited: Some(Inherited {
            parent: parent.to_string(),
            parent_task_id,
            parent_revision: revision,
        }),
    }
}

/// The name an inherited copy gets: the parent's, unless another task of this server holds
/// it (a copy that could not be stored would stop every later change of the parent).
fn free_name(
    txn: &WriteTransaction,
    name: &str,
    own_id: TaskId,
    parent: &str,
    parent_task_id: TaskId,
) -> Result<String, StoreError> {
    let candidates = [
        name.to_string(),
        format!("{name} (from {parent})"),
        format!("{name} (from {parent}, #{parent_task_id})"),
    ];
    for candidate in &candidates {
        match tasks::name_holder(txn, candidate)? {
            None => return Ok(candidate.clone()),
            Some(id) if id == own_id => return Ok(candidate.clone()),
            Some(_) => {}
        }
    }
    Ok(format!(
        "{name} (from {parent}, #{parent_task_id}, {own_id})"
    ))
}

/// Every approved device of this server outside "Unassigned devices", as (id, name): the
/// devices an inherited group task runs on.
fn managed_devices(txn: &WriteTransaction) -> Result<Vec<(String, String)>, StoreError> {
    use super::devices::OpenTables;
    Ok(txn
        .values::<DeviceRecord>(super::devices::DEVICES)?
        .into_iter()
        .filter(|d| d.enrollment == Enrollment::Approved && d.group_id != UNASSIGNED_DEVICES)
        .map(|d| (d.id, d.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::task::{AGENT_APPLICATION, TaskPayload, TaskSettings, TaskType};

    fn parent_task(revision: u32) -> TaskRecord {
        TaskRecord {
            id: 7,
            name: "Patch".into(),
            task_type: TaskType::Device(TaskPayload::Inventory),
            application: AGENT_APPLICATION.into(),
            scope: Scope::Group {
                group_id: 12,
                include_subgroups: true,
                include_secondaries: true,
            },
            settings: TaskSettings::default(),
            created: 0,
            modified: 0,
            revision,
            changed_by: ChangedBy::Administrator("admin".into()),
            last_run: None,
            inherited: None,
        }
    }

    fn upsert(revision: u32) -> TaskChange {
        Change::TaskUpsert {
            task_id: 7,
            revision,
            task: parent_task(revision),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parent_changes_apply_once_in_order_and_go_on_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("child.redb");
        let store = tokio::task::spawn_blocking(move || Store::open_server(&path))
            .await
            .unwrap()
            .unwrap();
        let apply = |changes: Vec<(u64, TaskChange)>| {
            let store = store.clone();
            async move {
                store
                    .apply_parent_changes("primary".into(), changes, 5)
                    .await
            }
        };
        // A task of this server already has the name: the copy takes another.
        let mut local = parent_task(1);
        local.scope = Scope::Server;
        local.inherited = None;
        store.create_task(local).await.unwrap();
        let applied = apply(vec![(1, upsert(1)), (2, Change::Noop)])
            .await
            .unwrap();
        assert_eq!(applied.cursor, 2);
        let copy = store
            .task_by_name("Patch (from primary)")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copy.inherited.as_ref().unwrap().parent_task_id, 7);
        assert_eq!(copy.revision, 1);

        // A repeat, or a batch after a hole, is refused whole and changes nothing.
        for batch in [
            vec![(2, upsert(2))],
            vec![(4, upsert(2))],
            vec![(3, upsert(2)), (5, Change::Noop)],
        ] {
            assert!(matches!(apply(batch).await, Err(StoreError::Rejected(_))));
        }
        assert_eq!(store.parent_cursor().await.unwrap(), 2);
        assert_eq!(store.task(copy.id).await.unwrap().unwrap().revision, 1);

        let start = Change::RunStart {
            task_id: 7,
            run_id: 40,
            revision: 2,
        };
        let applied = apply(vec![(3, upsert(2)), (4, start.clone()), (5, start)])
            .await
            .unwrap();
        assert_eq!(applied.started.len(), 1, "one run for the parent's run 40");
        let run = &applied.started[0].run;
        assert_eq!(run.parent_run, Some(40));
        assert_eq!(run.counters.total(), 0, "no devices here");
        assert_eq!(store.task(copy.id).await.unwrap().unwrap().revision, 2);

        // Everything applied is logged again for this server's own children.
        let log = store.log_entries(1..=10, 10).await.unwrap();
        let kinds: Vec<(&'static str, Audience)> = log
            .iter()
            .map(|(_, e)| {
                let kind = match &e.change {
                    Change::TaskUpsert { task_id, .. } => {
                        assert_eq!(*task_id, copy.id);
                        "upsert"
                    }
                    Change::RunStart { run_id, .. } => {
                        assert_eq!(*run_id, run.run_id);
                        "start"
                    }
                    _ => "other",
                };
                (kind, e.audience)
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("upsert", Audience::AllChildren),
                ("upsert", Audience::AllChildren),
                ("start", Audience::AllChildren)
            ]
        );
        let deleted = apply(vec![(6, Change::TaskDelete { task_id: 7 })])
            .await
            .unwrap();
        assert_eq!(deleted.described.len(), 1);
        assert!(store.task(copy.id).await.unwrap().is_none());
        tokio::task::spawn_blocking(move || store.close())
            .await
            .unwrap()
            .unwrap();
    }
}

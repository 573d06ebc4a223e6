//! The durable half of the hierarchy: this server's change log (what its children must
//! apply), the cursor of its parent's log it has applied, the inherited tasks and runs by
//! their ids on the parent, and the statistics rows its children reported per run.
//!
//! Each of these changes in the same write transaction as what it describes: a task and the
//! log entry that announces it; a parent's change, its effect, the entry re-announcing it
//! to this server's children, and the cursor; a device's record, the run counters and the
//! run's statistics version.

use redb::{ReadableTable, WriteTransaction};

use super::change_log::{log_run_stopped, log_task, log_task_deleted};
use super::schema::*;
use super::signals;
use super::tasks::{self, StartedRun};
use super::{META, Store, StoreError, entries, entries_with_prefix, get, put, remove};
use crate::model::link::StatsRow;
use crate::model::task::{RunId, RunRecord, TaskId, TaskRecord};
use crate::model::{Revocation, RunRef, SecondaryRecord, UnixMillis};
use crate::sync::inherit::{self, Confirmable, Holdings, Plan};
use crate::sync::replicate::Cursor;
use crate::sync::stats::{self, StatsTable};
use crate::wire::msg::TaskChange;

/// The last entry of the parent's log applied here.
const PARENT_CURSOR: &str = "parent_cursor";
/// The epoch of the parent's log the cursor counts in.
const PARENT_EPOCH: &str = "parent_epoch";
/// While resynchronising with the parent: the sequence number the resync ends at.
const RESYNC_UNTIL: &str = "resync_until";
/// In META while resynchronising from the parent's snapshot (`sync::snapshot`): its
/// entries are numbered apart from the log's, so a cursor among them is given as 0.
const RESYNC_SNAPSHOT: &str = "resync_snapshot";

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CHANGE_LOG)?;
    txn.open_table(INHERITED_TASKS)?;
    txn.open_table(INHERITED_RUNS)?;
    txn.open_table(RUN_ROWS)?;
    txn.open_table(RUNS_FINISHED)?;
    txn.open_table(RESYNC_CONFIRMED)?;
    Ok(())
}

fn confirmed_key(item: Confirmable) -> String {
    match item {
        Confirmable::Task(id) => format!("t/{id:020}"),
        Confirmable::Run(id) => format!("r/{id:020}"),
    }
}

/// Drops every statistics row reported by the registration `name` (its rows' paths start
/// with it), and what it applied of the log, in `txn`; the runs they were about have changed.
pub(crate) fn drop_rows_of(txn: &WriteTransaction, name: &str) -> Result<(), StoreError> {
    // What it applied of the log no longer holds the log back.
    super::log_trim::forget_child(txn, name)?;
    let mut table = txn.open_table(RUN_ROWS)?;
    let rows: Vec<(String, StatsRow)> = entries(&table)?;
    let mut runs = std::collections::BTreeSet::new();
    for (key, row) in rows {
        if row.path.first().map(String::as_str) == Some(name) {
            remove(&mut table, &key)?;
            if let Some(run_id) = key.split('/').next().and_then(|id| id.parse::<u64>().ok()) {
                runs.insert(run_id);
            }
        }
    }
    drop(table);
    for run_id in runs {
        if let Some(run) = tasks::run_in(txn, run_id)? {
            signals::note_run(&run);
        }
    }
    Ok(())
}

pub use super::change_log::LogEntry;

/// What applying a batch of the parent's changes asks of the runtime afterwards.
#[derive(Debug, Default)]
pub struct AppliedChanges {
    /// Runs started: their orders go to the devices connected now.
    pub started: Vec<StartedRun>,
    /// (device, run) pairs to be told to cancel.
    pub cancel: Vec<(String, RunRef)>,
    /// Runs stopped: their statistics changed.
    pub stopped: Vec<RunId>,
    /// Runs paused or resumed: their devices are told, held orders sent.
    pub paused: Vec<super::pause::PauseChange>,
    /// Server certificates revoked by the batch (new here): their links are closed.
    pub revoked: Vec<Revocation>,
    /// One line per change that did something, for the event log.
    pub described: Vec<String>,
    /// Inherited copies added, changed or deleted (their ids here): devices that run them
    /// on their own schedule are told.
    pub tasks_changed: Vec<TaskId>,
    /// The cursor after the batch.
    pub cursor: u64,
}

impl Store {
    /// The last change of the parent's log applied here.
    pub async fn parent_cursor(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(get::<u64>(&txn.open_table(META)?, PARENT_CURSOR)?.unwrap_or(0)))
            .await
    }

    /// Where this server stands in its parent's log: the cursor and the log's epoch.
    pub async fn parent_position(&self) -> Result<Cursor, StoreError> {
        self.read(|txn| {
            let meta = txn.open_table(META)?;
            let in_snapshot = get::<bool>(&meta, RESYNC_SNAPSHOT)?.unwrap_or(false);
            Ok(Cursor {
                last_applied: match in_snapshot {
                    true => 0,
                    false => get::<u64>(&meta, PARENT_CURSOR)?.unwrap_or(0),
                },
                epoch: get::<u64>(&meta, PARENT_EPOCH)?.unwrap_or(0),
            })
        })
        .await
    }

    /// Starts resynchronising with the parent `parent`, whose log (epoch `epoch`) ends at
    /// `until`: the cursor goes to `start` in that epoch (0 for the whole log, or where the
    /// parent's snapshot begins: `sync::snapshot`) and nothing is confirmed yet; with
    /// nothing to replay, the resync ends at once. In one transaction.
    pub async fn begin_resync(
        &self,
        parent: String,
        epoch: u64,
        (start, until, snapshot): (u64, u64, bool),
        now: UnixMillis,
    ) -> Result<AppliedChanges, StoreError> {
        self.write(move |txn| {
            let mut meta = txn.open_table(META)?;
            put(&mut meta, PARENT_CURSOR, &start)?;
            put(&mut meta, RESYNC_SNAPSHOT, &snapshot)?;
            put(&mut meta, PARENT_EPOCH, &epoch)?;
            put(&mut meta, RESYNC_UNTIL, &until)?;
            drop(meta);
            let mut confirmed = txn.open_table(RESYNC_CONFIRMED)?;
            for (key, ()) in entries::<()>(&confirmed)? {
                remove(&mut confirmed, &key)?;
            }
            drop(confirmed);
            let mut out = AppliedChanges {
                cursor: start,
                ..AppliedChanges::default()
            };
            end_resync_if_done(txn, &parent, start, now, &mut out)?;
            Ok(out)
        })
        .await
    }

    /// Moves the cursor past the change `seq` of the parent's log without applying it: one
    /// that can never apply here (see [`StoreError::is_permanent`]), so that the changes after
    /// it do.
    pub async fn skip_parent_change(
        &self,
        parent: String,
        seq: u64,
        now: UnixMillis,
    ) -> Result<AppliedChanges, StoreError> {
        self.write(move |txn| {
            let mut out = AppliedChanges::default();
            put(&mut txn.open_table(META)?, PARENT_CURSOR, &seq)?;
            out.cursor = seq;
            end_resync_if_done(txn, &parent, seq, now, &mut out)?;
            Ok(out)
        })
        .await
    }

    /// Applies changes of the parent's log (named `parent`) with the cursor, in one
    /// transaction. Which changes, in which order, the link's `ParentSession` decided: it
    /// hands out each sequence number once, in order, after the stored cursor. Shared, so
    /// that a caller keeps the batch to try its changes one by one if it is refused.
    pub async fn apply_parent_changes(
        &self,
        parent: String,
        changes: std::sync::Arc<[(u64, TaskChange)]>,
        now: UnixMillis,
    ) -> Result<AppliedChanges, StoreError> {
        self.write(move |txn| {
            let mut out = AppliedChanges::default();
            for (_, change) in changes.iter() {
                apply_one(txn, &parent, change, now, &mut out)?;
            }
            if let Some((cursor, _)) = changes.last() {
                put(&mut txn.open_table(META)?, PARENT_CURSOR, cursor)?;
                out.cursor = *cursor;
                end_resync_if_done(txn, &parent, *cursor, now, &mut out)?;
            }
            Ok(out)
        })
        .await
    }

    /// Keeps the rows of the child `child`'s report about run `run_id` that are newer than
    /// those held. `None` when the report is not taken: an unknown run, a child no longer
    /// registered, or a run that does not concern it (`sync::stats::accepts_report`);
    /// otherwise whether anything changed.
    pub async fn merge_stats(
        &self,
        run_id: RunId,
        child: String,
        rows: Vec<StatsRow>,
    ) -> Result<Option<bool>, StoreError> {
        self.write(move |txn| {
            let Some(run) = tasks::run_in(txn, run_id)? else {
                return Ok(None);
            };
            let audience = tasks::task_in(txn, run.task_id)?
                .as_ref()
                .and_then(inherit::audience);
            let record = get::<SecondaryRecord>(&txn.open_table(SECONDARIES)?, &child)?;
            let tree = super::groups::tree_in(txn)?;
            let group = record
                .map(|r| r.group_id)
                .filter(|g| tree.path_of(*g).is_some());
            if !stats::accepts_report(audience, group, |a, b| tree.is_descendant(a, b)) {
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
            if changed {
                signals::note_run(&run);
            }
            Ok(Some(changed))
        })
        .await
    }

    /// The rows held for a run, in path order.
    pub async fn stats_rows(&self, run_id: RunId) -> Result<Vec<StatsRow>, StoreError> {
        // One row per server below (at most a few hundred): read at once.
        self.read_now(move |txn| {
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

/// What this server holds of its parent's tasks and runs, read in the applying transaction.
struct Held<'a>(&'a WriteTransaction);

impl Holdings for Held<'_> {
    type Error = StoreError;

    fn copy_of(&self, parent_task: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        match get::<TaskId>(&self.0.open_table(INHERITED_TASKS)?, &id_key(parent_task))? {
            Some(id) => tasks::task_in(self.0, id),
            None => Ok(None),
        }
    }

    fn name_holder(&self, name: &str) -> Result<Option<TaskId>, StoreError> {
        tasks::name_holder(self.0, name)
    }

    fn run_for(&self, parent_run: RunId) -> Result<Option<RunId>, StoreError> {
        get(&self.0.open_table(INHERITED_RUNS)?, &id_key(parent_run))
    }

    fn confirmed(&self, item: Confirmable) -> Result<Option<bool>, StoreError> {
        if get::<u64>(&self.0.open_table(META)?, RESYNC_UNTIL)?.is_none() {
            return Ok(None);
        }
        let table = self.0.open_table(RESYNC_CONFIRMED)?;
        Ok(Some(get::<()>(&table, &confirmed_key(item))?.is_some()))
    }

    fn run_task(&self, local_run: RunId) -> Result<Option<TaskId>, StoreError> {
        Ok(tasks::run_in(self.0, local_run)?.map(|r| r.task_id))
    }
}

/// Ends the resync with the parent `parent` once the cursor reached its end: drops what the
/// parent's new log did not confirm (`inherit::resync_leftovers`), in `txn`.
fn end_resync_if_done(
    txn: &WriteTransaction,
    parent: &str,
    cursor: u64,
    now: UnixMillis,
    out: &mut AppliedChanges,
) -> Result<(), StoreError> {
    let Some(until) = get::<u64>(&txn.open_table(META)?, RESYNC_UNTIL)? else {
        return Ok(());
    };
    if cursor < until {
        return Ok(());
    }
    let ids = |table| -> Result<Vec<(u64, u64)>, StoreError> {
        Ok(entries::<u64>(&txn.open_table(table)?)?
            .into_iter()
            .filter_map(|(key, local)| Some((key.parse().ok()?, local)))
            .collect())
    };
    let copies = ids(INHERITED_TASKS)?;
    let runs = ids(INHERITED_RUNS)?;
    let confirmed: std::collections::BTreeSet<String> =
        entries::<()>(&txn.open_table(RESYNC_CONFIRMED)?)?
            .into_iter()
            .map(|(key, ())| key)
            .collect();
    let leftovers = inherit::resync_leftovers(&copies, &runs, |item| {
        confirmed.contains(&confirmed_key(item))
    });
    remove(&mut txn.open_table(META)?, RESYNC_UNTIL)?;
    remove(&mut txn.open_table(META)?, RESYNC_SNAPSHOT)?;
    let mut table = txn.open_table(RESYNC_CONFIRMED)?;
    for key in &confirmed {
        remove(&mut table, key)?;
    }
    drop(table);
    for plan in leftovers {
        carry_out(txn, parent, plan, now, out)?;
    }
    Ok(())
}

/// Applies one change of the parent's log: `sync::inherit` decides, this carries it out.
fn apply_one(
    txn: &WriteTransaction,
    parent: &str,
    change: &TaskChange,
    now: UnixMillis,
    out: &mut AppliedChanges,
) -> Result<(), StoreError> {
    let held = Held(txn);
    let plan = inherit::plan(parent, change, &held, now)?;
    if let Some(item) = plan.confirms()
        && held.confirmed(item)?.is_some()
    {
        put(
            &mut txn.open_table(RESYNC_CONFIRMED)?,
            &confirmed_key(item),
            &(),
        )?;
    }
    carry_out(txn, parent, plan, now, out)
}

/// Carries out one plan of `sync::inherit`.
fn carry_out(
    txn: &WriteTransaction,
    parent: &str,
    plan: Plan,
    now: UnixMillis,
    out: &mut AppliedChanges,
) -> Result<(), StoreError> {
    match plan {
        Plan::Nothing | Plan::Keep(_) => {}
        Plan::Upsert {
            parent_task,
            copy,
            existing,
        } => {
            let revision = copy.inherited.as_ref().map_or(0, |i| i.parent_revision);
            let stored = tasks::upsert_in(txn, copy, existing.as_ref())?;
            put(
                &mut txn.open_table(INHERITED_TASKS)?,
                &id_key(parent_task),
                &stored.id,
            )?;
            log_task(txn, existing.as_ref(), &stored)?;
            out.tasks_changed.push(stored.id);
            out.described.push(format!(
                "inherited task {:?} (revision {revision} of {parent}'s task #{parent_task}) {}",
                stored.name,
                if existing.is_some() {
                    "updated"
                } else {
                    "added"
                }
            ));
        }
        Plan::Delete { parent_task, local } => {
            remove(&mut txn.open_table(INHERITED_TASKS)?, &id_key(parent_task))?;
            if let Some((task, cancel)) = tasks::delete_in(txn, local, now)? {
                log_task_deleted(txn, &task)?;
                out.tasks_changed.push(task.id);
                out.cancel.extend(cancel);
                out.described.push(format!(
                    "inherited task {:?} deleted by {parent}",
                    task.name
                ));
            }
        }
        Plan::StartRun {
            parent_run,
            local_task,
            started_by,
            replaces,
            occurrence,
            after_run,
        } => {
            if let Some(local_run) = replaces {
                forget(txn, parent, parent_run, local_run, now, out)?;
            }
            if let Some(key) = occurrence
                && let Some(local_run) =
                    super::occurrences::occurrence_run_in(txn, local_task, key)?
            {
                return link_occurrence(txn, parent, parent_run, local_run, out);
            }
            // A chained run follows the run here of the parent's run it follows, on its
            // devices; with none here, it has no device here.
            let (targets, after_run) = match after_run {
                None => match tasks::task_in(txn, local_task)? {
                    Some(task) if task.runs_at_app_start() => (Vec::new(), None),
                    _ => (super::devices::managed_devices(txn)?, None),
                },
                Some(after) => {
                    match get::<RunId>(&txn.open_table(INHERITED_RUNS)?, &id_key(after))? {
                        Some(local) => (
                            tasks::records_in(txn, local)?
                                .into_iter()
                                .map(|r| (r.device_id, r.device_name))
                                .collect(),
                            Some(local),
                        ),
                        None => (Vec::new(), None),
                    }
                }
            };
            let new = tasks::NewRun {
                targets,
                started_by,
                parent_run: Some(parent_run),
                occurrence,
                after_run,
                ..tasks::NewRun::default()
            };
            let Some(started) = tasks::start_in(txn, local_task, new, now)? else {
                return Ok(());
            };
            put(
                &mut txn.open_table(INHERITED_RUNS)?,
                &id_key(parent_run),
                &started.run.run_id,
            )?;
            tasks::log_started(txn, &started)?;
            out.described.push(format!(
                "inherited task {:?} run {} started for {parent}'s run {parent_run} on {} device(s)",
                started.task.name,
                started.run.run_id,
                started.run.counters.total()
            ));
            out.started.push(started);
        }
        Plan::StopRun { local_run } => {
            if let Some(stopped) = tasks::stop_in(txn, local_run, now)? {
                if let Some(task) = tasks::task_in(txn, stopped.run.task_id)? {
                    log_run_stopped(txn, &task, local_run)?;
                }
                out.cancel.extend(stopped.to_cancel);
                out.stopped.push(local_run);
                out.described.push(format!(
                    "inherited task {:?} run {local_run} stopped by {parent}",
                    stopped.run.task_name
                ));
            }
        }
        Plan::PauseRun { local_run, paused } => {
            if let Some(change) = super::pause::pause_in(txn, local_run, paused, now)? {
                out.described.push(format!(
                    "inherited task {:?} run {local_run} {} by {parent}",
                    change.run.task_name,
                    if paused { "paused" } else { "resumed" }
                ));
                out.paused.push(change);
            }
        }
        Plan::ForgetRun {
            parent_run,
            local_run,
        } => forget(txn, parent, parent_run, local_run, now, out)?,
        Plan::Revoke(revocation) => {
            if super::revocations::revoke_in(txn, &revocation)? {
                out.revoked.push(revocation);
            }
        }
    }
    Ok(())
}

/// The parent no longer has run `parent_run` (it was restored from a backup): `local_run`
/// stops if it is going and stays as history of this server only.
/// A run of a scheduled occurrence made here before the parent's run of it arrived now
/// carries out that run: its statistics go to the parent from here on.
fn link_occurrence(
    txn: &WriteTransaction,
    parent: &str,
    parent_run: RunId,
    local_run: RunId,
    out: &mut AppliedChanges,
) -> Result<(), StoreError> {
    let mut runs = txn.open_table(RUNS)?;
    let Some(mut run) = get::<RunRecord>(&runs, &run_key(local_run))? else {
        return Ok(());
    };
    let mut inherited = txn.open_table(INHERITED_RUNS)?;
    if let Some(old) = run.parent_run.filter(|old| *old != parent_run) {
        remove(&mut inherited, &id_key(old))?;
    }
    put(&mut inherited, &id_key(parent_run), &local_run)?;
    run.parent_run = Some(parent_run);
    run.version += 1;
    put(&mut runs, &run_key(local_run), &run)?;
    signals::note_run(&run);
    out.described.push(format!(
        "inherited task {:?} run {local_run} of {} carries out {parent}'s run {parent_run}",
        run.task_name,
        run.occurrence.map(|k| k.to_string()).unwrap_or_default()
    ));
    Ok(())
}

fn forget(
    txn: &WriteTransaction,
    parent: &str,
    parent_run: RunId,
    local_run: RunId,
    now: UnixMillis,
    out: &mut AppliedChanges,
) -> Result<(), StoreError> {
    remove(&mut txn.open_table(INHERITED_RUNS)?, &id_key(parent_run))?;
    let Some(run) = tasks::run_in(txn, local_run)? else {
        return Ok(());
    };
    let going = run.stopped.is_none() && run.counters.finished() < run.counters.total();
    if going {
        carry_out(txn, parent, Plan::StopRun { local_run }, now, out)?;
    }
    if let Some(mut run) = tasks::run_in(txn, local_run)? {
        run.parent_run = None;
        put(&mut txn.open_table(RUNS)?, &run_key(local_run), &run)?;
    }
    out.described.push(format!(
        "run {local_run} no longer carries out {parent}'s run {parent_run}, which {parent} \
         no longer has"
    ));
    Ok(())
}

/// Every approved device of this server outside "Unassigned devices", as (id, name): the
/// devices an inherited group task runs on.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::link::{Audience, Change};
    use crate::model::scope::Scope;
    use crate::model::task::{AGENT_APPLICATION, ChangedBy, TaskPayload, TaskSettings, TaskType};

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
                    .apply_parent_changes("primary".into(), changes.into(), 5)
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

        // A revision already held changes nothing.
        let applied = apply(vec![(3, upsert(1))]).await.unwrap();
        assert!(applied.described.is_empty());
        assert_eq!(store.parent_cursor().await.unwrap(), 3);
        assert_eq!(store.task(copy.id).await.unwrap().unwrap().revision, 1);

        let start = Change::RunStart {
            task_id: 7,
            run_id: 40,
            revision: 2,
            occurrence: None,
        };
        let applied = apply(vec![(4, upsert(2)), (5, start.clone()), (6, start)])
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
        let deleted = apply(vec![(7, Change::TaskDelete { task_id: 7 })])
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

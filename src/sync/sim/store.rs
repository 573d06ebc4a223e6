//! One simulated server's durable state: what a real server keeps in redb, kept in memory
//! and changed the way the store changes it, one transaction per call. What a change of the
//! parent's log means is decided by the same `inherit::plan` the store carries out; what is
//! logged for the children comes from the same `inherit::log_*` rules.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use crate::model::UnixMillis;
use crate::model::link::{Change, LogEntry, StatsRow};
use crate::model::scope::Scope;
use crate::model::task::{
    AGENT_APPLICATION, ChangedBy, DeviceProgress, DeviceRunRecord, DeviceState, RunCounters, RunId,
    TaskId, TaskPayload, TaskRecord, TaskSettings, TaskType,
};
use crate::sync::inherit::{self, Confirmable, Holdings, Plan};
use crate::sync::stats::StatsTable;
use crate::wire::msg::TaskChange;

/// A run as a server stores it: its records by device index, counters and version kept
/// with them, and the rows its children reported.
#[derive(Clone, Debug)]
pub(super) struct RunData {
    pub task_id: TaskId,
    pub parent_run: Option<RunId>,
    pub stopped: bool,
    pub paused: bool,
    pub records: BTreeMap<usize, DeviceRunRecord>,
    pub counters: RunCounters,
    /// Bumped with every change of `counters`, in the same step.
    pub version: u64,
    pub table: StatsTable,
}

impl RunData {
    /// Over on this server's own devices.
    pub fn own_over(&self) -> bool {
        self.stopped || self.counters.finished() == self.counters.total()
    }
}

/// What a server stores; survives crashes.
#[derive(Clone, Debug, Default)]
pub(super) struct Store {
    pub log: Vec<LogEntry<TaskRecord>>,
    /// The last change of the parent's log applied.
    pub cursor: u64,
    /// The harness's own record of every applied sequence number, in order.
    pub applied: Vec<u64>,
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    pub names: BTreeMap<String, TaskId>,
    /// Local task id by the parent's task id.
    pub inherited_tasks: BTreeMap<TaskId, TaskId>,
    /// Local run id by the parent's run id.
    pub inherited_runs: BTreeMap<RunId, RunId>,
    pub runs: BTreeMap<RunId, RunData>,
    next_id: u64,
    /// This server's log epoch.
    pub epoch: u64,
    /// The epoch of the parent's log the cursor counts in.
    pub parent_epoch: u64,
    /// While resynchronising: where it ends, and what the parent's log confirmed so far.
    pub resync: Option<(u64, BTreeSet<Confirmable>)>,
    /// Server certificates revoked here or above, by fingerprint.
    pub revoked: BTreeMap<[u8; 32], crate::model::Revocation>,
    /// Runs changed by transactions since the runtime last looked: the store's signals.
    /// Volatile in a real server; the harness clears them on a crash.
    pub noted: Vec<RunId>,
    /// The event log, with what it holds from each child.
    pub events: super::events::EventLog,
}

/// What a batch of the parent's changes started, for the harness to track origins.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// (local run, the parent's run) pairs.
    pub started: Vec<(RunId, RunId)>,
}

impl Holdings for Store {
    type Error = Infallible;

    fn copy_of(&self, parent_task: TaskId) -> Result<Option<TaskRecord>, Infallible> {
        Ok(self
            .inherited_tasks
            .get(&parent_task)
            .and_then(|id| self.tasks.get(id))
            .cloned())
    }

    fn name_holder(&self, name: &str) -> Result<Option<TaskId>, Infallible> {
        Ok(self.names.get(name).copied())
    }

    fn run_for(&self, parent_run: RunId) -> Result<Option<RunId>, Infallible> {
        Ok(self.inherited_runs.get(&parent_run).copied())
    }

    fn confirmed(&self, item: Confirmable) -> Result<Option<bool>, Infallible> {
        Ok(self.resync.as_ref().map(|(_, c)| c.contains(&item)))
    }

    fn run_task(&self, local_run: RunId) -> Result<Option<TaskId>, Infallible> {
        Ok(self.runs.get(&local_run).map(|r| r.task_id))
    }
}

fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e {},
    }
}

impl Store {
    /// A new server's store, its log in epoch `epoch`.
    pub fn with_epoch(epoch: u64) -> Self {
        Store {
            epoch,
            ..Store::default()
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn append(&mut self, entry: Option<LogEntry<TaskRecord>>) {
        if let Some(entry) = entry {
            self.log.push(entry);
        }
    }

    /// Stores a task (new when `before` is `None`) with its name, and logs it.
    fn upsert(&mut self, mut task: TaskRecord, before: Option<&TaskRecord>) -> TaskRecord {
        if let Some(before) = before {
            self.names.remove(&before.name);
        } else {
            task.id = self.next_id();
        }
        self.names.insert(task.name.clone(), task.id);
        self.tasks.insert(task.id, task.clone());
        self.append(inherit::log_upsert(before, &task));
        task
    }

    fn delete_task(&mut self, id: TaskId) {
        let Some(task) = self.tasks.remove(&id) else {
            return;
        };
        self.names.remove(&task.name);
        let runs: Vec<RunId> = self
            .runs
            .iter()
            .filter(|(_, r)| r.task_id == id)
            .map(|(id, _)| *id)
            .collect();
        for run in runs {
            self.runs.remove(&run);
            self.inherited_runs.retain(|_, local| *local != run);
        }
        let change = Change::TaskDelete { task_id: id };
        self.append(inherit::log_about(&task, change));
    }

    /// Starts a run of `task_id` on `devices` (indices of this server's devices).
    fn start(
        &mut self,
        task_id: TaskId,
        devices: impl Iterator<Item = usize>,
        server: usize,
        parent_run: Option<RunId>,
    ) -> Option<RunId> {
        let task = self.tasks.get(&task_id)?.clone();
        let run_id = self.next_id();
        let records: BTreeMap<usize, DeviceRunRecord> = devices
            .map(|d| {
                let id = format!("s{server}-d{d}");
                (d, DeviceRunRecord::pending(id.clone(), id))
            })
            .collect();
        let run = RunData {
            task_id,
            parent_run,
            stopped: false,
            paused: false,
            counters: RunCounters::of(records.values()),
            records,
            version: 1,
            table: StatsTable::new(),
        };
        self.runs.insert(run_id, run);
        self.noted.push(run_id);
        let change = Change::RunStart {
            task_id,
            run_id,
            revision: task.revision,
            occurrence: None,
        };
        self.append(inherit::log_about(&task, change));
        Some(run_id)
    }

    /// Stops a run: devices it has not reached end here.
    fn stop(&mut self, run_id: RunId, now: UnixMillis) {
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        run.stopped = true;
        run.version += 1;
        let end = DeviceProgress::Ended {
            at: now,
            description: "stopped".into(),
        };
        for record in run.records.values_mut() {
            if record.state == DeviceState::Pending {
                let old = record.clone();
                if record.advance(&end) {
                    run.counters.replace(&old, record);
                }
            }
        }
        let task_id = run.task_id;
        self.noted.push(run_id);
        if let Some(task) = self.tasks.get(&task_id).cloned() {
            let change = Change::RunStop { task_id, run_id };
            self.append(inherit::log_about(&task, change));
        }
    }

    /// Pauses or resumes a run and logs it, as the store does (devices are not simulated
    /// at this level: only the run's mark and its log entry).
    fn pause(&mut self, run_id: RunId, paused: bool) {
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        if run.stopped || run.paused == paused {
            return;
        }
        run.paused = paused;
        let task_id = run.task_id;
        if let Some(task) = self.tasks.get(&task_id).cloned() {
            let change = Change::RunPause {
                task_id,
                run_id,
                paused,
            };
            self.append(inherit::log_about(&task, change));
        }
    }

    // ---- The primary's administrator ----

    pub fn create_task(&mut self, group_id: u64, subgroups: bool, secondaries: bool, now: i64) {
        let n = self.next_id + 1;
        let task = TaskRecord {
            id: 0,
            name: format!("task {n}"),
            task_type: TaskType::Device(TaskPayload::Inventory),
            application: AGENT_APPLICATION.into(),
            scope: Scope::Group {
                group_id,
                include_subgroups: subgroups,
                include_secondaries: secondaries,
            },
            settings: TaskSettings::default(),
            created: now,
            modified: now,
            revision: 1,
            changed_by: ChangedBy::Administrator("admin".into()),
            last_run: None,
            inherited: None,
        };
        self.upsert(task, None);
    }

    pub fn edit_task(&mut self, id: TaskId, rename: bool, days: u32, now: i64) {
        let Some(before) = self.tasks.get(&id).cloned() else {
            return;
        };
        let mut task = before.clone();
        task.revision += 1;
        task.modified = now;
        task.settings.store_history_days = days;
        if rename {
            task.name = format!("task {id} r{}", task.revision);
        }
        self.upsert(task, Some(&before));
    }

    pub fn delete(&mut self, id: TaskId) {
        self.delete_task(id);
    }

    /// Starts a run of a task of this server's own on `devices`.
    pub fn start_run(&mut self, task_id: TaskId, devices: Vec<usize>) -> Option<RunId> {
        self.start(task_id, devices.into_iter(), 0, None)
    }

    pub fn stop_run(&mut self, run_id: RunId, now: UnixMillis) {
        self.stop(run_id, now);
    }

    // ---- The link ----

    /// Starts resynchronising with a parent whose log (epoch `epoch`) ends at `until`, from
    /// `start` (0, or where the parent's snapshot begins).
    pub fn begin_resync(&mut self, epoch: u64, (start, until): (u64, u64), now: UnixMillis) {
        self.cursor = start;
        self.parent_epoch = epoch;
        self.resync = Some((until, BTreeSet::new()));
        self.end_resync_if_done(now);
    }

    /// Drops what the parent's new log did not confirm once the cursor reached its end.
    fn end_resync_if_done(&mut self, now: UnixMillis) {
        let Some((until, confirmed)) = &self.resync else {
            return;
        };
        if self.cursor < *until {
            return;
        }
        let copies: Vec<(TaskId, TaskId)> =
            self.inherited_tasks.iter().map(|(p, l)| (*p, *l)).collect();
        let runs: Vec<(RunId, RunId)> = self.inherited_runs.iter().map(|(p, l)| (*p, *l)).collect();
        let leftovers = inherit::resync_leftovers(&copies, &runs, |c| confirmed.contains(&c));
        self.resync = None;
        for plan in leftovers {
            self.carry_out(plan, 0, 0, now, &mut Applied::default());
        }
    }

    /// Applies a batch of the parent's changes and stores the cursor, in one transaction.
    pub fn apply_batch(
        &mut self,
        parent: &str,
        batch: &[(u64, TaskChange)],
        server: usize,
        devices: usize,
        now: UnixMillis,
    ) -> Applied {
        let mut applied = Applied::default();
        for (seq, change) in batch {
            let plan = infallible(inherit::plan(parent, change, &*self, now));
            if let (Some(item), Some((_, confirmed))) = (plan.confirms(), self.resync.as_mut()) {
                confirmed.insert(item);
            }
            self.carry_out(plan, server, devices, now, &mut applied);
            self.cursor = *seq;
            self.applied.push(*seq);
        }
        self.end_resync_if_done(now);
        applied
    }

    fn carry_out(
        &mut self,
        plan: Plan,
        server: usize,
        devices: usize,
        now: UnixMillis,
        applied: &mut Applied,
    ) {
        {
            match plan {
                Plan::Nothing | Plan::Keep(_) => {}
                Plan::Upsert {
                    parent_task,
                    copy,
                    existing,
                } => {
                    let stored = self.upsert(copy, existing.as_ref());
                    self.inherited_tasks.insert(parent_task, stored.id);
                }
                Plan::Delete { parent_task, local } => {
                    self.inherited_tasks.remove(&parent_task);
                    self.delete_task(local);
                }
                Plan::StartRun {
                    parent_run,
                    local_task,
                    replaces,
                    ..
                } => {
                    if let Some(local_run) = replaces {
                        self.forget(parent_run, local_run, now);
                    }
                    // Every device of a simulated server is a managed device.
                    if let Some(run) = self.start(local_task, 0..devices, server, Some(parent_run))
                    {
                        self.inherited_runs.insert(parent_run, run);
                        applied.started.push((run, parent_run));
                    }
                }
                Plan::StopRun { local_run } => self.stop(local_run, now),
                Plan::PauseRun { local_run, paused } => self.pause(local_run, paused),
                Plan::ForgetRun {
                    parent_run,
                    local_run,
                } => self.forget(parent_run, local_run, now),
                Plan::Revoke(revocation) => self.revoke(revocation),
            }
        }
    }

    /// Keeps a revocation and, if it is new here, logs it for the children (as the store
    /// does, in one transaction).
    pub fn revoke(&mut self, revocation: crate::model::Revocation) {
        let key = revocation.fingerprint.0;
        if self.revoked.contains_key(&key) {
            return;
        }
        self.revoked.insert(key, revocation.clone());
        self.log.push(inherit::log_revocation(revocation));
    }

    /// The parent no longer has run `parent_run`: `local_run` stops and stays as history.
    fn forget(&mut self, parent_run: RunId, local_run: RunId, now: UnixMillis) {
        self.inherited_runs.remove(&parent_run);
        if self.runs.get(&local_run).is_some_and(|r| !r.own_over()) {
            self.stop(local_run, now);
        }
        if let Some(run) = self.runs.get_mut(&local_run) {
            run.parent_run = None;
        }
    }

    /// Merges a child's report into a run's rows; `sabotage`: every row replaces the one
    /// held, whatever its version.
    pub fn merge_stats(&mut self, run_id: RunId, rows: Vec<StatsRow>, sabotage: bool) {
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        let changed = if sabotage {
            let mut kept: Vec<StatsRow> = run
                .table
                .rows()
                .filter(|held| rows.iter().all(|r| r.path != held.path))
                .cloned()
                .collect();
            kept.extend(rows);
            run.table = StatsTable::from_rows(kept);
            true
        } else {
            run.table.merge_all(rows)
        };
        if changed {
            self.noted.push(run_id);
        }
    }

    /// A device reports progress in a run; false when it changed nothing.
    pub fn progress(&mut self, run_id: RunId, device: usize, progress: &DeviceProgress) -> bool {
        let Some(run) = self.runs.get_mut(&run_id) else {
            return false;
        };
        let Some(record) = run.records.get_mut(&device) else {
            return false;
        };
        let old = record.clone();
        if !record.advance(progress) {
            return false;
        }
        run.counters.replace(&old, record);
        run.version += 1;
        self.noted.push(run_id);
        true
    }
}

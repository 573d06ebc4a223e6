//! Tasks, their runs, and one record per (run, device). A run's counters live in its run
//! record and change in the same transaction as the device records they count, so the two
//! always agree.

use redb::{ReadableTable, WriteTransaction};

use super::change_log;

mod chains;
use super::revisions::Note;
use super::schema::*;
use super::signals;
use super::{META, Store, StoreError, entries_with_prefix, get, put, remove, values};
use crate::model::link::StatsRow;
use crate::model::revision::RevisionAction;
use crate::model::schedule::LocalDateTime;
use crate::model::scope::Scope;
use crate::model::task::{
    ChangedBy, DeviceEdit, DeviceProgress, DeviceRunRecord, DeviceState, RunCounters, RunId,
    RunRecord, TaskId, TaskRecord, TaskType,
};
use crate::model::{RunRef, UnixMillis};
use crate::wire::msg::RunOrder;

const NEXT_TASK_ID: &str = "next_task_id";
const NEXT_RUN_ID: &str = "next_run_id";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(TASKS)?;
    txn.open_table(TASK_NAMES)?;
    txn.open_table(RUNS)?;
    txn.open_table(RUN_DEVICES)?;
    txn.open_table(OCCURRENCE_RUNS)?;
    txn.open_table(SCHEDULE_MARKS)?;
    txn.open_table(CHAIN_RUNS)?;
    txn.open_table(TASK_REVISIONS)?;
    txn.open_table(DELETED_TASKS)?;
    Ok(())
}

fn next_id(txn: &WriteTransaction, key: &str) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let id = get::<u64>(&meta, key)?.unwrap_or(1);
    put(&mut meta, key, &(id + 1))?;
    Ok(id)
}

fn name_taken(name: &str) -> StoreError {
    StoreError::Rejected(format!("a task named {name:?} already exists"))
}

/// What a start creates: the run, and the order for its devices (none for a server task).
#[derive(Clone, Debug)]
pub struct StartedRun {
    pub run: RunRecord,
    pub task: TaskRecord,
    pub order: Option<RunOrder>,
    /// The devices to send the order to now (all of them, but for a chained run: those
    /// that have finished the run it follows); for a server task, the server, if it is to
    /// run it now.
    pub device_ids: Vec<String>,
    /// The runs of tasks chained after this one, started with it.
    pub chained: Vec<StartedRun>,
}

/// What a device's report changed.
#[derive(Clone, Debug)]
pub struct Progressed {
    pub record: DeviceRunRecord,
    pub run: RunRecord,
    /// This report finished the run's last device.
    pub run_finished: bool,
    /// Runs chained after this one that start on the device now.
    pub chained: Vec<StartedRun>,
    /// The events it was announced with (see [`Announce`]).
    pub announced: Vec<crate::model::Event>,
}

/// How a device's report is announced in the event log: the events are written in the
/// transaction that records it, so that a run's end never comes before one of its
/// devices' results (reports of one run are recorded side by side).
#[derive(Clone, Copy)]
pub struct Announce {
    pub retention: crate::model::EventRetention,
    pub events: fn(&Progressed, UnixMillis) -> Vec<crate::model::Event>,
}

/// Writes what `announce` makes of `done` to the event log, in `txn`.
pub(super) fn announce_in(
    txn: &WriteTransaction,
    done: &mut Option<Progressed>,
    announce: Option<Announce>,
    now: UnixMillis,
) -> Result<(), StoreError> {
    if let (Some(done), Some(announce)) = (done.as_mut(), announce) {
        for event in (announce.events)(done, now) {
            let about = Some(super::rights::Guarded::Task(done.run.task_id));
            super::events::append_in(txn, event.clone(), about, announce.retention, now)?;
            done.announced.push(event);
        }
    }
    Ok(())
}

/// What stopping a run did.
#[derive(Clone, Debug)]
pub struct Stopped {
    pub run: RunRecord,
    /// Devices with the run (or a run chained after it) delivered or going: they must be
    /// told to cancel it.
    pub to_cancel: Vec<(String, RunRef)>,
}

impl Store {
    pub async fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(|txn| values(&txn.open_table(TASKS)?)).await
    }

    pub async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.read_now(move |txn| get(&txn.open_table(TASKS)?, &task_key(id)))
            .await
    }

    pub async fn task_by_name(&self, name: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.read_now(
            move |txn| match get::<TaskId>(&txn.open_table(TASK_NAMES)?, name)? {
                Some(id) => get(&txn.open_table(TASKS)?, &task_key(id)),
                None => Ok(None),
            },
        )
        .await
    }

    /// Applies `change` to a task and bumps its revision; `None` if there is no such task.
    /// A new name must be free.
    pub async fn update_task(
        &self,
        id: TaskId,
        note: Note,
        change: impl FnMut(&mut TaskRecord) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let mut change = change;
        self.write(move |txn| {
            let Some(old) = task_in(txn, id)? else {
                return Ok(None);
            };
            let mut task = old.clone();
            change(&mut task)?;
            task.revision += 1;
            chains::check_in(txn, &task)?;
            let task = upsert_in(txn, task, Some(&old))?;
            super::revisions::record_in(txn, &task, &note)?;
            change_log::log_task(txn, Some(&old), &task)?;
            Ok(Some(task))
        })
        .await
    }

    /// Applies a device user's change to the schedule of a local task of `device_id`, unless
    /// an administrator changed the task since `base_revision`; decided inside the write
    /// transaction, so it cannot race an administrator's edit. `None` if the task is not a
    /// local task of that device.
    pub async fn device_edit(
        &self,
        task_id: TaskId,
        device_id: &str,
        base_revision: u32,
        schedule: crate::model::schedule::Schedule,
        now: UnixMillis,
    ) -> Result<Option<(TaskRecord, DeviceEdit)>, StoreError> {
        let device_id = device_id.to_string();
        self.write(move |txn| {
            let mut tasks = txn.open_table(TASKS)?;
            let Some(mut task) = get::<TaskRecord>(&tasks, &task_key(task_id))? else {
                return Ok(None);
            };
            if task.scope
                != (Scope::Local {
                    device_id: device_id.clone(),
                })
            {
                return Ok(None);
            }
            let decision = task.device_edit(base_revision);
            if decision == DeviceEdit::Apply {
                task.settings.schedule = schedule.clone();
                task.revision += 1;
                task.modified = now;
                task.changed_by = ChangedBy::DeviceUser;
                put(&mut tasks, &task_key(task_id), &task)?;
                drop(tasks);
                let note = Note::of(RevisionAction::DeviceUserEdit);
                super::revisions::record_in(txn, &task, &note)?;
            }
            Ok(Some((task, decision)))
        })
        .await
    }

    /// Deletes a task with its runs, their records and their undelivered orders. Returns the
    /// task and the devices that had one of its runs delivered or going, to be told to cancel.
    pub async fn delete_task(
        &self,
        id: TaskId,
        by: String,
        note: Note,
        now: UnixMillis,
    ) -> Result<Option<Deleted>, StoreError> {
        self.write(move |txn| {
            let deleted = delete_in(txn, id, now)?;
            if let Some((task, _)) = &deleted {
                super::revisions::deleted_in(txn, task, &by, &note, now)?;
                change_log::log_task_deleted(txn, task)?;
            }
            Ok(deleted)
        })
        .await
    }

    /// Starts a run of task `task_id` on `targets` (device id, name): a Pending record per
    /// device, counters, and an order per device for device tasks, in one transaction. With
    /// `scope`, the task's scope is replaced first (a start for selected devices). A server
    /// task gets one record, for the server itself (`targets` holds it).
    pub async fn start_run(
        &self,
        task_id: TaskId,
        targets: Vec<(String, String)>,
        scope: Option<crate::model::scope::Scope>,
        started_by: String,
        now: UnixMillis,
    ) -> Result<Option<StartedRun>, StoreError> {
        self.write(move |txn| {
            let before = task_in(txn, task_id)?;
            let new = NewRun {
                targets: targets.clone(),
                scope: scope.clone(),
                started_by: started_by.clone(),
                ..NewRun::default()
            };
            let started = start_in(txn, task_id, new, now)?;
            if let Some(started) = &started {
                if scope.is_some() {
                    let note = Note::of(RevisionAction::ScopeSetByStart);
                    super::revisions::record_in(txn, &started.task, &note)?;
                    change_log::log_task(txn, before.as_ref(), &started.task)?;
                }
                log_started(txn, started)?;
            }
            Ok(started)
        })
        .await
    }

    /// Applies a device's report to its record and the run's counters, in one transaction.
    /// `None` when it changes nothing: an unknown run or device, a duplicate, a report older
    /// than one already applied. A finished device's order is retired.
    pub async fn record_progress(
        &self,
        device_id: &str,
        run_id: RunId,
        progress: DeviceProgress,
        now: UnixMillis,
        announce: Option<Announce>,
    ) -> Result<Option<Progressed>, StoreError> {
        let device_id = device_id.to_string();
        self.write(move |txn| {
            let mut done = progress_in(txn, &device_id, run_id, &progress, now)?;
            announce_in(txn, &mut done, announce, now)?;
            Ok(done)
        })
        .await
    }

    /// Stops a run: devices it has not reached end here ("stopped before it reached the
    /// device") and lose their order; every device of the run not finished is returned, to
    /// be told to cancel it if connected (one not heard from may hold the order already).
    pub async fn stop_run(
        &self,
        run_id: RunId,
        now: UnixMillis,
    ) -> Result<Option<Stopped>, StoreError> {
        self.write(move |txn| {
            let stopped = stop_in(txn, run_id, now)?;
            if let Some(stopped) = &stopped
                && let Some(task) = task_in(txn, stopped.run.task_id)?
            {
                change_log::log_run_stopped(txn, &task, run_id)?;
            }
            Ok(stopped)
        })
        .await
    }

    pub async fn run(&self, run_id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.read_now(move |txn| run_read(txn, run_id)).await
    }

    /// Those of `run_ids` that an administrator stopped (or whose task was deleted since).
    pub async fn stopped_among(&self, run_ids: Vec<RunId>) -> Result<Vec<RunId>, StoreError> {
        self.read(move |txn| {
            let mut stopped = Vec::new();
            for run_id in run_ids {
                if run_read(txn, run_id)?.is_none_or(|run| run.stopped.is_some()) {
                    stopped.push(run_id);
                }
            }
            Ok(stopped)
        })
        .await
    }

    /// The per-device records of a run, in device id order.
    pub async fn run_records(&self, run_id: RunId) -> Result<Vec<DeviceRunRecord>, StoreError> {
        self.read(move |txn| {
            Ok(entries_with_prefix::<DeviceRunRecord>(
                &txn.open_table(RUN_DEVICES)?,
                &format!("{run_id:020}/"),
            )?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
        })
        .await
    }

    /// One page of a run's records in device id order, after the device `after`: those
    /// `keep` takes (it may also trim them), until `full` says the page is full. Reads only
    /// as far as the page goes. Also says whether a record was left over.
    pub async fn run_records_page<K, F>(
        &self,
        run_id: RunId,
        after: Option<String>,
        mut keep: K,
        mut full: F,
    ) -> Result<(Vec<DeviceRunRecord>, bool), StoreError>
    where
        K: FnMut(DeviceRunRecord) -> Option<DeviceRunRecord> + Send + 'static,
        F: FnMut(&[DeviceRunRecord], &DeviceRunRecord) -> bool + Send + 'static,
    {
        self.read(move |txn| {
            let table = txn.open_table(RUN_DEVICES)?;
            let prefix = format!("{run_id:020}/");
            let start = match &after {
                // The smallest key after `after`'s.
                Some(device) => format!("{}\0", record_key(run_id, device)),
                None => prefix.clone(),
            };
            let mut page = Vec::new();
            for entry in table.range::<&str>(start.as_str()..)? {
                let (key, value) = entry?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                let Some(record) = keep(super::decode(value.value())?) else {
                    continue;
                };
                if full(&page, &record) {
                    return Ok((page, true));
                }
                page.push(record);
            }
            Ok((page, false))
        })
        .await
    }

    /// Deletes the runs (and their records) that ended more than their task's store-history
    /// days before `now`. Returns how many runs went.
    pub async fn prune_history(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.write(move |txn| {
            let tasks: Vec<TaskRecord> = values(&txn.open_table(TASKS)?)?;
            let runs: Vec<RunRecord> = values(&txn.open_table(RUNS)?)?;
            let mut pruned = 0;
            for run in runs {
                let Some(task) = tasks.iter().find(|t| t.id == run.task_id) else {
                    continue;
                };
                let Some(ended) = run.finished.or(run.stopped) else {
                    continue;
                };
                let keep = i64::from(task.settings.store_history_days) * DAY_MS;
                if ended.saturating_add(keep) < now {
                    delete_run(txn, run.run_id)?;
                    pruned += 1;
                }
            }
            Ok(pruned)
        })
        .await
    }
}

/// The task holding display name `name`, if any.
pub(crate) fn name_holder(
    txn: &WriteTransaction,
    name: &str,
) -> Result<Option<TaskId>, StoreError> {
    get(&txn.open_table(TASK_NAMES)?, name)
}

pub(crate) fn task_in(
    txn: &WriteTransaction,
    id: TaskId,
) -> Result<Option<TaskRecord>, StoreError> {
    get(&txn.open_table(TASKS)?, &task_key(id))
}

pub(crate) fn run_in(txn: &WriteTransaction, id: RunId) -> Result<Option<RunRecord>, StoreError> {
    get(&txn.open_table(RUNS)?, &run_key(id))
}

pub(crate) fn run_read(
    txn: &redb::ReadTransaction,
    id: RunId,
) -> Result<Option<RunRecord>, StoreError> {
    get(&txn.open_table(RUNS)?, &run_key(id))
}

/// Stores `task`: a new one under the next id (`old` is `None`), or `old` changed. Keeps
/// the name index; a name taken by another task is refused.
pub(crate) fn upsert_in(
    txn: &WriteTransaction,
    task: TaskRecord,
    old: Option<&TaskRecord>,
) -> Result<TaskRecord, StoreError> {
    let mut task = task;
    let mut names = txn.open_table(TASK_NAMES)?;
    match old {
        None => {
            if names.get(task.name.as_str())?.is_some() {
                return Err(name_taken(&task.name));
            }
            task.id = next_id(txn, NEXT_TASK_ID)?;
            put(&mut names, &task.name, &task.id)?;
        }
        Some(old) if old.name != task.name => {
            if names.get(task.name.as_str())?.is_some() {
                return Err(name_taken(&task.name));
            }
            remove(&mut names, &old.name)?;
            put(&mut names, &task.name, &task.id)?;
        }
        Some(_) => {}
    }
    put(&mut txn.open_table(TASKS)?, &task_key(task.id), &task)?;
    Ok(task)
}

/// A deleted task, and the (device, run) pairs to be told to cancel.
pub type Deleted = (TaskRecord, Vec<(String, RunRef)>);

/// Deletes a task, its runs and their orders, and stops the runs chained after them; see
/// [`Store::delete_task`].
pub(crate) fn delete_in(
    txn: &WriteTransaction,
    id: TaskId,
    now: UnixMillis,
) -> Result<Option<Deleted>, StoreError> {
    let mut tasks = txn.open_table(TASKS)?;
    let Some(task) = get::<TaskRecord>(&tasks, &task_key(id))? else {
        return Ok(None);
    };
    remove(&mut tasks, &task_key(id))?;
    drop(tasks);
    remove(&mut txn.open_table(TASK_NAMES)?, &task.name)?;
    remove(&mut txn.open_table(SCHEDULE_MARKS)?, &task_key(id))?;
    let mut to_cancel = Vec::new();
    for run in runs_of_task(txn, id)? {
        to_cancel.extend(chains::stop_chains_in(txn, run.run_id, now)?);
        for record in delete_run(txn, run.run_id)? {
            let going = matches!(
                record.state,
                DeviceState::Scheduled | DeviceState::Running | DeviceState::Paused
            );
            if going {
                to_cancel.push((record.device_id, run.device_ref()));
            }
        }
    }
    Ok(Some((task, to_cancel)))
}

/// What a new run is: its devices, who started it, and which run of the parent or which
/// scheduled occurrence it carries out.
#[derive(Clone, Debug, Default)]
pub(crate) struct NewRun {
    /// (device id, name).
    pub targets: Vec<(String, String)>,
    /// Replaces the task's scope first (a start for selected devices).
    pub scope: Option<Scope>,
    pub started_by: String,
    pub parent_run: Option<RunId>,
    pub occurrence: Option<LocalDateTime>,
    /// The run this one follows (a chained task): each device starts it as it finishes
    /// that run.
    pub after_run: Option<RunId>,
    /// How many chain links led to this run.
    pub chain_depth: u8,
}

/// Starts a run; see [`Store::start_run`]. A run of an occurrence is indexed by it, and is
/// sent to no device when the devices start it themselves on their schedule.
pub(crate) fn start_in(
    txn: &WriteTransaction,
    task_id: TaskId,
    new: NewRun,
    now: UnixMillis,
) -> Result<Option<StartedRun>, StoreError> {
    let mut tasks = txn.open_table(TASKS)?;
    let Some(mut task) = get::<TaskRecord>(&tasks, &task_key(task_id))? else {
        return Ok(None);
    };
    if let Some(scope) = &new.scope {
        task.scope = scope.clone();
        task.revision += 1;
        task.modified = now;
    }
    let targets = new.targets;
    let run_id = next_id(txn, NEXT_RUN_ID)?;
    let mut counters = RunCounters::default();
    let mut records = txn.open_table(RUN_DEVICES)?;
    for (id, name) in &targets {
        let record = DeviceRunRecord::pending(id.clone(), name.clone());
        counters.add(&record);
        put(&mut records, &record_key(run_id, id), &record)?;
    }
    drop(records);
    let device_clock = new.occurrence.is_some() && task.runs_on_device_clock();
    let order = order_of(&task, run_id).filter(|_| !device_clock);
    let device_ids = match new.after_run {
        Some(after) => chains::link_in(txn, after, run_id, &task, &targets)?,
        None => {
            if let Some(order) = &order {
                let mut orders = txn.open_table(ORDERS)?;
                for (id, _) in &targets {
                    put(&mut orders, &order_key(id, run_id), order)?;
                }
            }
            targets.iter().map(|(id, _)| id.clone()).collect()
        }
    };
    if let Some(key) = new.occurrence {
        put(
            &mut txn.open_table(OCCURRENCE_RUNS)?,
            &occurrence_key(task_id, key),
            &run_id,
        )?;
    }
    let run = RunRecord {
        run_id,
        task_id,
        task_name: task.name.clone(),
        notify: task.settings.notify,
        revision: task.revision,
        started: now,
        started_by: new.started_by,
        stopped: None,
        // A run with no device of this server is over here at once; its statistics are
        // those of the servers below.
        finished: targets.is_empty().then_some(now),
        counters,
        version: 1,
        parent_run: new.parent_run,
        occurrence: new.occurrence,
        device_clock,
        paused: None,
        after_run: new.after_run,
    };
    put(&mut txn.open_table(RUNS)?, &run_key(run_id), &run)?;
    signals::note_run(&run);
    if task.last_run.is_none_or(|last| last < run_id) {
        task.last_run = Some(run_id);
    }
    put(&mut tasks, &task_key(task_id), &task)?;
    drop(tasks);
    let chained = chains::start_chains_in(txn, &run, &targets, new.chain_depth, now)?;
    Ok(Some(StartedRun {
        run,
        task,
        order,
        device_ids,
        chained,
    }))
}

/// Logs a run's start and the starts of the runs chained after it.
pub(crate) fn log_started(txn: &WriteTransaction, started: &StartedRun) -> Result<(), StoreError> {
    change_log::log_run_started(txn, &started.task, &started.run)?;
    for chained in &started.chained {
        log_started(txn, chained)?;
    }
    Ok(())
}

/// Refuses a chain that names no task of its kind here or loops (`chains::check_in`).
pub(crate) fn check_chain_in(txn: &WriteTransaction, task: &TaskRecord) -> Result<(), StoreError> {
    chains::check_in(txn, task)
}

/// The order a device is given for run `run_id` of `task`; `None` for a server task.
pub(crate) fn order_of(task: &TaskRecord, run_id: RunId) -> Option<RunOrder> {
    match &task.task_type {
        TaskType::Device(payload) => Some(RunOrder {
            run: RunRef::Ordered(run_id),
            task_id: task.id,
            task_name: task.name.clone(),
            application: task.application.clone(),
            payload: payload.clone(),
            time_limit_secs: task.settings.schedule_options.time_limit_secs,
            account: task.settings.account.clone(),
        }),
        _ => None,
    }
}

/// Every device's record of a run.
pub(crate) fn records_in(
    txn: &WriteTransaction,
    run_id: RunId,
) -> Result<Vec<DeviceRunRecord>, StoreError> {
    let prefix = format!("{run_id:020}/");
    Ok(entries_with_prefix(&txn.open_table(RUN_DEVICES)?, &prefix)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// Stops a run; see [`Store::stop_run`].
pub(crate) fn stop_in(
    txn: &WriteTransaction,
    run_id: RunId,
    now: UnixMillis,
) -> Result<Option<Stopped>, StoreError> {
    let mut runs = txn.open_table(RUNS)?;
    let Some(mut run) = get::<RunRecord>(&runs, &run_key(run_id))? else {
        return Ok(None);
    };
    run.stopped.get_or_insert(now);
    run.version += 1;
    // Devices that start this run by themselves may start it without having said anything.
    let tell_pending = run.device_clock;
    put(&mut runs, &run_key(run_id), &run)?;
    signals::note_run(&run);
    drop(runs);
    let records = records_in(txn, run_id)?;
    let device_ref = run.device_ref();
    let mut to_cancel = Vec::new();
    for record in records {
        match record.state {
            DeviceState::Pending => {
                let ended = DeviceProgress::Ended {
                    at: now,
                    description: "stopped by an administrator before it reached the device".into(),
                };
                progress_in(txn, &record.device_id, run_id, &ended, now)?;
                if tell_pending {
                    // One off now may still start it at its time: it is told when back.
                    let mut owed = txn.open_table(OWED_CANCELS)?;
                    put(
                        &mut owed,
                        &order_key(&record.device_id, run_id),
                        &device_ref,
                    )?;
                }
                // A connected device may hold the order already: its agent says it was
                // delivered or started only a moment later (`agent/outbox.rs`).
                to_cancel.push((record.device_id, device_ref));
            }
            DeviceState::Scheduled | DeviceState::Running | DeviceState::Paused => {
                to_cancel.push((record.device_id, device_ref))
            }
            _ => {}
        }
    }
    to_cancel.extend(chains::stop_chains_in(txn, run_id, now)?);
    let run = run_in(txn, run_id)?
        .ok_or_else(|| StoreError::Rejected(format!("run {run_id} vanished")))?;
    Ok(Some(Stopped { run, to_cancel }))
}

pub(crate) fn progress_in(
    txn: &WriteTransaction,
    device_id: &str,
    run_id: RunId,
    progress: &DeviceProgress,
    now: UnixMillis,
) -> Result<Option<Progressed>, StoreError> {
    let mut records = txn.open_table(RUN_DEVICES)?;
    let key = record_key(run_id, device_id);
    let Some(old) = get::<DeviceRunRecord>(&records, &key)? else {
        return Ok(None);
    };
    let mut record = old.clone();
    if !record.advance(progress) {
        return Ok(None);
    }
    put(&mut records, &key, &record)?;
    let mut runs = txn.open_table(RUNS)?;
    let Some(mut run) = get::<RunRecord>(&runs, &run_key(run_id))? else {
        return Ok(None);
    };
    run.counters.replace(&old, &record);
    run.version += 1;
    let run_finished = run.finished.is_none() && run.counters.finished() == run.counters.total();
    if run_finished {
        run.finished = Some(now);
    }
    put(&mut runs, &run_key(run_id), &run)?;
    drop((runs, records));
    signals::note_run(&run);
    let mut chained = Vec::new();
    if record.state.is_finished() {
        remove(&mut txn.open_table(ORDERS)?, &order_key(device_id, run_id))?;
        if !old.state.is_finished() {
            chained = chains::device_done_in(txn, &run, device_id)?;
        }
    }
    Ok(Some(Progressed {
        record,
        run,
        run_finished,
        chained,
        announced: Vec::new(),
    }))
}

fn runs_of_task(txn: &WriteTransaction, task_id: TaskId) -> Result<Vec<RunRecord>, StoreError> {
    Ok(values::<RunRecord>(&txn.open_table(RUNS)?)?
        .into_iter()
        .filter(|r| r.task_id == task_id)
        .collect())
}

/// Deletes a run, its records and its orders; returns the records.
fn delete_run(txn: &WriteTransaction, run_id: RunId) -> Result<Vec<DeviceRunRecord>, StoreError> {
    if let Some(run) = run_in(txn, run_id)? {
        forget_run(txn, &run)?;
        chains::forget_in(txn, &run)?;
        if let Some(key) = run.occurrence {
            remove(
                &mut txn.open_table(OCCURRENCE_RUNS)?,
                &occurrence_key(run.task_id, key),
            )?;
        }
    }
    remove(&mut txn.open_table(RUNS)?, &run_key(run_id))?;
    let mut records = txn.open_table(RUN_DEVICES)?;
    let entries: Vec<(String, DeviceRunRecord)> =
        entries_with_prefix(&records, &format!("{run_id:020}/"))?;
    let mut orders = txn.open_table(ORDERS)?;
    let mut owed = txn.open_table(OWED_CANCELS)?;
    for (key, record) in &entries {
        remove(&mut records, key)?;
        remove(&mut orders, &order_key(&record.device_id, run_id))?;
        remove(&mut owed, &order_key(&record.device_id, run_id))?;
    }
    Ok(entries.into_iter().map(|(_, r)| r).collect())
}

/// Deletes what a run leaves in these tables (its rows, its parent-run mapping).
fn forget_run(txn: &WriteTransaction, run: &RunRecord) -> Result<(), StoreError> {
    let mut rows = txn.open_table(RUN_ROWS)?;
    let keys: Vec<(String, StatsRow)> =
        entries_with_prefix(&rows, &format!("{:020}/", run.run_id))?;
    for (key, _) in keys {
        remove(&mut rows, &key)?;
    }
    if let Some(parent_run) = run.parent_run {
        remove(&mut txn.open_table(INHERITED_RUNS)?, &id_key(parent_run))?;
    }
    remove(&mut txn.open_table(RUNS_FINISHED)?, &run_key(run.run_id))?;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests;

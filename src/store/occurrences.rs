//! Runs of scheduled occurrences: one run per (task, occurrence) on each server, found or
//! made by whichever comes first (a device's report of an occurrence it started by itself,
//! this server's clock, or the parent's start of it), and the last occurrence of each task
//! the server's own scheduler dealt with, so that it deals with none twice.

use std::collections::HashMap;

use redb::WriteTransaction;

use super::schema::*;
use super::tasks::{
    Announce, NewRun, Progressed, StartedRun, announce_in, progress_in, start_in, task_in,
};
use super::{Store, StoreError, entries, get, put, remove};
use crate::model::UnixMillis;
use crate::model::device::DeviceRecord;
use crate::model::schedule::LocalDateTime;
use crate::model::task::{DeviceProgress, DeviceRunRecord, RunId, RunRecord, TaskId, TaskRecord};

impl Store {
    /// Applies a device's report of an occurrence it started by itself, as
    /// [`Store::record_progress`] does, to the run of that occurrence: made in the same
    /// transaction if this is the first word of it here ([`occurrence_run`]). `None` also
    /// when the task is gone or is not one its devices start by themselves.
    pub async fn record_occurrence_progress(
        &self,
        device_id: &str,
        task_id: TaskId,
        key: LocalDateTime,
        progress: DeviceProgress,
        now: UnixMillis,
        announce: Option<Announce>,
    ) -> Result<Option<Progressed>, StoreError> {
        let device_id = device_id.to_string();
        self.write(move |txn| {
            let Some(run_id) = occurrence_run(txn, task_id, key, now)? else {
                return Ok(None);
            };
            // The device has heard of a stop of this run, or ran it before the stop.
            remove(
                &mut txn.open_table(OWED_CANCELS)?,
                &order_key(&device_id, run_id),
            )?;
            join_app_start_run(txn, task_id, run_id, &device_id)?;
            let mut done = progress_in(txn, &device_id, run_id, &progress, now)?;
            announce_in(txn, &mut done, announce, now)?;
            Ok(done)
        })
        .await
    }

    /// The last occurrence of each task the server's scheduler dealt with.
    pub async fn schedule_marks(&self) -> Result<HashMap<TaskId, LocalDateTime>, StoreError> {
        self.read(|txn| {
            Ok(entries::<LocalDateTime>(&txn.open_table(SCHEDULE_MARKS)?)?
                .into_iter()
                .filter_map(|(key, at)| Some((key.parse().ok()?, at)))
                .collect())
        })
        .await
    }

    /// The server's scheduler deals with occurrence `key` of `task_id` once: in one
    /// transaction it becomes the task's last occurrence dealt with and, with `start`, its
    /// run starts (for a task its devices start by themselves, the run of that occurrence
    /// is found or made; otherwise a run of `start`'s devices, sent to them). `None` if this
    /// occurrence or a later one was dealt with already, the task is gone, or nothing starts.
    pub async fn begin_server_occurrence(
        &self,
        task_id: TaskId,
        key: LocalDateTime,
        start: Option<Vec<(String, String)>>,
        now: UnixMillis,
    ) -> Result<Option<StartedRun>, StoreError> {
        self.write(move |txn| {
            let mut marks = txn.open_table(SCHEDULE_MARKS)?;
            let mark = task_key(task_id);
            if get::<LocalDateTime>(&marks, &mark)?.is_some_and(|done| done >= key) {
                return Ok(None);
            }
            put(&mut marks, &mark, &key)?;
            drop(marks);
            let Some(targets) = start.clone() else {
                return Ok(None);
            };
            let Some(task) = task_in(txn, task_id)? else {
                return Ok(None);
            };
            if task.runs_on_device_clock() {
                occurrence_run(txn, task_id, key, now)?;
                return Ok(None);
            }
            if occurrence_run_in(txn, task_id, key)?.is_some() {
                return Ok(None);
            }
            let new = NewRun {
                targets,
                started_by: "the schedule".into(),
                occurrence: Some(key),
                ..NewRun::default()
            };
            let started = start_in(txn, task_id, new, now)?;
            if let Some(started) = &started {
                super::tasks::log_started(txn, started)?;
            }
            Ok(started)
        })
        .await
    }
}

/// A device that ran an "at application start" task joins that day's run: such a run holds
/// only the devices that ran it, since a device that does not start that day owes nothing.
fn join_app_start_run(
    txn: &WriteTransaction,
    task_id: TaskId,
    run_id: RunId,
    device_id: &str,
) -> Result<(), StoreError> {
    // Every other report finds its record: the task is read only for a device without one.
    let mut records = txn.open_table(RUN_DEVICES)?;
    let key = record_key(run_id, device_id);
    if get::<DeviceRunRecord>(&records, &key)?.is_some()
        || !task_in(txn, task_id)?.is_some_and(|t| t.runs_at_app_start())
    {
        return Ok(());
    }
    let name = get::<DeviceRecord>(&txn.open_table(DEVICES)?, device_id)?
        .map_or_else(|| device_id.to_string(), |d| d.name);
    let record = DeviceRunRecord::pending(device_id.to_string(), name);
    put(&mut records, &key, &record)?;
    let mut runs = txn.open_table(RUNS)?;
    if let Some(mut run) = get::<RunRecord>(&runs, &run_key(run_id))? {
        run.counters.add(&record);
        // A run with no device was over; it goes on until this one reports its end.
        run.finished = None;
        run.version += 1;
        put(&mut runs, &run_key(run_id), &run)?;
    }
    Ok(())
}

/// The targets of a run made here without an administrator: every device `task` reaches,
/// none for an "at application start" task (devices join its run as they run it).
pub(crate) fn unattended_targets(
    txn: &WriteTransaction,
    task: &TaskRecord,
) -> Result<Vec<(String, String)>, StoreError> {
    if task.runs_at_app_start() {
        return Ok(Vec::new());
    }
    super::devices::reached_devices(txn, task)
}

/// The run of `task_id`'s occurrence `key` here, made now if there is none yet (a run of every
/// device the task reaches, logged for the children), or `None` if the task is gone or its
/// devices do not start it by themselves.
pub(crate) fn occurrence_run(
    txn: &WriteTransaction,
    task_id: TaskId,
    key: LocalDateTime,
    now: UnixMillis,
) -> Result<Option<RunId>, StoreError> {
    if let Some(run_id) = occurrence_run_in(txn, task_id, key)? {
        return Ok(Some(run_id));
    }
    let Some(task) = task_in(txn, task_id)? else {
        return Ok(None);
    };
    if !task.runs_on_device_clock() {
        return Ok(None);
    }
    let new = NewRun {
        targets: unattended_targets(txn, &task)?,
        started_by: "the schedule".into(),
        occurrence: Some(key),
        ..NewRun::default()
    };
    let Some(started) = start_in(txn, task_id, new, now)? else {
        return Ok(None);
    };
    super::tasks::log_started(txn, &started)?;
    Ok(Some(started.run.run_id))
}

/// The run of task `task_id`'s occurrence `key` here, if one was made.
pub(crate) fn occurrence_run_in(
    txn: &WriteTransaction,
    task_id: TaskId,
    key: LocalDateTime,
) -> Result<Option<RunId>, StoreError> {
    get(
        &txn.open_table(OCCURRENCE_RUNS)?,
        &occurrence_key(task_id, key),
    )
}

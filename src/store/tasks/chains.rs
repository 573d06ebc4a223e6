//! Chains: a task whose schedule is "after task A completes". When a run of A starts here,
//! a run of each task chained after A starts with it, on the devices of A's run that the
//! chained task reaches, every one Pending and without an order; each device is given its
//! order when its record of A's run ends (for server tasks, the server runs it then). So the
//! chained run's totals are known from the start, and a device that never finishes A never
//! starts the chained task. Stopping A's run stops the runs chained after it.
//!
//! Only this server's own tasks are chained here: an inherited copy's chained runs come from
//! the parent's log (`Change::ChainStart`), since its schedule names the parent's task.

use redb::{ReadableTableMetadata, WriteTransaction};

use super::super::change_log;
use super::super::schema::*;
use super::super::{StoreError, entries_with_prefix, get, put, remove, values};
use super::{NewRun, StartedRun, order_of, run_in, start_in, stop_in, task_in};
use crate::model::schedule::Schedule;
use crate::model::task::{
    DeviceRunRecord, DeviceState, RunId, RunRecord, SERVER_RECORD, TaskRecord,
};
use crate::model::{RunRef, UnixMillis};

/// How deep chains of chains are followed; deeper links do not start (a loop is refused
/// when a task is saved, so this only bounds the work of one start).
const MAX_DEPTH: u8 = 16;

fn chain_key(after: RunId, run: RunId) -> String {
    format!("{after:020}/{run:020}")
}

/// Refuses a schedule "after task A" that names no task here, the task itself, a task of the
/// other kind (device tasks follow device tasks, server tasks server tasks) or that would
/// close a loop of chained tasks.
pub(crate) fn check_in(txn: &WriteTransaction, task: &TaskRecord) -> Result<(), StoreError> {
    let Schedule::AfterTask { task_id: first } = task.settings.schedule else {
        return Ok(());
    };
    let refuse = |why: String| Err(StoreError::Invalid(why));
    let mut next = first;
    // Each step follows one task's schedule; more steps than tasks means a loop.
    let tasks = txn.open_table(TASKS)?.len()?;
    for _ in 0..=tasks {
        if task.id != 0 && next == task.id {
            return refuse(format!(
                "task #{first} runs after this task already (directly or through others): \
                 a chain cannot loop"
            ));
        }
        let Some(before) = task_in(txn, next)? else {
            return refuse(format!("there is no task #{next} to run after"));
        };
        if next == first && before.task_type.runs_on_server() != task.task_type.runs_on_server() {
            return refuse(format!(
                "task #{first} ({}) and this task ({}) are not of the same kind: a device task \
                 can run only after a device task, a server task only after a server task",
                before.task_type.type_name(),
                task.task_type.type_name()
            ));
        }
        match before.settings.schedule {
            Schedule::AfterTask { task_id } if before.inherited.is_none() => next = task_id,
            _ => return Ok(()),
        }
    }
    refuse("the tasks this one runs after form a loop".into())
}

/// Starts the runs of this server's own tasks chained after `run` (of `task`), on the
/// devices of `targets` each reaches, and the runs chained after those; `depth` counts the
/// links followed so far.
pub(crate) fn start_chains_in(
    txn: &WriteTransaction,
    run: &RunRecord,
    targets: &[(String, String)],
    depth: u8,
    now: UnixMillis,
) -> Result<Vec<StartedRun>, StoreError> {
    if depth >= MAX_DEPTH {
        return Ok(Vec::new());
    }
    let chained: Vec<TaskRecord> = values::<TaskRecord>(&txn.open_table(TASKS)?)?
        .into_iter()
        .filter(|t| {
            t.inherited.is_none()
                && t.settings.schedule
                    == Schedule::AfterTask {
                        task_id: run.task_id,
                    }
        })
        .collect();
    let mut started = Vec::new();
    for task in chained {
        let reached = super::super::devices::reached_devices(txn, &task)?;
        let targets = targets
            .iter()
            .filter(|(id, _)| reached.iter().any(|(r, _)| r == id) || is_server(&task, id))
            .cloned()
            .collect();
        let new = NewRun {
            targets,
            started_by: format!("after run {} of {:?}", run.run_id, run.task_name),
            after_run: Some(run.run_id),
            chain_depth: depth + 1,
            ..NewRun::default()
        };
        if let Some(run) = start_in(txn, task.id, new, now)? {
            started.push(run);
        }
    }
    Ok(started)
}

/// A server task's one record is the server's own, whatever its scope says.
fn is_server(task: &TaskRecord, id: &str) -> bool {
    task.task_type.runs_on_server() && id == SERVER_RECORD
}

/// Records that run `run_id` follows `after`, and gives the order now to the devices whose
/// record of `after` has ended already (a chained run made late: from the parent's log).
/// Returns those devices.
pub(crate) fn link_in(
    txn: &WriteTransaction,
    after: RunId,
    run_id: RunId,
    task: &TaskRecord,
    targets: &[(String, String)],
) -> Result<Vec<String>, StoreError> {
    put(
        &mut txn.open_table(CHAIN_RUNS)?,
        &chain_key(after, run_id),
        &(),
    )?;
    let records = txn.open_table(RUN_DEVICES)?;
    let mut ready = Vec::new();
    for (id, _) in targets {
        let ended = get::<DeviceRunRecord>(&records, &record_key(after, id))?
            .is_some_and(|r| r.state.is_finished());
        if ended {
            ready.push(id.clone());
        }
    }
    drop(records);
    give_orders(txn, task, run_id, &ready)?;
    Ok(ready)
}

fn give_orders(
    txn: &WriteTransaction,
    task: &TaskRecord,
    run_id: RunId,
    devices: &[String],
) -> Result<(), StoreError> {
    if let Some(order) = order_of(task, run_id) {
        let mut orders = txn.open_table(ORDERS)?;
        for id in devices {
            put(&mut orders, &order_key(id, run_id), &order)?;
        }
    }
    Ok(())
}

/// The runs chained after `after`.
fn chained_runs(txn: &WriteTransaction, after: RunId) -> Result<Vec<RunId>, StoreError> {
    let prefix = format!("{after:020}/");
    Ok(
        entries_with_prefix::<()>(&txn.open_table(CHAIN_RUNS)?, &prefix)?
            .into_iter()
            .filter_map(|(key, ())| key[prefix.len()..].parse().ok())
            .collect(),
    )
}

/// Device `device_id` finished its part of run `after`: the runs chained after it start on
/// that device (its order written here, to be sent), unless `after` was stopped.
pub(crate) fn device_done_in(
    txn: &WriteTransaction,
    after: &RunRecord,
    device_id: &str,
) -> Result<Vec<StartedRun>, StoreError> {
    if after.stopped.is_some() {
        return Ok(Vec::new());
    }
    let mut started = Vec::new();
    for run_id in chained_runs(txn, after.run_id)? {
        let Some(run) = run_in(txn, run_id)? else {
            continue;
        };
        let pending = get::<DeviceRunRecord>(
            &txn.open_table(RUN_DEVICES)?,
            &record_key(run_id, device_id),
        )?
        .is_some_and(|r| r.state == DeviceState::Pending);
        if run.stopped.is_some() || !pending {
            continue;
        }
        let Some(task) = task_in(txn, run.task_id)? else {
            continue;
        };
        give_orders(txn, &task, run_id, &[device_id.to_string()])?;
        started.push(StartedRun {
            order: order_of(&task, run_id),
            run,
            task,
            device_ids: vec![device_id.to_string()],
            chained: Vec::new(),
        });
    }
    Ok(started)
}

/// Stops the runs chained after `after` (and theirs), logging each stop; returns the
/// devices to tell to cancel.
pub(crate) fn stop_chains_in(
    txn: &WriteTransaction,
    after: RunId,
    now: UnixMillis,
) -> Result<Vec<(String, RunRef)>, StoreError> {
    let mut cancel = Vec::new();
    for run_id in chained_runs(txn, after)? {
        let going = run_in(txn, run_id)?.is_some_and(|r| r.stopped.is_none());
        if !going {
            continue;
        }
        if let Some(stopped) = stop_in(txn, run_id, now)? {
            if let Some(task) = task_in(txn, stopped.run.task_id)? {
                change_log::log_run_stopped(txn, &task, run_id)?;
            }
            cancel.extend(stopped.to_cancel);
        }
    }
    Ok(cancel)
}

/// Forgets what links run `run` to chains: as the run it follows, and as a run followed.
pub(crate) fn forget_in(txn: &WriteTransaction, run: &RunRecord) -> Result<(), StoreError> {
    let mut table = txn.open_table(CHAIN_RUNS)?;
    if let Some(after) = run.after_run {
        remove(&mut table, &chain_key(after, run.run_id))?;
    }
    drop(table);
    let followers = chained_runs(txn, run.run_id)?;
    let mut table = txn.open_table(CHAIN_RUNS)?;
    for follower in followers {
        remove(&mut table, &chain_key(run.run_id, follower))?;
    }
    Ok(())
}

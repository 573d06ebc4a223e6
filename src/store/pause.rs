//! Pausing and resuming a run. A paused run's orders are held back from the devices that
//! have not received them; the devices that have it are told, and hold it if they have not
//! started it or pause its executor if it can pause. Resuming sends the held orders.

use redb::WriteTransaction;

use super::change_log::log_run_paused;
use super::schema::{ORDERS, RUNS, order_key, run_key};
use super::signals;
use super::tasks::{records_in, task_in};
use super::{Store, StoreError, get, put};
use crate::model::UnixMillis;
use crate::model::task::{DeviceState, RunId, RunRecord};
use crate::wire::msg::RunOrder;

/// What pausing or resuming a run did.
#[derive(Clone, Debug)]
pub struct PauseChange {
    pub run: RunRecord,
    /// Devices whose part of the run is not over: told of the pause or the resumption.
    pub tell: Vec<String>,
    /// On resumption, the orders held back from devices that had not received them.
    pub release: Vec<(String, RunOrder)>,
}

impl Store {
    /// Pauses (`paused`) or resumes a run and logs it for the servers below; `None` when
    /// that changes nothing (the run is gone, over, stopped, or already so).
    pub async fn pause_run(
        &self,
        run_id: RunId,
        paused: bool,
        now: UnixMillis,
    ) -> Result<Option<PauseChange>, StoreError> {
        self.write(move |txn| pause_in(txn, run_id, paused, now))
            .await
    }
}

/// See [`Store::pause_run`].
pub(crate) fn pause_in(
    txn: &WriteTransaction,
    run_id: RunId,
    paused: bool,
    now: UnixMillis,
) -> Result<Option<PauseChange>, StoreError> {
    let mut runs = txn.open_table(RUNS)?;
    let Some(mut run) = get::<RunRecord>(&runs, &run_key(run_id))? else {
        return Ok(None);
    };
    let over = run.stopped.is_some() || run.finished.is_some();
    if over || run.paused.is_some() == paused {
        return Ok(None);
    }
    run.paused = paused.then_some(now);
    run.version += 1;
    put(&mut runs, &run_key(run_id), &run)?;
    signals::note_run(&run);
    drop(runs);
    let records = records_in(txn, run_id)?;
    let orders = txn.open_table(ORDERS)?;
    let mut tell = Vec::new();
    let mut release = Vec::new();
    for record in records.into_iter().filter(|r| !r.state.is_finished()) {
        if !paused
            && record.state == DeviceState::Pending
            && let Some(order) = get::<RunOrder>(&orders, &order_key(&record.device_id, run_id))?
        {
            release.push((record.device_id.clone(), order));
        }
        tell.push(record.device_id);
    }
    if let Some(task) = task_in(txn, run.task_id)? {
        log_run_paused(txn, &task, run_id, paused)?;
    }
    Ok(Some(PauseChange { run, tell, release }))
}

/// Whether run `run_id` is paused, for holding back its orders.
pub(crate) fn is_paused(
    runs: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    run_id: RunId,
) -> Result<bool, StoreError> {
    Ok(get::<RunRecord>(runs, &run_key(run_id))?.is_some_and(|r| r.paused.is_some()))
}

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
    /// that changes nothing (the run is gone, stopped, or already so). A run whose devices
    /// here are all done may still go on below, so that does not refuse it: whether the run
    /// is over in the tree is for the caller to say.
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
    if run.stopped.is_some() || run.paused.is_some() == paused {
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

#[cfg(test)]
mod tests {
    use crate::store::tasks::tests::temp_store as store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_over_here_but_going_below_pauses_and_resumes() {
        // A primary with no device of its own: its part is over at the start, the
        // servers below carry the run, and the pause must reach them.
        let (_dir, store) = store().await;
        store
            .create_task(super::super::tasks::tests::task(30))
            .await
            .unwrap();
        let started = store
            .start_run(1, Vec::new(), None, "admin".into(), 1_000)
            .await;
        let run = started.unwrap().unwrap().run;
        assert!(run.finished.is_some());
        let paused = store.pause_run(run.run_id, true, 2_000).await.unwrap();
        let paused = paused.expect("paused");
        assert_eq!(paused.run.paused, Some(2_000));
        assert!(paused.tell.is_empty());
        assert!(
            store
                .pause_run(run.run_id, true, 3_000)
                .await
                .unwrap()
                .is_none()
        );
        let resumed = store.pause_run(run.run_id, false, 4_000).await.unwrap();
        assert_eq!(resumed.expect("resumed").run.paused, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pending_devices_order_is_held_while_paused_and_released_on_resume() {
        let (_dir, store) = store().await;
        store
            .create_task(super::super::tasks::tests::task(30))
            .await
            .unwrap();
        let target = vec![("d1".to_string(), "desk".to_string())];
        let started = store
            .start_run(1, target, None, "admin".into(), 1_000)
            .await;
        let run_id = started.unwrap().unwrap().run.run_id;
        let paused = store.pause_run(run_id, true, 2_000).await.unwrap().unwrap();
        assert_eq!(
            (paused.tell, paused.release.len()),
            (vec!["d1".to_string()], 0)
        );
        assert!(
            store.orders_for("d1").await.unwrap().is_empty(),
            "held back"
        );
        let resumed = store
            .pause_run(run_id, false, 3_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resumed.release.len(), 1);
        assert_eq!(resumed.release[0].0, "d1");
        assert_eq!(store.orders_for("d1").await.unwrap().len(), 1);
        store.stop_run(run_id, 4_000).await.unwrap();
        assert!(
            store
                .pause_run(run_id, true, 5_000)
                .await
                .unwrap()
                .is_none(),
            "stopped"
        );
    }
}

//! Schema 6 to 7: pause, progress and chains. A run's counters sum the progress of the
//! devices still at work, and a run records when it was paused and which run of another
//! task it follows; statistics rows carry the same counters. The shapes of schema 6 are
//! declared here; the earlier steps write them.

use serde::{Deserialize, Serialize};

use super::v5::rewrite;
use crate::model::UnixMillis;
use crate::model::link::StatsRow;
use crate::model::schedule::LocalDateTime;
use crate::model::task::{Notify, RunCounters, RunId, RunRecord, TaskId};
use crate::store::StoreError;
use crate::store::schema::{RUN_ROWS, RUNS};

/// A run's counters up to schema 6: without the progress sum.
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
pub(super) struct CountersV6 {
    pub by_state: [u64; 7],
    pub need_restart: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct RunV6 {
    pub run_id: RunId,
    pub task_id: TaskId,
    pub task_name: String,
    pub notify: Notify,
    pub revision: u32,
    pub started: UnixMillis,
    pub started_by: String,
    pub stopped: Option<UnixMillis>,
    pub finished: Option<UnixMillis>,
    pub counters: CountersV6,
    pub version: u64,
    pub parent_run: Option<RunId>,
    pub occurrence: Option<LocalDateTime>,
    pub device_clock: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StatsRowV6 {
    pub path: Vec<String>,
    pub depth: u32,
    pub task_id: u64,
    pub run_id: u64,
    pub counters: CountersV6,
    pub version: u64,
    pub epoch: u64,
}

impl CountersV6 {
    /// No device had reported progress: the sum is 0.
    fn now(self) -> RunCounters {
        RunCounters {
            by_state: self.by_state,
            need_restart: self.need_restart,
            progress: 0,
        }
    }
}

pub(in crate::store) fn from_6(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    rewrite(txn, RUNS, |run: RunV6| RunRecord {
        run_id: run.run_id,
        task_id: run.task_id,
        task_name: run.task_name,
        notify: run.notify,
        revision: run.revision,
        started: run.started,
        started_by: run.started_by,
        stopped: run.stopped,
        finished: run.finished,
        counters: run.counters.now(),
        version: run.version,
        parent_run: run.parent_run,
        occurrence: run.occurrence,
        device_clock: run.device_clock,
        paused: None,
        after_run: None,
    })?;
    rewrite(txn, RUN_ROWS, |row: StatsRowV6| StatsRow {
        path: row.path,
        depth: row.depth,
        task_id: row.task_id,
        run_id: row.run_id,
        counters: row.counters.now(),
        version: row.version,
        epoch: row.epoch,
    })
}

//! Schema 7 to 8: orders carry the account their device runs them under. A device's orders,
//! its runs' orders and the tasks it runs on its own schedule, stored before, run under the
//! default account, as they did. The shapes of schema 7 are declared here; the earlier steps
//! write them.

use serde::{Deserialize, Serialize};

use super::v5::rewrite;
use crate::model::schedule::{LocalDateTime, Schedule};
use crate::model::task::{TaskAccount, TaskPayload};
use crate::model::{RunRef, UnixMillis};
use crate::store::StoreError;
use crate::store::agent::{HeldSchedule, LocalRun, LocalRunState};
use crate::store::schema::ORDERS;
use crate::wire::msg::{RunOrder, RunResult, ScheduledTaskDef};

/// The agent's run log and scheduled tasks, as the agent's file names them.
const AGENT_RUNS: crate::store::StrTable = redb::TableDefinition::new("runs");
const AGENT_SCHEDULED_TASKS: crate::store::StrTable = redb::TableDefinition::new("scheduled_tasks");

#[derive(Serialize, Deserialize)]
pub(super) struct RunOrderV7 {
    pub run: RunRef,
    pub task_id: u64,
    pub task_name: String,
    pub application: String,
    pub payload: TaskPayload,
    pub time_limit_secs: Option<u32>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LocalRunV7 {
    pub order: RunOrderV7,
    pub state: LocalRunState,
    pub started: Option<i64>,
    pub result: Option<RunResult>,
    pub acknowledged: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ScheduledTaskDefV7 {
    pub task_id: u64,
    pub name: String,
    pub revision: u32,
    pub since: UnixMillis,
    pub application: String,
    pub payload: TaskPayload,
    pub schedule: Schedule,
    pub run_missed: bool,
    pub delay_window_secs: u32,
    pub time_limit_secs: Option<u32>,
    pub cancel_from: Option<LocalDateTime>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct HeldScheduleV7 {
    pub def: ScheduledTaskDefV7,
    pub handled: Option<LocalDateTime>,
}

impl RunOrderV7 {
    fn now(self) -> RunOrder {
        RunOrder {
            run: self.run,
            task_id: self.task_id,
            task_name: self.task_name,
            application: self.application,
            payload: self.payload,
            time_limit_secs: self.time_limit_secs,
            account: TaskAccount::Default,
        }
    }
}

impl ScheduledTaskDefV7 {
    fn now(self) -> ScheduledTaskDef {
        ScheduledTaskDef {
            task_id: self.task_id,
            name: self.name,
            revision: self.revision,
            since: self.since,
            application: self.application,
            payload: self.payload,
            schedule: self.schedule,
            run_missed: self.run_missed,
            delay_window_secs: self.delay_window_secs,
            time_limit_secs: self.time_limit_secs,
            cancel_from: self.cancel_from,
            account: TaskAccount::Default,
        }
    }
}

pub(in crate::store) fn from_7(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    rewrite(txn, ORDERS, RunOrderV7::now)?;
    rewrite(txn, AGENT_RUNS, |run: LocalRunV7| LocalRun {
        order: run.order.now(),
        state: run.state,
        started: run.started,
        result: run.result,
        acknowledged: run.acknowledged,
    })?;
    rewrite(txn, AGENT_SCHEDULED_TASKS, |held: HeldScheduleV7| {
        HeldSchedule {
            def: held.def.now(),
            handled: held.handled,
        }
    })
}

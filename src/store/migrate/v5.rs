//! Schema 5 to 6: the scheduler. A task's schedule options count seconds and tell an
//! automatic randomized delay from a fixed one; a run says which scheduled occurrence it is;
//! a start in the change log carries that occurrence; an order names its run by a `RunRef`
//! and carries the time limit. The shapes of schema 5 are declared here (serializable in
//! tests, which write files of schema 5 with them).

use redb::{TableHandle, WriteTransaction};
use serde::Deserialize;

use super::has_table;
use super::v6::{CountersV6, RunV6};
use super::v7::{LocalRunV7, RunOrderV7};
use crate::model::link::{Audience, Change, LogEntry};
use crate::model::schedule::{LocalDateTime, RandomDelay, Schedule, ScheduleOptions};
use crate::model::scope::Scope;
use crate::model::task::{
    ChangedBy, Inherited, Notify, Outcome, RestartPolicy, RunId, TaskAccount, TaskId, TaskPayload,
    TaskRecord, TaskSettings, TaskType,
};
use crate::model::{Revocation, RunRef, UnixMillis};
use crate::store::agent::LocalRunState;
use crate::store::schema::{CHANGE_LOG, ORDERS, RUNS, TASKS};
use crate::store::{StoreError, entries, entries_u64, put, put_u64};
use crate::wire::msg::RunResult;

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct OptionsV5 {
    pub run_missed: bool,
    pub random_delay_minutes: u32,
    pub time_limit_minutes: Option<u32>,
    pub cancel_from: Option<LocalDateTime>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct SettingsV5 {
    pub restart: RestartPolicy,
    pub schedule: Schedule,
    pub schedule_options: OptionsV5,
    pub account: TaskAccount,
    pub notify: Notify,
    pub store_history_days: u32,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct TaskV5 {
    pub id: TaskId,
    pub name: String,
    pub task_type: TaskType,
    pub application: String,
    pub scope: Scope,
    pub settings: SettingsV5,
    pub created: UnixMillis,
    pub modified: UnixMillis,
    pub revision: u32,
    pub changed_by: ChangedBy,
    pub last_run: Option<RunId>,
    pub inherited: Option<Inherited>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct RunV5 {
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
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) enum ChangeV5 {
    TaskUpsert {
        task_id: u64,
        revision: u32,
        // Boxed to keep the enum small; serde reads a box as what it holds.
        task: Box<TaskV5>,
    },
    TaskDelete {
        task_id: u64,
    },
    RunStart {
        task_id: u64,
        run_id: u64,
        revision: u32,
    },
    RunStop {
        task_id: u64,
        run_id: u64,
    },
    Noop,
    Revoke(Revocation),
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct EntryV5 {
    pub change: ChangeV5,
    pub audience: Audience,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct OrderV5 {
    pub run_id: u64,
    pub task_id: u64,
    pub task_name: String,
    pub application: String,
    pub payload: TaskPayload,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct ResultV5 {
    pub run_id: u64,
    pub started: UnixMillis,
    pub finished: UnixMillis,
    pub outcome: Outcome,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct LocalRunV5 {
    pub order: OrderV5,
    pub state: LocalRunState,
    pub started: Option<i64>,
    pub result: Option<ResultV5>,
    pub acknowledged: bool,
}

/// The agent's run log, as the agent's file names it.
const AGENT_RUNS: crate::store::StrTable = redb::TableDefinition::new("runs");

impl OptionsV5 {
    fn now(self) -> ScheduleOptions {
        ScheduleOptions {
            run_missed: self.run_missed,
            random_delay: match self.random_delay_minutes {
                0 => RandomDelay::Off,
                minutes => RandomDelay::Within {
                    seconds: minutes.saturating_mul(60),
                },
            },
            time_limit_secs: self.time_limit_minutes.map(|m| m.saturating_mul(60)),
            cancel_from: self.cancel_from,
        }
    }
}

impl TaskV5 {
    fn now(self) -> TaskRecord {
        let s = self.settings;
        TaskRecord {
            id: self.id,
            name: self.name,
            task_type: self.task_type,
            application: self.application,
            scope: self.scope,
            settings: TaskSettings {
                restart: s.restart,
                schedule: s.schedule,
                schedule_options: s.schedule_options.now(),
                account: s.account,
                notify: s.notify,
                store_history_days: s.store_history_days,
            },
            created: self.created,
            modified: self.modified,
            revision: self.revision,
            changed_by: self.changed_by,
            last_run: self.last_run,
            inherited: self.inherited,
        }
    }
}

impl RunV5 {
    fn now(self) -> RunV6 {
        RunV6 {
            run_id: self.run_id,
            task_id: self.task_id,
            task_name: self.task_name,
            notify: self.notify,
            revision: self.revision,
            started: self.started,
            started_by: self.started_by,
            stopped: self.stopped,
            finished: self.finished,
            counters: self.counters,
            version: self.version,
            parent_run: self.parent_run,
            occurrence: None,
            device_clock: false,
        }
    }
}

impl ChangeV5 {
    fn now(self) -> Change<TaskRecord> {
        match self {
            ChangeV5::TaskUpsert {
                task_id,
                revision,
                task,
            } => Change::TaskUpsert {
                task_id,
                revision,
                task: (*task).now(),
            },
            ChangeV5::TaskDelete { task_id } => Change::TaskDelete { task_id },
            ChangeV5::RunStart {
                task_id,
                run_id,
                revision,
            } => Change::RunStart {
                task_id,
                run_id,
                revision,
                occurrence: None,
            },
            ChangeV5::RunStop { task_id, run_id } => Change::RunStop { task_id, run_id },
            ChangeV5::Noop => Change::Noop,
            ChangeV5::Revoke(revocation) => Change::Revoke(revocation),
        }
    }
}

impl OrderV5 {
    fn now(self) -> RunOrderV7 {
        RunOrderV7 {
            run: RunRef::Ordered(self.run_id),
            task_id: self.task_id,
            task_name: self.task_name,
            application: self.application,
            payload: self.payload,
            time_limit_secs: None,
        }
    }
}

impl ResultV5 {
    fn now(self) -> RunResult {
        RunResult {
            run: RunRef::Ordered(self.run_id),
            started: self.started,
            finished: self.finished,
            outcome: self.outcome,
        }
    }
}

/// Rewrites every value of `table` from its old shape `Old` to its new one.
pub(super) fn rewrite<Old: serde::de::DeserializeOwned, New: serde::Serialize>(
    txn: &WriteTransaction,
    table: crate::store::StrTable,
    now: impl Fn(Old) -> New,
) -> Result<(), StoreError> {
    if !has_table(txn, table.name())? {
        return Ok(());
    }
    let mut open = txn.open_table(table)?;
    let old: Vec<(String, Old)> = entries(&open)?;
    for (key, value) in old {
        put(&mut open, &key, &now(value))?;
    }
    Ok(())
}

pub(in crate::store) fn from_5(txn: &WriteTransaction) -> Result<(), StoreError> {
    rewrite(txn, TASKS, TaskV5::now)?;
    rewrite(txn, RUNS, RunV5::now)?;
    rewrite(txn, ORDERS, OrderV5::now)?;
    rewrite(txn, AGENT_RUNS, |run: LocalRunV5| LocalRunV7 {
        order: run.order.now(),
        state: run.state,
        started: run.started,
        result: run.result.map(ResultV5::now),
        acknowledged: run.acknowledged,
    })?;
    if has_table(txn, CHANGE_LOG.name())? {
        let mut log = txn.open_table(CHANGE_LOG)?;
        let old: Vec<(u64, EntryV5)> = entries_u64(&log, .., usize::MAX)?;
        for (seq, entry) in old {
            let entry = LogEntry {
                change: entry.change.now(),
                audience: entry.audience,
            };
            put_u64(&mut log, seq, &entry)?;
        }
    }
    Ok(())
}

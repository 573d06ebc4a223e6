//! The administration API's tasks as the administrator gives them (`TaskSpec`,
//! `TaskChanges`, `ScopeSpec`) and as the API shows them (`TaskView`, `RunView`).

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::model::UnixMillis;
use crate::model::schedule::{LocalDateTime, Schedule, ScheduleOptions};
use crate::model::scope::Scope;
use crate::model::task::{Notify, RestartPolicy, RunCounters, RunState, TaskKind, TaskType};

/// A new task, as the administrator describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    pub task_type: TaskType,
    /// The application the task belongs to; by default the agent (device tasks) or the
    /// Administration Server (server tasks).
    pub application: Option<String>,
    pub scope: ScopeSpec,
    // The settings below have defaults where a format names its fields (JSON): a task
    // needs only its name, type and scope. Binary formats carry every field.
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub schedule_options: ScheduleOptions,
    #[serde(default)]
    pub account: Option<AccountSpec>,
    #[serde(default)]
    pub notify: Notify,
    #[serde(default = "default_history_days")]
    pub store_history_days: u32,
    /// Why, for the revision history.
    #[serde(default)]
    pub comment: Option<String>,
}

/// How long a task's results are kept unless it says otherwise, as `task create` does.
fn default_history_days() -> u32 {
    crate::model::task::DEFAULT_STORE_HISTORY_DAYS
}

/// A change to a task: each field given replaces the task's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChanges {
    pub name: Option<String>,
    pub task_type: Option<TaskType>,
    pub application: Option<String>,
    pub scope: Option<ScopeSpec>,
    pub restart: Option<RestartPolicy>,
    pub schedule: Option<Schedule>,
    pub schedule_options: Option<ScheduleOptions>,
    /// `Some(None)`: back to the default account.
    pub account: Option<Option<AccountSpec>>,
    pub notify: Option<Notify>,
    pub store_history_days: Option<u32>,
    /// Why, for the revision history.
    pub comment: Option<String>,
}

/// A specified account; the password travels only inside the admin link's TLS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub name: String,
    pub password: Option<Secret>,
}

/// A scope as the administrator gives it; the server resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum ScopeSpec {
    Group {
        path: String,
        include_subgroups: bool,
        include_secondaries: bool,
    },
    /// IP addresses, ranges (`a-b` or CIDR), host or DNS names; at most 1000.
    Devices {
        entries: Vec<String>,
    },
    /// Conditions `key=value`: group, subgroups, tag, os, ip, app, connected.
    Selection {
        conditions: Vec<String>,
    },
    Local {
        device: String,
    },
    Server,
}

/// A task as the API shows it: never its password, only whether one is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskView {
    pub id: u64,
    pub name: String,
    pub kind: TaskKind,
    pub task_type: TaskType,
    pub application: String,
    pub scope: Scope,
    /// The scope in words, with group paths.
    pub scope_text: String,
    pub restart: RestartPolicy,
    pub schedule: Schedule,
    pub schedule_options: ScheduleOptions,
    pub account_name: Option<String>,
    pub password_set: bool,
    pub notify: Notify,
    pub store_history_days: u32,
    pub created: UnixMillis,
    pub modified: UnixMillis,
    pub revision: u32,
    pub changed_by: String,
    pub last_run: Option<RunView>,
    /// Whose clock the schedule runs on: each device's own (a device task), or this
    /// server's (a device selection, a server task).
    pub device_clock: bool,
    /// When the schedule starts the task next; `None` when it has no start to come.
    pub next_start: Option<NextStart>,
}

/// When a task's schedule starts it next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum NextStart {
    /// On each device's own clock, at this date and time (the next one in the server's
    /// time zone; a device in another zone may be before or after it).
    DeviceTime(LocalDateTime),
    /// On the server's clock: the instant, and its local date and time and zone for people.
    ServerTime { at: UnixMillis, text: String },
}

/// A run and its statistics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunView {
    pub run_id: u64,
    pub task_id: u64,
    pub task_name: String,
    pub revision: u32,
    pub state: RunState,
    pub started: UnixMillis,
    pub started_by: String,
    pub stopped: Option<UnixMillis>,
    pub finished: Option<UnixMillis>,
    /// Of every device of the run in the subtree: this server's, the rows reported by the
    /// servers below, and the devices of servers not heard from yet as pending.
    pub counters: RunCounters,
    /// One row per server of the subtree taking part, this server first.
    pub servers: Vec<ServerStatsView>,
    /// Set on a server that inherited the task: the parent and its task id.
    pub inherited_from: Option<String>,
    /// The scheduled occurrence this run is (the civil date and time its schedule names);
    /// `None` for a start by hand.
    pub occurrence: Option<LocalDateTime>,
    /// When it was paused, while it is.
    pub paused: Option<UnixMillis>,
    /// For a task that starts after another completes: the other task's run it follows.
    pub after_run: Option<u64>,
}

/// One server's part of a run, for `task stats --by-server`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerStatsView {
    /// Display path from the server asked ("primary/branch-1/branch-1a").
    pub path: String,
    pub depth: u32,
    /// The task's id and run on that server, for drill-down; 0 when not reported yet.
    pub task_id: u64,
    pub counters: RunCounters,
    /// False while the server has not reported: its devices count as pending.
    pub reported: bool,
}

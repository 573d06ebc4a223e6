//! What a task does on a device, and how a run ends there.

use serde::{Deserialize, Serialize};

/// The id of the one record of a server task's run: the server itself.
pub const SERVER_RECORD: &str = "server";

/// A device's state for one run of a task (bit values as in the reference product's API).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
// Lower case in JSON, as `--state` takes it; bincode stores the variant's index, not its name.
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// The change is not yet delivered to the device.
    Pending,
    /// Delivered; ready to start manually or by schedule.
    Scheduled,
    Running,
    Succeeded,
    Warning,
    Failed,
    Paused,
}

impl DeviceState {
    pub const ALL: [DeviceState; 7] = [
        DeviceState::Pending,
        DeviceState::Scheduled,
        DeviceState::Running,
        DeviceState::Succeeded,
        DeviceState::Warning,
        DeviceState::Failed,
        DeviceState::Paused,
    ];

    /// The reference product's bit for this state.
    pub fn bit(self) -> u8 {
        match self {
            DeviceState::Pending => 0x01,
            DeviceState::Running => 0x02,
            DeviceState::Succeeded => 0x04,
            DeviceState::Warning => 0x08,
            DeviceState::Failed => 0x10,
            DeviceState::Scheduled => 0x20,
            DeviceState::Paused => 0x40,
        }
    }

    /// A run in this state on a device is over.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DeviceState::Succeeded | DeviceState::Warning | DeviceState::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Scheduled => "scheduled",
            DeviceState::Running => "running",
            DeviceState::Succeeded => "succeeded",
            DeviceState::Warning => "warning",
            DeviceState::Failed => "failed",
            DeviceState::Paused => "paused",
        }
    }
}

/// What a task does on a device: its type and parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum TaskPayload {
    /// Run a program with arguments, no shell.
    Command {
        program: String,
        args: Vec<String>,
        time_limit_secs: u32,
    },
    /// Walk `paths` (files or directories, recursively, not following symlinks), SHA-256 each
    /// regular file, report files whose hash (lowercase hex) is in `blocklist`.
    Scan {
        paths: Vec<String>,
        blocklist: Vec<String>,
    },
    /// Collect OS, hostname, addresses and installed Debian packages.
    Inventory,
    /// For simulated devices: wait `duration_ms` then end in a state drawn from the weights.
    Simulate {
        duration_ms: u32,
        succeeded: u32,
        warning: u32,
        failed: u32,
        need_restart_percent: u8,
    },
}

impl TaskPayload {
    /// Checks the parameters of a task type.
    pub fn check(&self) -> Result<(), String> {
        match self {
            TaskPayload::Command { program, .. } if program.trim().is_empty() => {
                Err("a command task needs a program".into())
            }
            TaskPayload::Scan { paths, .. } if paths.is_empty() => {
                Err("a scan task needs at least one path".into())
            }
            TaskPayload::Scan { blocklist, .. } => match blocklist
                .iter()
                .find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                Some(bad) => Err(format!("{bad:?} is not a SHA-256 in hex (64 digits)")),
                None => Ok(()),
            },
            TaskPayload::Simulate {
                succeeded,
                warning,
                failed,
                need_restart_percent,
                ..
            } => {
                if u64::from(*succeeded) + u64::from(*warning) + u64::from(*failed) == 0 {
                    Err("a simulated task needs at least one non-zero outcome weight".into())
                } else if *need_restart_percent > 100 {
                    Err("need-restart percent is at most 100".into())
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The task type's name, as shown to people and used in logs.
    pub fn type_name(&self) -> &'static str {
        match self {
            TaskPayload::Command { .. } => "command",
            TaskPayload::Scan { .. } => "scan",
            TaskPayload::Inventory => "inventory",
            TaskPayload::Simulate { .. } => "simulate",
        }
    }
}

/// How a run ended on the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// Succeeded, Warning or Failed only.
    pub state: DeviceState,
    /// One line for people: "exit code 3", "timed out after 2 s (killed)".
    pub description: String,
    /// Percent complete, 100 when it ran to its end.
    pub progress: u8,
    pub need_restart: bool,
    pub details: Details,
}

impl Outcome {
    /// A run that failed before or instead of doing its work.
    pub fn failed(description: impl Into<String>) -> Self {
        Outcome {
            state: DeviceState::Failed,
            description: description.into(),
            progress: 0,
            need_restart: false,
            details: Details::None,
        }
    }

    /// A run that did all its work, ending in `state`.
    pub(crate) fn finished(state: DeviceState, description: String, details: Details) -> Self {
        Outcome {
            state,
            description,
            progress: 100,
            need_restart: false,
            details,
        }
    }
}

/// What a run produced, by task type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum Details {
    None,
    Command {
        /// None when the process was killed by a signal or by us.
        exit_code: Option<i32>,
        stdout: String,
        stderr: String,
        stdout_truncated: bool,
        stderr_truncated: bool,
    },
    Scan {
        files_scanned: u64,
        unreadable: u64,
        /// At most `agent::exec::MAX_SCAN_MATCHES`, in walk order.
        matches: Vec<ScanMatch>,
    },
    Inventory(Inventory),
}

/// A scanned file whose hash is in the blocklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanMatch {
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
}

/// What a device is: the result of an `Inventory` task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub os: String,
    pub hostname: String,
    /// IPv4 then IPv6, standard text form, loopback included.
    pub addresses: Vec<String>,
    /// Sorted by name.
    pub packages: Vec<Package>,
}

/// An installed Debian package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    pub version: String,
}

// ---- Tasks: what, where, when, and how their runs went ----

mod counters;
pub use counters::RunCounters;

use super::UnixMillis;
use super::schedule::{Schedule, ScheduleOptions};
use super::scope::Scope;

pub type TaskId = u64;
pub type RunId = u64;

/// The application a device task belongs to when none is named: the agent itself, which is
/// running whenever a task can reach the device.
pub const AGENT_APPLICATION: &str = "Canopy agent";
/// The application Administration Server tasks belong to.
pub const SERVER_APPLICATION: &str = "Administration Server";
/// Days a task's results are kept on the server unless the task says otherwise.
pub const DEFAULT_STORE_HISTORY_DAYS: u32 = 30;

/// What a task does: work for devices, or work for the Administration Server itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum TaskType {
    Device(TaskPayload),
    /// A consistent copy of the server's database, taken while it serves, into `directory`
    /// (by default `backups/` next to the database).
    Backup {
        directory: Option<String>,
    },
    /// Compaction of the server's database, reporting the space freed.
    Maintenance,
}

impl TaskType {
    pub fn type_name(&self) -> &'static str {
        match self {
            TaskType::Device(payload) => payload.type_name(),
            TaskType::Backup { .. } => "backup",
            TaskType::Maintenance => "maintenance",
        }
    }

    pub fn runs_on_server(&self) -> bool {
        !matches!(self, TaskType::Device(_))
    }
}

/// What happens to the device when a run needs a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum RestartPolicy {
    #[default]
    DoNotRestart,
    Restart,
    /// Ask the user every `repeat_minutes` (1 to 1440), forcing the restart after
    /// `force_after_minutes` if set.
    AskUser {
        repeat_minutes: u16,
        force_after_minutes: Option<u32>,
    },
}

/// The account a task runs under.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum TaskAccount {
    /// That of the application running the task.
    #[default]
    Default,
    /// A named account; its password is sealed with the server's key and never leaves it.
    Specified {
        name: String,
        password: Option<SealedSecret>,
    },
}

/// A secret encrypted with a key only the server holds (AES-256-GCM).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(***)")
    }
}

/// Which run results the administrator is told about (as events of the right severity).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub enum Notify {
    /// Every device's result.
    All,
    /// Only failures and warnings.
    #[default]
    ErrorsOnly,
    Off,
}

/// The general settings of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSettings {
    pub restart: RestartPolicy,
    pub schedule: Schedule,
    pub schedule_options: ScheduleOptions,
    pub account: TaskAccount,
    pub notify: Notify,
    /// Results are pruned from the server this many days after their run finished.
    pub store_history_days: u32,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            restart: RestartPolicy::default(),
            schedule: Schedule::default(),
            schedule_options: ScheduleOptions::default(),
            account: TaskAccount::default(),
            notify: Notify::default(),
            store_history_days: DEFAULT_STORE_HISTORY_DAYS,
        }
    }
}

/// Who made the last change to a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum ChangedBy {
    Administrator(String),
    /// The user of the device a local task belongs to.
    DeviceUser,
}

/// A task as the server stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRecord {
    pub id: TaskId,
    pub name: String,
    pub task_type: TaskType,
    /// The application the task belongs to; it must be running on a device for the task to
    /// start there.
    pub application: String,
    pub scope: Scope,
    pub settings: TaskSettings,
    pub created: UnixMillis,
    pub modified: UnixMillis,
    /// Bumped by every change.
    pub revision: u32,
    pub changed_by: ChangedBy,
    pub last_run: Option<RunId>,
    /// Set on a copy of a parent's group task: read-only here, changed only by the parent.
    pub inherited: Option<Inherited>,
}

/// Where an inherited task comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inherited {
    /// The parent server's name.
    pub parent: String,
    /// The task's id on the parent.
    pub parent_task_id: TaskId,
    /// The parent's revision of the task this copy holds.
    pub parent_revision: u32,
}

impl TaskRecord {
    /// Checks everything an administrator can get wrong, in words they can act on.
    pub fn check(&self) -> Result<(), String> {
        super::check_display_name("a task name", &self.name)?;
        super::check_display_name("an application name", &self.application)?;
        match (&self.task_type, &self.scope) {
            (TaskType::Device(_), Scope::Server) => {
                return Err(format!(
                    "a {} task runs on devices; give it a group, devices, a selection or a device",
                    self.task_type.type_name()
                ));
            }
            (TaskType::Backup { .. } | TaskType::Maintenance, scope) if *scope != Scope::Server => {
                return Err(format!(
                    "a {} task runs on the Administration Server; its scope must be the server",
                    self.task_type.type_name()
                ));
            }
            _ => {}
        }
        if let TaskType::Device(payload) = &self.task_type {
            payload.check()?;
        }
        if let RestartPolicy::AskUser { repeat_minutes, .. } = self.settings.restart
            && !(1..=1440).contains(&repeat_minutes)
        {
            return Err(format!(
                "the restart prompt repeats every 1 to 1440 minutes, not {repeat_minutes}"
            ));
        }
        if !(1..=3650).contains(&self.settings.store_history_days) {
            return Err(format!(
                "task history is kept 1 to 3650 days, not {}",
                self.settings.store_history_days
            ));
        }
        if let TaskAccount::Specified { name, .. } = &self.settings.account {
            super::check_display_name("an account name", name)?;
        }
        Ok(())
    }

    pub fn kind(&self) -> TaskKind {
        match &self.scope {
            Scope::Group { .. } => TaskKind::Group,
            Scope::DeviceList { .. } => TaskKind::DeviceList,
            Scope::Selection(_) => TaskKind::Selection,
            Scope::Local { .. } => TaskKind::Local,
            Scope::Server => TaskKind::Server,
        }
    }
}

/// What becomes of a change the device's user made to a local task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEdit {
    Apply,
    /// An administrator changed the task since the revision the user started from: the
    /// administrator's change has the higher priority and the user's is dropped.
    AdministratorWins,
}

impl TaskRecord {
    /// Whether devices start this task by themselves on their own clock: a device task with
    /// a timed schedule or "at application start", except for a device selection (the
    /// server starts those, on its time, on the devices connected then).
    pub fn runs_on_device_clock(&self) -> bool {
        let schedule = &self.settings.schedule;
        matches!(self.task_type, TaskType::Device(_))
            && !matches!(self.scope, Scope::Selection(_) | Scope::Server)
            && (schedule.is_timed() || self.runs_at_app_start())
    }

    /// Whether each device runs it at the agent's first start of each day, into one run
    /// per day that holds only the devices that ran it.
    pub fn runs_at_app_start(&self) -> bool {
        self.settings.schedule == Schedule::AtApplicationStart
    }

    /// Decides a device user's change made from `base_revision` of this (local) task.
    pub fn device_edit(&self, base_revision: u32) -> DeviceEdit {
        let changed_since = self.revision != base_revision;
        match (&self.changed_by, changed_since) {
            (ChangedBy::Administrator(_), true) => DeviceEdit::AdministratorWins,
            _ => DeviceEdit::Apply,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum TaskKind {
    Group,
    DeviceList,
    Selection,
    Local,
    Server,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Group => "group task",
            TaskKind::DeviceList => "task for specific devices",
            TaskKind::Selection => "task for a device selection",
            TaskKind::Local => "local task",
            TaskKind::Server => "Administration Server task",
        }
    }
}

/// One device's record of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRunRecord {
    pub device_id: String,
    pub device_name: String,
    pub state: DeviceState,
    /// Starts on the device (0 until it starts).
    pub tries: u32,
    /// Why it failed or warned; empty otherwise.
    pub description: String,
    pub started: Option<UnixMillis>,
    pub finished: Option<UnixMillis>,
    pub progress: u8,
    pub need_restart: bool,
    pub details: Option<Details>,
}

impl DeviceRunRecord {
    pub fn pending(device_id: String, device_name: String) -> Self {
        DeviceRunRecord {
            device_id,
            device_name,
            state: DeviceState::Pending,
            tries: 0,
            description: String::new(),
            started: None,
            finished: None,
            progress: 0,
            need_restart: false,
            details: None,
        }
    }
}

/// One start of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub run_id: RunId,
    pub task_id: TaskId,
    /// The task's name and notification setting when the run started, so that a device's
    /// report needs only the run to be announced.
    pub task_name: String,
    pub notify: Notify,
    /// The task's revision this run executes.
    pub revision: u32,
    pub started: UnixMillis,
    pub started_by: String,
    /// When an administrator stopped it.
    pub stopped: Option<UnixMillis>,
    /// When the last targeted device finished.
    pub finished: Option<UnixMillis>,
    pub counters: RunCounters,
    /// Bumped whenever `counters` change, so the newest statistics report of this run wins
    /// at the parent; stored with the counters, so it only grows across restarts.
    pub version: u64,
    /// The parent's run this run carries out, on a server that inherited the task.
    pub parent_run: Option<RunId>,
    /// The scheduled occurrence this run is (its key, the same on every server of the
    /// tree); `None` for a start by hand.
    pub occurrence: Option<super::schedule::LocalDateTime>,
    /// Devices started this run by themselves, on their schedule, and know it by its
    /// occurrence rather than by its id (they were sent no order).
    pub device_clock: bool,
    /// When an administrator paused it (devices that have not started hold, executors that
    /// can pause do); `None` while it goes.
    pub paused: Option<UnixMillis>,
    /// For a task that starts after another completes: the other task's run whose devices
    /// this run follows, each once its own part of that run ended.
    pub after_run: Option<RunId>,
}

impl RunRecord {
    /// How the devices of this run know it.
    pub fn device_ref(&self) -> super::RunRef {
        match self.occurrence {
            Some(key) if self.device_clock => super::RunRef::Occurrence {
                task_id: self.task_id,
                key,
            },
            _ => super::RunRef::Ordered(self.run_id),
        }
    }

    pub fn state(&self) -> RunState {
        if self.stopped.is_some() {
            RunState::Stopped
        } else if self.counters.finished() == self.counters.total() {
            RunState::Completed
        } else if self.paused.is_some() {
            RunState::Paused
        } else {
            RunState::Running
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Completed,
    Stopped,
    Paused,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Stopped => "stopped",
            RunState::Paused => "paused",
        }
    }
}

/// A device's progress in a run, as its agent reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceProgress {
    /// The agent stored the order: Scheduled.
    Delivered,
    Started {
        at: UnixMillis,
    },
    Finished {
        started: UnixMillis,
        finished: UnixMillis,
        outcome: Outcome,
    },
    /// The server decided the run ends here for this device (stopped before it started,
    /// or not startable).
    Ended {
        at: UnixMillis,
        description: String,
    },
    /// How far a running executor is, and whether it is paused (an administrator paused
    /// the run and the executor can pause).
    Progress {
        percent: u8,
        paused: bool,
    },
}

impl DeviceRunRecord {
    /// Applies `progress`; `false` when it changes nothing (a duplicate, a report that
    /// arrives after a later one, or anything after the run ended on the device), so a
    /// device's result is counted once whatever is sent twice or out of order.
    pub fn advance(&mut self, progress: &DeviceProgress) -> bool {
        if self.state.is_finished() {
            return false;
        }
        match progress {
            DeviceProgress::Delivered => {
                if self.state != DeviceState::Pending {
                    return false;
                }
                self.state = DeviceState::Scheduled;
            }
            DeviceProgress::Started { at } => {
                if matches!(self.state, DeviceState::Running | DeviceState::Paused) {
                    return false;
                }
                self.state = DeviceState::Running;
                self.tries += 1;
                self.started = Some(*at);
            }
            DeviceProgress::Finished {
                started,
                finished,
                outcome,
            } => {
                if !matches!(self.state, DeviceState::Running | DeviceState::Paused) {
                    self.tries += 1;
                }
                self.state = if outcome.state.is_finished() {
                    outcome.state
                } else {
                    DeviceState::Failed
                };
                self.description = outcome.description.clone();
                self.started = Some(*started);
                self.finished = Some(*finished);
                self.progress = outcome.progress;
                self.need_restart = outcome.need_restart;
                self.details = Some(outcome.details.clone());
            }
            DeviceProgress::Ended { at, description } => {
                self.state = DeviceState::Failed;
                self.description = description.clone();
                self.finished = Some(*at);
            }
            DeviceProgress::Progress { percent, paused } => {
                // Only a device at work has progress; a report overtaken by the run's start
                // (lost on a dropped link) waits for the result, which says it all.
                if !matches!(self.state, DeviceState::Running | DeviceState::Paused) {
                    return false;
                }
                // Below 100 until the result says the run ended.
                let percent = (*percent).min(99);
                let state = if *paused {
                    DeviceState::Paused
                } else {
                    DeviceState::Running
                };
                if self.state == state && self.progress == percent {
                    return false;
                }
                self.state = state;
                self.progress = percent;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;

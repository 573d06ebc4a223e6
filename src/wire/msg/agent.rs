//! The messages of the device link, `canopy-agent/1`: orders and schedules down, reports
//! up.

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::model::device::DeviceFacts;
use crate::model::schedule::{LocalDateTime, Schedule};
use crate::model::task::{Outcome, TaskAccount, TaskPayload};
use crate::model::{Fingerprint, RunRef, UnixMillis};
/// The first frame a device agent sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    /// The id the agent chose at its first start, together with its key.
    pub device_id: String,
    /// The virtual server the device belongs to (`<server>/<virtual server>`), if any.
    pub virtual_server: Option<String>,
    /// An enrollment token from the server's config; without one the device waits for approval.
    pub token: Option<Secret>,
    pub facts: DeviceFacts,
}

/// Server to agent, on the link stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerToAgent {
    /// Enrolled: the device is managed by this server.
    /// `revoked`: the server certificates revoked in the deployment, as this server knows
    /// them (the newest 1000): the agent refuses servers presenting them from then on.
    Accepted {
        server_name: String,
        group: String,
        revoked: Vec<Fingerprint>,
    },
    /// Known but not approved yet; the server says `Accepted` on this stream once it is.
    Pending,
    /// Refused by an administrator; the agent retries only rarely.
    Rejected { reason: String },
    /// Run this; the agent keeps it, runs it at most once, and answers with `Result`.
    Run(RunOrder),
    /// The result of `run` is stored on the server; the agent may forget it.
    ResultStored { run: RunRef },
    /// Stop `run` if it is still going (or never start it).
    Cancel { run: RunRef },
    /// The current revision of a local task of this device (sent at connect and on every
    /// change); it replaces whatever revision the agent holds.
    LocalTask(LocalTaskDef),
    /// A local task of this device was deleted.
    LocalTaskDeleted { task_id: u64 },
    /// The current revision of a task this device runs on its own schedule (sent at
    /// connect and on every change); it replaces whatever revision the agent holds.
    ScheduledTask(Box<ScheduledTaskDef>),
    /// The ids of every task this device runs on its own schedule, sent after them at
    /// connect and on every change: the agent forgets the ones it holds that are not here.
    ScheduledTasks { task_ids: Vec<u64> },
    /// An administrator paused `run`: hold it if it has not started, pause its executor if
    /// it can pause.
    Pause { run: RunRef },
    /// An administrator resumed `run`.
    Resume { run: RunRef },
}

/// A task a device runs by itself on its schedule, in its own time zone, whether or not it
/// can reach its server then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledTaskDef {
    pub task_id: u64,
    pub name: String,
    pub revision: u32,
    /// When this revision was made (the server's clock): an occurrence before it was never
    /// the device's to miss.
    pub since: UnixMillis,
    pub application: String,
    pub payload: TaskPayload,
    pub schedule: Schedule,
    pub run_missed: bool,
    /// The randomized delay's window, as the server resolved it (automatic randomization
    /// counts the devices the task targets there).
    pub delay_window_secs: u32,
    pub time_limit_secs: Option<u32>,
    pub cancel_from: Option<LocalDateTime>,
    /// The account the device runs it under; its password sealed with the link's key on the
    /// wire, with the agent's own key at rest.
    pub account: TaskAccount,
}

/// A local task as its device keeps it, so the device's user can see and change it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTaskDef {
    pub task_id: u64,
    pub name: String,
    pub revision: u32,
    pub application: String,
    pub payload: TaskPayload,
    pub schedule: Schedule,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOrder {
    pub run: RunRef,
    pub task_id: u64,
    pub task_name: String,
    /// The application the task belongs to: the run starts only if it is running on the
    /// device, and is cancelled if it stops.
    pub application: String,
    pub payload: TaskPayload,
    /// The run is stopped if it runs longer than this and ends "failed by timeout".
    pub time_limit_secs: Option<u32>,
    /// The account the device runs it under; its password sealed with the key of whoever
    /// holds the order (the server's or the agent's at rest, the link's on the wire).
    pub account: TaskAccount,
}

/// Agent to server, on the link stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentToServer {
    /// The agent stored the order: the run is delivered (Scheduled on the server).
    Received { run: RunRef },
    /// The agent recorded the start and is about to run it.
    Started { run: RunRef, at: UnixMillis },
    /// How a run ended; sent until the server says `ResultStored`.
    Result(RunResult),
    /// The device's user changed a local task's schedule, starting from `base_revision`.
    /// The server applies it unless an administrator changed the task since then (the
    /// administrator's change wins), and answers with the task's current `LocalTask`.
    LocalTaskEdit {
        task_id: u64,
        base_revision: u32,
        schedule: Schedule,
    },
    /// How far a running run is (below 100 until its result), and whether its executor is
    /// paused. Sent when either changes, at most about once a second for the percentage;
    /// not kept: the result says how the run ended whatever was lost.
    Progress {
        run: RunRef,
        percent: u8,
        paused: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub run: RunRef,
    pub started: UnixMillis,
    pub finished: UnixMillis,
    pub outcome: Outcome,
}

//! Executors of task types on a device.
//!
//! [`execute`] runs one [`TaskPayload`] to its end and reports an [`Outcome`]. It never panics
//! on bad input: a payload it cannot run ends as [`DeviceState::Failed`] with a description
//! saying why, so the task engine can always record a finished state.

mod command;
mod inventory;
mod scan;
mod simulate;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::model::task::DeviceState;

/// Bytes of command output kept per stream; the rest is read and dropped.
pub const MAX_CAPTURE: usize = 64 * 1024;
/// Scan matches listed in [`Details::Scan`]; all are counted in the description.
pub const MAX_SCAN_MATCHES: usize = 1000;

/// What a task does on a device: its type and parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    fn finished(state: DeviceState, description: String, details: Details) -> Self {
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
        /// At most [`MAX_SCAN_MATCHES`], in walk order.
        matches: Vec<ScanMatch>,
    },
    Inventory(Inventory),
}

/// A scanned file whose hash is in the blocklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanMatch {
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
}

/// What a device is: the result of an `Inventory` task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub os: String,
    pub hostname: String,
    /// IPv4 then IPv6, standard text form, loopback included.
    pub addresses: Vec<String>,
    /// Sorted by name.
    pub packages: Vec<Package>,
}

/// An installed Debian package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

/// Executes a payload. Never panics on bad input: a bad payload is an Outcome with state Failed
/// and a description saying why. `seed` makes `Simulate` deterministic per (device, run): the
/// same seed gives the same outcome. `cancel` turning true stops the run ("cancelled"); a
/// dropped sender means no cancellation.
pub async fn execute(
    payload: &TaskPayload,
    seed: u64,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    if *cancel.borrow() {
        return Outcome::failed("cancelled");
    }
    let outcome = match payload {
        TaskPayload::Command {
            program,
            args,
            time_limit_secs,
        } => command::run(program, args, *time_limit_secs, &mut cancel).await,
        TaskPayload::Scan { paths, blocklist } => scan::run(paths, blocklist, &mut cancel).await,
        TaskPayload::Inventory => inventory::run(&mut cancel).await,
        TaskPayload::Simulate {
            duration_ms,
            succeeded,
            warning,
            failed,
            need_restart_percent,
        } => {
            let weights = simulate::Weights {
                succeeded: *succeeded,
                warning: *warning,
                failed: *failed,
            };
            simulate::run(
                *duration_ms,
                weights,
                *need_restart_percent,
                seed,
                &mut cancel,
            )
            .await
        }
    };
    tracing::debug!(task_type = payload.type_name(), state = outcome.state.as_str(), description = %outcome.description, "task run ended");
    outcome
}

/// Resolves once cancellation is asked for; never if the sender is gone without asking.
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// "1 file", "3 files": descriptions are read by people.
fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

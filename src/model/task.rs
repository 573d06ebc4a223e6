//! What a task does on a device, and how a run ends there.

use serde::{Deserialize, Serialize};

/// A device's state for one run of a task (bit values as in the reference product's API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
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
        /// At most `agent::exec::MAX_SCAN_MATCHES`, in walk order.
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

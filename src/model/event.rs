//! The event log of a server.

use serde::{Deserialize, Serialize};

use super::UnixMillis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What happened, in words an administrator can filter on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    ServerStarted,
    ServerStopped,
    SecondaryConnected,
    SecondaryDisconnected,
    SecondaryRefused,
    SecondaryAdded,
    SecondaryRemoved,
    ParentConnected,
    ParentDisconnected,
    ParentRefused,
    ParentLinkHealth,
    PeerRefused,
    ProtocolError,
    LoginSucceeded,
    LoginFailed,
    AccountChanged,
    GroupChanged,
    DeviceEnrolled,
    DeviceRefused,
    DeviceChanged,
    TaskChanged,
    RunStarted,
    RunStopped,
    RunFinished,
    /// A device's result of a run, as the task's notification setting asks.
    DeviceResult,
    /// A server task (backup, maintenance) or history pruning.
    ServerTask,
    /// A child reconnected behind the change log: how many changes it is being sent.
    ReplayStarted,
    ReplayFinished,
    /// A virtual server was created, enabled, disabled or deleted.
    VirtualServerChanged,
    /// A server certificate was revoked here, or learned revoked from the parent.
    CertificateRevoked,
    /// A change of the parent's log that can never apply here was skipped.
    ChangeSkipped,
    /// An administrator paused or resumed a run.
    RunPaused,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ServerStarted => "server-started",
            EventKind::ServerStopped => "server-stopped",
            EventKind::SecondaryConnected => "secondary-connected",
            EventKind::SecondaryDisconnected => "secondary-disconnected",
            EventKind::SecondaryRefused => "secondary-refused",
            EventKind::SecondaryAdded => "secondary-added",
            EventKind::SecondaryRemoved => "secondary-removed",
            EventKind::ParentConnected => "parent-connected",
            EventKind::ParentDisconnected => "parent-disconnected",
            EventKind::ParentRefused => "parent-refused",
            EventKind::ParentLinkHealth => "parent-link-health",
            EventKind::PeerRefused => "peer-refused",
            EventKind::ProtocolError => "protocol-error",
            EventKind::LoginSucceeded => "login-succeeded",
            EventKind::LoginFailed => "login-failed",
            EventKind::AccountChanged => "account-changed",
            EventKind::GroupChanged => "group-changed",
            EventKind::DeviceEnrolled => "device-enrolled",
            EventKind::DeviceRefused => "device-refused",
            EventKind::DeviceChanged => "device-changed",
            EventKind::TaskChanged => "task-changed",
            EventKind::RunStarted => "run-started",
            EventKind::RunStopped => "run-stopped",
            EventKind::RunFinished => "run-finished",
            EventKind::DeviceResult => "device-result",
            EventKind::ServerTask => "server-task",
            EventKind::ReplayStarted => "replay-started",
            EventKind::ReplayFinished => "replay-finished",
            EventKind::VirtualServerChanged => "virtual-server-changed",
            EventKind::CertificateRevoked => "certificate-revoked",
            EventKind::ChangeSkipped => "change-skipped",
            EventKind::RunPaused => "run-paused",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in this server's log; assigned when stored.
    pub seq: u64,
    pub time: UnixMillis,
    pub severity: Severity,
    pub kind: EventKind,
    pub message: String,
}

//! The event log of a server.

use serde::{Deserialize, Serialize};

use super::UnixMillis;

// In JSON as `--severity` takes it; bincode stores the variant's index, not its name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub fn parse(name: &str) -> Result<Severity, String> {
        match name {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(format!(
                "unknown severity {other:?}; one of: info, warning, error"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What happened, in words an administrator can filter on.
// In JSON as `--kind` takes it (`EventKind::as_str`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
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
    /// A secondary connected with a new instance id: installed again, same certificate.
    SecondaryReinstalled,
}

impl EventKind {
    /// Every kind, for parsing a filter.
    pub const ALL: [EventKind; 33] = [
        EventKind::ServerStarted,
        EventKind::ServerStopped,
        EventKind::SecondaryConnected,
        EventKind::SecondaryDisconnected,
        EventKind::SecondaryRefused,
        EventKind::SecondaryAdded,
        EventKind::SecondaryRemoved,
        EventKind::ParentConnected,
        EventKind::ParentDisconnected,
        EventKind::ParentRefused,
        EventKind::ParentLinkHealth,
        EventKind::PeerRefused,
        EventKind::ProtocolError,
        EventKind::LoginSucceeded,
        EventKind::LoginFailed,
        EventKind::AccountChanged,
        EventKind::GroupChanged,
        EventKind::DeviceEnrolled,
        EventKind::DeviceRefused,
        EventKind::DeviceChanged,
        EventKind::TaskChanged,
        EventKind::RunStarted,
        EventKind::RunStopped,
        EventKind::RunFinished,
        EventKind::DeviceResult,
        EventKind::ServerTask,
        EventKind::ReplayStarted,
        EventKind::ReplayFinished,
        EventKind::VirtualServerChanged,
        EventKind::CertificateRevoked,
        EventKind::ChangeSkipped,
        EventKind::RunPaused,
        EventKind::SecondaryReinstalled,
    ];

    /// The kind `name` names, as `as_str` spells it.
    pub fn parse(name: &str) -> Result<EventKind, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown event kind {name:?}; one of: {}", names.join(", "))
            })
    }

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
            EventKind::SecondaryReinstalled => "secondary-reinstalled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Position in this server's log; assigned when stored.
    pub seq: u64,
    pub time: UnixMillis,
    pub severity: Severity,
    pub kind: EventKind,
    pub message: String,
    /// The server it happened on, as names below this one (empty: this server): events
    /// come up the tree from every server below.
    pub origin: Vec<String>,
}

/// How much of the event log a server keeps (`[events]` of its config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRetention {
    /// Events at most; the oldest go first.
    pub keep: u64,
    /// Days at most: older events go, and older ones from below are not stored.
    pub keep_days: u32,
}

impl EventRetention {
    /// The oldest time an event may have at `now` and be kept.
    pub fn oldest_kept(&self, now: UnixMillis) -> UnixMillis {
        now.saturating_sub(i64::from(self.keep_days) * 86_400_000)
    }
}

/// Which events a list shows; every field left empty matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Events of the server at this path below the server asked (as `Event::origin` gives
    /// it; empty: the server asked), and with `subtree` of every server below it too.
    pub server: Option<Vec<String>>,
    pub subtree: bool,
    pub kind: Option<EventKind>,
    /// This severity and worse.
    pub severity: Option<Severity>,
    /// At or after this time.
    pub since: Option<UnixMillis>,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        let origin_matches = match &self.server {
            None => true,
            Some(server) if self.subtree => event.origin.starts_with(server),
            Some(server) => event.origin == *server,
        };
        origin_matches
            && self.kind.is_none_or(|kind| event.kind == kind)
            && self.severity.is_none_or(|worst| event.severity >= worst)
            && self.since.is_none_or(|since| event.time >= since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    fn event(origin: &str, kind: EventKind, severity: Severity, time: UnixMillis) -> Event {
        Event {
            seq: 1,
            time,
            severity,
            kind,
            message: String::new(),
            origin: path(origin),
        }
    }

    #[test]
    fn a_filter_picks_a_server_with_or_without_its_subtree_and_by_kind_severity_and_time() {
        let below = event(
            "branch-1/branch-1a",
            EventKind::RunStarted,
            Severity::Info,
            10,
        );
        let branch = event("branch-1", EventKind::DeviceRefused, Severity::Warning, 20);
        let own = event("", EventKind::LoginFailed, Severity::Error, 30);
        let only = |filter: EventFilter| -> Vec<u64> {
            [&below, &branch, &own]
                .into_iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.time as u64)
                .collect()
        };
        assert_eq!(only(EventFilter::default()), [10, 20, 30]);
        let at_branch = EventFilter {
            server: Some(path("branch-1")),
            ..EventFilter::default()
        };
        assert_eq!(only(at_branch.clone()), [20]);
        let subtree = EventFilter {
            subtree: true,
            ..at_branch
        };
        assert_eq!(only(subtree), [10, 20]);
        let here = EventFilter {
            server: Some(Vec::new()),
            ..EventFilter::default()
        };
        assert_eq!(only(here), [30]);
        let warnings = EventFilter {
            severity: Some(Severity::Warning),
            ..EventFilter::default()
        };
        assert_eq!(only(warnings), [20, 30]);
        let runs = EventFilter {
            kind: Some(EventKind::RunStarted),
            ..EventFilter::default()
        };
        assert_eq!(only(runs), [10]);
        let recent = EventFilter {
            since: Some(20),
            ..EventFilter::default()
        };
        assert_eq!(only(recent), [20, 30]);
    }

    #[test]
    fn every_kind_parses_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Ok(kind));
            // JSON output names it as the filters take it.
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
        for severity in [Severity::Info, Severity::Warning, Severity::Error] {
            assert_eq!(serde_json::to_value(severity).unwrap(), severity.as_str());
        }
        assert!(
            EventKind::parse("nothing")
                .unwrap_err()
                .contains("run-started")
        );
        assert_eq!(Severity::parse("warning"), Ok(Severity::Warning));
        assert!(Severity::parse("fatal").is_err());
    }
}

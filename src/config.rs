//! Configuration files of `canopy serve`, read from TOML and checked before anything starts.
//!
//! Relative paths in a config file are relative to the directory of that file, so a server
//! starts the same whatever directory it is started from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::Fingerprint;
use crate::sync::link::LinkPolicy;

pub mod log;
mod notify;
pub mod web;

pub use web::WebConfig;

pub use notify::{ConfigChannel, FileSecret, NotifyConfig, NotifyFiles, SmtpConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: String,
    data: PathBuf,
    /// Where backup tasks may write; by default `backups` beside the database.
    backups: Option<PathBuf>,
    #[serde(default = "default_listen")]
    listen: String,
    tls: RawTls,
    parent: Option<RawParent>,
    #[serde(default)]
    link: RawLink,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    enrollment: Vec<RawEnrollment>,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    tasks: RawTasks,
    #[serde(default)]
    notify: notify::RawNotify,
    #[serde(default)]
    change_log: RawChangeLog,
    #[serde(default)]
    log: log::RawLog,
    /// Prometheus metrics over plain HTTP; none without the section.
    metrics: Option<RawMetrics>,
    /// The REST API and the console over HTTPS; none without the section.
    web: Option<web::RawWeb>,
    /// The IANA time zone the server runs its own scheduled tasks in (selection and server
    /// tasks); by default the system's.
    time_zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEvents {
    keep: u64,
    keep_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTasks {
    deleted_keep_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawChangeLog {
    keep: u64,
    trim_every_s: u64,
}

impl Default for RawChangeLog {
    fn default() -> Self {
        RawChangeLog {
            keep: 10_000,
            trim_every_s: 60,
        }
    }
}

/// How the change log is kept small (`[change_log]`, `sync::snapshot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeLogTrim {
    /// Entries kept at most that some registered child has not applied; a child behind
    /// them is sent a snapshot.
    pub keep: u64,
    pub every: Duration,
}

/// Days a deleted task is kept with its revision history by default.
pub const DELETED_KEEP_DAYS: u32 = 90;

impl Default for RawTasks {
    fn default() -> Self {
        RawTasks {
            deleted_keep_days: DELETED_KEEP_DAYS,
        }
    }
}

/// Events a server keeps by default; the oldest go first.
pub const EVENTS_KEEP: u64 = 100_000;
/// Days an event is kept, at most (`events.keep_days`).
pub const EVENTS_KEEP_DAYS: u32 = 30;

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents {
            keep: EVENTS_KEEP,
            keep_days: EVENTS_KEEP_DAYS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default = "default_metrics_listen")]
    listen: String,
}

/// Where `[metrics]` serves `GET /metrics` when it names no address: loopback only.
pub const METRICS_LISTEN: &str = "127.0.0.1:13298";

fn default_metrics_listen() -> String {
    METRICS_LISTEN.into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    token: String,
    group: Option<String>,
}

fn default_listen() -> String {
    "0.0.0.0:13000".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParent {
    address: Option<String>,
    port: Option<u32>,
    fingerprint: String,
    #[serde(default)]
    passive: bool,
}

const DEFAULT_PORT: u32 = 13000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLink {
    keep_alive_ms: u64,
    idle_timeout_ms: u64,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    degraded_after: u32,
    failed_after: u32,
}

impl Default for RawLink {
    fn default() -> Self {
        let p = LinkPolicy::default();
        RawLink {
            keep_alive_ms: 5_000,
            idle_timeout_ms: 30_000,
            backoff_initial_ms: p.backoff_initial.as_millis() as u64,
            backoff_max_ms: p.backoff_max.as_millis() as u64,
            degraded_after: p.degraded_after,
            failed_after: p.failed_after,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAdmin {
    session_ttl_minutes: u64,
    login_timeout_s: u64,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            session_ttl_minutes: 60,
            login_timeout_s: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_connections: usize,
    max_connections_per_address: usize,
    pending_device_wait_s: u64,
    max_pending_devices: u64,
    max_devices: u64,
    max_secondaries: u64,
    max_virtual_servers: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        let limits = Limits::default();
        RawLimits {
            max_connections: limits.max_connections,
            max_connections_per_address: limits.max_connections_per_address,
            pending_device_wait_s: limits.pending_device_wait.as_secs(),
            max_pending_devices: limits.max_pending_devices,
            max_devices: limits.max_devices,
            max_secondaries: limits.max_secondaries,
            max_virtual_servers: limits.max_virtual_servers,
        }
    }
}

/// The longest a session may live: a year, so that its end is a time (no overflow).
const MAX_SESSION_TTL_MINUTES: u64 = 365 * 24 * 60;

/// Parses TOML, refusing unknown keys; toml's message names the key and the line.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Checks the link timers a server and an agent share; the error names the key.
pub(crate) fn check_link_timers(
    keep_alive_ms: u64,
    idle_timeout_ms: u64,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
) -> Result<(), (&'static str, String)> {
    if keep_alive_ms == 0 {
        return Err(("link.keep_alive_ms", "must be greater than 0".into()));
    }
    if idle_timeout_ms <= keep_alive_ms {
        let problem = format!(
            "({idle_timeout_ms}) must be greater than link.keep_alive_ms ({keep_alive_ms})"
        );
        return Err(("link.idle_timeout_ms", problem));
    }
    if backoff_initial_ms == 0 || backoff_max_ms < backoff_initial_ms {
        let problem = format!(
            "({backoff_max_ms}) must be at least link.backoff_initial_ms ({backoff_initial_ms}), which must be greater than 0"
        );
        return Err(("link.backoff_max_ms", problem));
    }
    Ok(())
}

/// `path` with `.` left out and each `..` taking off the name before it, on the words of the
/// path (a `..` at the root stays there; one that climbs above a relative start is kept).
fn resolve_dots(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// A checked server configuration: every path absolute, every number in range.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub name: String,
    pub data: PathBuf,
    /// The directory every backup task writes into (its own directory, if it names one, is
    /// inside this one).
    pub backups: PathBuf,
    pub listen: SocketAddr,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub parent: Option<ParentConfig>,
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
    pub link: LinkPolicy,
    pub session_ttl: Duration,
    /// An admin connection that has not logged in this long after its hello is closed.
    pub login_timeout: Duration,
    pub limits: Limits,
    /// How long and how many events the event log keeps (`[events]`): the server's own and
    /// those from below; the oldest go first.
    pub events: crate::model::EventRetention,
    /// Days a deleted task is kept with its history, restorable (`tasks.deleted_keep_days`).
    pub deleted_keep_days: u32,
    pub change_log: ChangeLogTrim,
    /// Enrollment tokens: a device that presents one is accepted into its group.
    pub enrollment: Vec<EnrollmentToken>,
    /// The time zone of the server's own schedules (`time_zone`); `None`: the system's.
    pub time_zone: Option<String>,
    /// The SMTP relay and the notification channels of the config (`[notify]`).
    pub notify: NotifyConfig,
    /// Where Prometheus metrics are served over plain HTTP (`metrics.listen`); `None`
    /// without a `[metrics]` section. Port 0 takes any free port.
    pub metrics: Option<SocketAddr>,
    /// The HTTPS listener of the REST API and the console (`[web]`); `None` without it.
    pub web: Option<WebConfig>,
}

/// What one server holds for its peers at most (`[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections (handshakes included) at once, from everyone.
    pub max_connections: usize,
    /// Connections (handshakes included) at once from one IP address.
    pub max_connections_per_address: usize,
    /// How long a pending device's connection waits for an administrator's decision before
    /// the server closes it; the agent then reconnects and waits again.
    pub pending_device_wait: Duration,
    /// Devices registered without a token that wait for an administrator's decision; beyond
    /// it, unknown devices are refused, so that nobody can fill the disk with them.
    pub max_pending_devices: u64,
    /// Devices registered on this server (each virtual server counts its own); beyond it,
    /// new devices are refused. The product we follow documents 100,000.
    pub max_devices: u64,
    /// Secondaries registered on this server, virtual servers not counted (documented: 500).
    pub max_secondaries: u64,
    /// Virtual servers hosted by this server (documented: 500).
    pub max_virtual_servers: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Every device, secondary and administrator at the limits, and room to spare.
            max_connections: 110_000,
            max_connections_per_address: 1_000,
            pending_device_wait: Duration::from_secs(600),
            max_pending_devices: 10_000,
            max_devices: 100_000,
            max_secondaries: 500,
            max_virtual_servers: 500,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EnrollmentToken {
    pub token: String,
    /// A group path; devices land in "Unassigned devices" when absent.
    pub group: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ParentConfig {
    /// Where this server connects to its parent; `None`: it is passive (`parent.passive`),
    /// and waits for its parent to connect to it.
    pub dial: Option<ParentAddress>,
    pub fingerprint: Fingerprint,
}

#[derive(Clone, Debug)]
pub struct ParentAddress {
    /// An IP address, or a DNS name resolved with hickory-resolver at each connection attempt.
    pub address: String,
    pub port: u16,
}

/// Where `[parent]` says to connect; `None` for a passive secondary, which names no address.
fn parent_address(p: &RawParent) -> Result<Option<ParentAddress>, (&'static str, String)> {
    if p.passive {
        if p.address.is_some() || p.port.is_some() {
            let key = if p.address.is_some() {
                "parent.address"
            } else {
                "parent.port"
            };
            return Err((
                key,
                "a passive secondary does not connect to its parent: its parent connects to it \
                 (register it there with `server add-secondary --passive HOST:PORT`); remove \
                 the key or set parent.passive = false"
                    .into(),
            ));
        }
        return Ok(None);
    }
    let address = p.address.as_deref().unwrap_or("").trim();
    if address.is_empty() {
        return Err((
            "parent.address",
            "must not be empty (or set parent.passive = true for a secondary its parent \
             connects to)"
                .into(),
        ));
    }
    let raw_port = p.port.unwrap_or(DEFAULT_PORT);
    let port = u16::try_from(raw_port)
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| {
            (
                "parent.port",
                format!("{raw_port} is not a port (1 to 65535)"),
            )
        })?;
    Ok(Some(ParentAddress {
        address: address.to_string(),
        port,
    }))
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Relative paths start from the file's directory as it really is (no link, no `..`),
        // so that the backup directory's `..` can be resolved on its words (see `parse`).
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let base = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self::parse(&text, path, &base)
    }

    /// Parses `text`; `path` names the file in errors, `base` anchors relative paths.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<ServerConfig, ConfigError> {
        let raw: RawServer = parse_toml(text, path)?;
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        if let Some(zone) = &raw.time_zone {
            crate::sched::zone_named(zone).map_err(|e| invalid("time_zone", e))?;
        }
        // Logging was set up from this section before the load (`log::peek`); it is checked
        // here so that a mistake in it is reported like any other.
        raw.log
            .check()
            .map_err(|(key, problem)| invalid(key, problem))?;
        crate::model::check_node_name(&raw.name).map_err(|e| invalid("name", e))?;
        let listen: SocketAddr = raw.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!(
                    "{:?} is not an address:port such as 0.0.0.0:13000",
                    raw.listen
                ),
            )
        })?;
        let metrics = match &raw.metrics {
            None => None,
            Some(m) => Some(m.listen.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!(
                        "{:?} is not an address:port such as {METRICS_LISTEN}",
                        m.listen
                    ),
                )
            })?),
        };
        let parent = match raw.parent {
            None => None,
            Some(p) => {
                // In the order of the keys in a config: the address first.
                let dial = parent_address(&p).map_err(|(key, problem)| invalid(key, problem))?;
                let fingerprint = p
                    .fingerprint
                    .parse()
                    .map_err(|e| invalid("parent.fingerprint", format!("{e}")))?;
                Some(ParentConfig { dial, fingerprint })
            }
        };
        let l = raw.link;
        let ms = Duration::from_millis;
        check_link_timers(
            l.keep_alive_ms,
            l.idle_timeout_ms,
            l.backoff_initial_ms,
            l.backoff_max_ms,
        )
        .map_err(|(key, problem)| invalid(key, problem))?;
        if l.degraded_after == 0 || l.failed_after <= l.degraded_after {
            return Err(invalid(
                "link.failed_after",
                format!(
                    "({}) must be greater than link.degraded_after ({}), which must be at least 1",
                    l.failed_after, l.degraded_after
                ),
            ));
        }
        if !(1..=MAX_SESSION_TTL_MINUTES).contains(&raw.admin.session_ttl_minutes) {
            return Err(invalid(
                "admin.session_ttl_minutes",
                format!(
                    "{} is not from 1 to {MAX_SESSION_TTL_MINUTES} (a year)",
                    raw.admin.session_ttl_minutes
                ),
            ));
        }
        if raw.admin.login_timeout_s == 0 {
            return Err(invalid(
                "admin.login_timeout_s",
                "must be at least 1".into(),
            ));
        }
        let limits = raw.limits;
        for (key, value) in [
            ("limits.max_connections", limits.max_connections as u64),
            (
                "limits.max_connections_per_address",
                limits.max_connections_per_address as u64,
            ),
            ("limits.pending_device_wait_s", limits.pending_device_wait_s),
            ("limits.max_pending_devices", limits.max_pending_devices),
            ("limits.max_devices", limits.max_devices),
            ("limits.max_secondaries", limits.max_secondaries),
            ("limits.max_virtual_servers", limits.max_virtual_servers),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if raw.tasks.deleted_keep_days == 0 || raw.tasks.deleted_keep_days > 36_500 {
            return Err(invalid(
                "tasks.deleted_keep_days",
                format!("({}) must be from 1 to 36500", raw.tasks.deleted_keep_days),
            ));
        }
        let c = &raw.change_log;
        if c.keep == 0 {
            return Err(invalid("change_log.keep", "must be at least 1".into()));
        }
        if c.trim_every_s == 0 || c.trim_every_s > 86_400 {
            let problem = format!("({}) must be from 1 to 86400", c.trim_every_s);
            return Err(invalid("change_log.trim_every_s", problem));
        }
        if raw.events.keep < 100 {
            return Err(invalid(
                "events.keep",
                format!("({}) must be at least 100", raw.events.keep),
            ));
        }
        if raw.events.keep_days == 0 || raw.events.keep_days > 36_500 {
            return Err(invalid(
                "events.keep_days",
                format!("({}) must be from 1 to 36500", raw.events.keep_days),
            ));
        }
        let mut enrollment = Vec::new();
        for e in raw.enrollment {
            if e.token.chars().count() < 16 {
                return Err(invalid(
                    "enrollment.token",
                    "must be at least 16 characters long".into(),
                ));
            }
            if enrollment
                .iter()
                .any(|t: &EnrollmentToken| t.token == e.token)
            {
                return Err(invalid(
                    "enrollment.token",
                    "the same token is listed twice".into(),
                ));
            }
            enrollment.push(EnrollmentToken {
                token: e.token,
                group: e.group,
            });
        }
        let anchored = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let notify = notify::parse(raw.notify, &invalid, &anchored)?;
        let (ca, cert, key) = (
            anchored(raw.tls.ca),
            anchored(raw.tls.cert),
            anchored(raw.tls.key),
        );
        let web = match raw.web {
            None => None,
            Some(w) => Some(web::parse(w, listen, (&cert, &key), &invalid, &anchored)?),
        };
        let data = anchored(raw.data);
        // Compared by prefix with each backup task's directory: its `..` are resolved here
        // (`../data/backups` from the config's directory is the examples' layout), and one
        // that climbs above a relative start is refused.
        let backups = resolve_dots(&match raw.backups {
            Some(dir) => anchored(dir),
            None => data.parent().unwrap_or(base).join("backups"),
        });
        if backups
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid(
                "backups",
                format!("{} must not contain `..`", backups.display()),
            ));
        }
        Ok(ServerConfig {
            name: raw.name,
            data,
            backups,
            listen,
            ca,
            cert,
            key,
            parent,
            keep_alive: ms(l.keep_alive_ms),
            idle_timeout: ms(l.idle_timeout_ms),
            link: LinkPolicy {
                backoff_initial: ms(l.backoff_initial_ms),
                backoff_max: ms(l.backoff_max_ms),
                degraded_after: l.degraded_after,
                failed_after: l.failed_after,
            },
            session_ttl: Duration::from_secs(raw.admin.session_ttl_minutes * 60),
            login_timeout: Duration::from_secs(raw.admin.login_timeout_s),
            limits: Limits {
                max_connections: limits.max_connections,
                max_connections_per_address: limits.max_connections_per_address,
                pending_device_wait: Duration::from_secs(limits.pending_device_wait_s),
                max_pending_devices: limits.max_pending_devices,
                max_devices: limits.max_devices,
                max_secondaries: limits.max_secondaries,
                max_virtual_servers: limits.max_virtual_servers,
            },
            events: crate::model::EventRetention {
                keep: raw.events.keep,
                keep_days: raw.events.keep_days,
            },
            deleted_keep_days: raw.tasks.deleted_keep_days,
            change_log: ChangeLogTrim {
                keep: raw.change_log.keep,
                every: Duration::from_secs(raw.change_log.trim_every_s),
            },
            time_zone: raw.time_zone,
            enrollment,
            notify,
            metrics,
            web,
        })
    }
}

#[cfg(test)]
mod tests;

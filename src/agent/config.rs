//! The agent's TOML config, checked before anything starts. Relative paths are relative to
//! the config file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::model::Fingerprint;
use crate::model::device::Application;
use crate::sync::link::LinkPolicy;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    server: String,
    server_name: Option<String>,
    server_fingerprint: Option<String>,
    ca: PathBuf,
    data: PathBuf,
    name: Option<String>,
    token: Option<String>,
    time_zone: Option<String>,
    #[serde(default)]
    application: Vec<RawApplication>,
    #[serde(default)]
    link: RawLink,
    #[serde(default)]
    schedule: RawSchedule,
    #[serde(default)]
    log: crate::config::log::RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSchedule {
    missed_after_s: u64,
}

impl Default for RawSchedule {
    fn default() -> Self {
        RawSchedule { missed_after_s: 60 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    /// Whether it is running, when no `process` says it; by default yes.
    running: Option<bool>,
    /// The name of the process whose presence means the application is running.
    process: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLink {
    keep_alive_ms: u64,
    idle_timeout_ms: u64,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    rejected_retry_s: u64,
}

impl Default for RawLink {
    fn default() -> Self {
        RawLink {
            keep_alive_ms: 5_000,
            idle_timeout_ms: 30_000,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            rejected_retry_s: 600,
        }
    }
}

/// A checked agent configuration.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The server's host (IP address or DNS name) and port.
    pub server_host: String,
    pub server_port: u16,
    /// The virtual server of that server the device belongs to (`server = "host:port/NAME"`);
    /// the agent names it in its hello.
    pub virtual_server: Option<String>,
    /// The name the server's certificate must carry (`server_name`): the node name it was
    /// issued for. Survives the renewal of the server's certificate.
    pub server_name: Option<String>,
    /// The fingerprint the server's certificate must have (`server_fingerprint`).
    pub server_fingerprint: Option<Fingerprint>,
    pub ca: PathBuf,
    pub data: PathBuf,
    pub name: Option<String>,
    pub token: Option<String>,
    pub time_zone: Option<String>,
    /// The `[[application]]` entries. For one listed in `application_processes`, `running`
    /// is only a placeholder (false): its state is read from the machine when asked (see
    /// [`crate::agent::apps::Applications`]).
    pub applications: Vec<Application>,
    /// Application name → the process name whose presence means it is running.
    pub application_processes: BTreeMap<String, String>,
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
    pub link: LinkPolicy,
    /// How long a rejected device waits before asking again.
    pub rejected_retry: Duration,
    /// How late a scheduled start may come (the agent busy, restarting, or the device
    /// waking) and still run as on time; later, the device missed it (`[schedule]
    /// missed_after_s`).
    pub missed_after: Duration,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, path.parent().unwrap_or(Path::new(".")))
    }

    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<AgentConfig, ConfigError> {
        let raw: RawAgent = crate::config::parse_toml(text, path)?;
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        // Logging was set up from `[log]` before the load; a mistake in it is reported here.
        raw.log
            .check()
            .map_err(|(key, problem)| invalid(key, problem))?;
        let (address, virtual_server) =
            split_virtual_server(&raw.server).map_err(|e| invalid("server", e))?;
        let (host, port) = split_host_port(address).ok_or_else(|| {
            invalid(
                "server",
                format!(
                    "{:?} is not host:port or host:port/virtual-server, e.g. 127.0.0.1:13000 \
                     or 127.0.0.1:13000/tenant-a",
                    raw.server
                ),
            )
        })?;
        if let Some(name) = &raw.server_name {
            crate::net::pki::check_node_name(name)
                .map_err(|e| invalid("server_name", e.to_string()))?;
        }
        let server_fingerprint = raw
            .server_fingerprint
            .as_deref()
            .map(str::parse::<Fingerprint>)
            .transpose()
            .map_err(|e| invalid("server_fingerprint", e.to_string()))?;
        if let Some(name) = &raw.name {
            crate::model::check_display_name("name", name).map_err(|e| invalid("name", e))?;
        }
        if let Some(tz) = &raw.time_zone {
            jiff::tz::TimeZone::get(tz)
                .map_err(|e| invalid("time_zone", format!("{tz:?}: {e}")))?;
        }
        if !(1..=86_400).contains(&raw.schedule.missed_after_s) {
            return Err(invalid(
                "schedule.missed_after_s",
                format!("{} is not 1 to 86400 seconds", raw.schedule.missed_after_s),
            ));
        }
        let l = raw.link;
        crate::config::check_link_timers(
            l.keep_alive_ms,
            l.idle_timeout_ms,
            l.backoff_initial_ms,
            l.backoff_max_ms,
        )
        .map_err(|(key, problem)| invalid(key, problem))?;
        let mut applications: Vec<Application> = Vec::new();
        let mut application_processes = BTreeMap::new();
        for a in raw.application {
            if a.name.trim().is_empty() {
                return Err(invalid("application.name", "must not be empty".into()));
            }
            if applications.iter().any(|b| b.name == a.name) {
                return Err(invalid(
                    "application.name",
                    format!("{:?} is listed twice", a.name),
                ));
            }
            let running = match a.process {
                None => a.running.unwrap_or(true),
                Some(process) => {
                    check_process_name(&process).map_err(|e| invalid("application.process", e))?;
                    if a.running.is_some() {
                        return Err(invalid(
                            "application.running",
                            format!(
                                "{:?} has a `process`, which says whether it is running: give one or the other",
                                a.name
                            ),
                        ));
                    }
                    application_processes.insert(a.name.clone(), process);
                    false
                }
            };
            applications.push(Application {
                name: a.name,
                running,
            });
        }
        let anchored = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        Ok(AgentConfig {
            server_host: host,
            server_port: port,
            virtual_server,
            server_name: raw.server_name,
            server_fingerprint,
            ca: anchored(raw.ca),
            data: anchored(raw.data),
            name: raw.name,
            token: raw.token,
            time_zone: raw.time_zone,
            missed_after: Duration::from_secs(raw.schedule.missed_after_s),
            applications,
            application_processes,
            keep_alive: Duration::from_millis(l.keep_alive_ms),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms),
            link: LinkPolicy {
                backoff_initial: Duration::from_millis(l.backoff_initial_ms),
                backoff_max: Duration::from_millis(l.backoff_max_ms),
                ..LinkPolicy::default()
            },
            rejected_retry: Duration::from_secs(l.rejected_retry_s.max(1)),
        })
    }
}

/// A process name as the kernel knows it: a file name, not a path.
fn check_process_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.contains('/') || name.contains('\0') {
        return Err(format!(
            "{name:?} must be a process name (as `ps -e` shows it), not a path"
        ));
    }
    Ok(())
}

/// "host:port/NAME": the address, and the virtual server NAME if there is a '/'. A host or
/// port has no '/', so the first one starts the name.
fn split_virtual_server(s: &str) -> Result<(&str, Option<String>), String> {
    let s = s.trim();
    let Some((address, name)) = s.split_once('/') else {
        return Ok((s, None));
    };
    if name.trim().is_empty() {
        return Err(format!(
            "{s:?} ends with '/' but names no virtual server: give host:port or host:port/NAME"
        ));
    }
    if name.contains('/') {
        return Err(format!(
            "{s:?}: a virtual server is one name after host:port, not a path"
        ));
    }
    crate::model::check_display_name("the virtual server's name", name)
        .map_err(|e| format!("{s:?}: {e}"))?;
    Ok((address, Some(name.to_string())))
}

/// "host:port", "[v6]:port"; the port must be 1 to 65535.
/// `host:port` (an IPv6 address in brackets) into its host and a port other than 0.
pub(crate) fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(text, Path::new("agent.toml"), Path::new("/etc/canopy"))
    }

    #[test]
    fn good_and_bad() {
        let c = parse("server = \"[::1]:13000\"\nca = \"ca.pem\"\ndata = \"a.redb\"\ntime_zone = \"Europe/Berlin\"\n[[application]]\nname = \"Endpoint Security\"\n").unwrap();
        assert_eq!((c.server_host.as_str(), c.server_port), ("::1", 13000));
        assert_eq!(c.ca, Path::new("/etc/canopy/ca.pem"));
        assert!(c.applications[0].running);
        let e = parse("server = \"nowhere\"\nca = \"c\"\ndata = \"d\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`server`"), "{e}");
        let e = parse("server = \"h:1\"\nca = \"c\"\ndata = \"d\"\ntime_zone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`time_zone`"), "{e}");
        let e = parse("server = \"h:1\"\nca = \"c\"\ndata = \"d\"\n[link]\nkeep_alive_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`link.keep_alive_ms`"), "{e}");
    }

    #[test]
    fn the_server_s_name_or_fingerprint() {
        let head = "server = \"h:1\"\nca = \"c\"\ndata = \"d\"\n";
        let c = parse(head).unwrap();
        assert_eq!((c.server_name, c.server_fingerprint), (None, None));
        let fp = "sha256:".to_string() + &"ab".repeat(32);
        let c = parse(&format!(
            "server_name = \"primary\"\nserver_fingerprint = \"{fp}\"\n{head}"
        ))
        .unwrap();
        assert_eq!(c.server_name.as_deref(), Some("primary"));
        assert_eq!(c.server_fingerprint, Some(Fingerprint([0xab; 32])));
        for (line, key) in [
            ("server_name = \"not a name\"", "`server_name`"),
            ("server_fingerprint = \"zz\"", "`server_fingerprint`"),
        ] {
            let e = parse(&format!("{line}\n{head}")).unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
        }
    }

    #[test]
    fn a_virtual_server_after_the_address() {
        let tail = "\nca = \"c\"\ndata = \"d\"\n";
        let c = parse(&format!("server = \"10.0.0.1:13000/tenant-a\"{tail}")).unwrap();
        assert_eq!((c.server_host.as_str(), c.server_port), ("10.0.0.1", 13000));
        assert_eq!(c.virtual_server.as_deref(), Some("tenant-a"));
        let c = parse(&format!("server = \"[::1]:13000/Tenant B\"{tail}")).unwrap();
        assert_eq!((c.server_host.as_str(), c.server_port), ("::1", 13000));
        assert_eq!(c.virtual_server.as_deref(), Some("Tenant B"));
        let c = parse(&format!("server = \"canopy.example:13000\"{tail}")).unwrap();
        assert_eq!(c.server_host, "canopy.example");
        assert_eq!(c.virtual_server, None);
        for (server, words) in [
            ("h:1/", "names no virtual server"),
            ("h:1/ ", "names no virtual server"),
            ("h:1/a/b", "not a path"),
            ("h:1//a", "not a path"),
            ("h:1/a\\u0007", "control characters"),
            ("h/a", "is not host:port"),
            ("/a", "is not host:port"),
            ("h:0/a", "is not host:port"),
        ] {
            let e = parse(&format!("server = \"{server}\"{tail}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("`server`"), "{server}: {e}");
            assert!(e.contains(words), "{server}: {e}");
        }
    }

    #[test]
    fn applications_by_flag_or_by_process() {
        let head = "server = \"h:1\"\nca = \"c\"\ndata = \"d\"\n";
        let c = parse(&format!(
            "{head}[[application]]\nname = \"Office\"\nprocess = \"soffice.bin\"\n\
             [[application]]\nname = \"Off\"\nrunning = false\n"
        ))
        .unwrap();
        assert_eq!(c.applications.len(), 2);
        assert_eq!(
            c.application_processes.get("Office").map(String::as_str),
            Some("soffice.bin")
        );
        assert!(!c.applications[1].running);
        assert!(!c.application_processes.contains_key("Off"));
        for (apps, key) in [
            (
                "name = \"A\"\nprocess = \"a\"\nrunning = true\n",
                "`application.running`",
            ),
            (
                "name = \"A\"\nprocess = \"/usr/bin/a\"\n",
                "`application.process`",
            ),
            ("name = \"A\"\nprocess = \"\"\n", "`application.process`"),
            ("name = \"\"\n", "`application.name`"),
            (
                "name = \"A\"\n[[application]]\nname = \"A\"\n",
                "`application.name`",
            ),
        ] {
            let e = parse(&format!("{head}[[application]]\n{apps}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{apps}: {e}");
        }
    }
}

//! Text that files and users give: the configs, device lists (`--devices-file`, and the
//! entries the server parses again), selections (`--where`), and what a device's user
//! hands the agent (a change request file, a schedule) or reads from it (the snapshot).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use super::{Verdict, round_trip};
use crate::agent::config::AgentConfig;
use crate::agent::local::{self, EditRequest, Snapshot};
use crate::config::ServerConfig;
use crate::model::device::{Application, DeviceFacts, DeviceRecord, Enrollment};
use crate::model::group::{Group, GroupTree};
use crate::model::schedule::Schedule;
use crate::model::scope::{self, IpRange, ListEntry, MAX_LIST_ENTRIES, Selection};
use crate::model::{Fingerprint, check_display_name, check_node_name};
use crate::wire::codec::MAX_VALUE;

/// Where the configs claim to be: relative paths are anchored in `BASE`.
const CONFIG: &str = "/etc/canopy/canopy.toml";
const BASE: &str = "/etc/canopy";

/// A server config (`ServerConfig::parse`). What it accepts is what the server relies on:
/// every path absolute and the backup directory without `..`, a node name, link timers and
/// thresholds in order, every duration and limit at least 1 (none wrapped around), and
/// enrollment tokens long enough and distinct.
pub fn server_config(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Refused;
    };
    let Ok(config) = ServerConfig::parse(text, Path::new(CONFIG), Path::new(BASE)) else {
        return Verdict::Refused;
    };
    assert!(check_node_name(&config.name).is_ok(), "{:?}", config.name);
    for path in [
        &config.data,
        &config.backups,
        &config.ca,
        &config.cert,
        &config.key,
    ] {
        assert!(path.is_absolute(), "{} is relative", path.display());
    }
    assert!(
        !config
            .backups
            .components()
            .any(|c| c == std::path::Component::ParentDir),
        "{}",
        config.backups.display()
    );
    if let Some(parent) = config.parent.as_ref().and_then(|p| p.dial.as_ref()) {
        assert!(parent.port != 0);
        assert!(!parent.address.is_empty() && parent.address.trim() == parent.address);
    }
    assert!(config.keep_alive > Duration::ZERO && config.idle_timeout > config.keep_alive);
    let link = &config.link;
    assert!(link.backoff_initial > Duration::ZERO && link.backoff_max >= link.backoff_initial);
    assert!(link.degraded_after >= 1 && link.failed_after > link.degraded_after);
    let year = Duration::from_secs(365 * 24 * 3600);
    assert!(
        config.session_ttl >= Duration::from_secs(60)
            && config.session_ttl <= year
            && config.session_ttl.as_secs() % 60 == 0,
        "session_ttl_minutes came out as {:?}",
        config.session_ttl
    );
    assert!(config.login_timeout >= Duration::from_secs(1));
    let limits = &config.limits;
    assert!(limits.max_connections >= 1 && limits.max_connections_per_address >= 1);
    assert!(limits.pending_device_wait >= Duration::from_secs(1));
    let mut tokens = HashSet::new();
    for token in &config.enrollment {
        assert!(token.token.chars().count() >= 16);
        assert!(tokens.insert(&token.token), "token given twice");
    }
    Verdict::Accepted
}

/// An agent config (`AgentConfig::parse`): a server host and a port that is not 0, a
/// virtual server and a device name that pass the name checks, link timers in order,
/// paths absolute, applications named once, and a process only for an application listed.
pub fn agent_config(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Refused;
    };
    let Ok(config) = AgentConfig::parse(text, Path::new(CONFIG), Path::new(BASE)) else {
        return Verdict::Refused;
    };
    assert!(!config.server_host.is_empty() && config.server_port != 0);
    if let Some(name) = &config.virtual_server {
        assert!(
            check_display_name("a virtual server", name).is_ok(),
            "{name:?}"
        );
    }
    if let Some(name) = &config.name {
        assert!(
            check_display_name("a device name", name).is_ok(),
            "{name:?}"
        );
    }
    assert!(config.ca.is_absolute() && config.data.is_absolute());
    assert!(config.keep_alive > Duration::ZERO && config.idle_timeout > config.keep_alive);
    let link = &config.link;
    assert!(link.backoff_initial > Duration::ZERO && link.backoff_max >= link.backoff_initial);
    assert!(config.rejected_retry >= Duration::from_secs(1));
    let mut names = HashSet::new();
    for app in &config.applications {
        assert!(!app.name.trim().is_empty() && names.insert(app.name.as_str()));
    }
    for (app, process) in &config.application_processes {
        assert!(
            names.contains(app.as_str()),
            "a process for {app:?}, not listed"
        );
        assert!(!process.is_empty() && !process.contains('/'));
    }
    Verdict::Accepted
}

/// A device list file, read as `--devices-file` reads it (`scope::list_file_items`), then
/// parsed as the CLI and the server do (`scope::parse_list`). An accepted list has at most
/// `MAX_LIST_ENTRIES` distinct entries; each entry is its text trimmed, parses again to
/// itself, and so does its canonical form (an address, `first-last`, a name), which is what
/// the server stores and shows; a range is ordered and holds its ends. Resolving the list
/// against known devices names only approved ones, once, in order, and only entries given
/// as unmatched.
pub fn device_list(data: &[u8]) -> Verdict {
    let Some(items) = scope::list_file_items(data) else {
        return Verdict::Refused;
    };
    let Ok(list) = scope::parse_list(items.iter().map(String::as_str)) else {
        return Verdict::Refused;
    };
    assert!(list.len() <= MAX_LIST_ENTRIES);
    let mut keys = HashSet::new();
    for (typed, entry) in &list {
        assert!(!typed.is_empty() && typed.trim() == typed && !typed.starts_with('#'));
        assert_eq!(ListEntry::parse(typed).as_ref(), Ok(entry), "{typed:?}");
        let canonical = match entry {
            ListEntry::Address(ip) => ip.to_string(),
            ListEntry::Range(range) => {
                check_range(range);
                range.to_string()
            }
            ListEntry::Name(name) => name.clone(),
        };
        assert_eq!(
            ListEntry::parse(&canonical).as_ref(),
            Ok(entry),
            "{typed:?} was read as {canonical:?}, which reads otherwise"
        );
        assert!(
            keys.insert(canonical.to_ascii_lowercase()),
            "{typed:?} twice"
        );
    }
    let devices = devices();
    let dns = HashMap::from([("files.example.com".to_string(), vec![ip("10.1.0.7")])]);
    let (ids, unmatched) = scope::resolve_list(&list, &devices, &dns);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for id in &ids {
        assert!(
            devices
                .iter()
                .any(|d| &d.id == id && d.enrollment == Enrollment::Approved),
            "{id} is no approved device"
        );
    }
    for entry in &unmatched {
        assert!(list.iter().any(|(typed, _)| typed == entry), "{entry:?}");
    }
    Verdict::of(!list.is_empty())
}

fn check_range(range: &IpRange) {
    assert_eq!(range.first.is_ipv4(), range.last.is_ipv4(), "{range}");
    let order = match (range.first, range.last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a <= b,
        (IpAddr::V6(a), IpAddr::V6(b)) => a <= b,
        _ => false,
    };
    assert!(order, "{range} is not in order");
    assert!(
        range.contains(range.first) && range.contains(range.last),
        "{range}"
    );
}

/// A device selection, one `--where` condition a line (`Selection::from_conditions`, which
/// the server runs on the conditions an administrator sends). An accepted selection names an
/// existing group, holds trimmed non-empty values and an ordered IP range, round-trips
/// through the codec (it is stored in the task's scope), describes itself, and never
/// matches a device that is not approved, nor a disconnected one when it asks for connected.
pub fn selection(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Refused;
    };
    let conditions: Vec<String> = text.split('\n').map(str::to_string).collect();
    let tree = groups();
    let Ok(selection) = Selection::from_conditions(&conditions, |path| tree.resolve(path)) else {
        return Verdict::Refused;
    };
    assert!(conditions.iter().any(|c| !c.trim().is_empty()));
    if let Some((id, _)) = selection.group {
        assert!(tree.get(id).is_some(), "group {id}");
    }
    for value in [&selection.tag, &selection.os, &selection.application]
        .into_iter()
        .flatten()
    {
        assert!(!value.is_empty() && value.trim() == value, "{value:?}");
    }
    if let Some(range) = &selection.ip_range {
        check_range(range);
    }
    let bytes = crate::wire::codec::encode(&selection).unwrap_or_default();
    assert_eq!(
        round_trip::<Selection>(&bytes, MAX_VALUE),
        Some(selection.clone())
    );
    assert!(!selection.describe(&tree).is_empty());
    for device in devices() {
        for connected in [false, true] {
            let matches = selection.matches(&device, &tree, connected);
            if device.enrollment != Enrollment::Approved
                || (selection.connected == Some(true) && !connected)
            {
                assert!(!matches, "{selection:?} matches {device:?} ({connected})");
            }
        }
    }
    Verdict::Accepted
}

/// The local tasks the user's requests are resolved against.
const LOCAL_TASKS: &[(u64, &str)] = &[(7, "Nightly scan"), (12, "Inventory"), (13, "7")];

/// What a device's user gives the agent or reads from it, tried as each: a change request
/// file of the spool (JSON, as the agent reads it), the snapshot the CLI reads (JSON), and
/// a schedule as typed (`Schedule::parse`). JSON round-trips; a request names one of the
/// device's tasks or none; a schedule reads back from its spec to itself, and round-trips
/// through the codec (the agent sends and stores it).
pub fn local_edit(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Refused;
    };
    let mut accepted = false;
    if let Some(request) = json_round_trip::<EditRequest>(text) {
        accepted = true;
        if let Ok(id) = local::resolve(LOCAL_TASKS.iter().copied(), &request.task) {
            assert!(LOCAL_TASKS.iter().any(|(task, _)| *task == id));
        }
        if let Ok(schedule) = Schedule::parse(&request.schedule) {
            check_schedule(&schedule);
        }
    }
    if let Some(snapshot) = json_round_trip::<Snapshot>(text) {
        accepted = true;
        for task in &snapshot.tasks {
            if let Ok(schedule) = Schedule::parse(&task.schedule) {
                check_schedule(&schedule);
            }
        }
    }
    if let Ok(schedule) = Schedule::parse(text) {
        accepted = true;
        check_schedule(&schedule);
    }
    Verdict::of(accepted)
}

/// A task export file (`model::export::decode`, as `task import` reads it), and the input
/// as the body of a file with a matching header, so that mutations reach the TOML past the
/// checksum. What it accepts has a valid name, a schedule that parses and parameters that
/// hold together, and writes back to a file that reads as the same task.
pub fn task_export(data: &[u8]) -> Verdict {
    use crate::model::export;
    let as_body = std::str::from_utf8(data)
        .ok()
        .map(|body| export::with_header(body).into_bytes());
    let mut accepted = false;
    for file in std::iter::once(data.to_vec()).chain(as_body) {
        if let Ok(task) = export::decode(&file) {
            check_exported(&task);
            accepted = true;
        }
    }
    Verdict::of(accepted)
}

fn check_exported(task: &crate::model::export::ExportedTask) {
    use crate::model::export;
    check_display_name("a task name", &task.name).expect("an accepted name is valid");
    let schedule = Schedule::parse(&task.schedule).expect("an accepted schedule parses");
    check_schedule(&schedule);
    let again = export::encode(task).expect("an accepted task writes back");
    assert_eq!(
        export::decode(again.as_bytes()).as_ref(),
        Ok(task),
        "a task changed through its file"
    );
}

fn json_round_trip<T>(text: &str) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = serde_json::from_str(text).ok()?;
    let again = match serde_json::to_string(&value) {
        Ok(again) => again,
        Err(e) => panic!("a decoded value does not encode as JSON: {e}; {value:?}"),
    };
    match serde_json::from_str::<T>(&again) {
        Ok(back) => assert_eq!(back, value, "a value changed through JSON"),
        Err(e) => panic!("JSON written from a decoded value does not decode: {e}; {again}"),
    }
    Some(value)
}

fn check_schedule(schedule: &Schedule) {
    let spec = schedule.spec();
    assert_eq!(
        Schedule::parse(&spec).as_ref(),
        Ok(schedule),
        "{schedule:?} as {spec:?}"
    );
    assert!(!schedule.to_string().is_empty());
    let bytes = crate::wire::codec::encode(schedule).unwrap_or_default();
    assert_eq!(
        round_trip::<Schedule>(&bytes, MAX_VALUE).as_ref(),
        Some(schedule)
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The groups selections and devices refer to: the roots, "Managed devices/Branch" (3) and
/// "Managed devices/Branch/Paris" (4).
fn groups() -> GroupTree {
    let mut groups = Group::roots().to_vec();
    for (id, parent, name) in [(3, 1, "Branch"), (4, 3, "Paris")] {
        groups.push(Group {
            id,
            parent: Some(parent),
            name: name.to_string(),
        });
    }
    GroupTree::new(groups)
}

/// Known devices: approved ones in each group, a pending one and a rejected one.
fn devices() -> Vec<DeviceRecord> {
    let device =
        |n: u8, name: &str, enrollment: Enrollment, group_id: u64, address: &str| DeviceRecord {
            id: format!("dev-{n}"),
            fingerprint: Fingerprint([n; 32]),
            name: name.to_string(),
            enrollment,
            group_id,
            facts: DeviceFacts {
                display_name: name.to_string(),
                dns_name: format!("{name}.example.com"),
                addresses: vec![address.to_string(), "fe80::1%eth0".to_string()],
                os: "Debian GNU/Linux 13".to_string(),
                agent_version: "0.1.0".to_string(),
                tags: vec!["finance".to_string()],
                applications: vec![Application {
                    name: "Endpoint Security".to_string(),
                    running: n % 2 == 0,
                }],
                time_zone: "Europe/Paris".to_string(),
            },
            tags: vec!["finance".to_string(), format!("t{n}")],
            enrolled: 1_700_000_000_000,
            last_seen: None,
        };
    vec![
        device(1, "ws-0001", Enrollment::Approved, 1, "10.1.0.5/24"),
        device(2, "files", Enrollment::Approved, 3, "10.1.0.7"),
        device(3, "paris-01", Enrollment::Approved, 4, "2001:db8::7"),
        device(4, "new-laptop", Enrollment::Pending, 2, "10.1.0.9"),
        device(5, "old-laptop", Enrollment::Rejected, 2, "10.1.0.10"),
    ]
}

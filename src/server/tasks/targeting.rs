//! What a task reaches: scopes as given resolved into what is stored (device lists once,
//! with DNS), the devices a start targets, and the servers below this one a run reaches.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::server_tasks::SERVER_TARGET;
use crate::model::device::{DeviceRecord, Enrollment};
use crate::model::scope::{self, ListEntry, Scope, Selection};
use crate::model::task::{RunRecord, TaskRecord};
use crate::net::resolve::AddressResolver;
use crate::server::Node;
use crate::server::reply::{Reply, error, internal, invalid};
use crate::sync::rollup::{self, ChildPlacement};
use crate::wire::msg::{ErrorKind, ScopeSpec};

/// How long one DNS name of a device list may take to resolve.
const DNS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long all the DNS names of one device list may take together.
const DNS_BUDGET: Duration = Duration::from_secs(10);

/// The servers below this one a run of `task` reaches, as paths of names with the devices
/// they last reported: the secondary and virtual servers placed in its group (or below),
/// and everything below those.
pub(super) async fn expected_below(node: &Node, task: &TaskRecord) -> Vec<(Vec<String>, u64)> {
    let audience = crate::sync::inherit::audience(task);
    if audience.is_none() {
        return Vec::new();
    }
    let (records, tree) = match (
        node.store.secondaries().await,
        node.store.group_tree().await,
    ) {
        (Ok(records), Ok(tree)) => (records, tree),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot read the secondaries: {e}");
            return Vec::new();
        }
    };
    let children: Vec<ChildPlacement> = records
        .iter()
        .map(|r| ChildPlacement {
            name: r.name.clone(),
            group: tree.path_of(r.group_id).map(|_| r.group_id),
            devices: r.devices,
            subtree: r
                .subtree
                .iter()
                .map(|row| {
                    (
                        row.path.split('/').map(str::to_string).collect(),
                        row.devices,
                    )
                })
                .collect(),
        })
        .collect();
    rollup::expected_below(audience, &children, |a, b| tree.is_descendant(a, b))
}

pub(super) async fn expected_servers(node: &Node, run: &RunRecord) -> Vec<(Vec<String>, u64)> {
    match node.store.task(run.task_id).await {
        Ok(Some(task)) => expected_below(node, &task).await,
        _ => Vec::new(),
    }
}

/// Resolves a scope as given into what is stored: group ids, the devices a list matches.
pub(super) async fn resolve_scope(node: &Node, spec: ScopeSpec) -> Reply<Scope> {
    match spec {
        ScopeSpec::Group {
            path,
            include_subgroups,
            include_secondaries,
        } => match node.store.resolve_group(&path).await.map_err(internal)? {
            Some(group_id) => Ok(Scope::Group {
                group_id,
                include_subgroups,
                include_secondaries,
            }),
            None => Err(error(
                ErrorKind::NotFound,
                format!("group {path:?} does not exist"),
            )),
        },
        ScopeSpec::Devices { entries } => device_list(node, &entries).await,
        ScopeSpec::Selection { conditions } => {
            let tree = node.store.group_tree().await.map_err(internal)?;
            Selection::from_conditions(&conditions, |path| tree.resolve(path))
                .map(Scope::Selection)
                .map_err(invalid)
        }
        ScopeSpec::Local { device } => {
            let record = crate::server::devices::find(node, &device).await?;
            if record.enrollment != Enrollment::Approved {
                return Err(invalid(format!(
                    "device {} is {}; a local task needs an approved device",
                    record.name,
                    record.enrollment.as_str()
                )));
            }
            Ok(Scope::Local {
                device_id: record.id,
            })
        }
        ScopeSpec::Server => Ok(Scope::Server),
    }
}

/// Resolves a device list once: entries that are device ids name those devices; the rest
/// are addresses, ranges and names, matched against the devices this server knows. Names
/// that match no device by name are looked up in DNS and matched by address.
pub(super) async fn device_list(node: &Node, entries: &[String]) -> Reply<Scope> {
    let devices = node.store.devices().await.map_err(internal)?;
    let by_id: HashMap<&str, &DeviceRecord> = devices
        .iter()
        .filter(|d| d.enrollment == Enrollment::Approved)
        .map(|d| (d.id.as_str(), d))
        .collect();
    let (ids, rest): (Vec<&String>, Vec<&String>) =
        entries.iter().partition(|e| by_id.contains_key(e.trim()));
    let parsed = scope::parse_list(rest.iter().map(|s| s.as_str())).map_err(invalid)?;
    if ids.len() + parsed.len() > scope::MAX_LIST_ENTRIES {
        return Err(invalid(format!(
            "a device list holds at most {} entries; this one has {}",
            scope::MAX_LIST_ENTRIES,
            ids.len() + parsed.len()
        )));
    }
    let (_, unmatched_by_name) = scope::resolve_list(&parsed, &devices, &HashMap::new());
    let mut dns: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut resolver = AddressResolver::system();
    // The whole request must answer well within the client's timeout, however many names.
    let deadline = tokio::time::Instant::now() + DNS_BUDGET;
    for (typed, entry) in &parsed {
        if let ListEntry::Name(name) = entry
            && unmatched_by_name.contains(typed)
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                tracing::info!("device list entry {name:?}: no DNS time left for it");
                continue;
            }
            match tokio::time::timeout(DNS_TIMEOUT.min(left), resolver.lookup_all(name)).await {
                Ok(Ok(ips)) => {
                    dns.insert(name.clone(), ips);
                }
                Ok(Err(e)) => tracing::info!("device list entry {name:?}: {e}"),
                Err(_) => tracing::info!("device list entry {name:?}: DNS timed out"),
            }
        }
    }
    let (mut device_ids, unmatched) = scope::resolve_list(&parsed, &devices, &dns);
    device_ids.extend(ids.iter().map(|s| s.trim().to_string()));
    device_ids.sort();
    device_ids.dedup();
    let mut typed: Vec<String> = ids.iter().map(|s| s.trim().to_string()).collect();
    typed.extend(parsed.into_iter().map(|(t, _)| t));
    Ok(Scope::DeviceList {
        entries: typed,
        device_ids,
        unmatched,
    })
}

/// The devices a start targets, as (id, name), and what was left out, in words.
pub(super) async fn targets(
    node: &Node,
    task: &TaskRecord,
) -> Reply<(Vec<(String, String)>, Vec<String>)> {
    if task.scope == Scope::Server {
        return Ok((
            vec![(SERVER_TARGET.to_string(), node.name().to_string())],
            Vec::new(),
        ));
    }
    let devices = node.store.devices().await.map_err(internal)?;
    let approved = devices
        .iter()
        .filter(|d| d.enrollment == Enrollment::Approved);
    let pair = |d: &DeviceRecord| (d.id.clone(), d.name.clone());
    let mut skipped = Vec::new();
    let targets: Vec<(String, String)> = match &task.scope {
        Scope::Group { .. } => {
            let tree = node.store.group_tree().await.map_err(internal)?;
            approved
                .filter(|d| task.scope.reaches(d, &tree))
                .map(pair)
                .collect()
        }
        Scope::DeviceList {
            device_ids,
            unmatched,
            ..
        } => {
            let known: HashMap<&str, &DeviceRecord> =
                approved.map(|d| (d.id.as_str(), d)).collect();
            skipped.extend(
                unmatched
                    .iter()
                    .map(|e| format!("{e}: matches no device known to this server")),
            );
            let mut out = Vec::new();
            for id in device_ids {
                match known.get(id.as_str()) {
                    Some(d) => out.push(pair(d)),
                    None => skipped.push(format!("{id}: no longer a managed device")),
                }
            }
            out
        }
        Scope::Selection(selection) => {
            let tree = node.store.group_tree().await.map_err(internal)?;
            let connected = node.connected_devices();
            let mut out = Vec::new();
            let mut offline = 0;
            for d in approved {
                let online = connected.contains(&d.id);
                if !selection.matches(d, &tree, online) {
                    continue;
                }
                if online {
                    out.push(pair(d));
                } else {
                    offline += 1;
                }
            }
            if offline > 0 {
                skipped.push(format!(
                    "{offline} device(s) of the selection are not connected; a selection task runs on connected devices only"
                ));
            }
            out
        }
        Scope::Local { device_id } => approved.filter(|d| &d.id == device_id).map(pair).collect(),
        Scope::Server => Vec::new(),
    };
    Ok((targets, skipped))
}

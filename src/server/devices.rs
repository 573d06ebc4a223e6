//! Admin requests about devices: list, show, move, tag, approve, reject, delete.

use std::collections::HashSet;

use super::auth::Session;
use super::reply::{error, internal};
use super::rights::Gate;
use super::{Node, lock};
use crate::model::device::{DeviceRecord, DeviceView, Enrollment};
use crate::model::group::normalize_path;
use crate::model::rights::Rights;
use crate::model::{EventKind, Severity};
use crate::store::StoreError;
use crate::store::rights::Guarded;
use crate::wire::close;
use crate::wire::msg::{AdminResponse, DEVICE_PAGE_MAX, DeviceCursor, DeviceRequest, ErrorKind};

pub(super) async fn handle(
    node: &Node,
    session: &Session,
    request: DeviceRequest,
) -> AdminResponse {
    let gate = match Gate::load(node, session).await {
        Ok(gate) => gate,
        Err(refused) => return refused,
    };
    if let Err(refused) = check_rights(node, &gate, &request).await {
        return refused;
    }
    match request {
        DeviceRequest::List {
            group,
            recursive,
            after,
            limit,
        } => list(node, &gate, group, recursive, after, limit).await,
        DeviceRequest::Show { device } => match find(node, &device).await {
            Ok(record) => AdminResponse::Devices {
                devices: vec![view(node, &record).await],
                next: None,
            },
            Err(e) => e,
        },
        DeviceRequest::Move { device, group } => {
            let group_id = match node.store.resolve_group(&group).await {
                Ok(Some(id)) => id,
                Ok(None) => return error(ErrorKind::NotFound, format!("no group {group:?}")),
                Err(e) => return internal(e),
            };
            let moved = change(
                node,
                session,
                &device,
                "moved to ".to_string() + &group,
                move |r| {
                    r.group_id = group_id;
                    Ok(())
                },
            )
            .await;
            if matches!(moved, AdminResponse::Done { .. })
                && let Ok(record) = find(node, &device).await
            {
                // What it runs on its own schedule depends on its group.
                node.push_schedules_to(&record.id).await;
            }
            moved
        }
        DeviceRequest::Tag {
            device,
            add,
            remove,
        } => {
            if let Some(bad) = add.iter().find(|t| check_tag(t).is_err()) {
                return error(
                    ErrorKind::InvalidInput,
                    check_tag(bad).err().unwrap_or_default(),
                );
            }
            let what = format!("tags +{add:?} -{remove:?}");
            change(node, session, &device, what, move |r| {
                r.tags.retain(|t| !remove.contains(t));
                for t in &add {
                    if !r.tags.contains(t) {
                        r.tags.push(t.clone());
                    }
                }
                r.tags.sort();
                Ok(())
            })
            .await
        }
        DeviceRequest::Approve { device, group } => {
            let group_id = match group {
                None => None,
                Some(path) => match node.store.resolve_group(&path).await {
                    Ok(Some(id)) => Some(id),
                    Ok(None) => return error(ErrorKind::NotFound, format!("no group {path:?}")),
                    Err(e) => return internal(e),
                },
            };
            change(node, session, &device, "approved".into(), move |r| {
                r.enrollment = Enrollment::Approved;
                if let Some(id) = group_id {
                    r.group_id = id;
                }
                Ok(())
            })
            .await
        }
        DeviceRequest::Reject { device } => {
            change(node, session, &device, "rejected".into(), |r| {
                r.enrollment = Enrollment::Rejected;
                Ok(())
            })
            .await
        }
        DeviceRequest::Delete { device } => {
            let record = match find(node, &device).await {
                Ok(record) => record,
                Err(e) => return e,
            };
            if let Err(e) = node.store.delete_device(&record.id).await {
                return internal(e);
            }
            disconnect(
                node,
                &record.id,
                "the device was deleted by an administrator",
            );
            node.waiting.wake(&record.id);
            let msg = format!(
                "device {} ({}) deleted by {}",
                record.name, record.id, session.user
            );
            let about = Guarded::Group(record.group_id);
            node.event_about(Severity::Info, EventKind::DeviceChanged, msg, about)
                .await;
            node.bump_subtree();
            AdminResponse::Done {
                message: format!("device {} deleted", record.name),
            }
        }
    }
}

/// Read on a device's group to see it, modify to change it (and on the group it goes to).
/// A device or group not found is left to the request to report.
async fn check_rights(
    node: &Node,
    gate: &Gate,
    request: &DeviceRequest,
) -> Result<(), AdminResponse> {
    if gate.unlimited() {
        return Ok(());
    }
    let (device, need, to) = match request {
        DeviceRequest::List { .. } => return Ok(()),
        DeviceRequest::Show { device } => (device, Rights::READ, None),
        DeviceRequest::Move { device, group } => (device, Rights::MODIFY, Some(group)),
        DeviceRequest::Approve { device, group } => (device, Rights::MODIFY, group.as_ref()),
        DeviceRequest::Tag { device, .. }
        | DeviceRequest::Reject { device }
        | DeviceRequest::Delete { device } => (device, Rights::MODIFY, None),
    };
    let tree = gate.tree();
    if let Ok(record) = find(node, device).await {
        let has = gate.on_group(record.group_id);
        if !has.contains(Rights::READ) {
            return Err(error(ErrorKind::NotFound, format!("no device {device:?}")));
        }
        let path = tree.path_of(record.group_id).unwrap_or_default();
        gate.check_group(record.group_id, &path, need)?;
    }
    if let Some(path) = to
        && let Some(id) = tree.resolve(path)
    {
        gate.check_group(id, normalize_path(path), Rights::MODIFY)?;
    }
    Ok(())
}

/// Tags are short words an administrator filters on.
fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.trim().is_empty()
        && tag.chars().count() <= 64
        && !tag.chars().any(|c| c.is_control() || c == ',');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag:?} is not a tag: 1 to 64 characters, no commas"
        ))
    }
}

async fn list(
    node: &Node,
    gate: &Gate,
    group: Option<String>,
    recursive: bool,
    after: Option<DeviceCursor>,
    limit: u32,
) -> AdminResponse {
    let tree = gate.tree().clone();
    // Only the devices of groups the caller may read are listed.
    let readable: HashSet<u64> = tree
        .in_tree_order()
        .iter()
        .map(|g| g.id)
        .filter(|id| gate.on_group(*id).contains(Rights::READ))
        .collect();
    let group_id = match &group {
        None => None,
        Some(path) => match tree.resolve(path) {
            Some(id) if readable.contains(&id) => Some(id),
            _ => return error(ErrorKind::NotFound, format!("no group {path:?}")),
        },
    };
    let live = node.connected_devices();
    let limit = limit.clamp(1, DEVICE_PAGE_MAX) as usize;
    let in_group = tree.clone();
    let keep = move |r: &DeviceRecord| {
        readable.contains(&r.group_id)
            && match group_id {
                None => true,
                Some(g) => r.group_id == g || (recursive && in_group.is_descendant(r.group_id, g)),
            }
    };
    // A range read of the name order: a page costs its own devices, not the whole registry.
    let after = after.map(|c| (c.name, c.id));
    let (records, read_to) = match node.store.device_page(after, limit, keep).await {
        Ok(page) => page,
        Err(e) => return internal(e),
    };
    let views = records.iter().map(|r| {
        let path = tree
            .path_of(r.group_id)
            .unwrap_or_else(|| format!("group #{}", r.group_id));
        DeviceView::of(r, path, live.contains(&r.id))
    });
    let (devices, cut) = super::reply::fill_page(views, limit);
    let next = if cut {
        devices.last().map(|d| DeviceCursor {
            name: d.name.clone(),
            id: d.id.clone(),
        })
    } else {
        read_to.map(|(name, id)| DeviceCursor { name, id })
    };
    AdminResponse::Devices { devices, next }
}

async fn view(node: &Node, record: &DeviceRecord) -> DeviceView {
    let group = node.group_path(record.group_id).await;
    DeviceView::of(record, group, node.connected_devices().contains(&record.id))
}

/// Finds a device by id, unique id prefix, or unique display name.
pub(super) async fn find(node: &Node, key: &str) -> Result<DeviceRecord, AdminResponse> {
    let records = node.store.devices().await.map_err(internal)?;
    if let Some(r) = records.iter().find(|r| r.id == key) {
        return Ok(r.clone());
    }
    let by_name: Vec<&DeviceRecord> = records.iter().filter(|r| r.name == key).collect();
    let by_prefix: Vec<&DeviceRecord> = if key.len() >= 4 {
        records.iter().filter(|r| r.id.starts_with(key)).collect()
    } else {
        Vec::new()
    };
    match (by_name.as_slice(), by_prefix.as_slice()) {
        ([one], _) | ([], [one]) => Ok((*one).clone()),
        ([], []) => Err(error(ErrorKind::NotFound, format!("no device {key:?}"))),
        _ => Err(error(
            ErrorKind::InvalidInput,
            format!("{key:?} names several devices; use the device id"),
        )),
    }
}

async fn change(
    node: &Node,
    session: &Session,
    device: &str,
    what: String,
    change: impl FnMut(&mut DeviceRecord) -> Result<(), StoreError> + Send + 'static,
) -> AdminResponse {
    let record = match find(node, device).await {
        Ok(record) => record,
        Err(e) => return e,
    };
    let updated = match node.store.update_device(&record.id, change).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(ErrorKind::NotFound, format!("no device {device:?}")),
        Err(StoreError::Rejected(msg)) => return error(ErrorKind::InvalidInput, msg),
        Err(e) => return internal(e),
    };
    if updated.enrollment == Enrollment::Rejected {
        disconnect(node, &updated.id, "rejected by an administrator");
    }
    node.waiting.wake(&updated.id);
    let msg = format!(
        "device {} ({}) {what} by {}",
        updated.name, updated.id, session.user
    );
    let about = Guarded::Group(updated.group_id);
    node.event_about(Severity::Info, EventKind::DeviceChanged, msg, about)
        .await;
    AdminResponse::Done {
        message: format!("device {}: {what}", updated.name),
    }
}

fn disconnect(node: &Node, id: &str, reason: &str) {
    if let Some(live) = lock(&node.devices).remove(id) {
        live.conn.close(close::REMOVED.into(), reason.as_bytes());
    }
}

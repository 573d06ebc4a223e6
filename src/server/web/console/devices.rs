//! Managed devices with check boxes and "Run task" (an existing task started at once on the
//! devices checked, as the spec says), and events.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use super::device_actions::checked;
use super::tasks::{all_tasks, encode};
use super::{Refusal, Session, csrf_field, field, layout, time};
use crate::model::EventFilter;
use crate::server::web::Web;
use crate::wire::msg::{AdminRequest, AdminResponse, DEVICE_PAGE_MAX, DeviceRequest, TaskRequest};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/devices", get(devices))
        .route("/devices/run", post(run_task))
        .route("/devices/apply", post(apply))
        .route("/events", get(events))
}

#[derive(serde::Deserialize)]
pub(super) struct DeviceQuery {
    /// Devices whose name, address or group contain this.
    search: Option<String>,
    /// The devices of this group and its subgroups.
    group: Option<String>,
    /// connected, disconnected or pending; all without it.
    status: Option<String>,
}

/// The most devices one page of the console lists: a larger fleet is narrowed with the
/// filters.
const DEVICES_SHOWN: usize = 10_000;

async fn devices(session: Session, Query(q): Query<DeviceQuery>) -> Result<Response, Refusal> {
    let mut devices = Vec::new();
    let mut after = None;
    let group = q.group.clone().filter(|g| !g.is_empty());
    loop {
        let request = AdminRequest::Device(DeviceRequest::List {
            recursive: group.is_some(),
            group: group.clone(),
            after,
            limit: DEVICE_PAGE_MAX,
        });
        match session.call(Vec::new(), request).await? {
            AdminResponse::Devices {
                devices: page,
                next,
            } => {
                devices.extend(page);
                match next {
                    Some(next) if devices.len() < DEVICES_SHOWN => after = Some(next),
                    _ => break,
                }
            }
            _ => return Err(super::tasks::unexpected()),
        }
    }
    let truncated = devices.len() >= DEVICES_SHOWN;
    let search = q.search.clone().unwrap_or_default().to_lowercase();
    let status = q.status.clone().unwrap_or_default();
    devices.retain(|d| {
        let found = search.is_empty()
            || d.name.to_lowercase().contains(&search)
            || d.group.to_lowercase().contains(&search)
            || d.addresses.iter().any(|a| a.contains(&search));
        let in_status = match status.as_str() {
            "connected" => d.connected,
            "disconnected" => !d.connected,
            "pending" => d.enrollment == crate::model::device::Enrollment::Pending,
            _ => true,
        };
        found && in_status
    });
    let body = html! {
        form method="get" action="/devices" {
            label { "Search " input name="search" value=(q.search.clone().unwrap_or_default()); }
            " "
            label { "Group " input name="group" value=(q.group.clone().unwrap_or_default()); }
            " "
            label { "Status "
                select name="status" {
                    @for (value, label) in [("", "all"), ("connected", "connected"), ("disconnected", "not connected"), ("pending", "pending approval")] {
                        option value=(value) selected[status == value] { (label) }
                    }
                }
            }
            " " button type="submit" { "Filter" }
        }
        form method="post" action="/devices/run" {
            (csrf_field(&session))
            table.devices {
                thead { tr { th { "" } th { "Device" } th { "Group" } th { "Status" } th { "Connected" } th { "OS" } th { "Addresses" } th { "Last seen" } } }
                tbody {
                    @for d in &devices {
                        tr data-device=(d.name) {
                            td { input type="checkbox" name="device" value=(d.id) aria-label=(d.name); }
                            td { a href=(format!("/devices/{}", encode(&d.id))) { (d.name) } } td { (d.group) }
                            td.enrollment { (d.enrollment.as_str()) }
                            td { (if d.connected { "yes" } else { "no" }) }
                            td { (d.os) } td { (d.addresses.join(", ")) }
                            td { (time(d.last_seen)) }
                        }
                    }
                }
            }
            p.count { (devices.len()) " devices"
                @if truncated { " (the first " (DEVICES_SHOWN) " of the group: narrow the list with the filters)" } }
            h2 { "Run task" }
            p {
                button type="submit" name="action" value="new" { "Add a new task" } " "
                button type="submit" name="action" value="apply" { "Apply existing task" }
            }
            h2 { "Manage" }
            p.manage {
                label { "Group " input name="target_group" placeholder="Managed devices/Paris"; } " "
                button type="submit" formaction="/devices/action" name="action" value="move" { "Move to group" } " "
                button type="submit" formaction="/devices/action" name="action" value="approve" { "Approve" } " "
                button type="submit" formaction="/devices/action" name="action" value="reject" { "Reject" } " "
                button type="submit" formaction="/devices/action" name="action" value="delete" { "Delete" }
            }
        }
    };
    Ok(layout("Managed devices", Some(&session), body).into_response())
}

/// "Run task" on the devices checked: "Add a new task" opens the New task wizard with them
/// as its scope; "Apply existing task" lists them (each may be taken off) above the tasks.
async fn run_task(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let devices = checked(&fields, "device")?;
    if field(&fields, "action").as_deref() == Some("new") {
        return Ok(super::wizard::for_devices(&session, &devices));
    }
    let tasks = all_tasks(&session).await?;
    let body = html! {
        form method="post" action="/devices/apply" {
            (csrf_field(&session))
            h2 { "Devices" }
            ul.selected {
                @for id in &devices {
                    li { label { input type="checkbox" name="device" value=(id) checked; " " (id) } }
                }
            }
            h2 { "Task" }
            table.tasks {
                @for t in &tasks {
                    tr data-task=(t.name) {
                        td { input type="radio" name="task" value=(t.id) aria-label=(t.name); }
                        td { (t.name) } td { (t.task_type.type_name()) } td { (t.kind.as_str()) }
                    }
                }
            }
            p { button type="submit" { "Save and start task" } }
        }
    };
    Ok(layout("Apply existing task", Some(&session), body).into_response())
}

/// "Save and start task": the task's scope becomes the devices kept and it starts at once;
/// its schedule is not changed.
async fn apply(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let devices = checked(&fields, "device")?;
    let task = field(&fields, "task")
        .ok_or_else(|| Refusal::Error(StatusCode::BAD_REQUEST, "select the task to run".into()))?;
    let request = AdminRequest::Task(TaskRequest::Start {
        task: task.clone(),
        devices: Some(devices),
    });
    session.call(Vec::new(), request).await?;
    Ok(Redirect::to(&format!("/tasks/{}", encode(&task))).into_response())
}

async fn events(session: Session) -> Result<Response, Refusal> {
    let request = AdminRequest::EventList {
        after: None,
        limit: 200,
        filter: EventFilter::default(),
    };
    let events = match session.call(Vec::new(), request).await? {
        AdminResponse::Events { events, .. } => events,
        _ => return Err(super::tasks::unexpected()),
    };
    let body = html! {
        p { "The newest 200, oldest first." }
        table.events {
            thead { tr { th { "Time" } th { "Server" } th { "Severity" } th { "Event" } th { "Description" } } }
            tbody {
                @for e in &events {
                    tr {
                        td { (time(Some(e.time))) }
                        td { (if e.origin.is_empty() { session.server_name().to_string() } else { e.origin.join("/") }) }
                        td { (e.severity.as_str()) }
                        td { (e.kind.as_str()) }
                        td { (e.message) }
                    }
                }
            }
        }
    };
    Ok(layout("Events", Some(&session), body).into_response())
}

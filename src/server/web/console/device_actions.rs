//! What an administrator does to the devices checked in Managed devices (move to a group,
//! approve or reject a pending device, delete after a confirmation), and a device's own page
//! with its facts and tags.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use super::tasks::{encode, unexpected};
use super::{Refusal, Session, csrf_field, field, layout, time};
use crate::server::web::Web;
use crate::wire::msg::{AdminRequest, AdminResponse, DeviceRequest};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/devices/action", post(action))
        .route("/devices/delete", post(delete))
        .route("/devices/{device}", get(device))
        .route("/devices/{device}/tags", post(tags))
}

/// The values of the check boxes `name` checked: at least one.
pub(super) fn checked(fields: &[(String, String)], name: &str) -> Result<Vec<String>, Refusal> {
    let values: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect();
    if values.is_empty() {
        return Err(Refusal::Error(
            StatusCode::BAD_REQUEST,
            "select the check box next to at least one device".into(),
        ));
    }
    Ok(values)
}

/// Makes one request per device; the devices refused are listed with their reasons, the
/// others were done.
async fn each(
    session: &Session,
    devices: &[String],
    request: impl Fn(String) -> DeviceRequest,
) -> Result<Response, Refusal> {
    let mut refused = Vec::new();
    for device in devices {
        match session
            .call(Vec::new(), AdminRequest::Device(request(device.clone())))
            .await
        {
            Ok(_) => {}
            Err(Refusal::Error(_, message)) => refused.push((device.clone(), message)),
            Err(login) => return Err(login),
        }
    }
    if refused.is_empty() {
        return Ok(Redirect::to("/devices").into_response());
    }
    let body = html! {
        p.error role="alert" { (refused.len()) " of " (devices.len()) " devices were refused; the others are done." }
        ul.refused { @for (device, why) in &refused { li { (device) ": " (why) } } }
        p { a href="/devices" { "Back to the devices" } }
    };
    Ok((
        StatusCode::BAD_REQUEST,
        layout("Managed devices", Some(session), body),
    )
        .into_response())
}

async fn action(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let devices = checked(&fields, "device")?;
    let group = field(&fields, "target_group")
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty());
    match field(&fields, "action").as_deref() {
        Some("move") => {
            let group = group.ok_or_else(|| {
                Refusal::Error(
                    StatusCode::BAD_REQUEST,
                    "name the group to move the devices to".into(),
                )
            })?;
            each(&session, &devices, |device| DeviceRequest::Move {
                device,
                group: group.clone(),
            })
            .await
        }
        Some("approve") => {
            each(&session, &devices, |device| DeviceRequest::Approve {
                device,
                group: group.clone(),
            })
            .await
        }
        Some("reject") => {
            each(&session, &devices, |device| DeviceRequest::Reject {
                device,
            })
            .await
        }
        Some("delete") => Ok(confirm_delete(&session, &devices)),
        _ => Err(Refusal::Error(
            StatusCode::BAD_REQUEST,
            "choose what to do with the devices".into(),
        )),
    }
}

/// Delete asks first: the devices listed, and a button that deletes them.
fn confirm_delete(session: &Session, devices: &[String]) -> Response {
    let body = html! {
        p { "Delete these " (devices.len()) " devices? Their records and results here are removed; a device that connects again enrolls anew." }
        form method="post" action="/devices/delete" {
            (csrf_field(session))
            ul.selected {
                @for id in devices {
                    li { (id) input type="hidden" name="device" value=(id); }
                }
            }
            p { button type="submit" name="confirm" value="yes" { "Delete" } " " a href="/devices" { "Cancel" } }
        }
    };
    layout("Delete devices", Some(session), body).into_response()
}

async fn delete(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let devices = checked(&fields, "device")?;
    each(&session, &devices, |device| DeviceRequest::Delete {
        device,
    })
    .await
}

/// A device's facts, its tags (each can be removed) and a field to add more.
async fn device(session: Session, Path(device): Path<String>) -> Result<Response, Refusal> {
    let request = AdminRequest::Device(DeviceRequest::Show {
        device: device.clone(),
    });
    let d = match session.call(Vec::new(), request).await? {
        AdminResponse::Devices { mut devices, .. } if !devices.is_empty() => devices.remove(0),
        _ => return Err(unexpected()),
    };
    let body = html! {
        table.device {
            tr { th { "Group" } td { (d.group) } }
            tr { th { "Status" } td { (d.enrollment.as_str()) ", " (if d.connected { "connected" } else { "not connected" }) } }
            tr { th { "DNS name" } td { (d.dns_name) } }
            tr { th { "Addresses" } td { (d.addresses.join(", ")) } }
            tr { th { "Operating system" } td { (d.os) } }
            tr { th { "Agent version" } td { (d.agent_version) } }
            tr { th { "Time zone" } td { (d.time_zone) } }
            tr { th { "Last seen" } td { (time(d.last_seen)) } }
            tr { th { "Key fingerprint" } td { code { (d.fingerprint) } } }
            tr { th { "Device id" } td { code { (d.id) } } }
        }
        h2 { "Applications" }
        @if d.applications.is_empty() { p { "None reported." } }
        ul.applications { @for a in &d.applications { li { (a.name) (if a.running { " (running)" } else { "" }) } } }
        h2 { "Tags" }
        form.tags method="post" action=(format!("/devices/{}/tags", encode(&d.id))) {
            (csrf_field(&session))
            ul.tags {
                @for tag in &d.tags {
                    li data-tag=(tag) { label { input type="checkbox" name="remove" value=(tag); " " (tag) } }
                }
            }
            p { label { "Add tags (comma-separated) " input name="add"; } }
            p { button type="submit" { "Save tags" } " (the tags checked are removed)" }
        }
        p { a href="/devices" { "Back to the devices" } }
    };
    Ok(layout(&d.name, Some(&session), body).into_response())
}

async fn tags(
    session: Session,
    Path(device): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let add: Vec<String> = field(&fields, "add")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let remove: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n == "remove")
        .map(|(_, v)| v.clone())
        .collect();
    let request = AdminRequest::Device(DeviceRequest::Tag {
        device: device.clone(),
        add,
        remove,
    });
    session.call(Vec::new(), request).await?;
    Ok(Redirect::to(&format!("/devices/{}", encode(&device))).into_response())
}

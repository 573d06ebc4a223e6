//! Virtual servers of this server: the list with each one's group, state, devices and
//! enrollment token; one created in a group, enabled, disabled, and deleted with its
//! database once the administrator has confirmed it on a page of its own.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use super::groups::{all_groups, group_select};
use super::{NameQuery, Refusal, Session, confirm_page, csrf_field, field, layout, problem, time};
use crate::server::web::Web;
use crate::wire::msg::{
    AdminRequest, AdminResponse, PAGE_MAX, VirtualServerRequest, VirtualServerView,
};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/vservers", get(list))
        .route("/vservers/create", post(create))
        .route("/vservers/enable", post(enable))
        .route("/vservers/disable", post(disable))
        .route("/vservers/delete", get(confirm_delete).post(delete))
}

/// Every virtual server (page by page, as the CLI reads them).
async fn all_tenants(session: &Session) -> Result<Vec<VirtualServerView>, Refusal> {
    let request = |after| {
        AdminRequest::VirtualServer(VirtualServerRequest::List {
            after,
            limit: PAGE_MAX,
        })
    };
    session
        .all(request, |answer| match answer {
            AdminResponse::VirtualServers {
                virtual_servers,
                next,
            } => Some((virtual_servers, next)),
            _ => None,
        })
        .await
}

async fn list(session: Session) -> Result<Response, Refusal> {
    page(&session, None, "", "Managed devices").await
}

/// The list and the New virtual server form, with the problem of the form sent last.
async fn page(
    session: &Session,
    problem: Option<(StatusCode, String)>,
    name: &str,
    group: &str,
) -> Result<Response, Refusal> {
    let tenants = all_tenants(session).await?;
    let groups = all_groups(session).await?;
    let body = html! {
        @if let Some((_, message)) = &problem {
            p.error role="alert" { (message) }
        }
        @if tenants.is_empty() {
            p { "No virtual servers yet." }
        } @else {
            table.vservers {
                thead { tr { th { "Virtual server" } th { "Group" } th { "Enabled" } th { "Devices" } th { "Connected" } th { "Enrollment token" } th { "Created" } th { "" } } }
                tbody {
                    @for t in &tenants {
                        tr data-vserver=(t.name) {
                            td { (t.name) }
                            td { (t.group) }
                            td.enabled { (if t.enabled { "yes" } else { "no" }) }
                            td { (t.devices) }
                            td { (t.devices_connected) }
                            // Shown as the CLI's list shows it: agents enroll with it.
                            td.token { code { (t.enrollment_token.0) } }
                            td { (time(Some(t.created))) }
                            td {
                                @let (action, label) = if t.enabled { ("disable", "Disable") } else { ("enable", "Enable") };
                                form.inline method="post" action=(format!("/vservers/{action}")) {
                                    (csrf_field(session))
                                    input type="hidden" name="name" value=(t.name);
                                    button type="submit" name="go" value=(action) { (label) }
                                }
                                " "
                                a.delete href=(format!("/vservers/delete?name={}", super::tasks::encode(&t.name))) { "Delete" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New virtual server" }
        form.block.create method="post" action="/vservers/create" {
            (csrf_field(session))
            p { label { "Name " input name="name" value=(name) autocomplete="off"; } }
            p { label { "In group " (group_select("group", &groups, group)) } }
            p { button type="submit" { "Create" } }
        }
    };
    let status = problem.map_or(StatusCode::OK, |(status, _)| status);
    Ok((status, layout("Virtual servers", Some(session), body)).into_response())
}

async fn create(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name")
        .unwrap_or_default()
        .trim()
        .to_string();
    let group = field(&fields, "group").unwrap_or_default();
    let request = AdminRequest::VirtualServer(VirtualServerRequest::Create {
        name: name.clone(),
        group: group.clone(),
    });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/vservers").into_response()),
        Err(refusal) => page(&session, Some(problem(refusal)?), &name, &group).await,
    }
}

/// Enable or Disable: the list again, or the problem above it.
async fn set_enabled(session: Session, body: Bytes, enabled: bool) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name").unwrap_or_default();
    let request = if enabled {
        VirtualServerRequest::Enable { name }
    } else {
        VirtualServerRequest::Disable { name }
    };
    match session
        .call(Vec::new(), AdminRequest::VirtualServer(request))
        .await
    {
        Ok(_) => Ok(Redirect::to("/vservers").into_response()),
        Err(refusal) => page(&session, Some(problem(refusal)?), "", "Managed devices").await,
    }
}

async fn enable(session: Session, body: Bytes) -> Result<Response, Refusal> {
    set_enabled(session, body, true).await
}

async fn disable(session: Session, body: Bytes) -> Result<Response, Refusal> {
    set_enabled(session, body, false).await
}

/// Asks before deleting: the database goes with it, and nothing brings it back.
async fn confirm_delete(session: Session, Query(q): Query<NameQuery>) -> Response {
    let question = html! {
        "Delete the virtual server " strong { (q.name) } " with its database: its accounts, groups, devices and tasks? This cannot be undone."
    };
    let title = "Delete virtual server";
    confirm_page(
        &session,
        title,
        question,
        "/vservers/delete",
        &q.name,
        "Delete",
        "/vservers",
    )
}

async fn delete(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name").unwrap_or_default();
    let request = AdminRequest::VirtualServer(VirtualServerRequest::Delete { name });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/vservers").into_response()),
        Err(refusal) => page(&session, Some(problem(refusal)?), "", "Managed devices").await,
    }
}

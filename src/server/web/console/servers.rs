//! Administration Servers: the servers of the tree, indented; a secondary registered here
//! (name, group, its certificate, and the address to dial for a passive one) and one
//! removed once the administrator has confirmed it on a page of its own.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use super::groups::{all_groups, group_select};
use super::tasks::encode;
use super::{NameQuery, Refusal, Session, confirm_page, csrf_field, field, layout, problem, time};
use crate::server::web::Web;
use crate::wire::msg::{AdminRequest, AdminResponse, PAGE_MAX};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/servers", get(servers))
        .route("/servers/add", post(add))
        .route("/servers/remove", get(confirm_remove).post(remove))
}

/// What the Add a secondary form held when it was refused.
struct Draft {
    name: String,
    group: String,
    cert_pem: String,
    passive: String,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            name: String::new(),
            group: "Managed devices".into(),
            cert_pem: String::new(),
            passive: String::new(),
        }
    }
}

async fn servers(session: Session) -> Result<Response, Refusal> {
    page(&session, None, &Draft::default()).await
}

async fn page(
    session: &Session,
    problem: Option<(StatusCode, String)>,
    draft: &Draft,
) -> Result<Response, Refusal> {
    let request = |after| AdminRequest::ServerList {
        after,
        limit: PAGE_MAX,
    };
    let rows = session
        .all(request, |answer| match answer {
            AdminResponse::Servers { servers, next } => Some((servers, next)),
            _ => None,
        })
        .await?;
    let groups = all_groups(session).await?;
    let body = html! {
        @if let Some((_, message)) = &problem {
            p.error role="alert" { (message) }
        }
        table.servers {
            thead { tr { th { "Administration Server" } th { "Type" } th { "Group" } th { "Status" } th { "Devices" } th { "Version" } th { "Last connected" } th { "" } } }
            tbody {
                @for r in &rows {
                    tr data-server=(r.path) {
                        td style=(format!("padding-left:{}em", 0.7 + 1.5 * f64::from(r.depth))) { (r.name) }
                        td { (if r.virtual_server { "virtual" } else if r.depth == 0 { "this server" } else { "secondary" }) }
                        td { (r.group) }
                        td { (format!("{:?}", r.status)) }
                        td { (r.devices) }
                        td { (r.version) }
                        td { (time(r.last_connected)) }
                        td {
                            // Only this server's own secondaries are registered here; a
                            // virtual server is deleted from Virtual servers.
                            @if r.depth == 1 && !r.virtual_server {
                                a.remove href=(format!("/servers/remove?name={}", encode(&r.name))) { "Remove" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a secondary Administration Server" }
        form.block.add method="post" action="/servers/add" {
            (csrf_field(session))
            p { label { "Name " input name="name" value=(draft.name) autocomplete="off"; } }
            p { label { "In group " (group_select("group", &groups, &draft.group)) } }
            p { label { "Its server certificate, PEM " br;
                textarea name="cert_pem" rows="8" cols="70" { (draft.cert_pem) } } }
            p { label { "Passive: the address to dial it at, host:port (empty: it connects here) "
                input name="passive" value=(draft.passive); } }
            p { button type="submit" { "Add" } }
        }
    };
    let status = problem.map_or(StatusCode::OK, |(status, _)| status);
    Ok((
        status,
        layout("Administration Servers", Some(session), body),
    )
        .into_response())
}

async fn add(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let text = |name: &str| field(&fields, name).unwrap_or_default();
    let draft = Draft {
        name: text("name").trim().to_string(),
        group: text("group"),
        // A browser sends a text area's lines ended by CRLF; PEM's are LF.
        cert_pem: text("cert_pem").replace("\r\n", "\n"),
        passive: text("passive").trim().to_string(),
    };
    let request = AdminRequest::AddSecondary {
        name: draft.name.clone(),
        group: draft.group.clone(),
        cert_pem: draft.cert_pem.clone(),
        passive: Some(draft.passive.clone()).filter(|p| !p.is_empty()),
    };
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/servers").into_response()),
        Err(refusal) => page(&session, Some(problem(refusal)?), &draft).await,
    }
}

/// Asks before removing: the secondary's certificate is revoked with it, for good.
async fn confirm_remove(session: Session, Query(q): Query<NameQuery>) -> Response {
    let question = html! {
        "Remove the secondary Administration Server " strong { (q.name) } "? Its registration is removed and its certificate revoked: it is not let in again with that certificate."
    };
    let title = "Remove secondary";
    confirm_page(
        &session,
        title,
        question,
        "/servers/remove",
        &q.name,
        "Remove",
        "/servers",
    )
}

async fn remove(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name").unwrap_or_default();
    match session
        .call(Vec::new(), AdminRequest::RemoveSecondary { name })
        .await
    {
        Ok(_) => Ok(Redirect::to("/servers").into_response()),
        Err(refusal) => page(&session, Some(problem(refusal)?), &Draft::default()).await,
    }
}

//! Administration groups: the tree indented, with what each group directly holds, and a
//! subgroup created; a group's page to rename, move or delete it and to see and change its
//! rights list (inherited from the root group down), one entry at a time.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::tasks::{encode, unexpected};
use super::{Refusal, Session, csrf_field, field, layout, problem};
use crate::server::web::Web;
use crate::wire::msg::{AdminRequest, AdminResponse, GroupRequest, GroupView, PAGE_MAX};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/groups", get(list))
        .route("/groups/create", post(create))
        .route("/groups/show", get(show))
        .route("/groups/rename", post(rename))
        .route("/groups/move", post(move_group))
        .route("/groups/delete", post(delete))
        .route("/groups/rights", post(rights))
}

/// Every group in tree order (page by page, as the CLI reads them).
pub(super) async fn all_groups(session: &Session) -> Result<Vec<GroupView>, Refusal> {
    let request = |after| {
        AdminRequest::Group(GroupRequest::List {
            after,
            limit: PAGE_MAX,
        })
    };
    session
        .all(request, |answer| match answer {
            AdminResponse::Groups { groups, next } => Some((groups, next)),
            _ => None,
        })
        .await
}

/// A select of every group, `chosen` selected.
pub(super) fn group_select(name: &str, groups: &[GroupView], chosen: &str) -> Markup {
    html! {
        select name=(name) {
            @for g in groups {
                option value=(g.path) selected[g.path == chosen] { (g.path) }
            }
        }
    }
}

fn show_link(path: &str) -> String {
    format!("/groups/show?path={}", encode(path))
}

/// The last name of a path.
fn last_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

async fn list(session: Session) -> Result<Response, Refusal> {
    list_page(&session, None, "Managed devices", "").await
}

async fn list_page(
    session: &Session,
    problem: Option<(StatusCode, String)>,
    parent: &str,
    name: &str,
) -> Result<Response, Refusal> {
    let groups = all_groups(session).await?;
    let body = html! {
        @if let Some((_, message)) = &problem {
            p.error role="alert" { (message) }
        }
        table.groups {
            thead { tr { th { "Group" } th { "Subgroups" } th { "Devices" } th { "Secondary Servers" } } }
            tbody {
                @for g in &groups {
                    tr data-group=(g.path) {
                        td style=(format!("padding-left:{}em", 0.7 + 1.5 * f64::from(g.depth))) {
                            a href=(show_link(&g.path)) { (last_name(&g.path)) }
                        }
                        td { (g.subgroups) } td { (g.devices) } td { (g.secondaries) }
                    }
                }
            }
        }
        h2 { "New group" }
        form.block.create method="post" action="/groups/create" {
            (csrf_field(session))
            p { label { "In " (group_select("parent", &groups, parent)) } }
            p { label { "Name " input name="name" value=(name) autocomplete="off"; } }
            p { button type="submit" { "Create" } }
        }
    };
    let status = problem.map_or(StatusCode::OK, |(status, _)| status);
    Ok((status, layout("Groups", Some(session), body)).into_response())
}

async fn create(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let parent = field(&fields, "parent").unwrap_or_default();
    let name = field(&fields, "name")
        .unwrap_or_default()
        .trim()
        .to_string();
    // A name, not a path: a slash would make the group somewhere else than chosen.
    if name.is_empty() || name.contains('/') {
        let problem = (
            StatusCode::BAD_REQUEST,
            "give the new group a name (without '/')".to_string(),
        );
        return list_page(&session, Some(problem), &parent, &name).await;
    }
    let request = AdminRequest::Group(GroupRequest::Create {
        path: format!("{parent}/{name}"),
    });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/groups").into_response()),
        Err(refusal) => list_page(&session, Some(problem(refusal)?), &parent, &name).await,
    }
}

#[derive(serde::Deserialize)]
pub(super) struct GroupQuery {
    path: String,
}

async fn show(session: Session, Query(q): Query<GroupQuery>) -> Result<Response, Refusal> {
    group_page(&session, &q.path, None).await
}

/// A group's page: rename, move, delete, and its rights.
async fn group_page(
    session: &Session,
    path: &str,
    problem: Option<(StatusCode, String)>,
) -> Result<Response, Refusal> {
    let request = AdminRequest::Group(GroupRequest::Rights {
        path: path.to_string(),
        change: None,
    });
    let view = match session.call(Vec::new(), request).await? {
        AdminResponse::Rights(view) => *view,
        _ => return Err(unexpected()),
    };
    let groups = all_groups(session).await?;
    let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
    let body = html! {
        @if let Some((_, message)) = &problem {
            p.error role="alert" { (message) }
        }
        p { a href="/groups" { "All groups" } }
        @if !parent.is_empty() {
            h2 { "Rename" }
            form.block.rename method="post" action="/groups/rename" {
                (csrf_field(session))
                input type="hidden" name="path" value=(path);
                p { label { "New name " input name="new_name" value=(last_name(path)) autocomplete="off"; } }
                p { button type="submit" { "Rename" } }
            }
            h2 { "Move" }
            form.block.move-to method="post" action="/groups/move" {
                (csrf_field(session))
                input type="hidden" name="path" value=(path);
                p { label { "Under " (group_select("new_parent", &groups, parent)) } }
                p { button type="submit" { "Move" } }
            }
            h2 { "Delete" }
            form.block.delete method="post" action="/groups/delete" {
                (csrf_field(session))
                input type="hidden" name="path" value=(path);
                p { "Only an empty group (no subgroups, devices or secondary Servers) can be deleted." }
                p { button type="submit" { "Delete group" } }
            }
        }
        h2 { "Rights" }
        (super::rights::section(session, &view, path, "/groups/rights", Some(("path", path))))
    };
    let status = problem.map_or(StatusCode::OK, |(status, _)| status);
    Ok((
        status,
        layout(&format!("Group {path}"), Some(session), body),
    )
        .into_response())
}

/// The path a group would have under `parent` with the name `name`.
fn joined(parent: &str, name: &str) -> String {
    format!("{parent}/{name}")
}

async fn rename(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let path = field(&fields, "path").unwrap_or_default();
    let new_name = field(&fields, "new_name")
        .unwrap_or_default()
        .trim()
        .to_string();
    let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
    let renamed = joined(parent, &new_name);
    let request = AdminRequest::Group(GroupRequest::Rename {
        path: path.clone(),
        new_name,
    });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to(&show_link(&renamed)).into_response()),
        Err(refusal) => group_page(&session, &path, Some(problem(refusal)?)).await,
    }
}

async fn move_group(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let path = field(&fields, "path").unwrap_or_default();
    let new_parent = field(&fields, "new_parent").unwrap_or_default();
    let moved = joined(&new_parent, last_name(&path));
    let request = AdminRequest::Group(GroupRequest::Move {
        path: path.clone(),
        new_parent,
    });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to(&show_link(&moved)).into_response()),
        Err(refusal) => group_page(&session, &path, Some(problem(refusal)?)).await,
    }
}

async fn delete(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let path = field(&fields, "path").unwrap_or_default();
    let request = AdminRequest::Group(GroupRequest::Delete { path: path.clone() });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/groups").into_response()),
        Err(refusal) => group_page(&session, &path, Some(problem(refusal)?)).await,
    }
}

async fn rights(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let path = field(&fields, "path").unwrap_or_default();
    let change = match super::rights::change_of(&fields) {
        Ok(change) => change,
        Err(e) => return group_page(&session, &path, Some((StatusCode::BAD_REQUEST, e))).await,
    };
    let request = AdminRequest::Group(GroupRequest::Rights {
        path: path.clone(),
        change: Some(change),
    });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to(&show_link(&path)).into_response()),
        Err(refusal) => group_page(&session, &path, Some(problem(refusal)?)).await,
    }
}

//! Accounts: the server's administrator accounts with their roles; one created (name,
//! password, role), one deleted, a password set. A password goes to the server once, in the
//! form that sets it, and no page shows it again.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use super::{NameQuery, Refusal, Session, confirm_page, csrf_field, field, layout, problem, time};
use crate::model::Role;
use crate::server::web::Web;
use crate::wire::msg::{AccountView, AdminRequest, AdminResponse, PAGE_MAX, Secret};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/accounts", get(list))
        .route("/accounts/create", post(create))
        .route("/accounts/password", post(set_password))
        .route("/accounts/delete", get(confirm_delete).post(delete))
}

const ROLES: [Role; 3] = [Role::Administrator, Role::Operator, Role::Auditor];

/// Every account (page by page, as the CLI reads them).
async fn all_accounts(session: &Session) -> Result<Vec<AccountView>, Refusal> {
    let request = |after| AdminRequest::AccountList {
        after,
        limit: PAGE_MAX,
    };
    session
        .all(request, |answer| match answer {
            AdminResponse::Accounts { accounts, next } => Some((accounts, next)),
            _ => None,
        })
        .await
}

/// What the New account form held when it was refused (never its password).
#[derive(Default)]
struct Draft {
    name: String,
    role: Option<Role>,
}

#[derive(serde::Deserialize)]
struct ListQuery {
    /// The account whose password was just set: the page says so.
    changed: Option<String>,
}

async fn list(session: Session, Query(q): Query<ListQuery>) -> Result<Response, Refusal> {
    let notice = q.changed.map(|name| {
        (
            StatusCode::OK,
            format!("The password of {name} is changed."),
        )
    });
    page(&session, notice, &Draft::default()).await
}

/// The list and its forms, with the problem of the form sent last if any (or, with the
/// status OK, what was done).
async fn page(
    session: &Session,
    problem: Option<(StatusCode, String)>,
    draft: &Draft,
) -> Result<Response, Refusal> {
    let accounts = all_accounts(session).await?;
    let role = draft.role.unwrap_or(Role::Operator);
    let body = html! {
        @match &problem {
            Some((StatusCode::OK, notice)) => p.notice role="status" { (notice) },
            Some((_, message)) => p.error role="alert" { (message) },
            None => {},
        }
        table.accounts {
            thead { tr { th { "Account" } th { "Role" } th { "Created" } th { "Set password" } th { "" } } }
            tbody {
                @for a in &accounts {
                    tr data-account=(a.name) {
                        td { (a.name) }
                        td.role { (a.role.as_str()) }
                        td { (time(Some(a.created))) }
                        td {
                            form.inline method="post" action="/accounts/password" {
                                (csrf_field(session))
                                input type="hidden" name="name" value=(a.name);
                                input type="password" name="password" autocomplete="new-password"
                                    aria-label=(format!("New password of {}", a.name));
                                " " button type="submit" { "Set password" }
                            }
                        }
                        td {
                            a.delete href=(format!("/accounts/delete?name={}", super::tasks::encode(&a.name))) { "Delete" }
                        }
                    }
                }
            }
        }
        h2 { "New account" }
        form.block.create method="post" action="/accounts/create" {
            (csrf_field(session))
            p { label { "Name " input name="name" value=(draft.name) autocomplete="off"; } }
            p { label { "Password " input name="password" type="password" autocomplete="new-password"; } }
            p {
                label { "Role "
                    select name="role" {
                        @for r in ROLES {
                            option value=(r.as_str()) selected[r == role] { (r.as_str()) }
                        }
                    }
                }
            }
            p { button type="submit" { "Create" } }
        }
    };
    let status = problem.map_or(StatusCode::OK, |(status, _)| status);
    Ok((status, layout("Accounts", Some(session), body)).into_response())
}

async fn create(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name")
        .unwrap_or_default()
        .trim()
        .to_string();
    let password = field(&fields, "password").unwrap_or_default();
    let role = Role::parse(&field(&fields, "role").unwrap_or_default());
    let draft = Draft {
        name: name.clone(),
        role: role.as_ref().ok().copied(),
    };
    let role = match role {
        Ok(role) => role,
        Err(e) => return page(&session, Some((StatusCode::BAD_REQUEST, e)), &draft).await,
    };
    let request = AdminRequest::AccountCreate {
        name,
        password: Secret(password),
        role,
    };
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/accounts").into_response()),
        Err(refusal) => page(&session, Some(problem(refusal)?), &draft).await,
    }
}

async fn set_password(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name").unwrap_or_default();
    let password = field(&fields, "password").unwrap_or_default();
    let request = AdminRequest::AccountSetPassword {
        name: name.clone(),
        password: Secret(password),
    };
    match session.call(Vec::new(), request).await {
        Ok(_) => {
            let to = format!("/accounts?changed={}", super::tasks::encode(&name));
            Ok(Redirect::to(&to).into_response())
        }
        Err(refusal) => page(&session, Some(problem(refusal)?), &Draft::default()).await,
    }
}

/// Asks before deleting: the account's sessions end with it.
async fn confirm_delete(session: Session, Query(q): Query<NameQuery>) -> Response {
    let question = html! {
        "Delete the account " strong { (q.name) } "? Its sessions end at once and it cannot log in again."
    };
    let title = "Delete account";
    confirm_page(
        &session,
        title,
        question,
        "/accounts/delete",
        &q.name,
        "Delete",
        "/accounts",
    )
}

async fn delete(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name").unwrap_or_default();
    match session
        .call(Vec::new(), AdminRequest::AccountDelete { name })
        .await
    {
        Ok(_) => Ok(Redirect::to("/accounts").into_response()),
        Err(refusal) => page(&session, Some(problem(refusal)?), &Draft::default()).await,
    }
}

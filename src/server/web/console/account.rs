//! The logged-in account's own page: who it is, its role, and a new password for itself
//! (which every role may set; a change ends the account's sessions, so the login follows).

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;

use super::{Refusal, Session, csrf_field, field, layout, problem, without_session_cookie};
use crate::server::web::Web;
use crate::wire::msg::{AdminRequest, Secret};

pub(super) fn router() -> Router<Web> {
    Router::new().route("/account", get(show).post(change_password))
}

async fn show(session: Session) -> Response {
    page(&session, None)
}

fn page(session: &Session, problem: Option<(StatusCode, String)>) -> Response {
    let status = problem.as_ref().map(|(s, _)| *s).unwrap_or(StatusCode::OK);
    let body = html! {
        table.account {
            tr { th { "Account" } td { (session.user) } }
            tr { th { "Role" } td { (session.role.as_str()) } }
            tr { th { "Server" } td { (session.server_name()) } }
        }
        h2 { "Change your password" }
        @if let Some((_, message)) = &problem {
            p.error role="alert" { (message) }
        }
        form.password method="post" action="/account" {
            (csrf_field(session))
            p { label { "New password " input type="password" name="password" autocomplete="new-password" required; } }
            p { label { "Confirm the new password " input type="password" name="confirm" autocomplete="new-password" required; } }
            p { button type="submit" { "Change password" } }
        }
        p { "Your sessions end when the password changes: log in again with the new one." }
    };
    (status, layout("Your account", Some(session), body)).into_response()
}

async fn change_password(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let password = field(&fields, "password").unwrap_or_default();
    if password.is_empty() || field(&fields, "confirm").as_deref() != Some(password.as_str()) {
        let problem = "the new password and its confirmation differ: enter both again";
        return Ok(page(
            &session,
            Some((StatusCode::BAD_REQUEST, problem.into())),
        ));
    }
    let request = AdminRequest::AccountSetPassword {
        name: session.user.clone(),
        password: Secret(password),
    };
    if let Err(refusal) = session.call(Vec::new(), request).await {
        return Ok(page(&session, Some(problem(refusal)?)));
    }
    // The server ended this session with the others: the cookie goes too.
    Ok(without_session_cookie(
        Redirect::to("/login?changed=1").into_response(),
    ))
}

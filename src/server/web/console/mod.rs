//! The web console: pages rendered on the server (maud), in the spec's words, served beside
//! the REST API. Every page and form makes the same `AdminCall`s as the CLI, answered by
//! `admin::answer`, with the session of the cookie `canopy_session` (Secure, HttpOnly,
//! SameSite=Strict); every form carries a CSRF token derived from that session, checked
//! before anything is done. No script and no asset from anywhere else.

mod account;
mod accounts;
mod channels;
mod credentials;
mod device_actions;
mod devices;
mod drafts;
mod edit;
mod groups;
mod properties;
mod revisions;
mod rights;
mod servers;
mod tasks;
mod tenants;
mod transfer;
mod wizard;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};

use super::Web;
use super::api::node_of_token;
use crate::server::Node;
use crate::wire::msg::{AdminCall, AdminRequest, AdminResponse, ErrorKind, Secret};
pub(super) use drafts::Drafts;

const COOKIE: &str = "canopy_session";
/// Form bodies are small: a task's name and settings, a list of device ids.
const MAX_FORM: usize = 256 * 1024;

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/tasks") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .merge(tasks::router())
        .merge(wizard::router())
        .merge(transfer::router())
        .merge(devices::router())
        .merge(device_actions::router())
        .merge(edit::router())
        .merge(revisions::router())
        .merge(credentials::router())
        .merge(servers::router())
        .merge(groups::router())
        .merge(tenants::router())
        .merge(accounts::router())
        .merge(account::router())
        .merge(channels::router())
}

/// A logged-in administrator's page request.
pub(super) struct Session {
    node: Arc<Node>,
    token: String,
    /// The CSRF token of this session, in every form.
    pub(super) csrf: String,
    /// The account logged in, and its role.
    pub(super) user: String,
    pub(super) role: crate::model::Role,
    remote: SocketAddr,
    /// The secrets held between wizard steps, found only with this session's token.
    drafts: Arc<Mutex<Drafts>>,
}

/// What a page answers when it cannot show itself.
pub(super) enum Refusal {
    /// Not logged in (or the session ended): to the login page.
    Login,
    /// An error to show, with the request's words.
    Error(StatusCode, String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Login => Redirect::to("/login").into_response(),
            Refusal::Error(status, message) => {
                let page = layout(
                    "Error",
                    None,
                    html! {
                        p.error role="alert" { (message) }
                        p { a href="/tasks" { "Back to the tasks" } }
                    },
                );
                (status, page).into_response()
            }
        }
    }
}

/// Every page but the login's takes the session of its cookie; without one it is the
/// login page's turn.
impl FromRequestParts<Web> for Session {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Session, Refusal> {
        let remote = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(remote)| *remote)
            .ok_or_else(|| {
                Refusal::Error(StatusCode::INTERNAL_SERVER_ERROR, "no peer address".into())
            })?;
        Session::of(web, &parts.headers, remote)
    }
}

impl Session {
    /// The session of the request's cookie.
    fn of(web: &Web, headers: &HeaderMap, remote: SocketAddr) -> Result<Session, Refusal> {
        let token = cookie(headers, COOKIE).ok_or(Refusal::Login)?;
        let (node, session) = node_of_token(web, &token).ok_or(Refusal::Login)?;
        // Who is logged in, for the header and the account's own page; the admin API
        // checks the session again on every call.
        let who = node
            .sessions
            .check(&session, crate::clock::now_ms())
            .ok_or(Refusal::Login)?;
        Ok(Session {
            node,
            csrf: csrf_of(&token),
            token: session,
            remote,
            drafts: web.drafts.clone(),
            user: who.user,
            role: who.role,
        })
    }

    /// Holds `secret` between wizard steps; the draft id the page carries instead of it.
    pub(super) fn hold(&self, secret: String) -> Result<String, Refusal> {
        self.drafts()
            .put(&self.token, secret, Instant::now())
            .ok_or_else(|| {
                Refusal::Error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no random draft id: the system's random generator failed".into(),
                )
            })
    }

    /// The secret this session holds as draft `id`, if it has not expired.
    pub(super) fn held(&self, id: &str) -> Option<String> {
        self.drafts().get(&self.token, id, Instant::now())
    }

    /// The secret of draft `id`, held no longer.
    pub(super) fn take_held(&self, id: &str) -> Option<String> {
        self.drafts().take(&self.token, id, Instant::now())
    }

    fn drafts(&self) -> std::sync::MutexGuard<'_, Drafts> {
        // A panic while the lock was held leaves the map whole: go on with it.
        self.drafts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every item of a paged list, page by page as the CLI reads them: `request` asks for
    /// the page after a cursor, `page` takes the items and the next cursor out of the answer.
    pub(super) async fn all<T, C>(
        &self,
        request: impl Fn(Option<C>) -> AdminRequest,
        page: impl Fn(AdminResponse) -> Option<(Vec<T>, Option<C>)>,
    ) -> Result<Vec<T>, Refusal> {
        let mut items = Vec::new();
        let mut after = None;
        loop {
            let answer = self.call(Vec::new(), request(after)).await?;
            let (got, next) = page(answer).ok_or_else(tasks::unexpected)?;
            items.extend(got);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Serves `request` as the CLI's would be (at the server `at` below, if any).
    pub(super) async fn call(
        &self,
        at: Vec<String>,
        request: AdminRequest,
    ) -> Result<AdminResponse, Refusal> {
        let call = AdminCall {
            token: Some(Secret(self.token.clone())),
            request,
            at,
        };
        match crate::server::admin::answer(&self.node, call, self.remote).await {
            AdminResponse::Error {
                kind: ErrorKind::Unauthenticated,
                ..
            } => Err(Refusal::Login),
            AdminResponse::Error { kind, message } => Err(Refusal::Error(status_of(kind), message)),
            response => Ok(response),
        }
    }

    /// The form's fields, once its CSRF token is this session's.
    pub(super) fn form(&self, body: &Bytes) -> Result<Vec<(String, String)>, Refusal> {
        let fields = form_fields(body)?;
        let sent = field(&fields, "csrf").unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            return Err(Refusal::Error(
                StatusCode::FORBIDDEN,
                "the form is not from this session (CSRF token missing or wrong): reload the page"
                    .into(),
            ));
        }
        Ok(fields)
    }

    /// The server this session administers.
    pub(super) fn server_name(&self) -> &str {
        self.node.name()
    }
}

fn status_of(kind: ErrorKind) -> StatusCode {
    super::api::status_and_code(kind).0
}

/// The CSRF token of a session: a digest of its token, which a page of another site can
/// neither read (HttpOnly, SameSite) nor compute.
fn csrf_of(token: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("canopy-console-csrf\0{token}").as_bytes(),
    );
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// The fields of a form body, in order (a name may repeat: the devices checked).
pub(super) fn form_fields(body: &Bytes) -> Result<Vec<(String, String)>, Refusal> {
    if body.len() > MAX_FORM {
        return Err(Refusal::Error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the form is too large".into(),
        ));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| Refusal::Error(StatusCode::BAD_REQUEST, format!("a malformed form: {e}")))
}

pub(super) fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// A form's problem to show above the form again: the status and the API's words. Not
/// being logged in stays a refusal (to the login page).
pub(super) fn problem(refusal: Refusal) -> Result<(StatusCode, String), Refusal> {
    match refusal {
        Refusal::Error(status, message) => Ok((status, message)),
        Refusal::Login => Err(Refusal::Login),
    }
}

/// The query of a confirmation page: what it asks about.
#[derive(serde::Deserialize)]
pub(super) struct NameQuery {
    pub(super) name: String,
}

/// A page that asks before something that cannot be undone: `question`, and a button
/// `label` that posts `name` to `action` with the session's CSRF token; Cancel goes `back`.
pub(super) fn confirm_page(
    session: &Session,
    title: &str,
    question: Markup,
    action: &str,
    name: &str,
    label: &str,
    back: &str,
) -> Response {
    let body = html! {
        p.confirm { (question) }
        form.inline method="post" action=(action) {
            (csrf_field(session))
            input type="hidden" name="name" value=(name);
            button type="submit" name="go" value=(label.to_lowercase()) { (label) }
        }
        " " a href=(back) { "Cancel" }
    };
    layout(title, Some(session), body).into_response()
}

/// The hidden field every form carries.
pub(super) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#16324f;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none}header .account{margin-left:auto}
header form{display:inline}header button{background:none;border:1px solid #fff;color:#fff}
main{padding:1em 1.5em}table{border-collapse:collapse;background:#fff;margin:.5em 0 1.5em}
th,td{border:1px solid #d5d9e0;padding:.35em .7em;text-align:left;vertical-align:top}
th{background:#eef1f5}h2{margin-top:1.2em}.error{color:#a30d0d;font-weight:600}
.tabs a{margin-right:1em}.tabs a.on{font-weight:700;text-decoration:none}
button{cursor:pointer}form.inline{display:inline}
.notice{color:#11683a;font-weight:600}.hint{color:#5a6473;font-size:.9em}form.block p{margin:.4em 0}
.state-completed{color:#11683a}.state-running{color:#8a5a00}.state-stopped{color:#a30d0d}
";

/// Every page: the main menu, the administrator and the server, then `body`.
pub(super) fn layout(title: &str, session: Option<&Session>, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " - Canopy" }
                style { (STYLE) }
            }
            body {
                header {
                    strong { "Canopy" }
                    @if let Some(session) = session {
                        nav {
                            a href="/tasks" { "Tasks" } " "
                            a href="/devices" { "Managed devices" } " "
                            a href="/servers" { "Administration Servers" } " "
                            a href="/groups" { "Groups" } " "
                            a href="/vservers" { "Virtual servers" } " "
                            a href="/accounts" { "Accounts" } " "
                            a href="/notifications" { "Notifications" } " "
                            a href="/events" { "Events" }
                        }
                        a.account href="/account" title="Your account" { (session.user) " (" (session.role.as_str()) ")" }
                        span.who { "Server " (session.server_name()) }
                        form method="post" action="/logout" {
                            (csrf_field(session))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(page.into_string())
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    /// Set after the account's own password was changed, which ends its sessions.
    changed: Option<String>,
}

async fn login_page(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Html<String> {
    if q.changed.is_some() {
        return login_page_saying(
            None,
            Some("Your password is changed: log in with the new one."),
        );
    }
    login_form(None)
}

fn login_form(error: Option<&str>) -> Html<String> {
    login_page_saying(error, None)
}

fn login_page_saying(error: Option<&str>, notice: Option<&str>) -> Html<String> {
    layout(
        "Log in",
        None,
        html! {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            @if let Some(notice) = notice {
                p.notice role="status" { (notice) }
            }
            form method="post" action="/login" {
                p { label { "Account " input name="user" autocomplete="username" required; } }
                p { label { "Password " input name="password" type="password" autocomplete="current-password" required; } }
                p { label { "Virtual server (optional) " input name="virtual_server"; } }
                p { button type="submit" { "Log in" } }
            }
        },
    )
}

async fn login(
    State(web): State<Web>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let fields = match form_fields(&body) {
        Ok(fields) => fields,
        Err(refusal) => return refusal.into_response(),
    };
    let user = field(&fields, "user").unwrap_or_default();
    let password = field(&fields, "password").unwrap_or_default();
    let vserver = field(&fields, "virtual_server").filter(|v| !v.trim().is_empty());
    let node = match &vserver {
        None => Some(web.host.clone()),
        Some(name) => web.host.virtual_server(name.trim()),
    };
    let Some(node) = node else {
        return (
            StatusCode::UNAUTHORIZED,
            login_form(Some("no such virtual server")),
        )
            .into_response();
    };
    let call = AdminCall {
        token: None,
        request: AdminRequest::Login {
            user,
            password: Secret(password),
        },
        at: Vec::new(),
    };
    match crate::server::admin::answer(&node, call, remote).await {
        AdminResponse::LoggedIn { token, .. } => {
            let token = match &vserver {
                None => token.0,
                Some(name) => format!("{}:{}", name.trim(), token.0),
            };
            let mut response = Redirect::to("/tasks").into_response();
            let cookie = format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        AdminResponse::Error { kind, message } => {
            (status_of(kind), login_form(Some(&message))).into_response()
        }
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            login_form(Some("unexpected answer")),
        )
            .into_response(),
    }
}

async fn logout(session: Session, body: Bytes) -> Response {
    let result = async {
        session.form(&body)?;
        session.call(Vec::new(), AdminRequest::Logout).await?;
        Ok::<_, Refusal>(())
    }
    .await;
    if let Err(Refusal::Error(status, message)) = result {
        return Refusal::Error(status, message).into_response();
    }
    without_session_cookie(Redirect::to("/login").into_response())
}

/// `response`, telling the browser to forget the session's cookie.
pub(super) fn without_session_cookie(mut response: Response) -> Response {
    let expired = format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A time for people, UTC.
pub(super) fn time(ms: Option<i64>) -> String {
    ms.map(crate::model::format_time)
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_the_sessions_and_compared_whole() {
        assert_eq!(csrf_of("a"), csrf_of("a"));
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; canopy_session=t:42"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("t:42"));
    }
}

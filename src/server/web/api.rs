//! The REST API's one handler: an operation of `ops` turns the HTTP request into an
//! `AdminRequest`, `admin::answer` serves it as it serves the CLI, and the answer goes back as
//! JSON. Errors are JSON too, `{"error": {"code", "message"}}`, with a stable code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on};
use serde::de::DeserializeOwned;

use super::ops::{Auth, OPERATIONS, Operation};
use super::{Web, openapi};
use crate::server::Node;
use crate::wire::msg::{AdminCall, AdminRequest, AdminResponse, ErrorKind, Secret};

/// The largest request body: as for a request over QUIC (a certificate in PEM, an export
/// file, a list of devices).
pub(super) const MAX_BODY: usize = 256 * 1024;

pub(super) fn router() -> Router<Web> {
    let mut router = Router::new().route("/openapi.json", get(openapi::serve));
    for op in OPERATIONS {
        // Every method of the table converts (the ops unit test checks it); the fallback
        // is never taken.
        let filter = MethodFilter::try_from(op.method.clone()).unwrap_or(MethodFilter::GET);
        router = router.route(
            op.path,
            on(
                filter,
                move |State(web): State<Web>,
                      ConnectInfo(remote): ConnectInfo<SocketAddr>,
                      request: Request| handle(web, op, remote, request),
            ),
        );
    }
    // A known path with another method: the API's JSON error, not a bare 405.
    router.method_not_allowed_fallback(method_not_allowed)
}

/// `uri` is the path inside `/api/v1`, where the router is nested.
async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!(
            "{method} /api/v1{} is not an operation: see /api/v1/openapi.json for the methods of this path",
            uri.path()
        ),
    }
    .into_response()
}

/// An error of the API: the HTTP status, a stable code and words for people.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl ApiError {
    pub(super) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    fn from_kind(kind: ErrorKind, message: String) -> ApiError {
        let (status, code) = status_and_code(kind);
        ApiError {
            status,
            code,
            message,
        }
    }
}

/// The HTTP status and the stable error code of an admin API error, the same for the REST
/// API and the console.
pub(super) fn status_and_code(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::LimitReached => (StatusCode::CONFLICT, "limit_reached"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// What an operation builds its request from: the path's parameters, the query without
/// `at`, and the body. Whatever it does not read must be absent.
pub(super) struct Input {
    path: HashMap<String, String>,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Input {
    /// A parameter of the path (the router matched it, so it is there).
    pub(super) fn path(&self, name: &str) -> Result<String, ApiError> {
        self.path.get(name).cloned().ok_or_else(|| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: format!("the path has no parameter {name}"),
        })
    }

    /// The query as `Q` (whose unknown fields are refused).
    pub(super) fn query<Q: DeserializeOwned>(&self) -> Result<Q, ApiError> {
        let text = serde_urlencoded::to_string(&self.query).unwrap_or_default();
        serde_urlencoded::from_str(&text)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("the query: {e}")))
    }

    /// The body as JSON of `B` (whose unknown fields are refused).
    pub(super) fn body<B: DeserializeOwned>(&self) -> Result<B, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_body",
                "this operation takes a JSON body",
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request("invalid_body", format!("the JSON body: {e}")))
    }

    /// The body as `B` if there is one.
    pub(super) fn optional_body<B: DeserializeOwned + Default>(&self) -> Result<B, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            Ok(B::default())
        } else {
            self.body()
        }
    }
}

async fn handle(
    web: Web,
    op: &'static Operation,
    remote: SocketAddr,
    request: Request,
) -> Response {
    match answer(web, op, remote, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    web: Web,
    op: &'static Operation,
    remote: SocketAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let Path(path) = Path::<HashMap<String, String>>::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
    let body = axum::body::to_bytes(axum::body::Body::new(body), MAX_BODY)
        .await
        .map_err(|_| ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the body is larger than {MAX_BODY} bytes"),
        })?;
    if !body.is_empty() && !is_json(&parts.headers) {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "send the body as application/json".into(),
        });
    }
    let mut query: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map_err(|e| ApiError::bad_request("invalid_query", format!("the query: {e}")))?;
    let at = take_at(&mut query)?;
    if op.query.is_none() && !query.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("{} takes no query parameters but `at`", op.id),
        ));
    }
    if op.body.is_none() && !body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("{} takes no body", op.id),
        ));
    }
    let input = Input { path, query, body };
    if op.auth == Auth::Login {
        return login(&web, &input, remote).await;
    }
    let (node, token) = session(&web, &parts.headers)?;
    let request = (op.build)(&input)?;
    let response = crate::server::admin::answer(
        &node,
        AdminCall {
            token: Some(Secret(token)),
            request,
            at,
        },
        remote,
    )
    .await;
    reply(op, response)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// `at=branch-1/branch-1a`: the server below this one that serves the request, as the CLI's
/// `--at` names it.
fn take_at(query: &mut Vec<(String, String)>) -> Result<Vec<String>, ApiError> {
    let mut at = Vec::new();
    let mut i = 0;
    while i < query.len() {
        if query[i].0 == "at" {
            let (_, path) = query.remove(i);
            if !at.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "`at` is given twice",
                ));
            }
            at = path
                .split('/')
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect();
        } else {
            i += 1;
        }
    }
    Ok(at)
}

/// The node a bearer token is for, and the session token itself: `TOKEN` for the server,
/// `NAME:TOKEN` for its virtual server NAME (the login answers which).
fn session(web: &Web, headers: &HeaderMap) -> Result<(Arc<Node>, String), ApiError> {
    let unauthenticated = |message: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthenticated",
        message: message.into(),
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthenticated("log in first (POST /api/v1/login) and send the token as `Authorization: Bearer TOKEN`"))?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer TOKEN`"))?
        .trim();
    node_of_token(web, token)
        .ok_or_else(|| unauthenticated("not logged in, or the session has expired: log in again"))
}

/// The node and the session token of an API token.
pub(super) fn node_of_token(web: &Web, token: &str) -> Option<(Arc<Node>, String)> {
    match token.split_once(':') {
        None => Some((web.host.clone(), token.to_string())),
        Some((name, token)) => web
            .host
            .virtual_server(name)
            .map(|node| (node, token.to_string())),
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    pub(super) user: String,
    pub(super) password: String,
    /// Log in to this virtual server of the server, with its own accounts.
    pub(super) virtual_server: Option<String>,
}

async fn login(web: &Web, input: &Input, remote: SocketAddr) -> Result<Response, ApiError> {
    let body: LoginBody = input.body()?;
    let node = match &body.virtual_server {
        None => web.host.clone(),
        Some(name) => web.host.virtual_server(name).ok_or_else(|| ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: format!("no enabled virtual server {name:?}"),
        })?,
    };
    let response = crate::server::admin::answer(
        &node,
        AdminCall {
            token: None,
            request: AdminRequest::Login {
                user: body.user,
                password: Secret(body.password),
            },
            at: Vec::new(),
        },
        remote,
    )
    .await;
    match response {
        AdminResponse::LoggedIn {
            token,
            role,
            expires,
        } => {
            let token = match &body.virtual_server {
                None => token.0,
                Some(name) => format!("{name}:{}", token.0),
            };
            Ok(axum::Json(serde_json::json!({
                "token": token, "role": role, "expires": expires
            }))
            .into_response())
        }
        AdminResponse::Error { kind, message } => Err(ApiError::from_kind(kind, message)),
        _ => Err(unexpected("login")),
    }
}

fn unexpected(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: format!("the server answered {what} with something else"),
    }
}

/// The answer as JSON: the payload of the response the operation documents.
fn reply(op: &Operation, response: AdminResponse) -> Result<Response, ApiError> {
    if let AdminResponse::Error { kind, message } = response {
        return Err(ApiError::from_kind(kind, message));
    }
    let (variant, payload) = payload(&response).ok_or_else(|| unexpected(op.id))?;
    if variant != op.response {
        tracing::error!(
            "REST {}: the answer is {variant}, the operation documents {}",
            op.id,
            op.response
        );
        return Err(unexpected(op.id));
    }
    Ok((op.status, axum::Json(payload)).into_response())
}

/// The variant's name and its content, as JSON.
pub(super) fn payload(response: &AdminResponse) -> Option<(String, serde_json::Value)> {
    match serde_json::to_value(response).ok()? {
        serde_json::Value::Object(map) if map.len() == 1 => map.into_iter().next(),
        _ => None,
    }
}

/// Any path of the API that names no operation, and every other path for now.
pub(super) async fn no_such_operation(method: Method, uri: axum::http::Uri) -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "no_such_operation",
        message: format!("no operation {method} {}", uri.path()),
    }
    .into_response()
}

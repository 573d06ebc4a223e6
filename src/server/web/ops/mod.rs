//! Every operation of the REST API, in one table: its method and path, what it is called in
//! the OpenAPI document, the JSON Schemas of its query, body and answer, and how it builds
//! the `AdminRequest` the QUIC admin API would carry. The router and the OpenAPI document
//! are both made from this table, so they cannot disagree.

mod tasks;
mod tree;

use axum::http::{Method, StatusCode};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::api::{ApiError, Input};
use crate::wire::msg::AdminRequest;

pub(super) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Auth {
    /// Needs a session's bearer token.
    Session,
    /// The login itself.
    Login,
}

pub(super) struct Operation {
    pub(super) method: Method,
    /// axum's syntax: `/tasks/{task}`.
    pub(super) path: &'static str,
    /// The OpenAPI operationId.
    pub(super) id: &'static str,
    pub(super) tag: &'static str,
    pub(super) summary: &'static str,
    pub(super) auth: Auth,
    /// The query's schema (an object), if it takes one; `at` is every operation's.
    pub(super) query: Option<SchemaFn>,
    pub(super) body: Option<SchemaFn>,
    /// The `AdminResponse` variant it answers with; its content is the JSON answer.
    pub(super) response: &'static str,
    pub(super) status: StatusCode,
    pub(super) build: fn(&Input) -> Result<AdminRequest, ApiError>,
}

const BASE: Operation = Operation {
    method: Method::GET,
    path: "",
    id: "",
    tag: "",
    summary: "",
    auth: Auth::Session,
    query: None,
    body: None,
    response: "Done",
    status: StatusCode::OK,
    build: |_| Err(ApiError::bad_request("internal", "no request")),
};

/// A page of a list: after the cursor the last page's `next` gave, at most `limit` items
/// (at most 1000 and what fits in 1 MiB).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    pub(super) after: Option<String>,
    pub(super) limit: Option<u32>,
}

impl Page {
    pub(super) fn limit(&self) -> u32 {
        self.limit.unwrap_or(crate::wire::msg::PAGE_MAX)
    }
}

/// A page of a list whose cursor is a number.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NumberPage {
    pub(super) after: Option<u64>,
    pub(super) limit: Option<u32>,
}

impl NumberPage {
    pub(super) fn limit(&self) -> u32 {
        self.limit.unwrap_or(crate::wire::msg::PAGE_MAX)
    }
}

/// Why, for the revision history.
#[derive(Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Comment {
    pub(super) comment: Option<String>,
}

pub(super) static OPERATIONS: &[Operation] = &[
    Operation {
        method: Method::POST,
        path: "/login",
        id: "login",
        tag: "session",
        summary: "Log in with an account of the server (or of one of its virtual servers) for a bearer token",
        auth: Auth::Login,
        body: Some(schema::<super::api::LoginBody>),
        response: "LoggedIn",
        ..BASE
    },
    Operation {
        method: Method::POST,
        path: "/logout",
        id: "logout",
        tag: "session",
        summary: "End the session of the bearer token",
        build: |_| Ok(AdminRequest::Logout),
        ..BASE
    },
    tree::STATUS,
    tree::SERVERS,
    tree::ADD_SECONDARY,
    tree::REMOVE_SECONDARY,
    tree::REVOKE,
    tree::EVENTS,
    tree::ACCOUNTS,
    tree::ACCOUNT_CREATE,
    tree::ACCOUNT_DELETE,
    tree::ACCOUNT_PASSWORD,
    tree::VSERVERS,
    tree::VSERVER_CREATE,
    tree::VSERVER_ENABLE,
    tree::VSERVER_DISABLE,
    tree::VSERVER_DELETE,
    tree::NOTIFY_LIST,
    tree::NOTIFY_ADD,
    tree::NOTIFY_REMOVE,
    tree::NOTIFY_TEST,
    tree::GROUPS,
    tree::GROUP_CREATE,
    tree::GROUP_RENAME,
    tree::GROUP_MOVE,
    tree::GROUP_DELETE,
    tree::GROUP_RIGHTS,
    tree::GROUP_RIGHTS_SET,
    tree::DEVICES,
    tree::DEVICE_SHOW,
    tree::DEVICE_MOVE,
    tree::DEVICE_TAG,
    tree::DEVICE_APPROVE,
    tree::DEVICE_REJECT,
    tree::DEVICE_DELETE,
    tasks::LIST,
    tasks::CREATE,
    tasks::SHOW,
    tasks::EDIT,
    tasks::DELETE,
    tasks::START,
    tasks::STOP,
    tasks::PAUSE,
    tasks::RESUME,
    tasks::RESULTS,
    tasks::STATS,
    tasks::EXPORT,
    tasks::IMPORT,
    tasks::COPY,
    tasks::HISTORY,
    tasks::DIFF,
    tasks::ROLLBACK,
    tasks::DELETED,
    tasks::RESTORE,
    tasks::CREDENTIALS,
    tasks::RIGHTS,
    tasks::RIGHTS_SET,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_its_own_id_and_method_and_path() {
        let mut ids = std::collections::HashSet::new();
        let mut routes = std::collections::HashSet::new();
        for op in OPERATIONS {
            assert!(!op.id.is_empty() && !op.path.is_empty() && !op.summary.is_empty());
            assert!(ids.insert(op.id), "{} twice", op.id);
            assert!(
                routes.insert((op.method.clone(), op.path)),
                "{} {}",
                op.method,
                op.path
            );
            // The router serves each operation on its method: one axum cannot route would
            // otherwise be served as GET.
            assert!(
                axum::routing::MethodFilter::try_from(op.method.clone()).is_ok(),
                "{} {}",
                op.method,
                op.path
            );
        }
    }
}

//! Tasks on this server: creation, scopes, runs, per-device records and statistics.

use super::Node;
use super::admin::error;
use super::auth::Session;
use crate::wire::msg::{AdminResponse, ErrorKind, TaskRequest};

pub(super) async fn handle(
    _node: &Node,
    _session: &Session,
    _request: TaskRequest,
) -> AdminResponse {
    error(ErrorKind::Internal, "tasks are being built")
}

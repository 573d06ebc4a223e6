//! Admin requests about administration groups. (Being written.)

use super::Node;
use super::auth::Session;
use crate::wire::msg::{AdminResponse, ErrorKind, GroupRequest};

pub(super) async fn handle(
    _node: &Node,
    _session: &Session,
    _request: GroupRequest,
) -> AdminResponse {
    AdminResponse::Error {
        kind: ErrorKind::Internal,
        message: "groups are not built yet".into(),
    }
}

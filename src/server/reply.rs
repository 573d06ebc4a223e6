//! The answers the admin handlers share: an error answer in words, an internal failure
//! (logged where it is handled), and `Reply`, a handler step that may end in an answer.

use crate::wire::msg::{AdminResponse, ErrorKind};

/// A handler step: its value, or the answer to send instead (built once per request, so its
/// size does not matter).
pub(super) type Reply<T> = Result<T, AdminResponse>;

/// An error answer; shared by every admin handler.
pub(super) fn error(kind: ErrorKind, message: impl Into<String>) -> AdminResponse {
    AdminResponse::Error {
        kind,
        message: message.into(),
    }
}

/// An internal failure: logged here, where it is handled, and answered in words.
pub(super) fn internal(e: impl std::fmt::Display) -> AdminResponse {
    tracing::error!("admin request failed: {e}");
    error(ErrorKind::Internal, format!("internal error: {e}"))
}

/// Input the request should not have carried.
pub(super) fn invalid(message: impl Into<String>) -> AdminResponse {
    error(ErrorKind::InvalidInput, message)
}

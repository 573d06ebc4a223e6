//! The answers the admin handlers share: an error answer in words, an internal failure
//! (logged where it is handled), and `Reply`, a handler step that may end in an answer.

use serde::Serialize;

use crate::wire::codec;
use crate::wire::frame::MAX_FRAME;
use crate::wire::msg::{AdminResponse, ErrorKind, PAGE_BYTES};

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

/// What one page of a list answer may still take: at most `limit` items, and no more than
/// [`PAGE_BYTES`] of them encoded, but always the first (the caps on what devices send keep
/// any one item far below a frame).
pub(super) struct PageBudget {
    limit: usize,
    taken: usize,
    bytes: usize,
}

impl PageBudget {
    pub(super) fn new(limit: usize) -> PageBudget {
        PageBudget {
            limit,
            taken: 0,
            bytes: 0,
        }
    }

    /// Whether `item` still goes on the page; counted if it does.
    pub(super) fn take<T: Serialize>(&mut self, item: &T) -> bool {
        let size = codec::encode(item).map_or(usize::MAX, |b| b.len());
        let fits = self.taken == 0 || self.bytes.saturating_add(size) <= PAGE_BYTES;
        if self.taken >= self.limit || !fits {
            return false;
        }
        self.taken += 1;
        self.bytes = self.bytes.saturating_add(size);
        true
    }
}

/// Takes `items` in order for one page (see [`PageBudget`]); also says whether any item was
/// left over.
pub(super) fn fill_page<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
) -> (Vec<T>, bool) {
    let mut budget = PageBudget::new(limit);
    let mut page = Vec::new();
    for item in items {
        if !budget.take(&item) {
            return (page, true);
        }
        page.push(item);
    }
    (page, false)
}

/// Room an answer leaves in its frame for what wraps it (a relayed answer's envelope).
const ENVELOPE: usize = 64 * 1024;

/// The answer itself if it fits in a frame with room for its envelope; otherwise an error
/// that says so. An answer that does not fit would otherwise end the administrator's
/// stream, or, relayed from below, the federation link that carries it.
pub(super) fn fit(response: AdminResponse) -> AdminResponse {
    match codec::encode(&response) {
        Ok(bytes) if bytes.len() <= MAX_FRAME - ENVELOPE => response,
        Ok(bytes) => {
            tracing::warn!(bytes = bytes.len(), "an admin answer is too large to send");
            error(
                ErrorKind::Internal,
                format!(
                    "the answer is too large to send ({} bytes, at most {}); ask for less",
                    bytes.len(),
                    MAX_FRAME - ENVELOPE
                ),
            )
        }
        Err(e) => internal(e),
    }
}

//! The answers the admin handlers share: an error answer in words, an internal failure
//! (logged where it is handled), and `Reply`, a handler step that may end in an answer.

use std::cmp::Ordering;

use serde::Serialize;

use crate::wire::codec;
use crate::wire::frame::MAX_FRAME;
use crate::wire::msg::{AdminResponse, ErrorKind, PAGE_BYTES, PAGE_MAX};

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

/// The most items a page of `limit` holds: at least one, at most [`PAGE_MAX`].
pub(super) fn page_limit(limit: u32) -> usize {
    limit.clamp(1, PAGE_MAX) as usize
}

/// The order of lists whose cursor is a name or a path (servers, accounts, groups, virtual
/// servers): paths compared name by name, so a group or server comes right before what lies
/// below it, as in the tree, even when a sibling's name has a character that sorts before
/// '/'. For a name without '/' it is the order of strings.
pub(super) fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// `items` in [`path_order`] of `key`, from the first that comes after the cursor `after`
/// (not necessarily an item still listed, so a deleted item does not lose the place).
pub(super) fn after_path<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
) -> impl Iterator<Item = T> {
    items.sort_by(|a, b| path_order(key(a), key(b)));
    let start = after.map_or(0, |after| {
        items.partition_point(|item| path_order(key(item), after) != Ordering::Greater)
    });
    items.into_iter().skip(start)
}

/// One page of a list named by paths or names: see [`after_path`], [`page_limit`] and
/// [`fill_page`]; with the cursor of the next page, the key of its last item, if any item
/// was left over.
pub(super) fn page_by_path<T: Serialize>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: u32,
) -> (Vec<T>, Option<String>) {
    let (page, more) = fill_page(after_path(items, &key, after), page_limit(limit));
    let next = more.then(|| page.last().map(|item| key(item).to_string()));
    (page, next.flatten())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sort_as_the_tree_and_pages_follow_their_cursor() {
        let paths = ["a/b", "a-b", "a", "a b", "a/b/c", "b", "a/c"];
        let items: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let (page, next) = page_by_path(items.clone(), |p| p, None, 3);
        assert_eq!(page, ["a", "a/b", "a/b/c"]);
        assert_eq!(next.as_deref(), Some("a/b/c"));
        let (page, next) = page_by_path(items.clone(), |p| p, next.as_deref(), 3);
        assert_eq!(page, ["a/c", "a b", "a-b"]);
        let (page, next) = page_by_path(items.clone(), |p| p, next.as_deref(), 3);
        assert_eq!((page, next), (vec!["b".to_string()], None));
        // A cursor naming no item starts after where it would be.
        let (page, _) = page_by_path(items, |p| p, Some("a/bb"), 1);
        assert_eq!(page, ["a/c"]);
    }

    #[test]
    fn a_page_holds_at_most_page_max_items_and_at_least_one() {
        let items: Vec<String> = (0..=PAGE_MAX).map(|i| format!("{i:06}")).collect();
        let (page, next) = page_by_path(items.clone(), |p| p, None, u32::MAX);
        assert_eq!(page.len(), PAGE_MAX as usize);
        assert_eq!(next, Some(format!("{:06}", PAGE_MAX - 1)));
        let (page, next) = page_by_path(items, |p| p, None, 0);
        assert_eq!((page.len(), next.as_deref()), (1, Some("000000")));
    }

    #[test]
    fn a_page_ends_before_page_bytes() {
        // 100 items of 100 KiB: about ten fit in PAGE_BYTES, whatever the limit.
        let items: Vec<String> = (0..100)
            .map(|i| format!("{i:03}{}", "x".repeat(100 * 1024)))
            .collect();
        let (page, next) = page_by_path(items, |p| p, None, PAGE_MAX);
        assert!((9..=10).contains(&page.len()), "{}", page.len());
        assert!(next.is_some());
    }
}

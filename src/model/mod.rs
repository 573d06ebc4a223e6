//! Domain types: servers of the tree, accounts, events. No I/O, no clocks, no async.

pub mod device;
pub mod event;
pub mod export;
pub mod fingerprint;
pub mod group;
pub mod limits;
pub mod link;
pub mod notify;
pub mod revision;
pub mod rights;
pub mod run_ref;
pub mod schedule;
pub mod scope;
pub mod server;
pub mod task;

pub use event::{Event, EventFilter, EventKind, EventRetention, Severity};
pub use fingerprint::Fingerprint;
pub use run_ref::RunRef;
pub use server::{Account, Revocation, Role, SecondaryRecord, ServerRow, ServerStatus};

/// Milliseconds since the Unix epoch, UTC. Time is always passed in, never read here.
pub type UnixMillis = i64;

/// Formats a timestamp for people: RFC 3339 in UTC, to the second.
pub fn format_time(ms: UnixMillis) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Checks a display name (server, group, account): 1 to 100 characters, no control
/// characters, and no '/', which separates the parts of a path.
pub fn check_display_name(what: &str, name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "{what} is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"
        ));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "{what} {name:?} must not contain '/' or control characters"
        ));
    }
    Ok(())
}

/// Checks a node name (a server's name, in its certificate and its config): 1 to 64 of
/// `A-Z a-z 0-9 . _ -`, so it is valid in a certificate, a file name and a path.
pub fn check_node_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a node name: use 1 to 64 of A-Z a-z 0-9 . _ -"
        ))
    }
}

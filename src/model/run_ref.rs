//! Which run a device's message is about. A device knows two kinds: a run its server ordered
//! (by the server's run id), and an occurrence of a scheduled task that it started by itself,
//! on its own clock, perhaps while its server could not be reached. The occurrence's key is
//! the civil date and time the schedule names, the same on every device and server whatever
//! their time zones, so each server finds (or makes) the one run of that occurrence.

use serde::{Deserialize, Serialize};

use super::schedule::LocalDateTime;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub enum RunRef {
    /// A run the server ordered, by its id on that server.
    Ordered(u64),
    /// An occurrence of task `task_id` (its id on the device's server).
    Occurrence { task_id: u64, key: LocalDateTime },
}

impl RunRef {
    /// The server's run id of an ordered run.
    pub fn ordered(self) -> Option<u64> {
        match self {
            RunRef::Ordered(id) => Some(id),
            RunRef::Occurrence { .. } => None,
        }
    }
}

impl std::fmt::Display for RunRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunRef::Ordered(id) => write!(f, "run {id}"),
            RunRef::Occurrence { task_id, key } => write!(f, "task #{task_id} at {key}"),
        }
    }
}

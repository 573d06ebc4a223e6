//! The federation protocol, sans-IO: inputs through `handle_*`, decisions through `poll_*`,
//! time always passed in. Nothing here touches a socket, a file or the clock, so a tree of
//! many nodes can be driven in one thread with a virtual clock.
//!
//! The leaf state machines (`replicate`, `stats`, `link`) are composed per link by the
//! sessions (`child_session`, `parent_session`), with `events_up` for the event logs going
//! up; `inherit` decides what a parent's change
//! means on a child, `rollup` is the arithmetic of a run over a subtree. `server::fed` and
//! the simulation (`sim`, tests only) drive the same sessions.

pub mod child_session;
pub mod events_up;
pub mod inherit;
pub mod link;
pub mod parent_session;
pub mod replicate;
pub mod rollup;
#[cfg(test)]
mod sim;
pub mod snapshot;
pub mod stats;
pub mod topology;

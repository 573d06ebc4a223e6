//! Replication and link state machines, sans-IO: inputs through `handle_*`, decisions through
//! `poll_*`, time always passed in. Nothing here touches a socket, a file or the clock, so a
//! tree of many nodes can be driven in one thread with a virtual clock.

pub mod link;
pub mod replicate;
#[cfg(test)]
mod sim;
pub mod stats;
pub mod topology;

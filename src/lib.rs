//! Canopy: an Administration Server federation daemon.
//!
//! See ARCHITECTURE.md for the bird's-eye view and the invariants between modules.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod model;
pub mod net;
pub mod sched;
pub mod server;
pub mod store;
pub mod sync;
pub mod wire;

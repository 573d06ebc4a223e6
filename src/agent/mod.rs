//! The device agent: executors of task types (and, later, its link to its server).

pub mod exec;

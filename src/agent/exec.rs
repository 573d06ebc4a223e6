//! Executors of task types on a device.

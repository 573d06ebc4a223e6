//! The wall clock, below every runtime (`server`, `agent`, the command line) that reads it.
//! `model` and `sync` never read it: time is passed in to them.

/// Wall-clock time for records and events: milliseconds since the Unix epoch, UTC (a
/// [`crate::model::UnixMillis`]); 0 if the system clock is before 1970.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

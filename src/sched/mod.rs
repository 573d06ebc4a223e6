//! The schedule core: when a task's schedule fires, in a given time zone. It does no I/O and
//! reads no clock; time is passed in.
//!
//! An occurrence has a key and an instant. The key is the civil date and time the schedule
//! names, to the minute and without a time zone. The key is the same on every device whatever
//! its time zone, so it identifies an occurrence across the whole tree. The instant is the key
//! resolved in the time zone of whoever runs the task.
//!
//! Every schedule is a sequence of keys, computed on the local clock, like cron:
//!
//! - `Once` is its one key.
//! - `Every` is its start plus any whole number of periods, counted from the start. Minutes
//!   and hours are added to the civil date and time, days and weeks to the date. So "every 6
//!   hours from 00:00" runs at 00:00, 06:00, 12:00 and 18:00 local time each day, and across a
//!   DST change one interval is an hour shorter or longer.
//! - `ByDaysOfWeek` is each listed weekday at its time. With no day listed it never runs.
//! - `Monthly` is the given day of each month at its time. In a month without that day it is
//!   the month's last day: day 31 runs on April 30, and on February 28 or 29.
//! - `MonthDays` is the first, second, third, fourth or last given weekday of each month.
//! - `Manually`, `Immediately`, `AtApplicationStart` and `AfterTask` have no timed occurrence.
//!   `AtApplicationStart` has one occurrence a day, keyed by the day at 00:00, started by a
//!   device at the agent's first start that day (`decide_app_start`).
//!   Neither has a schedule with a value its parser refuses, such as a period of 0 or hour 24.
//!
//! A key is resolved in a time zone by these rules. A time that does not exist that day,
//! because it falls in a DST gap, resolves to the end of the gap, the instant the clocks jump:
//! in Berlin on 2026-03-29, 02:30 resolves to 03:00 CEST. A time that occurs twice, in a fold,
//! resolves to its earlier instant, so it runs once. A later key never resolves to an earlier
//! instant. Several keys that resolve to the same instant, such as every 15 minutes through a
//! gap, are one occurrence, keyed by the earliest of them.
//!
//! A schedule's `cancel_from` keeps only the keys strictly before it. It compares civil dates
//! and times, so it means the same in every time zone.
//!
//! No input makes these functions panic or loop without bound. A key or an instant outside
//! jiff's range (about the years -9999 to 9999) has no occurrence. The next occurrence is
//! computed arithmetically, not by walking from the start one period at a time.

mod delay;
mod due;
mod keys;
mod occurrence;
mod resolve;

pub use delay::{automatic_window_secs, random_delay_ms, window_secs};
pub use due::{Decision, Held, decide, decide_app_start, next_minute, wait_until};
pub use occurrence::{latest_at_or_before, next_after};
pub use resolve::{day_of, instant_of, local_text, zone_named};

use crate::model::UnixMillis;
use crate::model::schedule::LocalDateTime;

/// One occurrence of a schedule: its key, the same everywhere, and its instant in one zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub key: LocalDateTime,
    pub at: UnixMillis,
}

#[cfg(test)]
mod tests;

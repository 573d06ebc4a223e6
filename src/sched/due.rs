//! What is due of a schedule at an instant, for whoever runs it (a device, or a server for
//! its own tasks): the latest occurrence not dealt with yet, started on time, started late
//! ("run missed tasks"), or skipped as missed; and when to look again.

use super::{latest_at_or_before, next_after};
use crate::model::UnixMillis;
use crate::model::schedule::{LocalDateTime, Schedule};

/// A schedule as whoever runs it holds it.
#[derive(Clone, Copy, Debug)]
pub struct Held<'a> {
    pub schedule: &'a Schedule,
    pub cancel_from: Option<LocalDateTime>,
    pub run_missed: bool,
    /// When this schedule was set: an occurrence at or before it was never due.
    pub since: UnixMillis,
    /// The last occurrence dealt with (started, or found missed).
    pub handled: Option<LocalDateTime>,
}

/// What to do about a schedule at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start occurrence `key` now: on time, or `late` (missed, with "run missed tasks").
    Start { key: LocalDateTime, late: bool },
    /// Occurrence `key`, due at `at`, was missed and "run missed tasks" is off: it ends
    /// missed, not run.
    Skip { key: LocalDateTime, at: UnixMillis },
    /// Nothing is due now.
    Wait,
}

/// Decides about `held` at `now` in `zone`. `delay_ms(key)` is the randomized delay of
/// occurrence `key` for whoever runs it; a start later than `missed_after_ms` after its time
/// (delay included) was missed. Returns the decision and the instant to look again, if the
/// schedule has a start to come. Only the latest occurrence counts: a device back after
/// missing several runs the latest once.
pub fn decide(
    held: Held<'_>,
    zone: &jiff::tz::TimeZone,
    delay_ms: impl Fn(LocalDateTime) -> u64,
    missed_after_ms: i64,
    now: UnixMillis,
) -> (Decision, Option<UnixMillis>) {
    let start_of =
        |at: UnixMillis, key| at.saturating_add(i64::try_from(delay_ms(key)).unwrap_or(i64::MAX));
    let mut wake = next_after(held.schedule, held.cancel_from, zone, now)
        .map(|next| start_of(next.at, next.key));
    let Some(due) = latest_at_or_before(held.schedule, held.cancel_from, zone, now) else {
        return (Decision::Wait, wake);
    };
    let new = held.handled.is_none_or(|handled| due.key > handled);
    if !new || due.at <= held.since {
        return (Decision::Wait, wake);
    }
    let start = start_of(due.at, due.key);
    if start > now {
        wake = Some(wake.map_or(start, |w| w.min(start)));
        return (Decision::Wait, wake);
    }
    let late = now.saturating_sub(start) > missed_after_ms;
    let decision = if !late || held.run_missed {
        Decision::Start { key: due.key, late }
    } else {
        Decision::Skip {
            key: due.key,
            at: due.at,
        }
    };
    (decision, wake)
}

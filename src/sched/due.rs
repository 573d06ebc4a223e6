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

/// What is due of an "at application start" task (`handled`: the last day dealt with) at
/// `now` in `zone`: the occurrence of the day (its key is the day at 00:00) at the agent's
/// first look after it started (`agent_start`), if that day was not dealt with; so a device
/// runs it once a day, at the first start of the agent that day. A device restarted again
/// the same day, or one that got the task while running, waits for the next start.
pub fn decide_app_start(
    handled: Option<LocalDateTime>,
    cancel_from: Option<LocalDateTime>,
    zone: &jiff::tz::TimeZone,
    agent_start: bool,
    now: UnixMillis,
) -> Decision {
    let Some(day) = super::day_of(now, zone) else {
        return Decision::Wait;
    };
    let new = handled.is_none_or(|handled| day > handled);
    let cancelled = cancel_from.is_some_and(|from| day >= from);
    if agent_start && new && !cancelled {
        Decision::Start {
            key: day,
            late: false,
        }
    } else {
        Decision::Wait
    }
}

/// How long to sleep before looking again at `wake` (if any), at most `at_most`, so that a
/// clock that jumps or a machine that sleeps is noticed within it.
pub fn wait_until(
    wake: Option<UnixMillis>,
    now: UnixMillis,
    at_most: std::time::Duration,
) -> std::time::Duration {
    wake.map(|at| {
        std::time::Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
    })
    .map_or(at_most, |d| d.min(at_most))
}

/// The first whole minute of `zone`'s clock strictly after `after`: the next occurrence of
/// "every minute".
pub fn next_minute(zone: &jiff::tz::TimeZone, after: UnixMillis) -> Option<super::Occurrence> {
    let every_minute = Schedule::Every {
        every: 1,
        unit: crate::model::schedule::PeriodUnit::Minutes,
        start: LocalDateTime {
            year: 2000,
            month: 1,
            day: 1,
            time: crate::model::schedule::TimeOfDay { hour: 0, minute: 0 },
        },
    };
    next_after(&every_minute, None, zone, after)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_application_start_task_runs_at_the_first_agent_start_of_each_day() {
        let zone = super::super::zone_named("Australia/Lord_Howe").unwrap();
        // 2026-12-04 08:00 at Lord Howe (UTC+11 in summer) is 2026-12-03 21:00 UTC.
        let now = 1_796_331_600_000;
        let day = super::super::day_of(now, &zone).unwrap();
        assert_eq!(day.to_string(), "2026-12-04T00:00");
        let start = Decision::Start {
            key: day,
            late: false,
        };
        assert_eq!(decide_app_start(None, None, &zone, true, now), start);
        // Not at a later look of the same run of the agent, nor again that day.
        assert_eq!(
            decide_app_start(None, None, &zone, false, now),
            Decision::Wait
        );
        assert_eq!(
            decide_app_start(Some(day), None, &zone, true, now),
            Decision::Wait
        );
        // The next day's first start runs it again; a cancelled schedule does not.
        let tomorrow = now + 24 * 3_600_000;
        assert!(matches!(
            decide_app_start(Some(day), None, &zone, true, tomorrow),
            Decision::Start { key, .. } if key.to_string() == "2026-12-05T00:00"
        ));
        let from = super::super::day_of(tomorrow, &zone);
        assert_eq!(
            decide_app_start(Some(day), from, &zone, true, tomorrow),
            Decision::Wait
        );
    }

    #[test]
    fn the_next_minute_and_how_long_to_wait() {
        let zone = super::super::zone_named("Australia/Lord_Howe").unwrap();
        // 2026-12-04 19:00:30 at +11 (Lord Howe's summer time).
        let at = jiff::civil::date(2026, 12, 4)
            .at(19, 0, 30, 0)
            .to_zoned(zone.clone())
            .unwrap()
            .timestamp()
            .as_millisecond();
        let next = next_minute(&zone, at).unwrap();
        assert_eq!(next.key.to_string(), "2026-12-04T19:01");
        assert_eq!(next.at - at, 30_000);
        assert_eq!(next_minute(&zone, next.at).unwrap().at, next.at + 60_000);
        let most = Duration::from_secs(30);
        assert_eq!(
            wait_until(Some(at + 5_000), at, most),
            Duration::from_secs(5)
        );
        assert_eq!(wait_until(Some(at - 5_000), at, most), Duration::ZERO);
        assert_eq!(wait_until(Some(at + 60_000), at, most), most);
        assert_eq!(wait_until(None, at, most), most);
    }
}

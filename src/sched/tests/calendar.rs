//! Every schedule type in every zone over 2027 and the start of 2028 (a leap day), against
//! the brute-force reference: `next_after` chained with a virtual clock, and
//! `latest_at_or_before` at, just before and between occurrences.

use jiff::tz::TimeZone;

use super::reference::occurrences;
use super::*;

use PeriodUnit::{Days, Hours, Minutes, Weeks};
use Weekday::{Friday, Monday, Saturday, Sunday, Thursday, Tuesday, Wednesday};

/// The schedules checked, each with its `cancel_from`. Times are chosen to fall in the 2027
/// gaps and folds of the zones (Berlin: 03-28 and 10-31, 02:00 to 03:00; New York: 03-14,
/// 02:00 to 03:00, and 11-07, 01:00 to 02:00; Lord Howe: 04-04, 01:30 to 02:00, and 10-03,
/// 02:00 to 02:30) and across midnight.
fn schedules() -> Vec<(Schedule, Option<LocalDateTime>)> {
    let weekly = |days: &[Weekday], hour, minute| Schedule::ByDaysOfWeek {
        days: days.to_vec(),
        at: tod(hour, minute),
    };
    let monthly = |day, hour, minute| Schedule::Monthly {
        day,
        at: tod(hour, minute),
    };
    let month_day = |week, weekday, hour, minute| Schedule::MonthDays {
        week,
        weekday,
        at: tod(hour, minute),
    };
    let all_days = [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ];
    let plain = vec![
        Schedule::Once {
            at: ldt(2027, 3, 28, 2, 30),
        },
        Schedule::Once {
            at: ldt(2027, 11, 7, 1, 30),
        },
        Schedule::Once {
            at: ldt(2027, 10, 3, 2, 15),
        },
        Schedule::Once {
            at: ldt(2027, 6, 15, 12, 0),
        },
        Schedule::Once {
            at: ldt(2026, 6, 1, 12, 0),
        },
        every(15, Minutes, ldt(2026, 12, 31, 23, 55)),
        every(37, Minutes, ldt(2020, 2, 29, 0, 7)),
        every(90, Minutes, ldt(2027, 2, 1, 0, 30)),
        every(1, Hours, ldt(2026, 1, 1, 0, 0)),
        every(6, Hours, ldt(2026, 1, 1, 0, 0)),
        every(5, Hours, ldt(2026, 12, 31, 22, 0)),
        every(25, Hours, ldt(2026, 12, 31, 2, 30)),
        every(1, Days, ldt(2026, 12, 1, 2, 30)),
        every(1, Days, ldt(2026, 12, 1, 1, 45)),
        every(3, Days, ldt(2026, 12, 30, 1, 30)),
        every(1, Weeks, ldt(2026, 12, 27, 2, 15)),
        every(2, Weeks, ldt(2027, 1, 3, 2, 30)),
        every(999_999, Weeks, ldt(2027, 5, 5, 5, 5)),
        weekly(&[Sunday], 2, 30),
        weekly(&[Sunday], 1, 30),
        weekly(&[Sunday], 1, 45),
        weekly(&[Sunday], 2, 15),
        weekly(&[Monday, Wednesday, Friday], 9, 0),
        weekly(&all_days, 0, 0),
        weekly(&[Saturday, Sunday], 23, 59),
        monthly(1, 0, 0),
        monthly(15, 12, 0),
        monthly(28, 2, 30),
        monthly(29, 2, 30),
        monthly(30, 1, 30),
        monthly(31, 2, 30),
        monthly(31, 23, 59),
        month_day(WeekOfMonth::First, Sunday, 1, 45),
        month_day(WeekOfMonth::First, Sunday, 1, 30),
        month_day(WeekOfMonth::First, Monday, 0, 0),
        month_day(WeekOfMonth::Second, Sunday, 2, 30),
        month_day(WeekOfMonth::Second, Saturday, 2, 0),
        month_day(WeekOfMonth::Third, Wednesday, 10, 0),
        month_day(WeekOfMonth::Fourth, Friday, 18, 0),
        month_day(WeekOfMonth::Fourth, Thursday, 23, 30),
        month_day(WeekOfMonth::Last, Sunday, 2, 30),
        month_day(WeekOfMonth::Last, Monday, 0, 0),
        month_day(WeekOfMonth::Last, Tuesday, 12, 0),
    ];
    let mut all: Vec<(Schedule, Option<LocalDateTime>)> =
        plain.into_iter().map(|schedule| (schedule, None)).collect();
    all.extend([
        (
            every(1, Hours, ldt(2026, 1, 1, 0, 0)),
            Some(ldt(2027, 11, 7, 1, 30)),
        ),
        (
            every(15, Minutes, ldt(2026, 1, 1, 0, 0)),
            Some(ldt(2027, 3, 28, 2, 30)),
        ),
        (weekly(&[Sunday], 2, 30), Some(ldt(2027, 2, 30, 0, 0))),
        (monthly(31, 2, 30), Some(ldt(2027, 9, 30, 23, 59))),
        (
            month_day(WeekOfMonth::Last, Sunday, 2, 30),
            Some(ldt(2027, 10, 31, 2, 31)),
        ),
        (monthly(1, 0, 0), Some(ldt(2026, 1, 1, 0, 0))),
    ]);
    all
}

/// The first and last instant compared: one day inside the reference's civil days at each
/// end, so that every occurrence in between has its key among them in any of the zones.
fn window() -> (UnixMillis, UnixMillis) {
    (ms("2027-01-02T00:00:00Z"), ms("2028-03-31T00:00:00Z"))
}

/// Compares one schedule in one zone with the reference; returns how many occurrences.
fn check(
    schedule: &Schedule,
    cancel_from: Option<LocalDateTime>,
    name: &str,
    zone: &TimeZone,
) -> usize {
    let what = format!("{schedule} (cancel from {cancel_from:?}) in {name}");
    let (start, end) = window();
    let expected: Vec<Occurrence> =
        occurrences(schedule, cancel_from, zone, (2027, 1, 1), (2028, 3, 31))
            .into_iter()
            .filter(|o| (start..=end).contains(&o.at))
            .collect();
    let walked = walk(schedule, cancel_from, zone, start - 1, end);
    assert_eq!(walked.len(), expected.len(), "{what}");
    for (got, want) in walked.iter().zip(&expected) {
        assert_eq!(got, want, "{what}");
    }
    // Dense schedules are sampled: the rules are the same at every occurrence.
    let stride = (expected.len() / 1500).max(1);
    for (i, occurrence) in expected.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| expected[p]);
        let sampled = i % stride == 0 || previous.is_some_and(|p| occurrence.at - p.at > 3_600_000);
        if !sampled {
            continue;
        }
        let latest = |t| latest_at_or_before(schedule, cancel_from, zone, t);
        assert_eq!(
            latest(occurrence.at),
            Some(*occurrence),
            "{what} at {occurrence:?}"
        );
        if let Some(previous) = previous {
            assert_eq!(
                latest(occurrence.at - 1),
                Some(previous),
                "{what} before {occurrence:?}"
            );
            let between = previous.at + (occurrence.at - previous.at) / 2;
            assert_eq!(
                latest(between),
                Some(previous),
                "{what} before {occurrence:?}"
            );
            assert_eq!(
                next_after(schedule, cancel_from, zone, between),
                Some(*occurrence),
                "{what} after {previous:?}"
            );
        }
    }
    if let Some(last) = expected.last() {
        assert_eq!(
            latest_at_or_before(schedule, cancel_from, zone, end),
            Some(*last),
            "{what}"
        );
    }
    expected.len()
}

#[test]
fn every_schedule_in_every_zone_matches_the_reference() {
    let mut compared = 0;
    for name in ZONES {
        let zone = zone(name);
        for (schedule, cancel_from) in schedules() {
            compared += check(&schedule, cancel_from, name, &zone);
        }
    }
    // A guard against a reference that finds nothing: about 130,000 per zone.
    assert!(compared > 400_000, "{compared}");
}

#[test]
fn the_reference_sees_the_2027_transitions() {
    // The schedules above were chosen for these days; make sure jiff agrees.
    let days = |name| -> Vec<(i16, i8, i8)> {
        transitions(&zone(name), 2027)
            .iter()
            .map(|t| (t.start.year(), t.start.month(), t.start.day()))
            .collect()
    };
    assert_eq!(days("Europe/Berlin"), [(2027, 3, 28), (2027, 10, 31)]);
    assert_eq!(days("America/New_York"), [(2027, 3, 14), (2027, 11, 7)]);
    assert_eq!(days("Australia/Lord_Howe"), [(2027, 4, 4), (2027, 10, 3)]);
    assert_eq!(days("UTC"), []);
}

//! Tests of the schedule core. The helpers here are shared by the files below.

mod calendar;
mod delay;
mod dst;
mod nasty;
mod reference;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

use super::*;
use crate::model::schedule::{PeriodUnit, Schedule, TimeOfDay, WeekOfMonth, Weekday};

/// The zones every test runs in: two northern ones with one-hour shifts, a southern one with
/// a 30-minute shift, and one without DST.
const ZONES: [&str; 4] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "UTC",
];

fn zone(name: &str) -> TimeZone {
    zone_named(name).unwrap()
}

fn ldt(year: i16, month: u8, day: u8, hour: u8, minute: u8) -> LocalDateTime {
    LocalDateTime {
        year,
        month,
        day,
        time: TimeOfDay { hour, minute },
    }
}

fn tod(hour: u8, minute: u8) -> TimeOfDay {
    TimeOfDay { hour, minute }
}

/// Milliseconds of an RFC 3339 instant, e.g. "2026-03-29T01:00:00Z".
fn ms(text: &str) -> UnixMillis {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

fn every(every: u32, unit: PeriodUnit, start: LocalDateTime) -> Schedule {
    Schedule::Every { every, unit, start }
}

/// The occurrences from the first after `from` to the last at or before `until`, by chaining
/// `next_after` as a scheduler with a virtual clock would.
fn walk(
    schedule: &Schedule,
    cancel_from: Option<LocalDateTime>,
    zone: &TimeZone,
    from: UnixMillis,
    until: UnixMillis,
) -> Vec<Occurrence> {
    let mut found = Vec::new();
    let mut now = from;
    while let Some(next) = next_after(schedule, cancel_from, zone, now) {
        assert!(next.at > now, "{schedule:?}: {next:?} is not after {now}");
        if next.at > until {
            break;
        }
        found.push(next);
        now = next.at;
    }
    found
}

/// Instants and keys both strictly increase.
fn assert_increasing(what: &str, occurrences: &[Occurrence]) {
    for pair in occurrences.windows(2) {
        assert!(pair[0].at < pair[1].at, "{what}: instants {pair:?}");
        assert!(pair[0].key < pair[1].key, "{what}: keys {pair:?}");
    }
}

/// A DST transition: the civil times it skips (a gap) or repeats (a fold).
#[derive(Clone, Copy, Debug)]
struct Transition {
    at: Timestamp,
    before: Offset,
    gap: bool,
    /// The first civil minute skipped or repeated.
    start: DateTime,
    /// How many civil minutes are skipped or repeated.
    minutes: i64,
}

/// A zone's transitions in `year`, as jiff knows them.
fn transitions(zone: &TimeZone, year: i16) -> Vec<Transition> {
    let from = jiff::civil::date(year, 1, 1)
        .at(0, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp();
    let until = jiff::civil::date(year + 1, 1, 1)
        .at(0, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp();
    zone.following(from)
        .take_while(|t| t.timestamp() < until)
        .map(|t| {
            let at = t.timestamp();
            let before = zone.to_offset(at - jiff::SignedDuration::from_secs(1));
            let after = t.offset();
            let gap = after > before;
            let low = if gap { before } else { after };
            let start = low.to_datetime(at);
            let minutes = (after.seconds() - before.seconds()).abs() as i64 / 60;
            Transition {
                at,
                before,
                gap,
                start,
                minutes,
            }
        })
        .filter(|t| t.minutes > 0)
        .collect()
}

/// The model's weekday of a date.
fn weekday_of(date: jiff::civil::Date) -> Weekday {
    [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ][date.weekday().to_monday_zero_offset() as usize]
}

/// A civil minute as the model's key.
fn key(dt: DateTime) -> LocalDateTime {
    ldt(
        dt.year(),
        dt.month() as u8,
        dt.day() as u8,
        dt.hour() as u8,
        dt.minute() as u8,
    )
}

#[test]
fn untimed_schedules_have_no_occurrence() {
    let berlin = zone("Europe/Berlin");
    for schedule in [
        Schedule::Manually,
        Schedule::Immediately,
        Schedule::AtApplicationStart,
        Schedule::AfterTask { task_id: 4 },
        Schedule::ByDaysOfWeek {
            days: vec![],
            at: tod(9, 0),
        },
    ] {
        for t in [i64::MIN, 0, ms("2026-06-01T00:00:00Z"), i64::MAX] {
            assert_eq!(
                next_after(&schedule, None, &berlin, t),
                None,
                "{schedule:?}"
            );
            assert_eq!(latest_at_or_before(&schedule, None, &berlin, t), None);
        }
    }
}

#[test]
fn once_runs_once_and_not_when_past() {
    let berlin = zone("Europe/Berlin");
    let once = Schedule::Once {
        at: ldt(2026, 12, 4, 19, 0),
    };
    let at = ms("2026-12-04T18:00:00Z");
    let occurrence = Occurrence {
        key: ldt(2026, 12, 4, 19, 0),
        at,
    };
    assert_eq!(next_after(&once, None, &berlin, 0), Some(occurrence));
    assert_eq!(next_after(&once, None, &berlin, at - 1), Some(occurrence));
    assert_eq!(next_after(&once, None, &berlin, at), None);
    assert_eq!(latest_at_or_before(&once, None, &berlin, at - 1), None);
    assert_eq!(
        latest_at_or_before(&once, None, &berlin, at),
        Some(occurrence)
    );
    assert_eq!(
        latest_at_or_before(&once, None, &berlin, i64::MAX),
        Some(occurrence)
    );
    assert_eq!(local_text(at, &berlin), "2026-12-04 19:00 CET");
    // Cancelled at its own minute, it never runs; a minute later, it does.
    assert_eq!(
        next_after(&once, Some(ldt(2026, 12, 4, 19, 0)), &berlin, 0),
        None
    );
    assert_eq!(
        next_after(&once, Some(ldt(2026, 12, 4, 19, 1)), &berlin, 0),
        Some(occurrence)
    );
}

#[test]
fn cancel_from_keeps_the_keys_strictly_before_it() {
    let new_york = zone("America/New_York");
    let hourly = every(1, PeriodUnit::Hours, ldt(2026, 1, 1, 0, 30));
    let cancel = ldt(2026, 3, 10, 12, 30);
    let all = walk(&hourly, Some(cancel), &new_york, 0, i64::MAX);
    assert_eq!(all.last().unwrap().key, ldt(2026, 3, 10, 11, 30));
    assert_eq!(all.first().unwrap().key, ldt(2026, 1, 1, 0, 30));
    assert_eq!(
        latest_at_or_before(&hourly, Some(cancel), &new_york, i64::MAX),
        all.last().copied()
    );
    // A cancel_from that is no real date ends the schedule where the next real date begins.
    let weekly = Schedule::ByDaysOfWeek {
        days: vec![Weekday::Saturday],
        at: tod(10, 0),
    };
    let last = |cancel| {
        latest_at_or_before(&weekly, Some(cancel), &new_york, i64::MAX)
            .unwrap()
            .key
    };
    assert_eq!(last(ldt(2027, 2, 30, 0, 0)), ldt(2027, 2, 27, 10, 0));
    assert_eq!(last(ldt(2027, 2, 27, 10, 60)), ldt(2027, 2, 27, 10, 0));
    assert_eq!(last(ldt(2027, 2, 27, 10, 0)), ldt(2027, 2, 20, 10, 0));
    assert_eq!(last(ldt(2027, 2, 27, 24, 0)), ldt(2027, 2, 27, 10, 0));
    assert_eq!(last(ldt(2027, 13, 1, 0, 0)), ldt(2027, 12, 25, 10, 0));
    assert_eq!(last(ldt(2027, 0, 9, 0, 0)), ldt(2026, 12, 26, 10, 0));
    assert_eq!(last(ldt(i16::MAX, 1, 1, 0, 0)), ldt(9999, 12, 25, 10, 0));
    assert_eq!(
        next_after(&weekly, Some(ldt(i16::MIN, 1, 1, 0, 0)), &new_york, 0),
        None
    );
}

#[test]
fn month_ends_and_month_days() {
    let utc = zone("UTC");
    let keys = |schedule: &Schedule| -> Vec<LocalDateTime> {
        walk(
            schedule,
            None,
            &utc,
            ms("2027-01-01T00:00:00Z"),
            ms("2028-05-01T00:00:00Z"),
        )
        .into_iter()
        .map(|o| o.key)
        .collect()
    };
    let day_31 = keys(&Schedule::Monthly {
        day: 31,
        at: tod(8, 0),
    });
    assert_eq!(day_31.len(), 16);
    assert_eq!(day_31[1], ldt(2027, 2, 28, 8, 0));
    assert_eq!(day_31[3], ldt(2027, 4, 30, 8, 0));
    assert_eq!(day_31[13], ldt(2028, 2, 29, 8, 0));
    let day_30 = keys(&Schedule::Monthly {
        day: 30,
        at: tod(8, 0),
    });
    assert_eq!(day_30[1], ldt(2027, 2, 28, 8, 0));
    assert_eq!(day_30[2], ldt(2027, 3, 30, 8, 0));
    let last_friday = keys(&Schedule::MonthDays {
        week: WeekOfMonth::Last,
        weekday: Weekday::Friday,
        at: tod(17, 0),
    });
    assert_eq!(last_friday[0], ldt(2027, 1, 29, 17, 0));
    assert_eq!(last_friday[1], ldt(2027, 2, 26, 17, 0));
    let first_monday = keys(&Schedule::MonthDays {
        week: WeekOfMonth::First,
        weekday: Weekday::Monday,
        at: tod(9, 0),
    });
    assert_eq!(first_monday[0], ldt(2027, 1, 4, 9, 0));
    assert_eq!(first_monday[1], ldt(2027, 2, 1, 9, 0));
    let fourth_sunday = keys(&Schedule::MonthDays {
        week: WeekOfMonth::Fourth,
        weekday: Weekday::Sunday,
        at: tod(9, 0),
    });
    assert_eq!(fourth_sunday[0], ldt(2027, 1, 24, 9, 0));
}

#[test]
fn every_counts_in_civil_time_from_its_start() {
    let berlin = zone("Europe/Berlin");
    // Every 6 hours from 00:00 keeps to 00:00, 06:00, 12:00 and 18:00 across the spring change.
    let six = every(6, PeriodUnit::Hours, ldt(2026, 3, 1, 0, 0));
    let keys: Vec<LocalDateTime> = walk(
        &six,
        None,
        &berlin,
        ms("2026-03-28T22:00:00Z"),
        ms("2026-03-30T21:00:00Z"),
    )
    .into_iter()
    .map(|o| o.key)
    .collect();
    assert_eq!(
        keys,
        [
            ldt(2026, 3, 29, 0, 0),
            ldt(2026, 3, 29, 6, 0),
            ldt(2026, 3, 29, 12, 0),
            ldt(2026, 3, 29, 18, 0),
            ldt(2026, 3, 30, 0, 0),
            ldt(2026, 3, 30, 6, 0),
            ldt(2026, 3, 30, 12, 0),
            ldt(2026, 3, 30, 18, 0),
        ]
    );
    // The interval over the change is five real hours.
    let first = instant_of(ldt(2026, 3, 29, 0, 0), &berlin).unwrap();
    let second = instant_of(ldt(2026, 3, 29, 6, 0), &berlin).unwrap();
    assert_eq!(second - first, 5 * 3_600_000);
    // Nothing before the start.
    let late_start = every(1, PeriodUnit::Days, ldt(2026, 5, 1, 9, 0));
    assert_eq!(
        next_after(&late_start, None, &berlin, 0).unwrap().key,
        ldt(2026, 5, 1, 9, 0)
    );
    assert_eq!(
        latest_at_or_before(&late_start, None, &berlin, ms("2026-05-01T06:59:59Z")),
        None
    );
}

#[test]
fn zones_by_name() {
    for name in ZONES {
        assert!(zone_named(name).is_ok(), "{name}");
    }
    assert_eq!(zone("UTC"), TimeZone::UTC);
    for bad in [
        "Mars/Base",
        "",
        "Europe/../etc",
        "Etc/Unknown",
        "Europe/Berlin\n",
    ] {
        assert_eq!(
            zone_named(bad).unwrap_err(),
            format!("unknown time zone {bad:?}; give an IANA name such as Europe/Berlin, or UTC")
        );
    }
    assert_eq!(
        zone_named("Mars/Base").unwrap_err(),
        r#"unknown time zone "Mars/Base"; give an IANA name such as Europe/Berlin, or UTC"#
    );
}

#[test]
fn local_text_names_the_zone() {
    let at = ms("2026-07-01T10:00:00Z");
    assert_eq!(
        local_text(at, &zone("Europe/Berlin")),
        "2026-07-01 12:00 CEST"
    );
    assert_eq!(
        local_text(at, &zone("America/New_York")),
        "2026-07-01 06:00 EDT"
    );
    assert_eq!(local_text(at, &zone("UTC")), "2026-07-01 10:00 UTC");
    assert_eq!(
        local_text(i64::MAX, &zone("UTC")),
        format!("{} ms", i64::MAX)
    );
}

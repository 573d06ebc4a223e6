//! Schedules across DST transitions: gaps run once at their end, folds once at their earlier
//! instant, and chains of `next_after` stay in order through every transition day.

use jiff::SignedDuration;
use jiff::civil::{Date, DateTime, date};
use jiff::tz::TimeZone;

use super::*;

/// The civil minute in the middle of a transition's skipped or repeated times.
fn inside(transition: &Transition) -> DateTime {
    transition.start + SignedDuration::from_mins(transition.minutes / 2)
}

/// Each zone's transitions in a year, found with jiff.
fn all_in(year: i16) -> Vec<(&'static str, TimeZone, Transition)> {
    let mut all = Vec::new();
    for name in ZONES {
        let zone = zone(name);
        for transition in transitions(&zone, year) {
            all.push((name, zone.clone(), transition));
        }
    }
    all
}

/// The transitions the tests below walk through: 2026's, and 2400's, which jiff derives
/// from each zone's rule rather than from a table.
fn all_tested() -> Vec<(&'static str, TimeZone, Transition)> {
    let mut all = all_in(2026);
    let far = all_in(2400);
    // Both transitions of each zone with DST.
    assert_eq!(far.len(), 6, "{far:?}");
    all.extend(far);
    all
}

#[test]
fn jiff_finds_the_known_2026_transitions() {
    let seen: Vec<(&str, Date, bool, DateTime, i64)> = all_in(2026)
        .into_iter()
        .map(|(name, _, t)| (name, t.start.date(), t.gap, t.start, t.minutes))
        .collect();
    let expected = [
        // (zone, day, gap, first civil minute skipped or repeated, minutes)
        ("Europe/Berlin", date(2026, 3, 29), true, (2, 0), 60),
        ("Europe/Berlin", date(2026, 10, 25), false, (2, 0), 60),
        ("America/New_York", date(2026, 3, 8), true, (2, 0), 60),
        ("America/New_York", date(2026, 11, 1), false, (1, 0), 60),
        // Southern hemisphere: summer time ends in April and starts in October, by 30 minutes.
        ("Australia/Lord_Howe", date(2026, 4, 5), false, (1, 30), 30),
        ("Australia/Lord_Howe", date(2026, 10, 4), true, (2, 0), 30),
    ];
    let expected: Vec<(&str, Date, bool, DateTime, i64)> = expected
        .into_iter()
        .map(|(name, day, gap, (h, m), minutes)| (name, day, gap, day.at(h, m, 0, 0), minutes))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn instant_of_known_gap_and_fold_times() {
    let berlin = zone("Europe/Berlin");
    let new_york = zone("America/New_York");
    let lord_howe = zone("Australia/Lord_Howe");
    let cases = [
        // The gap resolves to its end, 03:00 CEST, whatever minute of it.
        (&berlin, ldt(2026, 3, 29, 1, 59), "2026-03-29T00:59:00Z"),
        (&berlin, ldt(2026, 3, 29, 2, 0), "2026-03-29T01:00:00Z"),
        (&berlin, ldt(2026, 3, 29, 2, 30), "2026-03-29T01:00:00Z"),
        (&berlin, ldt(2026, 3, 29, 2, 59), "2026-03-29T01:00:00Z"),
        (&berlin, ldt(2026, 3, 29, 3, 0), "2026-03-29T01:00:00Z"),
        (&berlin, ldt(2026, 3, 29, 3, 1), "2026-03-29T01:01:00Z"),
        // The fold resolves to the first pass, on CEST.
        (&berlin, ldt(2026, 10, 25, 1, 59), "2026-10-24T23:59:00Z"),
        (&berlin, ldt(2026, 10, 25, 2, 0), "2026-10-25T00:00:00Z"),
        (&berlin, ldt(2026, 10, 25, 2, 30), "2026-10-25T00:30:00Z"),
        (&berlin, ldt(2026, 10, 25, 3, 0), "2026-10-25T02:00:00Z"),
        (&new_york, ldt(2026, 3, 8, 2, 30), "2026-03-08T07:00:00Z"),
        (&new_york, ldt(2026, 11, 1, 1, 30), "2026-11-01T05:30:00Z"),
        (&new_york, ldt(2026, 11, 1, 2, 0), "2026-11-01T07:00:00Z"),
        // Lord Howe jumps from 02:00 to 02:30 in October and back from 02:00 to 01:30 in
        // April.
        (&lord_howe, ldt(2026, 10, 4, 2, 15), "2026-10-03T15:30:00Z"),
        (&lord_howe, ldt(2026, 10, 4, 2, 30), "2026-10-03T15:30:00Z"),
        (&lord_howe, ldt(2026, 4, 5, 1, 45), "2026-04-04T14:45:00Z"),
        (&lord_howe, ldt(2026, 4, 5, 2, 0), "2026-04-04T15:30:00Z"),
    ];
    for (zone, key, utc) in cases {
        assert_eq!(instant_of(key, zone), Some(ms(utc)), "{key:?} in {zone:?}");
    }
    let gap_end = instant_of(ldt(2026, 3, 29, 2, 30), &berlin).unwrap();
    assert_eq!(local_text(gap_end, &berlin), "2026-03-29 03:00 CEST");
    let gap_end = instant_of(ldt(2026, 10, 4, 2, 15), &lord_howe).unwrap();
    assert_eq!(local_text(gap_end, &lord_howe), "2026-10-04 02:30 +11");
    // Not a date: no instant.
    assert_eq!(instant_of(ldt(2026, 2, 29, 12, 0), &berlin), None);
    assert_eq!(instant_of(ldt(2026, 3, 1, 24, 0), &berlin), None);
}

/// The daily and weekly schedules of a time of day, starting well before `day`.
fn daily_and_weekly(day: Date, time: DateTime) -> Vec<Schedule> {
    let at = tod(time.hour() as u8, time.minute() as u8);
    let start = |days_before: i64| {
        let start = day.to_datetime(time.time()) - SignedDuration::from_hours(24 * days_before);
        key(start)
    };
    vec![
        every(1, PeriodUnit::Days, start(10)),
        every(1, PeriodUnit::Weeks, start(21)),
        Schedule::ByDaysOfWeek {
            days: vec![weekday_of(day)],
            at,
        },
    ]
}

#[test]
fn a_time_in_a_gap_or_fold_runs_once_daily_and_weekly() {
    for (name, zone, transition) in all_tested() {
        let time = inside(&transition);
        let day = time.date();
        let expected_at = if transition.gap {
            // The end of the gap: the transition itself.
            transition.at.as_millisecond()
        } else {
            // The first pass, on the offset before the transition.
            transition
                .before
                .to_timestamp(time)
                .unwrap()
                .as_millisecond()
        };
        for schedule in daily_and_weekly(day, time) {
            let what = format!("{name} {schedule:?}");
            let from = transition.at.as_millisecond() - 8 * 86_400_000;
            let until = transition.at.as_millisecond() + 8 * 86_400_000;
            let found = walk(&schedule, None, &zone, from, until);
            assert_increasing(&what, &found);
            let that_day: Vec<&Occurrence> = found
                .iter()
                .filter(|o| (o.key.month, o.key.day) == (day.month() as u8, day.day() as u8))
                .collect();
            assert_eq!(
                that_day,
                [&Occurrence {
                    key: key(time),
                    at: expected_at
                }],
                "{what}"
            );
            // It is the latest occurrence from its instant until the next one.
            let next = found.iter().find(|o| o.at > expected_at).unwrap();
            for t in [expected_at, expected_at + 3_600_000, next.at - 1] {
                assert_eq!(
                    latest_at_or_before(&schedule, None, &zone, t),
                    Some(*that_day[0]),
                    "{what} at {t}"
                );
            }
        }
    }
}

#[test]
fn every_15_minutes_and_hourly_through_each_transition_day() {
    for (name, zone, transition) in all_tested() {
        let day = transition.start.date();
        for (n, unit, minutes, per_day) in [
            (15, PeriodUnit::Minutes, 15, 96),
            (1, PeriodUnit::Hours, 60, 24),
        ] {
            let start = key(day.at(0, 0, 0, 0) - SignedDuration::from_hours(24 * 7));
            let schedule = every(n, unit, start);
            let what = format!("{name} every {minutes} minutes on {day}");
            let midnight = instant_of(key(day.at(0, 0, 0, 0)), &zone).unwrap();
            let until = midnight + 2 * 86_400_000;
            let found: Vec<Occurrence> = walk(&schedule, None, &zone, midnight - 1, until)
                .into_iter()
                .take_while(|o| o.key.day == day.day() as u8)
                .collect();
            assert_increasing(&what, &found);
            // Keys in a gap share its end, so a gap of g minutes takes the keys it holds
            // after its first; a fold repeats times but each key runs once.
            let expected = if transition.gap {
                per_day - transition.minutes / i64::from(minutes)
            } else {
                per_day
            };
            assert_eq!(found.len() as i64, expected, "{what}: {found:?}");
            assert_eq!(found[0].at, midnight, "{what}");
            let at_transition: Vec<&Occurrence> = found
                .iter()
                .filter(|o| o.at == transition.at.as_millisecond())
                .collect();
            if transition.gap {
                // The gap's first key stands for all of them, at the gap's end.
                assert_eq!(at_transition.len(), 1, "{what}");
                assert_eq!(at_transition[0].key, key(transition.start), "{what}");
            }
            // The real time between runs is the period, except over the transition.
            let period = i64::from(minutes) * 60_000;
            let odd: Vec<i64> = found
                .windows(2)
                .map(|pair| pair[1].at - pair[0].at)
                .filter(|gap| *gap != period)
                .collect();
            assert!(odd.len() <= 1, "{what}: {odd:?}");
        }
    }
}

#[test]
fn the_bundled_database_gives_the_same_transitions() {
    // The bundle (feature tzdb-bundle-always) stands in on machines without
    // /usr/share/zoneinfo; it must be there and agree with the database in use.
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    for name in ZONES {
        let from_bundle = bundled.get(name).unwrap();
        for year in [2026, 2400] {
            let starts = |zone: &TimeZone| -> Vec<(DateTime, bool, i64)> {
                transitions(zone, year)
                    .iter()
                    .map(|t| (t.start, t.gap, t.minutes))
                    .collect()
            };
            assert_eq!(starts(&from_bundle), starts(&zone(name)), "{name} {year}");
        }
    }
}

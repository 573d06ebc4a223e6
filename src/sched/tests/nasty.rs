//! Random and extreme input: no panic, no endless loop, and `next_after` and
//! `latest_at_or_before` agree with each other.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn pick<T: Copy>(rng: &mut StdRng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}

/// A date and time, often at the edges of jiff's range or no real date at all.
fn date_time(rng: &mut StdRng) -> LocalDateTime {
    let year = match rng.random_range(0..4) {
        0 => pick(
            rng,
            &[1, 9999, -9999, 10_000, -10_000, 0, i16::MIN, i16::MAX],
        ),
        1 => rng.random(),
        _ => rng.random_range(1990..2040),
    };
    let month = if rng.random_bool(0.9) {
        rng.random_range(1..=12)
    } else {
        pick(rng, &[0, 13, 255])
    };
    let day = if rng.random_bool(0.9) {
        rng.random_range(1..=31)
    } else {
        pick(rng, &[0, 32, 255])
    };
    LocalDateTime {
        year,
        month,
        day,
        time: time_of_day(rng),
    }
}

fn time_of_day(rng: &mut StdRng) -> TimeOfDay {
    if rng.random_bool(0.95) {
        tod(rng.random_range(0..24), rng.random_range(0..60))
    } else {
        tod(pick(rng, &[24, 255, 0]), pick(rng, &[60, 255, 59]))
    }
}

fn weekday(rng: &mut StdRng) -> Weekday {
    pick(
        rng,
        &[
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ],
    )
}

fn schedule(rng: &mut StdRng) -> Schedule {
    match rng.random_range(0..9) {
        0 => Schedule::Once { at: date_time(rng) },
        1..=3 => Schedule::Every {
            every: match rng.random_range(0..3) {
                0 => pick(rng, &[0, 1, 2, 999_999_999, u32::MAX]),
                1 => rng.random(),
                _ => rng.random_range(1..100),
            },
            unit: pick(
                rng,
                &[
                    PeriodUnit::Minutes,
                    PeriodUnit::Hours,
                    PeriodUnit::Days,
                    PeriodUnit::Weeks,
                ],
            ),
            start: date_time(rng),
        },
        4 => Schedule::ByDaysOfWeek {
            days: (0..rng.random_range(0..4)).map(|_| weekday(rng)).collect(),
            at: time_of_day(rng),
        },
        5 | 6 => Schedule::Monthly {
            day: pick(rng, &[0, 1, 15, 28, 29, 30, 31, 32, 255]),
            at: time_of_day(rng),
        },
        7 => Schedule::MonthDays {
            week: pick(
                rng,
                &[
                    WeekOfMonth::First,
                    WeekOfMonth::Second,
                    WeekOfMonth::Third,
                    WeekOfMonth::Fourth,
                    WeekOfMonth::Last,
                ],
            ),
            weekday: weekday(rng),
            at: time_of_day(rng),
        },
        _ => match rng.random_range(0..4) {
            0 => Schedule::Manually,
            1 => Schedule::Immediately,
            2 => Schedule::AtApplicationStart,
            _ => Schedule::AfterTask { task_id: 1 },
        },
    }
}

/// An instant, often at the edges of i64 or of jiff's range.
fn instant(rng: &mut StdRng) -> UnixMillis {
    let first = Timestamp::MIN.as_second() * 1000;
    let last = Timestamp::MAX.as_second() * 1000;
    match rng.random_range(0..5) {
        0 => pick(
            rng,
            &[i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1, 0, -1],
        ),
        1 => pick(rng, &[first, last]) + rng.random_range(-200_000_000..200_000_000),
        2 => rng.random(),
        3 => rng.random_range(first..=last),
        _ => rng.random_range(ms("1990-01-01T00:00:00Z")..ms("2040-01-01T00:00:00Z")),
    }
}

fn check(schedule: &Schedule, cancel_from: Option<LocalDateTime>, zone: &TimeZone, t: i64) {
    let what = format!("{schedule:?} cancel {cancel_from:?} in {zone:?} at {t}");
    let next = next_after(schedule, cancel_from, zone, t);
    let latest = latest_at_or_before(schedule, cancel_from, zone, t);
    if let Some(next) = next {
        assert!(next.at > t, "{what}: {next:?}");
        // The occurrence found from its own instant is itself.
        assert_eq!(
            latest_at_or_before(schedule, cancel_from, zone, next.at),
            Some(next),
            "{what}"
        );
        if let Some(after) = next_after(schedule, cancel_from, zone, next.at) {
            assert!(
                after.at > next.at && after.key > next.key,
                "{what}: {after:?}"
            );
        }
    }
    match latest {
        Some(latest) => {
            assert!(latest.at <= t, "{what}: {latest:?}");
            // Nothing happens between the latest occurrence and `t`.
            assert_eq!(
                next_after(schedule, cancel_from, zone, latest.at),
                next,
                "{what}: {latest:?}"
            );
            if let Some(next) = next {
                assert!(latest.key < next.key, "{what}: {latest:?} {next:?}");
            }
        }
        // Then the next occurrence is the first of all.
        None => assert_eq!(
            next_after(schedule, cancel_from, zone, i64::MIN),
            next,
            "{what}"
        ),
    }
}

#[test]
fn random_and_extreme_input_neither_panics_nor_disagrees() {
    let mut rng = StdRng::seed_from_u64(20_261_204);
    let zones: Vec<TimeZone> = ZONES.iter().map(|name| zone(name)).collect();
    for _ in 0..3000 {
        let schedule = schedule(&mut rng);
        let cancel_from = rng.random_bool(0.3).then(|| date_time(&mut rng));
        let zone = &zones[rng.random_range(0..zones.len())];
        for _ in 0..3 {
            check(&schedule, cancel_from, zone, instant(&mut rng));
        }
        // Around the schedule's own start, where its keys are.
        if let Schedule::Every { start, .. } | Schedule::Once { at: start } = schedule {
            if let Some(at) = instant_of(start, zone) {
                for t in [at - 1, at, at + 1] {
                    check(&schedule, cancel_from, zone, t);
                }
            }
        }
    }
}

#[test]
fn huge_periods_and_the_ends_of_the_range() {
    let utc = zone("UTC");
    let huge = every(999_999_999, PeriodUnit::Weeks, ldt(1, 1, 1, 0, 0));
    let first = Occurrence {
        key: ldt(1, 1, 1, 0, 0),
        at: instant_of(ldt(1, 1, 1, 0, 0), &utc).unwrap(),
    };
    assert_eq!(next_after(&huge, None, &utc, i64::MIN), Some(first));
    assert_eq!(next_after(&huge, None, &utc, first.at), None);
    assert_eq!(
        latest_at_or_before(&huge, None, &utc, i64::MAX),
        Some(first)
    );
    // Keys past the end of jiff's range have no instant.
    let end = Timestamp::MAX.as_second() * 1000;
    let late = every(1, PeriodUnit::Minutes, ldt(9999, 12, 30, 0, 0));
    let berlin = zone("Europe/Berlin");
    assert_eq!(next_after(&late, None, &berlin, i64::MAX), None);
    assert_eq!(next_after(&late, None, &berlin, end), None);
    assert_eq!(next_after(&late, None, &utc, end - 60_000).unwrap().at, end);
    let last = latest_at_or_before(&late, None, &berlin, i64::MAX).unwrap();
    assert_eq!((last.key, last.at), (ldt(9999, 12, 30, 23, 0), end));
    // Keys before its start wait until jiff's range begins.
    let early = every(1, PeriodUnit::Minutes, ldt(-9999, 1, 1, 0, 0));
    let first = next_after(&early, None, &utc, i64::MIN).unwrap();
    assert_eq!(first.at, Timestamp::MIN.as_second() * 1000 + 1000);
    assert_eq!(latest_at_or_before(&early, None, &utc, i64::MIN), None);
}

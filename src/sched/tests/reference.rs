//! A brute-force reference for the schedules: every civil day of a range, the keys each
//! schedule names that day found naively, each resolved with `instant_of`. It shares no code
//! with the scheduler's key arithmetic; its calendar is computed here from first principles.

use jiff::tz::TimeZone;

use super::*;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Monday 0 to Sunday 6; 1970-01-01 was a Thursday.
fn weekday_index(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

fn model_weekday_index(day: Weekday) -> i64 {
    day as i64
}

/// The civil minute of a key since 1970-01-01T00:00.
fn minute_of(key: LocalDateTime) -> i64 {
    days_from_civil(key.year.into(), key.month.into(), key.day.into()) * 1440
        + i64::from(key.time.hour) * 60
        + i64::from(key.time.minute)
}

/// The keys `schedule` names on one civil day, in order.
fn keys_on(schedule: &Schedule, year: i64, month: i64, day: i64) -> Vec<LocalDateTime> {
    let days = days_from_civil(year, month, day);
    let on = |at: TimeOfDay| ldt(year as i16, month as u8, day as u8, at.hour, at.minute);
    match schedule {
        Schedule::Once { at } => {
            if minute_of(*at) / 1440 == days {
                vec![*at]
            } else {
                vec![]
            }
        }
        Schedule::Every { every, unit, start } => {
            let period = i64::from(*every)
                * match unit {
                    PeriodUnit::Minutes => 1,
                    PeriodUnit::Hours => 60,
                    PeriodUnit::Days => 1440,
                    PeriodUnit::Weeks => 7 * 1440,
                };
            let start = minute_of(*start);
            (0..1440)
                .filter(|minute| {
                    let t = days * 1440 + minute;
                    t >= start && (t - start) % period == 0
                })
                .map(|minute| on(tod((minute / 60) as u8, (minute % 60) as u8)))
                .collect()
        }
        Schedule::ByDaysOfWeek { days: listed, at } => {
            if listed
                .iter()
                .any(|d| model_weekday_index(*d) == weekday_index(days))
            {
                vec![on(*at)]
            } else {
                vec![]
            }
        }
        Schedule::Monthly { day: wanted, at } => {
            if day == i64::from(*wanted).min(days_in_month(year, month)) {
                vec![on(*at)]
            } else {
                vec![]
            }
        }
        Schedule::MonthDays { week, weekday, at } => {
            let week_matches = match week {
                WeekOfMonth::First => day <= 7,
                WeekOfMonth::Second => (8..=14).contains(&day),
                WeekOfMonth::Third => (15..=21).contains(&day),
                WeekOfMonth::Fourth => (22..=28).contains(&day),
                WeekOfMonth::Last => day + 7 > days_in_month(year, month),
            };
            if week_matches && model_weekday_index(*weekday) == weekday_index(days) {
                vec![on(*at)]
            } else {
                vec![]
            }
        }
        _ => vec![],
    }
}

/// The occurrences of `schedule` whose keys fall on the civil days from `first` to `last`
/// (year, month, day), in order: keys resolved in `zone`, equal instants merged into the
/// earliest key. Panics if resolution is not monotone.
pub(super) fn occurrences(
    schedule: &Schedule,
    cancel_from: Option<LocalDateTime>,
    zone: &TimeZone,
    first: (i64, i64, i64),
    last: (i64, i64, i64),
) -> Vec<Occurrence> {
    let mut found: Vec<Occurrence> = Vec::new();
    let (mut year, mut month, mut day) = first;
    while (year, month, day) <= last {
        for key in keys_on(schedule, year, month, day) {
            if cancel_from.is_some_and(|cancel| key >= cancel) {
                continue;
            }
            let at = instant_of(key, zone).unwrap();
            match found.last() {
                Some(previous) if previous.at == at => {}
                Some(previous) => {
                    assert!(
                        previous.at < at,
                        "not monotone: {previous:?} then {key:?} {at}"
                    );
                    found.push(Occurrence { key, at });
                }
                None => found.push(Occurrence { key, at }),
            }
        }
        day += 1;
        if day > days_in_month(year, month) {
            day = 1;
            month += 1;
            if month > 12 {
                month = 1;
                year += 1;
            }
        }
    }
    found
}

#[test]
fn the_reference_calendar_agrees_with_jiff() {
    for (year, month, day) in [(1970, 1, 1), (2000, 2, 29), (2027, 12, 31), (1, 1, 1)] {
        let date = jiff::civil::date(year as i16, month as i8, day as i8);
        let epoch = jiff::civil::date(1970, 1, 1);
        assert_eq!(
            days_from_civil(year, month, day),
            date.since((jiff::Unit::Day, epoch)).unwrap().get_days() as i64
        );
        assert_eq!(
            weekday_index(days_from_civil(year, month, day)),
            date.weekday().to_monday_zero_offset() as i64
        );
        assert_eq!(days_in_month(year, month), date.days_in_month() as i64);
    }
}

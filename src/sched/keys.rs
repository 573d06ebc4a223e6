//! The civil keys of a schedule, found arithmetically around any civil date-time.

use jiff::SignedDuration;
use jiff::civil::{Date, DateTime, Time, Weekday as JWeekday};

use super::resolve::{civil, time_of_day};
use crate::model::schedule::{LocalDateTime, PeriodUnit, Schedule, WeekOfMonth, Weekday};

/// One minute, the resolution of keys: the key after `k` is the first at or after `k + 1 min`.
pub(super) const MINUTE: SignedDuration = SignedDuration::from_secs(60);

/// A schedule's keys, all before its `cancel_from`.
pub(super) struct Keys {
    rule: Rule,
    /// The last civil minute a key may have (from `cancel_from`); None: no limit.
    last: Option<DateTime>,
}

enum Rule {
    Once(DateTime),
    /// `start` plus whole multiples of `period`, a whole number of civil minutes.
    Every {
        start: DateTime,
        period_minutes: u64,
    },
    /// At `time` on each weekday whose flag is set (Monday first).
    Weekly {
        days: [bool; 7],
        time: Time,
    },
    /// Day `day` (1 to 31) of each month, or its last day.
    Monthly {
        day: i8,
        time: Time,
    },
    /// The `nth` `weekday` of each month, as jiff numbers it (1 to 4, or -1 for the last).
    MonthDays {
        nth: i8,
        weekday: JWeekday,
        time: Time,
    },
}

impl Keys {
    /// The keys of `schedule`; None if it has none (not timed, invalid, or cancelled before
    /// jiff's first date).
    pub(super) fn new(schedule: &Schedule, cancel_from: Option<LocalDateTime>) -> Option<Keys> {
        let rule = match schedule {
            Schedule::Manually
            | Schedule::Immediately
            | Schedule::AtApplicationStart
            | Schedule::AfterTask { .. } => return None,
            Schedule::Once { at } => Rule::Once(civil(*at)?),
            Schedule::Every { every, unit, start } => {
                let per_unit: u64 = match unit {
                    PeriodUnit::Minutes => 1,
                    PeriodUnit::Hours => 60,
                    PeriodUnit::Days => 24 * 60,
                    PeriodUnit::Weeks => 7 * 24 * 60,
                };
                // A u32 times a week's minutes fits a u64 easily; 0 is no period at all.
                let period_minutes = u64::from(*every) * per_unit;
                if period_minutes == 0 {
                    return None;
                }
                Rule::Every {
                    start: civil(*start)?,
                    period_minutes,
                }
            }
            Schedule::ByDaysOfWeek { days, at } => {
                let mut set = [false; 7];
                for day in days {
                    set[weekday_index(*day)] = true;
                }
                if !set.contains(&true) {
                    return None;
                }
                Rule::Weekly {
                    days: set,
                    time: time_of_day(*at)?,
                }
            }
            Schedule::Monthly { day, at } => {
                if !(1..=31).contains(day) {
                    return None;
                }
                Rule::Monthly {
                    day: i8::try_from(*day).ok()?,
                    time: time_of_day(*at)?,
                }
            }
            Schedule::MonthDays { week, weekday, at } => Rule::MonthDays {
                nth: match week {
                    WeekOfMonth::First => 1,
                    WeekOfMonth::Second => 2,
                    WeekOfMonth::Third => 3,
                    WeekOfMonth::Fourth => 4,
                    WeekOfMonth::Last => -1,
                },
                weekday: jiff_weekday(*weekday),
                time: time_of_day(*at)?,
            },
        };
        let last = match cancel_from.map(first_minute_from) {
            None | Some(Bound::Never) => None,
            Some(Bound::At(end)) => Some(end.checked_sub(MINUTE).ok()?),
        };
        Some(Keys { rule, last })
    }

    /// The first key at or after `from`.
    pub(super) fn first_from(&self, from: DateTime) -> Option<DateTime> {
        let key = match &self.rule {
            Rule::Once(at) => Some(*at).filter(|at| *at >= from),
            Rule::Every {
                start,
                period_minutes,
            } => {
                if from <= *start {
                    Some(*start)
                } else {
                    // Periods are civil minutes and `from` may have seconds: round up.
                    let period = u128::from(*period_minutes) * 60_000_000_000;
                    let since = u128::try_from(from.duration_since(*start).as_nanos()).ok()?;
                    step(*start, since.div_ceil(period), *period_minutes)
                }
            }
            Rule::Weekly { days, time } => {
                let mut date = from.date();
                if date.to_datetime(*time) < from {
                    date = date.tomorrow().ok()?;
                }
                // Some flag is set, so one of seven days in a row matches.
                let mut found = None;
                for _ in 0..7 {
                    if days[date.weekday().to_monday_zero_offset().unsigned_abs() as usize] {
                        found = Some(date.to_datetime(*time));
                        break;
                    }
                    date = date.tomorrow().ok()?;
                }
                found
            }
            Rule::Monthly { .. } | Rule::MonthDays { .. } => {
                let this = self.in_month(from.date())?;
                if this >= from {
                    Some(this)
                } else {
                    let next = from.date().last_of_month().tomorrow().ok()?;
                    self.in_month(next)
                }
            }
        }?;
        match self.last {
            Some(last) if key > last => None,
            _ => Some(key),
        }
    }

    /// The last key at or before `until`.
    pub(super) fn last_until(&self, until: DateTime) -> Option<DateTime> {
        let until = match self.last {
            Some(last) => until.min(last),
            None => until,
        };
        match &self.rule {
            Rule::Once(at) => Some(*at).filter(|at| *at <= until),
            Rule::Every {
                start,
                period_minutes,
            } => {
                if until < *start {
                    return None;
                }
                let period = u128::from(*period_minutes) * 60_000_000_000;
                let since = u128::try_from(until.duration_since(*start).as_nanos()).ok()?;
                step(*start, since / period, *period_minutes)
            }
            Rule::Weekly { days, time } => {
                let mut date = until.date();
                if date.to_datetime(*time) > until {
                    date = date.yesterday().ok()?;
                }
                for _ in 0..7 {
                    if days[date.weekday().to_monday_zero_offset().unsigned_abs() as usize] {
                        return Some(date.to_datetime(*time));
                    }
                    date = date.yesterday().ok()?;
                }
                None
            }
            Rule::Monthly { .. } | Rule::MonthDays { .. } => {
                let this = self.in_month(until.date())?;
                if this <= until {
                    Some(this)
                } else {
                    let previous = until.date().first_of_month().yesterday().ok()?;
                    self.in_month(previous)
                }
            }
        }
    }

    /// A monthly rule's key in the month of `date`.
    fn in_month(&self, date: Date) -> Option<DateTime> {
        match &self.rule {
            Rule::Monthly { day, time } => {
                let day = (*day).min(date.days_in_month());
                Some(
                    Date::new(date.year(), date.month(), day)
                        .ok()?
                        .to_datetime(*time),
                )
            }
            Rule::MonthDays { nth, weekday, time } => Some(
                date.nth_weekday_of_month(*nth, *weekday)
                    .ok()?
                    .to_datetime(*time),
            ),
            _ => None,
        }
    }
}

/// `start + n × period` civil minutes; None if out of jiff's range.
fn step(start: DateTime, n: u128, period_minutes: u64) -> Option<DateTime> {
    // jiff adds at most about 8000 years of duration to a date-time at once, less than its
    // range of dates spans, so longer steps go in parts.
    const PART_MINUTES: u64 = 2_000_000 * 24 * 60;
    let mut minutes = u64::try_from(n.checked_mul(u128::from(period_minutes))?).ok()?;
    let mut at = start;
    // Each part moves 2 million days and the range holds about 7.3 million: five parts
    // leave it.
    for _ in 0..5 {
        let part = minutes.min(PART_MINUTES);
        at = at
            .checked_add(SignedDuration::try_from_mins(i64::try_from(part).ok()?)?)
            .ok()?;
        minutes -= part;
        if minutes == 0 {
            return Some(at);
        }
    }
    None
}

/// Where a `cancel_from` ends the keys.
enum Bound {
    /// The first civil minute that is no longer a key.
    At(DateTime),
    /// Every date-time jiff knows is before it.
    Never,
}

/// The first real civil minute at or after `at` in the order of `LocalDateTime`, which may
/// name no real date or time (month 13, February 30, 24:00): the keys before it are exactly
/// those before `at`.
fn first_minute_from(at: LocalDateTime) -> Bound {
    let year = at.year;
    let month = i8::try_from(at.month).unwrap_or(i8::MAX);
    let day = i8::try_from(at.day).unwrap_or(i8::MAX);
    let start_of = |date: Date| Bound::At(date.to_datetime(Time::midnight()));
    if year < Date::MIN.year() {
        return Bound::At(DateTime::MIN);
    }
    if year > Date::MAX.year() {
        return Bound::Never;
    }
    let Ok(first_of_year) = Date::new(year, 1, 1) else {
        return Bound::Never;
    };
    if month < 1 {
        return start_of(first_of_year);
    }
    if month > 12 {
        return match first_of_year.last_of_year().tomorrow() {
            Ok(next) => start_of(next),
            Err(_) => Bound::Never,
        };
    }
    let Ok(first_of_month) = Date::new(year, month, 1) else {
        return Bound::Never;
    };
    if day < 1 {
        return start_of(first_of_month);
    }
    if day > first_of_month.days_in_month() {
        return match first_of_month.last_of_month().tomorrow() {
            Ok(next) => start_of(next),
            Err(_) => Bound::Never,
        };
    }
    let Ok(date) = Date::new(year, month, day) else {
        return Bound::Never;
    };
    let hour = i8::try_from(at.time.hour).unwrap_or(i8::MAX);
    let minute = i8::try_from(at.time.minute).unwrap_or(i8::MAX);
    if hour > 23 {
        return match date.tomorrow() {
            Ok(next) => start_of(next),
            Err(_) => Bound::Never,
        };
    }
    if minute > 59 {
        return match hour {
            23 => match date.tomorrow() {
                Ok(next) => start_of(next),
                Err(_) => Bound::Never,
            },
            _ => match Time::new(hour + 1, 0, 0, 0) {
                Ok(time) => Bound::At(date.to_datetime(time)),
                Err(_) => Bound::Never,
            },
        };
    }
    match Time::new(hour, minute, 0, 0) {
        Ok(time) => Bound::At(date.to_datetime(time)),
        Err(_) => Bound::Never,
    }
}

fn weekday_index(day: Weekday) -> usize {
    match day {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

fn jiff_weekday(day: Weekday) -> JWeekday {
    match day {
        Weekday::Monday => JWeekday::Monday,
        Weekday::Tuesday => JWeekday::Tuesday,
        Weekday::Wednesday => JWeekday::Wednesday,
        Weekday::Thursday => JWeekday::Thursday,
        Weekday::Friday => JWeekday::Friday,
        Weekday::Saturday => JWeekday::Saturday,
        Weekday::Sunday => JWeekday::Sunday,
    }
}

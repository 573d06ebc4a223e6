//! When a task starts: the schedule types of the reference product and their options. The
//! scheduler is `crate::sched`.

use serde::{Deserialize, Serialize};

/// A time of day on the clock of whoever runs the task (the device, or for a selection task
/// the server).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

/// A calendar date and time, without a time zone (local to whoever runs the task).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct LocalDateTime {
    pub year: i16,
    pub month: u8,
    pub day: u8,
    pub time: TimeOfDay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum PeriodUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// Which occurrence of a weekday in a month ("first Monday", "last Tuesday").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum WeekOfMonth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum Schedule {
    /// Never started by the scheduler.
    #[default]
    Manually,
    Once {
        at: LocalDateTime,
    },
    /// Every `every` units from `start`.
    Every {
        every: u32,
        unit: PeriodUnit,
        start: LocalDateTime,
    },
    ByDaysOfWeek {
        days: Vec<Weekday>,
        at: TimeOfDay,
    },
    /// On day `day` of each month; in months without that day, on the last day.
    Monthly {
        day: u8,
        at: TimeOfDay,
    },
    /// E.g. the first Monday of each month.
    MonthDays {
        week: WeekOfMonth,
        weekday: Weekday,
        at: TimeOfDay,
    },
    AtApplicationStart,
    /// When another task of this server completes.
    AfterTask {
        task_id: u64,
    },
    /// On creation.
    Immediately,
}

/// How starts of a task are spread so that many devices do not reach the server at once.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub enum RandomDelay {
    #[default]
    Off,
    /// Each device starts at a moment of its own within this many seconds after the
    /// scheduled time.
    Within { seconds: u32 },
    /// The server chooses the window from the number of devices the task targets
    /// (`sched::automatic_window_secs`).
    Automatic,
}

/// The longest randomized delay and time limit: a week.
pub const MAX_OPTION_SECS: u32 = 7 * 24 * 3600;

/// The advanced scheduling options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleOptions {
    /// Start a task that missed its time as soon as the device is back (off by default).
    pub run_missed: bool,
    pub random_delay: RandomDelay,
    /// Stop the task if it runs longer than this (failed by timeout).
    pub time_limit_secs: Option<u32>,
    /// Cancel the schedule from this date on.
    pub cancel_from: Option<LocalDateTime>,
}

// Parsing and display.

/// The schedule forms [`Schedule::parse`] accepts, for error messages.
const SCHEDULE_FORMS: &str = "manual, immediately, app-start, after:TASK_ID, \
     once:YYYY-MM-DDTHH:MM, every:N(m|h|d|w)@YYYY-MM-DDTHH:MM, weekly:mon,fri@HH:MM, \
     monthly:DAY@HH:MM or monthday:(first|second|third|fourth|last)-WEEKDAY@HH:MM";

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

const WEEKS: [WeekOfMonth; 5] = [
    WeekOfMonth::First,
    WeekOfMonth::Second,
    WeekOfMonth::Third,
    WeekOfMonth::Fourth,
    WeekOfMonth::Last,
];

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// The three-letter form used in specs: `mon`, `tue`, ...
fn weekday_short(day: Weekday) -> String {
    weekday_name(day)[..3].to_ascii_lowercase()
}

/// `mon` or `monday`, any case.
fn parse_weekday(text: &str) -> Option<Weekday> {
    let text = text.trim();
    WEEKDAYS.into_iter().find(|day| {
        let name = weekday_name(*day);
        text.eq_ignore_ascii_case(name) || text.eq_ignore_ascii_case(&name[..3])
    })
}

fn week_name(week: WeekOfMonth) -> &'static str {
    match week {
        WeekOfMonth::First => "first",
        WeekOfMonth::Second => "second",
        WeekOfMonth::Third => "third",
        WeekOfMonth::Fourth => "fourth",
        WeekOfMonth::Last => "last",
    }
}

fn unit_letter(unit: PeriodUnit) -> char {
    match unit {
        PeriodUnit::Minutes => 'm',
        PeriodUnit::Hours => 'h',
        PeriodUnit::Days => 'd',
        PeriodUnit::Weeks => 'w',
    }
}

/// "minute"/"minutes" and so on.
fn unit_name(unit: PeriodUnit, plural: bool) -> &'static str {
    match (unit, plural) {
        (PeriodUnit::Minutes, false) => "minute",
        (PeriodUnit::Minutes, true) => "minutes",
        (PeriodUnit::Hours, false) => "hour",
        (PeriodUnit::Hours, true) => "hours",
        (PeriodUnit::Days, false) => "day",
        (PeriodUnit::Days, true) => "days",
        (PeriodUnit::Weeks, false) => "week",
        (PeriodUnit::Weeks, true) => "weeks",
    }
}

/// `HH:MM`, 24-hour clock.
fn time_text(time: TimeOfDay) -> String {
    format!("{:02}:{:02}", time.hour, time.minute)
}

/// `YYYY-MM-DD HH:MM`, for people.
fn date_time_text(at: LocalDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {}",
        at.year,
        at.month,
        at.day,
        time_text(at.time)
    )
}

/// A number of 1 to `max_digits` ASCII digits (no sign, no spaces).
fn number(text: &str, max_digits: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `HH:MM` (one or two digits each); `whole` is the text to name in errors.
fn parse_time(text: &str, whole: &str) -> Result<TimeOfDay, String> {
    let text = text.trim();
    let bad = || format!("{whole:?}: {text:?} is not a time of day; give HH:MM, e.g. 18:00");
    let (hour, minute) = text.split_once(':').ok_or_else(bad)?;
    let hour = number(hour, 2).ok_or_else(bad)?;
    let minute = number(minute, 2).ok_or_else(bad)?;
    if hour >= 24 || minute >= 60 {
        return Err(format!(
            "{whole:?}: {text:?} is not a time of day; hours go from 00 to 23 and minutes from \
             00 to 59"
        ));
    }
    Ok(TimeOfDay {
        hour: hour as u8,
        minute: minute as u8,
    })
}

impl LocalDateTime {
    /// `YYYY-MM-DDTHH:MM` (a real calendar date). A space may stand for the 'T'.
    pub fn parse(text: &str) -> Result<LocalDateTime, String> {
        let text = text.trim();
        let bad = || {
            format!("{text:?}: not a date and time; give YYYY-MM-DDTHH:MM, e.g. 2026-12-01T18:00")
        };
        let (date, time) = text.split_once(['T', 't', ' ']).ok_or_else(bad)?;
        let mut parts = date.split('-');
        let (Some(year), Some(month), Some(day), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if year.len() != 4 {
            return Err(bad());
        }
        let year = number(year, 4).ok_or_else(bad)?;
        let month = number(month, 2).ok_or_else(bad)?;
        let day = number(day, 2).ok_or_else(bad)?;
        if !(1..=12).contains(&month) {
            return Err(format!(
                "{text:?}: there is no month {month}; months go from 01 to 12"
            ));
        }
        // Four digits and 1..=12 fit.
        let (year, month, day) = (year as i16, month as i8, day as i8);
        let first = jiff::civil::Date::new(year, month, 1).map_err(|_| bad())?;
        if jiff::civil::Date::new(year, month, day).is_err() {
            return Err(format!(
                "{text:?}: there is no such date; {} has {} days",
                first.strftime("%B %Y"),
                first.days_in_month()
            ));
        }
        let time = parse_time(time, text)?;
        Ok(LocalDateTime {
            year,
            month: month as u8,
            day: day as u8,
            time,
        })
    }
}

impl std::fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{}",
            self.year,
            self.month,
            self.day,
            time_text(self.time)
        )
    }
}

impl Schedule {
    /// Whether the schedule names dates and times (once, every, weekly, monthly, month
    /// days), as opposed to a start by hand, on creation, at application start or after
    /// another task.
    pub fn is_timed(&self) -> bool {
        matches!(
            self,
            Schedule::Once { .. }
                | Schedule::Every { .. }
                | Schedule::ByDaysOfWeek { .. }
                | Schedule::Monthly { .. }
                | Schedule::MonthDays { .. }
        )
    }

    /// `manual`, `immediately`, `app-start`, `after:TASK_ID`, `once:YYYY-MM-DDTHH:MM`,
    /// `every:N(m|h|d|w)[@YYYY-MM-DDTHH:MM]`, `weekly:mon,fri@HH:MM`, `monthly:DAY@HH:MM`,
    /// `monthday:(first|second|third|fourth|last)-WEEKDAY@HH:MM`.
    ///
    /// Keywords are case-insensitive. `every` needs its start (`@YYYY-MM-DDTHH:MM`): the
    /// model has no clock to start from "now".
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let spec = spec.trim();
        let (keyword, rest) = match spec.split_once(':') {
            Some((keyword, rest)) => (keyword.trim(), Some(rest.trim())),
            None => (spec, None),
        };
        let keyword = keyword.to_ascii_lowercase();
        let unknown = || format!("{spec:?}: not a schedule; use one of {SCHEDULE_FORMS}");
        let Some(rest) = rest else {
            return match keyword.as_str() {
                "manual" | "manually" => Ok(Schedule::Manually),
                "immediately" => Ok(Schedule::Immediately),
                "app-start" => Ok(Schedule::AtApplicationStart),
                "after" | "once" | "every" | "weekly" | "monthly" | "monthday" => Err(format!(
                    "{spec:?}: {keyword} needs more after ':'; use one of {SCHEDULE_FORMS}"
                )),
                _ => Err(unknown()),
            };
        };
        // Splits `what@when`; `example` shows the whole form.
        let at = |example: &str| -> Result<(&str, &str), String> {
            rest.split_once('@')
                .map(|(what, when)| (what.trim(), when.trim()))
                .ok_or_else(|| format!("{spec:?}: give the time after '@', e.g. {example}"))
        };
        match keyword.as_str() {
            "after" => {
                let task_id = Some(rest)
                    .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|id| id.parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!("{spec:?}: give a task id after 'after:', e.g. after:4")
                    })?;
                Ok(Schedule::AfterTask { task_id })
            }
            "once" => Ok(Schedule::Once {
                at: LocalDateTime::parse(rest)?,
            }),
            "every" => {
                let example = "every:15m@2026-12-01T08:00";
                let Some((period, start)) = rest.split_once('@') else {
                    return Err(format!(
                        "{spec:?}: give the first start after '@' as YYYY-MM-DDTHH:MM, e.g. \
                         {example}"
                    ));
                };
                let period = period.trim();
                let bad = || {
                    format!(
                        "{spec:?}: the period is a number and a unit: m (minutes), h (hours), \
                         d (days) or w (weeks), e.g. {example}"
                    )
                };
                let unit_at = period
                    .char_indices()
                    .last()
                    .map(|(i, _)| i)
                    .ok_or_else(bad)?;
                let unit = match period[unit_at..].to_ascii_lowercase().as_str() {
                    "m" => PeriodUnit::Minutes,
                    "h" => PeriodUnit::Hours,
                    "d" => PeriodUnit::Days,
                    "w" => PeriodUnit::Weeks,
                    _ => return Err(bad()),
                };
                let every = number(period[..unit_at].trim(), 9).ok_or_else(bad)?;
                if every == 0 {
                    return Err(format!(
                        "{spec:?}: the period must be at least 1, e.g. {example}"
                    ));
                }
                Ok(Schedule::Every {
                    every,
                    unit,
                    start: LocalDateTime::parse(start)?,
                })
            }
            "weekly" => {
                let (days_text, time) = at("weekly:mon,fri@18:00")?;
                let mut days = Vec::new();
                for name in days_text.split(',') {
                    let day = parse_weekday(name).ok_or_else(|| {
                        format!(
                            "{spec:?}: {:?} is not a weekday; give days as mon, tue, wed, thu, \
                             fri, sat, sun (or in full), separated by commas",
                            name.trim()
                        )
                    })?;
                    days.push(day);
                }
                days.sort();
                days.dedup();
                Ok(Schedule::ByDaysOfWeek {
                    days,
                    at: parse_time(time, spec)?,
                })
            }
            "monthly" => {
                let (day, time) = at("monthly:15@09:00")?;
                let day = number(day, 2)
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| {
                        format!("{spec:?}: the day of the month goes from 1 to 31, e.g. monthly:15@09:00")
                    })?;
                Ok(Schedule::Monthly {
                    day: day as u8,
                    at: parse_time(time, spec)?,
                })
            }
            "monthday" => {
                let example = "monthday:first-mon@09:00";
                let (which, time) = at(example)?;
                let bad = || {
                    format!(
                        "{spec:?}: give first, second, third, fourth or last, a '-' and a \
                         weekday, e.g. {example}"
                    )
                };
                let (week, day) = which.split_once('-').ok_or_else(bad)?;
                let week = WEEKS
                    .into_iter()
                    .find(|w| week.trim().eq_ignore_ascii_case(week_name(*w)))
                    .ok_or_else(bad)?;
                let weekday = parse_weekday(day).ok_or_else(bad)?;
                Ok(Schedule::MonthDays {
                    week,
                    weekday,
                    at: parse_time(time, spec)?,
                })
            }
            _ => Err(unknown()),
        }
    }

    /// The schedule in the form [`Schedule::parse`] reads.
    pub fn spec(&self) -> String {
        match self {
            Schedule::Manually => "manual".into(),
            Schedule::Immediately => "immediately".into(),
            Schedule::AtApplicationStart => "app-start".into(),
            Schedule::AfterTask { task_id } => format!("after:{task_id}"),
            Schedule::Once { at } => format!("once:{at}"),
            Schedule::Every { every, unit, start } => {
                format!("every:{every}{}@{start}", unit_letter(*unit))
            }
            Schedule::ByDaysOfWeek { days, at } => {
                let days: Vec<String> = days.iter().map(|d| weekday_short(*d)).collect();
                format!("weekly:{}@{}", days.join(","), time_text(*at))
            }
            Schedule::Monthly { day, at } => format!("monthly:{day}@{}", time_text(*at)),
            Schedule::MonthDays { week, weekday, at } => format!(
                "monthday:{}-{}@{}",
                week_name(*week),
                weekday_short(*weekday),
                time_text(*at)
            ),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Manually => f.write_str("manually"),
            Schedule::Immediately => f.write_str("immediately on creation"),
            Schedule::AtApplicationStart => {
                f.write_str("at application start (the agent's first start each day)")
            }
            Schedule::AfterTask { task_id } => write!(f, "after task #{task_id} completes"),
            Schedule::Once { at } => write!(f, "once at {}", date_time_text(*at)),
            Schedule::Every { every, unit, start } => {
                let start = date_time_text(*start);
                if *every == 1 {
                    write!(f, "every {} from {start}", unit_name(*unit, false))
                } else {
                    write!(f, "every {every} {} from {start}", unit_name(*unit, true))
                }
            }
            Schedule::ByDaysOfWeek { days, at } if days.is_empty() => {
                write!(f, "weekly at {} on no day (never runs)", time_text(*at))
            }
            Schedule::ByDaysOfWeek { days, at } => {
                let names: Vec<&str> = days.iter().map(|d| weekday_name(*d)).collect();
                write!(f, "every {} at {}", names.join(", "), time_text(*at))
            }
            Schedule::Monthly { day, at } => {
                write!(f, "monthly on day {day} at {}", time_text(*at))?;
                if *day > 28 {
                    f.write_str(" (the last day in shorter months)")?;
                }
                Ok(())
            }
            Schedule::MonthDays { week, weekday, at } => write!(
                f,
                "on the {} {} of each month at {}",
                week_name(*week),
                weekday_name(*weekday),
                time_text(*at)
            ),
        }
    }
}

/// A duration for people: "45 seconds", "2 hours", "1 hour 30 minutes".
pub fn duration_text(seconds: u32) -> String {
    let plural = |n: u32, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let parts: Vec<String> = [(hours, "hour"), (minutes, "minute"), (seconds, "second")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| plural(n, unit))
        .collect();
    if parts.is_empty() {
        "0 seconds".into()
    } else {
        parts.join(" ")
    }
}

/// A duration as an administrator types it: `90s`, `15m`, `2h`, `1:30` (hours and minutes),
/// or a bare number of minutes. `what` names the option in errors; the result is at most
/// [`MAX_OPTION_SECS`].
pub fn parse_duration(text: &str, what: &str) -> Result<u32, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{what}: {text:?} is not a duration; give minutes (15), or a number with s, m or h \
             (90s, 15m, 2h), or H:MM (1:30)"
        )
    };
    let seconds: u64 = if let Some((hours, minutes)) = text.split_once(':') {
        let hours = u64::from(number(hours, 4).ok_or_else(bad)?);
        let minutes = number(minutes, 2).filter(|m| *m < 60).ok_or_else(bad)?;
        hours * 3600 + u64::from(minutes) * 60
    } else {
        let (digits, unit) = match text.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
            _ => (text, 'm'),
        };
        let n = u64::from(number(digits.trim(), 9).ok_or_else(bad)?);
        match unit {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            _ => return Err(bad()),
        }
    };
    if seconds > u64::from(MAX_OPTION_SECS) {
        return Err(format!(
            "{what}: {text:?} is longer than the most allowed, {}",
            duration_text(MAX_OPTION_SECS)
        ));
    }
    // At most MAX_OPTION_SECS, which fits.
    Ok(seconds as u32)
}

impl RandomDelay {
    /// `off` (or 0), `auto`, or a window as [`parse_duration`] reads it.
    pub fn parse(text: &str) -> Result<RandomDelay, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(RandomDelay::Off),
            "auto" | "automatic" => Ok(RandomDelay::Automatic),
            _ => match parse_duration(text, "the randomized delay")? {
                0 => Ok(RandomDelay::Off),
                seconds => Ok(RandomDelay::Within { seconds }),
            },
        }
    }
}

/// A time limit: `none` (or 0), or a duration as [`parse_duration`] reads it.
pub fn parse_time_limit(text: &str) -> Result<Option<u32>, String> {
    if matches!(text.trim().to_ascii_lowercase().as_str(), "none" | "off") {
        return Ok(None);
    }
    Ok(Some(parse_duration(text, "the time limit")?).filter(|s| *s > 0))
}

impl std::fmt::Display for RandomDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RandomDelay::Off => f.write_str("off"),
            RandomDelay::Within { seconds } => write!(f, "within {}", duration_text(*seconds)),
            RandomDelay::Automatic => f.write_str("automatic (by the number of devices)"),
        }
    }
}

impl std::fmt::Display for ScheduleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run missed: {}; random delay: {}; time limit: ",
            if self.run_missed { "yes" } else { "no" },
            self.random_delay
        )?;
        match self.time_limit_secs {
            None => f.write_str("none")?,
            Some(n) => f.write_str(&duration_text(n))?,
        }
        f.write_str("; cancel schedule: ")?;
        match self.cancel_from {
            None => f.write_str("never"),
            Some(at) => write!(f, "from {}", date_time_text(at)),
        }
    }
}

#[cfg(test)]
mod tests;

//! When a task starts: the schedule types of the reference product and their options. Stored
//! with the task now; the scheduler that acts on them is not built yet (README).

use serde::{Deserialize, Serialize};

/// A time of day on the clock of whoever runs the task (the device, or for a selection task
/// the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

/// A calendar date and time, without a time zone (local to whoever runs the task).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDateTime {
    pub year: i16,
    pub month: u8,
    pub day: u8,
    pub time: TimeOfDay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeriodUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeekOfMonth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// The advanced scheduling options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleOptions {
    /// Start a task that missed its time as soon as the device is back (off by default).
    pub run_missed: bool,
    /// Spread starts at random over this many minutes (0: off).
    pub random_delay_minutes: u32,
    /// Stop the task if it runs longer than this (failed by timeout).
    pub time_limit_minutes: Option<u32>,
    /// Cancel the schedule from this date on.
    pub cancel_from: Option<LocalDateTime>,
}

// Parsing and display. (Bodies being written; signatures are the contract.)

impl Schedule {
    /// `manual`, `immediately`, `app-start`, `after:TASK_ID`, `once:YYYY-MM-DDTHH:MM`,
    /// `every:N(m|h|d|w)[@YYYY-MM-DDTHH:MM]`, `weekly:mon,fri@HH:MM`, `monthly:DAY@HH:MM`,
    /// `monthday:(first|second|third|fourth|last)-WEEKDAY@HH:MM`.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        match spec {
            "manual" => Ok(Schedule::Manually),
            other => Err(format!("{other:?}: schedules are not parsed yet")),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl LocalDateTime {
    /// `YYYY-MM-DDTHH:MM` (a real calendar date).
    pub fn parse(text: &str) -> Result<LocalDateTime, String> {
        Err(format!("{text:?}: not parsed yet"))
    }
}

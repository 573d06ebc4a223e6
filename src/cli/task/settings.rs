//! A task's general settings: application, restart, schedule and its options, account,
//! notifications, history; and where the account's password is read from.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::model::schedule::{LocalDateTime, RandomDelay, Schedule, ScheduleOptions};
use crate::model::task::{Notify, RestartPolicy};
use crate::wire::msg::{AccountSpec, Secret};

/// Minutes between two questions to the user when `--restart ask` gives none.
const DEFAULT_ASK_REPEAT_MINUTES: u16 = 5;
const MAX_ASK_REPEAT_MINUTES: u16 = 1440;

/// The general settings. When creating, each one not given has its default.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Settings")]
pub(super) struct SettingsArgs {
    /// The application the task belongs to: a task starts on a device only if it is
    /// running there [default: the agent for device tasks, the Administration Server for
    /// server tasks].
    #[arg(long, value_name = "NAME")]
    pub(super) application: Option<String>,
    /// Restart of the device when a run needs one: no, yes, or ask[:REPEAT_MIN[:FORCE_AFTER_MIN]]
    /// (ask the user every REPEAT_MIN minutes, 1 to 1440, default 5; restart anyway after
    /// FORCE_AFTER_MIN minutes) [default: no].
    #[arg(long, value_name = "POLICY", value_parser = parse_restart)]
    pub(super) restart: Option<RestartPolicy>,
    /// When the task starts: manual, immediately, app-start, after:TASK_ID,
    /// once:YYYY-MM-DDTHH:MM, every:N(m|h|d|w)[@YYYY-MM-DDTHH:MM], weekly:mon,fri@HH:MM,
    /// monthly:DAY@HH:MM, monthday:(first|second|third|fourth|last)-WEEKDAY@HH:MM
    /// [default: manual].
    #[arg(long, value_name = "SPEC", value_parser = Schedule::parse)]
    pub(super) schedule: Option<Schedule>,
    /// Start a run that missed its time as soon as the device is back [default: off;
    /// --run-missed=false turns it off again].
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub(super) run_missed: Option<bool>,
    /// Spread starts at random over a window, so that many devices do not reach the server
    /// at once: minutes (10), a number with s, m or h (90s, 15m, 2h), H:MM, "auto" (the
    /// server chooses the window from the number of devices), or "off" [default: off].
    #[arg(long, value_name = "WINDOW", value_parser = RandomDelay::parse)]
    random_delay: Option<RandomDelay>,
    /// Stop a run that takes longer than this on a device (it ends "failed by timeout"):
    /// minutes (90), a number with s, m or h (45s, 90m, 2h), H:MM (1:30), or "none"
    /// [default: none].
    #[arg(long, value_name = "DURATION", value_parser = parse_time_limit)]
    stop_after: Option<TimeLimit>,
    /// Cancel the schedule from this date and time on: YYYY-MM-DDTHH:MM, or "never"
    /// [default: never].
    #[arg(long, value_name = "DATETIME", value_parser = parse_cancel_from)]
    cancel_schedule_from: Option<CancelFrom>,
    /// Run the task under this account instead of the default one (that of the application
    /// running it). Its password is asked for on the terminal unless --password-stdin or
    /// --no-password is given; it is never accepted as an argument.
    #[arg(long, value_name = "NAME")]
    pub(super) account: Option<String>,
    /// With --account: read the account's password from the first line of standard input.
    #[arg(long, requires = "account", conflicts_with = "no_password")]
    password_stdin: bool,
    /// With --account: the account has no password.
    #[arg(long, requires = "account")]
    no_password: bool,
    /// Which run results the administrator is notified of (as events) [default: errors].
    #[arg(long, value_name = "WHICH")]
    pub(super) notify: Option<NotifyArg>,
    /// Keep the task's run results on the server for N days, 1 to 3650 [default: 30].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub(super) keep_days: Option<u32>,
}

impl SettingsArgs {
    pub(super) fn options_given(&self) -> bool {
        self.run_missed.is_some()
            || self.random_delay.is_some()
            || self.stop_after.is_some()
            || self.cancel_schedule_from.is_some()
    }

    /// `base` with the schedule options given here.
    pub(super) fn schedule_options(&self, base: &ScheduleOptions) -> ScheduleOptions {
        ScheduleOptions {
            run_missed: self.run_missed.unwrap_or(base.run_missed),
            random_delay: self.random_delay.unwrap_or(base.random_delay),
            time_limit_secs: match self.stop_after {
                Some(TimeLimit(limit)) => limit,
                None => base.time_limit_secs,
            },
            cancel_from: match self.cancel_schedule_from {
                Some(CancelFrom(at)) => at,
                None => base.cancel_from,
            },
        }
    }

    /// The account given, with its password read through `read` (only after everything else
    /// was checked, so nobody types a password for a command that is refused anyway).
    pub(super) fn account(
        &self,
        read: &mut PasswordReader<'_>,
    ) -> anyhow::Result<Option<AccountSpec>> {
        let Some(name) = &self.account else {
            return Ok(None);
        };
        if name.trim().is_empty() {
            bail!("--account must not be empty");
        }
        let from = if self.no_password {
            PasswordFrom::Nowhere
        } else if self.password_stdin {
            PasswordFrom::Stdin
        } else {
            PasswordFrom::Prompt
        };
        let password = match from {
            PasswordFrom::Nowhere => None,
            from => Some(read(from, name)?),
        };
        Ok(Some(AccountSpec {
            name: name.clone(),
            password,
        }))
    }
}

/// `--stop-after`: a duration, or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TimeLimit(Option<u32>);

fn parse_time_limit(text: &str) -> Result<TimeLimit, String> {
    crate::model::schedule::parse_time_limit(text).map(TimeLimit)
}

/// `--cancel-schedule-from`: a date, or `never` (no cancellation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CancelFrom(Option<LocalDateTime>);

fn parse_cancel_from(text: &str) -> Result<CancelFrom, String> {
    if matches!(text, "never" | "none") {
        return Ok(CancelFrom(None));
    }
    LocalDateTime::parse(text).map(|at| CancelFrom(Some(at)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum NotifyArg {
    /// Every device's result.
    All,
    /// Only failures and warnings.
    Errors,
    /// No notifications.
    #[value(name = "none")]
    Off,
}

impl From<NotifyArg> for Notify {
    fn from(n: NotifyArg) -> Notify {
        match n {
            NotifyArg::All => Notify::All,
            NotifyArg::Errors => Notify::ErrorsOnly,
            NotifyArg::Off => Notify::Off,
        }
    }
}

/// Parses `no`, `yes`, or `ask[:REPEAT_MIN[:FORCE_AFTER_MIN]]`.
pub(super) fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    let usage = || format!("{text:?}: use no, yes, or ask[:REPEAT_MIN[:FORCE_AFTER_MIN]]");
    let mut parts = text.split(':');
    let kind = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    match (kind, rest.len()) {
        ("no", 0) => Ok(RestartPolicy::DoNotRestart),
        ("yes", 0) => Ok(RestartPolicy::Restart),
        ("ask", 0..=2) => {
            let repeat_minutes = match rest.first() {
                None | Some(&"") => DEFAULT_ASK_REPEAT_MINUTES,
                Some(repeat) => repeat
                    .parse::<u16>()
                    .ok()
                    .filter(|m| (1..=MAX_ASK_REPEAT_MINUTES).contains(m))
                    .ok_or_else(|| {
                        format!(
                            "{text:?}: REPEAT_MIN must be 1 to {MAX_ASK_REPEAT_MINUTES} minutes"
                        )
                    })?,
            };
            let force_after_minutes = match rest.get(1) {
                None => None,
                Some(force) => Some(force.parse::<u32>().ok().filter(|m| *m > 0).ok_or_else(
                    || format!("{text:?}: FORCE_AFTER_MIN must be a number of minutes above 0"),
                )?),
            };
            Ok(RestartPolicy::AskUser {
                repeat_minutes,
                force_after_minutes,
            })
        }
        _ => Err(usage()),
    }
}

/// Where a task account's password comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PasswordFrom {
    Stdin,
    Prompt,
    Nowhere,
}

/// Reads the password of the account named, from where it is told.
pub(super) type PasswordReader<'a> = dyn FnMut(PasswordFrom, &str) -> anyhow::Result<Secret> + 'a;

/// Reads a task account's password from stdin's first line or from the terminal; never from
/// the environment (`CANOPY_PASSWORD` is the administrator's own).
pub(super) fn read_account_password(from: PasswordFrom, account: &str) -> anyhow::Result<Secret> {
    let password = match from {
        PasswordFrom::Nowhere => bail!("no password was asked for"),
        PasswordFrom::Stdin => first_line(std::io::stdin().lock())
            .context("reading the account's password from standard input")?,
        PasswordFrom::Prompt => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "no password for account {account}: use --password-stdin, --no-password, \
                     or run on a terminal to be asked"
                );
            }
            let password = rpassword::prompt_password(format!("Password of account {account}: "))?;
            if rpassword::prompt_password("Again: ")? != password {
                bail!("the two passwords differ");
            }
            password
        }
    };
    if password.is_empty() {
        bail!(
            "the password of account {account} is empty: use --no-password for an account without one"
        );
    }
    Ok(Secret(password))
}

/// The first line of `input`, without its line end.
pub(super) fn first_line(mut input: impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

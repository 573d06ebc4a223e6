//! `canopy task ...`: tasks of the server you are logged in to: what they do, where and when,
//! and how each run went.
//!
//! Tasks are named by their display name or their id. Everything that can be checked without
//! the server (flags, the restart policy, the schedule, a device list file) is checked before
//! connecting, and before a password is asked for.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::builder::PossibleValue;
use clap::{Args, Subcommand, ValueEnum};

use super::client::AdminClient;
use super::{JsonFlag, call, print_done, print_json, table};
use crate::model::format_time;
use crate::model::schedule::{LocalDateTime, Schedule, ScheduleOptions};
use crate::model::scope::{self, Scope};
use crate::model::task::{
    DEFAULT_STORE_HISTORY_DAYS, Details, DeviceRunRecord, DeviceState, Notify, RestartPolicy,
    RunCounters, RunState, TaskKind, TaskPayload, TaskType,
};
use crate::wire::msg::{
    AccountSpec, AdminRequest, AdminResponse, RunView, ScopeSpec, Secret, TaskChanges, TaskRequest,
    TaskSpec, TaskView,
};

/// Seconds a command may run on a device unless `--time-limit` says otherwise.
const DEFAULT_COMMAND_TIME_LIMIT_SECS: u32 = 3600;
const DEFAULT_SIMULATE_DURATION_MS: u32 = 1000;
const DEFAULT_OUTCOMES: Outcomes = Outcomes {
    succeeded: 90,
    warning: 5,
    failed: 5,
};
/// Minutes between two questions to the user when `--restart ask` gives none.
const DEFAULT_ASK_REPEAT_MINUTES: u16 = 5;
const MAX_ASK_REPEAT_MINUTES: u16 = 1440;
/// The largest device list file `--devices-file` reads.
const MAX_DEVICES_FILE_BYTES: u64 = 1024 * 1024;
/// How often `task start --wait` asks for the run's statistics.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often `--wait` prints a progress line when stderr is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(2);
const PROGRESS_BAR_WIDTH: usize = 20;

const CREATE_EXAMPLES: &str = "\
Examples:
  canopy task create --name 'Update package lists' --type command \\
      --program /usr/bin/apt-get --arg update --group 'Managed devices'
  canopy task create --name 'Scan /srv' --type scan --path /srv \\
      --blocklist <SHA256> --devices 10.0.0.0/24,web-1 --schedule 'weekly:fri@19:00'
  canopy task create --name 'Nightly backup' --type backup --server --schedule 'every:1d@2025-01-01T02:00'
  canopy task create --name Inventory --type inventory --where tag=linux --where connected=yes

A task's account password is never given on the command line: with --account NAME it is
read from standard input (--password-stdin) or asked for on the terminal.";

const EDIT_EXAMPLES: &str = "\
Examples:
  canopy task edit 'Scan /srv' --schedule manual --notify all
  canopy task edit 12 --time-limit 600          (keeps the command's program and arguments)
  canopy task edit 12 --run-missed=false --random-delay 0
  canopy task edit 12 --account svc-backup --password-stdin < password.txt
  canopy task edit 12 --default-account";

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Every task, grouped by the application it belongs to.
    List(JsonFlag),
    /// Every property of one task.
    Show {
        /// The task's name or id.
        task: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a task: what it does (--type and its parameters), where (exactly one scope)
    /// and its settings.
    #[command(after_help = CREATE_EXAMPLES)]
    Create(Box<CreateArgs>),
    /// Change a task: each flag given replaces that setting, the others stay as they are.
    ///
    /// The defaults shown are those of `task create`; here a flag not given leaves its
    /// setting as it is.
    #[command(after_help = EDIT_EXAMPLES)]
    Edit(Box<EditArgs>),
    /// Delete a task.
    Delete {
        /// The task's name or id.
        task: String,
    },
    /// Start a run of a task now.
    Start {
        /// The task's name or id.
        task: String,
        /// Run on these devices (IP addresses, ranges, host or DNS names, comma-separated):
        /// the task's scope becomes this list first; its schedule is not changed.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        devices: Option<Vec<String>>,
        /// Show the run's progress until it is completed or stopped, then its statistics.
        /// Ctrl-C stops waiting; the run goes on.
        #[arg(long)]
        wait: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop the task's running run.
    Stop {
        /// The task's name or id.
        task: String,
    },
    /// The per-device records of a run (the last run unless --run is given).
    Results {
        /// The task's name or id.
        task: String,
        /// The run's id.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<u64>,
        /// Only the devices in this state.
        #[arg(long)]
        state: Option<StateArg>,
        /// Also what each run produced: exit code and output, scan matches, inventory.
        #[arg(long)]
        details: bool,
        /// The records held by this server of the tree, as the PATH column of
        /// `task stats --by-server` shows it (e.g. "primary/branch-1/branch-1a"); by
        /// default those of the server asked.
        #[arg(long, value_name = "PATH")]
        server: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A run's statistics: devices per state, restarts needed, completion (the last run
    /// unless --run is given), totalled over the servers below that take part.
    Stats {
        /// The task's name or id.
        task: String,
        /// The run's id.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<u64>,
        /// One row per server of the tree taking part, then the totals.
        #[arg(long)]
        by_server: bool,
        /// Print JSON instead of text (it always has the per-server rows).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The task's display name (at most 100 characters).
    #[arg(long)]
    name: String,
    /// What the task does.
    #[arg(long = "type", value_name = "TYPE")]
    task_type: TypeArg,
    /// Print the created task as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    params: TypeParams,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    settings: SettingsArgs,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    /// The task's name or id.
    task: String,
    /// A new display name.
    #[arg(long)]
    name: Option<String>,
    /// A new type: its parameters are then those given here, or their defaults. Without
    /// --type, the parameters given change those of the task's current type.
    #[arg(long = "type", value_name = "TYPE")]
    task_type: Option<TypeArg>,
    /// Print the changed task as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    params: TypeParams,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Run the task under the default account again (that of the application running it).
    #[arg(long, help_heading = "Settings", conflicts_with_all = ["account", "password_stdin", "no_password"])]
    default_account: bool,
}

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    /// Run a program on each device (no shell).
    Command,
    /// Hash the files under paths on each device; report those on a blocklist.
    Scan,
    /// Collect OS, host name, addresses and installed packages of each device.
    Inventory,
    /// For simulated devices: wait, then end with an outcome drawn from weights.
    Simulate,
    /// Administration Server task: a copy of the server's database, taken while it serves.
    Backup,
    /// Administration Server task: compaction of the server's database.
    Maintenance,
}

impl TypeArg {
    fn name(self) -> &'static str {
        match self {
            TypeArg::Command => "command",
            TypeArg::Scan => "scan",
            TypeArg::Inventory => "inventory",
            TypeArg::Simulate => "simulate",
            TypeArg::Backup => "backup",
            TypeArg::Maintenance => "maintenance",
        }
    }

    fn runs_on_server(self) -> bool {
        matches!(self, TypeArg::Backup | TypeArg::Maintenance)
    }

    fn of(task_type: &TaskType) -> TypeArg {
        match task_type {
            TaskType::Device(TaskPayload::Command { .. }) => TypeArg::Command,
            TaskType::Device(TaskPayload::Scan { .. }) => TypeArg::Scan,
            TaskType::Device(TaskPayload::Inventory) => TypeArg::Inventory,
            TaskType::Device(TaskPayload::Simulate { .. }) => TypeArg::Simulate,
            TaskType::Backup { .. } => TypeArg::Backup,
            TaskType::Maintenance => TypeArg::Maintenance,
        }
    }
}

/// The parameters of each type; only those of the task's type may be given.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Type parameters (only those of the task's type)")]
struct TypeParams {
    /// command: the program to run (a path; no shell).
    #[arg(long, value_name = "PROGRAM")]
    program: Option<String>,
    /// command: an argument of the program (repeat for more, in order).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// command: seconds before the program is stopped [default: 3600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..))]
    time_limit: Option<u32>,
    /// scan: a file or directory to scan, recursively (repeat for more; at least one).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// scan: the SHA-256 (hex) of a file to report (repeat for more).
    #[arg(long = "blocklist", value_name = "SHA256", value_parser = parse_sha256)]
    blocklist: Vec<String>,
    /// simulate: milliseconds each simulated run takes [default: 1000].
    #[arg(long, value_name = "MS")]
    duration_ms: Option<u32>,
    /// simulate: weights of the outcomes succeeded,warning,failed [default: 90,5,5].
    #[arg(long, value_name = "S,W,F", value_parser = parse_outcomes)]
    outcomes: Option<Outcomes>,
    /// simulate: percent of runs that need a restart, 0 to 100 [default: 0].
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    need_restart_percent: Option<u8>,
    /// backup: the directory the copy is written to [default: backups/ next to the
    /// server's database].
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<String>,
}

impl TypeParams {
    /// The flags given, each with the type it belongs to.
    fn given(&self) -> Vec<(&'static str, TypeArg)> {
        let mut given = Vec::new();
        let mut add = |is: bool, flag: &'static str, t: TypeArg| {
            if is {
                given.push((flag, t));
            }
        };
        add(self.program.is_some(), "--program", TypeArg::Command);
        add(!self.args.is_empty(), "--arg", TypeArg::Command);
        add(self.time_limit.is_some(), "--time-limit", TypeArg::Command);
        add(!self.paths.is_empty(), "--path", TypeArg::Scan);
        add(!self.blocklist.is_empty(), "--blocklist", TypeArg::Scan);
        add(
            self.duration_ms.is_some(),
            "--duration-ms",
            TypeArg::Simulate,
        );
        add(self.outcomes.is_some(), "--outcomes", TypeArg::Simulate);
        add(
            self.need_restart_percent.is_some(),
            "--need-restart-percent",
            TypeArg::Simulate,
        );
        add(self.backup_dir.is_some(), "--backup-dir", TypeArg::Backup);
        given
    }

    /// The task type `kind` with these parameters; those not given come from `base` when it
    /// is of the same type (editing), or are the defaults.
    fn build(&self, kind: TypeArg, base: Option<&TaskType>) -> anyhow::Result<TaskType> {
        let foreign: Vec<String> = self
            .given()
            .into_iter()
            .filter(|(_, t)| *t != kind)
            .map(|(flag, t)| format!("{flag} (a {} parameter)", t.name()))
            .collect();
        if !foreign.is_empty() {
            bail!(
                "{} {} not apply to a {} task",
                foreign.join(", "),
                if foreign.len() == 1 { "does" } else { "do" },
                kind.name()
            );
        }
        let base = base.filter(|b| TypeArg::of(b) == kind);
        Ok(match kind {
            TypeArg::Command => {
                let (program, args, time_limit_secs) = match base {
                    Some(TaskType::Device(TaskPayload::Command {
                        program,
                        args,
                        time_limit_secs,
                    })) => (Some(program.clone()), args.clone(), *time_limit_secs),
                    _ => (None, Vec::new(), DEFAULT_COMMAND_TIME_LIMIT_SECS),
                };
                let program = self
                    .program
                    .clone()
                    .or(program)
                    .ok_or_else(|| anyhow!("a command task needs --program"))?;
                if program.trim().is_empty() {
                    bail!("--program must not be empty");
                }
                TaskType::Device(TaskPayload::Command {
                    program,
                    args: if self.args.is_empty() {
                        args
                    } else {
                        self.args.clone()
                    },
                    time_limit_secs: self.time_limit.unwrap_or(time_limit_secs),
                })
            }
            TypeArg::Scan => {
                let (paths, blocklist) = match base {
                    Some(TaskType::Device(TaskPayload::Scan { paths, blocklist })) => {
                        (paths.clone(), blocklist.clone())
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                let paths = if self.paths.is_empty() {
                    paths
                } else {
                    self.paths.clone()
                };
                if paths.is_empty() {
                    bail!("a scan task needs at least one --path");
                }
                if paths.iter().any(|p| p.trim().is_empty()) {
                    bail!("--path must not be empty");
                }
                TaskType::Device(TaskPayload::Scan {
                    paths,
                    blocklist: if self.blocklist.is_empty() {
                        blocklist
                    } else {
                        self.blocklist.clone()
                    },
                })
            }
            TypeArg::Inventory => TaskType::Device(TaskPayload::Inventory),
            TypeArg::Simulate => {
                let (duration, outcomes, restart) = match base {
                    Some(TaskType::Device(TaskPayload::Simulate {
                        duration_ms,
                        succeeded,
                        warning,
                        failed,
                        need_restart_percent,
                    })) => (
                        *duration_ms,
                        Outcomes {
                            succeeded: *succeeded,
                            warning: *warning,
                            failed: *failed,
                        },
                        *need_restart_percent,
                    ),
                    _ => (DEFAULT_SIMULATE_DURATION_MS, DEFAULT_OUTCOMES, 0),
                };
                let outcomes = self.outcomes.unwrap_or(outcomes);
                TaskType::Device(TaskPayload::Simulate {
                    duration_ms: self.duration_ms.unwrap_or(duration),
                    succeeded: outcomes.succeeded,
                    warning: outcomes.warning,
                    failed: outcomes.failed,
                    need_restart_percent: self.need_restart_percent.unwrap_or(restart),
                })
            }
            TypeArg::Backup => {
                let directory = match base {
                    Some(TaskType::Backup { directory }) => directory.clone(),
                    _ => None,
                };
                TaskType::Backup {
                    directory: self.backup_dir.clone().or(directory),
                }
            }
            TypeArg::Maintenance => TaskType::Maintenance,
        })
    }
}

/// The weights of a simulated run's outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Outcomes {
    succeeded: u32,
    warning: u32,
    failed: u32,
}

fn parse_outcomes(text: &str) -> Result<Outcomes, String> {
    let usage = || format!("{text:?}: give three weights succeeded,warning,failed, e.g. 90,5,5");
    let weights: Vec<u32> = text
        .split(',')
        .map(|w| w.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| usage())?;
    let [succeeded, warning, failed] = weights[..] else {
        return Err(usage());
    };
    if u64::from(succeeded) + u64::from(warning) + u64::from(failed) == 0 {
        return Err(format!("{text:?}: at least one weight must be above 0"));
    }
    Ok(Outcomes {
        succeeded,
        warning,
        failed,
    })
}

fn parse_sha256(text: &str) -> Result<String, String> {
    let hex = text.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a SHA-256: give 64 hexadecimal digits"
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// Where the task runs. Exactly one when creating; at most one when editing.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Scope (exactly one when creating)")]
struct ScopeArgs {
    /// Group task: the devices of this group and its subgroups (quote paths:
    /// "Managed devices/Branch").
    #[arg(long, value_name = "PATH")]
    group: Option<String>,
    /// With --group: only the group's own devices, not those of its subgroups.
    #[arg(long)]
    no_subgroups: bool,
    /// With --group: not the devices of secondary servers placed in the group.
    #[arg(long)]
    no_secondaries: bool,
    /// Task for specific devices: IP addresses, ranges (a-b or CIDR), host or DNS names,
    /// comma-separated (repeatable; at most 1000). Names match devices the server knows.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    devices: Vec<String>,
    /// Task for specific devices, listed in a text file, one address per line (at most
    /// 1000, file at most 1 MiB).
    #[arg(long, value_name = "FILE")]
    devices_file: Option<PathBuf>,
    /// Task for a device selection (repeatable; all must hold): group=PATH,
    /// subgroups=yes|no, tag=T, os=TEXT, ip=RANGE, app=NAME, connected=yes|no. Runs only on
    /// connected devices, on the server's time.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    conditions: Vec<String>,
    /// Local task: this one device (its name or id).
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// Administration Server task (backup and maintenance; only those).
    #[arg(long)]
    server: bool,
}

impl ScopeArgs {
    fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.group.is_some() {
            given.push("--group");
        }
        if !self.devices.is_empty() {
            given.push("--devices");
        }
        if self.devices_file.is_some() {
            given.push("--devices-file");
        }
        if !self.conditions.is_empty() {
            given.push("--where");
        }
        if self.device.is_some() {
            given.push("--device");
        }
        if self.server {
            given.push("--server");
        }
        given
    }

    /// The scope given, if any; more than one is an error.
    fn build(&self) -> anyhow::Result<Option<ScopeSpec>> {
        let given = self.given();
        if self.group.is_none() {
            for (set, flag) in [
                (self.no_subgroups, "--no-subgroups"),
                (self.no_secondaries, "--no-secondaries"),
            ] {
                if set {
                    bail!("{flag} applies only with --group");
                }
            }
        }
        if given.len() > 1 {
            bail!(
                "give one scope, not several: {} were given",
                given.join(" and ")
            );
        }
        if let Some(path) = &self.group {
            return Ok(Some(ScopeSpec::Group {
                path: path.clone(),
                include_subgroups: !self.no_subgroups,
                include_secondaries: !self.no_secondaries,
            }));
        }
        if !self.devices.is_empty() {
            let entries: Vec<String> = self
                .devices
                .iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect();
            check_device_list("--devices", &entries)?;
            return Ok(Some(ScopeSpec::Devices { entries }));
        }
        if let Some(file) = &self.devices_file {
            let entries = read_devices_file(file)?;
            check_device_list(&format!("--devices-file {}", file.display()), &entries)?;
            return Ok(Some(ScopeSpec::Devices { entries }));
        }
        if !self.conditions.is_empty() {
            for condition in &self.conditions {
                match condition.split_once('=') {
                    Some((key, _)) if !key.trim().is_empty() => {}
                    _ => bail!("--where {condition:?}: give a condition as KEY=VALUE"),
                }
            }
            return Ok(Some(ScopeSpec::Selection {
                conditions: self.conditions.clone(),
            }));
        }
        if let Some(device) = &self.device {
            return Ok(Some(ScopeSpec::Local {
                device: device.clone(),
            }));
        }
        if self.server {
            return Ok(Some(ScopeSpec::Server));
        }
        Ok(None)
    }
}

/// Checks a device list as the server will (the server parses it again and resolves it).
fn check_device_list(flag: &str, entries: &[String]) -> anyhow::Result<()> {
    if entries.is_empty() {
        bail!("{flag}: the list holds no devices");
    }
    scope::parse_list(entries.iter().map(String::as_str)).map_err(|e| anyhow!("{flag}: {e}"))?;
    Ok(())
}

/// The non-blank lines of a device list file, trimmed.
fn read_devices_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let too_big = || {
        anyhow!(
            "{} is larger than 1 MiB: a device list holds at most {} entries",
            path.display(),
            scope::MAX_LIST_ENTRIES
        )
    };
    if file.metadata().map(|m| m.len()).unwrap_or(0) > MAX_DEVICES_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_DEVICES_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_DEVICES_FILE_BYTES {
        return Err(too_big());
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{} is not a text file (UTF-8)", path.display()))?;
    Ok(text
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

/// The general settings. When creating, each one not given has its default.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Settings")]
struct SettingsArgs {
    /// The application the task belongs to: a task starts on a device only if it is
    /// running there [default: the agent for device tasks, the Administration Server for
    /// server tasks].
    #[arg(long, value_name = "NAME")]
    application: Option<String>,
    /// Restart of the device when a run needs one: no, yes, or ask[:REPEAT_MIN[:FORCE_AFTER_MIN]]
    /// (ask the user every REPEAT_MIN minutes, 1 to 1440, default 5; restart anyway after
    /// FORCE_AFTER_MIN minutes) [default: no].
    #[arg(long, value_name = "POLICY", value_parser = parse_restart)]
    restart: Option<RestartPolicy>,
    /// When the task starts: manual, immediately, app-start, after:TASK_ID,
    /// once:YYYY-MM-DDTHH:MM, every:N(m|h|d|w)[@YYYY-MM-DDTHH:MM], weekly:mon,fri@HH:MM,
    /// monthly:DAY@HH:MM, monthday:(first|second|third|fourth|last)-WEEKDAY@HH:MM
    /// [default: manual].
    #[arg(long, value_name = "SPEC", value_parser = Schedule::parse)]
    schedule: Option<Schedule>,
    /// Start a run that missed its time as soon as the device is back [default: off;
    /// --run-missed=false turns it off again].
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    run_missed: Option<bool>,
    /// Spread starts at random over this many minutes, so that many devices do not reach
    /// the server at once [default: 0, off].
    #[arg(long, value_name = "MIN")]
    random_delay: Option<u32>,
    /// Stop the task if it runs longer than this many minutes (failed by timeout)
    /// [default: 0, no limit].
    #[arg(long, value_name = "MIN")]
    time_limit_minutes: Option<u32>,
    /// Cancel the schedule from this date and time on: YYYY-MM-DDTHH:MM, or "never"
    /// [default: never].
    #[arg(long, value_name = "DATETIME", value_parser = parse_cancel_from)]
    cancel_schedule_from: Option<CancelFrom>,
    /// Run the task under this account instead of the default one (that of the application
    /// running it). Its password is asked for on the terminal unless --password-stdin or
    /// --no-password is given; it is never accepted as an argument.
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// With --account: read the account's password from the first line of standard input.
    #[arg(long, requires = "account", conflicts_with = "no_password")]
    password_stdin: bool,
    /// With --account: the account has no password.
    #[arg(long, requires = "account")]
    no_password: bool,
    /// Which run results the administrator is notified of (as events) [default: errors].
    #[arg(long, value_name = "WHICH")]
    notify: Option<NotifyArg>,
    /// Keep the task's run results on the server for N days, 1 to 3650 [default: 30].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
    keep_days: Option<u32>,
}

impl SettingsArgs {
    fn options_given(&self) -> bool {
        self.run_missed.is_some()
            || self.random_delay.is_some()
            || self.time_limit_minutes.is_some()
            || self.cancel_schedule_from.is_some()
    }

    /// `base` with the schedule options given here.
    fn schedule_options(&self, base: &ScheduleOptions) -> ScheduleOptions {
        ScheduleOptions {
            run_missed: self.run_missed.unwrap_or(base.run_missed),
            random_delay_minutes: self.random_delay.unwrap_or(base.random_delay_minutes),
            time_limit_minutes: match self.time_limit_minutes {
                Some(0) => None,
                Some(minutes) => Some(minutes),
                None => base.time_limit_minutes,
            },
            cancel_from: match self.cancel_schedule_from {
                Some(CancelFrom(at)) => at,
                None => base.cancel_from,
            },
        }
    }

    /// The account given, with its password read through `read` (only after everything else
    /// was checked, so nobody types a password for a command that is refused anyway).
    fn account(&self, read: &mut PasswordReader<'_>) -> anyhow::Result<Option<AccountSpec>> {
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
enum NotifyArg {
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

/// A device state for `--state`, named as the tables show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateArg(DeviceState);

impl ValueEnum for StateArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            StateArg(DeviceState::Pending),
            StateArg(DeviceState::Scheduled),
            StateArg(DeviceState::Running),
            StateArg(DeviceState::Succeeded),
            StateArg(DeviceState::Warning),
            StateArg(DeviceState::Failed),
            StateArg(DeviceState::Paused),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.as_str()))
    }
}

/// Parses `no`, `yes`, or `ask[:REPEAT_MIN[:FORCE_AFTER_MIN]]`.
fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
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

// ---- Building requests ----

/// Where a task account's password comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PasswordFrom {
    Stdin,
    Prompt,
    Nowhere,
}

/// Reads the password of the account named, from where it is told.
type PasswordReader<'a> = dyn FnMut(PasswordFrom, &str) -> anyhow::Result<Secret> + 'a;

/// The refusal of a scope that does not fit the type.
fn check_scope_fits(kind: TypeArg, scope: &ScopeSpec) -> anyhow::Result<()> {
    let server_scope = matches!(scope, ScopeSpec::Server);
    if kind.runs_on_server() && !server_scope {
        bail!(
            "a {} task runs on the Administration Server: give --server as its scope",
            kind.name()
        );
    }
    if !kind.runs_on_server() && server_scope {
        bail!(
            "--server is the scope of backup and maintenance tasks only; a {} task runs on \
             devices: give --group, --devices, --devices-file, --where or --device",
            kind.name()
        );
    }
    Ok(())
}

fn create_spec(args: &CreateArgs, read: &mut PasswordReader<'_>) -> anyhow::Result<TaskSpec> {
    let kind = args.task_type;
    let task_type = args.params.build(kind, None)?;
    let scope = match args.scope.build()? {
        Some(scope) => scope,
        None if kind.runs_on_server() => bail!(
            "no scope: a {} task runs on the Administration Server, give --server",
            kind.name()
        ),
        None => bail!(
            "no scope: give one of --group PATH, --devices LIST, --devices-file FILE, \
             --where KEY=VALUE, --device DEVICE (or --server for backup and maintenance)"
        ),
    };
    check_scope_fits(kind, &scope)?;
    let s = &args.settings;
    let account = s.account(read)?;
    Ok(TaskSpec {
        name: args.name.clone(),
        task_type,
        application: s.application.clone(),
        scope,
        restart: s.restart.clone().unwrap_or_default(),
        schedule: s.schedule.clone().unwrap_or_default(),
        schedule_options: s.schedule_options(&ScheduleOptions::default()),
        account,
        notify: s.notify.map(Notify::from).unwrap_or_default(),
        store_history_days: s.keep_days.unwrap_or(DEFAULT_STORE_HISTORY_DAYS),
    })
}

impl EditArgs {
    /// Type parameters without --type, or schedule options: those change what the task has
    /// now, so the task must be fetched first.
    fn needs_current(&self) -> bool {
        (self.task_type.is_none() && !self.params.given().is_empty())
            || self.settings.options_given()
    }
}

/// The changes `task edit` asks for, except the account. With `current` (the task as it is
/// now), also the type parameters given without --type and the schedule options; without
/// it, those are left out.
fn edit_changes(args: &EditArgs, current: Option<&TaskView>) -> anyhow::Result<TaskChanges> {
    let task_type = match (args.task_type, current) {
        (Some(kind), _) => Some(args.params.build(kind, None)?),
        (None, Some(current)) if !args.params.given().is_empty() => {
            let kind = TypeArg::of(&current.task_type);
            Some(
                args.params
                    .build(kind, Some(&current.task_type))
                    .with_context(|| format!("task {:?}", current.name))?,
            )
        }
        (None, _) => None,
    };
    let scope = args.scope.build()?;
    if let (Some(kind), Some(scope)) = (args.task_type, &scope) {
        check_scope_fits(kind, scope)?;
    }
    let s = &args.settings;
    let schedule_options = match current {
        Some(current) if s.options_given() => Some(s.schedule_options(&current.schedule_options)),
        _ => None,
    };
    Ok(TaskChanges {
        name: args.name.clone(),
        task_type,
        application: s.application.clone(),
        scope,
        restart: s.restart.clone(),
        schedule: s.schedule.clone(),
        schedule_options,
        account: None,
        notify: s.notify.map(Notify::from),
        store_history_days: s.keep_days,
    })
}

/// The account change `task edit` asks for: `Some(None)` is back to the default account.
fn edit_account(
    args: &EditArgs,
    read: &mut PasswordReader<'_>,
) -> anyhow::Result<Option<Option<AccountSpec>>> {
    if args.default_account {
        return Ok(Some(None));
    }
    Ok(args.settings.account(read)?.map(Some))
}

/// Reads a task account's password from stdin's first line or from the terminal; never from
/// the environment (`CANOPY_PASSWORD` is the administrator's own).
fn read_account_password(from: PasswordFrom, account: &str) -> anyhow::Result<Secret> {
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
fn first_line(mut input: impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

// ---- Running the commands ----

pub async fn run(session: &Path, cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::List(JsonFlag { json }) => {
            let AdminResponse::Tasks(tasks) = task_call(session, TaskRequest::List).await? else {
                bail!("unexpected answer from the server")
            };
            if json {
                return print_json(&tasks);
            }
            print!("{}", list_text(&tasks));
            Ok(())
        }
        TaskCommand::Show { task, json } => {
            let view = show_task(session, &task).await?;
            if json {
                return print_json(&view);
            }
            print!("{}", show_text(&view));
            Ok(())
        }
        TaskCommand::Create(args) => {
            let spec = create_spec(&args, &mut read_account_password)?;
            let response = task_call(session, TaskRequest::Create(Box::new(spec))).await?;
            print_task_answer(response, args.json, true)
        }
        TaskCommand::Edit(args) => edit(session, &args).await,
        TaskCommand::Delete { task } => {
            print_done(task_call(session, TaskRequest::Delete { task }).await?)
        }
        TaskCommand::Stop { task } => match task_call(session, TaskRequest::Stop { task }).await? {
            AdminResponse::TaskStats(run) => {
                print!("{}", stats_text(&run));
                Ok(())
            }
            response => print_done(response),
        },
        TaskCommand::Start {
            task,
            devices,
            wait,
            json,
        } => start(session, task, devices, wait, json).await,
        TaskCommand::Results {
            task,
            run,
            state,
            details,
            server,
            json,
        } => {
            let client = super::connect(session).await?;
            let answer = async {
                let server = match server {
                    None => None,
                    Some(path) => server_below(asked_server_name(&client), &path)?,
                };
                let request = TaskRequest::Results {
                    task,
                    run,
                    state: state.map(|s| s.0),
                    details,
                    server,
                };
                Ok::<_, anyhow::Error>(client.call(AdminRequest::Task(request)).await?)
            }
            .await;
            client.close().await;
            let AdminResponse::TaskResults { run, records } = answer? else {
                bail!("unexpected answer from the server")
            };
            if json {
                return print_json(&serde_json::json!({
                    "run": stats_json(&run)?,
                    "records": records,
                }));
            }
            print!("{}", results_text(&run, &records, details));
            Ok(())
        }
        TaskCommand::Stats {
            task,
            run,
            by_server,
            json,
        } => {
            let AdminResponse::TaskStats(run) =
                task_call(session, TaskRequest::Stats { task, run }).await?
            else {
                bail!("unexpected answer from the server")
            };
            if json {
                return print_json(&stats_json(&run)?);
            }
            if by_server {
                print!("{}", servers_text(&run));
            } else {
                print!("{}", stats_text(&run));
            }
            Ok(())
        }
    }
}

/// The name the server asked puts first in the paths of `--by-server`: with `--at`, the last
/// name of that path; otherwise the name the server logged in to gave in its welcome.
fn asked_server_name(client: &AdminClient) -> &str {
    match client.forwarded_to() {
        Some(at) => at.rsplit('/').next().unwrap_or(at),
        None => &client.server_name,
    }
}

/// `task results --server PATH` as the request carries it: the path below the server
/// asked. PATH is as `--by-server` shows it, starting with the asked server's own name
/// (`asked`), which is dropped; a path without it is taken as already below. `None`: the
/// asked server itself.
fn server_below(asked: &str, path: &str) -> anyhow::Result<Option<String>> {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        bail!("--server needs a path, as `task stats --by-server` shows it");
    }
    let names: Vec<&str> = trimmed.split('/').collect();
    if names.iter().any(|n| n.trim().is_empty()) {
        bail!("--server {path:?} has an empty name between two '/'");
    }
    let below = match names.split_first() {
        Some((first, rest)) if *first == asked => rest,
        _ => &names[..],
    };
    Ok((!below.is_empty()).then(|| below.join("/")))
}

async fn task_call(session: &Path, request: TaskRequest) -> anyhow::Result<AdminResponse> {
    call(session, AdminRequest::Task(request)).await
}

async fn show_task(session: &Path, task: &str) -> anyhow::Result<TaskView> {
    let request = TaskRequest::Show {
        task: task.to_string(),
    };
    match task_call(session, request).await? {
        AdminResponse::Task(view) => Ok(*view),
        _ => bail!("unexpected answer from the server"),
    }
}

async fn edit(session: &Path, args: &EditArgs) -> anyhow::Result<()> {
    // Everything that can be checked here is, before a password is asked for.
    let mut changes = edit_changes(args, None)?;
    let account_given = args.default_account || args.settings.account.is_some();
    if changes == TaskChanges::default() && !account_given && !args.needs_current() {
        bail!("nothing to change: give at least one setting (see `canopy task edit --help`)");
    }
    changes.account = edit_account(args, &mut read_account_password)?;
    if args.needs_current() {
        let current = show_task(session, &args.task).await?;
        let full = edit_changes(args, Some(&current))?;
        changes.task_type = full.task_type;
        changes.schedule_options = full.schedule_options;
    }
    let request = TaskRequest::Edit {
        task: args.task.clone(),
        changes: Box::new(changes),
    };
    let response = task_call(session, request).await?;
    print_task_answer(response, args.json, args.scope.given().len() == 1)
}

/// Prints a created or changed task as `task show` does; with `warn`, each device list entry
/// that matched no device is also a warning on stderr.
fn print_task_answer(response: AdminResponse, json: bool, warn: bool) -> anyhow::Result<()> {
    let view = match response {
        AdminResponse::Task(view) => view,
        response => return print_done(response),
    };
    if warn {
        if let Scope::DeviceList { unmatched, .. } = &view.scope {
            for entry in unmatched {
                eprintln!(
                    "warning: device list entry {entry} matched no device known to the server"
                );
            }
        }
    }
    if json {
        return print_json(&view);
    }
    print!("{}", show_text(&view));
    Ok(())
}

async fn start(
    session: &Path,
    task: String,
    devices: Option<Vec<String>>,
    wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    let devices = match devices {
        None => None,
        Some(devices) => {
            let entries: Vec<String> = devices
                .iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect();
            check_device_list("--devices", &entries)?;
            Some(entries)
        }
    };
    let client = super::connect(session).await?;
    let result = start_on(&client, task, devices, wait, json).await;
    client.close().await;
    result
}

async fn start_on(
    client: &AdminClient,
    task: String,
    devices: Option<Vec<String>>,
    wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    let request = AdminRequest::Task(TaskRequest::Start {
        task: task.clone(),
        devices,
    });
    let AdminResponse::TaskStarted { run, skipped } = client.call(request).await? else {
        bail!("unexpected answer from the server")
    };
    if !json {
        print!("{}", started_text(&run, &skipped));
    }
    if !wait {
        if json {
            print_json(&serde_json::json!({ "run": stats_json(&run)?, "skipped": skipped }))?;
        }
        return Ok(());
    }
    let (run, interrupted) = wait_for(client, run).await?;
    if interrupted {
        eprintln!(
            "stopped waiting; run {} goes on (see `canopy task stats {}`)",
            run.run_id,
            quote(&task)
        );
    }
    if json {
        return print_json(&serde_json::json!({ "run": stats_json(&run)?, "skipped": skipped }));
    }
    print!("{}", stats_text(&run));
    Ok(())
}

/// Polls the run's statistics until it is over (or Ctrl-C: `true`), drawing its progress on
/// stderr.
async fn wait_for(client: &AdminClient, mut run: RunView) -> anyhow::Result<(RunView, bool)> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_line: Option<Instant> = None;
    let mut ticker = tokio::time::interval(POLL_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    loop {
        let over = run.state != RunState::Running;
        let bar = progress_bar(run.counters.finished(), run.counters.total());
        if terminal {
            eprint!("\r{bar}");
            let _ = std::io::stderr().flush();
        } else if over || last_line.is_none_or(|at| at.elapsed() >= PROGRESS_LINE_EVERY) {
            eprintln!("{bar}");
            last_line = Some(Instant::now());
        }
        if over {
            break;
        }
        let request = AdminRequest::Task(TaskRequest::Stats {
            task: run.task_id.to_string(),
            run: Some(run.run_id),
        });
        let next = async {
            ticker.tick().await;
            client.call(request).await
        };
        tokio::select! {
            _ = &mut ctrl_c => {
                interrupted = true;
                break;
            }
            answer = next => match answer? {
                AdminResponse::TaskStats(now) => run = now,
                _ => bail!("unexpected answer from the server"),
            },
        }
    }
    if terminal {
        eprintln!();
    }
    Ok((run, interrupted))
}

// ---- Text for people ----

/// `[#####.....] 512/1000 devices finished`
fn progress_bar(finished: u64, total: u64) -> String {
    let filled = match total {
        0 => PROGRESS_BAR_WIDTH,
        total => {
            (finished.min(total) as u128 * PROGRESS_BAR_WIDTH as u128 / total as u128) as usize
        }
    };
    format!(
        "[{}{}] {finished}/{total} devices finished",
        "#".repeat(filled),
        ".".repeat(PROGRESS_BAR_WIDTH - filled)
    )
}

fn short_kind(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Group => "group",
        TaskKind::DeviceList => "devices",
        TaskKind::Selection => "selection",
        TaskKind::Local => "local",
        TaskKind::Server => "server",
    }
}

fn last_run_cell(run: Option<&RunView>) -> String {
    match run {
        None => "never run".into(),
        Some(run) => format!(
            "{} {:.1}%",
            run.state.as_str(),
            run.counters.completion_percent()
        ),
    }
}

/// A heading per application (in name order), then its tasks.
fn list_text(tasks: &[TaskView]) -> String {
    if tasks.is_empty() {
        return "no tasks\n".into();
    }
    let mut by_application: BTreeMap<&str, Vec<&TaskView>> = BTreeMap::new();
    for task in tasks {
        by_application
            .entry(task.application.as_str())
            .or_default()
            .push(task);
    }
    let mut out = String::new();
    for (i, (application, tasks)) in by_application.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{application}\n"));
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.name.clone(),
                    short_kind(t.kind).to_string(),
                    t.task_type.type_name().to_string(),
                    last_run_cell(t.last_run.as_ref()),
                    t.schedule.to_string(),
                ]
            })
            .collect();
        let table = table::render(
            &["ID", "NAME", "KIND", "TYPE", "LAST RUN", "SCHEDULE"],
            &rows,
        );
        for line in table.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// An argument as a shell would need it, so `arguments` reads unambiguously.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn local_date_time(at: &LocalDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        at.year, at.month, at.day, at.time.hour, at.time.minute
    )
}

fn restart_text(restart: &RestartPolicy) -> String {
    match restart {
        RestartPolicy::DoNotRestart => "do not restart".into(),
        RestartPolicy::Restart => "restart the device".into(),
        RestartPolicy::AskUser {
            repeat_minutes,
            force_after_minutes,
        } => {
            let mut text = format!("ask the user every {repeat_minutes} min");
            if let Some(force) = force_after_minutes {
                text.push_str(&format!(", restart anyway after {force} min"));
            }
            text
        }
    }
}

fn notify_text(notify: Notify) -> &'static str {
    match notify {
        Notify::All => "every result",
        Notify::ErrorsOnly => "errors and warnings only",
        Notify::Off => "none",
    }
}

fn run_summary(run: &RunView) -> String {
    let c = &run.counters;
    format!(
        "run {} {}: {}/{} devices finished ({:.1}%), started {} by {}",
        run.run_id,
        run.state.as_str(),
        c.finished(),
        c.total(),
        c.completion_percent(),
        format_time(run.started),
        run.started_by
    )
}

fn show_text(t: &TaskView) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("kind", t.kind.as_str().to_string()),
        ("type", t.task_type.type_name().to_string()),
    ];
    match &t.task_type {
        TaskType::Device(TaskPayload::Command {
            program,
            args,
            time_limit_secs,
        }) => {
            rows.push(("program", program.clone()));
            let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
            rows.push((
                "arguments",
                if args.is_empty() {
                    "none".into()
                } else {
                    args.join(" ")
                },
            ));
            rows.push(("time limit", format!("{time_limit_secs} s")));
        }
        TaskType::Device(TaskPayload::Scan { paths, blocklist }) => {
            rows.push(("paths", or_none(paths)));
            rows.push(("blocklist", or_none(blocklist)));
        }
        TaskType::Device(TaskPayload::Inventory) | TaskType::Maintenance => {}
        TaskType::Device(TaskPayload::Simulate {
            duration_ms,
            succeeded,
            warning,
            failed,
            need_restart_percent,
        }) => {
            rows.push(("duration", format!("{duration_ms} ms")));
            rows.push((
                "outcomes",
                format!("succeeded {succeeded}, warning {warning}, failed {failed} (weights)"),
            ));
            rows.push(("needs restart", format!("{need_restart_percent}% of runs")));
        }
        TaskType::Backup { directory } => rows.push((
            "backup directory",
            directory
                .clone()
                .unwrap_or_else(|| "default (backups/ next to the database)".into()),
        )),
    }
    rows.push(("application", t.application.clone()));
    rows.push(("scope", t.scope_text.clone()));
    if let Scope::DeviceList {
        entries,
        device_ids,
        unmatched,
    } = &t.scope
    {
        rows.push(("entries", or_none(entries)));
        rows.push(("matched", format!("{} devices", device_ids.len())));
        rows.push(("unmatched", or_none(unmatched)));
    }
    rows.push(("restart", restart_text(&t.restart)));
    rows.push(("schedule", t.schedule.to_string()));
    let o = &t.schedule_options;
    rows.push(("run missed", if o.run_missed { "yes" } else { "no" }.into()));
    rows.push((
        "random delay",
        match o.random_delay_minutes {
            0 => "off".into(),
            minutes => format!("up to {minutes} min"),
        },
    ));
    rows.push((
        "time limit (run)",
        o.time_limit_minutes
            .map(|m| format!("{m} min"))
            .unwrap_or_else(|| "none".into()),
    ));
    rows.push((
        "cancel schedule",
        o.cancel_from
            .as_ref()
            .map(|at| format!("from {}", local_date_time(at)))
            .unwrap_or_else(|| "never".into()),
    ));
    match &t.account_name {
        None => rows.push(("account", "default account".into())),
        Some(name) => {
            rows.push(("account", name.clone()));
            rows.push((
                "password",
                if t.password_set { "set" } else { "not set" }.into(),
            ));
        }
    }
    rows.push(("notify", notify_text(t.notify).into()));
    rows.push(("store history", format!("{} days", t.store_history_days)));
    rows.push(("created", format_time(t.created)));
    rows.push(("modified", format_time(t.modified)));
    rows.push(("revision", t.revision.to_string()));
    rows.push(("changed by", t.changed_by.clone()));
    rows.push((
        "last run",
        t.last_run
            .as_ref()
            .map(run_summary)
            .unwrap_or_else(|| "never run".into()),
    ));
    table::fields(&rows)
}

fn started_text(run: &RunView, skipped: &[String]) -> String {
    let mut out = format!(
        "started run {} of task {} (id {}): {} devices targeted\n",
        run.run_id,
        run.task_name,
        run.task_id,
        run.counters.total()
    );
    for entry in skipped {
        out.push_str(&format!("skipped {entry}\n"));
    }
    out
}

pub(super) fn stats_text(run: &RunView) -> String {
    let c = &run.counters;
    let mut task = format!("{} (id {})", run.task_name, run.task_id);
    if let Some(from) = &run.inherited_from {
        task.push_str(&format!(", inherited from {from}"));
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("run", run.run_id.to_string()),
        ("task", task),
        ("state", run.state.as_str().to_string()),
        (
            "started",
            format!("{} by {}", format_time(run.started), run.started_by),
        ),
    ];
    if let Some(at) = run.stopped {
        rows.push(("stopped", format_time(at)));
    }
    if let Some(at) = run.finished {
        rows.push(("finished", format_time(at)));
    }
    // Only when servers below take part: a lone server's row is the totals.
    if run.servers.len() > 1 {
        let silent = run.servers.iter().filter(|s| !s.reported).count();
        let mut servers = format!("{} taking part", run.servers.len());
        if silent > 0 {
            servers.push_str(&format!(
                ", {silent} not reported yet (devices counted as pending)"
            ));
        }
        servers.push_str("; see --by-server");
        rows.push(("servers", servers));
    }
    rows.push(("targeted", c.total().to_string()));
    for state in DeviceState::ALL {
        rows.push((state.as_str(), c.count(state).to_string()));
    }
    rows.push(("need restart", c.need_restart.to_string()));
    rows.push(("completion", format!("{:.1}%", c.completion_percent())));
    table::fields(&rows)
}

/// The run as JSON, with its completion percentage, the number of devices targeted, and
/// one entry per server of the tree taking part with its counts by state name.
pub(super) fn stats_json(run: &RunView) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(run)?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "completion_percent".into(),
            serde_json::json!(run.counters.completion_percent()),
        );
        object.insert("targeted".into(), serde_json::json!(run.counters.total()));
        let servers: Vec<serde_json::Value> = run
            .servers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "path": s.path,
                    "depth": s.depth,
                    "task_id": s.task_id,
                    "reported": s.reported,
                    "counts": counts_json(&s.counters),
                    "need_restart": s.counters.need_restart,
                    "total": s.counters.total(),
                })
            })
            .collect();
        object.insert("servers".into(), serde_json::Value::Array(servers));
    }
    Ok(value)
}

/// `{"pending": 1, "scheduled": 0, ...}`: counters by state name, for scripts.
pub(super) fn counts_json(counters: &RunCounters) -> serde_json::Value {
    DeviceState::ALL
        .iter()
        .map(|s| {
            (
                s.as_str().to_string(),
                serde_json::json!(counters.count(*s)),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `task stats --by-server`: one row per server of the tree taking part, indented by depth,
/// then the totals of the whole tree.
pub(super) fn servers_text(run: &RunView) -> String {
    let counts = |c: &RunCounters| -> Vec<String> {
        DeviceState::ALL
            .iter()
            .map(|s| c.count(*s).to_string())
            .chain([c.total().to_string()])
            .collect()
    };
    let mut rows: Vec<Vec<String>> = run
        .servers
        .iter()
        .map(|s| {
            let mut row = vec![
                format!("{}{}", "  ".repeat(s.depth as usize), s.path),
                s.depth.to_string(),
                if s.task_id == 0 {
                    "-".into()
                } else {
                    s.task_id.to_string()
                },
            ];
            row.extend(counts(&s.counters));
            row.push(if s.reported {
                String::new()
            } else {
                "not reported yet (devices counted as pending)".into()
            });
            row
        })
        .collect();
    let mut total = vec!["total".to_string(), String::new(), String::new()];
    total.extend(counts(&run.counters));
    rows.push(total);
    let mut headers = vec!["PATH", "DEPTH", "TASK ID"];
    let states: Vec<String> = DeviceState::ALL
        .iter()
        .map(|s| s.as_str().to_uppercase())
        .collect();
    headers.extend(states.iter().map(String::as_str));
    headers.extend(["TOTAL", "NOTE"]);
    let mut out = table::render(&headers, &rows);
    let mut summary = format!(
        "run {} of task {} (id {}) {}: {}/{} devices finished ({:.1}%)",
        run.run_id,
        run.task_name,
        run.task_id,
        run.state.as_str(),
        run.counters.finished(),
        run.counters.total(),
        run.counters.completion_percent()
    );
    if let Some(from) = &run.inherited_from {
        summary.push_str(&format!(", inherited from {from}"));
    }
    out.push_str(&summary);
    out.push('\n');
    out
}

fn opt_time(t: Option<i64>) -> String {
    t.map(format_time).unwrap_or_else(|| "-".into())
}

fn results_text(run: &RunView, records: &[DeviceRunRecord], details: bool) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.device_name.clone(),
                r.state.as_str().to_string(),
                r.tries.to_string(),
                if r.description.is_empty() {
                    "-".into()
                } else {
                    r.description.clone()
                },
                opt_time(r.started),
                opt_time(r.finished),
                format!("{}%", r.progress),
                if r.need_restart { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "DEVICE",
            "STATE",
            "TRIES",
            "DESCRIPTION",
            "STARTED",
            "FINISHED",
            "PROGRESS",
            "RESTART NEEDED",
        ],
        &rows,
    );
    out.push_str(&format!(
        "{} devices shown; run {} of task {} {}, {:.1}% complete\n",
        records.len(),
        run.run_id,
        run.task_name,
        run.state.as_str(),
        run.counters.completion_percent()
    ));
    if details {
        for record in records {
            let text = record
                .details
                .as_ref()
                .map(details_text)
                .unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{}:\n", record.device_name));
            for line in text.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out
}

fn details_text(details: &Details) -> String {
    let mut out = String::new();
    match details {
        Details::None => {}
        Details::Command {
            exit_code,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        } => {
            out.push_str(&match exit_code {
                Some(code) => format!("exit code {code}\n"),
                None => "no exit code (killed)\n".into(),
            });
            for (name, text, truncated) in [
                ("stdout", stdout, stdout_truncated),
                ("stderr", stderr, stderr_truncated),
            ] {
                if text.is_empty() {
                    continue;
                }
                let note = if *truncated { " (truncated)" } else { "" };
                out.push_str(&format!("{name}{note}:\n"));
                for line in text.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
        Details::Scan {
            files_scanned,
            unreadable,
            matches,
        } => {
            out.push_str(&format!(
                "{files_scanned} files scanned, {unreadable} unreadable, {} on the blocklist\n",
                matches.len()
            ));
            for m in matches {
                out.push_str(&format!("  {}  {}\n", m.sha256, m.path));
            }
        }
        Details::Inventory(inventory) => {
            out.push_str(&format!("os         {}\n", inventory.os));
            out.push_str(&format!("hostname   {}\n", inventory.hostname));
            out.push_str(&format!("addresses  {}\n", inventory.addresses.join(", ")));
            out.push_str(&format!("packages   {}\n", inventory.packages.len()));
            for p in &inventory.packages {
                out.push_str(&format!("  {} {}\n", p.name, p.version));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::wire::msg::ServerStatsView;

    /// `canopy task` with these arguments; `line` is split at whitespace, `extra` is appended
    /// as is (for values with spaces).
    fn parse_with(line: &str, extra: &[&str]) -> Result<TaskCommand, clap::Error> {
        let argv = ["canopy", "task"]
            .into_iter()
            .chain(line.split_whitespace())
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Task(cmd) => Ok(cmd),
            other => panic!("not a task command: {other:?}"),
        }
    }

    fn parse(line: &str) -> Result<TaskCommand, clap::Error> {
        parse_with(line, &[])
    }

    fn no_password() -> impl FnMut(PasswordFrom, &str) -> anyhow::Result<Secret> {
        |from, _| panic!("no password should be read (asked from {from:?})")
    }

    fn create_with(line: &str, extra: &[&str]) -> anyhow::Result<TaskSpec> {
        match parse_with(&format!("create {line}"), extra)? {
            TaskCommand::Create(args) => create_spec(&args, &mut no_password()),
            other => panic!("{other:?}"),
        }
    }

    fn create(line: &str) -> anyhow::Result<TaskSpec> {
        create_with(line, &[])
    }

    fn create_err(line: &str) -> String {
        format!("{:#}", create(line).expect_err("should be refused"))
    }

    fn edit_args(line: &str) -> EditArgs {
        match parse(&format!("edit {line}")).unwrap() {
            TaskCommand::Edit(args) => *args,
            other => panic!("{other:?}"),
        }
    }

    fn run_view(by_state: [u64; 7], state: RunState) -> RunView {
        RunView {
            run_id: 7,
            task_id: 3,
            task_name: "Scan".into(),
            revision: 1,
            state,
            started: 0,
            started_by: "admin".into(),
            stopped: None,
            finished: None,
            counters: RunCounters {
                by_state,
                need_restart: 2,
            },
            servers: Vec::new(),
            inherited_from: None,
        }
    }

    fn view(task_type: TaskType) -> TaskView {
        TaskView {
            id: 3,
            name: "Nightly".into(),
            kind: TaskKind::DeviceList,
            task_type,
            application: "Canopy agent".into(),
            scope: Scope::DeviceList {
                entries: vec!["10.0.0.1".into(), "ghost".into()],
                device_ids: vec!["d1".into()],
                unmatched: vec!["ghost".into()],
            },
            scope_text: "2 entries".into(),
            restart: RestartPolicy::AskUser {
                repeat_minutes: 5,
                force_after_minutes: Some(60),
            },
            schedule: Schedule::Manually,
            schedule_options: ScheduleOptions {
                run_missed: false,
                random_delay_minutes: 10,
                time_limit_minutes: Some(90),
                cancel_from: None,
            },
            account_name: Some("svc".into()),
            password_set: true,
            notify: Notify::ErrorsOnly,
            store_history_days: 30,
            created: 0,
            modified: 0,
            revision: 4,
            changed_by: "admin".into(),
            last_run: Some(run_view([0, 0, 0, 3, 0, 1, 0], RunState::Completed)),
        }
    }

    #[test]
    fn restart_policies_parse() {
        assert_eq!(parse_restart("no"), Ok(RestartPolicy::DoNotRestart));
        assert_eq!(parse_restart("yes"), Ok(RestartPolicy::Restart));
        let ask = |repeat_minutes, force_after_minutes| {
            Ok(RestartPolicy::AskUser {
                repeat_minutes,
                force_after_minutes,
            })
        };
        assert_eq!(parse_restart("ask"), ask(5, None));
        assert_eq!(parse_restart("ask:"), ask(5, None));
        assert_eq!(parse_restart("ask:1"), ask(1, None));
        assert_eq!(parse_restart("ask:1440"), ask(1440, None));
        assert_eq!(parse_restart("ask:10:60"), ask(10, Some(60)));
        assert_eq!(parse_restart("ask::60"), ask(5, Some(60)));
    }

    #[test]
    fn bad_restart_policies_are_refused() {
        let bad = "maybe No no:5 yes:1 ask:0 ask:1441 ask:-1 ask:x ask:5: ask:5:0 ask:5:x \
                   ask:5:10:1 ask:99999";
        for bad in bad.split_whitespace().chain([""]) {
            assert!(parse_restart(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_restart("ask:0").unwrap_err().contains("1 to 1440"));
    }

    #[test]
    fn a_command_task_for_a_group_with_defaults() {
        let spec = create_with(
            "--name Update --type command --program /usr/bin/apt-get --arg update --arg -y \
             --no-secondaries",
            &["--group", "Managed devices/Branch"],
        )
        .unwrap();
        assert_eq!(
            spec,
            TaskSpec {
                name: "Update".into(),
                task_type: TaskType::Device(TaskPayload::Command {
                    program: "/usr/bin/apt-get".into(),
                    args: vec!["update".into(), "-y".into()],
                    time_limit_secs: 3600,
                }),
                application: None,
                scope: ScopeSpec::Group {
                    path: "Managed devices/Branch".into(),
                    include_subgroups: true,
                    include_secondaries: false,
                },
                restart: RestartPolicy::DoNotRestart,
                schedule: Schedule::Manually,
                schedule_options: ScheduleOptions::default(),
                account: None,
                notify: Notify::ErrorsOnly,
                store_history_days: DEFAULT_STORE_HISTORY_DAYS,
            }
        );
    }

    #[test]
    fn every_setting_is_carried() {
        let spec = create_with(
            "--name Sim --type simulate --duration-ms 50 --outcomes 1,2,3 \
             --need-restart-percent 10 --device sim-0001 --restart ask:15:120 \
             --schedule weekly:mon,fri@18:00 --run-missed --random-delay 7 \
             --time-limit-minutes 30 --cancel-schedule-from 2030-02-28T23:59 \
             --account svc --no-password --notify all --keep-days 3650",
            &["--application", "Endpoint Security"],
        )
        .unwrap();
        assert_eq!(
            spec.task_type,
            TaskType::Device(TaskPayload::Simulate {
                duration_ms: 50,
                succeeded: 1,
                warning: 2,
                failed: 3,
                need_restart_percent: 10,
            })
        );
        assert_eq!(
            spec.scope,
            ScopeSpec::Local {
                device: "sim-0001".into()
            }
        );
        assert_eq!(spec.application.as_deref(), Some("Endpoint Security"));
        assert_eq!(
            spec.restart,
            RestartPolicy::AskUser {
                repeat_minutes: 15,
                force_after_minutes: Some(120)
            }
        );
        assert_eq!(
            spec.schedule,
            Schedule::parse("weekly:mon,fri@18:00").unwrap()
        );
        assert_eq!(
            spec.schedule_options,
            ScheduleOptions {
                run_missed: true,
                random_delay_minutes: 7,
                time_limit_minutes: Some(30),
                cancel_from: Some(LocalDateTime::parse("2030-02-28T23:59").unwrap()),
            }
        );
        assert_eq!(
            spec.account,
            Some(AccountSpec {
                name: "svc".into(),
                password: None
            })
        );
        assert_eq!(spec.notify, Notify::All);
        assert_eq!(spec.store_history_days, 3650);
    }

    #[test]
    fn simulate_defaults_and_notify_none() {
        let spec = create("--name Sim --type simulate --where tag=sim --notify none").unwrap();
        assert_eq!(
            spec.task_type,
            TaskType::Device(TaskPayload::Simulate {
                duration_ms: 1000,
                succeeded: 90,
                warning: 5,
                failed: 5,
                need_restart_percent: 0,
            })
        );
        assert_eq!(
            spec.scope,
            ScopeSpec::Selection {
                conditions: vec!["tag=sim".into()]
            }
        );
        assert_eq!(spec.notify, Notify::Off);
    }

    #[test]
    fn server_tasks_need_the_server_scope() {
        let spec = create("--name B --type backup --backup-dir /var/backups --server").unwrap();
        assert_eq!(
            spec.task_type,
            TaskType::Backup {
                directory: Some("/var/backups".into())
            }
        );
        assert_eq!(spec.scope, ScopeSpec::Server);
        let spec = create("--name M --type maintenance --server").unwrap();
        assert_eq!(spec.task_type, TaskType::Maintenance);

        let e = create_err("--name B --type backup");
        assert!(e.contains("give --server"), "{e}");
        let e = create_err("--name B --type backup --group Managed");
        assert!(e.contains("give --server"), "{e}");
        let e = create_err("--name I --type inventory --server");
        assert!(e.contains("runs on devices"), "{e}");
    }

    #[test]
    fn no_scope_lists_the_choices() {
        let e = create_err("--name I --type inventory");
        for flag in "--group --devices --devices-file --where --device --server".split(' ') {
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn two_scopes_are_refused() {
        let e = create_err("--name I --type inventory --group G --device d");
        assert!(e.contains("--group and --device were given"), "{e}");
        let e = create_err("--name I --type inventory --no-subgroups --device d");
        assert!(
            e.contains("--no-subgroups applies only with --group"),
            "{e}"
        );
    }

    #[test]
    fn type_parameters_are_checked() {
        let e = create_err("--name S --type scan --group G");
        assert!(e.contains("a scan task needs at least one --path"), "{e}");
        let e = create_err("--name C --type command --group G");
        assert!(e.contains("needs --program"), "{e}");
        let e = create_err(
            "--name S --type scan --path /srv --program /bin/true --duration-ms 5 --group G",
        );
        assert!(
            e.contains(
                "--program (a command parameter), --duration-ms (a simulate parameter) do not \
                 apply to a scan task"
            ),
            "{e}"
        );
        let e = create_err("--name I --type inventory --backup-dir /x --group G");
        assert!(
            e.contains("--backup-dir (a backup parameter) does not apply"),
            "{e}"
        );

        let hash = "AB".repeat(32);
        let spec = create(&format!(
            "--name S --type scan --path /srv --path /home --blocklist {hash} --group G"
        ))
        .unwrap();
        assert_eq!(
            spec.task_type,
            TaskType::Device(TaskPayload::Scan {
                paths: vec!["/srv".into(), "/home".into()],
                blocklist: vec!["ab".repeat(32)],
            })
        );
        for bad in [
            "--type scan --blocklist abc",
            "--type simulate --outcomes 1,2",
            "--type simulate --outcomes 0,0,0",
            "--type command --time-limit 0",
        ] {
            assert!(parse(&format!("create --name S {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn clap_refuses_unknown_values() {
        for bad in [
            "--type reboot",
            "--type inventory --notify some",
            "--type inventory --keep-days 0",
            "--type inventory --keep-days 3651",
            "--type inventory --restart ask:0",
            "--type inventory --schedule sometimes",
            "--type inventory --cancel-schedule-from 2030-02-30T00:00",
            "--type simulate --need-restart-percent 101",
        ] {
            let line = format!("create --name X --server {bad}");
            assert!(parse(&line).is_err(), "{line} was accepted");
        }
        assert!(parse("results T --state done").is_err());
        assert!(parse("results T --state failed").is_ok());
        let e = parse("create --name X --type reboot")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("command, scan, inventory, simulate, backup, maintenance"),
            "{e}"
        );
    }

    #[test]
    fn a_password_cannot_be_given_on_the_command_line() {
        for bad in [
            "--account svc --password secret",
            "--account svc --password=secret",
            "--account svc --password-stdin secret",
            "--account svc --password-stdin=secret",
            "--account svc --no-password=secret",
            // The password flags need an account, and exclude each other.
            "--password-stdin",
            "--no-password",
            "--account svc --password-stdin --no-password",
        ] {
            let line = format!("create --name X --type inventory --device d {bad}");
            assert!(parse(&line).is_err(), "{line} was accepted");
        }
        assert!(parse("edit X --account svc --password secret").is_err());
        assert!(parse("edit X --default-account --account svc").is_err());
    }

    #[test]
    fn the_account_password_is_read_from_where_it_is_told() {
        let line = "create --name X --type inventory --device d --account svc";
        let TaskCommand::Create(args) = parse(&format!("{line} --password-stdin")).unwrap() else {
            panic!()
        };
        let mut asked = Vec::new();
        let spec = create_spec(&args, &mut |from, account: &str| {
            asked.push((from, account.to_string()));
            Ok(Secret("pw".into()))
        })
        .unwrap();
        assert_eq!(asked, [(PasswordFrom::Stdin, "svc".to_string())]);
        assert_eq!(spec.account.unwrap().password, Some(Secret("pw".into())));

        // Without a flag it is asked for on the terminal...
        let TaskCommand::Create(args) = parse(line).unwrap() else {
            panic!()
        };
        let mut asked = None;
        create_spec(&args, &mut |from, _: &str| {
            asked = Some(from);
            Ok(Secret("pw".into()))
        })
        .unwrap();
        assert_eq!(asked, Some(PasswordFrom::Prompt));

        // ...but only once the rest of the command was found right.
        let TaskCommand::Create(args) =
            parse("create --name X --type inventory --account svc").unwrap()
        else {
            panic!()
        };
        assert!(create_spec(&args, &mut no_password()).is_err());

        assert_eq!(first_line(&b"pw one\r\nnext\n"[..]).unwrap(), "pw one");
        assert_eq!(first_line(&b"pw"[..]).unwrap(), "pw");
        assert_eq!(first_line(&b""[..]).unwrap(), "");
    }

    #[test]
    fn device_lists_come_from_flags_and_files() {
        let spec = create_with(
            "--name I --type inventory --devices 10.0.1.0/24",
            &["--devices", "10.0.0.1, web-1"],
        )
        .unwrap();
        assert_eq!(
            spec.scope,
            ScopeSpec::Devices {
                entries: vec!["10.0.1.0/24".into(), "10.0.0.1".into(), "web-1".into()]
            }
        );

        let dir = tempfile::tempdir().unwrap();
        let with_file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            create(&format!(
                "--name I --type inventory --devices-file {}",
                path.display()
            ))
        };
        let spec = with_file(
            "devices.txt",
            "\u{feff}10.0.0.1\r\n\n  web-1  \n10.0.0.5-10.0.0.9\n",
        )
        .unwrap();
        assert_eq!(
            spec.scope,
            ScopeSpec::Devices {
                entries: vec![
                    "10.0.0.1".into(),
                    "web-1".into(),
                    "10.0.0.5-10.0.0.9".into()
                ]
            }
        );

        let e = format!(
            "{:#}",
            with_file("big.txt", &"10.0.0.1\n".repeat(120_000)).unwrap_err()
        );
        assert!(e.contains("larger than 1 MiB"), "{e}");
        let many: Vec<String> = (0..1001)
            .map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))
            .collect();
        let e = format!("{:#}", with_file("many.txt", &many.join("\n")).unwrap_err());
        assert!(e.contains("--devices-file") && e.contains("1000"), "{e}");
        let e = format!("{:#}", with_file("empty.txt", "\n \n").unwrap_err());
        assert!(e.contains("no devices"), "{e}");

        let e = create_err("--name I --type inventory --devices-file /nonexistent/list.txt");
        assert!(e.contains("/nonexistent/list.txt"), "{e}");
        let e = create_err("--name I --type inventory --where tag");
        assert!(e.contains("KEY=VALUE"), "{e}");
    }

    #[test]
    fn edit_sets_only_what_is_given() {
        let args = edit_args("Nightly --name Weekly --notify all --keep-days 7");
        assert!(!args.needs_current());
        assert_eq!(
            edit_changes(&args, None).unwrap(),
            TaskChanges {
                name: Some("Weekly".into()),
                notify: Some(Notify::All),
                store_history_days: Some(7),
                ..TaskChanges::default()
            }
        );
        let args = edit_args("Nightly --type scan --path /srv --group G --restart yes");
        assert!(!args.needs_current());
        let changes = edit_changes(&args, None).unwrap();
        assert_eq!(
            changes.task_type,
            Some(TaskType::Device(TaskPayload::Scan {
                paths: vec!["/srv".into()],
                blocklist: vec![]
            }))
        );
        assert!(matches!(changes.scope, Some(ScopeSpec::Group { .. })));
        assert_eq!(changes.restart, Some(RestartPolicy::Restart));

        let args = edit_args("Nightly --default-account");
        assert_eq!(edit_account(&args, &mut no_password()).unwrap(), Some(None));
        let args = edit_args("Nightly --account svc --no-password");
        assert_eq!(
            edit_account(&args, &mut no_password()).unwrap(),
            Some(Some(AccountSpec {
                name: "svc".into(),
                password: None
            }))
        );
        let args = edit_args("Nightly");
        assert_eq!(edit_changes(&args, None).unwrap(), TaskChanges::default());
        assert_eq!(edit_account(&args, &mut no_password()).unwrap(), None);
    }

    #[test]
    fn edit_checks_types_and_scopes() {
        for bad in [
            "--type backup --group G",
            "--type inventory --server",
            "--type inventory --program /bin/true",
            "--group G --server",
            "--no-secondaries",
        ] {
            let args = edit_args(&format!("Nightly {bad}"));
            assert!(edit_changes(&args, None).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn edit_keeps_the_parameters_and_options_not_given() {
        let current = view(TaskType::Device(TaskPayload::Command {
            program: "/bin/echo".into(),
            args: vec!["hi".into()],
            time_limit_secs: 60,
        }));
        let args = edit_args("Nightly --time-limit 600 --run-missed --time-limit-minutes 0");
        assert!(args.needs_current());
        let changes = edit_changes(&args, Some(&current)).unwrap();
        assert_eq!(
            changes.task_type,
            Some(TaskType::Device(TaskPayload::Command {
                program: "/bin/echo".into(),
                args: vec!["hi".into()],
                time_limit_secs: 600,
            }))
        );
        assert_eq!(
            changes.schedule_options,
            Some(ScheduleOptions {
                run_missed: true,
                random_delay_minutes: 10,
                time_limit_minutes: None,
                cancel_from: None,
            })
        );
        // Without the current task, those are left out.
        let changes = edit_changes(&args, None).unwrap();
        assert_eq!(changes.task_type, None);
        assert_eq!(changes.schedule_options, None);

        let args = edit_args("Nightly --run-missed=false --random-delay 0");
        let options = edit_changes(&args, Some(&current))
            .unwrap()
            .schedule_options
            .unwrap();
        assert!(!options.run_missed);
        assert_eq!(options.random_delay_minutes, 0);
        assert_eq!(options.time_limit_minutes, Some(90));

        // A parameter of another type than the task's.
        let args = edit_args("Nightly --path /srv");
        let e = format!("{:#}", edit_changes(&args, Some(&current)).unwrap_err());
        assert!(e.contains("does not apply to a command task"), "{e}");

        // --run-missed does not swallow the task's name.
        let args = edit_args("--run-missed Nightly");
        assert_eq!(args.task, "Nightly");
        assert_eq!(args.settings.run_missed, Some(true));
    }

    #[test]
    fn show_prints_every_property_and_no_password() {
        let text = show_text(&view(TaskType::Device(TaskPayload::Command {
            program: "/bin/echo".into(),
            args: vec!["hello world".into(), "-n".into()],
            time_limit_secs: 60,
        })));
        for expected in [
            "id                3\n",
            "kind              task for specific devices\n",
            "program           /bin/echo\n",
            "arguments         'hello world' -n\n",
            "time limit        60 s\n",
            "entries           10.0.0.1, ghost\n",
            "unmatched         ghost\n",
            "restart           ask the user every 5 min, restart anyway after 60 min\n",
            "random delay      up to 10 min\n",
            "time limit (run)  90 min\n",
            "account           svc\n",
            "password          set\n",
            "store history     30 days\n",
            "revision          4\n",
            "last run          run 7 completed: 4/4 devices finished (100.0%)",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        let mut default_account = view(TaskType::Maintenance);
        default_account.account_name = None;
        default_account.password_set = false;
        let text = show_text(&default_account);
        assert!(
            text.contains("account           default account\n"),
            "{text}"
        );
        assert!(!text.contains("password"), "{text}");
    }

    #[test]
    fn list_groups_by_application() {
        let mut a = view(TaskType::Device(TaskPayload::Inventory));
        a.application = "Endpoint Security".into();
        a.last_run = None;
        let mut b = view(TaskType::Maintenance);
        b.id = 4;
        b.name = "Compact".into();
        b.kind = TaskKind::Server;
        b.application = "Administration Server".into();
        let manual = Schedule::Manually.to_string();
        let expected = format!(
            "\
Administration Server
  ID  NAME     KIND    TYPE         LAST RUN          SCHEDULE
  4   Compact  server  maintenance  completed 100.0%  {manual}

Endpoint Security
  ID  NAME     KIND     TYPE       LAST RUN   SCHEDULE
  3   Nightly  devices  inventory  never run  {manual}
"
        );
        assert_eq!(list_text(&[a, b]), expected);
        assert_eq!(list_text(&[]), "no tasks\n");
    }

    #[test]
    fn stats_and_results() {
        let run = run_view([1, 2, 3, 4, 5, 6, 7], RunState::Running);
        let text = stats_text(&run);
        for expected in [
            "run           7\n",
            "state         running\n",
            "targeted      28\n",
            "pending       1\n",
            "scheduled     2\n",
            "paused        7\n",
            "need restart  2\n",
            "completion    53.6%\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        let json = stats_json(&run).unwrap();
        assert_eq!(json["targeted"], 28);
        assert_eq!(json["run_id"], 7);
        assert!((json["completion_percent"].as_f64().unwrap() - 53.571).abs() < 0.01);

        let mut record = DeviceRunRecord::pending("d1".into(), "web-1".into());
        record.state = DeviceState::Failed;
        record.tries = 1;
        record.description = "exit code 3".into();
        record.started = Some(0);
        record.details = Some(Details::Command {
            exit_code: Some(3),
            stdout: "out".into(),
            stderr: String::new(),
            stdout_truncated: true,
            stderr_truncated: false,
        });
        let text = results_text(&run, &[record], true);
        let expected = "\
DEVICE  STATE   TRIES  DESCRIPTION  STARTED                  FINISHED  PROGRESS  RESTART NEEDED
web-1   failed  1      exit code 3  1970-01-01 00:00:00 UTC  -         0%        no
1 devices shown; run 7 of task Scan running, 53.6% complete

web-1:
  exit code 3
  stdout (truncated):
    out
";
        assert_eq!(text, expected);
    }

    /// A run of primary with branch-1 reporting and branch-1a not heard from yet.
    fn tree_run() -> RunView {
        let server = |path: &str, depth, task_id, by_state, reported| ServerStatsView {
            path: String::from(path),
            depth,
            task_id,
            counters: RunCounters {
                by_state,
                need_restart: 0,
            },
            reported,
        };
        let mut run = run_view([5, 0, 1, 10, 1, 1, 0], RunState::Running);
        run.servers = vec![
            server("primary", 0, 3, [0, 0, 1, 8, 1, 0, 0], true),
            server("primary/branch-1", 1, 12, [1, 0, 0, 2, 0, 1, 0], true),
            server(
                "primary/branch-1/branch-1a",
                2,
                0,
                [4, 0, 0, 0, 0, 0, 0],
                false,
            ),
        ];
        run
    }

    #[test]
    fn stats_by_server() {
        let run = tree_run();
        let expected = "\
PATH                            DEPTH  TASK ID  PENDING  SCHEDULED  RUNNING  SUCCEEDED  WARNING  FAILED  PAUSED  TOTAL  NOTE
primary                         0      3        0        0          1        8          1        0       0       10
  primary/branch-1              1      12       1        0          0        2          0        1       0       4
    primary/branch-1/branch-1a  2      -        4        0          0        0          0        0       0       4      not reported yet (devices counted as pending)
total                                           5        0          1        10         1        1       0       18
run 7 of task Scan (id 3) running: 12/18 devices finished (66.7%)
";
        assert_eq!(servers_text(&run), expected);

        let json = stats_json(&run).unwrap();
        let servers = json["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(servers[2]["path"], "primary/branch-1/branch-1a");
        assert_eq!(servers[2]["depth"], 2);
        assert_eq!(servers[2]["reported"], false);
        assert_eq!(servers[2]["counts"]["pending"], 4);
        assert_eq!(servers[1]["task_id"], 12);
        assert_eq!(servers[1]["counts"]["failed"], 1);
        assert_eq!(servers[1]["total"], 4);
        assert_eq!(json["targeted"], 18);
        // A lone server still has the array, empty or with its own row.
        let lone = stats_json(&run_view([1, 0, 0, 0, 0, 0, 0], RunState::Running)).unwrap();
        assert_eq!(lone["servers"], serde_json::json!([]));

        let text = stats_text(&run);
        assert!(
            text.contains(
                "servers       3 taking part, 1 not reported yet (devices counted as pending); see --by-server\n"
            ),
            "{text}"
        );
        assert!(!stats_text(&run_view([0; 7], RunState::Running)).contains("servers"));

        let mut inherited = tree_run();
        inherited.inherited_from = Some("primary (task 3)".into());
        let text = stats_text(&inherited);
        assert!(
            text.contains("task          Scan (id 3), inherited from primary (task 3)\n"),
            "{text}"
        );
        assert!(servers_text(&inherited).contains(", inherited from primary (task 3)\n"));
    }

    #[test]
    fn stats_and_results_by_server_parse() {
        let TaskCommand::Stats {
            by_server, json, ..
        } = parse("stats Scan --by-server").unwrap()
        else {
            panic!()
        };
        assert!(by_server && !json);
        let TaskCommand::Results { server, .. } =
            parse("results Scan --server primary/branch-1/branch-1a").unwrap()
        else {
            panic!()
        };
        assert_eq!(server.as_deref(), Some("primary/branch-1/branch-1a"));
        let TaskCommand::Results { server, .. } = parse("results Scan").unwrap() else {
            panic!()
        };
        assert_eq!(server, None);
    }

    #[test]
    fn the_server_path_is_taken_below_the_server_asked() {
        let below = |asked, path| server_below(asked, path).unwrap();
        assert_eq!(
            below("primary", "primary/branch-1/branch-1a").as_deref(),
            Some("branch-1/branch-1a")
        );
        assert_eq!(
            below("primary", "primary/branch-1").as_deref(),
            Some("branch-1")
        );
        assert_eq!(below("primary", "primary"), None);
        assert_eq!(below("primary", "/primary/"), None);
        // Already below: sent as given.
        assert_eq!(
            below("primary", "branch-1/branch-1a").as_deref(),
            Some("branch-1/branch-1a")
        );
        // With --at branch-1, the paths start with branch-1.
        assert_eq!(
            below("branch-1", "branch-1/branch-1a").as_deref(),
            Some("branch-1a")
        );
        for bad in ["", "/", "primary//b", " "] {
            let e = server_below("primary", bad).unwrap_err().to_string();
            assert!(e.contains("--server"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_progress_bar() {
        let cases = [
            (0, 10, "[....................] 0/10"),
            (512, 1000, "[##########..........] 512/1000"),
            (3, 3, "[####################] 3/3"),
            (0, 0, "[####################] 0/0"),
        ];
        for (finished, total, bar) in cases {
            assert_eq!(
                progress_bar(finished, total),
                format!("{bar} devices finished")
            );
        }
    }

    /// Splits a shell line at whitespace, keeping 'quoted' parts whole.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        for (i, part) in line.split('\'').enumerate() {
            if i % 2 == 1 {
                words.push(part.to_string());
            } else {
                words.extend(part.split_whitespace().map(str::to_string));
            }
        }
        words
    }

    #[test]
    fn the_help_examples_parse() {
        let examples = CREATE_EXAMPLES.split("\n\n").next().unwrap();
        for example in examples.replace("\\\n", " ").lines().skip(1) {
            let argv = shell_words(&example.replace("<SHA256>", &"0".repeat(64)));
            let Command::Task(TaskCommand::Create(args)) =
                Cli::try_parse_from(&argv).unwrap().command
            else {
                panic!("{example}")
            };
            create_spec(&args, &mut no_password()).unwrap();
        }
        for example in EDIT_EXAMPLES.lines().skip(1) {
            let example = example.split(['(', '<']).next().unwrap();
            let argv = shell_words(example);
            assert_eq!(argv[..2], ["canopy", "task"]);
            Cli::try_parse_from(&argv).unwrap();
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

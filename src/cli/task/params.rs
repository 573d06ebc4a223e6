//! `--type` and the parameters of each type, and the task type they make.

use anyhow::{anyhow, bail};
use clap::{Args, ValueEnum};

use crate::model::task::{TaskPayload, TaskType};

/// Seconds a command may run on a device unless `--time-limit` says otherwise.
const DEFAULT_COMMAND_TIME_LIMIT_SECS: u32 = 3600;
const DEFAULT_SIMULATE_DURATION_MS: u32 = 1000;
const DEFAULT_OUTCOMES: Outcomes = Outcomes {
    succeeded: 90,
    warning: 5,
    failed: 5,
};

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
    pub(super) fn name(self) -> &'static str {
        match self {
            TypeArg::Command => "command",
            TypeArg::Scan => "scan",
            TypeArg::Inventory => "inventory",
            TypeArg::Simulate => "simulate",
            TypeArg::Backup => "backup",
            TypeArg::Maintenance => "maintenance",
        }
    }

    pub(super) fn runs_on_server(self) -> bool {
        matches!(self, TypeArg::Backup | TypeArg::Maintenance)
    }

    pub(super) fn of(task_type: &TaskType) -> TypeArg {
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
pub(super) struct TypeParams {
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
    /// backup: the directory the copy is written to, inside the server's `backups`
    /// directory (a relative path is taken from there) [default: that directory].
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<String>,
}

impl TypeParams {
    /// The flags given, each with the type it belongs to.
    pub(super) fn given(&self) -> Vec<(&'static str, TypeArg)> {
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
    pub(super) fn build(&self, kind: TypeArg, base: Option<&TaskType>) -> anyhow::Result<TaskType> {
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

//! The command line of `canopy task ...` as clap parses it, and the requests it makes.

use anyhow::{Context, bail};
use clap::builder::PossibleValue;
use clap::{Args, Subcommand, ValueEnum};

use super::params::{TypeArg, TypeParams};
use super::scope_args::ScopeArgs;
use super::settings::{PasswordReader, SettingsArgs};
use crate::model::schedule::ScheduleOptions;
use crate::model::task::{DEFAULT_STORE_HISTORY_DAYS, DeviceState, Notify};
use crate::wire::msg::{AccountSpec, ScopeSpec, TaskChanges, TaskSpec, TaskView};

pub(super) const CREATE_EXAMPLES: &str = "\
Examples:
  canopy task create --name 'Update package lists' --type command \\
      --program /usr/bin/apt-get --arg update --group 'Managed devices'
  canopy task create --name 'Scan /srv' --type scan --path /srv \\
      --blocklist <SHA256> --devices 10.0.0.0/24,web-1 --schedule 'weekly:fri@19:00'
  canopy task create --name 'Nightly backup' --type backup --server --schedule 'every:1d@2025-01-01T02:00'
  canopy task create --name Inventory --type inventory --where tag=linux --where connected=yes

A task's account password is never given on the command line: with --account NAME it is
read from standard input (--password-stdin) or asked for on the terminal.";

pub(super) const EDIT_EXAMPLES: &str = "\
Examples:
  canopy task edit 'Scan /srv' --schedule manual --notify all
  canopy task edit 12 --time-limit 600          (keeps the command's program and arguments)
  canopy task edit 12 --run-missed=false --random-delay 0
  canopy task edit 12 --account svc-backup --password-stdin < password.txt
  canopy task edit 12 --default-account";

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Every task, grouped by the application it belongs to.
    List {
        /// The deleted tasks kept with their history instead (see `task restore`).
        #[arg(long)]
        deleted: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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
    /// Delete a task with its results; its revision history is kept for the retention
    /// term, and `task restore` brings it back.
    Delete {
        /// The task's name or id.
        task: String,
        /// Why, for the revision history.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Every revision of a task: number, time, account, action and comment.
    History {
        /// The task's name or id (a deleted task's id too).
        task: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The settings that differ between two revisions of a task, side by side (never a
    /// password, only "changed").
    Diff {
        /// The task's name or id.
        task: String,
        /// The earlier revision.
        from: u32,
        /// The later revision; the current one if not given.
        to: Option<u32>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a new revision with the settings of an earlier one (history is never rewritten).
    Rollback {
        /// The task's name or id.
        task: String,
        /// The revision whose settings to take.
        revision: u32,
        /// Why, for the revision history.
        #[arg(long)]
        comment: Option<String>,
    },
    /// The Change tasks password wizard: a new password for every task that runs under an
    /// account, where the previous one matches; for the others, delete the credentials,
    /// force the new password, or leave them.
    #[command(after_help = super::credentials::CREDENTIALS_EXAMPLES)]
    Credentials(Box<super::credentials::CredentialsArgs>),
    /// Show the task's rights (a group task's are its group's), or set one entry.
    #[command(after_help = crate::cli::rights::RIGHTS_EXAMPLES)]
    Rights {
        /// The task's name or id.
        task: String,
        #[command(flatten)]
        args: crate::cli::rights::RightsArgs,
    },
    /// Bring back a deleted task, with its id and history (see `task list --deleted`).
    Restore {
        /// The deleted task's id (`#7` or `7`) or name.
        task: String,
        /// Why, for the revision history.
        #[arg(long)]
        comment: Option<String>,
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
    /// Pause the task's running run: devices that have not started it hold, scan and
    /// simulate runs pause where they are, other task types finish.
    Pause {
        /// The task's name or id.
        task: String,
    },
    /// Resume the task's paused run.
    Resume {
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
    /// Write a device task to an export file (never its password): its type, parameters,
    /// settings and schedule, with a version and a checksum. Import it with `task import`.
    Export {
        /// The task's name or id.
        task: String,
        /// The file to write (it must not exist); standard output if not given.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Read an export file and show what it would create, changing nothing; with --commit
    /// and a scope, create the task (a taken name gets the next free " (N)").
    #[command(after_help = IMPORT_EXAMPLES)]
    Import(Box<ImportArgs>),
    /// Create a copy of a task: the same type, settings and scope, named --name or after
    /// the task, with the next free " (N)" if the name is taken.
    Copy {
        /// The task's name or id.
        task: String,
        /// The copy's name.
        #[arg(long)]
        name: Option<String>,
        /// Print the copy as JSON.
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
    pub(super) json: bool,
    /// Why, for the revision history.
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    params: TypeParams,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    settings: SettingsArgs,
}

const IMPORT_EXAMPLES: &str = "Examples:
  canopy task export \"Friday scan\" --out friday-scan.canopy-task
  canopy task import friday-scan.canopy-task
  canopy task import friday-scan.canopy-task --commit --group \"Managed devices\"";

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The export file.
    pub(super) file: std::path::PathBuf,
    /// Create the task (with a scope); without it, only show what would be created.
    #[arg(long)]
    pub(super) commit: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(super) json: bool,
    #[command(flatten)]
    pub(super) scope: ScopeArgs,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    /// The task's name or id.
    pub(super) task: String,
    /// A new display name.
    #[arg(long)]
    name: Option<String>,
    /// A new type: its parameters are then those given here, or their defaults. Without
    /// --type, the parameters given change those of the task's current type.
    #[arg(long = "type", value_name = "TYPE")]
    task_type: Option<TypeArg>,
    /// Print the changed task as JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// Why, for the revision history.
    #[arg(long)]
    pub(super) comment: Option<String>,
    #[command(flatten)]
    params: TypeParams,
    #[command(flatten)]
    pub(super) scope: ScopeArgs,
    #[command(flatten)]
    pub(super) settings: SettingsArgs,
    /// Run the task under the default account again (that of the application running it).
    #[arg(long, help_heading = "Settings", conflicts_with_all = ["account", "password_stdin", "no_password"])]
    pub(super) default_account: bool,
}

/// A device state for `--state`, named as the tables show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateArg(pub(super) DeviceState);

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

// ---- Building requests ----

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

pub(super) fn create_spec(
    args: &CreateArgs,
    read: &mut PasswordReader<'_>,
) -> anyhow::Result<TaskSpec> {
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
        comment: args.comment.clone(),
    })
}

impl EditArgs {
    /// Type parameters without --type, or schedule options: those change what the task has
    /// now, so the task must be fetched first.
    pub(super) fn needs_current(&self) -> bool {
        (self.task_type.is_none() && !self.params.given().is_empty())
            || self.settings.options_given()
    }
}

/// The changes `task edit` asks for, except the account. With `current` (the task as it is
/// now), also the type parameters given without --type and the schedule options; without
/// it, those are left out.
pub(super) fn edit_changes(
    args: &EditArgs,
    current: Option<&TaskView>,
) -> anyhow::Result<TaskChanges> {
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
        comment: args.comment.clone(),
    })
}

/// The account change `task edit` asks for: `Some(None)` is back to the default account.
pub(super) fn edit_account(
    args: &EditArgs,
    read: &mut PasswordReader<'_>,
) -> anyhow::Result<Option<Option<AccountSpec>>> {
    if args.default_account {
        return Ok(Some(None));
    }
    Ok(args.settings.account(read)?.map(Some))
}

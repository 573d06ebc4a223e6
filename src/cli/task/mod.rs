//! `canopy task ...`: tasks of the server you are logged in to: what they do, where and when,
//! and how each run went.
//!
//! Tasks are named by their display name or their id. Everything that can be checked without
//! the server (flags, the restart policy, the schedule, a device list file) is checked before
//! connecting, and before a password is asked for.
//!
//! This file runs the commands. The command line and the requests it makes are in `args.rs`,
//! with the task's type and its parameters in `params.rs`, its scope in `scope_args.rs` and
//! its settings (and the account's password) in `settings.rs`; the text for people is in
//! `render.rs`.

mod args;
mod credentials;
mod history;
mod params;
mod render;
mod scope_args;
mod settings;
#[cfg(test)]
mod tests;
mod transfer;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::client::AdminClient;
use super::{call, print_done, print_json};
use crate::cli::exit::Outcome;
use crate::model::scope::Scope;
use crate::model::task::{DeviceState, RunState};
use crate::wire::msg::{
    AdminRequest, AdminResponse, PAGE_MAX, RunView, TaskChanges, TaskRequest, TaskView,
};
pub use args::TaskCommand;
use args::{EditArgs, create_spec, edit_account, edit_changes};
pub(super) use render::{counts_json, servers_text, stats_json, stats_text};
use render::{
    list_text, progress_bar, quote, results_below_hint, results_text, show_text, started_text,
};
use scope_args::check_device_list;
use settings::read_account_password;

/// How often `task start --wait` asks for the run's statistics.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often `--wait` prints a progress line when stderr is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(2);

pub async fn run(session: &Path, cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::List {
            deleted: true,
            json,
        } => history::deleted(session, json).await,
        TaskCommand::List {
            deleted: false,
            json,
        } => {
            let client = super::connect(session).await?;
            let tasks = client.tasks().await;
            client.close().await;
            let tasks = tasks?;
            if json {
                return print_json(&tasks);
            }
            crate::cli::table::show(&list_text(&tasks));
            Ok(())
        }
        TaskCommand::Show { task, json } => {
            let view = show_task(session, &task).await?;
            if json {
                return print_json(&view);
            }
            crate::cli::table::show(&show_text(&view));
            Ok(())
        }
        TaskCommand::Create(args) => {
            let spec = create_spec(&args, &mut read_account_password)?;
            let response = task_call(session, TaskRequest::Create(Box::new(spec))).await?;
            print_task_answer(response, args.json, true)
        }
        TaskCommand::Edit(args) => edit(session, &args).await,
        TaskCommand::Delete { task, comment } => {
            print_done(task_call(session, TaskRequest::Delete { task, comment }).await?)
        }
        TaskCommand::History { task, json } => history::history(session, task, json).await,
        TaskCommand::Diff {
            task,
            from,
            to,
            json,
        } => history::diff(session, task, from, to, json).await,
        TaskCommand::Rollback {
            task,
            revision,
            comment,
        } => {
            let request = TaskRequest::Rollback {
                task,
                revision,
                comment,
            };
            print_task_answer(task_call(session, request).await?, false, false)
        }
        TaskCommand::Credentials(args) => credentials::run(session, *args).await,
        TaskCommand::Rights { task, args } => {
            let request = TaskRequest::Rights {
                task,
                change: args.change()?,
            };
            crate::cli::rights::run(session, AdminRequest::Task(request), args.json).await
        }
        TaskCommand::Restore { task, comment } => {
            let request = TaskRequest::Restore { task, comment };
            print_task_answer(task_call(session, request).await?, false, false)
        }
        TaskCommand::Stop { task } => {
            print_stats(task_call(session, TaskRequest::Stop { task }).await?)
        }
        TaskCommand::Export { task, out } => transfer::export(session, task, out).await,
        TaskCommand::Import(args) => transfer::import(session, &args).await,
        TaskCommand::Copy { task, name, json } => {
            let response = task_call(session, TaskRequest::Copy { task, name }).await?;
            print_task_answer(response, json, false)
        }
        TaskCommand::Pause { task } => {
            print_stats(task_call(session, TaskRequest::Pause { task }).await?)
        }
        TaskCommand::Resume { task } => {
            print_stats(task_call(session, TaskRequest::Resume { task }).await?)
        }
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
            let asked_below = server.is_some();
            let task_arg = task.clone();
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
                    after: None,
                    limit: PAGE_MAX,
                };
                Ok::<_, anyhow::Error>(client.results(request).await?)
            }
            .await;
            client.close().await;
            let (run, records) = answer?;
            if json {
                return print_json(&serde_json::json!({
                    "run": stats_json(&run)?,
                    "records": records,
                }));
            }
            crate::cli::table::show(&results_text(&run, &records, details));
            if !asked_below && let Some(hint) = results_below_hint(&run, &task_arg) {
                println!("{hint}");
            }
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
                crate::cli::table::show(&servers_text(&run));
            } else {
                crate::cli::table::show(&stats_text(&run));
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
    crate::cli::table::show(&show_text(&view));
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
        crate::cli::table::show(&started_text(&run, &skipped));
    }
    if !wait {
        if json {
            print_json(&serde_json::json!({ "run": stats_json(&run)?, "skipped": skipped }))?;
        }
        return Ok(());
    }
    let (run, interrupted) = wait_for(client, run).await?;
    if json {
        print_json(&serde_json::json!({ "run": stats_json(&run)?, "skipped": skipped }))?;
    } else {
        crate::cli::table::show(&stats_text(&run));
    }
    let task = quote(&task);
    let failed = run.counters.count(DeviceState::Failed);
    let outcome = if interrupted {
        Outcome::Interrupted {
            task,
            run: run.run_id,
        }
    } else if failed > 0 {
        Outcome::RunFailed {
            task,
            run: run.run_id,
            failed,
            targeted: run.counters.total(),
        }
    } else if run.state == RunState::Stopped && run.counters.finished() < run.counters.total() {
        Outcome::RunStopped {
            task,
            run: run.run_id,
        }
    } else {
        return Ok(());
    };
    Err(outcome.into())
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
        let over = matches!(run.state, RunState::Completed | RunState::Stopped);
        let bar = progress_bar(&run.counters);
        if terminal {
            // Back to the line's start, the bar, then clear what a longer line left.
            eprint!("\r{bar}\x1b[K");
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

/// A run's statistics, as `task stop`, `pause` and `resume` answer.
fn print_stats(response: AdminResponse) -> anyhow::Result<()> {
    match response {
        AdminResponse::TaskStats(run) => {
            crate::cli::table::show(&stats_text(&run));
            Ok(())
        }
        response => print_done(response),
    }
}

//! `canopy agent`: `--config F [--simulate N ...]` runs the device agent (one device, or a
//! simulated fleet); `canopy agent local-task ...` are the device user's commands. Those never
//! open the agent's database (the running agent holds its lock): they read the agent's
//! snapshot and leave change requests in its spool (see [`crate::agent::local`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};

use super::{print_json, table};
use crate::agent::config::AgentConfig;
use crate::agent::local::{self, Snapshot};
use crate::agent::{Agents, Simulation};
use crate::model::format_time;
use crate::model::schedule::Schedule;

/// `canopy agent --config F [--simulate N ...]` runs the agent; `canopy agent local-task ...`
/// is for the device's user.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentCommand {
    #[command(flatten)]
    run: Option<AgentArgs>,
    #[command(subcommand)]
    command: Option<AgentSubcommand>,
}

impl AgentCommand {
    /// The config of the agent this command runs, if it runs one.
    pub fn config(&self) -> Option<&Path> {
        self.run.as_ref().map(|args| args.config.as_path())
    }
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    #[arg(long)]
    config: PathBuf,
    /// Run N simulated devices in this process, each with its own identity and connection.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    simulate: Option<u32>,
    /// Seed of the simulated devices' attributes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The subcommands of `canopy agent` (without one, `canopy agent --config F` runs the agent).
#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum AgentSubcommand {
    /// This device's local tasks, which its user may reschedule.
    #[command(subcommand)]
    LocalTask(LocalTaskCommand),
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum LocalTaskCommand {
    /// The local tasks as the agent last saw them, with your changes not confirmed yet.
    List {
        /// The agent's config.
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Change the schedule of a local task. If an administrator changes the task at the same
    /// time, the administrator's change takes precedence and yours is dropped.
    Edit {
        /// The agent's config.
        #[arg(long)]
        config: PathBuf,
        /// The task's id or its name.
        #[arg(value_name = "TASK_ID_OR_NAME")]
        task: String,
        /// The new schedule: manual, immediately, app-start, once:YYYY-MM-DDTHH:MM,
        /// every:N(m|h|d|w)@YYYY-MM-DDTHH:MM, weekly:mon,fri@HH:MM, monthly:DAY@HH:MM or
        /// monthday:(first|second|third|fourth|last)-WEEKDAY@HH:MM.
        #[arg(long, value_name = "SPEC")]
        schedule: String,
        /// Do not wait for the agent and the server to take the change.
        #[arg(long)]
        no_wait: bool,
    },
}

/// How long `edit` waits for the agent to take the request, then for the server's answer.
const PICKUP_WAIT: Duration = Duration::from_secs(3);
const ANSWER_WAIT: Duration = Duration::from_secs(5);
const WAIT_STEP: Duration = Duration::from_millis(100);

pub async fn run(cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand {
            command: Some(cmd), ..
        } => subcommand(cmd).await,
        AgentCommand {
            run: Some(args), ..
        } => run_agent(args).await,
        AgentCommand { .. } => bail!("canopy agent needs --config (see canopy agent --help)"),
    }
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let config = AgentConfig::load(&args.config)?;
    let simulation = args.simulate.map(|devices| Simulation {
        devices,
        seed: args.seed,
    });
    let agents = Agents::start(config, simulation).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The first report once the first attempts had time to end, then every 10 s.
    let mut report = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(3),
        Duration::from_secs(10),
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = report.tick() => tracing::info!("{}", counts_line(&agents.counts())),
        }
    }
    agents.stop().await
}

/// The agent's periodic report: its devices by state and, while any is connecting, why the
/// last attempt failed.
fn counts_line(c: &crate::agent::AgentCounts) -> String {
    let mut line = format!(
        "devices: {} connected, {} pending approval, {} rejected, {} connecting",
        c.connected, c.pending, c.rejected, c.connecting
    );
    if let Some(reason) = &c.last_failure {
        line.push_str(&format!(" (last attempt: {reason})"));
    }
    line
}

async fn subcommand(cmd: AgentSubcommand) -> anyhow::Result<()> {
    match cmd {
        AgentSubcommand::LocalTask(LocalTaskCommand::List { config, json }) => {
            let config = AgentConfig::load(&config)?;
            tokio::task::spawn_blocking(move || list(&config.data, json)).await?
        }
        AgentSubcommand::LocalTask(LocalTaskCommand::Edit {
            config,
            task,
            schedule,
            no_wait,
        }) => {
            let config = AgentConfig::load(&config)?;
            edit(&config.data, &task, &schedule, !no_wait).await
        }
    }
}

fn list(data: &Path, json: bool) -> anyhow::Result<()> {
    let Some(snapshot) = local::read_snapshot(data)? else {
        bail!(
            "no list of local tasks at {}: the agent has not run with this config yet",
            local::snapshot_path(data).display()
        );
    };
    let (waiting, rejected) = local::spooled(data)?;
    if json {
        return print_json(&snapshot.tasks);
    }
    let spool = local::spool_dir(data);
    print!(
        "{}",
        list_text(&snapshot, waiting.len(), rejected.len(), &spool)
    );
    Ok(())
}

fn list_text(snapshot: &Snapshot, waiting: usize, rejected: usize, spool: &Path) -> String {
    let rows: Vec<Vec<String>> = snapshot
        .tasks
        .iter()
        .map(|t| {
            let mut schedule = t.schedule_text.clone();
            if let Some(edit) = &t.pending_edit {
                schedule.push_str(&format!(
                    " → {} (your change is waiting for the server)",
                    edit.schedule_text
                ));
            }
            vec![
                t.task_id.to_string(),
                t.name.clone(),
                t.revision.to_string(),
                schedule,
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        "this device has no local tasks\n".to_string()
    } else {
        table::render(&["ID", "NAME", "REVISION", "SCHEDULE"], &rows)
    };
    out.push_str(&format!(
        "(as the agent saw them at {})\n",
        format_time(snapshot.written_at_ms)
    ));
    if waiting > 0 {
        out.push_str(&format!(
            "{waiting} change(s) not taken by the agent yet: is it running?\n"
        ));
    }
    if rejected > 0 {
        out.push_str(&format!(
            "{rejected} change(s) refused by the agent: see the *.rejected files in {}\n",
            spool.display()
        ));
    }
    out
}

async fn edit(data: &Path, task: &str, spec: &str, wait: bool) -> anyhow::Result<()> {
    // The revision the change starts from, as far as the user can know it.
    let before = {
        let data = data.to_path_buf();
        tokio::task::spawn_blocking(move || local::read_snapshot(&data)).await??
    };
    let known = before.as_ref().and_then(|s| {
        let id = local::resolve(s.tasks.iter().map(|t| (t.task_id, t.name.as_str())), task).ok()?;
        s.tasks.iter().find(|t| t.task_id == id).cloned()
    });
    let path = {
        let (data, task, spec) = (data.to_path_buf(), task.to_string(), spec.to_string());
        tokio::task::spawn_blocking(move || local::write_edit_request(&data, &task, &spec))
            .await??
    };
    if !wait {
        println!("change requested ({})", path.display());
        return Ok(());
    }
    let rejected = PathBuf::from(format!("{}.rejected", path.display()));
    let start = Instant::now();
    while path.exists() {
        if start.elapsed() > PICKUP_WAIT {
            println!(
                "change requested; the agent has not taken it yet (is it running?): it will \
                 when it runs"
            );
            return Ok(());
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    if let Ok(text) = std::fs::read_to_string(&rejected) {
        let reason = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("rejected: "))
            .unwrap_or("no reason given");
        bail!("the agent refused the change: {reason}");
    }
    let Some(known) = known else {
        println!("the agent took the change; it is waiting for the server");
        return Ok(());
    };
    let wanted = Schedule::parse(spec).map_err(anyhow::Error::msg)?.spec();
    if known.pending_edit.is_none() && known.schedule == wanted {
        println!(
            "local task #{} already runs {}: nothing to change",
            known.task_id, known.schedule_text
        );
        return Ok(());
    }
    let start = Instant::now();
    while start.elapsed() < ANSWER_WAIT {
        let now = {
            let data = data.to_path_buf();
            tokio::task::spawn_blocking(move || local::read_snapshot(&data)).await??
        };
        let task = now.and_then(|s| s.tasks.into_iter().find(|t| t.task_id == known.task_id));
        let Some(task) = task else {
            bail!("local task #{} was deleted", known.task_id);
        };
        if task.pending_edit.is_none() && task.revision > known.revision {
            if task.schedule == wanted {
                println!(
                    "local task #{} now runs {} (revision {})",
                    task.task_id, task.schedule_text, task.revision
                );
                return Ok(());
            }
            bail!(
                "an administrator changed local task #{} at the same time; their change takes \
                 precedence: it runs {} (revision {})",
                task.task_id,
                task.schedule_text,
                task.revision
            );
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    println!(
        "the agent took the change; it is waiting for the server (see `canopy agent local-task \
         list`)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The subcommands alone.
    #[derive(Parser, Debug)]
    struct Sub {
        #[command(subcommand)]
        command: AgentSubcommand,
    }

    fn sub(args: &[&str]) -> Result<AgentSubcommand, clap::Error> {
        Sub::try_parse_from(std::iter::once("agent").chain(args.iter().copied())).map(|s| s.command)
    }

    fn canopy(args: &str) -> Result<String, clap::Error> {
        crate::cli::Cli::try_parse_from(std::iter::once("canopy").chain(args.split(' ')))
            .map(|cli| format!("{cli:?}"))
    }

    #[test]
    fn local_task_commands() {
        assert_eq!(
            sub(&["local-task", "list", "--config", "agent.toml"]).unwrap(),
            AgentSubcommand::LocalTask(LocalTaskCommand::List {
                config: "agent.toml".into(),
                json: false
            })
        );
        assert_eq!(
            sub(&["local-task", "list", "--json", "--config", "a.toml"]).unwrap(),
            AgentSubcommand::LocalTask(LocalTaskCommand::List {
                config: "a.toml".into(),
                json: true
            })
        );
        let edit = sub(&[
            "local-task",
            "edit",
            "--config",
            "agent.toml",
            "Nightly scan",
            "--schedule",
            "weekly:mon@09:00",
        ]);
        assert_eq!(
            edit.unwrap(),
            AgentSubcommand::LocalTask(LocalTaskCommand::Edit {
                config: "agent.toml".into(),
                task: "Nightly scan".into(),
                schedule: "weekly:mon@09:00".into(),
                no_wait: false,
            })
        );
        for bad in [
            &["local-task", "list"][..],
            &["local-task", "edit", "--config", "a.toml", "7"],
            &[
                "local-task",
                "edit",
                "--config",
                "a.toml",
                "--schedule",
                "manual",
            ],
        ] {
            assert!(sub(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn running_the_agent_is_unchanged() {
        let run = canopy("agent --config agent.toml --simulate 3 --seed 9").unwrap();
        for part in [
            "run: Some(AgentArgs {",
            "config: \"agent.toml\"",
            "simulate: Some(3)",
            "seed: 9",
            "command: None",
        ] {
            assert!(run.contains(part), "{part}: {run}");
        }
        let run = canopy("agent --config agent.toml").unwrap();
        assert!(
            run.contains("simulate: None") && run.contains("seed: 1"),
            "{run}"
        );
        let edit = canopy("agent local-task edit --config a.toml 7 --schedule manual").unwrap();
        assert!(
            edit.contains("run: None") && edit.contains("Edit {"),
            "{edit}"
        );
        for bad in [
            "agent",
            "agent --simulate 3",
            "agent --config a.toml --simulate 0",
            "agent --config a.toml local-task list --config a.toml",
        ] {
            assert!(canopy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_marks_waiting_changes() {
        let snapshot = Snapshot {
            device_id: "dev".into(),
            written_at_ms: 0,
            tasks: vec![local::SnapshotTask {
                task_id: 7,
                name: "Nightly scan".into(),
                revision: 3,
                application: "Endpoint Security".into(),
                schedule: "manual".into(),
                schedule_text: "manually".into(),
                payload: crate::model::task::TaskPayload::Inventory,
                pending_edit: Some(local::SnapshotEdit {
                    base_revision: 3,
                    schedule: "monthly:1@08:00".into(),
                    schedule_text: "monthly".into(),
                }),
            }],
        };
        let text = list_text(&snapshot, 1, 0, Path::new("/d.edits"));
        assert!(text.starts_with("ID  NAME"), "{text}");
        assert!(text.contains("7   Nightly scan  3"), "{text}");
        assert!(
            text.contains("(your change is waiting for the server)"),
            "{text}"
        );
        assert!(text.contains("1 change(s) not taken"), "{text}");
    }
}

//! `canopy bench`: scenarios that measure the real thing on loopback and print what they
//! measured, as min, median and max over repeated runs.
//!
//! This file holds the command line and what the scenarios share to set up servers, devices
//! and tasks; `figures.rs` the machine and the figures' summaries, `process.rs` the child
//! processes and what they use; one file per scenario: `connect.rs`, `ingest.rs`,
//! `fanout.rs`, `change.rs`, `herd.rs`, `catchup.rs`.

mod catchup;
mod change;
mod connect;
mod fanout;
mod figures;
mod herd;
mod ingest;
mod poller;
mod process;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;

use super::client::AdminClient;
use super::deployment::{Deployment, config_text};
use crate::model::Fingerprint;
use crate::model::task::{TaskPayload, TaskType};
use crate::wire::msg::{AdminRequest, AdminResponse, ScopeSpec, TaskSpec};
use catchup::catchup;
use change::change;
use connect::connect;
use fanout::{TreeShape, fanout};
use herd::herd;
use ingest::ingest;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Simulated devices enroll and connect to one server from cold, then reconnect after the
    /// server restarts; the server's memory per connected device.
    Connect {
        #[arg(long, default_value_t = 10_000)]
        devices: u32,
        /// Measured runs, after one warm-up run with at most 500 devices.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// The devices' keep-alive interval, in seconds; the idle timeout of both ends is six
        /// times it (30 s at the default). Every keep-alive is a packet the server answers.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
        keep_alive_s: u64,
        #[arg(long)]
        json: bool,
    },
    /// One server (in this process) durably records the results of a task run on simulated
    /// devices over QUIC: results per second, write transactions and jobs per transaction,
    /// and a check that the counters equal the per-device records.
    Ingest {
        #[arg(long, default_value_t = 10_000)]
        devices: u32,
        /// Measured runs of the task, after one warm-up run.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        #[arg(long)]
        json: bool,
    },
    /// A tree of depth 3 (a primary, its secondaries, theirs), each server a `canopy serve`
    /// process with its own redb file, every link real QUIC on loopback, simulated devices
    /// on every server (one `canopy agent --simulate` process per server): a group task with
    /// include_secondaries is started at the primary, and the primary's own statistics are
    /// polled for the first result, 50 %, 99 % and 100 % of devices finished, in total and
    /// per tier.
    Fanout {
        /// Simulated devices, spread evenly over every server of the tree.
        #[arg(long, default_value_t = 10_000)]
        devices: u32,
        /// Secondaries of the primary.
        #[arg(long, default_value_t = 2)]
        secondaries: u32,
        /// Secondaries of each of those.
        #[arg(long, default_value_t = 2)]
        per_secondary: u32,
        /// Measured runs of a new task each, after one warm-up run.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Pause between two `task stats` requests to the primary, in milliseconds.
        #[arg(long, default_value_t = 5)]
        poll_ms: u64,
        /// Run every server in this process (one tokio runtime) instead of one
        /// `canopy serve` process each.
        #[arg(long)]
        in_process: bool,
        #[arg(long)]
        json: bool,
    },
    /// Simulated devices with the same scheduled minute start a `once` task by themselves;
    /// for each randomized-delay window, the server's peak results per second, its CPU, the
    /// time until every result is stored and how the starts spread. Each window waits for
    /// a minute boundary of the devices' clock.
    Herd {
        #[arg(long, default_value_t = 10_000)]
        devices: u32,
        /// Randomized-delay windows to measure, in seconds (the bench's own unit: the
        /// product's windows are usually minutes), comma-separated; 0 is no delay.
        #[arg(long, value_delimiter = ',', default_value = "0,60")]
        windows: Vec<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Virtual servers on one primary (in-process children, each with its own redb file)
    /// inherit a group task; the task is edited at the primary, and the time until every
    /// copy shows the edit is measured.
    Change {
        /// Virtual servers created on the primary.
        #[arg(long, default_value_t = 100)]
        secondaries: u32,
        /// Measured edits, after one warm-up edit.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Pause between two requests for one copy, in milliseconds.
        #[arg(long, default_value_t = 5)]
        poll_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// A virtual server is away (disabled) while its primary's change log grows by
    /// `--entries` edits of group tasks, then comes back: the time until it holds the
    /// primary's state, once with the log trimmed to `--keep` entries (it is sent a snapshot
    /// of the state) and once with every entry kept (it replays them all).
    Catchup {
        #[arg(long, default_value_t = 100_000)]
        entries: u64,
        /// Group tasks the edits go round.
        #[arg(long, default_value_t = 20)]
        tasks: u32,
        /// `change_log.keep` of the trimmed run.
        #[arg(long, default_value_t = 1_000)]
        keep: u64,
        #[arg(long)]
        json: bool,
    },
}

const TOKEN: &str = "bench-enrollment-token-0001";

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Connect {
            devices,
            runs,
            keep_alive_s,
            json,
        } => {
            connect(
                devices,
                runs.max(1),
                Duration::from_secs(keep_alive_s),
                json,
            )
            .await
        }
        BenchCommand::Ingest {
            devices,
            runs,
            json,
        } => ingest(devices.max(1), runs.max(1), json).await,
        BenchCommand::Fanout {
            devices,
            secondaries,
            per_secondary,
            runs,
            poll_ms,
            in_process,
            json,
        } => {
            let shape = TreeShape {
                secondaries,
                per_secondary,
            };
            fanout(devices, shape, runs.max(1), poll_ms, in_process, json).await
        }
        BenchCommand::Change {
            secondaries,
            runs,
            poll_ms,
            json,
        } => change(secondaries.max(1), runs.max(1), poll_ms, json).await,
        BenchCommand::Herd {
            devices,
            windows,
            json,
        } => herd(devices.max(1), windows, json).await,
        BenchCommand::Catchup {
            entries,
            tasks,
            keep,
            json,
        } => catchup(entries.max(1), tasks.max(1), keep.max(1), json).await,
    }
}

/// Logs in as soon as the server answers.
async fn admin_when_up(d: &Deployment, addr: std::net::SocketAddr) -> anyhow::Result<AdminClient> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match d.admin(addr).await {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the server never answered"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn connected(admin: &AdminClient) -> anyhow::Result<u32> {
    match admin.call(AdminRequest::ServerStatus).await? {
        AdminResponse::Status(s) => Ok(s.devices_connected),
        _ => bail!("unexpected answer"),
    }
}

async fn wait_connected(admin: &AdminClient, devices: u32, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let n = connected(admin).await?;
        if n >= devices {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {n} of {devices} devices connected after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every simulated device of a bench connects from 127.0.0.1, so the bench lifts the
/// per-address cap (default 1000) to what its largest runs need.
pub(crate) const BENCH_LIMITS: &str = "\n[limits]\nmax_connections_per_address = 50000\n";

/// A server config for the bench: the deployment's config with the enrollment token, and
/// keep-alive 5 s / idle timeout 30 s, as `connect` and `ingest` use for 10,000 devices.
fn bench_server_text(name: &str, port: u16, parent: Option<(SocketAddr, Fingerprint)>) -> String {
    format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n{}",
        config_text(name, port, parent),
        crate::cli::bench::BENCH_LIMITS,
    )
    .replace("keep_alive_ms = 1000", "keep_alive_ms = 5000")
    .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 30000")
}

/// The config file of a simulated fleet `name` at `addr`, with the agent's own link timers
/// (keep-alive 5 s, idle timeout 30 s) rather than the deployment's short ones for tests:
/// every device's keep-alive is a packet the server answers.
pub(crate) fn bench_agent_config(
    d: &Deployment,
    name: &str,
    addr: SocketAddr,
) -> anyhow::Result<std::path::PathBuf> {
    d.agent_config(name, addr, Some(TOKEN))?;
    let path = d.dir.join(format!("{name}.agent.toml"));
    let text = std::fs::read_to_string(&path)?
        .replace("keep_alive_ms = 1000", "keep_alive_ms = 5000")
        .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 30000");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A group task on "Managed devices" and its subgroups, started by hand.
fn group_task(name: &str, payload: TaskPayload, include_secondaries: bool) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        task_type: TaskType::Device(payload),
        application: None,
        scope: ScopeSpec::Group {
            path: "Managed devices".into(),
            include_subgroups: true,
            include_secondaries,
        },
        restart: Default::default(),
        schedule: Default::default(),
        schedule_options: Default::default(),
        account: None,
        notify: crate::model::task::Notify::Off,
        store_history_days: 1,
        comment: None,
    }
}

/// A simulated run that takes no time: every device succeeds at once.
fn instant_success() -> TaskPayload {
    TaskPayload::Simulate {
        duration_ms: 0,
        succeeded: 100,
        warning: 0,
        failed: 0,
        need_restart_percent: 0,
    }
}

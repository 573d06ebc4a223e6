//! `canopy bench`: scenarios that measure the real thing on loopback and print what they
//! measured, as min, median and max over repeated runs.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;

use super::client::AdminClient;
use super::deployment::{Deployment, config_text, free_port, wait_for_tree};
use crate::agent::{Agents, Simulation};
use crate::model::task::{TaskPayload, TaskType};
use crate::model::{Fingerprint, ServerStatus};
use crate::wire::msg::{
    AdminRequest, AdminResponse, ScopeSpec, TaskChanges, TaskRequest, TaskSpec, TaskView,
    VirtualServerRequest,
};

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
}

const TOKEN: &str = "bench-enrollment-token-0001";

#[derive(Serialize)]
struct Machine {
    cores: usize,
    memory_gib: f64,
}

fn machine() -> Machine {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    Machine {
        cores,
        memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
    }
}

/// Min, median and max of one figure over the runs.
#[derive(Serialize, Clone, Copy)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

pub fn spread(values: &[f64]) -> Spread {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    Spread {
        min: at(0),
        median: at(v.len() / 2),
        max: at(v.len().saturating_sub(1)),
    }
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Connect {
            devices,
            runs,
            json,
        } => connect(devices, runs.max(1), json).await,
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
    }
}

/// One line per figure of a summary: its min, median and max.
fn print_figures(summary: &serde_json::Value, figures: &[(&str, &str, &str)]) {
    for (name, key, unit) in figures {
        let s = &summary[key];
        println!(
            "{name:<26} min {:>10.2}  median {:>10.2}  max {:>10.2} {unit}",
            s["min"].as_f64().unwrap_or(f64::NAN),
            s["median"].as_f64().unwrap_or(f64::NAN),
            s["max"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Serialize)]
struct ConnectRun {
    identities_s: f64,
    cold_connect_s: f64,
    device_list_s: f64,
    reconnect_storm_s: f64,
    cold_server_cpu_s: f64,
    cold_agents_cpu_s: f64,
    storm_server_cpu_s: f64,
    storm_agents_cpu_s: f64,
    server_rss_idle_mib: f64,
    server_rss_connected_mib: f64,
    server_kib_per_device: f64,
}

async fn connect(devices: u32, runs: u32, json: bool) -> anyhow::Result<()> {
    let machine = machine();
    if !json {
        println!(
            "bench connect: {devices} simulated devices, 1 server process, {runs} runs after a warm-up; machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
        println!(
            "agents: keep-alive 5 s, idle timeout 30 s, reconnect backoff 0.5 s to 5 s with jitter"
        );
    }
    connect_once(devices.min(500))
        .await
        .context("warm-up run")?;
    let mut all = Vec::new();
    for i in 0..runs {
        let r = connect_once(devices)
            .await
            .with_context(|| format!("run {}", i + 1))?;
        if !json {
            println!(
                "run {}: identities {:.2} s, cold enroll+connect {:.2} s (CPU: server {:.1} s, agents {:.1} s), reconnect storm {:.2} s (CPU: server {:.1} s, agents {:.1} s), server RSS {:.1} -> {:.1} MiB ({:.1} KiB per device)",
                i + 1,
                r.identities_s,
                r.cold_connect_s,
                r.cold_server_cpu_s,
                r.cold_agents_cpu_s,
                r.reconnect_storm_s,
                r.storm_server_cpu_s,
                r.storm_agents_cpu_s,
                r.server_rss_idle_mib,
                r.server_rss_connected_mib,
                r.server_kib_per_device
            );
        }
        all.push(r);
    }
    let figure = |f: fn(&ConnectRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    let summary = serde_json::json!({
        "scenario": "connect",
        "devices": devices,
        "runs": runs,
        "machine": machine,
        "identities_s": figure(|r| r.identities_s),
        "cold_connect_s": figure(|r| r.cold_connect_s),
        "device_list_s": figure(|r| r.device_list_s),
        "reconnect_storm_s": figure(|r| r.reconnect_storm_s),
        "server_kib_per_device": figure(|r| r.server_kib_per_device),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_figures(
            &summary,
            &[
                ("device identities made", "identities_s", "s"),
                ("cold enroll + connect", "cold_connect_s", "s"),
                ("device list, all connected", "device_list_s", "s"),
                ("reconnect storm", "reconnect_storm_s", "s"),
                ("server memory per device", "server_kib_per_device", "KiB"),
            ],
        );
    }
    Ok(())
}

/// A `canopy serve` child process, so its memory is its own.
struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    fn spawn(config: &Path, log: &Path) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe()?;
        let log = std::fs::File::create(log)?;
        let child = Command::new(exe)
            .args(["serve", "--config"])
            .arg(config)
            .env("CANOPY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the server process")?;
        Ok(ServerProcess { child })
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("the server did not stop on SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

async fn connect_once(devices: u32) -> anyhow::Result<ConnectRun> {
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    let port = free_port()?;
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text("bench", port, None)
    )
    .replace("keep_alive_ms = 1000", "keep_alive_ms = 5000")
    .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 30000");
    crate::net::pki::issue_server(&d.certs, "bench", &["127.0.0.1".into()], 30)?;
    let config = d.write_config("bench", &text).await?;
    let config_path = dir.path().join("bench.toml");
    let log = dir.path().join("server.log");
    let server = ServerProcess::spawn(&config_path, &log)?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let admin = admin_when_up(&d, addr).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = server.rss_mib();

    let agent_config = d.agent_config("fleet", addr, Some(TOKEN))?;
    let agent_config = crate::agent::config::AgentConfig {
        keep_alive: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        link: crate::sync::link::LinkPolicy {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            ..agent_config.link
        },
        ..agent_config
    };
    let (server_cpu0, agents_cpu0) = (server.cpu_seconds(), cpu_seconds("self"));
    let started = Instant::now();
    let agents = Agents::start(agent_config, Some(Simulation { devices, seed: 1 })).await?;
    let identities_s = started.elapsed().as_secs_f64();
    wait_connected(&admin, devices, Duration::from_secs(300)).await?;
    let cold_connect_s = started.elapsed().as_secs_f64();
    let cold_server_cpu_s = server.cpu_seconds() - server_cpu0;
    let cold_agents_cpu_s = cpu_seconds("self") - agents_cpu0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = server.rss_mib();
    // What an administrator sees: `canopy device list` shows every device connected.
    let listing = Instant::now();
    let listed = admin.devices(None, false).await?;
    let device_list_s = listing.elapsed().as_secs_f64();
    let shown = listed.iter().filter(|d| d.connected).count();
    if shown != devices as usize {
        bail!("device list shows {shown} of {devices} devices connected");
    }
    admin.close().await;
    let _ = config;

    // The reconnect storm: the server restarts on the same data; every device comes back.
    server.stop().await?;
    let agents_cpu1 = cpu_seconds("self");
    let restarted = Instant::now();
    let server = ServerProcess::spawn(&config_path, &log)?;
    let admin = admin_when_up(&d, addr).await?;
    wait_connected(&admin, devices, Duration::from_secs(300)).await?;
    let reconnect_storm_s = restarted.elapsed().as_secs_f64();
    let storm_server_cpu_s = server.cpu_seconds();
    let storm_agents_cpu_s = cpu_seconds("self") - agents_cpu1;
    admin.close().await;
    agents.stop().await?;
    server.stop().await?;
    Ok(ConnectRun {
        identities_s,
        cold_connect_s,
        device_list_s,
        reconnect_storm_s,
        cold_server_cpu_s,
        cold_agents_cpu_s,
        storm_server_cpu_s,
        storm_agents_cpu_s,
        server_rss_idle_mib: rss_idle,
        server_rss_connected_mib: rss_connected,
        server_kib_per_device: (rss_connected - rss_idle) * 1024.0 / f64::from(devices),
    })
}

#[derive(Serialize)]
struct IngestRun {
    /// From the start request until the server recorded the last device's result.
    seconds: f64,
    results_per_s: f64,
    /// Device reports stored (received, started, result: three per device).
    reports: u64,
    commits: u64,
    jobs_per_commit: f64,
    /// CPU seconds of the bench process (the server) and of the devices' process.
    server_cpu_s: f64,
    agents_cpu_s: f64,
}

/// `bench ingest`: a simulated task whose runs take no time, so what is measured is the
/// server taking orders out and results in.
async fn ingest(devices: u32, runs: u32, json: bool) -> anyhow::Result<()> {
    use crate::model::task::RunCounters;
    let machine = machine();
    if !json {
        println!(
            "bench ingest: {devices} simulated devices over QUIC in a second process, 1 server in this process (both on the same cores), {runs} runs after a warm-up; machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
    }
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text("bench", 0, None)
    )
    .replace("keep_alive_ms = 1000", "keep_alive_ms = 5000")
    .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 30000");
    crate::net::pki::issue_server(&d.certs, "bench", &["127.0.0.1".into()], 30)?;
    let server = super::deployment::start(&d.write_config("bench", &text).await?).await?;
    let addr = server.local_addr();
    let admin = d.admin(addr).await?;
    // The devices run in their own process, so the CPU each side spends is counted apart.
    d.agent_config("fleet", addr, Some(TOKEN))?;
    let agents = AgentProcess::spawn(&dir.path().join("fleet.agent.toml"), devices, 1)?;
    wait_connected(&admin, devices, Duration::from_secs(300)).await?;
    let spec = TaskSpec {
        name: "ingest".into(),
        task_type: TaskType::Device(TaskPayload::Simulate {
            duration_ms: 0,
            succeeded: 90,
            warning: 5,
            failed: 5,
            need_restart_percent: 10,
        }),
        application: None,
        scope: ScopeSpec::Group {
            path: "Managed devices".into(),
            include_subgroups: true,
            include_secondaries: false,
        },
        restart: Default::default(),
        schedule: Default::default(),
        schedule_options: Default::default(),
        account: None,
        notify: crate::model::task::Notify::Off,
        store_history_days: 1,
    };
    admin
        .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
        .await?;
    let store = server.node.store.clone();
    let mut all = Vec::new();
    for i in 0..=runs {
        let before = store.stats();
        let cpu_before = (cpu_seconds("self"), agents.cpu_seconds());
        let started = Instant::now();
        let start = TaskRequest::Start {
            task: "ingest".into(),
            devices: None,
        };
        let AdminResponse::TaskStarted { run, .. } = admin.call(AdminRequest::Task(start)).await?
        else {
            bail!("unexpected answer to task start");
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        let finished = loop {
            let Some(now) = store.run(run.run_id).await? else {
                bail!("run {} vanished", run.run_id);
            };
            if now.finished.is_some() {
                break now;
            }
            if Instant::now() > deadline {
                bail!("the run did not finish in 10 minutes: {:?}", now.counters);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let seconds = started.elapsed().as_secs_f64();
        let server_cpu_s = cpu_seconds("self") - cpu_before.0;
        let agents_cpu_s = agents.cpu_seconds() - cpu_before.1;
        let after = store.stats();
        let records = store.run_records(run.run_id).await?;
        if RunCounters::of(&records) != finished.counters
            || finished.counters.total() != u64::from(devices)
        {
            bail!(
                "counters {:?} differ from the {} records",
                finished.counters,
                records.len()
            );
        }
        let commits = after.commits - before.commits;
        let r = IngestRun {
            seconds,
            results_per_s: f64::from(devices) / seconds,
            reports: 3 * u64::from(devices),
            commits,
            jobs_per_commit: (after.jobs - before.jobs) as f64 / commits.max(1) as f64,
            server_cpu_s,
            agents_cpu_s,
        };
        if i == 0 {
            continue;
        }
        if !json {
            println!(
                "run {i}: {devices} results in {:.3} s = {:.0} results/s; {} reports in {} commits ({:.1} jobs per commit); CPU: server {:.2} s, devices {:.2} s; counters equal the records",
                r.seconds,
                r.results_per_s,
                r.reports,
                r.commits,
                r.jobs_per_commit,
                r.server_cpu_s,
                r.agents_cpu_s
            );
        }
        all.push(r);
    }
    let figure = |f: fn(&IngestRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    let summary = serde_json::json!({
        "scenario": "ingest",
        "devices": devices,
        "runs": runs,
        "machine": machine,
        "seconds": figure(|r| r.seconds),
        "results_per_s": figure(|r| r.results_per_s),
        "jobs_per_commit": figure(|r| r.jobs_per_commit),
        "server_cpu_s": figure(|r| r.server_cpu_s),
        "agents_cpu_s": figure(|r| r.agents_cpu_s),
        "counters_exact": true,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_figures(
            &summary,
            &[
                ("results per second", "results_per_s", "/s"),
                ("seconds per run", "seconds", "s"),
                ("jobs per commit", "jobs_per_commit", ""),
                ("server CPU per run", "server_cpu_s", "s"),
                ("devices' CPU per run", "agents_cpu_s", "s"),
            ],
        );
    }
    admin.close().await;
    agents.stop().await?;
    server.shutdown().await?;
    Ok(())
}

/// A `canopy agent --simulate N` child process.
struct AgentProcess {
    server: ServerProcess,
}

impl AgentProcess {
    fn spawn(config: &Path, devices: u32, seed: u64) -> anyhow::Result<AgentProcess> {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .args(["agent", "--config"])
            .arg(config)
            .args([
                "--simulate",
                &devices.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .env("CANOPY_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the devices' process")?;
        // Stopping and accounting work the same as for a server process.
        Ok(AgentProcess {
            server: ServerProcess { child },
        })
    }

    fn cpu_seconds(&self) -> f64 {
        self.server.cpu_seconds()
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
    }
}

// ---- The hierarchy: `fanout` and `change` ----

/// A server config for the bench: the deployment's config with the enrollment token, and
/// keep-alive 5 s / idle timeout 30 s, as `connect` and `ingest` use for 10,000 devices.
fn bench_server_text(name: &str, port: u16, parent: Option<(SocketAddr, Fingerprint)>) -> String {
    format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text(name, port, parent)
    )
    .replace("keep_alive_ms = 1000", "keep_alive_ms = 5000")
    .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 30000")
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

/// The shape of the `fanout` tree below its primary.
#[derive(Clone, Copy, Debug)]
struct TreeShape {
    secondaries: u32,
    per_secondary: u32,
}

/// The tiers of the `fanout` tree: the primary, its secondaries, theirs.
const TIERS: usize = 3;

/// One server of the `fanout` tree.
#[derive(Serialize, Clone, Debug)]
struct TreeServer {
    name: String,
    /// Its display path at the primary.
    path: String,
    depth: u32,
    devices: u32,
    /// Its parent's index in the plan.
    #[serde(skip)]
    parent: Option<usize>,
}

impl TreeShape {
    /// Every server, parents before their children, with `devices` spread evenly (the
    /// first servers take one more when they do not divide).
    fn plan(&self, devices: u32) -> Vec<TreeServer> {
        let server = |name: String, path: String, depth, parent| TreeServer {
            name,
            path,
            depth,
            devices: 0,
            parent,
        };
        let mut servers = vec![server("primary".into(), "primary".into(), 0, None)];
        for s in 1..=self.secondaries {
            servers.push(server(format!("s{s}"), format!("primary/s{s}"), 1, Some(0)));
        }
        for s in 1..=self.secondaries {
            for c in 1..=self.per_secondary {
                let name = format!("s{s}-{c}");
                let path = format!("primary/s{s}/{name}");
                servers.push(server(name, path, 2, Some(s as usize)));
            }
        }
        let n = servers.len() as u32;
        for (i, server) in servers.iter_mut().enumerate() {
            server.devices = devices / n + u32::from((i as u32) < devices % n);
        }
        servers
    }
}

/// When a share of some devices was first seen finished, in milliseconds from the start
/// request.
#[derive(Clone, Copy, Debug)]
struct Milestones {
    devices: u64,
    first_ms: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p100_ms: Option<f64>,
}

impl Milestones {
    fn new(devices: u64) -> Self {
        Milestones {
            devices,
            first_ms: None,
            p50_ms: None,
            p99_ms: None,
            p100_ms: None,
        }
    }

    /// `finished` of the devices were shown finished at `at_ms`.
    fn observe(&mut self, finished: u64, at_ms: f64) {
        let n = self.devices;
        for (slot, reached) in [
            (&mut self.first_ms, finished >= 1),
            (&mut self.p50_ms, 2 * finished >= n),
            (&mut self.p99_ms, 100 * finished >= 99 * n),
            (&mut self.p100_ms, finished >= n),
        ] {
            if reached && slot.is_none() {
                *slot = Some(at_ms);
            }
        }
    }

    fn done(&self) -> bool {
        self.p100_ms.is_some()
    }

    fn text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        format!(
            "first {} / 50% {} / 99% {} / 100% {} ms",
            ms(self.first_ms),
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.p100_ms)
        )
    }
}

struct FanoutRun {
    /// Of every device of the tree, from the primary's totals.
    total: Milestones,
    /// Of each tier, from the primary's rows of that depth, summed.
    tiers: Vec<Milestones>,
    polls: u32,
    poll_period_ms: f64,
    /// The longest round trip of one `task stats` request.
    poll_max_ms: f64,
    /// CPU seconds of this process (every server) and of the devices' processes.
    server_cpu_s: f64,
    agents_cpu_s: f64,
    /// Per tier, from each server's own run as it stamped it (1 ms resolution, the same
    /// clock): when the last server of the tier started its run, and when the last one
    /// recorded its own last device's result, in ms after the start request was sent.
    started_ms: Vec<f64>,
    finished_ms: Vec<f64>,
}

/// `bench fanout`: how fast a run started at the primary reaches every device of a tree and
/// how fast their results show in the primary's statistics.
async fn fanout(
    devices: u32,
    shape: TreeShape,
    runs: u32,
    poll_ms: u64,
    in_process: bool,
    json: bool,
) -> anyhow::Result<()> {
    let plan = shape.plan(devices);
    if (devices as usize) < plan.len() {
        bail!(
            "--devices must be at least the number of servers ({})",
            plan.len()
        );
    }
    let tier_servers = |depth: usize| plan.iter().filter(move |s| s.depth as usize == depth);
    let tier_devices =
        |depth: usize| -> u64 { tier_servers(depth).map(|s| u64::from(s.devices)).sum() };
    let machine = machine();
    if !json {
        println!(
            "bench fanout: {} servers in a tree of depth {TIERS} (a primary, {} secondaries, {} secondaries of each), {}, each with its own redb file, every link QUIC on 127.0.0.1",
            plan.len(),
            shape.secondaries,
            shape.per_secondary,
            if in_process {
                "all in this process (one tokio runtime)"
            } else {
                "each a `canopy serve` process of its own"
            }
        );
        println!(
            "{devices} simulated devices spread evenly ({} to {} per server), one `canopy agent --simulate` process per server, keep-alive 5 s; task: simulate, duration 0, 100% succeed; a new group task with include_secondaries per run, started at the primary once every server holds its copy",
            devices / plan.len() as u32,
            devices.div_ceil(plan.len() as u32)
        );
        for depth in 0..TIERS {
            println!(
                "  depth {depth}: {} server(s), {} devices",
                tier_servers(depth).count(),
                tier_devices(depth)
            );
        }
        println!(
            "the primary's `task stats` polled every {poll_ms} ms plus its round trip; {runs} runs after a warm-up; machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
    }
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    let mut servers: Vec<TreeNode> = Vec::new();
    for server in &plan {
        let link = match server.parent {
            Some(p) => Some((servers[p].addr, d.fingerprint(&plan[p].name)?)),
            None => None,
        };
        crate::net::pki::issue_server(&d.certs, &server.name, &["127.0.0.1".into()], 30)?;
        let port = if in_process { 0 } else { free_port()? };
        let config = d
            .write_config(&server.name, &bench_server_text(&server.name, port, link))
            .await?;
        if let Some(p) = server.parent {
            d.register(servers[p].addr, &server.name, "Managed devices")
                .await?;
        }
        servers.push(if in_process {
            let running = super::deployment::start(&config).await?;
            TreeNode {
                addr: running.local_addr(),
                run: TreeRun::Here(running),
            }
        } else {
            let config_path = dir.path().join(format!("{}.toml", server.name));
            let log = dir.path().join(format!("{}.log", server.name));
            let process = ServerProcess::spawn(&config_path, &log)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            admin_when_up(&d, addr).await?.close().await;
            TreeNode {
                addr,
                run: TreeRun::Process(process),
            }
        });
    }
    let admin = d.admin(servers[0].addr).await?;
    wait_for_tree(&admin, Duration::from_secs(60), "every link up", |rows| {
        rows.len() == plan.len() && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await?;
    // Connected before the devices come: a server busy with handshakes refuses new ones.
    let mut direct = Vec::new();
    for running in &servers {
        direct.push(d.admin(running.addr).await?);
    }
    let mut fleets = Vec::new();
    for (i, (server, running)) in plan.iter().zip(&servers).enumerate() {
        let name = format!("fleet-{}", server.name);
        d.agent_config(&name, running.addr, Some(TOKEN))?;
        let path = dir.path().join(format!("{name}.agent.toml"));
        let text = std::fs::read_to_string(&path)?
            .replace("keep_alive_ms = 1000", "keep_alive_ms = 5000")
            .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 30000");
        std::fs::write(&path, text)?;
        fleets.push(AgentProcess::spawn(&path, server.devices, i as u64 + 1)?);
    }
    for (server, client) in plan.iter().zip(&direct) {
        wait_connected(client, server.devices, Duration::from_secs(300))
            .await
            .with_context(|| format!("the devices of {}", server.path))?;
    }
    // The primary knows every server's device count, so its totals count all from the start.
    let what = "every server's devices counted at the primary";
    wait_for_tree(&admin, Duration::from_secs(60), what, |rows| {
        plan.iter().skip(1).all(|s| {
            rows.iter()
                .any(|r| r.path == s.path && r.devices == u64::from(s.devices))
        })
    })
    .await?;

    let poll = Duration::from_millis(poll_ms);
    let mut all = Vec::new();
    for i in 0..=runs {
        let task = format!("fanout-{i}");
        let r = fanout_once(&admin, &direct, &plan, &servers, &fleets, &task, poll)
            .await
            .with_context(|| match i {
                0 => "warm-up run".to_string(),
                i => format!("run {i}"),
            })?;
        if i > 0 {
            if !json {
                let tiers: Vec<String> = r
                    .tiers
                    .iter()
                    .enumerate()
                    .map(|(depth, m)| {
                        format!(
                            "depth {depth}: {} (its servers' own runs: last started at {:.0} ms, last finished at {:.0} ms)",
                            m.text(),
                            r.started_ms[depth],
                            r.finished_ms[depth]
                        )
                    })
                    .collect();
                println!(
                    "run {i}: all {devices}: {}; {}; {} polls, one per {:.1} ms, the slowest answered in {:.0} ms; CPU: servers {:.2} s, devices {:.2} s",
                    r.total.text(),
                    tiers.join("; "),
                    r.polls,
                    r.poll_period_ms,
                    r.poll_max_ms,
                    r.server_cpu_s,
                    r.agents_cpu_s
                );
            }
            all.push(r);
        }
        // Let the last acknowledgements and reports of this run settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let milestones = |pick: &dyn Fn(&FanoutRun) -> Milestones| {
        let of = |f: fn(&Milestones) -> Option<f64>| {
            spread(
                &all.iter()
                    .map(|r| f(&pick(r)).unwrap_or(f64::NAN))
                    .collect::<Vec<_>>(),
            )
        };
        serde_json::json!({
            "first_ms": of(|m| m.first_ms),
            "p50_ms": of(|m| m.p50_ms),
            "p99_ms": of(|m| m.p99_ms),
            "p100_ms": of(|m| m.p100_ms),
        })
    };
    let figure = |f: fn(&FanoutRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    let tiers: Vec<serde_json::Value> = (0..TIERS)
        .map(|depth| {
            let mut tier = milestones(&|r: &FanoutRun| r.tiers[depth]);
            let stamps = |f: fn(&FanoutRun) -> &Vec<f64>| {
                spread(&all.iter().map(|r| f(r)[depth]).collect::<Vec<_>>())
            };
            tier["started_ms"] = serde_json::json!(stamps(|r| &r.started_ms));
            tier["finished_ms"] = serde_json::json!(stamps(|r| &r.finished_ms));
            tier["depth"] = depth.into();
            tier["servers"] = tier_servers(depth).count().into();
            tier["devices"] = tier_devices(depth).into();
            tier
        })
        .collect();
    let mut summary = serde_json::json!({
        "scenario": "fanout",
        "devices": devices,
        "servers": plan,
        "secondaries": shape.secondaries,
        "per_secondary": shape.per_secondary,
        "runs": runs,
        "poll_ms": poll_ms,
        "machine": machine,
        "in_process_servers": in_process,
        "servers_in": if in_process {
            "this process (one tokio runtime)"
        } else {
            "one `canopy serve` process each"
        },
        "devices_in": "one `canopy agent --simulate` process per server",
        "tiers": tiers,
        "poll_period_ms": figure(|r| r.poll_period_ms),
        "poll_max_ms": figure(|r| r.poll_max_ms),
        "server_cpu_s": figure(|r| r.server_cpu_s),
        "agents_cpu_s": figure(|r| r.agents_cpu_s),
        "reached_100": true,
    });
    let total = milestones(&|r: &FanoutRun| r.total);
    for key in ["first_ms", "p50_ms", "p99_ms", "p100_ms"] {
        summary[key] = total[key].clone();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let milestone_figures = [
            ("first result visible", "first_ms", "ms"),
            ("50% finished", "p50_ms", "ms"),
            ("99% finished", "p99_ms", "ms"),
            ("100% finished", "p100_ms", "ms"),
        ];
        println!("all {devices} devices, at the primary, from the start request:");
        print_figures(&summary, &milestone_figures);
        for tier in summary["tiers"].as_array().into_iter().flatten() {
            println!(
                "depth {} ({} server(s), {} devices), at the primary:",
                tier["depth"], tier["servers"], tier["devices"]
            );
            print_figures(tier, &milestone_figures);
            print_figures(
                tier,
                &[
                    ("last run started (stamp)", "started_ms", "ms"),
                    ("last own device (stamp)", "finished_ms", "ms"),
                ],
            );
        }
        print_figures(
            &summary,
            &[
                ("poll period", "poll_period_ms", "ms"),
                ("slowest poll", "poll_max_ms", "ms"),
                ("servers' CPU per run", "server_cpu_s", "s"),
                ("devices' CPU per run", "agents_cpu_s", "s"),
            ],
        );
    }
    admin.close().await;
    for client in direct {
        client.close().await;
    }
    for fleet in fleets {
        fleet.stop().await?;
    }
    for server in servers.into_iter().rev() {
        match server.run {
            TreeRun::Here(running) => running.shutdown().await?,
            TreeRun::Process(process) => process.stop().await?,
        }
    }
    Ok(())
}

/// A server of the `fanout` tree and where it runs.
struct TreeNode {
    addr: SocketAddr,
    run: TreeRun,
}

enum TreeRun {
    Here(crate::server::RunningServer),
    Process(ServerProcess),
}

/// CPU seconds used so far by the servers of the tree: this process's when they run in it
/// (the bench's own requests included), else the sum of their processes'.
fn servers_cpu(servers: &[TreeNode]) -> f64 {
    servers
        .iter()
        .map(|s| match &s.run {
            TreeRun::Here(_) => 0.0,
            TreeRun::Process(p) => p.cpu_seconds(),
        })
        .sum::<f64>()
        + if servers.iter().any(|s| matches!(s.run, TreeRun::Here(_))) {
            cpu_seconds("self")
        } else {
            0.0
        }
}

/// One `fanout` run: a new task, its copies on every server, then the run, watched at the
/// primary until every device of every tier is shown finished.
async fn fanout_once(
    admin: &AdminClient,
    direct: &[AdminClient],
    plan: &[TreeServer],
    servers: &[TreeNode],
    fleets: &[AgentProcess],
    task: &str,
    poll: Duration,
) -> anyhow::Result<FanoutRun> {
    let spec = group_task(task, instant_success(), true);
    admin
        .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
        .await?;
    // Every server holds its copy before the start, so what is timed is the run alone.
    for (client, server) in direct.iter().zip(plan).skip(1) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let show = || AdminRequest::Task(TaskRequest::Show { task: task.into() });
        while client.call(show()).await.is_err() {
            if Instant::now() > deadline {
                bail!("{} has no copy of {task:?} after 60 s", server.path);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let devices: u64 = plan.iter().map(|s| u64::from(s.devices)).sum();
    let mut total = Milestones::new(devices);
    let mut tiers: Vec<Milestones> = (0..TIERS)
        .map(|depth| {
            let n = plan.iter().filter(|s| s.depth as usize == depth);
            Milestones::new(n.map(|s| u64::from(s.devices)).sum())
        })
        .collect();
    let agents_cpu = || fleets.iter().map(AgentProcess::cpu_seconds).sum::<f64>();
    let cpu_before = (servers_cpu(servers), agents_cpu());
    let wall_started = crate::clock::now_ms();
    let started = Instant::now();
    let start = TaskRequest::Start {
        task: task.into(),
        devices: None,
    };
    let AdminResponse::TaskStarted { run, .. } = admin.call(AdminRequest::Task(start)).await?
    else {
        bail!("unexpected answer to task start");
    };
    let deadline = started + Duration::from_secs(300);
    let (mut polls, mut poll_max_ms) = (0u32, 0f64);
    let last = loop {
        let stats = TaskRequest::Stats {
            task: task.into(),
            run: Some(run.run_id),
        };
        let asked = Instant::now();
        let AdminResponse::TaskStats(view) = admin.call(AdminRequest::Task(stats)).await? else {
            bail!("unexpected answer to task stats");
        };
        poll_max_ms = f64::max(poll_max_ms, asked.elapsed().as_secs_f64() * 1000.0);
        let at_ms = started.elapsed().as_secs_f64() * 1000.0;
        polls += 1;
        total.observe(view.counters.finished(), at_ms);
        for (depth, tier) in tiers.iter_mut().enumerate() {
            let rows = view.servers.iter().filter(|s| s.depth as usize == depth);
            tier.observe(rows.map(|s| s.counters.finished()).sum(), at_ms);
        }
        if total.done() && tiers.iter().all(Milestones::done) {
            break view;
        }
        if Instant::now() > deadline {
            bail!(
                "after 300 s the primary shows {} of {devices} devices finished",
                view.counters.finished()
            );
        }
        tokio::time::sleep(poll).await;
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let server_cpu_s = servers_cpu(servers) - cpu_before.0;
    let agents_cpu_s = agents_cpu() - cpu_before.1;
    // What the primary shows at the end: every server reported, each with all its devices.
    if last.counters.total() != devices || last.servers.len() != plan.len() {
        bail!(
            "the primary counts {} devices in {} rows; the tree has {devices} in {}",
            last.counters.total(),
            last.servers.len(),
            plan.len()
        );
    }
    for server in plan {
        let row = last.servers.iter().find(|r| r.path == server.path);
        let ok = row.is_some_and(|r| {
            r.reported
                && r.counters.total() == u64::from(server.devices)
                && r.counters.finished() == r.counters.total()
        });
        if !ok {
            bail!("the primary's row of {} is {row:?}", server.path);
        }
    }
    // Where the time went: each server's own run, as that server stamped it.
    let (mut started_ms, mut finished_ms) = (vec![0f64; TIERS], vec![0f64; TIERS]);
    for (client, server) in direct.iter().zip(plan) {
        let stats = TaskRequest::Stats {
            task: task.into(),
            run: None,
        };
        let AdminResponse::TaskStats(own) = client.call(AdminRequest::Task(stats)).await? else {
            bail!("unexpected answer to task stats from {}", server.path);
        };
        let Some(finished) = own.finished else {
            bail!("{}'s run {} has not finished", server.path, own.run_id);
        };
        let depth = server.depth as usize;
        started_ms[depth] = started_ms[depth].max((own.started - wall_started) as f64);
        finished_ms[depth] = finished_ms[depth].max((finished - wall_started) as f64);
    }
    Ok(FanoutRun {
        total,
        tiers,
        polls,
        poll_period_ms: elapsed_ms / f64::from(polls.max(1)),
        poll_max_ms,
        server_cpu_s,
        agents_cpu_s,
        started_ms,
        finished_ms,
    })
}

/// One copy of the task, as first seen with what was waited for.
struct Seen {
    server: String,
    /// Milliseconds from the request that was being waited on.
    at_ms: f64,
    view: TaskView,
    polls: u32,
    /// Round-trip time of those polls, summed.
    rtt_ms: f64,
}

/// Polls the copy of `task` on every server of `names` (virtual servers of the server
/// `clients` are logged in to) until it exists and, with `days`, shows that
/// `store_history_days`. Each server is asked in a loop of its own: a request, then
/// `poll`, then the next; the clients share the servers out.
async fn copies(
    clients: &[Arc<AdminClient>],
    names: &[String],
    task: &str,
    days: Option<u32>,
    since: Instant,
    poll: Duration,
) -> anyhow::Result<Vec<Seen>> {
    let limit = Duration::from_secs(120);
    let mut set = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let client = clients[i % clients.len()].clone();
        let (server, task) = (name.clone(), task.to_string());
        set.spawn(async move {
            let (mut polls, mut rtt_ms) = (0u32, 0.0);
            loop {
                let request = AdminRequest::Forward {
                    path: server.clone(),
                    request: Box::new(AdminRequest::Task(TaskRequest::Show { task: task.clone() })),
                };
                let asked = Instant::now();
                let answer = client.call(request).await;
                let at = Instant::now();
                polls += 1;
                rtt_ms += (at - asked).as_secs_f64() * 1000.0;
                let last = match answer {
                    Ok(AdminResponse::Task(view))
                        if days.is_none_or(|d| view.store_history_days == d) =>
                    {
                        return Ok(Seen {
                            server,
                            at_ms: (at - since).as_secs_f64() * 1000.0,
                            view: *view,
                            polls,
                            rtt_ms,
                        });
                    }
                    Ok(AdminResponse::Task(view)) => {
                        format!("store_history_days {}", view.store_history_days)
                    }
                    Ok(other) => format!("{other:?}"),
                    Err(e) => e.to_string(),
                };
                if at - since > limit {
                    bail!("{server}: not there after {limit:?}; last answer: {last}");
                }
                tokio::time::sleep(poll).await;
            }
        });
    }
    let mut seen = Vec::new();
    while let Some(result) = set.join_next().await {
        seen.push(result??);
    }
    Ok(seen)
}

struct ChangeRun {
    /// The edit request's round trip at the primary.
    edit_ms: f64,
    /// From sending the edit until a poll saw it on the first, the median, the last copy.
    first_polled_ms: f64,
    median_polled_ms: f64,
    all_polled_ms: f64,
    /// The copies' own `modified` minus the primary's, both stamped by the servers (same
    /// clock, 1 ms resolution): the median and the last.
    median_stamped_ms: f64,
    all_stamped_ms: f64,
    polls: u32,
    poll_rtt_ms: f64,
}

/// `bench change`: how fast a task edit at the primary reaches every server below it.
async fn change(secondaries: u32, runs: u32, poll_ms: u64, json: bool) -> anyhow::Result<()> {
    let machine = machine();
    // At most this many servers are polled over one admin connection.
    const PER_CLIENT: u32 = 25;
    let pollers = secondaries.div_ceil(PER_CLIENT);
    if !json {
        println!(
            "bench change: 1 primary (in this process) and {secondaries} virtual servers on it: in-process children over an in-process link running the same replication logic, each with its own redb file; no devices"
        );
        println!(
            "a group task with include_secondaries; per run its store_history_days is edited at the primary; every copy is polled through the primary from the moment the edit is sent (task show forwarded to each virtual server, {pollers} admin connection(s), one loop per server: request, {poll_ms} ms pause, request); a poll adds up to one round trip plus {poll_ms} ms; {runs} runs after a warm-up; machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
    }
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    crate::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30)?;
    let config = d
        .write_config("primary", &bench_server_text("primary", 0, None))
        .await?;
    let primary = super::deployment::start(&config).await?;
    let addr = primary.local_addr();
    let admin = d.admin(addr).await?;
    let names: Vec<String> = (1..=secondaries).map(|i| format!("vs-{i:03}")).collect();
    for name in &names {
        let create = VirtualServerRequest::Create {
            name: name.clone(),
            group: "Managed devices".into(),
        };
        admin.call(AdminRequest::VirtualServer(create)).await?;
    }
    wait_for_tree(
        &admin,
        Duration::from_secs(120),
        "every virtual server linked",
        |rows| {
            rows.len() == names.len() + 1 && rows.iter().all(|r| r.status == ServerStatus::Active)
        },
    )
    .await?;
    let mut clients = Vec::new();
    for _ in 0..pollers {
        clients.push(Arc::new(d.admin(addr).await?));
    }
    let poll = Duration::from_millis(poll_ms);
    const TASK: &str = "change";
    let spec = group_task(TASK, instant_success(), true);
    let created = Instant::now();
    admin
        .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
        .await?;
    let seen = copies(&clients, &names, TASK, None, created, poll).await?;
    let create_all_ms = seen.iter().map(|s| s.at_ms).fold(0.0, f64::max);
    if !json {
        println!(
            "task created: every copy seen within {create_all_ms:.1} ms (polled; not one of the figures)"
        );
    }
    let mut revisions: std::collections::HashMap<String, u32> = seen
        .iter()
        .map(|s| (s.server.clone(), s.view.revision))
        .collect();
    let mut all = Vec::new();
    for i in 0..=runs {
        let days = 2 + i;
        let changes = TaskChanges {
            store_history_days: Some(days),
            ..Default::default()
        };
        let edit = TaskRequest::Edit {
            task: TASK.into(),
            changes: Box::new(changes),
        };
        // The copies are polled from the moment the edit is sent, not from its answer.
        let sent = Instant::now();
        let edited = async {
            let answer = admin.call(AdminRequest::Task(edit)).await;
            let edit_ms = sent.elapsed().as_secs_f64() * 1000.0;
            match answer? {
                AdminResponse::Task(view) => Ok((view, edit_ms)),
                other => bail!("unexpected answer to task edit: {other:?}"),
            }
        };
        let polled = copies(&clients, &names, TASK, Some(days), sent, poll);
        let ((edited, edit_ms), seen) =
            tokio::try_join!(edited, polled).with_context(|| format!("edit {i}"))?;
        for s in &seen {
            let before = revisions.get(&s.server).copied().unwrap_or(0);
            if s.view.revision <= before || !s.view.scope_text.starts_with("inherited from") {
                bail!(
                    "{}'s copy shows the edit with revision {} (was {before}), scope {:?}",
                    s.server,
                    s.view.revision,
                    s.view.scope_text
                );
            }
            revisions.insert(s.server.clone(), s.view.revision);
        }
        let polled = spread(&seen.iter().map(|s| s.at_ms).collect::<Vec<_>>());
        let stamped = spread(
            &seen
                .iter()
                .map(|s| (s.view.modified - edited.modified) as f64)
                .collect::<Vec<_>>(),
        );
        let polls: u32 = seen.iter().map(|s| s.polls).sum();
        let r = ChangeRun {
            edit_ms,
            first_polled_ms: polled.min,
            median_polled_ms: polled.median,
            all_polled_ms: polled.max,
            median_stamped_ms: stamped.median,
            all_stamped_ms: stamped.max,
            polls,
            poll_rtt_ms: seen.iter().map(|s| s.rtt_ms).sum::<f64>() / f64::from(polls.max(1)),
        };
        if i > 0 {
            if !json {
                println!(
                    "run {i}: edit answered in {:.1} ms; seen on the first copy at {:.1} ms, the median at {:.1} ms, all {secondaries} at {:.1} ms; stamped by the servers: median {:.0} ms, last {:.0} ms; {} polls, round trip {:.1} ms on average",
                    r.edit_ms,
                    r.first_polled_ms,
                    r.median_polled_ms,
                    r.all_polled_ms,
                    r.median_stamped_ms,
                    r.all_stamped_ms,
                    r.polls,
                    r.poll_rtt_ms
                );
            }
            all.push(r);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let figure = |f: fn(&ChangeRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    let summary = serde_json::json!({
        "scenario": "change",
        "secondaries": secondaries,
        "virtual_servers": true,
        "runs": runs,
        "poll_ms": poll_ms,
        "machine": machine,
        "create_all_ms": create_all_ms,
        "edit_ms": figure(|r| r.edit_ms),
        "first_polled_ms": figure(|r| r.first_polled_ms),
        "median_polled_ms": figure(|r| r.median_polled_ms),
        "all_polled_ms": figure(|r| r.all_polled_ms),
        "median_stamped_ms": figure(|r| r.median_stamped_ms),
        "all_stamped_ms": figure(|r| r.all_stamped_ms),
        "poll_rtt_ms": figure(|r| r.poll_rtt_ms),
        "all_applied": true,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_figures(
            &summary,
            &[
                ("edit request round trip", "edit_ms", "ms"),
                ("first copy seen (polled)", "first_polled_ms", "ms"),
                ("median copy seen (polled)", "median_polled_ms", "ms"),
                ("all copies seen (polled)", "all_polled_ms", "ms"),
                ("median copy (stamped)", "median_stamped_ms", "ms"),
                ("last copy (stamped)", "all_stamped_ms", "ms"),
                ("poll round trip", "poll_rtt_ms", "ms"),
            ],
        );
    }
    for client in clients {
        if let Ok(client) = Arc::try_unwrap(client) {
            client.close().await;
        }
    }
    admin.close().await;
    primary.shutdown().await?;
    Ok(())
}

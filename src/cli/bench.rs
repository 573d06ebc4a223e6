//! `canopy bench`: scenarios that measure the real thing on loopback and print what they
//! measured, as min, median and max over repeated runs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;

use super::client::AdminClient;
use super::deployment::{Deployment, config_text, free_port};
use crate::agent::{Agents, Simulation};
use crate::wire::msg::{AdminRequest, AdminResponse};

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
    use crate::model::task::{RunCounters, TaskPayload, TaskType};
    use crate::wire::msg::{ScopeSpec, TaskRequest, TaskSpec};
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
    let agents = AgentProcess::spawn(&dir.path().join("fleet.agent.toml"), devices)?;
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
    fn spawn(config: &Path, devices: u32) -> anyhow::Result<AgentProcess> {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .args(["agent", "--config"])
            .arg(config)
            .args(["--simulate", &devices.to_string(), "--seed", "1"])
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

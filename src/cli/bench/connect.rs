//! `bench connect`: simulated devices enroll and connect to one server process from cold,
//! then reconnect after it restarts; the server's memory per connected device.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::figures::{Machine, machine, print_figures, spread};
use super::process::{ServerProcess, cpu_seconds};
use super::{TOKEN, admin_when_up, wait_connected};
use crate::agent::{Agents, Simulation};
use crate::cli::deployment::{Deployment, config_text, free_port};

#[derive(Serialize)]
pub(super) struct ConnectRun {
    pub(super) identities_s: f64,
    pub(super) cold_connect_s: f64,
    pub(super) device_list_s: f64,
    pub(super) reconnect_storm_s: f64,
    pub(super) cold_server_cpu_s: f64,
    pub(super) cold_agents_cpu_s: f64,
    pub(super) storm_server_cpu_s: f64,
    pub(super) storm_agents_cpu_s: f64,
    pub(super) server_rss_idle_mib: f64,
    pub(super) server_rss_connected_mib: f64,
    pub(super) server_kib_per_device: f64,
    /// The server's CPU while every device is connected and idle, per device: microseconds
    /// per second (keep-alives, timers).
    pub(super) idle_server_us_per_device_s: f64,
}

/// What `bench connect` reports (`--json` prints it; the text prints its figures).
pub(super) fn summary(
    devices: u32,
    runs: u32,
    machine: &Machine,
    all: &[ConnectRun],
) -> serde_json::Value {
    let figure = |f: &dyn Fn(&ConnectRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    let per_device = |cpu_s: f64| cpu_s * 1e6 / f64::from(devices);
    serde_json::json!({
        "scenario": "connect",
        "devices": devices,
        "runs": runs,
        "machine": machine,
        "identities_s": figure(&|r| r.identities_s),
        "cold_connect_s": figure(&|r| r.cold_connect_s),
        "device_list_s": figure(&|r| r.device_list_s),
        "reconnect_storm_s": figure(&|r| r.reconnect_storm_s),
        "cold_server_us_per_device": figure(&|r| per_device(r.cold_server_cpu_s)),
        "storm_server_us_per_device": figure(&|r| per_device(r.storm_server_cpu_s)),
        "server_kib_per_device": figure(&|r| r.server_kib_per_device),
        "idle_server_us_per_device_s": figure(&|r| r.idle_server_us_per_device_s),
    })
}

pub(super) async fn connect(
    devices: u32,
    runs: u32,
    keep_alive: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let link = Link {
        keep_alive,
        idle_timeout: keep_alive * 6,
        backoff_max: backoff_max(devices),
    };
    let machine = machine();
    if !json {
        println!(
            "bench connect: {devices} simulated devices, 1 server process, {runs} runs after a warm-up; machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
        println!(
            "agents: keep-alive {} s, idle timeout {} s, reconnect backoff 0.5 s to {} s with jitter",
            link.keep_alive.as_secs(),
            link.idle_timeout.as_secs(),
            link.backoff_max.as_secs()
        );
    }
    connect_once(devices.min(500), link)
        .await
        .context("warm-up run")?;
    let mut all = Vec::new();
    for i in 0..runs {
        let r = connect_once(devices, link)
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
    let summary = summary(devices, runs, &machine, &all);
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
                ("server CPU per connect", "cold_server_us_per_device", "µs"),
                (
                    "  per reconnect (storm)",
                    "storm_server_us_per_device",
                    "µs",
                ),
                ("server memory per device", "server_kib_per_device", "KiB"),
                (
                    "idle server CPU per device",
                    "idle_server_us_per_device_s",
                    "µs/s",
                ),
            ],
        );
    }
    Ok(())
}

/// How long the server's idle cost is measured, every device connected: a keep-alive
/// interval or more, and not long for the smallest runs (`make test`).
fn idle_measured(devices: u32, link: Link) -> Duration {
    if devices < 1000 {
        Duration::from_secs(1)
    } else {
        link.keep_alive.max(Duration::from_secs(5))
    }
}

/// The timers of the devices' links (the server uses the same idle timeout).
#[derive(Clone, Copy)]
struct Link {
    keep_alive: Duration,
    idle_timeout: Duration,
    backoff_max: Duration,
}

/// The devices' longest reconnect backoff: 5 s per 10,000 devices. Every attempt the server
/// refuses costs the simulated fleet a key exchange on the cores the server needs, so a
/// larger fleet on this machine has to spread its retries wider (a real fleet has a CPU per
/// device, and the agent's own default is 30 s).
fn backoff_max(devices: u32) -> Duration {
    Duration::from_secs(5) * devices.div_ceil(10_000).max(1)
}

async fn connect_once(devices: u32, link: Link) -> anyhow::Result<ConnectRun> {
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    let port = free_port()?;
    // Every device connects from 127.0.0.1, and a large run needs more than the default caps.
    let cap = (devices as usize + 1000).max(110_000);
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n\n[limits]\nmax_connections = {cap}\nmax_connections_per_address = {cap}\nmax_devices = {cap}\n",
        config_text("bench", port, None),
    )
    .replace(
        "keep_alive_ms = 1000",
        &format!("keep_alive_ms = {}", link.keep_alive.as_millis()),
    )
    .replace(
        "idle_timeout_ms = 5000",
        &format!("idle_timeout_ms = {}", link.idle_timeout.as_millis()),
    );
    // Enrolling and connecting takes this machine a few milliseconds of CPU per device.
    let connect_limit = Duration::from_secs(300).max(Duration::from_millis(20) * devices);
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
        keep_alive: link.keep_alive,
        idle_timeout: link.idle_timeout,
        link: crate::sync::link::LinkPolicy {
            backoff_initial: Duration::from_millis(500),
            backoff_max: link.backoff_max,
            ..agent_config.link
        },
        ..agent_config
    };
    let (server_cpu0, agents_cpu0) = (server.cpu_seconds(), cpu_seconds("self"));
    let started = Instant::now();
    let agents = Agents::start(agent_config, Some(Simulation { devices, seed: 1 })).await?;
    let identities_s = started.elapsed().as_secs_f64();
    wait_connected(&admin, devices, connect_limit).await?;
    let cold_connect_s = started.elapsed().as_secs_f64();
    let cold_server_cpu_s = server.cpu_seconds() - server_cpu0;
    let cold_agents_cpu_s = cpu_seconds("self") - agents_cpu0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = server.rss_mib();
    let (idle_cpu0, idle_since) = (server.cpu_seconds(), Instant::now());
    tokio::time::sleep(idle_measured(devices, link)).await;
    let idle_server_us_per_device_s = (server.cpu_seconds() - idle_cpu0) * 1e6
        / idle_since.elapsed().as_secs_f64()
        / f64::from(devices);
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
    wait_connected(&admin, devices, connect_limit).await?;
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
        idle_server_us_per_device_s,
    })
}

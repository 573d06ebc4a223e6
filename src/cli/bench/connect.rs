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
}

/// What `bench connect` reports (`--json` prints it; the text prints its figures).
pub(super) fn summary(
    devices: u32,
    runs: u32,
    machine: &Machine,
    all: &[ConnectRun],
) -> serde_json::Value {
    let figure = |f: fn(&ConnectRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    serde_json::json!({
        "scenario": "connect",
        "devices": devices,
        "runs": runs,
        "machine": machine,
        "identities_s": figure(|r| r.identities_s),
        "cold_connect_s": figure(|r| r.cold_connect_s),
        "device_list_s": figure(|r| r.device_list_s),
        "reconnect_storm_s": figure(|r| r.reconnect_storm_s),
        "server_kib_per_device": figure(|r| r.server_kib_per_device),
    })
}

pub(super) async fn connect(devices: u32, runs: u32, json: bool) -> anyhow::Result<()> {
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
                ("server memory per device", "server_kib_per_device", "KiB"),
            ],
        );
    }
    Ok(())
}

async fn connect_once(devices: u32) -> anyhow::Result<ConnectRun> {
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    let port = free_port()?;
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n{}",
        config_text("bench", port, None),
        crate::cli::bench::BENCH_LIMITS,
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

//! `bench ingest`: one server in this process durably records the results of a task run on
//! simulated devices over QUIC.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::figures::{Machine, machine, print_figures, spread};
use super::poller::StatsPoller;
use super::process::{AgentProcess, cpu_seconds, udp_datagrams_sent};
use super::{TOKEN, wait_connected};
use crate::cli::deployment::{Deployment, config_text};
use crate::model::task::{TaskPayload, TaskType};
use crate::wire::msg::{AdminRequest, AdminResponse, ScopeSpec, TaskRequest, TaskSpec};

#[derive(Serialize)]
pub(super) struct IngestRun {
    /// From the start request until the server recorded the last device's result.
    pub(super) seconds: f64,
    pub(super) results_per_s: f64,
    /// Store jobs (write requests) the run cost, in how many commits.
    pub(super) jobs: u64,
    pub(super) commits: u64,
    pub(super) jobs_per_commit: f64,
    /// CPU seconds of the bench process (the server) and of the devices' process.
    pub(super) server_cpu_s: f64,
    pub(super) agents_cpu_s: f64,
    /// The server's CPU time per device result, in microseconds.
    pub(super) server_cpu_us_per_result: f64,
    /// UDP datagrams sent on this machine during the run, both directions, per device result.
    pub(super) datagrams_per_result: f64,
    /// The slowest answer to `task stats` of the run, asked every 5 ms while it went by an
    /// administrator on a thread of its own (`poller.rs`).
    pub(super) stats_max_ms: f64,
    pub(super) stats_median_ms: f64,
}

/// What `bench ingest` reports (`--json` prints it; the text prints its figures).
pub(super) fn summary(
    devices: u32,
    runs: u32,
    machine: &Machine,
    all: &[IngestRun],
) -> serde_json::Value {
    let figure = |f: fn(&IngestRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    serde_json::json!({
        "scenario": "ingest",
        "devices": devices,
        "runs": runs,
        "machine": machine,
        "seconds": figure(|r| r.seconds),
        "results_per_s": figure(|r| r.results_per_s),
        "jobs_per_commit": figure(|r| r.jobs_per_commit),
        "server_cpu_s": figure(|r| r.server_cpu_s),
        "agents_cpu_s": figure(|r| r.agents_cpu_s),
        "server_cpu_us_per_result": figure(|r| r.server_cpu_us_per_result),
        "datagrams_per_result": figure(|r| r.datagrams_per_result),
        "stats_max_ms": figure(|r| r.stats_max_ms),
        "stats_median_ms": figure(|r| r.stats_median_ms),
        "counters_exact": true,
    })
}

/// `bench ingest`: a simulated task whose runs take no time, so what is measured is the
/// server taking orders out and results in.
pub(super) async fn ingest(devices: u32, runs: u32, json: bool) -> anyhow::Result<()> {
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
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n{}",
        config_text("bench", 0, None),
        crate::cli::bench::BENCH_LIMITS,
    )
    .replace("keep_alive_ms = 1000", "keep_alive_ms = 5000")
    .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 30000");
    crate::net::pki::issue_server(&d.certs, "bench", &["127.0.0.1".into()], 30)?;
    let server = crate::cli::deployment::start(&d.write_config("bench", &text).await?).await?;
    let addr = server.local_addr();
    let admin = d.admin(addr).await?;
    // The devices run in their own process, so the CPU each side spends is counted apart.
    let agents = AgentProcess::spawn(&super::bench_agent_config(&d, "fleet", addr)?, devices, 1)?;
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
        comment: None,
    };
    admin
        .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
        .await?;
    let store = server.node.store.clone();
    let poller = StatsPoller::start(&d, addr)?;
    let mut all = Vec::new();
    for i in 0..=runs {
        let before = store.stats();
        let cpu_before = (cpu_seconds("self"), agents.cpu_seconds());
        let datagrams_before = udp_datagrams_sent();
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
        // What an administrator asks meanwhile, and how long the answer takes.
        let polling = poller.poll("ingest", run.run_id)?;
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
        let polled = polling.finish()?;

        let server_cpu_s = cpu_seconds("self") - cpu_before.0;
        let agents_cpu_s = agents.cpu_seconds() - cpu_before.1;
        let datagrams = udp_datagrams_sent().saturating_sub(datagrams_before);
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
        let jobs = after.jobs - before.jobs;
        let r = IngestRun {
            seconds,
            results_per_s: f64::from(devices) / seconds,
            jobs,
            commits,
            jobs_per_commit: jobs as f64 / commits.max(1) as f64,
            server_cpu_s,
            agents_cpu_s,
            server_cpu_us_per_result: server_cpu_s * 1e6 / f64::from(devices),
            datagrams_per_result: datagrams as f64 / f64::from(devices),
            stats_median_ms: polled.median_ms,
            stats_max_ms: polled.max_ms,
        };
        if i == 0 {
            continue;
        }
        if !json {
            println!(
                "run {i}: {devices} results in {:.3} s = {:.0} results/s; {} store jobs in {} commits ({:.1} jobs per commit); CPU: server {:.2} s ({:.0} µs per result), devices {:.2} s; {:.1} UDP datagrams per result; task stats answered in {:.1} ms (median), {:.0} ms (slowest); counters equal the records",
                r.seconds,
                r.results_per_s,
                r.jobs,
                r.commits,
                r.jobs_per_commit,
                r.server_cpu_s,
                r.server_cpu_us_per_result,
                r.agents_cpu_s,
                r.datagrams_per_result,
                r.stats_median_ms,
                r.stats_max_ms
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
                ("results per second", "results_per_s", "/s"),
                ("seconds per run", "seconds", "s"),
                ("jobs per commit", "jobs_per_commit", ""),
                ("server CPU per run", "server_cpu_s", "s"),
                ("server CPU per result", "server_cpu_us_per_result", "µs"),
                ("devices' CPU per run", "agents_cpu_s", "s"),
                ("datagrams per result", "datagrams_per_result", ""),
                ("task stats, median", "stats_median_ms", "ms"),
                ("task stats, slowest", "stats_max_ms", "ms"),
            ],
        );
    }
    poller.stop();
    admin.close().await;
    agents.stop().await?;
    server.shutdown().await?;
    Ok(())
}

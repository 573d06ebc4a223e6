//! `bench herd`: simulated devices that all have the same scheduled minute, on one server in
//! this process. For each randomized-delay window (none, then some), a `once` task is set
//! for the next whole minute of the devices' clock; the devices start it by themselves, and
//! the bench watches the server store their results: the peak results per second, the
//! server's CPU, the time from the scheduled minute until every result is stored, and how the
//! starts spread over the window.
//!
//! Schedules name minutes, so each window waits for a minute boundary. The windows here are
//! in seconds (the product's are usually minutes); only the bench uses so short a window.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::figures::{Machine, machine};
use super::process::{AgentProcess, cpu_seconds};
use super::{bench_server_text, group_task, instant_success, wait_connected};
use crate::cli::deployment::Deployment;
use crate::model::schedule::{RandomDelay, Schedule, ScheduleOptions};
use crate::model::task::DeviceState;
use crate::sched;
use crate::wire::msg::{AdminRequest, TaskRequest};

/// The devices' time zone (the deployment's agent configs say so).
const DEVICE_ZONE: &str = "Europe/Berlin";
/// How long before the minute the server's idle CPU is measured.
const IDLE_MS: u64 = 4_000;
/// How often the bench counts the results stored.
const SAMPLE: Duration = Duration::from_millis(100);

#[derive(Serialize)]
pub(super) struct HerdRun {
    pub(super) window_s: u32,
    /// The most results stored in one second (a sliding window of the samples).
    pub(super) peak_results_per_s: f64,
    /// From the scheduled minute until the last result was stored.
    pub(super) all_stored_s: f64,
    /// CPU seconds of the server (this process) from the minute until the last result.
    pub(super) server_cpu_s: f64,
    /// What the server spends per second with every device connected and nothing to do
    /// (keep-alives), measured over the seconds before the minute.
    pub(super) idle_cpu_per_s: f64,
    /// The server's CPU per result beyond that idle cost.
    pub(super) server_cpu_per_result_us: f64,
    /// When devices started, in seconds after the scheduled minute: min, quartiles, max.
    pub(super) starts_s: [f64; 5],
    /// Starts per tenth of the window (empty without a window).
    pub(super) starts_by_tenth: Vec<u64>,
}

/// Quantiles 0, 25, 50, 75, 100 % of `values`, sorted here.
fn quartiles(mut values: Vec<f64>) -> [f64; 5] {
    if values.is_empty() {
        return [f64::NAN; 5];
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.0), at(0.25), at(0.5), at(0.75), at(1.0)]
}

/// Starts per tenth of a window of `window_s` seconds.
fn by_tenth(offsets: &[f64], window_s: u32) -> Vec<u64> {
    if window_s == 0 {
        return Vec::new();
    }
    let mut tenths = vec![0u64; 10];
    for offset in offsets {
        let i = (offset / f64::from(window_s) * 10.0)
            .floor()
            .clamp(0.0, 9.0) as usize;
        tenths[i] += 1;
    }
    tenths
}

/// The most results stored within any one second, from (seconds, total stored) samples.
fn peak_per_second(samples: &[(f64, u64)]) -> f64 {
    let mut peak = 0.0f64;
    for (i, &(t, n)) in samples.iter().enumerate() {
        let start = samples[..=i].iter().find(|(s, _)| t - s <= 1.0);
        if let Some(&(s, m)) = start {
            let span = (t - s).max(SAMPLE.as_secs_f64());
            peak = peak.max((n - m) as f64 / span.max(1.0));
        }
    }
    peak
}

pub(super) async fn herd(devices: u32, windows: Vec<u32>, json: bool) -> anyhow::Result<()> {
    let machine: Machine = machine();
    if !json {
        println!(
            "bench herd: {devices} simulated devices in a second process with the same scheduled minute, 1 server in this process (both on the same cores); windows in seconds (bench only): {windows:?}; machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
    }
    let zone = sched::zone_named(DEVICE_ZONE).map_err(anyhow::Error::msg)?;
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    crate::net::pki::issue_server(&d.certs, "bench", &["127.0.0.1".into()], 30)?;
    let config = d
        .write_config("bench", &bench_server_text("bench", 0, None))
        .await?;
    let server = crate::cli::deployment::start(&config).await?;
    let addr = server.local_addr();
    let admin = d.admin(addr).await?;
    let agents = AgentProcess::spawn(&super::bench_agent_config(&d, "fleet", addr)?, devices, 1)?;
    wait_connected(&admin, devices, Duration::from_secs(300)).await?;
    let store = server.node.store.clone();
    let mut all = Vec::new();
    for (i, window_s) in windows.iter().copied().enumerate() {
        let soon = crate::clock::now_ms() + 8_000;
        let sched::Occurrence { key, at } = sched::next_minute(&zone, soon)
            .ok_or_else(|| anyhow::anyhow!("no next minute in {DEVICE_ZONE}"))?;
        let mut spec = group_task(&format!("herd {i}"), instant_success(), false);
        spec.schedule = Schedule::Once { at: key };
        spec.schedule_options = ScheduleOptions {
            random_delay: match window_s {
                0 => RandomDelay::Off,
                seconds => RandomDelay::Within { seconds },
            },
            ..ScheduleOptions::default()
        };
        let crate::wire::msg::AdminResponse::Task(task) = admin
            .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
            .await?
        else {
            bail!("unexpected answer to task create");
        };
        // Until the minute: every device holds the task by then (it was sent as created).
        // The last seconds before it measure what the server spends idle.
        let until_minute = || u64::try_from(at - crate::clock::now_ms()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(
            until_minute().saturating_sub(IDLE_MS),
        ))
        .await;
        let (idle_cpu, idle_from) = (cpu_seconds("self"), Instant::now());
        tokio::time::sleep(Duration::from_millis(until_minute())).await;
        let cpu_before = cpu_seconds("self");
        let idle_cpu_per_s = (cpu_before - idle_cpu) / idle_from.elapsed().as_secs_f64().max(0.001);
        let begun = Instant::now();
        let deadline = begun + Duration::from_secs(u64::from(window_s) + 600);
        let mut samples = Vec::new();
        let run_id = loop {
            let stored = store.task(task.id).await?.and_then(|t| t.last_run);
            let run = match stored {
                Some(id) => store.run(id).await?,
                None => None,
            };
            let finished = run.as_ref().map_or(0, |r| r.counters.finished());
            samples.push((begun.elapsed().as_secs_f64(), finished));
            if let Some(run) = run
                && finished >= u64::from(devices)
            {
                break run.run_id;
            }
            if Instant::now() > deadline {
                bail!("only {finished} of {devices} results stored in time");
            }
            tokio::time::sleep(SAMPLE).await;
        };
        let all_stored_s = begun.elapsed().as_secs_f64();
        let server_cpu_s = cpu_seconds("self") - cpu_before;
        let records = store.run_records(run_id).await?;
        let offsets: Vec<f64> = records
            .iter()
            .filter(|r| r.state == DeviceState::Succeeded)
            .filter_map(|r| r.started)
            .map(|started| (started - at) as f64 / 1000.0)
            .collect();
        if offsets.len() != devices as usize {
            bail!("{} of {devices} devices succeeded", offsets.len());
        }
        let r = HerdRun {
            window_s,
            peak_results_per_s: peak_per_second(&samples),
            all_stored_s,
            server_cpu_s,
            idle_cpu_per_s,
            server_cpu_per_result_us: (server_cpu_s - idle_cpu_per_s * all_stored_s).max(0.0) * 1e6
                / f64::from(devices),
            starts_s: quartiles(offsets.clone()),
            starts_by_tenth: by_tenth(&offsets, window_s),
        };
        if !json {
            let s = r.starts_s;
            println!(
                "window {window_s} s: every result stored {:.2} s after the minute; peak {:.0} results/s; server CPU {:.2} s ({:.2} s/s idle before the minute; {:.0} µs per result beyond that); starts after the minute (s): min {:.2}, quartiles {:.2} / {:.2} / {:.2}, max {:.2}{}",
                r.all_stored_s,
                r.peak_results_per_s,
                r.server_cpu_s,
                r.idle_cpu_per_s,
                r.server_cpu_per_result_us,
                s[0],
                s[1],
                s[2],
                s[3],
                s[4],
                if r.starts_by_tenth.is_empty() {
                    String::new()
                } else {
                    format!("; per tenth of the window: {:?}", r.starts_by_tenth)
                }
            );
        }
        all.push(r);
    }
    if json {
        let report = serde_json::json!({
            "scenario": "herd",
            "devices": devices,
            "machine": machine,
            "windows": all,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    admin.close().await;
    agents.stop().await?;
    server.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_the_samples() {
        assert_eq!(
            quartiles(vec![3.0, 1.0, 2.0, 5.0, 4.0]),
            [1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(
            by_tenth(&[0.0, 0.5, 9.99, 10.0], 10),
            [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        assert!(by_tenth(&[1.0], 0).is_empty());
        let samples = [(0.0, 0), (0.5, 100), (1.0, 300), (2.0, 350)];
        assert_eq!(peak_per_second(&samples), 300.0);
    }
}

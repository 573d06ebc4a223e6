//! `bench fanout`: a tree of depth 3 with simulated devices on every server; how fast a run
//! started at the primary reaches every device and how fast the results show at the primary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::figures::{Machine, machine, print_figures, spread};
use super::process::{AgentProcess, ServerProcess, cpu_seconds};
use super::{admin_when_up, bench_server_text, group_task, instant_success, wait_connected};
use crate::cli::client::AdminClient;
use crate::cli::deployment::{Deployment, free_port, wait_for_tree};
use crate::model::ServerStatus;
use crate::wire::msg::{AdminRequest, AdminResponse, TaskRequest};

/// The shape of the `fanout` tree below its primary.
#[derive(Clone, Copy, Debug)]
pub(super) struct TreeShape {
    pub(super) secondaries: u32,
    pub(super) per_secondary: u32,
}

/// The tiers of the `fanout` tree: the primary, its secondaries, theirs.
pub(super) const TIERS: usize = 3;

/// One server of the `fanout` tree.
#[derive(Serialize, Clone, Debug)]
pub(super) struct TreeServer {
    pub(super) name: String,
    /// Its display path at the primary.
    pub(super) path: String,
    pub(super) depth: u32,
    pub(super) devices: u32,
    /// Its parent's index in the plan.
    #[serde(skip)]
    pub(super) parent: Option<usize>,
}

impl TreeShape {
    /// Every server, parents before their children, with `devices` spread evenly (the
    /// first servers take one more when they do not divide).
    pub(super) fn plan(&self, devices: u32) -> Vec<TreeServer> {
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
pub(super) struct Milestones {
    devices: u64,
    pub(super) first_ms: Option<f64>,
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
    pub(super) p100_ms: Option<f64>,
}

impl Milestones {
    pub(super) fn new(devices: u64) -> Self {
        Milestones {
            devices,
            first_ms: None,
            p50_ms: None,
            p99_ms: None,
            p100_ms: None,
        }
    }

    /// `finished` of the devices were shown finished at `at_ms`.
    pub(super) fn observe(&mut self, finished: u64, at_ms: f64) {
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

    pub(super) fn done(&self) -> bool {
        self.p100_ms.is_some()
    }

    pub(super) fn text(&self) -> String {
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

pub(super) struct FanoutRun {
    /// Of every device of the tree, from the primary's totals.
    pub(super) total: Milestones,
    /// Of each tier, from the primary's rows of that depth, summed.
    pub(super) tiers: Vec<Milestones>,
    pub(super) polls: u32,
    pub(super) poll_period_ms: f64,
    /// The longest round trip of one `task stats` request.
    pub(super) poll_max_ms: f64,
    /// CPU seconds of this process (every server) and of the devices' processes.
    pub(super) server_cpu_s: f64,
    pub(super) agents_cpu_s: f64,
    /// Per tier, from each server's own run as it stamped it (1 ms resolution, the same
    /// clock): when the last server of the tier started its run, and when the last one
    /// recorded its own last device's result, in ms after the start request was sent.
    pub(super) started_ms: Vec<f64>,
    pub(super) finished_ms: Vec<f64>,
}

/// The servers of `plan` at `depth`.
fn tier_servers(plan: &[TreeServer], depth: usize) -> impl Iterator<Item = &TreeServer> {
    plan.iter().filter(move |s| s.depth as usize == depth)
}

/// The devices of the servers of `plan` at `depth`.
fn tier_devices(plan: &[TreeServer], depth: usize) -> u64 {
    tier_servers(plan, depth)
        .map(|s| u64::from(s.devices))
        .sum()
}

/// What `bench fanout` reports (`--json` prints it; the text prints its figures): `plan`
/// holds every device of the tree.
pub(super) fn summary(
    shape: TreeShape,
    plan: &[TreeServer],
    runs: u32,
    poll_ms: u64,
    in_process: bool,
    machine: &Machine,
    all: &[FanoutRun],
) -> serde_json::Value {
    let devices: u32 = plan.iter().map(|s| s.devices).sum();
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
            tier["servers"] = tier_servers(plan, depth).count().into();
            tier["devices"] = tier_devices(plan, depth).into();
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
    summary
}

/// `bench fanout`: how fast a run started at the primary reaches every device of a tree and
/// how fast their results show in the primary's statistics.
pub(super) async fn fanout(
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
                tier_servers(&plan, depth).count(),
                tier_devices(&plan, depth)
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
            let running = crate::cli::deployment::start(&config).await?;
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
        let path = super::bench_agent_config(&d, &name, running.addr)?;
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

    let summary = summary(shape, &plan, runs, poll_ms, in_process, &machine, &all);
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

//! Chaos, as processes: a 3-tier tree of `canopy serve` processes (primary -> branch-1 ->
//! branch-1a, and a virtual server on branch-1) with a `canopy agent --simulate` fleet on
//! each server, every link (server to parent, agents to their server) through a UDP relay
//! that drops 5 %, delays up to 50 ms, duplicates and reorders datagrams. For a while, a
//! seeded schedule kills servers and fleets with SIGKILL and starts them again, while group
//! tasks (two at the primary, one at branch-1) are created, edited and started. Then the
//! faults stop, and once every run has ended (or the limit passed: a stuck run) the checks in
//! `checks.rs` (through the admin API) and `postmortem.rs` (in the databases) run.
//!
//! `make test` runs one short seed; `make chaos SEEDS=N` runs N in release mode. The
//! environment: CANOPY_CHAOS_SEEDS (1), CANOPY_CHAOS_FIRST (1), CANOPY_CHAOS_DEVICES (per
//! server, 20), CANOPY_CHAOS_SECS (how long the faults last, 15). A failing seed's directory
//! (configs, databases, every process's log) is kept and named; CANOPY_CHAOS_KEEP=1 keeps
//! every seed's.

#[path = "../common/mod.rs"]
mod common;

mod checks;
mod plan;
mod postmortem;
mod relay;
mod tree;

use std::time::{Duration, Instant};

use plan::Plan;
use tree::{Admin, Tree};

/// How long after the faults stop every run must have ended.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);
/// How long one seed may take in all.
const SEED_LIMIT: Duration = Duration::from_secs(400);

struct Settings {
    first: u64,
    seeds: u64,
    devices: u32,
    chaos: Duration,
    /// Keep every seed's directory, not only a failing one's.
    keep: bool,
}

fn env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            first: env("CANOPY_CHAOS_FIRST", 1),
            seeds: env("CANOPY_CHAOS_SEEDS", 1),
            devices: env("CANOPY_CHAOS_DEVICES", 20) as u32,
            chaos: Duration::from_secs(env("CANOPY_CHAOS_SECS", 15)),
            keep: env("CANOPY_CHAOS_KEEP", 0) != 0,
        }
    }

    fn replay(&self, seed: u64) -> String {
        format!(
            "CANOPY_CHAOS_FIRST={seed} make chaos SEEDS=1 DEVICES={} SECS={}",
            self.devices,
            self.chaos.as_secs()
        )
    }
}

/// One seed: what happened, in a line, and what is wrong.
async fn run_seed(seed: u64, s: &Settings, dir: &std::path::Path) -> (String, Vec<String>) {
    let started = Instant::now();
    let mut tree = match Tree::build(dir, seed, s.devices).await {
        Ok(tree) => tree,
        Err(e) => return (String::new(), vec![format!("setting up the tree: {e:#}")]),
    };
    let setup = started.elapsed();
    let plan = Plan::of(seed, s.chaos);
    let admin = |i: usize| Admin::new(&tree.d, tree.addrs[i]);
    let (mut admins, mut primary) = match (admin(0), admin(1), admin(0)) {
        (Ok(p), Ok(m), Ok(q)) => (vec![p, m], q),
        _ => return (String::new(), vec!["no admin client".into()]),
    };
    tree.set_faulty(true);
    let t0 = tokio::time::Instant::now();
    let (killed, done) = tokio::join!(
        plan::drive_kills(&plan.kills, t0, &mut tree.servers, &mut tree.fleets),
        plan::drive_ops(&plan.ops, t0, &mut admins),
    );
    let mut failures = Vec::new();
    let killed = killed.unwrap_or_else(|e| {
        failures.push(format!("restarting a process: {e:#}"));
        Vec::new()
    });
    tree.set_faulty(false);
    if let Err(e) = tree.start_all() {
        failures.push(format!("restarting a process: {e:#}"));
    }
    let faults = t0.elapsed();
    let settled = checks::settle(&mut primary, &tree.devices, SETTLE_LIMIT).await;
    let mut runs_checked = 0;
    match &settled {
        Ok(_) => {
            let (n, found) = checks::check_all(&mut primary, &done.runs, &tree.devices).await;
            runs_checked = n;
            failures.extend(found);
        }
        Err(stuck) => failures.push(stuck.clone()),
    }
    failures.extend(tree.crashes());
    tree.kill_all();
    let (databases, wrong) = postmortem::check(&tree).await;
    failures.extend(wrong);
    let relays = tree.relay_counts();
    let devices: u32 = tree.devices.iter().sum();
    let summary = format!(
        "{:.0} s (set-up {:.0} s, faults {:.0} s, settled {}): 4 servers, {devices} devices; \
         {} kills [{}]; tasks: {} created, {} edits, {} runs started, {} starts refused (run \
         still going), {} requests lost with their server; relays: {} datagrams, {} dropped, \
         {} duplicated, {} client addresses; checked: {runs_checked} runs at every level through \
         the API, in the databases {databases}",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        faults.as_secs_f64(),
        match settled {
            Ok(t) => format!("in {:.1} s", t.as_secs_f64()),
            Err(_) => "never".into(),
        },
        killed.len(),
        killed.join(", "),
        done.created,
        done.edits,
        done.starts,
        done.refused,
        done.failed,
        relays.datagrams,
        relays.dropped,
        relays.duplicated,
        relays.clients,
    );
    (summary, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_processes_counts_every_device_once_whatever_the_faults() {
    let s = Settings::from_env();
    let mut failed = Vec::new();
    for seed in s.first..s.first + s.seeds {
        let dir = tempfile::Builder::new()
            .prefix(&format!("canopy-chaos-{seed}-"))
            .tempdir()
            .unwrap();
        let outcome = tokio::time::timeout(SEED_LIMIT, run_seed(seed, &s, dir.path())).await;
        let (summary, failures) = outcome.unwrap_or_else(|_| {
            (
                String::new(),
                vec![format!("the seed did not end within {SEED_LIMIT:?}")],
            )
        });
        if failures.is_empty() {
            eprintln!("chaos seed {seed} passed: {summary}");
            if s.keep {
                eprintln!("  its directory: {}", dir.keep().display());
            }
            continue;
        }
        let kept = dir.keep();
        eprintln!("chaos seed {seed} FAILED: {summary}");
        for f in &failures {
            eprintln!("  - {f}");
        }
        eprintln!(
            "  replay: {}\n  its directory (configs, databases, logs): {}",
            s.replay(seed),
            kept.display()
        );
        failed.push(seed);
    }
    assert!(
        failed.is_empty(),
        "chaos seeds {failed:?} failed (of {} from {}); each names its invariant and replay above",
        s.seeds,
        s.first
    );
    eprintln!("{} chaos seeds passed", s.seeds);
}

//! What the simulation checks: after every step, the invariants of the servers touched;
//! once the tree is quiet, the end state against what must have happened. And the tests
//! that run it, including the ones that sabotage a rule and expect to be caught.

use std::collections::BTreeMap;

use super::{FAULT_STEPS, MAX_STEPS, Sabotage, Sim, Tally, device_can_move};
use crate::model::task::{RunCounters, RunId};
use crate::sync::inherit;
use crate::sync::stats::add_counters;

impl Sim {
    /// The invariants of every server whose state changed in this step.
    fn check_step(&mut self) -> Result<(), String> {
        if let Some(v) = self.violations.first() {
            return Err(v.clone());
        }
        for x in 0..self.topo.len() {
            if self.touched[x] {
                self.check_node(x)?;
                let work = self.nodes[x].store.runs.values().any(|run| {
                    run.records
                        .values()
                        .any(|r| device_can_move(run.stopped, r.state))
                });
                self.nodes[x].device_work = work;
            }
        }
        Ok(())
    }

    fn check_node(&self, x: usize) -> Result<(), String> {
        let store = &self.nodes[x].store;
        for (run_id, run) in &store.runs {
            if run.counters != RunCounters::of(run.records.values()) {
                return Err(format!(
                    "s{x} run {run_id}: counters differ from the records"
                ));
            }
            // Every device the run reaches in the subtree is counted once: by this
            // server's records, by a row, or as pending for a server not heard from.
            let rollup = self.rollup(x, run);
            let audience = store.tasks.get(&run.task_id).and_then(inherit::audience);
            let below: u64 =
                super::rollup::expected_below(audience, &self.topo.placements(x), |a, b| {
                    self.topo.is_below(a, b)
                })
                .iter()
                .map(|(_, devices)| devices)
                .sum();
            let reached = run.records.len() as u64 + below;
            if rollup.totals.total() != reached {
                return Err(format!(
                    "s{x} run {run_id}: {} devices counted, {reached} reached",
                    rollup.totals.total()
                ));
            }
        }
        let cursor = store.cursor;
        let in_order = store.applied.iter().copied().eq(1..=cursor);
        if !in_order {
            return Err(format!(
                "s{x}: cursor {cursor} but applied {:?}",
                store.applied
            ));
        }
        if let Some(p) = self.topo.parent[x]
            && cursor > self.nodes[p].store.log.len() as u64
        {
            return Err(format!("s{x}: cursor {cursor} beyond its parent's log"));
        }
        Ok(())
    }

    /// Whether the parent `p`'s task `task_id` reaches its child `c`.
    fn reaches(&self, p: usize, task_id: u64, c: usize) -> bool {
        self.nodes[p]
            .store
            .tasks
            .get(&task_id)
            .and_then(inherit::audience)
            .is_some_and(|a| a.concerns(self.topo.placed[c], |x, y| self.topo.is_below(x, y)))
    }

    /// The end state once the tree is quiet.
    fn check_final(&self) -> Result<(), String> {
        let n = self.topo.len();
        if !self.net.is_empty() {
            return Err(format!("{} packets still in flight", self.net.len()));
        }
        // Every server's own events reached the primary once each, in order, from their path.
        for x in 0..n {
            let own = self.nodes[x].store.events.own();
            self.nodes[0]
                .store
                .events
                .check_holds(&self.topo.path[x], &format!("s{x}"), own)?;
        }
        for x in 0..n {
            let node = &self.nodes[x];
            let Some(vol) = node.vol.as_ref() else {
                return Err(format!("s{x} is still down"));
            };
            self.check_node(x)?;
            if node.device_work {
                return Err(format!("s{x} has devices with work left"));
            }
            for (c, session) in &vol.children {
                if !session.is_caught_up() {
                    return Err(format!("s{x}: the link of s{c} is behind"));
                }
            }
            let Some(p) = self.topo.parent[x] else {
                continue;
            };
            if !self.links[x].up {
                return Err(format!("the link of s{x} is down"));
            }
            if !vol.parent.as_ref().is_some_and(|s| s.is_settled()) {
                return Err(format!("s{x}: its link to s{p} is not settled"));
            }
            let last = self.nodes[p].store.log.len() as u64;
            if node.store.cursor != last {
                return Err(format!(
                    "s{x} applied {} of its parent's {last} changes",
                    node.store.cursor
                ));
            }
            // It holds every certificate revoked at its parent or above.
            let parent = &self.nodes[p].store;
            if let Some(missing) = parent
                .revoked
                .values()
                .find(|r| !node.store.revoked.contains_key(&r.fingerprint.0))
            {
                return Err(format!("s{x} does not hold {}", missing.describe()));
            }
            // It holds a copy of exactly the parent's tasks that reach it, at their
            // revision, and a run for exactly their runs.
            let parent = &self.nodes[p].store;
            let wanted: BTreeMap<u64, u32> = parent
                .tasks
                .iter()
                .filter(|(id, _)| self.reaches(p, **id, x))
                .map(|(id, t)| (*id, t.revision))
                .collect();
            let held: BTreeMap<u64, u32> = node
                .store
                .inherited_tasks
                .iter()
                .filter_map(|(pid, local)| {
                    let copy = node.store.tasks.get(local)?;
                    Some((*pid, copy.inherited.as_ref()?.parent_revision))
                })
                .collect();
            if held != wanted {
                return Err(format!(
                    "s{x}: holds {held:?} of s{p}'s tasks, should hold {wanted:?}"
                ));
            }
            let wanted: BTreeMap<RunId, bool> = parent
                .runs
                .iter()
                .filter(|(_, r)| self.reaches(p, r.task_id, x))
                .map(|(id, r)| (*id, r.stopped))
                .collect();
            let held: BTreeMap<RunId, bool> = node
                .store
                .inherited_runs
                .iter()
                .filter_map(|(pid, local)| Some((*pid, node.store.runs.get(local)?.stopped)))
                .collect();
            if held != wanted {
                return Err(format!(
                    "s{x}: holds runs {held:?} of s{p}'s, should hold {wanted:?}"
                ));
            }
        }
        // Every device ran each run that reached it once (none if it was stopped first),
        // and every record is final.
        for (x, run_id) in self.origin.keys() {
            let Some(run) = self.nodes[*x].store.runs.get(run_id) else {
                continue;
            };
            for (d, record) in &run.records {
                let executed = self
                    .executions
                    .get(&(*x, *d, *run_id))
                    .copied()
                    .unwrap_or(0);
                let ok =
                    record.state.is_finished() && (executed == 1 || (run.stopped && executed == 0));
                if !ok {
                    return Err(format!(
                        "s{x}-d{d} run {run_id} (stopped: {}): {:?}, executed {executed}",
                        run.stopped, record.state
                    ));
                }
            }
        }
        let Some(last) = self.final_run else {
            return Err("the final run was never started".into());
        };
        for y in 0..n {
            let executed: Vec<u32> = (0..self.topo.devices[y])
                .map(|d| {
                    self.origin
                        .iter()
                        .filter(|((s, _), o)| *s == y && **o == last)
                        .map(|((_, r), _)| self.executions.get(&(y, d, *r)).copied().unwrap_or(0))
                        .sum()
                })
                .collect();
            if executed.iter().any(|e| *e != 1) {
                return Err(format!("s{y}: the last run executed {executed:?} times"));
            }
        }
        // Every server's totals are its subtree's records, and each row is the newest state
        // of the server it describes.
        // From the leaves up, so that a stale row is blamed where it first went stale.
        for x in (0..n).rev() {
            for (run_id, run) in &self.nodes[x].store.runs {
                let Some(origin) = self.origin.get(&(x, *run_id)) else {
                    return Err(format!("s{x} run {run_id} has no known origin"));
                };
                let mut subtree = RunCounters::default();
                for y in (0..n).filter(|y| self.topo.in_subtree(x, *y)) {
                    let at_y = self.origin.iter().find_map(|((s, r), o)| {
                        (*s == y && o == origin)
                            .then(|| self.nodes[y].store.runs.get(r))
                            .flatten()
                    });
                    let Some(at_y) = at_y else {
                        continue;
                    };
                    add_counters(&mut subtree, &at_y.counters);
                    if y == x {
                        continue;
                    }
                    let row = run.table.get(&self.topo.relative(x, y));
                    if row.map(|r| (r.counters, r.version)) != Some((at_y.counters, at_y.version)) {
                        return Err(format!(
                            "s{x} run {run_id}: the row of s{y} is stale: {:?} against {:?} (path {:?}, stopped {})",
                            row.map(|r| (r.counters.by_state, r.version)),
                            (at_y.counters.by_state, at_y.version),
                            self.topo.path[y],
                            at_y.stopped,
                        ));
                    }
                }
                let rollup = self.rollup(x, run);
                if rollup.totals != subtree || !rollup.missing.is_empty() {
                    return Err(format!("s{x} run {run_id}: totals differ from its subtree"));
                }
                if !rollup.is_complete() {
                    return Err(format!("s{x} run {run_id}: never completes"));
                }
            }
        }
        Ok(())
    }
}

/// Runs one seed to the end; the error names the seed and the step.
pub(super) fn run(seed: u64, sabotage: Sabotage) -> Result<Tally, String> {
    let mut sim = Sim::new(seed, sabotage);
    let mut step = 0;
    loop {
        if step == FAULT_STEPS {
            sim.faults = false;
        }
        if step > MAX_STEPS {
            return Err(format!(
                "seed {seed}, step {step}: the tree never fell quiet"
            ));
        }
        let quiet = sim.step();
        sim.check_step()
            .map_err(|e| format!("seed {seed}, step {step}: {e}"))?;
        if quiet {
            break;
        }
        step += 1;
    }
    sim.check_final()
        .map_err(|e| format!("seed {seed}, quiet after step {step}: {e}"))?;
    Ok(sim.tally)
}

/// Runs seeds `first..first + count`; the first failure names its seed and how to replay it.
pub(crate) fn run_seeds(first: u64, count: u64) -> Result<Tally, String> {
    let mut tally = Tally::default();
    for seed in first..first + count {
        match run(seed, Sabotage::None) {
            Ok(t) => tally.add(&t),
            Err(e) => {
                return Err(format!(
                    "{e}\nreplay it with: CANOPY_SIM_FIRST={seed} make sim SEEDS=1"
                ));
            }
        }
    }
    Ok(tally)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_tree_of_servers_converges_whatever_the_faults() {
    let seeds = env_u64("CANOPY_SIM_SEEDS", 60);
    let first = env_u64("CANOPY_SIM_FIRST", 0);
    let tally = match run_seeds(first, seeds) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    if std::env::var_os("CANOPY_SIM_VERBOSE").is_some() {
        eprintln!("{tally:?}");
    }
    // The faults really happened, and every recovery path was taken.
    let t = tally;
    for (what, count) in [
        ("dropped", t.dropped),
        ("duplicated", t.duplicated),
        ("stale", t.stale),
        ("crashes", t.crashes),
        ("link drops", t.link_drops),
        ("store failures", t.store_failures),
        ("gaps", t.gaps),
        ("duplicates", t.duplicates),
        ("resumes", t.resumes),
        ("replays", t.replays),
        ("reports", t.reports),
    ] {
        assert!(count > 0 || seeds < 20, "no {what} in {seeds} seeds: {t:?}");
    }
    // The line `make sim` looks for.
    println!("{seeds} seeds passed");
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let a = run(42, Sabotage::None).map(|t| format!("{t:?}"));
    let b = run(42, Sabotage::None).map(|t| format!("{t:?}"));
    assert_eq!(a, b);
}

fn caught(sabotage: Sabotage) -> String {
    let caught = (0..20).find_map(|seed| run(seed, sabotage).err());
    caught.unwrap_or_else(|| panic!("{sabotage:?} was not caught in 20 seeds"))
}

#[test]
fn the_checks_catch_a_change_applied_twice() {
    let message = caught(Sabotage::ApplyDuplicates);
    assert!(
        message.contains("twice") || message.contains("applied"),
        "{message}"
    );
}

#[test]
fn the_checks_catch_changes_sent_to_children_they_do_not_concern() {
    let message = caught(Sabotage::IgnoreAudience);
    assert!(message.starts_with("seed "), "{message}");
}

#[test]
fn the_checks_catch_statistics_merged_without_versions() {
    let message = caught(Sabotage::LastReportWins);
    assert!(
        message.contains("stale") || message.contains("totals") || message.contains("counted"),
        "{message}"
    );
}

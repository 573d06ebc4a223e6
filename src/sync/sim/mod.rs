//! A deterministic simulation of a tree of servers running the real protocol sessions
//! (`ChildSession`, `ParentSession`) with a virtual clock and a seeded random generator, the
//! way quinn's tests drive real connections through a simulated network. Only the network,
//! the store and crashes are simulated: the network drops, duplicates, reorders and delays
//! messages; servers crash and restart from their durable state; the store fails batches.
//! After every step the invariants of the servers touched are checked, and once the faults
//! stop and the tree falls quiet, the end state is checked against what must have happened.
//!
//! The runtime glue here mirrors `server::fed`: effects are carried out against the
//! simulated store, a batch being applied is committed by a later step (as the store's
//! writer would), and a link is only set up again once the batch in flight is stored.

mod checks;
mod events;
mod runtime;
mod store;
mod topology;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use self::store::{RunData, Store};
use self::topology::Topology;
use super::child_session::ChildSession;
use super::events_up::EventSender;
use super::inherit;
use super::parent_session::{InheritedRun, ParentPolicy, ParentSession};
use super::replicate::{ApplierPolicy, Cursor, FeedPolicy, LogState};
use super::rollup::{self, Rollup};
use super::stats::ReporterPolicy;
use crate::model::group::MANAGED_DEVICES;
use crate::model::task::{Details, DeviceProgress, DeviceState, Outcome, RunId};
use crate::wire::msg::{ChildMsg, ParentMsg, TaskChange};

const FAULT_STEPS: u64 = 1500;
/// A tree that has not fallen quiet after this many steps without faults is stuck.
const MAX_STEPS: u64 = 200_000;
const P_PRIMARY_OP: f64 = 0.02;
const P_CRASH: f64 = 0.002;
const P_LINK_DROP: f64 = 0.002;
const P_DROP: f64 = 0.08;
const P_DUPLICATE: f64 = 0.05;
const P_STORE_FAILS: f64 = 0.02;
const P_TICK: f64 = 0.1;
/// Groups of the primary; group 1 ("Managed devices") is their root.
const GROUPS: u64 = 6;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn feed_policy() -> FeedPolicy {
    // A small window, so that the window is exercised with few changes.
    FeedPolicy {
        window: 8,
        resend_after: ms(400),
    }
}

fn parent_policy() -> ParentPolicy {
    ParentPolicy {
        applier: ApplierPolicy {
            resume_interval: ms(100),
        },
        reporter: ReporterPolicy {
            min_interval: ms(200),
            resend_after: ms(600),
        },
    }
}

/// What a crash loses.
#[derive(Default)]
struct Volatile {
    /// The link to the parent, while it is up.
    parent: Option<ParentSession>,
    /// The links to children that are up.
    children: BTreeMap<usize, ChildSession>,
    /// The batch the parent session handed to the store's writer, not committed yet.
    applying: Option<Vec<(u64, TaskChange)>>,
    /// Runs changed since the parent session last heard, with whether they are over here.
    changed_runs: BTreeMap<RunId, bool>,
}

struct Node {
    store: Store,
    /// `None` while crashed.
    vol: Option<Volatile>,
    restart_at: Option<Instant>,
    /// The earliest timeout of its sessions.
    wake: Option<Instant>,
    /// Some device has something to do (cached; recomputed when the node changes).
    device_work: bool,
}

#[derive(Clone, Debug)]
enum Msg {
    Down(ParentMsg),
    Up(ChildMsg),
}

#[derive(Debug)]
struct Packet {
    at: Instant,
    /// The link is named by its child.
    link: usize,
    /// The connection it was sent on; a packet of an older connection is lost.
    epoch: u64,
    msg: Msg,
}

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    up: bool,
    epoch: u64,
    connect_at: Option<Instant>,
}

/// What happened over a run, to show the simulation exercised every path.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub steps: u64,
    pub changes: u64,
    pub runs: u64,
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub stale: u64,
    pub crashes: u64,
    pub link_drops: u64,
    pub store_failures: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub resumes: u64,
    pub replays: u64,
    pub reports: u64,
    pub executions: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.steps += o.steps;
        self.changes += o.changes;
        self.runs += o.runs;
        self.sent += o.sent;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.stale += o.stale;
        self.crashes += o.crashes;
        self.link_drops += o.link_drops;
        self.store_failures += o.store_failures;
        self.gaps += o.gaps;
        self.duplicates += o.duplicates;
        self.resumes += o.resumes;
        self.replays += o.replays;
        self.reports += o.reports;
        self.executions += o.executions;
    }
}

/// A deliberate bug in one rule, to show the checks catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sabotage {
    None,
    /// The child's session applies a change its applier called a duplicate.
    ApplyDuplicates,
    /// The parent's session sends every change as is, whatever it concerns.
    IgnoreAudience,
    /// The parent's store takes every row it receives, whatever its version.
    LastReportWins,
}

struct Sim {
    rng: StdRng,
    base: Instant,
    now: Instant,
    topo: Topology,
    nodes: Vec<Node>,
    /// By child index; index 0 (the primary) is unused.
    links: Vec<Link>,
    net: Vec<Packet>,
    faults: bool,
    sabotage: Sabotage,
    /// The primary's run each run carries out, by (server, run): the harness's knowledge.
    origin: BTreeMap<(usize, RunId), RunId>,
    /// The real world: how often each (server, device, run) started executing.
    executions: BTreeMap<(usize, usize, RunId), u32>,
    violations: Vec<String>,
    touched: Vec<bool>,
    final_run: Option<RunId>,
    tally: Tally,
}

impl Sim {
    fn new(seed: u64, sabotage: Sabotage) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let topo = Topology::random(&mut rng);
        let n = topo.len();
        // Only differences of instants matter, so the base is arbitrary.
        let base = Instant::now();
        let nodes = (0..n)
            .enumerate()
            .map(|(i, _)| Node {
                store: Store::with_epoch(i as u64 + 1),
                vol: Some(Volatile::default()),
                restart_at: None,
                wake: None,
                device_work: false,
            })
            .collect();
        Sim {
            rng,
            base,
            now: base,
            topo,
            nodes,
            links: vec![Link::default(); n],
            net: Vec::new(),
            faults: true,
            sabotage,
            origin: BTreeMap::new(),
            executions: BTreeMap::new(),
            violations: Vec::new(),
            touched: vec![false; n],
            final_run: None,
            tally: Tally::default(),
        }
    }

    fn millis(&self) -> i64 {
        (self.now - self.base).as_millis() as i64
    }

    fn touch(&mut self, x: usize) {
        self.touched[x] = true;
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    fn up(&self, x: usize) -> bool {
        self.nodes[x].vol.is_some()
    }

    /// A run at `x` over `x`'s subtree, as `server::Node::rollup` computes it.
    fn rollup(&self, x: usize, run: &RunData) -> Rollup {
        let audience = self.nodes[x]
            .store
            .tasks
            .get(&run.task_id)
            .and_then(inherit::audience);
        let expected = rollup::expected_below(audience, &self.topo.placements(x), |a, b| {
            self.topo.is_below(a, b)
        });
        Rollup::of(&run.counters, run.stopped, &run.table, &expected)
    }

    // ---- One step ----

    /// Returns true when the tree is quiet: no faults, nothing to do, no timer pending.
    fn step(&mut self) -> bool {
        self.tally.steps += 1;
        // Servers work fast next to the network: time mostly moves when nothing can happen
        // now, so the harness itself never becomes a congested network.
        if self.rng.random_bool(P_TICK) {
            self.now += ms(self.rng.random_range(1..=3));
        }
        self.touched.fill(false);
        self.schedule_connects();
        if !self.act() {
            // Nothing can happen now: jump to the next instant something will.
            match self.next_deadline() {
                Some(at) => self.now = self.now.max(at),
                None if !self.faults => return true,
                None => {}
            }
        }
        for x in 0..self.topo.len() {
            let due = self.nodes[x].wake.is_some_and(|at| at <= self.now);
            if self.touched[x] || due {
                self.pump(x);
            }
        }
        false
    }

    fn act(&mut self) -> bool {
        if self.faults {
            if self.rng.random_bool(P_PRIMARY_OP) && self.up(0) {
                self.primary_op();
                return true;
            }
            if self.rng.random_bool(P_CRASH) {
                let x = self.rng.random_range(0..self.topo.len());
                if self.up(x) {
                    self.crash(x);
                    return true;
                }
            }
            if self.rng.random_bool(P_LINK_DROP) {
                let c = self.rng.random_range(1..self.topo.len());
                if self.links[c].up {
                    self.tally.link_drops += 1;
                    self.link_down(c);
                    return true;
                }
            }
        } else if self.final_run.is_none() && self.up(0) {
            self.final_op();
            return true;
        }
        let now = self.now;
        let n = self.topo.len();
        let due: Vec<usize> = (0..self.net.len())
            .filter(|i| self.net[*i].at <= now)
            .collect();
        let stores: Vec<usize> = (0..n)
            .filter(|x| {
                self.nodes[*x]
                    .vol
                    .as_ref()
                    .is_some_and(|v| v.applying.is_some())
            })
            .collect();
        let devices: Vec<usize> = (0..n)
            .filter(|x| self.up(*x) && self.nodes[*x].device_work)
            .collect();
        let restarts: Vec<usize> = (0..n)
            .filter(|x| self.nodes[*x].restart_at.is_some_and(|at| at <= now))
            .collect();
        let connects: Vec<usize> = (1..n)
            .filter(|c| self.links[*c].connect_at.is_some_and(|at| at <= now))
            .collect();
        let lists = [&due, &stores, &devices, &restarts, &connects];
        let weights = [6, 3, 3, 2, 2];
        let total: u32 = (0..5)
            .filter(|i| !lists[*i].is_empty())
            .map(|i| weights[i])
            .sum();
        if total == 0 {
            return false;
        }
        let mut pick = self.rng.random_range(0..total);
        let mut kind = 0;
        for i in 0..5 {
            if lists[i].is_empty() {
                continue;
            }
            if pick < weights[i] {
                kind = i;
                break;
            }
            pick -= weights[i];
        }
        let list = lists[kind];
        let one = list[self.rng.random_range(0..list.len())];
        match kind {
            0 => self.deliver(one),
            1 => self.store_step(one),
            2 => self.device_step(one),
            3 => self.restart(one),
            _ => self.connect(one),
        }
        true
    }

    fn next_deadline(&self) -> Option<Instant> {
        let packets = self.net.iter().map(|p| p.at);
        let wakes = self.nodes.iter().filter_map(|n| n.wake);
        let restarts = self.nodes.iter().filter_map(|n| n.restart_at);
        let connects = self.links.iter().filter_map(|l| l.connect_at);
        packets.chain(wakes).chain(restarts).chain(connects).min()
    }

    // ---- The network ----

    fn send(&mut self, link: usize, msg: Msg) {
        self.tally.sent += 1;
        if self.faults && self.rng.random_bool(P_DROP) {
            self.tally.dropped += 1;
            return;
        }
        let epoch = self.links[link].epoch;
        let copies = if self.faults && self.rng.random_bool(P_DUPLICATE) {
            self.tally.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            // Random delays reorder messages.
            let at = self.now + ms(self.rng.random_range(1..=30));
            self.net.push(Packet {
                at,
                link,
                epoch,
                msg: msg.clone(),
            });
        }
    }

    fn deliver(&mut self, i: usize) {
        let packet = self.net.swap_remove(i);
        let link = self.links[packet.link];
        if !link.up || link.epoch != packet.epoch {
            // Its connection is gone, and the packet with it.
            self.tally.stale += 1;
            return;
        }
        let c = packet.link;
        let Some(p) = self.topo.parent[c] else {
            return;
        };
        let now = self.now;
        match packet.msg {
            Msg::Down(msg) => {
                self.touch(c);
                let Some(session) = self.nodes[c].vol.as_mut().and_then(|v| v.parent.as_mut())
                else {
                    return;
                };
                if let ParentMsg::Change { seq, .. } = &msg {
                    let last = session.last_applied();
                    if *seq <= last {
                        self.tally.duplicates += 1;
                    } else if *seq > last + 1 {
                        self.tally.gaps += 1;
                    }
                }
                session.handle_message(msg, now);
            }
            Msg::Up(msg) => {
                self.touch(p);
                if matches!(msg, ChildMsg::Resume(_)) {
                    self.tally.resumes += 1;
                }
                let Some(session) = self.nodes[p]
                    .vol
                    .as_mut()
                    .and_then(|v| v.children.get_mut(&c))
                else {
                    return;
                };
                session.handle_message(msg, now);
            }
        }
    }

    // ---- Links and crashes ----

    fn schedule_connects(&mut self) {
        for c in 1..self.topo.len() {
            let Some(p) = self.topo.parent[c] else {
                continue;
            };
            let link = self.links[c];
            // As in `server::fed`, a link is set up again only once the batch it was
            // applying is stored.
            let idle = self.nodes[c]
                .vol
                .as_ref()
                .is_some_and(|v| v.applying.is_none());
            if !link.up && link.connect_at.is_none() && idle && self.up(p) {
                let delay = ms(self.rng.random_range(5..=100));
                self.links[c].connect_at = Some(self.now + delay);
            }
        }
    }

    fn link_down(&mut self, c: usize) {
        let link = &mut self.links[c];
        link.up = false;
        link.epoch += 1;
        link.connect_at = None;
        if let Some(p) = self.topo.parent[c] {
            if let Some(vol) = self.nodes[p].vol.as_mut() {
                vol.children.remove(&c);
            }
            self.touch(p);
        }
        if let Some(vol) = self.nodes[c].vol.as_mut() {
            vol.parent = None;
        }
        self.touch(c);
    }

    /// The child's hello and the parent's welcome: both build their sessions from what is
    /// stored, as `server::fed` does.
    fn connect(&mut self, c: usize) {
        let Some(p) = self.topo.parent[c] else {
            return;
        };
        let now = self.now;
        self.links[c].connect_at = None;
        let ready = self.up(p)
            && self.nodes[c]
                .vol
                .as_ref()
                .is_some_and(|v| v.applying.is_none());
        if !ready {
            return;
        }
        let link = &mut self.links[c];
        link.up = true;
        link.epoch += 1;
        let name = format!("s{c}");
        let cursor = self.nodes[c].store.cursor;
        let log_last = self.nodes[p].store.log.len() as u64;
        let cursor = Cursor {
            last_applied: cursor,
            epoch: self.nodes[c].store.parent_epoch,
        };
        let log = LogState {
            epoch: self.nodes[p].store.epoch,
            last_seq: log_last,
        };
        let child_epoch = self.nodes[c].store.epoch;
        let mut child =
            ChildSession::with_policy(feed_policy(), &name, cursor, child_epoch, log, now);
        child.sabotage_routing = self.sabotage == Sabotage::IgnoreAudience;
        let runs: Vec<InheritedRun> = self.nodes[c]
            .store
            .runs
            .iter()
            .filter_map(|(id, run)| {
                Some(InheritedRun {
                    run_id: *id,
                    parent_run: run.parent_run?,
                    complete: self.rollup(c, run).is_complete(),
                })
            })
            .collect();
        // The parent's welcome says which of the child's events it holds.
        let events = EventSender::new(
            self.nodes[p].store.events.held_from(&name, child_epoch),
            self.nodes[c].store.events.newest(),
        );
        let link = (cursor, log, None);
        let mut parent = ParentSession::new(parent_policy(), &name, link, runs, events, now);
        parent.sabotage_apply_duplicates = self.sabotage == Sabotage::ApplyDuplicates;
        if let Some(vol) = self.nodes[p].vol.as_mut() {
            vol.children.insert(c, child);
        }
        if let Some(vol) = self.nodes[c].vol.as_mut() {
            vol.parent = Some(parent);
        }
        self.touch(p);
        self.touch(c);
    }

    fn crash(&mut self, x: usize) {
        self.tally.crashes += 1;
        let node = &mut self.nodes[x];
        node.vol = None;
        node.wake = None;
        node.store.noted.clear();
        node.restart_at = Some(self.now + ms(self.rng.random_range(20..=300)));
        if self.topo.parent[x].is_some() {
            self.link_down(x);
        }
        for c in self.topo.children[x].clone() {
            self.link_down(c);
        }
        self.touch(x);
    }

    fn restart(&mut self, x: usize) {
        let now = self.millis();
        let node = &mut self.nodes[x];
        node.store.events.record_own(&format!("s{x}"), now);
        node.restart_at = None;
        node.vol = Some(Volatile::default());
        self.touch(x);
    }

    /// One device moves one step in one run: delivered, started (executing), finished, or
    /// cancelled when its run was stopped before it started.
    fn device_step(&mut self, x: usize) {
        self.touch(x);
        let now = self.millis();
        let candidates: Vec<(RunId, usize)> = self.nodes[x]
            .store
            .runs
            .iter()
            .flat_map(|(id, run)| {
                run.records
                    .iter()
                    .filter(|(_, r)| device_can_move(run.stopped, r.state))
                    .map(|(d, _)| (*id, *d))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (run_id, d) = candidates[self.rng.random_range(0..candidates.len())];
        let run = &self.nodes[x].store.runs[&run_id];
        let state = run.records[&d].state;
        let progress = match state {
            DeviceState::Pending => DeviceProgress::Delivered,
            DeviceState::Scheduled if run.stopped => DeviceProgress::Ended {
                at: now,
                description: "cancelled by an administrator".into(),
            },
            DeviceState::Scheduled => {
                self.tally.executions += 1;
                let n = self.executions.entry((x, d, run_id)).or_default();
                *n += 1;
                if *n > 1 {
                    self.violation(format!("device s{x}-d{d} executes run {run_id} again"));
                }
                DeviceProgress::Started { at: now }
            }
            _ => {
                let state = [
                    DeviceState::Succeeded,
                    DeviceState::Warning,
                    DeviceState::Failed,
                ][self.rng.random_range(0..3)];
                DeviceProgress::Finished {
                    started: now,
                    finished: now,
                    outcome: Outcome {
                        state,
                        description: String::new(),
                        progress: 100,
                        need_restart: self.rng.random_bool(0.2),
                        details: Details::None,
                    },
                }
            }
        };
        if !self.nodes[x].store.progress(run_id, d, &progress) {
            self.violation(format!("s{x}-d{d}: {progress:?} changed nothing"));
        }
    }

    /// The primary's administrator does something: one transaction at the primary.
    fn primary_op(&mut self) {
        self.tally.changes += 1;
        let now = self.millis();
        self.nodes[0].store.events.record_own("s0", now);
        let store = &self.nodes[0].store;
        let live: Vec<u64> = store.tasks.keys().copied().collect();
        let stoppable: Vec<RunId> = store
            .runs
            .iter()
            .filter(|(_, r)| !r.stopped)
            .map(|(id, _)| *id)
            .collect();
        let roll = self.rng.random_range(0..100);
        if live.is_empty() || roll < 25 {
            let group = self.rng.random_range(1..=GROUPS);
            let subgroups = self.rng.random_bool(0.5);
            let secondaries = self.rng.random_bool(0.85);
            self.nodes[0]
                .store
                .create_task(group, subgroups, secondaries, now);
        } else if roll < 45 {
            let task = live[self.rng.random_range(0..live.len())];
            let rename = self.rng.random_bool(0.3);
            let days = self.rng.random_range(1..=90);
            self.nodes[0].store.edit_task(task, rename, days, now);
        } else if roll < 80 || (roll < 95 && stoppable.is_empty()) {
            let task = live[self.rng.random_range(0..live.len())];
            self.start_at_primary(task);
        } else if roll < 95 {
            let run = stoppable[self.rng.random_range(0..stoppable.len())];
            self.nodes[0].store.stop_run(run, now);
        } else if roll < 98 {
            let task = live[self.rng.random_range(0..live.len())];
            self.nodes[0].store.delete(task);
        } else {
            // A server (any one that is up) revokes a certificate: it goes down its subtree.
            let x = self.rng.random_range(0..self.topo.len());
            let x = if self.up(x) { x } else { 0 };
            let revocation = crate::model::Revocation {
                fingerprint: crate::model::Fingerprint(self.rng.random()),
                name: format!("removed-by-s{x}"),
                by: format!("s{x}"),
                revoked_at: now,
                reason: "simulated".into(),
            };
            self.nodes[x].store.revoke(revocation);
            self.touch(x);
            return;
        }
        self.touch(0);
    }

    fn start_at_primary(&mut self, task_id: u64) -> Option<RunId> {
        let task = self.nodes[0].store.tasks.get(&task_id)?;
        let crate::model::scope::Scope::Group {
            group_id,
            include_subgroups,
            ..
        } = task.scope
        else {
            return None;
        };
        let devices = self.topo.primary_devices(group_id, include_subgroups);
        let run = self.nodes[0].store.start_run(task_id, devices)?;
        self.origin.insert((0, run), run);
        self.tally.runs += 1;
        Some(run)
    }

    /// After the faults: one last run of a task for the whole tree.
    fn final_op(&mut self) {
        let now = self.millis();
        self.nodes[0]
            .store
            .create_task(MANAGED_DEVICES, true, true, now);
        let task = self.nodes[0].store.tasks.keys().last().copied();
        self.final_run = task.and_then(|t| self.start_at_primary(t));
        if self.final_run.is_none() {
            self.violation("the final run could not start".into());
        }
        self.touch(0);
    }
}

fn device_can_move(stopped: bool, state: DeviceState) -> bool {
    match state {
        DeviceState::Pending => !stopped,
        DeviceState::Scheduled | DeviceState::Running => true,
        _ => false,
    }
}

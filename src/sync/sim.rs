//! A deterministic simulation of a tree of servers driven by `replicate` and `stats`, with a
//! virtual clock and a seeded random generator. The network drops, duplicates, reorders and
//! delays messages; servers crash and restart from their durable state; stores fail. After
//! every step the invariants of the touched servers are checked, and after the faults stop
//! and the tree falls quiet, the end state is checked against what must have happened.
//!
//! What a server stores ("durable") is exactly what the runtime would keep in redb; what a
//! crash loses ("volatile") is what the runtime keeps in memory. Each durable change happens
//! in one step, as one redb transaction would.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::replicate::{Applier, ApplierPolicy, Change, Decision, Feed, FeedPolicy, ToParent};
use super::stats::{Reporter, ReporterPolicy, StatsRow, StatsTable, add_counters};
use crate::model::task::{
    Details, DeviceProgress, DeviceRunRecord, DeviceState, Outcome, RunCounters,
};

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

fn applier_policy() -> ApplierPolicy {
    ApplierPolicy {
        resume_interval: ms(100),
    }
}

fn reporter_policy() -> ReporterPolicy {
    ReporterPolicy {
        min_interval: ms(200),
        resend_after: ms(600),
    }
}

/// The task definition the simulated servers replicate.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SimTask {
    /// Bit i set: server i's devices are targeted (a group and its subgroups).
    targets: u64,
    /// Stands for the task's settings; edits change it.
    body: u32,
}

type SimChange = Change<SimTask>;

#[derive(Clone, Debug, PartialEq, Eq)]
struct TaskCopy {
    revision: u32,
    task: SimTask,
    /// Kept as a tombstone: the targets of a deleted task still route its later changes.
    deleted: bool,
}

#[derive(Clone, Debug)]
struct RunData {
    task_id: u64,
    targets: u64,
    stopped: bool,
    /// By device index on this server.
    records: BTreeMap<usize, DeviceRunRecord>,
    counters: RunCounters,
    /// Bumped with every change of `counters`, in the same step.
    version: u64,
    table: StatsTable,
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
struct Durable {
    log: Vec<SimChange>,
    /// The last change of the parent's log applied.
    cursor: u64,
    /// The harness's own record of every applied sequence number, in order.
    applied: Vec<u64>,
    tasks: BTreeMap<u64, TaskCopy>,
    runs: BTreeMap<u64, RunData>,
}

/// What a crash loses.
struct Volatile {
    applier: Applier,
    feeds: BTreeMap<usize, Feed>,
    /// Changes decided `Apply`, queued for the store's writer.
    pending: VecDeque<(u64, SimChange)>,
    reporters: BTreeMap<u64, Reporter>,
}

struct Node {
    durable: Durable,
    /// `None` while crashed.
    vol: Option<Volatile>,
    restart_at: Option<Instant>,
    /// The earliest timeout of its state machines.
    wake: Option<Instant>,
    /// Some device has something to do (cached; recomputed when the node changes).
    device_work: bool,
}

/// The shape of the tree, fixed for a seed.
struct Topology {
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    /// Bit set of each server's subtree, itself included.
    subtree: Vec<u64>,
    /// Names from below the primary down to the server (empty for the primary).
    path: Vec<Vec<String>>,
    devices: Vec<usize>,
}

impl Topology {
    fn random(rng: &mut StdRng) -> Self {
        let n = rng.random_range(20..=30);
        let mut parent = vec![None];
        for i in 1..n {
            // A chain of four first, so the tree is at least three levels deep.
            let p = if i <= 3 {
                i - 1
            } else {
                rng.random_range(0..i)
            };
            parent.push(Some(p));
        }
        let mut children = vec![Vec::new(); n];
        let mut path: Vec<Vec<String>> = vec![Vec::new(); n];
        for i in 1..n {
            if let Some(p) = parent[i] {
                children[p].push(i);
                let mut own = path[p].clone();
                own.push(format!("s{i}"));
                path[i] = own;
            }
        }
        let mut subtree = vec![0u64; n];
        // Parents have lower indices, so one pass from the leaves up suffices.
        for i in (0..n).rev() {
            subtree[i] |= 1 << i;
            if let Some(p) = parent[i] {
                subtree[p] |= subtree[i];
            }
        }
        let devices = (0..n).map(|_| rng.random_range(1..=4)).collect();
        Topology {
            parent,
            children,
            subtree,
            path,
            devices,
        }
    }

    fn len(&self) -> usize {
        self.parent.len()
    }

    fn depth(&self, x: usize) -> usize {
        self.path[x].len()
    }

    fn in_subtree(&self, root: usize, y: usize) -> bool {
        self.subtree[root] & (1 << y) != 0
    }

    /// `y`'s path as seen from `x` (an ancestor of `y`).
    fn relative(&self, x: usize, y: usize) -> Vec<String> {
        self.path[y][self.depth(x)..].to_vec()
    }
}

#[derive(Clone, Debug)]
enum Msg {
    Change(u64, SimChange),
    ToParent(ToParent),
    Report {
        run_id: u64,
        report_id: u64,
        rows: Vec<StatsRow>,
    },
    ReportAck {
        run_id: u64,
        report_id: u64,
    },
}

#[derive(Debug)]
struct Packet {
    at: Instant,
    /// The link is named by its child.
    link: usize,
    /// The connection it was sent on; a packet of an older connection is lost.
    epoch: u64,
    to_parent: bool,
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
struct Tally {
    steps: u64,
    changes: u64,
    runs: u64,
    sent: u64,
    dropped: u64,
    duplicated: u64,
    stale: u64,
    crashes: u64,
    link_drops: u64,
    store_failures: u64,
    gaps: u64,
    duplicates: u64,
    resumes: u64,
    reports: u64,
    executions: u64,
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
        self.reports += o.reports;
        self.executions += o.executions;
    }
}

/// A deliberate bug, to show the checks catch one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sabotage {
    None,
    /// The child applies a change the applier called a duplicate.
    ApplyDuplicates,
    /// The parent takes every row it receives, whatever its version.
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
    /// The real world: how often each (server, device, run) started executing.
    executions: BTreeMap<(usize, usize, u64), u32>,
    violations: Vec<String>,
    touched: Vec<bool>,
    /// The primary's id allocators (durable on a real primary).
    next_task: u64,
    next_run: u64,
    final_run: Option<u64>,
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
            .map(|_| Node {
                durable: Durable::default(),
                vol: Some(Volatile {
                    applier: Applier::with_policy(applier_policy(), 0),
                    feeds: BTreeMap::new(),
                    pending: VecDeque::new(),
                    reporters: BTreeMap::new(),
                }),
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
            executions: BTreeMap::new(),
            violations: Vec::new(),
            touched: vec![false; n],
            next_task: 1,
            next_run: 1,
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

    /// Whether a change of `x`'s log concerns its child `c`: the filter a runtime would
    /// apply, from the task's targets (kept after deletion).
    fn concerns(&self, x: usize, c: usize, change: &SimChange) -> bool {
        change
            .task_id()
            .and_then(|t| self.nodes[x].durable.tasks.get(&t))
            .is_some_and(|t| t.task.targets & self.topo.subtree[c] != 0)
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
        let due: Vec<usize> = (0..self.net.len())
            .filter(|i| self.net[*i].at <= now)
            .collect();
        let n = self.topo.len();
        let stores: Vec<usize> = (0..n)
            .filter(|x| {
                self.nodes[*x]
                    .vol
                    .as_ref()
                    .is_some_and(|v| !v.pending.is_empty())
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
        let weights = [
            (due.len(), 6),
            (stores.len(), 3),
            (devices.len(), 3),
            (restarts.len(), 2),
            (connects.len(), 2),
        ];
        let total: u32 = weights
            .iter()
            .filter(|(len, _)| *len > 0)
            .map(|(_, w)| w)
            .sum();
        if total == 0 {
            return false;
        }
        let mut pick = self.rng.random_range(0..total);
        let mut kind = 0;
        for (i, (len, w)) in weights.iter().enumerate() {
            if *len == 0 {
                continue;
            }
            if pick < *w {
                kind = i;
                break;
            }
            pick -= w;
        }
        let list = [&due, &stores, &devices, &restarts, &connects][kind];
        let one = list[self.rng.random_range(0..list.len())];
        match kind {
            0 => self.deliver(one),
            1 => self.store(one),
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

    fn send(&mut self, link: usize, to_parent: bool, msg: Msg) {
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
                to_parent,
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
        if packet.to_parent {
            self.at_parent(p, c, packet.msg);
        } else {
            self.at_child(c, packet.msg);
        }
    }

    fn at_child(&mut self, c: usize, msg: Msg) {
        self.touch(c);
        let sabotage = self.sabotage;
        let Some(vol) = self.nodes[c].vol.as_mut() else {
            return;
        };
        match msg {
            Msg::Change(seq, change) => match vol.applier.handle_change(seq) {
                Decision::Apply => vol.pending.push_back((seq, change)),
                Decision::Duplicate => {
                    self.tally.duplicates += 1;
                    if sabotage == Sabotage::ApplyDuplicates {
                        vol.pending.push_back((seq, change));
                    }
                }
                Decision::Gap => self.tally.gaps += 1,
            },
            Msg::ReportAck { run_id, report_id } => {
                if let Some(r) = vol.reporters.get_mut(&run_id) {
                    r.handle_ack(report_id);
                }
            }
            other => self.violation(format!("s{c} got {other:?} from its parent")),
        }
    }

    fn at_parent(&mut self, p: usize, c: usize, msg: Msg) {
        self.touch(p);
        let now = self.now;
        match msg {
            Msg::ToParent(signal) => {
                let Some(feed) = self.nodes[p].vol.as_mut().and_then(|v| v.feeds.get_mut(&c))
                else {
                    return;
                };
                match signal {
                    ToParent::Ack(seq) => {
                        feed.handle_ack(seq, now);
                    }
                    ToParent::Resume(after) => {
                        self.tally.resumes += 1;
                        feed.handle_resume(after, now);
                    }
                }
            }
            Msg::Report {
                run_id,
                report_id,
                rows,
            } => {
                let Some(run) = self.nodes[p].durable.runs.get_mut(&run_id) else {
                    self.violation(format!(
                        "s{p} got a report of run {run_id} it does not know"
                    ));
                    return;
                };
                // Stored durably, then acknowledged.
                let changed = if self.sabotage == Sabotage::LastReportWins {
                    let mut kept: Vec<StatsRow> = run
                        .table
                        .rows()
                        .filter(|held| rows.iter().all(|r| r.path != held.path))
                        .cloned()
                        .collect();
                    kept.extend(rows);
                    run.table = StatsTable::from_rows(kept);
                    true
                } else {
                    run.table.merge_all(rows)
                };
                if changed {
                    self.notify(p, run_id);
                }
                self.send(c, false, Msg::ReportAck { run_id, report_id });
            }
            other => self.violation(format!("s{p} got {other:?} from its child s{c}")),
        }
    }

    // ---- Links and crashes ----

    fn schedule_connects(&mut self) {
        for c in 1..self.topo.len() {
            let Some(p) = self.topo.parent[c] else {
                continue;
            };
            let link = self.links[c];
            if !link.up && link.connect_at.is_none() && self.up(c) && self.up(p) {
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
                vol.feeds.remove(&c);
            }
            self.touch(p);
        }
        self.touch(c);
    }

    /// The child's hello: the parent builds a feed from the child's durable cursor.
    fn connect(&mut self, c: usize) {
        let Some(p) = self.topo.parent[c] else {
            return;
        };
        let now = self.now;
        let link = &mut self.links[c];
        link.up = true;
        link.epoch += 1;
        link.connect_at = None;
        let hello = self.nodes[c].durable.cursor;
        if let Some(vol) = self.nodes[p].vol.as_mut() {
            vol.feeds
                .insert(c, Feed::with_policy(feed_policy(), hello, now));
        }
        if let Some(vol) = self.nodes[c].vol.as_mut() {
            vol.applier.handle_connected();
            for r in vol.reporters.values_mut() {
                r.handle_connected(now);
            }
        }
        self.touch(p);
        self.touch(c);
    }

    fn crash(&mut self, x: usize) {
        self.tally.crashes += 1;
        let node = &mut self.nodes[x];
        node.vol = None;
        node.wake = None;
        node.restart_at = Some(self.now + ms(self.rng.random_range(20..=300)));
        if self.topo.parent[x].is_some() {
            self.link_down(x);
        }
        for c in self.topo.children[x].clone() {
            self.link_down(c);
        }
        self.touch(x);
    }

    /// A restart: everything volatile is rebuilt from what is stored.
    fn restart(&mut self, x: usize) {
        let node = &mut self.nodes[x];
        node.restart_at = None;
        let reporters = node
            .durable
            .runs
            .keys()
            .map(|run| (*run, Reporter::new(reporter_policy())))
            .collect();
        node.vol = Some(Volatile {
            applier: Applier::with_policy(applier_policy(), node.durable.cursor),
            feeds: BTreeMap::new(),
            pending: VecDeque::new(),
            reporters,
        });
        self.touch(x);
    }

    // ---- Sending ----

    /// Polls every state machine of `x` and sends what they say.
    fn pump(&mut self, x: usize) {
        let now = self.now;
        let mut out = Vec::new();
        let mut wake: Option<Instant> = None;
        let mut earliest = |at: Option<Instant>| {
            wake = match (wake, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let name = format!("s{x}");
        let uplink = self.topo.parent[x].is_some() && self.links[x].up;
        let node = &mut self.nodes[x];
        let Some(vol) = node.vol.as_mut() else {
            node.wake = None;
            return;
        };
        if uplink {
            while let Some(signal) = vol.applier.poll_transmit(now) {
                out.push((x, true, Msg::ToParent(signal)));
            }
            earliest(vol.applier.poll_timeout());
            for (run_id, reporter) in vol.reporters.iter_mut() {
                if let Some(report_id) = reporter.poll_transmit(now)
                    && let Some(run) = node.durable.runs.get(run_id)
                {
                    let own = StatsRow::own(run.task_id, *run_id, run.counters, run.version);
                    out.push((
                        x,
                        true,
                        Msg::Report {
                            run_id: *run_id,
                            report_id,
                            rows: run.table.report(&name, &own),
                        },
                    ));
                }
                earliest(reporter.poll_timeout());
            }
        }
        let log = &node.durable.log;
        let mut changes = Vec::new();
        for (c, feed) in vol.feeds.iter_mut() {
            if let Some(range) = feed.poll_transmit(log.len() as u64, now) {
                for seq in range {
                    changes.push((*c, seq));
                }
            }
            earliest(feed.poll_timeout());
        }
        node.wake = wake;
        for (c, seq) in changes {
            let Some(change) = self.nodes[x].durable.log.get(seq as usize - 1) else {
                continue;
            };
            let concerns = self.concerns(x, c, change);
            let change = change.for_child(concerns);
            out.push((c, false, Msg::Change(seq, change)));
        }
        for (link, to_parent, msg) in out {
            if matches!(msg, Msg::Report { .. }) {
                self.tally.reports += 1;
            }
            self.send(link, to_parent, msg);
        }
    }

    // ---- Durable steps ----

    /// The store's writer commits the oldest queued change: its effect, the re-propagated
    /// change in the server's own log and the cursor, in one transaction.
    fn store(&mut self, c: usize) {
        self.touch(c);
        let fails = self.faults && self.rng.random_bool(P_STORE_FAILS);
        let Some(vol) = self.nodes[c].vol.as_mut() else {
            return;
        };
        if fails {
            // Later queued changes cannot be stored without this one.
            self.tally.store_failures += 1;
            vol.pending.clear();
            vol.applier.handle_apply_failed();
            return;
        }
        let Some((seq, change)) = vol.pending.pop_front() else {
            return;
        };
        let durable = &self.nodes[c].durable;
        if seq != durable.cursor + 1 {
            self.violation(format!(
                "s{c} stores change {seq} after {}: out of order",
                durable.cursor
            ));
        }
        self.apply(c, &change);
        let durable = &mut self.nodes[c].durable;
        if !change.is_noop() {
            durable.log.push(change);
        }
        durable.cursor = seq;
        durable.applied.push(seq);
        let result = self.nodes[c].vol.as_mut().map(|v| v.applier.applied(seq));
        if let Some(Err(e)) = result {
            self.violation(format!("s{c}: {e}"));
        }
    }

    /// The effect of a change on a server's tasks and runs.
    fn apply(&mut self, x: usize, change: &SimChange) {
        self.touch(x);
        let now = self.millis();
        let devices = self.topo.devices[x];
        let durable = &mut self.nodes[x].durable;
        match change {
            Change::Noop => {}
            Change::TaskUpsert {
                task_id,
                revision,
                task,
            } => {
                if let Some(held) = durable.tasks.get(task_id)
                    && held.revision >= *revision
                {
                    let held = held.revision;
                    self.violations.push(format!(
                        "s{x} got task {task_id} at revision {revision} holding {held}"
                    ));
                    return;
                }
                durable.tasks.insert(
                    *task_id,
                    TaskCopy {
                        revision: *revision,
                        task: task.clone(),
                        deleted: false,
                    },
                );
            }
            Change::TaskDelete { task_id } => {
                let Some(task) = durable.tasks.get_mut(task_id) else {
                    self.violations
                        .push(format!("s{x} deletes unknown task {task_id}"));
                    return;
                };
                task.deleted = true;
                let runs: Vec<u64> = durable
                    .runs
                    .iter()
                    .filter(|(_, r)| r.task_id == *task_id && !r.stopped)
                    .map(|(id, _)| *id)
                    .collect();
                for run in runs {
                    self.stop_run(x, run, now);
                }
            }
            Change::RunStart {
                task_id,
                run_id,
                revision,
            } => {
                let Some(task) = durable.tasks.get(task_id) else {
                    self.violations
                        .push(format!("s{x} starts run {run_id} of unknown task"));
                    return;
                };
                if task.revision != *revision || task.deleted {
                    self.violations.push(format!(
                        "s{x} starts run {run_id} at revision {revision}, holding {}",
                        task.revision
                    ));
                }
                if durable.runs.contains_key(run_id) {
                    self.violations
                        .push(format!("s{x} starts run {run_id} twice"));
                    return;
                }
                let targets = task.task.targets;
                let records: BTreeMap<usize, DeviceRunRecord> = if targets & (1 << x) != 0 {
                    (0..devices)
                        .map(|d| {
                            let id = format!("s{x}-d{d}");
                            (d, DeviceRunRecord::pending(id.clone(), id))
                        })
                        .collect()
                } else {
                    BTreeMap::new()
                };
                durable.runs.insert(
                    *run_id,
                    RunData {
                        task_id: *task_id,
                        targets,
                        stopped: false,
                        counters: RunCounters::of(records.values()),
                        records,
                        version: 0,
                        table: StatsTable::new(),
                    },
                );
                self.notify(x, *run_id);
            }
            Change::RunStop { run_id, .. } => match durable.runs.get(run_id) {
                Some(run) if !run.stopped => self.stop_run(x, *run_id, now),
                _ => self
                    .violations
                    .push(format!("s{x} stops run {run_id}: unknown or stopped")),
            },
        }
    }

    /// Devices that have not started the run never will.
    fn stop_run(&mut self, x: usize, run_id: u64, now: i64) {
        let Some(run) = self.nodes[x].durable.runs.get_mut(&run_id) else {
            return;
        };
        run.stopped = true;
        let end = DeviceProgress::Ended {
            at: now,
            description: "stopped".into(),
        };
        for record in run.records.values_mut() {
            if matches!(record.state, DeviceState::Pending | DeviceState::Scheduled) {
                let old = record.clone();
                if record.advance(&end) {
                    run.counters.replace(&old, record);
                    run.version += 1;
                }
            }
        }
        self.notify(x, run_id);
    }

    /// The run's statistics changed at `x`: its reporter should tell the parent.
    fn notify(&mut self, x: usize, run_id: u64) {
        if self.topo.parent[x].is_none() {
            return;
        }
        let complete = self.complete(x, run_id);
        let now = self.now;
        if let Some(vol) = self.nodes[x].vol.as_mut() {
            vol.reporters
                .entry(run_id)
                .or_insert_with(|| Reporter::new(reporter_policy()))
                .handle_change(now, complete);
        }
    }

    fn expected_rows(&self, x: usize, targets: u64) -> Vec<(Vec<String>, u64)> {
        (0..self.topo.len())
            .filter(|y| *y != x && self.topo.in_subtree(x, *y) && targets & (1 << y) != 0)
            .map(|y| (self.topo.relative(x, y), self.topo.devices[y] as u64))
            .collect()
    }

    /// Every device of the subtree is done with the run, as far as `x` knows.
    fn complete(&self, x: usize, run_id: u64) -> bool {
        let Some(run) = self.nodes[x].durable.runs.get(&run_id) else {
            return false;
        };
        let totals = run.table.totals(&run.counters);
        let missing = run
            .table
            .pending_for_missing(&self.expected_rows(x, run.targets));
        missing.total() == 0 && totals.finished() == totals.total()
    }

    /// One device moves one step in one run: delivered, started (executing), finished.
    /// The record, the counters and the version change together.
    fn device_step(&mut self, x: usize) {
        self.touch(x);
        let now = self.millis();
        let runs = &self.nodes[x].durable.runs;
        let candidates: Vec<(u64, usize)> = runs
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
        let state = self.nodes[x].durable.runs[&run_id].records[&d].state;
        let progress = match state {
            DeviceState::Pending => DeviceProgress::Delivered,
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
        let Some(run) = self.nodes[x].durable.runs.get_mut(&run_id) else {
            return;
        };
        let Some(record) = run.records.get_mut(&d) else {
            return;
        };
        let old = record.clone();
        if record.advance(&progress) {
            run.counters.replace(&old, record);
            run.version += 1;
            self.notify(x, run_id);
        } else {
            self.violation(format!("s{x}-d{d}: {progress:?} changed nothing"));
        }
    }

    /// The primary's administrator does something: one change, applied to the primary
    /// and appended to its log in one transaction.
    fn primary_op(&mut self) {
        let durable = &self.nodes[0].durable;
        let live: Vec<(u64, TaskCopy)> = durable
            .tasks
            .iter()
            .filter(|(_, t)| !t.deleted)
            .map(|(id, t)| (*id, t.clone()))
            .collect();
        let stoppable: Vec<(u64, u64)> = durable
            .runs
            .iter()
            .filter(|(_, r)| !r.stopped)
            .map(|(id, r)| (*id, r.task_id))
            .collect();
        let roll = self.rng.random_range(0..100);
        let change = if live.is_empty() || roll < 25 {
            let root = self.rng.random_range(0..self.topo.len());
            self.new_task(self.topo.subtree[root])
        } else if roll < 80 || (roll < 95 && stoppable.is_empty()) {
            let (task_id, task) = live[self.rng.random_range(0..live.len())].clone();
            if roll < 45 {
                Change::TaskUpsert {
                    task_id,
                    revision: task.revision + 1,
                    task: SimTask {
                        body: self.rng.random(),
                        ..task.task
                    },
                }
            } else {
                self.new_run(task_id, task.revision)
            }
        } else if roll < 95 {
            let (run_id, task_id) = stoppable[self.rng.random_range(0..stoppable.len())];
            Change::RunStop { task_id, run_id }
        } else {
            let (task_id, _) = live[self.rng.random_range(0..live.len())];
            Change::TaskDelete { task_id }
        };
        self.originate(change);
    }

    /// After the faults: one last run of a task for the whole tree.
    fn final_op(&mut self) {
        let task = self.new_task(self.topo.subtree[0]);
        let Change::TaskUpsert { task_id, .. } = task else {
            return;
        };
        self.originate(task);
        let run = self.new_run(task_id, 1);
        if let Change::RunStart { run_id, .. } = run {
            self.final_run = Some(run_id);
        }
        self.originate(run);
    }

    fn new_task(&mut self, targets: u64) -> SimChange {
        let task_id = self.next_task;
        self.next_task += 1;
        Change::TaskUpsert {
            task_id,
            revision: 1,
            task: SimTask {
                targets,
                body: self.rng.random(),
            },
        }
    }

    fn new_run(&mut self, task_id: u64, revision: u32) -> SimChange {
        let run_id = self.next_run;
        self.next_run += 1;
        self.tally.runs += 1;
        Change::RunStart {
            task_id,
            run_id,
            revision,
        }
    }

    fn originate(&mut self, change: SimChange) {
        self.tally.changes += 1;
        self.apply(0, &change);
        self.nodes[0].durable.log.push(change);
    }

    // ---- Checks ----

    /// The invariants of every server whose state changed in this step.
    fn check_step(&mut self) -> Result<(), String> {
        if let Some(v) = self.violations.first() {
            return Err(v.clone());
        }
        for x in 0..self.topo.len() {
            if self.touched[x] {
                self.check_node(x)?;
                let work = self.nodes[x].durable.runs.values().any(|run| {
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
        let durable = &self.nodes[x].durable;
        for (run_id, run) in &durable.runs {
            if run.counters != RunCounters::of(run.records.values()) {
                return Err(format!(
                    "s{x} run {run_id}: counters differ from the records"
                ));
            }
            // Every targeted device is counted once: by a row, or as pending if its server
            // has not reported yet.
            let totals = run.table.totals(&run.counters);
            let missing = run
                .table
                .pending_for_missing(&self.expected_rows(x, run.targets));
            let targeted: usize = (0..self.topo.len())
                .filter(|y| self.topo.in_subtree(x, *y) && run.targets & (1 << y) != 0)
                .map(|y| self.topo.devices[y])
                .sum();
            if totals.total() + missing.total() != targeted as u64 {
                return Err(format!(
                    "s{x} run {run_id}: {} devices counted and {} missing, {targeted} targeted",
                    totals.total(),
                    missing.total()
                ));
            }
        }
        let cursor = durable.cursor;
        if durable.applied.len() as u64 != cursor
            || durable.applied.last().copied().unwrap_or(0) != cursor
        {
            return Err(format!(
                "s{x}: cursor {cursor} but applied {:?}",
                durable.applied
            ));
        }
        if let Some(p) = self.topo.parent[x] {
            // The server's own log is exactly its parent's changes that concern it, in order.
            let parent_log = &self.nodes[p].durable.log;
            let Some(prefix) = parent_log.get(..cursor as usize) else {
                return Err(format!("s{x}: cursor {cursor} beyond its parent's log"));
            };
            let expected: Vec<&SimChange> =
                prefix.iter().filter(|c| self.concerns(p, x, c)).collect();
            if !durable.log.iter().eq(expected.iter().copied()) {
                return Err(format!(
                    "s{x}: its log is not its parent's changes up to {cursor}"
                ));
            }
        }
        Ok(())
    }

    /// The end state once the tree is quiet.
    fn check_final(&self) -> Result<(), String> {
        let n = self.topo.len();
        if !self.net.is_empty() {
            return Err(format!("{} packets still in flight", self.net.len()));
        }
        for x in 0..n {
            let node = &self.nodes[x];
            let Some(vol) = node.vol.as_ref() else {
                return Err(format!("s{x} is still down"));
            };
            self.check_node(x)?;
            if !vol.pending.is_empty() {
                return Err(format!("s{x} has changes waiting to be stored"));
            }
            if node.device_work {
                return Err(format!("s{x} has devices with work left"));
            }
            if let Some(p) = self.topo.parent[x] {
                if !self.links[x].up {
                    return Err(format!("the link of s{x} is down"));
                }
                let last = self.nodes[p].durable.log.len() as u64;
                if node.durable.cursor != last {
                    return Err(format!(
                        "s{x} applied {} of its parent's {last} changes",
                        node.durable.cursor
                    ));
                }
                if let Some(r) = vol.reporters.iter().find(|(_, r)| !r.is_idle()) {
                    return Err(format!("s{x}: the report of run {} is not settled", r.0));
                }
            }
            for (c, feed) in &vol.feeds {
                if !feed.is_caught_up(node.durable.log.len() as u64) {
                    return Err(format!("s{x}: the feed of s{c} is behind"));
                }
            }
            // The server holds exactly the primary's tasks and runs that concern it.
            let primary = &self.nodes[0].durable;
            let concerned = |targets: u64| targets & self.topo.subtree[x] != 0;
            let tasks: BTreeMap<&u64, &TaskCopy> = primary
                .tasks
                .iter()
                .filter(|(_, t)| concerned(t.task.targets))
                .collect();
            if node.durable.tasks.iter().collect::<BTreeMap<_, _>>() != tasks {
                return Err(format!("s{x}: its tasks differ from the primary's"));
            }
            let runs: Vec<(u64, bool)> = primary
                .runs
                .iter()
                .filter(|(_, r)| concerned(r.targets))
                .map(|(id, r)| (*id, r.stopped))
                .collect();
            let held: Vec<(u64, bool)> = node
                .durable
                .runs
                .iter()
                .map(|(id, r)| (*id, r.stopped))
                .collect();
            if held != runs {
                return Err(format!("s{x}: its runs differ from the primary's"));
            }
        }
        for (run_id, run) in &self.nodes[0].durable.runs {
            let mut all = RunCounters::default();
            for y in 0..n {
                let Some(at_y) = self.nodes[y].durable.runs.get(run_id) else {
                    continue;
                };
                add_counters(&mut all, &RunCounters::of(at_y.records.values()));
                if run.targets & (1 << y) == 0 {
                    continue;
                }
                for d in 0..self.topo.devices[y] {
                    let executed = self.executions.get(&(y, d, *run_id)).copied().unwrap_or(0);
                    let state = at_y.records.get(&d).map(|r| r.state);
                    let ok = state.is_some_and(DeviceState::is_finished)
                        && (executed == 1 || (run.stopped && executed == 0));
                    if !ok {
                        return Err(format!(
                            "s{y}-d{d} run {run_id} (stopped: {}): {state:?}, executed {executed}",
                            run.stopped
                        ));
                    }
                }
            }
            if run.table.totals(&run.counters) != all {
                return Err(format!(
                    "run {run_id}: the primary's totals differ from every record in the tree"
                ));
            }
        }
        let Some(last) = self.final_run else {
            return Err("the final run was never started".into());
        };
        for y in 0..n {
            for d in 0..self.topo.devices[y] {
                if self.executions.get(&(y, d, last)) != Some(&1) {
                    return Err(format!("s{y}-d{d} did not execute the last run once"));
                }
            }
        }
        // Every server's totals are its subtree's records, and each row is that server's
        // newest state.
        for x in 0..n {
            for (run_id, run) in &self.nodes[x].durable.runs {
                let mut subtree = RunCounters::default();
                for y in (0..n).filter(|y| self.topo.in_subtree(x, *y)) {
                    let Some(at_y) = self.nodes[y].durable.runs.get(run_id) else {
                        continue;
                    };
                    add_counters(&mut subtree, &at_y.counters);
                    if y == x {
                        continue;
                    }
                    let row = run.table.get(&self.topo.relative(x, y));
                    if row.map(|r| (r.counters, r.version)) != Some((at_y.counters, at_y.version)) {
                        return Err(format!("s{x} run {run_id}: the row of s{y} is stale"));
                    }
                }
                if run.table.totals(&run.counters) != subtree {
                    return Err(format!("s{x} run {run_id}: totals differ from its subtree"));
                }
            }
        }
        Ok(())
    }
}

fn device_can_move(stopped: bool, state: DeviceState) -> bool {
    match state {
        DeviceState::Pending | DeviceState::Scheduled => !stopped,
        DeviceState::Running => true,
        _ => false,
    }
}

/// Runs one seed to the end; the error names the seed and the step.
fn run(seed: u64, sabotage: Sabotage) -> Result<Tally, String> {
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

#[test]
fn a_tree_of_servers_converges_whatever_the_faults() {
    let seeds: u64 = std::env::var("CANOPY_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut tally = Tally::default();
    for seed in 0..seeds {
        match run(seed, Sabotage::None) {
            Ok(t) => tally.add(&t),
            Err(e) => panic!("{e}"),
        }
    }
    if std::env::var_os("CANOPY_SIM_VERBOSE").is_some() {
        eprintln!("{seeds} seeds: {tally:?}");
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
    ] {
        assert!(count > 0 || seeds < 20, "no {what} in {seeds} seeds: {t:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let a = run(42, Sabotage::None).map(|t| format!("{t:?}"));
    let b = run(42, Sabotage::None).map(|t| format!("{t:?}"));
    assert_eq!(a, b);
}

#[test]
fn the_checks_catch_a_change_applied_twice() {
    let caught = (0..20).find_map(|seed| run(seed, Sabotage::ApplyDuplicates).err());
    let message = caught.expect("a re-applied change must be caught");
    assert!(message.starts_with("seed "), "{message}");
}

#[test]
fn the_checks_catch_statistics_merged_without_versions() {
    let caught = (0..20).find_map(|seed| run(seed, Sabotage::LastReportWins).err());
    let message = caught.expect("an older report replacing a newer one must be caught");
    assert!(
        message.contains("stale") || message.contains("totals"),
        "{message}"
    );
}

//! What must hold in the databases once every process is gone, read with the store's own
//! read-only calls: each child's cursor is at the end of its parent's change log (same
//! epoch); the changes a child re-logged for its parent's tasks are the parent's changes,
//! each once and in the parent's order; each copy is at its parent's revision, counted one
//! apply per revision; each parent run is carried out by exactly one run on each server
//! below; every run's records are one final record per device and its counters equal
//! them; and every statistics row held for a server below is that server's final count.

use std::collections::{BTreeMap, BTreeSet};

use canopy::model::link::{Change, LogEntry, StatsRow};
use canopy::model::task::{RunCounters, RunRecord, TaskRecord};
use canopy::store::Store;

use crate::tree::{NODES, Tree, subtree};

/// One node's database, read.
struct Held {
    log_epoch: u64,
    log: Vec<(u64, LogEntry<TaskRecord>)>,
    /// The parent's log epoch and the last sequence number applied.
    cursor: (u64, u64),
    tasks: BTreeMap<u64, TaskRecord>,
    /// Every run started here (its own and inherited), by id.
    runs: BTreeMap<u64, HeldRun>,
    /// The statistics rows held per run.
    rows: BTreeMap<u64, Vec<StatsRow>>,
}

/// A run and what its records say.
struct HeldRun {
    run: RunRecord,
    counted: RunCounters,
    records: usize,
    devices: usize,
    open: usize,
}

async fn read(path: std::path::PathBuf) -> anyhow::Result<Held> {
    let store = tokio::task::spawn_blocking(move || Store::open_server(&path)).await??;
    let state = store.log_state().await?;
    let log = store
        .log_entries(1..=state.last_seq.max(1), usize::MAX)
        .await?;
    let position = store.parent_position().await?;
    let tasks = store
        .tasks()
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let mut runs = BTreeMap::new();
    let mut rows = BTreeMap::new();
    for (_, entry) in &log {
        let Change::RunStart { run_id, .. } = entry.change else {
            continue;
        };
        let Some(run) = store.run(run_id).await? else {
            continue;
        };
        let records = store.run_records(run_id).await?;
        let ids: BTreeSet<&str> = records.iter().map(|r| r.device_id.as_str()).collect();
        let held = HeldRun {
            counted: RunCounters::of(&records),
            records: records.len(),
            devices: ids.len(),
            open: records.iter().filter(|r| !r.state.is_finished()).count(),
            run,
        };
        runs.insert(run_id, held);
        rows.insert(run_id, store.stats_rows(run_id).await?);
    }
    tokio::task::spawn_blocking(move || store.close()).await??;
    Ok(Held {
        log_epoch: state.epoch,
        log,
        cursor: (position.epoch, position.last_applied),
        tasks,
        runs,
        rows,
    })
}

/// A change as the parent logged it, in the parent's ids: what a child's re-logged change
/// must map back to.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Upsert(u64, u32),
    Delete(u64),
    Start(u64, u64),
    Stop(u64, u64),
    Pause(u64, u64, bool),
    /// A revoked certificate, relayed as it came.
    Revoke(String),
}

fn parents_view(entry: &LogEntry<TaskRecord>) -> Option<Seen> {
    Some(match &entry.change {
        Change::TaskUpsert {
            task_id, revision, ..
        } => Seen::Upsert(*task_id, *revision),
        Change::TaskDelete { task_id } => Seen::Delete(*task_id),
        Change::RunStart {
            task_id, run_id, ..
        }
        | Change::ChainStart {
            task_id, run_id, ..
        } => Seen::Start(*task_id, *run_id),
        Change::RunStop { task_id, run_id } => Seen::Stop(*task_id, *run_id),
        Change::RunPause {
            task_id,
            run_id,
            paused,
        } => Seen::Pause(*task_id, *run_id, *paused),
        Change::Revoke(revocation) => Seen::Revoke(revocation.fingerprint.to_string()),
        Change::Noop => return None,
    })
}

/// A child's entry about a copy of its parent's task, in the parent's ids; `None` for its
/// own tasks' entries and for the certificates it revoked itself (`name`: the child's).
fn as_parents(child: &Held, name: &str, entry: &LogEntry<TaskRecord>) -> Option<Seen> {
    let parent_task = |copy: u64| {
        child
            .tasks
            .get(&copy)
            .and_then(|t| t.inherited.as_ref())
            .map(|i| i.parent_task_id)
    };
    let parent_run = |run: u64| child.runs.get(&run).and_then(|h| h.run.parent_run);
    Some(match &entry.change {
        Change::TaskUpsert { task, .. } => {
            let from = task.inherited.as_ref()?;
            Seen::Upsert(from.parent_task_id, from.parent_revision)
        }
        Change::TaskDelete { task_id } => Seen::Delete(parent_task(*task_id)?),
        Change::RunStart {
            task_id, run_id, ..
        }
        | Change::ChainStart {
            task_id, run_id, ..
        } => Seen::Start(parent_task(*task_id)?, parent_run(*run_id)?),
        Change::RunStop { task_id, run_id } => {
            Seen::Stop(parent_task(*task_id)?, parent_run(*run_id)?)
        }
        Change::RunPause {
            task_id,
            run_id,
            paused,
        } => Seen::Pause(parent_task(*task_id)?, parent_run(*run_id)?, *paused),
        Change::Revoke(revocation) if revocation.by == name => return None,
        Change::Revoke(revocation) => Seen::Revoke(revocation.fingerprint.to_string()),
        Change::Noop => return None,
    })
}

/// Reads every node's database (every process must be stopped): what was checked, in words,
/// and what is wrong.
pub async fn check(tree: &Tree) -> (String, Vec<String>) {
    let mut held = Vec::new();
    for (n, node) in NODES.iter().enumerate() {
        match read(tree.data(n)).await {
            Ok(h) => held.push(h),
            Err(e) => {
                let failure = format!("{}: cannot read its database: {e:#}", node.name);
                return (String::new(), vec![failure]);
            }
        }
    }
    let mut failures = Vec::new();
    for (n, node) in NODES.iter().enumerate() {
        let here = &held[n];
        for (id, h) in &here.runs {
            let devices = tree.devices[n] as usize;
            if h.records != devices
                || h.devices != devices
                || h.open > 0
                || h.counted != h.run.counters
            {
                failures.push(format!(
                    "{}: run {id} has {} records of {} devices ({devices} expected), {} not \
                     final; counters {:?}, records {:?}",
                    node.name, h.records, h.devices, h.open, h.run.counters, h.counted
                ));
            }
        }
        let Some(p) = node.parent else {
            continue;
        };
        let (parent, pname) = (&held[p], NODES[p].name);
        let last = parent.log.last().map(|(s, _)| *s).unwrap_or(0);
        if here.cursor != (parent.log_epoch, last) {
            failures.push(format!(
                "{}: cursor {:?} in {pname}'s log, which is at {:?}",
                node.name,
                here.cursor,
                (parent.log_epoch, last)
            ));
        }
        let sent: Vec<Seen> = parent
            .log
            .iter()
            .filter_map(|(_, e)| parents_view(e))
            .collect();
        let applied: Vec<Seen> = here
            .log
            .iter()
            .filter_map(|(_, e)| as_parents(here, node.name, e))
            .collect();
        if sent != applied {
            let at = sent
                .iter()
                .zip(&applied)
                .take_while(|(a, b)| a == b)
                .count();
            failures.push(format!(
                "{}: applied {} changes of {pname}'s {} other than logged there: from change {at} \
                 {pname} logged {:?}, {} re-logged {:?}",
                node.name,
                applied.len(),
                sent.len(),
                &sent[at..sent.len().min(at + 3)],
                node.name,
                &applied[at..applied.len().min(at + 3)]
            ));
        }
        for task in parent.tasks.values() {
            let copies: Vec<&TaskRecord> = here
                .tasks
                .values()
                .filter(|t| {
                    t.inherited
                        .as_ref()
                        .is_some_and(|i| i.parent_task_id == task.id)
                })
                .collect();
            let at_revision = |c: &&TaskRecord| {
                c.revision == task.revision
                    && c.inherited
                        .as_ref()
                        .is_some_and(|i| i.parent_revision == task.revision)
            };
            if copies.len() != 1 || !copies.iter().all(at_revision) {
                failures.push(format!(
                    "{}: copies of {pname}'s task {:?} (revision {}): {:?}",
                    node.name,
                    task.name,
                    task.revision,
                    copies
                        .iter()
                        .map(|c| (c.id, c.revision, c.inherited.clone()))
                        .collect::<Vec<_>>()
                ));
            }
        }
        for id in parent.runs.keys() {
            let carried: Vec<u64> = here
                .runs
                .iter()
                .filter(|(_, h)| h.run.parent_run == Some(*id))
                .map(|(local, _)| *local)
                .collect();
            if carried.len() != 1 {
                failures.push(format!(
                    "{}: {pname}'s run {id} is carried out by runs {carried:?}",
                    node.name
                ));
            }
        }
    }
    let (checked, wrong) = rows(&held);
    failures.extend(wrong);
    let entries: usize = held.iter().map(|h| h.log.len()).sum();
    let runs: usize = held.iter().map(|h| h.runs.len()).sum();
    let what = format!("{entries} log entries, {runs} runs, {checked} statistics rows");
    (what, failures)
}

/// Every row a server holds for a run, of a server below, against that server's run.
fn rows(held: &[Held]) -> (usize, Vec<String>) {
    let (mut checked, mut failures) = (0, Vec::new());
    // The run of node `n` that carries out `run` of its parent.
    let below = |n: usize, run: u64| {
        held[n]
            .runs
            .iter()
            .find(|(_, h)| h.run.parent_run == Some(run))
            .map(|(id, h)| (*id, h.run.counters, h.run.version))
    };
    for (n, node) in NODES.iter().enumerate() {
        for id in held[n].runs.keys() {
            let rows = held[n].rows.get(id).cloned().unwrap_or_default();
            for &x in &subtree(n)[1..] {
                // The chain of servers from below `n` down to `x`, and the run on each.
                let (mut chain, mut at) = (vec![x], x);
                while let Some(p) = NODES[at].parent {
                    if p == n {
                        break;
                    }
                    chain.push(p);
                    at = p;
                }
                chain.reverse();
                let mut run = Some((*id, RunCounters::default(), 0));
                for &c in &chain {
                    run = run.and_then(|(r, ..)| below(c, r));
                }
                let path: Vec<String> = chain.iter().map(|&c| NODES[c].name.to_string()).collect();
                let row = rows.iter().find(|r| r.path == path);
                let ok = match (run, row) {
                    (Some((run_id, counters, version)), Some(row)) => {
                        row.run_id == run_id && row.counters == counters && row.version == version
                    }
                    _ => false,
                };
                checked += 1;
                if !ok {
                    failures.push(format!(
                        "{}: run {id}: row of {} is {row:?}, the run there is {run:?}",
                        node.name,
                        path.join("/")
                    ));
                }
            }
        }
    }
    (checked, failures)
}

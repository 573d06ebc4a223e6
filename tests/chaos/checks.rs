//! What must hold once the faults have stopped, as an administrator sees it through the
//! primary's admin API: every run ends; every server's copy of a task is at the revision of
//! the server above; at every level the per-server rows (`task stats --by-server`) equal
//! the per-device records each server holds (`task results --server`), each device counted
//! once, and the totals equal their sum.

use std::collections::BTreeSet;
use std::time::Duration;

use canopy::model::task::{DeviceRunRecord, RunCounters, RunState};
use canopy::wire::msg::{AdminRequest, AdminResponse, RunView, TaskRequest, TaskView};

use crate::plan::TASKS;
use crate::tree::{Admin, NODES, subtree};

async fn task_call(
    admin: &mut Admin,
    at: Option<&str>,
    r: TaskRequest,
) -> Result<AdminResponse, String> {
    admin.call(at, AdminRequest::Task(r)).await
}

async fn show(admin: &mut Admin, at: Option<&str>, task: &str) -> Result<Option<TaskView>, String> {
    match task_call(admin, at, TaskRequest::Show { task: task.into() }).await {
        Ok(AdminResponse::Task(view)) => Ok(Some(*view)),
        Ok(other) => Err(format!("unexpected {other:?}")),
        Err(e) if e.contains("no task") || e.contains("not found") => Ok(None),
        Err(e) => Err(e),
    }
}

async fn stats(
    admin: &mut Admin,
    at: Option<&str>,
    task: &str,
    run: Option<u64>,
) -> Result<RunView, String> {
    let request = TaskRequest::Stats {
        task: task.into(),
        run,
    };
    match task_call(admin, at, request).await? {
        AdminResponse::TaskStats(view) => Ok(view),
        other => Err(format!("unexpected {other:?}")),
    }
}

/// The devices of the subtree of node `origin`.
fn expected(devices: &[u32], origin: usize) -> u64 {
    subtree(origin).iter().map(|&n| u64::from(devices[n])).sum()
}

/// Why the tree has not settled yet, or `None` once every task's last run has ended
/// everywhere and every copy is at its origin's revision.
pub async fn unsettled(admin: &mut Admin, devices: &[u32]) -> Option<String> {
    for (name, owner) in TASKS {
        let at = NODES[owner].at;
        let task = match show(admin, at, name).await {
            Ok(Some(task)) => task,
            Ok(None) => continue,
            Err(e) => return Some(format!("{name} at {}: {e}", NODES[owner].name)),
        };
        if let Some(run) = &task.last_run {
            let run = match stats(admin, at, name, Some(run.run_id)).await {
                Ok(run) => run,
                Err(e) => return Some(format!("{name}: {e}")),
            };
            let want = expected(devices, owner);
            let reported = run.servers.iter().filter(|s| s.reported).count();
            if run.state != RunState::Completed
                || run.counters.total() != want
                || reported != subtree(owner).len()
            {
                return Some(format!(
                    "{name} run {}: {:?}, {} of {} devices finished ({want} expected), {reported} of {} servers reported",
                    run.run_id,
                    run.state,
                    run.counters.finished(),
                    run.counters.total(),
                    subtree(owner).len()
                ));
            }
        }
        for &n in &subtree(owner)[1..] {
            let parent = NODES[n].parent.unwrap_or(0);
            let above = if parent == owner {
                Some(task.clone())
            } else {
                show(admin, NODES[parent].at, name).await.ok().flatten()
            };
            let here = show(admin, NODES[n].at, name).await.ok().flatten();
            let (Some(above), Some(here)) = (above, here) else {
                return Some(format!("{name}: no copy on {} yet", NODES[n].name));
            };
            if here.revision != above.revision {
                return Some(format!(
                    "{name}: {} holds revision {}, {} has {}",
                    NODES[n].name, here.revision, NODES[parent].name, above.revision
                ));
            }
        }
    }
    None
}

/// Waits until [`unsettled`] says nothing; the time it took, or why not after `limit`.
pub async fn settle(
    admin: &mut Admin,
    devices: &[u32],
    limit: Duration,
) -> Result<Duration, String> {
    let start = tokio::time::Instant::now();
    loop {
        let Some(why) = unsettled(admin, devices).await else {
            return Ok(start.elapsed());
        };
        if start.elapsed() >= limit {
            return Err(format!(
                "stuck: not settled {limit:?} after the faults stopped: {why}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn sum(counters: impl IntoIterator<Item = RunCounters>) -> RunCounters {
    let mut total = RunCounters::default();
    for c in counters {
        for (t, n) in total.by_state.iter_mut().zip(c.by_state) {
            *t += n;
        }
        total.need_restart += c.need_restart;
    }
    total
}

fn node_named(name: &str) -> Option<usize> {
    NODES.iter().position(|n| n.name == name)
}

/// Checks run `run` of `task` as node `node` holds it, and then, through the ids each server
/// below reported, the same run on every server below that has servers of its own.
pub async fn check_run(
    admin: &mut Admin,
    node: usize,
    task: String,
    run: u64,
    devices: &[u32],
    failures: &mut Vec<String>,
) {
    let mut queue = vec![(node, task, run)];
    while let Some((node, task, run)) = queue.pop() {
        let here = format!("{} (run {run} of {task})", NODES[node].name);
        let at = NODES[node].at;
        let view = match stats(admin, at, &task, Some(run)).await {
            Ok(view) => view,
            Err(e) => {
                failures.push(format!("{here}: task stats: {e}"));
                continue;
            }
        };
        if view.state != RunState::Completed {
            failures.push(format!("{here}: {:?}, not completed", view.state));
        }
        let names: Vec<usize> = view
            .servers
            .iter()
            .filter_map(|s| s.path.rsplit('/').next().and_then(node_named))
            .collect();
        let want: BTreeSet<usize> = subtree(node).into_iter().collect();
        if names.iter().copied().collect::<BTreeSet<_>>() != want || names.len() != want.len() {
            failures.push(format!(
                "{here}: rows for {:?}",
                view.servers.iter().map(|s| &s.path).collect::<Vec<_>>()
            ));
        }
        let rows_total = sum(view.servers.iter().map(|s| s.counters));
        if rows_total != view.counters {
            failures.push(format!(
                "{here}: totals {:?} are not the sum of the rows {rows_total:?}",
                view.counters
            ));
        }
        let mut records_total = RunCounters::default();
        for (row, &n) in view.servers.iter().zip(&names) {
            let below: Vec<&str> = row.path.split('/').skip(1).collect();
            let request = TaskRequest::Results {
                task: task.clone(),
                run: Some(run),
                state: None,
                details: false,
                server: (!below.is_empty()).then(|| below.join("/")),
                after: None,
                limit: canopy::wire::msg::PAGE_MAX,
            };
            // A fleet here is far below a page, so one page holds every record.
            let (target, records) = match task_call(admin, at, request).await {
                Ok(AdminResponse::TaskResults {
                    run,
                    records,
                    next: None,
                }) => (run, records),
                other => {
                    failures.push(format!(
                        "{here}: task results --server {}: {other:?}",
                        row.path
                    ));
                    continue;
                }
            };
            let what = format!("{here}, row of {}", row.path);
            check_records(&what, &records, devices[n], failures);
            let counted = RunCounters::of(&records);
            if !row.reported || counted != row.counters {
                failures.push(format!(
                    "{what}: the row says {:?} (reported: {}), the server's {} records say {counted:?}",
                    row.counters,
                    row.reported,
                    records.len()
                ));
            }
            records_total = sum([records_total, counted]);
            if row.depth == 1 && subtree(n).len() > 1 {
                queue.push((n, format!("#{}", target.task_id), target.run_id));
            }
        }
        if records_total != view.counters {
            failures.push(format!(
                "{here}: totals {:?}, the records of the subtree {records_total:?}",
                view.counters
            ));
        }
    }
}

/// One record per device of the server, each final.
fn check_records(
    what: &str,
    records: &[DeviceRunRecord],
    devices: u32,
    failures: &mut Vec<String>,
) {
    let ids: BTreeSet<&str> = records.iter().map(|r| r.device_id.as_str()).collect();
    if records.len() != devices as usize || ids.len() != records.len() {
        failures.push(format!(
            "{what}: {} records of {} devices ({devices} expected)",
            records.len(),
            ids.len()
        ));
    }
    let open: Vec<_> = records.iter().filter(|r| !r.state.is_finished()).collect();
    if !open.is_empty() {
        failures.push(format!(
            "{what}: {} records not final, e.g. {:?}",
            open.len(),
            open[0]
        ));
    }
}

/// Every run of the tasks that the drivers started (`runs`, per task) and each task's last
/// run, checked at every level.
pub async fn check_all(
    admin: &mut Admin,
    runs: &[Vec<u64>],
    devices: &[u32],
) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, (name, owner)) in TASKS.iter().enumerate() {
        let mut ids: BTreeSet<u64> = runs[i].iter().copied().collect();
        match show(admin, NODES[*owner].at, name).await {
            Ok(Some(task)) => ids.extend(task.last_run.map(|r| r.run_id)),
            Ok(None) => {}
            Err(e) => failures.push(format!("{name}: task show: {e}")),
        }
        for run in ids {
            check_run(admin, *owner, name.to_string(), run, devices, &mut failures).await;
            checked += 1;
        }
    }
    (checked, failures)
}

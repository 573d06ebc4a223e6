//! Tasks and runs as an administrator sees them, and a local task as its device keeps it.

use crate::model::UnixMillis;
use crate::model::group::GroupTree;
use crate::model::link::StatsRow;
use crate::model::scope::Scope;
use crate::model::task::{ChangedBy, RunRecord, RunState, TaskAccount, TaskRecord, TaskType};
use crate::sched;
use crate::server::Node;
use crate::wire::msg::{LocalTaskDef, NextStart, RunView, ServerStatsView, TaskView};

pub(super) async fn view(node: &Node, task: &TaskRecord) -> TaskView {
    let mut view = plain_view(node, task).await;
    if let Some(id) = task.last_run {
        match node.store.run(id).await {
            Ok(Some(run)) => view.last_run = Some(run_view(node, &run).await),
            Ok(None) => {}
            Err(e) => tracing::error!("cannot read run {id}: {e}"),
        }
    }
    view
}

async fn plain_view(node: &Node, task: &TaskRecord) -> TaskView {
    let tree = node.store.group_tree().await.unwrap_or_else(|e| {
        tracing::error!("cannot read groups: {e}");
        GroupTree::new(Vec::new())
    });
    let (account_name, password_set) = match &task.settings.account {
        TaskAccount::Default => (None, false),
        TaskAccount::Specified { name, password } => (Some(name.clone()), password.is_some()),
    };
    TaskView {
        id: task.id,
        name: task.name.clone(),
        kind: task.kind(),
        task_type: task.task_type.clone(),
        application: task.application.clone(),
        scope: task.scope.clone(),
        scope_text: match &task.inherited {
            Some(from) => format!(
                "inherited from {} (its task #{}, revision {}): every managed device of this server and of the servers below it",
                from.parent, from.parent_task_id, from.parent_revision
            ),
            None => scope_text(&task.scope, &tree),
        },
        restart: task.settings.restart.clone(),
        schedule: task.settings.schedule.clone(),
        schedule_options: task.settings.schedule_options.clone(),
        account_name,
        password_set,
        notify: task.settings.notify,
        store_history_days: task.settings.store_history_days,
        created: task.created,
        modified: task.modified,
        revision: task.revision,
        changed_by: match &task.changed_by {
            ChangedBy::Administrator(name) => name.clone(),
            ChangedBy::DeviceUser => "the device's user".into(),
        },
        last_run: None,
        device_clock: task.runs_on_device_clock(),
        next_start: next_start(node, task, crate::clock::now_ms()),
    }
}

/// When `task`'s schedule starts it next after `now`, on whose clock.
fn next_start(node: &Node, task: &TaskRecord, now: UnixMillis) -> Option<NextStart> {
    let schedule = &task.settings.schedule;
    let cancel_from = task.settings.schedule_options.cancel_from;
    let next = sched::next_after(schedule, cancel_from, node.zone(), now)?;
    Some(if task.runs_on_device_clock() {
        NextStart::DeviceTime(next.key)
    } else {
        NextStart::ServerTime {
            at: next.at,
            text: sched::local_text(next.at, node.zone()),
        }
    })
}

/// A local task as its device keeps it.
pub(super) fn local_def(task: &TaskRecord) -> Option<LocalTaskDef> {
    let TaskType::Device(payload) = &task.task_type else {
        return None;
    };
    Some(LocalTaskDef {
        task_id: task.id,
        name: task.name.clone(),
        revision: task.revision,
        application: task.application.clone(),
        payload: payload.clone(),
        schedule: task.settings.schedule.clone(),
    })
}

/// A run as the administrator sees it here: this server's devices, the rows the servers
/// below reported, and the devices of servers concerned that have not reported yet, as
/// pending.
pub(super) async fn run_view(node: &Node, run: &RunRecord) -> RunView {
    let (table, rollup) = node.rollup(run).await;
    let own = node.name().to_string();
    let mut servers = vec![ServerStatsView {
        path: own.clone(),
        depth: 0,
        task_id: run.task_id,
        counters: run.counters,
        reported: true,
    }];
    let reported = table.rows().cloned().map(|r| (r, true));
    let missing = rollup.missing_rows().map(|r| (r, false));
    let mut listed: Vec<(StatsRow, bool)> = reported.chain(missing).collect();
    listed.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    servers.extend(listed.into_iter().map(|(r, reported)| ServerStatsView {
        path: format!("{own}/{}", r.path.join("/")),
        depth: r.depth,
        task_id: r.task_id,
        counters: r.counters,
        reported,
    }));
    let state = match rollup.state() {
        RunState::Running if run.paused.is_some() => RunState::Paused,
        state => state,
    };
    let counters = rollup.totals;
    let inherited_from = match node.store.task(run.task_id).await {
        Ok(Some(TaskRecord {
            inherited: Some(from),
            ..
        })) => Some(format!("{} (task #{})", from.parent, from.parent_task_id)),
        _ => None,
    };
    RunView {
        run_id: run.run_id,
        task_id: run.task_id,
        task_name: run.task_name.clone(),
        revision: run.revision,
        state,
        started: run.started,
        started_by: run.started_by.clone(),
        stopped: run.stopped,
        finished: run.finished,
        counters,
        servers,
        inherited_from,
        occurrence: run.occurrence,
        paused: run.paused,
        after_run: run.after_run,
    }
}

pub(super) fn scope_text(scope: &Scope, tree: &GroupTree) -> String {
    let group = |id: u64| tree.path_of(id).unwrap_or_else(|| format!("group #{id}"));
    match scope {
        Scope::Group {
            group_id,
            include_subgroups,
            include_secondaries,
        } => format!(
            "devices of {:?}{}{}",
            group(*group_id),
            if *include_subgroups {
                " and its subgroups"
            } else {
                " (not its subgroups)"
            },
            if *include_secondaries {
                ", with secondary and virtual servers placed there"
            } else {
                ""
            }
        ),
        Scope::DeviceList {
            entries,
            device_ids,
            unmatched,
        } => format!(
            "{} device(s) from a list of {} entries{}",
            device_ids.len(),
            entries.len(),
            if unmatched.is_empty() {
                String::new()
            } else {
                format!(" ({} matched no known device)", unmatched.len())
            }
        ),
        Scope::Selection(selection) => selection.describe(tree),
        Scope::Local { device_id } => format!("the device {device_id}"),
        Scope::Server => "this Administration Server".into(),
    }
}

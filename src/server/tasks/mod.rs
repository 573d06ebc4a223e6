//! Tasks on this server: the admin requests about tasks (list, show, create, edit, delete,
//! start, stop, results, statistics; export, import and copy in `transfer`). How tasks and
//! runs are shown is in `view`, what a
//! task reaches in `targeting`, carrying runs to devices and recording their progress in
//! `delivery`, and the tasks that run on the server itself in `server_tasks`.

// The error of a `Reply` is the whole answer to an administrator's request, made once.
#![allow(clippy::result_large_err)]

mod credentials;
mod delivery;
mod gate;
mod history;
mod pause;
mod scheduler;
mod schedules;
mod server_tasks;
mod targeting;
mod transfer;
mod view;

pub(super) use scheduler::schedule_loop;
pub(super) use server_tasks::prune_loop;

use std::sync::Arc;

use crate::model::revision::RevisionAction;
use crate::model::rights::Rights;
use crate::model::scope::Scope;
use crate::model::task::{
    AGENT_APPLICATION, ChangedBy, DeviceRunRecord, DeviceState, RunId, RunRecord, RunState,
    SERVER_APPLICATION, TaskAccount, TaskRecord, TaskSettings, TaskType,
};
use crate::model::{EventKind, Role, Severity};
use crate::server::auth::Session;
use crate::server::reply::{PageBudget, Reply, error, internal, invalid};
use crate::server::rights::{self, Gate};
use crate::server::{Node, now_ms};
use crate::store::StoreError;
use crate::store::revisions::Note;
use crate::store::rights::Guarded;
use crate::wire::msg::{
    AccountSpec, AdminRequest, AdminResponse, ErrorKind, PAGE_MAX, RunView, ServerToAgent,
    TaskChanges, TaskRequest, TaskSpec, TaskView,
};
use targeting::{device_list, expected_below, resolve_scope, targets};
use view::{run_view, view};

pub(super) async fn handle(
    node: &Arc<Node>,
    session: &Session,
    request: TaskRequest,
) -> AdminResponse {
    if let Err(refused) = gate::check_rights(node, session, &request).await {
        return refused;
    }
    let reply = match request {
        TaskRequest::List { after, limit } => list(node, session, after, limit).await,
        TaskRequest::Show { task } => match find(node, &task).await {
            Ok(task) => Ok(AdminResponse::Task(Box::new(view(node, &task).await))),
            Err(e) => Err(e),
        },
        TaskRequest::Create(spec) => create(node, session, *spec).await,
        TaskRequest::Edit { task, changes } => edit(node, session, &task, *changes).await,
        TaskRequest::Delete { task, comment } => delete(node, session, &task, comment).await,
        TaskRequest::Start { task, devices } => start(node, session, &task, devices).await,
        TaskRequest::Stop { task } => stop(node, session, &task).await,
        TaskRequest::Pause { task } => pause::pause(node, session, &task, true).await,
        TaskRequest::Resume { task } => pause::pause(node, session, &task, false).await,
        TaskRequest::Results {
            task,
            run,
            state,
            details,
            server: Some(path),
            after,
            limit,
        } => {
            let page = Page {
                state,
                details,
                after,
                limit,
            };
            results_below(node, session, &task, run, &path, page).await
        }
        TaskRequest::Results {
            task,
            run,
            state,
            details,
            server: None,
            after,
            limit,
        } => {
            let page = Page {
                state,
                details,
                after,
                limit,
            };
            results(node, &task, run, page).await
        }
        TaskRequest::Export { task } => transfer::export(node, &task).await,
        TaskRequest::Import {
            file,
            commit,
            scope,
        } => transfer::import(node, session, &file, commit, scope).await,
        TaskRequest::Copy { task, name } => transfer::copy(node, session, &task, name).await,
        TaskRequest::History { task } => history::history(node, &task).await,
        TaskRequest::Diff { task, from, to } => history::diff(node, &task, from, to).await,
        TaskRequest::Rollback {
            task,
            revision,
            comment,
        } => history::rollback(node, session, &task, revision, comment).await,
        TaskRequest::ListDeleted => history::list_deleted(node, session).await,
        TaskRequest::Rights { task, change } => match find(node, &task).await {
            Ok(task) => rights::task_rights(node, session, task, change).await,
            Err(e) => Err(e),
        },
        TaskRequest::Restore { task, comment } => {
            history::restore(node, session, &task, comment).await
        }
        TaskRequest::Credentials(request) => credentials::change(node, session, *request).await,
        TaskRequest::Stats { task, run } => {
            let task = match find(node, &task).await {
                Ok(task) => task,
                Err(e) => return e,
            };
            run_of(node, &task, run).await.map(AdminResponse::TaskStats)
        }
    };
    reply.unwrap_or_else(|e| e)
}

fn stored(e: StoreError) -> AdminResponse {
    match e {
        StoreError::Rejected(message) => error(ErrorKind::AlreadyExists, message),
        StoreError::Invalid(message) => invalid(message),
        other => internal(other),
    }
}

/// Finds a task by id (`7` or `#7`) or display name.
async fn find(node: &Node, key: &str) -> Reply<TaskRecord> {
    if let Some(task) = node.store.task_by_name(key).await.map_err(internal)? {
        return Ok(task);
    }
    if let Ok(id) = key.trim_start_matches('#').parse::<u64>()
        && let Some(task) = node.store.task(id).await.map_err(internal)?
    {
        return Ok(task);
    }
    Err(error(ErrorKind::NotFound, format!("no task {key:?}")))
}

/// Finds a task an administrator of this server may change or start: not an inherited one,
/// and a server task only for an administrator.
async fn find_own(node: &Node, session: &Session, key: &str, action: &str) -> Reply<TaskRecord> {
    let task = find(node, key).await?;
    server_task_allowed(node, session, &task.task_type)?;
    match &task.inherited {
        Some(from) => Err(error(
            ErrorKind::Forbidden,
            format!(
                "task {:?} is inherited from the server {} (its task #{}): it cannot be {action} here; {action_at} it on {}",
                task.name,
                from.parent,
                from.parent_task_id,
                from.parent,
                action_at = match action {
                    "edited" => "edit",
                    "started" => "start",
                    "stopped" => "stop",
                    "paused" => "pause",
                    "resumed" => "resume",
                    _ => "delete",
                }
            ),
        )),
        None => Ok(task),
    }
}

/// A server task runs on the server itself, with its files: only an administrator of a
/// physical server may create or run a backup, and only into the backup directory.
fn server_task_allowed(node: &Node, session: &Session, task_type: &TaskType) -> Reply<()> {
    if !task_type.runs_on_server() {
        return Ok(());
    }
    if session.role != Role::Administrator {
        return Err(error(
            ErrorKind::Forbidden,
            format!(
                "only an administrator may change or run a {} task: it runs on the server itself",
                task_type.type_name()
            ),
        ));
    }
    if let TaskType::Backup { directory } = task_type {
        if node.is_virtual() {
            return Err(invalid(
                "backup tasks are not offered on a virtual server: its host's administrator backs it up",
            ));
        }
        server_tasks::backup_directory(&node.config.backups, directory.as_deref())
            .map_err(invalid)?;
    }
    Ok(())
}

/// One page of tasks in id order.
async fn list(
    node: &Node,
    session: &Session,
    after: Option<u64>,
    limit: u32,
) -> Reply<AdminResponse> {
    let gate = Gate::load(node, session).await?;
    let mut tasks = node.store.tasks().await.map_err(internal)?;
    tasks.retain(|t| gate.on_task(t).contains(Rights::READ));
    tasks.sort_by_key(|t| t.id);
    let mut budget = PageBudget::new(limit.clamp(1, PAGE_MAX) as usize);
    let mut views = Vec::new();
    for task in tasks.iter().filter(|t| after.is_none_or(|a| t.id > a)) {
        let view = view(node, task).await;
        if !budget.take(&view) {
            let next = views.last().map(|v: &TaskView| v.id);
            return Ok(AdminResponse::Tasks { tasks: views, next });
        }
        views.push(view);
    }
    Ok(AdminResponse::Tasks {
        tasks: views,
        next: None,
    })
}

// ---- Create, edit, delete ----

fn seal_account(node: &Node, account: Option<AccountSpec>) -> Reply<TaskAccount> {
    match account {
        None => Ok(TaskAccount::Default),
        Some(AccountSpec { name, password }) => {
            let password = match password {
                Some(secret) => Some(node.secrets.seal(&secret.0).map_err(internal)?),
                None => None,
            };
            Ok(TaskAccount::Specified { name, password })
        }
    }
}

fn default_application(task_type: &TaskType) -> String {
    if task_type.runs_on_server() {
        SERVER_APPLICATION.into()
    } else {
        AGENT_APPLICATION.into()
    }
}

async fn create(node: &Arc<Node>, session: &Session, spec: TaskSpec) -> Reply<AdminResponse> {
    let note = Note {
        action: RevisionAction::Created,
        comment: history::comment(spec.comment.clone())?,
    };
    let task = new_task(node, session, spec).await?;
    let task = store_new(node, session, task, false, note).await?;
    Ok(AdminResponse::Task(Box::new(view(node, &task).await)))
}

/// The task `spec` describes, checked, its scope resolved and its password sealed.
async fn new_task(node: &Node, session: &Session, spec: TaskSpec) -> Reply<TaskRecord> {
    let now = now_ms();
    let application = spec
        .application
        .clone()
        .unwrap_or_else(|| default_application(&spec.task_type));
    let mut task = TaskRecord {
        id: 0,
        name: spec.name.trim().to_string(),
        task_type: spec.task_type,
        application,
        scope: Scope::Server,
        settings: TaskSettings {
            restart: spec.restart,
            schedule: spec.schedule,
            schedule_options: spec.schedule_options,
            account: TaskAccount::Default,
            notify: spec.notify,
            store_history_days: spec.store_history_days,
        },
        created: now,
        modified: now,
        revision: 1,
        changed_by: ChangedBy::Administrator(session.user.clone()),
        last_run: None,
        inherited: None,
    };
    // What needs no lookups is checked first, so a bad name is reported before DNS runs.
    crate::model::check_display_name("a task name", &task.name).map_err(invalid)?;
    server_task_allowed(node, session, &task.task_type)?;
    if let TaskType::Device(payload) = &task.task_type {
        payload.check().map_err(invalid)?;
    }
    task.scope = resolve_scope(node, spec.scope).await?;
    task.check().map_err(invalid)?;
    task.settings.account = seal_account(node, spec.account)?;
    Ok(task)
}

/// Stores a new task (under its name, or with `free_name` the next free " (N)" suffix),
/// says so, tells its devices, and starts it if its schedule is "immediately". Returns it
/// as stored now.
async fn store_new(
    node: &Arc<Node>,
    session: &Session,
    task: TaskRecord,
    free_name: bool,
    note: Note,
) -> Reply<TaskRecord> {
    let task = node
        .store
        .create_task_noted(task, free_name, note)
        .await
        .map_err(stored)?;
    let msg = format!(
        "task {:?} (#{}, {}, {}) created by {}",
        task.name,
        task.id,
        task.kind().as_str(),
        task.task_type.type_name(),
        session.user
    );
    node.event_about(
        Severity::Info,
        EventKind::TaskChanged,
        msg,
        Guarded::Task(task.id),
    )
    .await;
    node.push_local_task(&task, false).await;
    node.tasks_changed(&[task.id], task.runs_on_device_clock())
        .await;
    if task.settings.schedule == crate::model::schedule::Schedule::Immediately
        && let Err(AdminResponse::Error { message, .. }) =
            start_run(node, &session.user, &task, None).await
    {
        // The task exists now either way; the administrator sees why it did not start.
        let msg = format!(
            "task {:?} was not started on creation: {message}",
            task.name
        );
        node.event_about(
            Severity::Warning,
            EventKind::RunStarted,
            msg,
            Guarded::Task(task.id),
        )
        .await;
    }
    Ok(node
        .store
        .task(task.id)
        .await
        .map_err(internal)?
        .unwrap_or(task))
}

async fn edit(
    node: &Node,
    session: &Session,
    key: &str,
    changes: TaskChanges,
) -> Reply<AdminResponse> {
    let note = Note {
        action: RevisionAction::Edited,
        comment: history::comment(changes.comment.clone())?,
    };
    let task = find_own(node, session, key, "edited").await?;
    let scope = match changes.scope {
        Some(spec) => Some(resolve_scope(node, spec).await?),
        None => None,
    };
    let account = match changes.account {
        Some(account) => Some(seal_account(node, account)?),
        None => None,
    };
    let mut edited = task.clone();
    if let Some(name) = changes.name {
        edited.name = name.trim().to_string();
    }
    if let Some(task_type) = changes.task_type {
        server_task_allowed(node, session, &task_type)?;
        edited.task_type = task_type;
    }
    if let Some(application) = changes.application {
        edited.application = application;
    }
    if let Some(scope) = scope {
        edited.scope = scope;
    }
    let settings = &mut edited.settings;
    if let Some(v) = changes.restart {
        settings.restart = v;
    }
    if let Some(v) = changes.schedule {
        settings.schedule = v;
    }
    if let Some(v) = changes.schedule_options {
        settings.schedule_options = v;
    }
    if let Some(v) = account {
        settings.account = v;
    }
    if let Some(v) = changes.notify {
        settings.notify = v;
    }
    if let Some(v) = changes.store_history_days {
        settings.store_history_days = v;
    }
    edited.check().map_err(invalid)?;
    let updated = update_by(node, session, task.id, key, note, move |t| {
        let (revision, last_run) = (t.revision, t.last_run);
        *t = edited.clone();
        t.revision = revision;
        t.last_run = last_run;
    })
    .await?;
    let msg = format!(
        "task {:?} (#{}) changed to revision {} by {}",
        updated.name, updated.id, updated.revision, session.user
    );
    Ok(changed(node, &task, &updated, msg).await)
}

/// Changes task `id` (named `key` by the administrator) as a new revision by the session's
/// account: `change`, then the time and author of the change.
async fn update_by(
    node: &Node,
    session: &Session,
    id: u64,
    key: &str,
    note: Note,
    mut change: impl FnMut(&mut TaskRecord) + Send + 'static,
) -> Reply<TaskRecord> {
    let (now, user) = (now_ms(), session.user.clone());
    node.store
        .update_task(id, note, move |t| {
            change(t);
            t.modified = now;
            t.changed_by = ChangedBy::Administrator(user.clone());
            Ok(())
        })
        .await
        .map_err(stored)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("no task {key:?}")))
}

/// After a task changed from `before` to `after`: the event `msg`, the devices told, and the
/// task as the answer.
async fn changed(
    node: &Node,
    before: &TaskRecord,
    after: &TaskRecord,
    msg: String,
) -> AdminResponse {
    node.event_about(
        Severity::Info,
        EventKind::TaskChanged,
        msg,
        Guarded::Task(after.id),
    )
    .await;
    if before.scope != after.scope {
        // A local task moved to another device: the old one forgets it.
        node.push_local_task(before, true).await;
    }
    node.push_local_task(after, false).await;
    let devices_told = before.runs_on_device_clock() || after.runs_on_device_clock();
    node.tasks_changed(&[after.id], devices_told).await;
    AdminResponse::Task(Box::new(view(node, after).await))
}

async fn delete(
    node: &Node,
    session: &Session,
    key: &str,
    comment: Option<String>,
) -> Reply<AdminResponse> {
    let note = Note {
        action: RevisionAction::Deleted,
        comment: history::comment(comment)?,
    };
    let task = find_own(node, session, key, "deleted").await?;
    let (task, to_cancel) = node
        .store
        .delete_task(task.id, session.user.clone(), note, now_ms())
        .await
        .map_err(internal)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("no task {key:?}")))?;
    for (device_id, run) in to_cancel {
        node.tell_device(&device_id, ServerToAgent::Cancel { run })
            .await;
    }
    let msg = format!(
        "task {:?} (#{}) deleted by {}",
        task.name, task.id, session.user
    );
    node.event_about(
        Severity::Info,
        EventKind::TaskChanged,
        msg,
        Guarded::Task(task.id),
    )
    .await;
    node.push_local_task(&task, true).await;
    node.tasks_changed(&[task.id], task.runs_on_device_clock())
        .await;
    Ok(AdminResponse::Done {
        message: format!(
            "task {:?} (#{}) deleted with its results; its history is kept (`task restore #{}`)",
            task.name, task.id, task.id
        ),
    })
}

// ---- Runs ----

async fn start(
    node: &Arc<Node>,
    session: &Session,
    key: &str,
    devices: Option<Vec<String>>,
) -> Reply<AdminResponse> {
    let task = find_own(node, session, key, "started").await?;
    let scope = match devices {
        Some(entries) => {
            if matches!(task.scope, Scope::Server | Scope::Local { .. }) {
                return Err(invalid(format!(
                    "{} is a {}; it cannot be started for other devices",
                    task.name,
                    task.kind().as_str()
                )));
            }
            Some(device_list(node, &entries).await?)
        }
        None => None,
    };
    let (run, skipped) = start_run(node, &session.user, &task, scope).await?;
    Ok(AdminResponse::TaskStarted {
        run: run_view(node, &run).await,
        skipped,
    })
}

/// Starts a run of `task` (with its scope replaced by `scope` if given): records and orders
/// are stored first, so a device offline now gets its order when it connects; then the
/// orders go to the devices connected now, or the server task begins.
async fn start_run(
    node: &Arc<Node>,
    user: &str,
    task: &TaskRecord,
    scope: Option<Scope>,
) -> Reply<(RunRecord, Vec<String>)> {
    // A scheduled occurrence still going (a device off since) does not hold a start by hand.
    if let Some(id) = task.last_run
        && let Some(run) = node.store.run(id).await.map_err(internal)?
        && run.occurrence.is_none()
    {
        // Running anywhere in the tree, as far as this server knows.
        let view = run_view(node, &run).await;
        if matches!(view.state, RunState::Running | RunState::Paused) {
            return Err(invalid(format!(
                "task {:?} is still running (run {id}, {} of {} devices finished); stop it first",
                task.name,
                view.counters.finished(),
                view.counters.total()
            )));
        }
    }
    let mut planned = task.clone();
    if let Some(scope) = &scope {
        planned.scope = scope.clone();
    }
    let (targets, skipped) = targets(node, &planned).await?;
    // A group task that includes secondary and virtual servers may have no device here and
    // still run on theirs.
    let below = expected_below(node, &planned).await.len();
    if targets.is_empty() && below == 0 {
        let why = if skipped.is_empty() {
            String::new()
        } else {
            format!(": {}", skipped.join("; "))
        };
        return Err(invalid(format!(
            "task {:?} has no device to run on{why}",
            task.name
        )));
    }
    let started = node
        .store
        .start_run(task.id, targets, scope, user.to_string(), now_ms())
        .await
        .map_err(internal)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("no task {:?}", task.name)))?;
    let msg = format!(
        "task {:?} run {} started by {user} on {} target(s) of this server{}",
        started.task.name,
        started.run.run_id,
        started.run.counters.total(),
        if below > 0 {
            format!(" and {below} server(s) below it")
        } else {
            String::new()
        }
    );
    node.event_about(
        Severity::Info,
        EventKind::RunStarted,
        msg,
        Guarded::Task(task.id),
    )
    .await;
    node.deliver_run(&started);
    Ok((started.run, skipped))
}

async fn stop(node: &Node, session: &Session, key: &str) -> Reply<AdminResponse> {
    let task = find_own(node, session, key, "stopped").await?;
    let Some(run_id) = task.last_run else {
        return Err(invalid(format!("task {:?} has never run", task.name)));
    };
    let stopped = node
        .store
        .stop_run(run_id, now_ms())
        .await
        .map_err(internal)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("run {run_id} is gone")))?;
    for (device_id, run) in &stopped.to_cancel {
        node.tell_device(device_id, ServerToAgent::Cancel { run: *run })
            .await;
    }
    let msg = format!(
        "task {:?} run {run_id} stopped by {}; {} device(s) told to cancel",
        task.name,
        session.user,
        stopped.to_cancel.len()
    );
    node.event_about(
        Severity::Info,
        EventKind::RunStopped,
        msg,
        Guarded::Task(task.id),
    )
    .await;
    Ok(AdminResponse::TaskStats(run_view(node, &stopped.run).await))
}

async fn run_of(node: &Node, task: &TaskRecord, run: Option<RunId>) -> Reply<RunView> {
    let Some(run_id) = run.or(task.last_run) else {
        return Err(invalid(format!("task {:?} has never run", task.name)));
    };
    match node.store.run(run_id).await.map_err(internal)? {
        Some(run) if run.task_id == task.id => Ok(run_view(node, &run).await),
        _ => Err(error(
            ErrorKind::NotFound,
            format!(
                "task {:?} has no run {run_id} (it may have been pruned)",
                task.name
            ),
        )),
    }
}

/// Which of a run's records a page holds, where it starts and how long it may be.
struct Page {
    state: Option<DeviceState>,
    details: bool,
    after: Option<String>,
    limit: u32,
}

/// One page of a run's records, in device id order.
async fn results(node: &Node, key: &str, run: Option<RunId>, page: Page) -> Reply<AdminResponse> {
    let task = find(node, key).await?;
    let run = run_of(node, &task, run).await?;
    let Page {
        state,
        details,
        after,
        limit,
    } = page;
    let keep = move |mut r: DeviceRunRecord| {
        if state.is_some_and(|s| r.state != s) {
            return None;
        }
        if !details {
            r.details = None;
        }
        Some(r)
    };
    let mut budget = PageBudget::new(limit.clamp(1, PAGE_MAX) as usize);
    let full = move |_: &[DeviceRunRecord], r: &DeviceRunRecord| !budget.take(r);
    let (records, more) = node
        .store
        .run_records_page(run.run_id, after, keep, full)
        .await
        .map_err(internal)?;
    let next = if more {
        records.last().map(|r| r.device_id.clone())
    } else {
        None
    };
    Ok(AdminResponse::TaskResults { run, records, next })
}

/// The records of a run held by a server below this one: the row that server reported
/// names its own task and run, and the request goes to it through the tree.
async fn results_below(
    node: &Node,
    session: &Session,
    key: &str,
    run: Option<RunId>,
    server: &str,
    page: Page,
) -> Reply<AdminResponse> {
    let task = find(node, key).await?;
    let run = run_of(node, &task, run).await?;
    let path: Vec<String> = server
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if path.is_empty() {
        return results(node, key, Some(run.run_id), page).await;
    }
    let rows = node.store.stats_rows(run.run_id).await.map_err(internal)?;
    let Some(row) = rows.iter().find(|r| r.path == path) else {
        return Err(error(
            ErrorKind::NotFound,
            format!(
                "no statistics from a server {server:?} for run {} of task {:?}: it is not below this server, or has not reported yet (see `task stats --by-server`)",
                run.run_id, task.name
            ),
        ));
    };
    let request = AdminRequest::Task(TaskRequest::Results {
        task: format!("#{}", row.task_id),
        run: Some(row.run_id),
        state: page.state,
        details: page.details,
        server: None,
        after: page.after,
        limit: page.limit,
    });
    Ok(node
        .forward(&path, &session.user, session.role, request)
        .await)
}

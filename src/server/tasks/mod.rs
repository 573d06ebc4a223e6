//! Tasks on this server: creation with scope resolution, runs on devices and on the server
//! itself, per-device records and statistics, history pruning.

// The error of a `Reply` is the whole answer to an administrator's request, made once.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::auth::Session;
use super::reply::{Reply, error, internal, invalid};
use super::{Node, lock, now_ms};
use crate::model::device::{DeviceRecord, Enrollment};
use crate::model::group::GroupTree;
use crate::model::scope::{self, ListEntry, Scope, Selection};
use crate::model::task::{
    AGENT_APPLICATION, ChangedBy, DeviceEdit, DeviceProgress, DeviceState, Notify, Outcome,
    RunCounters, RunId, RunRecord, RunState, SERVER_APPLICATION, TaskAccount, TaskRecord,
    TaskSettings, TaskType,
};
use crate::model::{EventKind, Severity, format_time};
use crate::net::resolve::AddressResolver;
use crate::store::StoreError;
use crate::store::tasks::StartedRun;
use crate::sync::stats::{StatsTable, add_counters};
use crate::wire::msg::{
    AccountSpec, AdminRequest, AdminResponse, ErrorKind, LocalTaskDef, RunView, ScopeSpec,
    ServerStatsView, ServerToAgent, TaskChanges, TaskRequest, TaskSpec, TaskView,
};

/// How long one DNS name of a device list may take to resolve.
const DNS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long all the DNS names of one device list may take together.
const DNS_BUDGET: Duration = Duration::from_secs(10);
/// How often results older than their task's store-history days are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The record id of the server itself in a server task's run.
const SERVER_TARGET: &str = "server";

pub(super) async fn handle(
    node: &Arc<Node>,
    session: &Session,
    request: TaskRequest,
) -> AdminResponse {
    let reply = match request {
        TaskRequest::List => list(node).await,
        TaskRequest::Show { task } => match find(node, &task).await {
            Ok(task) => Ok(AdminResponse::Task(Box::new(view(node, &task).await))),
            Err(e) => Err(e),
        },
        TaskRequest::Create(spec) => create(node, session, *spec).await,
        TaskRequest::Edit { task, changes } => edit(node, session, &task, *changes).await,
        TaskRequest::Delete { task } => delete(node, session, &task).await,
        TaskRequest::Start { task, devices } => start(node, session, &task, devices).await,
        TaskRequest::Stop { task } => stop(node, session, &task).await,
        TaskRequest::Results {
            task,
            run,
            state,
            details,
            server: Some(path),
        } => results_below(node, session, &task, run, state, details, &path).await,
        TaskRequest::Results {
            task,
            run,
            state,
            details,
            server: None,
        } => results(node, &task, run, state, details).await,
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

/// Finds a task an administrator of this server may change or start: not an inherited one.
async fn find_own(node: &Node, key: &str, action: &str) -> Reply<TaskRecord> {
    let task = find(node, key).await?;
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
                    _ => "delete",
                }
            ),
        )),
        None => Ok(task),
    }
}

async fn list(node: &Node) -> Reply<AdminResponse> {
    let tasks = node.store.tasks().await.map_err(internal)?;
    let mut views = Vec::with_capacity(tasks.len());
    for task in &tasks {
        views.push(view(node, task).await);
    }
    Ok(AdminResponse::Tasks(views))
}

async fn view(node: &Node, task: &TaskRecord) -> TaskView {
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
    }
}

/// A local task as its device keeps it.
fn local_def(task: &TaskRecord) -> Option<LocalTaskDef> {
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
async fn run_view(node: &Node, run: &RunRecord) -> RunView {
    let rows = node.store.stats_rows(run.run_id).await.unwrap_or_else(|e| {
        tracing::error!("cannot read the statistics of run {}: {e}", run.run_id);
        Vec::new()
    });
    let expected = expected_servers(node, run).await;
    let table = StatsTable::from_rows(rows);
    let mut counters = table.totals(&run.counters);
    add_counters(&mut counters, &table.pending_for_missing(&expected));
    let own = node.name().to_string();
    let mut servers = vec![ServerStatsView {
        path: own.clone(),
        depth: 0,
        task_id: run.task_id,
        counters: run.counters,
        reported: true,
    }];
    let mut listed: Vec<(Vec<String>, ServerStatsView)> = table
        .rows()
        .map(|r| {
            (
                r.path.clone(),
                ServerStatsView {
                    path: format!("{own}/{}", r.path.join("/")),
                    depth: r.depth,
                    task_id: r.task_id,
                    counters: r.counters,
                    reported: true,
                },
            )
        })
        .collect();
    for (path, devices) in &expected {
        if table.get(path).is_none() {
            let mut pending = RunCounters::default();
            pending.by_state[0] = *devices;
            listed.push((
                path.clone(),
                ServerStatsView {
                    path: format!("{own}/{}", path.join("/")),
                    depth: path.len() as u32,
                    task_id: 0,
                    counters: pending,
                    reported: false,
                },
            ));
        }
    }
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    servers.extend(listed.into_iter().map(|(_, v)| v));
    let state = if run.stopped.is_some() {
        RunState::Stopped
    } else if counters.finished() == counters.total() {
        RunState::Completed
    } else {
        RunState::Running
    };
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
    }
}

/// The servers below this one a run of `task` reaches, as paths of names with the devices
/// they last reported: the secondary and virtual servers placed in its group (or below),
/// and everything below those.
async fn expected_below(node: &Node, task: &TaskRecord) -> Vec<(Vec<String>, u64)> {
    let Some(audience) = crate::store::replication::audience(task) else {
        return Vec::new();
    };
    let (records, tree) = match (
        node.store.secondaries().await,
        node.store.group_tree().await,
    ) {
        (Ok(records), Ok(tree)) => (records, tree),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot read the secondaries: {e}");
            return Vec::new();
        }
    };
    let mut expected = Vec::new();
    for record in records {
        let concerned = tree
            .resolve(&record.group)
            .is_some_and(|g| audience.concerns(g, |a, b| tree.is_descendant(a, b)));
        if !concerned {
            continue;
        }
        expected.push((vec![record.name.clone()], record.devices));
        for row in &record.subtree {
            let mut path = vec![record.name.clone()];
            path.extend(row.path.split('/').map(str::to_string));
            expected.push((path, row.devices));
        }
    }
    expected
}

async fn expected_servers(node: &Node, run: &RunRecord) -> Vec<(Vec<String>, u64)> {
    match node.store.task(run.task_id).await {
        Ok(Some(task)) => expected_below(node, &task).await,
        _ => Vec::new(),
    }
}

fn scope_text(scope: &Scope, tree: &GroupTree) -> String {
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

// ---- Scopes ----

/// Resolves a scope as given into what is stored: group ids, the devices a list matches.
async fn resolve_scope(node: &Node, spec: ScopeSpec) -> Reply<Scope> {
    match spec {
        ScopeSpec::Group {
            path,
            include_subgroups,
            include_secondaries,
        } => match node.store.resolve_group(&path).await.map_err(internal)? {
            Some(group_id) => Ok(Scope::Group {
                group_id,
                include_subgroups,
                include_secondaries,
            }),
            None => Err(error(
                ErrorKind::NotFound,
                format!("group {path:?} does not exist"),
            )),
        },
        ScopeSpec::Devices { entries } => device_list(node, &entries).await,
        ScopeSpec::Selection { conditions } => {
            let tree = node.store.group_tree().await.map_err(internal)?;
            Selection::from_conditions(&conditions, |path| tree.resolve(path))
                .map(Scope::Selection)
                .map_err(invalid)
        }
        ScopeSpec::Local { device } => {
            let record = super::devices::find(node, &device).await?;
            if record.enrollment != Enrollment::Approved {
                return Err(invalid(format!(
                    "device {} is {}; a local task needs an approved device",
                    record.name,
                    record.enrollment.as_str()
                )));
            }
            Ok(Scope::Local {
                device_id: record.id,
            })
        }
        ScopeSpec::Server => Ok(Scope::Server),
    }
}

/// Resolves a device list once: entries that are device ids name those devices; the rest
/// are addresses, ranges and names, matched against the devices this server knows. Names
/// that match no device by name are looked up in DNS and matched by address.
async fn device_list(node: &Node, entries: &[String]) -> Reply<Scope> {
    let devices = node.store.devices().await.map_err(internal)?;
    let by_id: HashMap<&str, &DeviceRecord> = devices
        .iter()
        .filter(|d| d.enrollment == Enrollment::Approved)
        .map(|d| (d.id.as_str(), d))
        .collect();
    let (ids, rest): (Vec<&String>, Vec<&String>) =
        entries.iter().partition(|e| by_id.contains_key(e.trim()));
    let parsed = scope::parse_list(rest.iter().map(|s| s.as_str())).map_err(invalid)?;
    if ids.len() + parsed.len() > scope::MAX_LIST_ENTRIES {
        return Err(invalid(format!(
            "a device list holds at most {} entries; this one has {}",
            scope::MAX_LIST_ENTRIES,
            ids.len() + parsed.len()
        )));
    }
    let (_, unmatched_by_name) = scope::resolve_list(&parsed, &devices, &HashMap::new());
    let mut dns: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut resolver = AddressResolver::system();
    // The whole request must answer well within the client's timeout, however many names.
    let deadline = tokio::time::Instant::now() + DNS_BUDGET;
    for (typed, entry) in &parsed {
        if let ListEntry::Name(name) = entry
            && unmatched_by_name.contains(typed)
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                tracing::info!("device list entry {name:?}: no DNS time left for it");
                continue;
            }
            match tokio::time::timeout(DNS_TIMEOUT.min(left), resolver.lookup_all(name)).await {
                Ok(Ok(ips)) => {
                    dns.insert(name.clone(), ips);
                }
                Ok(Err(e)) => tracing::info!("device list entry {name:?}: {e}"),
                Err(_) => tracing::info!("device list entry {name:?}: DNS timed out"),
            }
        }
    }
    let (mut device_ids, unmatched) = scope::resolve_list(&parsed, &devices, &dns);
    device_ids.extend(ids.iter().map(|s| s.trim().to_string()));
    device_ids.sort();
    device_ids.dedup();
    let mut typed: Vec<String> = ids.iter().map(|s| s.trim().to_string()).collect();
    typed.extend(parsed.into_iter().map(|(t, _)| t));
    Ok(Scope::DeviceList {
        entries: typed,
        device_ids,
        unmatched,
    })
}

/// The devices a start targets, as (id, name), and what was left out, in words.
async fn targets(node: &Node, task: &TaskRecord) -> Reply<(Vec<(String, String)>, Vec<String>)> {
    if task.scope == Scope::Server {
        return Ok((
            vec![(SERVER_TARGET.to_string(), node.name().to_string())],
            Vec::new(),
        ));
    }
    let devices = node.store.devices().await.map_err(internal)?;
    let approved = devices
        .iter()
        .filter(|d| d.enrollment == Enrollment::Approved);
    let pair = |d: &DeviceRecord| (d.id.clone(), d.name.clone());
    let mut skipped = Vec::new();
    let targets: Vec<(String, String)> = match &task.scope {
        Scope::Group {
            group_id,
            include_subgroups,
            ..
        } => {
            let tree = node.store.group_tree().await.map_err(internal)?;
            approved
                .filter(|d| {
                    d.group_id == *group_id
                        || (*include_subgroups && tree.is_descendant(d.group_id, *group_id))
                })
                .map(pair)
                .collect()
        }
        Scope::DeviceList {
            device_ids,
            unmatched,
            ..
        } => {
            let known: HashMap<&str, &DeviceRecord> =
                approved.map(|d| (d.id.as_str(), d)).collect();
            skipped.extend(
                unmatched
                    .iter()
                    .map(|e| format!("{e}: matches no device known to this server")),
            );
            let mut out = Vec::new();
            for id in device_ids {
                match known.get(id.as_str()) {
                    Some(d) => out.push(pair(d)),
                    None => skipped.push(format!("{id}: no longer a managed device")),
                }
            }
            out
        }
        Scope::Selection(selection) => {
            let tree = node.store.group_tree().await.map_err(internal)?;
            let connected = node.connected_devices();
            let mut out = Vec::new();
            let mut offline = 0;
            for d in approved {
                let online = connected.contains(&d.id);
                if !selection.matches(d, &tree, online) {
                    continue;
                }
                if online {
                    out.push(pair(d));
                } else {
                    offline += 1;
                }
            }
            if offline > 0 {
                skipped.push(format!(
                    "{offline} device(s) of the selection are not connected; a selection task runs on connected devices only"
                ));
            }
            out
        }
        Scope::Local { device_id } => approved.filter(|d| &d.id == device_id).map(pair).collect(),
        Scope::Server => Vec::new(),
    };
    Ok((targets, skipped))
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
    if let TaskType::Device(payload) = &task.task_type {
        payload.check().map_err(invalid)?;
    }
    task.scope = resolve_scope(node, spec.scope).await?;
    task.check().map_err(invalid)?;
    task.settings.account = seal_account(node, spec.account)?;
    let task = node.store.create_task(task).await.map_err(stored)?;
    let msg = format!(
        "task {:?} (#{}, {}, {}) created by {}",
        task.name,
        task.id,
        task.kind().as_str(),
        task.task_type.type_name(),
        session.user
    );
    node.event(Severity::Info, EventKind::TaskChanged, msg)
        .await;
    node.log_appended();
    node.push_local_task(&task, false).await;
    if task.settings.schedule == crate::model::schedule::Schedule::Immediately
        && let Err(AdminResponse::Error { message, .. }) =
            start_run(node, &session.user, &task, None).await
    {
        // The task exists now either way; the administrator sees why it did not start.
        let msg = format!(
            "task {:?} was not started on creation: {message}",
            task.name
        );
        node.event(Severity::Warning, EventKind::RunStarted, msg)
            .await;
    }
    let task = node
        .store
        .task(task.id)
        .await
        .map_err(internal)?
        .unwrap_or(task);
    Ok(AdminResponse::Task(Box::new(view(node, &task).await)))
}

async fn edit(
    node: &Node,
    session: &Session,
    key: &str,
    changes: TaskChanges,
) -> Reply<AdminResponse> {
    let task = find_own(node, key, "edited").await?;
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
    let now = now_ms();
    let user = session.user.clone();
    let updated = node
        .store
        .update_task(task.id, move |t| {
            let revision = t.revision;
            let last_run = t.last_run;
            *t = edited.clone();
            t.revision = revision;
            t.last_run = last_run;
            t.modified = now;
            t.changed_by = ChangedBy::Administrator(user.clone());
            Ok(())
        })
        .await
        .map_err(stored)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("no task {key:?}")))?;
    let msg = format!(
        "task {:?} (#{}) changed to revision {} by {}",
        updated.name, updated.id, updated.revision, session.user
    );
    node.event(Severity::Info, EventKind::TaskChanged, msg)
        .await;
    node.log_appended();
    if task.scope != updated.scope {
        // A local task moved to another device: the old one forgets it.
        node.push_local_task(&task, true).await;
    }
    node.push_local_task(&updated, false).await;
    Ok(AdminResponse::Task(Box::new(view(node, &updated).await)))
}

async fn delete(node: &Node, session: &Session, key: &str) -> Reply<AdminResponse> {
    let task = find_own(node, key, "deleted").await?;
    let (task, to_cancel) = node
        .store
        .delete_task(task.id)
        .await
        .map_err(internal)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("no task {key:?}")))?;
    for (device_id, run_id) in to_cancel {
        node.tell_device(&device_id, ServerToAgent::Cancel { run_id })
            .await;
    }
    let msg = format!(
        "task {:?} (#{}) deleted by {}",
        task.name, task.id, session.user
    );
    node.event(Severity::Info, EventKind::TaskChanged, msg)
        .await;
    node.log_appended();
    node.push_local_task(&task, true).await;
    Ok(AdminResponse::Done {
        message: format!("task {:?} deleted with its results", task.name),
    })
}

// ---- Runs ----

async fn start(
    node: &Arc<Node>,
    session: &Session,
    key: &str,
    devices: Option<Vec<String>>,
) -> Reply<AdminResponse> {
    let task = find_own(node, key, "started").await?;
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
    if let Some(id) = task.last_run
        && let Some(run) = node.store.run(id).await.map_err(internal)?
    {
        // Running anywhere in the tree, as far as this server knows.
        let view = run_view(node, &run).await;
        if view.state == RunState::Running {
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
    node.event(Severity::Info, EventKind::RunStarted, msg).await;
    node.log_appended();
    node.deliver_run(&started).await;
    Ok((started.run, skipped))
}

async fn stop(node: &Node, session: &Session, key: &str) -> Reply<AdminResponse> {
    let task = find_own(node, key, "stopped").await?;
    let Some(run_id) = task.last_run else {
        return Err(invalid(format!("task {:?} has never run", task.name)));
    };
    let stopped = node
        .store
        .stop_run(run_id, now_ms())
        .await
        .map_err(internal)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("run {run_id} is gone")))?;
    for device_id in &stopped.to_cancel {
        node.tell_device(device_id, ServerToAgent::Cancel { run_id })
            .await;
    }
    let msg = format!(
        "task {:?} run {run_id} stopped by {}; {} device(s) told to cancel",
        task.name,
        session.user,
        stopped.to_cancel.len()
    );
    node.event(Severity::Info, EventKind::RunStopped, msg).await;
    node.log_appended();
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

async fn results(
    node: &Node,
    key: &str,
    run: Option<RunId>,
    state: Option<DeviceState>,
    details: bool,
) -> Reply<AdminResponse> {
    let task = find(node, key).await?;
    let run = run_of(node, &task, run).await?;
    let mut records = node.store.run_records(run.run_id).await.map_err(internal)?;
    if let Some(state) = state {
        records.retain(|r| r.state == state);
    }
    if !details {
        for r in &mut records {
            r.details = None;
        }
    }
    Ok(AdminResponse::TaskResults { run, records })
}

/// The records of a run held by a server below this one: the row that server reported
/// names its own task and run, and the request goes to it through the tree.
async fn results_below(
    node: &Node,
    session: &Session,
    key: &str,
    run: Option<RunId>,
    state: Option<DeviceState>,
    details: bool,
    server: &str,
) -> Reply<AdminResponse> {
    let task = find(node, key).await?;
    let run = run_of(node, &task, run).await?;
    let path: Vec<String> = server
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if path.is_empty() {
        return results(node, key, Some(run.run_id), state, details).await;
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
        state,
        details,
        server: None,
    });
    Ok(node
        .forward(&path, &session.user, session.role, request)
        .await)
}

impl Node {
    /// Whether a run is over in this server's whole subtree, as far as this server knows:
    /// servers below that have not reported count as pending.
    pub(super) async fn subtree_complete(&self, run: &RunRecord) -> bool {
        if run.stopped.is_some() {
            return true;
        }
        let rows = match self.store.stats_rows(run.run_id).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("cannot read the statistics of run {}: {e}", run.run_id);
                return false;
            }
        };
        let table = StatsTable::from_rows(rows);
        let mut totals = table.totals(&run.counters);
        add_counters(
            &mut totals,
            &table.pending_for_missing(&expected_servers(self, run).await),
        );
        totals.finished() == totals.total()
    }

    /// Sends a started run's order to its devices connected now (the others get the stored
    /// order when they connect), or begins a server task.
    pub(super) async fn deliver_run(self: &Arc<Self>, started: &StartedRun) {
        match &started.order {
            Some(order) => {
                let senders: Vec<_> = {
                    let live = lock(&self.devices);
                    started
                        .device_ids
                        .iter()
                        .filter_map(|id| live.get(id).map(|d| d.tx.clone()))
                        .collect()
                };
                for tx in senders {
                    let _ = tx.send(ServerToAgent::Run(order.clone())).await;
                }
            }
            None => {
                let node = self.clone();
                let task = started.task.clone();
                let run_id = started.run.run_id;
                let span = tracing::info_span!("server task", task = %task.name, run_id);
                tokio::spawn(
                    async move { run_server_task(&node, &task, run_id).await }.instrument(span),
                );
            }
        }
    }

    /// A device user's change to a local task of that device: applied unless an
    /// administrator changed the task since the revision the user started from. Either way
    /// the device is sent the task as it now is.
    pub(super) async fn device_edit(
        &self,
        device_id: &str,
        task_id: u64,
        base_revision: u32,
        schedule: crate::model::schedule::Schedule,
    ) {
        let decided = self
            .store
            .device_edit(task_id, device_id, base_revision, schedule, now_ms())
            .await;
        let (task, decision) = match decided {
            Ok(Some(decided)) => decided,
            Ok(None) => {
                let msg = format!(
                    "device {device_id} sent a change to task #{task_id}, which is not one of its local tasks; ignored"
                );
                self.event(Severity::Warning, EventKind::TaskChanged, msg)
                    .await;
                return;
            }
            Err(e) => {
                tracing::error!(task_id, "cannot apply a device user's change: {e}");
                return;
            }
        };
        let msg = match decision {
            DeviceEdit::Apply => format!(
                "local task {:?} (#{task_id}) changed by the user of device {device_id}: schedule {}",
                task.name, task.settings.schedule
            ),
            DeviceEdit::AdministratorWins => format!(
                "the change by the user of device {device_id} to local task {:?} (#{task_id}) was dropped: an administrator changed it since revision {base_revision}, and the administrator's change wins",
                task.name
            ),
        };
        self.event(Severity::Info, EventKind::TaskChanged, msg)
            .await;
        if let Some(def) = local_def(&task) {
            self.tell_device(device_id, ServerToAgent::LocalTask(def))
                .await;
        }
    }

    /// Tells a device about a local task of its own as it is now (or that it is gone).
    pub(super) async fn push_local_task(&self, task: &TaskRecord, deleted: bool) {
        let Scope::Local { device_id } = &task.scope else {
            return;
        };
        let msg = match local_def(task) {
            Some(_) if deleted => ServerToAgent::LocalTaskDeleted { task_id: task.id },
            Some(def) => ServerToAgent::LocalTask(def),
            None => return,
        };
        self.tell_device(device_id, msg).await;
    }

    /// The local tasks of a device, for the device as it connects.
    pub(super) async fn local_tasks_of(&self, device_id: &str) -> Vec<LocalTaskDef> {
        match self.store.tasks().await {
            Ok(tasks) => tasks
                .iter()
                .filter(|t| matches!(&t.scope, Scope::Local { device_id: d } if d == device_id))
                .filter_map(local_def)
                .collect(),
            Err(e) => {
                tracing::error!("cannot read tasks: {e}");
                Vec::new()
            }
        }
    }

    /// Sends a message to a device if it is connected now.
    pub(super) async fn tell_device(&self, device_id: &str, msg: ServerToAgent) {
        let tx = lock(&self.devices).get(device_id).map(|d| d.tx.clone());
        if let Some(tx) = tx {
            let _ = tx.send(msg).await;
        }
    }

    /// Records a device's report about a run, and announces it as the task asks.
    pub(super) async fn device_progress(
        &self,
        device_id: &str,
        run_id: RunId,
        progress: DeviceProgress,
    ) -> Result<(), StoreError> {
        let Some(done) = self
            .store
            .record_progress(device_id, run_id, progress, now_ms())
            .await?
        else {
            return Ok(());
        };
        if self.reports_up() {
            let complete = done.run_finished && self.subtree_complete(&done.run).await;
            self.stats_changed_at(run_id, complete);
        }
        let record = &done.record;
        if record.state.is_finished() {
            let severity = match record.state {
                DeviceState::Failed => Severity::Error,
                DeviceState::Warning => Severity::Warning,
                _ => Severity::Info,
            };
            let wanted = match done.run.notify {
                Notify::All => true,
                Notify::ErrorsOnly => severity != Severity::Info,
                Notify::Off => false,
            };
            if wanted {
                let msg = format!(
                    "task {:?} run {run_id} on {}: {}{}",
                    done.run.task_name,
                    record.device_name,
                    record.state.as_str(),
                    if record.description.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", record.description)
                    }
                );
                self.event(severity, EventKind::DeviceResult, msg).await;
            }
        }
        if done.run_finished {
            let c = &done.run.counters;
            let msg = format!(
                "task {:?} run {run_id} finished: {} succeeded, {} warning, {} failed of {}; {} need a restart",
                done.run.task_name,
                c.count(DeviceState::Succeeded),
                c.count(DeviceState::Warning),
                c.count(DeviceState::Failed),
                c.total(),
                c.need_restart
            );
            self.event(Severity::Info, EventKind::RunFinished, msg)
                .await;
        }
        Ok(())
    }
}

// ---- Administration Server tasks ----

async fn run_server_task(node: &Node, task: &TaskRecord, run_id: RunId) {
    let started = now_ms();
    let report = |progress| node.device_progress(SERVER_TARGET, run_id, progress);
    if let Err(e) = report(DeviceProgress::Started { at: started }).await {
        tracing::error!("cannot record the start of a server task: {e}");
    }
    let outcome = match &task.task_type {
        TaskType::Backup { directory } => backup(node, directory.as_deref()).await,
        TaskType::Maintenance => match node.store.compact().await {
            Ok(r) => Outcome {
                state: DeviceState::Succeeded,
                description: format!(
                    "database compacted: {} bytes freed ({} -> {} bytes)",
                    r.freed(),
                    r.bytes_before,
                    r.bytes_after
                ),
                progress: 100,
                need_restart: false,
                details: crate::model::task::Details::None,
            },
            Err(e) => Outcome::failed(format!("maintenance failed: {e}")),
        },
        TaskType::Device(_) => Outcome::failed("a device task cannot run on the server"),
    };
    let msg = format!(
        "{} task {:?}: {}",
        task.task_type.type_name(),
        task.name,
        outcome.description
    );
    let severity = if outcome.state == DeviceState::Succeeded {
        Severity::Info
    } else {
        Severity::Error
    };
    node.event(severity, EventKind::ServerTask, msg).await;
    let finished = DeviceProgress::Finished {
        started,
        finished: now_ms(),
        outcome,
    };
    if let Err(e) = report(finished).await {
        tracing::error!("cannot record the end of a server task: {e}");
    }
}

async fn backup(node: &Node, directory: Option<&str>) -> Outcome {
    let data = &node.config.data;
    let dir = match directory {
        Some(dir) => std::path::PathBuf::from(dir),
        None => data
            .parent()
            .map(|p| p.join("backups"))
            .unwrap_or_else(|| "backups".into()),
    };
    let stem = data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| node.name().to_string());
    let stamp = format_time(now_ms())
        .replace([' ', ':'], "-")
        .trim_end_matches("-UTC")
        .to_string();
    let path = dir.join(format!("{stem}-{stamp}.redb"));
    match node.store.backup(&path).await {
        Ok(r) => Outcome {
            state: DeviceState::Succeeded,
            description: format!(
                "backup written to {}: {} tables, {} rows, {} bytes",
                r.path.display(),
                r.tables,
                r.rows,
                r.bytes
            ),
            progress: 100,
            need_restart: false,
            details: crate::model::task::Details::None,
        },
        Err(e) => Outcome::failed(format!("backup to {} failed: {e}", path.display())),
    }
}

/// Prunes task results older than their task's store-history days, now and every hour.
pub(super) async fn prune_loop(node: Arc<Node>) {
    loop {
        match node.store.prune_history(now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                let msg = format!("{n} run(s) older than their task's history term pruned");
                node.event(Severity::Info, EventKind::ServerTask, msg).await;
            }
            Err(e) => tracing::error!("cannot prune task history: {e}"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

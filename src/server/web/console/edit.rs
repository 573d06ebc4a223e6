//! Changes made in a task's properties: each tab's form becomes the `TaskChanges` of
//! `task edit` (only what differs from the task as it is, so that a Save changes nothing
//! else), the Security tab's form a rights change, and Pause and Resume.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::html;

use super::properties::show;
use super::wizard::{Draft, payload_of, scope_of};
use super::{Refusal, Session, field, layout};
use crate::model::schedule::{
    LocalDateTime, RandomDelay, Schedule, ScheduleOptions, parse_time_limit,
};
use crate::model::scope::Scope;
use crate::model::task::{Notify, RestartPolicy, TaskPayload, TaskType};
use crate::server::web::Web;
use crate::wire::msg::{AccountSpec, AdminRequest, Secret, TaskChanges, TaskRequest, TaskView};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/tasks/{task}/edit", post(edit))
        .route("/tasks/{task}/rights", post(set_rights))
        .route("/tasks/{task}/pause", post(pause))
        .route("/tasks/{task}/resume", post(resume))
}

/// Every group's path by its id.
pub(super) async fn group_paths(session: &Session) -> Result<BTreeMap<u64, String>, Refusal> {
    let groups = super::groups::all_groups(session).await?;
    Ok(groups.into_iter().map(|g| (g.id, g.path)).collect())
}

/// Whether the task's scope can be given again: not a local task's device, nor the server.
pub(super) fn scope_editable(task: &TaskView) -> bool {
    !task.task_type.runs_on_server()
        && matches!(
            task.scope,
            Scope::Group { .. } | Scope::DeviceList { .. } | Scope::Selection(_)
        )
}

/// The task's type and scope as the New task wizard's answers, so that its pages show them.
pub(super) fn draft_of(task: &TaskView, groups: &BTreeMap<u64, String>) -> Draft {
    let mut d = BTreeMap::new();
    let mut put = |name: &str, value: String| {
        d.insert(name.to_string(), value);
    };
    put("type", task.task_type.type_name().into());
    match &task.task_type {
        TaskType::Device(TaskPayload::Command {
            program,
            args,
            time_limit_secs,
        }) => {
            put("program", program.clone());
            put("args", args.join("\n"));
            put("time_limit", time_limit_secs.to_string());
        }
        TaskType::Device(TaskPayload::Scan { paths, blocklist }) => {
            put("paths", paths.join("\n"));
            put("blocklist", blocklist.join("\n"));
        }
        TaskType::Device(TaskPayload::Simulate {
            duration_ms,
            succeeded,
            warning,
            failed,
            need_restart_percent,
        }) => {
            put("duration_ms", duration_ms.to_string());
            put("succeeded", succeeded.to_string());
            put("warning", warning.to_string());
            put("failed", failed.to_string());
            put("need_restart_percent", need_restart_percent.to_string());
        }
        TaskType::Backup { directory } => put("directory", directory.clone().unwrap_or_default()),
        TaskType::Device(TaskPayload::Inventory) | TaskType::Maintenance => {}
    }
    let on = |yes: bool| if yes { "on" } else { "" }.to_string();
    match &task.scope {
        Scope::Group {
            group_id,
            include_subgroups,
            include_secondaries,
        } => {
            put("scope", "group".into());
            let path = groups.get(group_id).cloned();
            put("group", path.unwrap_or_else(|| format!("#{group_id}")));
            put("subgroups", on(*include_subgroups));
            put("secondaries", on(*include_secondaries));
        }
        Scope::DeviceList { entries, .. } => {
            put("scope", "devices".into());
            put("devices", entries.join("\n"));
        }
        Scope::Selection(selection) => {
            put("scope", "selection".into());
            let conditions = selection.conditions(|id| groups.get(&id).cloned());
            put("conditions", conditions.join("\n"));
        }
        Scope::Local { .. } | Scope::Server => {}
    }
    Draft(d)
}

/// The form's answers with the task's type, which a tab does not change.
fn draft_from(task: &TaskView, fields: &[(String, String)]) -> Draft {
    let mut draft = Draft(fields.iter().cloned().collect());
    draft
        .0
        .insert("type".into(), task.task_type.type_name().into());
    draft
}

async fn edit(
    session: Session,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let current = show(&session, &task).await?;
    let section = field(&fields, "section").unwrap_or_default();
    let changes = match section.as_str() {
        "settings" => settings_changes(&current, &fields),
        "schedule" => schedule_changes(&current, &fields),
        "notifications" => notification_changes(&current, &fields),
        "scope" => scope_of(&draft_from(&current, &fields)).map(|scope| TaskChanges {
            scope: Some(scope),
            ..TaskChanges::default()
        }),
        _ => Err("the form names no tab of the task's properties".into()),
    };
    let mut changes = match changes {
        Ok(changes) => changes,
        Err(problem) => return Ok(problem_page(&session, &current, &section, &problem)),
    };
    let tab = format!("/tasks/{}?tab={section}", current.id);
    if changes == TaskChanges::default() {
        // Nothing differs: no new revision.
        return Ok(Redirect::to(&format!("{tab}&unchanged=1")).into_response());
    }
    changes.comment = field(&fields, "comment")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let request = AdminRequest::Task(TaskRequest::Edit {
        task: current.id.to_string(),
        changes: Box::new(changes),
    });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to(&format!("{tab}&saved=1")).into_response()),
        Err(Refusal::Error(status, message)) => {
            let mut page = problem_page(&session, &current, &section, &message);
            *page.status_mut() = status;
            Ok(page)
        }
        Err(refusal) => Err(refusal),
    }
}

/// A change that cannot be made, in words, with the way back to the tab.
fn problem_page(session: &Session, task: &TaskView, tab: &str, problem: &str) -> Response {
    let body = html! {
        p.error role="alert" { (problem) }
        p { "Nothing was changed. " a href=(format!("/tasks/{}?tab={tab}", task.id)) { "Back to the task's properties" } }
    };
    (
        StatusCode::BAD_REQUEST,
        layout(&task.name, Some(session), body),
    )
        .into_response()
}

fn settings_changes(task: &TaskView, fields: &[(String, String)]) -> Result<TaskChanges, String> {
    let draft = draft_from(task, fields);
    let mut changes = TaskChanges::default();
    let name = draft.get("name").trim();
    if name != task.name {
        crate::model::check_display_name("task name", name)?;
        changes.name = Some(name.to_string());
    }
    let application = draft.get("application").trim();
    if !application.is_empty() && application != task.application {
        changes.application = Some(application.to_string());
    }
    let task_type = payload_of(&draft)?;
    if task_type != task.task_type {
        changes.task_type = Some(task_type);
    }
    if task.task_type.runs_on_server() {
        return Ok(changes);
    }
    let restart = restart_of(&draft)?;
    if restart != task.restart {
        changes.restart = Some(restart);
    }
    let account_name = draft.get("account_name").trim();
    let password = draft.get("account_password");
    changes.account = match draft.get("account") {
        "specified" if account_name.is_empty() => {
            return Err("name the account the task runs under".into());
        }
        // The same account and no new password: the password set stays.
        "specified"
            if Some(account_name) == task.account_name.as_deref() && password.is_empty() =>
        {
            None
        }
        "specified" => Some(Some(AccountSpec {
            name: account_name.to_string(),
            password: Some(password)
                .filter(|p| !p.is_empty())
                .map(|p| Secret(p.to_string())),
        })),
        _ if task.account_name.is_some() => Some(None),
        _ => None,
    };
    Ok(changes)
}

fn restart_of(draft: &Draft) -> Result<RestartPolicy, String> {
    match draft.get("restart") {
        "restart" => Ok(RestartPolicy::Restart),
        "ask" => {
            let repeat_minutes = draft
                .get("repeat_minutes")
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|m| (1..=1440).contains(m))
                .ok_or("repeat the prompt every 1 to 1440 minutes")?;
            let force_after_minutes = match draft.get("force_after_minutes").trim() {
                "" => None,
                text => Some(text.parse::<u32>().map_err(|_| {
                    format!("force the restart after: {text:?} is not a number of minutes")
                })?),
            };
            Ok(RestartPolicy::AskUser {
                repeat_minutes,
                force_after_minutes,
            })
        }
        _ => Ok(RestartPolicy::DoNotRestart),
    }
}

fn schedule_changes(task: &TaskView, fields: &[(String, String)]) -> Result<TaskChanges, String> {
    let get = |name: &str| field(fields, name).unwrap_or_default();
    let mut changes = TaskChanges::default();
    let schedule = Schedule::parse(&get("schedule"))?;
    if schedule != task.schedule {
        changes.schedule = Some(schedule);
    }
    let options = ScheduleOptions {
        // A check box that is not checked is not sent.
        run_missed: get("run_missed") == "on",
        random_delay: match get("random_delay").trim() {
            "" => RandomDelay::Off,
            text => RandomDelay::parse(text)?,
        },
        time_limit_secs: match get("time_limit").trim() {
            "" => None,
            text => parse_time_limit(text)?,
        },
        cancel_from: match get("cancel_from").trim() {
            "" => None,
            text => Some(LocalDateTime::parse(text)?),
        },
    };
    if options != task.schedule_options {
        changes.schedule_options = Some(options);
    }
    Ok(changes)
}

fn notification_changes(
    task: &TaskView,
    fields: &[(String, String)],
) -> Result<TaskChanges, String> {
    let mut changes = TaskChanges::default();
    let notify = match field(fields, "notify").as_deref() {
        Some("all") => Notify::All,
        Some("errors") => Notify::ErrorsOnly,
        Some("off") => Notify::Off,
        _ => return Err("choose which results the administrator is told of".into()),
    };
    if notify != task.notify {
        changes.notify = Some(notify);
    }
    let text = field(fields, "store_history_days").unwrap_or_default();
    let days = text
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("store task history: {text:?} is not a number of days"))?;
    if days != task.store_history_days {
        changes.store_history_days = Some(days);
    }
    Ok(changes)
}

/// Sets (or with `remove`, removes) one entry of the task's rights list.
async fn set_rights(
    session: Session,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let current = show(&session, &task).await?;
    let change = super::rights::change_of(&fields);
    let change = match change {
        Ok(change) => change,
        Err(problem) => return Ok(problem_page(&session, &current, "security", &problem)),
    };
    let request = AdminRequest::Task(TaskRequest::Rights {
        task: current.id.to_string(),
        change: Some(change),
    });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to(&format!("/tasks/{}?tab=security", current.id)).into_response()),
        Err(Refusal::Error(status, message)) => {
            let mut page = problem_page(&session, &current, "security", &message);
            *page.status_mut() = status;
            Ok(page)
        }
        Err(refusal) => Err(refusal),
    }
}

async fn pause(
    session: Session,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let request = TaskRequest::Pause { task: task.clone() };
    run_control(session, &task, body, request).await
}

async fn resume(
    session: Session,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let request = TaskRequest::Resume { task: task.clone() };
    run_control(session, &task, body, request).await
}

/// Pause or Resume of the task's run, then back to its properties.
async fn run_control(
    session: Session,
    task: &str,
    body: Bytes,
    request: TaskRequest,
) -> Result<Response, Refusal> {
    session.form(&body)?;
    session
        .call(Vec::new(), AdminRequest::Task(request))
        .await?;
    Ok(Redirect::to(&format!("/tasks/{}", super::tasks::encode(task))).into_response())
}

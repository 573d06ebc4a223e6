//! Tasks: the list grouped by application with its Status and next start and the Start and
//! Stop actions; a run's per-device results, of this server or of a secondary server. A
//! task's properties are in `properties.rs`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::{Refusal, Session, csrf_field, layout, time};
use crate::server::web::Web;
use crate::wire::msg::{
    AdminRequest, AdminResponse, NextStart, PAGE_MAX, RunView, TaskRequest, TaskView,
};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/action", post(super::transfer::action))
        .route("/tasks/{task}", get(super::properties::properties))
        .route("/tasks/{task}/results", get(results))
        .route("/tasks/{task}/start", post(start))
        .route("/tasks/{task}/stop", post(stop))
}

/// Every task (page by page, as the CLI reads them).
pub(super) async fn all_tasks(session: &Session) -> Result<Vec<TaskView>, Refusal> {
    let request = |after| {
        AdminRequest::Task(TaskRequest::List {
            after,
            limit: PAGE_MAX,
        })
    };
    session
        .all(request, |answer| match answer {
            AdminResponse::Tasks { tasks, next } => Some((tasks, next)),
            _ => None,
        })
        .await
}

pub(super) fn unexpected() -> Refusal {
    Refusal::Error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected answer".into(),
    )
}

/// The Status column: the last run's state and how far it is.
fn status(task: &TaskView) -> Markup {
    match &task.last_run {
        None => html! { "Never run" },
        Some(run) => html! {
            span class=(format!("state-{}", run.state.as_str())) { (state_words(run)) }
        },
    }
}

pub(super) fn state_words(run: &RunView) -> String {
    let c = &run.counters;
    let done = c.total() - c.by_state[0] - c.by_state[1] - c.by_state[2] - c.by_state[6];
    format!(
        "{}: {done} of {} devices finished",
        title_case(run.state.as_str()),
        c.total()
    )
}

fn title_case(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(super) fn next_start(task: &TaskView) -> String {
    match &task.next_start {
        None if task.schedule.is_timed() => "none to come".into(),
        None => "-".into(),
        Some(NextStart::DeviceTime(at)) => format!("{at}, each device's local time"),
        Some(NextStart::ServerTime { text, .. }) => format!("{text}, the server's time"),
    }
}

async fn list(session: Session) -> Result<Response, Refusal> {
    let tasks = all_tasks(&session).await?;
    let mut by_application: BTreeMap<&str, Vec<&TaskView>> = BTreeMap::new();
    for task in &tasks {
        by_application
            .entry(&task.application)
            .or_default()
            .push(task);
    }
    let running = tasks.iter().any(is_running);
    let body = html! {
        p { a.add href="/tasks/new" { "Add" } }
        @if tasks.is_empty() {
            p { "No tasks yet." }
        }
        form method="post" action="/tasks/action" {
            (csrf_field(&session))
            p.toolbar {
                button type="submit" name="action" value="start" { "Start" } " "
                button type="submit" name="action" value="stop" { "Stop" } " "
                button type="submit" name="action" value="copy" { "Copy" } " "
                button type="submit" name="action" value="export" { "Export" } " "
                button type="submit" name="action" value="delete" { "Delete" } " "
                a href="/tasks/import" { "Import" } " "
                a href="/tasks/deleted" { "Deleted tasks" }
                " " a.credentials href="/tasks/credentials" { "Manage credentials of accounts for starting tasks" }
            }
            @for (application, tasks) in &by_application {
                h2 { (application) }
                table.tasks {
                    thead { tr { th { "" } th { "Name" } th { "Type" } th { "Scope" } th { "Status" } th { "Next start" } } }
                    tbody {
                        @for task in tasks {
                            tr data-task=(task.name) {
                                td { input type="checkbox" name="task" value=(task.id) aria-label=(task.name); }
                                td { a href=(format!("/tasks/{}", task.id)) { (task.name) } }
                                td { (task.task_type.type_name()) }
                                td { (task.kind.as_str()) }
                                td.status { (status(task)) }
                                td { (next_start(task)) }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut response = layout("Tasks", Some(&session), body).into_response();
    if running {
        // Statuses move while a run goes: the list follows them without a script.
        response
            .headers_mut()
            .insert("refresh", axum::http::HeaderValue::from_static("2"));
    }
    Ok(response)
}

pub(super) fn is_running(task: &TaskView) -> bool {
    task.last_run
        .as_ref()
        .is_some_and(|r| matches!(r.state.as_str(), "running" | "paused"))
}

#[derive(serde::Deserialize)]
pub(super) struct ResultsQuery {
    run: Option<u64>,
    server: Option<String>,
    after: Option<String>,
}

async fn results(
    session: Session,
    Path(task): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Result<Response, Refusal> {
    let request = AdminRequest::Task(TaskRequest::Results {
        task: task.clone(),
        run: q.run,
        state: None,
        details: false,
        server: q.server.clone(),
        after: q.after,
        limit: PAGE_MAX,
    });
    let (run, records, next) = match session.call(Vec::new(), request).await? {
        AdminResponse::TaskResults { run, records, next } => (run, records, next),
        _ => return Err(unexpected()),
    };
    let whose = match &q.server {
        Some(server) => format!("devices of {server}"),
        None => format!("devices of {}", session.server_name()),
    };
    let body = html! {
        p { "Run " (run.run_id) " of " a href=(format!("/tasks/{task}")) { (run.task_name) } ": " (whose) }
        table.results {
            thead { tr { th { "Device" } th { "State" } th { "Description" } th { "Finished" } } }
            tbody {
                @for r in &records {
                    tr data-device=(r.device_name) {
                        td { (r.device_name) } td.state { (r.state.as_str()) }
                        td { (r.description) } td { (time(r.finished)) }
                    }
                }
            }
        }
        @if let Some(next) = next {
            @let server = q.server.as_deref().map(|s| format!("&server={}", encode(s))).unwrap_or_default();
            a href=(format!("/tasks/{task}/results?run={}{server}&after={}", run.run_id, encode(&next))) { "Next page" }
        }
    };
    Ok(layout("Results", Some(&session), body).into_response())
}

async fn start(
    session: Session,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    session.form(&body)?;
    let request = AdminRequest::Task(TaskRequest::Start {
        task: task.clone(),
        devices: None,
    });
    session.call(Vec::new(), request).await?;
    Ok(Redirect::to(&format!("/tasks/{}", encode(&task))).into_response())
}

async fn stop(
    session: Session,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    session.form(&body)?;
    let request = AdminRequest::Task(TaskRequest::Stop { task: task.clone() });
    session.call(Vec::new(), request).await?;
    Ok(Redirect::to(&format!("/tasks/{}", encode(&task))).into_response())
}

/// A query or path value, percent-encoded.
pub(super) fn encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

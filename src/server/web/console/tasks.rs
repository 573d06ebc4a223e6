//! Tasks: the list grouped by application with its Status and next start and the Start and
//! Stop actions; a task's properties in tabs (General with the Results link and the
//! Statistics from secondary Servers, Settings, Schedule, Notifications, Revision history);
//! a run's per-device results, of this server or of a secondary server.

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
        .route("/tasks/{task}", get(properties))
        .route("/tasks/{task}/results", get(results))
        .route("/tasks/{task}/start", post(start))
        .route("/tasks/{task}/stop", post(stop))
}

/// Every task (page by page, as the CLI reads them).
pub(super) async fn all_tasks(session: &Session) -> Result<Vec<TaskView>, Refusal> {
    let mut tasks = Vec::new();
    let mut after = None;
    loop {
        let request = AdminRequest::Task(TaskRequest::List {
            after,
            limit: PAGE_MAX,
        });
        match session.call(Vec::new(), request).await? {
            AdminResponse::Tasks { tasks: page, next } => {
                tasks.extend(page);
                match next {
                    Some(next) => after = Some(next),
                    None => return Ok(tasks),
                }
            }
            _ => return Err(unexpected()),
        }
    }
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

fn state_words(run: &RunView) -> String {
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

fn next_start(task: &TaskView) -> String {
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
                a href="/tasks/import" { "Import" }
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

fn is_running(task: &TaskView) -> bool {
    task.last_run
        .as_ref()
        .is_some_and(|r| matches!(r.state.as_str(), "running" | "paused"))
}

/// Start, or Stop while a run is going.
fn actions(session: &Session, task: &TaskView) -> Markup {
    let (action, label) = if is_running(task) {
        ("stop", "Stop")
    } else {
        ("start", "Start")
    };
    html! {
        form.inline method="post" action=(format!("/tasks/{}/{action}", task.id)) {
            (csrf_field(session))
            button type="submit" { (label) }
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Tab {
    tab: Option<String>,
}

async fn properties(
    session: Session,
    Path(task): Path<String>,
    Query(tab): Query<Tab>,
) -> Result<Response, Refusal> {
    let shown = match session
        .call(
            Vec::new(),
            AdminRequest::Task(TaskRequest::Show { task: task.clone() }),
        )
        .await?
    {
        AdminResponse::Task(view) => *view,
        _ => return Err(unexpected()),
    };
    let tab = tab.tab.unwrap_or_else(|| "general".into());
    let tabs = [
        ("general", "General"),
        ("settings", "Settings"),
        ("schedule", "Schedule"),
        ("notifications", "Notifications"),
        ("history", "Revision history"),
    ];
    let content = match tab.as_str() {
        "settings" => settings(&shown),
        "schedule" => html! {
            table { tr { th { "Scheduled start" } td { (shown.schedule) } }
                    tr { th { "Options" } td { (shown.schedule_options) } }
                    tr { th { "Next start" } td { (next_start(&shown)) } } }
        },
        "notifications" => html! {
            table { tr { th { "Notify about" } td { (format!("{:?}", shown.notify)) } }
                    tr { th { "Keep results" } td { (shown.store_history_days) " days" } } }
        },
        "history" => history(&session, &shown).await?,
        _ => general(&session, &shown),
    };
    let running = is_running(&shown);
    let body = html! {
        p { (shown.kind.as_str()) ", " (shown.task_type.type_name()) ", revision " (shown.revision) }
        p { (actions(&session, &shown)) }
        nav.tabs {
            @for (id, label) in tabs {
                a class=(if id == tab { "on" } else { "" })
                  href=(format!("/tasks/{}?tab={id}", shown.id)) { (label) }
            }
        }
        (content)
    };
    let mut response = layout(&shown.name, Some(&session), body).into_response();
    if running {
        // A running run's statistics move: the page follows them without a script.
        response
            .headers_mut()
            .insert("refresh", axum::http::HeaderValue::from_static("2"));
    }
    Ok(response)
}

/// General: the last run's state and counts, the Results link and the Statistics from
/// secondary Servers, each row leading to that server's per-device results.
fn general(session: &Session, task: &TaskView) -> Markup {
    let _ = session;
    html! {
        table {
            tr { th { "Scope" } td { (task.scope_text) } }
            tr { th { "Application" } td { (task.application) } }
            tr { th { "Changed by" } td { (task.changed_by) " at " (time(Some(task.modified))) } }
        }
        @match &task.last_run {
            None => p { "The task has not run yet." },
            Some(run) => {
                h2 { "Status" }
                p.run-status { span class=(format!("state-{}", run.state.as_str())) { (state_words(run)) } }
                (counts_table(&run.counters))
                p { a.results href=(format!("/tasks/{}/results?run={}", task.id, run.run_id)) { "Results" } }
                h2 { "Statistics from secondary Servers" }
                table.servers {
                    thead { tr { th { "Server" } th { "Devices" } th { "Succeeded" } th { "Warning" } th { "Failed" } th { "Not finished" } } }
                    tbody {
                        @for row in &run.servers {
                            @let c = &row.counters;
                            @let below = row.path.split_once('/').map(|(_, rest)| rest.to_string());
                            tr data-server=(row.path) {
                                td {
                                    @match &below {
                                        Some(path) => a href=(format!("/tasks/{}/results?run={}&server={}", task.id, run.run_id, encode(path))) { (row.path) },
                                        None => a href=(format!("/tasks/{}/results?run={}", task.id, run.run_id)) { (row.path) },
                                    }
                                }
                                td { (c.total()) }
                                td { (c.by_state[3]) }
                                td { (c.by_state[4]) }
                                td { (c.by_state[5]) }
                                td { (c.total() - c.by_state[3] - c.by_state[4] - c.by_state[5]) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn counts_table(c: &crate::model::task::RunCounters) -> Markup {
    html! {
        table.counts {
            tr { @for state in crate::model::task::DeviceState::ALL { th { (state.as_str()) } } }
            tr { @for n in c.by_state { td { (n) } } }
        }
    }
}

fn settings(task: &TaskView) -> Markup {
    let parameters = serde_json::to_string_pretty(&task.task_type).unwrap_or_default();
    html! {
        table {
            tr { th { "Type" } td { (task.task_type.type_name()) } }
            tr { th { "Parameters" } td { pre { (parameters) } } }
            tr { th { "Account" } td { (task.account_name.as_deref().unwrap_or("the agent's")) } }
            tr { th { "Restart" } td { (format!("{:?}", task.restart)) } }
        }
    }
}

async fn history(session: &Session, task: &TaskView) -> Result<Markup, Refusal> {
    let request = AdminRequest::Task(TaskRequest::History {
        task: task.id.to_string(),
    });
    let revisions = match session.call(Vec::new(), request).await? {
        AdminResponse::Revisions(revisions) => revisions,
        _ => return Err(unexpected()),
    };
    Ok(html! {
        table.history {
            thead { tr { th { "Revision" } th { "When" } th { "By" } th { "What" } th { "Comment" } } }
            tbody {
                @for r in &revisions {
                    tr { td { (r.revision) } td { (time(Some(r.at))) } td { (r.by) }
                         td { (format!("{:?}", r.action)) } td { (r.comment.as_deref().unwrap_or("")) } }
                }
            }
        }
    })
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

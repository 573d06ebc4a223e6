//! A task's properties window: tabs General (the Results link and the Statistics from
//! secondary Servers), Settings, Schedule (with the advanced options), Notifications (and
//! Store task history), Scope, Security and Revision history. Each tab but General and the
//! history is a form that changes the task as `task edit` does (`edit.rs`).

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::edit::{self, draft_of};
use super::tasks::{encode, is_running, next_start, state_words, unexpected};
use super::{Refusal, Session, csrf_field, layout, time};
use crate::model::schedule::RandomDelay;
use crate::model::task::{Notify, RestartPolicy, TaskType};
use crate::wire::msg::{AdminRequest, AdminResponse, RightsView, TaskRequest, TaskView};

#[derive(serde::Deserialize)]
pub(super) struct Tab {
    tab: Option<String>,
    /// Set after a change was saved: the page says so.
    saved: Option<String>,
    /// Set after a Save that changed nothing.
    unchanged: Option<String>,
}

const TABS: [(&str, &str); 7] = [
    ("general", "General"),
    ("settings", "Settings"),
    ("schedule", "Schedule"),
    ("notifications", "Notifications"),
    ("scope", "Scope"),
    ("security", "Security"),
    ("history", "Revision history"),
];

pub(super) async fn show(session: &Session, task: &str) -> Result<TaskView, Refusal> {
    let request = AdminRequest::Task(TaskRequest::Show {
        task: task.to_string(),
    });
    match session.call(Vec::new(), request).await? {
        AdminResponse::Task(view) => Ok(*view),
        _ => Err(unexpected()),
    }
}

pub(super) async fn properties(
    session: Session,
    Path(task): Path<String>,
    Query(tab): Query<Tab>,
) -> Result<Response, Refusal> {
    let shown = show(&session, &task).await?;
    let current = tab.tab.unwrap_or_else(|| "general".into());
    let content = match current.as_str() {
        "settings" => settings(&session, &shown),
        "schedule" => schedule(&session, &shown),
        "notifications" => notifications(&session, &shown),
        "scope" => scope(&session, &shown, &edit::group_paths(&session).await?),
        "security" => security(&session, &shown, &rights(&session, &shown).await?),
        "history" => super::revisions::history(&session, &shown).await?,
        _ => general(&shown),
    };
    let running = is_running(&shown);
    let body = html! {
        p { (shown.kind.as_str()) ", " (shown.task_type.type_name()) ", revision " (shown.revision) }
        @if tab.saved.is_some() {
            p.notice role="status" { "Saved: the task is at revision " (shown.revision) "." }
        }
        @if tab.unchanged.is_some() {
            p.notice role="status" { "Nothing differs from the task as it is: no new revision." }
        }
        p { (actions(&session, &shown)) }
        nav.tabs {
            @for (id, label) in TABS {
                a class=(if id == current { "on" } else { "" })
                  href=(format!("/tasks/{}?tab={id}", shown.id)) { (label) }
            }
        }
        (content)
    };
    let mut response = layout(&shown.name, Some(&session), body).into_response();
    if running && current == "general" {
        // A running run's statistics move: the page follows them without a script (not a
        // form's tab, which would lose what is being typed).
        response
            .headers_mut()
            .insert("refresh", axum::http::HeaderValue::from_static("2"));
    }
    Ok(response)
}

/// Start, or Pause and Stop while a run goes, or Resume and Stop while it is paused.
fn actions(session: &Session, task: &TaskView) -> Markup {
    let state = task.last_run.as_ref().map(|r| r.state.as_str());
    let buttons: &[(&str, &str)] = match state {
        Some("running") => &[("pause", "Pause"), ("stop", "Stop")],
        Some("paused") => &[("resume", "Resume"), ("stop", "Stop")],
        _ => &[("start", "Start")],
    };
    html! {
        @for (action, label) in buttons {
            form.inline method="post" action=(format!("/tasks/{}/{action}", task.id)) {
                (csrf_field(session))
                button type="submit" { (label) }
            } " "
        }
    }
}

/// General: the last run's state and counts, the Results link and the Statistics from
/// secondary Servers, each row leading to that server's per-device results.
fn general(task: &TaskView) -> Markup {
    html! {
        table {
            tr { th { "Scope" } td { (task.scope_text) } }
            tr { th { "Application" } td { (task.application) } }
            tr { th { "Next start" } td { (next_start(task)) } }
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

/// A tab's form: its section, its fields, a comment for the revision history and Save.
fn edit_form(session: &Session, task: &TaskView, section: &str, fields: Markup) -> Markup {
    html! {
        form.edit method="post" action=(format!("/tasks/{}/edit", task.id)) {
            (csrf_field(session))
            input type="hidden" name="section" value=(section);
            (fields)
            p { label { "Comment (kept in the revision history) " input name="comment" size="50"; } }
            p { button type="submit" { "Save" } }
        }
    }
}

/// Settings: the name, the application, the type's parameters, the restart and the account.
fn settings(session: &Session, task: &TaskView) -> Markup {
    // The parameters only: the scope (which needs the group paths) is another tab's.
    let draft = draft_of(task, &std::collections::BTreeMap::new());
    let (_, parameters) = super::wizard::fields(&draft, 1, false);
    let device_task = matches!(task.task_type, TaskType::Device(_));
    let (restart, repeat, force) = match &task.restart {
        RestartPolicy::DoNotRestart => ("none", String::new(), String::new()),
        RestartPolicy::Restart => ("restart", String::new(), String::new()),
        RestartPolicy::AskUser {
            repeat_minutes,
            force_after_minutes,
        } => (
            "ask",
            repeat_minutes.to_string(),
            force_after_minutes
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ),
    };
    let specified = task.account_name.is_some();
    let fields = html! {
        p { label { "Task name " input name="name" value=(task.name) required; } }
        p { label { "Application " input name="application" value=(task.application); } }
        h2 { "Task type: " (task.task_type.type_name()) }
        (parameters)
        @if device_task {
            h2 { "Operating system restart" }
            p { label { "When a run needs a restart "
                select name="restart" {
                    option value="none" selected[restart == "none"] { "Do not restart the operating system" }
                    option value="restart" selected[restart == "restart"] { "Restart the operating system" }
                    option value="ask" selected[restart == "ask"] { "Prompt the user for action" }
                }
            } }
            p { label { "Repeat the prompt every (minutes) " input name="repeat_minutes" value=(repeat) size="5"; } " "
                label { "Force the restart after (minutes, optional) " input name="force_after_minutes" value=(force) size="5"; } }
            h2 { "Account" }
            p { label { input type="radio" name="account" value="default" checked[!specified]; " The agent's account" } }
            p { label { input type="radio" name="account" value="specified" checked[specified]; " A specified account" } }
            p { label { "Account " input name="account_name" value=(task.account_name.as_deref().unwrap_or("")); } " "
                label { "Password " input type="password" name="account_password" autocomplete="new-password"; }
                @if task.password_set { " A password is set: leave the field empty to keep it." } }
        }
    };
    edit_form(session, task, "settings", fields)
}

/// Schedule: the scheduled start and the advanced options.
fn schedule(session: &Session, task: &TaskView) -> Markup {
    let o = &task.schedule_options;
    let delay = match o.random_delay {
        RandomDelay::Off => "off".to_string(),
        RandomDelay::Automatic => "auto".to_string(),
        RandomDelay::Within { seconds } => duration_spec(seconds),
    };
    let limit = o
        .time_limit_secs
        .map(duration_spec)
        .unwrap_or_else(|| "none".into());
    let cancel = o.cancel_from.map(|c| c.to_string()).unwrap_or_default();
    let fields = html! {
        table {
            tr { th { "Now" } td { (task.schedule) } }
            tr { th { "Next start" } td { (next_start(task)) } }
        }
        p { label { "Scheduled start " input name="schedule" value=(task.schedule.spec()) size="40"; } }
        p.hint { "manual, immediately, app-start, after:TASK_ID, once:YYYY-MM-DDTHH:MM, every:N(m|h|d|w)@YYYY-MM-DDTHH:MM, weekly:mon,fri@HH:MM, monthly:DAY@HH:MM, monthday:first-mon@HH:MM" }
        h2 { "Advanced" }
        p { label { input type="checkbox" name="run_missed" checked[o.run_missed]; " Run missed tasks" } }
        p { label { "Use automatically randomized delay for task starts: off, auto, or a window (15m, 2h) " input name="random_delay" value=(delay) size="8"; } }
        p { label { "Stop the task if it runs longer than: none, or a duration (90s, 15m, 2h) " input name="time_limit" value=(limit) size="8"; } }
        p { label { "Cancel the schedule from (YYYY-MM-DDTHH:MM, empty: never) " input name="cancel_from" value=(cancel) size="18"; } }
    };
    edit_form(session, task, "schedule", fields)
}

/// A duration as an administrator types it (`parse_duration` reads it back): `2h`, `15m`,
/// `90s`.
fn duration_spec(seconds: u32) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Notifications: which results the administrator is told of, and how long results stay.
fn notifications(session: &Session, task: &TaskView) -> Markup {
    let fields = html! {
        h2 { "Notify administrator of task execution results" }
        @for (value, label, notify) in [("all", "Notify administrator of task execution results (every device's result)", Notify::All),
                                        ("errors", "Notify of errors only", Notify::ErrorsOnly),
                                        ("off", "Do not notify", Notify::Off)] {
            p { label { input type="radio" name="notify" value=(value) checked[task.notify == notify]; " " (label) } }
        }
        h2 { "Store task history" }
        p { label { "Store the results on the Administration Server for (days) " input name="store_history_days" value=(task.store_history_days) size="5"; } }
    };
    edit_form(session, task, "notifications", fields)
}

/// Scope: the devices the task is assigned to, as the wizard asked for them.
fn scope(
    session: &Session,
    task: &TaskView,
    groups: &std::collections::BTreeMap<u64, String>,
) -> Markup {
    if !edit::scope_editable(task) {
        return html! { p { "Assigned to " (task.scope_text) "; this scope cannot be changed." } };
    }
    let (_, fields) = super::wizard::fields(&draft_of(task, groups), 2, false);
    let fields = html! {
        p { "Now: " (task.scope_text) }
        (fields)
    };
    edit_form(session, task, "scope", fields)
}

async fn rights(session: &Session, task: &TaskView) -> Result<RightsView, Refusal> {
    let request = AdminRequest::Task(TaskRequest::Rights {
        task: task.id.to_string(),
        change: None,
    });
    match session.call(Vec::new(), request).await? {
        AdminResponse::Rights(view) => Ok(*view),
        _ => Err(unexpected()),
    }
}

/// Security: the rights lists that apply, from the root group down, and a form to set an
/// entry of the task's own list (a group task's is its group's).
fn security(session: &Session, task: &TaskView, view: &RightsView) -> Markup {
    let own = view.follows_group.as_deref().unwrap_or(&task.name);
    html! {
        @if let Some(group) = &view.follows_group {
            p { "A group task has the rights of its group, " (group) ": a change here changes the group's list." }
        }
        (super::rights::section(session, view, own, &format!("/tasks/{}/rights", task.id), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_shows_as_it_is_typed_and_reads_back() {
        for (seconds, text) in [(600, "10m"), (7200, "2h"), (90, "90s"), (3660, "61m")] {
            assert_eq!(duration_spec(seconds), text);
            let back = crate::model::schedule::parse_duration(text, "test");
            assert_eq!(back, Ok(seconds));
        }
    }
}

//! The New task wizard: one step per page (application and type, settings, scope, schedule,
//! account, finish), Back and Next, the answers of every step carried in the form, each
//! step checked before the next one shows; but the task account's password is held on the
//! server (`drafts.rs`) and the pages carry its draft id only. Finish creates the task as
//! `task create` does; with "Open task details when creation is complete" the task's
//! properties open, otherwise the task list. Started from Tasks (Add) or from Managed devices (Run task, Add a new task)
//! with the devices checked as its scope.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::{Refusal, Session, csrf_field, layout};
use crate::model::schedule::{Schedule, ScheduleOptions};
use crate::model::task::{Notify, RestartPolicy, TaskPayload, TaskType};
use crate::server::web::Web;
use crate::wire::msg::{
    AccountSpec, AdminRequest, AdminResponse, ScopeSpec, Secret, TaskRequest, TaskSpec,
};

pub(super) fn router() -> Router<Web> {
    Router::new().route("/tasks/new", get(first).post(step))
}

/// The Account step, shown again when the password held has expired.
const ACCOUNT: usize = 4;
/// The hidden field that carries the draft id of the account's password.
const PASSWORD_DRAFT: &str = "account_password_draft";

const STEPS: [&str; 6] = [
    "Application and task type",
    "Settings",
    "Scope",
    "Schedule",
    "Account",
    "Finish task creation",
];

/// The answers so far, by field name.
#[derive(Default)]
pub(super) struct Draft(pub(super) BTreeMap<String, String>);

impl Draft {
    pub(super) fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    fn lines(&self, name: &str) -> Vec<String> {
        self.get(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn number(&self, name: &str, default: u32) -> Result<u32, String> {
        match self.get(name).trim() {
            "" => Ok(default),
            text => text
                .parse()
                .map_err(|_| format!("{name}: {text:?} is not a whole number")),
        }
    }

    fn on_server(&self) -> bool {
        matches!(self.get("type"), "backup" | "maintenance")
    }

    /// Every answer not shown on this page, so that it comes back with the next post.
    fn hidden(&self, shown: &[&str]) -> Markup {
        html! {
            @for (name, value) in &self.0 {
                @if !shown.contains(&name.as_str()) {
                    input type="hidden" name=(name) value=(value);
                }
            }
        }
    }
}

async fn first(session: Session) -> Result<Response, Refusal> {
    let mut draft = Draft::default();
    draft.0.insert("scope".into(), "group".into());
    draft.0.insert("group".into(), "Managed devices".into());
    draft.0.insert("subgroups".into(), "on".into());
    draft.0.insert("secondaries".into(), "on".into());
    draft.0.insert("schedule".into(), "manual".into());
    Ok(page(&session, &draft, 0, None))
}

/// Starts the wizard from Managed devices, with the devices checked as the scope.
pub(super) fn for_devices(session: &Session, devices: &[String]) -> Response {
    let mut draft = Draft::default();
    draft.0.insert("scope".into(), "devices".into());
    draft.0.insert("devices".into(), devices.join("\n"));
    draft.0.insert("schedule".into(), "manual".into());
    page(session, &draft, 0, None)
}

async fn step(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let mut draft = Draft::default();
    let (mut at, mut go) = (0usize, String::new());
    for (name, value) in fields {
        match name.as_str() {
            "csrf" => {}
            "step" => at = value.parse().unwrap_or(0).min(STEPS.len() - 1),
            "go" => go = value,
            _ => {
                draft.0.insert(name, value);
            }
        }
    }
    // The password goes to the drafts at once, whatever the button: no page carries it.
    if let Some(password) = draft.0.remove("account_password").filter(|p| !p.is_empty()) {
        if let Some(replaced) = draft.0.get(PASSWORD_DRAFT) {
            session.take_held(replaced);
        }
        let id = session.hold(password)?;
        draft.0.insert(PASSWORD_DRAFT.into(), id);
    }
    // A check box that is not checked is not sent: its page says it is off.
    for (page_of, name) in [(2, "subgroups"), (2, "secondaries"), (5, "open_details")] {
        if at == page_of && go != "back" && !draft.0.contains_key(name) {
            draft.0.insert(name.into(), String::new());
        }
    }
    if go == "back" {
        return Ok(page(&session, &draft, previous(&draft, at), None));
    }
    if let Err(problem) = check(&draft, at) {
        return Ok(page(&session, &draft, at, Some(&problem)));
    }
    if at + 1 < STEPS.len() {
        return Ok(page(&session, &draft, next(&draft, at), None));
    }
    let held = draft.0.get(PASSWORD_DRAFT).cloned();
    let password = match &held {
        Some(id) if draft.get("account") == "specified" => match session.held(id) {
            Some(password) => Some(password),
            None => {
                draft.0.remove(PASSWORD_DRAFT);
                let problem = "the password entered at the Account step is held for 30 minutes \
                               only and has expired: enter it again";
                return Ok(page(&session, &draft, ACCOUNT, Some(problem)));
            }
        },
        _ => None,
    };
    let spec = match spec_of(&draft, password) {
        Ok(spec) => spec,
        Err(problem) => return Ok(page(&session, &draft, at, Some(&problem))),
    };
    let request = AdminRequest::Task(TaskRequest::Create(Box::new(spec)));
    let created = match session.call(Vec::new(), request).await {
        Ok(AdminResponse::Task(view)) => view,
        Ok(_) => return Err(super::tasks::unexpected()),
        Err(Refusal::Error(_, message)) => return Ok(page(&session, &draft, at, Some(&message))),
        Err(refusal) => return Err(refusal),
    };
    if let Some(id) = held {
        session.take_held(&id);
    }
    if draft.get("open_details") == "on" {
        Ok(Redirect::to(&format!("/tasks/{}", created.id)).into_response())
    } else {
        Ok(Redirect::to("/tasks").into_response())
    }
}

/// Server tasks have no scope to choose.
fn next(draft: &Draft, at: usize) -> usize {
    if at == 1 && draft.on_server() {
        3
    } else {
        at + 1
    }
}

fn previous(draft: &Draft, at: usize) -> usize {
    if at == 3 && draft.on_server() {
        1
    } else {
        at.saturating_sub(1)
    }
}

/// What is wrong with the answers of step `at`, in words.
fn check(draft: &Draft, at: usize) -> Result<(), String> {
    match at {
        0 => {
            crate::model::check_display_name("task name", draft.get("name").trim())?;
            match draft.get("type") {
                "command" | "scan" | "inventory" | "simulate" | "backup" | "maintenance" => Ok(()),
                _ => Err("choose the task's type".into()),
            }
        }
        1 => payload_of(draft).map(|_| ()),
        2 => scope_of(draft).map(|_| ()),
        3 => Schedule::parse(draft.get("schedule")).map(|_| ()),
        ACCOUNT
            if draft.get("account") == "specified"
                && draft.get("account_name").trim().is_empty() =>
        {
            Err("name the account the task runs under".into())
        }
        _ => Ok(()),
    }
}

pub(super) fn payload_of(draft: &Draft) -> Result<TaskType, String> {
    let payload = match draft.get("type") {
        "command" => TaskPayload::Command {
            program: draft.get("program").trim().to_string(),
            args: draft.lines("args"),
            time_limit_secs: draft.number("time_limit", 3600)?,
        },
        "scan" => TaskPayload::Scan {
            paths: draft.lines("paths"),
            blocklist: draft.lines("blocklist"),
        },
        "inventory" => TaskPayload::Inventory,
        "simulate" => TaskPayload::Simulate {
            duration_ms: draft.number("duration_ms", 1000)?,
            succeeded: draft.number("succeeded", 1)?,
            warning: draft.number("warning", 0)?,
            failed: draft.number("failed", 0)?,
            need_restart_percent: u8::try_from(draft.number("need_restart_percent", 0)?)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or("devices needing a restart: a percentage, 0 to 100")?,
        },
        "backup" => {
            let directory =
                Some(draft.get("directory").trim().to_string()).filter(|d| !d.is_empty());
            return Ok(TaskType::Backup { directory });
        }
        "maintenance" => return Ok(TaskType::Maintenance),
        other => return Err(format!("{other:?} is not a task type")),
    };
    payload.check()?;
    Ok(TaskType::Device(payload))
}

pub(super) fn scope_of(draft: &Draft) -> Result<ScopeSpec, String> {
    if draft.on_server() {
        return Ok(ScopeSpec::Server);
    }
    match draft.get("scope") {
        "group" => Ok(ScopeSpec::Group {
            path: draft.get("group").trim().to_string(),
            include_subgroups: draft.get("subgroups") == "on",
            include_secondaries: draft.get("secondaries") == "on",
        }),
        "devices" => match draft.lines("devices") {
            entries if entries.is_empty() => Err("list at least one device".into()),
            entries => Ok(ScopeSpec::Devices { entries }),
        },
        "selection" => match draft.lines("conditions") {
            conditions if conditions.is_empty() => Err("give at least one condition".into()),
            conditions => Ok(ScopeSpec::Selection { conditions }),
        },
        _ => Err("choose the devices the task is assigned to".into()),
    }
}

/// The task the answers make, with the account's `password` taken from the drafts.
fn spec_of(draft: &Draft, password: Option<String>) -> Result<TaskSpec, String> {
    let account = match draft.get("account") {
        "specified" => Some(AccountSpec {
            name: draft.get("account_name").trim().to_string(),
            password: password.filter(|p| !p.is_empty()).map(Secret),
        }),
        _ => None,
    };
    let application = Some(draft.get("application").trim().to_string()).filter(|a| !a.is_empty());
    Ok(TaskSpec {
        name: draft.get("name").trim().to_string(),
        task_type: payload_of(draft)?,
        application,
        scope: scope_of(draft)?,
        restart: RestartPolicy::default(),
        schedule: Schedule::parse(draft.get("schedule"))?,
        schedule_options: ScheduleOptions::default(),
        account,
        notify: Notify::default(),
        store_history_days: 30,
        comment: Some("created with the New task wizard".into()),
    })
}

fn page(session: &Session, draft: &Draft, at: usize, problem: Option<&str>) -> Response {
    let held = draft
        .0
        .get(PASSWORD_DRAFT)
        .is_some_and(|id| session.held(id).is_some());
    let (shown, fields) = fields(draft, at, held);
    let body = html! {
        ol.steps {
            @for (i, title) in STEPS.iter().enumerate() {
                li { @if i == at { strong { (title) } } @else { (title) } }
            }
        }
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        form method="post" action="/tasks/new" {
            (csrf_field(session))
            input type="hidden" name="step" value=(at);
            (draft.hidden(&shown))
            h2 { (STEPS[at]) }
            (fields)
            p {
                @if at > 0 { button type="submit" name="go" value="back" formnovalidate { "Back" } " " }
                @if at + 1 < STEPS.len() {
                    button type="submit" name="go" value="next" { "Next" }
                } @else {
                    button type="submit" name="go" value="finish" { "Finish" }
                }
            }
        }
    };
    layout("New task", Some(session), body).into_response()
}

/// The inputs of step `at`, and their names; `held`: a password is held for the account.
pub(super) fn fields(draft: &Draft, at: usize, held: bool) -> (Vec<&'static str>, Markup) {
    let v = |name: &str| draft.get(name).to_string();
    let checked = |name: &str| draft.get(name) == "on";
    let selected = |name: &str, value: &str| draft.get(name) == value;
    match at {
        0 => (
            vec!["name", "application", "type"],
            html! {
                p { label { "Task name " input name="name" value=(v("name")) required; } }
                p { label { "Application " input name="application" value=(v("application")) placeholder="Canopy agent"; } }
                p { label { "Task type "
                    select name="type" {
                        @for (value, label) in [("command", "Run a command"), ("scan", "Scan files"), ("inventory", "Inventory"),
                                                ("simulate", "Simulate (simulated devices)"), ("backup", "Backup of the Administration Server"),
                                                ("maintenance", "Administration Server maintenance")] {
                            option value=(value) selected[selected("type", value)] { (label) }
                        }
                    }
                } }
            },
        ),
        1 => match draft.get("type") {
            "command" => (
                vec!["program", "args", "time_limit"],
                html! {
                    p { label { "Program (a path, no shell) " input name="program" value=(v("program")); } }
                    p { label { "Arguments, one per line " textarea name="args" { (v("args")) } } }
                    p { label { "Time limit (seconds) " input name="time_limit" value=(v("time_limit")) placeholder="3600"; } }
                },
            ),
            "scan" => (
                vec!["paths", "blocklist"],
                html! {
                    p { label { "Paths, one per line " textarea name="paths" { (v("paths")) } } }
                    p { label { "Blocklist, SHA-256 in hex, one per line " textarea name="blocklist" { (v("blocklist")) } } }
                },
            ),
            "simulate" => (
                vec![
                    "duration_ms",
                    "succeeded",
                    "warning",
                    "failed",
                    "need_restart_percent",
                ],
                html! {
                    p { label { "Duration (ms) " input name="duration_ms" value=(v("duration_ms")) placeholder="1000"; } }
                    p { "Outcome weights: "
                        label { "succeeded " input name="succeeded" value=(v("succeeded")) placeholder="1" size="4"; } " "
                        label { "warning " input name="warning" value=(v("warning")) placeholder="0" size="4"; } " "
                        label { "failed " input name="failed" value=(v("failed")) placeholder="0" size="4"; } }
                    p { label { "Devices needing a restart (%) " input name="need_restart_percent" value=(v("need_restart_percent")) placeholder="0" size="4"; } }
                },
            ),
            "backup" => (
                vec!["directory"],
                html! {
                    p { label { "Directory (default: the config's backups) " input name="directory" value=(v("directory")); } }
                },
            ),
            _ => (vec![], html! { p { "This type has no settings." } }),
        },
        2 => (
            vec![
                "scope",
                "group",
                "subgroups",
                "secondaries",
                "devices",
                "conditions",
            ],
            html! {
                p { label { input type="radio" name="scope" value="group" checked[selected("scope", "group")]; " Devices of an administration group (a group task)" } }
                p { label { "Group " input name="group" value=(v("group")); } " "
                    label { input type="checkbox" name="subgroups" checked[checked("subgroups")]; " with its subgroups" } " "
                    label { input type="checkbox" name="secondaries" checked[checked("secondaries")]; " and secondary and virtual Administration Servers" } }
                p { label { input type="radio" name="scope" value="devices" checked[selected("scope", "devices")]; " Specific devices: addresses, ranges or names, one per line" } }
                p { textarea name="devices" aria-label="devices" { (v("devices")) } }
                p { label { input type="radio" name="scope" value="selection" checked[selected("scope", "selection")]; " A device selection: conditions key=value, one per line" } }
                p { textarea name="conditions" aria-label="conditions" { (v("conditions")) } }
            },
        ),
        3 => (
            vec!["schedule"],
            html! {
                p { label { "Scheduled start " input name="schedule" value=(v("schedule")); } }
                p { "manual, immediately, app-start, after:TASK_ID, once:YYYY-MM-DDTHH:MM, every:N(m|h|d|w)@YYYY-MM-DDTHH:MM, weekly:mon,fri@HH:MM, monthly:DAY@HH:MM" }
            },
        ),
        ACCOUNT => (
            vec!["account", "account_name", "account_password"],
            html! {
                p { label { input type="radio" name="account" value="default" checked[!selected("account", "specified")]; " The agent's account" } }
                p { label { input type="radio" name="account" value="specified" checked[selected("account", "specified")]; " A specified account" } }
                p { label { "Account " input name="account_name" value=(v("account_name")); } " "
                    label { "Password " input type="password" name="account_password" autocomplete="new-password"; } }
                @if held {
                    p.held { "A password is set; leave the field empty to keep it." }
                }
            },
        ),
        _ => (
            vec!["open_details"],
            html! {
                table {
                    tr { th { "Name" } td { (v("name")) } }
                    tr { th { "Type" } td { (v("type")) } }
                    tr { th { "Scope" } td { (scope_of(draft).map(|s| format!("{s:?}")).unwrap_or_default()) } }
                    tr { th { "Schedule" } td { (v("schedule")) } }
                }
                p { label { input type="checkbox" name="open_details" checked[checked("open_details")]; " Open task details when creation is complete" } }
            },
        ),
    }
}

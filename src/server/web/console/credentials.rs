//! The Change tasks password wizard, from the task list's "Manage credentials of accounts
//! for starting tasks": the account and its passwords (step 1: the tasks whose previous
//! password matches get the new one at once), an action for each other task found (step 2),
//! the results (step 3). The same two `task credentials` calls as the CLI's wizard; the new
//! password is held on the server between the steps (`drafts.rs`), never put in a page.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::{Refusal, Session, csrf_field, field, layout};
use crate::server::web::Web;
use crate::wire::msg::{
    AdminRequest, AdminResponse, CredentialChoice, CredentialOutcome, CredentialsChange,
    CredentialsResult, Secret, TaskRequest,
};

const PATH: &str = "/tasks/credentials";
const TITLE: &str = "Change tasks password";
const STEPS: [&str; 3] = [
    "Specifying credentials",
    "Selecting an action to take",
    "Viewing the results",
];
const EXPIRED: &str = "the new password is held for 30 minutes only and has expired: \
                       the tasks already replaced keep it; start again for the others";

pub(super) fn router() -> Router<Web> {
    Router::new().route(PATH, get(first).post(step))
}

async fn first(session: Session) -> Response {
    specify(&session, "", None)
}

async fn step(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    match field(&fields, "step").as_deref() {
        Some("2") => choose(&session, &fields).await,
        _ => found(&session, &fields).await,
    }
}

/// Step 1's Next: the first call, without choices, then step 2.
async fn found(session: &Session, fields: &[(String, String)]) -> Result<Response, Refusal> {
    let account = field(fields, "account").unwrap_or_default();
    let account = account.trim();
    let new_password = field(fields, "new_password").unwrap_or_default();
    let previous = field(fields, "previous_password").unwrap_or_default();
    let problem = if account.is_empty() {
        Some("name the account the tasks run under")
    } else if new_password.is_empty() {
        Some("enter the new password")
    } else if field(fields, "confirm_password").as_deref() != Some(new_password.as_str()) {
        Some("the new password and its confirmation differ: enter both again")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Ok(specify(session, account, Some(problem)));
    }
    let change = CredentialsChange {
        account: account.to_string(),
        new_password: Secret(new_password.clone()),
        previous_password: (!previous.is_empty()).then_some(Secret(previous)),
        choices: Vec::new(),
        comment: Some("changed with the Change tasks password wizard".into()),
    };
    let results = match call(session, change).await {
        Ok(results) => results,
        Err(Refusal::Error(_, problem)) => return Ok(specify(session, account, Some(&problem))),
        Err(refusal) => return Err(refusal),
    };
    // The new password is held only while a task waits for an action that may need it.
    let draft = if results.iter().any(waits) {
        session.hold(new_password)?
    } else {
        String::new()
    };
    Ok(actions(
        session,
        account,
        &draft,
        &results,
        &HashMap::new(),
        None,
    ))
}

/// Step 2's buttons: an action for the tasks checked, or Next: the choices applied.
async fn choose(session: &Session, fields: &[(String, String)]) -> Result<Response, Refusal> {
    let account = field(fields, "account").unwrap_or_default();
    let draft = field(fields, "draft").unwrap_or_default();
    let found: Vec<CredentialsResult> =
        serde_json::from_str(&field(fields, "found").unwrap_or_default()).map_err(|e| {
            Refusal::Error(
                StatusCode::BAD_REQUEST,
                format!("the tasks found are missing from the form: {e}"),
            )
        })?;
    let mut chosen: HashMap<u64, CredentialChoice> = HashMap::new();
    for result in &found {
        let name = format!("choice_{}", result.task_id);
        if let Some(choice) = field(fields, &name).as_deref().and_then(choice_of) {
            chosen.insert(result.task_id, choice);
        }
    }
    let go = field(fields, "go").unwrap_or_default();
    if go == "cancel" {
        session.take_held(&draft);
        return Ok(Redirect::to("/tasks").into_response());
    }
    if let Some(choice) = choice_of(&go) {
        let checked = fields
            .iter()
            .filter(|(name, _)| name == "task")
            .filter_map(|(_, id)| id.parse::<u64>().ok());
        for id in checked {
            chosen.insert(id, choice);
        }
        return Ok(actions(session, &account, &draft, &found, &chosen, None));
    }
    let choices: Vec<(String, CredentialChoice)> = found
        .iter()
        .filter(|r| waits(r))
        .filter_map(|r| Some((r.task_id.to_string(), *chosen.get(&r.task_id)?)))
        .collect();
    let applied = if choices.is_empty() {
        Vec::new()
    } else {
        let Some(new_password) = session.held(&draft) else {
            return Ok(specify(session, &account, Some(EXPIRED)));
        };
        let change = CredentialsChange {
            account: account.clone(),
            new_password: Secret(new_password),
            previous_password: None,
            choices,
            comment: Some("changed with the Change tasks password wizard".into()),
        };
        match call(session, change).await {
            Ok(applied) => applied,
            Err(Refusal::Error(_, problem)) => {
                return Ok(actions(
                    session,
                    &account,
                    &draft,
                    &found,
                    &chosen,
                    Some(&problem),
                ));
            }
            Err(refusal) => return Err(refusal),
        }
    };
    session.take_held(&draft);
    // Step 3: step 1's answer for the tasks replaced at once, the second's for the others.
    let results: Vec<CredentialsResult> = found
        .into_iter()
        .map(|first| {
            let second = applied.iter().find(|r| r.task_id == first.task_id);
            match second {
                Some(second) if chosen.contains_key(&first.task_id) => second.clone(),
                _ => first,
            }
        })
        .collect();
    Ok(outcomes(session, &account, &results))
}

async fn call(
    session: &Session,
    change: CredentialsChange,
) -> Result<Vec<CredentialsResult>, Refusal> {
    let request = AdminRequest::Task(TaskRequest::Credentials(Box::new(change)));
    match session.call(Vec::new(), request).await? {
        AdminResponse::Credentials(results) => Ok(results),
        _ => Err(super::tasks::unexpected()),
    }
}

/// Whether the task waits for the administrator's action (step 2).
fn waits(result: &CredentialsResult) -> bool {
    matches!(result.outcome, CredentialOutcome::ChoiceNeeded { .. })
}

fn choice_of(value: &str) -> Option<CredentialChoice> {
    match value {
        "delete" => Some(CredentialChoice::DeleteCredentials),
        "force" => Some(CredentialChoice::ForceNewPassword),
        "none" => Some(CredentialChoice::NoAction),
        _ => None,
    }
}

fn value_of(choice: CredentialChoice) -> &'static str {
    match choice {
        CredentialChoice::DeleteCredentials => "delete",
        CredentialChoice::ForceNewPassword => "force",
        CredentialChoice::NoAction => "none",
    }
}

fn choice_words(choice: Option<&CredentialChoice>) -> &'static str {
    match choice {
        Some(CredentialChoice::DeleteCredentials) => "Delete credentials",
        Some(CredentialChoice::ForceNewPassword) => "Enforce the password change",
        Some(CredentialChoice::NoAction) => "No action",
        None => "Not chosen yet (no action)",
    }
}

/// A task's outcome in words, and the revision it made if any.
fn outcome_words(outcome: &CredentialOutcome) -> (String, Option<u32>) {
    match outcome {
        CredentialOutcome::Replaced { revision } => (
            "Replaced: the previous password matched".into(),
            Some(*revision),
        ),
        CredentialOutcome::Forced { revision } => (
            "Forced: the new password, although the previous one did not match".into(),
            Some(*revision),
        ),
        CredentialOutcome::CredentialsDeleted { revision } => (
            "Credentials deleted: runs under the default account".into(),
            Some(*revision),
        ),
        CredentialOutcome::NoAction => ("No action: left as it was".into(), None),
        CredentialOutcome::ChoiceNeeded { reason } => (
            format!("Not changed: no action was chosen ({reason})"),
            None,
        ),
    }
}

/// The wizard's frame: its steps, the one shown in bold, and a problem if any.
fn frame(session: &Session, at: usize, problem: Option<&str>, body: Markup) -> Response {
    let page = html! {
        ol.steps {
            @for (i, title) in STEPS.iter().enumerate() {
                li { @if i == at { strong { (title) } } @else { (title) } }
            }
        }
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        h2 { (STEPS[at]) }
        (body)
    };
    layout(TITLE, Some(session), page).into_response()
}

/// Step 1. The password fields are always empty: a password is never sent back.
fn specify(session: &Session, account: &str, problem: Option<&str>) -> Response {
    let body = html! {
        p { "The password is replaced in every task of this server that runs under the account \
             (local tasks and tasks inherited from a parent server aside)." }
        form method="post" action=(PATH) {
            (csrf_field(session))
            input type="hidden" name="step" value="1";
            p { label { "Account " input name="account" value=(account) autocomplete="off" required; } }
            p { label { "New password " input type="password" name="new_password" autocomplete="new-password" required; } }
            p { label { "Confirm the new password " input type="password" name="confirm_password" autocomplete="new-password" required; } }
            p { label { "Previous password (optional; if you want to replace it with the current one) "
                input type="password" name="previous_password" autocomplete="off"; } }
            p {
                a href="/tasks" { "Cancel" } " "
                button type="submit" name="go" value="next" { "Next" }
            }
        }
    };
    frame(session, 0, problem, body)
}

/// Step 2: the tasks replaced at once, and those waiting for an action, each with its
/// check box and the action chosen so far.
fn actions(
    session: &Session,
    account: &str,
    draft: &str,
    found: &[CredentialsResult],
    chosen: &HashMap<u64, CredentialChoice>,
    problem: Option<&str>,
) -> Response {
    let (waiting, replaced): (Vec<&CredentialsResult>, Vec<&CredentialsResult>) =
        found.iter().partition(|r| waits(r));
    // The tasks found are no secret: the page carries them to the next step.
    let found_json = serde_json::to_string(found).unwrap_or_default();
    let body = html! {
        @if found.is_empty() {
            p { "No task of this server runs under the account " strong { (account) } "." }
        }
        @if !replaced.is_empty() {
            p { "The previous password matched: replaced already." }
            table.replaced {
                thead { tr { th { "Task" } th { "Result" } } }
                tbody {
                    @for r in &replaced {
                        tr data-task=(r.task_name) { td { (r.task_name) } td { (outcome_words(&r.outcome).0) } }
                    }
                }
            }
        }
        form method="post" action=(PATH) {
            (csrf_field(session))
            input type="hidden" name="step" value="2";
            input type="hidden" name="account" value=(account);
            input type="hidden" name="draft" value=(draft);
            input type="hidden" name="found" value=(found_json);
            @if !waiting.is_empty() {
                p { "Select the tasks, then an action for them; the actions are applied with Next." }
                p.toolbar {
                    button type="submit" name="go" value="delete" { "Delete credentials" } " "
                    button type="submit" name="go" value="force" { "Enforce the password change even if the old password is wrong or not provided" } " "
                    button type="submit" name="go" value="none" { "No action is selected" }
                }
                table.choices {
                    thead { tr { th { "" } th { "Task" } th { "Why not replaced" } th { "Action" } } }
                    tbody {
                        @for r in &waiting {
                            @let reason = match &r.outcome { CredentialOutcome::ChoiceNeeded { reason } => reason.as_str(), _ => "" };
                            tr data-task=(r.task_name) {
                                td { input type="checkbox" name="task" value=(r.task_id) aria-label=(r.task_name); }
                                td { (r.task_name) }
                                td { (reason) }
                                td.action {
                                    (choice_words(chosen.get(&r.task_id)))
                                    @if let Some(choice) = chosen.get(&r.task_id) {
                                        input type="hidden" name=(format!("choice_{}", r.task_id)) value=(value_of(*choice));
                                    }
                                }
                            }
                        }
                    }
                }
            } @else if !found.is_empty() {
                p { "No task waits for an action." }
            }
            p {
                button type="submit" name="go" value="cancel" formnovalidate { "Cancel" } " "
                button type="submit" name="go" value="next" { "Next" }
            }
        }
    };
    frame(session, 1, problem, body)
}

/// Step 3: every task found and what became of it.
fn outcomes(session: &Session, account: &str, results: &[CredentialsResult]) -> Response {
    let body = html! {
        p { "The tasks that run under the account " strong { (account) } ":" }
        table.results {
            thead { tr { th { "Task" } th { "Result" } th { "Revision" } } }
            tbody {
                @for r in results {
                    @let (words, revision) = outcome_words(&r.outcome);
                    tr data-task=(r.task_name) {
                        td { a href=(format!("/tasks/{}", r.task_id)) { (r.task_name) } }
                        td.outcome { (words) }
                        td.revision { @if let Some(revision) = revision { (revision) } @else { "-" } }
                    }
                }
            }
        }
        p { a.finish href="/tasks" { "Finish" } }
    };
    frame(session, 2, None, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_goes_through_the_form_and_back() {
        for choice in [
            CredentialChoice::DeleteCredentials,
            CredentialChoice::ForceNewPassword,
            CredentialChoice::NoAction,
        ] {
            assert_eq!(choice_of(value_of(choice)), Some(choice));
        }
        assert_eq!(choice_of("next"), None);
        assert_eq!(choice_of("cancel"), None);
        let (words, revision) = outcome_words(&CredentialOutcome::Forced { revision: 3 });
        assert!(words.starts_with("Forced"), "{words}");
        assert_eq!(revision, Some(3));
    }
}

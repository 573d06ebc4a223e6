//! The Change tasks password wizard (spec, "Change tasks password wizard"): every task of
//! this server that runs under an account, other than local tasks and copies inherited from
//! the parent, gets the account's new password where the previous one was given and
//! matches; the others get what the administrator chose for each (delete the credentials,
//! force the new password, or nothing), and until then are listed as waiting for a choice.
//! Each change is a revision of its task.

use std::collections::HashMap;

use super::{changed, find_own, history, update_by};
use crate::model::revision::RevisionAction;
use crate::model::task::{TaskAccount, TaskKind, TaskRecord};
use crate::server::Node;
use crate::server::auth::Session;
use crate::server::reply::{Reply, internal, invalid};
use crate::store::revisions::Note;
use crate::wire::msg::{
    AdminResponse, CredentialChoice, CredentialOutcome, CredentialsChange, CredentialsResult,
};

pub(super) async fn change(
    node: &Node,
    session: &Session,
    request: CredentialsChange,
) -> Reply<AdminResponse> {
    crate::model::check_display_name("an account name", &request.account).map_err(invalid)?;
    if request.new_password.0.is_empty() {
        return Err(invalid("the new password is empty"));
    }
    let comment = history::comment(request.comment.clone())?;
    // Only the tasks the caller may change are found.
    let gate = crate::server::rights::Gate::load(node, session).await?;
    let may_change = crate::model::rights::Rights::READ.with(crate::model::rights::Rights::MODIFY);
    let found: Vec<TaskRecord> = node
        .store
        .tasks()
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|t| runs_under(t, &request.account) && gate.on_task(t).contains(may_change))
        .collect();
    let choices = choices_by_task(node, session, &request, &found).await?;
    let mut results = Vec::with_capacity(found.len());
    for task in found {
        let matched = match (&request.previous_password, &task.settings.account) {
            (
                Some(previous),
                TaskAccount::Specified {
                    password: Some(sealed),
                    ..
                },
            ) => same(&node.secrets.open(sealed).map_err(internal)?, &previous.0),
            _ => false,
        };
        let choice = choices.get(&task.id).copied();
        let (account, action) = match (matched, choice) {
            (true, _) | (false, Some(CredentialChoice::ForceNewPassword)) => {
                let sealed = node
                    .secrets
                    .seal(&request.new_password.0)
                    .map_err(internal)?;
                let account = TaskAccount::Specified {
                    name: request.account.clone(),
                    password: Some(sealed),
                };
                (
                    account,
                    RevisionAction::PasswordChanged { forced: !matched },
                )
            }
            (false, Some(CredentialChoice::DeleteCredentials)) => {
                (TaskAccount::Default, RevisionAction::CredentialsDeleted)
            }
            (false, Some(CredentialChoice::NoAction)) => {
                results.push(result(&task, CredentialOutcome::NoAction));
                continue;
            }
            (false, None) => {
                let reason = why_not_replaced(&request, &task);
                results.push(result(&task, CredentialOutcome::ChoiceNeeded { reason }));
                continue;
            }
        };
        let note = Note {
            action: action.clone(),
            comment: comment.clone(),
        };
        let key = format!("#{}", task.id);
        let updated = update_by(node, session, task.id, &key, note, move |t| {
            t.settings.account = account.clone();
        })
        .await?;
        let revision = updated.revision;
        let outcome = match action {
            RevisionAction::CredentialsDeleted => {
                CredentialOutcome::CredentialsDeleted { revision }
            }
            RevisionAction::PasswordChanged { forced: true } => {
                CredentialOutcome::Forced { revision }
            }
            _ => CredentialOutcome::Replaced { revision },
        };
        let msg = format!(
            "task {:?} (#{}): {} by {} with the Change tasks password wizard (revision {revision})",
            updated.name, updated.id, action, session.user
        );
        changed(node, &task, &updated, msg).await;
        results.push(result(&updated, outcome));
    }
    Ok(AdminResponse::Credentials(results))
}

/// Whether the wizard deals with `task`: one of this server's own tasks, not local, that
/// runs under `account`.
fn runs_under(task: &TaskRecord, account: &str) -> bool {
    task.inherited.is_none()
        && task.kind() != TaskKind::Local
        && matches!(&task.settings.account, TaskAccount::Specified { name, .. } if name == account)
}

/// The administrator's choices, by task id. A choice must name a task found, which the
/// caller may change.
async fn choices_by_task(
    node: &Node,
    session: &Session,
    request: &CredentialsChange,
    found: &[TaskRecord],
) -> Reply<HashMap<u64, CredentialChoice>> {
    let mut choices = HashMap::new();
    for (key, choice) in &request.choices {
        let task = find_own(node, session, key, "edited").await?;
        if !found.iter().any(|t| t.id == task.id) {
            return Err(invalid(format!(
                "task {:?} does not run under the account {:?}",
                task.name, request.account
            )));
        }
        if choices.insert(task.id, *choice).is_some() {
            return Err(invalid(format!(
                "task {:?} is given more than one choice",
                task.name
            )));
        }
    }
    Ok(choices)
}

/// Whether two passwords are the same, compared by digest so that the time taken says
/// nothing of where they differ.
fn same(a: &str, b: &str) -> bool {
    use ring::digest::{SHA256, digest};
    digest(&SHA256, a.as_bytes()).as_ref() == digest(&SHA256, b.as_bytes()).as_ref()
}

fn why_not_replaced(request: &CredentialsChange, task: &TaskRecord) -> String {
    let has_password = matches!(
        &task.settings.account,
        TaskAccount::Specified {
            password: Some(_),
            ..
        }
    );
    match (&request.previous_password, has_password) {
        (_, false) => "the task has no password set".into(),
        (None, true) => "no previous password was given".into(),
        (Some(_), true) => "the previous password does not match".into(),
    }
}

fn result(task: &TaskRecord, outcome: CredentialOutcome) -> CredentialsResult {
    CredentialsResult {
        task_id: task.id,
        task_name: task.name.clone(),
        outcome,
    }
}

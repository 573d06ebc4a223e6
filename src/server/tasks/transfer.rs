//! Moving tasks between deployments and within one: export to a file (`model::export`),
//! import in two phases (what would be made, then made), and copy.

use std::sync::Arc;

use super::{find, new_task, server_task_allowed, store_new, view};
use crate::model::export::{self, ExportedTask, ImportError};
use crate::model::revision::RevisionAction;
use crate::model::schedule::Schedule;
use crate::model::task::{ChangedBy, TaskAccount, TaskRecord, TaskType};
use crate::server::auth::Session;
use crate::server::reply::{Reply, internal, invalid};
use crate::server::{Node, now_ms};
use crate::store::revisions::Note;
use crate::wire::msg::{AccountSpec, AdminResponse, ImportView, ScopeSpec, TaskSpec};

/// The refusal of a server task, for export and import alike.
const SERVER_TASK: &str = "is a server task (backup, maintenance): it belongs to the \
     server it was made on, and is not exported or imported";

/// `task export`: the task as a file; never its password.
pub(super) async fn export(node: &Node, key: &str) -> Reply<AdminResponse> {
    let task = find(node, key).await?;
    let TaskType::Device(parameters) = &task.task_type else {
        return Err(invalid(format!("task {:?} {SERVER_TASK}", task.name)));
    };
    let (account, account_password_set) = match &task.settings.account {
        TaskAccount::Default => (None, false),
        TaskAccount::Specified { name, password } => (Some(name.clone()), password.is_some()),
    };
    let settings = &task.settings;
    let exported = ExportedTask {
        name: task.name.clone(),
        application: task.application.clone(),
        schedule: settings.schedule.spec(),
        account,
        account_password_set,
        notify: settings.notify,
        keep_days: settings.store_history_days,
        exported_from: node.name().to_string(),
        exported_at: crate::model::format_time(now_ms()),
        restart: settings.restart.clone(),
        schedule_options: settings.schedule_options.clone(),
        parameters: parameters.clone(),
    };
    let file = export::encode(&exported).map_err(internal)?;
    let file_name = format!("{}.canopy-task", file_stem(&task.name));
    Ok(AdminResponse::Exported { file, file_name })
}

/// A file name made of a task's name: letters, digits, '-' and '_' kept, the rest '_'.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `task import FILE [--commit SCOPE]`: the file read and checked, and what it would make
/// here (its name after the " (N)" rule, warnings); with `commit`, made.
pub(super) async fn import(
    node: &Arc<Node>,
    session: &Session,
    file: &[u8],
    commit: bool,
    scope: Option<ScopeSpec>,
) -> Reply<AdminResponse> {
    let exported = export::decode(file).map_err(|e| match e {
        ImportError::UnknownType(_) | ImportError::Invalid(_) => invalid(e.to_string()),
        other => invalid(format!("the file is not imported: {other}")),
    })?;
    let mut warnings = Vec::new();
    let mut schedule = Schedule::parse(&exported.schedule).map_err(invalid)?;
    if let Schedule::AfterTask { task_id } = schedule {
        warnings.push(format!(
            "its schedule ran it after task #{task_id} of {}, which names no task here: \
             imported as manual (set --schedule after:ID with `task edit`)",
            exported.exported_from
        ));
        schedule = Schedule::Manually;
    }
    if let Some(account) = &exported.account {
        warnings.push(if exported.account_password_set {
            format!(
                "it runs under the account {account:?}, whose password is never exported: \
                 set it with `task edit TASK --account {account} --password-stdin`"
            )
        } else {
            format!("it runs under the account {account:?}, with no password set")
        })
    }
    let name = node
        .store
        .free_task_name(exported.name.trim())
        .await
        .map_err(internal)?;
    if name != exported.name.trim() {
        warnings.push(format!(
            "a task named {:?} exists: this one is named {name:?}",
            exported.name
        ));
    }
    let mut preview = ImportView {
        name,
        task_type: TaskType::Device(exported.parameters.clone()),
        application: exported.application.clone(),
        schedule: schedule.clone(),
        schedule_options: exported.schedule_options.clone(),
        account: exported.account.clone(),
        exported_from: exported.exported_from.clone(),
        exported_at: exported.exported_at.clone(),
        warnings,
        created: None,
    };
    if !commit {
        return Ok(AdminResponse::Imported(Box::new(preview)));
    }
    let Some(scope) = scope else {
        return Err(invalid(
            "an import needs a scope to commit: give --group, --devices, --devices-file or --where",
        ));
    };
    if matches!(scope, ScopeSpec::Server) {
        return Err(invalid(format!(
            "--server is not a scope of a device task: it {SERVER_TASK}"
        )));
    }
    let spec = TaskSpec {
        name: exported.name.trim().to_string(),
        task_type: TaskType::Device(exported.parameters),
        application: Some(exported.application),
        scope,
        restart: exported.restart,
        schedule,
        schedule_options: exported.schedule_options,
        account: exported.account.map(|name| AccountSpec {
            name,
            password: None,
        }),
        notify: exported.notify,
        store_history_days: exported.keep_days,
        comment: None,
    };
    let note = Note::of(RevisionAction::Imported);
    let task = new_task(node, session, spec).await?;
    let task = store_new(node, session, task, true, note).await?;
    preview.name = task.name.clone();
    preview.created = Some(Box::new(view(node, &task).await));
    Ok(AdminResponse::Imported(Box::new(preview)))
}

/// `task copy TASK [--name N]`: a new task of this server with the task's type, settings
/// (its sealed password too) and scope, named N or after the task, with the " (N)" rule.
pub(super) async fn copy(
    node: &Arc<Node>,
    session: &Session,
    key: &str,
    name: Option<String>,
) -> Reply<AdminResponse> {
    let original = find(node, key).await?;
    server_task_allowed(node, session, &original.task_type)?;
    let name = name
        .unwrap_or_else(|| original.name.clone())
        .trim()
        .to_string();
    crate::model::check_display_name("a task name", &name).map_err(invalid)?;
    let now = now_ms();
    let task = TaskRecord {
        id: 0,
        name,
        created: now,
        modified: now,
        revision: 1,
        changed_by: ChangedBy::Administrator(session.user.clone()),
        last_run: None,
        // A copy of an inherited task is this server's own.
        inherited: None,
        ..original.clone()
    };
    let note = Note::of(RevisionAction::Copied {
        from: original.name,
    });
    let task = store_new(node, session, task, true, note).await?;
    Ok(AdminResponse::Task(Box::new(view(node, &task).await)))
}

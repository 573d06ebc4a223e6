//! A task's revision history: list, compare, roll back; deleted tasks listed and restored.
//! An inherited copy has no history here: its origin keeps it.

use std::sync::Arc;

use super::view::scope_text;
use super::{changed, find, find_own, stored, update_by, view};
use crate::model::revision::{self, RevisionAction, TaskRevision};
use crate::model::rights::Rights;
use crate::model::task::{TaskId, TaskRecord};
use crate::model::{EventKind, Severity};
use crate::server::auth::Session;
use crate::server::reply::{Reply, error, internal, invalid};
use crate::server::rights::Gate;
use crate::server::{Node, now_ms};
use crate::store::revisions::Note;
use crate::store::rights::Guarded;
use crate::wire::msg::{AdminResponse, ErrorKind, RevisionView};

fn revision_view(r: &TaskRevision) -> RevisionView {
    RevisionView {
        task_id: r.task.id,
        name: r.task.name.clone(),
        revision: r.revision,
        at: r.at,
        by: r.by.clone(),
        action: r.action.clone(),
        comment: r.comment.clone(),
    }
}

/// A comment checked, or `None` for an empty one.
pub(super) fn comment(comment: Option<String>) -> Reply<Option<String>> {
    let comment = comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(c) = &comment {
        revision::check_comment(c).map_err(invalid)?;
    }
    Ok(comment)
}

/// The history of a task here (live or deleted), or why there is none.
async fn history_of(node: &Node, key: &str) -> Reply<(TaskId, Vec<TaskRevision>)> {
    let task_id = match find(node, key).await {
        Ok(task) => {
            if let Some(from) = &task.inherited {
                return Err(error(
                    ErrorKind::InvalidInput,
                    format!(
                        "task {:?} is inherited from the server {} (its task #{}, revision {}): \
                         its history is kept there",
                        task.name, from.parent, from.parent_task_id, from.parent_revision
                    ),
                ));
            }
            task.id
        }
        Err(not_found) => match deleted_id(node, key).await? {
            Some(id) => id,
            None => return Err(not_found),
        },
    };
    let revisions = node.store.task_revisions(task_id).await.map_err(internal)?;
    if revisions.is_empty() {
        return Err(invalid(format!(
            "task {key:?} has no revision history here (it was made before history was kept)"
        )));
    }
    Ok((task_id, revisions))
}

/// The id of a deleted task named `key` (its name, `7` or `#7`).
async fn deleted_id(node: &Node, key: &str) -> Reply<Option<TaskId>> {
    Ok(deleted(node, key).await?.map(|task| task.id))
}

/// The deleted task `key` names (by name, or id as `7` or `#7`), as it was last.
pub(super) async fn deleted(node: &Node, key: &str) -> Reply<Option<TaskRecord>> {
    let deleted = node.store.deleted_tasks().await.map_err(internal)?;
    let by_id = key.trim_start_matches('#').parse::<TaskId>().ok();
    Ok(deleted
        .into_iter()
        .find(|r| r.task.name == key || Some(r.task.id) == by_id)
        .map(|r| r.task))
}

/// `task history TASK`.
pub(super) async fn history(node: &Node, key: &str) -> Reply<AdminResponse> {
    let (_, revisions) = history_of(node, key).await?;
    Ok(AdminResponse::Revisions(
        revisions.iter().map(revision_view).collect(),
    ))
}

/// `task diff TASK FROM [TO]`.
pub(super) async fn diff(
    node: &Node,
    key: &str,
    from: u32,
    to: Option<u32>,
) -> Reply<AdminResponse> {
    let (task_id, revisions) = history_of(node, key).await?;
    let find_rev = |n: u32| {
        revisions.iter().find(|r| r.revision == n).ok_or_else(|| {
            let known: Vec<String> = revisions.iter().map(|r| r.revision.to_string()).collect();
            invalid(format!(
                "task {key:?} has no revision {n} here (revisions {})",
                known.join(", ")
            ))
        })
    };
    let before = find_rev(from)?;
    let after = match to {
        Some(to) => find_rev(to)?,
        None => revisions.last().ok_or_else(|| internal("no revision"))?,
    };
    let tree = node.store.group_tree().await.map_err(internal)?;
    let scope = |t: &TaskRecord| scope_text(&t.scope, &tree);
    Ok(AdminResponse::TaskDiff {
        task_id,
        from: before.revision,
        to: after.revision,
        changes: revision::diff(&before.task, &after.task, &scope),
    })
}

/// `task rollback TASK REV`: a new revision with REV's settings (history is never rewritten).
pub(super) async fn rollback(
    node: &Arc<Node>,
    session: &Session,
    key: &str,
    to: u32,
    comment: Option<String>,
) -> Reply<AdminResponse> {
    let comment = self::comment(comment)?;
    let task = find_own(node, session, key, "edited").await?;
    let revisions = node.store.task_revisions(task.id).await.map_err(internal)?;
    let Some(target) = revisions.into_iter().find(|r| r.revision == to) else {
        return Err(invalid(format!(
            "task {:?} has no revision {to}",
            task.name
        )));
    };
    if target.action == RevisionAction::Deleted {
        return Err(invalid(format!(
            "revision {to} of task {:?} is its deletion: roll back to an earlier one",
            task.name
        )));
    }
    let before = task.clone();
    let note = Note {
        action: RevisionAction::RolledBack { to },
        comment,
    };
    let old = target.task;
    let updated = update_by(node, session, task.id, key, note, move |t| {
        t.name = old.name.clone();
        t.task_type = old.task_type.clone();
        t.application = old.application.clone();
        t.scope = old.scope.clone();
        t.settings = old.settings.clone();
    })
    .await?;
    let msg = format!(
        "task {:?} (#{}) rolled back to revision {to} as revision {} by {}",
        updated.name, updated.id, updated.revision, session.user
    );
    Ok(changed(node, &before, &updated, msg).await)
}

/// `task list --deleted`.
pub(super) async fn list_deleted(node: &Node, session: &Session) -> Reply<AdminResponse> {
    let gate = Gate::load(node, session).await?;
    let deleted = node.store.deleted_tasks().await.map_err(internal)?;
    Ok(AdminResponse::Revisions(
        deleted
            .iter()
            .filter(|r| gate.on_task(&r.task).contains(Rights::READ))
            .map(revision_view)
            .collect(),
    ))
}

/// `task restore TASK`: a deleted task back, with its id and history.
pub(super) async fn restore(
    node: &Arc<Node>,
    session: &Session,
    key: &str,
    comment: Option<String>,
) -> Reply<AdminResponse> {
    let comment = self::comment(comment)?;
    let Some(task_id) = deleted_id(node, key).await? else {
        return Err(error(
            ErrorKind::NotFound,
            format!("no deleted task {key:?} is kept here (see `task list --deleted`)"),
        ));
    };
    let task = node
        .store
        .restore_task(task_id, session.user.clone(), comment, now_ms())
        .await
        .map_err(stored)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("no deleted task {key:?}")))?;
    let msg = format!(
        "task {:?} (#{}) restored as revision {} by {}",
        task.name, task.id, task.revision, session.user
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
    Ok(AdminResponse::Task(Box::new(view(node, &task).await)))
}

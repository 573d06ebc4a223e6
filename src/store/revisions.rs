//! Each task's revision history: a copy of the task at every change made on this server,
//! with who, when, what and why, written in the transaction of the change. A deleted task
//! keeps its history (its last revision says "deleted") until the retention term ends, and
//! can be restored from it. Inherited copies have none here: their history is their
//! origin's.

use redb::{ReadableTable, WriteTransaction};

use super::schema::*;
use super::{Store, StoreError, entries_with_prefix, get, put, remove};
use crate::model::UnixMillis;
use crate::model::revision::{RevisionAction, TaskRevision};
use crate::model::task::{ChangedBy, TaskId, TaskRecord};

/// Why a task changed: the kind of change, and the administrator's comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub action: RevisionAction,
    pub comment: Option<String>,
}

impl Note {
    pub fn of(action: RevisionAction) -> Note {
        Note {
            action,
            comment: None,
        }
    }
}

fn revision_key(task_id: TaskId, revision: u32) -> String {
    format!("{task_id:020}/{revision:010}")
}

/// Records `task` as it is now as its revision, made by `note`.
pub(crate) fn record_in(
    txn: &WriteTransaction,
    task: &TaskRecord,
    note: &Note,
) -> Result<(), StoreError> {
    let revision = TaskRevision {
        revision: task.revision,
        at: task.modified,
        by: match &task.changed_by {
            ChangedBy::Administrator(name) => name.clone(),
            ChangedBy::DeviceUser => "the device's user".into(),
        },
        action: note.action.clone(),
        comment: note.comment.clone(),
        task: task.clone(),
    };
    put(
        &mut txn.open_table(TASK_REVISIONS)?,
        &revision_key(task.id, task.revision),
        &revision,
    )
}

/// A task deleted now by `by`: its last revision says so, and it is listed as deleted.
pub(crate) fn deleted_in(
    txn: &WriteTransaction,
    task: &TaskRecord,
    by: &str,
    note: &Note,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let mut last = task.clone();
    last.revision += 1;
    last.modified = now;
    last.changed_by = ChangedBy::Administrator(by.to_string());
    record_in(txn, &last, note)?;
    put(
        &mut txn.open_table(DELETED_TASKS)?,
        &task_key(task.id),
        &now,
    )
}

fn history_in(
    txn: &impl super::schema::OpenTables,
    task_id: TaskId,
) -> Result<Vec<TaskRevision>, StoreError> {
    txn.values_with_prefix(TASK_REVISIONS, &format!("{task_id:020}/"))
}

impl Store {
    /// Every revision of a task, oldest first (a deleted task's too).
    pub async fn task_revisions(&self, task_id: TaskId) -> Result<Vec<TaskRevision>, StoreError> {
        self.read(move |txn| history_in(txn, task_id)).await
    }

    /// The deleted tasks still kept, each as its last revision (the deletion).
    pub async fn deleted_tasks(&self) -> Result<Vec<TaskRevision>, StoreError> {
        self.read(|txn| {
            let deleted: Vec<(String, UnixMillis)> =
                entries_with_prefix(&txn.open_table(DELETED_TASKS)?, "")?;
            let mut tasks = Vec::new();
            for (key, _) in deleted {
                let Ok(task_id) = key.parse::<TaskId>() else {
                    continue;
                };
                if let Some(last) = history_in(txn, task_id)?.pop() {
                    tasks.push(last);
                }
            }
            Ok(tasks)
        })
        .await
    }

    /// Brings a deleted task back, with its id and history, as a new revision with the
    /// settings it had when deleted; refused if its name was taken since. `None` if it is
    /// not a deleted task kept here.
    pub async fn restore_task(
        &self,
        task_id: TaskId,
        by: String,
        comment: Option<String>,
        now: UnixMillis,
    ) -> Result<Option<TaskRecord>, StoreError> {
        self.write(move |txn| {
            let mut deleted = txn.open_table(DELETED_TASKS)?;
            if get::<UnixMillis>(&deleted, &task_key(task_id))?.is_none() {
                return Ok(None);
            }
            remove(&mut deleted, &task_key(task_id))?;
            drop(deleted);
            let Some(last) = history_in(txn, task_id)?.pop() else {
                return Ok(None);
            };
            let mut names = txn.open_table(TASK_NAMES)?;
            if names.get(last.task.name.as_str())?.is_some() {
                return Err(StoreError::Rejected(format!(
                    "a task named {:?} exists now: rename it before restoring this one",
                    last.task.name
                )));
            }
            let mut task = last.task;
            task.revision = last.revision + 1;
            task.modified = now;
            task.changed_by = ChangedBy::Administrator(by.clone());
            task.last_run = None;
            put(&mut names, &task.name, &task.id)?;
            drop(names);
            put(&mut txn.open_table(TASKS)?, &task_key(task.id), &task)?;
            let note = Note {
                action: RevisionAction::Restored,
                comment: comment.clone(),
            };
            record_in(txn, &task, &note)?;
            super::change_log::log_task(txn, None, &task)?;
            Ok(Some(task))
        })
        .await
    }

    /// Forgets the deleted tasks deleted before `before`, with their history. Returns how
    /// many went.
    pub async fn prune_deleted_tasks(&self, before: UnixMillis) -> Result<u64, StoreError> {
        self.write(move |txn| {
            let deleted: Vec<(String, UnixMillis)> =
                entries_with_prefix(&txn.open_table(DELETED_TASKS)?, "")?;
            let mut pruned = 0;
            for (key, _) in deleted.into_iter().filter(|(_, at)| *at < before) {
                remove(&mut txn.open_table(DELETED_TASKS)?, &key)?;
                let mut revisions = txn.open_table(TASK_REVISIONS)?;
                let keys: Vec<(String, TaskRevision)> =
                    entries_with_prefix(&revisions, &format!("{key}/"))?;
                for (key, _) in keys {
                    remove(&mut revisions, &key)?;
                }
                pruned += 1;
            }
            Ok(pruned)
        })
        .await
    }
}

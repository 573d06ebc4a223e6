//! New tasks: stored under the next id as their revision 1, by name, or with the " (N)"
//! rule for imports and copies, decided inside the write transaction.

use redb::ReadableTable;

use super::revisions::{Note, record_in};
use super::schema::*;
use super::{Store, StoreError};
use crate::model::revision::RevisionAction;
use crate::model::task::TaskRecord;

impl Store {
    /// Stores a new task under the next id; refused if its name is taken.
    pub async fn create_task(&self, task: TaskRecord) -> Result<TaskRecord, StoreError> {
        let note = Note::of(RevisionAction::Created);
        self.create_task_noted(task, false, note).await
    }

    /// Stores a new task under the next id, as revision 1 made by `note`: under its name,
    /// refused if taken, or with `free_name` the first free of "NAME (1)", "NAME (2)", ...
    pub async fn create_task_noted(
        &self,
        task: TaskRecord,
        free_name: bool,
        note: Note,
    ) -> Result<TaskRecord, StoreError> {
        self.write(move |txn| {
            let mut task = task.clone();
            if free_name {
                let names = txn.open_table(TASK_NAMES)?;
                task.name = free_name_of(&task.name, |n| Ok(names.get(n)?.is_some()))?;
            }
            super::tasks::check_chain_in(txn, &task)?;
            let task = super::tasks::upsert_in(txn, task, None)?;
            record_in(txn, &task, &note)?;
            super::change_log::log_task(txn, None, &task)?;
            Ok(task)
        })
        .await
    }

    /// The name [`Store::create_task_noted`] would give a task named `name` now.
    pub async fn free_task_name(&self, name: &str) -> Result<String, StoreError> {
        let name = name.to_string();
        self.read(move |txn| {
            let names = txn.open_table(TASK_NAMES)?;
            free_name_of(&name, |n| Ok(names.get(n)?.is_some()))
        })
        .await
    }
}

/// `name` if it is free, or else the first free of "NAME (1)", "NAME (2)", ..., the name cut
/// so that it fits the 100 characters of a display name with its suffix.
fn free_name_of(
    name: &str,
    taken: impl Fn(&str) -> Result<bool, StoreError>,
) -> Result<String, StoreError> {
    if !taken(name)? {
        return Ok(name.to_string());
    }
    for n in 1..=10_000u32 {
        let suffix = format!(" ({n})");
        let keep = crate::model::MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
        let base: String = name.chars().take(keep).collect();
        let candidate = format!("{}{suffix}", base.trim_end());
        if !taken(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(StoreError::Rejected(format!(
        "no free name after {name:?} (1) to (10000)"
    )))
}

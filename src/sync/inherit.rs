//! What a child does with a change of its parent's log, decided without touching storage:
//! the revision rule, inherited copies and their names, which runs start and stop. The
//! store carries a [`Plan`] out in the transaction that also stores the cursor; the
//! simulation carries it out on its own in-memory servers.
//!
//! A resynchronisation (the parent's log is another one than the child's cursor counts in:
//! the parent was restored from a backup or recreated) replays the parent's whole log. While
//! it lasts, the first entry about a task or run the child holds confirms it (a copy is
//! replaced whatever its revision, since the parent's revisions and ids start again), and at
//! its end what no entry confirmed is dropped ([`resync_leftovers`]).

use crate::model::group::MANAGED_DEVICES;
use crate::model::link::{Audience, Change, LogEntry};
use crate::model::schedule::{LocalDateTime, Schedule};
use crate::model::scope::Scope;
use crate::model::task::{ChangedBy, Inherited, RunId, TaskId, TaskRecord};
use crate::model::{Revocation, UnixMillis};

/// The children a task goes to: a group task that includes secondary and virtual servers,
/// or a task this server inherited (which goes on down the whole subtree).
pub fn audience(task: &TaskRecord) -> Option<Audience> {
    if task.inherited.is_some() {
        return Some(Audience::AllChildren);
    }
    match task.scope {
        Scope::Group {
            group_id,
            include_subgroups,
            include_secondaries: true,
        } => Some(Audience::Group {
            group_id,
            include_subgroups,
        }),
        _ => None,
    }
}

/// The log entry for a task as it now is (`before`: as it was, if it existed), if any child
/// is concerned: an upsert, or a delete for a task that stopped concerning any child.
pub fn log_upsert(before: Option<&TaskRecord>, task: &TaskRecord) -> Option<LogEntry<TaskRecord>> {
    match (audience(task), before.and_then(audience)) {
        (Some(audience), _) => Some(LogEntry {
            change: Change::TaskUpsert {
                task_id: task.id,
                revision: task.revision,
                // Its password is sealed with this server's key here; the link re-seals it
                // for the child as it sends it (`store::sealing`).
                task: task.clone(),
            },
            audience,
        }),
        (None, Some(audience)) => Some(LogEntry {
            change: Change::TaskDelete { task_id: task.id },
            audience,
        }),
        (None, None) => None,
    }
}

/// The log entry for `change` about `task` (a delete, a run's start or stop), if the task
/// concerns any child.
pub fn log_about(task: &TaskRecord, change: Change<TaskRecord>) -> Option<LogEntry<TaskRecord>> {
    audience(task).map(|audience| LogEntry { change, audience })
}

/// The log entry for a server certificate revoked here or above: for every child.
pub fn log_revocation(revocation: Revocation) -> LogEntry<TaskRecord> {
    LogEntry {
        change: Change::Revoke(revocation),
        audience: Audience::AllChildren,
    }
}

/// Something of the parent's a child holds, which a resynchronisation confirms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confirmable {
    /// The copy of the parent's task.
    Task(TaskId),
    /// The run carrying out the parent's run.
    Run(RunId),
}

/// What a child holds that the plan depends on, read inside the applying transaction.
pub trait Holdings {
    type Error;
    /// While resynchronising: whether an entry of the parent's new log confirmed `item`
    /// already. `None` when not resynchronising.
    fn confirmed(&self, item: Confirmable) -> Result<Option<bool>, Self::Error>;
    /// The task of this server's run `local_run`, if it exists.
    fn run_task(&self, local_run: RunId) -> Result<Option<TaskId>, Self::Error>;
    /// The copy of the parent's task `parent_task`, if this server holds one.
    fn copy_of(&self, parent_task: TaskId) -> Result<Option<TaskRecord>, Self::Error>;
    /// The task holding display name `name`, if any.
    fn name_holder(&self, name: &str) -> Result<Option<TaskId>, Self::Error>;
    /// The run of this server carrying out the parent's run `parent_run`, if any.
    fn run_for(&self, parent_run: RunId) -> Result<Option<RunId>, Self::Error>;
}

/// What applying one change means here.
// A plan lives for one change inside one transaction: boxing the copy would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: a no-op, a revision already held, a change about a task or run not held.
    Nothing,
    /// Store `copy` (a new task when `existing` is `None`), remember it under the parent's
    /// task id, and log it for this server's own children.
    Upsert {
        parent_task: TaskId,
        copy: TaskRecord,
        existing: Option<TaskRecord>,
    },
    /// Delete the copy `local` with its runs, forget the parent's id, log the delete.
    Delete { parent_task: TaskId, local: TaskId },
    /// Start a run of the copy `local_task` on every managed device of this server,
    /// remember it under the parent's run id, and log the start. `replaces`: a run held
    /// under that id from before a resynchronisation, of another task: forget it first (as
    /// `ForgetRun`).
    /// For a scheduled `occurrence`, a run of it made here already (its devices reported it
    /// first, or this server's clock came to it) carries out the parent's run instead.
    /// A chained run (`after_run`, the parent's run it follows) runs on the devices of the
    /// run here that carries out `after_run`, each as it finishes that run.
    StartRun {
        parent_run: RunId,
        local_task: TaskId,
        started_by: String,
        replaces: Option<RunId>,
        occurrence: Option<LocalDateTime>,
        after_run: Option<RunId>,
    },
    /// Stop the run `local_run` and log the stop.
    StopRun { local_run: RunId },
    /// Pause (`paused`) or resume the run `local_run` and log it.
    PauseRun { local_run: RunId, paused: bool },
    /// Resynchronising: the copy or run held is the parent's still, as it is; keep it.
    Keep(Confirmable),
    /// Resynchronising: the parent no longer has run `parent_run`. Stop `local_run` if it
    /// is going, and forget that it carried out a run of the parent (it stays as history).
    ForgetRun { parent_run: RunId, local_run: RunId },
    /// Keep the revocation (a set: one held already changes nothing) and, if it is new
    /// here, log it for this server's own children. A resynchronisation never drops one.
    Revoke(Revocation),
}

impl Plan {
    /// What a resynchronisation counts as confirmed when this plan is carried out.
    pub fn confirms(&self) -> Option<Confirmable> {
        match self {
            Plan::Upsert { parent_task, .. } => Some(Confirmable::Task(*parent_task)),
            Plan::StartRun { parent_run, .. } => Some(Confirmable::Run(*parent_run)),
            Plan::Keep(item) => Some(*item),
            _ => None,
        }
    }
}

/// At the end of a resynchronisation: what to drop of what this server held from its
/// parent (`copies`: (parent's task, local copy); `runs`: (parent's run, local run)) that no
/// entry of the parent's new log confirmed. Runs first, then copies (with their runs).
pub fn resync_leftovers(
    copies: &[(TaskId, TaskId)],
    runs: &[(RunId, RunId)],
    confirmed: impl Fn(Confirmable) -> bool,
) -> Vec<Plan> {
    let runs = runs
        .iter()
        .filter(|(parent_run, _)| !confirmed(Confirmable::Run(*parent_run)))
        .map(|&(parent_run, local_run)| Plan::ForgetRun {
            parent_run,
            local_run,
        });
    let copies = copies
        .iter()
        .filter(|(parent_task, _)| !confirmed(Confirmable::Task(*parent_task)))
        .map(|&(parent_task, local)| Plan::Delete { parent_task, local });
    runs.chain(copies).collect()
}

/// The plan for change `change` of the parent named `parent`.
pub fn plan<H: Holdings>(
    parent: &str,
    change: &Change<TaskRecord>,
    holdings: &H,
    now: UnixMillis,
) -> Result<Plan, H::Error> {
    Ok(match change {
        Change::Noop => Plan::Nothing,
        Change::Revoke(revocation) => Plan::Revoke(revocation.clone()),
        Change::TaskUpsert {
            task_id,
            revision,
            task,
        } => {
            let existing = holdings.copy_of(*task_id)?;
            let held = existing
                .as_ref()
                .and_then(|t| t.inherited.as_ref())
                .map(|i| i.parent_revision);
            // Resynchronising, a copy not confirmed yet is of the parent's old log: its
            // revision says nothing about the new one's.
            let stale = existing.is_some()
                && holdings.confirmed(Confirmable::Task(*task_id))? == Some(false);
            if !stale && held.is_some_and(|held| held >= *revision) {
                return Ok(Plan::Nothing);
            }
            let mut copy =
                inherited_copy(parent, *task_id, *revision, task, existing.as_ref(), now);
            copy.name = free_name(holdings, &copy.name, copy.id, parent, *task_id)?;
            // "After task A" names the parent's A: here, the copy of it, so that the schedule
            // reads right (the parent's log starts the chained runs; see `store::tasks`).
            if let Schedule::AfterTask { task_id: after } = copy.settings.schedule
                && let Some(copy_of_after) = holdings.copy_of(after)?
            {
                copy.settings.schedule = Schedule::AfterTask {
                    task_id: copy_of_after.id,
                };
            }
            if stale && existing.as_ref().is_some_and(|e| same_copy(e, &copy)) {
                // Resynchronising, the parent's task is the one held: nothing to rewrite.
                return Ok(Plan::Keep(Confirmable::Task(*task_id)));
            }
            Plan::Upsert {
                parent_task: *task_id,
                copy,
                existing,
            }
        }
        Change::TaskDelete { task_id } => match holdings.copy_of(*task_id)? {
            Some(copy) => Plan::Delete {
                parent_task: *task_id,
                local: copy.id,
            },
            None => Plan::Nothing,
        },
        Change::RunStart {
            task_id,
            run_id,
            occurrence,
            ..
        } => plan_start(parent, *task_id, *run_id, *occurrence, None, holdings)?,
        Change::ChainStart {
            task_id,
            run_id,
            after_run,
            ..
        } => plan_start(parent, *task_id, *run_id, None, Some(*after_run), holdings)?,
        Change::RunStop { run_id, .. } => match holdings.run_for(*run_id)? {
            Some(local_run) => Plan::StopRun { local_run },
            None => Plan::Nothing,
        },
        Change::RunPause { run_id, paused, .. } => match holdings.run_for(*run_id)? {
            Some(local_run) => Plan::PauseRun {
                local_run,
                paused: *paused,
            },
            None => Plan::Nothing,
        },
    })
}

/// The plan for the parent's start of run `run_id` of task `task_id`.
fn plan_start<H: Holdings>(
    parent: &str,
    task_id: TaskId,
    run_id: RunId,
    occurrence: Option<LocalDateTime>,
    after_run: Option<RunId>,
    holdings: &H,
) -> Result<Plan, H::Error> {
    let Some(copy) = holdings.copy_of(task_id)? else {
        return Ok(Plan::Nothing);
    };
    let start = |replaces| Plan::StartRun {
        parent_run: run_id,
        local_task: copy.id,
        started_by: format!("{parent} (run {run_id})"),
        replaces,
        occurrence,
        after_run,
    };
    Ok(match holdings.run_for(run_id)? {
        None => start(None),
        Some(local) if holdings.confirmed(Confirmable::Run(run_id))? == Some(false) => {
            // Resynchronising: the run held under that id is the same one if it is of the
            // same copy; otherwise the id now names another run.
            if holdings.run_task(local)? == Some(copy.id) {
                Plan::Keep(Confirmable::Run(run_id))
            } else {
                start(Some(local))
            }
        }
        Some(_) => Plan::Nothing,
    })
}

/// The copy of a parent's task kept here: every device of this server and every server
/// below it, read-only, named as on the parent unless a task of this server has the name.
fn inherited_copy(
    parent: &str,
    parent_task_id: TaskId,
    revision: u32,
    task: &TaskRecord,
    existing: Option<&TaskRecord>,
    now: UnixMillis,
) -> TaskRecord {
    TaskRecord {
        id: existing.map(|t| t.id).unwrap_or(0),
        name: task.name.clone(),
        task_type: task.task_type.clone(),
        application: task.application.clone(),
        scope: Scope::Group {
            group_id: MANAGED_DEVICES,
            include_subgroups: true,
            include_secondaries: true,
        },
        settings: task.settings.clone(),
        created: existing.map(|t| t.created).unwrap_or(now),
        modified: now,
        revision: existing.map(|t| t.revision + 1).unwrap_or(1),
        changed_by: ChangedBy::Administrator(format!("{parent} (inherited)")),
        last_run: existing.and_then(|t| t.last_run),
        inherited: Some(Inherited {
            parent: parent.to_string(),
            parent_task_id,
            parent_revision: revision,
        }),
    }
}

/// Two copies of a parent's task say the same (whatever their local revisions and times).
fn same_copy(a: &TaskRecord, b: &TaskRecord) -> bool {
    a.name == b.name
        && a.task_type == b.task_type
        && a.application == b.application
        && a.scope == b.scope
        && a.settings == b.settings
        && a.inherited == b.inherited
}

/// The name an inherited copy gets: the parent's, unless another task of this server holds
/// it (a copy that could not be stored would stop every later change of the parent).
fn free_name<H: Holdings>(
    holdings: &H,
    name: &str,
    own_id: TaskId,
    parent: &str,
    parent_task_id: TaskId,
) -> Result<String, H::Error> {
    let candidates = [
        name.to_string(),
        format!("{name} (from {parent})"),
        format!("{name} (from {parent}, #{parent_task_id})"),
    ];
    for candidate in &candidates {
        match holdings.name_holder(candidate)? {
            None => return Ok(candidate.clone()),
            Some(id) if id == own_id => return Ok(candidate.clone()),
            Some(_) => {}
        }
    }
    Ok(format!(
        "{name} (from {parent}, #{parent_task_id}, {own_id})"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use super::*;
    use crate::model::task::{AGENT_APPLICATION, TaskPayload, TaskSettings, TaskType};

    #[derive(Default)]
    struct Held {
        copies: BTreeMap<TaskId, TaskRecord>,
        names: BTreeMap<String, TaskId>,
        runs: BTreeMap<RunId, RunId>,
        run_tasks: BTreeMap<RunId, TaskId>,
        /// `Some` while resynchronising: what is confirmed.
        resync: Option<Vec<Confirmable>>,
    }

    impl Holdings for Held {
        type Error = Infallible;
        fn confirmed(&self, item: Confirmable) -> Result<Option<bool>, Infallible> {
            Ok(self.resync.as_ref().map(|c| c.contains(&item)))
        }
        fn run_task(&self, r: RunId) -> Result<Option<TaskId>, Infallible> {
            Ok(self.run_tasks.get(&r).copied())
        }
        fn copy_of(&self, t: TaskId) -> Result<Option<TaskRecord>, Infallible> {
            Ok(self.copies.get(&t).cloned())
        }
        fn name_holder(&self, name: &str) -> Result<Option<TaskId>, Infallible> {
            Ok(self.names.get(name).copied())
        }
        fn run_for(&self, r: RunId) -> Result<Option<RunId>, Infallible> {
            Ok(self.runs.get(&r).copied())
        }
    }

    fn parent_task(revision: u32) -> TaskRecord {
        TaskRecord {
            id: 7,
            name: "Patch".into(),
            task_type: TaskType::Device(TaskPayload::Inventory),
            application: AGENT_APPLICATION.into(),
            scope: Scope::Group {
                group_id: 12,
                include_subgroups: true,
                include_secondaries: true,
            },
            settings: TaskSettings::default(),
            created: 0,
            modified: 0,
            revision,
            changed_by: ChangedBy::Administrator("admin".into()),
            last_run: None,
            inherited: None,
        }
    }

    fn upsert(revision: u32) -> Change<TaskRecord> {
        Change::TaskUpsert {
            task_id: 7,
            revision,
            task: parent_task(revision),
        }
    }

    fn plan_of(held: &Held, change: &Change<TaskRecord>) -> Plan {
        match plan("primary", change, held, 5) {
            Ok(p) => p,
            Err(e) => match e {},
        }
    }

    #[test]
    fn a_chained_copy_names_the_copy_of_the_task_it_follows() {
        let mut held = Held::default();
        let mut before = parent_task(1);
        before.id = 40;
        held.copies.insert(3, before);
        let mut chained = parent_task(1);
        chained.settings.schedule = Schedule::AfterTask { task_id: 3 };
        let change = Change::TaskUpsert {
            task_id: 7,
            revision: 1,
            task: chained,
        };
        let Plan::Upsert { copy, .. } = plan_of(&held, &change) else {
            panic!("an upsert")
        };
        assert_eq!(copy.settings.schedule, Schedule::AfterTask { task_id: 40 });
    }

    #[test]
    fn a_new_copy_targets_every_managed_device_and_takes_a_free_name() {
        let mut held = Held::default();
        held.names.insert("Patch".into(), 3);
        let Plan::Upsert { copy, existing, .. } = plan_of(&held, &upsert(1)) else {
            panic!("an upsert")
        };
        assert!(existing.is_none());
        assert_eq!(copy.name, "Patch (from primary)");
        assert_eq!(copy.inherited.as_ref().map(|i| i.parent_revision), Some(1));
        assert!(matches!(
            copy.scope,
            Scope::Group {
                group_id: MANAGED_DEVICES,
                ..
            }
        ));
    }

    #[test]
    fn a_revocation_goes_to_every_child_and_is_kept_as_it_is() {
        let revocation = Revocation {
            fingerprint: crate::model::Fingerprint([3; 32]),
            name: "branch-1".into(),
            by: "primary".into(),
            revoked_at: 4,
            reason: "removed by admin".into(),
        };
        let entry = log_revocation(revocation.clone());
        assert_eq!(entry.audience, Audience::AllChildren);
        assert_eq!(entry.change.as_seen_by(false), entry.change);
        assert_eq!(entry.change.task_id(), None);
        let plan = plan_of(&Held::default(), &entry.change);
        assert_eq!(plan, Plan::Revoke(revocation));
        assert_eq!(plan.confirms(), None);
    }

    #[test]
    fn a_revision_already_held_changes_nothing_and_a_newer_one_replaces_it() {
        let mut held = Held::default();
        let Plan::Upsert { mut copy, .. } = plan_of(&held, &upsert(2)) else {
            panic!("an upsert")
        };
        copy.id = 40;
        held.copies.insert(7, copy);
        assert_eq!(plan_of(&held, &upsert(1)), Plan::Nothing);
        assert_eq!(plan_of(&held, &upsert(2)), Plan::Nothing);
        let Plan::Upsert { copy, existing, .. } = plan_of(&held, &upsert(3)) else {
            panic!("an upsert")
        };
        assert_eq!((copy.id, copy.revision), (40, 2));
        assert!(existing.is_some());
    }

    #[test]
    fn runs_start_once_and_stop_only_when_held() {
        let mut held = Held::default();
        let start = Change::RunStart {
            task_id: 7,
            run_id: 9,
            revision: 1,
            occurrence: None,
        };
        assert_eq!(plan_of(&held, &start), Plan::Nothing, "no copy");
        let mut copy = parent_task(1);
        copy.id = 40;
        held.copies.insert(7, copy);
        assert!(matches!(
            plan_of(&held, &start),
            Plan::StartRun {
                parent_run: 9,
                local_task: 40,
                ..
            }
        ));
        held.runs.insert(9, 41);
        assert_eq!(plan_of(&held, &start), Plan::Nothing, "started already");
        let chain = Change::ChainStart {
            task_id: 7,
            run_id: 12,
            revision: 1,
            after_run: 9,
        };
        assert!(matches!(
            plan_of(&held, &chain),
            Plan::StartRun {
                parent_run: 12,
                local_task: 40,
                after_run: Some(9),
                occurrence: None,
                ..
            }
        ));
        let stop = Change::RunStop {
            task_id: 7,
            run_id: 9,
        };
        assert_eq!(plan_of(&held, &stop), Plan::StopRun { local_run: 41 });
        let delete = Change::TaskDelete { task_id: 7 };
        assert_eq!(
            plan_of(&held, &delete),
            Plan::Delete {
                parent_task: 7,
                local: 40
            }
        );
        assert_eq!(plan_of(&held, &Change::Noop), Plan::Nothing);
    }

    #[test]
    fn a_resync_replaces_what_it_has_not_confirmed_and_drops_the_rest() {
        let mut held = Held::default();
        let Plan::Upsert { mut copy, .. } = plan_of(&held, &upsert(4)) else {
            panic!("an upsert")
        };
        copy.id = 40;
        held.copies.insert(7, copy);
        held.runs.insert(9, 41);
        held.run_tasks.insert(41, 40);
        held.runs.insert(10, 42);
        held.run_tasks.insert(42, 40);
        held.resync = Some(Vec::new());
        // The restored parent's task 7 at revision 4 as held: kept as it is.
        assert_eq!(plan_of(&held, &upsert(4)), Plan::Keep(Confirmable::Task(7)));
        // At revision 1: it replaces the copy of revision 4.
        let plan = plan_of(&held, &upsert(1));
        assert!(
            matches!(&plan, Plan::Upsert { copy, existing: Some(_), .. } if copy.id == 40),
            "{plan:?}"
        );
        assert_eq!(plan.confirms(), Some(Confirmable::Task(7)));
        held.resync = Some(vec![Confirmable::Task(7)]);
        assert_eq!(
            plan_of(&held, &upsert(1)),
            Plan::Nothing,
            "confirmed: as usual"
        );
        // Run 9 of the same copy is kept; run 10 now names a run of another task.
        let start = |run_id| Change::RunStart {
            task_id: 7,
            run_id,
            revision: 1,
            occurrence: None,
        };
        assert_eq!(plan_of(&held, &start(9)), Plan::Keep(Confirmable::Run(9)));
        held.run_tasks.insert(42, 99);
        assert!(matches!(
            plan_of(&held, &start(10)),
            Plan::StartRun {
                parent_run: 10,
                replaces: Some(42),
                ..
            }
        ));
        // At the end: what nothing confirmed goes, runs first.
        let confirmed = [Confirmable::Task(7), Confirmable::Run(9)];
        let left = resync_leftovers(&[(7, 40), (8, 50)], &[(9, 41), (11, 43)], |c| {
            confirmed.contains(&c)
        });
        assert_eq!(
            left,
            vec![
                Plan::ForgetRun {
                    parent_run: 11,
                    local_run: 43
                },
                Plan::Delete {
                    parent_task: 8,
                    local: 50
                }
            ]
        );
    }
}

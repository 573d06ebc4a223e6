//! What travels on a federation link between a parent and a child: the entries of a
//! server's change log going down, and the statistics rows of runs going up. The logic that
//! moves them lives in `sync`; these are only the values.

use serde::{Deserialize, Serialize};

use super::schedule::LocalDateTime;
use super::server::Revocation;
use super::task::RunCounters;

/// One entry of a server's change log. `T` is the task definition as the runtime stores it
/// (the replication logic never looks inside it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum Change<T> {
    /// The task at a revision; it replaces any lower revision the child holds.
    TaskUpsert {
        task_id: u64,
        revision: u32,
        task: T,
    },
    TaskDelete {
        task_id: u64,
    },
    /// A start of the task at `revision`: by hand, or the scheduled `occurrence` (whose
    /// key the child matches with a run of that occurrence it may have made already).
    RunStart {
        task_id: u64,
        run_id: u64,
        revision: u32,
        occurrence: Option<LocalDateTime>,
    },
    RunStop {
        task_id: u64,
        run_id: u64,
    },
    /// An entry of the parent's log that does not concern this child. It only moves the
    /// child's cursor, so that the child's sequence has no holes.
    Noop,
    /// A server certificate revoked at the parent or above: every child keeps it and logs
    /// it for its own children.
    Revoke(Revocation),
    /// An administrator paused (`paused`) or resumed a run.
    RunPause {
        task_id: u64,
        run_id: u64,
        paused: bool,
    },
    /// A run of a chained task ("after task A completes") made when run `after_run` of A
    /// started: each device starts it as it finishes A.
    ChainStart {
        task_id: u64,
        run_id: u64,
        revision: u32,
        after_run: u64,
    },
}

impl<T> Change<T> {
    /// The task this change is about; `None` for a no-op.
    pub fn task_id(&self) -> Option<u64> {
        match self {
            Change::TaskUpsert { task_id, .. }
            | Change::TaskDelete { task_id }
            | Change::RunStart { task_id, .. }
            | Change::RunStop { task_id, .. }
            | Change::RunPause { task_id, .. }
            | Change::ChainStart { task_id, .. } => Some(*task_id),
            Change::Noop | Change::Revoke(_) => None,
        }
    }

    pub fn is_noop(&self) -> bool {
        matches!(self, Change::Noop)
    }
}

impl<T: Clone> Change<T> {
    /// What a child is sent for this entry. A task that does not (or no longer) concerns
    /// the child goes as a delete, so a copy made while it did (before the task moved to
    /// another group, say) does not linger; a delete is sent to every child, which ignores
    /// it for a task it does not hold. Runs go only to the children concerned.
    pub fn as_seen_by(&self, concerns: bool) -> Change<T> {
        match self {
            Change::TaskUpsert { task_id, .. } if !concerns => {
                Change::TaskDelete { task_id: *task_id }
            }
            Change::RunStart { .. }
            | Change::RunStop { .. }
            | Change::RunPause { .. }
            | Change::ChainStart { .. }
                if !concerns =>
            {
                Change::Noop
            }
            other => other.clone(),
        }
    }
}

/// Which children an entry of the log concerns, fixed when the entry is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum Audience {
    /// Children placed in this group of the parent (or, with `include_subgroups`, below it).
    Group {
        group_id: u64,
        include_subgroups: bool,
    },
    /// Every child: a task inherited from above goes on down the whole subtree.
    AllChildren,
}

impl Audience {
    /// Whether a child placed in `child_group` is concerned; `is_below(a, b)` says whether
    /// group `a` is a descendant of group `b`.
    pub fn concerns(&self, child_group: u64, is_below: impl Fn(u64, u64) -> bool) -> bool {
        match *self {
            Audience::AllChildren => true,
            Audience::Group {
                group_id,
                include_subgroups,
            } => child_group == group_id || (include_subgroups && is_below(child_group, group_id)),
        }
    }
}

/// One entry of a server's change log, with the children it concerns. `T` is the task
/// definition as the runtime stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogEntry<T> {
    pub change: Change<T>,
    pub audience: Audience,
}

/// One server's statistics for one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsRow {
    /// Display names from the server holding the row down to the server it describes;
    /// empty for the holder itself.
    pub path: Vec<String>,
    /// `path.len()`: the server's depth below the holder.
    pub depth: u32,
    /// The task's id and the run's id on the server described, for drill-down.
    pub task_id: u64,
    pub run_id: u64,
    /// Of that server's own devices only; rows of its children are separate rows.
    pub counters: RunCounters,
    /// Only grows, for that server and run, across restarts (derived from durable state).
    pub version: u64,
    /// The change log epoch of the server described: a new one when that server's database
    /// is created anew or restored from a backup, whose versions start again. A row of
    /// another epoch than the one held replaces it whatever its version.
    pub epoch: u64,
}

impl StatsRow {
    /// The holder's own row.
    pub fn own(task_id: u64, run_id: u64, counters: RunCounters, version: u64, epoch: u64) -> Self {
        StatsRow {
            path: Vec::new(),
            depth: 0,
            task_id,
            run_id,
            counters,
            version,
            epoch,
        }
    }

    /// The order in which rows replace each other: the version, then (only for two
    /// different rows claiming the same version, which a correct server never sends) the
    /// contents, so that merging stays commutative whatever arrives.
    pub fn rank(&self) -> (u64, [u64; 7], u64, u64, u64) {
        (
            self.version,
            self.counters.by_state,
            self.counters.need_restart,
            self.counters.progress,
            self.task_id,
        )
    }
}

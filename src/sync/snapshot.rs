//! A change log that stays small. A parent trims the entries every registered child has
//! applied, and beyond `keep` entries the oldest whoever has not. A child whose cursor is
//! below what was trimmed (away for long, restored from a backup, or new) is sent a
//! snapshot instead: the parent's state now, as the entries that make it, which the child
//! applies as a resynchronisation (what it held and the snapshot does not confirm is
//! dropped at its end; see `sync::inherit`). Then the log goes on from where the snapshot
//! stands. So bringing a child up to date costs the current state, not the history.
//!
//! A snapshot's entries are numbered so that they end at the log's last sequence number:
//! the child's cursor is set to `from` (the number before the first) when the
//! resynchronisation begins, and its [`Applier`](super::replicate::Applier) takes them
//! as it takes any entry, once each and in order. Every entry of a snapshot stands for a
//! distinct entry the log once had (a task's last upsert, a run's start, its pause, its
//! stop, a revocation), so there are never more of them than the log's last sequence
//! number; the store pads the log with no-ops if a file from before the log says otherwise.

use std::ops::RangeInclusive;

use super::inherit;
use super::replicate::{Cursor, LogState};
use crate::model::Revocation;
use crate::model::link::{Change, LogEntry};
use crate::model::task::{RunRecord, TaskRecord};

/// The entries a child far behind is sent instead of the log: numbered `from + 1` to
/// `from + entries.len()`, the log's last sequence number when it was read.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub from: u64,
    pub entries: Vec<LogEntry<TaskRecord>>,
}

impl Snapshot {
    /// The sequence number of its last entry.
    pub fn end(&self) -> u64 {
        self.from + self.entries.len() as u64
    }

    /// Its entries numbered within `range`.
    pub fn entries_in(&self, range: &RangeInclusive<u64>) -> Vec<(u64, LogEntry<TaskRecord>)> {
        let first = (*range.start()).max(self.from + 1);
        let last = (*range.end()).min(self.end());
        (first..=last)
            .filter_map(|seq| {
                let index = usize::try_from(seq - self.from - 1).ok()?;
                Some((seq, self.entries.get(index)?.clone()))
            })
            .collect()
    }
}

/// Whether a child at `cursor` must be sent a snapshot by a parent whose log is `log`,
/// trimmed up to `trimmed`: its cursor counts in another log, or below what was trimmed.
pub fn needs_snapshot(cursor: &Cursor, log: &LogState, trimmed: u64) -> bool {
    trimmed > 0 && (cursor.resync_with(log) || cursor.last_applied < trimmed)
}

/// The entries that make the state of `tasks` and `runs` (a task's runs in id order after
/// it) and `revocations`, for the children concerned: what replaying the whole log would
/// leave them with.
pub fn state_entries(
    revocations: Vec<Revocation>,
    mut tasks: Vec<TaskRecord>,
    mut runs: Vec<RunRecord>,
) -> Vec<LogEntry<TaskRecord>> {
    let mut out: Vec<LogEntry<TaskRecord>> = revocations
        .into_iter()
        .map(inherit::log_revocation)
        .collect();
    tasks.sort_by_key(|t| t.id);
    runs.sort_by_key(|r| (r.task_id, r.run_id));
    let mut runs = runs.into_iter().peekable();
    for task in &tasks {
        // Runs of tasks that concern no child were never logged.
        while runs.next_if(|r| r.task_id < task.id).is_some() {}
        let Some(upsert) = inherit::log_upsert(None, task) else {
            continue;
        };
        out.push(upsert);
        while let Some(run) = runs.next_if(|r| r.task_id == task.id) {
            out.extend(run_entries(task, &run));
        }
    }
    out
}

/// A run's start (a chained run's as such), its pause and its stop, as the log had them.
fn run_entries(task: &TaskRecord, run: &RunRecord) -> Vec<LogEntry<TaskRecord>> {
    let (task_id, run_id) = (task.id, run.run_id);
    let start = match run.after_run {
        Some(after_run) => Change::ChainStart {
            task_id,
            run_id,
            revision: run.revision,
            after_run,
        },
        None => Change::RunStart {
            task_id,
            run_id,
            revision: run.revision,
            occurrence: run.occurrence,
        },
    };
    let mut changes = vec![start];
    if run.paused.is_some() {
        changes.push(Change::RunPause {
            task_id,
            run_id,
            paused: true,
        });
    }
    if run.stopped.is_some() {
        changes.push(Change::RunStop { task_id, run_id });
    }
    changes
        .into_iter()
        .filter_map(|change| inherit::log_about(task, change))
        .collect()
}

/// How far a log ending at `last_seq`, trimmed up to `trimmed`, may be trimmed now: past
/// what every registered child applied (`applied`, one each: 0 for a child of whom nothing
/// is known in this log), and past all but the newest `keep` entries whoever has not.
pub fn trim_point(
    last_seq: u64,
    trimmed: u64,
    keep: u64,
    applied: impl IntoIterator<Item = u64>,
) -> u64 {
    let everyone = applied.into_iter().min().unwrap_or(last_seq);
    everyone
        .max(last_seq.saturating_sub(keep))
        .min(last_seq)
        .max(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_below_the_trimmed_start_or_of_another_log_gets_a_snapshot() {
        let log = LogState {
            epoch: 7,
            last_seq: 100,
        };
        let at = |last_applied, epoch| Cursor {
            last_applied,
            epoch,
        };
        assert!(!needs_snapshot(&at(10, 7), &log, 0), "nothing trimmed");
        assert!(
            !needs_snapshot(&at(0, 0), &log, 0),
            "a new child replays the log"
        );
        assert!(needs_snapshot(&at(0, 0), &log, 40), "a new child");
        assert!(needs_snapshot(&at(39, 7), &log, 40));
        assert!(!needs_snapshot(&at(40, 7), &log, 40));
        assert!(needs_snapshot(&at(90, 6), &log, 40), "another log");
    }

    #[test]
    fn the_trim_point_waits_for_every_child_but_not_beyond_keep() {
        assert_eq!(trim_point(100, 0, 1000, [60, 80]), 60);
        assert_eq!(trim_point(100, 0, 30, [60, 0]), 70, "keep bounds it");
        assert_eq!(trim_point(100, 0, 1000, []), 100, "no child: all of it");
        assert_eq!(trim_point(100, 90, 1000, [60]), 90, "never back");
        assert_eq!(trim_point(100, 0, 1000, [200]), 100);
    }

    #[test]
    fn snapshot_entries_are_numbered_up_to_its_end() {
        let entry = |task_id| LogEntry {
            change: Change::TaskDelete { task_id },
            audience: crate::model::link::Audience::AllChildren,
        };
        let s = Snapshot {
            from: 7,
            entries: vec![entry(1), entry(2), entry(3)],
        };
        assert_eq!(s.end(), 10);
        let seqs = |r| {
            s.entries_in(&r)
                .into_iter()
                .map(|(q, _)| q)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(1..=100), [8, 9, 10]);
        assert_eq!(seqs(9..=9), [9]);
        assert!(seqs(11..=20).is_empty());
    }
}

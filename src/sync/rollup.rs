//! The arithmetic of a run over a subtree, in one place: which servers below a run should
//! hear from, its totals with the devices of servers not heard from counted as pending, and
//! whether it is over in the whole subtree. The admin views, the link runtime and the
//! simulation all call these functions, so they cannot disagree.

use crate::model::link::{Audience, StatsRow};
use crate::model::task::{DeviceState, RunCounters, RunState};

use super::stats::{StatsTable, add_counters};

/// A child of this server as the run's reach sees it: where it is placed and what it last
/// said about its subtree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildPlacement {
    pub name: String,
    /// The group of this server the child is placed in; `None` if that group is gone.
    pub group: Option<u64>,
    /// Devices the child itself manages.
    pub devices: u64,
    /// The servers below the child, paths relative to the child, with their devices.
    pub subtree: Vec<(Vec<String>, u64)>,
}

/// The servers below this one that a run of a task with `audience` reaches, as paths of
/// names with their devices: the children the audience concerns, and everything below them.
/// `is_below(a, b)`: group `a` is a descendant of group `b`.
pub fn expected_below(
    audience: Option<Audience>,
    children: &[ChildPlacement],
    is_below: impl Fn(u64, u64) -> bool,
) -> Vec<(Vec<String>, u64)> {
    let Some(audience) = audience else {
        return Vec::new();
    };
    let mut expected = Vec::new();
    for child in children {
        let concerned = child.group.is_some_and(|g| audience.concerns(g, &is_below));
        if !concerned {
            continue;
        }
        expected.push((vec![child.name.clone()], child.devices));
        for (path, devices) in &child.subtree {
            let mut full = vec![child.name.clone()];
            full.extend(path.iter().cloned());
            expected.push((full, *devices));
        }
    }
    expected
}

/// One run over this server's subtree, as far as this server knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollup {
    /// This server's devices, every row reported from below, and the devices of the
    /// servers expected below that have not reported yet, as pending.
    pub totals: RunCounters,
    /// The servers expected below without a row yet, with their devices.
    pub missing: Vec<(Vec<String>, u64)>,
    pub stopped: bool,
}

impl Rollup {
    /// `own`: this server's counters; `rows`: what the servers below reported; `expected`:
    /// from [`expected_below`].
    pub fn of(
        own: &RunCounters,
        stopped: bool,
        rows: &StatsTable,
        expected: &[(Vec<String>, u64)],
    ) -> Rollup {
        let missing: Vec<(Vec<String>, u64)> = expected
            .iter()
            .filter(|(path, _)| !path.is_empty() && rows.get(path).is_none())
            .cloned()
            .collect();
        let mut totals = rows.totals(own);
        let missing_devices = missing
            .iter()
            .fold(0u64, |sum, (_, d)| sum.saturating_add(*d));
        add_counters(&mut totals, &pending(missing_devices));
        Rollup {
            totals,
            missing,
            stopped,
        }
    }

    /// The run is over in the whole subtree: stopped, or every device counted has finished
    /// (devices of servers not heard from count as pending, so they hold it open).
    pub fn is_complete(&self) -> bool {
        self.stopped || self.totals.finished() == self.totals.total()
    }

    /// The state an administrator sees.
    pub fn state(&self) -> RunState {
        if self.stopped {
            RunState::Stopped
        } else if self.is_complete() {
            RunState::Completed
        } else {
            RunState::Running
        }
    }

    /// The row shown for a server expected below that has not reported: its devices as
    /// pending, no task id yet.
    pub fn missing_rows(&self) -> impl Iterator<Item = StatsRow> + '_ {
        self.missing.iter().map(|(path, devices)| StatsRow {
            path: path.clone(),
            depth: path.len() as u32,
            task_id: 0,
            run_id: 0,
            counters: pending(*devices),
            version: 0,
            epoch: 0,
        })
    }
}

/// `n` devices, all pending.
fn pending(n: u64) -> RunCounters {
    let mut counters = RunCounters::default();
    let index = DeviceState::ALL
        .iter()
        .position(|s| *s == DeviceState::Pending)
        .unwrap_or_default();
    counters.by_state[index] = n;
    counters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn counters(pending: u64, succeeded: u64) -> RunCounters {
        let mut c = RunCounters::default();
        c.by_state[0] = pending;
        c.by_state[3] = succeeded;
        c
    }

    fn row(p: &[&str], succeeded: u64) -> StatsRow {
        StatsRow {
            path: path(p),
            depth: p.len() as u32,
            task_id: 7,
            run_id: 1,
            counters: counters(0, succeeded),
            version: 1,
            epoch: 1,
        }
    }

    #[test]
    fn servers_without_a_row_count_their_devices_as_pending() {
        let table = StatsTable::from_rows([row(&["a"], 3)]);
        let expected = [
            (path(&["a"]), 3),
            (path(&["a", "b"]), 4),
            (path(&["c"]), 5),
            (path(&[]), 100),
        ];
        let r = Rollup::of(&counters(0, 2), false, &table, &expected);
        assert_eq!(
            r.totals,
            counters(9, 5),
            "the holder itself is never missing"
        );
        assert_eq!(r.missing, vec![(path(&["a", "b"]), 4), (path(&["c"]), 5)]);
        assert!(!r.is_complete());
        assert_eq!(r.state(), RunState::Running);
        let rows: Vec<_> = r.missing_rows().map(|r| (r.depth, r.counters)).collect();
        assert_eq!(rows, vec![(2, counters(4, 0)), (1, counters(5, 0))]);
        let stopped = Rollup::of(&counters(0, 2), true, &table, &expected);
        assert!(stopped.is_complete());
        assert_eq!(stopped.state(), RunState::Stopped);
    }

    #[test]
    fn a_run_is_complete_once_every_expected_server_reported_its_devices_finished() {
        let expected = [(path(&["a"]), 3)];
        let none = StatsTable::new();
        assert!(!Rollup::of(&counters(0, 1), false, &none, &expected).is_complete());
        let table = StatsTable::from_rows([row(&["a"], 3)]);
        let r = Rollup::of(&counters(0, 1), false, &table, &expected);
        assert!(r.is_complete());
        assert_eq!(r.state(), RunState::Completed);
    }

    #[test]
    fn only_children_placed_in_the_audience_are_expected_with_their_subtrees() {
        // Groups: 1 is the root, 2 below 1, 3 beside 2.
        let is_below = |a: u64, b: u64| b == 1 && a != 1;
        let child = |name: &str, group| ChildPlacement {
            name: name.into(),
            group,
            devices: 10,
            subtree: vec![(path(&["x"]), 2)],
        };
        let children = [child("a", Some(2)), child("b", Some(3)), child("c", None)];
        let only_2 = Audience::Group {
            group_id: 2,
            include_subgroups: false,
        };
        assert_eq!(
            expected_below(Some(only_2), &children, is_below),
            vec![(path(&["a"]), 10), (path(&["a", "x"]), 2)]
        );
        let all = expected_below(Some(Audience::AllChildren), &children, is_below);
        assert_eq!(
            all.len(),
            4,
            "a child whose group is gone is reached by nothing"
        );
        let root = Audience::Group {
            group_id: 1,
            include_subgroups: true,
        };
        assert_eq!(expected_below(Some(root), &children, is_below).len(), 4);
        assert!(expected_below(None, &children, is_below).is_empty());
    }

    #[test]
    fn counts_a_child_made_up_saturate_instead_of_overflowing() {
        let mut huge = row(&["a"], 0);
        huge.counters.by_state = [u64::MAX; 7];
        huge.counters.need_restart = u64::MAX;
        let mut also = huge.clone();
        also.path = path(&["a", "b"]);
        also.depth = 2;
        let table = StatsTable::from_rows([huge, also]);
        let expected = [(path(&["c"]), u64::MAX), (path(&["d"]), u64::MAX)];
        let r = Rollup::of(&counters(1, 1), false, &table, &expected);
        assert_eq!(r.totals.count(DeviceState::Pending), u64::MAX);
        assert_eq!(r.totals.total(), u64::MAX);
        assert_eq!(r.totals.need_restart, u64::MAX);
        assert_eq!(table.subtree_totals(&path(&["a"])).total(), u64::MAX);
        let _ = r.is_complete();
        let _ = r.state();
    }
}

//! Run statistics going up the tree.
//!
//! Every server counts its own devices' records of a run ([`RunCounters`], kept with the
//! records). It reports one row per server of its subtree to its parent: its own row and
//! every row it received from below, paths prefixed with its own name. A parent keeps the
//! newest version of each row ([`StatsTable::merge`]), so a report may arrive late, twice or
//! out of order, and each device is counted exactly once at every level. A [`Reporter`]
//! decides when to send: at most a few reports per second per run, at once when the run
//! completes, again until the parent acknowledges.
//!
//! A row's version counts in the epoch of the server it describes: a server whose database
//! is created anew or restored from a backup starts a new epoch, and its first row replaces
//! what was held whatever the versions. A parent takes a child's rows only for the runs that
//! concern the child ([`accepts_report`]); counts from below are added saturating.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::model::link::{Audience, StatsRow};
use crate::model::task::RunCounters;

/// Adds `other` into `into`, state by state. Saturating: a child's rows carry counts it
/// could make up.
pub fn add_counters(into: &mut RunCounters, other: &RunCounters) {
    for (a, b) in into.by_state.iter_mut().zip(other.by_state.iter()) {
        *a = a.saturating_add(*b);
    }
    into.need_restart = into.need_restart.saturating_add(other.need_restart);
    into.progress = into.progress.saturating_add(other.progress);
}

/// Whether a parent takes a child's report about one of its runs: only if the run's task
/// (`audience`: who it goes to, `None` for a task no child gets) concerns the child, placed
/// in group `child_group` (`None`: the child is not registered, or its group is gone).
/// `is_below(a, b)`: group `a` is a descendant of group `b`.
pub fn accepts_report(
    audience: Option<Audience>,
    child_group: Option<u64>,
    is_below: impl Fn(u64, u64) -> bool,
) -> bool {
    match (audience, child_group) {
        (Some(audience), Some(group)) => audience.concerns(group, is_below),
        _ => false,
    }
}

/// The rows one server holds for one run, about the servers below it. The runtime stores
/// each row that `merge` accepted in the same transaction as the report's acknowledgement
/// is decided, and restores the table with `from_rows`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsTable {
    rows: BTreeMap<Vec<String>, StatsRow>,
}

impl StatsTable {
    pub fn new() -> Self {
        StatsTable::default()
    }

    /// A table restored from stored rows.
    pub fn from_rows(rows: impl IntoIterator<Item = StatsRow>) -> Self {
        let mut table = StatsTable::new();
        table.merge_all(rows);
        table
    }

    /// Keeps `row` if it is newer than the row held for its path. Returns true when the
    /// table changed (the caller then stores the row and reports upward). A row about the
    /// holder itself (empty path) or with a depth that does not match its path is refused.
    pub fn merge(&mut self, row: StatsRow) -> bool {
        if row.path.is_empty() || row.depth as usize != row.path.len() {
            return false;
        }
        match self.rows.get(&row.path) {
            // Of one installation of that server: the newest version wins.
            Some(held) if held.epoch == row.epoch && held.rank() >= row.rank() => false,
            // Of another: that server was reinstalled or restored, and counts again from
            // the start. The row that arrives describes it as it is now.
            _ => {
                self.rows.insert(row.path.clone(), row);
                true
            }
        }
    }

    /// Merges a whole report; true if any row changed.
    pub fn merge_all(&mut self, rows: impl IntoIterator<Item = StatsRow>) -> bool {
        // Not `any`: it would stop at the first change and drop the rest of the report.
        let mut changed = false;
        for row in rows {
            changed |= self.merge(row);
        }
        changed
    }

    /// Rows in path order (a server before the servers below it).
    pub fn rows(&self) -> impl Iterator<Item = &StatsRow> {
        self.rows.values()
    }

    pub fn get(&self, path: &[String]) -> Option<&StatsRow> {
        self.rows.get(path)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The run's statistics over the whole subtree: the holder's own counters plus every row.
    pub fn totals(&self, own: &RunCounters) -> RunCounters {
        let mut totals = *own;
        for row in self.rows.values() {
            add_counters(&mut totals, &row.counters);
        }
        totals
    }

    /// The statistics of the subtree at `path` (its row and every row below it), for
    /// drill-down into one secondary.
    pub fn subtree_totals(&self, path: &[String]) -> RunCounters {
        let mut totals = RunCounters::default();
        for row in self.rows.values().filter(|r| r.path.starts_with(path)) {
            add_counters(&mut totals, &row.counters);
        }
        totals
    }

    /// What this server sends its parent: its own row, then every row it holds, paths
    /// prefixed with `name_at_parent` (the name its parent registered it under).
    pub fn report(&self, name_at_parent: &str, own: &StatsRow) -> Vec<StatsRow> {
        let prefixed = |row: &StatsRow| {
            let mut path = Vec::with_capacity(row.path.len() + 1);
            path.push(name_at_parent.to_string());
            path.extend(row.path.iter().cloned());
            StatsRow {
                depth: path.len() as u32,
                path,
                ..row.clone()
            }
        };
        std::iter::once(own)
            .chain(self.rows.values())
            .map(prefixed)
            .collect()
    }
}

/// How often a run's statistics may be reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReporterPolicy {
    /// At least this long between two reports of a run, unless it just completed.
    pub min_interval: Duration,
    /// Send the report again if the parent has not acknowledged it in this time.
    pub resend_after: Duration,
}

impl Default for ReporterPolicy {
    fn default() -> Self {
        ReporterPolicy {
            min_interval: Duration::from_millis(300),
            resend_after: Duration::from_secs(3),
        }
    }
}

/// When to report one run's statistics to the parent. Volatile: after a restart or a new
/// link, `handle_connected` makes it send the whole current state once.
#[derive(Clone, Debug)]
pub struct Reporter {
    policy: ReporterPolicy,
    /// Something changed since the last report.
    dirty_since: Option<Instant>,
    /// Send without waiting for the interval (the run just completed, or a new link).
    urgent: bool,
    complete_seen: bool,
    last_sent: Option<Instant>,
    /// The report in flight: its id and when it was sent.
    unacked: Option<(u64, Instant)>,
    next_id: u64,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::new(ReporterPolicy::default())
    }
}

impl Reporter {
    pub fn new(policy: ReporterPolicy) -> Self {
        Reporter::starting_at(policy, 0)
    }

    /// A reporter whose report ids count from `first_id`. Reporters that follow each other
    /// for one run on one link must not share ids, or a late acknowledgement of the earlier
    /// one's report would settle a report of the later one that was lost.
    pub fn starting_at(policy: ReporterPolicy, first_id: u64) -> Self {
        Reporter {
            policy,
            dirty_since: None,
            urgent: false,
            complete_seen: false,
            last_sent: None,
            unacked: None,
            next_id: first_id,
        }
    }

    /// The run's statistics changed (own counters, or a row merged from below).
    /// `run_complete`: the subtree's run is now over; its first sighting is sent at once.
    pub fn handle_change(&mut self, now: Instant, run_complete: bool) {
        self.dirty_since.get_or_insert(now);
        if run_complete && !self.complete_seen {
            self.complete_seen = true;
            self.urgent = true;
        }
    }

    /// A new link to the parent (or a restart): send the whole state at once; what was in
    /// flight on the old link is lost.
    pub fn handle_connected(&mut self, now: Instant) {
        self.unacked = None;
        self.dirty_since = Some(now);
        self.urgent = true;
    }

    /// The parent stored report `report_id`. An acknowledgement of an older report than the
    /// one in flight changes nothing. Returns true when it is news.
    pub fn handle_ack(&mut self, report_id: u64) -> bool {
        match self.unacked {
            Some((id, _)) if id == report_id => {
                self.unacked = None;
                true
            }
            _ => false,
        }
    }

    /// `Some(report_id)` when a report should be sent now: the caller sends
    /// `StatsTable::report` with that id, and the parent acknowledges the id once it stored
    /// the rows.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<u64> {
        let resend = matches!(self.unacked, Some((_, at)) if now >= at + self.policy.resend_after);
        let due = self.dirty_since.is_some()
            && (self.urgent
                || self
                    .last_sent
                    .is_none_or(|at| now >= at + self.policy.min_interval));
        if !(resend || due) {
            return None;
        }
        // A report carries the whole current state, so it settles any earlier change too.
        self.dirty_since = None;
        self.urgent = false;
        let id = self.next_id;
        self.next_id += 1;
        self.unacked = Some((id, now));
        self.last_sent = Some(now);
        Some(id)
    }

    /// When to call `poll_transmit` again if nothing else happens.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let send = self
            .dirty_since
            .map(|since| match (self.urgent, self.last_sent) {
                (false, Some(at)) => since.max(at + self.policy.min_interval),
                _ => since,
            });
        let resend = self.unacked.map(|(_, at)| at + self.policy.resend_after);
        match (send, resend) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Since when the parent has not held the run's newest statistics: the first change not
    /// sent yet, or the sending of the report in flight (the changes it carries are at least
    /// that old). `None` when idle.
    pub fn pending_since(&self) -> Option<Instant> {
        match (self.dirty_since, self.unacked) {
            (Some(a), Some((_, b))) => Some(a.min(b)),
            (a, b) => a.or(b.map(|(_, at)| at)),
        }
    }

    /// Nothing to send and nothing waiting for an acknowledgement.
    pub fn is_idle(&self) -> bool {
        self.dirty_since.is_none() && self.unacked.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pending: u64, succeeded: u64) -> RunCounters {
        let mut c = RunCounters::default();
        c.by_state[0] = pending;
        c.by_state[3] = succeeded;
        c
    }

    fn row(path: &[&str], version: u64, succeeded: u64) -> StatsRow {
        StatsRow {
            path: path.iter().map(|s| s.to_string()).collect(),
            depth: path.len() as u32,
            task_id: 7,
            run_id: 1,
            counters: counters(3 - succeeded, succeeded),
            version,
            epoch: 1,
        }
    }

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merge_keeps_the_newest_version_whatever_the_order() {
        let rows = [
            row(&["a"], 1, 0),
            row(&["a"], 3, 2),
            row(&["a", "b"], 2, 1),
            row(&["a"], 2, 1),
            row(&["a", "b"], 5, 3),
        ];
        let mut forward = StatsTable::new();
        let changed: Vec<bool> = rows.iter().map(|r| forward.merge(r.clone())).collect();
        assert_eq!(changed, [true, true, true, false, true]);
        let mut backward = StatsTable::new();
        for r in rows.iter().rev() {
            backward.merge(r.clone());
        }
        // And twice: idempotent.
        for r in &rows {
            assert!(!backward.merge(r.clone()));
        }
        assert_eq!(forward, backward);
        assert_eq!(forward.get(&path(&["a"])).map(|r| r.version), Some(3));
        assert_eq!(forward.totals(&counters(1, 0)), counters(1 + 1, 2 + 3));
    }

    #[test]
    fn a_row_of_a_new_epoch_replaces_one_with_a_higher_version() {
        // The child was reinstalled: its versions start again.
        let mut t = StatsTable::from_rows([row(&["a"], 40, 3)]);
        let mut new = row(&["a"], 2, 0);
        new.epoch = 2;
        assert!(t.merge(new.clone()));
        assert_eq!(t.get(&path(&["a"])), Some(&new));
        let mut newer = row(&["a"], 3, 1);
        newer.epoch = 2;
        assert!(t.merge(newer));
        new.version = 1;
        assert!(!t.merge(new), "within the epoch, versions order");
    }

    #[test]
    fn a_report_is_taken_only_for_runs_that_concern_the_child() {
        // Groups: 1 the root, 2 below it, 3 beside 2.
        let is_below = |a: u64, b: u64| b == 1 && a != 1;
        let group = |group_id, include_subgroups| {
            Some(Audience::Group {
                group_id,
                include_subgroups,
            })
        };
        assert!(accepts_report(group(2, false), Some(2), is_below));
        assert!(accepts_report(group(1, true), Some(2), is_below));
        assert!(!accepts_report(group(1, false), Some(2), is_below));
        assert!(!accepts_report(group(3, true), Some(2), is_below));
        assert!(accepts_report(
            Some(Audience::AllChildren),
            Some(2),
            is_below
        ));
        assert!(
            !accepts_report(None, Some(2), is_below),
            "a task of this server only"
        );
        assert!(
            !accepts_report(Some(Audience::AllChildren), None, is_below),
            "not registered"
        );
    }

    #[test]
    fn counts_add_up_saturating() {
        let mut big = row(&["a"], 1, 0);
        big.counters.by_state = [u64::MAX; 7];
        let t = StatsTable::from_rows([big]);
        assert_eq!(t.totals(&counters(5, 5)).total(), u64::MAX);
    }

    #[test]
    fn conflicting_rows_of_one_version_still_merge_commutatively() {
        let (x, y) = (row(&["a"], 4, 1), row(&["a"], 4, 2));
        let mut one = StatsTable::new();
        one.merge(x.clone());
        one.merge(y.clone());
        let mut two = StatsTable::new();
        two.merge(y);
        two.merge(x);
        assert_eq!(one, two);
    }

    #[test]
    fn malformed_rows_are_refused() {
        let mut t = StatsTable::new();
        assert!(!t.merge(row(&[], 1, 0)), "a row about the holder itself");
        let mut bad = row(&["a", "b"], 1, 0);
        bad.depth = 1;
        assert!(!t.merge(bad));
        assert!(t.is_empty());
    }

    #[test]
    fn a_report_prefixes_every_path_with_the_reporters_name() {
        let t = StatsTable::from_rows([row(&["b"], 2, 1), row(&["b", "c"], 1, 0)]);
        let own = StatsRow::own(9, 1, counters(2, 0), 11, 1);
        let report = t.report("a", &own);
        let summary: Vec<_> = report
            .iter()
            .map(|r| (r.path.join("/"), r.depth, r.version, r.task_id))
            .collect();
        assert_eq!(
            summary,
            [
                ("a".to_string(), 1, 11, 9),
                ("a/b".to_string(), 2, 2, 7),
                ("a/b/c".to_string(), 3, 1, 7),
            ]
        );
        // The parent's table takes the report as it is.
        let mut parent = StatsTable::new();
        assert!(parent.merge_all(report.clone()));
        assert!(!parent.merge_all(report));
        assert_eq!(
            parent.subtree_totals(&path(&["a", "b"])),
            counters(2 + 3, 1)
        );
        assert_eq!(parent.totals(&RunCounters::default()).total(), 8);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn reporter() -> Reporter {
        Reporter::new(ReporterPolicy {
            min_interval: ms(300),
            resend_after: ms(1000),
        })
    }

    #[test]
    fn reports_are_coalesced_to_a_few_per_second() {
        let t0 = Instant::now();
        let mut r = reporter();
        assert_eq!(r.poll_transmit(t0), None, "nothing changed");
        r.handle_change(t0, false);
        assert_eq!(
            r.poll_transmit(t0),
            Some(0),
            "the first change goes at once"
        );
        assert!(r.handle_ack(0));
        for i in 1..50 {
            r.handle_change(t0 + ms(i), false);
        }
        assert_eq!(r.poll_transmit(t0 + ms(50)), None);
        assert_eq!(r.poll_timeout(), Some(t0 + ms(300)));
        assert_eq!(
            r.poll_transmit(t0 + ms(300)),
            Some(1),
            "one report for 49 changes"
        );
        assert!(!r.handle_ack(0), "a late ack of an older report");
        assert!(r.handle_ack(1));
        assert!(r.is_idle());
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn what_the_parent_lacks_is_pending_since_its_oldest_change() {
        let t0 = Instant::now();
        let mut r = reporter();
        assert_eq!(r.pending_since(), None);
        r.handle_change(t0, false);
        assert_eq!(r.pending_since(), Some(t0));
        assert_eq!(r.poll_transmit(t0 + ms(5)), Some(0));
        // In flight since it was sent; a change meanwhile does not make it younger.
        assert_eq!(r.pending_since(), Some(t0 + ms(5)));
        r.handle_change(t0 + ms(20), false);
        assert_eq!(r.pending_since(), Some(t0 + ms(5)));
        assert!(r.handle_ack(0));
        assert_eq!(r.pending_since(), Some(t0 + ms(20)));
        assert_eq!(r.poll_transmit(t0 + ms(305)), Some(1));
        assert!(r.handle_ack(1));
        assert_eq!(r.pending_since(), None);
    }

    #[test]
    fn a_completed_run_is_reported_at_once_but_only_once() {
        let t0 = Instant::now();
        let mut r = reporter();
        r.handle_change(t0, false);
        assert_eq!(r.poll_transmit(t0), Some(0));
        r.handle_change(t0 + ms(10), true);
        assert_eq!(r.poll_timeout(), Some(t0 + ms(10)));
        assert_eq!(r.poll_transmit(t0 + ms(10)), Some(1));
        // A late duplicate after completion does not bypass the interval again.
        r.handle_change(t0 + ms(20), true);
        assert_eq!(r.poll_transmit(t0 + ms(20)), None);
        assert_eq!(r.poll_transmit(t0 + ms(310)), Some(2));
    }

    #[test]
    fn an_unacknowledged_report_is_sent_again() {
        let t0 = Instant::now();
        let mut r = reporter();
        r.handle_change(t0, false);
        assert_eq!(r.poll_transmit(t0), Some(0));
        assert_eq!(r.poll_timeout(), Some(t0 + ms(1000)));
        assert_eq!(r.poll_transmit(t0 + ms(999)), None);
        assert_eq!(r.poll_transmit(t0 + ms(1000)), Some(1));
        assert!(!r.is_idle());
        // A new link: everything again, at once, and the old report is forgotten.
        r.handle_connected(t0 + ms(1001));
        assert!(!r.handle_ack(1));
        assert_eq!(r.poll_transmit(t0 + ms(1001)), Some(2));
        assert!(r.handle_ack(2));
        assert!(r.is_idle());
    }
}

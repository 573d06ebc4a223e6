//! The parent's side of one child's link, sans-IO: what the child is sent for each entry of
//! the change log, the replay it is owed after being away, its statistics reports (only rows
//! of its own subtree are taken), its events (stored with where they came from, each once),
//! and the administrators' requests relayed to it.
//!
//! The runtime feeds in what happened (`handle_*`) and carries out what the session asks
//! (`poll_effect`: read log entries, store the child's subtree, merge statistics, answer a
//! request, record an event), then sends what `poll_transmit` returns. `server::fed` drives
//! it over QUIC and over a virtual server's in-process link; the simulation drives it over a
//! simulated network.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::Instant;

use crate::model::link::{LogEntry, StatsRow};
use crate::model::task::TaskRecord;
use crate::model::{Event, EventKind, ServerRow};
use crate::wire::msg::{AdminResponse, ChildMsg, ForwardedRequest, ParentMsg};

use super::replicate::{Cursor, Feed, FeedPolicy, LogState};
use super::snapshot::Snapshot;

/// What the runtime must do for a child session.
#[derive(Debug)]
pub enum ChildEffect {
    /// Read these entries of the change log and hand them to `handle_entries`.
    ReadLog(RangeInclusive<u64>),
    /// Store what the child says of its subtree, replacing what it said before.
    StoreSubtree { devices: u64, rows: Vec<ServerRow> },
    /// Merge these rows into the run's statistics, then call `handle_stats_merged` (a
    /// report that could not be stored is not acknowledged, so the child sends it again).
    MergeStats {
        run_id: u64,
        report_id: u64,
        rows: Vec<StatsRow>,
    },
    /// The child answered the relayed request `id`.
    Answer {
        id: u64,
        response: Box<AdminResponse>,
    },
    /// Something an administrator should see in the event log.
    Event { kind: EventKind, message: String },
    /// Store these events of the child's (see `sync::events_up`): each with the child's
    /// name before its origin, those already held dropped, and the highest sequence number
    /// held from the child, in one transaction; then call `handle_events_stored`.
    StoreEvents { events: Vec<Event> },
}

/// The parent's side of one child link. Volatile: a new one per link, built from the
/// child's cursor in its hello.
#[derive(Debug)]
pub struct ChildSession {
    name: String,
    /// The child's own log epoch, from its hello: its own statistics row carries it.
    child_epoch: u64,
    feed_policy: FeedPolicy,
    feed: Feed,
    /// The snapshot the child is sent instead of the entries it missed, until it has
    /// applied all of it.
    snapshot: Option<Snapshot>,
    log_last_seq: u64,
    /// While the child catches up on what it missed: where it started and the end of the
    /// log then.
    replay: Option<(u64, u64)>,
    next_request: u64,
    transmit: VecDeque<ParentMsg>,
    effects: VecDeque<ChildEffect>,
    #[cfg(test)]
    pub(crate) sabotage_routing: bool,
}

impl ChildSession {
    /// A link with the child `name` (as registered here), whose hello says where it stands
    /// in this server's log (`cursor`) and its own log's epoch (`child_epoch`); this
    /// server's log is `log`. A cursor of another epoch than the log's is replayed the
    /// whole log (a resynchronisation).
    pub fn new(name: &str, cursor: Cursor, child_epoch: u64, log: LogState, now: Instant) -> Self {
        ChildSession::with_policy(FeedPolicy::default(), name, cursor, child_epoch, log, now)
    }

    pub fn with_policy(
        policy: FeedPolicy,
        name: &str,
        cursor: Cursor,
        child_epoch: u64,
        log: LogState,
        now: Instant,
    ) -> Self {
        let last_applied = cursor.start_in(&log);
        let log_last_seq = log.last_seq;
        let mut session = ChildSession {
            name: name.to_string(),
            child_epoch,
            feed_policy: policy,
            feed: Feed::with_policy(policy, last_applied, now),
            snapshot: None,
            log_last_seq,
            replay: None,
            next_request: 0,
            transmit: VecDeque::new(),
            effects: VecDeque::new(),
            #[cfg(test)]
            sabotage_routing: false,
        };
        if cursor.resync_with(&log) && cursor.held_anything() {
            session.replay = Some((0, log_last_seq));
            session.effects.push_back(ChildEffect::Event {
                kind: EventKind::ReplayStarted,
                message: format!(
                    "resynchronising {name}: it applied {} change(s) of another change log of \
                     this server (this database was restored from a backup or created anew); \
                     replaying all {log_last_seq} change(s) of this one",
                    cursor.last_applied
                ),
            });
        } else if log_last_seq > last_applied {
            session.replay = Some((last_applied, log_last_seq));
            session.effects.push_back(ChildEffect::Event {
                kind: EventKind::ReplayStarted,
                message: format!(
                    "replaying {} change(s) to {name} (changes {} to {log_last_seq})",
                    log_last_seq - last_applied,
                    last_applied + 1
                ),
            });
        }
        session
    }

    /// The child's name as registered here: the first element of its statistics paths.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log was trimmed up to `trimmed`, past the child's cursor (`from_cursor`): it is
    /// sent `snapshot` (this server's state, numbered to end where the log ends now)
    /// instead of the entries it missed, then the log after it.
    pub fn send_snapshot(
        &mut self,
        snapshot: Snapshot,
        from_cursor: Cursor,
        trimmed: u64,
        now: Instant,
    ) {
        self.feed = Feed::with_policy(self.feed_policy, snapshot.from, now);
        self.effects.retain(
            |e| !matches!(e, ChildEffect::Event { kind, .. } if *kind == EventKind::ReplayStarted),
        );
        self.replay = Some((snapshot.from, self.log_last_seq.max(snapshot.end())));
        self.effects.push_back(ChildEffect::Event {
            kind: EventKind::ReplayStarted,
            message: format!(
                "sending {} a snapshot of this server's state ({} entries): its change log is \
                 trimmed up to change {trimmed}, and {}; then the changes after {}",
                self.name,
                snapshot.entries.len(),
                if from_cursor.held_anything() {
                    format!("it had applied {} change(s)", from_cursor.last_applied)
                } else {
                    "it is new".to_string()
                },
                snapshot.end()
            ),
        });
        self.snapshot = Some(snapshot);
    }

    /// The entries of `range` if the snapshot the child is being sent holds them; `None`
    /// when they are read from the log.
    pub fn snapshot_entries(
        &self,
        range: &RangeInclusive<u64>,
    ) -> Option<Vec<(u64, LogEntry<TaskRecord>)>> {
        let snapshot = self.snapshot.as_ref()?;
        (*range.start() <= snapshot.end()).then(|| snapshot.entries_in(range))
    }

    /// The highest entry of the log the child said it stored; `None` while it is sent a
    /// snapshot, whose numbers are not the log's.
    pub fn applied(&self) -> Option<u64> {
        self.snapshot.is_none().then(|| self.feed.acked())
    }

    /// The change log grew (or may have): it now ends at `last_seq`.
    pub fn handle_log_appended(&mut self, last_seq: u64) {
        self.log_last_seq = self.log_last_seq.max(last_seq);
    }

    /// A message from the child.
    pub fn handle_message(&mut self, msg: ChildMsg, now: Instant) {
        match msg {
            ChildMsg::Subtree { devices, rows } => self
                .effects
                .push_back(ChildEffect::StoreSubtree { devices, rows }),
            ChildMsg::Ack(seq) => {
                self.feed.handle_ack(seq, now);
                if self
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| self.feed.acked() >= s.end())
                {
                    self.snapshot = None;
                }
                self.check_replay();
            }
            ChildMsg::Resume(seq) => self.feed.handle_resume(seq, now),
            ChildMsg::Stats {
                run_id,
                report_id,
                rows,
            } => {
                // A child speaks only for its own subtree, and for itself as it is installed
                // now (its own row in the epoch its hello gave).
                let rows = rows
                    .into_iter()
                    .filter(|r| r.path.first() == Some(&self.name))
                    .filter(|r| r.path.len() > 1 || r.epoch == self.child_epoch)
                    .collect();
                self.effects.push_back(ChildEffect::MergeStats {
                    run_id,
                    report_id,
                    rows,
                });
            }
            ChildMsg::Response { id, response } => {
                self.effects.push_back(ChildEffect::Answer { id, response })
            }
            ChildMsg::Events { events } => {
                self.effects.push_back(ChildEffect::StoreEvents { events })
            }
        }
    }

    /// The child's events are held here up to its sequence number `seq`.
    pub fn handle_events_stored(&mut self, seq: u64) {
        self.transmit.push_back(ParentMsg::EventsAck(seq));
    }

    fn check_replay(&mut self) {
        if let Some((from, target)) = self.replay
            && self.feed.is_caught_up(target)
        {
            self.replay = None;
            self.effects.push_back(ChildEffect::Event {
                kind: EventKind::ReplayFinished,
                message: format!(
                    "replay to {} finished: {} change(s) applied",
                    self.name,
                    target - from
                ),
            });
        }
    }

    /// Entries read for a `ReadLog`, in order. Each goes to the child as it concerns it: a
    /// task that does not (or no longer) concern it as a delete, a run as a no-op.
    /// `child_group`: the group of this server the child is placed in (`None` if it is
    /// gone); `is_below(a, b)`: group `a` is a descendant of group `b`.
    pub fn handle_entries(
        &mut self,
        entries: Vec<(u64, LogEntry<TaskRecord>)>,
        child_group: Option<u64>,
        is_below: impl Fn(u64, u64) -> bool,
    ) {
        for (seq, entry) in entries {
            let concerns = child_group.is_some_and(|g| entry.audience.concerns(g, &is_below));
            #[cfg(test)]
            let concerns = concerns || self.sabotage_routing;
            let change = Box::new(entry.change.as_seen_by(concerns));
            self.transmit.push_back(ParentMsg::Change { seq, change });
        }
    }

    /// The rows of report `report_id` about run `run_id` are stored.
    pub fn handle_stats_merged(&mut self, run_id: u64, report_id: u64) {
        self.transmit
            .push_back(ParentMsg::StatsAck { run_id, report_id });
    }

    /// An administrator's request for a server at or below the child; returns the id its
    /// answer will carry.
    pub fn handle_request(&mut self, request: ForwardedRequest) -> u64 {
        self.next_request += 1;
        self.transmit.push_back(ParentMsg::Request {
            id: self.next_request,
            request: Box::new(request),
        });
        self.next_request
    }

    /// The next thing the runtime must do. Call until `None` after every `handle_*`, and
    /// carry each out before polling transmits.
    pub fn poll_effect(&mut self, now: Instant) -> Option<ChildEffect> {
        if let Some(effect) = self.effects.pop_front() {
            return Some(effect);
        }
        // A range read is from the snapshot or from the log, never both.
        let end = match &self.snapshot {
            Some(s) if self.feed.sent() < s.end() => s.end(),
            _ => self.log_last_seq,
        };
        self.feed.poll_transmit(end, now).map(ChildEffect::ReadLog)
    }

    /// The next message for the child.
    pub fn poll_transmit(&mut self) -> Option<ParentMsg> {
        self.transmit.pop_front()
    }

    /// When to call `poll_effect` again if nothing else happens: the feed's resend timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.feed.poll_timeout()
    }

    /// The child has stored everything this server logged so far.
    pub fn is_caught_up(&self) -> bool {
        self.feed.is_caught_up(self.log_last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::link::{Audience, Change};

    fn entry(task_id: u64, group_id: u64) -> LogEntry<TaskRecord> {
        LogEntry {
            change: Change::RunStart {
                task_id,
                run_id: task_id,
                revision: 1,
                occurrence: None,
            },
            audience: Audience::Group {
                group_id,
                include_subgroups: false,
            },
        }
    }

    fn log(epoch: u64, last_seq: u64) -> LogState {
        LogState { epoch, last_seq }
    }

    fn at(last_applied: u64, epoch: u64) -> Cursor {
        Cursor {
            last_applied,
            epoch,
        }
    }

    fn drain(s: &mut ChildSession, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(e) = s.poll_effect(now) {
            out.push(match e {
                ChildEffect::ReadLog(r) => format!("read {}..={}", r.start(), r.end()),
                ChildEffect::Event { kind, .. } => format!("event {}", kind.as_str()),
                other => format!("{other:?}"),
            });
            if out.len() > 10 {
                break;
            }
        }
        out
    }

    #[test]
    fn a_child_behind_is_replayed_what_it_missed_with_events() {
        let t0 = Instant::now();
        let mut s = ChildSession::new("b1", at(2, 7), 70, log(7, 4), t0);
        assert_eq!(drain(&mut s, t0), ["event replay-started", "read 3..=4"]);
        s.handle_entries(vec![(3, entry(1, 5)), (4, entry(2, 6))], Some(5), |_, _| {
            false
        });
        let sent: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
        assert!(matches!(&sent[0], ParentMsg::Change { seq: 3, change } if !change.is_noop()));
        assert!(matches!(&sent[1], ParentMsg::Change { seq: 4, change } if change.is_noop()));
        s.handle_message(ChildMsg::Ack(4), t0);
        assert_eq!(drain(&mut s, t0), ["event replay-finished"]);
        assert!(s.is_caught_up());
        s.handle_log_appended(5);
        assert_eq!(drain(&mut s, t0), ["read 5..=5"]);
    }

    #[test]
    fn a_cursor_of_another_log_is_replayed_the_whole_log() {
        // This server was restored from a backup: its log (epoch 8) is shorter than what the
        // child applied of the old one (epoch 7).
        let t0 = Instant::now();
        let mut s = ChildSession::new("b1", at(9, 7), 70, log(8, 3), t0);
        let effects = drain(&mut s, t0);
        assert_eq!(effects, ["event replay-started", "read 1..=3"]);
        s.handle_message(ChildMsg::Ack(3), t0);
        assert_eq!(drain(&mut s, t0), ["event replay-finished"]);
        // A new child (no epoch yet) is replayed everything too, without a resync event.
        let mut s = ChildSession::new("b2", at(0, 0), 71, log(8, 3), t0);
        assert_eq!(drain(&mut s, t0), ["event replay-started", "read 1..=3"]);
        let mut s = ChildSession::new("b2", at(0, 0), 71, log(8, 0), t0);
        assert!(drain(&mut s, t0).is_empty());
    }

    #[test]
    fn a_child_reports_only_for_its_own_subtree() {
        let t0 = Instant::now();
        let mut s = ChildSession::new("b1", at(0, 1), 70, log(1, 0), t0);
        let row = |path: &[&str], epoch: u64| StatsRow {
            path: path.iter().map(|p| p.to_string()).collect(),
            depth: path.len() as u32,
            task_id: 1,
            run_id: 1,
            counters: Default::default(),
            version: 1,
            epoch,
        };
        s.handle_message(
            ChildMsg::Stats {
                run_id: 9,
                report_id: 3,
                rows: vec![
                    row(&["b1"], 70),
                    row(&["b2"], 70),
                    // Its own row of another installation: not its own now.
                    row(&["b1"], 69),
                    row(&["b1", "c1"], 5),
                ],
            },
            t0,
        );
        match s.poll_effect(t0) {
            Some(ChildEffect::MergeStats {
                run_id: 9, rows, ..
            }) => {
                assert_eq!(rows, vec![row(&["b1"], 70), row(&["b1", "c1"], 5)])
            }
            other => panic!("{other:?}"),
        }
        s.handle_stats_merged(9, 3);
        assert!(matches!(
            s.poll_transmit(),
            Some(ParentMsg::StatsAck {
                run_id: 9,
                report_id: 3
            })
        ));
    }
}

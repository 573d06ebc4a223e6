//! The change log going down the tree.
//!
//! Every server keeps one durable log, `seq` (1, 2, 3, ...) to [`Change`]. A parent streams
//! every entry of its log to each child: a [`Feed`] per connected child says which sequence
//! numbers to send now, with a bounded window and a resend timer. An entry that does not
//! concern a child goes to it as [`Change::Noop`], so the child's sequence has no holes and a
//! hole always means a lost message. The child's [`Applier`] accepts exactly the next
//! sequence number, so every change is applied once and in order whatever the network and
//! crashes do, provided the caller stores the change's effect and the new cursor in one
//! transaction.
//!
//! A log has an epoch: a random id made when the log is created, and again when its
//! database is restored from a backup (whose log is shorter than what children applied). A
//! child's cursor counts in the epoch it was applied from; when the parent's epoch is
//! another, the child resynchronises from the parent's whole log ([`Cursor::resync_with`]).
//!
//! Nothing here does I/O or reads the clock: the runtime feeds in what arrived and the time,
//! and sends what the `poll_*` methods return.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

#[cfg(test)]
use crate::model::link::Change;

/// A server's change log as its children see it: its epoch and its last sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogState {
    pub epoch: u64,
    pub last_seq: u64,
}

/// Where a child stands in its parent's log: the last entry applied, and the epoch of the
/// log that number counts in (0: none yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub last_applied: u64,
    pub epoch: u64,
}

impl Cursor {
    /// Whether the child must resynchronise with a parent whose log is `log`: its cursor
    /// counts in another log (the parent's was restored or recreated, or the child never
    /// applied any), so the parent replays it all, from 0.
    pub fn resync_with(&self, log: &LogState) -> bool {
        self.epoch != log.epoch
    }

    /// Whether the child held anything from an earlier log of its parent: a resync is then
    /// news for the administrators.
    pub fn held_anything(&self) -> bool {
        self.last_applied > 0 || self.epoch != 0
    }

    /// Where the feed starts for a child at this cursor.
    pub fn start_in(&self, log: &LogState) -> u64 {
        if self.resync_with(log) {
            0
        } else {
            self.last_applied
        }
    }
}

/// How a parent paces one child's feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedPolicy {
    /// At most this many changes sent and not yet acknowledged.
    pub window: u64,
    /// Without an acknowledgement for this long, send again from the last acknowledged one.
    pub resend_after: Duration,
}

impl Default for FeedPolicy {
    fn default() -> Self {
        FeedPolicy {
            window: 256,
            resend_after: Duration::from_secs(2),
        }
    }
}

/// The parent's side of one child link. Volatile: rebuilt at every connect from the
/// `last_applied` of the child's hello, since the child's cursor is the durable truth.
#[derive(Clone, Debug)]
pub struct Feed {
    policy: FeedPolicy,
    /// The highest sequence the child said it stored.
    acked: u64,
    /// The highest sequence handed out for sending.
    sent: u64,
    /// When the changes in flight last made progress (sent from idle, acknowledged, resent).
    progress_at: Instant,
}

impl Feed {
    pub fn new(last_applied: u64, now: Instant) -> Self {
        Feed::with_policy(FeedPolicy::default(), last_applied, now)
    }

    pub fn with_policy(policy: FeedPolicy, last_applied: u64, now: Instant) -> Self {
        Feed {
            policy: FeedPolicy {
                // A window of 0 would never send anything.
                window: policy.window.max(1),
                ..policy
            },
            acked: last_applied,
            sent: last_applied,
            progress_at: now,
        }
    }

    /// The highest sequence the child has stored, as far as this parent knows.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The highest sequence handed out for sending.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Changes sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.acked
    }

    /// True when the child has stored everything up to `log_last_seq`.
    pub fn is_caught_up(&self, log_last_seq: u64) -> bool {
        self.acked >= log_last_seq
    }

    /// The child stored every change up to `seq`. Acknowledgements are cumulative, so a late
    /// or repeated one changes nothing. Returns true when it is news.
    pub fn handle_ack(&mut self, seq: u64, now: Instant) -> bool {
        if seq <= self.acked {
            return false;
        }
        self.acked = seq;
        // The child may have got them on an earlier link: no need to send them again.
        self.sent = self.sent.max(seq);
        self.progress_at = now;
        true
    }

    /// The child saw a hole (or a restart of the stream) and asks for everything after
    /// `last_applied`. Never rewinds below what the child acknowledged: a stale request
    /// then only costs duplicates, which the child ignores.
    pub fn handle_resume(&mut self, last_applied: u64, now: Instant) {
        self.sent = last_applied.max(self.acked);
        self.progress_at = now;
    }

    /// The sequence numbers to send now, given the last sequence in the log. Call it after
    /// every `handle_*`, after appending to the log and at `poll_timeout`.
    pub fn poll_transmit(
        &mut self,
        log_last_seq: u64,
        now: Instant,
    ) -> Option<RangeInclusive<u64>> {
        if self.sent > self.acked && now >= self.progress_at + self.policy.resend_after {
            // Nothing acknowledged for a while: something was lost, go back (go-back-N).
            self.sent = self.acked;
        }
        let limit = log_last_seq.min(self.acked.saturating_add(self.policy.window));
        if self.sent >= limit {
            return None;
        }
        if self.sent == self.acked {
            // The resend timer counts from the first change put in flight.
            self.progress_at = now;
        }
        let range = self.sent + 1..=limit;
        self.sent = limit;
        Some(range)
    }

    /// When to call `poll_transmit` again if nothing else happens: the resend timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.sent > self.acked).then(|| self.progress_at + self.policy.resend_after)
    }
}

/// What a child does with a change that arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The next one: store its effect and the cursor `seq` in one transaction, then call
    /// [`Applier::applied`].
    Apply,
    /// Already applied (or being applied): ignore it. An acknowledgement is sent again, in
    /// case the last one was lost.
    Duplicate,
    /// Later than the next one: ignore it. The parent is asked to resend after the last
    /// change accepted.
    Gap,
}

/// What a child sends its parent about the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToParent {
    /// Every change up to this sequence is stored.
    Ack(u64),
    /// Send again everything after this sequence.
    Resume(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplierPolicy {
    /// At most one resume request per interval, so a burst of reordered changes does not
    /// make the parent rewind once per change.
    pub resume_interval: Duration,
}

impl Default for ApplierPolicy {
    fn default() -> Self {
        ApplierPolicy {
            resume_interval: Duration::from_millis(500),
        }
    }
}

/// `applied` was called for a sequence that is not the next accepted one: a bug of the
/// caller, which must store changes in the order `Apply` was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("change {seq} stored out of order (last applied {last_applied}, accepted {accepted})")]
pub struct OutOfOrder {
    pub seq: u64,
    pub last_applied: u64,
    pub accepted: u64,
}

/// The child's side of its parent's feed.
#[derive(Clone, Debug)]
pub struct Applier {
    policy: ApplierPolicy,
    /// Durable: the cursor stored with the last applied change.
    last_applied: u64,
    /// Decided `Apply` for, possibly still being stored (the store commits in batches).
    accepted: u64,
    ack_due: bool,
    resume_due: bool,
    last_resume: Option<Instant>,
}

impl Applier {
    /// An applier restored from the durable cursor (0 for a child that applied nothing).
    pub fn new(last_applied: u64) -> Self {
        Applier::with_policy(ApplierPolicy::default(), last_applied)
    }

    pub fn with_policy(policy: ApplierPolicy, last_applied: u64) -> Self {
        Applier {
            policy,
            last_applied,
            accepted: last_applied,
            ack_due: false,
            resume_due: false,
            last_resume: None,
        }
    }

    /// The durable cursor: what the hello says on connect.
    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    /// The last change decided `Apply`, stored or not yet.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// A new link to the parent: what was owed to the old one is moot. Changes accepted and
    /// not yet stored stay accepted; the parent resends them and they count as duplicates.
    pub fn handle_connected(&mut self) {
        self.ack_due = false;
        self.resume_due = false;
        self.last_resume = None;
    }

    /// Decides what to do with change `seq` from the parent. Call `poll_transmit` after it.
    pub fn handle_change(&mut self, seq: u64) -> Decision {
        if seq <= self.accepted {
            self.ack_due = true;
            Decision::Duplicate
        } else if seq == self.accepted + 1 {
            self.accepted = seq;
            // The hole, if there was one, may be filled by a late arrival.
            self.resume_due = false;
            Decision::Apply
        } else {
            self.resume_due = true;
            Decision::Gap
        }
    }

    /// The change `seq` and the cursor `seq` are durably stored.
    pub fn applied(&mut self, seq: u64) -> Result<(), OutOfOrder> {
        if seq != self.last_applied + 1 || seq > self.accepted {
            return Err(OutOfOrder {
                seq,
                last_applied: self.last_applied,
                accepted: self.accepted,
            });
        }
        self.last_applied = seq;
        self.ack_due = true;
        Ok(())
    }

    /// Storing an accepted change failed: everything accepted after the cursor is dropped
    /// (later ones cannot be stored without it) and fetched again.
    pub fn handle_apply_failed(&mut self) {
        self.accepted = self.last_applied;
        self.resume_due = true;
    }

    /// The next message for the parent, if any. Acknowledgements are cumulative, so any
    /// number of applied changes cost one.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<ToParent> {
        if self.ack_due {
            self.ack_due = false;
            return Some(ToParent::Ack(self.last_applied));
        }
        let allowed = self
            .last_resume
            .is_none_or(|at| now >= at + self.policy.resume_interval);
        if self.resume_due && allowed {
            self.resume_due = false;
            self.last_resume = Some(now);
            return Some(ToParent::Resume(self.accepted));
        }
        None
    }

    /// When a resume request held back by the rate limit may go.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ack_due || !self.resume_due {
            return None;
        }
        self.last_resume.map(|at| at + self.policy.resume_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy() -> FeedPolicy {
        FeedPolicy {
            window: 4,
            resend_after: ms(1000),
        }
    }

    #[test]
    fn the_feed_sends_a_bounded_window_and_slides_it_on_acks() {
        let t0 = Instant::now();
        let mut feed = Feed::with_policy(policy(), 3, t0);
        assert_eq!(feed.poll_transmit(3, t0), None, "the child has everything");
        assert_eq!(feed.poll_timeout(), None);
        assert_eq!(feed.poll_transmit(20, t0), Some(4..=7));
        assert_eq!(feed.poll_transmit(20, t0), None, "the window is full");
        assert_eq!(feed.in_flight(), 4);
        assert!(feed.handle_ack(5, t0 + ms(10)));
        assert!(!feed.handle_ack(5, t0 + ms(11)), "a repeated ack");
        assert!(!feed.handle_ack(4, t0 + ms(12)), "a late ack");
        assert_eq!(feed.poll_transmit(20, t0 + ms(12)), Some(8..=9));
        assert!(feed.handle_ack(9, t0 + ms(20)));
        assert_eq!(feed.poll_transmit(10, t0 + ms(20)), Some(10..=10));
        assert!(feed.handle_ack(10, t0 + ms(30)));
        assert!(feed.is_caught_up(10));
        assert_eq!(feed.poll_timeout(), None);
    }

    #[test]
    fn the_feed_resends_from_the_last_ack_when_nothing_progresses() {
        let t0 = Instant::now();
        let mut feed = Feed::with_policy(policy(), 0, t0);
        assert_eq!(feed.poll_transmit(2, t0), Some(1..=2));
        assert_eq!(feed.poll_timeout(), Some(t0 + ms(1000)));
        assert_eq!(feed.poll_transmit(2, t0 + ms(999)), None);
        assert_eq!(feed.poll_transmit(2, t0 + ms(1000)), Some(1..=2));
        // The timer restarts with the resend.
        assert_eq!(feed.poll_timeout(), Some(t0 + ms(2000)));
        assert!(feed.handle_ack(1, t0 + ms(1500)));
        assert_eq!(feed.poll_timeout(), Some(t0 + ms(2500)));
        assert_eq!(feed.poll_transmit(2, t0 + ms(2500)), Some(2..=2));
    }

    #[test]
    fn the_timer_starts_when_a_change_leaves_an_idle_feed() {
        let t0 = Instant::now();
        let mut feed = Feed::with_policy(policy(), 0, t0);
        assert_eq!(feed.poll_transmit(0, t0), None);
        // A change appended much later must not look overdue at once.
        let later = t0 + ms(60_000);
        assert_eq!(feed.poll_transmit(1, later), Some(1..=1));
        assert_eq!(feed.poll_timeout(), Some(later + ms(1000)));
    }

    #[test]
    fn resume_rewinds_but_never_below_the_ack() {
        let t0 = Instant::now();
        let mut feed = Feed::with_policy(policy(), 0, t0);
        assert_eq!(feed.poll_transmit(10, t0), Some(1..=4));
        feed.handle_ack(2, t0);
        assert_eq!(feed.poll_transmit(10, t0), Some(5..=6));
        feed.handle_resume(3, t0);
        assert_eq!(feed.poll_transmit(10, t0), Some(4..=6));
        // A stale request from before the ack.
        feed.handle_resume(1, t0);
        assert_eq!(feed.sent(), 2);
        assert_eq!(feed.poll_transmit(10, t0), Some(3..=6));
        // The child holds more than this feed sent (from an earlier link).
        feed.handle_resume(8, t0);
        assert_eq!(
            feed.poll_transmit(10, t0),
            None,
            "the window counts from the ack"
        );
        feed.handle_ack(8, t0);
        assert_eq!(feed.poll_transmit(10, t0), Some(9..=10));
    }

    #[test]
    fn an_ack_beyond_what_was_sent_is_taken() {
        let t0 = Instant::now();
        let mut feed = Feed::with_policy(policy(), 0, t0);
        assert!(feed.handle_ack(3, t0));
        assert_eq!(feed.poll_transmit(5, t0), Some(4..=5));
    }

    #[test]
    fn a_zero_window_still_sends() {
        let t0 = Instant::now();
        let mut feed = Feed::with_policy(
            FeedPolicy {
                window: 0,
                resend_after: ms(1),
            },
            0,
            t0,
        );
        assert_eq!(feed.poll_transmit(5, t0), Some(1..=1));
    }

    #[test]
    fn the_applier_takes_exactly_the_next_change() {
        let t0 = Instant::now();
        let mut a = Applier::new(5);
        assert_eq!(a.handle_change(7), Decision::Gap);
        assert_eq!(a.poll_transmit(t0), Some(ToParent::Resume(5)));
        assert_eq!(a.handle_change(5), Decision::Duplicate);
        assert_eq!(a.poll_transmit(t0), Some(ToParent::Ack(5)));
        assert_eq!(a.handle_change(6), Decision::Apply);
        assert_eq!(
            a.handle_change(6),
            Decision::Duplicate,
            "accepted, not stored yet"
        );
        assert_eq!(a.handle_change(7), Decision::Apply, "stores are pipelined");
        assert_eq!(a.accepted(), 7);
        assert_eq!(a.last_applied(), 5);
        assert_eq!(
            a.applied(7),
            Err(OutOfOrder {
                seq: 7,
                last_applied: 5,
                accepted: 7
            })
        );
        a.applied(6).unwrap();
        a.applied(7).unwrap();
        assert!(a.applied(8).is_err(), "never accepted");
        assert_eq!(
            a.poll_transmit(t0),
            Some(ToParent::Ack(7)),
            "one cumulative ack"
        );
        assert_eq!(a.poll_transmit(t0), None);
    }

    #[test]
    fn resume_requests_are_rate_limited() {
        let t0 = Instant::now();
        let mut a = Applier::with_policy(
            ApplierPolicy {
                resume_interval: ms(100),
            },
            0,
        );
        assert_eq!(a.handle_change(3), Decision::Gap);
        assert_eq!(a.poll_transmit(t0), Some(ToParent::Resume(0)));
        assert_eq!(a.handle_change(4), Decision::Gap);
        assert_eq!(a.poll_transmit(t0 + ms(50)), None);
        assert_eq!(a.poll_timeout(), Some(t0 + ms(100)));
        assert_eq!(a.poll_transmit(t0 + ms(100)), Some(ToParent::Resume(0)));
        assert_eq!(a.poll_timeout(), None);
        // A late arrival fills the hole: no request is owed any more.
        assert_eq!(a.handle_change(2), Decision::Gap);
        assert_eq!(a.handle_change(1), Decision::Apply);
        assert_eq!(a.poll_transmit(t0 + ms(500)), None);
    }

    #[test]
    fn a_failed_store_drops_what_was_accepted_and_asks_again() {
        let t0 = Instant::now();
        let mut a = Applier::new(0);
        assert_eq!(a.handle_change(1), Decision::Apply);
        assert_eq!(a.handle_change(2), Decision::Apply);
        a.applied(1).unwrap();
        a.handle_apply_failed();
        assert_eq!(a.accepted(), 1);
        assert_eq!(a.poll_transmit(t0), Some(ToParent::Ack(1)));
        assert_eq!(a.poll_transmit(t0), Some(ToParent::Resume(1)));
        assert_eq!(a.handle_change(2), Decision::Apply, "fetched again");
    }

    #[test]
    fn a_new_link_forgets_what_was_owed_to_the_old_one() {
        let t0 = Instant::now();
        let mut a = Applier::new(0);
        assert_eq!(a.handle_change(1), Decision::Apply);
        assert_eq!(a.handle_change(3), Decision::Gap);
        a.handle_connected();
        assert_eq!(a.poll_transmit(t0), None);
        // Accepted but not stored: the new link's duplicate is ignored, the store goes on.
        assert_eq!(a.handle_change(1), Decision::Duplicate);
        a.applied(1).unwrap();
        assert_eq!(a.poll_transmit(t0), Some(ToParent::Ack(1)));
    }

    #[test]
    fn a_child_not_concerned_gets_a_delete_for_a_task_and_a_noop_for_a_run() {
        let c: Change<&str> = Change::TaskUpsert {
            task_id: 4,
            revision: 2,
            task: "t",
        };
        assert_eq!(c.as_seen_by(true), c);
        assert_eq!(c.as_seen_by(false), Change::TaskDelete { task_id: 4 });
        let start: Change<&str> = Change::RunStart {
            task_id: 4,
            run_id: 9,
            revision: 2,
            occurrence: None,
        };
        assert_eq!(start.as_seen_by(true), start);
        assert!(start.as_seen_by(false).is_noop());
        assert_eq!(c.task_id(), Some(4));
        assert_eq!(Change::<()>::Noop.task_id(), None);
    }
}

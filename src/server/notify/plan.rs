//! What a notification channel does next, sans-IO: which batch of the event log it sends,
//! where its cursor goes, and when it retries. Time and randomness are passed in; the
//! runtime (`super::run_channel`) reads the log, sends and stores what this decides.

use std::time::Duration;

use crate::model::notify::{ChannelCursor, ChannelFilter};
use crate::model::{Event, UnixMillis};

/// Events in one email or POST, at most.
pub const BATCH_MAX: usize = 100;
/// Events of the log one read looks at, at most.
pub const READ_MAX: u32 = 1000;
/// The first retry's delay; each failure after it doubles it, up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Events passed over (none for the channel) after which the cursor is stored anyway, so a
/// restart does not read them again.
pub const STORE_EVERY: u64 = 1000;

/// The delay before the retry that follows `failures` failures in a row (at least 1):
/// 1 s doubling to 5 min, times 0.9 to 1.1 by `jitter` (0 to 1).
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX);
    base.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// Events to send together, and where the cursor goes once the receiver accepted them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<Event>,
    /// The last event of the log this batch accounts for (sent, or not for the channel).
    pub through: u64,
}

/// What a failure changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The first failure after a success, or another error than the last: worth a line in
    /// the log (the same error again is not).
    pub news: bool,
    pub retry_at: UnixMillis,
    pub failures: u32,
}

/// One channel's state.
#[derive(Clone, Debug)]
pub struct ChannelPlan {
    /// As stored (or to be stored next).
    cursor: ChannelCursor,
    /// The last event looked at: past `cursor.after` when the events after it were not for
    /// this channel and the cursor was not stored since.
    read: u64,
    batch: Option<Batch>,
    failures: u32,
    retry_at: Option<UnixMillis>,
    last_error: Option<String>,
    /// Whether `cursor` changed since it was last handed out for storing.
    dirty: bool,
}

/// What taking events found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Events the log's retention dropped before this channel read them.
    pub skipped: u64,
}

impl ChannelPlan {
    pub fn new(cursor: ChannelCursor) -> ChannelPlan {
        ChannelPlan {
            read: cursor.after,
            cursor,
            batch: None,
            failures: 0,
            retry_at: None,
            last_error: None,
            dirty: false,
        }
    }

    /// Where the next read of the log starts (after this sequence number).
    pub fn read_after(&self) -> u64 {
        self.read
    }

    pub fn cursor(&self) -> ChannelCursor {
        self.cursor
    }

    pub fn batch(&self) -> Option<&Batch> {
        self.batch.as_ref()
    }

    pub fn retry_at(&self) -> Option<UnixMillis> {
        self.retry_at
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The log ends at `last`. A cursor beyond it (the database was replaced by an older
    /// copy) would wait for events that were numbered again: it goes back to the end.
    /// Returns whether it did.
    pub fn log_ends_at(&mut self, last: u64) -> bool {
        if self.read <= last || self.batch.is_some() {
            return false;
        }
        self.read = last;
        self.cursor.after = last;
        self.dirty = true;
        true
    }

    /// Takes the events read after [`ChannelPlan::read_after`] (oldest first): the next
    /// batch, at most [`BATCH_MAX`] of the events `filter` matches, if any.
    pub fn take_events(&mut self, events: &[Event], filter: &ChannelFilter) -> Taken {
        let mut taken = Taken::default();
        if self.batch.is_some() {
            return taken;
        }
        let Some(first) = events.first() else {
            return taken;
        };
        if first.seq > self.read.saturating_add(1) {
            taken.skipped = first.seq - self.read - 1;
            self.cursor.skipped = self.cursor.skipped.saturating_add(taken.skipped);
            self.dirty = true;
        }
        let mut matched = Vec::new();
        let mut through = self.read;
        for event in events {
            if event.seq <= through {
                continue;
            }
            through = event.seq;
            if filter.matches(event) {
                matched.push(event.clone());
                if matched.len() == BATCH_MAX {
                    break;
                }
            }
        }
        self.read = through;
        if matched.is_empty() {
            if through >= self.cursor.after.saturating_add(STORE_EVERY) {
                self.cursor.after = through;
                self.dirty = true;
            }
        } else {
            self.batch = Some(Batch {
                events: matched,
                through,
            });
        }
        taken
    }

    /// The cursor to store now, if it changed without a delivery (events passed over, a
    /// gap counted, a cursor moved back).
    pub fn cursor_to_store(&mut self) -> Option<ChannelCursor> {
        std::mem::take(&mut self.dirty).then_some(self.cursor)
    }

    /// The receiver accepted the batch at `now`: the cursor to store, and whether the
    /// channel had been failing until then.
    pub fn delivered(&mut self, now: UnixMillis) -> (ChannelCursor, bool) {
        let recovered = self.failures > 0;
        if let Some(batch) = self.batch.take() {
            self.cursor.after = batch.through;
            self.read = self.read.max(batch.through);
        }
        self.cursor.last_delivery = Some(now);
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.dirty = false;
        (self.cursor, recovered)
    }

    /// The receiver refused the batch or could not be reached at `now`: it is sent again,
    /// the same, after the backoff (`jitter` from 0 to 1).
    pub fn failed(&mut self, now: UnixMillis, error: String, jitter: f64) -> Failure {
        self.failures = self.failures.saturating_add(1);
        let news = self.failures == 1 || self.last_error.as_deref() != Some(error.as_str());
        let delay = backoff(self.failures, jitter);
        let retry_at = now.saturating_add(delay.as_millis() as i64);
        self.retry_at = Some(retry_at);
        self.last_error = Some(error);
        Failure {
            news,
            retry_at,
            failures: self.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, Severity};

    fn event(seq: u64, kind: EventKind, severity: Severity) -> Event {
        Event {
            seq,
            time: 1_000 * seq as i64,
            severity,
            kind,
            message: format!("event {seq}"),
            origin: Vec::new(),
        }
    }

    fn results(seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
        seqs.map(|s| event(s, EventKind::DeviceResult, Severity::Error))
            .collect()
    }

    fn seqs(batch: &Batch) -> Vec<u64> {
        batch.events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn backoff_doubles_from_a_second_to_five_minutes_with_jitter() {
        assert_eq!(backoff(1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(4, 0.5), Duration::from_secs(8));
        assert_eq!(backoff(9, 0.5), Duration::from_secs(256));
        assert_eq!(backoff(10, 0.5), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX, 0.5), BACKOFF_MAX);
        assert_eq!(backoff(1, 0.0), Duration::from_millis(900));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(1100));
    }

    #[test]
    fn batches_take_only_matching_events_in_order_and_at_most_batch_max() {
        let mut plan = ChannelPlan::new(ChannelCursor::default());
        let mut log = vec![event(1, EventKind::LoginFailed, Severity::Warning)];
        log.extend(results(2..=250));
        let filter = ChannelFilter::default();
        plan.take_events(&log, &filter);
        let batch = plan.batch().unwrap().clone();
        assert_eq!(seqs(&batch), (2..=101).collect::<Vec<_>>());
        assert_eq!(batch.through, 101);
        // A batch waiting: more events change nothing.
        plan.take_events(&log, &filter);
        assert_eq!(plan.batch(), Some(&batch));
        let (cursor, recovered) = plan.delivered(5);
        assert_eq!(
            (cursor.after, cursor.last_delivery, recovered),
            (101, Some(5), false)
        );
        assert_eq!(plan.read_after(), 101);
        plan.take_events(&log[101..], &filter);
        assert_eq!(seqs(plan.batch().unwrap()), (102..=201).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_batch_is_retried_the_same_with_backoff_and_logged_on_news_only() {
        let mut plan = ChannelPlan::new(ChannelCursor {
            after: 10,
            ..ChannelCursor::default()
        });
        plan.take_events(&results(11..=13), &ChannelFilter::default());
        let batch = plan.batch().unwrap().clone();
        let f = plan.failed(1_000, "HTTP 500".into(), 0.5);
        assert_eq!((f.news, f.retry_at, f.failures), (true, 2_000, 1));
        let f = plan.failed(2_000, "HTTP 500".into(), 0.5);
        assert_eq!((f.news, f.retry_at), (false, 4_000));
        let f = plan.failed(4_000, "connection refused".into(), 0.5);
        assert_eq!((f.news, f.retry_at), (true, 8_000));
        assert_eq!(plan.batch(), Some(&batch));
        assert_eq!(plan.cursor().after, 10, "nothing moves before acceptance");
        assert_eq!(plan.last_error(), Some("connection refused"));
        let (cursor, recovered) = plan.delivered(9_000);
        assert!(recovered);
        assert_eq!(cursor.after, 13);
        assert_eq!((plan.retry_at(), plan.last_error()), (None, None));
    }

    #[test]
    fn events_for_nobody_move_the_cursor_stored_only_now_and_then() {
        let mut plan = ChannelPlan::new(ChannelCursor::default());
        let logins: Vec<Event> = (1..=999)
            .map(|s| event(s, EventKind::LoginFailed, Severity::Warning))
            .collect();
        plan.take_events(&logins, &ChannelFilter::default());
        assert!(plan.batch().is_none());
        assert_eq!(plan.read_after(), 999);
        assert_eq!(plan.cursor_to_store(), None);
        let more = vec![event(1000, EventKind::LoginFailed, Severity::Warning)];
        plan.take_events(&more, &ChannelFilter::default());
        assert_eq!(plan.cursor_to_store().map(|c| c.after), Some(1000));
        assert_eq!(plan.cursor_to_store(), None);
    }

    #[test]
    fn events_dropped_by_retention_are_counted_and_a_cursor_past_the_end_goes_back() {
        let mut plan = ChannelPlan::new(ChannelCursor {
            after: 5,
            ..ChannelCursor::default()
        });
        let taken = plan.take_events(&results(41..=42), &ChannelFilter::default());
        assert_eq!(taken.skipped, 35);
        assert_eq!(plan.cursor().skipped, 35);
        assert_eq!(plan.cursor_to_store().map(|c| c.skipped), Some(35));
        plan.delivered(1);
        assert!(!plan.log_ends_at(42));
        assert!(plan.log_ends_at(7));
        assert_eq!((plan.read_after(), plan.cursor().after), (7, 7));
        assert_eq!(plan.cursor_to_store().map(|c| c.after), Some(7));
    }
}

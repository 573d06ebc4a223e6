//! Events going up the tree.
//!
//! Each server sends its event log (its own events and those its children sent it) to its
//! parent, oldest first, one batch at a time. The parent stores a batch, with the path of
//! the server each event came from, and the highest sequence number it holds from that
//! child, in one transaction, and acknowledges it. That number is the one durable cursor:
//! the parent's welcome says it at every new link, and the child sends from there, so every
//! event is stored once upstream whatever the network and crashes do. A batch not
//! acknowledged in time is sent again; the parent drops what it already holds.
//!
//! The cursor counts in the child's log epoch (its hello says it): a child installed again,
//! or restored from a backup, starts numbering again, and its cursor at the parent with it.
//!
//! Nothing here does I/O or reads the clock.

use std::time::{Duration, Instant};

use crate::model::Event;

/// Events in one batch at most.
pub const EVENTS_PER_BATCH: u32 = 256;

/// Without an acknowledgement for this long, a batch is sent again.
pub const RESEND_AFTER: Duration = Duration::from_secs(10);

/// The child's side of one link: which events to read and send next.
#[derive(Clone, Debug)]
pub struct EventSender {
    /// The highest sequence number the parent said it holds.
    acked: u64,
    /// The newest event here, as far as this link knows.
    newest: u64,
    /// A read was asked and not answered yet.
    reading: bool,
    /// The last sequence number of the batch sent, and when.
    in_flight: Option<(u64, Instant)>,
}

impl EventSender {
    /// A new link: the parent holds every event up to `acked`; the newest here is `newest`.
    pub fn new(acked: u64, newest: u64) -> Self {
        EventSender {
            acked,
            newest,
            reading: false,
            in_flight: None,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Events up to `newest` are stored here.
    pub fn handle_new_events(&mut self, newest: u64) {
        self.newest = self.newest.max(newest);
    }

    /// The sequence number to read events after, when a batch is due: nothing in flight (or
    /// in flight unacknowledged for [`RESEND_AFTER`]) and something newer than the parent
    /// holds. Then call [`EventSender::handle_read`].
    pub fn poll_read(&mut self, now: Instant) -> Option<u64> {
        if self.reading || self.newest <= self.acked {
            return None;
        }
        if let Some((_, sent_at)) = self.in_flight {
            if now.saturating_duration_since(sent_at) < RESEND_AFTER {
                return None;
            }
            self.in_flight = None;
        }
        self.reading = true;
        Some(self.acked)
    }

    /// What the read found, oldest first: the batch to send, or `None` when there is nothing
    /// (the events after the cursor were dropped by retention meanwhile).
    pub fn handle_read(&mut self, events: Vec<Event>, now: Instant) -> Option<Vec<Event>> {
        self.reading = false;
        let Some(last) = events.last().map(|e| e.seq) else {
            self.newest = self.acked;
            return None;
        };
        self.in_flight = Some((last, now));
        Some(events)
    }

    /// The parent holds every event up to `seq`. Cumulative: an old one changes nothing.
    pub fn handle_ack(&mut self, seq: u64) {
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        self.newest = self.newest.max(seq);
        if self.in_flight.is_some_and(|(last, _)| last <= seq) {
            self.in_flight = None;
        }
    }

    /// Nothing to read, nothing in flight: the parent holds every event known here.
    pub fn is_idle(&self) -> bool {
        !self.reading && self.in_flight.is_none() && self.newest <= self.acked
    }

    /// When the batch in flight is due again, if one is.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.map(|(_, sent_at)| sent_at + RESEND_AFTER)
    }
}

/// The event a parent stores for `event` of its child `child`: the path below the parent
/// it came from, starting with the child's name.
pub fn from_child(child: &str, mut event: Event) -> Event {
    event.origin.insert(0, child.to_string());
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, Severity};

    fn event(seq: u64) -> Event {
        Event {
            seq,
            time: seq as i64,
            severity: Severity::Info,
            kind: EventKind::ServerStarted,
            message: format!("event {seq}"),
            origin: Vec::new(),
        }
    }

    #[test]
    fn batches_go_one_at_a_time_from_the_parents_cursor() {
        let now = Instant::now();
        let mut sender = EventSender::new(3, 10);
        assert_eq!(sender.poll_read(now), Some(3));
        assert_eq!(sender.poll_read(now), None, "one read at a time");
        let batch = sender
            .handle_read((4..=6).map(event).collect(), now)
            .unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(sender.poll_read(now), None, "one batch in flight");
        sender.handle_ack(6);
        assert_eq!(sender.poll_read(now), Some(6));
        sender.handle_read((7..=10).map(event).collect(), now);
        sender.handle_ack(10);
        assert_eq!(sender.poll_read(now), None, "all sent");
        sender.handle_new_events(11);
        assert_eq!(sender.poll_read(now), Some(10));
    }

    #[test]
    fn an_unacknowledged_batch_is_sent_again_and_old_acks_change_nothing() {
        let now = Instant::now();
        let mut sender = EventSender::new(0, 2);
        assert_eq!(sender.poll_read(now), Some(0));
        sender.handle_read(vec![event(1), event(2)], now);
        assert_eq!(sender.poll_timeout(), Some(now + RESEND_AFTER));
        assert_eq!(sender.poll_read(now + RESEND_AFTER / 2), None);
        assert_eq!(sender.poll_read(now + RESEND_AFTER), Some(0), "sent again");
        sender.handle_read(vec![event(1), event(2)], now + RESEND_AFTER);
        sender.handle_ack(2);
        sender.handle_ack(1);
        assert_eq!(sender.acked(), 2);
        assert_eq!(sender.poll_timeout(), None);
    }

    #[test]
    fn events_dropped_by_retention_stop_the_reads() {
        let now = Instant::now();
        let mut sender = EventSender::new(0, 5);
        assert_eq!(sender.poll_read(now), Some(0));
        assert_eq!(sender.handle_read(Vec::new(), now), None);
        assert_eq!(sender.poll_read(now), None);
    }

    #[test]
    fn an_event_from_a_child_gets_its_name_before_its_origin() {
        let from_below = Event {
            origin: vec!["branch-1a".to_string()],
            ..event(1)
        };
        assert_eq!(
            from_child("branch-1", from_below).origin,
            ["branch-1", "branch-1a"]
        );
    }
}

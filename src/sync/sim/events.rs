//! The simulated servers' event logs going up the tree (`sync::events_up`), kept as the
//! store keeps them, and the check that the primary ends up holding every server's own
//! events once each, in order, with the path they came from.

use std::collections::BTreeMap;

use crate::model::{Event, EventKind, Severity};
use crate::sync::events_up;

/// A server's event log and what it holds from each child; survives crashes.
#[derive(Clone, Debug, Default)]
pub(super) struct EventLog {
    /// Sequence number `i + 1` at index `i`.
    pub events: Vec<Event>,
    /// Own events made so far.
    own: u64,
    /// By child name: its log epoch, and the highest of its sequence numbers held here.
    from_children: BTreeMap<String, (u64, u64)>,
}

impl EventLog {
    /// Appends one of the server's own events, numbered in its own order.
    pub fn record_own(&mut self, server: &str, time: i64) {
        self.own += 1;
        let event = Event {
            seq: self.newest() + 1,
            time,
            severity: Severity::Info,
            kind: EventKind::ServerTask,
            message: format!("{server} #{}", self.own),
            origin: Vec::new(),
        };
        self.events.push(event);
    }

    pub fn newest(&self) -> u64 {
        self.events.len() as u64
    }

    /// At most `limit` events after `after`, oldest first.
    pub fn read(&self, after: u64, limit: u32) -> Vec<Event> {
        let from = usize::try_from(after).unwrap_or(usize::MAX);
        self.events
            .iter()
            .skip(from)
            .take(limit as usize)
            .cloned()
            .collect()
    }

    /// The highest of `child`'s events held here, in its log epoch `epoch`.
    pub fn held_from(&self, child: &str, epoch: u64) -> u64 {
        match self.from_children.get(child) {
            Some(&(held_epoch, last)) if held_epoch == epoch => last,
            _ => 0,
        }
    }

    /// Stores what `child` sent, as the store does in one transaction: those already held
    /// dropped, the rest with the child's name before their origin. Returns the highest
    /// held now.
    pub fn store_from_child(&mut self, child: &str, epoch: u64, events: Vec<Event>) -> u64 {
        let mut last = self.held_from(child, epoch);
        for event in events {
            if event.seq <= last {
                continue;
            }
            last = event.seq;
            let mut stored = events_up::from_child(child, event);
            stored.seq = self.newest() + 1;
            self.events.push(stored);
        }
        self.from_children.insert(child.to_string(), (epoch, last));
        last
    }

    /// Checks that this log holds the own events of the server at `origin` below (`own` of
    /// them, named `server`) once each and in order.
    pub fn check_holds(&self, origin: &[String], server: &str, own: u64) -> Result<(), String> {
        let held: Vec<&str> = self
            .events
            .iter()
            .filter(|e| e.origin == origin)
            .map(|e| e.message.as_str())
            .collect();
        let want: Vec<String> = (1..=own).map(|i| format!("{server} #{i}")).collect();
        if held != want {
            return Err(format!(
                "the primary holds {} event(s) of {server} ({:?}...), {own} were made",
                held.len(),
                held.iter().take(5).collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    pub fn own(&self) -> u64 {
        self.own
    }
}

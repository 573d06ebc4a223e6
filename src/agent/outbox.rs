//! What a device tells its server about its runs, coalesced: a run that is received, starts
//! and ends within a moment sends one message (its result, which says all three), not three.
//!
//! `Received` and `Started` wait up to [`HOLD`] before they go. A later message about the same
//! run that says more replaces them (`Started` replaces `Received`, a result replaces both);
//! any other message about that run (its progress) sends what waits first, so the server hears
//! a run's messages in their order. Messages about other runs, and about no run, go at once.
//! Sans-IO: time is passed in; the link sends what `handle` and `poll_expired` return.

use std::time::{Duration, Instant};

use crate::model::RunRef;
use crate::wire::msg::AgentToServer;

/// How long a delivery or start notice waits for a later message that says more. Short
/// beside what an administrator watches (a run shows as running this much later), long
/// beside a run that ends at once, also on a busy device (measured with `bench ingest`:
/// 100 ms folded a quarter of the notices of 10,000 simulated devices, 250 ms most). A stop
/// in the meantime still reaches the device: the server tells every device it has not heard
/// finish (`store::tasks::stop_in`).
pub const HOLD: Duration = Duration::from_millis(250);

/// The notices waiting to go, oldest first.
#[derive(Default)]
pub struct Outbox {
    held: Vec<Held>,
}

struct Held {
    msg: AgentToServer,
    /// When it goes if nothing replaced it: set by the first notice about its run, so a run's
    /// notices never wait longer than [`HOLD`] in all.
    due: Instant,
}

fn held_run(msg: &AgentToServer) -> Option<RunRef> {
    match msg {
        AgentToServer::Received { run } | AgentToServer::Started { run, .. } => Some(*run),
        _ => None,
    }
}

fn run_of(msg: &AgentToServer) -> Option<RunRef> {
    match msg {
        AgentToServer::Received { run }
        | AgentToServer::Started { run, .. }
        | AgentToServer::Progress { run, .. } => Some(*run),
        AgentToServer::Result(result) => Some(result.run),
        AgentToServer::LocalTaskEdit { .. } => None,
    }
}

impl Outbox {
    /// Takes a message the device wants to send at `now`; returns what to send now, in order.
    pub fn handle(&mut self, msg: AgentToServer, now: Instant) -> Vec<AgentToServer> {
        let Some(run) = run_of(&msg) else {
            return vec![msg];
        };
        let waiting = self.held.iter().position(|h| held_run(&h.msg) == Some(run));
        match (&msg, waiting) {
            // The first notice about this run: it waits.
            (AgentToServer::Received { .. } | AgentToServer::Started { .. }, None) => {
                self.held.push(Held {
                    msg,
                    due: now + HOLD,
                });
                Vec::new()
            }
            // A start replaces the delivery it implies; an order acknowledged again (the
            // first acknowledgement may have been lost) waits with the first.
            (AgentToServer::Received { .. } | AgentToServer::Started { .. }, Some(i)) => {
                if matches!(msg, AgentToServer::Started { .. }) {
                    self.held[i].msg = msg;
                }
                Vec::new()
            }
            // The result says the run was received and started.
            (AgentToServer::Result(_), Some(i)) => {
                self.held.remove(i);
                vec![msg]
            }
            // Progress comes after the start notice it follows.
            (_, Some(i)) => vec![self.held.remove(i).msg, msg],
            (_, None) => vec![msg],
        }
    }

    /// When the next waiting notice is due; `None` when none waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.due).min()
    }

    /// The waiting notices due by `now`, oldest first.
    pub fn poll_expired(&mut self, now: Instant) -> Vec<AgentToServer> {
        let (due, wait): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.due <= now);
        self.held = wait;
        due.into_iter().map(|h| h.msg).collect()
    }
}

#[cfg(test)]
mod tests;

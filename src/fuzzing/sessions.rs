//! What a federation link does with the messages it decodes: each end's sans-IO session
//! takes them as the runtime hands them over, and its decisions must keep the protocol's
//! rules whatever the peer sent.

use std::time::{Duration, Instant};

use crate::model::link::StatsRow;
use crate::sync::child_session::{ChildEffect, ChildSession};
use crate::sync::events_up::EventSender;
use crate::sync::parent_session::{InheritedRun, ParentEffect, ParentPolicy, ParentSession};
use crate::sync::replicate::{Cursor, LogState};
use crate::wire::msg::{ChildMsg, ParentMsg};

/// The child, as its parent registered it; its log's epoch; the parent's log.
const CHILD: &str = "branch-1";
const CHILD_EPOCH: u64 = 0x9abc_def0;
const LOG: LogState = LogState {
    epoch: 0x1234_5678,
    last_seq: 57,
};
const CURSOR: Cursor = Cursor {
    last_applied: 41,
    epoch: 0x1234_5678,
};
/// The newest of the secondary's own events.
const NEWEST_EVENT: u64 = 600;

fn sample_event(seq: u64) -> crate::model::Event {
    crate::model::Event {
        seq,
        time: 1_700_000_000_000,
        severity: crate::model::Severity::Info,
        kind: crate::model::EventKind::ServerStarted,
        message: format!("event {seq}"),
        origin: Vec::new(),
    }
}

/// The most effects taken after one message: a session never asks for more.
const MOST_EFFECTS: usize = 1024;

/// A secondary's session takes what its parent sent. It applies exactly the next changes
/// after its cursor, in order, once each, in batches that the store then confirms; and it
/// acknowledges only what it stored.
pub(super) fn secondary_takes(messages: Vec<ParentMsg>) {
    let start = Instant::now();
    let runs = [InheritedRun {
        run_id: 3,
        parent_run: 9,
        complete: true,
    }];
    let events = EventSender::new(0, NEWEST_EVENT);
    let policy = ParentPolicy::default();
    let link = (CURSOR, LOG, None);
    let mut session = ParentSession::new(policy, CHILD, link, runs, events, start);
    let mut applied = CURSOR.last_applied;
    for (i, message) in messages.into_iter().enumerate() {
        let now = start + Duration::from_millis(100 * i as u64);
        session.handle_message(message, now);
        for _ in 0..MOST_EFFECTS {
            let Some(effect) = session.poll_effect(now) else {
                break;
            };
            match effect {
                ParentEffect::Apply(batch) => {
                    for (seq, _) in &batch {
                        assert_eq!(*seq, applied + 1, "change {seq} applied after {applied}");
                        applied = *seq;
                    }
                    session.handle_applied(Ok(()));
                }
                ParentEffect::Resync { .. } => session.handle_resynced(),
                ParentEffect::ReadReport { run_id, report_id } => {
                    let own = StatsRow::own(1, run_id, Default::default(), 1, CHILD_EPOCH);
                    session.handle_report(run_id, report_id, Some((own, Vec::new())));
                }
                ParentEffect::ReadSubtree => session.handle_subtree(0, Vec::new()),
                ParentEffect::Serve { .. } => {}
                ParentEffect::ReadEvents { after, limit } => {
                    // Only events that exist here are asked for, one batch at a time.
                    assert!(after < NEWEST_EVENT, "asked for events after {after}");
                    let last = (after + u64::from(limit)).min(NEWEST_EVENT);
                    let events = (after + 1..=last).map(sample_event).collect();
                    session.handle_events_read(events, now);
                }
            }
        }
        assert_eq!(session.last_applied(), applied);
        while let Some(sent) = session.poll_transmit(now) {
            if let ChildMsg::Ack(seq) = sent {
                assert!(seq <= applied, "acknowledged {seq}, stored up to {applied}");
            }
        }
    }
}

/// A parent's session takes what its secondary sent. It keeps only statistics rows of the
/// secondary's own subtree (its own row in the epoch of its hello), and asks to read only
/// entries that exist in its log.
pub(super) fn parent_takes(messages: Vec<ChildMsg>) {
    let start = Instant::now();
    let mut session = ChildSession::new(CHILD, CURSOR, CHILD_EPOCH, LOG, start);
    for (i, message) in messages.into_iter().enumerate() {
        let now = start + Duration::from_millis(100 * i as u64);
        session.handle_message(message, now);
        for _ in 0..MOST_EFFECTS {
            let Some(effect) = session.poll_effect(now) else {
                break;
            };
            match effect {
                ChildEffect::ReadLog(range) => {
                    assert!(
                        *range.start() >= 1 && *range.end() <= LOG.last_seq,
                        "asked to read {range:?} of a log of {}",
                        LOG.last_seq
                    );
                    // Read and sent; only an acknowledgement moves the feed on.
                    session.handle_entries(Vec::new(), Some(1), |_, _| false);
                }
                ChildEffect::StoreEvents { events } => {
                    // Stored; the acknowledgement names the highest held.
                    if let Some(last) = events.iter().map(|e| e.seq).max() {
                        session.handle_events_stored(last);
                    }
                }
                ChildEffect::MergeStats { rows, .. } => {
                    for row in rows {
                        assert_eq!(row.path.first().map(String::as_str), Some(CHILD));
                        assert!(row.path.len() > 1 || row.epoch == CHILD_EPOCH, "{row:?}");
                    }
                }
                _ => {}
            }
        }
        while session.poll_transmit().is_some() {}
    }
}

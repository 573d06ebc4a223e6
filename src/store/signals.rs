//! What a commit changed, told to the runtime once the commit is durable: the last sequence
//! numbers of the change log and of the event log, and the runs whose statistics changed. Write functions note
//! what they change while their transaction runs; the writer thread publishes the notes after
//! the commit and drops them when the transaction is aborted. So no caller of the store has
//! to remember to announce a change, and nothing is announced that was not stored.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Notify, watch};

use crate::model::task::{RunId, RunRecord};

/// The notes of the transaction the writer thread is running.
#[derive(Debug, Default)]
pub(super) struct Notes {
    log_last_seq: Option<u64>,
    last_event: Option<u64>,
    /// Run id to whether the run is over on this server's own devices.
    runs: BTreeMap<RunId, bool>,
}

thread_local! {
    // Only the writer thread begins write transactions, so its notes are the transaction's.
    static NOTES: RefCell<Notes> = RefCell::new(Notes::default());
}

/// The change log now ends at `seq`.
pub(super) fn note_log(seq: u64) {
    NOTES.with(|n| n.borrow_mut().log_last_seq = Some(seq));
}

/// The event log now ends at `seq`.
pub(super) fn note_event(seq: u64) {
    NOTES.with(|n| n.borrow_mut().last_event = Some(seq));
}

/// A run's counters, its rows from below, or its stop changed.
pub(super) fn note_run(run: &RunRecord) {
    let own_over = run.stopped.is_some() || run.counters.finished() == run.counters.total();
    NOTES.with(|n| n.borrow_mut().runs.insert(run.run_id, own_over));
}

/// Forgets what an aborted transaction noted.
pub(super) fn clear() {
    NOTES.with(|n| *n.borrow_mut() = Notes::default());
}

/// What the last transaction noted, emptied.
pub(super) fn take() -> Notes {
    NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

/// The changes of committed transactions, for whoever follows them.
#[derive(Debug)]
pub struct Signals {
    log_last_seq: watch::Sender<u64>,
    last_event: watch::Sender<u64>,
    /// Off until someone follows runs (a server that reports to a parent), so that a primary
    /// does not collect run ids nobody reads.
    follow_runs: AtomicBool,
    runs: Mutex<BTreeMap<RunId, bool>>,
    runs_changed: Notify,
}

impl Signals {
    pub(super) fn new(log_last_seq: u64) -> Self {
        Signals {
            log_last_seq: watch::channel(log_last_seq).0,
            last_event: watch::channel(0).0,
            follow_runs: AtomicBool::new(false),
            runs: Mutex::new(BTreeMap::new()),
            runs_changed: Notify::new(),
        }
    }

    /// Called by the writer thread after a commit.
    pub(super) fn publish(&self, notes: Notes) {
        if let Some(seq) = notes.log_last_seq {
            self.log_last_seq.send_if_modified(|held| {
                let news = seq > *held;
                *held = (*held).max(seq);
                news
            });
        }
        if let Some(seq) = notes.last_event {
            self.last_event.send_if_modified(|held| {
                let news = seq > *held;
                *held = (*held).max(seq);
                news
            });
        }
        if !notes.runs.is_empty() && self.follow_runs.load(Ordering::Relaxed) {
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            for (run, over) in notes.runs {
                runs.insert(run, over);
            }
            drop(runs);
            self.runs_changed.notify_one();
        }
    }

    /// The last sequence number of the change log, updated after every commit that grew it.
    pub fn log_last_seq(&self) -> watch::Receiver<u64> {
        self.log_last_seq.subscribe()
    }

    /// The last sequence number of the event log, updated after every commit that grew it
    /// (0 until the first).
    pub fn last_event(&self) -> watch::Receiver<u64> {
        self.last_event.subscribe()
    }

    /// Starts collecting the runs whose statistics change.
    pub fn follow_runs(&self) {
        self.follow_runs.store(true, Ordering::Relaxed);
    }

    /// Waits until some run changed since the last `take_runs`.
    pub async fn runs_changed(&self) {
        self.runs_changed.notified().await
    }

    /// The runs changed since the last call, each with whether it is over on this server's
    /// own devices (when it is not, it cannot be over in the subtree either).
    pub fn take_runs(&self) -> Vec<(RunId, bool)> {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *runs).into_iter().collect()
    }
}

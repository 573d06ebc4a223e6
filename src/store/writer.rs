//! The writer thread: the only place that begins write transactions on an open database.
//!
//! It blocks for the first queued job, drains whatever else is already queued (up to
//! [`MAX_BATCH`]), runs every job in ONE write transaction and commits it once (group commit).
//! If any job fails, that transaction is aborted and every job of the batch is run again alone,
//! in its own transaction, so a failing job neither loses nor half-applies the others.
//!
//! Maintenance jobs (see `maintenance.rs`, e.g. compaction) are the second kind of job: they need
//! `&mut Database` rather than a transaction. The writer never batches one: the jobs queued
//! before it are committed first, then it runs alone with no write transaction open, holding the
//! [`DbSlot`] write lock so that no read transaction begins until it is over (reads begun before
//! may still be live; the job has to cope with that, e.g. by waiting a little). Writes queued
//! meanwhile wait in the queue and are batched as usual afterwards.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use super::StoreError;
use super::signals::{self, Signals};

/// The most jobs committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// What a panicking write closure reports to its caller.
pub(super) const PANIC_MESSAGE: &str = "internal error: write job panicked";

/// The open database, shared by the writer thread and readers; `None` once closed.
pub(super) type DbSlot = Arc<RwLock<Option<Database>>>;

#[derive(Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) jobs: AtomicU64,
    /// Told of every durable commit (the server's metrics), once one is set.
    pub(super) observer: RwLock<Option<Arc<dyn super::CommitObserver>>>,
}

impl Counters {
    /// A transaction of `jobs` jobs, begun at `begun`, is durably committed.
    fn committed(&self, jobs: usize, begun: Instant) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs as u64, Ordering::Relaxed);
        let observer = self.observer.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(observer) = observer.as_ref() {
            observer.committed(begun.elapsed(), jobs);
        }
    }
}

/// One queued write, type-erased.
pub(super) trait Job: Send {
    /// Runs the closure in `txn`; may be called more than once, each time in a new transaction.
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), StoreError>;
    /// Delivers the outcome of the transaction that last ran `apply` (or of `maintain`) to the
    /// caller.
    fn finish(self: Box<Self>, result: Result<(), StoreError>);
    /// Whether this is a maintenance job, run by [`Job::maintain`] alone and never by `apply`.
    fn is_maintenance(&self) -> bool {
        false
    }
    /// Runs a maintenance job on the writer thread, with no write transaction open and the
    /// [`DbSlot`] write lock held (see the module comment). Called once.
    fn maintain(&mut self, _db: &mut Database) -> Result<(), StoreError> {
        Err(StoreError::Rejected(
            "internal error: a write job was run as maintenance".to_owned(),
        ))
    }
}

pub(super) struct WriteJob<T, F> {
    f: F,
    out: Option<T>,
    tx: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob<T, F> {
    pub(super) fn new(f: F, tx: oneshot::Sender<Result<T, StoreError>>) -> Self {
        WriteJob { f, out: None, tx }
    }
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send + 'static,
    F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
{
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), StoreError> {
        self.out = None;
        match catch_unwind(AssertUnwindSafe(|| (self.f)(txn))) {
            Ok(Ok(value)) => {
                self.out = Some(value);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Rejected(PANIC_MESSAGE.to_owned())),
        }
    }

    fn finish(mut self: Box<Self>, result: Result<(), StoreError>) {
        let result = result.and_then(|()| {
            self.out
                .take()
                .ok_or_else(|| StoreError::Redb("write job finished without a result".to_owned()))
        });
        // The caller may have stopped waiting (a cancelled future); the write stands anyway.
        let _ = self.tx.send(result);
    }
}

/// A maintenance job: `f` runs once, with the database to itself (see [`Job::maintain`]).
pub(super) struct MaintenanceJob<T, F> {
    f: Option<F>,
    out: Option<T>,
    tx: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> MaintenanceJob<T, F> {
    pub(super) fn new(f: F, tx: oneshot::Sender<Result<T, StoreError>>) -> Self {
        MaintenanceJob {
            f: Some(f),
            out: None,
            tx,
        }
    }
}

impl<T, F> Job for MaintenanceJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Database) -> Result<T, StoreError> + Send + 'static,
{
    fn apply(&mut self, _txn: &WriteTransaction) -> Result<(), StoreError> {
        Err(StoreError::Rejected(
            "internal error: a maintenance job was run in a write transaction".to_owned(),
        ))
    }

    fn finish(mut self: Box<Self>, result: Result<(), StoreError>) {
        let result = result.and_then(|()| {
            self.out.take().ok_or_else(|| {
                StoreError::Redb("maintenance job finished without a result".to_owned())
            })
        });
        let _ = self.tx.send(result);
    }

    fn is_maintenance(&self) -> bool {
        true
    }

    fn maintain(&mut self, db: &mut Database) -> Result<(), StoreError> {
        let f = self.f.take().ok_or_else(|| {
            StoreError::Rejected("internal error: a maintenance job was run twice".to_owned())
        })?;
        self.out = Some(f(db)?);
        Ok(())
    }
}

/// The body of the "store-writer" thread. Returns when every sender is gone and the queue is
/// drained. `path` is the file, for reopening it after a storage failure.
pub(super) fn run(
    db: DbSlot,
    path: &Path,
    rx: &Receiver<Box<dyn Job>>,
    counters: Arc<Counters>,
    signals: Arc<Signals>,
) {
    let mut writer = Writer {
        db: &db,
        path,
        counters: &counters,
        signals: &signals,
        broken: None,
    };
    // A maintenance job met while draining the queue: it runs after the batch before it.
    let mut held: Option<Box<dyn Job>> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            // While the file is broken, it is reopened as soon as it can be, jobs or not.
            None if writer.broken.is_some() => match rx.recv_timeout(REOPEN_EVERY) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = writer.reopen();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        if first.is_maintenance() {
            run_maintenance(&db, first);
            continue;
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) if job.is_maintenance() => {
                    held = Some(job);
                    break;
                }
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        tracing::debug!(jobs = batch.len(), "store writer: running a batch");
        writer.run_batch(batch);
    }
    tracing::debug!("store writer: queue closed and drained, stopping");
}

/// How often a broken file is reopened while no job comes.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// The writer's state.
struct Writer<'a> {
    db: &'a DbSlot,
    path: &'a Path,
    counters: &'a Counters,
    signals: &'a Signals,
    /// Why the file is broken: after a failed commit (a full disk, an I/O error) redb refuses
    /// every later transaction until the file is opened again. Nothing of the failed commit
    /// was acknowledged, so reopening loses nothing that was.
    broken: Option<String>,
}

/// Runs a maintenance job alone, holding the [`DbSlot`] write lock: no read transaction begins
/// (and, being on the writer thread, no write transaction) until it is over.
fn run_maintenance(db: &DbSlot, mut job: Box<dyn Job>) {
    tracing::debug!("store writer: running a maintenance job");
    let result = {
        let mut guard = db.write().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut() {
            None => Err(StoreError::Closed),
            // Caught while the guard is held, so a panic does not poison the lock.
            Some(db) => match catch_unwind(AssertUnwindSafe(|| job.maintain(db))) {
                Ok(result) => result,
                Err(_) => Err(StoreError::Rejected(PANIC_MESSAGE.to_owned())),
            },
        }
    };
    job.finish(result);
}

impl Writer<'_> {
    /// Notes a storage failure and reopens the file at once if it can.
    fn failed(&mut self, e: &StoreError) {
        if matches!(e, StoreError::Closed) {
            return;
        }
        if self.broken.is_none() {
            tracing::error!(
                path = %self.path.display(),
                error = %e,
                "storage failure: the database is reopened, and writes fail until it is"
            );
        }
        self.broken = Some(e.to_string());
        let _ = self.reopen();
    }

    /// Opens the file again after a storage failure (readers meanwhile get `Closed`).
    fn reopen(&mut self) -> Result<(), StoreError> {
        let Some(why) = self.broken.clone() else {
            return Ok(());
        };
        let mut guard = self.db.write().unwrap_or_else(PoisonError::into_inner);
        drop(guard.take());
        match Database::builder()
            .set_cache_size(super::CACHE_SIZE)
            .create(self.path)
        {
            Ok(db) => {
                *guard = Some(db);
                self.broken = None;
                tracing::warn!(path = %self.path.display(), "database reopened after a storage failure ({why}); writes work again");
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "store writer: the database cannot be reopened yet");
                Err(StoreError::Redb(format!(
                    "the database is unavailable after a storage failure ({why}); reopening it failed: {e}"
                )))
            }
        }
    }

    fn begin(&mut self) -> Result<WriteTransaction, StoreError> {
        // What an earlier, aborted or failed, transaction noted was never stored.
        signals::clear();
        self.reopen()?;
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = guard.as_ref().ok_or(StoreError::Closed)?;
        let mut txn = db.begin_write()?;
        // Quick-repair: each commit also saves the allocator state and commits in two phases (one
        // more fsync). Group commit amortises that cost over the batch, and in exchange the restart
        // after a crash does not walk and checksum the whole file, and the two-phase commit closes
        // redb's documented partial-commit attack on the one-phase scheme.
        txn.set_quick_repair(true);
        Ok(txn)
    }

    /// [`Writer::begin`], noting a failure to begin as a storage failure.
    fn begin_or_note(&mut self) -> Result<WriteTransaction, StoreError> {
        let begun = self.begin();
        if let Err(e) = &begun
            && self.broken.is_none()
        {
            self.failed(e);
        }
        begun
    }

    fn run_batch(&mut self, mut batch: Vec<Box<dyn Job>>) {
        if batch.len() == 1 {
            for job in batch {
                self.run_alone(job);
            }
            return;
        }
        let begun = Instant::now();
        let txn = match self.begin_or_note() {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "store writer: cannot begin a write transaction");
                return fail_all(batch, &e);
            }
        };
        let failed = batch.iter_mut().position(|job| job.apply(&txn).is_err());
        if let Some(index) = failed {
            abort(txn);
            tracing::debug!(
                jobs = batch.len(),
                failed = index,
                "store writer: a job failed, running each job of the batch alone"
            );
            for job in batch {
                self.run_alone(job);
            }
            return;
        }
        match txn.commit() {
            Ok(()) => {
                self.counters.committed(batch.len(), begun);
                self.signals.publish(signals::take());
                for job in batch {
                    job.finish(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "store writer: commit failed");
                let e = StoreError::from(e);
                fail_all(batch, &e);
                self.failed(&e);
            }
        }
    }

    fn run_alone(&mut self, mut job: Box<dyn Job>) {
        let begun = Instant::now();
        let txn = match self.begin_or_note() {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!(error = %e, "store writer: cannot begin a write transaction");
                return job.finish(Err(e));
            }
        };
        if let Err(e) = job.apply(&txn) {
            abort(txn);
            return job.finish(Err(e));
        }
        match txn.commit() {
            Ok(()) => {
                self.counters.committed(1, begun);
                self.signals.publish(signals::take());
                job.finish(Ok(()));
            }
            Err(e) => {
                tracing::error!(error = %e, "store writer: commit failed");
                let e = StoreError::from(e);
                job.finish(Err(duplicate(&e)));
                self.failed(&e);
            }
        }
    }
}

fn abort(txn: WriteTransaction) {
    if let Err(e) = txn.abort() {
        tracing::warn!(error = %e, "store writer: aborting a write transaction failed");
    }
}

/// A copy of an error that has to be reported to several jobs.
fn duplicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::Closed => StoreError::Closed,
        StoreError::Rejected(m) => StoreError::Rejected(m.clone()),
        StoreError::Redb(m) => StoreError::Redb(m.clone()),
        other => StoreError::Redb(other.to_string()),
    }
}

fn fail_all(batch: Vec<Box<dyn Job>>, e: &StoreError) {
    for job in batch {
        job.finish(Err(duplicate(e)));
    }
}

//! The only module that touches redb.
//!
//! * redb is never called from async code directly: [`Store::read`] runs on tokio's blocking
//!   pool, and [`Store::write`] hands the closure to the writer thread.
//! * All writes to one database file go through ONE writer thread ("store-writer"), which runs
//!   whatever is queued in one durable transaction (group commit, at most
//!   [`MAX_BATCH`] jobs per transaction). If one job of a batch fails, the
//!   batch is rolled back and every job is run again alone, so write closures are `FnMut` and
//!   must only have effects inside the transaction.
//! * Values are `&[u8]` encoded with the project codec (`wire::codec`); callers use the typed
//!   helpers ([`get`], [`put`], ...) and never see the codec.
//!
//! Tables are created by opening them in a write transaction; declare them as
//! [`StrTable`] / [`SeqTable`] constants next to the code that owns them.

// The Administration Server's tables and typed accessors (written separately).
pub mod agent;
mod change_log;
pub mod counts;
mod creation;
pub mod devices;
pub mod events;
mod groups;
mod log_trim;
pub mod maintenance;
mod migrate;
mod notify;
pub mod occurrences;
pub mod pause;
pub mod private;
pub mod replication;
pub mod revisions;
mod revocations;
pub mod rights;
mod schema;
pub mod sealing;
mod server;
pub mod signals;
pub mod tasks;
mod writer;

use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle, ThreadId};

use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::oneshot;

use crate::wire::codec::{CodecError, decode, encode};

use signals::Signals;
use writer::{Counters, DbSlot, Job, WriteJob};

pub use events::SCAN_PER_PAGE;
pub use writer::MAX_BATCH;

/// The schema this binary writes; a file with a newer one is refused, an older one migrated
/// (`migrate.rs`). 3: secondaries placed by group id, statistics rows with an epoch. 4:
/// revoked certificates, and revocations in the change log. 5: the set of pending devices.
pub const SCHEMA_VERSION: u32 = 10;

/// Page cache of the database.
const CACHE_SIZE: usize = 64 * 1024 * 1024;

/// A table keyed by name, values encoded with the codec.
pub type StrTable = TableDefinition<'static, &'static str, &'static [u8]>;
/// A table keyed by sequence number (e.g. an event log), values encoded with the codec.
pub type SeqTable = TableDefinition<'static, u64, &'static [u8]>;

/// Database-wide settings; holds [`SCHEMA_VERSION_KEY`] (a `u32`).
pub const META: StrTable = TableDefinition::new("meta");
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("database schema version {found} is newer than this binary supports ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("storage error: {0}")]
    Redb(String),
    #[error("stored value is corrupt: {0}")]
    Codec(#[from] CodecError),
    #[error("{0}")]
    Rejected(String),
    /// What was to be stored does not hold together (a chain that loops, say).
    #[error("{0}")]
    Invalid(String),
    /// A cap of the server's `[limits]` is reached; the message names the key.
    #[error("{0}")]
    LimitReached(String),
    #[error("the database writer has stopped")]
    Closed,
}

impl StoreError {
    /// Whether doing the same again fails the same way (a refusal, a value that cannot be
    /// decoded), rather than maybe succeed once storage works again.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StoreError::Rejected(_)
                | StoreError::Invalid(_)
                | StoreError::LimitReached(_)
                | StoreError::Codec(_)
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Told by the writer thread of each durable commit: the server's metrics implement it, so
/// the store depends on nothing above it. Called on the writer thread: it must be quick.
pub trait CommitObserver: Send + Sync {
    /// A write transaction is durably committed, `took` after it began (its jobs run, then
    /// redb's commit), with `jobs` write jobs in it.
    fn committed(&self, took: std::time::Duration, jobs: usize);
}

/// Counters for benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Write jobs committed (each in exactly one of those transactions).
    pub jobs: u64,
}

/// An open database. Cheap to clone; every clone shares the one writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: DbSlot,
    sender: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    writer_id: ThreadId,
    counters: Arc<Counters>,
    signals: Arc<Signals>,
}

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let message = match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            format!("the file is locked ({e}): is it already open by a running server?")
        }
        other => other.to_string(),
    };
    StoreError::Open {
        path: path.to_owned(),
        message,
    }
}

/// Checks the schema version of a freshly opened file, and stamps it on a new one.
fn check_schema(db: &Database) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    let stamped = {
        let mut meta = txn.open_table(META)?;
        match get::<u32>(&meta, SCHEMA_VERSION_KEY)? {
            None => {
                put(&mut meta, SCHEMA_VERSION_KEY, &SCHEMA_VERSION)?;
                true
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(SCHEMA_VERSION) => false,
            Some(found @ 2..=9) => {
                if found == 2 {
                    migrate::from_2(&txn)?;
                }
                if found <= 3 {
                    migrate::from_3(&txn)?;
                }
                if found <= 4 {
                    migrate::from_4(&txn)?;
                }
                if found <= 5 {
                    migrate::from_5(&txn)?;
                }
                if found <= 6 {
                    migrate::from_6(&txn)?;
                }
                if found <= 7 {
                    migrate::from_7(&txn)?;
                }
                if found <= 8 {
                    migrate::from_8(&txn)?;
                }
                migrate::from_9(&txn)?;
                put(&mut meta, SCHEMA_VERSION_KEY, &SCHEMA_VERSION)?;
                tracing::info!("database migrated from schema {found} to {SCHEMA_VERSION}");
                true
            }
            Some(found) => {
                return Err(StoreError::Redb(format!(
                    "schema version {found} has no migration to {SCHEMA_VERSION}"
                )));
            }
        }
    };
    if stamped {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(())
}

impl Store {
    /// Opens or creates the database file, checks (or, on a new file, sets) the schema version
    /// and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Owner only before redb writes a byte: it holds hashes, tokens, tenants' data.
        private::claim_file(path).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            message: format!("cannot create it readable by its owner only: {e}"),
        })?;
        let db = Database::builder()
            .set_cache_size(CACHE_SIZE)
            .create(path)
            .map_err(|e| open_error(path, e))?;
        // On error `db` is dropped here, which releases the file lock.
        check_schema(&db).map_err(|e| match e {
            StoreError::Redb(message) => StoreError::Open {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;

        let signals = Arc::new(Signals::new(change_log::last_seq_of(&db)?));
        let db: DbSlot = Arc::new(std::sync::RwLock::new(Some(db)));
        let counters = Arc::new(Counters::default());
        let (sender, receiver) = mpsc::channel::<Box<dyn Job>>();
        let handle = thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn({
                let db = db.clone();
                let counters = counters.clone();
                let signals = signals.clone();
                let path = path.to_owned();
                move || {
                    // A panic in the writer itself (write closures have their own guard) fails
                    // the jobs it held, unacknowledged, and the writer starts again.
                    loop {
                        let run = std::panic::AssertUnwindSafe(|| {
                            writer::run(
                                db.clone(),
                                &path,
                                &receiver,
                                counters.clone(),
                                signals.clone(),
                            )
                        });
                        match std::panic::catch_unwind(run) {
                            Ok(()) => break,
                            Err(_) => tracing::error!(
                                "the database writer panicked; it starts again (the writes it held failed)"
                            ),
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                db,
                sender: Mutex::new(Some(sender)),
                writer_id: handle.thread().id(),
                writer: Mutex::new(Some(handle)),
                counters,
                signals,
            }),
        })
    }

    /// What committed transactions changed: the change log's last sequence number and the
    /// runs whose statistics changed.
    pub fn signals(&self) -> &Signals {
        &self.inner.signals
    }

    fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send_job(Box::new(WriteJob::new(f, tx)))?;
        Ok(rx)
    }

    /// Hands a job to the writer thread.
    fn send_job(&self, job: Box<dyn Job>) -> Result<(), StoreError> {
        let sender = self
            .inner
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sender = sender.as_ref().ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)
    }

    /// Queues `f` for the writer thread; resolves once the transaction that ran it is durably
    /// committed, with what `f` returned (from its last run).
    ///
    /// `f` may run more than once, each time in a fresh transaction (when another job of its
    /// batch failed), so it must not have effects outside the transaction. If it returns `Err`
    /// (or panics), none of its changes are kept and the caller gets that error. Dropping the
    /// returned future does not withdraw the write.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let rx = self.submit(f)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// [`Store::write`] for non-async code. Panics if called from inside a tokio runtime
    /// context (use `write` there); refused from inside a write closure (it would deadlock).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        if self.on_writer_thread() {
            return Err(StoreError::Rejected(
                "internal error: write_blocking called from inside a write job".to_owned(),
            ));
        }
        let rx = self.submit(f)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read transaction (a snapshot of the last commit) on tokio's blocking pool.
    /// A panic in `f` is resumed in the caller.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.read_blocking(f)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// [`Store::read`] on the calling thread, without a hop to the blocking pool: for reads
    /// of a few keys (microseconds, from pages in memory) on paths that must answer while
    /// the server is busy, where each hop would wait behind every ready task.
    pub async fn read_now<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    {
        self.read_blocking(f)
    }

    /// [`Store::read`] on the calling thread, for non-async code.
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    {
        let txn = {
            let db = self.inner.db.read().unwrap_or_else(PoisonError::into_inner);
            db.as_ref().ok_or(StoreError::Closed)?.begin_read()?
        };
        f(&txn)
    }

    /// Stops accepting writes, commits what is already queued, stops the writer thread and
    /// closes the database, releasing the file lock. Idempotent; afterwards writes and reads
    /// fail with [`StoreError::Closed`] (a read already running gets a storage error).
    pub fn close(&self) -> Result<(), StoreError> {
        self.inner.shutdown()
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.inner.counters.commits.load(Ordering::Relaxed),
            jobs: self.inner.counters.jobs.load(Ordering::Relaxed),
        }
    }

    /// Tells `observer` of every durable commit from now on (replacing any set before).
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        let mut slot = self
            .inner
            .counters
            .observer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(observer);
    }

    fn on_writer_thread(&self) -> bool {
        thread::current().id() == self.inner.writer_id
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn shutdown(&self) -> Result<(), StoreError> {
        // Dropping the sender lets the writer drain the queue and return.
        drop(
            self.sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if thread::current().id() == self.writer_id {
            // Joining ourselves would deadlock; the writer stops after the current batch and
            // a later close() from another thread (or the drop of the last clone) finishes.
            return Err(StoreError::Rejected(
                "internal error: close called from inside a write job".to_owned(),
            ));
        }
        // Held until the database is closed, so a concurrent close() waits for this one.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut result = Ok(());
        if let Some(handle) = writer.take()
            && handle.join().is_err()
        {
            result = Err(StoreError::Redb(
                "the database writer thread panicked".to_owned(),
            ));
        }
        let db = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(db) = db {
            db.close().map_err(|e| StoreError::Redb(e.to_string()))?;
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(path = %self.path.display(), error = %e, "closing the database on drop");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Typed helpers: the codec stays behind these.

/// The decoded value under `key`, if any.
pub fn get<V: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<V>, StoreError> {
    match table.get(key)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// Stores `value` under `key`, replacing any previous value.
pub fn put<V: Serialize + ?Sized>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &V,
) -> Result<(), StoreError> {
    let bytes = encode(value)?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Removes `key`; whether it was present.
pub fn remove(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
) -> Result<bool, StoreError> {
    Ok(table.remove(key)?.is_some())
}

/// Every decoded value, in key order.
pub fn values<V: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<V>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range::<&str>(..)? {
        let (_, value) = entry?;
        out.push(decode(value.value())?);
    }
    Ok(out)
}

/// Every key with its decoded value, in key order.
pub fn entries<V: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, V)>, StoreError> {
    entries_with_prefix(table, "")
}

/// The keys starting with `prefix`, with their decoded values, in key order.
pub fn entries_with_prefix<V: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, V)>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range::<&str>(prefix..)? {
        let (key, value) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key.to_owned(), decode(value.value())?));
    }
    Ok(out)
}

/// The decoded value under sequence number `key`, if any.
pub fn get_u64<V: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    key: u64,
) -> Result<Option<V>, StoreError> {
    match table.get(key)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// Stores `value` under sequence number `key`, replacing any previous value.
pub fn put_u64<V: Serialize + ?Sized>(
    table: &mut Table<'_, u64, &'static [u8]>,
    key: u64,
    value: &V,
) -> Result<(), StoreError> {
    let bytes = encode(value)?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Removes sequence number `key`; whether it was present.
pub fn remove_u64(table: &mut Table<'_, u64, &'static [u8]>, key: u64) -> Result<bool, StoreError> {
    Ok(table.remove(key)?.is_some())
}

/// The highest sequence number in the table, if any (the next one to use is this + 1).
pub fn last_key_u64(
    table: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Option<u64>, StoreError> {
    Ok(table.last()?.map(|(key, _)| key.value()))
}

/// At most `limit` entries whose sequence number is in `range`, in ascending order, decoded.
pub fn entries_u64<V: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    range: impl RangeBounds<u64>,
    limit: usize,
) -> Result<Vec<(u64, V)>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for entry in table.range::<u64>(range)? {
        let (key, value) = entry?;
        out.push((key.value(), decode(value.value())?));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

//! The Administration Server's tasks on its own database: "Backup of Administration Server
//! data" ([`Store::backup`]) and "Maintenance of the database" ([`Store::compact`]).
//!
//! * A backup is a logical copy of ONE read transaction (a consistent snapshot) into a new redb
//!   file, made on tokio's blocking pool: the writer thread keeps committing meanwhile, and the
//!   copy is a valid data file for a server (the schema version row is copied with the rest).
//! * Compaction runs on the writer thread as a maintenance job (see `writer.rs`): no write
//!   transaction runs and no read transaction begins while it does. redb refuses to compact
//!   while a read transaction begun earlier is still live (e.g. a backup), so it waits a little
//!   for those to end and otherwise reports the database as busy.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{
    CompactionError, Database, Key, MultimapTableHandle, ReadTransaction, ReadableTable,
    TableDefinition, TableError, TableHandle, Value, WriteTransaction,
};
use tokio::sync::oneshot;

use super::writer::MaintenanceJob;
use super::{Store, StoreError};

/// How many times compaction is tried while read transactions begun before it are still live.
const COMPACT_ATTEMPTS: u32 = 20;
/// The pause between two of those attempts (reads do not begin meanwhile, so they drain).
const COMPACT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// What [`Store::compact`] reports when read transactions did not end in time.
pub const BUSY_MESSAGE: &str = "the database is busy (a long read, such as a backup, is in \
                                progress); try maintenance again later";

/// The outcome of [`Store::backup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup file (the destination asked for).
    pub path: PathBuf,
    /// Tables copied, empty ones included.
    pub tables: u64,
    /// Rows copied, over all tables.
    pub rows: u64,
    /// Size of the backup file.
    pub bytes: u64,
}

/// The outcome of [`Store::compact`]: the size of the database file before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactReport {
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl CompactReport {
    /// Bytes given back to the file system (0 if the file grew).
    pub fn freed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

impl Store {
    /// Writes a consistent copy of the whole database (one read transaction) to a NEW redb file
    /// at `destination`, while the server keeps serving reads and writes. Refuses a destination
    /// that exists; creates missing parent directories.
    ///
    /// The copy is built in `destination.with_extension("partial")` and only then moved into
    /// place, durably, so an interrupted backup never leaves a half file under the final name;
    /// a leftover `.partial` file is refused (another backup to that destination may be running)
    /// and has to be removed by hand.
    pub async fn backup(&self, destination: &Path) -> Result<BackupReport, StoreError> {
        let store = self.clone();
        let destination = destination.to_owned();
        match tokio::task::spawn_blocking(move || backup_blocking(&store, &destination)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Compacts the database file (redb `Database::compact`), giving unused space back to the
    /// file system. Runs on the writer thread after the writes queued before it: writes queued
    /// meanwhile wait, and reads wait to begin. Fails with [`StoreError::Rejected`]
    /// ([`BUSY_MESSAGE`]) if read transactions begun earlier do not end within about a second.
    pub async fn compact(&self) -> Result<CompactReport, StoreError> {
        let path = self.path().to_owned();
        let rx = self.submit_maintenance(move |db| compact_database(db, &path))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a maintenance job (see `writer.rs`) for the writer thread.
    fn submit_maintenance<T, F>(
        &self,
        f: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Database) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send_job(Box::new(MaintenanceJob::new(f, tx)))?;
        Ok(rx)
    }
}

// ---------------------------------------------------------------------------------------------
// Compaction (on the writer thread).

fn compact_database(db: &mut Database, path: &Path) -> Result<CompactReport, StoreError> {
    let started = Instant::now();
    let bytes_before = file_size(path)?;
    let mut attempt = 1;
    loop {
        match db.compact() {
            Ok(_) => break,
            Err(CompactionError::TransactionInProgress) if attempt < COMPACT_ATTEMPTS => {
                attempt += 1;
                thread::sleep(COMPACT_RETRY_DELAY);
            }
            Err(CompactionError::TransactionInProgress) => {
                tracing::warn!(
                    attempts = attempt,
                    "database maintenance: reads still in progress"
                );
                return Err(StoreError::Rejected(BUSY_MESSAGE.to_owned()));
            }
            Err(e) => return Err(StoreError::Redb(format!("compaction failed: {e}"))),
        }
    }
    let report = CompactReport {
        bytes_before,
        bytes_after: file_size(path)?,
    };
    tracing::info!(
        bytes_before = report.bytes_before,
        bytes_after = report.bytes_after,
        attempts = attempt,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "database compacted"
    );
    Ok(report)
}

fn file_size(path: &Path) -> Result<u64, StoreError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| io_error("cannot read the size of", path, e))
}

fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Redb(format!("{what} {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Backup (on the blocking pool).

fn backup_blocking(store: &Store, destination: &Path) -> Result<BackupReport, StoreError> {
    let started = Instant::now();
    if fs::symlink_metadata(destination).is_ok() {
        return Err(exists(destination));
    }
    let partial = destination.with_extension("partial");
    if partial == destination {
        return Err(StoreError::Rejected(format!(
            "backup destination {} must not end in .partial",
            destination.display()
        )));
    }
    if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        super::private::create_dir_all(parent)
            .map_err(|e| io_error("cannot create directory", parent, e))?;
    }
    // create_new claims the name atomically: two backups never write the same partial file.
    let file = match super::private::create_new(&partial) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(StoreError::Rejected(format!(
                "{} already exists: another backup to {} is running, or one was interrupted \
                 (then remove that file and try again)",
                partial.display(),
                destination.display()
            )));
        }
        Err(e) => return Err(io_error("cannot create", &partial, e)),
    };
    let result = write_backup(store, file, &partial, destination);
    if result.is_err() {
        // Ours (created above); it is either incomplete or already linked into place.
        let _ = fs::remove_file(&partial);
    }
    let (tables, rows) = result?;
    let report = BackupReport {
        path: destination.to_owned(),
        tables,
        rows,
        bytes: file_size(destination)?,
    };
    tracing::info!(
        path = %destination.display(),
        tables,
        rows,
        bytes = report.bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "database backed up"
    );
    Ok(report)
}

fn exists(destination: &Path) -> StoreError {
    StoreError::Rejected(format!(
        "backup destination {} already exists; a backup is only written to a new file",
        destination.display()
    ))
}

/// Copies the snapshot into `file` (the partial file), then moves it to `destination`.
fn write_backup(
    store: &Store,
    file: File,
    partial: &Path,
    destination: &Path,
) -> Result<(u64, u64), StoreError> {
    let backend = FileBackend::new(file).map_err(|e| open_error(partial, e))?;
    let target = Database::builder()
        .create_with_backend(backend)
        .map_err(|e| open_error(partial, e))?;
    let counts = store.read_blocking(|source| copy_all(source, &target))?;
    target.close().map_err(|e| open_error(partial, e))?;
    // The commit was durable; this also covers the file's metadata.
    File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("cannot sync", partial, e))?;
    // A hard link is a rename that never replaces a file created at `destination` meanwhile.
    match fs::hard_link(partial, destination) {
        Ok(()) => {
            if let Err(e) = fs::remove_file(partial) {
                tracing::warn!(path = %partial.display(), error = %e, "backup: cannot remove the partial file");
            }
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists(destination)),
        // A file system without hard links.
        Err(_) => {
            if fs::symlink_metadata(destination).is_ok() {
                return Err(exists(destination));
            }
            fs::rename(partial, destination)
                .map_err(|e| io_error("cannot move the backup to", destination, e))?;
        }
    }
    sync_parent(destination)?;
    Ok(counts)
}

fn open_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Makes the new directory entry durable.
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => parent,
            None => Path::new("."),
        };
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io_error("cannot sync directory", parent, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Copies every table of `source` into `target` in one durable write transaction; returns the
/// number of tables and of rows.
fn copy_all(source: &ReadTransaction, target: &Database) -> Result<(u64, u64), StoreError> {
    if let Some(table) = source.list_multimap_tables()?.next() {
        return Err(StoreError::Rejected(format!(
            "cannot back up multimap table {:?}: the backup only knows plain tables",
            table.name()
        )));
    }
    let mut txn = target.begin_write()?;
    // As the server's own commits do (see writer.rs): no full repair if a restart follows.
    txn.set_quick_repair(true);
    let (mut tables, mut rows) = (0u64, 0u64);
    for handle in source.list_tables()? {
        let name = handle.name();
        rows += copy_table(source, &txn, name)?;
        tables += 1;
    }
    super::change_log::mark_as_backup(&txn)?;
    txn.commit()?;
    Ok((tables, rows))
}

/// Copies table `name`, whatever of the types used in this crate it has ([`super::StrTable`],
/// [`super::SeqTable`]).
fn copy_table(
    source: &ReadTransaction,
    target: &WriteTransaction,
    name: &str,
) -> Result<u64, StoreError> {
    if let Some(rows) = copy_typed::<&str, &[u8]>(source, target, name)? {
        return Ok(rows);
    }
    if let Some(rows) = copy_typed::<u64, &[u8]>(source, target, name)? {
        return Ok(rows);
    }
    // Report the stored types (redb's mismatch message names them).
    let detail = match source.open_table(TableDefinition::<&str, &[u8]>::new(name)) {
        Err(e) => e.to_string(),
        Ok(_) => "unknown types".to_owned(),
    };
    Err(StoreError::Rejected(format!(
        "cannot back up table {name:?}: its key/value types are not ones the backup knows ({detail})"
    )))
}

/// Copies table `name` as a `K -> V` table; `None` if it has other types.
fn copy_typed<K: Key + 'static, V: Value + 'static>(
    source: &ReadTransaction,
    target: &WriteTransaction,
    name: &str,
) -> Result<Option<u64>, StoreError> {
    let definition = TableDefinition::<K, V>::new(name);
    let from = match source.open_table(definition) {
        Ok(table) => table,
        Err(TableError::TableTypeMismatch { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut to = target.open_table(definition)?;
    let mut rows = 0;
    for entry in from.iter()? {
        let (key, value) = entry?;
        to.insert(key.value(), value.value())?;
        rows += 1;
    }
    Ok(Some(rows))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use redb::ReadableTableMetadata;

    use super::*;
    use crate::store::{
        META, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SeqTable, StrTable, get, get_u64, put, put_u64,
        remove_u64,
    };

    const COUNTER: StrTable = TableDefinition::new("test_counter");
    const ROWS: SeqTable = TableDefinition::new("test_rows");
    const NAMES: StrTable = TableDefinition::new("test_names");
    const EMPTY: StrTable = TableDefinition::new("test_empty");
    const BLOBS: SeqTable = TableDefinition::new("test_blobs");

    const TIMEOUT: Duration = Duration::from_secs(60);

    /// Every table with its raw rows (keys rendered), for comparing two databases.
    type Dump = BTreeMap<String, Vec<(String, Vec<u8>)>>;

    fn dump(store: &Store) -> Dump {
        store
            .read_blocking(|txn| {
                let mut out = Dump::new();
                for handle in txn.list_tables()? {
                    let name = handle.name().to_owned();
                    let mut rows = Vec::new();
                    match txn.open_table(TableDefinition::<&str, &[u8]>::new(&name)) {
                        Ok(t) => {
                            for entry in t.iter()? {
                                let (k, v) = entry?;
                                rows.push((k.value().to_owned(), v.value().to_vec()));
                            }
                        }
                        Err(TableError::TableTypeMismatch { .. }) => {
                            let t = txn.open_table(TableDefinition::<u64, &[u8]>::new(&name))?;
                            for entry in t.iter()? {
                                let (k, v) = entry?;
                                rows.push((format!("#{}", k.value()), v.value().to_vec()));
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                    rows.retain(|(k, _)| k != crate::store::change_log::FROM_BACKUP);
                    out.insert(name, rows);
                }
                Ok(out)
            })
            .unwrap()
    }

    /// One transaction: bumps the counter and appends row number `counter` to ROWS.
    async fn append(store: &Store, payload: usize) -> Result<u64, StoreError> {
        store
            .write(move |txn| {
                let mut counter = txn.open_table(COUNTER)?;
                let n = get::<u64>(&counter, "rows")?.unwrap_or(0) + 1;
                put(&mut counter, "rows", &n)?;
                let mut rows = txn.open_table(ROWS)?;
                put_u64(&mut rows, n, &vec![n as u8; payload])?;
                Ok(n)
            })
            .await
    }

    fn counter_and_rows(store: &Store) -> (u64, u64) {
        store
            .read_blocking(|txn| {
                let counter = get::<u64>(&txn.open_table(COUNTER)?, "rows")?.unwrap_or(0);
                let rows = txn.open_table(ROWS)?;
                let mut n = 0;
                for (i, entry) in rows.iter()?.enumerate() {
                    let (k, v) = entry?;
                    assert_eq!(k.value(), i as u64 + 1, "rows are 1..=counter");
                    let value: Vec<u8> = crate::wire::codec::decode(v.value())?;
                    assert!(value.iter().all(|&b| b == k.value() as u8));
                    n += 1;
                }
                Ok((counter, n))
            })
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn backup_while_writing_is_a_consistent_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("canopy.redb")).unwrap();
        store
            .write(|txn| {
                let mut names = txn.open_table(NAMES)?;
                put(&mut names, "alpha", "first")?;
                put(&mut names, "beta", &42u64)?;
                txn.open_table(EMPTY)?;
                Ok(())
            })
            .await
            .unwrap();
        const PREFILL: u64 = 50_000;
        store
            .write(|txn| {
                let mut rows = txn.open_table(ROWS)?;
                for n in 1..=PREFILL {
                    put_u64(&mut rows, n, &vec![n as u8; 100])?;
                }
                put(&mut txn.open_table(COUNTER)?, "rows", &PREFILL)
            })
            .await
            .unwrap();

        // Several tasks keep writing during the backup.
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for _ in 0..4 {
            let (store, stop) = (store.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    last = append(&store, 100).await.unwrap();
                }
                last
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let destination = dir.path().join("backups/nested/canopy-backup.redb");
        let started = Instant::now();
        let report = tokio::time::timeout(TIMEOUT, store.backup(&destination))
            .await
            .unwrap()
            .unwrap();
        let elapsed = started.elapsed();
        // Writes went on during the backup.
        let before_stop = counter_and_rows(&store).0;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        let final_count = counter_and_rows(&store).0;

        assert_eq!(report.path, destination);
        assert!(destination.exists());
        assert!(!destination.with_extension("partial").exists());
        assert_eq!(
            report.bytes,
            fs::metadata(&destination).unwrap().len(),
            "bytes is the size of the backup file"
        );
        // meta, names, empty, counter, rows.
        assert_eq!(report.tables, 5);

        let backup = Store::open(&destination).unwrap();
        let (counter, rows) = counter_and_rows(&backup);
        assert_eq!(counter, rows, "the backup is one snapshot");
        assert!(
            counter >= PREFILL,
            "the rows written before the backup are in it"
        );
        assert!(counter <= before_stop);
        // meta (1) + names (2) + counter (1) + rows.
        assert_eq!(report.rows, 1 + 2 + 1 + rows);
        let names = backup
            .read(|txn| {
                let t = txn.open_table(NAMES)?;
                Ok((
                    get::<String>(&t, "alpha")?,
                    get::<u64>(&t, "beta")?,
                    get::<u32>(&txn.open_table(META)?, SCHEMA_VERSION_KEY)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            names,
            (Some("first".to_owned()), Some(42), Some(SCHEMA_VERSION))
        );
        eprintln!(
            "backup of {rows} rows ({} tables, {} bytes) took {elapsed:?} while 4 writers \
             committed {} more rows during it ({} in total)",
            report.tables,
            report.bytes,
            before_stop.saturating_sub(counter),
            final_count
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn backup_has_the_same_content_and_refuses_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("canopy.redb")).unwrap();
        store
            .write(|txn| {
                let mut names = txn.open_table(NAMES)?;
                for i in 0..500u32 {
                    put(&mut names, &format!("name/{i:04}"), &format!("value {i}"))?;
                }
                let mut rows = txn.open_table(ROWS)?;
                for i in 1..=300u64 {
                    put_u64(&mut rows, i, &i)?;
                }
                txn.open_table(EMPTY)?;
                Ok(())
            })
            .await
            .unwrap();

        let destination = dir.path().join("copy.redb");
        let report = store.backup(&destination).await.unwrap();
        assert_eq!(report.tables, 4);
        assert_eq!(report.rows, 1 + 500 + 300);
        let original = dump(&store);
        let backup = Store::open(&destination).unwrap();
        assert_eq!(dump(&backup), original);
        assert!(original.contains_key("test_empty"));
        // The backup is a working data file.
        backup
            .write(|txn| put(&mut txn.open_table(NAMES)?, "after", &1u64))
            .await
            .unwrap();
        backup.close().unwrap();

        // An existing destination is refused and left alone.
        let size = fs::metadata(&destination).unwrap().len();
        match store.backup(&destination).await {
            Err(StoreError::Rejected(message)) => assert!(message.contains("already exists")),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(fs::metadata(&destination).unwrap().len(), size);
        let other = dir.path().join("note.txt");
        fs::write(&other, b"not a database").unwrap();
        assert!(matches!(
            store.backup(&other).await,
            Err(StoreError::Rejected(_))
        ));
        assert_eq!(fs::read(&other).unwrap(), b"not a database");
        // So is the live database file itself.
        assert!(matches!(
            store.backup(store.path()).await,
            Err(StoreError::Rejected(_))
        ));

        // A leftover partial file (interrupted or concurrent backup) is refused, not clobbered.
        let second = dir.path().join("second.redb");
        fs::write(second.with_extension("partial"), b"someone else's").unwrap();
        match store.backup(&second).await {
            Err(StoreError::Rejected(message)) => assert!(message.contains(".partial")),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(!second.exists());
        assert_eq!(
            fs::read(second.with_extension("partial")).unwrap(),
            b"someone else's"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compaction_frees_space_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("canopy.redb")).unwrap();
        const BLOB: usize = 64 * 1024;
        for chunk in 0..10u64 {
            store
                .write(move |txn| {
                    let mut blobs = txn.open_table(BLOBS)?;
                    for i in chunk * 20..(chunk + 1) * 20 {
                        put_u64(&mut blobs, i, &vec![i as u8; BLOB])?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        store
            .write(|txn| {
                let mut blobs = txn.open_table(BLOBS)?;
                for i in 0..200u64 {
                    if i % 20 != 0 {
                        remove_u64(&mut blobs, i)?;
                    }
                }
                put(&mut txn.open_table(NAMES)?, "kept", "yes")
            })
            .await
            .unwrap();
        let before = dump(&store);

        let started = Instant::now();
        let report = tokio::time::timeout(TIMEOUT, store.compact())
            .await
            .unwrap()
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            report.bytes_after < report.bytes_before,
            "compaction shrinks the file: {report:?}"
        );
        assert_eq!(report.freed(), report.bytes_before - report.bytes_after);
        assert_eq!(
            report.bytes_after,
            fs::metadata(store.path()).unwrap().len()
        );
        assert_eq!(dump(&store), before);
        let kept = store
            .read(|txn| {
                let blobs = txn.open_table(BLOBS)?;
                let mut kept = Vec::new();
                for i in (0..200u64).step_by(20) {
                    let blob: Vec<u8> = get_u64(&blobs, i)?.expect("kept blob");
                    assert!(blob.len() == BLOB && blob.iter().all(|&b| b == i as u8));
                    kept.push(i);
                }
                Ok(kept)
            })
            .await
            .unwrap();
        assert_eq!(kept.len(), 10);

        // The store keeps working, and survives a reopen.
        store
            .write(|txn| put(&mut txn.open_table(NAMES)?, "after", &1u64))
            .await
            .unwrap();
        let expected = dump(&store);
        let path = store.path().to_owned();
        store.close().unwrap();
        drop(store);
        let reopened = Store::open(&path).unwrap();
        assert_eq!(dump(&reopened), expected);
        eprintln!(
            "compaction: {} -> {} bytes ({} freed) in {elapsed:?}",
            report.bytes_before,
            report.bytes_after,
            report.freed()
        );
        let again = reopened.compact().await.unwrap();
        assert!(again.bytes_after <= again.bytes_before, "{again:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn compaction_waits_for_a_short_read_and_refuses_a_long_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("canopy.redb")).unwrap();
        for _ in 0..50 {
            append(&store, 10_000).await.unwrap();
        }

        // A read that ends soon: compaction waits for it and succeeds.
        let (began_tx, began_rx) = oneshot::channel();
        let short = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .read(move |txn| {
                        let _ = began_tx.send(());
                        thread::sleep(Duration::from_millis(300));
                        Ok(txn.open_table(ROWS)?.len()?)
                    })
                    .await
            }
        });
        began_rx.await.unwrap();
        let report = tokio::time::timeout(TIMEOUT, store.compact())
            .await
            .expect("no deadlock")
            .expect("compaction waits for a short read");
        assert_eq!(short.await.unwrap().unwrap(), 50);
        eprintln!("compaction after a 300 ms read: {report:?}");

        // A read that outlasts the wait: compaction fails cleanly, nothing else is disturbed.
        let (began_tx, began_rx) = oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let long = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .read(move |txn| {
                        let _ = began_tx.send(());
                        let _ = release_rx.recv_timeout(TIMEOUT);
                        Ok(txn.open_table(ROWS)?.len()?)
                    })
                    .await
            }
        });
        began_rx.await.unwrap();
        // Writes queued during the attempt run after it.
        let compact = tokio::spawn({
            let store = store.clone();
            async move { store.compact().await }
        });
        let write = tokio::spawn({
            let store = store.clone();
            async move { append(&store, 10).await }
        });
        let started = Instant::now();
        let outcome = tokio::time::timeout(TIMEOUT, compact)
            .await
            .expect("no deadlock")
            .unwrap();
        match outcome {
            Err(StoreError::Rejected(message)) => assert_eq!(message, BUSY_MESSAGE),
            other => panic!("expected the busy error, got {other:?}"),
        }
        eprintln!("compaction gave up after {:?}", started.elapsed());
        assert_eq!(write.await.unwrap().unwrap(), 51);
        // New reads work again once compaction gave up (the long one is still open).
        assert_eq!(counter_and_rows(&store), (51, 51));
        release_tx.send(()).unwrap();
        assert_eq!(
            long.await.unwrap().unwrap(),
            50,
            "the long read kept its snapshot"
        );

        // With the read over, maintenance succeeds.
        tokio::time::timeout(TIMEOUT, store.compact())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(counter_and_rows(&store), (51, 51));

        // A backup in progress is such a long read: it is never broken by compaction.
        let destination = dir.path().join("during-compaction.redb");
        let (backup, compacted) = tokio::join!(store.backup(&destination), store.compact());
        let backup = backup.unwrap();
        assert!(matches!(compacted, Ok(_) | Err(StoreError::Rejected(_))));
        assert_eq!(
            counter_and_rows(&Store::open(&backup.path).unwrap()),
            (51, 51)
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn maintenance_after_close_reports_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("canopy.redb")).unwrap();
        store.close().unwrap();
        assert!(matches!(store.compact().await, Err(StoreError::Closed)));
        assert!(matches!(
            store.backup(&dir.path().join("b.redb")).await,
            Err(StoreError::Closed)
        ));
        assert!(!dir.path().join("b.redb").exists());
        assert!(!dir.path().join("b.partial").exists());
    }
}

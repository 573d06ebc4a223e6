use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;

const ITEMS: StrTable = TableDefinition::new("items");
const LOG: SeqTable = TableDefinition::new("log");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
    size: u64,
}

fn item(name: &str, size: u64) -> Item {
    Item {
        name: name.to_owned(),
        size,
    }
}

fn insert(key: String, value: u64) -> impl FnMut(&WriteTransaction) -> Result<(), StoreError> {
    move |txn| {
        let mut t = txn.open_table(ITEMS)?;
        put(&mut t, &key, &value)
    }
}

fn read_u64(store: &Store, key: &str) -> Option<u64> {
    let key = key.to_owned();
    store
        .read_blocking(move |txn| {
            let t = txn.open_table(ITEMS)?;
            get::<u64>(&t, &key)
        })
        .unwrap()
}

#[test]
fn write_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canopy.redb");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);

    store
        .write_blocking(|txn| {
            let mut t = txn.open_table(ITEMS)?;
            put(&mut t, "b", &item("bee", 2))?;
            put(&mut t, "a", &item("ant", 1))?;
            put(&mut t, "c/1", &item("cat", 3))?;
            let mut log = txn.open_table(LOG)?;
            for seq in 1..=10u64 {
                put_u64(&mut log, seq, &format!("event {seq}"))?;
            }
            Ok(())
        })
        .unwrap();
    let removed = store
        .write_blocking(|txn| {
            let mut log = txn.open_table(LOG)?;
            remove_u64(&mut log, 10)
        })
        .unwrap();
    assert!(removed);
    store.close().unwrap();
    store.close().unwrap(); // idempotent

    let store = Store::open(&path).unwrap();
    let (a, missing, all, with_prefix, vals) = store
        .read_blocking(|txn| {
            let t = txn.open_table(ITEMS)?;
            Ok((
                get::<Item>(&t, "a")?,
                get::<Item>(&t, "zzz")?,
                entries::<Item>(&t)?,
                entries_with_prefix::<Item>(&t, "c/")?,
                values::<Item>(&t)?,
            ))
        })
        .unwrap();
    assert_eq!(a, Some(item("ant", 1)));
    assert_eq!(missing, None);
    let keys: Vec<_> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c/1"]);
    assert_eq!(with_prefix, vec![("c/1".to_owned(), item("cat", 3))]);
    assert_eq!(vals.len(), 3);

    let (last, page, one) = store
        .read_blocking(|txn| {
            let log = txn.open_table(LOG)?;
            Ok((
                last_key_u64(&log)?,
                entries_u64::<String>(&log, 3.., 4)?,
                get_u64::<String>(&log, 5)?,
            ))
        })
        .unwrap();
    assert_eq!(last, Some(9));
    let seqs: Vec<u64> = page.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [3, 4, 5, 6]);
    assert_eq!(one.as_deref(), Some("event 5"));
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut tasks = Vec::new();
    for i in 0..2_000u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.write(insert(format!("k{i:04}"), i)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.jobs, 2_000);
    assert!(stats.commits < 1_000, "{stats:?}");

    let count = store
        .read(|txn| Ok(values::<u64>(&txn.open_table(ITEMS)?)?.len()))
        .await
        .unwrap();
    assert_eq!(count, 2_000);
    store.close().unwrap();
}

/// Queues a job that holds the writer for a while, so that the jobs queued behind it form one
/// batch.
fn hold_writer(store: &Store) -> tokio::task::JoinHandle<Result<(), StoreError>> {
    let store = store.clone();
    tokio::spawn(async move {
        store
            .write(|_txn| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_job_does_not_spoil_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let before = store.stats();
    let blocker = hold_writer(&store);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let store = store.clone();
        let runs = runs.clone();
        let key = format!("k{i:02}");
        tasks.push(tokio::spawn(async move {
            store
                .write(move |txn| {
                    let mut t = txn.open_table(ITEMS)?;
                    put(&mut t, &key, &i)?;
                    if i == 25 {
                        runs.fetch_add(1, Ordering::SeqCst);
                        return Err(StoreError::Rejected("no twenty-five".to_owned()));
                    }
                    Ok(i)
                })
                .await
        }));
    }
    blocker.await.unwrap().unwrap();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(v) => assert_eq!(v, i as u64),
            Err(StoreError::Rejected(m)) if i == 25 => assert_eq!(m, "no twenty-five"),
            other => panic!("job {i}: {other:?}"),
        }
    }
    // Ran once in the batch, once alone.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let after = store.stats();
    // The blocker and the 49 jobs that succeeded.
    assert_eq!(after.jobs - before.jobs, 50);

    for i in 0..50u64 {
        let expected = (i != 25).then_some(i);
        assert_eq!(read_u64(&store, &format!("k{i:02}")), expected, "key {i}");
    }
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_reported_and_the_writer_survives() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let blocker = hold_writer(&store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let good = {
        let store = store.clone();
        tokio::spawn(async move { store.write(insert("good".into(), 1)).await })
    };
    let bad = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(|txn| -> Result<(), StoreError> {
                    let mut t = txn.open_table(ITEMS)?;
                    put(&mut t, "bad", &2u64)?;
                    panic!("boom")
                })
                .await
        })
    };
    blocker.await.unwrap().unwrap();
    good.await.unwrap().unwrap();
    match bad.await.unwrap() {
        Err(StoreError::Rejected(m)) => assert_eq!(m, writer::PANIC_MESSAGE),
        other => panic!("{other:?}"),
    }
    store.write(insert("after".into(), 3)).await.unwrap();
    assert_eq!(read_u64(&store, "good"), Some(1));
    assert_eq!(read_u64(&store, "bad"), None);
    assert_eq!(read_u64(&store, "after"), Some(3));
    store.close().unwrap();
}

#[test]
fn second_open_is_refused_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    match Store::open(&path) {
        Err(StoreError::Open { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains("already open"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    store.close().unwrap();
    let store = Store::open(&path).unwrap();
    store.write_blocking(insert("x".into(), 1)).unwrap();
    drop(store);
    // Dropping the last clone closes the database too.
    Store::open(&path).unwrap().close().unwrap();
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    store
        .write_blocking(|txn| {
            let mut meta = txn.open_table(META)?;
            put(&mut meta, SCHEMA_VERSION_KEY, &99u32)
        })
        .unwrap();
    store.close().unwrap();
    match Store::open(&path) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: SCHEMA_VERSION,
        }) => {}
        other => panic!("{other:?}"),
    }
    // The refused open released the file.
    let db = Database::create(&path).unwrap();
    drop(db);
}

#[tokio::test]
async fn writes_and_reads_after_close_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store.write(insert("x".into(), 1)).await.unwrap();
    let clone = store.clone();
    store.close().unwrap();
    assert!(matches!(
        clone.write(insert("y".into(), 2)).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        clone.write_blocking(insert("y".into(), 2)),
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        clone.read(|_| Ok(())).await,
        Err(StoreError::Closed)
    ));
    clone.close().unwrap();
}

#[test]
fn queued_writes_are_committed_by_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    let mut receivers = Vec::new();
    for i in 0..100u64 {
        receivers.push(store.submit(insert(format!("k{i}"), i)).unwrap());
    }
    store.close().unwrap();
    for rx in receivers {
        rx.blocking_recv().unwrap().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(read_u64(&store, "k99"), Some(99));
    store.close().unwrap();
}

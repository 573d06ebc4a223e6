//! Unit tests of runs: pruning, orders, chains.

use super::*;
use crate::model::task::{
    AGENT_APPLICATION, ChangedBy, Details, Outcome, TaskPayload, TaskSettings,
};
use crate::model::{Fingerprint, SecondaryRecord};

/// A server database in a temporary directory, kept as long as the directory.
pub(in crate::store) async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&dir.path().join("server.redb")).await;
    (dir, store)
}

/// The server database at `path`, opened on the blocking pool.
pub(in crate::store) async fn open_at(path: &std::path::Path) -> Store {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || Store::open_server(&path))
        .await
        .unwrap()
        .unwrap()
}

/// A secondary's registration in the group `group_id`, never connected.
pub(in crate::store) fn secondary(name: &str, group_id: u64) -> SecondaryRecord {
    SecondaryRecord {
        name: name.into(),
        group_id,
        cert_der: Vec::new(),
        fingerprint: Fingerprint::of(name.as_bytes()),
        registered_at: 0,
        last_connected: None,
        version: String::new(),
        instance_id: String::new(),
        address: None,
        subtree: Vec::new(),
        devices: 0,
        virtual_server: false,
        disabled: false,
        enrollment_token: String::new(),
        passive: None,
    }
}

pub(in crate::store) fn task(days: u32) -> TaskRecord {
    TaskRecord {
        id: 0,
        name: "inventory".into(),
        task_type: TaskType::Device(TaskPayload::Inventory),
        application: AGENT_APPLICATION.into(),
        scope: Scope::Local {
            device_id: "d1".into(),
        },
        settings: TaskSettings {
            store_history_days: days,
            ..TaskSettings::default()
        },
        created: 0,
        modified: 0,
        revision: 1,
        changed_by: ChangedBy::Administrator("admin".into()),
        last_run: None,
        inherited: None,
    }
}

fn finished(at: i64) -> DeviceProgress {
    DeviceProgress::Finished {
        started: at,
        finished: at,
        outcome: Outcome {
            state: DeviceState::Succeeded,
            description: String::new(),
            progress: 100,
            need_restart: false,
            details: Details::None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_pruned_after_their_tasks_history_days_and_orders_retired() {
    let (_dir, store) = temp_store().await;
    let created = store.create_task(task(2)).await.unwrap();
    assert_eq!(created.id, 1);
    let target = vec![("d1".to_string(), "desk".to_string())];
    let started = store
        .start_run(1, target, None, "admin".into(), 1_000)
        .await
        .unwrap()
        .unwrap();
    let run_id = started.run.run_id;
    assert_eq!(store.orders_for("d1").await.unwrap().len(), 1);
    let done = store
        .record_progress("d1", run_id, finished(5_000), 5_000, None)
        .await
        .unwrap()
        .unwrap();
    assert!(done.run_finished);
    assert_eq!(done.run.finished, Some(5_000));
    assert!(store.orders_for("d1").await.unwrap().is_empty(), "retired");
    // Within the term: kept. Past it: the run and its records go, the task stays.
    assert_eq!(store.prune_history(5_000 + DAY_MS).await.unwrap(), 0);
    assert!(store.run(run_id).await.unwrap().is_some());
    assert_eq!(store.prune_history(5_001 + 2 * DAY_MS).await.unwrap(), 1);
    assert!(store.run(run_id).await.unwrap().is_none());
    assert!(store.run_records(run_id).await.unwrap().is_empty());
    assert!(store.task(1).await.unwrap().is_some());
    // A run still going is never pruned.
    let target = vec![("d1".to_string(), "desk".to_string())];
    let going = store
        .start_run(1, target, None, "admin".into(), 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.prune_history(100 * DAY_MS).await.unwrap(), 0);
    // Deleting the task takes its runs and orders with it.
    let note = Note::of(RevisionAction::Deleted);
    store
        .delete_task(1, "admin".into(), note, 0)
        .await
        .unwrap()
        .unwrap();
    assert!(store.run(going.run.run_id).await.unwrap().is_none());
    assert!(store.orders_for("d1").await.unwrap().is_empty());
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap()
        .unwrap();
}

fn after(name: &str, task_id: TaskId) -> TaskRecord {
    let mut t = task(30);
    t.name = name.into();
    t.settings.schedule = crate::model::schedule::Schedule::AfterTask { task_id };
    t
}

fn refused(result: Result<TaskRecord, StoreError>, why: &str) {
    match result {
        Err(StoreError::Invalid(message)) => assert!(message.contains(why), "{message}"),
        other => panic!("refused for {why:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_task_starts_on_each_device_as_it_finishes_the_task_before() {
    let (_dir, store) = temp_store().await;
    for id in ["d1", "d2"] {
        let fingerprint = crate::model::Fingerprint::of(id.as_bytes());
        let facts = crate::model::device::DeviceFacts::default();
        store
            .admit_device(
                id.into(),
                fingerprint,
                facts,
                Some(None),
                crate::store::devices::DeviceCaps {
                    max_devices: 10,
                    max_pending: 10,
                },
                0,
            )
            .await
            .unwrap();
    }
    let mut first = task(30);
    first.scope = Scope::DeviceList {
        entries: Vec::new(),
        device_ids: vec!["d1".into(), "d2".into()],
        unmatched: Vec::new(),
    };
    store.create_task(first).await.unwrap();
    // The second reaches d1 only; the third follows the second.
    store.create_task(after("second", 1)).await.unwrap();
    store.create_task(after("third", 2)).await.unwrap();
    // What a chain may not be.
    refused(store.create_task(after("self", 4)).await, "no task #4");
    refused(store.create_task(after("nothing", 9)).await, "no task #9");
    let mut backup = after("backup", 1);
    backup.task_type = TaskType::Maintenance;
    backup.scope = Scope::Server;
    refused(store.create_task(backup).await, "not of the same kind");
    let looped = store
        .update_task(1, Note::of(RevisionAction::Edited), |t| {
            t.settings.schedule = crate::model::schedule::Schedule::AfterTask { task_id: 3 };
            Ok(())
        })
        .await;
    match looped {
        Err(StoreError::Invalid(message)) => assert!(message.contains("loop"), "{message}"),
        other => panic!("a loop refused, got {other:?}"),
    }

    let targets = vec![
        ("d1".to_string(), "one".to_string()),
        ("d2".into(), "two".into()),
    ];
    let started = store
        .start_run(1, targets.clone(), None, "admin".into(), 1_000)
        .await
        .unwrap()
        .unwrap();
    let run = started.run.run_id;
    assert_eq!(started.chained.len(), 1);
    let second = &started.chained[0];
    assert_eq!(second.run.after_run, Some(run));
    assert_eq!(
        second.run.counters.total(),
        1,
        "the second task reaches d1 only"
    );
    assert!(
        second.device_ids.is_empty(),
        "nobody finished the first yet"
    );
    assert_eq!(second.chained.len(), 1, "the third follows the second");
    let third = second.chained[0].run.run_id;
    let ordered = |orders: Vec<RunOrder>| -> Vec<u64> {
        orders
            .iter()
            .map(|o| match o.run {
                RunRef::Ordered(id) => id,
                RunRef::Occurrence { .. } => 0,
            })
            .collect()
    };
    assert_eq!(ordered(store.orders_for("d1").await.unwrap()), vec![run]);

    // d2 finishes the first task: nothing follows on d2. d1 finishes it: the second starts.
    let done = store
        .record_progress("d2", run, finished(2_000), 2_000, None)
        .await
        .unwrap()
        .unwrap();
    assert!(done.chained.is_empty());
    let done = store
        .record_progress("d1", run, finished(3_000), 3_000, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.chained.len(), 1);
    assert_eq!(done.chained[0].device_ids, vec!["d1".to_string()]);
    let second = done.chained[0].run.run_id;
    assert_eq!(ordered(store.orders_for("d1").await.unwrap()), vec![second]);
    let done = store
        .record_progress("d1", second, finished(4_000), 4_000, None)
        .await
        .unwrap()
        .unwrap();
    assert!(done.run_finished);
    assert_eq!(done.chained[0].run.run_id, third);
    assert_eq!(ordered(store.orders_for("d1").await.unwrap()), vec![third]);

    // Stopping a run stops what is chained after it, all the way down.
    let again = store
        .start_run(1, targets, None, "admin".into(), 5_000)
        .await
        .unwrap()
        .unwrap();
    let stopped = store
        .stop_run(again.run.run_id, 6_000)
        .await
        .unwrap()
        .unwrap();
    assert!(stopped.run.stopped.is_some());
    for chained in [&again.chained[0], &again.chained[0].chained[0]] {
        let run = store.run(chained.run.run_id).await.unwrap().unwrap();
        assert!(run.stopped.is_some(), "{run:?}");
        assert!(run.finished.is_some(), "its pending device ended: {run:?}");
    }
    // The first run's stop does not start the second on the device.
    assert_eq!(ordered(store.orders_for("d1").await.unwrap()), vec![third]);
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap()
        .unwrap();
}

//! A file of schema 5 (a server's, and an agent's) opens as schema 6 with what it held.

use redb::Database;

use super::v5::*;
use crate::model::RunRef;
use crate::model::link::{Audience, Change, LogEntry};
use crate::model::schedule::{RandomDelay, Schedule};
use crate::model::scope::Scope;
use crate::model::task::{
    ChangedBy, Notify, Outcome, RestartPolicy, RunRecord, TaskAccount, TaskPayload, TaskRecord,
    TaskType,
};
use crate::store::agent::{LocalRun, LocalRunState};
use crate::store::schema::{CHANGE_LOG, ORDERS, RUNS, TASKS};
use crate::store::{META, SCHEMA_VERSION, SCHEMA_VERSION_KEY, Store, get, get_u64, put, put_u64};
use crate::wire::msg::{RunOrder, TaskChange};

fn task() -> TaskV5 {
    TaskV5 {
        id: 4,
        name: "Nightly scan".into(),
        task_type: TaskType::Device(TaskPayload::Inventory),
        application: "Canopy agent".into(),
        scope: Scope::Group {
            group_id: 2,
            include_subgroups: true,
            include_secondaries: true,
        },
        settings: SettingsV5 {
            restart: RestartPolicy::DoNotRestart,
            schedule: Schedule::parse("weekly:fri@19:00").unwrap(),
            schedule_options: OptionsV5 {
                run_missed: true,
                random_delay_minutes: 10,
                time_limit_minutes: Some(90),
                cancel_from: None,
            },
            account: TaskAccount::Default,
            notify: Notify::All,
            store_history_days: 30,
        },
        created: 1,
        modified: 2,
        revision: 3,
        changed_by: ChangedBy::Administrator("admin".into()),
        last_run: Some(7),
        inherited: None,
    }
}

fn order() -> OrderV5 {
    OrderV5 {
        run_id: 7,
        task_id: 4,
        task_name: "Nightly scan".into(),
        application: "Canopy agent".into(),
        payload: TaskPayload::Inventory,
    }
}

/// Writes a file of schema 5 with `fill`.
fn old_file(path: &std::path::Path, fill: impl FnOnce(&redb::WriteTransaction)) {
    file_of(5, path, fill)
}

pub(super) fn file_of(
    schema: u32,
    path: &std::path::Path,
    fill: impl FnOnce(&redb::WriteTransaction),
) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    put(
        &mut txn.open_table(META).unwrap(),
        SCHEMA_VERSION_KEY,
        &schema,
    )
    .unwrap();
    fill(&txn);
    txn.commit().unwrap();
}

#[test]
fn a_schema_5_server_file_opens_with_its_tasks_runs_orders_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.redb");
    old_file(&path, |txn| {
        put(&mut txn.open_table(TASKS).unwrap(), "t", &task()).unwrap();
        let run = RunV5 {
            run_id: 7,
            task_id: 4,
            task_name: "Nightly scan".into(),
            notify: Notify::All,
            revision: 3,
            started: 5,
            started_by: "admin".into(),
            stopped: None,
            finished: None,
            counters: super::v6::CountersV6::default(),
            version: 2,
            parent_run: Some(9),
        };
        put(&mut txn.open_table(RUNS).unwrap(), "r", &run).unwrap();
        put(&mut txn.open_table(ORDERS).unwrap(), "o", &order()).unwrap();
        let mut log = txn.open_table(CHANGE_LOG).unwrap();
        let audience = Audience::AllChildren;
        let entries = [
            ChangeV5::TaskUpsert {
                task_id: 4,
                revision: 3,
                task: Box::new(task()),
            },
            ChangeV5::RunStart {
                task_id: 4,
                run_id: 7,
                revision: 3,
            },
            ChangeV5::Noop,
        ];
        for (seq, change) in entries.into_iter().enumerate() {
            let entry = EntryV5 { change, audience };
            put_u64(&mut log, seq as u64 + 1, &entry).unwrap();
        }
    });
    let store = Store::open_server(&path).unwrap();
    let (task, run, order, log) = store
        .read_blocking(|txn| {
            let task: Option<TaskRecord> = get(&txn.open_table(TASKS)?, "t")?;
            let run: Option<RunRecord> = get(&txn.open_table(RUNS)?, "r")?;
            let order: Option<RunOrder> = get(&txn.open_table(ORDERS)?, "o")?;
            let log = txn.open_table(CHANGE_LOG)?;
            let entries: Vec<Option<LogEntry<crate::model::task::TaskRecord>>> = (1..=3)
                .map(|seq| get_u64(&log, seq))
                .collect::<Result<_, _>>()?;
            Ok((task, run, order, entries))
        })
        .unwrap();
    let options = task.unwrap().settings.schedule_options;
    assert_eq!(options.random_delay, RandomDelay::Within { seconds: 600 });
    assert_eq!(options.time_limit_secs, Some(5400));
    assert!(options.run_missed);
    let run = run.unwrap();
    assert_eq!((run.occurrence, run.device_clock), (None, false));
    assert_eq!((run.parent_run, run.version), (Some(9), 2));
    let order = order.unwrap();
    assert_eq!(order.run, RunRef::Ordered(7));
    assert_eq!(order.time_limit_secs, None);
    let changes: Vec<TaskChange> = log.into_iter().map(|e| e.unwrap().change).collect();
    assert!(matches!(
        &changes[0],
        Change::TaskUpsert { task, .. }
            if task.settings.schedule_options.random_delay == RandomDelay::Within { seconds: 600 }
    ));
    assert_eq!(
        changes[1],
        Change::RunStart {
            task_id: 4,
            run_id: 7,
            revision: 3,
            occurrence: None
        }
    );
    assert_eq!(changes[2], Change::Noop);
    let version: Option<u32> = store
        .read_blocking(|txn| get(&txn.open_table(META)?, SCHEMA_VERSION_KEY))
        .unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION));
    store.close().unwrap();
}

#[test]
fn a_schema_5_agent_file_keeps_its_runs_and_unacknowledged_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.redb");
    old_file(&path, |txn| {
        let runs = redb::TableDefinition::<&str, &[u8]>::new("runs");
        let run = LocalRunV5 {
            order: order(),
            state: LocalRunState::Finished,
            started: Some(10),
            result: Some(ResultV5 {
                run_id: 7,
                started: 10,
                finished: 20,
                outcome: Outcome::failed("exit code 3"),
            }),
            acknowledged: false,
        };
        put(
            &mut txn.open_table(runs).unwrap(),
            "dev-1/00000000000000000007",
            &run,
        )
        .unwrap();
    });
    let store = Store::open_agent(&path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runs: Vec<LocalRun> = rt.block_on(store.local_runs("dev-1")).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].order.run, RunRef::Ordered(7));
    let result = runs[0].result.clone().unwrap();
    assert_eq!(result.run, RunRef::Ordered(7));
    assert_eq!(result.outcome.description, "exit code 3");
    assert!(!runs[0].acknowledged);
    store.close().unwrap();
}

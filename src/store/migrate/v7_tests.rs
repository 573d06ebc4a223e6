//! Files of schema 7 open as schema 8: the orders they hold, a server's and an agent's, and
//! the tasks an agent runs on its own schedule, run under the default account.

use super::v5_tests::file_of;
use super::v7::{HeldScheduleV7, LocalRunV7, RunOrderV7, ScheduledTaskDefV7};
use crate::model::RunRef;
use crate::model::schedule::Schedule;
use crate::model::task::{TaskAccount, TaskPayload};
use crate::store::agent::LocalRunState;
use crate::store::schema::ORDERS;
use crate::store::{Store, put};

fn order() -> RunOrderV7 {
    RunOrderV7 {
        run: RunRef::Ordered(7),
        task_id: 4,
        task_name: "Nightly scan".into(),
        application: "Canopy agent".into(),
        payload: TaskPayload::Inventory,
        time_limit_secs: Some(60),
    }
}

/// The store's async readers, from a test without a runtime (opening a store blocks).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

#[test]
fn a_schema_7_server_file_keeps_its_orders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.redb");
    file_of(7, &path, |txn| {
        let key = format!("dev-1/{:020}", 7);
        put(&mut txn.open_table(ORDERS).unwrap(), &key, &order()).unwrap();
    });
    let store = Store::open_server(&path).unwrap();
    let orders = block_on(store.orders_for("dev-1")).unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].task_name, "Nightly scan");
    assert_eq!(orders[0].time_limit_secs, Some(60));
    assert_eq!(orders[0].account, TaskAccount::Default);
}

#[test]
fn a_schema_7_agent_file_keeps_its_runs_and_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.redb");
    file_of(7, &path, |txn| {
        let runs: crate::store::StrTable = redb::TableDefinition::new("runs");
        let run = LocalRunV7 {
            order: order(),
            state: LocalRunState::Received,
            started: None,
            result: None,
            acknowledged: false,
        };
        let key = format!("dev-1/{:020}", 7);
        put(&mut txn.open_table(runs).unwrap(), &key, &run).unwrap();
        let scheduled: crate::store::StrTable = redb::TableDefinition::new("scheduled_tasks");
        let held = HeldScheduleV7 {
            def: ScheduledTaskDefV7 {
                task_id: 4,
                name: "Nightly scan".into(),
                revision: 3,
                since: 5,
                application: "Canopy agent".into(),
                payload: TaskPayload::Inventory,
                schedule: Schedule::Manually,
                run_missed: true,
                delay_window_secs: 60,
                time_limit_secs: None,
                cancel_from: None,
            },
            handled: None,
        };
        let key = format!("dev-1/{:020}", 4);
        put(&mut txn.open_table(scheduled).unwrap(), &key, &held).unwrap();
    });
    let store = Store::open_agent(&path).unwrap();
    let runs = block_on(store.local_runs("dev-1")).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].order.task_name, "Nightly scan");
    assert_eq!(runs[0].order.account, TaskAccount::Default);
    let held = block_on(store.scheduled_tasks("dev-1")).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].def.revision, 3);
    assert!(held[0].def.run_missed);
    assert_eq!(held[0].def.account, TaskAccount::Default);
}

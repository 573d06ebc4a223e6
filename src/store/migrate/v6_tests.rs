//! A server file of schema 6 opens as schema 7: its runs and statistics rows keep their
//! counts, with no progress, pause or followed run yet.

use super::v5_tests::file_of;
use super::v6::{CountersV6, RunV6, StatsRowV6};
use crate::model::link::StatsRow;
use crate::model::task::{DeviceState, Notify, RunRecord};
use crate::store::schema::{RUN_ROWS, RUNS};
use crate::store::{Store, get, put};

#[test]
fn a_schema_6_server_file_keeps_its_runs_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.redb");
    let counters = CountersV6 {
        by_state: [1, 0, 2, 5, 0, 1, 0],
        need_restart: 3,
    };
    file_of(6, &path, |txn| {
        let run = RunV6 {
            run_id: 7,
            task_id: 4,
            task_name: "Nightly scan".into(),
            notify: Notify::All,
            revision: 3,
            started: 5,
            started_by: "admin".into(),
            stopped: None,
            finished: None,
            counters,
            version: 2,
            parent_run: Some(9),
            occurrence: None,
            device_clock: false,
        };
        put(&mut txn.open_table(RUNS).unwrap(), "r", &run).unwrap();
        let row = StatsRowV6 {
            path: vec!["b1".into()],
            depth: 1,
            task_id: 4,
            run_id: 3,
            counters,
            version: 8,
            epoch: 11,
        };
        put(&mut txn.open_table(RUN_ROWS).unwrap(), "x", &row).unwrap();
    });
    let store = Store::open_server(&path).unwrap();
    let (run, row) = store
        .read_blocking(|txn| {
            let run: Option<RunRecord> = get(&txn.open_table(RUNS)?, "r")?;
            let row: Option<StatsRow> = get(&txn.open_table(RUN_ROWS)?, "x")?;
            Ok((run, row))
        })
        .unwrap();
    let run = run.unwrap();
    assert_eq!(run.counters.count(DeviceState::Succeeded), 5);
    assert_eq!((run.counters.need_restart, run.counters.progress), (3, 0));
    assert_eq!(
        (run.paused, run.after_run, run.parent_run),
        (None, None, Some(9))
    );
    let row = row.unwrap();
    assert_eq!(row.counters.count(DeviceState::Running), 2);
    assert_eq!((row.version, row.epoch, row.counters.progress), (8, 11, 0));
}

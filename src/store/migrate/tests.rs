//! A file of schema 2, 3 or 4 opens as the current schema with what it held; a backup copy opens in a new
//! epoch of its log.

use redb::Database;
use serde::Serialize;

use super::super::{META, SCHEMA_VERSION, SCHEMA_VERSION_KEY, Store, get, put, put_u64};
use crate::model::group::{Group, MANAGED_DEVICES};

use crate::model::{Fingerprint, UnixMillis};
use crate::store::schema::{GROUPS, RUN_ROWS, SECONDARIES};

#[derive(Serialize)]
struct SecondaryV2 {
    name: String,
    group: String,
    cert_der: Vec<u8>,
    fingerprint: Fingerprint,
    registered_at: UnixMillis,
    last_connected: Option<UnixMillis>,
    version: String,
    address: Option<String>,
    subtree: Vec<super::v8::ServerRowV8>,
    devices: u64,
    virtual_server: bool,
    disabled: bool,
    enrollment_token: String,
}

#[derive(Serialize)]
struct StatsRowV2 {
    path: Vec<String>,
    depth: u32,
    task_id: u64,
    run_id: u64,
    counters: super::v6::CountersV6,
    version: u64,
}

fn secondary(name: &str, group: &str) -> SecondaryV2 {
    SecondaryV2 {
        name: name.into(),
        group: group.into(),
        cert_der: Vec::new(),
        fingerprint: Fingerprint::of(name.as_bytes()),
        registered_at: 1,
        last_connected: None,
        version: "0.1.0".into(),
        address: None,
        subtree: Vec::new(),
        devices: 4,
        virtual_server: false,
        disabled: false,
        enrollment_token: String::new(),
    }
}

fn open(path: &std::path::Path) -> Store {
    Store::open_server(path).unwrap()
}

#[test]
fn a_schema_2_file_opens_with_its_secondaries_placed_by_id_and_rows_in_epoch_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            put(
                &mut txn.open_table(META).unwrap(),
                SCHEMA_VERSION_KEY,
                &2u32,
            )
            .unwrap();
            let mut groups = txn.open_table(GROUPS).unwrap();
            for g in Group::roots() {
                put_u64(&mut groups, g.id, &g).unwrap();
            }
            let paris = Group {
                id: 3,
                parent: Some(MANAGED_DEVICES),
                name: "Paris".into(),
            };
            put_u64(&mut groups, 3, &paris).unwrap();
            let mut secondaries = txn.open_table(SECONDARIES).unwrap();
            for s in [
                secondary("b1", "Managed devices/Paris"),
                secondary("b2", "Managed devices/Gone"),
            ] {
                put(&mut secondaries, &s.name.clone(), &s).unwrap();
            }
            let row = StatsRowV2 {
                path: vec!["b1".into()],
                depth: 1,
                task_id: 1,
                run_id: 1,
                counters: super::v6::CountersV6::default(),
                version: 9,
            };
            put(&mut txn.open_table(RUN_ROWS).unwrap(), "x", &row).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = open(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secondaries = rt.block_on(store.secondaries()).unwrap();
    let placed: Vec<(&str, u64, u64)> = secondaries
        .iter()
        .map(|s| (s.name.as_str(), s.group_id, s.devices))
        .collect();
    assert_eq!(placed, [("b1", 3, 4), ("b2", 0, 4)]);
    let row: Option<crate::model::link::StatsRow> = store
        .read_blocking(|txn| get(&txn.open_table(RUN_ROWS)?, "x"))
        .unwrap();
    let row = row.unwrap();
    assert_eq!((row.version, row.epoch), (9, 0));
    let version: Option<u32> = store
        .read_blocking(|txn| get(&txn.open_table(META)?, SCHEMA_VERSION_KEY))
        .unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION));
    let epoch = rt.block_on(store.log_state()).unwrap().epoch;
    assert_ne!(epoch, 0, "a log from before epochs gets one");
    store.close().unwrap();
}

#[test]
fn a_backup_copy_opens_in_a_new_epoch_and_the_original_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.redb");
    let copy = dir.path().join("backup.redb");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = open(&path);
    let epoch = rt.block_on(store.log_state()).unwrap().epoch;
    rt.block_on(store.backup(&copy)).unwrap();
    store.close().unwrap();
    let store = open(&path);
    assert_eq!(rt.block_on(store.log_state()).unwrap().epoch, epoch);
    store.close().unwrap();
    let restored = open(&copy);
    let new = rt.block_on(restored.log_state()).unwrap().epoch;
    assert_ne!(new, epoch, "a restored database starts a new epoch");
    restored.close().unwrap();
    let restored = open(&copy);
    assert_eq!(
        rt.block_on(restored.log_state()).unwrap().epoch,
        new,
        "once"
    );
    restored.close().unwrap();
}

#[test]
fn a_schema_3_file_opens_with_no_revocation_and_its_log_as_it_was() {
    use crate::model::link::{Audience, Change, LogEntry};
    use crate::model::task::TaskRecord;
    use crate::store::schema::CHANGE_LOG;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let entry: LogEntry<TaskRecord> = LogEntry {
        change: Change::RunStop {
            task_id: 1,
            run_id: 2,
        },
        audience: Audience::AllChildren,
    };
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            put(&mut meta, SCHEMA_VERSION_KEY, &3u32).unwrap();
            put_u64(&mut txn.open_table(CHANGE_LOG).unwrap(), 1, &entry).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = open(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(rt.block_on(store.revocations()).unwrap().is_empty());
    let log = rt.block_on(store.log_entries(1..=1, 10)).unwrap();
    assert_eq!(log, vec![(1, entry)]);
    let version: Option<u32> = store
        .read_blocking(|txn| get(&txn.open_table(META)?, SCHEMA_VERSION_KEY))
        .unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION));
    store.close().unwrap();
}

#[test]
fn a_schema_4_file_counts_the_devices_that_already_wait_for_approval() {
    use crate::model::device::{DeviceFacts, DeviceRecord, Enrollment};
    use crate::store::schema::DEVICES;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let device = |id: &str, enrollment| DeviceRecord {
        id: id.into(),
        fingerprint: Fingerprint([id.len() as u8; 32]),
        name: id.into(),
        enrollment,
        group_id: 1,
        tags: vec![],
        facts: DeviceFacts::default(),
        enrolled: 0,
        last_seen: None,
    };
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            put(
                &mut txn.open_table(META).unwrap(),
                SCHEMA_VERSION_KEY,
                &4u32,
            )
            .unwrap();
            let mut devices = txn.open_table(DEVICES).unwrap();
            for (id, enrollment) in [
                ("a", Enrollment::Pending),
                ("bb", Enrollment::Approved),
                ("ccc", Enrollment::Pending),
                ("dddd", Enrollment::Rejected),
            ] {
                put(&mut devices, id, &device(id, enrollment)).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let store = open(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(store.pending_device_count()).unwrap(), 2);
    assert_eq!(rt.block_on(store.device_count()).unwrap(), 4);
    store.close().unwrap();
}

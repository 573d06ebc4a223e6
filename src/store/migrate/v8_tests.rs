//! Files of schema 8 open as schema 9: a secondary's record, and the rows of the subtree it
//! reported, are kept with no instance id until it connects again; events stored before
//! happened on the server itself.

use super::v5_tests::file_of;
use super::v8::{EventV8, SecondaryV8, ServerRowV8};
use crate::model::{EventKind, Fingerprint, ServerStatus, Severity};
use crate::store::schema::{EVENTS, SECONDARIES};
use crate::store::{Store, put, put_u64};

#[test]
fn a_schema_8_file_keeps_its_secondaries_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.redb");
    file_of(8, &path, |txn| {
        let below = ServerRowV8 {
            path: "branch-1a".into(),
            depth: 1,
            name: "branch-1a".into(),
            group: "Managed devices".into(),
            status: ServerStatus::Active,
            version: "0.1.0".into(),
            address: Some("127.0.0.1:40000".into()),
            last_connected: Some(5),
            devices: 3,
            virtual_server: false,
        };
        let record = SecondaryV8 {
            name: "branch-1".into(),
            group_id: 1,
            cert_der: vec![1, 2, 3],
            fingerprint: Fingerprint([7; 32]),
            registered_at: 1,
            last_connected: Some(4),
            version: "0.1.0".into(),
            address: Some("127.0.0.1:40001".into()),
            subtree: vec![below],
            devices: 12,
            virtual_server: false,
            disabled: false,
            enrollment_token: String::new(),
        };
        put(
            &mut txn.open_table(SECONDARIES).unwrap(),
            "branch-1",
            &record,
        )
        .unwrap();
        let event = EventV8 {
            seq: 4,
            time: 9,
            severity: Severity::Warning,
            kind: EventKind::SecondaryConnected,
            message: "connection to the secondary branch-1 established".into(),
        };
        put_u64(&mut txn.open_table(EVENTS).unwrap(), 4, &event).unwrap();
    });
    let store = Store::open_server(&path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let secondaries = runtime.block_on(store.secondaries()).unwrap();
    assert_eq!(secondaries.len(), 1);
    let s = &secondaries[0];
    assert_eq!(
        (s.name.as_str(), s.devices, s.instance_id.as_str()),
        ("branch-1", 12, "")
    );
    assert_eq!(s.fingerprint, Fingerprint([7; 32]));
    assert_eq!(s.subtree.len(), 1);
    assert_eq!(s.subtree[0].path, "branch-1a");
    assert_eq!(s.subtree[0].devices, 3);
    assert_eq!(s.subtree[0].instance_id, "");
    let events = runtime.block_on(store.events_after(0, 10)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, events[0].time), (4, 9));
    assert_eq!(events[0].kind, EventKind::SecondaryConnected);
    assert!(events[0].origin.is_empty(), "it happened here");
}

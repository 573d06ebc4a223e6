//! Files of schema 9 open as schema 10: secondaries registered before connect out, as do
//! the servers of the subtrees they reported.

use super::v5_tests::file_of;
use super::v9::{SecondaryV9, ServerRowV9};
use crate::model::{Fingerprint, ServerStatus};
use crate::store::schema::SECONDARIES;
use crate::store::{Store, put};

#[test]
fn a_schema_9_file_keeps_its_secondaries_active() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.redb");
    file_of(9, &path, |txn| {
        let below = ServerRowV9 {
            path: "branch-1a".into(),
            depth: 1,
            name: "branch-1a".into(),
            group: "Managed devices".into(),
            status: ServerStatus::Active,
            version: "0.1.0".into(),
            instance_id: "00000000000000aa".into(),
            address: Some("127.0.0.1:40000".into()),
            last_connected: Some(5),
            devices: 3,
            virtual_server: false,
        };
        let record = SecondaryV9 {
            name: "branch-1".into(),
            group_id: 1,
            cert_der: vec![1, 2, 3],
            fingerprint: Fingerprint([7; 32]),
            registered_at: 1,
            last_connected: Some(4),
            version: "0.1.0".into(),
            instance_id: "00000000000000bb".into(),
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
    });
    let store = Store::open_server(&path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let secondaries = runtime.block_on(store.secondaries()).unwrap();
    assert_eq!(secondaries.len(), 1);
    let s = &secondaries[0];
    assert_eq!(
        (s.name.as_str(), s.devices, s.instance_id.as_str()),
        ("branch-1", 12, "00000000000000bb")
    );
    assert_eq!(s.passive, None, "registered before: it connects out");
    assert_eq!(s.subtree.len(), 1);
    assert_eq!(s.subtree[0].instance_id, "00000000000000aa");
    assert!(!s.subtree[0].passive);
}

//! Unit tests of admission: what a connecting device costs the registry.

use super::*;
use crate::model::device::DeviceFacts;
use crate::store::tasks::tests::{task, temp_store};

const CAPS: DeviceCaps = DeviceCaps {
    max_devices: 100,
    max_pending: 10,
};

fn facts(name: &str) -> DeviceFacts {
    DeviceFacts {
        display_name: name.into(),
        ..DeviceFacts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_device_coming_back_unchanged_is_admitted_without_a_commit() {
    let (_dir, store) = temp_store().await;
    let key = Fingerprint::of(b"d1");
    let pc = facts("pc-1");
    let token = Some(Some("Managed devices".to_string()));
    assert!(
        store
            .readmit_device("d1", key, &pc, 1_000)
            .await
            .unwrap()
            .is_none(),
        "an unknown device is registered by a write"
    );
    let first = store
        .admit_device("d1".into(), key, pc.clone(), token.clone(), CAPS, 1_000)
        .await
        .unwrap();
    assert!(matches!(
        first.admission,
        Admission::Approved { new: true, .. }
    ));
    assert_eq!(first.group_path, "Managed devices");
    store.create_task(task(2)).await.unwrap();
    let target = vec![("d1".to_string(), "pc-1".to_string())];
    store
        .start_run(1, target, None, "admin".into(), 1_500)
        .await
        .unwrap()
        .unwrap();

    let commits = store.stats().commits;
    let again = store
        .readmit_device("d1", key, &pc, 2_000)
        .await
        .unwrap()
        .expect("admitted from a read");
    let Admission::Approved { record, new } = &again.admission else {
        panic!("{:?}", again.admission)
    };
    assert!(!new);
    assert_eq!(record.last_seen, Some(2_000));
    assert_eq!(again.group_path, "Managed devices");
    assert_eq!(again.orders.len(), 1, "the order waiting for it");
    assert_eq!(again.orders, store.orders_for("d1").await.unwrap());
    assert_eq!(store.stats().commits, commits, "nothing written");

    // What needs the write: new facts, another key, a stale "last seen".
    let renamed = facts("pc-1b");
    assert!(
        store
            .readmit_device("d1", key, &renamed, 2_000)
            .await
            .unwrap()
            .is_none()
    );
    let other_key = Fingerprint::of(b"another key");
    assert!(
        store
            .readmit_device("d1", other_key, &pc, 2_000)
            .await
            .unwrap()
            .is_none()
    );
    let later = 1_000 + LAST_SEEN_PRECISION_MS;
    assert!(
        store
            .readmit_device("d1", key, &pc, later)
            .await
            .unwrap()
            .is_none()
    );
    let written = store
        .admit_device("d1".into(), key, pc.clone(), token, CAPS, later)
        .await
        .unwrap();
    assert!(matches!(
        written.admission,
        Admission::Approved { new: false, .. }
    ));
    assert!(
        store
            .readmit_device("d1", key, &pc, later + 1)
            .await
            .unwrap()
            .is_some()
    );

    // A rejected device is told so from the read as well.
    store
        .update_device("d1", |r| {
            r.enrollment = Enrollment::Rejected;
            Ok(())
        })
        .await
        .unwrap();
    let rejected = store
        .readmit_device("d1", key, &pc, later + 2)
        .await
        .unwrap();
    assert!(matches!(
        rejected.map(|a| a.admission),
        Some(Admission::Rejected(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_beyond_the_cap_is_refused_and_known_ones_still_come_in() {
    let (_dir, store) = temp_store().await;
    let caps = DeviceCaps {
        max_devices: 2,
        max_pending: 10,
    };
    let token = Some(Some("Managed devices".to_string()));
    for id in ["d1", "d2"] {
        let key = Fingerprint::of(id.as_bytes());
        let admitted = store
            .admit_device(id.into(), key, facts(id), token.clone(), caps, 1_000)
            .await
            .unwrap();
        assert!(matches!(
            admitted.admission,
            Admission::Approved { new: true, .. }
        ));
    }
    for token in [token.clone(), None] {
        let refused = store
            .admit_device(
                "d3".into(),
                Fingerprint::of(b"d3"),
                facts("d3"),
                token,
                caps,
                1_000,
            )
            .await
            .unwrap();
        assert!(
            matches!(
                refused.admission,
                Admission::TooManyDevices { max_devices: 2 }
            ),
            "{:?}",
            refused.admission
        );
    }
    assert_eq!(
        store.device_count().await.unwrap(),
        2,
        "d3 is not registered"
    );
    // A device already registered comes back with new facts: that is a write, not a new one.
    let back = store
        .admit_device(
            "d1".into(),
            Fingerprint::of(b"d1"),
            facts("renamed"),
            token,
            caps,
            2_000,
        )
        .await
        .unwrap();
    assert!(matches!(
        back.admission,
        Admission::Approved { new: false, .. }
    ));
}

/// `device list` pages through the name order: each page is a range read of its own
/// devices (it used to read and sort the whole registry for every page, so listing 100,000
/// devices took 53 s). Renames and deletes keep the order in step, and a file without it
/// gets it when opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_page_in_name_order_and_renames_and_deletes_keep_the_order() {
    let (dir, store) = temp_store().await;
    let token = Some(Some("Managed devices".to_string()));
    for (id, name) in [
        ("d1", "pc-c"),
        ("d2", "pc-a"),
        ("d3", "pc-b"),
        ("d4", "pc-a"),
    ] {
        let key = Fingerprint::of(id.as_bytes());
        store
            .admit_device(id.into(), key, facts(name), token.clone(), CAPS, 1_000)
            .await
            .unwrap();
    }
    let names = |page: &[DeviceRecord]| -> Vec<String> {
        page.iter()
            .map(|r| format!("{}/{}", r.name, r.id))
            .collect()
    };
    let (page, next) = store.device_page(None, 2, |_| true).await.unwrap();
    assert_eq!(names(&page), ["pc-a/d2", "pc-a/d4"]);
    let next = next.expect("more after the page");
    assert_eq!(next, ("pc-a".to_string(), "d4".to_string()));
    let (page, next) = store.device_page(Some(next), 2, |_| true).await.unwrap();
    assert_eq!(names(&page), ["pc-b/d3", "pc-c/d1"]);
    assert_eq!(next, None);
    // A filter skips devices; the page goes on from the last row read.
    let (page, _) = store.device_page(None, 10, |r| r.id != "d2").await.unwrap();
    assert_eq!(names(&page), ["pc-a/d4", "pc-b/d3", "pc-c/d1"]);

    store
        .update_device("d1", |r| {
            r.name = "aaa".into();
            Ok(())
        })
        .await
        .unwrap();
    store.delete_device("d3").await.unwrap();
    let (page, _) = store.device_page(None, 10, |_| true).await.unwrap();
    assert_eq!(names(&page), ["aaa/d1", "pc-a/d2", "pc-a/d4"]);

    // A file whose order is missing (written before it) gets it back when opened.
    let path = dir.path().join("server.redb");
    store
        .write(|txn| {
            txn.delete_table(crate::store::schema::DEVICE_ORDER)?;
            Ok(())
        })
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap()
        .unwrap();
    let store = tokio::task::spawn_blocking(move || Store::open_server(&path))
        .await
        .unwrap()
        .unwrap();
    let (page, _) = store.device_page(None, 10, |_| true).await.unwrap();
    assert_eq!(names(&page), ["aaa/d1", "pc-a/d2", "pc-a/d4"]);
}

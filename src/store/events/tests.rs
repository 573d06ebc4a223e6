//! The event log: retention by count and by age, events from a child stored once each with
//! where they came from, and filtered pages.

use super::*;
use crate::model::{EventKind, Severity};
use crate::store::tasks::tests::temp_store;

const DAY: i64 = 86_400_000;
const NOW: i64 = 100 * DAY;

fn event(time: i64, message: &str) -> Event {
    Event {
        seq: 0,
        time,
        severity: Severity::Info,
        kind: EventKind::TaskChanged,
        message: message.into(),
        origin: Vec::new(),
    }
}

fn keep(keep: u64, keep_days: u32) -> EventRetention {
    EventRetention { keep, keep_days }
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_and_recent_events_are_kept() {
    let (_dir, store) = temp_store().await;
    for i in 0..30 {
        store
            .append_event(event(NOW, &format!("event {i}")), None, keep(10, 30), NOW)
            .await
            .unwrap();
    }
    let kept = store.events_after(0, 1000).await.unwrap();
    assert_eq!(seqs(&kept), (21..=30).collect::<Vec<u64>>());
    let (newest, next) = store
        .event_page(EventFilter::default(), Default::default(), None, 3)
        .await
        .unwrap();
    assert_eq!(seqs(&newest), [28, 29, 30]);
    assert_eq!(next, None);
    // Ten days later with a week's retention, the next event is all that is left.
    let later = NOW + 10 * DAY;
    store
        .append_event(event(later, "later"), None, keep(10, 7), later)
        .await
        .unwrap();
    assert_eq!(seqs(&store.events_after(0, 1000).await.unwrap()), [31]);
    assert_eq!(store.last_event_seq().await.unwrap(), 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_events_are_stored_once_each_with_its_name_before_their_origin() {
    let (_dir, store) = temp_store().await;
    let from = |seqs: std::ops::RangeInclusive<u64>| -> Vec<Event> {
        seqs.map(|seq| Event {
            seq,
            origin: if seq == 2 {
                vec!["branch-1a".into()]
            } else {
                Vec::new()
            },
            ..event(NOW, &format!("b1 #{seq}"))
        })
        .collect()
    };
    let retention = keep(1000, 30);
    assert_eq!(store.events_held_from("branch-1", 7).await.unwrap(), 0);
    let held = store
        .store_child_events("branch-1", 7, from(1..=3), retention, NOW)
        .await
        .unwrap();
    assert_eq!(held, 3);
    // Sent again with more (a lost acknowledgement): only the new ones are stored.
    let held = store
        .store_child_events("branch-1", 7, from(2..=5), retention, NOW)
        .await
        .unwrap();
    assert_eq!(held, 5);
    let stored = store.events_after(0, 100).await.unwrap();
    let messages: Vec<&str> = stored.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["b1 #1", "b1 #2", "b1 #3", "b1 #4", "b1 #5"]);
    assert_eq!(stored[0].origin, ["branch-1"]);
    assert_eq!(stored[1].origin, ["branch-1", "branch-1a"]);
    assert_eq!(store.events_held_from("branch-1", 7).await.unwrap(), 5);
    // Installed again, the child numbers its events anew: they are new here.
    assert_eq!(store.events_held_from("branch-1", 8).await.unwrap(), 0);
    let held = store
        .store_child_events("branch-1", 8, from(1..=1), retention, NOW)
        .await
        .unwrap();
    assert_eq!(held, 1);
    assert_eq!(store.events_after(0, 100).await.unwrap().len(), 6);
    // Events older than the retention are counted as held, not stored.
    let old = vec![Event {
        seq: 2,
        ..event(NOW - 40 * DAY, "too old")
    }];
    let held = store
        .store_child_events("branch-1", 8, old, retention, NOW)
        .await
        .unwrap();
    assert_eq!(held, 2);
    assert_eq!(store.events_after(0, 100).await.unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_pages_go_on_from_the_last_row_read() {
    let (_dir, store) = temp_store().await;
    let retention = keep(1000, 30);
    for i in 1..=10u64 {
        let mut e = event(NOW, &format!("e{i}"));
        if i % 3 == 0 {
            e.origin = vec!["branch-1".into()];
        }
        store.append_event(e, None, retention, NOW).await.unwrap();
    }
    let branch = EventFilter {
        server: Some(vec!["branch-1".into()]),
        ..EventFilter::default()
    };
    let (page, next) = store
        .event_page(branch.clone(), Default::default(), Some(0), 2)
        .await
        .unwrap();
    assert_eq!(seqs(&page), [3, 6]);
    let next = next.expect("more after the page");
    let (page, next) = store
        .event_page(branch.clone(), Default::default(), Some(next), 2)
        .await
        .unwrap();
    assert_eq!(seqs(&page), [9]);
    assert_eq!(next, None);
    let (newest, _) = store
        .event_page(branch, Default::default(), None, 2)
        .await
        .unwrap();
    assert_eq!(seqs(&newest), [6, 9]);
    let here = EventFilter {
        server: Some(Vec::new()),
        ..EventFilter::default()
    };
    let (page, _) = store
        .event_page(here, Default::default(), Some(0), 100)
        .await
        .unwrap();
    assert_eq!(page.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_what_is_hidden_are_left_out_and_their_marks_go_with_them() {
    use crate::store::rights::Guarded;
    let (_dir, store) = temp_store().await;
    let abouts = [
        Some(Guarded::Task(1)),
        Some(Guarded::Group(5)),
        None,
        Some(Guarded::Task(2)),
    ];
    for (i, about) in abouts.into_iter().enumerate() {
        store
            .append_event(event(NOW, &format!("event {i}")), about, keep(100, 30), NOW)
            .await
            .unwrap();
    }
    let hidden = Unreadable {
        objects: [Guarded::Task(1), Guarded::Group(5)].into(),
        children: HashSet::new(),
    };
    let (page, _) = store
        .event_page(EventFilter::default(), hidden.clone(), Some(0), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&page), [3, 4]);
    let (newest, _) = store
        .event_page(EventFilter::default(), hidden, None, 10)
        .await
        .unwrap();
    assert_eq!(seqs(&newest), [3, 4]);
    let (all, _) = store
        .event_page(EventFilter::default(), Unreadable::default(), Some(0), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4]);
    // Retention drops an event and what it was about in one go.
    for i in 0..100 {
        store
            .append_event(event(NOW, &format!("more {i}")), None, keep(100, 30), NOW)
            .await
            .unwrap();
    }
    let marks = store
        .read(|txn| Ok(txn.open_table(EVENT_ABOUT)?.len()?))
        .await
        .unwrap();
    assert_eq!(marks, 0);
}

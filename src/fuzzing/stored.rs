//! Stored values: what the store decodes from redb, with `codec::decode` as the store does
//! (a file may be corrupt, restored from an older backup, or written by an older binary).

use crate::model::device::DeviceRecord;
use crate::model::group::{Group, GroupTree};
use crate::model::link::{LogEntry, StatsRow};
use crate::model::task::{DeviceRunRecord, RunRecord, TaskRecord};
use crate::model::{Account, Event, SecondaryRecord};
use crate::store::agent::{Identity, LocalRun, LocalTask};
use crate::wire::codec::MAX_VALUE;
use crate::wire::msg::RunOrder;

use super::{Verdict, round_trip, round_trip_bytes, split_selector};

/// The stored types, in selector order (selector % their number).
pub(super) const TYPES: &[&str] = &[
    "TaskRecord",
    "RunRecord",
    "DeviceRunRecord",
    "DeviceRecord",
    "Group",
    "Vec<Group>",
    "SecondaryRecord",
    "Account",
    "Event",
    "LogEntry",
    "StatsRow",
    "RunOrder",
    "Identity",
    "LocalRun",
    "LocalTask",
    "Revocation",
    "TaskRevision",
];

/// One stored value: the selector picks its type (see [`TYPES`]), the rest is its bytes.
/// Every value round-trips. A task is checked as the server checks one (`TaskRecord::check`,
/// which must not panic whatever it holds); the groups of a file (`Vec<Group>`) make a
/// `GroupTree`, whose answers must agree with each other whatever parents the rows name.
pub fn store_values(data: &[u8]) -> Verdict {
    let (selector, bytes) = split_selector(data);
    let decoded = match usize::from(selector) % TYPES.len() {
        0 => round_trip::<TaskRecord>(bytes, MAX_VALUE).map(|task| {
            let _ = task.check();
        }),
        1 => round_trip::<RunRecord>(bytes, MAX_VALUE).map(drop),
        2 => round_trip::<DeviceRunRecord>(bytes, MAX_VALUE).map(drop),
        3 => round_trip::<DeviceRecord>(bytes, MAX_VALUE).map(drop),
        4 => round_trip::<Group>(bytes, MAX_VALUE).map(drop),
        5 => round_trip::<Vec<Group>>(bytes, MAX_VALUE).map(check_tree),
        6 => round_trip::<SecondaryRecord>(bytes, MAX_VALUE).map(drop),
        7 => round_trip::<Account>(bytes, MAX_VALUE).map(drop),
        8 => round_trip::<Event>(bytes, MAX_VALUE).map(drop),
        9 => round_trip::<LogEntry<TaskRecord>>(bytes, MAX_VALUE).map(drop),
        10 => round_trip::<StatsRow>(bytes, MAX_VALUE).map(drop),
        11 => round_trip::<RunOrder>(bytes, MAX_VALUE).map(drop),
        12 => round_trip_bytes::<Identity>(bytes, MAX_VALUE).map(drop),
        13 => round_trip_bytes::<LocalRun>(bytes, MAX_VALUE).map(drop),
        14 => round_trip::<LocalTask>(bytes, MAX_VALUE).map(drop),
        15 => round_trip::<crate::model::server::Revocation>(bytes, MAX_VALUE).map(drop),
        _ => round_trip::<crate::model::revision::TaskRevision>(bytes, MAX_VALUE).map(drop),
    };
    Verdict::of(decoded.is_some())
}

/// A tree made of whatever groups a file holds: a group has a path exactly when it has a
/// depth; the groups below one with a path are strictly deeper and descend from it; every
/// group reached from a root has a path, once.
fn check_tree(groups: Vec<Group>) {
    let tree = GroupTree::new(groups.clone());
    for group in &groups {
        let id = group.id;
        let (path, depth) = (tree.path_of(id), tree.depth(id));
        assert_eq!(
            path.is_some(),
            depth.is_some(),
            "group {id}: {path:?} {depth:?}"
        );
        let below = tree.subtree(id);
        assert_eq!(
            below.first(),
            Some(&id),
            "the subtree of {id} starts elsewhere"
        );
        let Some(depth) = depth else {
            continue;
        };
        for other in below.iter().skip(1) {
            assert!(tree.is_descendant(*other, id), "{other} is below {id}");
            assert!(tree.depth(*other).is_some_and(|d| d > depth));
        }
    }
    let ordered = tree.in_tree_order();
    let mut seen = std::collections::HashSet::new();
    for group in ordered {
        assert!(
            seen.insert(group.id),
            "group {} twice in tree order",
            group.id
        );
        assert!(
            tree.path_of(group.id).is_some(),
            "group {} has no path",
            group.id
        );
    }
}

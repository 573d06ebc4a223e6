//! Administration groups: the `groups` table, and the checks that keep it a tree.
//!
//! Every change checks against the tree as it is inside its own write transaction, so two
//! administrators racing cannot break the rules. Secondaries name their group by id, so a
//! rename or a move leaves them placed where they were.

use redb::{ReadableTable, WriteTransaction};

use super::schema::*;
use super::{
    META, Store, StoreError, entries_u64, get, get_u64, last_key_u64, put, put_u64, remove_u64,
};
use crate::model::SecondaryRecord;
use crate::model::group::{
    FIRST_GROUP_ID, Group, GroupError, GroupTree, Relocated, check_empty, normalize_path,
};
use crate::wire::msg::GroupView;

/// In META: the next group id. Ids are never reused, so a stale reference to a deleted group
/// (a device record, a queued task) can never point at a new one.
const NEXT_GROUP_ID: &str = "next_group_id";

/// Creates the table and the two root groups, on every start (it is a no-op once they exist).
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut table = txn.open_table(GROUPS)?;
    for root in Group::roots() {
        if get_u64::<Group>(&table, root.id)?.is_none() {
            put_u64(&mut table, root.id, &root)?;
        }
    }
    Ok(())
}

fn rejected(e: GroupError) -> StoreError {
    StoreError::Rejected(e.to_string())
}

fn all_groups(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<Group>, StoreError> {
    Ok(entries_u64::<Group>(table, .., usize::MAX)?
        .into_iter()
        .map(|(_, g)| g)
        .collect())
}

pub(crate) fn tree_in(txn: &WriteTransaction) -> Result<GroupTree, StoreError> {
    Ok(GroupTree::new(all_groups(&txn.open_table(GROUPS)?)?))
}

/// [`tree_in`] in a read transaction.
pub(crate) fn tree_read(txn: &redb::ReadTransaction) -> Result<GroupTree, StoreError> {
    Ok(GroupTree::new(all_groups(&txn.open_table(GROUPS)?)?))
}

/// The registered secondaries with the group each is placed in (`None` if that group is
/// gone).
fn placed_secondaries(
    txn: &impl OpenTables,
    tree: &GroupTree,
) -> Result<Vec<(SecondaryRecord, Option<u64>)>, StoreError> {
    Ok(txn
        .values::<SecondaryRecord>(SECONDARIES)?
        .into_iter()
        .map(|s| {
            let id = Some(s.group_id).filter(|id| tree.path_of(*id).is_some());
            (s, id)
        })
        .collect())
}

/// Gives `id` a new name and/or parent, in `txn`; counts the secondaries in it or below
/// it, which follow it (they are placed by id).
fn relocate(
    txn: &WriteTransaction,
    tree: &GroupTree,
    id: u64,
    name: Option<&str>,
    parent: Option<u64>,
) -> Result<Relocated, StoreError> {
    let mut groups = all_groups(&txn.open_table(GROUPS)?)?;
    let group = groups
        .iter_mut()
        .find(|g| g.id == id)
        .ok_or_else(|| StoreError::Rejected(format!("no group with id {id}")))?;
    if let Some(name) = name {
        group.name = name.to_string();
    }
    if let Some(parent) = parent {
        group.parent = Some(parent);
    }
    let updated = group.clone();
    let old_path = tree.path_of(id).unwrap_or_default();
    let below = tree.subtree(id);
    let placed = placed_secondaries(txn, tree)?;
    let new_tree = GroupTree::new(groups);
    let new_path = new_tree
        .path_of(id)
        .ok_or_else(|| StoreError::Rejected(format!("group {old_path:?} would leave the tree")))?;

    if new_path == old_path {
        // Renamed to its own name or moved to where it is: nothing to write.
        return Ok(Relocated {
            id,
            old_path,
            new_path,
            secondaries: 0,
        });
    }
    put_u64(&mut txn.open_table(GROUPS)?, id, &updated)?;
    let moved = placed
        .iter()
        .filter(|(_, group)| group.is_some_and(|g| below.contains(&g)))
        .count() as u64;
    Ok(Relocated {
        id,
        old_path,
        new_path,
        secondaries: moved,
    })
}

impl Store {
    /// Every group, by id.
    pub async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        self.read(|txn| all_groups(&txn.open_table(GROUPS)?)).await
    }

    /// A snapshot of the tree, for resolving paths.
    pub async fn group_tree(&self) -> Result<GroupTree, StoreError> {
        Ok(GroupTree::new(self.groups().await?))
    }

    /// The id of the group at `path` (see [`GroupTree::resolve`]), if there is one; for
    /// placing a secondary (or a device) in an existing group.
    pub async fn resolve_group(&self, path: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.group_tree().await?.resolve(path))
    }

    /// Creates the group at `path`; its parent must exist already.
    pub async fn create_group(&self, path: &str) -> Result<Group, StoreError> {
        let path = path.to_string();
        self.write(move |txn| {
            let tree = tree_in(txn)?;
            let (parent, name) = tree.check_create(&path).map_err(rejected)?;
            let mut meta = txn.open_table(META)?;
            let mut table = txn.open_table(GROUPS)?;
            // Ids are never reused; the last key also covers a file written without the counter.
            let next = get::<u64>(&meta, NEXT_GROUP_ID)?
                .unwrap_or(FIRST_GROUP_ID)
                .max(last_key_u64(&table)?.map_or(FIRST_GROUP_ID, |k| k + 1))
                .max(FIRST_GROUP_ID);
            let group = Group {
                id: next,
                parent: Some(parent),
                name,
            };
            put_u64(&mut table, next, &group)?;
            put(&mut meta, NEXT_GROUP_ID, &(next + 1))?;
            Ok(group)
        })
        .await
    }

    /// Renames the group at `path`; the secondaries in it and below it follow.
    pub async fn rename_group(&self, path: &str, new_name: &str) -> Result<Relocated, StoreError> {
        let path = path.to_string();
        let new_name = new_name.to_string();
        self.write(move |txn| {
            let tree = tree_in(txn)?;
            let (id, name) = tree.check_rename(&path, &new_name).map_err(rejected)?;
            relocate(txn, &tree, id, Some(&name), None)
        })
        .await
    }

    /// Moves the group at `path` (with everything below it) under `new_parent`; the
    /// secondaries in it and below it follow.
    pub async fn move_group(&self, path: &str, new_parent: &str) -> Result<Relocated, StoreError> {
        let path = path.to_string();
        let new_parent = new_parent.to_string();
        self.write(move |txn| {
            let tree = tree_in(txn)?;
            let (id, parent) = tree.check_move(&path, &new_parent).map_err(rejected)?;
            relocate(txn, &tree, id, None, Some(parent))
        })
        .await
    }

    /// Deletes the group at `path`; refused unless it is empty: no subgroups, no devices, no
    /// registered secondary placed in it. Returns the deleted group's path.
    pub async fn delete_group(&self, path: &str) -> Result<String, StoreError> {
        let path = path.to_string();
        self.write(move |txn| {
            let tree = tree_in(txn)?;
            let id = tree.check_delete(&path).map_err(rejected)?;
            let canonical = tree
                .path_of(id)
                .unwrap_or_else(|| normalize_path(&path).to_string());
            let devices = count_by_group(txn)?.get(&id).copied().unwrap_or(0);
            let secondaries = placed_secondaries(txn, &tree)?
                .iter()
                .filter(|(_, group)| *group == Some(id))
                .count() as u64;
            check_empty(&canonical, tree.subgroup_count(id), devices, secondaries)
                .map_err(rejected)?;
            remove_u64(&mut txn.open_table(GROUPS)?, id)?;
            Ok(canonical)
        })
        .await
    }

    /// Every group in tree order (parents before children, siblings by name) with what it
    /// directly holds.
    ///
    pub async fn group_views(&self) -> Result<Vec<GroupView>, StoreError> {
        self.read(|txn| {
            let tree = tree_read(txn)?;
            let placed = placed_secondaries(txn, &tree)?;
            let devices = count_by_group(txn)?;
            let mut views = Vec::new();
            for group in tree.in_tree_order() {
                let (Some(path), Some(depth)) = (tree.path_of(group.id), tree.depth(group.id))
                else {
                    continue;
                };
                views.push(GroupView {
                    id: group.id,
                    path,
                    depth,
                    subgroups: tree.subgroup_count(group.id),
                    devices: devices.get(&group.id).copied().unwrap_or(0),
                    secondaries: placed.iter().filter(|(_, g)| *g == Some(group.id)).count() as u64,
                });
            }
            Ok(views)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::group::{MANAGED_DEVICES, UNASSIGNED_DEVICES};
    use crate::store::tasks::tests::secondary;

    fn paths(views: &[GroupView]) -> Vec<(&str, u32, u64, u64)> {
        views
            .iter()
            .map(|v| (v.path.as_str(), v.depth, v.subgroups, v.secondaries))
            .collect()
    }

    use crate::store::tasks::tests::open_at as open;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_follow_the_rules_and_secondaries_follow_their_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.redb");
        let store = open(&path).await;
        let ids: Vec<u64> = store.groups().await.unwrap().iter().map(|g| g.id).collect();
        assert_eq!(ids, [MANAGED_DEVICES, UNASSIGNED_DEVICES]);

        let europe = store.create_group("Managed devices/Europe").await.unwrap();
        assert_eq!(europe.id, 3);
        let paris = store
            .create_group("Managed devices/Europe/Paris")
            .await
            .unwrap();
        let asia = store.create_group("Managed devices/Asia").await.unwrap();
        let err = store
            .create_group("Managed devices/Europe/Paris")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Rejected(_)), "{err}");
        store
            .add_secondary(secondary("branch-1", paris.id), 500)
            .await
            .unwrap();
        store
            .add_secondary(secondary("branch-2", asia.id), 500)
            .await
            .unwrap();

        let err = store
            .delete_group("Managed devices/Europe")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "group \"Managed devices/Europe\" is not empty: 1 subgroup"
        );

        let moved = store
            .move_group("Managed devices/Europe", "Managed devices/Asia")
            .await
            .unwrap();
        assert_eq!(moved.new_path, "Managed devices/Asia/Europe");
        assert_eq!(moved.secondaries, 1);
        let renamed = store
            .rename_group("Managed devices/Asia", "APAC")
            .await
            .unwrap();
        assert_eq!(renamed.secondaries, 2);
        let same = store
            .rename_group("Managed devices/APAC", "APAC")
            .await
            .unwrap();
        assert_eq!(
            (same.new_path.as_str(), same.secondaries),
            ("Managed devices/APAC", 0)
        );
        let mut groups: Vec<_> = store
            .secondaries()
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.group_id))
            .collect();
        groups.sort();
        let tree = store.group_tree().await.unwrap();
        let groups: Vec<(String, String)> = groups
            .into_iter()
            .map(|(name, id)| (name, tree.path_of(id).unwrap()))
            .collect();
        assert_eq!(
            groups,
            [
                (
                    "branch-1".to_string(),
                    "Managed devices/APAC/Europe/Paris".to_string()
                ),
                ("branch-2".to_string(), "Managed devices/APAC".to_string()),
            ]
        );
        assert_eq!(
            paths(&store.group_views().await.unwrap()),
            [
                ("Managed devices", 0, 1, 0),
                ("Managed devices/APAC", 1, 1, 1),
                ("Managed devices/APAC/Europe", 2, 1, 0),
                ("Managed devices/APAC/Europe/Paris", 3, 0, 1),
                ("Unassigned devices", 0, 0, 0),
            ]
        );

        let err = store
            .delete_group("Managed devices/APAC/Europe/Paris")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "group \"Managed devices/APAC/Europe/Paris\" is not empty: 1 secondary"
        );
        store.remove_secondary("branch-1").await.unwrap();
        assert_eq!(
            store
                .delete_group("/Managed devices/APAC/Europe/Paris/")
                .await
                .unwrap(),
            "Managed devices/APAC/Europe/Paris"
        );
        // A deleted id is never given again, not even the highest one.
        let lyon = store
            .create_group("Managed devices/APAC/Europe/Lyon")
            .await
            .unwrap();
        assert_eq!(lyon.id, 6);
        store
            .delete_group("Managed devices/APAC/Europe/Lyon")
            .await
            .unwrap();
        let nice = store
            .create_group("Managed devices/APAC/Europe/Nice")
            .await
            .unwrap();
        assert_eq!(nice.id, 7);
        assert_eq!(
            store
                .resolve_group(" Managed devices/APAC/Europe/Nice ")
                .await
                .unwrap(),
            Some(7)
        );
        store.close().unwrap();

        // Reopening keeps the groups and does not add the roots twice.
        let store = open(&path).await;
        assert_eq!(store.groups().await.unwrap().len(), 5);
        store.close().unwrap();
    }
}

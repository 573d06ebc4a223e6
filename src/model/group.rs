//! Administration groups of one server: a tree with "Managed devices" at the root, and a
//! separate "Unassigned devices" where devices wait to be sorted. Pure: the store keeps the
//! groups, this module checks every change before the store makes it.
//!
//! A group is named by its path: the names from its root down, joined by '/'.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::check_display_name;

/// The root of the tree every group is created in.
pub const MANAGED_DEVICES: u64 = 1;
/// Devices waiting to be sorted; it has no subgroups.
pub const UNASSIGNED_DEVICES: u64 = 2;
pub const MANAGED_DEVICES_NAME: &str = "Managed devices";
pub const UNASSIGNED_DEVICES_NAME: &str = "Unassigned devices";
/// The first id a created group may get; lower ids belong to the roots.
pub const FIRST_GROUP_ID: u64 = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: u64,
    /// `None` only for the two roots.
    pub parent: Option<u64>,
    pub name: String,
}

impl Group {
    /// The two groups every server has from its first start.
    pub fn roots() -> [Group; 2] {
        [
            Group {
                id: MANAGED_DEVICES,
                parent: None,
                name: MANAGED_DEVICES_NAME.to_string(),
            },
            Group {
                id: UNASSIGNED_DEVICES,
                parent: None,
                name: UNASSIGNED_DEVICES_NAME.to_string(),
            },
        ]
    }

    pub fn is_root(&self) -> bool {
        is_root(self.id)
    }
}

pub fn is_root(id: u64) -> bool {
    id == MANAGED_DEVICES || id == UNASSIGNED_DEVICES
}

/// Why a change to the groups was refused; the kind tells the API which error to answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
}

/// A group whose path changed (renamed or moved), and how many secondaries followed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Relocated {
    pub id: u64,
    pub old_path: String,
    pub new_path: String,
    /// Registered secondaries placed in the group or below it, whose group path was rewritten.
    pub secondaries: u64,
}

/// A path as typed, without surrounding whitespace and leading or trailing '/'.
pub fn normalize_path(path: &str) -> &str {
    path.trim().trim_matches('/')
}

/// Checks the name of a new or renamed group. Besides the display-name rules, surrounding
/// spaces are refused: paths are trimmed, so such a name could never be typed back.
pub fn check_group_name(name: &str) -> Result<(), GroupError> {
    check_display_name("group name", name).map_err(GroupError::Invalid)?;
    if name.trim() != name {
        return Err(GroupError::Invalid(format!(
            "group name {name:?} must not start or end with spaces"
        )));
    }
    Ok(())
}

/// Refuses deleting a group that still holds anything; the message says what it holds.
pub fn check_empty(
    path: &str,
    subgroups: u64,
    devices: u64,
    secondaries: u64,
) -> Result<(), GroupError> {
    let parts: Vec<String> = [
        (subgroups, "subgroup"),
        (devices, "device"),
        (secondaries, "secondary"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| match (n, what) {
        (1, what) => format!("1 {what}"),
        (n, "secondary") => format!("{n} secondaries"),
        (n, what) => format!("{n} {what}s"),
    })
    .collect();
    if parts.is_empty() {
        Ok(())
    } else {
        Err(GroupError::Invalid(format!(
            "group {path:?} is not empty: {}",
            parts.join(", ")
        )))
    }
}

/// The groups of a server, indexed for paths and parent/child walks.
///
/// Built from whatever the store holds, so it never trusts the data: a group whose parent is
/// missing, or a cycle, makes `path_of` and `depth` answer `None` instead of looping.
#[derive(Clone, Debug, Default)]
pub struct GroupTree {
    groups: BTreeMap<u64, Group>,
    /// Children of each group, sorted by name (then id).
    children: BTreeMap<u64, Vec<u64>>,
}

impl GroupTree {
    pub fn new(groups: Vec<Group>) -> GroupTree {
        let groups: BTreeMap<u64, Group> = groups.into_iter().map(|g| (g.id, g)).collect();
        let mut children: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for group in groups.values() {
            if let Some(parent) = group.parent {
                children.entry(parent).or_default().push(group.id);
            }
        }
        for ids in children.values_mut() {
            ids.sort_by(|a, b| {
                let name = |id: &u64| groups.get(id).map(|g| g.name.as_str());
                name(a).cmp(&name(b)).then(a.cmp(b))
            });
        }
        GroupTree { groups, children }
    }

    pub fn get(&self, id: u64) -> Option<&Group> {
        self.groups.get(&id)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group and its ancestors up to its root, the group first; `None` if the chain is
    /// broken or loops.
    fn ancestry(&self, id: u64) -> Option<Vec<&Group>> {
        let mut chain = Vec::new();
        let mut current = self.groups.get(&id)?;
        loop {
            chain.push(current);
            if chain.len() > self.groups.len() {
                return None;
            }
            match current.parent {
                None => return Some(chain),
                Some(parent) => current = self.groups.get(&parent)?,
            }
        }
    }

    /// The ids of the group's root down to the group itself (empty if it is not there):
    /// the lists its rights come from (`model::rights`).
    pub fn lineage(&self, id: u64) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .ancestry(id)
            .unwrap_or_default()
            .iter()
            .map(|g| g.id)
            .collect();
        ids.reverse();
        ids
    }

    /// The group's path: names from its root down, joined by '/'.
    pub fn path_of(&self, id: u64) -> Option<String> {
        let chain = self.ancestry(id)?;
        let names: Vec<&str> = chain.iter().rev().map(|g| g.name.as_str()).collect();
        Some(names.join("/"))
    }

    /// 0 for a root, 1 for its subgroups, and so on.
    pub fn depth(&self, id: u64) -> Option<u32> {
        let chain = self.ancestry(id)?;
        u32::try_from(chain.len() - 1).ok()
    }

    /// The group named by `path`. Surrounding whitespace and a leading or trailing '/' are
    /// ignored; the names themselves must match exactly (case included).
    pub fn resolve(&self, path: &str) -> Option<u64> {
        let path = normalize_path(path);
        if path.is_empty() {
            return None;
        }
        let mut parts = path.split('/');
        let first = parts.next()?;
        let mut current = self
            .groups
            .values()
            .find(|g| g.parent.is_none() && g.name == first)?
            .id;
        for part in parts {
            current = self
                .children
                .get(&current)?
                .iter()
                .copied()
                .find(|id| self.groups.get(id).is_some_and(|g| g.name == part))?;
        }
        Some(current)
    }

    /// The direct subgroups of `id`, by name.
    pub fn children(&self, id: u64) -> Vec<&Group> {
        self.children
            .get(&id)
            .map(|ids| ids.iter().filter_map(|c| self.groups.get(c)).collect())
            .unwrap_or_default()
    }

    /// Whether `id` is strictly below `of` (a group is not its own descendant).
    pub fn is_descendant(&self, id: u64, of: u64) -> bool {
        match self.ancestry(id) {
            Some(chain) => chain.iter().skip(1).any(|g| g.id == of),
            None => false,
        }
    }

    /// `id` and every group below it.
    pub fn subtree(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.walk(id, &mut seen, &mut out);
        out
    }

    /// `id`, then each of its subgroups' subtrees in order, skipping groups already `seen`.
    /// A stack of its own, not recursion: groups nest as deep as operators make them.
    fn walk(&self, id: u64, seen: &mut HashSet<u64>, out: &mut Vec<u64>) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            if !self.groups.contains_key(&id) || !seen.insert(id) {
                continue;
            }
            out.push(id);
            // The first subgroup on top, so that it is walked first.
            stack.extend(self.children.get(&id).into_iter().flatten().rev());
        }
    }

    /// Every group reachable from a root: roots by id, then parents before children and
    /// siblings by name.
    pub fn in_tree_order(&self) -> Vec<&Group> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for root in self.groups.values().filter(|g| g.parent.is_none()) {
            self.walk(root.id, &mut seen, &mut out);
        }
        out.iter().filter_map(|id| self.groups.get(id)).collect()
    }

    /// The id of the group at `path`, or a NotFound error naming it.
    pub fn find(&self, path: &str) -> Result<u64, GroupError> {
        let normalized = normalize_path(path);
        if normalized.is_empty() {
            return Err(GroupError::Invalid("a group path must not be empty".into()));
        }
        self.resolve(normalized)
            .ok_or_else(|| GroupError::NotFound(format!("no group {normalized:?}")))
    }

    /// The canonical path of `id`, or the id itself if the stored tree is broken there.
    fn display(&self, id: u64) -> String {
        self.path_of(id).unwrap_or_else(|| format!("#{id}"))
    }

    fn check_no_sibling(&self, parent: u64, name: &str, except: u64) -> Result<(), GroupError> {
        if self
            .children(parent)
            .iter()
            .any(|g| g.name == name && g.id != except)
        {
            return Err(GroupError::AlreadyExists(format!(
                "a group named {name:?} already exists in {:?}",
                self.display(parent)
            )));
        }
        Ok(())
    }

    fn check_may_hold_subgroups(&self, parent: u64) -> Result<(), GroupError> {
        if parent == UNASSIGNED_DEVICES || self.is_descendant(parent, UNASSIGNED_DEVICES) {
            return Err(GroupError::Invalid(format!(
                "{UNASSIGNED_DEVICES_NAME:?} holds devices waiting to be sorted and has no \
                 subgroups; create groups below {MANAGED_DEVICES_NAME:?}"
            )));
        }
        Ok(())
    }

    fn check_not_root(&self, id: u64, verb: &str) -> Result<(), GroupError> {
        if is_root(id) {
            return Err(GroupError::Invalid(format!(
                "{:?} is a root group and cannot be {verb}",
                self.display(id)
            )));
        }
        Ok(())
    }

    /// Checks creating the group at `path`: its parent must exist and may hold subgroups, the
    /// name must be valid and new among its siblings. Returns the parent's id and the name.
    pub fn check_create(&self, path: &str) -> Result<(u64, String), GroupError> {
        let path = normalize_path(path);
        if path.is_empty() {
            return Err(GroupError::Invalid("a group path must not be empty".into()));
        }
        let Some((parent_path, name)) = path.rsplit_once('/') else {
            if self.resolve(path).is_some() {
                return Err(GroupError::AlreadyExists(format!(
                    "{path:?} is a root group; it exists already"
                )));
            }
            return Err(GroupError::Invalid(format!(
                "a new group goes below {MANAGED_DEVICES_NAME:?}: give its whole path, e.g. \
                 \"{MANAGED_DEVICES_NAME}/{path}\""
            )));
        };
        let parent = self.resolve(parent_path).ok_or_else(|| {
            GroupError::NotFound(format!(
                "no group {parent_path:?} to create {name:?} in; create the parent first"
            ))
        })?;
        self.check_may_hold_subgroups(parent)?;
        check_group_name(name)?;
        self.check_no_sibling(parent, name, 0)?;
        Ok((parent, name.to_string()))
    }

    /// Checks renaming the group at `path` to `new_name` (trimmed). Returns its id and the
    /// trimmed name. Renaming a group to its own name is allowed and changes nothing.
    pub fn check_rename(&self, path: &str, new_name: &str) -> Result<(u64, String), GroupError> {
        let id = self.find(path)?;
        self.check_not_root(id, "renamed")?;
        let new_name = new_name.trim();
        check_group_name(new_name)?;
        if let Some(parent) = self.get(id).and_then(|g| g.parent) {
            self.check_no_sibling(parent, new_name, id)?;
        }
        Ok((id, new_name.to_string()))
    }

    /// Checks moving the group at `path` under the group at `new_parent`. Returns both ids.
    pub fn check_move(&self, path: &str, new_parent: &str) -> Result<(u64, u64), GroupError> {
        let id = self.find(path)?;
        self.check_not_root(id, "moved")?;
        let parent = self.find(new_parent)?;
        if parent == id || self.is_descendant(parent, id) {
            return Err(GroupError::Invalid(format!(
                "cannot move {:?} under itself or one of its own subgroups ({:?})",
                self.display(id),
                self.display(parent)
            )));
        }
        self.check_may_hold_subgroups(parent)?;
        if let Some(group) = self.get(id) {
            self.check_no_sibling(parent, &group.name, id)?;
        }
        Ok((id, parent))
    }

    /// How many direct subgroups `id` has.
    pub fn subgroup_count(&self, id: u64) -> u64 {
        self.children.get(&id).map_or(0, Vec::len) as u64
    }

    /// Checks that the group at `path` exists and is not a root, so it may be deleted once it
    /// is empty (the store checks that with [`check_empty`], as only it knows the devices and
    /// secondaries). Returns its id.
    pub fn check_delete(&self, path: &str) -> Result<u64, GroupError> {
        let id = self.find(path)?;
        self.check_not_root(id, "deleted")?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: u64, parent: u64, name: &str) -> Group {
        Group {
            id,
            parent: Some(parent),
            name: name.into(),
        }
    }

    /// Managed devices/{Europe/{Paris, Berlin}, Asia}, Unassigned devices.
    fn sample() -> GroupTree {
        let mut groups = Group::roots().to_vec();
        groups.extend([
            g(3, MANAGED_DEVICES, "Europe"),
            g(4, 3, "Paris"),
            g(5, 3, "Berlin"),
            g(6, MANAGED_DEVICES, "Asia"),
        ]);
        GroupTree::new(groups)
    }

    #[test]
    fn paths_depths_and_children() {
        let t = sample();
        assert_eq!(t.path_of(MANAGED_DEVICES).unwrap(), "Managed devices");
        assert_eq!(t.path_of(4).unwrap(), "Managed devices/Europe/Paris");
        assert_eq!(t.path_of(99), None);
        assert_eq!(t.depth(MANAGED_DEVICES), Some(0));
        assert_eq!(t.depth(UNASSIGNED_DEVICES), Some(0));
        assert_eq!(t.depth(3), Some(1));
        assert_eq!(t.depth(5), Some(2));
        let names: Vec<_> = t.children(3).iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["Berlin", "Paris"]);
        assert!(t.children(4).is_empty());
        assert!(t.children(99).is_empty());
    }

    #[test]
    fn resolve_accepts_slashes_and_spaces_around_but_exact_names() {
        let t = sample();
        assert_eq!(t.resolve("Managed devices/Europe/Paris"), Some(4));
        assert_eq!(t.resolve("  /Managed devices/Europe/Paris/ "), Some(4));
        assert_eq!(t.resolve("Managed devices"), Some(MANAGED_DEVICES));
        assert_eq!(t.resolve("Unassigned devices/"), Some(UNASSIGNED_DEVICES));
        assert_eq!(t.resolve("managed devices/Europe"), None);
        assert_eq!(t.resolve("Managed devices/ Europe"), None);
        assert_eq!(t.resolve("Managed devices//Europe"), None);
        assert_eq!(t.resolve("Managed devices/Nowhere"), None);
        assert_eq!(t.resolve("Europe"), None);
        assert_eq!(t.resolve(""), None);
        assert_eq!(t.resolve(" / "), None);
    }

    #[test]
    fn descendants_and_tree_order() {
        let t = sample();
        assert!(t.is_descendant(4, 3));
        assert!(t.is_descendant(4, MANAGED_DEVICES));
        assert!(!t.is_descendant(3, 3));
        assert!(!t.is_descendant(3, 4));
        assert!(!t.is_descendant(4, UNASSIGNED_DEVICES));
        let order: Vec<_> = t.in_tree_order().iter().map(|g| g.id).collect();
        assert_eq!(order, [1, 6, 3, 5, 4, 2]);
        let mut below = t.subtree(3);
        below.sort();
        assert_eq!(below, [3, 4, 5]);
    }

    #[test]
    fn a_deep_tree_is_walked_without_recursion() {
        // Any operator (a tenant's, on a virtual server) can nest groups without a limit, one
        // request a level: walking them must not take a stack frame a level.
        const DEPTH: u64 = 100_000;
        let mut groups = Group::roots().to_vec();
        groups.extend((3..3 + DEPTH).map(|id| g(id, id - 1, "g")));
        groups[2].parent = Some(MANAGED_DEVICES);
        let walked = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let t = GroupTree::new(groups);
                (t.subtree(MANAGED_DEVICES).len(), t.in_tree_order().len())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(walked, (DEPTH as usize + 1, DEPTH as usize + 2));
    }

    #[test]
    fn a_broken_or_looping_store_does_not_hang() {
        let mut groups = Group::roots().to_vec();
        groups.extend([g(3, 4, "A"), g(4, 3, "B"), g(5, 42, "Orphan")]);
        let t = GroupTree::new(groups);
        assert_eq!(t.path_of(3), None);
        assert_eq!(t.depth(4), None);
        assert_eq!(t.path_of(5), None);
        assert!(!t.is_descendant(3, 4));
        let order: Vec<_> = t.in_tree_order().iter().map(|g| g.id).collect();
        assert_eq!(order, [1, 2]);
        assert_eq!(t.subtree(3).len(), 2);
    }

    #[test]
    fn create_checks_parent_name_and_siblings() {
        let t = sample();
        assert_eq!(
            t.check_create("Managed devices/Europe/Lyon"),
            Ok((3, "Lyon".into()))
        );
        assert_eq!(
            t.check_create(" /Managed devices/Africa/ "),
            Ok((MANAGED_DEVICES, "Africa".into()))
        );
        // Sibling names are case-sensitive.
        assert_eq!(
            t.check_create("Managed devices/Europe/paris"),
            Ok((3, "paris".into()))
        );
        assert_eq!(
            t.check_create("Managed devices/Europe/Paris"),
            Err(GroupError::AlreadyExists(
                "a group named \"Paris\" already exists in \"Managed devices/Europe\"".into()
            ))
        );
        assert!(matches!(
            t.check_create("Managed devices/Nowhere/Paris"),
            Err(GroupError::NotFound(m)) if m.contains("\"Managed devices/Nowhere\"")
        ));
        assert!(matches!(
            t.check_create("Unassigned devices/Later"),
            Err(GroupError::Invalid(m)) if m.contains("no subgroups")
        ));
        assert!(matches!(
            t.check_create("Europe"),
            Err(GroupError::Invalid(m)) if m.contains("Managed devices/Europe")
        ));
        assert!(matches!(t.check_create("  "), Err(GroupError::Invalid(_))));
        assert!(matches!(
            t.check_create("Managed devices"),
            Err(GroupError::AlreadyExists(_))
        ));
        let long = format!("Managed devices/{}", "x".repeat(101));
        assert!(matches!(
            t.check_create(&long),
            Err(GroupError::Invalid(m)) if m.contains("at most 100")
        ));
        assert!(
            t.check_create(&format!("Managed devices/{}", "x".repeat(100)))
                .is_ok()
        );
        assert!(matches!(
            t.check_create("Managed devices/ Lyon"),
            Err(GroupError::Invalid(m)) if m.contains("spaces")
        ));
        assert!(matches!(
            t.check_create("Managed devices/Europe/a\tb"),
            Err(GroupError::Invalid(_))
        ));
    }

    #[test]
    fn rename_checks_roots_names_and_siblings() {
        let t = sample();
        assert_eq!(
            t.check_rename("Managed devices/Europe", " EMEA "),
            Ok((3, "EMEA".into()))
        );
        assert_eq!(
            t.check_rename("Managed devices/Europe", "Europe"),
            Ok((3, "Europe".into()))
        );
        assert!(matches!(
            t.check_rename("Managed devices/Europe", "Asia"),
            Err(GroupError::AlreadyExists(_))
        ));
        assert!(matches!(
            t.check_rename("Managed devices/Europe", "A/B"),
            Err(GroupError::Invalid(_))
        ));
        assert!(matches!(
            t.check_rename("Managed devices/Europe", ""),
            Err(GroupError::Invalid(_))
        ));
        for root in ["Managed devices", "Unassigned devices"] {
            assert!(matches!(
                t.check_rename(root, "Other"),
                Err(GroupError::Invalid(m)) if m.contains("root group and cannot be renamed")
            ));
        }
        assert!(matches!(
            t.check_rename("Managed devices/Nowhere", "X"),
            Err(GroupError::NotFound(m)) if m == "no group \"Managed devices/Nowhere\""
        ));
    }

    #[test]
    fn move_refuses_roots_cycles_unassigned_and_name_clashes() {
        let t = sample();
        assert_eq!(
            t.check_move("Managed devices/Europe/Paris", "Managed devices"),
            Ok((4, MANAGED_DEVICES))
        );
        assert_eq!(
            t.check_move("Managed devices/Asia", "Managed devices/Europe/"),
            Ok((6, 3))
        );
        // Moving to where it already is changes nothing and is allowed.
        assert_eq!(
            t.check_move("Managed devices/Asia", "Managed devices"),
            Ok((6, MANAGED_DEVICES))
        );
        for target in ["Managed devices/Europe", "Managed devices/Europe/Paris"] {
            assert!(matches!(
                t.check_move("Managed devices/Europe", target),
                Err(GroupError::Invalid(m)) if m.contains("under itself")
            ));
        }
        assert!(matches!(
            t.check_move("Managed devices/Asia", "Unassigned devices"),
            Err(GroupError::Invalid(m)) if m.contains("no subgroups")
        ));
        assert!(matches!(
            t.check_move("Managed devices", "Unassigned devices"),
            Err(GroupError::Invalid(m)) if m.contains("cannot be moved")
        ));
        assert!(matches!(
            t.check_move("Unassigned devices", "Managed devices"),
            Err(GroupError::Invalid(m)) if m.contains("cannot be moved")
        ));
        assert!(matches!(
            t.check_move("Managed devices/Asia", "Managed devices/Nowhere"),
            Err(GroupError::NotFound(_))
        ));
        let mut groups = Group::roots().to_vec();
        groups.extend([
            g(3, MANAGED_DEVICES, "Europe"),
            g(4, 3, "Paris"),
            g(5, MANAGED_DEVICES, "Paris"),
        ]);
        let t = GroupTree::new(groups);
        assert!(matches!(
            t.check_move("Managed devices/Europe/Paris", "Managed devices"),
            Err(GroupError::AlreadyExists(m)) if m.contains("\"Paris\"")
        ));
    }

    #[test]
    fn delete_refuses_roots_and_missing_groups() {
        let t = sample();
        assert_eq!(t.check_delete("Managed devices/Asia"), Ok(6));
        assert_eq!(t.check_delete("/Managed devices/Europe/Paris"), Ok(4));
        assert_eq!(t.check_delete("Managed devices/Europe"), Ok(3));
        assert_eq!(t.subgroup_count(3), 2);
        assert_eq!(t.subgroup_count(4), 0);
        for root in ["Managed devices", "Unassigned devices"] {
            assert!(matches!(
                t.check_delete(root),
                Err(GroupError::Invalid(m)) if m.contains("cannot be deleted")
            ));
        }
        assert!(matches!(
            t.check_delete("Managed devices/Nowhere"),
            Err(GroupError::NotFound(_))
        ));
    }

    #[test]
    fn emptiness_message_names_what_is_left() {
        assert_eq!(check_empty("G", 0, 0, 0), Ok(()));
        assert_eq!(
            check_empty("G", 2, 0, 1),
            Err(GroupError::Invalid(
                "group \"G\" is not empty: 2 subgroups, 1 secondary".into()
            ))
        );
        assert_eq!(
            check_empty("G", 1, 3, 2),
            Err(GroupError::Invalid(
                "group \"G\" is not empty: 1 subgroup, 3 devices, 2 secondaries".into()
            ))
        );
    }

    #[test]
    fn group_names() {
        assert!(check_group_name("Paris").is_ok());
        assert!(check_group_name("Île-de-France (North)").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("   ").is_err());
        assert!(check_group_name("Paris ").is_err());
        assert!(check_group_name("a/b").is_err());
        assert!(check_group_name(&"é".repeat(100)).is_ok());
        assert!(check_group_name(&"é".repeat(101)).is_err());
    }
}

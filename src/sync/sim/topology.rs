//! The shape of a simulated tree: servers, their devices, where each child is placed, and
//! the primary's groups.

use rand::Rng;
use rand::rngs::StdRng;

use super::GROUPS;
use crate::model::group::MANAGED_DEVICES;
use crate::sync::rollup::ChildPlacement;

/// The shape of the tree, fixed for a seed.
pub(super) struct Topology {
    pub parent: Vec<Option<usize>>,
    pub children: Vec<Vec<usize>>,
    /// Names from below the primary down to the server (empty for the primary).
    pub path: Vec<Vec<String>>,
    pub devices: Vec<usize>,
    /// The group each server is placed in at its parent (a group of the primary for the
    /// primary's children, "Managed devices" elsewhere).
    pub placed: Vec<u64>,
    /// The group of each of the primary's devices.
    pub device_group: Vec<u64>,
    /// The parent of each of the primary's groups (index = group id; 0 unused).
    pub group_parent: Vec<u64>,
}

impl Topology {
    pub fn random(rng: &mut StdRng) -> Self {
        let n = rng.random_range(20..=30);
        let mut parent = vec![None];
        for i in 1..n {
            // A chain of four first, so the tree is at least three levels deep.
            let p = if i <= 3 {
                i - 1
            } else {
                rng.random_range(0..i)
            };
            parent.push(Some(p));
        }
        let mut children = vec![Vec::new(); n];
        let mut path: Vec<Vec<String>> = vec![Vec::new(); n];
        for i in 1..n {
            if let Some(p) = parent[i] {
                children[p].push(i);
                let mut own = path[p].clone();
                own.push(format!("s{i}"));
                path[i] = own;
            }
        }
        let devices: Vec<usize> = (0..n).map(|_| rng.random_range(1..=4)).collect();
        let mut group_parent = vec![0, 0];
        for g in 2..=GROUPS {
            group_parent.push(rng.random_range(1..g));
        }
        let placed = (0..n)
            .map(|i| match parent[i] {
                Some(0) => rng.random_range(1..=GROUPS),
                _ => MANAGED_DEVICES,
            })
            .collect();
        let device_group = (0..devices[0])
            .map(|_| rng.random_range(1..=GROUPS))
            .collect();
        Topology {
            parent,
            children,
            path,
            devices,
            placed,
            device_group,
            group_parent,
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether group `a` of the primary is a descendant of group `b`.
    pub fn is_below(&self, a: u64, b: u64) -> bool {
        let mut g = a;
        while g > 1 {
            g = self.group_parent.get(g as usize).copied().unwrap_or(0);
            if g == b {
                return true;
            }
        }
        false
    }

    pub fn in_subtree(&self, root: usize, y: usize) -> bool {
        let mut at = Some(y);
        while let Some(x) = at {
            if x == root {
                return true;
            }
            at = self.parent[x];
        }
        false
    }

    /// `y`'s path as seen from `x` (an ancestor of `y`).
    pub fn relative(&self, x: usize, y: usize) -> Vec<String> {
        self.path[y][self.path[x].len()..].to_vec()
    }

    /// The children of `x` as a run's reach sees them.
    pub fn placements(&self, x: usize) -> Vec<ChildPlacement> {
        self.children[x]
            .iter()
            .map(|&c| ChildPlacement {
                name: format!("s{c}"),
                group: Some(self.placed[c]),
                devices: self.devices[c] as u64,
                subtree: (0..self.len())
                    .filter(|&y| y != c && self.in_subtree(c, y))
                    .map(|y| (self.relative(c, y), self.devices[y] as u64))
                    .collect(),
            })
            .collect()
    }

    /// The devices of the primary in `group` (and its subgroups).
    pub fn primary_devices(&self, group: u64, subgroups: bool) -> Vec<usize> {
        (0..self.devices[0])
            .filter(|&d| {
                let g = self.device_group[d];
                g == group || (subgroups && self.is_below(g, group))
            })
            .collect()
    }
}

//! The tree below a server, as `canopy server list` shows it, built from the server's own
//! registrations and the subtrees its secondaries last reported.

use crate::model::{SecondaryRecord, ServerRow, ServerStatus, UnixMillis};

/// A registered secondary, the path of its group now, and whether its link is up.
pub struct SecondaryView<'a> {
    pub record: &'a SecondaryRecord,
    pub group: String,
    pub connected: bool,
}

/// Rows for every server below this one (not this one), paths relative to this server,
/// parents before their children, secondaries in name order.
pub fn subtree_rows(secondaries: &[SecondaryView<'_>]) -> Vec<ServerRow> {
    let mut sorted: Vec<&SecondaryView<'_>> = secondaries.iter().collect();
    sorted.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    let mut rows = Vec::new();
    for s in sorted {
        let r = s.record;
        rows.push(ServerRow {
            path: r.name.clone(),
            depth: 1,
            name: r.name.clone(),
            group: s.group.clone(),
            status: if s.connected {
                ServerStatus::Active
            } else {
                ServerStatus::Inactive
            },
            version: r.version.clone(),
            instance_id: r.instance_id.clone(),
            address: r.address.clone(),
            last_connected: r.last_connected,
            devices: r.devices,
            virtual_server: r.virtual_server,
            passive: r.passive.is_some(),
        });
        for below in &r.subtree {
            let mut row = below.clone();
            row.path = format!("{}/{}", r.name, below.path);
            row.depth = below.depth + 1;
            if !s.connected {
                row.status = ServerStatus::Unreachable;
            }
            rows.push(row);
        }
    }
    rows
}

/// The server asked, for the first row of [`tree_rows`].
#[derive(Clone, Copy, Debug)]
pub struct OwnServer<'a> {
    pub name: &'a str,
    pub listen: &'a str,
    pub version: &'a str,
    pub instance_id: &'a str,
    pub devices: u64,
    pub virtual_server: bool,
    /// It waits for its parent to connect to it.
    pub passive: bool,
}

/// The full tree as seen from this server: itself at depth 0, then its subtree with paths
/// prefixed by its own name.
pub fn tree_rows(
    own: &OwnServer<'_>,
    now: UnixMillis,
    secondaries: &[SecondaryView<'_>],
) -> Vec<ServerRow> {
    let OwnServer {
        name,
        listen,
        version,
        instance_id,
        ..
    } = *own;
    let mut rows = vec![ServerRow {
        path: name.to_string(),
        depth: 0,
        name: name.to_string(),
        group: String::new(),
        status: ServerStatus::Active,
        version: version.to_string(),
        instance_id: instance_id.to_string(),
        address: Some(listen.to_string()),
        last_connected: Some(now),
        devices: own.devices,
        virtual_server: own.virtual_server,
        passive: own.passive,
    }];
    rows.extend(subtree_rows(secondaries).into_iter().map(|mut r| {
        r.path = format!("{name}/{}", r.path);
        r
    }));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fingerprint;

    fn record(name: &str, subtree: Vec<ServerRow>) -> SecondaryRecord {
        SecondaryRecord {
            name: name.into(),
            group_id: 1,
            cert_der: vec![],
            fingerprint: Fingerprint([0; 32]),
            registered_at: 0,
            last_connected: Some(5),
            version: "0.1.0".into(),
            instance_id: String::new(),
            address: None,
            subtree,
            devices: 0,
            virtual_server: false,
            disabled: false,
            enrollment_token: String::new(),
            passive: None,
        }
    }

    #[test]
    fn three_levels_and_an_interrupted_link() {
        let bottom = record("branch-1a", vec![]);
        let middle_rows = subtree_rows(&[SecondaryView {
            record: &bottom,
            group: "Managed devices".into(),
            connected: true,
        }]);
        let middle = record("branch-1", middle_rows);
        let other = record("branch-2", vec![]);
        let own = OwnServer {
            name: "primary",
            listen: "127.0.0.1:13000",
            version: "0.1.0",
            instance_id: "00000000000000aa",
            devices: 0,
            virtual_server: false,
            passive: false,
        };
        let rows = tree_rows(
            &own,
            9,
            &[
                SecondaryView {
                    record: &other,
                    group: "Managed devices".into(),
                    connected: true,
                },
                SecondaryView {
                    record: &middle,
                    group: "Managed devices".into(),
                    connected: true,
                },
            ],
        );
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.path.as_str(), r.depth, r.status))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("primary", 0, ServerStatus::Active),
                ("primary/branch-1", 1, ServerStatus::Active),
                ("primary/branch-1/branch-1a", 2, ServerStatus::Active),
                ("primary/branch-2", 1, ServerStatus::Active),
            ]
        );
        let rows = subtree_rows(&[SecondaryView {
            record: &middle,
            group: "Managed devices".into(),
            connected: false,
        }]);
        assert_eq!(rows[0].status, ServerStatus::Inactive);
        assert_eq!(rows[1].status, ServerStatus::Unreachable);
    }
}

//! `canopy group ...`: administration groups of the server you are logged in to.
//!
//! Groups are named by path, e.g. "Managed devices/Europe/Paris"; paths contain spaces, so
//! quote them in the shell.

use std::path::Path;

use clap::Subcommand;

use super::{call, print_done, print_json, table};
use crate::wire::msg::{AdminRequest, GroupRequest, GroupView};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// The group tree, with what each group directly holds.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a group; its parent must exist, e.g. "Managed devices/Europe/Paris" (quoted).
    Create {
        /// The new group's whole path.
        path: String,
    },
    /// Rename a group; secondaries placed in it or below follow it.
    Rename {
        /// The group's path (quoted).
        path: String,
        /// Its new name (a name, not a path).
        new_name: String,
    },
    /// Move a group, with everything below it, under another group.
    Move {
        /// The group's path (quoted).
        path: String,
        /// The path of its new parent.
        #[arg(long)]
        to: String,
    },
    /// Delete an empty group (no subgroups, devices or secondaries).
    Delete {
        /// The group's path (quoted).
        path: String,
    },
    /// Show the group's rights (inherited from its root down), or set one entry.
    #[command(after_help = super::rights::RIGHTS_EXAMPLES)]
    Rights {
        /// The group's path (quoted).
        path: String,
        #[command(flatten)]
        args: super::rights::RightsArgs,
    },
}

pub async fn run(session_path: &Path, cmd: GroupCommand) -> anyhow::Result<()> {
    let request = match cmd {
        GroupCommand::List { json } => {
            let client = super::connect(session_path).await?;
            let groups = client.groups().await;
            client.close().await;
            let groups = groups?;
            if json {
                return print_json(&groups);
            }
            crate::cli::table::show(&groups_table(&groups));
            return Ok(());
        }
        GroupCommand::Create { path } => GroupRequest::Create { path },
        GroupCommand::Rename { path, new_name } => GroupRequest::Rename { path, new_name },
        GroupCommand::Move { path, to } => GroupRequest::Move {
            path,
            new_parent: to,
        },
        GroupCommand::Delete { path } => GroupRequest::Delete { path },
        GroupCommand::Rights { path, args } => {
            let request = GroupRequest::Rights {
                path,
                change: args.change()?,
            };
            return super::rights::run(session_path, AdminRequest::Group(request), args.json).await;
        }
    };
    print_done(call(session_path, AdminRequest::Group(request)).await?)
}

/// The tree indented by depth, one group per row.
fn groups_table(groups: &[GroupView]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let name = g.path.rsplit('/').next().unwrap_or(&g.path);
            vec![
                format!("{}{name}", "  ".repeat(g.depth as usize)),
                g.path.clone(),
                g.subgroups.to_string(),
                g.devices.to_string(),
                g.secondaries.to_string(),
            ]
        })
        .collect();
    table::render(
        &["GROUP", "PATH", "SUBGROUPS", "DEVICES", "SECONDARIES"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: u64, path: &str, depth: u32, subgroups: u64, secondaries: u64) -> GroupView {
        GroupView {
            id,
            path: path.into(),
            depth,
            subgroups,
            devices: 0,
            secondaries,
        }
    }

    #[test]
    fn the_table_indents_the_tree() {
        let t = groups_table(&[
            view(1, "Managed devices", 0, 1, 0),
            view(3, "Managed devices/Europe", 1, 0, 1),
            view(2, "Unassigned devices", 0, 0, 0),
        ]);
        let expected = "\
GROUP               PATH                    SUBGROUPS  DEVICES  SECONDARIES
Managed devices     Managed devices         1          0        0
  Europe            Managed devices/Europe  0          0        1
Unassigned devices  Unassigned devices      0          0        0
";
        assert_eq!(t, expected);
    }
}

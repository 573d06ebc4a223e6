//! `canopy task rights` and `canopy group rights`: a rights list shown, and one entry of it
//! set or removed (see README, "Access rights").

use std::path::Path;

use anyhow::bail;

use super::{call, print_json, table};
use crate::model::rights::{Grant, Principal, Rights};
use crate::wire::msg::{AdminRequest, AdminResponse, RightsChange, RightsView};

pub const RIGHTS_EXAMPLES: &str = "\
Examples:
  canopy group rights \"Managed devices\" --deny account:paris-op=all
  canopy group rights \"Managed devices/Paris\" --allow account:paris-op=read,execute
  canopy task rights \"Inventory\" --allow role:operator=read --deny role:operator=execute
  canopy task rights \"Inventory\" --remove role:operator

A group task's rights are its group's: a change through `task rights` changes the group's
list. WHO is role:NAME (operator, auditor) or account:NAME; RIGHTS is read, modify and
execute, comma-separated, or all, or none.";

#[derive(clap::Args, Debug)]
pub struct RightsArgs {
    /// Allow WHO these rights (WHO=RIGHTS, e.g. account:paris-op=read,execute).
    #[arg(long, value_name = "WHO=RIGHTS")]
    pub allow: Option<String>,
    /// Deny WHO these rights (WHO=RIGHTS); with --allow, for the same WHO.
    #[arg(long, value_name = "WHO=RIGHTS")]
    pub deny: Option<String>,
    /// Remove WHO's entry.
    #[arg(long, value_name = "WHO", conflicts_with_all = ["allow", "deny"])]
    pub remove: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn who_and_rights(text: &str) -> anyhow::Result<(Principal, Rights)> {
    let Some((who, rights)) = text.split_once('=') else {
        bail!("{text:?}: expected WHO=RIGHTS, e.g. account:paris-op=read,execute");
    };
    let who = Principal::parse(who).map_err(anyhow::Error::msg)?;
    let rights = Rights::parse(rights).map_err(anyhow::Error::msg)?;
    Ok((who, rights))
}

impl RightsArgs {
    /// The change asked for, if any.
    pub fn change(&self) -> anyhow::Result<Option<RightsChange>> {
        if let Some(who) = &self.remove {
            let principal = Principal::parse(who).map_err(anyhow::Error::msg)?;
            return Ok(Some(RightsChange {
                principal,
                grant: Grant::default(),
            }));
        }
        let allow = self.allow.as_deref().map(who_and_rights).transpose()?;
        let deny = self.deny.as_deref().map(who_and_rights).transpose()?;
        let principal = match (&allow, &deny) {
            (None, None) => return Ok(None),
            (Some((a, _)), Some((d, _))) if a != d => {
                bail!("--allow and --deny name {a} and {d}: one entry at a time")
            }
            (Some((who, _)), _) | (None, Some((who, _))) => who.clone(),
        };
        let grant = Grant {
            allow: allow.map_or(Rights::NONE, |(_, r)| r),
            deny: deny.map_or(Rights::NONE, |(_, r)| r),
        };
        if grant == Grant::default() {
            bail!("allowing and denying nothing: use --remove {principal} to remove the entry");
        }
        Ok(Some(RightsChange { principal, grant }))
    }
}

/// Sends `request` and prints the rights list it answers with.
pub async fn run(session: &Path, request: AdminRequest, json: bool) -> anyhow::Result<()> {
    match call(session, request).await? {
        AdminResponse::Rights(view) if json => print_json(&view),
        AdminResponse::Rights(view) => {
            table::show(&rights_text(&view));
            Ok(())
        }
        _ => bail!("unexpected answer from the server"),
    }
}

/// The lists from the root group down, one entry per row, and the caller's own rights.
pub fn rights_text(view: &RightsView) -> String {
    let mut out = String::new();
    if let Some(group) = &view.follows_group {
        out.push_str(&format!(
            "{} is a group task: it follows the rights of group {group:?}\n",
            view.object
        ));
    }
    let rows: Vec<Vec<String>> = view
        .lists
        .iter()
        .flat_map(|(list, entries)| {
            entries.iter().map(move |(who, grant)| {
                vec![
                    list.clone(),
                    who.to_string(),
                    grant.allow.to_string(),
                    grant.deny.to_string(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no entries: each role has its default rights\n");
    } else {
        out.push_str(&table::render(&["LIST", "WHO", "ALLOW", "DENY"], &rows));
    }
    out.push_str(&format!("your rights on {}: {}\n", view.object, view.yours));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(allow: Option<&str>, deny: Option<&str>, remove: Option<&str>) -> RightsArgs {
        RightsArgs {
            allow: allow.map(String::from),
            deny: deny.map(String::from),
            remove: remove.map(String::from),
            json: false,
        }
    }

    #[test]
    fn a_change_names_one_entry() {
        let change = args(Some("account:p=read,x"), Some("account:p=modify"), None)
            .change()
            .unwrap()
            .unwrap();
        assert_eq!(change.principal, Principal::Account("p".into()));
        assert_eq!(change.grant.allow, Rights::READ.with(Rights::EXECUTE));
        assert_eq!(change.grant.deny, Rights::MODIFY);
        assert!(args(None, None, None).change().unwrap().is_none());
        let removed = args(None, None, Some("role:operator"))
            .change()
            .unwrap()
            .unwrap();
        assert_eq!(removed.grant, Grant::default());
        for bad in [
            args(Some("account:p=read"), Some("account:q=read"), None),
            args(Some("p=read"), None, None),
            args(Some("account:p"), None, None),
            args(Some("account:p=write"), None, None),
            args(Some("account:p=none"), None, None),
        ] {
            assert!(bad.change().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_text_shows_each_list_and_the_callers_rights() {
        let view = RightsView {
            object: "task \"Patch\"".into(),
            follows_group: Some("Managed devices/Paris".into()),
            lists: vec![
                (
                    "Managed devices".into(),
                    vec![(
                        Principal::Account("paris-op".into()),
                        Grant {
                            allow: Rights::NONE,
                            deny: Rights::ALL,
                        },
                    )],
                ),
                ("Managed devices/Paris".into(), Vec::new()),
            ],
            yours: Rights::READ.with(Rights::EXECUTE),
        };
        let text = rights_text(&view);
        assert!(text.contains("follows the rights of group \"Managed devices/Paris\""));
        assert!(text.contains("account:paris-op"), "{text}");
        assert!(text.contains("read,modify,execute"), "{text}");
        assert!(
            text.contains("your rights on task \"Patch\": read,execute"),
            "{text}"
        );
    }
}

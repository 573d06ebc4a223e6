//! Access rights on administration groups and tasks ("Security settings"): read, modify
//! and execute, allowed or denied to an account or a role. A group's rights inherit down
//! the group tree and a group task follows the rights of its group; other tasks carry
//! their own. Pure: the store keeps the lists, the server asks [`effective`].
//!
//! How a caller's rights on an object are found: start from the role's default
//! ([`Rights::of_role`]); then, from the root of the object's lineage down to the object,
//! apply each list's entry for the caller's role, then its entry for the caller's account:
//! what it allows is added, then what it denies is taken away. So the nearer entry wins,
//! and at one level the account's wins over its role's. Administrators hold every right
//! whatever the lists say, so that no list can lock a server out of its own objects.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Role;

/// A set of rights.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Rights(u8);

impl Rights {
    pub const NONE: Rights = Rights(0);
    /// See the object: list, show, results, statistics, history, export.
    pub const READ: Rights = Rights(1);
    /// Change it: edit, delete, rename, roll back; create tasks or subgroups in a group;
    /// change its rights.
    pub const MODIFY: Rights = Rights(2);
    /// Run it: start, stop, pause, resume.
    pub const EXECUTE: Rights = Rights(4);
    pub const ALL: Rights = Rights(7);

    const NAMES: [(Rights, &'static str); 3] = [
        (Rights::READ, "read"),
        (Rights::MODIFY, "modify"),
        (Rights::EXECUTE, "execute"),
    ];

    /// What a role may do where no list says otherwise.
    pub fn of_role(role: Role) -> Rights {
        match role {
            Role::Administrator | Role::Operator => Rights::ALL,
            Role::Auditor => Rights::READ,
        }
    }

    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    pub fn without(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    /// `read,modify,execute` (any of them, in any order, comma-separated; or `all`, `none`;
    /// or letters `r`, `m`, `x`).
    pub fn parse(text: &str) -> Result<Rights, String> {
        let text = text.trim();
        match text {
            "all" => return Ok(Rights::ALL),
            "none" | "" => return Ok(Rights::NONE),
            _ => {}
        }
        let mut rights = Rights::NONE;
        for word in text.split(',').map(str::trim) {
            let right = match word {
                "read" | "r" => Rights::READ,
                "modify" | "m" => Rights::MODIFY,
                "execute" | "x" => Rights::EXECUTE,
                other => {
                    return Err(format!(
                        "unknown right {other:?}: expected read, modify, execute (comma-separated), all or none"
                    ));
                }
            };
            rights = rights.with(right);
        }
        Ok(rights)
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = Rights::NAMES
            .iter()
            .filter(|(r, _)| self.contains(*r))
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

/// Whom an entry is about.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub enum Principal {
    Role(Role),
    Account(String),
}

impl Principal {
    /// `role:operator` or `account:paris-op`.
    pub fn parse(text: &str) -> Result<Principal, String> {
        let bad = || {
            format!(
                "{text:?} names no one: expected role:NAME (administrator, operator, auditor) or account:NAME"
            )
        };
        let (kind, name) = text.trim().split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        match kind.trim() {
            "role" => Role::parse(name).map(Principal::Role),
            "account" if !name.is_empty() && name.len() <= 64 => {
                Ok(Principal::Account(name.to_string()))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Role(role) => write!(f, "role:{}", role.as_str()),
            Principal::Account(name) => write!(f, "account:{name}"),
        }
    }
}

/// What one entry allows and denies.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub allow: Rights,
    pub deny: Rights,
}

/// The rights list of one group or task: at most [`Acl::MAX_ENTRIES`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    pub entries: BTreeMap<Principal, Grant>,
}

impl Acl {
    pub const MAX_ENTRIES: usize = 100;

    /// Sets `principal`'s entry; an entry that allows and denies nothing is removed.
    pub fn set(&mut self, principal: Principal, grant: Grant) -> Result<(), String> {
        if grant.allow.is_empty() && grant.deny.is_empty() {
            self.entries.remove(&principal);
            return Ok(());
        }
        if !self.entries.contains_key(&principal) && self.entries.len() >= Acl::MAX_ENTRIES {
            return Err(format!(
                "a rights list holds at most {} entries",
                Acl::MAX_ENTRIES
            ));
        }
        self.entries.insert(principal, grant);
        Ok(())
    }

    fn apply(&self, who: &Principal, rights: Rights) -> Rights {
        match self.entries.get(who) {
            Some(grant) => rights.with(grant.allow).without(grant.deny),
            None => rights,
        }
    }
}

/// The caller's rights on an object whose lists, from the root of its lineage down to the
/// object itself, are `lineage` (a missing list is an empty one).
pub fn effective<'a>(
    user: &str,
    role: Role,
    lineage: impl IntoIterator<Item = Option<&'a Acl>>,
) -> Rights {
    if role == Role::Administrator {
        return Rights::ALL;
    }
    let (as_role, as_account) = (Principal::Role(role), Principal::Account(user.to_string()));
    lineage
        .into_iter()
        .flatten()
        .fold(Rights::of_role(role), |rights, acl| {
            acl.apply(&as_account, acl.apply(&as_role, rights))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(&str, &str, &str)]) -> Acl {
        let mut acl = Acl::default();
        for (who, allow, deny) in entries {
            let grant = Grant {
                allow: Rights::parse(allow).unwrap(),
                deny: Rights::parse(deny).unwrap(),
            };
            acl.set(Principal::parse(who).unwrap(), grant).unwrap();
        }
        acl
    }

    #[test]
    fn rights_parse_and_print() {
        assert_eq!(
            Rights::parse("read,execute").unwrap().to_string(),
            "read,execute"
        );
        assert_eq!(
            Rights::parse("x, r").unwrap(),
            Rights::READ.with(Rights::EXECUTE)
        );
        assert_eq!(Rights::parse("all").unwrap(), Rights::ALL);
        assert_eq!(Rights::NONE.to_string(), "none");
        assert!(Rights::parse("write").unwrap_err().contains("write"));
        assert_eq!(
            Principal::parse("role:operator").unwrap(),
            Principal::Role(Role::Operator)
        );
        assert_eq!(
            Principal::parse("account:paris-op").unwrap().to_string(),
            "account:paris-op"
        );
        assert!(Principal::parse("paris-op").is_err());
        assert!(Principal::parse("role:king").is_err());
    }

    #[test]
    fn the_nearer_entry_wins_and_an_account_over_its_role() {
        // Denied the whole tree, allowed again on Paris.
        let root = acl(&[("account:paris-op", "", "all")]);
        let paris = acl(&[("account:paris-op", "read,execute", "")]);
        let op = |lineage: Vec<Option<&Acl>>| effective("paris-op", Role::Operator, lineage);
        assert_eq!(op(vec![Some(&root), None]), Rights::NONE);
        assert_eq!(
            op(vec![Some(&root), Some(&paris)]),
            Rights::READ.with(Rights::EXECUTE)
        );
        assert_eq!(op(vec![None, None]), Rights::ALL);
        // Another operator is not concerned by paris-op's entries.
        assert_eq!(
            effective("berlin-op", Role::Operator, [Some(&root), Some(&paris)]),
            Rights::ALL
        );
        // At one level the account's entry is applied after its role's.
        let both = acl(&[
            ("role:operator", "", "execute"),
            ("account:paris-op", "x", ""),
        ]);
        assert_eq!(op(vec![Some(&both)]), Rights::ALL);
        assert_eq!(
            effective("berlin-op", Role::Operator, [Some(&both)]),
            Rights::READ.with(Rights::MODIFY)
        );
        // An auditor gains what a list allows it; an administrator is never denied.
        let auditors = acl(&[("role:auditor", "execute", "")]);
        assert_eq!(
            effective("a", Role::Auditor, [Some(&auditors)]),
            Rights::READ.with(Rights::EXECUTE)
        );
        let no_admins = acl(&[("role:administrator", "", "all")]);
        assert_eq!(
            effective("root", Role::Administrator, [Some(&no_admins)]),
            Rights::ALL
        );
    }

    #[test]
    fn an_empty_entry_is_removed_and_a_list_is_bounded() {
        let mut acl = acl(&[("account:a", "read", "")]);
        acl.set(Principal::parse("account:a").unwrap(), Grant::default())
            .unwrap();
        assert!(acl.entries.is_empty());
        for i in 0..Acl::MAX_ENTRIES {
            let grant = Grant {
                allow: Rights::READ,
                deny: Rights::NONE,
            };
            acl.set(Principal::Account(format!("a{i}")), grant).unwrap();
        }
        let grant = Grant {
            allow: Rights::READ,
            deny: Rights::NONE,
        };
        assert!(
            acl.set(Principal::Account("one-more".into()), grant)
                .is_err()
        );
    }
}

//! Rights lists as the Security tab of a task and a group's page show them, and the form
//! that sets or removes one entry: the same for both, sent to each one's own request.

use maud::{Markup, html};

use super::{Session, csrf_field, field};
use crate::model::rights::{Grant, Principal, Rights};
use crate::wire::msg::{RightsChange, RightsView};

/// The lists from the root group down, the entries of the object's own list (`own`) each
/// with Remove, the caller's rights, and a form to set one entry; the forms post to
/// `action` with the `hidden` field that names the object.
pub(super) fn section(
    session: &Session,
    view: &RightsView,
    own: &str,
    action: &str,
    hidden: Option<(&str, &str)>,
) -> Markup {
    let entries: Vec<_> = view
        .lists
        .iter()
        .flat_map(|(list, entries)| entries.iter().map(move |(who, grant)| (list, who, grant)))
        .collect();
    html! {
        @if entries.is_empty() {
            p.no-rights { "No entries: each role has its default rights." }
        } @else {
            table.rights {
                thead { tr { th { "List" } th { "Who" } th { "Allow" } th { "Deny" } th { "" } } }
                tbody {
                    @for (list, who, grant) in &entries {
                        tr data-who=(who.to_string()) data-list=(list) {
                            td { (list) } td { (who.to_string()) }
                            td.allow { (grant.allow.to_string()) } td.deny { (grant.deny.to_string()) }
                            td {
                                // An entry is removed where it is set: in an upper group's
                                // list it is that group's to change.
                                @if list.as_str() == own {
                                    form.inline method="post" action=(action) {
                                        (csrf_field(session))
                                        @if let Some((name, value)) = hidden { input type="hidden" name=(name) value=(value); }
                                        input type="hidden" name="who" value=(who.to_string());
                                        button type="submit" name="action" value="remove" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.yours { "Your rights on " (view.object) ": " (view.yours.to_string()) }
        h3 { "Set an entry" }
        form.block.set-rights method="post" action=(action) {
            (csrf_field(session))
            @if let Some((name, value)) = hidden { input type="hidden" name=(name) value=(value); }
            p { label { "Who " input name="who" placeholder="role:operator or account:NAME" autocomplete="off"; } }
            p { label { "Allow " input name="allow" placeholder="read,modify,execute"; } }
            p { label { "Deny " input name="deny" placeholder="none"; } }
            p { button type="submit" name="action" value="set" { "Set" } }
        }
        p { "Rights are read, modify and execute, comma-separated, or all, or none. \
             An entry that allows and denies nothing is removed." }
    }
}

/// The entry the rights form asks for: `who` with what it allows and denies, or with
/// nothing (Remove), which the server takes as removing the entry.
pub(super) fn change_of(fields: &[(String, String)]) -> Result<RightsChange, String> {
    let who = field(fields, "who").unwrap_or_default();
    let principal = Principal::parse(&who)?;
    if field(fields, "action").as_deref() == Some("remove") {
        return Ok(RightsChange {
            principal,
            grant: Grant::default(),
        });
    }
    let grant = Grant {
        allow: Rights::parse(&field(fields, "allow").unwrap_or_default())?,
        deny: Rights::parse(&field(fields, "deny").unwrap_or_default())?,
    };
    if grant == Grant::default() {
        return Err(format!(
            "allowing and denying nothing: use Remove to remove the entry of {principal}"
        ));
    }
    Ok(RightsChange { principal, grant })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_rights_form_names_one_entry() {
        let set = change_of(&fields(&[
            ("who", "account:paris-op"),
            ("allow", "read,execute"),
            ("deny", ""),
            ("action", "set"),
        ]))
        .unwrap();
        assert_eq!(set.principal, Principal::Account("paris-op".into()));
        assert_eq!(set.grant.allow, Rights::READ.with(Rights::EXECUTE));
        assert!(set.grant.deny.is_empty());
        let removed =
            change_of(&fields(&[("who", "role:operator"), ("action", "remove")])).unwrap();
        assert_eq!(removed.grant, Grant::default());
        for bad in [
            fields(&[("who", "paris-op"), ("allow", "read")]),
            fields(&[("who", "account:p"), ("allow", "write")]),
            fields(&[("who", "account:p"), ("allow", ""), ("deny", "none")]),
        ] {
            assert!(change_of(&bad).is_err(), "{bad:?}");
        }
    }
}

//! A task's revision history: a copy of the task at each change, who made it, when, what
//! kind of change it was and why; and the settings that differ between two revisions,
//! never a password (only that it changed).

use serde::{Deserialize, Serialize};

use super::UnixMillis;
use super::task::{TaskAccount, TaskRecord, TaskType};

/// What made a revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum RevisionAction {
    Created,
    Edited,
    /// The settings of revision `to` again, as a new revision.
    RolledBack {
        to: u32,
    },
    Deleted,
    Restored,
    /// A start for selected devices replaced the scope.
    ScopeSetByStart,
    /// The user of a local task's device changed its schedule.
    DeviceUserEdit,
    Imported,
    Copied {
        from: String,
    },
    /// The Change tasks password wizard set the account's new password: the previous one
    /// matched (`forced` false) or the administrator forced it.
    PasswordChanged {
        forced: bool,
    },
    /// The Change tasks password wizard deleted the credentials: the default account.
    CredentialsDeleted,
}

impl std::fmt::Display for RevisionAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevisionAction::Created => f.write_str("created"),
            RevisionAction::Edited => f.write_str("edited"),
            RevisionAction::RolledBack { to } => write!(f, "rolled back to revision {to}"),
            RevisionAction::Deleted => f.write_str("deleted"),
            RevisionAction::Restored => f.write_str("restored"),
            RevisionAction::ScopeSetByStart => f.write_str("scope set by a start"),
            RevisionAction::DeviceUserEdit => f.write_str("changed by the device's user"),
            RevisionAction::Imported => f.write_str("imported"),
            RevisionAction::Copied { from } => write!(f, "copied from {from:?}"),
            RevisionAction::PasswordChanged { forced: false } => {
                f.write_str("password changed (the previous one matched)")
            }
            RevisionAction::PasswordChanged { forced: true } => {
                f.write_str("password changed (forced)")
            }
            RevisionAction::CredentialsDeleted => f.write_str("credentials deleted"),
        }
    }
}

/// One revision of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRevision {
    pub revision: u32,
    pub at: UnixMillis,
    /// The account (or "the device's user") that made it.
    pub by: String,
    pub action: RevisionAction,
    pub comment: Option<String>,
    /// The task as it was at this revision (its password sealed, as stored).
    pub task: TaskRecord,
}

/// One setting that differs between two revisions, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingChange {
    pub setting: String,
    pub before: String,
    pub after: String,
}

/// The longest comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 500;

/// Checks a revision's comment: at most [`MAX_COMMENT_CHARS`], no control characters but
/// line breaks.
pub fn check_comment(comment: &str) -> Result<(), String> {
    let chars = comment.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(format!(
            "the comment is {chars} characters long; at most {MAX_COMMENT_CHARS} are allowed"
        ));
    }
    if comment.chars().any(|c| c.is_control() && c != '\n') {
        return Err("the comment must not contain control characters".into());
    }
    Ok(())
}

/// Every setting as (name, value in words), in a fixed order; `scope` says a scope in
/// words (with group paths, which only the server knows). A password is "set" or "not set".
fn settings(task: &TaskRecord, scope: &dyn Fn(&TaskRecord) -> String) -> Vec<(String, String)> {
    let s = &task.settings;
    let o = &s.schedule_options;
    let mut rows = vec![
        ("name".to_string(), task.name.clone()),
        ("type".to_string(), task.task_type.type_name().to_string()),
    ];
    let parameters = match &task.task_type {
        TaskType::Device(payload) => serde_json::to_value(payload).ok(),
        other => serde_json::to_value(other).ok(),
    };
    // Each parameter of the type on a row of its own: {"Scan": {"paths": [...]}}.
    if let Some(serde_json::Value::Object(by_type)) = parameters {
        for (_, value) in by_type {
            if let serde_json::Value::Object(fields) = value {
                for (field, value) in fields {
                    rows.push((field, value.to_string()));
                }
            }
        }
    }
    let (account, password) = match &s.account {
        TaskAccount::Default => ("default account".to_string(), "none".to_string()),
        TaskAccount::Specified { name, password } => (
            name.clone(),
            match password {
                Some(_) => "set".into(),
                None => "not set".into(),
            },
        ),
    };
    rows.extend([
        ("application".to_string(), task.application.clone()),
        ("scope".to_string(), scope(task)),
        ("schedule".to_string(), s.schedule.to_string()),
        ("run missed".to_string(), o.run_missed.to_string()),
        ("random delay".to_string(), o.random_delay.to_string()),
        (
            "stop after".to_string(),
            o.time_limit_secs
                .map_or_else(|| "none".into(), |t| format!("{t} s")),
        ),
        (
            "cancel schedule from".to_string(),
            o.cancel_from
                .map_or_else(|| "never".into(), |at| at.to_string()),
        ),
        ("restart".to_string(), format!("{:?}", s.restart)),
        ("account".to_string(), account),
        ("password".to_string(), password),
        ("notify".to_string(), format!("{:?}", s.notify)),
        (
            "store history".to_string(),
            format!("{} days", s.store_history_days),
        ),
    ]);
    rows
}

/// The settings that differ from `before` to `after`. A password that differs (another
/// one sealed) shows as "changed", never its value.
pub fn diff(
    before: &TaskRecord,
    after: &TaskRecord,
    scope: &dyn Fn(&TaskRecord) -> String,
) -> Vec<SettingChange> {
    let a = settings(before, scope);
    let b = settings(after, scope);
    let mut changes = Vec::new();
    for (setting, old) in &a {
        let new = b
            .iter()
            .find(|(s, _)| s == setting)
            .map_or_else(|| "-".to_string(), |(_, v)| v.clone());
        if *old != new {
            changes.push(SettingChange {
                setting: setting.clone(),
                before: old.clone(),
                after: new,
            });
        }
    }
    for (setting, new) in &b {
        if !a.iter().any(|(s, _)| s == setting) {
            changes.push(SettingChange {
                setting: setting.clone(),
                before: "-".into(),
                after: new.clone(),
            });
        }
    }
    let sealed = |t: &TaskRecord| match &t.settings.account {
        TaskAccount::Specified {
            password: Some(p), ..
        } => Some(p.clone()),
        _ => None,
    };
    if let (Some(old), Some(new)) = (sealed(before), sealed(after))
        && old != new
    {
        changes.push(SettingChange {
            setting: "password".into(),
            before: "set".into(),
            after: "changed".into(),
        });
    }
    changes
}

#[cfg(test)]
mod tests;

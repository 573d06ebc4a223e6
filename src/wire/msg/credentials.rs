//! The Change tasks password wizard's request and answer: a new password for every task of
//! this server that runs under an account.

use serde::{Deserialize, Serialize};

use super::Secret;

/// Step 1 of the wizard, with the administrator's choices of step 2 if made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsChange {
    /// The account name the tasks run under.
    pub account: String,
    pub new_password: Secret,
    /// Where given and matching a task's password, that task gets the new one at once.
    pub previous_password: Option<Secret>,
    /// What to do with each other task (by id or name); a task not named is left as it is
    /// and listed as waiting for a choice.
    pub choices: Vec<(String, CredentialChoice)>,
    /// Why, for each task's revision history.
    pub comment: Option<String>,
}

/// What the administrator chose for a task whose password the previous one did not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum CredentialChoice {
    /// The task runs under the default account from now on.
    DeleteCredentials,
    /// The new password, although the previous one was not given or did not match.
    ForceNewPassword,
    NoAction,
}

/// Step 3: what became of one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsResult {
    pub task_id: u64,
    pub task_name: String,
    pub outcome: CredentialOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum CredentialOutcome {
    /// The previous password matched: replaced, as revision `revision`.
    Replaced { revision: u32 },
    /// The new password forced, as revision `revision`.
    Forced { revision: u32 },
    /// The credentials deleted, as revision `revision`.
    CredentialsDeleted { revision: u32 },
    /// Left as it is, as the administrator chose.
    NoAction,
    /// The administrator must choose: the reason why the password was not replaced.
    ChoiceNeeded { reason: String },
}

impl std::fmt::Display for CredentialOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialOutcome::Replaced { revision } => {
                write!(f, "password replaced (revision {revision})")
            }
            CredentialOutcome::Forced { revision } => {
                write!(f, "new password forced (revision {revision})")
            }
            CredentialOutcome::CredentialsDeleted { revision } => write!(
                f,
                "credentials deleted, runs under the default account (revision {revision})"
            ),
            CredentialOutcome::NoAction => f.write_str("no action"),
            CredentialOutcome::ChoiceNeeded { reason } => write!(f, "choice needed: {reason}"),
        }
    }
}

//! The task export file: one task's type, parameters, settings and schedule, as TOML text
//! after a two-line header that names the format's version and the SHA-256 of the text, so
//! that a damaged, truncated or edited file is refused rather than half-read. It never holds
//! a password: only the account's name and whether a password was set, so the importer
//! knows one is needed. The scope is not exported: the importer gives one.
//!
//! ```text
//! canopy-task-export 1
//! sha256 3b0c…(64 hex digits of the SHA-256 of everything after this line)
//! name = "Friday scan"
//! ...
//! ```

use serde::{Deserialize, Serialize};

use super::schedule::{Schedule, ScheduleOptions};
use super::task::{Notify, RestartPolicy, TaskPayload};

/// The first word of an export file.
pub const MAGIC: &str = "canopy-task-export";
/// The version of the format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest export file read (it travels in one admin request); a task's parameters
/// are far smaller.
pub const MAX_FILE_BYTES: usize = 128 * 1024;

/// One exported task. Only device tasks are exported: a server task (backup, maintenance)
/// belongs to the server it was made on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedTask {
    pub name: String,
    /// The application the task belongs to.
    pub application: String,
    /// The schedule as `--schedule` reads it (`weekly:fri@19:00`).
    pub schedule: String,
    /// The account the task runs under when not the default one; never its password.
    #[serde(default)]
    pub account: Option<String>,
    /// Whether the exported task had a password for `account`: the importer must set one.
    #[serde(default)]
    pub account_password_set: bool,
    pub notify: Notify,
    pub keep_days: u32,
    /// The server it was exported from, and when (for people).
    pub exported_from: String,
    pub exported_at: String,
    pub restart: RestartPolicy,
    pub schedule_options: ScheduleOptions,
    /// The task type and its parameters.
    pub parameters: TaskPayload,
}

/// Why a file is not imported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is {0} bytes; an export file is at most {MAX_FILE_BYTES} bytes")]
    TooLarge(usize),
    #[error("not a Canopy task export: its first line is not \"{MAGIC} VERSION\"")]
    NotAnExport,
    #[error(
        "the file's format version {0:?} is not one this server reads (it reads version \
         {FORMAT_VERSION})"
    )]
    UnknownVersion(String),
    #[error(
        "the file is damaged: its checksum does not match its content (truncated, or edited \
         after export)"
    )]
    Checksum,
    #[error("unknown task type or parameter in the file: {0}")]
    UnknownType(String),
    #[error("the task in the file cannot be read: {0}")]
    Body(String),
    #[error("{0}")]
    Invalid(String),
}

/// The SHA-256 of `body`, in lowercase hex.
fn checksum(body: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The file for `task`.
pub fn encode(task: &ExportedTask) -> Result<String, String> {
    let body = toml::to_string(task).map_err(|e| format!("cannot write the export: {e}"))?;
    Ok(with_header(&body))
}

/// The file of a TOML body as it is: the header with this format's version and the body's
/// checksum, then the body.
pub fn with_header(body: &str) -> String {
    format!(
        "{MAGIC} {FORMAT_VERSION}\nsha256 {}\n{body}",
        checksum(body)
    )
}

/// Reads and checks a file: its size, header, version and checksum, then the task: a name
/// that is a valid display name, a schedule that parses, parameters that hold together.
pub fn decode(file: &[u8]) -> Result<ExportedTask, ImportError> {
    if file.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge(file.len()));
    }
    let text = std::str::from_utf8(file).map_err(|_| ImportError::NotAnExport)?;
    let (first, rest) = text.split_once('\n').ok_or(ImportError::NotAnExport)?;
    let version = first
        .strip_prefix(MAGIC)
        .and_then(|v| v.strip_prefix(' '))
        .ok_or(ImportError::NotAnExport)?
        .trim_end_matches('\r');
    if version != FORMAT_VERSION.to_string() {
        return Err(ImportError::UnknownVersion(
            version.chars().take(20).collect(),
        ));
    }
    let (second, body) = rest.split_once('\n').ok_or(ImportError::Checksum)?;
    let stated = second
        .strip_prefix("sha256 ")
        .ok_or(ImportError::Checksum)?;
    if stated.trim_end_matches('\r') != checksum(body) {
        return Err(ImportError::Checksum);
    }
    let task: ExportedTask = toml::from_str(body).map_err(|e| {
        let message = e.message().to_string();
        if message.contains("unknown variant") || message.contains("unknown field") {
            ImportError::UnknownType(message)
        } else {
            ImportError::Body(message)
        }
    })?;
    super::check_display_name("the task's name", &task.name).map_err(ImportError::Invalid)?;
    Schedule::parse(&task.schedule).map_err(ImportError::Invalid)?;
    task.parameters.check().map_err(ImportError::Invalid)?;
    Ok(task)
}

#[cfg(test)]
mod tests;

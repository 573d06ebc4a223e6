//! Local tasks on the device user's side.
//!
//! The running agent holds the lock of its database, so the user's commands never open it:
//!
//! * A change (`canopy agent local-task edit`) is a small JSON file
//!   ([`EditRequest`]) in the spool directory `<data>.edits/` (mode 0700), named
//!   `<unix ms, 13 digits>-<16 hex digits>.json`, written under a hidden temporary name and
//!   renamed. The agent looks there every [`SPOOL_POLL`], checks each request (the task is one
//!   of this device's, the schedule parses), records it as the task's pending change, sends
//!   it to the server if connected, and deletes the file. A request it refuses is renamed
//!   `*.json.rejected` with the reason appended.
//! * What the user sees (`canopy agent local-task list`) is the snapshot
//!   `<data>.local-tasks.json` ([`Snapshot`], mode 0600) the agent rewrites (atomically)
//!   whenever its local tasks change.
//!
//! The server decides: if an administrator changed the task since the revision the user's
//! change was made from, the administrator's change wins and the user's is dropped.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::clock::now_ms;
use crate::model::schedule::Schedule;
use crate::model::task::TaskPayload;
use crate::store::agent::{LocalTask, PendingEdit};
use crate::store::{Store, StoreError};

/// How often the agent looks for the user's requests.
pub const SPOOL_POLL: Duration = Duration::from_millis(500);
/// Requests handled per look, so a flood cannot stall the agent.
const REQUESTS_PER_POLL: usize = 64;
/// A request is a few hundred bytes; anything much bigger is not one.
const MAX_REQUEST_BYTES: u64 = 16 * 1024;

const REQUEST_SUFFIX: &str = ".json";
const REJECTED_SUFFIX: &str = ".rejected";

/// `<data>.edits`: where the user's change requests wait for the agent.
pub fn spool_dir(data: &Path) -> PathBuf {
    with_suffix(data, ".edits")
}

/// `<data>.local-tasks.json`: the agent's view of its local tasks, for the user.
pub fn snapshot_path(data: &Path) -> PathBuf {
    with_suffix(data, ".local-tasks.json")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// One change the device's user asks for: one file of the spool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The task's id (`7` or `#7`) or its exact name.
    pub task: String,
    /// The new schedule, in the form `Schedule::parse` reads.
    pub schedule: String,
    /// The task's revision the user saw (in the snapshot), when known: if an administrator
    /// changed the task since, the administrator's change wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_revision: Option<u32>,
    pub requested_at_ms: i64,
}

/// The file the agent keeps for `canopy agent local-task list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub device_id: String,
    pub written_at_ms: i64,
    pub tasks: Vec<SnapshotTask>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTask {
    pub task_id: u64,
    pub name: String,
    pub revision: u32,
    pub application: String,
    /// As `Schedule::parse` reads it.
    pub schedule: String,
    /// For people.
    pub schedule_text: String,
    pub payload: TaskPayload,
    /// The user's change the server has not answered yet.
    pub pending_edit: Option<SnapshotEdit>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEdit {
    pub base_revision: u32,
    pub schedule: String,
    pub schedule_text: String,
}

impl SnapshotTask {
    fn of(task: &LocalTask) -> SnapshotTask {
        let d = &task.def;
        SnapshotTask {
            task_id: d.task_id,
            name: d.name.clone(),
            revision: d.revision,
            application: d.application.clone(),
            schedule: d.schedule.spec(),
            schedule_text: d.schedule.to_string(),
            payload: d.payload.clone(),
            pending_edit: task.pending_edit.as_ref().map(|e| SnapshotEdit {
                base_revision: e.base_revision,
                schedule: e.schedule.spec(),
                schedule_text: e.schedule.to_string(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The user's side.

/// Test support: [`write_edit_request`] for the agent of `config`.
#[cfg(feature = "test-support")]
pub fn request_local_edit(
    config: &super::config::AgentConfig,
    task: &str,
    schedule_spec: &str,
) -> anyhow::Result<()> {
    write_edit_request(&config.data, task, schedule_spec).map(|_| ())
}

/// Asks the agent whose data file is `data` to change the schedule of one of its local tasks
/// (by id or name), as `canopy agent local-task edit` does: checks the schedule and leaves
/// the request in the agent's spool; the path of the request file. The running agent takes
/// it within [`SPOOL_POLL`]; a stopped agent when it starts.
pub(crate) fn write_edit_request(
    data: &Path,
    task: &str,
    schedule_spec: &str,
) -> anyhow::Result<PathBuf> {
    let task = task.trim();
    if task.is_empty() {
        bail!("which task? give its id or its name");
    }
    let schedule = Schedule::parse(schedule_spec).map_err(anyhow::Error::msg)?;
    let dir = spool_dir(data);
    make_private_dir(&dir)?;
    // What the user saw: the agent's snapshot (a stale or missing one only leaves it out).
    let base_revision = read_snapshot(data).ok().flatten().and_then(|s| {
        let id = resolve(s.tasks.iter().map(|t| (t.task_id, t.name.as_str())), task).ok()?;
        s.tasks.iter().find(|t| t.task_id == id).map(|t| t.revision)
    });
    let request = EditRequest {
        task: task.to_string(),
        schedule: schedule.spec(),
        base_revision,
        requested_at_ms: now_ms(),
    };
    let mut text = serde_json::to_string_pretty(&request)?;
    text.push('\n');
    let random: u64 = rand::random();
    let name = format!(
        "{:013}-{random:016x}{REQUEST_SUFFIX}",
        request.requested_at_ms
    );
    let path = dir.join(&name);
    write_atomically(&path, text.as_bytes())?;
    Ok(path)
}

/// Creates `dir` (mode 0700) or checks that it is a directory, and restricts it to its owner.
/// Its parent (the agent's data directory) must exist.
pub(crate) fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
            if !meta.is_dir() {
                bail!("{} exists and is not a directory", dir.display());
            }
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("restricting {}", dir.display()))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "cannot create {}: the agent's data directory does not exist (has the agent run \
             with this config?)",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// Writes `bytes` to a hidden temporary file (mode 0600) next to `path`, then renames it, so
/// a reader sees the old file or the whole new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let random: u32 = rand::random();
    let temp = dir.join(format!(".{name}.{random:08x}.tmp"));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// The snapshot the agent last wrote; `None` if there is none.
pub fn read_snapshot(data: &Path) -> anyhow::Result<Option<Snapshot>> {
    let path = snapshot_path(data);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The requests of the spool the agent has not taken yet, and the rejected ones.
pub(crate) fn spooled(data: &Path) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let dir = spool_dir(data);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], vec![])),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let (mut waiting, mut rejected) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_request_name(&name) {
            waiting.push(entry.path());
        } else if name.ends_with(REJECTED_SUFFIX) {
            rejected.push(entry.path());
        }
    }
    waiting.sort();
    rejected.sort();
    Ok((waiting, rejected))
}

fn is_request_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(REQUEST_SUFFIX)
}

/// The task a user means by `wanted`: an id (`7`, `#7`) of one of them, else an exact name.
pub(crate) fn resolve<'a>(
    tasks: impl IntoIterator<Item = (u64, &'a str)> + Clone,
    wanted: &str,
) -> Result<u64, String> {
    let wanted = wanted.trim();
    if let Ok(id) = wanted.trim_start_matches('#').parse::<u64>()
        && tasks.clone().into_iter().any(|(t, _)| t == id)
    {
        return Ok(id);
    }
    let named: Vec<u64> = tasks
        .into_iter()
        .filter(|(_, name)| *name == wanted)
        .map(|(id, _)| id)
        .collect();
    match named.as_slice() {
        [id] => Ok(*id),
        [] => Err(format!("this device has no local task {wanted:?}")),
        ids => Err(format!(
            "{} local tasks are named {wanted:?} (ids {}): give the id",
            ids.len(),
            ids.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The agent's side.

/// The real (not simulated) device's desk for its user: the spool it reads, the snapshot it
/// writes, and the signal to its link that there is a change to send.
pub(crate) struct Desk {
    store: Store,
    device_id: String,
    spool: PathBuf,
    snapshot: PathBuf,
    snapshot_due: Notify,
    edits: Notify,
}

/// What one look at the spool did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PickedUp {
    /// Recorded as pending changes.
    pub accepted: usize,
    /// Valid, but the task already had that schedule.
    pub unchanged: usize,
    pub rejected: usize,
}

enum Verdict {
    Remove,
    Reject(String),
}

impl Desk {
    /// Makes the spool directory (0700) if needed.
    pub(crate) fn new(store: Store, device_id: String, data: &Path) -> anyhow::Result<Desk> {
        let spool = spool_dir(data);
        make_private_dir(&spool)?;
        Ok(Desk {
            store,
            device_id,
            spool,
            snapshot: snapshot_path(data),
            snapshot_due: Notify::new(),
            edits: Notify::new(),
        })
    }

    /// The local tasks changed: the snapshot is rewritten soon.
    pub(crate) fn changed(&self) {
        self.snapshot_due.notify_one();
    }

    /// Resolves when the user made a change since the last call (or since the start).
    pub(crate) async fn edited(&self) {
        self.edits.notified().await
    }

    /// Writes the snapshot from the store as it is now.
    pub(crate) async fn write_snapshot(&self) -> anyhow::Result<()> {
        let tasks = self.store.local_tasks(&self.device_id).await?;
        let snapshot = Snapshot {
            device_id: self.device_id.clone(),
            written_at_ms: now_ms(),
            tasks: tasks.iter().map(SnapshotTask::of).collect(),
        };
        let mut text = serde_json::to_string_pretty(&snapshot)?;
        text.push('\n');
        let path = self.snapshot.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes())).await?
    }

    /// Takes the requests waiting in the spool, oldest first.
    pub(crate) async fn pick_up(&self) -> anyhow::Result<PickedUp> {
        let spool = self.spool.clone();
        let requests = tokio::task::spawn_blocking(move || read_spool(&spool)).await??;
        let mut done = PickedUp::default();
        if requests.is_empty() {
            return Ok(done);
        }
        let tasks = self.store.local_tasks(&self.device_id).await?;
        let mut verdicts = Vec::with_capacity(requests.len());
        let mut failure = None;
        for (path, request) in requests {
            let checked = request.and_then(|r| {
                let task_id = resolve(
                    tasks.iter().map(|t| (t.def.task_id, t.def.name.as_str())),
                    &r.task,
                )?;
                let schedule = Schedule::parse(&r.schedule)
                    .map_err(|e| format!("schedule {:?}: {e}", r.schedule))?;
                Ok((task_id, r.base_revision, schedule))
            });
            let (task_id, seen, schedule) = match checked {
                Ok(checked) => checked,
                Err(reason) => {
                    verdicts.push((path, Verdict::Reject(reason)));
                    continue;
                }
            };
            let recorded = self
                .store
                .set_pending_edit(&self.device_id, task_id, seen, schedule.clone())
                .await;
            match recorded {
                Ok(Some(PendingEdit { base_revision, .. })) => {
                    tracing::info!(
                        task_id,
                        base_revision,
                        "the device's user changed the schedule of local task #{task_id} to \
                         {schedule}; waiting for the server"
                    );
                    done.accepted += 1;
                    verdicts.push((path, Verdict::Remove));
                }
                Ok(None) => {
                    tracing::info!(
                        task_id,
                        "local task #{task_id} already runs {schedule}: nothing to change"
                    );
                    done.unchanged += 1;
                    verdicts.push((path, Verdict::Remove));
                }
                Err(StoreError::Rejected(reason)) => verdicts.push((path, Verdict::Reject(reason))),
                Err(e) => {
                    // Not the request's fault: it stays for the next look.
                    failure = Some(e);
                    break;
                }
            }
        }
        done.rejected = verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Reject(_)))
            .count();
        if done.accepted > 0 {
            self.edits.notify_one();
            self.changed();
        }
        tokio::task::spawn_blocking(move || {
            for (path, verdict) in verdicts {
                settle_request(&path, verdict);
            }
        })
        .await?;
        match failure {
            Some(e) => Err(e).context("cannot record the user's change"),
            None => Ok(done),
        }
    }
}

/// The requests of the spool, oldest first (their names start with the time), each read and
/// decoded or with why it is not a request.
fn read_spool(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Result<EditRequest, String>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if let Ok(name) = entry.file_name().into_string()
            && is_request_name(&name)
        {
            names.push(name);
        }
    }
    names.sort();
    names.truncate(REQUESTS_PER_POLL);
    Ok(names
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            let request = read_request(&path);
            (path, request)
        })
        .collect())
}

fn read_request(path: &Path) -> Result<EditRequest, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_REQUEST_BYTES {
        return Err(format!("too large ({} bytes)", meta.len()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not a change request: {e}"))
}

/// Deletes a handled request, or renames a refused one `*.rejected` with the reason appended.
fn settle_request(path: &Path, verdict: Verdict) {
    match verdict {
        Verdict::Remove => {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::error!("cannot delete {}: {e}", path.display());
            }
        }
        Verdict::Reject(reason) => {
            tracing::warn!(
                file = %path.display(),
                "the device user's change request is refused: {reason}"
            );
            let rejected = with_suffix(path, REJECTED_SUFFIX);
            let renamed = std::fs::rename(path, &rejected).and_then(|()| {
                let mut file = std::fs::OpenOptions::new().append(true).open(&rejected)?;
                writeln!(file, "\nrejected: {reason}")
            });
            if let Err(e) = renamed {
                tracing::error!("cannot move {} aside: {e}", path.display());
                // Never look at it again.
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Looks at the spool every [`SPOOL_POLL`] until shutdown.
pub(crate) async fn run_spool(desk: std::sync::Arc<Desk>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SPOOL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        match desk.pick_up().await {
            Ok(_) => last_error = None,
            Err(e) => {
                let e = format!("{e:#}");
                // Once per distinct problem, not twice a second.
                if last_error.as_ref() != Some(&e) {
                    tracing::warn!("cannot take the device user's changes: {e}");
                    last_error = Some(e);
                }
            }
        }
    }
}

/// Rewrites the snapshot at the start and whenever the local tasks change, until shutdown.
pub(crate) async fn run_snapshots(desk: std::sync::Arc<Desk>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = desk.write_snapshot().await {
            tracing::warn!("cannot write the local tasks' snapshot: {e:#}");
        }
        tokio::select! {
            _ = desk.snapshot_due.notified() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;

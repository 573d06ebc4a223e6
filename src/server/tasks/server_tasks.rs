//! Administration Server tasks: backup and maintenance, each run as a run with one record,
//! for the server; and the pruning of task history.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::model::task::{DeviceProgress, DeviceState, Outcome, RunId, TaskRecord, TaskType};
use crate::model::{EventKind, RunRef, Severity, UnixMillis, format_time};
use crate::server::{Node, now_ms};

/// How often results older than their task's store-history days are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The record id of the server itself in a server task's run.
pub(super) const SERVER_TARGET: &str = crate::model::task::SERVER_RECORD;

pub(super) async fn run_server_task(node: &Arc<Node>, task: &TaskRecord, run_id: RunId) {
    let started = now_ms();
    let report = |progress| node.device_progress(SERVER_TARGET, RunRef::Ordered(run_id), progress);
    if let Err(e) = report(DeviceProgress::Started { at: started }).await {
        tracing::error!("cannot record the start of a server task: {e}");
    }
    let outcome = match &task.task_type {
        TaskType::Backup { directory } => backup(node, directory.as_deref()).await,
        TaskType::Maintenance => match node.store.compact().await {
            Ok(r) => Outcome {
                state: DeviceState::Succeeded,
                description: format!(
                    "database compacted: {} bytes freed ({} -> {} bytes)",
                    r.freed(),
                    r.bytes_before,
                    r.bytes_after
                ),
                progress: 100,
                need_restart: false,
                details: crate::model::task::Details::None,
            },
            Err(e) => Outcome::failed(format!("maintenance failed: {e}")),
        },
        TaskType::Device(_) => Outcome::failed("a device task cannot run on the server"),
    };
    let msg = format!(
        "{} task {:?}: {}",
        task.task_type.type_name(),
        task.name,
        outcome.description
    );
    let severity = if outcome.state == DeviceState::Succeeded {
        Severity::Info
    } else {
        Severity::Error
    };
    node.event(severity, EventKind::ServerTask, msg).await;
    let finished = DeviceProgress::Finished {
        started,
        finished: now_ms(),
        outcome,
    };
    if let Err(e) = report(finished).await {
        tracing::error!("cannot record the end of a server task: {e}");
    }
}

/// Where a backup task writes: `requested` inside `root` (relative paths are taken from
/// `root`), or why not. Checked on the words of the path, so `..` is refused outright.
pub(super) fn backup_directory(root: &Path, requested: Option<&str>) -> Result<PathBuf, String> {
    let Some(requested) = requested else {
        return Ok(root.to_path_buf());
    };
    let path = root.join(requested);
    let climbs = Path::new(requested)
        .components()
        .any(|c| matches!(c, Component::ParentDir));
    if climbs || !path.starts_with(root) {
        return Err(format!(
            "the backup directory {requested:?} is not inside {} (the server's `backups` directory)",
            root.display()
        ));
    }
    Ok(path)
}

async fn backup(node: &Node, directory: Option<&str>) -> Outcome {
    let data = &node.config.data;
    let dir = match backup_directory(&node.config.backups, directory) {
        Ok(dir) => dir,
        Err(e) => return Outcome::failed(e),
    };
    let stem = data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| node.name().to_string());
    let stamp = format_time(now_ms())
        .replace([' ', ':'], "-")
        .trim_end_matches("-UTC")
        .to_string();
    let path = dir.join(format!("{stem}-{stamp}.redb"));
    match node.store.backup(&path).await {
        Ok(r) => Outcome {
            state: DeviceState::Succeeded,
            description: format!(
                "backup written to {}: {} tables, {} rows, {} bytes",
                r.path.display(),
                r.tables,
                r.rows,
                r.bytes
            ),
            progress: 100,
            need_restart: false,
            details: crate::model::task::Details::None,
        },
        Err(e) => Outcome::failed(format!("backup to {} failed: {e}", path.display())),
    }
}

/// The time history is pruned at: the wall clock, but never ahead of the wall clock at
/// start plus the time elapsed since on the monotonic clock. A clock set years ahead by
/// mistake would otherwise delete every task's history at once; this way a clock that jumps
/// makes pruning keep more, never less. The second value: how far the wall clock is ahead,
/// when that is more than a minute.
fn pruning_time(
    wall_at_start: UnixMillis,
    elapsed: std::time::Duration,
    wall: UnixMillis,
) -> (UnixMillis, Option<i64>) {
    let elapsed = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
    let steady = wall_at_start.saturating_add(elapsed);
    let ahead = wall.saturating_sub(steady);
    (wall.min(steady), (ahead > 60_000).then_some(ahead))
}

/// Prunes task results older than their task's store-history days, now and every hour.
pub(in crate::server) async fn prune_loop(node: Arc<Node>) {
    let (wall_at_start, start) = (now_ms(), std::time::Instant::now());
    loop {
        let (now, ahead) = pruning_time(wall_at_start, start.elapsed(), now_ms());
        if let Some(ahead) = ahead {
            tracing::warn!(
                "the clock is {} s ahead of the time elapsed since the server started: task history is pruned by the elapsed time",
                ahead / 1000
            );
        }
        match node.store.prune_history(now).await {
            Ok(0) => {}
            Ok(n) => {
                let msg = format!("{n} run(s) older than their task's history term pruned");
                node.event(Severity::Info, EventKind::ServerTask, msg).await;
            }
            Err(e) => tracing::error!("cannot prune task history: {e}"),
        }
        let keep = i64::from(node.config.deleted_keep_days) * 24 * 3_600_000;
        match node
            .store
            .prune_deleted_tasks(now.saturating_sub(keep))
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                let msg = format!(
                    "{n} deleted task(s) forgotten with their history after {} days",
                    node.config.deleted_keep_days
                );
                node.event(Severity::Info, EventKind::ServerTask, msg).await;
            }
            Err(e) => tracing::error!("cannot forget deleted tasks: {e}"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_pruned_by_the_time_elapsed_when_the_clock_jumps_ahead() {
        let start = 1_800_000_000_000;
        let hour = Duration::from_secs(3600);
        // A clock that keeps time: the wall clock.
        assert_eq!(
            pruning_time(start, hour, start + 3_600_000),
            (start + 3_600_000, None)
        );
        // Set ten years ahead an hour after start: the time elapsed, and how far ahead.
        let ten_years = 10 * 365 * 86_400_000;
        let (now, ahead) = pruning_time(start, hour, start + 3_600_000 + ten_years);
        assert_eq!((now, ahead), (start + 3_600_000, Some(ten_years)));
        // Set back: the wall clock, which keeps more.
        assert_eq!(pruning_time(start, hour, start - 5), (start - 5, None));
        // No overflow, whatever the inputs.
        assert_eq!(pruning_time(i64::MAX, Duration::MAX, i64::MAX).0, i64::MAX);
    }

    #[test]
    fn a_backup_directory_stays_inside_the_root() {
        let root = Path::new("/var/lib/canopy/backups");
        assert_eq!(backup_directory(root, None).unwrap(), root);
        assert_eq!(
            backup_directory(root, Some("weekly")).unwrap(),
            root.join("weekly")
        );
        assert_eq!(
            backup_directory(root, Some("/var/lib/canopy/backups/x")).unwrap(),
            root.join("x")
        );
        for outside in [
            "/etc",
            "..",
            "a/../../b",
            "/var/lib/canopy/backups/../data",
            "/var/lib/canopy/backups-other",
        ] {
            let e = backup_directory(root, Some(outside)).unwrap_err();
            assert!(e.contains("not inside"), "{outside}: {e}");
        }
    }
}

//! `task pause` and `task resume`, and what a pause or resumption asks of the devices
//! (here, or applied from the parent's log).

use super::find_own;
use super::view::run_view;
use crate::model::task::RunState;
use crate::model::{EventKind, Severity};
use crate::server::auth::Session;
use crate::server::reply::{Reply, error, internal, invalid};
use crate::server::{Node, now_ms};
use crate::store::pause::PauseChange;
use crate::store::rights::Guarded;
use crate::wire::msg::{AdminResponse, ErrorKind, ServerToAgent};

/// Pauses (`paused`) or resumes the task's last run.
pub(super) async fn pause(
    node: &Node,
    session: &Session,
    key: &str,
    paused: bool,
) -> Reply<AdminResponse> {
    let action = if paused { "paused" } else { "resumed" };
    let task = find_own(node, session, key, action).await?;
    let Some(run_id) = task.last_run else {
        return Err(invalid(format!("task {:?} has never run", task.name)));
    };
    let run = node
        .store
        .run(run_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| error(ErrorKind::NotFound, format!("run {run_id} is gone")))?;
    let state = run_view(node, &run).await.state;
    let refusal = match (state, paused) {
        (RunState::Running, true) | (RunState::Paused, false) => None,
        (RunState::Paused, true) => Some("is paused already".to_string()),
        (RunState::Running, false) => Some("is not paused".to_string()),
        (state, _) => Some(format!("is {}", state.as_str())),
    };
    if let Some(why) = refusal {
        return Err(invalid(format!(
            "task {:?} run {run_id} {why}: nothing to {}",
            task.name,
            if paused { "pause" } else { "resume" }
        )));
    }
    let changed = node
        .store
        .pause_run(run_id, paused, now_ms())
        .await
        .map_err(internal)?;
    let Some(change) = changed else {
        // A stop (or the same request) came first.
        return Err(invalid(format!(
            "task {:?} run {run_id} was stopped or {action} meanwhile: nothing to do",
            task.name
        )));
    };
    let msg = format!(
        "task {:?} run {run_id} {action} by {}; {} device(s) of this server told",
        task.name,
        session.user,
        change.tell.len()
    );
    let run = change.run.clone();
    node.apply_pause(change).await;
    node.event_about(
        Severity::Info,
        EventKind::RunPaused,
        msg,
        Guarded::Task(task.id),
    )
    .await;
    Ok(AdminResponse::TaskStats(run_view(node, &run).await))
}

impl Node {
    /// Tells the connected devices of a paused or resumed run, and sends the orders held
    /// back during the pause.
    pub(in crate::server) async fn apply_pause(&self, change: PauseChange) {
        let run = change.run.device_ref();
        let paused = change.run.paused.is_some();
        for device_id in &change.tell {
            let msg = if paused {
                ServerToAgent::Pause { run }
            } else {
                ServerToAgent::Resume { run }
            };
            self.tell_device(device_id, msg).await;
        }
        for (device_id, order) in change.release {
            self.tell_device(&device_id, ServerToAgent::Run(order))
                .await;
        }
    }
}

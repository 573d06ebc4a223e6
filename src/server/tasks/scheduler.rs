//! The server's own scheduler, on the server's clock and in its time zone (config
//! `time_zone`). It starts the tasks the server runs: a device selection's (on the devices
//! of the selection connected then; the others are left out and said so) and the server's
//! own tasks (backup, maintenance). For tasks devices run by themselves on their own
//! schedule it makes the run of each occurrence as it comes here, so statistics show the
//! devices that have not reported yet (for an "at application start" task, one run a day,
//! which its devices join as they run it). Each occurrence is dealt with once, across restarts;
//! one missed while the server was down starts when it is back only with "run missed tasks".

use std::sync::Arc;
use std::time::Duration;

use super::server_tasks::SERVER_TARGET;
use super::targeting::targets;
use crate::model::schedule::LocalDateTime;
use crate::model::scope::Scope;
use crate::model::task::TaskRecord;
use crate::model::{EventKind, Severity, UnixMillis};
use crate::sched::{self, Decision, Held};
use crate::server::{Node, now_ms};
use crate::store::rights::Guarded;

/// The longest the scheduler sleeps: it looks again at least this often.
const LOOK_AGAIN: Duration = Duration::from_secs(30);
/// A start later than this after its time was missed (the server was not running).
const MISSED_AFTER_MS: i64 = 60_000;

pub(in crate::server) async fn schedule_loop(node: Arc<Node>) {
    let mut shutdown = node.shutdown.subscribe();
    loop {
        let wake = plan(&node, now_ms()).await;
        let sleep = sched::wait_until(wake, now_ms(), LOOK_AGAIN);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = node.schedules_changed.notified() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Deals with every occurrence due at `now`; the earliest instant to look again.
async fn plan(node: &Arc<Node>, now: UnixMillis) -> Option<UnixMillis> {
    let read = async {
        Ok((
            node.store.tasks().await?,
            node.store.schedule_marks().await?,
        ))
    };
    let (tasks, marks) = match read.await {
        Ok(read) => read,
        Err::<_, crate::store::StoreError>(e) => {
            tracing::error!("cannot read the scheduled tasks: {e}");
            return None;
        }
    };
    // The day's run of each "at application start" task, made at this server's midnight so
    // that the runs of that day below join it as they roll up.
    for task in tasks.iter().filter(|t| t.runs_at_app_start()) {
        let Some(day) = sched::day_of(now, &node.zone) else {
            continue;
        };
        let cancelled = (task.settings.schedule_options.cancel_from).is_some_and(|c| day >= c);
        if cancelled || marks.get(&task.id).is_some_and(|done| *done >= day) {
            continue;
        }
        let started = node
            .store
            .begin_server_occurrence(task.id, day, Some(Vec::new()), now);
        if let Err(e) = started.await {
            tracing::error!(task = %task.name, "cannot make the day's run: {e}");
        }
    }
    let mut wake: Option<UnixMillis> = None;
    for task in tasks.iter().filter(|t| t.settings.schedule.is_timed()) {
        let options = &task.settings.schedule_options;
        let held = Held {
            schedule: &task.settings.schedule,
            cancel_from: options.cancel_from,
            run_missed: options.run_missed,
            since: task.modified,
            handled: marks.get(&task.id).copied(),
        };
        let (decision, next) = sched::decide(held, &node.zone, |_| 0, MISSED_AFTER_MS, now);
        if let Some(next) = next {
            wake = Some(wake.map_or(next, |w| w.min(next)));
        }
        match decision {
            Decision::Wait => {}
            Decision::Start { key, .. } => start(node, task, key, now).await,
            // Devices run it by themselves whatever the server did: its run is made anyway.
            Decision::Skip { key, .. } if task.runs_on_device_clock() => {
                start(node, task, key, now).await
            }
            Decision::Skip { key, at } => {
                if let Err(e) = node
                    .store
                    .begin_server_occurrence(task.id, key, None, now)
                    .await
                {
                    tracing::error!(task = %task.name, "cannot record a missed start: {e}");
                    continue;
                }
                let msg = format!(
                    "task {:?} did not start at {}: this server was not running then, and \
                     run missed tasks is off",
                    task.name,
                    sched::local_text(at, &node.zone)
                );
                node.event_about(
                    Severity::Warning,
                    EventKind::RunStarted,
                    msg,
                    Guarded::Task(task.id),
                )
                .await;
            }
        }
    }
    wake
}

/// Starts occurrence `key` of `task`, once.
async fn start(node: &Arc<Node>, task: &TaskRecord, key: LocalDateTime, now: UnixMillis) {
    let mut skipped = Vec::new();
    let devices = if task.runs_on_device_clock() {
        Vec::new()
    } else if task.scope == Scope::Server {
        vec![(SERVER_TARGET.to_string(), node.name().to_string())]
    } else {
        match targets(node, task).await {
            Ok((devices, left_out)) => {
                skipped = left_out;
                devices
            }
            Err(e) => {
                tracing::error!(task = %task.name, "cannot find the devices of a scheduled start: {e:?}");
                return;
            }
        }
    };
    let started = node
        .store
        .begin_server_occurrence(task.id, key, Some(devices), now)
        .await;
    let started = match started {
        Ok(Some(started)) => started,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(task = %task.name, %key, "cannot start a scheduled run: {e}");
            return;
        }
    };
    let mut msg = format!(
        "task {:?} run {} started by its schedule ({key}) on {} target(s) of this server",
        started.task.name,
        started.run.run_id,
        started.run.counters.total(),
    );
    if !skipped.is_empty() {
        msg.push_str(&format!("; skipped: {}", skipped.join("; ")));
    }
    let devices = started.device_ids.len() as u64;
    let window = sched::window_secs(task.settings.schedule_options.random_delay, devices);
    if window > 0 && started.order.is_some() {
        msg.push_str(&format!("; starts spread over {window} s"));
    }
    node.event_about(
        Severity::Info,
        EventKind::RunStarted,
        msg,
        Guarded::Task(task.id),
    )
    .await;
    if window > 0 && started.order.is_some() {
        tokio::spawn(deliver_spread(node.clone(), started, window, key));
    } else {
        node.deliver_run(&started);
    }
}

/// Sends a run of a device selection to each device at its own moment within `window_secs`
/// after the start (the randomized delay, as devices draw it for their own schedules),
/// unless the run was stopped or paused meanwhile (a resumption sends the held orders).
async fn deliver_spread(
    node: Arc<Node>,
    started: crate::store::tasks::StartedRun,
    window_secs: u32,
    key: LocalDateTime,
) {
    let window_ms = u64::from(window_secs) * 1000;
    let task_id = started.task.id;
    let mut moments: Vec<(u64, String)> = started
        .device_ids
        .iter()
        .map(|id| {
            (
                sched::random_delay_ms(window_ms, id, task_id, key),
                id.clone(),
            )
        })
        .collect();
    moments.sort();
    let begin = tokio::time::Instant::now();
    let mut shutdown = node.shutdown.subscribe();
    for (delay_ms, device_id) in moments {
        let at = begin + Duration::from_millis(delay_ms);
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            _ = shutdown.changed() => return,
        }
        let run_id = started.run.run_id;
        match node.store.run(run_id).await {
            Ok(Some(run)) if run.stopped.is_none() && run.paused.is_none() => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(run_id, "cannot read a run before sending it: {e}");
                continue;
            }
        }
        let mut one = started.clone();
        one.device_ids = vec![device_id];
        // Nothing chained after the run is ready before a device finishes it.
        one.chained = Vec::new();
        node.deliver_run(&one);
    }
}

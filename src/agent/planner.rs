//! A device's own schedule: the tasks it runs by itself, in its own time zone, whether or not
//! it can reach its server. Each occurrence is dealt with once (started, or found missed),
//! recorded with its run in one transaction of the agent's database before it starts, so no
//! restart or crash starts it twice. A start due while the device was off (or asleep, or the
//! agent stopped) runs as soon as it is back if the task says "run missed tasks", once for
//! the latest occurrence missed; otherwise that occurrence ends "missed".

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::{Notify, watch};

use super::run::Runner;
use crate::clock::now_ms;
use crate::model::schedule::{LocalDateTime, Schedule};
use crate::model::task::Outcome;
use crate::model::{RunRef, UnixMillis};
use crate::sched::{self, Decision, Held};
use crate::store::agent::{HeldSchedule, OccurrenceStart};
use crate::wire::msg::{RunOrder, RunResult, ScheduledTaskDef};

/// The longest the planner sleeps: it looks again at least this often, so a clock that
/// jumped or a device that slept is noticed within it.
const LOOK_AGAIN: Duration = Duration::from_secs(30);

/// How a missed occurrence's record begins its description.
pub const MISSED: &str = "missed";

/// The decision about `held` at `now` for `device_id` in `zone`, and when to look again.
pub(super) fn decide(
    held: &HeldSchedule,
    device_id: &str,
    zone: &TimeZone,
    missed_after: Duration,
    now: UnixMillis,
) -> (Decision, Option<UnixMillis>) {
    let def = &held.def;
    let window_ms = u64::from(def.delay_window_secs) * 1000;
    let schedule = Held {
        schedule: &def.schedule,
        cancel_from: def.cancel_from,
        run_missed: def.run_missed,
        since: def.since,
        handled: held.handled,
    };
    let delay = |key| sched::random_delay_ms(window_ms, device_id, def.task_id, key);
    let missed_after_ms = i64::try_from(missed_after.as_millis()).unwrap_or(i64::MAX);
    sched::decide(schedule, zone, delay, missed_after_ms, now)
}

/// The run of occurrence `key` of `def`, as the device runs it.
pub(super) fn order_of(def: &ScheduledTaskDef, key: LocalDateTime) -> RunOrder {
    RunOrder {
        run: RunRef::Occurrence {
            task_id: def.task_id,
            key,
        },
        task_id: def.task_id,
        task_name: def.name.clone(),
        application: def.application.clone(),
        payload: def.payload.clone(),
        time_limit_secs: def.time_limit_secs,
        account: def.account.clone(),
    }
}

/// One device's planner, a task of its own beside its link.
pub(super) struct Planner {
    pub runner: Runner,
    pub zone: TimeZone,
    pub missed_after: Duration,
    /// Woken when the server sent a change of the device's scheduled tasks.
    pub changed: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
}

impl Planner {
    pub(super) async fn run(mut self) {
        // The scheduled tasks as stored, read again only when the server changed them.
        let mut held: Option<Vec<HeldSchedule>> = None;
        // The first look after the agent started: "at application start" tasks run then.
        let mut agent_start = true;
        loop {
            if held.is_none() {
                match self
                    .runner
                    .store
                    .scheduled_tasks(&self.runner.device_id)
                    .await
                {
                    Ok(read) => held = Some(read),
                    Err(e) => tracing::error!("cannot read the scheduled tasks: {e}"),
                }
            }
            let wake = match held.as_mut() {
                Some(held) => {
                    let wake = self.plan(held, agent_start, now_ms()).await;
                    agent_start = false;
                    wake
                }
                None => None,
            };
            let sleep = sched::wait_until(wake, now_ms(), LOOK_AGAIN);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.changed.notified() => held = None,
                _ = self.shutdown.changed() => return,
            }
            if *self.shutdown.borrow() {
                return;
            }
        }
    }

    /// Deals with every occurrence due at `now` (`agent_start`: the first look since the
    /// agent started); the earliest instant to look again.
    async fn plan(
        &self,
        held: &mut [HeldSchedule],
        agent_start: bool,
        now: UnixMillis,
    ) -> Option<UnixMillis> {
        let device_id = &self.runner.device_id;
        let mut wake: Option<UnixMillis> = None;
        for task in held {
            let (decision, next) = match task.def.schedule {
                Schedule::AtApplicationStart => {
                    let (handled, cancel_from) = (task.handled, task.def.cancel_from);
                    let decision =
                        sched::decide_app_start(handled, cancel_from, &self.zone, agent_start, now);
                    (decision, None)
                }
                _ => decide(task, device_id, &self.zone, self.missed_after, now),
            };
            if let Some(next) = next {
                wake = Some(wake.map_or(next, |w| w.min(next)));
            }
            if let Some(key) = self.carry_out(&task.def, decision, now).await {
                // As the store now has it.
                task.handled = Some(key);
            }
        }
        wake
    }

    /// Starts or skips the occurrence `decision` names; the key dealt with, if any.
    async fn carry_out(
        &self,
        def: &ScheduledTaskDef,
        decision: Decision,
        now: UnixMillis,
    ) -> Option<LocalDateTime> {
        let (key, start) = match decision {
            Decision::Wait => return None,
            Decision::Start { key, late } => {
                if late {
                    tracing::info!(
                        task = %def.name,
                        %key,
                        "starting a run missed while the device was off (run missed tasks is on)"
                    );
                }
                (key, None)
            }
            Decision::Skip { key, at } => {
                let why = format!(
                    "{MISSED}: the device was off or the agent stopped at {} (run missed tasks is off)",
                    sched::local_text(at, &self.zone)
                );
                (key, Some(why))
            }
        };
        let order = order_of(def, key);
        let run = order.run;
        let start = match start {
            None => OccurrenceStart::Run(order.clone()),
            Some(why) => {
                let result = RunResult {
                    run,
                    started: now,
                    finished: now,
                    outcome: Outcome::failed(why),
                };
                OccurrenceStart::Skip(order.clone(), result)
            }
        };
        let device_id = &self.runner.device_id;
        let begun = self
            .runner
            .store
            .begin_occurrence(device_id, def.task_id, key, start.clone())
            .await;
        match begun {
            Ok(true) => match start {
                OccurrenceStart::Run(order) => self.runner.spawn(order),
                OccurrenceStart::Skip(_, result) => {
                    tracing::info!(task = %def.name, %key, "{}", result.outcome.description);
                    let _ = self
                        .runner
                        .outbox
                        .send(crate::wire::msg::AgentToServer::Result(result));
                }
            },
            Ok(false) => {}
            Err(e) => {
                tracing::error!(%run, "cannot record a scheduled start; not starting it: {e}");
                return None;
            }
        }
        Some(key)
    }
}

#[cfg(test)]
mod tests;

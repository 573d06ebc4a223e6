//! One run of an order on a device: the application gate, the start recorded before the
//! executor begins, cancellation (by an administrator, or because the application stopped),
//! pause and resumption, progress, and the result kept in the run log before it is offered
//! to the server.
//!
//! Every change of a run's state in the log is conditional on the state it changes from, so
//! whichever of "start", "cancelled before it started" or "not started" comes first wins and a
//! run is never both started and refused, nor run twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::apps::{AppStatus, Applications};
use super::exec::account::{self, RunAs};
use super::exec::{self, Control, Report};
use crate::clock::now_ms;
use crate::model::RunRef;
use crate::model::UnixMillis;
use crate::model::schedule::duration_text;
use crate::model::task::{Outcome, TaskAccount};
use crate::store::Store;
use crate::store::agent::LocalRunState;
use crate::store::sealing::SecretKey;
use crate::wire::msg::{AgentToServer, RunOrder, RunResult};

/// The description of a run an administrator cancelled while it ran.
pub const CANCELLED_BY_ADMIN: &str = "cancelled by an administrator";
/// The description of a run an administrator cancelled before it started.
pub const CANCELLED_BEFORE_START: &str = "cancelled by an administrator before it started";
/// How a run stopped at its task's time limit begins its description.
pub const FAILED_BY_TIMEOUT: &str = "failed by timeout";
/// How often the application of a running run is checked.
pub const APPLICATION_CHECK_EVERY: Duration = Duration::from_secs(1);
/// A run's percentage goes to the server when it moved this many points since it last went
/// (a pause at once): each report is a write on the server, for every device of the run.
pub const PROGRESS_STEP: u8 = 10;
/// ... or when it moved at all and this long has passed since.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// No percentage goes sooner than this after the last report (or the start), so a short run
/// sends none.
pub const PROGRESS_NOT_BEFORE: Duration = Duration::from_secs(1);

/// What the runs of one device share: its run log, the way to its server, its applications.
#[derive(Clone)]
pub struct Runner {
    pub store: Store,
    pub device_id: String,
    /// Start notices and results, to whichever link to the server is up.
    pub outbox: mpsc::UnboundedSender<AgentToServer>,
    pub apps: Arc<Applications>,
    /// How often the application of a running run is checked ([`APPLICATION_CHECK_EVERY`]).
    pub check_every: Duration,
    /// How to steer (cancel, pause, resume) each run going or waiting to start, until its
    /// result is stored; or a pause that came before its order, until the order comes.
    pub controls: Arc<Mutex<HashMap<RunRef, watch::Sender<Control>>>>,
    /// The agent's key: opens the passwords of the accounts its runs are under.
    pub secrets: Arc<SecretKey>,
    /// A simulated device: a run under an account needs its password, which must open, but
    /// is not checked with this machine's PAM and runs as the agent.
    pub simulated: bool,
}

/// A per-(device, run) seed, so a simulated outcome is the same if asked again.
pub(super) fn seed_of(device_id: &str, run: RunRef) -> u64 {
    let text = match run {
        RunRef::Ordered(run_id) => format!("{device_id}/{run_id}"),
        RunRef::Occurrence { task_id, key } => format!("{device_id}/{task_id}@{key}"),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_le_bytes(bytes)
}

impl Runner {
    /// Runs an order kept in the run log (as received) in a task of its own; an
    /// administrator's cancel reaches it through [`Runner::cancel`].
    pub fn spawn(&self, order: RunOrder) {
        let (control, seed) = self.steering(&order);
        let runner = self.clone();
        tokio::spawn(async move { runner.run(order, seed, control).await }.in_current_span());
    }

    /// Whether a new order may be kept as started the moment it arrives: nothing held or
    /// cancelled it before it came, and its application runs. Then [`Runner::spawn_started`]
    /// runs it.
    pub async fn starts_at_once(&self, order: &RunOrder) -> bool {
        let held = self
            .controls()
            .get(&order.run)
            .is_some_and(|control| *control.borrow() != Control::Go);
        !held
            && matches!(
                self.apps.check(&order.application).await,
                AppStatus::Running
            )
    }

    /// Runs an order kept in the run log as started at `started` (see
    /// [`Runner::starts_at_once`]), in a task of its own.
    pub fn spawn_started(&self, order: RunOrder, started: UnixMillis) {
        let (control, seed) = self.steering(&order);
        let runner = self.clone();
        tokio::spawn(
            async move { runner.go(order, seed, control, started).await }.in_current_span(),
        );
    }

    /// The run's control, made if none came before the order, and its seed.
    fn steering(&self, order: &RunOrder) -> (watch::Receiver<Control>, u64) {
        let control = self
            .controls()
            .entry(order.run)
            .or_insert_with(|| watch::channel(Control::Go).0)
            .subscribe();
        (control, seed_of(&self.device_id, order.run))
    }

    fn controls(&self) -> std::sync::MutexGuard<'_, HashMap<RunRef, watch::Sender<Control>>> {
        self.controls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An administrator cancels a run: a running one is stopped, and one received but not
    /// started never starts.
    pub async fn cancel(&self, run: RunRef) {
        {
            let mut controls = self.controls();
            if let Some(control) = controls.get(&run) {
                control.send_replace(Control::Cancel);
                if control.receiver_count() == 0 {
                    // A pause kept for an order that never came: nothing is left to tell.
                    controls.remove(&run);
                }
            }
        }
        if self.cancel_unstarted(run).await {
            tracing::debug!(%run, "run cancelled before it started");
        }
    }

    /// An administrator pauses (`paused`) or resumes a run: one not started yet holds (also
    /// one whose order has not come yet), a running one pauses if its executor can.
    pub fn pause(&self, run: RunRef, paused: bool) {
        let mut controls = self.controls();
        let control = controls
            .entry(run)
            .or_insert_with(|| watch::channel(Control::Go).0);
        control.send_if_modified(|c| {
            let new = if paused { Control::Pause } else { Control::Go };
            let changed = *c != Control::Cancel && *c != new;
            if changed {
                *c = new;
            }
            changed
        });
        if !paused && control.receiver_count() == 0 {
            // Resumed before its order came: nothing to hold.
            controls.remove(&run);
        }
        tracing::info!(%run, "run {}", if paused { "paused" } else { "resumed" });
    }

    /// The server stored the run's result: nothing can cancel it any more.
    pub fn forget(&self, run: RunRef) {
        self.controls().remove(&run);
    }

    /// Runs an order already kept in the run log (as received), at most once. It does not
    /// start if `cancel` is already true, if the run is no longer `Received` in the log, or if
    /// its application is not installed or not running (then it ends Failed, "not started:
    /// ..."); a paused one waits until it is resumed. While it runs, [`Control::Cancel`] (an
    /// administrator), its time limit or its application stopping cancels the executor, and
    /// the result says which.
    pub async fn run(&self, order: RunOrder, seed: u64, mut control: watch::Receiver<Control>) {
        let run = order.run;
        // A paused run that has not started holds here until it is resumed or cancelled.
        let _ = control.wait_for(|c| *c != Control::Pause).await;
        if *control.borrow() == Control::Cancel {
            let outcome = Outcome::failed(CANCELLED_BEFORE_START);
            self.finish(run, LocalRunState::Received, None, outcome)
                .await;
            return;
        }
        let application = order.application.as_str();
        let why = match self.apps.check(application).await {
            AppStatus::Running => None,
            AppStatus::Stopped => Some("is not running"),
            AppStatus::NotInstalled => Some("is not installed"),
        };
        if let Some(why) = why {
            let outcome = Outcome::failed(format!(
                "not started: application \"{application}\" {why} on this device"
            ));
            self.finish(run, LocalRunState::Received, None, outcome)
                .await;
            return;
        }
        let started = now_ms();
        let began = Arc::new(AtomicBool::new(false));
        // Recorded before the executor starts: a crash from here on reports "interrupted".
        let recorded = {
            let began = Arc::clone(&began);
            self.store
                .update_run(&self.device_id, run, move |r| {
                    // The change may be tried more than once: what counts is its last try.
                    let starts = r.state == LocalRunState::Received;
                    if starts {
                        r.state = LocalRunState::Started;
                        r.started = Some(started);
                    }
                    began.store(starts, Ordering::Relaxed);
                })
                .await
        };
        if let Err(e) = recorded {
            tracing::error!(%run, "cannot record the start of a run; not running it: {e}");
            return;
        }
        if !began.load(Ordering::Relaxed) {
            tracing::debug!(%run, "not starting a run that is no longer waiting to start");
            return;
        }
        self.go(order, seed, control, started).await;
    }

    /// A run recorded as started at `started`: tells the server, runs the executor, keeps
    /// and offers the result.
    async fn go(
        &self,
        order: RunOrder,
        seed: u64,
        control: watch::Receiver<Control>,
        started: UnixMillis,
    ) {
        let run = order.run;
        let application = order.application.as_str();
        let _ = self
            .outbox
            .send(AgentToServer::Started { run, at: started });
        tracing::info!(
            task = %order.task_name,
            %run,
            application,
            state = "running",
            "run started"
        );
        let outcome = self.execute(&order, seed, control).await;
        self.finish(run, LocalRunState::Started, Some(started), outcome)
            .await;
    }

    /// The account `order` runs under, its password checked; `None` for the agent's own.
    /// The error is the run's outcome.
    async fn account_of(&self, order: &RunOrder) -> Result<Option<RunAs>, String> {
        let TaskAccount::Specified { name, password } = &order.account else {
            return Ok(None);
        };
        let Some(sealed) = password else {
            return Err(format!(
                "the task runs under the account {name:?}, but no password is set for it"
            ));
        };
        let password = self.secrets.open(sealed).map_err(|_| {
            "the account's password does not open with this agent's key".to_string()
        })?;
        if self.simulated {
            return Ok(None);
        }
        let name = name.clone();
        tokio::task::spawn_blocking(move || account::authenticate(&name, &password))
            .await
            .map_err(|e| format!("cannot check the account's password: {e}"))?
            .map(Some)
    }

    /// Runs the executor until it ends, or until an administrator, the application stopping
    /// or the task's time limit cancels it; a cancelled executor's outcome then says why.
    /// Pauses and resumptions are passed on to the executor, whose reports go to the server;
    /// time spent paused does not count toward the time limit.
    async fn execute(
        &self,
        order: &RunOrder,
        seed: u64,
        mut control: watch::Receiver<Control>,
    ) -> Outcome {
        let run_as = match self.account_of(order).await {
            Ok(run_as) => run_as,
            Err(description) => return Outcome::failed(description),
        };
        let (to_executor, steering, mut reports) = exec::Steering::new();
        to_executor.send_replace(*control.borrow_and_update());
        let executing = exec::execute(&order.payload, seed, steering, run_as.as_ref());
        tokio::pin!(executing);
        let app_stopped = self.until_stopped(&order.application);
        tokio::pin!(app_stopped);
        let mut deadline = order
            .time_limit_secs
            .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs.into()));
        let mut paused_since: Option<tokio::time::Instant> = None;
        let mut sent = (tokio::time::Instant::now(), Report::default());
        let mut steered = true;
        let reason = loop {
            let limit = async {
                match (deadline, paused_since) {
                    (Some(at), None) => tokio::time::sleep_until(at).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                outcome = &mut executing => return outcome,
                changed = control.changed(), if steered => {
                    // The control is gone only once the run is forgotten: nothing to steer.
                    steered = changed.is_ok();
                    match *control.borrow_and_update() {
                        Control::Cancel => break CANCELLED_BY_ADMIN.to_string(),
                        asked => {
                            to_executor.send_replace(asked);
                        }
                    }
                }
                Ok(()) = reports.changed() => {
                    let report = *reports.borrow_and_update();
                    match (report.paused, paused_since) {
                        (true, None) => paused_since = Some(tokio::time::Instant::now()),
                        (false, Some(since)) => {
                            if let Some(at) = &mut deadline {
                                *at += since.elapsed();
                            }
                            paused_since = None;
                        }
                        _ => {}
                    }
                    self.report_progress(order.run, report, &mut sent);
                }
                () = limit => break format!(
                    "{FAILED_BY_TIMEOUT}: ran longer than its time limit of {}",
                    duration_text(order.time_limit_secs.unwrap_or_default())
                ),
                () = &mut app_stopped => break format!(
                    "cancelled: application \"{}\" stopped on this device",
                    order.application
                ),
            }
        };
        to_executor.send_replace(Control::Cancel);
        let outcome = executing.await;
        if exec::is_cancelled(&outcome) {
            Outcome {
                description: reason,
                ..outcome
            }
        } else {
            // It ended on its own before it saw the cancellation: what it did stands.
            outcome
        }
    }

    /// Sends an executor's report: a pause or resumption at once, a new percentage once it
    /// moved [`PROGRESS_STEP`] points or [`PROGRESS_EVERY`] passed. `sent`: when the last one
    /// went, and what it said.
    fn report_progress(
        &self,
        run: RunRef,
        report: Report,
        sent: &mut (tokio::time::Instant, Report),
    ) {
        let paused_changed = report.paused != sent.1.paused;
        let moved = report.percent.abs_diff(sent.1.percent);
        let since = sent.0.elapsed();
        let percent_due = since >= PROGRESS_NOT_BEFORE
            && (moved >= PROGRESS_STEP || (moved > 0 && since >= PROGRESS_EVERY));
        if paused_changed || percent_due {
            let _ = self.outbox.send(AgentToServer::Progress {
                run,
                percent: report.percent,
                paused: report.paused,
            });
            *sent = (tokio::time::Instant::now(), report);
        }
        if paused_changed {
            tracing::info!(%run, percent = report.percent, "run {}", if report.paused { "paused" } else { "resumed" });
        }
    }

    /// Resolves once `application` is no longer running; never for one that cannot stop.
    async fn until_stopped(&self, application: &str) {
        if !self.apps.may_change(application) {
            return std::future::pending().await;
        }
        let every = self.check_every.max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if self.apps.check(application).await != AppStatus::Running {
                return;
            }
        }
    }

    /// An order received but not started never starts: it ends Failed, "cancelled by an
    /// administrator before it started". False if it was not waiting to start.
    pub async fn cancel_unstarted(&self, run: RunRef) -> bool {
        let outcome = Outcome::failed(CANCELLED_BEFORE_START);
        self.finish(run, LocalRunState::Received, None, outcome)
            .await
    }

    /// Ends `run` with `outcome` if the log has it in state `from`: the result is
    /// stored in the run log (the spool) before it is offered to the server. `started` is
    /// the log's start time when None (the finish time for a run that never started). True
    /// if this call ended the run.
    pub async fn finish(
        &self,
        run: RunRef,
        from: LocalRunState,
        started: Option<i64>,
        outcome: Outcome,
    ) -> bool {
        let finished = now_ms();
        let ended: Arc<Mutex<Option<(String, RunResult)>>> = Arc::default();
        let kept = {
            let ended = Arc::clone(&ended);
            self.store
                .update_run(&self.device_id, run, move |r| {
                    // The change may be tried more than once: what counts is its last try.
                    let mut ended = ended.lock().unwrap_or_else(|e| e.into_inner());
                    *ended = None;
                    if r.state != from {
                        return;
                    }
                    let result = RunResult {
                        run,
                        started: started.or(r.started).unwrap_or(finished),
                        finished,
                        outcome: outcome.clone(),
                    };
                    r.state = LocalRunState::Finished;
                    r.result = Some(result.clone());
                    *ended = Some((r.order.task_name.clone(), result));
                })
                .await
        };
        if let Err(e) = kept {
            tracing::error!(%run, "cannot store a result: {e}");
            return false;
        }
        let ended = ended.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((task, result)) = ended else {
            return false;
        };
        tracing::info!(
            task = %task,
            %run,
            state = result.outcome.state.as_str(),
            description = %result.outcome.description,
            "run finished: {}",
            result.outcome.description
        );
        let _ = self.outbox.send(AgentToServer::Result(result));
        true
    }
}

#[cfg(test)]
mod tests;

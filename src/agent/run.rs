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
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::agent::apps::tests::{sleep_copy, until_running};
    use crate::agent::config::AgentConfig;
    use crate::model::device::Application;
    use crate::model::task::{AGENT_APPLICATION, DeviceState, TaskPayload};
    use crate::store::agent::LocalRun;

    const DEVICE: &str = "device-1";

    struct Fixture {
        dir: tempfile::TempDir,
        runner: Runner,
        outbox: mpsc::UnboundedReceiver<AgentToServer>,
    }

    async fn fixture(apps: Applications) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.redb");
        let store = tokio::task::spawn_blocking(move || Store::open_agent(&path))
            .await
            .unwrap()
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        Fixture {
            dir,
            runner: Runner {
                store,
                device_id: DEVICE.to_string(),
                outbox: tx,
                apps: Arc::new(apps),
                check_every: Duration::from_millis(100),
                controls: Arc::default(),
                secrets: Arc::new(SecretKey::random().unwrap()),
                simulated: false,
            },
            outbox: rx,
        }
    }

    fn order(run_id: u64, application: &str, payload: TaskPayload) -> RunOrder {
        RunOrder {
            run: RunRef::Ordered(run_id),
            task_id: 1,
            task_name: format!("task {run_id}"),
            application: application.to_string(),
            payload,
            time_limit_secs: None,
            account: Default::default(),
        }
    }

    fn simulate(duration_ms: u32) -> TaskPayload {
        TaskPayload::Simulate {
            duration_ms,
            succeeded: 1,
            warning: 0,
            failed: 0,
            need_restart_percent: 0,
        }
    }

    impl Fixture {
        /// Keeps `order` as received and runs it to its end, within 10 s.
        async fn run(&self, order: RunOrder, cancel: watch::Receiver<Control>) -> LocalRun {
            let run = order.run;
            assert!(
                self.runner
                    .store
                    .receive_order(DEVICE, order.clone(), None)
                    .await
                    .unwrap()
            );
            tokio::time::timeout(Duration::from_secs(10), self.runner.run(order, 7, cancel))
                .await
                .expect("the run ends");
            self.log(run).await
        }

        async fn log(&self, run: RunRef) -> LocalRun {
            let runs = self.runner.store.local_runs(DEVICE).await.unwrap();
            runs.into_iter()
                .find(|r| r.order.run == run)
                .expect("the run is in the log")
        }

        /// What was offered to the server so far.
        fn sent(&mut self) -> Vec<AgentToServer> {
            std::iter::from_fn(|| self.outbox.try_recv().ok()).collect()
        }
    }

    fn no_cancel() -> watch::Receiver<Control> {
        watch::channel(Control::Go).1
    }

    fn result_of(run: &LocalRun) -> &RunResult {
        assert_eq!(run.state, LocalRunState::Finished);
        run.result.as_ref().expect("a finished run has a result")
    }

    #[tokio::test]
    async fn an_order_that_can_start_at_once_is_kept_started_in_one_write_and_not_said_received() {
        let apps = Applications::fixed(&[Application {
            name: "Stopped App".into(),
            running: false,
        }]);
        let mut f = fixture(apps).await;
        let go = order(1, AGENT_APPLICATION, simulate(0));
        assert!(f.runner.starts_at_once(&go).await);
        let at = now_ms();
        let store = &f.runner.store;
        assert!(
            store
                .receive_order(DEVICE, go.clone(), Some(at))
                .await
                .unwrap()
        );
        let kept = f.log(go.run).await;
        assert_eq!(
            (kept.state, kept.started),
            (LocalRunState::Started, Some(at))
        );
        let commits = store.stats().commits;
        f.runner.spawn_started(go.clone(), at);
        let deadline = Instant::now() + Duration::from_secs(10);
        while f.log(go.run).await.state != LocalRunState::Finished {
            assert!(Instant::now() < deadline, "the run ends");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            store.stats().commits,
            commits + 1,
            "only the result is written"
        );
        let result = result_of(&f.log(go.run).await).clone();
        assert_eq!(result.started, at);
        assert_eq!(
            f.sent(),
            [
                AgentToServer::Started { run: go.run, at },
                AgentToServer::Result(result)
            ]
        );

        // Held by a pause that came first, or for an application not running: not at once.
        f.runner.pause(RunRef::Ordered(2), true);
        assert!(
            !f.runner
                .starts_at_once(&order(2, AGENT_APPLICATION, simulate(0)))
                .await
        );
        assert!(
            !f.runner
                .starts_at_once(&order(3, "Stopped App", simulate(0)))
                .await
        );
    }

    #[tokio::test]
    async fn a_run_of_an_application_not_running_is_not_executed() {
        let apps = Applications::fixed(&[Application {
            name: "Stopped App".into(),
            running: false,
        }]);
        let mut f = fixture(apps).await;
        let marker = f.dir.path().join("ran");
        let touch = TaskPayload::Command {
            program: "/usr/bin/touch".into(),
            args: vec![marker.to_string_lossy().into_owned()],
            time_limit_secs: 10,
        };
        let run = f
            .run(order(1, "Stopped App", touch.clone()), no_cancel())
            .await;
        let result = result_of(&run).clone();
        assert_eq!(result.outcome.state, DeviceState::Failed);
        assert_eq!(result.outcome.progress, 0);
        assert_eq!(
            result.outcome.description,
            "not started: application \"Stopped App\" is not running on this device"
        );
        assert_eq!(run.started, None, "never recorded as started");
        assert_eq!(
            f.sent(),
            [AgentToServer::Result(result)],
            "no Started notice"
        );

        let run = f
            .run(order(2, "Missing App", touch.clone()), no_cancel())
            .await;
        assert_eq!(
            result_of(&run).outcome.description,
            "not started: application \"Missing App\" is not installed on this device"
        );
        assert!(!marker.exists(), "the command never ran");

        // The agent's own tasks always run.
        let run = f.run(order(3, AGENT_APPLICATION, touch), no_cancel()).await;
        assert_eq!(result_of(&run).outcome.state, DeviceState::Succeeded);
        assert!(marker.exists());
        let sent = f.sent();
        assert!(
            matches!(
                sent[1],
                AgentToServer::Started {
                    run: RunRef::Ordered(3),
                    ..
                }
            ),
            "{sent:?}"
        );
        assert!(matches!(&sent[2], AgentToServer::Result(r) if r.run == RunRef::Ordered(3)));
    }

    #[tokio::test]
    async fn a_run_is_cancelled_when_its_application_stops() {
        let (_dir, program, name) = sleep_copy(12);
        let text = format!(
            "server = \"h:1\"\nca = \"c\"\ndata = \"d\"\n[[application]]\nname = \"Watched\"\n\
             process = \"{name}\"\n"
        );
        let config = AgentConfig::parse(
            &text,
            std::path::Path::new("a.toml"),
            std::path::Path::new("/"),
        )
        .unwrap();
        let mut f = fixture(Applications::from_config(&config)).await;
        let mut app = crate::agent::apps::tests::spawn_retrying(|| {
            std::process::Command::new(&program).arg("30").spawn()
        });
        until_running(&name, true);
        let killer = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(400));
            app.kill().unwrap();
            app.wait().unwrap();
        });
        let began = Instant::now();
        let run = f
            .run(order(1, "Watched", simulate(60_000)), no_cancel())
            .await;
        killer.await.unwrap();
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
        let result = result_of(&run).clone();
        assert_eq!(result.outcome.state, DeviceState::Failed);
        assert_eq!(result.outcome.progress, 0);
        assert_eq!(
            result.outcome.description,
            "cancelled: application \"Watched\" stopped on this device"
        );
        assert!(run.started.is_some());
        let sent = f.sent();
        assert!(
            matches!(
                sent[0],
                AgentToServer::Started {
                    run: RunRef::Ordered(1),
                    ..
                }
            ),
            "{sent:?}"
        );
        assert_eq!(sent[1], AgentToServer::Result(result));

        // Stopped now: the next run does not start.
        let run = f.run(order(2, "Watched", simulate(0)), no_cancel()).await;
        assert_eq!(
            result_of(&run).outcome.description,
            "not started: application \"Watched\" is not running on this device"
        );
    }

    #[tokio::test]
    async fn a_command_cancelled_by_an_administrator_says_so() {
        let mut f = fixture(Applications::default()).await;
        let (cancel, cancelled) = watch::channel(Control::Go);
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.send_replace(Control::Cancel);
            cancel
        });
        let sleep = TaskPayload::Command {
            program: "/bin/sleep".into(),
            args: vec!["30".into()],
            time_limit_secs: 60,
        };
        let run = f.run(order(1, AGENT_APPLICATION, sleep), cancelled).await;
        drop(canceller.await.unwrap());
        let outcome = &result_of(&run).outcome;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, CANCELLED_BY_ADMIN);
        assert!(matches!(
            outcome.details,
            crate::model::task::Details::Command { .. }
        ));
        assert_eq!(f.sent().len(), 2);
    }

    #[tokio::test]
    async fn a_run_cancelled_before_it_started_never_starts() {
        let mut f = fixture(Applications::default()).await;
        let o = order(1, AGENT_APPLICATION, simulate(0));
        assert!(
            f.runner
                .store
                .receive_order(DEVICE, o.clone(), None)
                .await
                .unwrap()
        );
        assert!(f.runner.cancel_unstarted(RunRef::Ordered(1)).await);
        assert!(
            !f.runner.cancel_unstarted(RunRef::Ordered(1)).await,
            "only once"
        );
        // The runner comes too late: nothing runs, nothing more is reported.
        f.runner.run(o, 7, no_cancel()).await;
        let run = f.log(RunRef::Ordered(1)).await;
        let result = result_of(&run).clone();
        assert_eq!(result.outcome.description, CANCELLED_BEFORE_START);
        assert_eq!(run.started, None);
        assert_eq!(f.sent(), [AgentToServer::Result(result)]);

        // Cancelled as it was about to start.
        let (cancel, cancelled) = watch::channel(Control::Go);
        cancel.send_replace(Control::Cancel);
        let run = f
            .run(order(2, AGENT_APPLICATION, simulate(0)), cancelled)
            .await;
        assert_eq!(result_of(&run).outcome.description, CANCELLED_BEFORE_START);
        assert_eq!(f.sent().len(), 1);

        // A finished run is not cancelled after the fact.
        let run = f
            .run(order(3, AGENT_APPLICATION, simulate(0)), no_cancel())
            .await;
        assert_eq!(result_of(&run).outcome.state, DeviceState::Succeeded);
        assert!(!f.runner.cancel_unstarted(RunRef::Ordered(3)).await);
        assert_eq!(
            result_of(&f.log(RunRef::Ordered(3)).await).outcome.state,
            DeviceState::Succeeded
        );
    }
}

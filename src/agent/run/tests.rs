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

//! The scheduler over real QUIC: tasks that start by themselves at their time, on every
//! device of a three-tier tree and a virtual server, on devices whose server is down, after
//! an agent was stopped (run missed off and on), on the server's clock for a device
//! selection, and stopped at their time limit.
//!
//! Schedules name minutes, so each test waits for the next minute boundary at least a few
//! seconds ahead (up to about a minute). The tests mostly wait, so this file has its own
//! harness (libtest-mimic) that runs all of them at once rather than two at a time: the
//! file takes about one minute boundary instead of three.

mod common;

use std::future::Future;

use std::time::Duration;

use canopy::agent::Agents;
use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::{
    Deployment, config_text, free_port, parent_of, start, wait_for_tree,
};
use canopy::model::schedule::{LocalDateTime, Schedule, ScheduleOptions};
use canopy::model::task::{DeviceState, RunState};
use canopy::model::{EventKind, ServerStatus};
use canopy::server::RunningServer;
use canopy::wire::msg::{AdminRequest, AdminResponse, ScopeSpec, TaskRequest, TaskSpec};
use common::{
    create_task, results, results_at, simulate_spec, stats, tree_scope, until, wait_event,
};

const TOKEN: &str = "scheduler-tests-token-0123456789";
/// The devices' time zone in every test (the deployment's agent configs say so).
const DEVICE_ZONE: &str = "Europe/Berlin";
/// The servers' time zone where a test sets one: six hours behind the devices.
const SERVER_ZONE: &str = "America/New_York";

/// Every test of the file, each on its own runtime, all at once unless `--test-threads` says
/// otherwise.
fn main() -> std::process::ExitCode {
    let trials = vec![
        on_runtime(
            "a_once_task_runs_at_its_time_on_every_device_of_the_tree_as_one_run",
            a_once_task_runs_at_its_time_on_every_device_of_the_tree_as_one_run,
        ),
        on_runtime(
            "a_selection_task_runs_on_the_servers_clock_on_connected_devices_only",
            a_selection_task_runs_on_the_servers_clock_on_connected_devices_only,
        ),
        on_runtime(
            "devices_run_their_schedule_while_the_server_is_down_and_report_when_it_is_back",
            devices_run_their_schedule_while_the_server_is_down_and_report_when_it_is_back,
        ),
        on_runtime(
            "a_start_missed_while_the_agent_was_stopped_runs_once_only_with_run_missed",
            a_start_missed_while_the_agent_was_stopped_runs_once_only_with_run_missed,
        ),
        on_runtime(
            "a_task_at_application_start_runs_at_the_first_agent_start_of_the_day",
            a_task_at_application_start_runs_at_the_first_agent_start_of_the_day,
        ),
        on_runtime(
            "a_selection_task_spreads_its_starts_over_its_randomized_delay",
            a_selection_task_spreads_its_starts_over_its_randomized_delay,
        ),
        on_runtime(
            "a_device_off_when_an_occurrence_was_stopped_is_told_when_it_is_back",
            a_device_off_when_an_occurrence_was_stopped_is_told_when_it_is_back,
        ),
        libtest_mimic::Trial::test("bench_herd_runs_at_a_tiny_size", || {
            bench_herd_runs_at_a_tiny_size();
            Ok(())
        }),
    ];
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads.get_or_insert(trials.len());
    libtest_mimic::run(&args, trials).exit_code()
}

/// A test that runs `test` on a runtime of its own, as `#[tokio::test]` would.
fn on_runtime<F: Future<Output = ()> + 'static>(
    name: &str,
    test: fn() -> F,
) -> libtest_mimic::Trial {
    libtest_mimic::Trial::test(name, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?;
        runtime.block_on(test());
        Ok(())
    })
}

/// The next whole minute in `zone` at least `ahead` from now, and how long until it.
fn next_minute(zone: &str, ahead: Duration) -> (LocalDateTime, Duration) {
    let zone = canopy::sched::zone_named(zone).unwrap();
    let now = canopy::clock::now_ms();
    let ahead = i64::try_from(ahead.as_millis()).unwrap();
    let next = canopy::sched::next_minute(&zone, now + ahead).unwrap();
    (next.key, Duration::from_millis((next.at - now) as u64))
}

fn once(spec: TaskSpec, at: LocalDateTime, options: ScheduleOptions) -> TaskSpec {
    TaskSpec {
        schedule: Schedule::Once { at },
        schedule_options: options,
        ..spec
    }
}

/// The config of a server that enrolls devices with [`TOKEN`], with `extra` lines.
fn server_text(
    name: &str,
    parent: Option<(std::net::SocketAddr, canopy::model::Fingerprint)>,
    extra: &str,
) -> String {
    format!(
        "{extra}\n{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text(name, 0, parent)
    )
}

/// A primary enrolling devices with [`TOKEN`], its clock in `zone` (the system's if `None`),
/// and an administrator logged in to it.
async fn primary_in(d: &Deployment, zone: Option<&str>) -> (RunningServer, AdminClient) {
    d.add_server("primary", 0, None).await.unwrap();
    let zone = zone
        .map(|z| format!("time_zone = \"{z}\""))
        .unwrap_or_default();
    let config = d
        .write_config("primary", &server_text("primary", None, &zone))
        .await
        .unwrap();
    let server = start(&config).await.unwrap();
    let admin = d.admin(server.local_addr()).await.unwrap();
    (server, admin)
}

async fn fleet_at(d: &Deployment, name: &str, address: &str, token: &str, n: u32) -> Agents {
    common::named_fleet(d, name, address, token, n, "").await
}

/// The task's last run, if it has one.
async fn last_run(admin: &AdminClient, task: &str) -> Option<canopy::wire::msg::RunView> {
    let request = TaskRequest::Stats {
        task: task.into(),
        run: None,
    };
    match admin.call(AdminRequest::Task(request)).await {
        Ok(AdminResponse::TaskStats(run)) => Some(run),
        Err(ClientError::Server { message, .. }) if message.contains("has never run") => None,
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits until the task's run of occurrence `at` has `devices` devices, all finished.
async fn wait_occurrence(admin: &AdminClient, task: &str, at: LocalDateTime, devices: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let Some(run) = last_run(admin, task).await else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {task} never ran"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let done = run.occurrence == Some(at)
            && run.counters.total() == devices
            && run.counters.finished() == devices;
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {task} did not run at {at} on {devices} devices: {run:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_once_task_runs_at_its_time_on_every_device_of_the_tree_as_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    // primary <- branch-1 <- branch-1a, and tenant-a on the primary; servers in New York.
    let zone = format!("time_zone = \"{SERVER_ZONE}\"");
    d.add_server("primary", 0, None).await.unwrap();
    let config = d
        .write_config("primary", &server_text("primary", None, &zone))
        .await
        .unwrap();
    let mut servers = vec![start(&config).await.unwrap()];
    for (name, parent) in [("branch-1", 0), ("branch-1a", 1)] {
        let parent_addr = servers[parent].local_addr();
        let link = Some(parent_of(&servers[parent]));
        d.add_server(name, 0, link).await.unwrap();
        let text = server_text(name, link, &zone);
        let config = d.write_config(name, &text).await.unwrap();
        d.register(parent_addr, name, "Managed devices")
            .await
            .unwrap();
        servers.push(start(&config).await.unwrap());
    }
    let admin = d.admin(servers[0].local_addr()).await.unwrap();
    let tenant_token = common::create_vserver(&admin, "tenant-a", "Managed devices").await;
    wait_for_tree(&admin, Duration::from_secs(30), "every link up", |rows| {
        rows.len() == 4 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let primary = servers[0].local_addr().to_string();
    let mut fleets = Vec::new();
    for (name, address, token, n) in [
        ("fleet-primary", primary.clone(), TOKEN.to_string(), 3),
        (
            "fleet-branch-1",
            servers[1].local_addr().to_string(),
            TOKEN.into(),
            3,
        ),
        (
            "fleet-branch-1a",
            servers[2].local_addr().to_string(),
            TOKEN.into(),
            3,
        ),
        (
            "fleet-tenant",
            format!("{primary}/tenant-a"),
            tenant_token,
            2,
        ),
    ] {
        fleets.push(fleet_at(&d, name, &address, &token, n).await);
    }

    // A group task for the whole tree at the next minute of the devices' clock (Berlin),
    // which is six hours ahead of the servers' (New York): it runs on the devices' time.
    let (at, wait) = next_minute(DEVICE_ZONE, Duration::from_secs(8));
    let spec = simulate_spec("Tree at", tree_scope("Managed devices"), 200, [1, 0, 0]);
    let view = create_task(&admin, once(spec, at, ScheduleOptions::default())).await;
    assert!(view.last_run.is_none(), "nothing has run yet");
    tokio::time::sleep(wait.saturating_sub(Duration::from_secs(1))).await;
    wait_occurrence(&admin, "Tree at", at, 11).await;
    let run = stats(&admin, "Tree at").await;
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(run.counters.count(DeviceState::Succeeded), 11);
    let rows: Vec<(&str, u64)> = run
        .servers
        .iter()
        .map(|s| (s.path.as_str(), s.counters.total()))
        .collect();
    assert_eq!(
        rows,
        [
            ("primary", 3),
            ("primary/branch-1", 3),
            ("primary/branch-1/branch-1a", 3),
            ("primary/tenant-a", 2),
        ]
    );
    // Each device ran it once, at or after its time.
    let zone = canopy::sched::zone_named(DEVICE_ZONE).unwrap();
    let at_ms = canopy::sched::instant_of(at, &zone).unwrap();
    for server in ["branch-1/branch-1a", "tenant-a"] {
        for record in results_at(&admin, "Tree at", server).await {
            assert_eq!((record.state, record.tries), (DeviceState::Succeeded, 1));
            assert!(record.started.unwrap() >= at_ms, "{record:?}");
        }
    }
    for record in results(&admin, "Tree at").await {
        assert_eq!(record.tries, 1, "{record:?}");
        assert!(record.started.unwrap() >= at_ms, "{record:?}");
    }
    for fleet in fleets {
        fleet.stop().await.unwrap();
    }
    for server in servers.into_iter().rev() {
        server.shutdown().await.unwrap();
    }
}

async fn a_selection_task_runs_on_the_servers_clock_on_connected_devices_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (server, admin) = primary_in(&d, Some(SERVER_ZONE)).await;
    let addr = server.local_addr().to_string();
    let online = fleet_at(&d, "online", &addr, TOKEN, 4).await;
    let away = fleet_at(&d, "away", &addr, TOKEN, 2).await;
    away.stop().await.unwrap();
    until("the away devices are disconnected", || async {
        server.node.connected_devices().len() == 4
    })
    .await;

    // At the next minute of the server's clock (New York); the devices are in Berlin.
    let (at, wait) = next_minute(SERVER_ZONE, Duration::from_secs(8));
    let conditions = vec!["group=Managed devices".to_string()];
    let spec = simulate_spec(
        "Selected",
        ScopeSpec::Selection { conditions },
        100,
        [1, 0, 0],
    );
    create_task(&admin, once(spec, at, ScheduleOptions::default())).await;
    // The stop-after limit ends a run that takes too long: "failed by timeout".
    let options = ScheduleOptions {
        time_limit_secs: Some(2),
        ..ScheduleOptions::default()
    };
    let (device_at, _) = next_minute(DEVICE_ZONE, Duration::from_secs(8));
    let slow = simulate_spec(
        "Too slow",
        common::group_scope("Managed devices", true),
        60_000,
        [1, 0, 0],
    );
    create_task(&admin, once(slow, device_at, options)).await;
    // Devices spread their starts over 20 s; the run is stopped once the first has started.
    let spread = ScheduleOptions {
        random_delay: canopy::model::schedule::RandomDelay::Within { seconds: 20 },
        ..ScheduleOptions::default()
    };
    let early = simulate_spec(
        "Stopped early",
        common::group_scope("Managed devices", true),
        100,
        [1, 0, 0],
    );
    let early = create_task(&admin, once(early, device_at, spread)).await;
    tokio::time::sleep(wait.saturating_sub(Duration::from_secs(1))).await;
    until("a device started the spread task", || async {
        last_run(&admin, "Stopped early").await.is_some()
    })
    .await;
    let stop = TaskRequest::Stop {
        task: "Stopped early".into(),
    };
    admin.call(AdminRequest::Task(stop)).await.unwrap();
    let stopped_at = canopy::clock::now_ms();
    wait_occurrence(&admin, "Selected", at, 4).await;
    let run = stats(&admin, "Selected").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 4);
    let names: Vec<String> = results(&admin, "Selected")
        .await
        .into_iter()
        .map(|r| r.device_name)
        .collect();
    assert_eq!(names.len(), 4);
    assert!(names.iter().all(|n| n.starts_with("sim-")), "{names:?}");
    wait_event(&admin, EventKind::RunStarted, "not connected").await;

    // The slow task: the 4 connected devices stopped at 2 s; the 2 away never ran it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let run = last_run(&admin, "Too slow").await.expect("it ran");
        if run.occurrence == Some(device_at) && run.counters.count(DeviceState::Failed) == 4 {
            assert_eq!(run.counters.total(), 6, "{run:#?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{run:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for record in results(&admin, "Too slow").await {
        if record.state == DeviceState::Failed {
            assert!(
                record.description.starts_with("failed by timeout"),
                "{record:?}"
            );
            let took = record.finished.unwrap() - record.started.unwrap();
            assert!((1_900..10_000).contains(&took), "{took} ms: {record:?}");
        } else {
            assert_eq!(record.state, DeviceState::Pending, "{record:?}");
        }
    }
    // Stopping the spread run stopped that occurrence: no device started it after the stop
    // (one still in its delay ends "cancelled ... before it started"), and the run is over.
    tokio::time::sleep(Duration::from_secs(22)).await;
    for id in online.device_ids() {
        let runs = online.store().local_runs(id).await.unwrap();
        for run in runs.iter().filter(|r| r.order.task_id == early.id) {
            let result = run.result.as_ref().expect("it ended");
            match run.started {
                Some(started) => assert!(started <= stopped_at + 1_000, "{run:?}"),
                None => assert_eq!(
                    result.outcome.description,
                    canopy::agent::run::CANCELLED_BEFORE_START
                ),
            }
        }
    }
    let run = last_run(&admin, "Stopped early").await.unwrap();
    assert_eq!(run.state, RunState::Stopped, "{run:#?}");
    assert_eq!(run.counters.total(), 6, "{run:#?}");
    online.stop().await.unwrap();
    server.shutdown().await.unwrap();
}

async fn devices_run_their_schedule_while_the_server_is_down_and_report_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    // A fixed port, so the devices find the server again when it is back.
    let port = free_port().unwrap();
    d.add_server("primary", port, None).await.unwrap();
    let text = server_text("primary", None, "").replace(
        &config_text("primary", 0, None),
        &config_text("primary", port, None),
    );
    let config = d.write_config("primary", &text).await.unwrap();
    let server = start(&config).await.unwrap();
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let fleet = fleet_at(&d, "fleet", &addr.to_string(), TOKEN, 3).await;
    let (at, wait) = next_minute(DEVICE_ZONE, Duration::from_secs(10));
    let spec = simulate_spec(
        "While away",
        common::group_scope("Managed devices", true),
        100,
        [1, 0, 0],
    );
    let task = create_task(&admin, once(spec, at, ScheduleOptions::default())).await;
    // Every device holds the schedule, then the server goes away over the start.
    let ids = fleet.device_ids().to_vec();
    until("every device holds the schedule", || async {
        let mut all = true;
        for id in &ids {
            let held = fleet.store().scheduled_tasks(id).await.unwrap();
            all &= held.iter().any(|h| h.def.task_id == task.id);
        }
        all
    })
    .await;
    admin.close().await;
    server.shutdown().await.unwrap();
    tokio::time::sleep(wait + Duration::from_secs(2)).await;
    let ran = fleet.store().local_runs(&ids[0]).await.unwrap();
    assert!(
        ran.iter().any(|r| r
            .result
            .as_ref()
            .is_some_and(|res| res.outcome.state == DeviceState::Succeeded)),
        "the device ran it with its server down: {ran:#?}"
    );

    let server = start(&config).await.unwrap();
    let admin = d.admin(server.local_addr()).await.unwrap();
    wait_occurrence(&admin, "While away", at, 3).await;
    let run = stats(&admin, "While away").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 3);
    fleet.stop().await.unwrap();
    server.shutdown().await.unwrap();
}

/// A fleet whose agent counts a start more than 2 s late as missed.
async fn quick_to_miss(d: &Deployment, name: &str, address: &str, n: u32) -> Agents {
    let extra = "\n[schedule]\nmissed_after_s = 2\n";
    common::named_fleet(d, name, address, TOKEN, n, extra).await
}

async fn a_start_missed_while_the_agent_was_stopped_runs_once_only_with_run_missed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (server, admin) = primary_in(&d, None).await;
    let addr = server.local_addr().to_string();
    let fleet = quick_to_miss(&d, "laptops", &addr, 2).await;
    let (at, wait) = next_minute(DEVICE_ZONE, Duration::from_secs(10));
    let scope = || common::group_scope("Managed devices", true);
    let off = simulate_spec("Missed off", scope(), 100, [1, 0, 0]);
    let off = create_task(&admin, once(off, at, ScheduleOptions::default())).await;
    let run_missed = ScheduleOptions {
        run_missed: true,
        ..ScheduleOptions::default()
    };
    let on = simulate_spec("Missed on", scope(), 100, [1, 0, 0]);
    let on = create_task(&admin, once(on, at, run_missed)).await;
    let ids = fleet.device_ids().to_vec();
    until("every device holds both schedules", || async {
        let mut all = true;
        for id in &ids {
            let held = fleet.store().scheduled_tasks(id).await.unwrap();
            all &= held.len() == 2;
        }
        all
    })
    .await;
    // The agent is stopped over the start, and back well after it.
    fleet.stop().await.unwrap();
    tokio::time::sleep(wait + Duration::from_secs(4)).await;
    let fleet = quick_to_miss(&d, "laptops", &addr, 2).await;

    wait_occurrence(&admin, "Missed on", at, 2).await;
    let run = stats(&admin, "Missed on").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 2, "{run:#?}");
    wait_occurrence(&admin, "Missed off", at, 2).await;
    for record in results(&admin, "Missed off").await {
        assert_eq!(record.state, DeviceState::Failed, "{record:?}");
        assert!(record.description.starts_with("missed"), "{record:?}");
    }
    // Each device dealt with each occurrence once.
    for id in &ids {
        let runs = fleet.store().local_runs(id).await.unwrap();
        for task in [off.id, on.id] {
            let of_task = runs.iter().filter(|r| r.order.task_id == task).count();
            assert_eq!(of_task, 1, "{runs:#?}");
        }
    }
    fleet.stop().await.unwrap();
    server.shutdown().await.unwrap();
}

async fn a_task_at_application_start_runs_at_the_first_agent_start_of_the_day() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    // The server's day is the devices' day, so its run of the day is theirs.
    let (server, admin) = primary_in(&d, Some(DEVICE_ZONE)).await;
    let addr = server.local_addr().to_string();
    let desks = fleet_at(&d, "desks", &addr, TOKEN, 2).await;
    let kiosk = fleet_at(&d, "kiosk", &addr, TOKEN, 1).await;
    let spec = simulate_spec(
        "At start",
        common::group_scope("Managed devices", true),
        100,
        [1, 0, 0],
    );
    let spec = TaskSpec {
        schedule: Schedule::AtApplicationStart,
        ..spec
    };
    let task = create_task(&admin, spec).await;
    let ids = desks.device_ids().to_vec();
    until("every desk holds the task", || async {
        let mut all = true;
        for id in &ids {
            let held = desks.store().scheduled_tasks(id).await.unwrap();
            all &= held.iter().any(|h| h.def.task_id == task.id);
        }
        all
    })
    .await;
    // Received while the agent runs: it waits for the agent's next start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ran = desks.store().local_runs(&ids[0]).await.unwrap();
    assert!(ran.is_empty(), "{ran:#?}");

    let zone = canopy::sched::zone_named(DEVICE_ZONE).unwrap();
    let today = canopy::sched::day_of(canopy::clock::now_ms(), &zone).unwrap();
    desks.stop().await.unwrap();
    let desks = fleet_at(&d, "desks", &addr, TOKEN, 2).await;
    // The day's run holds the two desks that started, not the kiosk that did not.
    wait_occurrence(&admin, "At start", today, 2).await;
    let run = stats(&admin, "At start").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 2, "{run:#?}");
    assert!(run.started_by.contains("schedule"), "{run:#?}");

    // Started again the same day: not run again.
    desks.stop().await.unwrap();
    let desks = fleet_at(&d, "desks", &addr, TOKEN, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let same_day = canopy::sched::day_of(canopy::clock::now_ms(), &zone) == Some(today);
    for id in &ids {
        let runs = desks.store().local_runs(id).await.unwrap();
        let of_task = runs.iter().filter(|r| r.order.task_id == task.id).count();
        if same_day {
            assert_eq!(of_task, 1, "{runs:#?}");
        }
    }
    for fleet in [desks, kiosk] {
        fleet.stop().await.unwrap();
    }
    admin.close().await;
    server.shutdown().await.unwrap();
}

async fn a_selection_task_spreads_its_starts_over_its_randomized_delay() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (server, admin) = primary_in(&d, Some(SERVER_ZONE)).await;
    let fleet = fleet_at(&d, "fleet", &server.local_addr().to_string(), TOKEN, 4).await;
    let (at, _) = next_minute(SERVER_ZONE, Duration::from_secs(8));
    let conditions = vec!["group=Managed devices".to_string()];
    let spec = simulate_spec(
        "Spread",
        ScopeSpec::Selection { conditions },
        100,
        [1, 0, 0],
    );
    let window = canopy::model::schedule::RandomDelay::Within { seconds: 12 };
    let options = ScheduleOptions {
        random_delay: window,
        ..ScheduleOptions::default()
    };
    let task = create_task(&admin, once(spec, at, options)).await;
    wait_occurrence(&admin, "Spread", at, 4).await;
    // Each device started at its own moment of the window after the server's start.
    let zone = canopy::sched::zone_named(SERVER_ZONE).unwrap();
    let due = canopy::sched::instant_of(at, &zone).unwrap();
    for record in results(&admin, "Spread").await {
        let delay = canopy::sched::random_delay_ms(12_000, &record.device_id, task.id, at);
        let late = record.started.unwrap() - due;
        let delay = i64::try_from(delay).unwrap();
        assert!(
            (delay - 500..delay + 5_000).contains(&late),
            "started {late} ms after its time, its delay {delay} ms: {record:?}"
        );
    }
    fleet.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

async fn a_device_off_when_an_occurrence_was_stopped_is_told_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    // The server's clock reaches the occurrence when the devices' does.
    let (server, admin) = primary_in(&d, Some(DEVICE_ZONE)).await;
    let addr = server.local_addr().to_string();
    let off = fleet_at(&d, "off", &addr, TOKEN, 4).await;
    let (at, wait) = next_minute(DEVICE_ZONE, Duration::from_secs(8));
    // Starts spread over a minute: most devices have not started when the run is stopped.
    let options = ScheduleOptions {
        random_delay: canopy::model::schedule::RandomDelay::Within { seconds: 60 },
        ..ScheduleOptions::default()
    };
    let spec = simulate_spec(
        "Stopped while off",
        common::group_scope("Managed devices", true),
        100,
        [1, 0, 0],
    );
    let task = create_task(&admin, once(spec, at, options)).await;
    let ids = off.device_ids().to_vec();
    until("every device holds the schedule", || async {
        let mut all = true;
        for id in &ids {
            let held = off.store().scheduled_tasks(id).await.unwrap();
            all &= held.iter().any(|h| h.def.task_id == task.id);
        }
        all
    })
    .await;
    off.stop().await.unwrap();
    // The server makes the occurrence's run at its time; it is stopped with every device off.
    tokio::time::sleep(wait).await;
    until("the occurrence's run is made", || async {
        last_run(&admin, "Stopped while off").await.is_some()
    })
    .await;
    let stop = TaskRequest::Stop {
        task: "Stopped while off".into(),
    };
    admin.call(AdminRequest::Task(stop)).await.unwrap();
    let back = canopy::clock::now_ms();
    let off = fleet_at(&d, "off", &addr, TOKEN, 4).await;
    let zone = canopy::sched::zone_named(DEVICE_ZONE).unwrap();
    let due = canopy::sched::instant_of(at, &zone).unwrap();
    // A device whose moment is well after it came back was told before it: it never starts.
    let mut checked = 0;
    for id in &ids {
        let delay = canopy::sched::random_delay_ms(60_000, id, task.id, at);
        if due + i64::try_from(delay).unwrap() < back + 3_000 {
            continue;
        }
        checked += 1;
        let of_task = |runs: Vec<canopy::store::agent::LocalRun>| {
            runs.into_iter().find(|r| r.order.task_id == task.id)
        };
        until("the device dealt with the occurrence", || async {
            of_task(off.store().local_runs(id).await.unwrap()).is_some()
        })
        .await;
        let run = of_task(off.store().local_runs(id).await.unwrap()).unwrap();
        let result = run.result.expect("it ended");
        assert_eq!(
            result.outcome.description,
            canopy::agent::run::CANCELLED_BEFORE_START
        );
    }
    assert!(checked > 0, "no device's moment came after it was back");
    off.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

fn bench_herd_runs_at_a_tiny_size() {
    // A smoke check that the scenario works end to end, not a timed assertion.
    let tmp = tempfile::tempdir().unwrap();
    let session = tmp.path().join("session.toml");
    let args = [
        "bench",
        "herd",
        "--devices",
        "20",
        "--windows",
        "3",
        "--json",
    ];
    let out = common::binary::canopy(tmp.path(), &session, &args, None);
    assert!(out.status.success(), "{}", common::binary::stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["scenario"], "herd");
    let window = &report["windows"][0];
    assert_eq!(window["window_s"], 3);
    let starts: Vec<f64> = window["starts_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    // Every device started within the window after the minute (and a second of slack for
    // the start to be recorded).
    assert!(starts[0] >= 0.0 && starts[4] < 4.0, "{report}");
    let tenths: u64 = window["starts_by_tenth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(tenths, 20, "{report}");
    assert!(
        window["peak_results_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

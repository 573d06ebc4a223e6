//! Tasks on one server over real QUIC with simulated and real agents: every kind of task and
//! scope, a start for selected devices, stop, the application binding, server tasks, counters
//! against records, and bad input changing nothing.

mod common;

use std::collections::BTreeSet;

use canopy::agent::Agents;
use canopy::cli::client::AdminClient;
use canopy::cli::deployment::Deployment;
use canopy::model::EventKind;
use canopy::model::Role;
use canopy::model::scope::Scope;
use canopy::model::task::{DeviceState, RunCounters, RunState, TaskKind, TaskPayload, TaskType};
use canopy::server::RunningServer;
use canopy::wire::msg::{
    AdminRequest, DeviceRequest, GroupRequest, ScopeSpec, Secret, TaskChanges, TaskRequest,
};
use common::{
    create_task, group_scope, refused, results, show_task, simulate_spec, start_task, stats,
    task_spec, until, wait_finished,
};

const TOKEN: &str = "task-tests-token-0123456789";

async fn server(d: &Deployment) -> RunningServer {
    common::enrolling_primary(d, TOKEN).await
}

async fn call(admin: &AdminClient, request: AdminRequest) {
    admin.call(request).await.unwrap();
}

async fn make_group(admin: &AdminClient, path: &str) {
    call(
        admin,
        AdminRequest::Group(GroupRequest::Create { path: path.into() }),
    )
    .await;
}

async fn move_device(admin: &AdminClient, device: &str, group: &str) {
    let request = DeviceRequest::Move {
        device: device.into(),
        group: group.into(),
    };
    call(admin, AdminRequest::Device(request)).await;
}

/// The names of the devices a run's records are for.
async fn targeted(admin: &AdminClient, task: &str) -> BTreeSet<String> {
    results(admin, task)
        .await
        .into_iter()
        .map(|r| r.device_name)
        .collect()
}

fn names(range: std::ops::Range<u32>) -> BTreeSet<String> {
    range.map(|i| format!("sim-{i:05}")).collect()
}

/// An agent with extra `[[application]]` entries in its config.
fn agent_with_apps(
    d: &Deployment,
    name: &str,
    server: std::net::SocketAddr,
    apps: &str,
) -> canopy::agent::config::AgentConfig {
    let base = d.agent_config(name, server, Some(TOKEN)).unwrap();
    let path = d.dir.join(format!("{name}.agent.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen("[link]", &format!("{apps}\n[link]"), 1);
    std::fs::write(&path, text).unwrap();
    drop(base);
    canopy::agent::config::AgentConfig::load(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_task_targets_the_right_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let fleet = common::fleet(&d, addr, TOKEN, 20, 7).await;
    make_group(&admin, "Managed devices/Sales").await;
    make_group(&admin, "Managed devices/Sales/East").await;
    for i in 0..5 {
        move_device(&admin, &format!("sim-{i:05}"), "Managed devices/Sales").await;
    }
    for i in 5..8 {
        move_device(&admin, &format!("sim-{i:05}"), "Managed devices/Sales/East").await;
    }

    // A group task: with subgroups by default, or without them.
    let spec = simulate_spec(
        "sales",
        group_scope("Managed devices/Sales", true),
        50,
        [1, 0, 0],
    );
    let created = create_task(&admin, spec).await;
    assert_eq!(created.kind, TaskKind::Group);
    let (run, skipped) = start_task(&admin, "sales", None).await;
    assert_eq!((run.counters.total(), skipped.len()), (8, 0));
    let done = wait_finished(&admin, "sales").await;
    assert_eq!(done.counters.count(DeviceState::Succeeded), 8);
    assert_eq!(done.state, RunState::Completed);
    assert_eq!(targeted(&admin, "sales").await, names(0..8));
    let spec = simulate_spec(
        "sales only",
        group_scope("Managed devices/Sales", false),
        50,
        [1, 0, 0],
    );
    create_task(&admin, spec).await;
    start_task(&admin, "sales only", None).await;
    wait_finished(&admin, "sales only").await;
    assert_eq!(targeted(&admin, "sales only").await, names(0..5));

    // "Immediately": started on creation.
    let mut spec = simulate_spec(
        "at once",
        group_scope("Managed devices/Sales", false),
        10,
        [1, 0, 0],
    );
    spec.schedule = canopy::model::schedule::Schedule::Immediately;
    let created = create_task(&admin, spec).await;
    assert_eq!(created.last_run.map(|r| r.counters.total()), Some(5));
    wait_finished(&admin, "at once").await;

    // A device list as a .txt file holds: an IP, a range, a name, and one that matches
    // nothing, which is reported rather than dropped. (sim-N has address 10.0.0.N+1.)
    let file = dir.path().join("devices.txt");
    std::fs::write(
        &file,
        "10.0.0.1\n\n10.0.0.10-10.0.0.12\nSIM-00019\n192.0.2.77\n",
    )
    .unwrap();
    let entries: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let spec = simulate_spec("listed", ScopeSpec::Devices { entries }, 50, [1, 0, 0]);
    let created = create_task(&admin, spec).await;
    let Scope::DeviceList { unmatched, .. } = &created.scope else {
        panic!("{:?}", created.scope)
    };
    assert_eq!(unmatched, &vec!["192.0.2.77".to_string()]);
    let (_, skipped) = start_task(&admin, "listed", None).await;
    assert!(
        skipped.iter().any(|s| s.contains("192.0.2.77")),
        "{skipped:?}"
    );
    wait_finished(&admin, "listed").await;
    let want: BTreeSet<String> = [
        "sim-00000",
        "sim-00009",
        "sim-00010",
        "sim-00011",
        "sim-00019",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(targeted(&admin, "listed").await, want);

    // Starting a task for selected devices replaces its scope; the schedule stays.
    let (run, _) = start_task(&admin, "sales", Some(vec!["sim-00015".into()])).await;
    assert_eq!(run.counters.total(), 1);
    wait_finished(&admin, "sales").await;
    assert_eq!(targeted(&admin, "sales").await, names(15..16));
    let shown = show_task(&admin, "sales").await;
    assert_eq!(shown.kind, TaskKind::DeviceList);
    assert_eq!(shown.schedule, created.schedule);
    assert!(shown.revision > 1);

    // Stop: the devices are told to cancel; nothing is left running.
    let spec = simulate_spec(
        "long",
        group_scope("Managed devices", true),
        60_000,
        [1, 0, 0],
    );
    create_task(&admin, spec).await;
    start_task(&admin, "long", None).await;
    until("all 20 running", || async {
        stats(&admin, "long")
            .await
            .counters
            .count(DeviceState::Running)
            == 20
    })
    .await;
    let message = refused(
        &admin,
        TaskRequest::Start {
            task: "long".into(),
            devices: None,
        },
    )
    .await;
    assert!(message.contains("still running"), "{message}");
    call(
        &admin,
        AdminRequest::Task(TaskRequest::Stop {
            task: "long".into(),
        }),
    )
    .await;
    let stopped = wait_finished(&admin, "long").await;
    assert_eq!(stopped.state, RunState::Stopped);
    assert_eq!(stopped.counters.count(DeviceState::Failed), 20);
    assert!(
        results(&admin, "long")
            .await
            .iter()
            .all(|r| r.description.contains("cancelled") && r.tries == 1),
        "{:?}",
        results(&admin, "long").await
    );

    // Stopped the moment it started: the devices still hold their start notices
    // (`agent/outbox.rs`), so the server counts them pending; each is told to cancel anyway,
    // and none goes on running it.
    let spec = simulate_spec(
        "stopped at once",
        group_scope("Managed devices", true),
        60_000,
        [1, 0, 0],
    );
    create_task(&admin, spec).await;
    let (run, _) = start_task(&admin, "stopped at once", None).await;
    call(
        &admin,
        AdminRequest::Task(TaskRequest::Stop {
            task: "stopped at once".into(),
        }),
    )
    .await;
    assert_eq!(
        wait_finished(&admin, "stopped at once").await.state,
        RunState::Stopped
    );
    let this_run = canopy::model::RunRef::Ordered(run.run_id);
    until("every device ended the stopped run", || async {
        let mut ended = 0;
        for id in fleet.device_ids() {
            let runs = fleet.store().local_runs(id).await.unwrap();
            ended += runs
                .iter()
                .filter(|r| r.order.run == this_run)
                .filter(|r| {
                    r.result
                        .as_ref()
                        .is_some_and(|res| res.outcome.description.contains("cancelled"))
                })
                .count();
        }
        ended == 20
    })
    .await;

    fleet.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selections_local_tasks_applications_and_server_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    make_group(&admin, "Managed devices/Kiosk").await;
    let apps = "[[application]]\nname = \"Backup Agent\"\nrunning = false\n";
    let a = Agents::start(agent_with_apps(&d, "kiosk-a", addr, apps), None)
        .await
        .unwrap();
    let b = Agents::start(agent_with_apps(&d, "kiosk-b", addr, apps), None)
        .await
        .unwrap();
    until("both kiosks connected", || async {
        a.counts().connected == 1 && b.counts().connected == 1
    })
    .await;
    move_device(&admin, "kiosk-a", "Managed devices/Kiosk").await;
    move_device(&admin, "kiosk-b", "Managed devices/Kiosk").await;
    b.stop().await.unwrap();
    until("kiosk-b gone", || async {
        server.node.connected_devices().len() == 1
    })
    .await;

    // A selection task runs on connected devices only, and says what it skipped.
    let conditions = vec!["group=Managed devices/Kiosk".to_string()];
    let spec = simulate_spec("kiosks", ScopeSpec::Selection { conditions }, 10, [1, 0, 0]);
    assert_eq!(create_task(&admin, spec).await.kind, TaskKind::Selection);
    let (run, skipped) = start_task(&admin, "kiosks", None).await;
    assert_eq!(run.counters.total(), 1);
    assert!(skipped[0].contains("1 device(s)") && skipped[0].contains("not connected"));
    wait_finished(&admin, "kiosks").await;
    assert_eq!(
        targeted(&admin, "kiosks").await,
        BTreeSet::from(["kiosk-a".to_string()])
    );

    // A local task: one device.
    let spec = task_spec(
        "inventory of a",
        TaskType::Device(TaskPayload::Inventory),
        ScopeSpec::Local {
            device: "kiosk-a".into(),
        },
    );
    assert_eq!(create_task(&admin, spec).await.kind, TaskKind::Local);
    start_task(&admin, "inventory of a", None).await;
    let run = wait_finished(&admin, "inventory of a").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 1);

    // A task of an application that is not running there does not start.
    let local_a = ScopeSpec::Local {
        device: "kiosk-a".into(),
    };
    let mut spec = simulate_spec("backup agent", local_a, 10, [1, 0, 0]);
    spec.application = Some("Backup Agent".into());
    create_task(&admin, spec).await;
    start_task(&admin, "backup agent", None).await;
    wait_finished(&admin, "backup agent").await;
    let records = results(&admin, "backup agent").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, DeviceState::Failed);
    assert!(
        records[0].description.contains("not running"),
        "{:?}",
        records[0]
    );

    // Administration Server tasks: a backup that opens as a server database, and maintenance.
    // A backup's directory is inside the server's backup directory (by default `backups`
    // beside the database).
    let backups = server.node.config.data.parent().unwrap().join("backups");
    let spec = task_spec(
        "nightly backup",
        TaskType::Backup {
            directory: Some("nightly".into()),
        },
        ScopeSpec::Server,
    );
    assert_eq!(create_task(&admin, spec).await.kind, TaskKind::Server);
    start_task(&admin, "nightly backup", None).await;
    let run = wait_finished(&admin, "nightly backup").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 1, "{run:?}");
    let copies: Vec<_> = std::fs::read_dir(backups.join("nightly"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1);
    let path = copies[0].clone();
    let copy = tokio::task::spawn_blocking(move || canopy::store::Store::open_server(&path))
        .await
        .unwrap()
        .unwrap();
    let tasks = copy.tasks().await.unwrap();
    assert!(tasks.iter().any(|t| t.name == "nightly backup"));
    tokio::task::spawn_blocking(move || copy.close())
        .await
        .unwrap()
        .unwrap();
    let spec = task_spec("maintenance", TaskType::Maintenance, ScopeSpec::Server);
    create_task(&admin, spec).await;
    start_task(&admin, "maintenance", None).await;
    wait_finished(&admin, "maintenance").await;
    let records = results(&admin, "maintenance").await;
    assert_eq!(records[0].state, DeviceState::Succeeded, "{records:?}");
    assert!(records[0].description.contains("freed"));

    a.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_the_records_after_a_few_hundred_mixed_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let fleet = common::fleet(&d, addr, TOKEN, 300, 11).await;
    let mut spec = simulate_spec(
        "mixed",
        group_scope("Managed devices", true),
        100,
        [6, 2, 2],
    );
    if let TaskType::Device(TaskPayload::Simulate {
        need_restart_percent,
        ..
    }) = &mut spec.task_type
    {
        *need_restart_percent = 30;
    }
    create_task(&admin, spec).await;
    let (run, _) = start_task(&admin, "mixed", None).await;
    assert_eq!(run.counters.total(), 300);
    // Counters agree with the records at every point, not only at the end.
    for _ in 0..5 {
        let run = server.node.store.run(run.run_id).await.unwrap().unwrap();
        let records = server.node.store.run_records(run.run_id).await.unwrap();
        assert_eq!(records.len(), 300);
        // The run was read before the records: a report may land in between, so compare
        // totals, and compare exactly once everything is over.
        assert_eq!(RunCounters::of(&records).total(), run.counters.total());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let done = wait_finished(&admin, "mixed").await;
    let records = server.node.store.run_records(run.run_id).await.unwrap();
    assert_eq!(RunCounters::of(&records), done.counters);
    for state in [
        DeviceState::Succeeded,
        DeviceState::Warning,
        DeviceState::Failed,
    ] {
        assert!(done.counters.count(state) > 0, "{state:?} in {done:?}");
    }
    assert!(done.counters.need_restart > 0);
    assert!(records.iter().all(|r| r.tries == 1 && r.finished.is_some()));
    assert!((done.counters.completion_percent() - 100.0).abs() < f64::EPSILON);
    // Results are events too: failures and warnings by default, and the run's end.
    let end = common::wait_event(&admin, EventKind::RunFinished, "\"mixed\" run").await;
    assert!(end.message.contains("of 300"), "{}", end.message);
    let events = common::events(&admin).await;
    let failures = events
        .iter()
        .filter(|e| e.kind == EventKind::DeviceResult && e.message.contains(": failed"))
        .count() as u64;
    assert_eq!(failures, done.counters.count(DeviceState::Failed));

    fleet.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let create = |spec| TaskRequest::Create(Box::new(spec));

    let spec = simulate_spec(
        "t",
        group_scope("Managed devices/Nowhere", true),
        1,
        [1, 0, 0],
    );
    let message = refused(&admin, create(spec)).await;
    assert!(
        message.contains("Nowhere") && message.contains("does not exist"),
        "{message}"
    );

    let entries = vec!["10.0.0.1".to_string(), "10.0.0.300".to_string()];
    let spec = simulate_spec("t", ScopeSpec::Devices { entries }, 1, [1, 0, 0]);
    let message = refused(&admin, create(spec)).await;
    assert!(message.contains("10.0.0.300"), "{message}");

    let entries = vec!["10.0.0.9-10.0.0.1".to_string()];
    let spec = simulate_spec("t", ScopeSpec::Devices { entries }, 1, [1, 0, 0]);
    let message = refused(&admin, create(spec)).await;
    assert!(message.contains("10.0.0.9-10.0.0.1"), "{message}");

    let entries: Vec<String> = (0..1001)
        .map(|i| format!("10.1.{}.{}", i / 256, i % 256))
        .collect();
    let spec = simulate_spec("t", ScopeSpec::Devices { entries }, 1, [1, 0, 0]);
    let message = refused(&admin, create(spec)).await;
    assert!(
        message.contains("1000") && message.contains("1001"),
        "{message}"
    );

    let long = "x".repeat(101);
    let spec = simulate_spec(&long, group_scope("Managed devices", true), 1, [1, 0, 0]);
    let message = refused(&admin, create(spec)).await;
    assert!(message.contains("100"), "{message}");

    let spec = task_spec(
        "t",
        TaskType::Maintenance,
        group_scope("Managed devices", true),
    );
    let message = refused(&admin, create(spec)).await;
    assert!(message.contains("Administration Server"), "{message}");

    let message = refused(
        &admin,
        TaskRequest::Start {
            task: "no such task".into(),
            devices: None,
        },
    )
    .await;
    assert!(message.contains("no such task"), "{message}");

    // Nothing was created, and the task ids were not used up by the failures.
    let tasks = admin.tasks().await.unwrap();
    assert!(tasks.is_empty(), "{tasks:?}");
    let spec = simulate_spec("fine", group_scope("Managed devices", true), 1, [1, 0, 0]);
    assert_eq!(create_task(&admin, spec).await.id, 1);
    let spec = simulate_spec("fine", group_scope("Managed devices", true), 1, [1, 0, 0]);
    let message = refused(&admin, create(spec)).await;
    assert!(message.contains("already exists"), "{message}");

    // A task scheduled "immediately" is created even when it cannot start, and says why.
    let mut spec = simulate_spec(
        "at once",
        group_scope("Managed devices", true),
        1,
        [1, 0, 0],
    );
    spec.schedule = canopy::model::schedule::Schedule::Immediately;
    let created = create_task(&admin, spec).await;
    assert!(created.last_run.is_none());
    common::wait_event(&admin, EventKind::RunStarted, "not started on creation").await;

    admin.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_an_application_is_cancelled_when_the_application_stops() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    // The "application" is a copy of sleep under a name no other process has.
    let program = format!("cnpy{:08}", std::process::id());
    let path = dir.path().join(&program);
    std::fs::copy("/bin/sleep", &path).unwrap();
    // A copy just written can stay open in a child another test forked: retry "busy".
    let mut app = loop {
        match std::process::Command::new(&path).arg("600").spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    let apps = format!("[[application]]\nname = \"Sleeper\"\nprocess = \"{program}\"\n");
    let agent = Agents::start(agent_with_apps(&d, "desk", addr, &apps), None)
        .await
        .unwrap();
    until("desk connected", || async { agent.counts().connected == 1 }).await;

    let desk = ScopeSpec::Local {
        device: "desk".into(),
    };
    let mut spec = simulate_spec("sleeper task", desk, 60_000, [1, 0, 0]);
    spec.application = Some("Sleeper".into());
    create_task(&admin, spec).await;
    start_task(&admin, "sleeper task", None).await;
    until("the run to be going", || async {
        stats(&admin, "sleeper task")
            .await
            .counters
            .count(DeviceState::Running)
            == 1
    })
    .await;
    app.kill().unwrap();
    app.wait().unwrap();
    let run = wait_finished(&admin, "sleeper task").await;
    assert_eq!(run.counters.count(DeviceState::Failed), 1);
    let records = results(&admin, "sleeper task").await;
    assert!(
        records[0].description.contains("stopped"),
        "{:?}",
        records[0]
    );

    // Not running at all: the task does not start.
    start_task(&admin, "sleeper task", None).await;
    wait_finished(&admin, "sleeper task").await;
    let records = results(&admin, "sleeper task").await;
    assert!(
        records[0].description.contains("not running"),
        "{:?}",
        records[0]
    );

    agent.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_task_changed_by_the_device_user_and_the_administrator() {
    use canopy::model::schedule::Schedule;
    use canopy::wire::msg::TaskChanges;
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let config = d.agent_config("desk", addr, Some(TOKEN)).unwrap();
    let agent = Agents::start(config.clone(), None).await.unwrap();
    until("desk connected", || async { agent.counts().connected == 1 }).await;
    let spec = task_spec(
        "desk inventory",
        TaskType::Device(TaskPayload::Inventory),
        ScopeSpec::Local {
            device: "desk".into(),
        },
    );
    create_task(&admin, spec).await;
    until("the device to hold its local task", || async {
        held(&agent).await.iter().any(|t| t.def.revision == 1)
    })
    .await;

    // The device's user changes the schedule: it applies, as a change by the device's user.
    canopy::agent::local::request_local_edit(&config, "desk inventory", "weekly:fri@18:00")
        .unwrap();
    let friday = Schedule::parse("weekly:fri@18:00").unwrap();
    until("the user's change on the server", || async {
        show_task(&admin, "desk inventory").await.schedule == friday
    })
    .await;
    let shown = show_task(&admin, "desk inventory").await;
    assert_eq!(
        (shown.revision, shown.changed_by.as_str()),
        (2, "the device's user")
    );
    until("the device to hold revision 2", || async {
        held(&agent)
            .await
            .iter()
            .any(|t| t.def.revision == 2 && t.pending_edit.is_none())
    })
    .await;

    // Both change it while the device is away: the administrator's change wins.
    agent.stop().await.unwrap();
    canopy::agent::local::request_local_edit(&config, "desk inventory", "monthly:1@09:00").unwrap();
    let daily = Schedule::parse("every:1d@2026-12-01T08:00").unwrap();
    let changes = TaskChanges {
        schedule: Some(daily.clone()),
        ..TaskChanges::default()
    };
    let request = TaskRequest::Edit {
        task: "desk inventory".into(),
        changes: Box::new(changes),
    };
    call(&admin, AdminRequest::Task(request)).await;
    let agent = Agents::start(config, None).await.unwrap();
    common::wait_event(
        &admin,
        EventKind::TaskChanged,
        "the administrator's change wins",
    )
    .await;
    let shown = show_task(&admin, "desk inventory").await;
    assert_eq!(shown.schedule, daily);
    assert_eq!((shown.revision, shown.changed_by.as_str()), (3, "admin"));
    until(
        "the device to hold the administrator's revision",
        || async {
            held(&agent)
                .await
                .iter()
                .any(|t| t.def.revision == 3 && t.def.schedule == daily && t.pending_edit.is_none())
        },
    )
    .await;

    agent.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

async fn held(agent: &Agents) -> Vec<canopy::store::agent::LocalTask> {
    agent.local_tasks().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tasks_are_for_administrators_and_backups_stay_in_the_backup_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let backup = |name: &str, directory: &str| {
        task_spec(
            name,
            TaskType::Backup {
                directory: Some(directory.into()),
            },
            ScopeSpec::Server,
        )
    };
    for outside in ["/etc", "../elsewhere", "nightly/../../data"] {
        let request = TaskRequest::Create(Box::new(backup("escape", outside)));
        let message = refused(&admin, request).await;
        assert!(message.contains("backup directory"), "{outside}: {message}");
    }
    create_task(&admin, backup("inside", "weekly")).await;
    // The configured backup directory itself, given absolute, is inside too.
    let root = server.node.config.backups.display().to_string();
    create_task(&admin, backup("at the root", &root)).await;
    // Nor may an existing backup be pointed outside by an edit.
    let changes = TaskChanges {
        task_type: Some(TaskType::Backup {
            directory: Some("/etc".into()),
        }),
        ..TaskChanges::default()
    };
    let request = TaskRequest::Edit {
        task: "inside".into(),
        changes: Box::new(changes),
    };
    assert!(refused(&admin, request).await.contains("backup directory"));

    // An operator runs device tasks, not the server's own.
    admin
        .call(AdminRequest::AccountCreate {
            name: "op".into(),
            password: Secret("operator password".into()),
            role: Role::Operator,
        })
        .await
        .unwrap();
    let mut operator = AdminClient::connect(addr, d.ca().unwrap()).await.unwrap();
    operator.login("op", "operator password").await.unwrap();
    for request in [
        TaskRequest::Create(Box::new(task_spec(
            "op maintenance",
            TaskType::Maintenance,
            ScopeSpec::Server,
        ))),
        TaskRequest::Start {
            task: "inside".into(),
            devices: None,
        },
        TaskRequest::Delete {
            task: "inside".into(),
            comment: None,
        },
    ] {
        let message = refused(&operator, request).await;
        assert!(message.contains("only an administrator"), "{message}");
    }
    operator.close().await;
    admin.close().await;
    server.shutdown().await.unwrap();
}

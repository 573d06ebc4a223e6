//! Controlling a run over real QUIC in a two-tier tree: pause holds it everywhere (devices
//! that had not started it hold, simulated executors pause where they are, with their
//! progress shown), resume finishes it, and every device is counted once. A task chained
//! after another starts on each device as that device finishes the first, across the tree.

mod common;

use std::time::Duration;

use canopy::agent::Agents;
use canopy::cli::client::AdminClient;
use canopy::cli::deployment::Deployment;
use canopy::model::schedule::Schedule;
use canopy::model::task::{DeviceState, RunState};
use canopy::wire::msg::{AdminRequest, AdminResponse, RunView, TaskChanges, TaskRequest};
use common::{
    create_task, refused, results, results_at, simulate_spec, start_task, stats, tree_scope,
    wait_tree_finished,
};

const TOKEN: &str = "run-control-tests-token-0123456789";

/// A fleet named `name` of `n` simulated devices at `server`, once all are connected.
async fn fleet(d: &Deployment, name: &str, server: std::net::SocketAddr, n: u32) -> Agents {
    common::named_fleet(d, name, &server.to_string(), TOKEN, n, "").await
}

/// Waits until the task's last run, across the tree, satisfies `done`.
async fn wait_run(admin: &AdminClient, task: &str, what: &str, done: impl Fn(&RunView) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let run = stats(admin, task).await;
        if done(&run) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {run:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn control(admin: &AdminClient, request: TaskRequest) -> RunView {
    match admin.call(AdminRequest::Task(request)).await.unwrap() {
        AdminResponse::TaskStats(run) => run,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_a_run_across_the_tree_and_resume_finishes_it_counting_each_device_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, admin) = common::two_tiers(&d, TOKEN).await;
    let on_primary = fleet(&d, "fleet-primary", primary.local_addr(), 4).await;
    let on_branch = fleet(&d, "fleet-branch", branch.local_addr(), 3).await;
    // Two devices known to the primary but off when the run starts: it is pending there.
    let late = fleet(&d, "fleet-late", primary.local_addr(), 2).await;
    late.stop().await.unwrap();

    let spec = simulate_spec("Long scan", tree_scope("Managed devices"), 6_000, [1, 0, 0]);
    create_task(&admin, spec).await;
    // The task's copy reaches the branch before the run does (the change log keeps order).
    start_task(&admin, "Long scan", None).await;
    wait_run(&admin, "Long scan", "7 devices running, 2 pending", |run| {
        run.counters.count(DeviceState::Running) == 7
            && run.counters.count(DeviceState::Pending) == 2
    })
    .await;

    let paused = control(
        &admin,
        TaskRequest::Pause {
            task: "Long scan".into(),
        },
    )
    .await;
    assert_eq!(paused.state, RunState::Paused);
    assert!(paused.paused.is_some());
    // The branch applies the pause from its parent's log and tells its devices.
    wait_run(&admin, "Long scan", "every running device paused", |run| {
        run.counters.count(DeviceState::Paused) == 7
    })
    .await;
    let message = refused(
        &admin,
        TaskRequest::Pause {
            task: "Long scan".into(),
        },
    )
    .await;
    assert!(message.contains("is paused already"), "{message}");

    // The devices that were off come back: their orders are held while the run is paused.
    let late = fleet(&d, "fleet-late", primary.local_addr(), 2).await;
    // Longer than the simulated run itself: a paused executor's time stands still.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let held = stats(&admin, "Long scan").await;
    assert_eq!(held.state, RunState::Paused);
    assert_eq!(held.counters.finished(), 0, "{held:#?}");
    assert_eq!(held.counters.count(DeviceState::Paused), 7, "{held:#?}");
    assert_eq!(held.counters.count(DeviceState::Pending), 2, "{held:#?}");
    let completion = held.counters.completion_percent();
    assert!(completion > 0.0 && completion < 100.0, "{completion}");
    let own = results(&admin, "Long scan").await;
    let below = results_at(&admin, "Long scan", "branch-1").await;
    let paused: Vec<_> = own
        .iter()
        .chain(&below)
        .filter(|r| r.state == DeviceState::Paused)
        .collect();
    assert_eq!(paused.len(), 7);
    for record in &paused {
        assert!((1..100).contains(&record.progress), "{record:?}");
    }
    // The tree's completion counts the progress of every paused device, the branch's too.
    let progress: u64 = paused.iter().map(|r| u64::from(r.progress)).sum();
    assert_eq!(held.counters.progress, progress, "{held:#?}");

    let resumed = control(
        &admin,
        TaskRequest::Resume {
            task: "Long scan".into(),
        },
    )
    .await;
    assert_ne!(resumed.state, RunState::Paused);
    let done = wait_tree_finished(&admin, "Long scan", 9).await;
    assert_eq!(done.state, RunState::Completed);
    assert_eq!(done.counters.count(DeviceState::Succeeded), 9, "{done:#?}");
    assert_eq!(done.counters.total(), 9);
    let own = results(&admin, "Long scan").await;
    let below = results_at(&admin, "Long scan", "branch-1").await;
    assert_eq!((own.len(), below.len()), (6, 3));
    for record in own.iter().chain(&below) {
        assert_eq!(record.state, DeviceState::Succeeded, "{record:?}");
        assert_eq!(record.tries, 1, "started once: {record:?}");
        assert_eq!(record.progress, 100, "{record:?}");
    }
    let message = refused(
        &admin,
        TaskRequest::Resume {
            task: "Long scan".into(),
        },
    )
    .await;
    assert!(message.contains("is completed"), "{message}");

    for fleet in [on_primary, on_branch, late] {
        fleet.stop().await.unwrap();
    }
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_paused_run_cancels_the_paused_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = common::enrolling_primary(&d, TOKEN).await;
    let admin = d.admin(primary.local_addr()).await.unwrap();
    let devices = fleet(&d, "fleet", primary.local_addr(), 3).await;
    let spec = simulate_spec(
        "Held scan",
        tree_scope("Managed devices"),
        60_000,
        [1, 0, 0],
    );
    create_task(&admin, spec).await;
    start_task(&admin, "Held scan", None).await;
    wait_run(&admin, "Held scan", "3 devices running", |run| {
        run.counters.count(DeviceState::Running) == 3
    })
    .await;
    control(
        &admin,
        TaskRequest::Pause {
            task: "Held scan".into(),
        },
    )
    .await;
    wait_run(&admin, "Held scan", "3 devices paused", |run| {
        run.counters.count(DeviceState::Paused) == 3
    })
    .await;
    let stopped = control(
        &admin,
        TaskRequest::Stop {
            task: "Held scan".into(),
        },
    )
    .await;
    assert_eq!(stopped.state, RunState::Stopped);
    // Well before the simulated minute: the paused executors were cancelled.
    wait_run(&admin, "Held scan", "3 devices cancelled", |run| {
        run.counters.count(DeviceState::Failed) == 3
    })
    .await;
    for record in results(&admin, "Held scan").await {
        assert_eq!(
            record.description, "cancelled by an administrator",
            "{record:?}"
        );
    }
    devices.stop().await.unwrap();
    admin.close().await;
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_task_starts_on_each_device_after_the_first_completes_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, admin) = common::two_tiers(&d, TOKEN).await;
    let on_primary = fleet(&d, "fleet-primary", primary.local_addr(), 3).await;
    let on_branch = fleet(&d, "fleet-branch", branch.local_addr(), 2).await;
    let scope = || tree_scope("Managed devices");
    let first = create_task(&admin, simulate_spec("Download", scope(), 1_500, [1, 0, 0])).await;
    let mut spec = simulate_spec("Install", scope(), 300, [1, 0, 0]);
    spec.schedule = Schedule::AfterTask { task_id: first.id };
    let second = create_task(&admin, spec).await;
    // A chain may not loop: the first task cannot follow the second.
    let message = refused(
        &admin,
        TaskRequest::Edit {
            task: "Download".into(),
            changes: Box::new(TaskChanges {
                schedule: Some(Schedule::AfterTask { task_id: second.id }),
                ..TaskChanges::default()
            }),
        },
    )
    .await;
    assert!(message.contains("cannot loop"), "{message}");

    let (run, _) = start_task(&admin, "Download", None).await;
    // The chained run exists at once, every device pending until it finishes the first.
    let chained = stats(&admin, "Install").await;
    assert_eq!(chained.after_run, Some(run.run_id), "{chained:#?}");
    let done = wait_tree_finished(&admin, "Install", 5).await;
    assert_eq!(done.state, RunState::Completed);
    assert_eq!(done.counters.count(DeviceState::Succeeded), 5, "{done:#?}");
    assert_eq!(done.run_id, chained.run_id, "one chained run");
    // On every device, the second task started after the first had finished there.
    let mut ends = std::collections::HashMap::new();
    for server in [None, Some("branch-1")] {
        let (first, second) = match server {
            None => (
                results(&admin, "Download").await,
                results(&admin, "Install").await,
            ),
            Some(s) => (
                results_at(&admin, "Download", s).await,
                results_at(&admin, "Install", s).await,
            ),
        };
        for record in first {
            ends.insert(record.device_id.clone(), record.finished.unwrap());
        }
        for record in second {
            let started = record.started.unwrap();
            assert!(started >= ends[&record.device_id], "{record:?}");
            assert_eq!(record.tries, 1, "{record:?}");
        }
    }
    assert_eq!(ends.len(), 5);
    for fleet in [on_primary, on_branch] {
        fleet.stop().await.unwrap();
    }
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

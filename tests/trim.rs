//! A change log that stays small, over real QUIC: the primary trims the entries its
//! secondaries applied and all but the newest `change_log.keep`; a secondary that was away
//! past the trimmed start, and a new one, are sent a snapshot of the primary's state, then
//! the log. What they hold afterwards is what the primary holds: tasks created while they
//! were away, not a task deleted meanwhile, and a run started meanwhile reaches their
//! devices. The trimmed start survives a restart of the primary.

mod common;

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{
    Deployment, config_text, free_port, parent_of, start, wait_for_tree,
};
use canopy::model::task::DeviceState;
use canopy::model::{EventKind, ServerStatus};
use canopy::wire::msg::{AdminRequest, AdminResponse, TaskRequest};
use common::{
    LIMIT, create_task, named_fleet, simulate_spec, start_task, tree_scope, until, wait_event,
    wait_tree_finished,
};

const TOKEN: &str = "trim-tests-token-0123456789";

/// Entries of the log the primary keeps whoever has not applied them.
const KEEP: u64 = 4;

fn enrolling(text: String) -> String {
    format!("{text}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n")
}

/// The names of the tasks a server holds, sorted.
async fn task_names(admin: &AdminClient) -> Vec<String> {
    let request = AdminRequest::Task(TaskRequest::List {
        after: None,
        limit: 100,
    });
    match admin.call(request).await.unwrap() {
        AdminResponse::Tasks { tasks, .. } => {
            let mut names: Vec<String> = tasks.into_iter().map(|t| t.name).collect();
            names.sort();
            names
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn all_active(rows: &[canopy::model::ServerRow], n: usize) -> bool {
    rows.len() == n && rows.iter().all(|r| r.status == ServerStatus::Active)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_away_past_the_trimmed_log_and_a_new_one_get_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    d.add_server("primary", 0, None).await.unwrap();
    // The primary restarts on its port: its secondaries know it by it.
    let primary_port = free_port().unwrap();
    let primary_text = enrolling(config_text("primary", primary_port, None))
        + &format!("\n[change_log]\nkeep = {KEEP}\ntrim_every_s = 1\n");
    let primary_config = d.write_config("primary", &primary_text).await.unwrap();
    let primary = start(&primary_config).await.unwrap();
    let link = Some(parent_of(&primary));

    // branch-1 restarts on its port too: its devices know it by it.
    let branch_port = free_port().unwrap();
    d.add_server("branch-1", branch_port, link).await.unwrap();
    let branch_config = d
        .write_config(
            "branch-1",
            &enrolling(config_text("branch-1", branch_port, link)),
        )
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let branch = start(&branch_config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, LIMIT, "branch-1 up", |rows| all_active(rows, 2))
        .await
        .unwrap();
    let at_branch = format!("127.0.0.1:{branch_port}");
    let fleet = named_fleet(&d, "fleet-b", &at_branch, TOKEN, 2, "").await;
    let spec = |name: &str| simulate_spec(name, tree_scope("Managed devices"), 10, [1, 0, 0]);
    create_task(&admin, spec("Old")).await;
    start_task(&admin, "Old", None).await;
    wait_tree_finished(&admin, "Old", 2).await;

    // branch-1 goes away; the primary's log grows well past KEEP entries meanwhile.
    branch.shutdown().await.unwrap();
    wait_for_tree(&admin, LIMIT, "branch-1 seen down", |rows| {
        rows.iter()
            .any(|r| r.path == "primary/branch-1" && r.status != ServerStatus::Active)
    })
    .await
    .unwrap();
    for i in 0..6 {
        create_task(&admin, spec(&format!("New {i}"))).await;
    }
    let delete = TaskRequest::Delete {
        task: "Old".into(),
        comment: None,
    };
    admin.call(AdminRequest::Task(delete)).await.unwrap();
    create_task(&admin, spec("Kept")).await;
    start_task(&admin, "Kept", None).await;
    let store = &primary.node.store;
    until("the log trimmed past what branch-1 applied", || async {
        let log = store.log_state().await.unwrap();
        let trimmed = store.log_trimmed().await.unwrap();
        log.last_seq > 2 * KEEP && trimmed >= log.last_seq - KEEP
    })
    .await;
    // The trimmed start is durable: the primary restarts with it.
    let trimmed = store.log_trimmed().await.unwrap();
    admin.close().await;
    primary.shutdown().await.unwrap();
    let primary = start(&primary_config).await.unwrap();
    assert!(primary.node.store.log_trimmed().await.unwrap() >= trimmed);
    let admin = d.admin(primary.local_addr()).await.unwrap();

    // branch-1 comes back below the trimmed start: a snapshot brings it up to date.
    let branch = start(&branch_config).await.unwrap();
    let sent = wait_event(
        &admin,
        EventKind::ReplayStarted,
        "sending branch-1 a snapshot",
    )
    .await;
    assert!(sent.message.contains("it had applied"), "{}", sent.message);
    let run = wait_tree_finished(&admin, "Kept", 2).await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 2, "{run:#?}");
    let expected: Vec<String> = ["Kept", "New 0", "New 1", "New 2", "New 3", "New 4", "New 5"]
        .map(String::from)
        .to_vec();
    let below = d.admin(branch.local_addr()).await.unwrap();
    until("branch-1 holds what the primary holds", || async {
        task_names(&below).await == expected
    })
    .await;
    assert_eq!(task_names(&admin).await, expected);

    // A new secondary is sent a snapshot, not the history.
    d.add_server("branch-2", 0, Some(parent_of(&primary)))
        .await
        .unwrap();
    let config = d
        .write_config(
            "branch-2",
            &enrolling(config_text("branch-2", 0, Some(parent_of(&primary)))),
        )
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-2", "Managed devices")
        .await
        .unwrap();
    let branch_2 = start(&config).await.unwrap();
    let sent = wait_event(
        &admin,
        EventKind::ReplayStarted,
        "sending branch-2 a snapshot",
    )
    .await;
    assert!(sent.message.contains("it is new"), "{}", sent.message);
    let second = d.admin(branch_2.local_addr()).await.unwrap();
    until("branch-2 holds what the primary holds", || async {
        task_names(&second).await == expected
    })
    .await;
    wait_for_tree(&admin, LIMIT, "the whole tree up", |rows| {
        all_active(rows, 3)
    })
    .await
    .unwrap();

    // Both applied everything: the log keeps only its last entry.
    until("the log trimmed to its last entry", || async {
        let log = primary.node.store.log_state().await.unwrap();
        primary.node.store.log_trimmed().await.unwrap() + 1 == log.last_seq
    })
    .await;

    second.close().await;
    below.close().await;
    admin.close().await;
    fleet.stop().await.unwrap();
    branch_2.shutdown().await.unwrap();
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

//! Devices over real QUIC: enrollment (token, pending and approval, rejection, unknown token,
//! a changed key), results delivered exactly once across restarts, and a simulated fleet.

mod common;

use canopy::agent::{AgentCounts, Agents};
use canopy::cli::client::AdminClient;
use std::time::Duration;

use canopy::cli::deployment::{
    Deployment, config_text, free_port, parent_of, start, wait_for_tree,
};
use canopy::model::device::{DeviceView, Enrollment};
use canopy::model::limits;
use canopy::model::task::DeviceProgress;
use canopy::model::task::{Details, Outcome};
use canopy::model::task::{DeviceState, TaskPayload};
use canopy::model::{EventKind, RunRef, ServerStatus};
use canopy::server::RunningServer;
use canopy::store::Store;
use canopy::store::agent::{Identity, LocalRunState};
use canopy::wire::close;
use canopy::wire::msg::{
    AdminRequest, AdminResponse, AgentToServer, DeviceRequest, RunResult, ScopeSpec, ServerToAgent,
    TaskRequest,
};
use common::raw_agent::{RawAgent, RawIdentity, facts};
use common::{until, wait_event};

const TOKEN: &str = "branch-token-0123456789";

async fn server_with_token(
    d: &Deployment,
    port: u16,
) -> (canopy::config::ServerConfig, RunningServer) {
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text("primary", port, None)
    );
    let config = d.write_config("primary", &text).await.unwrap();
    canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    let server = start(&config).await.unwrap();
    (config, server)
}

async fn devices(admin: &AdminClient) -> Vec<DeviceView> {
    admin.devices(None, false).await.unwrap()
}

async fn counts_reach(agents: &Agents, want: AgentCounts) {
    until(&format!("{want:?}"), || async { agents.counts() == want }).await;
}

const ONE_CONNECTED: AgentCounts = AgentCounts {
    connecting: 0,
    pending: 0,
    connected: 1,
    rejected: 0,
    last_failure: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_token_pending_approval_rejection_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (_, server) = server_with_token(&d, 0).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();

    // With the token: enrolled into the token's group at once.
    let with_token = Agents::start(d.agent_config("ws-token", addr, Some(TOKEN)).unwrap(), None)
        .await
        .unwrap();
    counts_reach(&with_token, ONE_CONNECTED).await;
    let listed = devices(&admin).await;
    let dev = listed.iter().find(|d| d.name == "ws-token").unwrap();
    assert_eq!(
        (dev.enrollment, dev.connected, dev.group.as_str()),
        (Enrollment::Approved, true, "Managed devices")
    );
    assert_eq!(dev.time_zone, "Europe/Berlin");
    assert_eq!(dev.applications[0].name, "Endpoint Security");

    // Without a token: pending until approved, then connected, in the group chosen.
    let pending = Agents::start(d.agent_config("ws-pending", addr, None).unwrap(), None)
        .await
        .unwrap();
    counts_reach(
        &pending,
        AgentCounts {
            pending: 1,
            ..Default::default()
        },
    )
    .await;
    let dev = devices(&admin)
        .await
        .into_iter()
        .find(|d| d.name == "ws-pending")
        .unwrap();
    assert_eq!(
        (dev.enrollment, dev.connected, dev.group.as_str()),
        (Enrollment::Pending, false, "Unassigned devices")
    );
    let approve = DeviceRequest::Approve {
        device: "ws-pending".into(),
        group: Some("Managed devices".into()),
    };
    admin.call(AdminRequest::Device(approve)).await.unwrap();
    counts_reach(&pending, ONE_CONNECTED).await;
    let dev = devices(&admin)
        .await
        .into_iter()
        .find(|d| d.name == "ws-pending")
        .unwrap();
    assert_eq!(
        (dev.enrollment, dev.connected, dev.group.as_str()),
        (Enrollment::Approved, true, "Managed devices")
    );

    // Rejected: the agent is told so and stops asking.
    let rejected = Agents::start(d.agent_config("ws-rejected", addr, None).unwrap(), None)
        .await
        .unwrap();
    counts_reach(
        &rejected,
        AgentCounts {
            pending: 1,
            ..Default::default()
        },
    )
    .await;
    admin
        .call(AdminRequest::Device(DeviceRequest::Reject {
            device: "ws-rejected".into(),
        }))
        .await
        .unwrap();
    counts_reach(
        &rejected,
        AgentCounts {
            rejected: 1,
            ..Default::default()
        },
    )
    .await;

    // An unknown token is refused, with an event.
    let stranger = Agents::start(
        d.agent_config("ws-stranger", addr, Some("not-a-token-of-this-server"))
            .unwrap(),
        None,
    )
    .await
    .unwrap();
    wait_event(&admin, EventKind::DeviceRefused, "unknown enrollment token").await;
    assert_eq!(stranger.counts().connected, 0);
    // The agent says why it cannot get in, not only that it is connecting.
    until("the stranger's reason", || async {
        let reason = stranger.counts().last_failure.unwrap_or_default();
        reason.contains("enrollment token")
    })
    .await;
    assert!(
        !devices(&admin)
            .await
            .iter()
            .any(|d| d.name == "ws-stranger")
    );

    // A device whose key changed: the same device id with a new key is refused.
    let id = devices(&admin)
        .await
        .into_iter()
        .find(|d| d.name == "ws-token")
        .unwrap()
        .id;
    with_token.stop().await.unwrap();
    let forged_config = d.agent_config("ws-forged", addr, Some(TOKEN)).unwrap();
    std::fs::create_dir_all(forged_config.data.parent().unwrap()).unwrap();
    let path = forged_config.data.clone();
    let forged_store = tokio::task::spawn_blocking(move || Store::open_agent(&path))
        .await
        .unwrap()
        .unwrap();
    let (cert, key) = canopy::net::pki::self_signed_device("ws-token").unwrap();
    let identity = Identity {
        device_id: id.clone(),
        cert_der: cert.to_vec(),
        key_der: key.secret_der().to_vec(),
    };
    forged_store
        .identities(vec!["agent".into()], move |_| Ok(identity.clone()))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || forged_store.close())
        .await
        .unwrap()
        .unwrap();
    let forged = Agents::start(forged_config, None).await.unwrap();
    wait_event(&admin, EventKind::DeviceRefused, "another key").await;
    assert_eq!(forged.counts().connected, 0);

    for a in [pending, rejected, stranger, forged] {
        a.stop().await.unwrap();
    }
    admin.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_results_are_delivered_once_after_agent_and_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (config, server) = server_with_token(&d, free_port().unwrap()).await;
    let addr = server.local_addr();
    let agent_config = d.agent_config("ws-1", addr, Some(TOKEN)).unwrap();
    let agent = Agents::start(agent_config.clone(), None).await.unwrap();
    counts_reach(&agent, ONE_CONNECTED).await;
    let device_id = server.node.connected_devices().into_iter().next().unwrap();

    // A run long enough to outlive the server.
    let payload = TaskPayload::Simulate {
        duration_ms: 1500,
        succeeded: 1,
        warning: 0,
        failed: 0,
        need_restart_percent: 0,
    };
    let admin = d.admin(addr).await.unwrap();
    let spec = common::task_spec(
        "long run",
        canopy::model::task::TaskType::Device(payload),
        ScopeSpec::Local {
            device: device_id.clone(),
        },
    );
    common::create_task(&admin, spec).await;
    let run_id = common::start_task(&admin, "long run", None).await.0.run_id;
    run_started(&agent, &device_id).await;
    server.shutdown().await.unwrap();
    until("the run to finish with the server away", || async {
        agent
            .store()
            .local_runs(&device_id)
            .await
            .unwrap()
            .iter()
            .any(|r| r.state == LocalRunState::Finished && !r.acknowledged)
    })
    .await;
    agent.stop().await.unwrap();

    // Both come back; the spooled result arrives, is stored once and acknowledged.
    let agent = Agents::start(agent_config, None).await.unwrap();
    let server = start(&config).await.unwrap();
    until("the result to be acknowledged", || async {
        agent
            .store()
            .local_runs(&device_id)
            .await
            .unwrap()
            .iter()
            .all(|r| r.acknowledged)
    })
    .await;
    let results = server.node.store.run_records(run_id).await.unwrap();
    assert_eq!(results.len(), 1, "exactly one record for the run");
    assert_eq!(results[0].device_id, device_id);
    assert_eq!(results[0].state, DeviceState::Succeeded);
    assert_eq!(results[0].tries, 1);
    let run = server.node.store.run(run_id).await.unwrap().unwrap();
    assert_eq!(run.counters.count(DeviceState::Succeeded), 1);
    assert_eq!(run.counters.total(), 1);
    assert!(
        server
            .node
            .store
            .orders_for(&device_id)
            .await
            .unwrap()
            .is_empty(),
        "the order is retired"
    );

    // The same order sent again is not run twice, and a resent result is not stored twice.
    let order = canopy::wire::msg::RunOrder {
        run: RunRef::Ordered(run_id),
        task_id: run.task_id,
        task_name: "long run".into(),
        application: canopy::model::task::AGENT_APPLICATION.into(),
        payload: TaskPayload::Inventory,
        time_limit_secs: None,
        account: Default::default(),
    };
    assert!(
        !agent
            .store()
            .receive_order(&device_id, order, None)
            .await
            .unwrap()
    );
    let again = agent.store().local_runs(&device_id).await.unwrap()[0]
        .result
        .clone()
        .unwrap();
    let resent = DeviceProgress::Finished {
        started: again.started,
        finished: again.finished,
        outcome: again.outcome,
    };
    assert!(
        server
            .node
            .store
            .record_progress(&device_id, run_id, resent, 0, None)
            .await
            .unwrap()
            .is_none(),
        "a resent result changes nothing"
    );
    let run_again = server.node.store.run(run_id).await.unwrap().unwrap();
    assert_eq!(run_again.counters, run.counters, "and is not counted twice");
    agent.stop().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_an_agent_crash_is_reported_failed_not_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (_, server) = server_with_token(&d, 0).await;
    let agent_config = d
        .agent_config("ws-1", server.local_addr(), Some(TOKEN))
        .unwrap();
    let agent = Agents::start(agent_config.clone(), None).await.unwrap();
    counts_reach(&agent, ONE_CONNECTED).await;
    let device_id = server.node.connected_devices().into_iter().next().unwrap();
    let payload = TaskPayload::Simulate {
        duration_ms: 60_000,
        succeeded: 1,
        warning: 0,
        failed: 0,
        need_restart_percent: 0,
    };
    let admin = d.admin(server.local_addr()).await.unwrap();
    let spec = common::task_spec(
        "endless",
        canopy::model::task::TaskType::Device(payload),
        ScopeSpec::Local {
            device: device_id.clone(),
        },
    );
    common::create_task(&admin, spec).await;
    common::start_task(&admin, "endless", None).await;
    run_started(&agent, &device_id).await;
    // Stopping mid-run is what a crash looks like to the run log: started, no result.
    agent.stop().await.unwrap();
    let agent = Agents::start(agent_config, None).await.unwrap();
    let run = common::wait_finished(&admin, "endless").await;
    assert_eq!(run.counters.count(DeviceState::Failed), 1);
    let results = common::results(&admin, "endless").await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].state, DeviceState::Failed);
    assert_eq!(results[0].tries, 1, "started once, never re-run");
    assert!(
        results[0].description.contains("interrupted"),
        "{:?}",
        results[0]
    );
    agent.stop().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_hundred_simulated_devices_connect_are_listed_and_leave_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (_, server) = server_with_token(&d, 0).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let fleet = common::fleet(&d, addr, TOKEN, 300, 42).await;
    until("300 connected at the server", || async {
        server.node.connected_devices().len() == 300
    })
    .await;
    let listed = devices(&admin).await;
    assert_eq!(listed.len(), 300);
    assert!(
        listed
            .iter()
            .all(|d| d.connected && d.enrollment == Enrollment::Approved)
    );
    let names: std::collections::HashSet<_> = listed.iter().map(|d| d.name.clone()).collect();
    let addresses: std::collections::HashSet<_> =
        listed.iter().map(|d| d.addresses.clone()).collect();
    assert_eq!(
        (names.len(), addresses.len()),
        (300, 300),
        "distinct names and addresses"
    );
    assert!(
        listed
            .iter()
            .map(|d| &d.os)
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );

    // Paging: 300 devices in pages of 128 come back complete, in order, each once.
    let mut paged: Vec<DeviceView> = Vec::new();
    let mut after = None;
    loop {
        let request = DeviceRequest::List {
            group: None,
            recursive: false,
            after: after.clone(),
            limit: 128,
        };
        let AdminResponse::Devices { devices, next } =
            admin.call(AdminRequest::Device(request)).await.unwrap()
        else {
            panic!()
        };
        assert!(devices.len() == 128 || next.is_none());
        paged.extend(devices);
        after = next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(
        paged, listed,
        "pages of 128 give the same 300 devices in the same order"
    );

    fleet.stop().await.unwrap();
    until("all disconnected at the server", || async {
        server.node.connected_devices().is_empty()
    })
    .await;
    assert!(
        devices(&admin)
            .await
            .iter()
            .all(|d| !d.connected && d.last_seen.is_some())
    );
    admin.close().await;
    server.shutdown().await.unwrap();
}

/// Waits until the device has recorded a run as started.
async fn run_started(agent: &Agents, device_id: &str) {
    until("the run to start on the device", || async {
        agent
            .store()
            .local_runs(device_id)
            .await
            .unwrap()
            .iter()
            .any(|r| r.state == LocalRunState::Started)
    })
    .await;
}

/// Whether the device with display name `name` is connected, as `admin`'s server sees it.
async fn connected(admin: &AdminClient, name: &str) -> bool {
    devices(admin)
        .await
        .iter()
        .any(|d| d.name == name && d.connected)
}

/// Reads the slow device's messages until an order of the task named `task` (and of run
/// `run_id`, if given) arrives, then answers it as a device that ran it.
async fn catch_up(agent: &mut RawAgent, task: &str, run_id: Option<u64>) {
    let order = loop {
        match agent.next().await {
            ServerToAgent::Run(order)
                if order.task_name == task
                    && run_id.is_none_or(|id| RunRef::Ordered(id) == order.run) =>
            {
                break order;
            }
            _ => {}
        }
    };
    // More than the server keeps: it cuts the description and the output, visibly.
    let mut outcome = Outcome::failed(format!("ran late {}", "x".repeat(300_000)));
    outcome.details = Details::Command {
        exit_code: Some(1),
        stdout: "o".repeat(300_000),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
    };
    let result = RunResult {
        run: order.run,
        started: 1,
        finished: 2,
        outcome,
    };
    agent
        .send(&AgentToServer::Received { run: order.run })
        .await;
    agent.send(&AgentToServer::Result(result)).await;
    loop {
        if let ServerToAgent::ResultStored { run } = agent.next().await
            && run == order.run
        {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_reads_is_dropped_and_blocks_neither_admins_nor_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (_, primary) = server_with_token(&d, 0).await;
    let link = Some(parent_of(&primary));
    d.add_server("branch", 0, link).await.unwrap();
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text("branch", 0, link)
    );
    let config = d.write_config("branch", &text).await.unwrap();
    d.register(primary.local_addr(), "branch", "Managed devices")
        .await
        .unwrap();
    let branch = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, common::LIMIT, "the branch linked", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let branch_admin = d.admin(branch.local_addr()).await.unwrap();
    let fleet = common::fleet(&d, branch.local_addr(), TOKEN, 3, 7).await;

    // One device on each server enrolls, then never reads: the server's writes to it stall
    // once its 1 KiB window is full.
    let ids = [
        RawIdentity::new("slow-primary"),
        RawIdentity::new("slow-branch"),
    ];
    let slow_primary = RawAgent::connect(
        &d,
        primary.local_addr(),
        &ids[0],
        Some(TOKEN),
        facts("slow-primary"),
        Some(1024),
    )
    .await;
    let slow_branch = RawAgent::connect(
        &d,
        branch.local_addr(),
        &ids[1],
        Some(TOKEN),
        facts("slow-branch"),
        Some(1024),
    )
    .await;
    until("the slow devices connected", || async {
        connected(&admin, "slow-primary").await && connected(&branch_admin, "slow-branch").await
    })
    .await;

    // Every start sends each slow device an order: far more than its queue holds.
    let spec = common::simulate_spec("T", common::tree_scope("Managed devices"), 20, [1, 0, 0]);
    common::create_task(&admin, spec).await;
    let prompt = Duration::from_secs(5);
    for i in 0..120 {
        tokio::time::timeout(prompt, common::start_task(&admin, "T", None))
            .await
            .unwrap_or_else(|_| panic!("task start {i} did not answer within {prompt:?}"));
        let stop = AdminRequest::Task(TaskRequest::Stop { task: "T".into() });
        tokio::time::timeout(prompt, admin.call(stop))
            .await
            .unwrap_or_else(|_| panic!("task stop {i} did not answer within {prompt:?}"))
            .unwrap();
    }
    // The branch still applies its parent's changes: a last run reaches its fleet.
    let (last, _) = tokio::time::timeout(prompt, common::start_task(&admin, "T", None))
        .await
        .expect("the last task start answers promptly");
    until("the branch's fleet finished the last run", || async {
        common::stats(&admin, "T")
            .await
            .counters
            .count(DeviceState::Succeeded)
            == 3
    })
    .await;

    // The slow devices were disconnected, and told why.
    for slow in [&slow_primary, &slow_branch] {
        let (code, reason) = slow.closed().await;
        assert_eq!(code, u64::from(close::TOO_SLOW), "{reason}");
        assert!(reason.contains("did not keep up"), "{reason}");
    }
    slow_primary.close().await;
    slow_branch.close().await;

    // Connected again, each gets the order it missed from the stored orders.
    let mut again = RawAgent::connect(
        &d,
        primary.local_addr(),
        &ids[0],
        Some(TOKEN),
        facts("slow-primary"),
        None,
    )
    .await;
    catch_up(&mut again, "T", Some(last.run_id)).await;
    let mut again_branch = RawAgent::connect(
        &d,
        branch.local_addr(),
        &ids[1],
        Some(TOKEN),
        facts("slow-branch"),
        None,
    )
    .await;
    catch_up(&mut again_branch, "T", None).await;
    until("every device of the last run finished", || async {
        let run = common::stats(&admin, "T").await;
        run.run_id == last.run_id && run.counters.finished() == 5 && run.counters.total() == 5
    })
    .await;
    assert_eq!(fleet.counts().connected, 3, "the other devices stayed");
    let records = common::results(&admin, "T").await;
    let late = records
        .iter()
        .find(|r| r.device_name == "slow-primary")
        .unwrap();
    assert_eq!(late.description.len(), limits::DESCRIPTION_MAX);
    assert!(late.description.ends_with(limits::CUT_MARK));
    match &late.details {
        Some(Details::Command {
            stdout,
            stdout_truncated: true,
            ..
        }) => assert_eq!(stdout.len(), limits::OUTPUT_MAX),
        other => panic!("{other:?}"),
    }
    let events = common::events(&admin).await;
    assert!(
        events
            .iter()
            .all(|e| e.message.len() < 2 * limits::DESCRIPTION_MAX)
    );

    again.close().await;
    again_branch.close().await;
    fleet.stop().await.unwrap();
    admin.close().await;
    branch_admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// Devices without a token wait for an administrator, and each holds a record: beyond
/// `limits.max_pending_devices` an unknown device is refused (and stored nowhere) until an
/// administrator decides about the ones that wait. Devices already known are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_devices_beyond_the_pending_cap_are_refused_until_an_administrator_decides() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let text = format!(
        "{}\n[limits]\nmax_pending_devices = 3\n",
        config_text("primary", 0, None)
    );
    let config = d.write_config("primary", &text).await.unwrap();
    canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    let primary = start(&config).await.unwrap();
    let addr = primary.local_addr();
    let admin = d.admin(addr).await.unwrap();

    let ids: Vec<RawIdentity> = (0..5)
        .map(|i| RawIdentity::new(&format!("waiting-{i}")))
        .collect();
    let mut waiting = Vec::new();
    for id in &ids[..3] {
        let name = format!("waiting-{}", waiting.len());
        let mut agent = RawAgent::connect(&d, addr, id, None, facts(&name), None).await;
        assert_eq!(agent.next().await, ServerToAgent::Pending);
        waiting.push(agent);
    }
    // The fourth unknown device is refused with LIMIT and not registered.
    let refused = RawAgent::connect(&d, addr, &ids[3], None, facts("waiting-3"), None).await;
    let (code, reason) = refused.closed().await;
    assert_eq!(code, u64::from(close::LIMIT), "{reason}");
    assert!(reason.contains("approval"), "{reason}");
    let names: Vec<String> = devices(&admin).await.into_iter().map(|v| v.name).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&"waiting-3".to_string()), "{names:?}");
    wait_event(&admin, EventKind::DeviceRefused, "wait for approval").await;

    // A pending device that reconnects is still known, and still waits.
    waiting.remove(0).close().await;
    let mut again = RawAgent::connect(&d, addr, &ids[0], None, facts("waiting-0"), None).await;
    assert_eq!(again.next().await, ServerToAgent::Pending);

    // Once an administrator approves one and rejects another, two more may wait.
    let approve = DeviceRequest::Approve {
        device: "waiting-1".into(),
        group: None,
    };
    admin.call(AdminRequest::Device(approve)).await.unwrap();
    let reject = DeviceRequest::Reject {
        device: "waiting-2".into(),
    };
    admin.call(AdminRequest::Device(reject)).await.unwrap();
    for (i, id) in ids.iter().enumerate().skip(3) {
        let name = format!("waiting-{i}");
        let mut agent = RawAgent::connect(&d, addr, id, None, facts(&name), None).await;
        assert_eq!(agent.next().await, ServerToAgent::Pending, "{name}");
        waiting.push(agent);
    }
    // Deleting a waiting device frees its place too; the cap holds again after that.
    let delete = DeviceRequest::Delete {
        device: "waiting-3".into(),
    };
    admin.call(AdminRequest::Device(delete)).await.unwrap();
    let late = RawIdentity::new("waiting-5");
    let mut agent = RawAgent::connect(&d, addr, &late, None, facts("waiting-5"), None).await;
    assert_eq!(agent.next().await, ServerToAgent::Pending);
    let over = RawIdentity::new("waiting-6");
    let refused = RawAgent::connect(&d, addr, &over, None, facts("waiting-6"), None).await;
    assert_eq!(refused.closed().await.0, u64::from(close::LIMIT));
    primary.shutdown().await.unwrap();
}

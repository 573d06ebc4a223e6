//! What the tree keeps through changes of its shape and of its servers' files, over real
//! QUIC: a group of secondaries renamed or moved (the copies below stay), a parent restored
//! from its backup (its child resynchronises), and statistics rows that belong to a
//! registration, to the runs that concern it and to one installation of the child.

mod common;

use std::time::Duration;

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{
    Deployment, config_text, free_port, parent_of, start, wait_for_tree,
};
use canopy::model::link::StatsRow;
use canopy::model::task::{RunCounters, TaskPayload, TaskType};
use canopy::model::{EventKind, ServerStatus};
use canopy::net::pki;
use canopy::net::tls::{self, ClientTrust, Transport};
use canopy::wire::msg::{
    AdminRequest, AdminResponse, ChildHello, ChildMsg, GroupRequest, ParentMsg, ScopeSpec,
    TaskChanges, TaskRequest, VirtualServerRequest,
};
use common::{
    LIMIT, create_task, fleet, results_at, simulate_spec, start_task, stats, task_spec, tree_scope,
    until, wait_event, wait_finished, wait_tree_finished,
};

const TOKEN: &str = "tree-state-tests-token-0123456789";

fn with_token(
    name: &str,
    port: u16,
    parent: Option<(std::net::SocketAddr, canopy::model::Fingerprint)>,
) -> String {
    format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text(name, port, parent)
    )
}

async fn call(admin: &AdminClient, request: AdminRequest) -> AdminResponse {
    admin.call(request).await.unwrap()
}

/// The revision of the task named `task` on the server `at` below (through the tree), if it
/// holds one.
async fn revision_at(admin: &mut AdminClient, at: &str, task: &str) -> Option<u32> {
    admin.forward_to(Some(at.into()));
    let shown = admin
        .call(AdminRequest::Task(TaskRequest::Show { task: task.into() }))
        .await;
    admin.forward_to(None);
    match shown {
        Ok(AdminResponse::Task(view)) => Some(view.revision),
        _ => None,
    }
}

/// The revision of the task named `task` on the server `client` is connected to, if any.
async fn revision_of(client: &AdminClient, task: &str) -> Option<u32> {
    let shown = client
        .call(AdminRequest::Task(TaskRequest::Show { task: task.into() }))
        .await;
    match shown {
        Ok(AdminResponse::Task(view)) => Some(view.revision),
        _ => None,
    }
}

/// Edits the simulated task `task` to take `duration_ms`.
async fn edit_duration(admin: &AdminClient, task: &str, duration_ms: u32) {
    let edit = TaskRequest::Edit {
        task: task.into(),
        changes: Box::new(TaskChanges {
            task_type: Some(TaskType::Device(TaskPayload::Simulate {
                duration_ms,
                succeeded: 100,
                warning: 0,
                failed: 0,
                need_restart_percent: 0,
            })),
            ..TaskChanges::default()
        }),
    };
    call(admin, AdminRequest::Task(edit)).await;
}

/// Finding 5: a link placed its child by the group's path as it was when it connected, so
/// after a rename or a move every update of a task went down as a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_or_moving_the_group_of_a_secondary_or_virtual_server_keeps_their_copies() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    d.add_server("primary", 0, None).await.unwrap();
    let config = d
        .write_config("primary", &with_token("primary", 0, None))
        .await
        .unwrap();
    let primary = start(&config).await.unwrap();
    let mut admin = d.admin(primary.local_addr()).await.unwrap();
    for path in [
        "Managed devices/Sites",
        "Managed devices/Sites/Paris",
        "Managed devices/Other",
    ] {
        call(
            &admin,
            AdminRequest::Group(GroupRequest::Create { path: path.into() }),
        )
        .await;
    }
    let link = Some(parent_of(&primary));
    d.add_server("branch-1", 0, link).await.unwrap();
    let branch_config = d
        .write_config("branch-1", &with_token("branch-1", 0, link))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices/Sites")
        .await
        .unwrap();
    let branch = start(&branch_config).await.unwrap();
    let create = VirtualServerRequest::Create {
        name: "tenant-a".into(),
        group: "Managed devices/Sites/Paris".into(),
    };
    let tenant_token = match call(&admin, AdminRequest::VirtualServer(create)).await {
        AdminResponse::VirtualServer(view) => view.enrollment_token.0,
        other => panic!("unexpected {other:?}"),
    };
    wait_for_tree(&admin, LIMIT, "both links up", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let branch_fleet = fleet(&d, branch.local_addr(), TOKEN, 4, 3).await;
    let tenant_config = d
        .agent_config_at(
            "tenant-fleet",
            &format!("{}/tenant-a", primary.local_addr()),
            Some(&tenant_token),
        )
        .unwrap();
    let tenant_fleet = canopy::agent::Agents::start(
        tenant_config,
        Some(canopy::agent::Simulation {
            devices: 3,
            seed: 5,
        }),
    )
    .await
    .unwrap();
    until("the tenant's devices connected", || async {
        tenant_fleet.counts().connected == 3
    })
    .await;
    wait_for_tree(&admin, LIMIT, "the device counts", |rows| {
        rows.iter().map(|r| r.devices).sum::<u64>() == 7
    })
    .await
    .unwrap();

    create_task(
        &admin,
        simulate_spec("Patch", tree_scope("Managed devices"), 20, [100, 0, 0]),
    )
    .await;
    start_task(&admin, "Patch", None).await;
    wait_tree_finished(&admin, "Patch", 7).await;

    // Rename the group both are in (the tenant's is below it), then edit the task.
    let rename = GroupRequest::Rename {
        path: "Managed devices/Sites".into(),
        new_name: "Regions".into(),
    };
    call(&admin, AdminRequest::Group(rename)).await;
    edit_duration(&admin, "Patch", 30).await;
    for at in ["branch-1", "tenant-a"] {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            match revision_at(&mut admin, at, "Patch").await {
                Some(2) => break,
                Some(1) => {}
                other => panic!("after the rename the copy on {at} is {other:?}, not revision 2"),
            }
            assert!(tokio::time::Instant::now() < deadline, "{at} stuck");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !results_at(&admin, "Patch", at).await.is_empty(),
            "{at} kept its run's results"
        );
    }

    // Move the tenant's group elsewhere, and edit again.
    let moved = GroupRequest::Move {
        path: "Managed devices/Regions/Paris".into(),
        new_parent: "Managed devices/Other".into(),
    };
    call(&admin, AdminRequest::Group(moved)).await;
    edit_duration(&admin, "Patch", 40).await;
    for at in ["branch-1", "tenant-a"] {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            match revision_at(&mut admin, at, "Patch").await {
                Some(3) => break,
                Some(2) => {}
                other => panic!("after the move the copy on {at} is {other:?}, not revision 3"),
            }
            assert!(tokio::time::Instant::now() < deadline, "{at} stuck");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(results_at(&admin, "Patch", "branch-1").await.len(), 4);
    assert_eq!(results_at(&admin, "Patch", "tenant-a").await.len(), 3);
    let run = stats(&admin, "Patch").await;
    assert_eq!(run.counters.total(), 7, "{run:#?}");
    // The server list shows the groups as they are now.
    let rows = admin.servers().await.unwrap();
    let group_of = |name: &str| rows.iter().find(|r| r.name == name).unwrap().group.clone();
    assert_eq!(group_of("branch-1"), "Managed devices/Regions");
    assert_eq!(group_of("tenant-a"), "Managed devices/Other/Paris");

    admin.close().await;
    branch_fleet.stop().await.unwrap();
    tenant_fleet.stop().await.unwrap();
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// Finding 6: a parent restored from its backup has a shorter log than its child applied;
/// the child's cursor was trusted, so nothing after the restore reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_restored_from_its_backup_resynchronises_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let port = free_port().unwrap();
    let config = d.add_server("primary", port, None).await.unwrap();
    let primary = start(&config).await.unwrap();
    let link = Some(parent_of(&primary));
    let branch_config = d.add_server("branch-1", 0, link).await.unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let branch = start(&branch_config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, LIMIT, "the link", |rows| {
        rows.len() == 2 && rows[1].status == ServerStatus::Active
    })
    .await
    .unwrap();
    create_task(
        &admin,
        simulate_spec("Before", tree_scope("Managed devices"), 10, [100, 0, 0]),
    )
    .await;

    // The backup task, then two tasks the backup does not hold.
    let backups = config.backups.clone();
    let spec = task_spec(
        "Backup",
        TaskType::Backup { directory: None },
        ScopeSpec::Server,
    );
    create_task(&admin, spec).await;
    start_task(&admin, "Backup", None).await;
    wait_finished(&admin, "Backup").await;
    for name in ["After 1", "After 2"] {
        create_task(
            &admin,
            simulate_spec(name, tree_scope("Managed devices"), 10, [100, 0, 0]),
        )
        .await;
    }
    let below = d.admin(branch.local_addr()).await.unwrap();
    for name in ["Before", "After 1", "After 2"] {
        until(&format!("{name} on the child"), || async {
            revision_of(&below, name).await.is_some()
        })
        .await;
    }
    admin.close().await;

    // Restore as README says: stop the server, put the backup in place of its file, start.
    primary.shutdown().await.unwrap();
    let copies: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1);
    std::fs::copy(&copies[0], &config.data).unwrap();
    let primary = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, LIMIT, "the link again", |rows| {
        rows.len() == 2 && rows[1].status == ServerStatus::Active
    })
    .await
    .unwrap();
    create_task(
        &admin,
        simulate_spec("Restored", tree_scope("Managed devices"), 10, [100, 0, 0]),
    )
    .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let restored = revision_of(&below, "Restored").await;
        let gone = [
            revision_of(&below, "After 1").await,
            revision_of(&below, "After 2").await,
        ];
        let before = revision_of(&below, "Before").await;
        // "Restored" has the id "After 1" had: its copy may be that one, rewritten. "Before"
        // is the same task in both logs: kept as it was.
        if restored.is_some() && gone == [None, None] && before == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the child did not follow the restored parent: Restored {restored:?}, \
             After 1/2 {gone:?}, Before {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_event(&below, EventKind::ReplayStarted, "resynchronis").await;
    below.close().await;
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// Finding 13: rows stayed when a secondary was removed (re-added under another name, its
/// devices counted twice), and a reinstalled child's new rows lost to its old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_go_with_the_registration_and_a_reinstalled_child_is_not_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let config = d.add_server("primary", 0, None).await.unwrap();
    let primary = start(&config).await.unwrap();
    let link = Some(parent_of(&primary));
    let port = free_port().unwrap();
    d.add_server("branch-1", port, link).await.unwrap();
    let branch_config = d
        .write_config("branch-1", &with_token("branch-1", port, link))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let branch = start(&branch_config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, LIMIT, "the link", |rows| {
        rows.len() == 2 && rows[1].status == ServerStatus::Active
    })
    .await
    .unwrap();
    let devices = fleet(&d, branch.local_addr(), TOKEN, 3, 11).await;
    wait_for_tree(&admin, LIMIT, "the device count", |rows| {
        rows.len() == 2 && rows[1].devices == 3
    })
    .await
    .unwrap();
    create_task(
        &admin,
        simulate_spec("Scan", tree_scope("Managed devices"), 10, [100, 0, 0]),
    )
    .await;
    start_task(&admin, "Scan", None).await;
    wait_tree_finished(&admin, "Scan", 3).await;

    // Removed, then registered again under another name (with a new certificate, as the
    // old one is revoked): counted once, under the new name.
    call(
        &admin,
        AdminRequest::RemoveSecondary {
            name: "branch-1".into(),
        },
    )
    .await;
    let run = stats(&admin, "Scan").await;
    assert!(
        run.servers.iter().all(|s| s.path != "primary/branch-1"),
        "the removed secondary's rows are gone: {run:#?}"
    );
    assert_eq!(run.counters.total(), 0, "{run:#?}");
    // Its certificate is revoked with the registration: it comes back with a new one.
    let branch = {
        branch.shutdown().await.unwrap();
        for ext in ["pem", "key"] {
            std::fs::remove_file(d.certs.join(format!("branch-1.{ext}"))).unwrap();
        }
        pki::issue_server(&d.certs, "branch-1", &["127.0.0.1".into()], 30).unwrap();
        start(&branch_config).await.unwrap()
    };
    let cert_pem = std::fs::read_to_string(d.certs.join("branch-1.pem")).unwrap();
    call(
        &admin,
        AdminRequest::AddSecondary {
            name: "branch-x".into(),
            group: "Managed devices".into(),
            cert_pem,
            passive: None,
        },
    )
    .await;
    until("the re-added secondary's report", || async {
        let run = stats(&admin, "Scan").await;
        run.servers
            .iter()
            .any(|s| s.path == "primary/branch-x" && s.reported)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run = stats(&admin, "Scan").await;
    assert_eq!(run.counters.total(), 3, "counted once: {run:#?}");

    // Reinstalled: a new database, no devices. Its report of the run replaces the old one.
    devices.stop().await.unwrap();
    branch.shutdown().await.unwrap();
    std::fs::remove_file(&branch_config.data).unwrap();
    let branch_config = d
        .write_config("branch-1", &with_token("branch-1", port, link))
        .await
        .unwrap();
    let branch = start(&branch_config).await.unwrap();
    until("the reinstalled child's report", || async {
        let run = stats(&admin, "Scan").await;
        run.servers
            .iter()
            .any(|s| s.path == "primary/branch-x" && s.reported && s.counters.total() == 0)
    })
    .await;
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// A registered secondary speaking the protocol by hand.
struct RawChild {
    _endpoint: quinn::Endpoint,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl RawChild {
    async fn connect(d: &Deployment, addr: std::net::SocketAddr, name: &str) -> RawChild {
        let identity = (
            pki::load_certs(&d.certs.join(format!("{name}.pem"))).unwrap(),
            pki::load_key(&d.certs.join(format!("{name}.key"))).unwrap(),
        );
        let trust = ClientTrust {
            roots: d.ca().unwrap(),
            pin: None,
            expected_name: None,
        };
        let config =
            tls::client_config(&trust, Some(identity), tls::ALPN_FED, &Transport::default())
                .unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(config, addr, "canopy-parent")
            .unwrap()
            .await
            .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let hello = ChildHello {
            name: name.into(),
            software_version: "test".into(),
            instance_id: "00000000000000ff".into(),
            last_applied: 0,
            parent_epoch: 0,
            epoch: 1,
        };
        canopy::wire::write_hello(&mut send, &hello).await.unwrap();
        let welcome: Option<ParentMsg> =
            canopy::wire::read_frame(&mut recv, 1 << 16).await.unwrap();
        assert!(matches!(welcome, Some(ParentMsg::Welcome { .. })));
        RawChild {
            _endpoint: endpoint,
            send,
            recv,
        }
    }

    /// Sends a report and waits for its acknowledgement.
    async fn report(&mut self, run_id: u64, rows: Vec<StatsRow>) {
        let msg = ChildMsg::Stats {
            run_id,
            report_id: 1,
            rows,
        };
        canopy::wire::write_frame(&mut self.send, &msg)
            .await
            .unwrap();
        let acked = async {
            loop {
                let msg: Option<ParentMsg> =
                    canopy::wire::read_frame(&mut self.recv, canopy::wire::frame::MAX_FRAME)
                        .await
                        .unwrap();
                match msg {
                    Some(ParentMsg::StatsAck { run_id: r, .. }) if r == run_id => return,
                    Some(_) => {}
                    None => panic!("the parent closed the link"),
                }
            }
        };
        tokio::time::timeout(LIMIT, acked).await.unwrap();
    }
}

fn row(path: &[&str], succeeded: u64) -> StatsRow {
    let mut counters = RunCounters::default();
    counters.by_state[3] = succeeded;
    StatsRow {
        path: path.iter().map(|s| s.to_string()).collect(),
        depth: path.len() as u32,
        task_id: 1,
        run_id: 1,
        counters,
        version: 1_000_000,
        epoch: 1,
    }
}

/// Finding 13: a child's rows were taken for any run of the parent, and its counts were
/// summed unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_reports_only_for_runs_that_concern_it_and_cannot_overflow_the_sums() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = common::enrolling_primary(&d, TOKEN).await;
    let addr = primary.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let devices = fleet(&d, addr, TOKEN, 1, 3).await;
    pki::issue_server(&d.certs, "rogue", &["127.0.0.1".into()], 30).unwrap();
    d.register(addr, "rogue", "Managed devices").await.unwrap();
    // A task of this server's own devices only: no secondary takes part.
    create_task(
        &admin,
        simulate_spec(
            "Local",
            common::group_scope("Managed devices", true),
            10,
            [100, 0, 0],
        ),
    )
    .await;
    let (local, _) = start_task(&admin, "Local", None).await;
    // A task of the whole tree.
    create_task(
        &admin,
        simulate_spec("Tree", tree_scope("Managed devices"), 10, [100, 0, 0]),
    )
    .await;
    let (tree, _) = start_task(&admin, "Tree", None).await;

    let mut rogue = RawChild::connect(&d, addr, "rogue").await;
    rogue
        .report(local.run_id, vec![row(&["rogue"], 1000)])
        .await;
    let run = stats(&admin, "Local").await;
    assert_eq!(run.counters.total(), 1, "{run:#?}");
    assert_eq!(run.servers.len(), 1, "{run:#?}");

    rogue
        .report(
            tree.run_id,
            vec![row(&["rogue"], u64::MAX), row(&["rogue", "x"], u64::MAX)],
        )
        .await;
    let run = stats(&admin, "Tree").await;
    assert_eq!(run.counters.total(), u64::MAX, "saturated: {run:#?}");
    // The server still answers.
    stats(&admin, "Local").await;
    admin.close().await;
    devices.stop().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// Finding 14: a change of the parent's log that can never apply here (a copy whose every
/// name is taken) blocked every later change, silently. It is skipped with an event, and the
/// changes after it apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_can_never_apply_is_skipped_with_an_event_and_the_rest_applies() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    d.add_server("primary", 0, None).await.unwrap();
    let config = d
        .write_config("primary", &with_token("primary", 0, None))
        .await
        .unwrap();
    let primary = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    let link = Some(parent_of(&primary));
    let branch_config = d.add_server("branch-1", 0, link).await.unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let branch = start(&branch_config).await.unwrap();
    wait_for_tree(&admin, LIMIT, "the branch linked", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let branch_admin = d.admin(branch.local_addr()).await.unwrap();
    // Every name the copy of the primary's task #1 "Patch" could take is taken below.
    for name in [
        "Patch",
        "Patch (from primary)",
        "Patch (from primary, #1)",
        "Patch (from primary, #1, 0)",
    ] {
        let scope = ScopeSpec::Group {
            path: "Managed devices".into(),
            include_subgroups: true,
            include_secondaries: false,
        };
        create_task(&branch_admin, simulate_spec(name, scope, 10, [1, 0, 0])).await;
    }
    let patch = create_task(
        &admin,
        simulate_spec("Patch", tree_scope("Managed devices"), 10, [1, 0, 0]),
    )
    .await;
    assert_eq!(patch.id, 1);
    create_task(
        &admin,
        simulate_spec("Scan", tree_scope("Managed devices"), 10, [1, 0, 0]),
    )
    .await;
    let skipped = wait_event(&branch_admin, EventKind::ChangeSkipped, "\"Patch\"").await;
    assert!(skipped.message.contains("primary"), "{}", skipped.message);
    until("the change after it applied", || async {
        revision_of(&branch_admin, "Scan").await.is_some()
    })
    .await;
    // The link is up, and later changes of the skipped task are tried again.
    let rows = admin.servers().await.unwrap();
    assert!(
        rows.iter().all(|r| r.status == ServerStatus::Active),
        "{rows:?}"
    );
    branch_admin.close().await;
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

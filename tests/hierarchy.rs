//! The hierarchy over real QUIC: group tasks going down the tree to every secondary and
//! virtual server, statistics coming up, drill-down, a secondary offline or killed in the
//! middle of it all, inherited tasks being read-only, and tenants kept apart.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::{
    ADMIN_PASSWORD, ADMIN_USER, DemoTree, Deployment, config_text, free_port, parent_of, start,
    wait_for_tree,
};
use canopy::model::task::{DeviceState, RunState, TaskType};
use canopy::model::{EventKind, Role, ServerStatus};
use canopy::wire::msg::{
    AdminRequest, AdminResponse, DeviceRequest, ErrorKind, GroupRequest, ScopeSpec, TaskChanges,
    TaskRequest, VirtualServerRequest,
};
use common::{
    create_task, fleet, results_at, show_task, simulate_spec, start_task, stats, task_spec,
    tree_scope, until, wait_event, wait_tree_finished,
};

const TOKEN: &str = "hierarchy-tests-token-0123456789";

fn server_error(result: Result<AdminResponse, ClientError>) -> (ErrorKind, String) {
    match result {
        Err(ClientError::Server { kind, message }) => (kind, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The config of a server that enrolls devices with [`TOKEN`].
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

/// A primary that enrolls devices with [`TOKEN`].
async fn start_primary(d: &Deployment) -> canopy::server::RunningServer {
    d.add_server("primary", 0, None).await.unwrap();
    let config = d
        .write_config("primary", &with_token("primary", 0, None))
        .await
        .unwrap();
    start(&config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_task_runs_once_on_every_device_of_the_tree_and_rolls_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let tree = DemoTree::start(&d, 20).await.unwrap();
    let total = tree.total_devices();
    assert_eq!(total, 90);
    let admin = d.admin(tree.primary().local_addr()).await.unwrap();
    create_task(
        &admin,
        simulate_spec(
            "Tree scan",
            tree_scope("Managed devices"),
            100,
            [80, 10, 10],
        ),
    )
    .await;
    start_task(&admin, "Tree scan", None).await;
    let run = wait_tree_finished(&admin, "Tree scan", total).await;
    assert_eq!(run.state, RunState::Completed);
    // The run's end is in the primary's event log once, when the whole tree finished: its
    // counts are the tree's, not the primary's own 20 devices.
    let end = common::wait_event(&admin, EventKind::RunFinished, "\"Tree scan\" run").await;
    assert!(
        end.message
            .contains("finished here and on the servers below: ")
            && end.message.contains(&format!(" of {total};")),
        "{}",
        end.message
    );
    let ends = common::events(&admin)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::RunFinished && e.message.contains("Tree scan"))
        .count();
    assert_eq!(ends, 1);

    // One row per server with its own devices; the rows add up to the totals.
    let rows: Vec<(&str, u32, u64, bool)> = run
        .servers
        .iter()
        .map(|s| (s.path.as_str(), s.depth, s.counters.total(), s.reported))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("primary", 0, 20, true),
            ("primary/branch-1", 1, 20, true),
            ("primary/branch-1/branch-1a", 2, 20, true),
            ("primary/branch-2", 1, 20, true),
            ("primary/tenant-a", 1, 10, true),
        ]
    );
    for state in DeviceState::ALL {
        let sum: u64 = run.servers.iter().map(|s| s.counters.count(state)).sum();
        assert_eq!(sum, run.counters.count(state), "{state:?}");
    }

    // Drill-down: every server's records, fetched through the tree, each device once.
    let mut finished_everywhere = 0;
    for (path, devices) in [
        ("branch-1", 20),
        ("branch-1/branch-1a", 20),
        ("branch-2", 20),
        ("tenant-a", 10),
    ] {
        let records = results_at(&admin, "Tree scan", path).await;
        assert_eq!(records.len(), devices, "{path}");
        assert!(
            records
                .iter()
                .all(|r| r.state.is_finished() && r.tries == 1)
        );
        let row = run
            .servers
            .iter()
            .find(|s| s.path == format!("primary/{path}"))
            .unwrap();
        for state in [
            DeviceState::Succeeded,
            DeviceState::Warning,
            DeviceState::Failed,
        ] {
            let n = records.iter().filter(|r| r.state == state).count() as u64;
            assert_eq!(n, row.counters.count(state), "{path} {state:?}");
        }
        finished_everywhere += records.len();
    }
    assert_eq!(finished_everywhere as u64 + 20, total);

    // On a secondary the task is inherited: listed, but not to be edited or started there.
    let mut below = d.admin(tree.servers[1].local_addr()).await.unwrap();
    let copy = show_task(&below, "Tree scan").await;
    assert!(
        copy.scope_text.contains("inherited from primary"),
        "{}",
        copy.scope_text
    );
    let edit = TaskRequest::Edit {
        task: "Tree scan".into(),
        changes: Box::new(TaskChanges {
            store_history_days: Some(5),
            comment: None,
            ..TaskChanges::default()
        }),
    };
    for request in [
        edit,
        TaskRequest::Start {
            task: "Tree scan".into(),
            devices: None,
        },
        TaskRequest::Delete {
            task: "Tree scan".into(),
            comment: None,
        },
    ] {
        let (kind, message) = server_error(below.call(AdminRequest::Task(request)).await);
        assert_eq!(kind, ErrorKind::Forbidden);
        assert!(
            message.contains("inherited from the server primary"),
            "{message}"
        );
    }

    // A stop at the primary stops the run everywhere: nothing is left pending or running.
    create_task(
        &admin,
        simulate_spec(
            "Long scan",
            tree_scope("Managed devices"),
            20_000,
            [100, 0, 0],
        ),
    )
    .await;
    start_task(&admin, "Long scan", None).await;
    until("the long run going at the deepest server", || async {
        let run = stats(&admin, "Long scan").await;
        run.servers
            .iter()
            .any(|s| s.depth == 2 && s.reported && s.counters.count(DeviceState::Running) > 0)
    })
    .await;
    let (kind, message) = server_error(
        admin
            .call(AdminRequest::Task(TaskRequest::Start {
                task: "Long scan".into(),
                devices: None,
            }))
            .await,
    );
    assert_eq!(kind, ErrorKind::InvalidInput, "{message}");
    admin
        .call(AdminRequest::Task(TaskRequest::Stop {
            task: "Long scan".into(),
        }))
        .await
        .unwrap();
    let run = wait_tree_finished(&admin, "Long scan", total).await;
    assert_eq!(run.state, RunState::Stopped);
    assert_eq!(run.counters.count(DeviceState::Succeeded), 0, "{run:#?}");
    assert_eq!(run.counters.count(DeviceState::Failed), total, "{run:#?}");
    let records = results_at(&admin, "Long scan", "branch-1/branch-1a").await;
    assert!(
        records.iter().all(|r| r.state == DeviceState::Failed),
        "{records:#?}"
    );

    // A change at the primary reaches every copy, at any depth; so does a delete.
    let rename = TaskRequest::Edit {
        task: "Tree scan".into(),
        changes: Box::new(TaskChanges {
            name: Some("Tree scan v2".into()),
            ..TaskChanges::default()
        }),
    };
    admin.call(AdminRequest::Task(rename)).await.unwrap();
    below.forward_to(Some("branch-1a".into()));
    until("the rename at the deepest server", || async {
        matches!(
            below
                .call(AdminRequest::Task(TaskRequest::Show {
                    task: "Tree scan v2".into()
                }))
                .await,
            Ok(AdminResponse::Task(_))
        )
    })
    .await;
    let delete = TaskRequest::Delete {
        task: "Tree scan v2".into(),
        comment: None,
    };
    admin.call(AdminRequest::Task(delete)).await.unwrap();
    until("the delete at the deepest server", || async {
        matches!(
            below.tasks().await,
            Ok(tasks) if tasks.iter().all(|t| t.name == "Long scan")
        )
    })
    .await;
    admin.close().await;
    below.close().await;
    tree.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_secondary_applies_create_edit_and_start_in_order_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start_primary(&d).await;
    let port = free_port().unwrap();
    let link = Some(parent_of(&primary));
    d.add_server("branch-1", port, link).await.unwrap();
    let config = d
        .write_config("branch-1", &with_token("branch-1", port, link))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let branch = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, common::LIMIT, "the link", |rows| {
        rows.len() == 2 && rows[1].status == ServerStatus::Active
    })
    .await
    .unwrap();
    let devices = fleet(&d, branch.local_addr(), TOKEN, 12, 7).await;
    wait_for_tree(&admin, common::LIMIT, "the device count", |rows| {
        rows.len() == 2 && rows[1].devices == 12
    })
    .await
    .unwrap();

    branch.shutdown().await.unwrap();
    wait_for_tree(&admin, common::LIMIT, "the link down", |rows| {
        rows.len() == 2 && rows[1].status == ServerStatus::Inactive
    })
    .await
    .unwrap();
    // Created to fail everywhere, edited to succeed everywhere, started: all while away.
    create_task(
        &admin,
        simulate_spec("Patch", tree_scope("Managed devices"), 50, [0, 0, 100]),
    )
    .await;
    let edit = TaskRequest::Edit {
        task: "Patch".into(),
        changes: Box::new(TaskChanges {
            task_type: Some(canopy::model::task::TaskType::Device(
                canopy::model::task::TaskPayload::Simulate {
                    duration_ms: 50,
                    succeeded: 100,
                    warning: 0,
                    failed: 0,
                    need_restart_percent: 0,
                },
            )),
            ..TaskChanges::default()
        }),
    };
    admin.call(AdminRequest::Task(edit)).await.unwrap();
    start_task(&admin, "Patch", None).await;
    // Meanwhile the primary counts the secondary's devices as pending.
    let run = stats(&admin, "Patch").await;
    assert_eq!(run.counters.total(), 12);
    assert_eq!(run.counters.count(DeviceState::Pending), 12);
    let row = &run.servers[1];
    assert_eq!(
        (row.path.as_str(), row.reported),
        ("primary/branch-1", false)
    );

    let branch = start(&config).await.unwrap();
    let run = wait_tree_finished(&admin, "Patch", 12).await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 12, "{run:#?}");
    let records = results_at(&admin, "Patch", "branch-1").await;
    assert_eq!(records.len(), 12);
    assert!(
        records
            .iter()
            .all(|r| r.state == DeviceState::Succeeded && r.tries == 1)
    );
    wait_event(
        &admin,
        EventKind::ReplayStarted,
        "replaying 3 change(s) to branch-1",
    )
    .await;
    wait_event(
        &admin,
        EventKind::ReplayFinished,
        "replay to branch-1 finished: 3",
    )
    .await;
    let below = d.admin(branch.local_addr()).await.unwrap();
    let copy = show_task(&below, "Patch").await;
    assert_eq!(copy.revision, 2, "created, then edited: applied in order");
    below.close().await;
    admin.close().await;
    devices.stop().await.unwrap();
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

struct Process(Child);

impl Process {
    fn serve(d: &Deployment, name: &str) -> Process {
        let log = std::fs::File::create(d.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .current_dir(&d.dir)
            .args(["serve", "--config", &format!("{name}.toml")])
            .env("CANOPY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Process(child)
    }

    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_middle_secondary_mid_run_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start_primary(&d).await;
    // The middle secondary is a process of its own, on a fixed port so it comes back there.
    let port = free_port().unwrap();
    let link = Some(parent_of(&primary));
    d.add_server("branch-1", port, link).await.unwrap();
    d.write_config("branch-1", &with_token("branch-1", port, link))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let middle_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let middle = Process::serve(&d, "branch-1");
    let middle_fp = d.fingerprint("branch-1").unwrap();
    d.add_server("branch-1a", 0, Some((middle_addr, middle_fp)))
        .await
        .unwrap();
    let leaf_config = d
        .write_config(
            "branch-1a",
            &with_token("branch-1a", 0, Some((middle_addr, middle_fp))),
        )
        .await
        .unwrap();
    until("the middle secondary answering", || async {
        d.admin(middle_addr).await.is_ok()
    })
    .await;
    d.register(middle_addr, "branch-1a", "Managed devices")
        .await
        .unwrap();
    let leaf = start(&leaf_config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, common::LIMIT, "every link", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let on_middle = fleet(&d, middle_addr, TOKEN, 15, 3).await;
    let on_leaf = canopy::agent::Agents::start(
        d.agent_config("leaf-fleet", leaf.local_addr(), Some(TOKEN))
            .unwrap(),
        Some(canopy::agent::Simulation {
            devices: 15,
            seed: 4,
        }),
    )
    .await
    .unwrap();
    until("the leaf's devices", || async {
        on_leaf.counts().connected == 15
    })
    .await;

    create_task(
        &admin,
        simulate_spec(
            "Long scan",
            tree_scope("Managed devices"),
            1500,
            [70, 20, 10],
        ),
    )
    .await;
    start_task(&admin, "Long scan", None).await;
    // Kill the middle server while its devices and its secondary are running the task.
    until("the run going on the middle server", || async {
        let run = stats(&admin, "Long scan").await;
        run.servers.iter().any(|s| {
            s.reported && s.path == "primary/branch-1" && s.counters.count(DeviceState::Running) > 0
        })
    })
    .await;
    middle.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _middle = Process::serve(&d, "branch-1");

    let run = wait_tree_finished(&admin, "Long scan", 30).await;
    for (path, devices) in [("branch-1", 15), ("branch-1/branch-1a", 15)] {
        let records = results_at(&admin, "Long scan", path).await;
        assert_eq!(records.len(), devices);
        assert!(
            records
                .iter()
                .all(|r| r.state.is_finished() && r.tries == 1),
            "{path}: {records:#?}"
        );
        let row = run
            .servers
            .iter()
            .find(|s| s.path == format!("primary/{path}"))
            .unwrap();
        for state in DeviceState::ALL {
            let n = records.iter().filter(|r| r.state == state).count() as u64;
            assert_eq!(n, row.counters.count(state), "{path} {state:?}");
        }
    }
    let sum: u64 = run.servers.iter().map(|s| s.counters.finished()).sum();
    assert_eq!(sum, 30);
    admin.close().await;
    on_middle.stop().await.unwrap();
    on_leaf.stop().await.unwrap();
    leaf.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_themselves_and_equal_names_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start_primary(&d).await;
    let addr = primary.local_addr();
    let mut host = d.admin(addr).await.unwrap();
    let mut tokens = Vec::new();
    for tenant in ["tenant-a", "tenant-b"] {
        let create = VirtualServerRequest::Create {
            name: tenant.into(),
            group: "Managed devices".into(),
        };
        match host
            .call(AdminRequest::VirtualServer(create))
            .await
            .unwrap()
        {
            AdminResponse::VirtualServer(view) => tokens.push(view.enrollment_token.0),
            other => panic!("unexpected {other:?}"),
        }
        // The host's administrator administers the tenant: a group and its administrator.
        host.forward_to(Some(tenant.into()));
        host.call(AdminRequest::Group(GroupRequest::Create {
            path: "Managed devices/Sales".into(),
        }))
        .await
        .unwrap();
        host.call(AdminRequest::AccountCreate {
            name: "boss".into(),
            password: canopy::wire::msg::Secret(format!("{tenant} password")),
            role: Role::Administrator,
        })
        .await
        .unwrap();
        host.forward_to(None);
    }
    // The same seed: the same device names in both tenants.
    let mut fleets = Vec::new();
    for (tenant, token) in ["tenant-a", "tenant-b"].iter().zip(&tokens) {
        let config = d
            .agent_config_at(
                &format!("{tenant}-fleet"),
                &format!("{addr}/{tenant}"),
                Some(token),
            )
            .unwrap();
        let simulation = canopy::agent::Simulation {
            devices: 6,
            seed: 9,
        };
        fleets.push(
            canopy::agent::Agents::start(config, Some(simulation))
                .await
                .unwrap(),
        );
    }
    until("both fleets connected", || async {
        fleets.iter().all(|f| f.counts().connected == 6)
    })
    .await;
    host.forward_to(Some("tenant-b".into()));
    create_task(
        &host,
        simulate_spec("Only in B", tree_scope("Managed devices"), 10, [100, 0, 0]),
    )
    .await;
    host.forward_to(None);

    let mut a = AdminClient::connect_virtual(addr, d.ca().unwrap(), Some("tenant-a".into()))
        .await
        .unwrap();
    a.login("boss", "tenant-a password").await.unwrap();
    // Not an account of the host, nor of the other tenant.
    let mut wrong = AdminClient::connect_virtual(addr, d.ca().unwrap(), Some("tenant-a".into()))
        .await
        .unwrap();
    assert!(wrong.login(ADMIN_USER, ADMIN_PASSWORD).await.is_err());
    assert!(wrong.login("boss", "tenant-b password").await.is_err());

    let devices = a.devices(None, true).await.unwrap();
    assert_eq!(devices.len(), 6);
    assert!(a.tasks().await.unwrap().is_empty());
    let (kind, _) = server_error(
        a.call(AdminRequest::Task(TaskRequest::Show {
            task: "Only in B".into(),
        }))
        .await,
    );
    assert_eq!(kind, ErrorKind::NotFound);
    let (kind, _) = server_error(
        a.call(AdminRequest::Task(TaskRequest::Start {
            task: "Only in B".into(),
            devices: None,
        }))
        .await,
    );
    assert_eq!(kind, ErrorKind::NotFound);
    // A tenant's administrator cannot reach the host's files: no backup task, no secondary.
    let backup = task_spec(
        "Tenant backup",
        TaskType::Backup {
            directory: Some("/tmp".into()),
        },
        ScopeSpec::Server,
    );
    let (kind, message) = server_error(
        a.call(AdminRequest::Task(TaskRequest::Create(Box::new(backup))))
            .await,
    );
    assert_eq!(kind, ErrorKind::InvalidInput, "{message}");
    assert!(
        message.contains("not offered on a virtual server"),
        "{message}"
    );
    canopy::net::pki::issue_server(&d.certs, "sneaky", &[], 30).unwrap();
    let pem = std::fs::read_to_string(d.certs.join("sneaky.pem")).unwrap();
    let (kind, message) = server_error(
        a.call(AdminRequest::AddSecondary {
            name: "sneaky".into(),
            group: "Managed devices".into(),
            cert_pem: pem,
            passive: None,
        })
        .await,
    );
    assert_eq!(kind, ErrorKind::Forbidden, "{message}");
    assert!(message.contains("virtual server"), "{message}");
    let forward = a.call_at(
        Some("tenant-b"),
        AdminRequest::Task(TaskRequest::List {
            after: None,
            limit: 100,
        }),
    );
    let (kind, _) = server_error(forward.await);
    assert_eq!(kind, ErrorKind::NotFound);
    let (_, message) = server_error(
        a.call(AdminRequest::VirtualServer(VirtualServerRequest::List {
            after: None,
            limit: 100,
        }))
        .await,
    );
    assert!(message.contains("virtual server"), "{message}");
    let rows = a.servers().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "tenant-a");
    // The tenant's own task runs on its own six devices only.
    create_task(
        &a,
        simulate_spec(
            "Only in A",
            tree_scope("Managed devices/Sales"),
            10,
            [100, 0, 0],
        ),
    )
    .await;
    let (kind, message) = server_error(
        a.call(AdminRequest::Task(TaskRequest::Start {
            task: "Only in A".into(),
            devices: None,
        }))
        .await,
    );
    assert_eq!(kind, ErrorKind::InvalidInput, "Sales is empty: {message}");
    for device in &devices {
        a.call(AdminRequest::Device(DeviceRequest::Move {
            device: device.id.clone(),
            group: "Managed devices/Sales".into(),
        }))
        .await
        .unwrap();
    }
    start_task(&a, "Only in A", None).await;
    let run = wait_tree_finished(&a, "Only in A", 6).await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 6);

    // The host sees into both; tenant B's equally named devices are untouched.
    host.forward_to(Some("tenant-b".into()));
    let b_devices = host.devices(None, true).await.unwrap();
    let names = |v: &[canopy::model::device::DeviceView]| {
        let mut n: Vec<String> = v.iter().map(|d| d.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&b_devices), names(&devices));
    assert!(b_devices.iter().all(|d| d.group == "Managed devices"));
    let tasks = host.tasks().await.unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Only in B"]);
    host.forward_to(None);
    // Disabled, a tenant refuses its administrators and devices; enabled, it is back.
    host.call(AdminRequest::VirtualServer(VirtualServerRequest::Disable {
        name: "tenant-a".into(),
    }))
    .await
    .unwrap();
    assert!(
        AdminClient::connect_virtual(addr, d.ca().unwrap(), Some("tenant-a".into()))
            .await
            .is_err()
    );
    host.call(AdminRequest::VirtualServer(VirtualServerRequest::Enable {
        name: "tenant-a".into(),
    }))
    .await
    .unwrap();
    until("tenant-a's devices back", || async {
        fleets[0].counts().connected == 6
    })
    .await;
    for fleet in fleets {
        fleet.stop().await.unwrap();
    }
    a.close().await;
    host.close().await;
    primary.shutdown().await.unwrap();
}

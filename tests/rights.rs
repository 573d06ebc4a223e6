//! Access rights over real QUIC: an operator of "Managed devices/Paris" starts Paris's
//! tasks and neither sees nor touches Berlin's, through every task request, the group and
//! device requests and their lists, the event log; `task rights` and `group rights` as the CLI sends them;
//! a task that is not a group task with its own list.

mod common;

use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::Deployment;
use canopy::model::Role;
use canopy::model::rights::{Grant, Principal, Rights};
use canopy::model::task::DeviceState;
use canopy::wire::msg::{
    AdminRequest, AdminResponse, DeviceRequest, ErrorKind, GroupRequest, RightsChange, RightsView,
    ScopeSpec, Secret, TaskChanges, TaskRequest,
};
use common::binary;
use common::{create_task, group_scope, simulate_spec, start_task, wait_finished};

const TOKEN: &str = "rights-tests-token-0123456789";

async fn call(client: &AdminClient, request: AdminRequest) -> AdminResponse {
    client.call(request).await.unwrap()
}

fn refused(result: Result<AdminResponse, ClientError>) -> (ErrorKind, String) {
    match result {
        Err(ClientError::Server { kind, message }) => (kind, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn set(who: &str, allow: Rights, deny: Rights) -> Option<RightsChange> {
    Some(RightsChange {
        principal: Principal::parse(who).unwrap(),
        grant: Grant { allow, deny },
    })
}

fn rights_view(response: AdminResponse) -> RightsView {
    match response {
        AdminResponse::Rights(view) => *view,
        other => panic!("unexpected {other:?}"),
    }
}

async fn task_names(client: &AdminClient) -> Vec<String> {
    let list = TaskRequest::List {
        after: None,
        limit: 100,
    };
    match call(client, AdminRequest::Task(list)).await {
        AdminResponse::Tasks { tasks, .. } => tasks.into_iter().map(|t| t.name).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The whole event log as the caller may read it, this server's and those from below.
async fn event_log(client: &AdminClient) -> Vec<canopy::model::Event> {
    let request = AdminRequest::EventList {
        after: Some(0),
        limit: 1000,
        filter: canopy::model::EventFilter::default(),
    };
    match call(client, request).await {
        AdminResponse::Events { events, .. } => events,
        other => panic!("unexpected {other:?}"),
    }
}

/// Every device the caller may see.
async fn devices_seen(client: &AdminClient) -> Vec<canopy::model::device::DeviceView> {
    let list = DeviceRequest::List {
        group: None,
        recursive: true,
        after: None,
        limit: 100,
    };
    match call(client, AdminRequest::Device(list)).await {
        AdminResponse::Devices { devices, .. } => devices,
        other => panic!("unexpected {other:?}"),
    }
}

/// Every task request that names `task`, each with what it needs.
fn requests_about(task: &str) -> Vec<TaskRequest> {
    let task = task.to_string();
    vec![
        TaskRequest::Show { task: task.clone() },
        TaskRequest::Results {
            task: task.clone(),
            run: None,
            state: None,
            details: false,
            server: None,
            after: None,
            limit: 10,
        },
        TaskRequest::Stats {
            task: task.clone(),
            run: None,
        },
        TaskRequest::Export { task: task.clone() },
        TaskRequest::History { task: task.clone() },
        TaskRequest::Diff {
            task: task.clone(),
            from: 1,
            to: None,
        },
        TaskRequest::Edit {
            task: task.clone(),
            changes: Box::new(TaskChanges {
                store_history_days: Some(9),
                ..TaskChanges::default()
            }),
        },
        TaskRequest::Rollback {
            task: task.clone(),
            revision: 1,
            comment: None,
        },
        TaskRequest::Copy {
            task: task.clone(),
            name: None,
        },
        TaskRequest::Start {
            task: task.clone(),
            devices: None,
        },
        TaskRequest::Pause { task: task.clone() },
        TaskRequest::Resume { task: task.clone() },
        TaskRequest::Stop { task: task.clone() },
        TaskRequest::Rights {
            task: task.clone(),
            change: None,
        },
        TaskRequest::Delete {
            task: task.clone(),
            comment: None,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_of_paris_runs_paris_tasks_and_never_sees_berlin() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = common::enrolling_primary(&d, TOKEN).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let fleet = common::fleet(&d, server.local_addr(), TOKEN, 4, 3).await;
    for city in ["Paris", "Berlin"] {
        let path = format!("Managed devices/{city}");
        call(&admin, AdminRequest::Group(GroupRequest::Create { path })).await;
    }
    let devices = devices_seen(&admin).await;
    assert_eq!(devices.len(), 4);
    for (i, device) in devices.iter().enumerate() {
        let city = if i < 2 { "Paris" } else { "Berlin" };
        let request = DeviceRequest::Move {
            device: device.id.clone(),
            group: format!("Managed devices/{city}"),
        };
        call(&admin, AdminRequest::Device(request)).await;
    }
    for city in ["Paris", "Berlin"] {
        let scope = group_scope(&format!("Managed devices/{city}"), true);
        create_task(
            &admin,
            simulate_spec(&format!("{city} scan"), scope, 50, [1, 0, 0]),
        )
        .await;
    }
    start_task(&admin, "Berlin scan", None).await;
    wait_finished(&admin, "Berlin scan").await;

    // paris-op: an operator, denied the whole tree, allowed to read and run Paris's tasks.
    call(
        &admin,
        AdminRequest::AccountCreate {
            name: "paris-op".into(),
            password: Secret("paris operator password".into()),
            role: Role::Operator,
        },
    )
    .await;
    let root = GroupRequest::Rights {
        path: "Managed devices".into(),
        change: set("account:paris-op", Rights::NONE, Rights::ALL),
    };
    call(&admin, AdminRequest::Group(root)).await;
    let paris = GroupRequest::Rights {
        path: "Managed devices/Paris".into(),
        change: set(
            "account:paris-op",
            Rights::READ.with(Rights::EXECUTE),
            Rights::NONE,
        ),
    };
    let view = rights_view(call(&admin, AdminRequest::Group(paris)).await);
    assert_eq!(
        view.yours,
        Rights::ALL,
        "an administrator holds every right"
    );
    assert_eq!(view.lists.len(), 2, "{view:?}");
    let mut op = AdminClient::connect(server.local_addr(), d.ca().unwrap())
        .await
        .unwrap();
    op.login("paris-op", "paris operator password")
        .await
        .unwrap();

    // Paris: seen, started, finished; not changed.
    assert_eq!(task_names(&op).await, ["Paris scan"]);
    start_task(&op, "Paris scan", None).await;
    let run = wait_finished(&op, "Paris scan").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 2, "{run:?}");
    let edit = TaskRequest::Edit {
        task: "Paris scan".into(),
        changes: Box::new(TaskChanges {
            store_history_days: Some(3),
            ..TaskChanges::default()
        }),
    };
    let (kind, message) = refused(op.call(AdminRequest::Task(edit)).await);
    assert_eq!(kind, ErrorKind::Forbidden, "{message}");
    assert!(message.contains("may not modify"), "{message}");
    let view = rights_view(
        call(
            &op,
            AdminRequest::Task(TaskRequest::Rights {
                task: "Paris scan".into(),
                change: None,
            }),
        )
        .await,
    );
    assert_eq!(view.yours, Rights::READ.with(Rights::EXECUTE));
    assert_eq!(view.follows_group.as_deref(), Some("Managed devices/Paris"));
    let grant_self = TaskRequest::Rights {
        task: "Paris scan".into(),
        change: set("account:paris-op", Rights::ALL, Rights::NONE),
    };
    let (kind, _) = refused(op.call(AdminRequest::Task(grant_self)).await);
    assert_eq!(kind, ErrorKind::Forbidden);
    let spec = simulate_spec(
        "Paris new",
        group_scope("Managed devices/Paris", true),
        50,
        [1, 0, 0],
    );
    let (kind, _) = refused(
        op.call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
            .await,
    );
    assert_eq!(kind, ErrorKind::Forbidden);

    // Berlin: every request about its task answers as if it did not exist.
    for request in requests_about("Berlin scan") {
        let name = AdminRequest::Task(request.clone()).name();
        let (kind, message) = refused(op.call(AdminRequest::Task(request)).await);
        assert_eq!(kind, ErrorKind::NotFound, "{name}: {message}");
        assert!(message.contains("Berlin scan"), "{name}: {message}");
    }
    let spec = simulate_spec(
        "Berlin new",
        group_scope("Managed devices/Berlin", true),
        50,
        [1, 0, 0],
    );
    let (kind, _) = refused(
        op.call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
            .await,
    );
    assert_eq!(kind, ErrorKind::NotFound);
    let (kind, _) = refused(
        op.call(AdminRequest::Task(TaskRequest::Import {
            file: Vec::new(),
            commit: true,
            scope: Some(group_scope("Managed devices/Berlin", true)),
        }))
        .await,
    );
    assert_eq!(kind, ErrorKind::NotFound);
    // Deleted, Berlin's task stays out of reach too.
    call(
        &admin,
        AdminRequest::Task(TaskRequest::Delete {
            task: "Berlin scan".into(),
            comment: None,
        }),
    )
    .await;
    match call(&op, AdminRequest::Task(TaskRequest::ListDeleted)).await {
        AdminResponse::Revisions(deleted) => assert!(deleted.is_empty(), "{deleted:?}"),
        other => panic!("unexpected {other:?}"),
    }
    let restore = TaskRequest::Restore {
        task: "Berlin scan".into(),
        comment: None,
    };
    let (kind, _) = refused(op.call(AdminRequest::Task(restore.clone())).await);
    assert_eq!(kind, ErrorKind::NotFound);
    call(&admin, AdminRequest::Task(restore)).await;

    // Groups and devices: Berlin is not listed, not changed, its devices not seen.
    let groups = match call(
        &op,
        AdminRequest::Group(GroupRequest::List {
            after: None,
            limit: 100,
        }),
    )
    .await
    {
        AdminResponse::Groups { groups, .. } => groups,
        other => panic!("unexpected {other:?}"),
    };
    let paths: Vec<&str> = groups.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, ["Managed devices/Paris", "Unassigned devices"]);
    for request in [
        GroupRequest::Rename {
            path: "Managed devices/Berlin".into(),
            new_name: "Munich".into(),
        },
        GroupRequest::Create {
            path: "Managed devices/Berlin/Mitte".into(),
        },
        GroupRequest::Rights {
            path: "Managed devices/Berlin".into(),
            change: None,
        },
    ] {
        let (kind, message) = refused(op.call(AdminRequest::Group(request)).await);
        assert_eq!(kind, ErrorKind::NotFound, "{message}");
    }
    let (kind, _) = refused(
        op.call(AdminRequest::Group(GroupRequest::Create {
            path: "Managed devices/Paris/Nord".into(),
        }))
        .await,
    );
    assert_eq!(kind, ErrorKind::Forbidden, "read and execute do not create");
    let seen = devices_seen(&op).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|d| d.group == "Managed devices/Paris"));
    let berlin_device = devices[3].id.clone();
    for request in [
        DeviceRequest::Show {
            device: berlin_device.clone(),
        },
        DeviceRequest::Move {
            device: berlin_device.clone(),
            group: "Managed devices/Paris".into(),
        },
        DeviceRequest::Delete {
            device: berlin_device.clone(),
        },
    ] {
        let (kind, _) = refused(op.call(AdminRequest::Device(request)).await);
        assert_eq!(kind, ErrorKind::NotFound);
    }

    // The event log: what happened in Paris, nothing of Berlin; all of it for the administrator.
    let seen = common::events(&op).await;
    let about_berlin = |e: &canopy::model::Event| e.message.contains("Berlin");
    assert!(!seen.iter().any(about_berlin), "{seen:#?}");
    assert!(
        seen.iter().any(|e| e.message.contains("Paris scan")),
        "{seen:#?}"
    );
    let all_events = common::events(&admin).await;
    assert!(all_events.iter().any(about_berlin), "{all_events:#?}");

    // Servers placed in Berlin are not listed either.
    for city in ["Paris", "Berlin"] {
        let name = format!("tenant-{}", city.to_lowercase());
        common::create_vserver(&admin, &name, &format!("Managed devices/{city}")).await;
    }
    let names = |rows: Vec<canopy::model::ServerRow>| -> Vec<String> {
        rows.into_iter().map(|r| r.path).collect()
    };
    assert_eq!(
        names(op.servers().await.unwrap()),
        ["primary", "primary/tenant-paris"]
    );
    assert_eq!(admin.servers().await.unwrap().len(), 3);
    // Nor their events: tenant-berlin's come up to the primary, for the administrator only.
    for tenant in ["tenant-paris", "tenant-berlin"] {
        let create = GroupRequest::Create {
            path: "Managed devices/Shop".into(),
        };
        admin
            .call_at(Some(tenant), AdminRequest::Group(create))
            .await
            .unwrap();
    }
    let from = |events: Vec<canopy::model::Event>, child: &str| {
        events
            .iter()
            .filter(|e| e.origin.first().map(String::as_str) == Some(child))
            .count()
    };
    common::until("tenant-berlin's events at the primary", || async {
        from(event_log(&admin).await, "tenant-berlin") > 0
    })
    .await;
    assert_eq!(from(event_log(&op).await, "tenant-berlin"), 0);
    common::until("tenant-paris's events for paris-op", || async {
        from(event_log(&op).await, "tenant-paris") > 0
    })
    .await;

    // The administrator still sees and runs everything.
    let mut all = task_names(&admin).await;
    all.sort();
    assert_eq!(all, ["Berlin scan", "Paris scan"]);
    start_task(&admin, "Berlin scan", None).await;
    wait_finished(&admin, "Berlin scan").await;

    // A task that is not a group task carries its own list.
    let list_task = simulate_spec(
        "Listed",
        ScopeSpec::Devices {
            entries: vec![devices[0].name.clone()],
        },
        50,
        [1, 0, 0],
    );
    create_task(&admin, list_task).await;
    assert!(task_names(&op).await.contains(&"Listed".to_string()));
    let deny = TaskRequest::Rights {
        task: "Listed".into(),
        change: set("role:operator", Rights::NONE, Rights::READ),
    };
    let view = rights_view(call(&admin, AdminRequest::Task(deny)).await);
    assert_eq!(view.follows_group, None);
    assert_eq!(task_names(&op).await, ["Paris scan"]);

    // The same through the binary, as an administrator types it.
    let session = dir.path().join("session.json");
    let addr = server.local_addr().to_string();
    let out = binary::login(dir.path(), &session, &addr, &[]);
    assert!(out.status.success(), "{}", binary::stderr(&out));
    let canopy = |args: &[&str]| binary::canopy(dir.path(), &session, args, None);
    let out = canopy(&[
        "group",
        "rights",
        "Managed devices/Berlin",
        "--allow",
        "account:paris-op=read",
    ]);
    assert!(out.status.success(), "{}", binary::stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("account:paris-op"), "{text}");
    assert!(
        text.contains("your rights on group \"Managed devices/Berlin\": read,modify,execute"),
        "{text}"
    );
    let mut all = task_names(&op).await;
    all.sort();
    assert_eq!(all, ["Berlin scan", "Paris scan"], "read on Berlin now");
    let out = canopy(&["task", "rights", "Berlin scan", "--json"]);
    assert!(out.status.success(), "{}", binary::stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["follows_group"], "Managed devices/Berlin", "{json}");
    let out = canopy(&[
        "task",
        "rights",
        "Berlin scan",
        "--allow",
        "account:paris-op=write",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        binary::stderr(&out).contains("unknown right \"write\""),
        "{}",
        binary::stderr(&out)
    );

    op.close().await;
    admin.close().await;
    fleet.stop().await.unwrap();
    server.shutdown().await.unwrap();
}

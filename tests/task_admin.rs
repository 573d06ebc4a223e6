//! Task administration over real QUIC: a task exported from one deployment and imported
//! into another (what would be made first, then made; taken names get " (N)"), every kind of
//! bad file refused with nothing changed, and copies; revision history, diff and rollback
//! reaching a secondary's copy, and a deleted task restored with its history.

mod common;

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::Deployment;
use canopy::model::export::{self, MAX_FILE_BYTES};
use canopy::model::schedule::{RandomDelay, Schedule, ScheduleOptions};
use canopy::model::task::{Notify, RestartPolicy, TaskPayload, TaskType};
use canopy::wire::msg::{
    AccountSpec, AdminRequest, AdminResponse, ImportView, RevisionView, ScopeSpec, Secret,
    TaskChanges, TaskRequest, TaskView,
};
use common::{create_task, group_scope, refused, show_task, task_spec};

const TOKEN: &str = "task-admin-tests-token-0123456789";
const PASSWORD: &str = "planted-Pa55word-in-an-export";

async fn call(admin: &AdminClient, request: TaskRequest) -> AdminResponse {
    admin.call(AdminRequest::Task(request)).await.unwrap()
}

async fn import(admin: &AdminClient, file: &[u8], scope: Option<ScopeSpec>) -> ImportView {
    let request = TaskRequest::Import {
        file: file.to_vec(),
        commit: scope.is_some(),
        scope,
    };
    match call(admin, request).await {
        AdminResponse::Imported(view) => *view,
        other => panic!("unexpected {other:?}"),
    }
}

async fn task_names(admin: &AdminClient) -> Vec<String> {
    let mut names: Vec<String> = admin
        .tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    names
}

/// What an import keeps of a task: everything but its id, name, scope and history.
fn settings_of(t: &TaskView) -> impl PartialEq + std::fmt::Debug {
    (
        t.task_type.clone(),
        t.application.clone(),
        t.schedule.clone(),
        t.schedule_options.clone(),
        t.restart.clone(),
        t.notify,
        t.store_history_days,
        t.account_name.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_exported_from_one_deployment_is_imported_into_another() {
    let dir_a = tempfile::tempdir().unwrap();
    let a = Deployment::create(dir_a.path()).unwrap();
    let server_a = common::enrolling_primary(&a, TOKEN).await;
    let admin_a = a.admin(server_a.local_addr()).await.unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let b = Deployment::create(dir_b.path()).unwrap();
    let server_b = common::enrolling_primary(&b, TOKEN).await;
    let admin_b = b.admin(server_b.local_addr()).await.unwrap();

    let mut spec = task_spec(
        "Friday scan",
        TaskType::Device(TaskPayload::Scan {
            paths: vec!["/home".into(), "/srv/share".into()],
            blocklist: vec!["0f".repeat(32)],
        }),
        group_scope("Managed devices", true),
    );
    spec.schedule = Schedule::parse("weekly:fri@19:00").unwrap();
    spec.schedule_options = ScheduleOptions {
        run_missed: true,
        random_delay: RandomDelay::Automatic,
        time_limit_secs: Some(5_400),
        cancel_from: None,
    };
    spec.restart = RestartPolicy::AskUser {
        repeat_minutes: 10,
        force_after_minutes: Some(120),
    };
    spec.notify = Notify::All;
    spec.store_history_days = 12;
    spec.account = Some(AccountSpec {
        name: "svc-scan".into(),
        password: Some(Secret(PASSWORD.into())),
    });
    let original = create_task(&admin_a, spec).await;

    let (file, file_name) = match call(
        &admin_a,
        TaskRequest::Export {
            task: "Friday scan".into(),
        },
    )
    .await
    {
        AdminResponse::Exported { file, file_name } => (file, file_name),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(file_name, "Friday_scan.canopy-task");
    assert!(file.starts_with("canopy-task-export 1\nsha256 "), "{file}");
    assert!(
        !file.contains(PASSWORD),
        "the password never leaves: {file}"
    );
    assert!(file.contains("account_password_set = true"), "{file}");
    // A server task stays where it was made.
    let mut maintenance = task_spec("Compact", TaskType::Maintenance, ScopeSpec::Server);
    maintenance.application = None;
    create_task(&admin_a, maintenance).await;
    let message = refused(
        &admin_a,
        TaskRequest::Export {
            task: "Compact".into(),
        },
    )
    .await;
    assert!(message.contains("is a server task"), "{message}");

    // The first phase shows what would be made and changes nothing.
    let preview = import(&admin_b, file.as_bytes(), None).await;
    assert_eq!(preview.name, "Friday scan");
    assert!(preview.created.is_none());
    assert_eq!(preview.exported_from, "primary");
    assert!(
        preview
            .warnings
            .iter()
            .any(|w| w.contains("password") && w.contains("svc-scan")),
        "{:?}",
        preview.warnings
    );
    assert!(task_names(&admin_b).await.is_empty());
    let message = refused(
        &admin_b,
        TaskRequest::Import {
            file: file.as_bytes().to_vec(),
            commit: true,
            scope: None,
        },
    )
    .await;
    assert!(message.contains("needs a scope"), "{message}");

    // Committed: the same task but for its id and scope; imported again, (1) and (2).
    let scope = || Some(group_scope("Managed devices", false));
    let made = import(&admin_b, file.as_bytes(), scope()).await;
    let made = made.created.expect("created");
    assert_eq!(made.name, "Friday scan");
    assert_eq!(settings_of(&made), settings_of(&original));
    assert!(!made.password_set, "no password came with it");
    for expected in ["Friday scan (1)", "Friday scan (2)"] {
        let preview = import(&admin_b, file.as_bytes(), None).await;
        assert_eq!(preview.name, expected);
        let made = import(&admin_b, file.as_bytes(), scope()).await;
        assert_eq!(made.name, expected);
        assert_eq!(settings_of(&made.created.unwrap()), settings_of(&original));
    }
    let before = task_names(&admin_b).await;
    assert_eq!(before.len(), 3);

    // Bad files: each refused with its reason, and nothing changes.
    let body = file.split_once('\n').unwrap().1.split_once('\n').unwrap().1;
    let long_name = format!("name = \"{}\"", "n".repeat(101));
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            file.as_bytes()[..file.len() / 2].to_vec(),
            "damaged",
        ),
        (
            "edited",
            file.replace("/srv/share", "/srv/other").into_bytes(),
            "damaged",
        ),
        (
            "a newer format",
            file.replacen("canopy-task-export 1", "canopy-task-export 9", 1)
                .into_bytes(),
            "format version \"9\"",
        ),
        (
            "not an export",
            b"name = \"x\"\n".to_vec(),
            "not a Canopy task export",
        ),
        (
            "an unknown type",
            export::with_header(&body.replace("[parameters.Scan]", "[parameters.Defrag]"))
                .into_bytes(),
            "unknown task type",
        ),
        (
            "a server task",
            export::with_header(
                &body
                    .replace("[parameters.Scan]", "[parameters.Backup]")
                    .replace("paths = ", "directory = ")
                    .replace("blocklist = ", "#"),
            )
            .into_bytes(),
            "unknown task type",
        ),
        (
            "a name over 100 characters",
            export::with_header(&body.replace("name = \"Friday scan\"", &long_name)).into_bytes(),
            "at most 100",
        ),
        (
            "over the size cap",
            vec![b'#'; MAX_FILE_BYTES + 1],
            "at most",
        ),
    ];
    for (what, bytes, why) in bad {
        for commit in [false, true] {
            let request = TaskRequest::Import {
                file: bytes.clone(),
                commit,
                scope: commit.then(|| group_scope("Managed devices", false)),
            };
            let message = refused(&admin_b, request).await;
            assert!(message.contains(why), "{what}: {message}");
        }
    }
    assert_eq!(task_names(&admin_b).await, before);

    // Copies, named by the same rule; a copy keeps the scope.
    let copy = |task: &str, name: Option<&str>| TaskRequest::Copy {
        task: task.into(),
        name: name.map(str::to_string),
    };
    for (request, expected) in [
        (copy("Friday scan", None), "Friday scan (3)"),
        (copy("Friday scan", Some("Weekly scan")), "Weekly scan"),
        (copy("Friday scan", Some("Weekly scan")), "Weekly scan (1)"),
    ] {
        let AdminResponse::Task(made) = call(&admin_b, request).await else {
            panic!("a task")
        };
        assert_eq!(made.name, expected);
        let original = show_task(&admin_b, "Friday scan").await;
        assert_eq!(settings_of(&made), settings_of(&original));
        assert_eq!(made.scope, original.scope);
    }
    admin_a.close().await;
    admin_b.close().await;
    server_a.shutdown().await.unwrap();
    server_b.shutdown().await.unwrap();
}

async fn revisions(admin: &AdminClient, request: TaskRequest) -> Vec<RevisionView> {
    match call(admin, request).await {
        AdminResponse::Revisions(revisions) => revisions,
        other => panic!("unexpected {other:?}"),
    }
}

fn edit(task: &str, changes: TaskChanges) -> TaskRequest {
    TaskRequest::Edit {
        task: task.into(),
        changes: Box::new(changes),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_diff_rollback_down_the_tree_delete_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, admin) = common::two_tiers(&d, TOKEN).await;
    let branch_admin = d.admin(branch.local_addr()).await.unwrap();
    let mut spec = task_spec(
        "Patrol",
        TaskType::Device(TaskPayload::Scan {
            paths: vec!["/home".into()],
            blocklist: Vec::new(),
        }),
        common::tree_scope("Managed devices"),
    );
    spec.comment = Some("first cut".into());
    spec.account = Some(AccountSpec {
        name: "svc".into(),
        password: Some(Secret(PASSWORD.into())),
    });
    create_task(&admin, spec).await;
    // Three edits: a schedule, a path and a new password, a rename.
    let changes = [
        TaskChanges {
            schedule: Some(Schedule::parse("weekly:fri@19:00").unwrap()),
            comment: Some("Fridays".into()),
            ..TaskChanges::default()
        },
        TaskChanges {
            task_type: Some(TaskType::Device(TaskPayload::Scan {
                paths: vec!["/home".into(), "/srv".into()],
                blocklist: Vec::new(),
            })),
            account: Some(Some(AccountSpec {
                name: "svc".into(),
                password: Some(Secret(format!("{PASSWORD}-2"))),
            })),
            ..TaskChanges::default()
        },
        TaskChanges {
            name: Some("Patrol all".into()),
            ..TaskChanges::default()
        },
    ];
    for change in changes {
        call(&admin, edit("Patrol", change)).await;
    }
    let key = "Patrol all";
    let history = revisions(&admin, TaskRequest::History { task: key.into() }).await;
    let listed: Vec<(u32, String, Option<&str>)> = history
        .iter()
        .map(|r| (r.revision, r.action.to_string(), r.comment.as_deref()))
        .collect();
    assert_eq!(
        listed,
        [
            (1, "created".into(), Some("first cut")),
            (2, "edited".into(), Some("Fridays")),
            (3, "edited".into(), None),
            (4, "edited".into(), None),
        ]
    );
    assert!(history.iter().all(|r| r.by == "admin"), "{history:#?}");

    // What differs from 1 to 3, never a password.
    let answer = call(
        &admin,
        TaskRequest::Diff {
            task: key.into(),
            from: 1,
            to: Some(3),
        },
    )
    .await;
    let AdminResponse::TaskDiff { changes, .. } = answer else {
        panic!("a diff")
    };
    let settings: Vec<&str> = changes.iter().map(|c| c.setting.as_str()).collect();
    assert_eq!(settings, ["paths", "schedule", "password"], "{changes:#?}");
    let password = &changes[2];
    assert_eq!(
        (password.before.as_str(), password.after.as_str()),
        ("set", "changed")
    );
    assert!(!format!("{changes:?}").contains(PASSWORD));

    // The branch's copy follows; its history is the primary's.
    let copy_is = |name: &'static str, schedule: Schedule| {
        let branch_admin = &branch_admin;
        async move {
            common::until(&format!("the branch's copy is {name:?}"), || async {
                let tasks = branch_admin.tasks().await.unwrap();
                tasks
                    .iter()
                    .any(|t| t.name == name && t.schedule == schedule)
            })
            .await
        }
    };
    copy_is("Patrol all", Schedule::parse("weekly:fri@19:00").unwrap()).await;
    let message = refused(&branch_admin, TaskRequest::History { task: key.into() }).await;
    assert!(message.contains("history is kept there"), "{message}");

    // A rollback to revision 1 is revision 5, and reaches the copy as an edit.
    let rollback = TaskRequest::Rollback {
        task: key.into(),
        revision: 1,
        comment: Some("back to the first cut".into()),
    };
    let AdminResponse::Task(rolled) = call(&admin, rollback).await else {
        panic!("a task")
    };
    assert_eq!((rolled.name.as_str(), rolled.revision), ("Patrol", 5));
    assert_eq!(rolled.schedule, Schedule::Manually);
    assert!(rolled.password_set);
    copy_is("Patrol", Schedule::Manually).await;
    let history = revisions(
        &admin,
        TaskRequest::History {
            task: "Patrol".into(),
        },
    )
    .await;
    assert_eq!(history.len(), 5);
    assert_eq!(history[4].action.to_string(), "rolled back to revision 1");

    // Deleted: gone, listed as deleted with its history; restored: back with it.
    let delete = TaskRequest::Delete {
        task: "Patrol".into(),
        comment: Some("not needed".into()),
    };
    call(&admin, delete).await;
    assert!(admin.tasks().await.unwrap().is_empty());
    let deleted = revisions(&admin, TaskRequest::ListDeleted).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        (deleted[0].name.as_str(), deleted[0].revision),
        ("Patrol", 6)
    );
    let id = deleted[0].task_id;
    let history = revisions(
        &admin,
        TaskRequest::History {
            task: format!("#{id}"),
        },
    )
    .await;
    assert_eq!(history.len(), 6);
    let restore = TaskRequest::Restore {
        task: format!("#{id}"),
        comment: None,
    };
    let AdminResponse::Task(restored) = call(&admin, restore).await else {
        panic!("a task")
    };
    assert_eq!((restored.id, restored.revision), (id, 7));
    assert!(revisions(&admin, TaskRequest::ListDeleted).await.is_empty());
    let history = revisions(
        &admin,
        TaskRequest::History {
            task: "Patrol".into(),
        },
    )
    .await;
    let actions: Vec<String> = history.iter().map(|r| r.action.to_string()).collect();
    assert_eq!(
        actions[5..],
        ["deleted".to_string(), "restored".to_string()]
    );
    copy_is("Patrol", Schedule::Manually).await;

    branch_admin.close().await;
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
    // Neither password is in any file of the deployment: both servers' databases (with
    // every revision), configs, keys.
    let mut searched = 0;
    let mut dirs = vec![dir.path().to_path_buf()];
    while let Some(at) = dirs.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let holds = bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes());
            assert!(!holds, "{} holds the password", path.display());
            searched += 1;
        }
    }
    assert!(searched > 4, "{searched} files");
}

//! A task's properties changed in the web console, in a real headless Chromium: Settings
//! (name, parameters, restart, account with a password never shown again), Schedule with its
//! advanced options, Notifications and Store task history, Scope, Security (rights), a
//! change refused with its reason and nothing changed, Revision history with a comparison and
//! a roll back, Pause and Resume of a run, a deleted task restored; an auditor, whose every
//! change is refused while the task stays as it was; and devices managed from Managed
//! devices (moved, approved, rejected, deleted after a confirmation, tagged).

// Each test binary uses part of the shared harness.
#[allow(dead_code)]
#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::{Browser, BrowserOptions, spki_hash_of_cert_pem};
use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{ADMIN_PASSWORD, ADMIN_USER, Deployment};
use canopy::model::Role;
use canopy::model::rights::Principal;
use canopy::model::schedule::RandomDelay;
use canopy::model::scope::Scope;
use canopy::model::task::{Notify, RestartPolicy, TaskPayload, TaskType};
use canopy::server::RunningServer;
use canopy::wire::msg::{AdminRequest, AdminResponse, Secret, TaskRequest};

const TOKEN: &str = "console-properties-token-0123";
const WEB: &str = "\n[web]\nlisten = \"127.0.0.1:0\"\n";
const WAIT: Duration = Duration::from_secs(30);

/// A primary serving the console, enrolling devices with `TOKEN`; its administrator.
async fn primary(d: &Deployment) -> (RunningServer, AdminClient) {
    use canopy::cli::deployment::{config_text, start};
    d.add_server("primary", 0, None).await.unwrap();
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n{WEB}",
        config_text("primary", 0, None)
    );
    let config = d.write_config("primary", &text).await.unwrap();
    let primary = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    (primary, admin)
}

async fn browser(d: &Deployment) -> Browser {
    let pem = std::fs::read_to_string(d.certs.join("primary.pem")).unwrap();
    Browser::start(BrowserOptions {
        trust_spki: vec![spki_hash_of_cert_pem(&pem).unwrap()],
        ..BrowserOptions::default()
    })
    .await
    .unwrap()
}

/// Opens a tab of the task's properties.
async fn tab(b: &Browser, base: &str, task: u64, tab: &str) {
    b.goto(&format!("{base}/tasks/{task}?tab={tab}"))
        .await
        .unwrap();
    b.wait_for_text("nav.tabs a.on", "", WAIT).await.unwrap();
}

/// Saves the tab's form and waits for the page that says it is saved.
async fn save(b: &Browser, revision: u32) {
    b.click("form.edit button[type=submit]").await.unwrap();
    b.wait_for_text(
        "p.notice",
        &format!("Saved: the task is at revision {revision}."),
        WAIT,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_changes_a_task_in_its_properties() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment::create(dir.path()).unwrap();
        let (primary, admin) = primary(&d).await;
        let _fleet =
            common::named_fleet(&d, "fleet", &primary.local_addr().to_string(), TOKEN, 3, "").await;
        let spec = common::simulate_spec(
            "Patch",
            common::group_scope("Managed devices", true),
            100,
            [1, 0, 0],
        );
        let id = common::create_task(&admin, spec).await.id;
        let b = browser(&d).await;
        let base = format!("https://{}", primary.web_addr().unwrap());
        b.log_in(&base, ADMIN_USER, ADMIN_PASSWORD, None)
            .await
            .unwrap();

        // Settings: the name, a parameter, the restart and an account with its password.
        tab(&b, &base, id, "settings").await;
        b.fill("input[name=name]", "Patch nightly").await.unwrap();
        b.fill("input[name=duration_ms]", "4000").await.unwrap();
        b.click("select[name=restart] option[value=ask]")
            .await
            .unwrap();
        b.fill("input[name=repeat_minutes]", "30").await.unwrap();
        b.click("input[name=account][value=specified]")
            .await
            .unwrap();
        b.fill("input[name=account_name]", "svc-patch")
            .await
            .unwrap();
        b.fill("input[name=account_password]", "s3cret-pass")
            .await
            .unwrap();
        b.fill("input[name=comment]", "longer runs").await.unwrap();
        save(&b, 2).await;
        let task = common::show_task(&admin, &id.to_string()).await;
        assert_eq!(task.name, "Patch nightly");
        assert!(matches!(
            task.task_type,
            TaskType::Device(TaskPayload::Simulate {
                duration_ms: 4000,
                ..
            })
        ));
        assert_eq!(
            task.restart,
            RestartPolicy::AskUser {
                repeat_minutes: 30,
                force_after_minutes: None
            }
        );
        assert_eq!(task.account_name.as_deref(), Some("svc-patch"));
        assert!(task.password_set);
        tab(&b, &base, id, "settings").await;
        let page = b.source().await.unwrap();
        assert!(!page.contains("s3cret-pass"), "the password is never shown");
        assert!(page.contains("A password is set"));
        // Saved again untouched: nothing differs, no new revision, the password kept.
        b.click("form.edit button[type=submit]").await.unwrap();
        b.wait_for_text("p.notice", "Nothing differs", WAIT)
            .await
            .unwrap();
        let task = common::show_task(&admin, &id.to_string()).await;
        assert_eq!((task.revision, task.password_set), (2, true));

        // Schedule and its advanced options.
        tab(&b, &base, id, "schedule").await;
        b.fill("input[name=schedule]", "weekly:mon,fri@18:00")
            .await
            .unwrap();
        b.click("input[name=run_missed]").await.unwrap();
        b.fill("input[name=random_delay]", "10m").await.unwrap();
        b.fill("input[name=time_limit]", "2h").await.unwrap();
        b.fill("input[name=cancel_from]", "2030-01-01T00:00")
            .await
            .unwrap();
        save(&b, 3).await;
        let task = common::show_task(&admin, &id.to_string()).await;
        assert_eq!(task.schedule.spec(), "weekly:mon,fri@18:00");
        let o = &task.schedule_options;
        assert!(o.run_missed);
        assert_eq!(o.random_delay, RandomDelay::Within { seconds: 600 });
        assert_eq!(o.time_limit_secs, Some(7200));
        assert_eq!(o.cancel_from.unwrap().to_string(), "2030-01-01T00:00");
        tab(&b, &base, id, "schedule").await;
        b.screenshot(&screenshot("console-schedule.png"))
            .await
            .unwrap();

        // A schedule the server cannot read: the reason, and nothing changed.
        tab(&b, &base, id, "schedule").await;
        b.fill("input[name=schedule]", "fortnightly").await.unwrap();
        b.click("form.edit button[type=submit]").await.unwrap();
        let problem = b.wait_for_text(".error", "not a schedule", WAIT).await;
        assert!(problem.is_ok(), "{problem:?}");
        assert_eq!(common::show_task(&admin, &id.to_string()).await.revision, 3);

        // Notifications and Store task history.
        tab(&b, &base, id, "notifications").await;
        b.click("input[name=notify][value=all]").await.unwrap();
        b.fill("input[name=store_history_days]", "7").await.unwrap();
        save(&b, 4).await;
        let task = common::show_task(&admin, &id.to_string()).await;
        assert_eq!((task.notify, task.store_history_days), (Notify::All, 7));

        // Scope: a device selection instead of the group; it reads back as typed.
        tab(&b, &base, id, "scope").await;
        b.click("input[name=scope][value=selection]").await.unwrap();
        b.fill("textarea[name=conditions]", "connected=yes")
            .await
            .unwrap();
        save(&b, 5).await;
        let task = common::show_task(&admin, &id.to_string()).await;
        assert!(
            matches!(task.scope, Scope::Selection(_)),
            "{:?}",
            task.scope
        );
        tab(&b, &base, id, "scope").await;
        assert!(
            b.source()
                .await
                .unwrap()
                .contains(">connected=yes</textarea>")
        );
        // And back to the group, with its subgroups.
        b.click("input[name=scope][value=group]").await.unwrap();
        b.fill("input[name=group]", "Managed devices")
            .await
            .unwrap();
        save(&b, 6).await;

        // Security: an entry set, shown, then removed.
        tab(&b, &base, id, "security").await;
        b.fill("input[name=who]", "role:operator").await.unwrap();
        b.fill("input[name=allow]", "read").await.unwrap();
        b.fill("input[name=deny]", "execute").await.unwrap();
        b.click("form.set-rights button[type=submit]")
            .await
            .unwrap();
        let row = b
            .wait_for_text("tr[data-who='role:operator']", "read", WAIT)
            .await
            .unwrap();
        assert!(row.contains("execute"), "{row}");
        let rights = rights_of(&admin, id).await;
        assert!(rights.contains(&"role:operator".to_string()), "{rights:?}");
        b.click("tr[data-who='role:operator'] button[value=remove]")
            .await
            .unwrap();
        b.wait_gone("tr[data-who='role:operator']", WAIT)
            .await
            .unwrap();
        assert!(
            !rights_of(&admin, id)
                .await
                .contains(&"role:operator".to_string())
        );

        // Revision history: revision 1 compared with the current one, then rolled back to.
        tab(&b, &base, id, "history").await;
        let revisions = b.texts("table.history tbody tr").await.unwrap();
        assert_eq!(revisions.len(), 6, "{revisions:?}");
        b.click("tr[data-revision='1'] a.compare").await.unwrap();
        let diff = b
            .wait_for_text("table.diff", "Patch nightly", WAIT)
            .await
            .unwrap();
        assert!(diff.contains("Patch"), "{diff}");
        tab(&b, &base, id, "history").await;
        b.fill("tr[data-revision='1'] input[name=comment]", "as it was")
            .await
            .unwrap();
        b.click("tr[data-revision='1'] button[type=submit]")
            .await
            .unwrap();
        b.wait_for_text("p.notice", "revision 7", WAIT)
            .await
            .unwrap();
        let task = common::show_task(&admin, &id.to_string()).await;
        assert_eq!((task.name.as_str(), task.revision), ("Patch", 7));
        let last = b.text("table.history tbody tr:last-child").await.unwrap();
        assert!(last.contains("as it was"), "{last}");

        // Pause and Resume of a run: the rolled-back task runs in 100 ms; slow it down
        // through the API first, so that the run can be paused.
        let changes = canopy::wire::msg::TaskChanges {
            task_type: Some(TaskType::Device(TaskPayload::Simulate {
                duration_ms: 3000,
                succeeded: 1,
                warning: 0,
                failed: 0,
                need_restart_percent: 0,
            })),
            ..Default::default()
        };
        admin
            .call(AdminRequest::Task(TaskRequest::Edit {
                task: id.to_string(),
                changes: Box::new(changes),
            }))
            .await
            .unwrap();
        tab(&b, &base, id, "general").await;
        b.click("form[action$='/start'] button").await.unwrap();
        b.wait_for_text("form[action$='/pause'] button", "Pause", WAIT)
            .await
            .unwrap();
        b.click("form[action$='/pause'] button").await.unwrap();
        b.wait_for_text("p.run-status", "Paused", WAIT)
            .await
            .unwrap();
        b.click("form[action$='/resume'] button").await.unwrap();
        b.wait_for_text("p.run-status", "Completed: 3 of 3 devices finished", WAIT)
            .await
            .unwrap();

        // Deleted, then restored from Deleted tasks.
        b.goto(&format!("{base}/tasks")).await.unwrap();
        b.click("tr[data-task='Patch'] input[type=checkbox]")
            .await
            .unwrap();
        b.click("button[value=delete]").await.unwrap();
        b.wait_gone("tr[data-task='Patch']", WAIT).await.unwrap();
        b.click("a[href='/tasks/deleted']").await.unwrap();
        b.wait_for_text("tr[data-task='Patch']", "Patch", WAIT)
            .await
            .unwrap();
        b.click("tr[data-task='Patch'] button").await.unwrap();
        b.wait_for_text("h1", "Patch", WAIT).await.unwrap();
        assert_eq!(common::show_task(&admin, "Patch").await.id, id);

        b.close().await.unwrap();
        primary.shutdown().await.unwrap();
    })
    .await
    .expect("the console test finished in time");
}

/// Where a screenshot goes: `target/screenshots/` (`make screenshots` copies it to docs/).
fn screenshot(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The principals of the task's own rights list (a group task's: its group's).
async fn rights_of(admin: &AdminClient, task: u64) -> Vec<String> {
    let request = TaskRequest::Rights {
        task: task.to_string(),
        change: None,
    };
    match admin.call(AdminRequest::Task(request)).await.unwrap() {
        AdminResponse::Rights(view) => view
            .lists
            .last()
            .map(|(_, entries)| entries.iter().map(|(p, _)| p.to_string()).collect())
            .unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

/// An auditor sees the tasks and their properties, and every change is refused with the
/// admin API's reason: the task stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_sees_but_cannot_change() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment::create(dir.path()).unwrap();
        let (primary, admin) = primary(&d).await;
        let spec = common::simulate_spec(
            "Patch",
            common::group_scope("Managed devices", true),
            100,
            [1, 0, 0],
        );
        let id = common::create_task(&admin, spec).await.id;
        admin
            .call(AdminRequest::AccountCreate {
                name: "audit".into(),
                password: Secret("auditor-password-1".into()),
                role: Role::Auditor,
            })
            .await
            .unwrap();
        let b = browser(&d).await;
        let base = format!("https://{}", primary.web_addr().unwrap());
        b.log_in(&base, "audit", "auditor-password-1", None)
            .await
            .unwrap();
        assert_eq!(
            b.texts("table.tasks tbody tr td:nth-child(2)")
                .await
                .unwrap(),
            ["Patch"]
        );

        // Start from the list: refused, with the reason.
        b.click("tr[data-task='Patch'] input[type=checkbox]")
            .await
            .unwrap();
        b.click("button[value=start]").await.unwrap();
        b.wait_for_text(".error", "auditor may not task start", WAIT)
            .await
            .unwrap();
        // A change of the settings: refused, nothing changed.
        tab(&b, &base, id, "settings").await;
        b.fill("input[name=name]", "Renamed").await.unwrap();
        b.click("form.edit button[type=submit]").await.unwrap();
        b.wait_for_text(".error", "auditor may not task edit", WAIT)
            .await
            .unwrap();
        // A rights entry: refused too.
        tab(&b, &base, id, "security").await;
        b.fill("input[name=who]", "account:audit").await.unwrap();
        b.fill("input[name=allow]", "all").await.unwrap();
        b.click("form.set-rights button[type=submit]")
            .await
            .unwrap();
        b.wait_for_text(".error", "auditor may not task rights change", WAIT)
            .await
            .unwrap();
        // The New task wizard's Finish: refused.
        b.goto(&format!("{base}/tasks/new")).await.unwrap();
        b.fill("input[name=name]", "Mine").await.unwrap();
        b.click("select[name=type] option[value=inventory]")
            .await
            .unwrap();
        for next in [
            "Settings",
            "Scope",
            "Schedule",
            "Account",
            "Finish task creation",
        ] {
            b.click("button[value=next]").await.unwrap();
            b.wait_for_text("main h2", next, WAIT).await.unwrap();
        }
        b.click("button[value=finish]").await.unwrap();
        b.wait_for_text(".error", "auditor may not task create", WAIT)
            .await
            .unwrap();

        let task = common::show_task(&admin, &id.to_string()).await;
        assert_eq!((task.name.as_str(), task.revision), ("Patch", 1));
        assert!(task.last_run.is_none(), "not started");
        assert!(
            !rights_of(&admin, id)
                .await
                .contains(&Principal::Account("audit".into()).to_string())
        );
        match admin
            .call(AdminRequest::Task(TaskRequest::List {
                after: None,
                limit: 100,
            }))
            .await
            .unwrap()
        {
            AdminResponse::Tasks { tasks, .. } => assert_eq!(tasks.len(), 1),
            other => panic!("{other:?}"),
        }

        // The auditor's own account: who it is, and a new password of its own.
        assert_eq!(b.text("header a.account").await.unwrap(), "audit (auditor)");
        b.click("header a.account").await.unwrap();
        b.wait_for_text("table.account", "auditor", WAIT)
            .await
            .unwrap();
        b.fill("input[name=password]", "auditor-password-2")
            .await
            .unwrap();
        b.fill("input[name=confirm]", "auditor-password-3")
            .await
            .unwrap();
        b.click("form.password button").await.unwrap();
        b.wait_for_text(".error", "differ", WAIT).await.unwrap();
        b.fill("input[name=password]", "auditor-password-2")
            .await
            .unwrap();
        b.fill("input[name=confirm]", "auditor-password-2")
            .await
            .unwrap();
        b.click("form.password button").await.unwrap();
        b.wait_for_text("p.notice", "Your password is changed", WAIT)
            .await
            .unwrap();
        assert!(
            !b.source().await.unwrap().contains("auditor-password-2"),
            "never shown"
        );
        b.fill("input[name=user]", "audit").await.unwrap();
        b.fill("input[name=password]", "auditor-password-1")
            .await
            .unwrap();
        b.click("button[type=submit]").await.unwrap();
        b.wait_for_text(".error", "", WAIT).await.unwrap();
        b.log_in(&base, "audit", "auditor-password-2", None)
            .await
            .unwrap();
        b.close().await.unwrap();
        primary.shutdown().await.unwrap();
    })
    .await
    .expect("the console test finished in time");
}

/// The device ids of `group` (and its subgroups), with their enrollment.
async fn devices_of(admin: &AdminClient, group: &str) -> Vec<(String, String)> {
    let request = AdminRequest::Device(canopy::wire::msg::DeviceRequest::List {
        group: Some(group.into()),
        recursive: true,
        after: None,
        limit: 100,
    });
    match admin.call(request).await.unwrap() {
        AdminResponse::Devices { devices, .. } => devices
            .into_iter()
            .map(|d| (d.id, d.enrollment.as_str().to_string()))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_manages_devices() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment::create(dir.path()).unwrap();
        let (primary, admin) = primary(&d).await;
        let address = primary.local_addr().to_string();
        let _fleet = common::named_fleet(&d, "fleet", &address, TOKEN, 3, "").await;
        admin
            .call(AdminRequest::Group(
                canopy::wire::msg::GroupRequest::Create {
                    path: "Managed devices/Paris".into(),
                },
            ))
            .await
            .unwrap();
        let pending_config = d.agent_config_at("pending", &address, None).unwrap();
        let pending = canopy::agent::Agents::start(
            pending_config,
            Some(canopy::agent::Simulation {
                devices: 2,
                seed: 99,
            }),
        )
        .await
        .unwrap();
        common::until("two devices pending", || async {
            pending.counts().pending == 2
        })
        .await;
        let b = browser(&d).await;
        let base = format!("https://{}", primary.web_addr().unwrap());
        b.log_in(&base, ADMIN_USER, ADMIN_PASSWORD, None)
            .await
            .unwrap();

        // Two of the fleet moved to Paris; the group filter then shows just them.
        b.goto(&format!(
            "{base}/devices?status=connected&group=Managed%20devices"
        ))
        .await
        .unwrap();
        assert_eq!(b.texts("table.devices tbody tr").await.unwrap().len(), 3);
        b.click("table.devices tbody tr:nth-child(1) input[type=checkbox]")
            .await
            .unwrap();
        b.click("table.devices tbody tr:nth-child(2) input[type=checkbox]")
            .await
            .unwrap();
        b.fill("input[name=target_group]", "Managed devices/Paris")
            .await
            .unwrap();
        b.click("button[value=move]").await.unwrap();
        b.wait_for_url(&format!("{base}/devices"), WAIT)
            .await
            .unwrap();
        assert_eq!(devices_of(&admin, "Managed devices/Paris").await.len(), 2);
        b.goto(&format!("{base}/devices?group=Managed%20devices/Paris"))
            .await
            .unwrap();
        let groups = b
            .texts("table.devices tbody tr td:nth-child(3)")
            .await
            .unwrap();
        assert_eq!(groups, ["Managed devices/Paris", "Managed devices/Paris"]);

        // The pending devices: one approved into Paris, the other rejected.
        b.goto(&format!("{base}/devices?status=pending"))
            .await
            .unwrap();
        let states = b.texts("table.devices td.enrollment").await.unwrap();
        assert_eq!(states, ["pending", "pending"]);
        let ids: Vec<String> = devices_of(&admin, "Unassigned devices")
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids.len(), 2);
        b.click(&format!("input[type=checkbox][value='{}']", ids[0]))
            .await
            .unwrap();
        b.fill("input[name=target_group]", "Managed devices/Paris")
            .await
            .unwrap();
        b.click("button[value=approve]").await.unwrap();
        b.wait_for_url(&format!("{base}/devices"), WAIT)
            .await
            .unwrap();
        b.goto(&format!("{base}/devices?status=pending"))
            .await
            .unwrap();
        b.click(&format!("input[type=checkbox][value='{}']", ids[1]))
            .await
            .unwrap();
        b.click("button[value=reject]").await.unwrap();
        b.wait_for_url(&format!("{base}/devices"), WAIT)
            .await
            .unwrap();
        let paris = devices_of(&admin, "Managed devices/Paris").await;
        assert!(
            paris.contains(&(ids[0].clone(), "approved".into())),
            "{paris:?}"
        );
        let unassigned = devices_of(&admin, "Unassigned devices").await;
        assert_eq!(unassigned, [(ids[1].clone(), "rejected".into())]);

        // Deleted after a confirmation (the fleet stopped, so that it does not come back).
        pending.stop().await.unwrap();
        b.goto(&format!("{base}/devices")).await.unwrap();
        b.click(&format!("input[type=checkbox][value='{}']", ids[1]))
            .await
            .unwrap();
        b.click("button[value=delete]").await.unwrap();
        b.wait_for_text("h1", "Delete devices", WAIT).await.unwrap();
        assert_eq!(
            devices_of(&admin, "Unassigned devices").await.len(),
            1,
            "asked first"
        );
        b.click("button[value=yes]").await.unwrap();
        b.wait_for_text("h1", "Managed devices", WAIT)
            .await
            .unwrap();
        assert!(devices_of(&admin, "Unassigned devices").await.is_empty());

        // A move to a group that does not exist: refused with the reason, nothing moved.
        b.click("table.devices tbody tr:nth-child(1) input[type=checkbox]")
            .await
            .unwrap();
        b.fill("input[name=target_group]", "Managed devices/Nowhere")
            .await
            .unwrap();
        b.click("button[value=move]").await.unwrap();
        b.wait_for_text(".refused", "no group", WAIT).await.unwrap();
        assert_eq!(devices_of(&admin, "Managed devices/Paris").await.len(), 3);

        // A device's page: its facts, and tags added and removed.
        b.goto(&format!("{base}/devices/{}", ids[0])).await.unwrap();
        b.wait_for_text("table.device", "Managed devices/Paris", WAIT)
            .await
            .unwrap();
        b.fill("input[name=add]", "finance, vip").await.unwrap();
        b.click("form.tags button").await.unwrap();
        b.wait_for_text("li[data-tag='vip']", "vip", WAIT)
            .await
            .unwrap();
        b.click("li[data-tag='vip'] input").await.unwrap();
        b.click("form.tags button").await.unwrap();
        // The same page comes back: wait for the tag to go.
        let mut tags = Vec::new();
        for _ in 0..100 {
            tags = b.texts("ul.tags li").await.unwrap_or_default();
            // Empty while the page loads.
            if !tags.is_empty() && !tags.contains(&"vip".to_string()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            tags.contains(&"finance".to_string()) && !tags.contains(&"vip".to_string()),
            "{tags:?}"
        );

        b.close().await.unwrap();
        primary.shutdown().await.unwrap();
    })
    .await
    .expect("the console test finished in time");
}

//! The web console in a real headless Chromium (Debian's, through chromedriver), against a
//! primary and its secondary with simulated fleets on loopback, the primary's certificate
//! pinned by its key: log in, start a group task from the task list and watch its Status
//! reach completion, open the Statistics from secondary Servers and drill down into the
//! secondary's per-device results, run an existing task on devices checked in Managed
//! devices, and a tenant's administrator who sees only the tenant. Screenshots of the task
//! list and of the statistics go to target/screenshots/ (`make screenshots`: docs/).

// Each test binary uses part of the shared harness.
#[allow(dead_code)]
#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::{Browser, BrowserOptions, spki_hash_of_cert_pem};
use canopy::cli::deployment::{ADMIN_PASSWORD, ADMIN_USER, Deployment};
use canopy::wire::msg::{AdminRequest, Secret};

const TOKEN: &str = "console-tests-token-0123456789";
const WEB: &str = "\n[web]\nlisten = \"127.0.0.1:0\"\n";
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_runs_a_group_task_and_drills_down_in_the_console() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment::create(dir.path()).unwrap();
        let (primary, branch, admin) = common::two_tiers_with(&d, TOKEN, WEB).await;
        let _fleets = (
            common::named_fleet(
                &d,
                "fleet-p",
                &primary.local_addr().to_string(),
                TOKEN,
                3,
                "",
            )
            .await,
            common::named_fleet(
                &d,
                "fleet-b",
                &branch.local_addr().to_string(),
                TOKEN,
                2,
                "",
            )
            .await,
        );
        common::create_vserver(&admin, "tenant-a", "Managed devices").await;

        let pem = std::fs::read_to_string(d.certs.join("primary.pem")).unwrap();
        let b = Browser::start(BrowserOptions {
            trust_spki: vec![spki_hash_of_cert_pem(&pem).unwrap()],
            ..BrowserOptions::default()
        })
        .await
        .unwrap();
        let base = format!("https://{}", primary.web_addr().unwrap());

        // Not logged in: the login page. A wrong password says so.
        b.goto(&format!("{base}/tasks")).await.unwrap();
        b.wait_for_text("h1", "Log in", WAIT).await.unwrap();
        b.fill("input[name=user]", ADMIN_USER).await.unwrap();
        b.fill("input[name=password]", "not the password")
            .await
            .unwrap();
        b.click("button[type=submit]").await.unwrap();
        b.wait_for_text(".error", "", WAIT).await.unwrap();
        b.log_in(&base, ADMIN_USER, ADMIN_PASSWORD, None)
            .await
            .unwrap();
        let session = b
            .cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name == "canopy_session")
            .expect("the session cookie");
        assert!(session.secure && session.http_only, "{session:?}");
        assert_eq!(session.same_site.as_deref(), Some("Strict"));

        // Add: the New task wizard, step by step, opening the task's details at the end.
        b.click("a.add").await.unwrap();
        b.wait_for_text("main h2", "Application and task type", WAIT)
            .await
            .unwrap();
        b.fill("input[name=name]", "Patch").await.unwrap();
        b.click("select[name=type] option[value=simulate]")
            .await
            .unwrap();
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Settings", WAIT).await.unwrap();
        b.fill("input[name=duration_ms]", "200").await.unwrap();
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Scope", WAIT).await.unwrap();
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Schedule", WAIT).await.unwrap();
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Account", WAIT).await.unwrap();
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Finish task creation", WAIT)
            .await
            .unwrap();
        b.click("input[name=open_details]").await.unwrap();
        b.click("button[value=finish]").await.unwrap();
        b.wait_for_text("h1", "Patch", WAIT).await.unwrap();
        assert_eq!(
            b.text("main p").await.unwrap(),
            "group task, simulate, revision 1"
        );
        // A second one, for another application, back to the list at the end.
        b.goto(&format!("{base}/tasks/new")).await.unwrap();
        b.fill("input[name=name]", "Inventory").await.unwrap();
        b.fill("input[name=application]", "Inventory agent")
            .await
            .unwrap();
        b.click("select[name=type] option[value=simulate]")
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
        b.wait_for_text("h1", "Tasks", WAIT).await.unwrap();

        // The task list, grouped by application, each with its Status; Patch checked and
        // started, its Status followed to completion.
        let headings = b.texts("main h2").await.unwrap();
        assert_eq!(
            headings,
            ["Canopy agent", "Inventory agent"],
            "by application"
        );
        let row = "tr[data-task='Patch']";
        assert_eq!(
            b.text(&format!("{row} td.status")).await.unwrap(),
            "Never run"
        );
        b.click(&format!("{row} input[type=checkbox]"))
            .await
            .unwrap();
        b.click("button[value=start]").await.unwrap();
        b.wait_for_text(
            &format!("{row} td.status"),
            "Completed: 5 of 5 devices finished",
            WAIT,
        )
        .await
        .unwrap();
        b.screenshot(&docs("console-tasks.png")).await.unwrap();

        // The task's properties: its status and the Statistics from secondary Servers.
        b.click(&format!("{row} a")).await.unwrap();
        b.wait_for_text("p.run-status", "Completed: 5 of 5 devices finished", WAIT)
            .await
            .unwrap();
        let rows = b
            .texts("table.servers tbody tr td:first-child")
            .await
            .unwrap();
        assert!(
            rows.starts_with(&["primary".to_string(), "primary/branch-1".to_string()]),
            "{rows:?}"
        );
        let branch_row = b
            .texts("tr[data-server='primary/branch-1'] td")
            .await
            .unwrap();
        assert_eq!(
            branch_row[1..3],
            ["2".to_string(), "2".to_string()],
            "2 devices, 2 succeeded"
        );
        b.screenshot(&docs("console-statistics.png")).await.unwrap();

        // Drill down: the secondary's row leads to its own devices' results.
        b.click("tr[data-server='primary/branch-1'] a")
            .await
            .unwrap();
        b.wait_for_text("main p", "devices of branch-1", WAIT)
            .await
            .unwrap();
        let states = b.texts("table.results td.state").await.unwrap();
        assert_eq!(states, ["succeeded", "succeeded"]);

        // Managed devices: two checked, Run task, Apply existing task: the task starts at
        // once on them.
        b.goto(&format!("{base}/devices")).await.unwrap();
        let names = b
            .texts("table.devices tbody tr td:nth-child(2)")
            .await
            .unwrap();
        assert_eq!(names.len(), 3, "{names:?}");
        b.click("table.devices tbody tr:nth-child(1) input[type=checkbox]")
            .await
            .unwrap();
        b.click("table.devices tbody tr:nth-child(2) input[type=checkbox]")
            .await
            .unwrap();
        b.click("button[value=apply]").await.unwrap();
        b.wait_for_text("h1", "Apply existing task", WAIT)
            .await
            .unwrap();
        assert_eq!(b.texts("ul.selected li").await.unwrap().len(), 2);
        b.click("tr[data-task='Inventory'] input[type=radio]")
            .await
            .unwrap();
        b.click("main form button[type=submit]").await.unwrap();
        b.wait_for_text("p.run-status", "Completed: 2 of 2 devices finished", WAIT)
            .await
            .unwrap();

        // Copy, Delete and Import from the list.
        b.goto(&format!("{base}/tasks")).await.unwrap();
        b.click(&format!("{row} input[type=checkbox]"))
            .await
            .unwrap();
        b.click("button[value=copy]").await.unwrap();
        b.wait_for_text("tr[data-task='Patch (1)'] td.status", "Never run", WAIT)
            .await
            .unwrap();
        b.click("tr[data-task='Patch (1)'] input[type=checkbox]")
            .await
            .unwrap();
        b.click("button[value=delete]").await.unwrap();
        b.wait_for_text("h1", "Tasks", WAIT).await.unwrap();
        let names = b
            .texts("table.tasks tbody tr td:nth-child(2)")
            .await
            .unwrap();
        assert_eq!(names, ["Patch", "Inventory"], "the copy deleted");
        let file = match admin
            .call(AdminRequest::Task(canopy::wire::msg::TaskRequest::Export {
                task: "Inventory".into(),
            }))
            .await
            .unwrap()
        {
            canopy::wire::msg::AdminResponse::Exported { file, .. } => file,
            other => panic!("{other:?}"),
        };
        b.goto(&format!("{base}/tasks/import")).await.unwrap();
        b.fill("textarea[name=file]", &file).await.unwrap();
        b.click("button[value=check]").await.unwrap();
        let would = b
            .wait_for_text("table.import", "Inventory (1)", WAIT)
            .await
            .unwrap();
        assert!(would.contains("simulate"), "{would}");
        b.click("button[value=import]").await.unwrap();
        b.wait_for_text("tr[data-task='Inventory (1)'] td.status", "Never run", WAIT)
            .await
            .unwrap();

        // Forms need the session's CSRF token: without it, or with another, nothing is done;
        // with it, Export answers the file as a download.
        let mut raw = rest::Rest::new(primary.web_addr().unwrap(), "primary", &d.ca().unwrap());
        let form = format!("user={ADMIN_USER}&password={ADMIN_PASSWORD}");
        let login = raw
            .raw(
                "POST",
                "/login",
                Some("application/x-www-form-urlencoded"),
                form.as_bytes(),
            )
            .await;
        assert_eq!(login.status, 303);
        let set_cookie = login.header("set-cookie").unwrap().to_string();
        assert!(
            set_cookie.contains("Secure")
                && set_cookie.contains("HttpOnly")
                && set_cookie.contains("SameSite=Strict")
        );
        raw.cookie = Some(set_cookie.split(';').next().unwrap().to_string());
        let list = raw.raw("GET", "/tasks", None, &[]).await;
        let page = String::from_utf8_lossy(&list.body).to_string();
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let form_type = Some("application/x-www-form-urlencoded");
        for body in [
            "task=2&action=start".to_string(),
            "task=2&action=start&csrf=0000".to_string(),
        ] {
            let refused = raw
                .raw("POST", "/tasks/action", form_type, body.as_bytes())
                .await;
            assert_eq!(refused.status, 403, "{body}");
            assert!(String::from_utf8_lossy(&refused.body).contains("CSRF"));
        }
        let inventory = common::show_task(&admin, "Inventory").await;
        assert_eq!(inventory.last_run.unwrap().run_id, 2, "not started again");
        let body = format!("task=1&action=export&csrf={csrf}");
        let exported = raw
            .raw("POST", "/tasks/action", form_type, body.as_bytes())
            .await;
        assert_eq!(exported.status, 200);
        assert!(
            exported
                .header("content-disposition")
                .unwrap()
                .starts_with("attachment")
        );
        assert!(String::from_utf8_lossy(&exported.body).contains("Patch"));

        // A tenant's administrator sees the tenant's tasks only: the inherited group tasks.
        let boss = AdminRequest::AccountCreate {
            name: "boss".into(),
            password: Secret("tenant-password-1".into()),
            role: canopy::model::Role::Administrator,
        };
        let mut host = admin;
        host.forward_to(Some("tenant-a".into()));
        host.call(boss).await.unwrap();
        b.click("header button").await.unwrap();
        b.wait_for_text("h1", "Log in", WAIT).await.unwrap();
        b.log_in(&base, "boss", "tenant-password-1", Some("tenant-a"))
            .await
            .unwrap();
        assert_eq!(b.text("header .who").await.unwrap(), "Server tenant-a");
        let servers = {
            b.goto(&format!("{base}/servers")).await.unwrap();
            b.texts("table.servers tbody tr td:first-child")
                .await
                .unwrap()
        };
        assert_eq!(servers, ["tenant-a"]);
        b.close().await.unwrap();
        primary.shutdown().await.unwrap();
        branch.shutdown().await.unwrap();
    })
    .await
    .expect("the console test finished in time");
}

/// Where the screenshots go: `target/screenshots/` (`make screenshots` copies them into
/// docs/ for the README), so that a test run leaves the sources as they were.
fn docs(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `canopy demo --serve` as a person runs it: it prints the console's address and the CA to
/// trust, the console answers there with its login page, and Ctrl-C stops it cleanly.
#[test]
fn the_demo_serves_the_console_until_interrupted() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut demo = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["demo", "--serve", "--web-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read on a thread to the end, so that the demo can still write when it stops.
    let stderr = BufReader::new(demo.stderr.take().unwrap());
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let (mut address, mut ca) = (None, None);
    let mut seen = String::new();
    while let Ok(line) = read.recv_timeout(Duration::from_secs(120)) {
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.strip_prefix("The web console: https://") {
            address = rest.split('/').next().map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("Its certificate is issued by the demo's own CA, ") {
            ca = rest.split(':').next().map(str::to_string);
        }
        if address.is_some() && ca.is_some() {
            break;
        }
    }
    let (address, ca) = (address.expect(&seen), ca.expect(&seen));
    let ca = rustls_pki_types::pem::PemObject::pem_file_iter(&ca)
        .unwrap()
        .collect::<Result<Vec<rustls_pki_types::CertificateDer<'static>>, _>>()
        .unwrap();
    let rest = rest_client(address.parse().unwrap(), &ca);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let page = runtime.block_on(rest.raw("GET", "/login", None, &[]));
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<h1>Log in</h1>"));
    // Ctrl-C: the tree stops and the process ends well.
    unsafe { libc::kill(demo.id() as i32, libc::SIGINT) };
    let status = demo.wait().unwrap();
    assert!(status.success(), "{status}");
}

// Each test binary uses part of the shared client.
#[allow(dead_code)]
#[path = "common/rest.rs"]
mod rest;

fn rest_client(
    addr: std::net::SocketAddr,
    ca: &[rustls_pki_types::CertificateDer<'static>],
) -> rest::Rest {
    rest::Rest::new(addr, "primary", ca)
}

//! Passwords in the web console, in a real headless Chromium (through chromedriver) against
//! a primary and its secondary on loopback, the primary's certificate pinned by its key: the
//! New task wizard holds the task account's password on the server between its steps (no
//! page holds it, another session cannot use its draft id), and the Change tasks password
//! wizard replaces, forces and reports, never showing a password.

// Each test binary uses part of the shared harness.
#[allow(dead_code)]
#[path = "common/browser.rs"]
mod browser;
mod common;
// Each test binary uses part of the shared client.
#[allow(dead_code)]
#[path = "common/rest.rs"]
mod rest;

use std::time::Duration;

use browser::{Browser, BrowserOptions, spki_hash_of_cert_pem};
use canopy::cli::deployment::{ADMIN_PASSWORD, ADMIN_USER, Deployment};
use canopy::wire::msg::{
    AccountSpec, AdminRequest, AdminResponse, CredentialOutcome, CredentialsChange, Secret,
    TaskRequest,
};
use common::{create_task, group_scope, show_task, simulate_spec};

const TOKEN: &str = "console-credentials-token-0123456789";
const WEB: &str = "\n[web]\nlisten = \"127.0.0.1:0\"\n";
const WAIT: Duration = Duration::from_secs(30);
/// The passwords of the test: none may ever be in a page.
const WIZARD_PASSWORD: &str = "wizard-pass-7Qx";
const NEW_PASSWORD: &str = "new-pass";
const OLD_PASSWORD: &str = "old-pass";

/// The page shown holds none of the test's passwords. (The password inputs' attribute
/// `autocomplete="new-password"`, a hint to password managers, holds "new-pass": set aside.)
async fn no_password_in(b: &Browser, what: &str) {
    let source = b
        .source()
        .await
        .unwrap()
        .replace("autocomplete=\"new-password\"", "");
    for password in [WIZARD_PASSWORD, NEW_PASSWORD, OLD_PASSWORD, "other-pass"] {
        assert!(
            !source.contains(password),
            "{what}: the page holds {password:?}"
        );
    }
}

/// A hidden field's value in a page's source.
fn hidden(source: &str, name: &str) -> String {
    source
        .split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no field {name} in {source}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_stay_on_the_server_through_the_console_wizards() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment::create(dir.path()).unwrap();
        let (primary, branch, admin) = common::two_tiers_with(&d, TOKEN, WEB).await;
        // Three tasks under svc-backup, two with the password to rotate; one under another
        // account with that password too, which the wizard leaves alone.
        for (name, account, password) in [
            ("Backup A", "svc-backup", OLD_PASSWORD),
            ("Backup B", "svc-backup", OLD_PASSWORD),
            ("Backup C", "svc-backup", "other-pass"),
            ("Report", "svc-report", OLD_PASSWORD),
        ] {
            let mut spec =
                simulate_spec(name, group_scope("Managed devices", true), 100, [1, 0, 0]);
            spec.account = Some(AccountSpec {
                name: account.into(),
                password: Some(Secret(password.into())),
            });
            assert_eq!(create_task(&admin, spec).await.revision, 1);
        }

        let pem = std::fs::read_to_string(d.certs.join("primary.pem")).unwrap();
        let b = Browser::start(BrowserOptions {
            trust_spki: vec![spki_hash_of_cert_pem(&pem).unwrap()],
            ..BrowserOptions::default()
        })
        .await
        .unwrap();
        let base = format!("https://{}", primary.web_addr().unwrap());
        b.log_in(&base, ADMIN_USER, ADMIN_PASSWORD, None)
            .await
            .unwrap();

        // The New task wizard with a specified account: the password goes no further than
        // the server; the pages carry a draft id.
        b.click("a.add").await.unwrap();
        b.fill("input[name=name]", "Wizard task").await.unwrap();
        b.click("select[name=type] option[value=simulate]")
            .await
            .unwrap();
        for next in ["Settings", "Scope", "Schedule", "Account"] {
            b.click("button[value=next]").await.unwrap();
            b.wait_for_text("main h2", next, WAIT).await.unwrap();
        }
        b.click("input[name=account][value=specified]")
            .await
            .unwrap();
        b.fill("input[name=account_name]", "svc-wizard")
            .await
            .unwrap();
        b.fill("input[name=account_password]", WIZARD_PASSWORD)
            .await
            .unwrap();
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Finish task creation", WAIT)
            .await
            .unwrap();
        no_password_in(&b, "the Finish page").await;
        let finish_page = b.source().await.unwrap();
        let draft = hidden(&finish_page, "account_password_draft");
        b.click("button[value=back]").await.unwrap();
        b.wait_for_text("main h2", "Account", WAIT).await.unwrap();
        no_password_in(&b, "the Account page after Back").await;
        assert!(
            b.text("p.held")
                .await
                .unwrap()
                .contains("A password is set"),
            "Back keeps the password"
        );

        // Another session presenting that draft id finds nothing: Finish says the password
        // has expired and shows the Account step again; no task is made.
        let mut raw = rest::Rest::new(primary.web_addr().unwrap(), "primary", &d.ca().unwrap());
        let form = format!("user={ADMIN_USER}&password={ADMIN_PASSWORD}");
        let form_type = Some("application/x-www-form-urlencoded");
        let login = raw.raw("POST", "/login", form_type, form.as_bytes()).await;
        assert_eq!(login.status, 303);
        let set_cookie = login.header("set-cookie").unwrap().to_string();
        raw.cookie = Some(set_cookie.split(';').next().unwrap().to_string());
        let page = raw.raw("GET", "/tasks/new", None, &[]).await;
        let csrf = hidden(&String::from_utf8_lossy(&page.body), "csrf");
        let finish = format!(
            "csrf={csrf}&step=5&go=finish&name=Stolen&type=simulate&scope=group\
             &group=Managed+devices&subgroups=on&schedule=manual&account=specified\
             &account_name=svc-wizard&account_password_draft={draft}"
        );
        let refused = raw
            .raw("POST", "/tasks/new", form_type, finish.as_bytes())
            .await;
        let text = String::from_utf8_lossy(&refused.body).to_string();
        assert_eq!(refused.status, 200);
        assert!(text.contains("has expired"), "{text}");
        assert!(text.contains("<h2>Account</h2>"), "{text}");
        let stolen = admin
            .call(AdminRequest::Task(TaskRequest::Show {
                task: "Stolen".into(),
            }))
            .await;
        assert!(!matches!(stolen, Ok(AdminResponse::Task(_))), "{stolen:?}");

        // This session's Finish takes the password from the drafts: the task has it.
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Finish task creation", WAIT)
            .await
            .unwrap();
        no_password_in(&b, "the Finish page again").await;
        b.click("button[value=finish]").await.unwrap();
        b.wait_for_text("h1", "Tasks", WAIT).await.unwrap();
        let made = show_task(&admin, "Wizard task").await;
        assert_eq!(made.account_name.as_deref(), Some("svc-wizard"));
        assert!(made.password_set, "the wizard's password is set");

        // The Change tasks password wizard, from the task list. Two different new passwords:
        // said at step 1, nothing changed.
        b.click("a.credentials").await.unwrap();
        b.wait_for_text("main h2", "Specifying credentials", WAIT)
            .await
            .unwrap();
        b.fill("input[name=account]", "svc-backup").await.unwrap();
        b.fill("input[name=new_password]", NEW_PASSWORD)
            .await
            .unwrap();
        b.fill("input[name=confirm_password]", "new-pazz")
            .await
            .unwrap();
        b.fill("input[name=previous_password]", OLD_PASSWORD)
            .await
            .unwrap();
        b.click("button[value=next]").await.unwrap();
        let error = b.wait_for_text(".error", "differ", WAIT).await.unwrap();
        assert!(error.contains("confirmation"), "{error}");
        assert!(!b.source().await.unwrap().contains("new-pazz"));
        no_password_in(&b, "step 1 with its error").await;
        for task in ["Backup A", "Backup B", "Backup C"] {
            assert_eq!(
                show_task(&admin, task).await.revision,
                1,
                "{task} unchanged"
            );
        }

        // Step 1 again, right: the two tasks with the previous password are replaced at once;
        // step 2 lists the other, waiting for an action.
        assert!(
            b.source().await.unwrap().contains("value=\"svc-backup\""),
            "the account is kept"
        );
        b.fill("input[name=account]", "svc-backup").await.unwrap();
        b.fill("input[name=new_password]", NEW_PASSWORD)
            .await
            .unwrap();
        b.fill("input[name=confirm_password]", NEW_PASSWORD)
            .await
            .unwrap();
        b.fill("input[name=previous_password]", OLD_PASSWORD)
            .await
            .unwrap();
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Selecting an action to take", WAIT)
            .await
            .unwrap();
        no_password_in(&b, "step 2").await;
        assert_eq!(
            b.texts("table.choices tbody tr td:nth-child(2)")
                .await
                .unwrap(),
            ["Backup C"]
        );
        assert_eq!(
            b.texts("table.replaced tbody tr td:first-child")
                .await
                .unwrap(),
            ["Backup A", "Backup B"]
        );
        let row = "table.choices tr[data-task='Backup C']";
        b.click(&format!("{row} input[type=checkbox]"))
            .await
            .unwrap();
        b.click("button[value=force]").await.unwrap();
        b.wait_for_text(&format!("{row} td.action"), "Enforce", WAIT)
            .await
            .unwrap();
        no_password_in(&b, "step 2 with a choice").await;

        // Next applies it; step 3: every task found and its outcome.
        b.click("button[value=next]").await.unwrap();
        b.wait_for_text("main h2", "Viewing the results", WAIT)
            .await
            .unwrap();
        no_password_in(&b, "step 3").await;
        for (task, outcome) in [
            ("Backup A", "Replaced"),
            ("Backup B", "Replaced"),
            ("Backup C", "Forced"),
        ] {
            let row = format!("table.results tr[data-task='{task}']");
            let words = b.text(&format!("{row} td.outcome")).await.unwrap();
            assert!(words.starts_with(outcome), "{task}: {words}");
            assert_eq!(b.text(&format!("{row} td.revision")).await.unwrap(), "2");
        }
        assert_eq!(b.texts("table.results tbody tr").await.unwrap().len(), 3);
        b.click("a.finish").await.unwrap();
        b.wait_for_text("h1", "Tasks", WAIT).await.unwrap();

        // Through the admin API: each a new revision with a password; the other account's
        // task untouched; and the new password is the one the tasks hold, since it now
        // matches as the previous one for all three.
        for task in ["Backup A", "Backup B", "Backup C"] {
            let shown = show_task(&admin, task).await;
            assert_eq!(shown.revision, 2, "{task}");
            assert!(shown.password_set, "{task}");
        }
        assert_eq!(show_task(&admin, "Report").await.revision, 1);
        let check = CredentialsChange {
            account: "svc-backup".into(),
            new_password: Secret("newer-pass".into()),
            previous_password: Some(Secret(NEW_PASSWORD.into())),
            choices: Vec::new(),
            comment: None,
        };
        let request = AdminRequest::Task(TaskRequest::Credentials(Box::new(check)));
        match admin.call(request).await.unwrap() {
            AdminResponse::Credentials(results) => {
                assert_eq!(results.len(), 3, "{results:?}");
                for r in results {
                    assert!(
                        matches!(r.outcome, CredentialOutcome::Replaced { revision: 3 }),
                        "{r:?}"
                    );
                }
            }
            other => panic!("unexpected {other:?}"),
        }

        b.close().await.unwrap();
        primary.shutdown().await.unwrap();
        branch.shutdown().await.unwrap();
    })
    .await
    .expect("the console credentials test finished in time");
}

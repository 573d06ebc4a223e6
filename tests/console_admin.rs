//! The web console's administration pages in a real headless Chromium (through
//! chromedriver), against a primary and its secondary on loopback, the primary's key pinned:
//! accounts, administration groups with their rights, virtual servers, notification channels
//! (a webhook to an HTTPS receiver on loopback, tested), and a secondary added and removed.
//! Each page's state is checked through the admin API as well as on the page; one bad input
//! per page is shown as an error with nothing changed, a form without the session's CSRF
//! token is refused, and an auditor gets the API's refusal as a 403 page.

// Each test binary uses part of the shared harness.
#[allow(dead_code)]
#[path = "common/browser.rs"]
mod browser;
mod common;
#[allow(dead_code)]
#[path = "common/https.rs"]
mod https;
#[allow(dead_code)]
#[path = "common/rest.rs"]
mod rest;

use std::time::Duration;

use browser::{Browser, BrowserOptions, spki_hash_of_cert_pem};
use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{ADMIN_PASSWORD, ADMIN_USER, Deployment};
use canopy::model::Role;
use canopy::model::rights::{Principal, Rights};
use canopy::wire::msg::{
    AccountView, AdminRequest, AdminResponse, GroupRequest, NotifyChannelView, NotifyRequest,
    PAGE_MAX, RightsView, VirtualServerRequest, VirtualServerView,
};

const TOKEN: &str = "console-admin-tests-token-0123";
const WEB: &str = "\n[web]\nlisten = \"127.0.0.1:0\"\n";
const WAIT: Duration = Duration::from_secs(20);
const HOOK_SECRET: &str = "the console's webhook secret 5e1d";
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

async fn accounts(admin: &AdminClient) -> Vec<AccountView> {
    let request = AdminRequest::AccountList {
        after: None,
        limit: PAGE_MAX,
    };
    match admin.call(request).await.unwrap() {
        AdminResponse::Accounts { accounts, .. } => accounts,
        other => panic!("{other:?}"),
    }
}

async fn group_paths(admin: &AdminClient) -> Vec<String> {
    let groups = admin.groups().await.unwrap();
    groups.into_iter().map(|g| g.path).collect()
}

async fn group_rights(admin: &AdminClient, path: &str) -> RightsView {
    let request = AdminRequest::Group(GroupRequest::Rights {
        path: path.into(),
        change: None,
    });
    match admin.call(request).await.unwrap() {
        AdminResponse::Rights(view) => *view,
        other => panic!("{other:?}"),
    }
}

async fn tenants(admin: &AdminClient) -> Vec<VirtualServerView> {
    let request = AdminRequest::VirtualServer(VirtualServerRequest::List {
        after: None,
        limit: PAGE_MAX,
    });
    match admin.call(request).await.unwrap() {
        AdminResponse::VirtualServers {
            virtual_servers, ..
        } => virtual_servers,
        other => panic!("{other:?}"),
    }
}

async fn channels(admin: &AdminClient) -> Vec<NotifyChannelView> {
    let request = AdminRequest::Notify(NotifyRequest::List {
        after: None,
        limit: PAGE_MAX,
    });
    match admin.call(request).await.unwrap() {
        AdminResponse::NotifyChannels { channels, .. } => channels,
        other => panic!("{other:?}"),
    }
}

async fn server_paths(admin: &AdminClient) -> Vec<String> {
    let rows = admin.servers().await.unwrap();
    rows.into_iter().map(|r| r.path).collect()
}

/// A raw HTTPS client of the console logged in as `user` (its cookie kept): the status of
/// the login.
async fn raw_login(raw: &mut rest::Rest, user: &str, password: &str) -> u16 {
    let form = format!("user={user}&password={}", password.replace(' ', "+"));
    let login = raw.raw("POST", "/login", FORM, form.as_bytes()).await;
    if let Some(cookie) = login.header("set-cookie") {
        raw.cookie = Some(cookie.split(';').next().unwrap().to_string());
    }
    login.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_administers_the_server_in_the_console() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment::create(dir.path()).unwrap();
        let (primary, branch, admin) = common::two_tiers_with(&d, TOKEN, WEB).await;
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
        let menu = b.texts("header nav a").await.unwrap();
        for link in ["Groups", "Virtual servers", "Accounts", "Notifications"] {
            assert!(menu.iter().any(|m| m == link), "{menu:?}");
        }

        // Accounts: an empty name refused with nothing made; an auditor made and listed.
        b.click("header nav a[href='/accounts']").await.unwrap();
        b.wait_for_text("h1", "Accounts", WAIT).await.unwrap();
        let before = accounts(&admin).await;
        b.fill("form.create input[name=password]", "auditor-password-1")
            .await
            .unwrap();
        b.click("form.create button").await.unwrap();
        let problem = b
            .wait_for_text("p.error", "account name", WAIT)
            .await
            .unwrap();
        assert!(!problem.is_empty());
        assert_eq!(accounts(&admin).await, before, "nothing made");
        assert!(!b.source().await.unwrap().contains("auditor-password-1"));
        b.fill("form.create input[name=name]", "audrey")
            .await
            .unwrap();
        b.fill("form.create input[name=password]", "auditor-password-1")
            .await
            .unwrap();
        b.click("form.create select[name=role] option[value=auditor]")
            .await
            .unwrap();
        b.click("form.create button").await.unwrap();
        b.wait_for_text("tr[data-account='audrey'] td.role", "auditor", WAIT)
            .await
            .unwrap();
        let audrey = accounts(&admin).await;
        assert!(
            audrey
                .iter()
                .any(|a| a.name == "audrey" && a.role == Role::Auditor),
            "{audrey:?}"
        );
        // Her password set; she logs in with the new one only, and is refused the accounts
        // page with the API's words.
        b.fill(
            "tr[data-account='audrey'] input[name=password]",
            "auditor-password-2",
        )
        .await
        .unwrap();
        b.click("tr[data-account='audrey'] td:nth-child(4) button")
            .await
            .unwrap();
        b.wait_for_text("p.notice", "The password of audrey is changed", WAIT)
            .await
            .unwrap();
        let mut raw = rest::Rest::new(primary.web_addr().unwrap(), "primary", &d.ca().unwrap());
        assert_eq!(
            raw_login(&mut raw, "audrey", "auditor-password-1").await,
            401
        );
        assert_eq!(
            raw_login(&mut raw, "audrey", "auditor-password-2").await,
            303
        );
        let refused = raw.raw("GET", "/accounts", None, &[]).await;
        assert_eq!(refused.status, 403);
        assert!(String::from_utf8_lossy(&refused.body).contains("class=\"error\""));
        // Deleted, once confirmed.
        b.click("tr[data-account='audrey'] a.delete").await.unwrap();
        b.wait_for_text("h1", "Delete account", WAIT).await.unwrap();
        assert!(
            accounts(&admin).await.iter().any(|a| a.name == "audrey"),
            "asked first"
        );
        b.click("button[value=delete]").await.unwrap();
        b.wait_for_text("h1", "Accounts", WAIT).await.unwrap();
        b.wait_gone("tr[data-account='audrey']", WAIT)
            .await
            .unwrap();
        assert!(!accounts(&admin).await.iter().any(|a| a.name == "audrey"));

        // Groups: Paris made under Managed devices, a duplicate refused, renamed Lyon.
        b.click("header nav a[href='/groups']").await.unwrap();
        b.wait_for_text("h1", "Groups", WAIT).await.unwrap();
        b.fill("form.create input[name=name]", "Paris")
            .await
            .unwrap();
        b.click("form.create button").await.unwrap();
        b.wait_for_text("tr[data-group='Managed devices/Paris']", "Paris", WAIT)
            .await
            .unwrap();
        let groups = group_paths(&admin).await;
        assert!(groups.contains(&"Managed devices/Paris".to_string()));
        b.fill("form.create input[name=name]", "Paris")
            .await
            .unwrap();
        b.click("form.create button").await.unwrap();
        b.wait_for_text("p.error", "", WAIT).await.unwrap();
        assert_eq!(group_paths(&admin).await, groups, "nothing made");
        b.click("tr[data-group='Managed devices/Paris'] a")
            .await
            .unwrap();
        b.wait_for_text("h1", "Group Managed devices/Paris", WAIT)
            .await
            .unwrap();
        b.fill("form.rename input[name=new_name]", "Lyon")
            .await
            .unwrap();
        b.click("form.rename button").await.unwrap();
        b.wait_for_text("h1", "Group Managed devices/Lyon", WAIT)
            .await
            .unwrap();
        let groups = group_paths(&admin).await;
        assert!(groups.contains(&"Managed devices/Lyon".to_string()));
        assert!(!groups.contains(&"Managed devices/Paris".to_string()));
        // Its rights: a bad entry refused, one set and shown, then removed.
        let lyon = "Managed devices/Lyon";
        b.fill("form.set-rights input[name=who]", "operators")
            .await
            .unwrap();
        b.fill("form.set-rights input[name=allow]", "read")
            .await
            .unwrap();
        b.click("form.set-rights button").await.unwrap();
        b.wait_for_text("p.error", "names no one", WAIT)
            .await
            .unwrap();
        assert!(
            group_rights(&admin, lyon)
                .await
                .lists
                .iter()
                .all(|(_, e)| e.is_empty())
        );
        b.fill("form.set-rights input[name=who]", "role:operator")
            .await
            .unwrap();
        b.fill("form.set-rights input[name=allow]", "read")
            .await
            .unwrap();
        b.fill("form.set-rights input[name=deny]", "execute")
            .await
            .unwrap();
        b.click("form.set-rights button").await.unwrap();
        b.wait_for_text("tr[data-who='role:operator'] td.deny", "execute", WAIT)
            .await
            .unwrap();
        let view = group_rights(&admin, lyon).await;
        let entries: Vec<_> = view.lists.iter().flat_map(|(_, e)| e.clone()).collect();
        assert_eq!(entries.len(), 1, "{view:?}");
        assert_eq!(entries[0].0, Principal::Role(Role::Operator));
        assert_eq!(
            (entries[0].1.allow, entries[0].1.deny),
            (Rights::READ, Rights::EXECUTE)
        );
        b.click("tr[data-who='role:operator'] button[value=remove]")
            .await
            .unwrap();
        b.wait_for_text("p.no-rights", "No entries", WAIT)
            .await
            .unwrap();
        let view = group_rights(&admin, lyon).await;
        assert!(view.lists.iter().all(|(_, e)| e.is_empty()), "{view:?}");

        // Virtual servers: a bad name refused; one made with its token shown, disabled,
        // enabled, and deleted once confirmed.
        b.click("header nav a[href='/vservers']").await.unwrap();
        b.wait_for_text("h1", "Virtual servers", WAIT)
            .await
            .unwrap();
        b.fill("form.create input[name=name]", "north/south")
            .await
            .unwrap();
        b.click("form.create button").await.unwrap();
        b.wait_for_text("p.error", "'/'", WAIT).await.unwrap();
        assert!(tenants(&admin).await.is_empty(), "nothing made");
        b.fill("form.create input[name=name]", "tenant-b")
            .await
            .unwrap();
        b.click("form.create select[name=group] option[value='Managed devices/Lyon']")
            .await
            .unwrap();
        b.click("form.create button").await.unwrap();
        let row = "tr[data-vserver='tenant-b']";
        let token = b
            .wait_for_text(&format!("{row} td.token"), "", WAIT)
            .await
            .unwrap();
        let made = tenants(&admin).await;
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(made[0].group, "Managed devices/Lyon");
        assert!(!token.is_empty());
        assert_eq!(token, made[0].enrollment_token.0);
        b.click(&format!("{row} button[value=disable]"))
            .await
            .unwrap();
        b.wait_for_text(&format!("{row} td.enabled"), "no", WAIT)
            .await
            .unwrap();
        assert!(!tenants(&admin).await[0].enabled);
        b.click(&format!("{row} button[value=enable]"))
            .await
            .unwrap();
        b.wait_for_text(&format!("{row} td.enabled"), "yes", WAIT)
            .await
            .unwrap();
        assert!(tenants(&admin).await[0].enabled);
        b.click(&format!("{row} a.delete")).await.unwrap();
        b.wait_for_text("h1", "Delete virtual server", WAIT)
            .await
            .unwrap();
        assert_eq!(tenants(&admin).await.len(), 1, "asking deletes nothing");
        b.click("button[value=delete]").await.unwrap();
        b.wait_for_text("h1", "Virtual servers", WAIT)
            .await
            .unwrap();
        b.wait_gone(row, WAIT).await.unwrap();
        assert!(tenants(&admin).await.is_empty());

        // Notifications: plain http refused; a webhook to an HTTPS receiver on loopback
        // added (its secret never shown), tested, removed.
        let hook = https::HookReceiver::start(&d.certs, "hook-receiver", HOOK_SECRET).await;
        let ca = std::fs::read_to_string(d.certs.join("ca.pem")).unwrap();
        b.click("header nav a[href='/notifications']")
            .await
            .unwrap();
        b.wait_for_text("h1", "Notifications", WAIT).await.unwrap();
        b.fill("form.add input[name=name]", "ops-hook")
            .await
            .unwrap();
        b.fill(
            "form.add input[name=url]",
            &format!("http://{}/console", hook.addr),
        )
        .await
        .unwrap();
        b.fill("form.add input[name=secret]", HOOK_SECRET)
            .await
            .unwrap();
        b.click("form.add button").await.unwrap();
        b.wait_for_text("p.error", "https", WAIT).await.unwrap();
        assert!(channels(&admin).await.is_empty(), "nothing added");
        assert!(!b.source().await.unwrap().contains(HOOK_SECRET));
        let url = format!("https://{}/console", hook.addr);
        b.fill("form.add input[name=url]", &url).await.unwrap();
        b.fill("form.add input[name=secret]", HOOK_SECRET)
            .await
            .unwrap();
        b.fill("form.add textarea[name=ca_pem]", &ca).await.unwrap();
        b.click("form.add button").await.unwrap();
        let row = "tr[data-channel='ops-hook']";
        b.wait_for_text(&format!("{row} td.target"), &url, WAIT)
            .await
            .unwrap();
        assert!(!b.source().await.unwrap().contains(HOOK_SECRET));
        let added = channels(&admin).await;
        assert_eq!(added.len(), 1, "{added:?}");
        assert_eq!(added[0].target.describe(), url);
        b.click(&format!("{row} button[value=test]")).await.unwrap();
        b.wait_for_text("p.notice", "accepted", WAIT).await.unwrap();
        let delivered = hook.accepted();
        assert!(
            delivered
                .iter()
                .any(|h| h.signature_ok && h.path == "/console"),
            "{delivered:?}"
        );
        b.click(&format!("{row} button[value=remove]"))
            .await
            .unwrap();
        b.wait_gone(row, WAIT).await.unwrap();
        assert!(channels(&admin).await.is_empty());

        // A secondary: a certificate that is none refused; one issued by the deployment's
        // CA registered, then removed once confirmed.
        let issued =
            canopy::net::pki::issue_server(&d.certs, "branch-2", &["127.0.0.1".into()], 30)
                .unwrap();
        let cert = std::fs::read_to_string(&issued.cert).unwrap();
        b.click("header nav a[href='/servers']").await.unwrap();
        b.wait_for_text("h1", "Administration Servers", WAIT)
            .await
            .unwrap();
        let servers = server_paths(&admin).await;
        b.fill("form.add input[name=name]", "branch-2")
            .await
            .unwrap();
        b.fill("form.add textarea[name=cert_pem]", "not a certificate")
            .await
            .unwrap();
        b.click("form.add button").await.unwrap();
        b.wait_for_text("p.error", "", WAIT).await.unwrap();
        assert_eq!(server_paths(&admin).await, servers, "nothing added");
        b.fill("form.add textarea[name=cert_pem]", &cert)
            .await
            .unwrap();
        b.click("form.add button").await.unwrap();
        let row = "tr[data-server='primary/branch-2']";
        b.wait_for_text(row, "branch-2", WAIT).await.unwrap();
        assert!(
            server_paths(&admin)
                .await
                .contains(&"primary/branch-2".to_string())
        );
        b.click(&format!("{row} a.remove")).await.unwrap();
        b.wait_for_text("h1", "Remove secondary", WAIT)
            .await
            .unwrap();
        b.click("button[value=remove]").await.unwrap();
        b.wait_for_text("h1", "Administration Servers", WAIT)
            .await
            .unwrap();
        b.wait_gone(row, WAIT).await.unwrap();
        assert_eq!(server_paths(&admin).await, servers);

        // Forms need the session's CSRF token: without it nothing is done.
        let mut raw = rest::Rest::new(primary.web_addr().unwrap(), "primary", &d.ca().unwrap());
        assert_eq!(raw_login(&mut raw, ADMIN_USER, ADMIN_PASSWORD).await, 303);
        for (path, body) in [
            (
                "/accounts/create",
                "name=mallory&password=mallory-password-1&role=administrator",
            ),
            ("/groups/create", "parent=Managed+devices&name=Rogue"),
            ("/vservers/create", "name=rogue&group=Managed+devices"),
        ] {
            let refused = raw.raw("POST", path, FORM, body.as_bytes()).await;
            assert_eq!(refused.status, 403, "{path}");
            assert!(String::from_utf8_lossy(&refused.body).contains("CSRF"));
        }
        assert!(!accounts(&admin).await.iter().any(|a| a.name == "mallory"));
        assert!(
            !group_paths(&admin)
                .await
                .contains(&"Managed devices/Rogue".to_string())
        );
        assert!(tenants(&admin).await.is_empty());

        // A tenant's administrator gets the API's answers, refusals as error pages with its
        // words: its own server only, no secondaries of its own, no notification channels.
        let mut admin = admin;
        common::create_vserver(&admin, "tenant-c", "Managed devices").await;
        admin.forward_to(Some("tenant-c".into()));
        let boss = AdminRequest::AccountCreate {
            name: "boss".into(),
            password: canopy::wire::msg::Secret("tenant-password-1".into()),
            role: Role::Administrator,
        };
        admin.call(boss).await.unwrap();
        admin.forward_to(None);
        let mut tenant = rest::Rest::new(primary.web_addr().unwrap(), "primary", &d.ca().unwrap());
        let form = "user=boss&password=tenant-password-1&virtual_server=tenant-c";
        let login = tenant.raw("POST", "/login", FORM, form.as_bytes()).await;
        assert_eq!(login.status, 303);
        tenant.cookie = Some(
            login
                .header("set-cookie")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string(),
        );
        let servers = tenant.raw("GET", "/servers", None, &[]).await;
        assert_eq!(servers.status, 200);
        let page = String::from_utf8_lossy(&servers.body).to_string();
        assert!(page.contains("data-server=\"tenant-c\""), "{page}");
        assert!(!page.contains("branch-1"), "{page}");
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let body = format!("csrf={csrf}&name=branch-9&group=Managed+devices&cert_pem=x");
        let refused = tenant
            .raw("POST", "/servers/add", FORM, body.as_bytes())
            .await;
        assert_eq!(refused.status, 403);
        assert!(
            String::from_utf8_lossy(&refused.body).contains("no secondaries of its own"),
            "{}",
            String::from_utf8_lossy(&refused.body)
        );
        let refused = tenant.raw("GET", "/notifications", None, &[]).await;
        assert_eq!(refused.status, 400);
        assert!(String::from_utf8_lossy(&refused.body).contains("sends no notifications"));

        b.close().await.unwrap();
        drop(admin);
        primary.shutdown().await.unwrap();
        branch.shutdown().await.unwrap();
    })
    .await
    .expect("the console administration test finished in time");
}

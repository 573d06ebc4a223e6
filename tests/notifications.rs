//! Notifications by email and webhook, against a real SMTP receiver with STARTTLS and a real
//! HTTPS receiver on 127.0.0.1: what arrives for each notification setting of a task, a
//! failing receiver retried in order, events pending across a restart, the `canopy notify`
//! commands through the binary, and bad configs refused at start.

mod common;
#[path = "common/https.rs"]
mod https;
#[path = "common/smtp.rs"]
mod smtp;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{Deployment, config_text, start};
use canopy::model::Role;
use canopy::model::task::{DeviceState, Notify};
use canopy::server::RunningServer;
use canopy::wire::msg::{AdminRequest, AdminResponse, NotifyChannelView, NotifyRequest, Secret};
use common::{LIMIT, create_task, group_scope, results, simulate_spec, start_task, until};
use https::HookReceiver;
use smtp::SmtpReceiver;

const TOKEN: &str = "notify-tests-token-0123456789";
const SECRET: &str = "the webhook's shared secret 7f3a";

/// A primary enrolling devices with [`TOKEN`], with `notify` appended to its config.
async fn primary(d: &Deployment, notify: &str) -> RunningServer {
    if !d.certs.join("primary.pem").exists() {
        canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    }
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n{notify}",
        config_text("primary", 0, None)
    );
    let config = d.write_config("primary", &text).await.unwrap();
    start(&config).await.unwrap()
}

/// `[notify]` with an email channel through `smtp` and a webhook to `hook`, as given.
fn notify_config(d: &Deployment, smtp: Option<SocketAddr>, hook: Option<SocketAddr>) -> String {
    std::fs::write(d.dir.join("hook.secret"), format!("{SECRET}\n")).unwrap();
    let mut text = String::new();
    if let Some(addr) = smtp {
        text.push_str(&format!(
            "\n[notify.smtp]\nserver = \"{addr}\"\nfrom = \"canopy@primary.test\"\n\
             ca_file = \"certs/ca.pem\"\n\n[[notify.email]]\nname = \"ops-mail\"\n\
             to = [\"ops@example.test\", \"oncall@example.test\"]\n"
        ));
    }
    if let Some(addr) = hook {
        text.push_str(&format!(
            "\n[[notify.webhook]]\nname = \"ops-hook\"\nurl = \"https://{addr}/canopy\"\n\
             secret_file = \"hook.secret\"\nca_file = \"certs/ca.pem\"\n"
        ));
    }
    text
}

/// A task of simulated runs of 200 ms on every managed device, notifying as `notify` says.
async fn task(admin: &AdminClient, name: &str, notify: Notify, weights: [u32; 3]) {
    let mut spec = simulate_spec(name, group_scope("Managed devices", true), 200, weights);
    spec.notify = notify;
    create_task(admin, spec).await;
}

/// What one notification says: its kind, and for a device result the device and state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Told {
    kind: String,
    device: Option<(String, String)>,
}

/// Reads a device result's or run end's message of task `task`.
fn told(kind: &str, message: &str, task: &str) -> Option<Told> {
    let rest = message.strip_prefix(&format!("task {task:?} run "))?;
    let device = match kind {
        "device-result" => {
            let (_, after) = rest.split_once(" on ")?;
            let (device, state) = after.split_once(": ")?;
            let state = state.split(" (").next().unwrap_or_default();
            Some((device.to_string(), state.to_string()))
        }
        _ => None,
    };
    Some(Told {
        kind: kind.to_string(),
        device,
    })
}

/// What a run of `task` should be told: its records as the setting picks them, and its end.
async fn expected(admin: &AdminClient, task: &str, notify: Notify) -> BTreeSet<Told> {
    let mut want: BTreeSet<Told> = results(admin, task)
        .await
        .into_iter()
        .filter(|r| match notify {
            Notify::All => true,
            Notify::ErrorsOnly => matches!(r.state, DeviceState::Failed | DeviceState::Warning),
            Notify::Off => false,
        })
        .map(|r| Told {
            kind: "device-result".into(),
            device: Some((r.device_name, r.state.as_str().to_string())),
        })
        .collect();
    want.insert(Told {
        kind: "run-finished".into(),
        device: None,
    });
    want
}

/// What the webhook told of `task`, in arrival order.
fn hook_told(hook: &HookReceiver, task: &str) -> Vec<Told> {
    hook.events()
        .iter()
        .filter_map(|e| told(e["kind"].as_str()?, e["message"].as_str()?, task))
        .collect()
}

/// What the emails told of `task`: one line per event, `time  path  severity  kind  message`.
fn mail_told(smtp: &SmtpReceiver, task: &str) -> Vec<Told> {
    let mut out = Vec::new();
    for mail in smtp.mails() {
        for line in mail.body().lines() {
            let fields: Vec<&str> = line.splitn(5, "  ").collect();
            if let [_, "primary", _, kind, message] = fields[..]
                && let Some(t) = told(kind, message, task)
            {
                out.push(t);
            }
        }
    }
    out
}

/// Every seq the webhook accepted, in arrival order: strictly increasing, so none twice.
fn assert_in_order_once(hook: &HookReceiver) {
    let seqs: Vec<u64> = hook
        .events()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs not strictly increasing: {seqs:?}"
    );
    for d in hook.accepted() {
        assert!(d.signature_ok, "{d:?}");
        let first = d.body["events"][0]["seq"].as_u64().unwrap();
        assert_eq!(d.id, format!("ops-hook-{first}"));
        assert_eq!(d.path, "/canopy");
        assert_eq!(d.body["server"], "primary");
        assert_eq!(d.body["channel"], "ops-hook");
    }
}

fn sorted(told: Vec<Told>) -> Vec<Told> {
    let mut told = told;
    told.sort();
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_setting_reaches_email_and_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let smtp = SmtpReceiver::start(&d.certs, "mail-receiver").await;
    let hook = HookReceiver::start(&d.certs, "hook-receiver", SECRET).await;
    let config = notify_config(&d, Some(smtp.addr), Some(hook.addr));
    let server = primary(&d, &config).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let _fleet = common::fleet(&d, server.local_addr(), TOKEN, 20, 7).await;
    for (name, notify) in [
        ("All results", Notify::All),
        ("Errors only", Notify::ErrorsOnly),
        ("Off", Notify::Off),
    ] {
        task(&admin, name, notify, [1, 1, 1]).await;
        start_task(&admin, name, None).await;
        common::wait_finished(&admin, name).await;
        let finished = Instant::now();
        let want = expected(&admin, name, notify).await;
        let states: BTreeSet<String> = results(&admin, name)
            .await
            .iter()
            .map(|r| r.state.as_str().to_string())
            .collect();
        assert!(
            states.contains("succeeded") && states.len() > 1,
            "{name}: a run of 20 devices with successes and failures: {states:?}"
        );
        let mut hook_latency = None;
        let mut mail_latency = None;
        until(&format!("{name}: every notification"), || {
            let (hooked, mailed) = (hook_told(&hook, name), mail_told(&smtp, name));
            let end = |t: &Vec<Told>| t.iter().any(|t| t.kind == "run-finished");
            if hook_latency.is_none() && end(&hooked) {
                hook_latency = Some(finished.elapsed());
            }
            if mail_latency.is_none() && end(&mailed) {
                mail_latency = Some(finished.elapsed());
            }
            let done = hooked.len() >= want.len() && mailed.len() >= want.len();
            async move { done }
        })
        .await;
        // Nothing more comes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let hooked = hook_told(&hook, name);
        let mailed = mail_told(&smtp, name);
        let want: Vec<Told> = want.into_iter().collect();
        assert_eq!(sorted(hooked.clone()), want, "{name}: webhook");
        assert_eq!(sorted(mailed), want, "{name}: email");
        assert_eq!(hooked.last().map(|t| t.kind.as_str()), Some("run-finished"));
        println!(
            "{name}: {} notifications; run finished -> run-finished event at the webhook in \
             {hook_latency:?}, by email in {mail_latency:?}",
            want.len()
        );
    }
    assert_in_order_once(&hook);
    let mails = smtp.mails();
    assert!(!mails.is_empty());
    for mail in &mails {
        assert_eq!(mail.from, "canopy@primary.test");
        assert_eq!(mail.to, ["ops@example.test", "oncall@example.test"]);
        let subject = mail.header("Subject").unwrap();
        assert!(subject.starts_with("[canopy] primary: "), "{subject}");
        let lines = mail.body().lines().count();
        assert!((1..=100).contains(&lines), "{lines} lines");
    }
    drop(admin);
    server.shutdown().await.unwrap();
}

async fn channels(admin: &AdminClient) -> Vec<NotifyChannelView> {
    let request = NotifyRequest::List {
        after: None,
        limit: 100,
    };
    match admin.call(AdminRequest::Notify(request)).await.unwrap() {
        AdminResponse::NotifyChannels { channels, .. } => channels,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_gets_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let hook = HookReceiver::start(&d.certs, "hook-receiver", SECRET).await;
    let server = primary(&d, &notify_config(&d, None, Some(hook.addr))).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let _fleet = common::fleet(&d, server.local_addr(), TOKEN, 6, 3).await;
    hook.fail_next(3);
    task(&admin, "Retried", Notify::All, [1, 1, 1]).await;
    start_task(&admin, "Retried", None).await;
    common::wait_finished(&admin, "Retried").await;
    // While it fails, its status says why and when it tries again.
    until("the channel's error in its status", || async {
        channels(&admin).await.iter().any(|c| {
            c.name == "ops-hook"
                && c.last_error.as_deref().is_some_and(|e| e.contains("500"))
                && c.next_retry.is_some()
                && c.pending > 0
        })
    })
    .await;
    let want: Vec<Told> = expected(&admin, "Retried", Notify::All)
        .await
        .into_iter()
        .collect();
    until("every event after three refusals", || {
        let n = hook_told(&hook, "Retried").len();
        let want = want.len();
        async move { n >= want }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = hook.all();
    assert!(all[..3].iter().all(|d| !d.accepted), "{all:#?}");
    // The same batch was sent again each time, then accepted.
    assert!(
        all[..4]
            .iter()
            .all(|d| d.id == all[0].id && d.body == all[0].body)
    );
    assert!(all[3].accepted);
    assert_eq!(sorted(hook_told(&hook, "Retried")), want);
    assert_in_order_once(&hook);
    let status = channels(&admin).await;
    let c = status.iter().find(|c| c.name == "ops-hook").unwrap();
    assert_eq!((c.last_error.as_deref(), c.pending), (None, 0), "{c:?}");
    assert!(c.last_delivery.is_some());
    drop(admin);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let mut hook = HookReceiver::start(&d.certs, "hook-receiver", SECRET).await;
    let config = notify_config(&d, None, Some(hook.addr));
    let server = primary(&d, &config).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let fleet = common::fleet(&d, server.local_addr(), TOKEN, 5, 11).await;
    // Delivered before the receiver goes down.
    task(&admin, "Before", Notify::All, [1, 0, 1]).await;
    start_task(&admin, "Before", None).await;
    common::wait_finished(&admin, "Before").await;
    let before: Vec<Told> = expected(&admin, "Before", Notify::All)
        .await
        .into_iter()
        .collect();
    until("the first run's notifications", || {
        let n = hook_told(&hook, "Before").len();
        let before = before.len();
        async move { n >= before }
    })
    .await;
    hook.down().await;
    task(&admin, "Pending", Notify::All, [1, 0, 1]).await;
    start_task(&admin, "Pending", None).await;
    common::wait_finished(&admin, "Pending").await;
    let pending: Vec<Told> = expected(&admin, "Pending", Notify::All)
        .await
        .into_iter()
        .collect();
    until("the channel failing", || async {
        channels(&admin)
            .await
            .iter()
            .any(|c| c.name == "ops-hook" && c.last_error.is_some())
    })
    .await;
    drop(fleet);
    drop(admin);
    server.shutdown().await.unwrap();

    let server = primary(&d, &config).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let status = channels(&admin).await;
    let c = status.iter().find(|c| c.name == "ops-hook").unwrap();
    assert!(
        c.behind > 0,
        "the pending events are still ahead of its cursor: {c:?}"
    );
    hook.up().await;
    until("the pending notifications after the restart", || {
        let n = hook_told(&hook, "Pending").len();
        let pending = pending.len();
        async move { n >= pending }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sorted(hook_told(&hook, "Before")), before);
    assert_eq!(sorted(hook_told(&hook, "Pending")), pending);
    assert_in_order_once(&hook);
    drop(admin);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_commands_through_the_binary() {
    use common::binary::{canopy, login, stderr};
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let smtp = SmtpReceiver::start(&d.certs, "mail-receiver").await;
    let hook = HookReceiver::start(&d.certs, "hook-receiver", "a secret typed by the admin").await;
    let server = primary(&d, &notify_config(&d, Some(smtp.addr), None)).await;
    let addr = server.local_addr().to_string();
    let session = d.dir.join("session.toml");
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("cli.secret");
    std::fs::write(&secret_file, "a secret typed by the admin\n").unwrap();
    let secret_arg = secret_file.to_str().unwrap().to_string();
    let url = format!("https://{}/cli", hook.addr);
    let run = |args: Vec<&str>| {
        let (dir, session) = (d.dir.clone(), session.clone());
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                canopy(&dir, &session, &args, None)
            })
            .await
            .unwrap()
        }
    };
    let dir_path = d.dir.clone();
    let (s, a) = (session.clone(), addr.clone());
    let out = tokio::task::spawn_blocking(move || login(&dir_path, &s, &a, &[]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let add = vec![
        "notify",
        "add-webhook",
        "cli-hook",
        "--url",
        &url,
        "--secret-file",
        &secret_arg,
        "--ca-file",
        "certs/ca.pem",
    ];
    let out = run(add.clone()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli-hook added"));
    let out = run(add).await;
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    let plain = vec![
        "notify",
        "add-webhook",
        "plain",
        "--url",
        "http://127.0.0.1:1/",
        "--secret-file",
        &secret_arg,
    ];
    let out = run(plain).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--url") && stderr(&out).contains("https://"),
        "{}",
        stderr(&out)
    );
    let out = run(vec![
        "notify",
        "add-email",
        "cli-mail",
        "--to",
        "admin@example.test",
        "--min-severity",
        "warning",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));

    let out = run(vec!["notify", "list"]).await;
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    for expected in [
        "cli-hook",
        "webhook",
        url.as_str(),
        "cli-mail",
        "admin@example.test",
        "device-result,run-finished >= warning",
        "ops-mail",
        "config",
        "admin",
    ] {
        assert!(list.contains(expected), "{expected:?} not in\n{list}");
    }
    assert!(!list.contains("a secret typed"), "{list}");
    let out = run(vec!["notify", "list", "--json"]).await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("a secret typed"));

    let out = run(vec!["notify", "test", "cli-hook"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let tested = hook.accepted();
    assert_eq!(tested.len(), 1);
    assert!(
        tested[0].signature_ok && tested[0].body["test"] == true,
        "{tested:?}"
    );
    assert!(tested[0].id.starts_with("cli-hook-test-"));
    let out = run(vec!["notify", "test", "cli-mail"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]
            .header("Subject")
            .unwrap()
            .contains("test of notification channel cli-mail")
    );
    assert_eq!(mails[0].to, ["admin@example.test"]);

    let out = run(vec!["notify", "remove", "ops-mail"]).await;
    assert!(stderr(&out).contains("config"), "{}", stderr(&out));
    let out = run(vec!["notify", "remove", "cli-hook"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(vec!["notify", "list"]).await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("cli-hook"));
    let out = run(vec!["notify", "test", "cli-hook"]).await;
    assert!(
        stderr(&out).contains("no notification channel"),
        "{}",
        stderr(&out)
    );

    // An operator may not.
    let admin = d.admin(server.local_addr()).await.unwrap();
    let create = AdminRequest::AccountCreate {
        name: "op".into(),
        password: Secret("an operator's password".into()),
        role: Role::Operator,
    };
    admin.call(create).await.unwrap();
    let op_session = d.dir.join("op-session.toml");
    let (dir_path, s, a) = (d.dir.clone(), op_session.clone(), addr.clone());
    let out = tokio::task::spawn_blocking(move || {
        let args = [
            "login",
            "--server",
            &a,
            "--ca",
            "certs/ca.pem",
            "--user",
            "op",
            "--password-stdin",
        ];
        canopy(&dir_path, &s, &args, Some("an operator's password\n"))
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (dir_path, s) = (d.dir.clone(), op_session.clone());
    let out = tokio::task::spawn_blocking(move || canopy(&dir_path, &s, &["notify", "list"], None))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("operator may not notify list"),
        "{}",
        stderr(&out)
    );

    drop(admin);
    server.shutdown().await.unwrap();
    // The secret is sealed in the database, never in clear in a file of the deployment.
    common::assert_in_no_file(&d.dir, "a secret typed by the admin", &[]);
}

/// `canopy serve --config FILE` with a config that must be refused: its error.
fn refused_at_start(d: &Deployment, name: &str, notify: &str) -> String {
    let text = format!("{}\n{notify}", config_text("primary", 0, None));
    let path = d.dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .current_dir(&d.dir)
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name}: the server started with a bad config");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_notify_configs_are_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    let hook = |url: &str, secret: &str| {
        format!("[[notify.webhook]]\nname = \"h\"\nurl = \"{url}\"\nsecret_file = \"{secret}\"\n")
    };
    std::fs::write(d.dir.join("present.secret"), "s\n").unwrap();
    let err = refused_at_start(&d, "plain", &hook("http://127.0.0.1:9/", "present.secret"));
    assert!(
        err.contains("`notify.webhook.url`") && err.contains("https://"),
        "{err}"
    );
    let err = refused_at_start(
        &d,
        "missing",
        &hook("https://127.0.0.1:9/", "absent.secret"),
    );
    assert!(
        err.contains("`notify.webhook.secret_file`") && err.contains("absent.secret"),
        "{err}"
    );
    let err = refused_at_start(
        &d,
        "unknown",
        "[notify.smtp]\nserver = \"127.0.0.1:25\"\nfrom = \"a@b\"\nrelay = \"x\"\n",
    );
    assert!(err.contains("unknown field `relay`"), "{err}");
}

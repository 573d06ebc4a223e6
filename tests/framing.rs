//! Framing under load: results with about 60 KiB of output on each stream come up device links
//! while the server sends cancels and orders down them, and no frame is torn. (When a frame
//! read in the link's select! lost its partial frame to the other branch, this test failed
//! most runs: the server read a length from the middle of an output and logged a protocol
//! error.)

mod common;

use std::time::Duration;

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{
    ADMIN_PASSWORD, ADMIN_USER, Deployment, config_text, parent_of, start, wait_for_tree,
};
use canopy::model::task::{Details, DeviceState, TaskPayload, TaskType};
use canopy::model::{EventKind, ServerRow, ServerStatus};
use canopy::server::RunningServer;
use canopy::wire::msg::{AdminRequest, TaskRequest};
use common::{create_task, group_scope, results, start_task, task_spec, wait_finished};

const TOKEN: &str = "framing-tests-token-0123456789";
const DEVICES: u32 = 5;
/// Bytes of each output stream per device and run: most of a command result's cap of 64 KiB
/// each, so a result spans many QUIC packets.
const OUTPUT: usize = 61_440;
const CYCLES: u64 = 50;

async fn server(d: &Deployment) -> RunningServer {
    common::enrolling_primary(d, TOKEN).await
}

/// Fails the test with the messages if the server logged a protocol error.
async fn assert_no_protocol_error(admin: &AdminClient, when: &str) {
    let events = common::events(admin).await;
    assert!(events.len() < 1000, "the event list may be cut off");
    let errors: Vec<String> = events
        .into_iter()
        .filter(|e| e.kind == EventKind::ProtocolError)
        .map(|e| e.message)
        .collect();
    assert!(errors.is_empty(), "protocol errors {when}: {errors:#?}");
}

async fn stop(admin: &AdminClient, task: &str) {
    admin
        .call(AdminRequest::Task(TaskRequest::Stop { task: task.into() }))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_survive_stops_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = server(&d).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let fleet = common::fleet(&d, addr, TOKEN, DEVICES, 11).await;

    // Prints the output, then stays running a little, so a stop finds the devices running.
    let script = format!(
        "head -c {OUTPUT} /dev/zero | tr '\\0' x; head -c {OUTPUT} /dev/zero | tr '\\0' y >&2; sleep 0.05"
    );
    let payload = TaskPayload::Command {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script],
        time_limit_secs: 20,
    };
    let spec = task_spec(
        "big output",
        TaskType::Device(payload),
        group_scope("Managed devices", true),
    );
    create_task(&admin, spec).await;

    // Each run is stopped while its devices run, and the next one starts at once: its orders
    // go down while the cancelled runs' results, with their output, come up.
    for cycle in 0..CYCLES {
        let (run, _) = start_task(&admin, "big output", None).await;
        assert_eq!(run.counters.total(), u64::from(DEVICES));
        tokio::time::sleep(Duration::from_millis(5 + cycle * 7 % 30)).await;
        stop(&admin, "big output").await;
        tokio::time::sleep(Duration::from_millis(cycle % 5)).await;
    }

    // The last run is left to finish: every device's whole output arrives.
    start_task(&admin, "big output", None).await;
    let run = wait_finished(&admin, "big output").await;
    assert_eq!(
        run.counters.count(DeviceState::Succeeded),
        u64::from(DEVICES),
        "{run:?}"
    );
    let records = results(&admin, "big output").await;
    assert_eq!(records.len(), DEVICES as usize);
    for record in &records {
        assert_eq!(
            record.state,
            DeviceState::Succeeded,
            "{}",
            record.device_name
        );
        match &record.details {
            Some(Details::Command {
                exit_code: Some(0),
                stdout,
                stderr,
                stdout_truncated: false,
                stderr_truncated: false,
            }) => {
                assert_eq!(stdout.len(), OUTPUT, "{}", record.device_name);
                assert!(stdout.bytes().all(|b| b == b'x'), "{}", record.device_name);
                assert_eq!(stderr.len(), OUTPUT, "{}", record.device_name);
                assert!(stderr.bytes().all(|b| b == b'y'), "{}", record.device_name);
            }
            other => panic!("{}: {other:?}", record.device_name),
        }
    }
    assert_no_protocol_error(&admin, "at the end").await;
    assert_eq!(fleet.counts().connected, DEVICES as usize);

    fleet.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();
}

/// Devices below the secondary whose results, with details, add up to more than 5 MiB.
const BIG_DEVICES: u32 = 44;

/// `canopy` as a process, with its own session file, in the deployment's directory.
fn canopy(d: &Deployment, session: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .current_dir(&d.dir)
        .env("CANOPY_SESSION", d.dir.join(session))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "canopy {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn login(d: &Deployment, session: &str, server: std::net::SocketAddr) {
    let server = server.to_string();
    let args = [
        "login",
        "--server",
        &server,
        "--ca",
        "certs/ca.pem",
        "--user",
        ADMIN_USER,
        "--password-stdin",
    ];
    canopy(d, session, &args, Some(&format!("{ADMIN_PASSWORD}\n")));
}

/// Every record of `canopy ... task results --details --json` has the whole output of the
/// big task; the bytes of output they hold.
fn check_big_results(json: &str) -> usize {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let records = value["records"].as_array().unwrap();
    assert_eq!(records.len(), BIG_DEVICES as usize);
    let mut bytes = 0;
    for record in records {
        let details = &record["details"]["Command"];
        let stdout = details["stdout"].as_str().unwrap();
        let stderr = details["stderr"].as_str().unwrap();
        assert_eq!(
            (stdout.len(), stderr.len()),
            (OUTPUT, OUTPUT),
            "{}",
            record["device_name"]
        );
        bytes += stdout.len() + stderr.len();
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_larger_than_a_frame_are_read_in_pages_directly_and_through_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = server(&d).await;
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
    let both_up = |rows: &[ServerRow]| {
        rows.len() == 2 && rows.iter().all(|r| r.status == ServerStatus::Active)
    };
    wait_for_tree(&admin, common::LIMIT, "the branch linked", both_up)
        .await
        .unwrap();
    let fleet = common::fleet(&d, branch.local_addr(), TOKEN, BIG_DEVICES, 5).await;

    let script = format!(
        "head -c {OUTPUT} /dev/zero | tr '\\0' x; head -c {OUTPUT} /dev/zero | tr '\\0' y >&2"
    );
    let payload = TaskPayload::Command {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script],
        time_limit_secs: 20,
    };
    let spec = task_spec(
        "big output",
        TaskType::Device(payload),
        common::tree_scope("Managed devices"),
    );
    create_task(&admin, spec).await;
    start_task(&admin, "big output", None).await;
    common::wait_tree_finished(&admin, "big output", u64::from(BIG_DEVICES)).await;

    // Through the tree: the branch's records, relayed by the primary, as drill-down and --at.
    login(&d, "primary.session", primary.local_addr());
    let results = ["task", "results", "big output", "--details", "--json"];
    let drill_down = [&results[..], &["--server", "primary/branch"]].concat();
    let bytes = check_big_results(&canopy(&d, "primary.session", &drill_down, None));
    assert!(bytes > 5 << 20, "only {bytes} bytes of output");
    let at = [&["--at", "branch"], &results[..]].concat();
    check_big_results(&canopy(&d, "primary.session", &at, None));
    // Directly at the branch.
    login(&d, "branch.session", branch.local_addr());
    check_big_results(&canopy(&d, "branch.session", &results, None));

    // The link stayed up all along.
    wait_for_tree(&admin, common::LIMIT, "the branch still linked", both_up)
        .await
        .unwrap();
    let dropped: Vec<String> = common::events(&admin)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::SecondaryDisconnected)
        .map(|e| e.message)
        .collect();
    assert!(dropped.is_empty(), "the link went down: {dropped:#?}");

    fleet.stop().await.unwrap();
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

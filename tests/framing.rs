//! Framing under load: results with about 60 KiB of output on each stream come up device links
//! while the server sends cancels and orders down them, and no frame is torn. (When a frame
//! read in the link's select! lost its partial frame to the other branch, this test failed
//! most runs: the server read a length from the middle of an output and logged a protocol
//! error.)

mod common;

use std::time::Duration;

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::Deployment;
use canopy::model::EventKind;
use canopy::model::task::{Details, DeviceState, TaskPayload, TaskType};
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

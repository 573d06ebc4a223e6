//! Logins under attack: guessing is slowed per account and per source address, and a flood of
//! logins from many addresses neither starves device results nor the administrators' requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::Deployment;
use canopy::model::EventKind;
use canopy::model::task::DeviceState;
use canopy::net::tls::{self, ClientTrust, Transport};
use canopy::wire::msg::{
    AdminCall, AdminHello, AdminRequest, AdminResponse, AdminWelcome, ErrorKind, Secret,
};
use common::{
    create_task, enrolling_primary, events, fleet, group_scope, simulate_spec, start_task,
    wait_finished,
};

/// A client that only ever tries to log in, from `source`, over `connections` connections
/// (an unauthenticated connection takes one request at a time), until `stop` is set; returns
/// how many answers it got.
async fn flood(
    ca: Vec<rustls_pki_types::CertificateDer<'static>>,
    server: SocketAddr,
    source: &str,
    connections: usize,
    stop: Arc<AtomicBool>,
) -> usize {
    let trust = ClientTrust {
        roots: ca,
        pin: None,
        expected_name: None,
    };
    let config = tls::client_config(&trust, None, tls::ALPN_ADMIN, &Transport::default()).unwrap();
    let endpoint = quinn::Endpoint::client(format!("{source}:0").parse().unwrap()).unwrap();
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..connections {
        let (endpoint, config) = (endpoint.clone(), config.clone());
        let source = source.to_string();
        let stop = stop.clone();
        set.spawn(async move {
            let connecting = endpoint
                .connect_with(config, server, "canopy-server")
                .unwrap();
            let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connecting).await
            else {
                return 0;
            };
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let hello = AdminHello {
                client_version: "flood".into(),
                virtual_server: None,
            };
            canopy::wire::write_hello(&mut send, &hello).await.unwrap();
            let _ = send.finish();
            let _: Option<AdminWelcome> =
                canopy::wire::read_frame(&mut recv, 1 << 16).await.unwrap();
            let mut answers = 0;
            let mut attempt = 0u32;
            while !stop.load(Ordering::Relaxed) {
                attempt += 1;
                let call = AdminCall {
                    token: None,
                    request: AdminRequest::Login {
                        user: format!("guess-{source}-{worker}-{attempt}"),
                        password: Secret("not the password".into()),
                    },
                    at: Vec::new(),
                };
                let Ok((mut send, mut recv)) = conn.open_bi().await else {
                    break;
                };
                if canopy::wire::write_frame(&mut send, &call).await.is_err() {
                    break;
                }
                let _ = send.finish();
                match canopy::wire::read_frame::<_, AdminResponse>(&mut recv, 1 << 16).await {
                    Ok(Some(_)) => answers += 1,
                    _ => break,
                }
            }
            conn.close(0u32.into(), b"done");
            answers
        });
    }
    let mut answers = 0;
    while let Some(Ok(n)) = set.join_next().await {
        answers += n;
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_starves_neither_devices_nor_administrators() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = enrolling_primary(&d, "flood-enrollment-token").await;
    let addr = primary.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let devices = fleet(&d, addr, "flood-enrollment-token", 40, 7).await;
    create_task(
        &admin,
        simulate_spec("Quick", group_scope("Managed devices", true), 0, [1, 0, 0]),
    )
    .await;

    // Eight addresses, sixteen connections guessing each, until the measurements are done.
    let stop = Arc::new(AtomicBool::new(false));
    let mut flooders = tokio::task::JoinSet::new();
    for k in 2..10 {
        let (ca, stop) = (d.ca().unwrap(), stop.clone());
        flooders.spawn(async move { flood(ca, addr, &format!("127.0.0.{k}"), 16, stop).await });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let asked = Instant::now();
        let answer = admin.call(AdminRequest::ServerStatus).await.unwrap();
        assert!(matches!(answer, AdminResponse::Status(_)), "{answer:?}");
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    start_task(&admin, "Quick", None).await;
    let run = wait_finished(&admin, "Quick").await;
    let run_took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(run.counters.count(DeviceState::Succeeded), 40, "{run:?}");
    let mut answered = 0;
    while let Some(Ok(n)) = flooders.join_next().await {
        answered += n;
    }
    eprintln!(
        "during the flood: slowest server status {slowest:?}, a run on 40 devices {run_took:?}, \
         {answered} login attempts answered"
    );
    assert!(
        slowest < Duration::from_millis(1000),
        "server status took {slowest:?} during a login flood"
    );
    assert!(
        run_took < Duration::from_secs(5),
        "a run on 40 devices took {run_took:?} during a login flood"
    );
    // Only the guesses whose password was checked are in the event log: about ten an address,
    // not one per attempt.
    let failures = events(&admin)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::LoginFailed)
        .count();
    assert!(
        failures <= 8 * 15,
        "{failures} login-failure events for {answered} attempts"
    );

    devices.stop().await.unwrap();
    admin.close().await;
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_an_account_s_password_is_slowed_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = canopy::cli::deployment::start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let addr = primary.local_addr();
    let mut guesser = AdminClient::connect(addr, d.ca().unwrap()).await.unwrap();
    let mut refusals = Vec::new();
    for _ in 0..8 {
        match guesser.login("admin", "a wrong guess").await {
            Err(ClientError::Server { kind, message }) => refusals.push((kind, message)),
            other => panic!("a wrong password was accepted: {other:?}"),
        }
    }
    assert!(
        refusals
            .iter()
            .all(|(k, _)| *k == ErrorKind::Unauthenticated)
    );
    let locked: Vec<_> = refusals
        .iter()
        .filter(|(_, m)| m.contains("too many failed logins"))
        .collect();
    assert!(
        locked.len() >= 3,
        "no lock-out after 8 wrong passwords: {refusals:#?}"
    );
    // Even the right password waits out the lock-out: the guesser cannot tell it apart.
    let err = guesser
        .login("admin", canopy::cli::deployment::ADMIN_PASSWORD)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too many failed logins"), "{err}");
    guesser.close().await;
    primary.shutdown().await.unwrap();
}

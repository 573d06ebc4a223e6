//! The tree of servers over real QUIC with real certificates and real redb files: links,
//! healing, refusals, and what survives a restart.

use std::time::Duration;

mod common;

use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::{
    Deployment, config_text, free_port, parent_of, start, wait_for_tree,
};
use canopy::model::{EventKind, Fingerprint, Role, ServerStatus};
use canopy::net::pki;
use canopy::net::tls::{self, ClientTrust, Transport};
use canopy::wire::frame::hello_bytes_with_version;
use canopy::wire::msg::{AdminRequest, AdminResponse, ChildHello, ErrorKind, Secret};
use canopy::wire::{PROTOCOL_VERSION, close};
use common::{LIMIT, events, status_of, wait_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_level_tree_heals_after_the_middle_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let middle_config = d
        .add_server("branch-1", free_port().unwrap(), Some(parent_of(&primary)))
        .await
        .unwrap();

    let admin = d.admin(primary.local_addr()).await.unwrap();
    let missing = d
        .register(primary.local_addr(), "branch-1", "Managed devices/Europe")
        .await;
    assert!(
        missing.unwrap_err().to_string().contains("no group"),
        "a group must exist to place a secondary in it"
    );
    let create = AdminRequest::Group(canopy::wire::msg::GroupRequest::Create {
        path: "Managed devices/Europe".into(),
    });
    admin.call(create).await.unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices/Europe")
        .await
        .unwrap();
    let middle = start(&middle_config).await.unwrap();
    let bottom_config = d
        .add_server("branch-1a", 0, Some(parent_of(&middle)))
        .await
        .unwrap();
    d.register(middle.local_addr(), "branch-1a", "Managed devices")
        .await
        .unwrap();
    let bottom = start(&bottom_config).await.unwrap();

    let rows = wait_for_tree(&admin, LIMIT, "both links up", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let shape: Vec<_> = rows
        .iter()
        .map(|r| (r.path.as_str(), r.depth, r.group.as_str()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("primary", 0, ""),
            ("primary/branch-1", 1, "Managed devices/Europe"),
            ("primary/branch-1/branch-1a", 2, "Managed devices"),
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.version == canopy::wire::SOFTWARE_VERSION && r.last_connected.is_some())
    );

    // Stopping the middle server: it is Inactive at the primary, the bottom one unreachable.
    middle.shutdown().await.unwrap();
    wait_for_tree(
        &admin,
        LIMIT,
        "middle inactive, bottom unreachable",
        |rows| {
            status_of(rows, "primary/branch-1") == Some(ServerStatus::Inactive)
                && status_of(rows, "primary/branch-1/branch-1a") == Some(ServerStatus::Unreachable)
        },
    )
    .await
    .unwrap();
    wait_event(
        &admin,
        EventKind::SecondaryDisconnected,
        "branch-1 interrupted",
    )
    .await;

    // Restarting it on the same data file brings both back without any action.
    let middle = start(&middle_config).await.unwrap();
    wait_for_tree(&admin, LIMIT, "both links up again", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let connected = events(&admin)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::SecondaryConnected && e.message.contains("branch-1 "))
        .count();
    assert_eq!(
        connected, 2,
        "branch-1 connected once before and once after its restart"
    );
    let deadline = tokio::time::Instant::now() + LIMIT;
    while bottom.node.parent_link().unwrap().health != "Up" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bottom's link never came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    admin.close().await;
    bottom.shutdown().await.unwrap();
    middle.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_peers_get_the_right_error_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let addr = primary.local_addr();
    let admin = d.admin(addr).await.unwrap();

    // An unregistered secondary: refused, and it says so in its own link state.
    let stranger = start(
        &d.add_server("stranger", 0, Some(parent_of(&primary)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    wait_event(&admin, EventKind::SecondaryRefused, "not registered").await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !stranger
        .node
        .parent_link()
        .and_then(|l| l.last_error)
        .is_some_and(|e| e.contains("not registered"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            stranger.node.parent_link()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stranger.shutdown().await.unwrap();

    // A certificate from another CA: the TLS handshake completes, the link is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Deployment::create(other_dir.path()).unwrap();
    pki::issue_server(&other.certs, "rogue", &[], 30).unwrap();
    let rogue = (
        pki::load_certs(&other.certs.join("rogue.pem")).unwrap(),
        pki::load_key(&other.certs.join("rogue.key")).unwrap(),
    );
    let code = fed_close_code(&d, addr, rogue, None).await;
    assert_eq!(code, close::UNTRUSTED as u64);
    wait_event(
        &admin,
        EventKind::SecondaryRefused,
        "not issued by the deployment CA",
    )
    .await;

    // A registered secondary speaking another protocol version.
    pki::issue_server(&d.certs, "future", &[], 30).unwrap();
    d.register(addr, "future", "Managed devices").await.unwrap();
    let future = (
        pki::load_certs(&d.certs.join("future.pem")).unwrap(),
        pki::load_key(&d.certs.join("future.key")).unwrap(),
    );
    let hello = ChildHello {
        name: "future".into(),
        software_version: "9.0.0".into(),
        instance_id: "00000000000000ff".into(),
        last_applied: 0,
        parent_epoch: 0,
        epoch: 1,
    };
    let bytes = hello_bytes_with_version(PROTOCOL_VERSION + 1, &hello);
    let code = fed_close_code(&d, addr, future, Some(bytes)).await;
    assert_eq!(code, close::VERSION_MISMATCH as u64);
    wait_event(
        &admin,
        EventKind::SecondaryRefused,
        "protocol version mismatch",
    )
    .await;

    // Garbage instead of a hello, and an oversized frame after a good hello, on the admin port.
    let garbage = [0u8, 0, 0, 8, b'G', b'E', b'T', b' ', b'/', b' ', b'H', b'T'];
    assert_eq!(
        admin_close_code(&d, addr, &garbage, false).await,
        close::PROTOCOL as u64
    );
    wait_event(&admin, EventKind::ProtocolError, "not a Canopy hello").await;
    let oversized = (10u32 * 1024 * 1024).to_be_bytes();
    assert_eq!(
        admin_close_code(&d, addr, &oversized, true).await,
        close::FRAME_TOO_LARGE as u64
    );
    wait_event(&admin, EventKind::ProtocolError, "over the limit").await;
    let malformed = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
    assert_eq!(
        admin_close_code(&d, addr, &malformed, true).await,
        close::PROTOCOL as u64
    );

    // A wrong administrator password.
    let mut client = AdminClient::connect(addr, d.ca().unwrap()).await.unwrap();
    let err = client.login("admin", "not the password").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                kind: ErrorKind::Unauthenticated,
                ..
            }
        ),
        "{err}"
    );
    let err = client.servers().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                kind: ErrorKind::Unauthenticated,
                ..
            }
        ),
        "{err}"
    );
    client.set_token(Secret("forged".into()));
    assert!(client.servers().await.is_err());
    client.close().await;
    wait_event(&admin, EventKind::LoginFailed, "\"admin\"").await;

    // After all that, a valid secondary still links and a valid administrator is served.
    let good = d
        .add_server("branch-ok", 0, Some(parent_of(&primary)))
        .await
        .unwrap();
    d.register(addr, "branch-ok", "Managed devices")
        .await
        .unwrap();
    let good = start(&good).await.unwrap();
    let fresh = d.admin(addr).await.unwrap();
    wait_for_tree(&fresh, LIMIT, "the valid secondary active", |rows| {
        status_of(rows, "primary/branch-ok") == Some(ServerStatus::Active)
    })
    .await
    .unwrap();
    fresh.close().await;
    admin.close().await;
    good.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// Connects as a secondary with `identity`, sends `hello` (or nothing), and returns the code
/// the server closed the connection with.
async fn fed_close_code(
    d: &Deployment,
    addr: std::net::SocketAddr,
    identity: (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
    hello: Option<Vec<u8>>,
) -> u64 {
    let trust = ClientTrust {
        roots: d.ca().unwrap(),
        pin: None,
        expected_name: None,
    };
    let config =
        tls::client_config(&trust, Some(identity), tls::ALPN_FED, &Transport::default()).unwrap();
    raw_close_code(config, addr, hello.as_deref(), false).await
}

async fn admin_close_code(
    d: &Deployment,
    addr: std::net::SocketAddr,
    bytes: &[u8],
    after_hello: bool,
) -> u64 {
    let trust = ClientTrust {
        roots: d.ca().unwrap(),
        pin: None,
        expected_name: None,
    };
    let config = tls::client_config(&trust, None, tls::ALPN_ADMIN, &Transport::default()).unwrap();
    raw_close_code(config, addr, Some(bytes), after_hello).await
}

async fn raw_close_code(
    config: quinn::ClientConfig,
    addr: std::net::SocketAddr,
    bytes: Option<&[u8]>,
    after_admin_hello: bool,
) -> u64 {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(config, addr, "canopy-server")
        .unwrap()
        .await
        .unwrap();
    if after_admin_hello {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let hello = canopy::wire::msg::AdminHello {
            client_version: "test".into(),
            virtual_server: None,
        };
        canopy::wire::write_hello(&mut send, &hello).await.unwrap();
        let _: Option<canopy::wire::msg::AdminWelcome> =
            canopy::wire::read_frame(&mut recv, 1 << 16).await.unwrap();
    }
    if let Some(bytes) = bytes {
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
    }
    let reason = tokio::time::timeout(LIMIT, conn.closed())
        .await
        .expect("server closes the connection");
    endpoint.wait_idle().await;
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
        other => panic!("expected an application close, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_its_secondaries_accounts_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let config = d.add_server("primary", 0, None).await.unwrap();
    let primary = start(&config).await.unwrap();
    d.add_server("branch-1", 0, Some(parent_of(&primary)))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    let create = AdminRequest::AccountCreate {
        name: "auditor-1".into(),
        password: Secret("auditor password".into()),
        role: Role::Auditor,
    };
    admin.call(create).await.unwrap();
    let before = events(&admin).await;
    admin.close().await;
    primary.shutdown().await.unwrap();

    let primary = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    let rows = canopy::cli::deployment::tree(&admin).await.unwrap();
    assert_eq!(
        status_of(&rows, "primary/branch-1"),
        Some(ServerStatus::Inactive)
    );
    let accounts = admin.accounts().await.unwrap();
    let names: Vec<_> = accounts.iter().map(|a| (a.name.as_str(), a.role)).collect();
    assert_eq!(
        names,
        vec![("admin", Role::Administrator), ("auditor-1", Role::Auditor)]
    );
    let after = events(&admin).await;
    assert!(
        after.starts_with(&before),
        "the old events are kept, in order"
    );
    assert!(after.iter().any(|e| e.kind == EventKind::ServerStopped));
    assert_eq!(
        after
            .iter()
            .filter(|e| e.kind == EventKind::ServerStarted)
            .count(),
        2
    );

    // The auditor can log in after the restart and read, but not change the hierarchy.
    let mut auditor = AdminClient::connect(primary.local_addr(), d.ca().unwrap())
        .await
        .unwrap();
    auditor
        .login("auditor-1", "auditor password")
        .await
        .unwrap();
    assert!(auditor.servers().await.is_ok());
    let err = auditor
        .call(AdminRequest::RemoveSecondary {
            name: "branch-1".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                kind: ErrorKind::Forbidden,
                ..
            }
        ),
        "{err}"
    );
    auditor.close().await;
    admin.close().await;
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_keeps_failing_is_degraded_then_failed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    // A parent address where nobody listens, and short timers so attempts fail fast.
    let nobody = format!("127.0.0.1:{}", free_port().unwrap())
        .parse()
        .unwrap();
    let text = config_text("lonely", 0, Some((nobody, Fingerprint([7; 32]))))
        .replace("keep_alive_ms = 1000", "keep_alive_ms = 100")
        .replace("idle_timeout_ms = 5000", "idle_timeout_ms = 300")
        .replace("degraded_after = 3", "degraded_after = 2")
        .replace("failed_after = 10", "failed_after = 4");
    pki::issue_server(&d.certs, "lonely", &[], 30).unwrap();
    let config = d.write_config("lonely", &text).await.unwrap();
    let lonely = start(&config).await.unwrap();
    let admin = d.admin(lonely.local_addr()).await.unwrap();
    wait_event(&admin, EventKind::ParentLinkHealth, "Degraded after 2").await;
    wait_event(&admin, EventKind::ParentLinkHealth, "Failed after 4").await;
    let AdminResponse::Status(status) = admin.call(AdminRequest::ServerStatus).await.unwrap()
    else {
        panic!()
    };
    let parent = status.parent.unwrap();
    assert_eq!(parent.health, "Failed");
    assert!(parent.consecutive_failures >= 4);
    admin.close().await;
    lonely.shutdown().await.unwrap();
}

/// One admin frame may nest a relayed request in itself without end: about two bytes a level
/// once bred a request 100,000 levels deep that overflowed a worker's stack before the session
/// was checked. The server must refuse it and keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_request_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let addr = primary.local_addr();

    // No token, then `Forward { path: "", request: ... }` 100,000 times, then variant 3
    // (`ServerList` when it had no fields): the encoding the old request type had (variant
    // 15, an empty path). Whatever the innermost request, the nesting alone is refused.
    let mut body = vec![0u8];
    for _ in 0..100_000 {
        body.extend_from_slice(&[15, 0]);
    }
    body.push(3);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    assert_eq!(
        admin_close_code(&d, addr, &frame, true).await,
        close::PROTOCOL as u64
    );

    let admin = d.admin(addr).await.unwrap();
    let rows = admin.servers().await.unwrap();
    assert_eq!(status_of(&rows, "primary"), Some(ServerStatus::Active));
    admin.close().await;
    primary.shutdown().await.unwrap();
}

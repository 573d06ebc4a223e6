//! The server under abuse of its transport: handshakes that never complete, streams that
//! are opened and never finished, connections that never log in, and too many connections
//! from one address. Every client here is real QUIC on loopback.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::{Deployment, config_text, free_port, start};
use canopy::net::tls::{self, ClientTrust, Transport};
use canopy::wire::msg::{AdminRequest, AdminResponse};
use tokio::time::timeout;

/// A server of `d` named `name` on any port, with `extra` appended to its config.
async fn server(d: &Deployment, name: &str, extra: &str) -> canopy::server::RunningServer {
    d.add_server(name, 0, None).await.unwrap();
    let text = format!("{}\n{extra}", config_text(name, 0, None));
    let config = d.write_config(name, &text).await.unwrap();
    start(&config).await.unwrap()
}

/// Sends the first flight of `count` connections (each a real QUIC Initial, from a
/// quinn-proto client) to `server` from one UDP socket, and never anything more: each
/// connection holds a handshake on the server until the server gives up on it. The socket
/// is returned so that it stays bound.
fn silent_initials(d: &Deployment, server: SocketAddr, count: usize) -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    let trust = ClientTrust {
        roots: d.ca().unwrap(),
        pin: None,
        expected_name: None,
    };
    let config = tls::client_config(&trust, None, tls::ALPN_ADMIN, &Transport::default()).unwrap();
    let now = Instant::now();
    let mut buf = Vec::new();
    for _ in 0..count {
        let (_, mut conn) = endpoint
            .connect(now, config.clone(), server, "canopy-server")
            .unwrap();
        while let Some(transmit) = conn.poll_transmit(now, 1, &mut buf) {
            socket
                .send_to(&buf[..transmit.size], transmit.destination)
                .unwrap();
            buf.clear();
        }
    }
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_succeeds_while_silent_clients_hold_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = server(&d, "primary", "").await;
    let addr = primary.local_addr();
    let _silent = silent_initials(&d, addr, 300);
    // Let the server take every Initial in before the administrator comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let began = Instant::now();
    let admin = timeout(Duration::from_secs(10), d.admin(addr))
        .await
        .expect("the login hung")
        .expect("the login failed");
    let took = began.elapsed();
    eprintln!("login with 300 silent handshakes: {took:?}");
    assert!(took < Duration::from_secs(3), "the login took {took:?}");
    // Beyond a few dozen, the silent ones got a Retry and hold nothing; the others give up
    // after the handshake timeout, well before the idle timeout.
    let held = primary.node.handshakes_in_progress();
    assert!(held <= 64, "{held} handshakes held");
    let began = Instant::now();
    common::until("the silent handshakes abandoned", || async {
        primary.node.handshakes_in_progress() == 0
    })
    .await;
    eprintln!(
        "{held} silent handshakes abandoned after {:?} more",
        began.elapsed()
    );
    admin.close().await;
    primary.shutdown().await.unwrap();
}

struct Process(Child);

impl Process {
    fn serve(d: &Deployment, name: &str) -> Process {
        let log = std::fs::File::create(d.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .current_dir(&d.dir)
            .args(["serve", "--config", &format!("{name}.toml")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Process(child)
    }

    /// The process's resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes up to `len` bytes to `send` until `deadline`; how many the peer's flow control
/// took.
async fn write_some(send: &mut quinn::SendStream, len: usize, deadline: Instant) -> usize {
    let chunk = vec![7u8; 16 * 1024];
    let mut written = 0;
    while written < len {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = chunk.len().min(len - written);
        match timeout(left, send.write(&chunk[..n])).await {
            Ok(Ok(n)) => written += n,
            _ => break,
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_half_written_streams_do_not_grow_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let port = free_port().unwrap();
    d.add_server("primary", port, None).await.unwrap();
    let process = Process::serve(&d, "primary");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    common::until("the server answering", || async {
        d.admin(addr).await.is_ok()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = process.rss_kib();

    // After its hello an admin connection needs no credentials.
    let client = AdminClient::connect(addr, d.ca().unwrap()).await.unwrap();
    let conn = client.connection().clone();
    let (mut opened, mut written) = (0, 0);
    let mut streams = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..100 {
        let Ok(Ok((mut send, recv))) = timeout(Duration::from_millis(500), conn.open_bi()).await
        else {
            break;
        };
        opened += 1;
        // A request frame that claims 250,000 bytes (under the 256 KiB cap) and never ends.
        if timeout(
            Duration::from_secs(1),
            send.write_all(&250_000u32.to_be_bytes()),
        )
        .await
        .is_err()
        {
            break;
        }
        written += write_some(&mut send, 240_000, deadline).await;
        streams.push((send, recv));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = process.rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!(
        "streams opened: {opened}, bytes taken: {written}, server RSS {before} KiB -> {after} KiB (+{grown} KiB)"
    );
    assert!(opened <= 16, "the server let {opened} streams open");
    assert!(written <= 4 << 20, "the server took {written} bytes");
    assert!(grown < 8 * 1024, "the server grew by {grown} KiB");
    drop(streams);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connection_that_does_not_log_in_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = server(&d, "primary", "[admin]\nlogin_timeout_s = 1\n").await;
    let addr = primary.local_addr();
    let idle = AdminClient::connect(addr, d.ca().unwrap()).await.unwrap();
    let admin = d.admin(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    match idle.call(AdminRequest::ServerStatus).await {
        Err(ClientError::Closed(reason)) => assert!(reason.contains("log in"), "{reason}"),
        other => panic!("expected the connection closed, got {other:?}"),
    }
    // Logged in, the connection stays.
    let status = admin.call(AdminRequest::ServerStatus).await.unwrap();
    assert!(matches!(status, AdminResponse::Status(_)), "{status:?}");
    admin.close().await;
    primary.shutdown().await.unwrap();
}

/// The reason the server gave for closing a connection attempt, or a panic if it connected.
async fn refusal(addr: SocketAddr, d: &Deployment) -> String {
    match AdminClient::connect(addr, d.ca().unwrap()).await {
        Err(ClientError::Closed(reason)) => reason,
        Err(other) => panic!("refused without a reason: {other}"),
        Ok(_) => panic!("connected beyond the limit"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_address_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let per_address = server(&d, "primary", "[limits]\nmax_connections_per_address = 3\n").await;
    let addr = per_address.local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(AdminClient::connect(addr, d.ca().unwrap()).await.unwrap());
    }
    let reason = refusal(addr, &d).await;
    assert!(
        reason.contains("too many connections from 127.0.0.1"),
        "{reason}"
    );
    // A connection that ends makes room for the next.
    held.pop().unwrap().close().await;
    let again = timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(c) = AdminClient::connect(addr, d.ca().unwrap()).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("no room after a connection ended");
    held.push(again);

    let total = server(&d, "other", "[limits]\nmax_connections = 2\n").await;
    let mut more = Vec::new();
    for _ in 0..2 {
        more.push(
            AdminClient::connect(total.local_addr(), d.ca().unwrap())
                .await
                .unwrap(),
        );
    }
    let reason = refusal(total.local_addr(), &d).await;
    assert!(reason.contains("too many connections"), "{reason}");
    for c in held.into_iter().chain(more) {
        c.close().await;
    }
    per_address.shutdown().await.unwrap();
    total.shutdown().await.unwrap();
}

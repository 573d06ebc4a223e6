//! A device agent written by hand: it speaks the device link frame by frame, so a test can
//! make it misbehave (never read, send what a real agent would not).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use canopy::cli::deployment::Deployment;
use canopy::model::device::DeviceFacts;
use canopy::net::tls::{self, ClientTrust, Transport};
use canopy::wire::msg::{AgentHello, AgentToServer, ServerToAgent};
use canopy::wire::{self, FrameReader};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::LIMIT;

/// A device's identity, kept so that it can connect again as the same device.
pub struct RawIdentity {
    pub device_id: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl RawIdentity {
    /// A new key, and a device id made of `name` (in hex, as device ids are).
    pub fn new(name: &str) -> RawIdentity {
        let device_id: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        let (cert, key) = canopy::net::pki::self_signed_device(name).unwrap();
        RawIdentity {
            device_id,
            cert,
            key,
        }
    }
}

pub fn facts(name: &str) -> DeviceFacts {
    DeviceFacts {
        display_name: name.into(),
        dns_name: format!("{name}.example"),
        addresses: vec!["192.0.2.1".into()],
        os: "linux".into(),
        agent_version: "raw".into(),
        tags: vec![],
        applications: vec![],
        time_zone: "UTC".into(),
    }
}

pub struct RawAgent {
    endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    frames: FrameReader,
}

impl RawAgent {
    /// Connects to `server` as `identity` and sends its hello with `token` and `facts`.
    /// `window`: the bytes of the link stream the agent lets the server send ahead of what it
    /// read (QUIC flow control); a small one makes an agent that never reads stall the
    /// server's writes at once.
    pub async fn connect(
        d: &Deployment,
        server: SocketAddr,
        identity: &RawIdentity,
        token: Option<&str>,
        facts: DeviceFacts,
        window: Option<u32>,
    ) -> RawAgent {
        let trust = ClientTrust {
            roots: d.ca().unwrap(),
            pin: None,
            expected_name: None,
        };
        let chain = vec![identity.cert.clone()];
        let mut config = tls::client_config(
            &trust,
            Some((chain, identity.key.clone_key())),
            tls::ALPN_AGENT,
            &Transport::default(),
        )
        .unwrap();
        if let Some(window) = window {
            let mut transport = quinn::TransportConfig::default();
            transport
                .stream_receive_window(window.into())
                .receive_window(window.into())
                .keep_alive_interval(Some(Duration::from_secs(1)));
            config.transport_config(Arc::new(transport));
        }
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = tokio::time::timeout(
            LIMIT,
            endpoint
                .connect_with(config, server, "canopy-server")
                .unwrap(),
        )
        .await
        .expect("connected in time")
        .unwrap();
        let (mut send, recv) = conn.open_bi().await.unwrap();
        let hello = AgentHello {
            device_id: identity.device_id.clone(),
            virtual_server: None,
            token: token.map(|t| canopy::wire::msg::Secret(t.into())),
            facts,
        };
        wire::write_hello(&mut send, &hello).await.unwrap();
        RawAgent {
            endpoint,
            conn,
            send,
            recv,
            frames: FrameReader::new(16 << 20),
        }
    }

    /// The next message from the server; fails the test after `LIMIT`.
    pub async fn next(&mut self) -> ServerToAgent {
        let read = self.frames.read_frame::<ServerToAgent>(&mut self.recv);
        match tokio::time::timeout(LIMIT, read).await {
            Ok(Ok(Some(msg))) => msg,
            other => panic!("no message from the server: {other:?}"),
        }
    }

    pub async fn send(&mut self, msg: &AgentToServer) {
        wire::write_frame(&mut self.send, msg).await.unwrap();
    }

    /// Waits until the server closes the connection: its code and reason.
    pub async fn closed(&self) -> (u64, String) {
        let error = tokio::time::timeout(LIMIT, self.conn.closed())
            .await
            .expect("the server closes the connection in time");
        match error {
            quinn::ConnectionError::ApplicationClosed(c) => (
                c.error_code.into_inner(),
                String::from_utf8_lossy(&c.reason).into_owned(),
            ),
            other => panic!("closed otherwise: {other}"),
        }
    }

    pub async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        self.endpoint.wait_idle().await;
    }
}

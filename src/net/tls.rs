//! rustls and quinn configuration for the kinds of peer sharing one UDP port.
//!
//! Servers, device agents and the admin CLI all connect to the same QUIC endpoint and are
//! told apart by ALPN. The TLS layer therefore only proves key possession for client
//! certificates; whether a certificate is acceptable depends on the protocol and is decided
//! by the application ([`CaVerifier`] for servers, fingerprints for devices, a password for
//! admins).
//!
//! Every config is built with an explicit *ring* provider and TLS 1.3 only, so nothing
//! depends on a process-wide default provider being installed.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{
    HandshakeData, NoInitialCipherSuite, QuicClientConfig, QuicServerConfig,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::model::Fingerprint;

/// Server-to-server federation protocol.
pub const ALPN_FED: &[u8] = b"canopy-fed/1";
/// The same federation protocol on a connection the parent opens to a passive secondary
/// (one in a DMZ that may not connect out): the parent is the QUIC client, and presents its
/// certificate; the secondary still opens the link's stream and says its hello.
pub const ALPN_FED_PASSIVE: &[u8] = b"canopy-fed-passive/1";
/// Device agent protocol.
pub const ALPN_AGENT: &[u8] = b"canopy-agent/1";
/// Admin CLI protocol.
pub const ALPN_ADMIN: &[u8] = b"canopy-admin/1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("unusable CA certificate: {0}")]
    BadCa(rustls::Error),
    #[error("cannot build certificate verifier: {0}")]
    Verifier(#[from] VerifierBuilderError),
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(#[from] NoInitialCipherSuite),
    #[error("idle timeout of {0:?} is too large for QUIC")]
    IdleTimeout(Duration),
    #[error("{0:?} is not a valid server name")]
    BadServerName(String),
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    #[error("peer certificate is not trusted: {0}")]
    UntrustedPeer(String),
    #[error("cannot derive the endpoint's keys from the server's key")]
    KeyDerivation,
}

/// QUIC liveness settings shared by both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Interval of keep-alive packets; zero disables them. Keep it below `idle_timeout`.
    pub keep_alive: Duration,
    /// A connection silent for this long is dead; zero means never.
    pub idle_timeout: Duration,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Unread bytes one stream may hold at the receiver: quinn's default, enough for about
/// 100 Mbit/s at 100 ms of round trip. Frames may be larger (4 MiB on the federation link);
/// flow control then only paces them.
const STREAM_WINDOW: u32 = 1_250_000;
/// Unread bytes one connection may hold at the receiver over all its streams. quinn's
/// default is unlimited, which lets one peer fill memory with many half-written streams.
const CONNECTION_WINDOW: u32 = 2 * STREAM_WINDOW;
/// Requests an administrator may have in flight on one connection once logged in.
pub const ADMIN_STREAMS: u32 = 16;

impl Transport {
    /// The transport of a server's connections, before their ALPN is known. Every protocol
    /// begins with its client opening one bidirectional stream for the hello; the
    /// federation and device links need no other, and the admin API raises its count after
    /// a login (see [`ADMIN_STREAMS`]). Nothing uses unidirectional streams or datagrams.
    ///
    /// Keep-alives are the connecting side's: the server's acknowledgement of each keeps the
    /// client's idle timer (and any NAT binding) alive. The server's own keep-alive is a
    /// safety net at half its idle timeout, for a client that sends none or too rarely (the
    /// CLI's default may be longer than a server's idle timeout). Every packet received
    /// resets it, so a device that sends its own more often never gets one: the same
    /// interval at both ends would double the traffic of an idle fleet.
    pub fn to_quinn_server(&self) -> Result<Arc<quinn::TransportConfig>, TlsError> {
        let safety_net = (!self.idle_timeout.is_zero()).then_some(self.idle_timeout / 2);
        self.quinn_config(1, safety_net)
    }

    /// The transport of a client's connection: servers never open streams, but for a
    /// passive secondary, which opens its link's one stream to the parent that dialed it.
    pub fn to_quinn_client(&self, alpn: &[u8]) -> Result<Arc<quinn::TransportConfig>, TlsError> {
        let peer_streams = u32::from(alpn == ALPN_FED_PASSIVE);
        self.quinn_config(
            peer_streams,
            (!self.keep_alive.is_zero()).then_some(self.keep_alive),
        )
    }

    fn quinn_config(
        &self,
        peer_bi_streams: u32,
        keep_alive: Option<Duration>,
    ) -> Result<Arc<quinn::TransportConfig>, TlsError> {
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| TlsError::IdleTimeout(self.idle_timeout))?;
        let mut config = quinn::TransportConfig::default();
        config
            .keep_alive_interval(keep_alive)
            .max_idle_timeout(Some(idle))
            .max_concurrent_bidi_streams(peer_bi_streams.into())
            .max_concurrent_uni_streams(0u32.into())
            .stream_receive_window(STREAM_WINDOW.into())
            .receive_window(CONNECTION_WINDOW.into())
            .datagram_receive_buffer_size(None);
        Ok(Arc::new(config))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(ca: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert.clone()).map_err(TlsError::BadCa)?;
    }
    Ok(Arc::new(roots))
}

/// The server side of every connection: offers every ALPN and accepts any client
/// certificate whose owner proves possession of its key, or none at all.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    transport: &Transport,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(AnyClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = [ALPN_FED, ALPN_FED_PASSIVE, ALPN_AGENT, ALPN_ADMIN]
        .map(<[u8]>::to_vec)
        .into();
    // Clients never resume (see `client_config`), so tickets would only cost bytes.
    tls.send_tls13_tickets = 0;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(transport.to_quinn_server()?);
    Ok(config)
}

/// The endpoint config of a server: its stateless-reset key and the key of its connection
/// ids are derived from the server's private key, so they are the same after a restart. A
/// peer of a process that was killed then gets a stateless reset for its first packet to the
/// new process and reconnects at once, instead of waiting out its idle timeout.
pub fn endpoint_config(key: &PrivateKeyDer<'_>) -> Result<quinn::EndpointConfig, TlsError> {
    use ring::{hkdf, hmac};
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk =
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"canopy quic endpoint v1").extract(key.secret_der());
    let reset: hmac::Key = prk
        .expand(&[b"stateless reset"], hmac::HMAC_SHA256)
        .map_err(|_| TlsError::KeyDerivation)?
        .into();
    let mut cid_key = [0u8; 8];
    prk.expand(&[b"connection id"], Len(cid_key.len()))
        .and_then(|okm| okm.fill(&mut cid_key))
        .map_err(|_| TlsError::KeyDerivation)?;
    let cid_key = u64::from_be_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset));
    // The old process's connection ids must pass the new one's check, or it drops the
    // packets of old peers instead of answering them with a reset.
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    // A reset is always smaller than the packet that caused it, so it amplifies nothing;
    // quinn's default of one per 20 ms would leave most devices of a large server waiting.
    config.min_reset_interval(Duration::from_millis(1));
    Ok(config)
}

/// Requests a client certificate without requiring one, and checks only the handshake
/// signature (proof of key possession). Chain checks are the application's, per ALPN.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Unreachable as only TLS 1.3 is offered, but correct should that ever change.
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks, after the handshake, that a peer's chain was issued by the deployment CA for
/// client use: what a server requires of another server connecting with [`ALPN_FED`].
#[derive(Clone, Debug)]
pub struct CaVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl CaVerifier {
    pub fn new(ca: &[CertificateDer<'static>]) -> Result<Self, TlsError> {
        let inner =
            WebPkiClientVerifier::builder_with_provider(root_store(ca)?, provider()).build()?;
        Ok(CaVerifier { inner })
    }

    /// Verifies `chain` (leaf first, then intermediates) against the CA, valid now.
    pub fn verify_client_chain(&self, chain: &[CertificateDer<'static>]) -> Result<(), TlsError> {
        let (leaf, intermediates) = chain.split_first().ok_or(TlsError::NoPeerCertificate)?;
        self.inner
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(drop)
            .map_err(|e| TlsError::UntrustedPeer(e.to_string()))
    }
}

/// What a client trusts in the server it connects to.
#[derive(Clone, Debug, Default)]
pub struct ClientTrust {
    /// CA certificates the server's chain must lead to.
    pub roots: Vec<CertificateDer<'static>>,
    /// If set, the server's leaf certificate must have exactly this fingerprint.
    pub pin: Option<Fingerprint>,
    /// If set, the server's certificate must name this node, whatever server name was
    /// passed to `connect`. If unset, the name is not checked (the chain and, where set,
    /// the pin identify the server), so callers may connect with a placeholder name.
    pub expected_name: Option<String>,
}

/// A client config speaking `alpn`, presenting `identity` (chain and key) if given.
pub fn client_config(
    trust: &ClientTrust,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[u8],
    transport: &Transport,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = PinnedServerVerifier::new(trust, provider.clone())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut tls = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    // A resumed session skips certificate verification, and with it the pin check.
    tls.resumption = rustls::client::Resumption::disabled();
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(transport.to_quinn_client(alpn)?);
    Ok(config)
}

/// WebPKI verification against the deployment CA, plus an optional fingerprint pin, with
/// the name check made optional (see [`ClientTrust::expected_name`]).
#[derive(Debug)]
struct PinnedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pin: Option<Fingerprint>,
    expected_name: Option<ServerName<'static>>,
}

impl PinnedServerVerifier {
    fn new(trust: &ClientTrust, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let expected_name = trust
            .expected_name
            .as_ref()
            .map(|name| {
                ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::BadServerName(name.clone()))
            })
            .transpose()?;
        Ok(PinnedServerVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(root_store(&trust.roots)?, provider)
                .build()?,
            pin: trust.pin,
            expected_name,
        })
    }
}

/// Carried inside a rustls error so the connection failure says what went wrong (rustls
/// shows it with `Debug`, which therefore says it in words too).
#[derive(thiserror::Error)]
#[error("server certificate fingerprint {actual} does not match the pinned {pinned}")]
struct PinMismatch {
    actual: Fingerprint,
    pinned: Fingerprint,
}

impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pinned) = self.pin {
            let actual = Fingerprint::of(end_entity);
            if actual != pinned {
                let mismatch = PinMismatch { actual, pinned };
                return Err(CertificateError::Other(rustls::OtherError(Arc::new(mismatch))).into());
            }
        }
        let name = self.expected_name.as_ref().unwrap_or(server_name);
        let result =
            self.inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now);
        match result {
            // WebPkiServerVerifier checks the name only once the chain has verified, so a
            // name error means everything else passed.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.expected_name.is_none() => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificate chain the peer presented (leaf first), if it presented one.
pub fn peer_chain(conn: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    let chain = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    Some(*chain).filter(|chain| !chain.is_empty())
}

/// The ALPN protocol negotiated on `conn`, which says what kind of peer it is.
pub fn alpn_of(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<HandshakeData>()
        .ok()?
        .protocol
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use quinn::{Connection, ConnectionError, Endpoint};
    use tokio::time::timeout;

    use super::*;
    use crate::net::pki::{self, IssuedPaths};

    const LIMIT: Duration = Duration::from_secs(10);
    const PLACEHOLDER_NAME: &str = "canopy.invalid";

    /// Fingerprint of the peer's leaf certificate: the identity of a device or a pinned server.
    fn peer_fingerprint(conn: &quinn::Connection) -> Option<Fingerprint> {
        peer_chain(conn)?.first().map(|leaf| Fingerprint::of(leaf))
    }

    type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

    /// A CA with two servers, `alpha` (listening) and `beta` (connecting).
    struct Fixture {
        _dir: tempfile::TempDir,
        ca: Vec<CertificateDer<'static>>,
        alpha: IssuedPaths,
        beta: IssuedPaths,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::init_ca(dir.path(), "Test CA", 30).unwrap();
        let alpha = pki::issue_server(dir.path(), "alpha", &["127.0.0.1".into()], 30).unwrap();
        let beta = pki::issue_server(dir.path(), "beta", &[], 30).unwrap();
        Fixture {
            ca: pki::load_certs(&ca.cert).unwrap(),
            _dir: dir,
            alpha,
            beta,
        }
    }

    fn identity(paths: &IssuedPaths) -> Identity {
        (
            pki::load_certs(&paths.cert).unwrap(),
            pki::load_key(&paths.key).unwrap(),
        )
    }

    fn other_ca() -> Vec<CertificateDer<'static>> {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::init_ca(dir.path(), "Other CA", 30).unwrap();
        pki::load_certs(&ca.cert).unwrap()
    }

    fn trust(roots: &[CertificateDer<'static>], pin: Option<Fingerprint>) -> ClientTrust {
        ClientTrust {
            roots: roots.to_vec(),
            pin,
            expected_name: None,
        }
    }

    /// Both ends of one handshake attempt, for inspection and orderly shutdown.
    struct Attempt {
        client: Result<Connection, ConnectionError>,
        server: Result<Connection, ConnectionError>,
        endpoints: [Endpoint; 2],
    }

    impl Attempt {
        async fn finish(self) {
            for endpoint in &self.endpoints {
                endpoint.close(0u32.into(), b"");
            }
            for endpoint in &self.endpoints {
                timeout(LIMIT, endpoint.wait_idle())
                    .await
                    .expect("endpoint did not go idle");
            }
        }
    }

    /// Runs `alpha`'s server config and connects to it once with `client`.
    async fn attempt(alpha: &IssuedPaths, client: quinn::ClientConfig) -> Attempt {
        let (chain, key) = identity(alpha);
        let server_config = server_config(chain, key, &Transport::default()).unwrap();
        let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = Endpoint::server(server_config, localhost).unwrap();
        let accept = {
            let server = server.clone();
            tokio::spawn(async move { server.accept().await.expect("endpoint closed").await })
        };
        let client_endpoint = Endpoint::client(localhost).unwrap();
        let addr = server.local_addr().unwrap();
        let connecting = client_endpoint
            .connect_with(client, addr, PLACEHOLDER_NAME)
            .unwrap();
        let client = timeout(LIMIT, connecting)
            .await
            .expect("client handshake hung");
        let server_side = timeout(LIMIT, accept)
            .await
            .expect("server handshake hung")
            .unwrap();
        Attempt {
            client,
            server: server_side,
            endpoints: [client_endpoint, server],
        }
    }

    fn fed_client(trust: &ClientTrust, id: Identity) -> quinn::ClientConfig {
        client_config(trust, Some(id), ALPN_FED, &Transport::default()).unwrap()
    }

    #[tokio::test]
    async fn server_to_server_with_pin() {
        let fx = fixture();
        let trust = trust(&fx.ca, Some(fx.alpha.fingerprint));
        let attempt = attempt(&fx.alpha, fed_client(&trust, identity(&fx.beta))).await;

        let client = attempt.client.as_ref().expect("client handshake");
        assert_eq!(alpn_of(client).as_deref(), Some(ALPN_FED));
        assert_eq!(peer_fingerprint(client), Some(fx.alpha.fingerprint));

        let server = attempt.server.as_ref().expect("server handshake");
        assert_eq!(alpn_of(server).as_deref(), Some(ALPN_FED));
        let chain = peer_chain(server).expect("client certificate");
        assert_eq!(Fingerprint::of(&chain[0]), fx.beta.fingerprint);
        CaVerifier::new(&fx.ca)
            .unwrap()
            .verify_client_chain(&chain)
            .unwrap();
        attempt.finish().await;
    }

    #[tokio::test]
    async fn wrong_pin_fails() {
        let fx = fixture();
        let trust = trust(&fx.ca, Some(fx.beta.fingerprint));
        let attempt = attempt(&fx.alpha, fed_client(&trust, identity(&fx.beta))).await;
        let err = attempt.client.as_ref().expect_err("pin must be enforced");
        assert!(err.to_string().contains("pinned"), "{err}");
        assert!(attempt.server.is_err());
        attempt.finish().await;
    }

    #[tokio::test]
    async fn expected_name_is_enforced() {
        let fx = fixture();
        let mut trust = trust(&fx.ca, None);
        trust.expected_name = Some("alpha".into());
        let ok = attempt(&fx.alpha, fed_client(&trust, identity(&fx.beta))).await;
        assert!(ok.client.is_ok());
        ok.finish().await;

        trust.expected_name = Some("gamma".into());
        let wrong = attempt(&fx.alpha, fed_client(&trust, identity(&fx.beta))).await;
        assert!(wrong.client.is_err());
        wrong.finish().await;
    }

    #[tokio::test]
    async fn admin_without_client_certificate() {
        let fx = fixture();
        let config = client_config(
            &trust(&fx.ca, None),
            None,
            ALPN_ADMIN,
            &Transport::default(),
        );
        let attempt = attempt(&fx.alpha, config.unwrap()).await;
        attempt.client.as_ref().expect("client handshake");
        let server = attempt.server.as_ref().expect("server handshake");
        assert_eq!(alpn_of(server).as_deref(), Some(ALPN_ADMIN));
        assert!(peer_chain(server).is_none());
        assert!(peer_fingerprint(server).is_none());
        attempt.finish().await;
    }

    #[tokio::test]
    async fn device_with_self_signed_certificate() {
        let fx = fixture();
        let (cert, key) = pki::self_signed_device("Ann's laptop").unwrap();
        let device_fp = Fingerprint::of(&cert);
        let config = client_config(
            &trust(&fx.ca, None),
            Some((vec![cert], key)),
            ALPN_AGENT,
            &Transport::default(),
        );
        let attempt = attempt(&fx.alpha, config.unwrap()).await;
        attempt.client.as_ref().expect("client handshake");
        let server = attempt.server.as_ref().expect("server handshake");
        assert_eq!(alpn_of(server).as_deref(), Some(ALPN_AGENT));
        assert_eq!(peer_fingerprint(server), Some(device_fp));
        let chain = peer_chain(server).unwrap();
        let err = CaVerifier::new(&fx.ca)
            .unwrap()
            .verify_client_chain(&chain)
            .unwrap_err();
        assert!(matches!(err, TlsError::UntrustedPeer(_)), "{err}");
        attempt.finish().await;
    }

    #[tokio::test]
    async fn client_trusting_another_ca_fails() {
        let fx = fixture();
        let trust = trust(&other_ca(), None);
        let attempt = attempt(&fx.alpha, fed_client(&trust, identity(&fx.beta))).await;
        assert!(attempt.client.is_err());
        attempt.finish().await;
    }

    #[test]
    fn keep_alives_are_the_clients_with_a_safety_net_at_the_server() {
        let transport = Transport {
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        };
        let server = format!("{:?}", transport.to_quinn_server().unwrap());
        let client = format!("{:?}", transport.to_quinn_client(ALPN_AGENT).unwrap());
        assert!(
            server.contains("keep_alive_interval: Some(15s)"),
            "{server}"
        );
        assert!(client.contains("keep_alive_interval: Some(5s)"), "{client}");
    }

    #[test]
    fn config_errors() {
        let mut trust = trust(&[], None);
        let empty = client_config(&trust, None, ALPN_ADMIN, &Transport::default());
        assert!(matches!(empty, Err(TlsError::Verifier(_))));
        trust.roots = other_ca();
        trust.expected_name = Some("not a name!".into());
        let bad_name = client_config(&trust, None, ALPN_ADMIN, &Transport::default());
        assert!(matches!(bad_name, Err(TlsError::BadServerName(_))));
        let huge = Transport {
            idle_timeout: Duration::MAX,
            ..Transport::default()
        };
        assert!(matches!(
            huge.to_quinn_server(),
            Err(TlsError::IdleTimeout(_))
        ));
        assert!(
            CaVerifier::new(&trust.roots)
                .unwrap()
                .verify_client_chain(&[])
                .is_err()
        );
    }
}

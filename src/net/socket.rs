//! UDP sockets for QUIC endpoints, with receive and send buffers large enough for a burst of
//! handshakes: with the kernel's default (about 200 KiB), a thousand devices connecting at
//! once overflow it, and every dropped Initial costs a retransmission timeout of a second
//! or more.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

/// What we ask for; the kernel caps it at `net.core.rmem_max` / `wmem_max`.
const BUFFER: usize = 8 * 1024 * 1024;

fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Dual stack where the system allows it.
        let _ = socket.set_only_v6(false);
    }
    // Larger buffers are an optimisation: a system that refuses them still works.
    let _ = socket.set_recv_buffer_size(BUFFER);
    let _ = socket.set_send_buffer_size(BUFFER);
    socket.bind(&addr.into())?;
    tracing::debug!(
        recv = socket.recv_buffer_size().unwrap_or(0),
        send = socket.send_buffer_size().unwrap_or(0),
        "udp socket bound on {addr}"
    );
    Ok(socket.into())
}

/// A server endpoint (which also connects out, to a parent) on `addr`; `endpoint` holds the
/// keys that must survive a restart (see `tls::endpoint_config`).
pub fn server_endpoint(
    endpoint: quinn::EndpointConfig,
    config: quinn::ServerConfig,
    addr: SocketAddr,
) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        endpoint,
        Some(config),
        bind(addr)?,
        Arc::new(super::driver_route::RoutedRuntime),
    )
}

/// A client-only endpoint on `addr` (port 0: any).
pub fn client_endpoint(addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        bind(addr)?,
        Arc::new(quinn::TokioRuntime),
    )
}

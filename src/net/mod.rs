//! QUIC endpoints, mutual TLS and the deployment PKI.
pub mod conn;
pub mod driver_route;
pub mod link_key;
pub mod pki;
pub mod resolve;
pub mod socket;
pub mod tls;

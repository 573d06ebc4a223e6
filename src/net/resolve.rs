//! Resolving a parent's address: an IP address as it is, a DNS name with hickory-resolver.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot set up the DNS resolver: {0}")]
    Setup(String),
    #[error("cannot resolve {host}: {message}")]
    Lookup { host: String, message: String },
}

/// Resolves `host` (an IP address or a DNS name) to one socket address.
pub struct AddressResolver {
    dns: Option<TokioResolver>,
}

impl AddressResolver {
    /// The system's resolver configuration (resolv.conf and the hosts file); set up lazily on
    /// the first DNS name, so servers configured with IP addresses never read it.
    pub fn system() -> Self {
        AddressResolver { dns: None }
    }

    pub async fn resolve(&mut self, host: &str, port: u16) -> Result<SocketAddr, ResolveError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        if self.dns.is_none() {
            let builder =
                TokioResolver::builder_tokio().map_err(|e| ResolveError::Setup(e.to_string()))?;
            self.dns = Some(
                builder
                    .build()
                    .map_err(|e| ResolveError::Setup(e.to_string()))?,
            );
        }
        let Some(dns) = &self.dns else {
            return Err(ResolveError::Setup("resolver unavailable".into()));
        };
        let lookup = dns
            .lookup_ip(host)
            .await
            .map_err(|e| ResolveError::Lookup {
                host: host.to_string(),
                message: e.to_string(),
            })?;
        lookup
            .iter()
            .next()
            .map(|ip| SocketAddr::new(ip, port))
            .ok_or_else(|| ResolveError::Lookup {
                host: host.to_string(),
                message: "no address found".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_addresses_need_no_dns() {
        let mut r = AddressResolver::system();
        assert_eq!(
            r.resolve("127.0.0.1", 13000).await.unwrap(),
            "127.0.0.1:13000".parse().unwrap()
        );
        assert_eq!(
            r.resolve("[::1]", 5).await.unwrap(),
            "[::1]:5".parse().unwrap()
        );
        assert!(r.dns.is_none());
    }

    #[tokio::test]
    async fn localhost_resolves_from_the_hosts_file() {
        let mut r = AddressResolver::system();
        let addr = r.resolve("localhost", 13000).await.unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
    }
}

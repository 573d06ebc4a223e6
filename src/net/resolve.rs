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

    /// Every address of a DNS name (from the hosts file or DNS), for matching device lists.
    pub async fn lookup_all(&mut self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let dns = self.dns()?;
        let lookup = dns
            .lookup_ip(host)
            .await
            .map_err(|e| ResolveError::Lookup {
                host: host.to_string(),
                message: e.to_string(),
            })?;
        Ok(lookup.iter().collect())
    }

    fn dns(&mut self) -> Result<&TokioResolver, ResolveError> {
        if self.dns.is_none() {
            let builder =
                TokioResolver::builder_tokio().map_err(|e| ResolveError::Setup(e.to_string()))?;
            self.dns = Some(
                builder
                    .build()
                    .map_err(|e| ResolveError::Setup(e.to_string()))?,
            );
        }
        self.dns
            .as_ref()
            .ok_or_else(|| ResolveError::Setup("resolver unavailable".into()))
    }

    /// Resolves to an address that a socket bound to `local` can reach: an IPv4-bound socket
    /// cannot send to IPv6, so `localhost` must not become `[::1]` for it.
    pub async fn resolve(
        &mut self,
        host: &str,
        port: u16,
        local: SocketAddr,
    ) -> Result<SocketAddr, ResolveError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let lookup = self
            .dns()?
            .lookup_ip(host)
            .await
            .map_err(|e| ResolveError::Lookup {
                host: host.to_string(),
                message: e.to_string(),
            })?;
        let reachable = |ip: &IpAddr| local.is_ipv6() || ip.is_ipv4();
        let mut ips: Vec<IpAddr> = lookup.iter().filter(reachable).collect();
        // On a dual-stack socket, prefer the address family the socket was bound with.
        ips.sort_by_key(|ip| ip.is_ipv4() == local.is_ipv6());
        ips.first()
            .map(|ip| SocketAddr::new(*ip, port))
            .ok_or_else(|| ResolveError::Lookup {
                host: host.to_string(),
                message: format!(
                    "no {} address found",
                    if local.is_ipv6() { "IP" } else { "IPv4" }
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_addresses_need_no_dns() {
        let mut r = AddressResolver::system();
        let v4 = "127.0.0.1:0".parse().unwrap();
        assert_eq!(
            r.resolve("127.0.0.1", 13000, v4).await.unwrap(),
            "127.0.0.1:13000".parse().unwrap()
        );
        assert_eq!(
            r.resolve("[::1]", 5, v4).await.unwrap(),
            "[::1]:5".parse().unwrap()
        );
        assert!(r.dns.is_none());
    }

    #[tokio::test]
    async fn localhost_resolves_from_the_hosts_file() {
        let mut r = AddressResolver::system();
        let addr = r
            .resolve("localhost", 13000, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            addr,
            "127.0.0.1:13000".parse().unwrap(),
            "an IPv4 socket gets IPv4"
        );
    }
}

//! The administrator's client of the `canopy-admin/1` API, used by the CLI, the demo and tests.

use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::model::task::DeviceRunRecord;
use crate::model::{Fingerprint, Role, UnixMillis};
use crate::net::tls::{self, ClientTrust, Transport};
use crate::wire::msg::{
    AdminCall, AdminHello, AdminRequest, AdminResponse, AdminWelcome, ErrorKind, PAGE_MAX, Secret,
};
use crate::wire::{self, FrameError, SOFTWARE_VERSION};

/// How long a request may take, relays down the tree included (each server relaying gives
/// up earlier, and names the server that did not answer).
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long the QUIC handshake may take: a server answers in milliseconds, and nothing
/// tells a client that no server listens on a UDP port.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RESPONSE: usize = crate::wire::frame::MAX_FRAME;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    #[error("the server closed the connection: {0}")]
    Closed(String),
    #[error("{0}")]
    Protocol(#[from] FrameError),
    #[error("{message}")]
    Server { kind: ErrorKind, message: String },
    #[error("unexpected answer from the server")]
    Unexpected,
    #[error("no answer from {server} within {} s", after.as_secs())]
    Timeout { server: String, after: Duration },
}

/// Who the server must be, beyond its chain to the deployment CA.
#[derive(Clone, Debug, Default)]
pub struct ServerIdentity {
    /// The name its certificate must carry (the node name it was issued for).
    pub name: Option<String>,
    /// The fingerprint its certificate must have.
    pub fingerprint: Option<Fingerprint>,
}

pub struct AdminClient {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    token: Option<Secret>,
    /// The virtual server the hello named, if any.
    virtual_server: Option<String>,
    /// `--at`: requests go to the server at this path below the one connected to.
    forward: Option<String>,
    pub server_name: String,
    pub server_version: String,
    /// The fingerprint of the certificate the server presented.
    pub server_fingerprint: Fingerprint,
}

impl AdminClient {
    /// Connects to a server whose certificate chains to `ca`, and exchanges hellos.
    pub async fn connect(
        addr: SocketAddr,
        ca: Vec<CertificateDer<'static>>,
    ) -> Result<Self, ClientError> {
        Self::connect_virtual(addr, ca, None).await
    }

    /// Like [`AdminClient::connect`]; with `virtual_server`, the session is with that virtual
    /// server of the server at `addr` (its own accounts and data).
    pub async fn connect_virtual(
        addr: SocketAddr,
        ca: Vec<CertificateDer<'static>>,
        virtual_server: Option<String>,
    ) -> Result<Self, ClientError> {
        Self::connect_checked(addr, ca, virtual_server, &ServerIdentity::default()).await
    }

    /// Like [`AdminClient::connect_virtual`], and the server's certificate must also carry
    /// `identity`'s name and have its fingerprint, where given. Nothing is sent to a server
    /// that fails the check.
    pub async fn connect_checked(
        addr: SocketAddr,
        ca: Vec<CertificateDer<'static>>,
        virtual_server: Option<String>,
        identity: &ServerIdentity,
    ) -> Result<Self, ClientError> {
        let fail = |message: String| ClientError::Connect { addr, message };
        let trust = ClientTrust {
            roots: ca,
            pin: identity.fingerprint,
            expected_name: identity.name.clone(),
        };
        let config = tls::client_config(&trust, None, tls::ALPN_ADMIN, &Transport::default())
            .map_err(|e| fail(e.to_string()))?;
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .map_err(|_| fail("bad bind address".into()))?;
        let endpoint = quinn::Endpoint::client(bind).map_err(|e| fail(e.to_string()))?;
        let connecting = endpoint
            .connect_with(config, addr, "canopy-server")
            .map_err(|e| fail(e.to_string()))?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                fail(format!(
                    "no answer within {} s: is a Canopy server listening on this address \
                     and port (UDP), and does the firewall let it through?",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| fail(crate::net::conn::describe_connection_error(&e)))?;
        let server_fingerprint = tls::peer_chain(&conn)
            .and_then(|chain| chain.first().map(|leaf| Fingerprint::of(leaf)))
            .ok_or_else(|| fail("the server presented no certificate".into()))?;
        let mut client = AdminClient {
            endpoint,
            conn,
            token: None,
            virtual_server,
            forward: None,
            server_name: String::new(),
            server_version: String::new(),
            server_fingerprint,
        };
        let welcome = client.hello().await?;
        client.server_name = welcome.server_name;
        client.server_version = welcome.software_version;
        Ok(client)
    }

    async fn hello(&self) -> Result<AdminWelcome, ClientError> {
        let exchange = async {
            let (mut send, mut recv) = self
                .conn
                .open_bi()
                .await
                .map_err(|e| self.closed(FrameError::Io(e.into())))?;
            let hello = AdminHello {
                client_version: SOFTWARE_VERSION.to_string(),
                virtual_server: self.virtual_server.clone(),
            };
            wire::write_hello(&mut send, &hello)
                .await
                .map_err(|e| self.closed(e))?;
            let _ = send.finish();
            match wire::read_frame::<_, AdminWelcome>(&mut recv, MAX_RESPONSE).await {
                Ok(Some(w)) => Ok(w),
                Ok(None) => Err(ClientError::Unexpected),
                Err(e) => Err(self.closed(e)),
            }
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| self.timed_out(None))?
    }

    fn timed_out(&self, path: Option<&str>) -> ClientError {
        let addr = self.conn.remote_address();
        let server = match path {
            None => format!("the server at {addr}"),
            Some(path) => format!("the server at {addr} for {path}"),
        };
        ClientError::Timeout {
            server,
            after: TIMEOUT,
        }
    }

    /// Turns an I/O error into the server's reason for closing, where it gave one.
    fn closed(&self, e: FrameError) -> ClientError {
        match (self.conn.close_reason(), e) {
            (Some(reason), _) => {
                ClientError::Closed(crate::net::conn::describe_connection_error(&reason))
            }
            (None, e) => ClientError::Protocol(e),
        }
    }

    pub fn set_token(&mut self, token: Secret) {
        self.token = Some(token);
    }

    /// Sends every later request (but login and logout, which concern the session here) to
    /// the server at `path` below this one, e.g. "branch-1/branch-1a"; `None`: to this one.
    pub fn forward_to(&mut self, path: Option<String>) {
        self.forward = path;
    }

    /// The server's address, as connected to.
    pub fn server_addr(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The path given to [`AdminClient::forward_to`].
    pub fn forwarded_to(&self) -> Option<&str> {
        self.forward.as_deref()
    }

    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<(Secret, Role, UnixMillis), ClientError> {
        let request = AdminRequest::Login {
            user: user.to_string(),
            password: Secret(password.to_string()),
        };
        match self.call(request).await? {
            AdminResponse::LoggedIn {
                token,
                role,
                expires,
            } => {
                self.token = Some(token.clone());
                Ok((token, role, expires))
            }
            _ => Err(ClientError::Unexpected),
        }
    }

    /// Sends one request on its own stream; a server-side error becomes `ClientError::Server`.
    pub async fn call(&self, request: AdminRequest) -> Result<AdminResponse, ClientError> {
        self.call_at(self.forward.as_deref(), request).await
    }

    /// Sends one request for the server at `path` below the one connected to (names joined by
    /// '/'); `None`: for that server.
    pub async fn call_at(
        &self,
        path: Option<&str>,
        request: AdminRequest,
    ) -> Result<AdminResponse, ClientError> {
        let call = AdminCall {
            token: self.token.clone(),
            at: at(path, &request),
            request,
        };
        let exchange = async {
            let (mut send, mut recv) = self
                .conn
                .open_bi()
                .await
                .map_err(|e| self.closed(FrameError::Io(e.into())))?;
            wire::write_frame(&mut send, &call)
                .await
                .map_err(|e| self.closed(e))?;
            let _ = send.finish();
            match wire::read_frame::<_, AdminResponse>(&mut recv, MAX_RESPONSE).await {
                Ok(Some(AdminResponse::Error { kind, message })) => {
                    Err(ClientError::Server { kind, message })
                }
                Ok(Some(response)) => Ok(response),
                Ok(None) => Err(self.closed(FrameError::Truncated)),
                Err(e) => Err(self.closed(e)),
            }
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| self.timed_out(path))?
    }

    /// At most `total` items of a paged list from the cursor `after` on, asked for page by
    /// page until an answer has no `next`: the one paging loop of the client. `ask(after,
    /// limit)` makes the request for the page after a cursor, of at most `limit` items
    /// (`page`, or fewer to stop at `total`); `split` takes an answer apart into its items
    /// and its `next`, and `None` means it was not the answer expected.
    pub async fn pages<C, T>(
        &self,
        mut after: Option<C>,
        page: u32,
        total: usize,
        mut ask: impl FnMut(Option<C>, u32) -> AdminRequest,
        mut split: impl FnMut(AdminResponse) -> Option<(Vec<T>, Option<C>)>,
    ) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        loop {
            let left = u32::try_from(total.saturating_sub(all.len())).unwrap_or(u32::MAX);
            if left == 0 {
                return Ok(all);
            }
            let response = self.call(ask(after, page.min(left))).await?;
            let (items, next) = split(response).ok_or(ClientError::Unexpected)?;
            all.extend(items);
            match next {
                Some(cursor) => after = Some(cursor),
                None => return Ok(all),
            }
        }
    }

    /// Every device (of `group`), fetched page by page.
    pub async fn devices(
        &self,
        group: Option<String>,
        recursive: bool,
    ) -> Result<Vec<crate::model::device::DeviceView>, ClientError> {
        use crate::wire::msg::{DEVICE_PAGE_MAX, DeviceRequest};
        let ask = |after, limit| {
            AdminRequest::Device(DeviceRequest::List {
                group: group.clone(),
                recursive,
                after,
                limit,
            })
        };
        self.pages(
            None,
            DEVICE_PAGE_MAX,
            usize::MAX,
            ask,
            |response| match response {
                AdminResponse::Devices { devices, next } => Some((devices, next)),
                _ => None,
            },
        )
        .await
    }

    /// Every task, fetched page by page.
    pub async fn tasks(&self) -> Result<Vec<crate::wire::msg::TaskView>, ClientError> {
        use crate::wire::msg::TaskRequest;
        let ask = |after, limit| AdminRequest::Task(TaskRequest::List { after, limit });
        self.pages(None, PAGE_MAX, usize::MAX, ask, |response| match response {
            AdminResponse::Tasks { tasks, next } => Some((tasks, next)),
            _ => None,
        })
        .await
    }

    /// Every server of the tree, in tree order, fetched page by page.
    pub async fn servers(&self) -> Result<Vec<crate::model::ServerRow>, ClientError> {
        let ask = |after, limit| AdminRequest::ServerList { after, limit };
        self.pages(None, PAGE_MAX, usize::MAX, ask, |response| match response {
            AdminResponse::Servers { servers, next } => Some((servers, next)),
            _ => None,
        })
        .await
    }

    /// Every account, fetched page by page.
    pub async fn accounts(&self) -> Result<Vec<crate::wire::msg::AccountView>, ClientError> {
        let ask = |after, limit| AdminRequest::AccountList { after, limit };
        self.pages(None, PAGE_MAX, usize::MAX, ask, |response| match response {
            AdminResponse::Accounts { accounts, next } => Some((accounts, next)),
            _ => None,
        })
        .await
    }

    /// Every group, in tree order, fetched page by page.
    pub async fn groups(&self) -> Result<Vec<crate::wire::msg::GroupView>, ClientError> {
        use crate::wire::msg::GroupRequest;
        let ask = |after, limit| AdminRequest::Group(GroupRequest::List { after, limit });
        self.pages(None, PAGE_MAX, usize::MAX, ask, |response| match response {
            AdminResponse::Groups { groups, next } => Some((groups, next)),
            _ => None,
        })
        .await
    }

    /// Every virtual server, fetched page by page.
    pub async fn virtual_servers(
        &self,
    ) -> Result<Vec<crate::wire::msg::VirtualServerView>, ClientError> {
        use crate::wire::msg::VirtualServerRequest;
        let ask =
            |after, limit| AdminRequest::VirtualServer(VirtualServerRequest::List { after, limit });
        self.pages(None, PAGE_MAX, usize::MAX, ask, |response| match response {
            AdminResponse::VirtualServers {
                virtual_servers,
                next,
            } => Some((virtual_servers, next)),
            _ => None,
        })
        .await
    }

    /// The events `after` asks for (the newest ones without it) that `filter` matches, at
    /// most `limit`, fetched page by page; oldest first.
    pub async fn events(
        &self,
        after: Option<u64>,
        limit: u32,
        filter: crate::model::EventFilter,
    ) -> Result<Vec<crate::model::Event>, ClientError> {
        let ask = |after, limit| AdminRequest::EventList {
            after,
            limit,
            filter: filter.clone(),
        };
        self.pages(
            after,
            PAGE_MAX,
            limit as usize,
            ask,
            |response| match response {
                AdminResponse::Events { events, next } => Some((events, next)),
                _ => None,
            },
        )
        .await
    }

    /// Every record of a run that `request` (a `TaskRequest::Results`) asks for, fetched page
    /// by page, with the run.
    pub async fn results(
        &self,
        request: crate::wire::msg::TaskRequest,
    ) -> Result<(crate::wire::msg::RunView, Vec<DeviceRunRecord>), ClientError> {
        use crate::wire::msg::TaskRequest;
        let (first, limit) = match &request {
            TaskRequest::Results { after, limit, .. } => (after.clone(), *limit),
            _ => (None, PAGE_MAX),
        };
        let ask = |next, page| {
            let mut request = request.clone();
            if let TaskRequest::Results { after, limit, .. } = &mut request {
                *after = next;
                *limit = page;
            }
            AdminRequest::Task(request)
        };
        let mut last_run = None;
        let records = self
            .pages(first, limit, usize::MAX, ask, |response| match response {
                AdminResponse::TaskResults { run, records, next } => {
                    last_run = Some(run);
                    Some((records, next))
                }
                _ => None,
            })
            .await?;
        Ok((last_run.ok_or(ClientError::Unexpected)?, records))
    }

    /// Test support: the raw connection, for tests that must send what a well-behaved client
    /// never would.
    #[cfg(feature = "test-support")]
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// The servers below the one connected to that serve `request`: the one place `--at` is
/// applied. Login and logout stay with the server connected to, where the session lives.
fn at(path: Option<&str>, request: &AdminRequest) -> Vec<String> {
    match (path, request) {
        (_, AdminRequest::Login { .. } | AdminRequest::Logout) | (None, _) => Vec::new(),
        (Some(path), _) => path
            .split('/')
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_names_the_servers_below_for_every_request_but_the_session_s_own() {
        let list = AdminRequest::ServerList {
            after: None,
            limit: PAGE_MAX,
        };
        assert!(at(None, &list).is_empty());
        assert_eq!(
            at(Some("branch-1/branch-1a"), &list),
            ["branch-1", "branch-1a"]
        );
        assert!(at(Some("b"), &AdminRequest::Logout).is_empty());
        let login = AdminRequest::Login {
            user: "admin".into(),
            password: Secret("pw".into()),
        };
        assert!(at(Some("b"), &login).is_empty());
    }
}

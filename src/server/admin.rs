//! The administration API (`canopy-admin/1`): one request per stream, after a hello.
//! Nothing but `Login` is served without a valid session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::timeout;
use tracing::Instrument;

use super::auth::{self, Session};
use super::login_guard::LockedFor;
use super::reply::{error, internal, page_by_path};
use super::{Node, lock, now_ms};
use crate::model::Fingerprint;
use crate::model::{self, Account, EventKind, Role, SecondaryRecord, Severity};
use crate::net::{pki, tls};
use crate::wire::msg::{
    AccountView, AdminCall, AdminHello, AdminRequest, AdminResponse, AdminWelcome, DeviceRequest,
    ErrorKind, ForwardedRequest, GroupRequest, PAGE_MAX, Secret, ServerStatusView, TaskRequest,
    VirtualServerRequest,
};
use crate::wire::{self, FrameError, SOFTWARE_VERSION, close};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Admin requests are small; a certificate in PEM is the largest thing they carry.
const MAX_REQUEST: usize = 256 * 1024;

pub(super) async fn serve(node: Arc<Node>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    let login_timeout = node.config.login_timeout;
    let hello = async {
        let (mut send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(|e| FrameError::Io(e.into()))?;
        let hello: AdminHello = wire::read_hello(&mut recv, MAX_REQUEST).await?;
        // An administrator of a virtual server talks to it alone, with its own accounts.
        let served = match &hello.virtual_server {
            None => Some(node.clone()),
            Some(name) => node.virtual_server(name),
        };
        let welcome = AdminWelcome {
            server_name: served
                .as_ref()
                .map(|n| n.name().to_string())
                .unwrap_or_default(),
            software_version: SOFTWARE_VERSION.to_string(),
        };
        if served.is_some() {
            wire::write_frame(&mut send, &welcome).await?;
            let _ = send.finish();
        }
        Ok::<_, FrameError>(served)
    };
    let node = match timeout(HELLO_TIMEOUT, hello).await {
        Ok(Ok(Some(served))) => served,
        Ok(Ok(None)) => {
            conn.close(
                close::AUTH.into(),
                b"no enabled virtual server of that name",
            );
            return;
        }
        Ok(Err(FrameError::Io(_))) => return,
        Ok(Err(e)) => {
            let msg = format!("administration client {remote} refused: {e}");
            node.event(Severity::Warning, EventKind::ProtocolError, msg)
                .await;
            conn.close(e.close_code().into(), e.to_string().as_bytes());
            return;
        }
        Err(_) => {
            conn.close(close::PROTOCOL.into(), b"no hello in time");
            return;
        }
    };
    // Until a request is authenticated, the connection may have one stream open at a time
    // and is closed after `login_timeout`: without credentials it costs the server little.
    let (authenticated, authenticated_rx) = tokio::sync::watch::channel(false);
    let login_deadline = tokio::time::sleep(login_timeout);
    tokio::pin!(login_deadline);
    loop {
        let accepted = tokio::select! {
            streams = conn.accept_bi() => streams,
            _ = &mut login_deadline, if !*authenticated_rx.borrow() => {
                if *authenticated_rx.borrow() {
                    continue;
                }
                let reason = format!("did not log in within {} s", login_timeout.as_secs());
                conn.close(close::TIMEOUT.into(), reason.as_bytes());
                return;
            }
        };
        let (mut send, mut recv) = match accepted {
            Ok(streams) => streams,
            Err(_) => return,
        };
        let node = node.clone();
        let conn = conn.clone();
        let authenticated = authenticated.clone();
        tokio::spawn(async move {
            let call = match timeout(
                REQUEST_TIMEOUT,
                wire::read_frame::<_, AdminCall>(&mut recv, MAX_REQUEST),
            )
            .await
            {
                Ok(Ok(Some(call))) => call,
                Ok(Ok(None)) | Ok(Err(FrameError::Io(_))) => return,
                Ok(Err(e)) => {
                    let msg =
                        format!("administration client {remote}: {e}; closing its connection");
                    node.event(Severity::Error, EventKind::ProtocolError, msg)
                        .await;
                    conn.close(e.close_code().into(), e.to_string().as_bytes());
                    return;
                }
                Err(_) => return,
            };
            let login = matches!(call.request, AdminRequest::Login { .. });
            let response = answer(&node, call, remote).await;
            let authorized = match &response {
                AdminResponse::LoggedIn { .. } => true,
                AdminResponse::Error {
                    kind: ErrorKind::Unauthenticated,
                    ..
                } => false,
                _ => !login,
            };
            if authorized && !authenticated.send_replace(true) {
                conn.set_max_concurrent_bi_streams(tls::ADMIN_STREAMS.into());
            }
            if wire::write_frame(&mut send, &response).await.is_ok() {
                let _ = send.finish();
            }
        });
    }
}

/// Answers one call as every client gets it: over QUIC here, over HTTPS by `web`.
pub(super) async fn answer(
    node: &Arc<Node>,
    call: AdminCall,
    remote: std::net::SocketAddr,
) -> AdminResponse {
    let kind = call.request.name();
    let response = super::reply::fit(handle(node, call, remote).await);
    node.metrics.admin_request(node.name(), kind, &response);
    response
}

/// What each role may do at most: auditors read, operators run and change tasks, groups
/// and devices, administrators all. Rights lists (`server::rights`) narrow it per object.
fn allowed(role: Role, request: &AdminRequest) -> bool {
    use AdminRequest::*;
    match request {
        Login { .. } | Logout | ServerStatus | ServerList { .. } | EventList { .. } => true,
        AccountList { .. } => role != Role::Auditor,
        AddSecondary { .. }
        | RemoveSecondary { .. }
        | RevokeCertificate { .. }
        | AccountCreate { .. }
        | AccountDelete { .. } => role == Role::Administrator,
        // Anyone may change their own password; only administrators someone else's.
        AccountSetPassword { .. } => true,
        Group(GroupRequest::List { .. } | GroupRequest::Rights { change: None, .. }) => true,
        Group(_) => role != Role::Auditor,
        Device(DeviceRequest::List { .. } | DeviceRequest::Show { .. }) => true,
        Device(_) => role != Role::Auditor,
        Task(
            TaskRequest::List { .. }
            | TaskRequest::Show { .. }
            | TaskRequest::Results { .. }
            | TaskRequest::Stats { .. }
            | TaskRequest::Export { .. }
            | TaskRequest::History { .. }
            | TaskRequest::Diff { .. }
            | TaskRequest::ListDeleted
            | TaskRequest::Rights { change: None, .. },
        ) => true,
        Task(_) => role != Role::Auditor,
        VirtualServer(VirtualServerRequest::List { .. }) => role != Role::Auditor,
        VirtualServer(_) => role == Role::Administrator,
        Notify(_) => role == Role::Administrator,
    }
}

async fn handle(node: &Arc<Node>, call: AdminCall, remote: std::net::SocketAddr) -> AdminResponse {
    if let AdminRequest::Login { user, password } = call.request {
        return login(node, user, password.0, remote).await;
    }
    let now = now_ms();
    let Some(session) = call
        .token
        .as_ref()
        .and_then(|t| node.sessions.check(&t.0, now))
    else {
        return error(
            ErrorKind::Unauthenticated,
            "not logged in, or the session has expired: run `canopy login`",
        );
    };
    if !allowed(session.role, &call.request) {
        return error(
            ErrorKind::Forbidden,
            format!("{} may not {}", session.role.as_str(), call.request.name()),
        );
    }
    let AdminCall { token, request, at } = call;
    if !at.is_empty() {
        if matches!(request, AdminRequest::Logout) {
            return error(
                ErrorKind::InvalidInput,
                "log out of the server logged in to",
            );
        }
        return node
            .forward(&at, &session.user, session.role, request)
            .await;
    }
    let span = tracing::info_span!("admin", user = %session.user, request = request.name());
    dispatch(node, &session, token, request)
        .instrument(span)
        .await
}

/// Serves an authorized request.
async fn dispatch(
    node: &Arc<Node>,
    session: &Session,
    token: Option<Secret>,
    request: AdminRequest,
) -> AdminResponse {
    if node.is_virtual()
        && matches!(
            request,
            AdminRequest::AddSecondary { .. }
                | AdminRequest::RemoveSecondary { .. }
                | AdminRequest::RevokeCertificate { .. }
        )
    {
        return error(
            ErrorKind::Forbidden,
            "a virtual server has no secondaries of its own",
        );
    }
    match request {
        // Answered before the session check; here only to keep the match whole.
        AdminRequest::Login { .. } => error(ErrorKind::Internal, "login is not served here"),
        AdminRequest::Logout => {
            if let Some(token) = &token {
                node.sessions.close(&token.0);
            }
            AdminResponse::Done {
                message: "logged out".into(),
            }
        }
        AdminRequest::ServerStatus => status(node).await,
        AdminRequest::ServerList { after, limit } => match node.tree_rows().await {
            Ok(rows) => {
                let rows = match super::rights::servers_visible(node, session, rows).await {
                    Ok(rows) => rows,
                    Err(refused) => return refused,
                };
                let (servers, next) =
                    page_by_path(rows, |r| r.path.as_str(), after.as_deref(), limit);
                AdminResponse::Servers { servers, next }
            }
            Err(e) => internal(e),
        },
        AdminRequest::AddSecondary {
            name,
            group,
            cert_pem,
            passive,
        } => add_secondary(node, session, name, group, cert_pem, passive).await,
        AdminRequest::RemoveSecondary { name } => remove_secondary(node, session, name).await,
        AdminRequest::RevokeCertificate {
            name,
            cert_pem,
            reason,
        } => super::fed::revoke_certificate(node, session, name, cert_pem, reason).await,
        AdminRequest::EventList {
            after,
            limit,
            filter,
        } => {
            let hidden = match super::rights::hidden(node, session).await {
                Ok(hidden) => hidden,
                Err(refused) => return refused,
            };
            event_list(node, filter, hidden, after, limit).await
        }
        AdminRequest::AccountList { after, limit } => match node.store.accounts().await {
            Ok(accounts) => {
                let views = accounts.iter().map(AccountView::from).collect();
                let (accounts, next) =
                    page_by_path(views, |a| a.name.as_str(), after.as_deref(), limit);
                AdminResponse::Accounts { accounts, next }
            }
            Err(e) => internal(e),
        },
        AdminRequest::AccountCreate {
            name,
            password,
            role,
        } => account_create(node, session, name, password.0, role).await,
        AdminRequest::AccountDelete { name } => account_delete(node, session, name).await,
        AdminRequest::AccountSetPassword { name, password } => {
            account_password(node, session, name, password.0).await
        }
        AdminRequest::Group(request) => super::groups::handle(node, session, request).await,
        AdminRequest::Device(request) => super::devices::handle(node, session, request).await,
        AdminRequest::Task(request) => super::tasks::handle(node, session, request).await,
        AdminRequest::VirtualServer(request) => {
            super::vservers::handle(node, session, request).await
        }
        AdminRequest::Notify(request) => super::notify::admin::handle(node, session, request).await,
    }
}

/// Serves a request relayed from the parent: on to the next server of its path, or here,
/// with the role the caller has where they logged in (a parent's administrators administer
/// the whole subtree).
pub(super) async fn serve_forwarded(
    node: &Arc<Node>,
    forwarded: ForwardedRequest,
) -> AdminResponse {
    let ForwardedRequest {
        path,
        user,
        role,
        request,
    } = forwarded;
    if !path.is_empty() {
        return node.forward(&path, &user, role, request).await;
    }
    let kind = request.name();
    let response = serve_relayed_here(node, user, role, request).await;
    node.metrics.admin_request(node.name(), kind, &response);
    response
}

/// Serves here a request relayed from the parent.
async fn serve_relayed_here(
    node: &Arc<Node>,
    user: String,
    role: Role,
    request: AdminRequest,
) -> AdminResponse {
    if matches!(request, AdminRequest::Login { .. } | AdminRequest::Logout) {
        return error(ErrorKind::InvalidInput, "log in to that server directly");
    }
    if !allowed(role, &request) {
        return error(
            ErrorKind::Forbidden,
            format!("{} may not {}", role.as_str(), request.name()),
        );
    }
    let session = Session {
        user: format!("{user} (from the parent server)"),
        role,
        expires: i64::MAX,
    };
    let span = tracing::info_span!("forwarded", user = %user, request = request.name());
    dispatch(node, &session, None, request)
        .instrument(span)
        .await
}

/// How long a server waits for a child to answer a relayed request: longer the more hops
/// remain below the child, so that the server just above one that does not answer gives up
/// first and names it, and every server above passes that on. All below the client's 30 s.
fn forward_timeout(hops_below: usize) -> Duration {
    Duration::from_secs(15 + 2 * hops_below.min(5) as u64)
}

impl Node {
    /// Relays `request` to the server at `path` below this one (its first name is a
    /// connected secondary or virtual server) and returns its answer.
    pub(super) async fn forward(
        &self,
        path: &[String],
        user: &str,
        role: Role,
        request: AdminRequest,
    ) -> AdminResponse {
        let Some((first, rest)) = path.split_first() else {
            return error(ErrorKind::InvalidInput, "an empty server path");
        };
        let sender = lock(&self.children).get(first).map(|c| c.requests.clone());
        let Some(sender) = sender else {
            let known = matches!(self.store.secondaries().await, Ok(s) if s.iter().any(|r| &r.name == first));
            let why = if known {
                "is not connected now"
            } else {
                "is not a secondary or virtual server of this server"
            };
            return error(
                ErrorKind::NotFound,
                format!("{first} {why} (at {})", self.name()),
            );
        };
        let (answer, response) = tokio::sync::oneshot::channel();
        let forwarded = ForwardedRequest {
            path: rest.to_vec(),
            user: user.to_string(),
            role,
            request,
        };
        if sender.send((forwarded, answer)).await.is_err() {
            return error(ErrorKind::NotFound, format!("{first} disconnected"));
        }
        let wait = forward_timeout(rest.len());
        match timeout(wait, response).await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => error(
                ErrorKind::NotFound,
                format!("the link to {first} closed before it answered"),
            ),
            Err(_) => error(
                ErrorKind::Internal,
                format!(
                    "{first} did not answer within {} s (asked by {})",
                    wait.as_secs(),
                    self.name()
                ),
            ),
        }
    }
}

async fn login(
    node: &Node,
    user: String,
    password: String,
    remote: std::net::SocketAddr,
) -> AdminResponse {
    // Refused guesses cost no hashing and write no event: the lock itself is the event.
    let admitted = lock(&node.login_guard).admit(&user, remote.ip(), Instant::now());
    if let Err(refusal) = admitted {
        return error(ErrorKind::Unauthenticated, refusal.message());
    }
    let account = match node.store.account(&user).await {
        Ok(account) => account,
        Err(e) => return internal(e),
    };
    // Verify against a dummy hash for unknown users too, so timing does not tell names apart.
    let stored = account
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(dummy_hash);
    let ok = match node.passwords.verify(password, stored).await {
        Ok(ok) => ok,
        Err(busy) => return error(ErrorKind::Unavailable, busy.to_string()),
    };
    match account {
        Some(account) if ok => {
            lock(&node.login_guard).succeeded(&user);
            let now = now_ms();
            let expires = now + node.config.session_ttl.as_millis() as i64;
            let session = Session {
                user: user.clone(),
                role: account.role,
                expires,
            };
            let token = node.sessions.open(session, now);
            let msg = format!("{user} logged in from {remote}");
            node.event(Severity::Info, EventKind::LoginSucceeded, msg)
                .await;
            AdminResponse::LoggedIn {
                token: crate::wire::msg::Secret(token),
                role: account.role,
                expires,
            }
        }
        _ => {
            let locked = lock(&node.login_guard).failed(&user, Instant::now());
            let mut msg =
                format!("login failed for {user:?} from {remote}: wrong user name or password");
            if let Some(LockedFor(lock)) = locked {
                msg.push_str(&format!(
                    "; logins to {user:?} refused for {} s",
                    lock.as_secs()
                ));
            }
            node.event(Severity::Warning, EventKind::LoginFailed, msg)
                .await;
            error(ErrorKind::Unauthenticated, "wrong user name or password")
        }
    }
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            auth::hash_password("no such account, no such password").unwrap_or_default()
        })
        .clone()
}

async fn status(node: &Node) -> AdminResponse {
    let secondaries = lock(&node.children).len() as u32;
    let devices = match node.store.device_count().await {
        Ok(n) => n as u32,
        Err(e) => return internal(e),
    };
    let devices_pending = match node.store.pending_device_count().await {
        Ok(n) => n as u32,
        Err(e) => return internal(e),
    };
    let devices_connected = lock(&node.devices).len() as u32;
    AdminResponse::Status(ServerStatusView {
        name: node.name().to_string(),
        software_version: SOFTWARE_VERSION.to_string(),
        listen: node.listen.to_string(),
        fingerprint: node.fingerprint.to_string(),
        started: node.started,
        parent: lock(&node.upstream).clone(),
        secondaries,
        devices,
        devices_connected,
        devices_pending,
    })
}

async fn add_secondary(
    node: &Node,
    session: &Session,
    name: String,
    group: String,
    cert_pem: String,
    passive: Option<String>,
) -> AdminResponse {
    if let Err(e) = model::check_display_name("secondary name", &name) {
        return error(ErrorKind::InvalidInput, e);
    }
    let passive = match passive.as_deref().map(super::fed::check_passive_address) {
        None => None,
        Some(Ok(address)) => Some(address),
        Some(Err(e)) => return error(ErrorKind::InvalidInput, format!("--passive: {e}")),
    };
    let (group_id, group) = match node.store.group_tree().await {
        Ok(tree) => match tree
            .resolve(&group)
            .and_then(|id| Some((id, tree.path_of(id)?)))
        {
            Some(found) => found,
            None => {
                return error(
                    ErrorKind::NotFound,
                    format!("no group {group:?}: create it with `canopy group create`"),
                );
            }
        },
        Err(e) => return internal(e),
    };
    let cert_der = match pki::parse_single_cert_pem(&cert_pem) {
        Ok(der) => der,
        Err(e) => return error(ErrorKind::InvalidInput, format!("certificate: {e}")),
    };
    if let Err(e) = node.ca.verify_client_chain(std::slice::from_ref(&cert_der)) {
        return error(
            ErrorKind::InvalidInput,
            format!("certificate is not a server certificate of this deployment's CA: {e}"),
        );
    }
    let fingerprint = Fingerprint::of(&cert_der);
    if fingerprint == node.fingerprint {
        return error(
            ErrorKind::InvalidInput,
            "that is this server's own certificate",
        );
    }
    let record = SecondaryRecord {
        name: name.clone(),
        group_id,
        cert_der: cert_der.to_vec(),
        fingerprint,
        registered_at: now_ms(),
        last_connected: None,
        version: String::new(),
        instance_id: String::new(),
        address: None,
        subtree: Vec::new(),
        devices: 0,
        virtual_server: false,
        disabled: false,
        enrollment_token: String::new(),
        passive: passive.clone(),
    };
    match node
        .store
        .add_secondary(record, node.config.limits.max_secondaries)
        .await
    {
        Ok(()) => {}
        Err(crate::store::StoreError::Rejected(msg)) => {
            return error(ErrorKind::AlreadyExists, msg);
        }
        Err(crate::store::StoreError::LimitReached(msg)) => {
            return error(ErrorKind::LimitReached, msg);
        }
        Err(e) => return internal(e),
    }
    let reach = match &passive {
        Some(address) => format!(", passive: this server connects to it at {address}"),
        None => String::new(),
    };
    let msg = format!(
        "secondary {name} registered in group {group:?} by {} (certificate fingerprint {fingerprint}){reach}",
        session.user
    );
    node.event(Severity::Info, EventKind::SecondaryAdded, msg)
        .await;
    node.bump_subtree();
    let next = match &passive {
        Some(address) => format!("this server connects to it at {address} now"),
        None => "it may connect now".to_string(),
    };
    AdminResponse::Done {
        message: format!("secondary {name} registered (fingerprint {fingerprint}); {next}"),
    }
}

async fn remove_secondary(node: &Node, session: &Session, name: String) -> AdminResponse {
    if matches!(node.store.secondaries().await, Ok(s) if s.iter().any(|r| r.name == name && r.virtual_server))
    {
        return error(
            ErrorKind::InvalidInput,
            format!("{name} is a virtual server: delete it with `canopy vserver delete {name}`"),
        );
    }
    // The fingerprint and name are the registration's; the store fills them in.
    let revocation = crate::model::Revocation {
        fingerprint: Fingerprint([0; 32]),
        name: name.clone(),
        by: node.name().to_string(),
        revoked_at: now_ms(),
        reason: format!("secondary removed by {}", session.user),
    };
    let revocation = match node
        .store
        .remove_and_revoke_secondary(&name, revocation)
        .await
    {
        Ok(Some((_, revocation))) => revocation,
        Ok(None) => return error(ErrorKind::NotFound, format!("no secondary named {name:?}")),
        Err(e) => return internal(e),
    };
    if let Some(child) = lock(&node.children).remove(&name)
        && let Some(conn) = child.conn
    {
        conn.close(
            close::REVOKED.into(),
            b"registration removed and certificate revoked by an administrator",
        );
    }
    let msg = format!("secondary {name} removed by {}", session.user);
    node.event(Severity::Info, EventKind::SecondaryRemoved, msg)
        .await;
    let msg = format!(
        "{}; it goes down the tree to every server below",
        revocation.describe()
    );
    node.event(Severity::Warning, EventKind::CertificateRevoked, msg)
        .await;
    node.bump_subtree();
    AdminResponse::Done {
        message: format!(
            "secondary {name} removed and its certificate {} revoked in the whole subtree; it \
             keeps running on its own until its [parent] section is removed, and needs a new \
             certificate to be registered anywhere again",
            revocation.fingerprint
        ),
    }
}

async fn account_create(
    node: &Node,
    session: &Session,
    name: String,
    password: String,
    role: Role,
) -> AdminResponse {
    if let Err(e) = model::check_display_name("account name", &name) {
        return error(ErrorKind::InvalidInput, e);
    }
    let hash = match node.passwords.hash(password).await {
        Ok(Ok(hash)) => hash,
        Ok(Err(e)) => return error(ErrorKind::InvalidInput, e),
        Err(busy) => return error(ErrorKind::Unavailable, busy.to_string()),
    };
    let account = Account {
        name: name.clone(),
        role,
        password_hash: hash,
        created: now_ms(),
    };
    match node.store.create_account(account).await {
        Ok(()) => {}
        Err(crate::store::StoreError::Rejected(msg)) => {
            return error(ErrorKind::AlreadyExists, msg);
        }
        Err(e) => return internal(e),
    }
    let msg = format!(
        "account {name} ({}) created by {}",
        role.as_str(),
        session.user
    );
    node.event(Severity::Info, EventKind::AccountChanged, msg)
        .await;
    AdminResponse::Done {
        message: format!("account {name} created"),
    }
}

async fn account_delete(node: &Node, session: &Session, name: String) -> AdminResponse {
    match node.store.delete_account(&name).await {
        Ok(true) => {}
        Ok(false) => return error(ErrorKind::NotFound, format!("no account named {name:?}")),
        Err(crate::store::StoreError::Rejected(msg)) => return error(ErrorKind::InvalidInput, msg),
        Err(e) => return internal(e),
    }
    node.sessions.close_user(&name);
    let msg = format!("account {name} deleted by {}", session.user);
    node.event(Severity::Info, EventKind::AccountChanged, msg)
        .await;
    AdminResponse::Done {
        message: format!("account {name} deleted"),
    }
}

async fn account_password(
    node: &Node,
    session: &Session,
    name: String,
    password: String,
) -> AdminResponse {
    if name != session.user && session.role != Role::Administrator {
        return error(
            ErrorKind::Forbidden,
            "only an administrator may change another account's password",
        );
    }
    let hash = match node.passwords.hash(password).await {
        Ok(Ok(hash)) => hash,
        Ok(Err(e)) => return error(ErrorKind::InvalidInput, e),
        Err(busy) => return error(ErrorKind::Unavailable, busy.to_string()),
    };
    match node.store.set_account_password(&name, hash).await {
        Ok(true) => {}
        Ok(false) => return error(ErrorKind::NotFound, format!("no account named {name:?}")),
        Err(e) => return internal(e),
    }
    node.sessions.close_user(&name);
    let msg = format!("password of {name} changed by {}", session.user);
    node.event(Severity::Info, EventKind::AccountChanged, msg)
        .await;
    AdminResponse::Done {
        message: format!("password of {name} changed; its sessions are closed"),
    }
}

/// One page of the event log, without the events about what the caller may not read.
async fn event_list(
    node: &Node,
    filter: crate::model::EventFilter,
    hidden: crate::store::events::Unreadable,
    after: Option<u64>,
    limit: u32,
) -> AdminResponse {
    match node
        .store
        .event_page(filter, hidden, after, limit.clamp(1, PAGE_MAX))
        .await
    {
        Ok((events, next)) => {
            let (events, cut) = super::reply::fill_page(events, usize::MAX);
            // A page cut to fit the frame goes on from its last event.
            let next = if cut {
                events.last().map(|e| e.seq)
            } else {
                next
            };
            AdminResponse::Events { events, next }
        }
        Err(e) => internal(e),
    }
}

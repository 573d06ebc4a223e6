//! Who a server is: agents and the CLI check the server's name or fingerprint, not only its
//! chain to the CA, and a removed secondary's certificate is revoked for the whole tree.

use std::path::Path;
use std::time::Duration;

mod common;

use canopy::agent::Agents;
use canopy::agent::config::AgentConfig;
use canopy::cli::deployment::{
    Deployment, config_text, free_port, parent_of, start, wait_for_tree,
};
use canopy::model::{EventKind, ServerStatus};
use canopy::net::pki;
use canopy::net::tls::{self, ClientTrust, Transport};
use canopy::server::RunningServer;
use canopy::wire::msg::{AdminRequest, ChildHello, ParentMsg};
use canopy::wire::{self, close};
use common::binary::{canopy, stderr};
use common::{LIMIT, status_of, until, wait_event};

const TOKEN: &str = "identity-test-token";

/// A server listening on 127.0.0.1:`port` that enrolls devices with [`TOKEN`]: `name` with
/// its own certificate, or, with `cert_of`, a server presenting another server's (valid)
/// certificate of the same CA.
async fn server_on(d: &Deployment, name: &str, port: u16, cert_of: Option<&str>) -> RunningServer {
    for n in [Some(name), cert_of].into_iter().flatten() {
        if !d.certs.join(format!("{n}.pem")).exists() {
            pki::issue_server(&d.certs, n, &["127.0.0.1".into()], 30).unwrap();
        }
    }
    let mut text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text(name, port, None)
    );
    if let Some(other) = cert_of {
        text = text
            .replace(&format!("certs/{name}.pem"), &format!("certs/{other}.pem"))
            .replace(&format!("certs/{name}.key"), &format!("certs/{other}.key"))
            .replace(
                &format!("data/{name}.redb"),
                &format!("data/{name}-as-{other}.redb"),
            );
    }
    let config = d
        .write_config(&format!("{name}-as-{}", cert_of.unwrap_or(name)), &text)
        .await
        .unwrap();
    start(&config).await.unwrap()
}

/// An agent config for the server at `addr` with `extra` top-level keys.
fn agent_config(d: &Deployment, name: &str, addr: &str, extra: &str) -> AgentConfig {
    d.agent_config_at(name, addr, Some(TOKEN)).unwrap();
    let path = d.dir.join(format!("{name}.agent.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{extra}{text}")).unwrap();
    AgentConfig::load(&path).unwrap()
}

async fn connected(agents: &Agents) -> bool {
    agents.counts().connected == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_refuses_a_server_presenting_another_server_s_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let port = free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    pki::issue_server(&d.certs, "branch-1", &["127.0.0.1".into()], 30).unwrap();
    let primary = server_on(&d, "primary", port, None).await;
    let fingerprint = primary.node.fingerprint;

    // Three agents: one learns the server's fingerprint at its first enrollment, one is
    // configured with the server's name, one with its fingerprint.
    let configs = [
        ("learned", String::new()),
        ("named", "server_name = \"primary\"\n".to_string()),
        (
            "pinned",
            format!("server_fingerprint = \"{fingerprint}\"\n"),
        ),
    ];
    for (name, extra) in &configs {
        let agent = Agents::start(agent_config(&d, name, &addr, extra), None)
            .await
            .unwrap();
        until(&format!("{name} connected to the primary"), || {
            connected(&agent)
        })
        .await;
        agent.stop().await.unwrap();
    }
    primary.shutdown().await.unwrap();

    // Another server of the deployment, on the primary's address with its own (valid)
    // certificate: none of them may connect, nor send it its hello (and token).
    let impostor = server_on(&d, "primary", port, Some("branch-1")).await;
    let mut agents = Vec::new();
    for (name, extra) in &configs {
        let config = agent_config(&d, name, &addr, extra);
        agents.push(Agents::start(config, None).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for ((name, _), agent) in configs.iter().zip(&agents) {
        assert_eq!(
            agent.counts().connected,
            0,
            "{name} connected to a server presenting branch-1's certificate"
        );
    }
    let admin = d.admin(impostor.local_addr()).await.unwrap();
    let devices = admin.devices(None, true).await.unwrap();
    assert!(devices.is_empty(), "the impostor heard from {devices:#?}");
    // A new agent that knows nothing of the server trusts the first one it meets.
    let newcomer = Agents::start(agent_config(&d, "newcomer", &addr, ""), None)
        .await
        .unwrap();
    until("the newcomer connected", || connected(&newcomer)).await;
    newcomer.stop().await.unwrap();
    admin.close().await;
    impostor.shutdown().await.unwrap();

    // The real server back: every one of them connects again.
    let primary = server_on(&d, "primary", port, None).await;
    for ((name, _), agent) in configs.iter().zip(&agents) {
        until(&format!("{name} back on the primary"), || connected(agent)).await;
    }
    for agent in agents {
        agent.stop().await.unwrap();
    }
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_a_server_presenting_another_server_s_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let port = free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    pki::issue_server(&d.certs, "branch-1", &["127.0.0.1".into()], 30).unwrap();
    let primary = server_on(&d, "primary", port, None).await;
    let fingerprint = primary.node.fingerprint.to_string();
    let session = dir.path().join("admin/session.toml");
    let login = |extra: &[&str], session: &Path| {
        let out = common::binary::login(dir.path(), session, &addr, extra);
        (out.status.success(), stderr(&out), out)
    };

    // The first login learns the server's fingerprint.
    let (ok, err, out) = login(&[], &session);
    assert!(ok, "{err}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains(&fingerprint), "{said}");
    let out = canopy(dir.path(), &session, &["server", "list"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    primary.shutdown().await.unwrap();

    // branch-1's certificate on the primary's address.
    let impostor = server_on(&d, "primary", port, Some("branch-1")).await;
    let out = canopy(dir.path(), &session, &["server", "list"], None);
    assert!(!out.status.success(), "the session's server changed");
    assert!(stderr(&out).contains("pinned"), "{}", stderr(&out));
    let (ok, err, _) = login(&[], &session);
    assert!(!ok, "a login to a changed server succeeded");
    assert!(
        err.contains("changed") && err.contains("--fingerprint"),
        "{err}"
    );
    // Even without the session (logged out), the server's fingerprint is remembered.
    let out = canopy(dir.path(), &session, &["logout"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let (ok, err, _) = login(&[], &session);
    assert!(!ok && err.contains("changed"), "{err}");

    // Elsewhere, with nothing remembered: the name or the fingerprint given is checked.
    let fresh = dir.path().join("other/session.toml");
    let (ok, err, _) = login(&["--server-name", "primary"], &fresh);
    assert!(!ok, "the name was not checked");
    assert!(err.contains("primary"), "{err}");
    let (ok, err, _) = login(&["--fingerprint", &fingerprint], &fresh);
    assert!(!ok, "the fingerprint was not checked");
    assert!(err.contains(&fingerprint), "{err}");
    // It is branch-1, by name, and may be logged in to as such.
    let (ok, err, _) = login(&["--server-name", "branch-1"], &fresh);
    assert!(ok, "{err}");
    impostor.shutdown().await.unwrap();
}

/// Connects to `addr` as a secondary presenting `name`'s certificate and sends a hello:
/// `Ok(())` if welcomed, or the code the server closed the connection with.
async fn link_as(d: &Deployment, addr: std::net::SocketAddr, name: &str) -> Result<(), u64> {
    link_as_after(d, addr, name, async {}).await
}

/// [`link_as`], with `meanwhile` done between the handshake and the hello.
async fn link_as_after(
    d: &Deployment,
    addr: std::net::SocketAddr,
    name: &str,
    meanwhile: impl std::future::Future<Output = ()>,
) -> Result<(), u64> {
    let identity = (
        pki::load_certs(&d.certs.join(format!("{name}.pem"))).unwrap(),
        pki::load_key(&d.certs.join(format!("{name}.key"))).unwrap(),
    );
    let trust = ClientTrust {
        roots: d.ca().unwrap(),
        pin: None,
        expected_name: None,
    };
    let config =
        tls::client_config(&trust, Some(identity), tls::ALPN_FED, &Transport::default()).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(config, addr, "canopy-parent")
        .unwrap()
        .await
        .unwrap();
    meanwhile.await;
    let welcomed = async {
        let (mut send, mut recv) = conn.open_bi().await.ok()?;
        let hello = ChildHello {
            name: name.into(),
            software_version: "test".into(),
            instance_id: "00000000000000ff".into(),
            last_applied: 0,
            parent_epoch: 0,
            epoch: 1,
        };
        wire::write_hello(&mut send, &hello).await.ok()?;
        match wire::read_frame::<_, ParentMsg>(&mut recv, 1 << 16).await {
            Ok(Some(ParentMsg::Welcome { .. })) => Some(()),
            _ => None,
        }
    };
    let outcome = match tokio::time::timeout(LIMIT, welcomed).await {
        Ok(Some(())) => Ok(()),
        _ => match conn.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c)) => Err(c.error_code.into_inner()),
            other => panic!("neither welcomed nor refused: {other:?}"),
        },
    };
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_secondary_is_revoked_in_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let link = Some(parent_of(&primary));
    let branch_1 = d.add_server("branch-1", 0, link).await.unwrap();
    let branch_2 = d.add_server("branch-2", 0, link).await.unwrap();
    for name in ["branch-1", "branch-2"] {
        d.register(primary.local_addr(), name, "Managed devices")
            .await
            .unwrap();
    }
    let branch_1 = start(&branch_1).await.unwrap();
    let branch_2 = start(&branch_2).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, LIMIT, "both links up", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    // branch-1's certificate is also registered at branch-2, under another name.
    let at_2 = d.admin(branch_2.local_addr()).await.unwrap();
    let alias = |name: &str| AdminRequest::AddSecondary {
        name: name.into(),
        group: "Managed devices".into(),
        cert_pem: std::fs::read_to_string(d.certs.join("branch-1.pem")).unwrap(),
        passive: None,
    };
    at_2.call(alias("alias")).await.unwrap();
    assert_eq!(link_as(&d, branch_2.local_addr(), "branch-1").await, Ok(()));

    admin
        .call(AdminRequest::RemoveSecondary {
            name: "branch-1".into(),
        })
        .await
        .unwrap();
    // Its former parent refuses it, saying why.
    wait_event(&admin, EventKind::SecondaryRefused, "revoked").await;
    until("branch-1 told it is revoked", || async {
        branch_1
            .node
            .parent_link()
            .and_then(|l| l.last_error)
            .is_some_and(|e| e.contains("revoked"))
    })
    .await;
    assert_eq!(
        link_as(&d, primary.local_addr(), "branch-1").await,
        Err(close::REVOKED as u64)
    );
    // Registering it again under a new name is refused.
    let err = admin.call(alias("branch-3")).await.unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");
    // Another server of the tree learned it over its link, and refuses it too.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let outcome = link_as(&d, branch_2.local_addr(), "branch-1").await;
        if outcome == Err(close::REVOKED as u64) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "branch-2 still takes branch-1's certificate: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let event = wait_event(&at_2, EventKind::SecondaryRefused, "revoked").await;
    assert!(event.message.contains("alias"), "{event:?}");
    let err = at_2.call(alias("alias-2")).await.unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");
    // branch-2 itself is still welcome.
    let rows = canopy::cli::deployment::tree(&admin).await.unwrap();
    assert_eq!(
        status_of(&rows, "primary/branch-2"),
        Some(ServerStatus::Active)
    );
    at_2.close().await;
    admin.close().await;
    branch_1.shutdown().await.unwrap();
    branch_2.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// A secondary removed after its handshake and before its hello is refused, not admitted
/// because it was registered when its connection began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_removed_during_its_hello_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    d.add_server("branch", 0, Some(parent_of(&primary)))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch", "Managed devices")
        .await
        .unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    let remove = async {
        let request = AdminRequest::RemoveSecondary {
            name: "branch".into(),
        };
        admin.call(request).await.unwrap();
    };
    let linked = link_as_after(&d, primary.local_addr(), "branch", remove).await;
    assert_eq!(linked, Err(u64::from(close::REVOKED)));
    let rows = admin.servers().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    admin.close().await;
    primary.shutdown().await.unwrap();
}

/// `canopy server revoke` at the primary revokes a certificate in the whole tree below it,
/// registered there or not; a server refuses to revoke its own or its parent's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_revoked_at_the_primary_is_refused_in_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let branch = d
        .add_server("branch-1", 0, Some(parent_of(&primary)))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let branch = start(&branch).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, LIMIT, "the link up", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    // "stray" is a secondary of branch-1 only: the primary never registered it.
    pki::issue_server(&d.certs, "stray", &["127.0.0.1".into()], 30).unwrap();
    let pem = |name: &str| std::fs::read_to_string(d.certs.join(format!("{name}.pem"))).unwrap();
    let at_branch = d.admin(branch.local_addr()).await.unwrap();
    let add = AdminRequest::AddSecondary {
        name: "stray".into(),
        group: "Managed devices".into(),
        cert_pem: pem("stray"),
        passive: None,
    };
    at_branch.call(add).await.unwrap();
    assert_eq!(link_as(&d, branch.local_addr(), "stray").await, Ok(()));

    // An administrator at the primary revokes it with the CLI.
    let session = dir.path().join("admin/session.toml");
    let addr = primary.local_addr().to_string();
    let out = common::binary::login(dir.path(), &session, &addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let revoke = [
        "server",
        "revoke",
        "--cert",
        "certs/stray.pem",
        "--name",
        "stray",
        "--reason",
        "key lost",
    ];
    let out = canopy(dir.path(), &session, &revoke, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));

    // It reaches branch-1, which closes the link and refuses the certificate from then on.
    let event = wait_event(&at_branch, EventKind::CertificateRevoked, "stray").await;
    assert!(event.message.contains("key lost"), "{}", event.message);
    assert_eq!(
        link_as(&d, branch.local_addr(), "stray").await,
        Err(u64::from(close::REVOKED))
    );
    // Again: nothing changes. Its own certificate, or its parent's: refused.
    let out = canopy(dir.path(), &session, &revoke, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already"));
    let revoke_pem = |name: &str| AdminRequest::RevokeCertificate {
        name: name.into(),
        cert_pem: pem(name),
        reason: String::new(),
    };
    let own = admin.call(revoke_pem("primary")).await.unwrap_err();
    assert!(own.to_string().contains("own certificate"), "{own}");
    let parent = at_branch.call(revoke_pem("primary")).await.unwrap_err();
    assert!(parent.to_string().contains("parent"), "{parent}");
    let rows = admin.servers().await.unwrap();
    assert_eq!(
        status_of(&rows, "primary/branch-1"),
        Some(ServerStatus::Active)
    );
    assert_eq!(
        status_of(&rows, "primary/branch-1/stray"),
        Some(ServerStatus::Inactive)
    );
    at_branch.close().await;
    admin.close().await;
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

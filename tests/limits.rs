//! The documented limits of the product Canopy follows (500 secondaries, 500 virtual servers
//! and 100,000 devices per server), enforced with an error that names the config key, and
//! the instance id that tells a reinstalled secondary from the one before. Real servers over
//! QUIC on loopback.

mod common;

use std::time::Duration;

use canopy::agent::Agents;
use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::{Deployment, config_text, start, wait_for_tree};
use canopy::model::{EventKind, ServerRow, ServerStatus};
use canopy::wire::close;
use canopy::wire::msg::{AdminRequest, DeviceRequest, ErrorKind, VirtualServerRequest};
use common::raw_agent::{RawAgent, RawIdentity, facts};
use common::{create_vserver, until, wait_event};

const TOKEN: &str = "limits-tests-token-0123456789";

fn limit_error<T: std::fmt::Debug>(result: Result<T, ClientError>, key: &str) {
    match result {
        Err(ClientError::Server { kind, message }) => {
            assert_eq!(kind, ErrorKind::LimitReached, "{message}");
            assert!(message.contains(key), "{message}");
        }
        other => panic!("expected the {key} limit, got {other:?}"),
    }
}

async fn add_secondary(d: &Deployment, admin: &AdminClient, name: &str) -> Result<(), ClientError> {
    canopy::net::pki::issue_server(&d.certs, name, &["127.0.0.1".into()], 30).unwrap();
    let cert_pem = std::fs::read_to_string(d.certs.join(format!("{name}.pem"))).unwrap();
    let request = AdminRequest::AddSecondary {
        name: name.into(),
        group: "Managed devices".into(),
        cert_pem,
        passive: None,
    };
    admin.call(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondaries_virtual_servers_and_devices_beyond_the_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n\n[limits]\nmax_devices = 2\nmax_secondaries = 1\nmax_virtual_servers = 1\n",
        config_text("primary", 0, None)
    );
    let config = d.write_config("primary", &text).await.unwrap();
    canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    let primary = start(&config).await.unwrap();
    let addr = primary.local_addr();
    let admin = d.admin(addr).await.unwrap();

    // One secondary and one virtual server; the second of each is refused, and neither
    // counts against the other.
    add_secondary(&d, &admin, "branch-1").await.unwrap();
    limit_error(
        add_secondary(&d, &admin, "branch-2").await,
        "limits.max_secondaries",
    );
    create_vserver(&admin, "tenant-1", "Managed devices").await;
    let second = VirtualServerRequest::Create {
        name: "tenant-2".into(),
        group: "Managed devices".into(),
    };
    limit_error(
        admin.call(AdminRequest::VirtualServer(second)).await,
        "limits.max_virtual_servers",
    );
    let names: Vec<String> = admin
        .servers()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["primary", "branch-1", "tenant-1"]);

    // Two devices come in; a third, new one is refused with LIMIT and registered nowhere.
    let mut agents = Vec::new();
    for name in ["desk-1", "desk-2"] {
        let agent = Agents::start(d.agent_config(name, addr, Some(TOKEN)).unwrap(), None)
            .await
            .unwrap();
        until(&format!("{name} connected"), || async {
            agent.counts().connected == 1
        })
        .await;
        agents.push(agent);
    }
    let third = RawIdentity::new("desk-3");
    let refused = RawAgent::connect(&d, addr, &third, Some(TOKEN), facts("desk-3"), None).await;
    let (code, reason) = refused.closed().await;
    assert_eq!(code, u64::from(close::LIMIT), "{reason}");
    assert!(reason.contains("limit of 2 devices"), "{reason}");
    wait_event(&admin, EventKind::DeviceRefused, "limits.max_devices").await;
    let devices = admin.devices(None, false).await.unwrap();
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert!(devices.iter().all(|v| v.name != "desk-3"));

    // A known device still comes back at the limit; deleting one makes room for the third.
    let desk_1 = agents.remove(0);
    let config_1 = d.agent_config("desk-1", addr, Some(TOKEN)).unwrap();
    desk_1.stop().await.unwrap();
    let desk_1 = Agents::start(config_1, None).await.unwrap();
    until("desk-1 back", || async { desk_1.counts().connected == 1 }).await;
    let gone = devices
        .iter()
        .find(|v| v.name == "desk-2")
        .unwrap()
        .id
        .clone();
    agents.remove(0).stop().await.unwrap();
    admin
        .call(AdminRequest::Device(DeviceRequest::Delete { device: gone }))
        .await
        .unwrap();
    let mut admitted =
        RawAgent::connect(&d, addr, &third, Some(TOKEN), facts("desk-3"), None).await;
    admitted.next().await;
    let names: Vec<String> = admin
        .devices(None, false)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"desk-3".to_string()), "{names:?}");
    admitted.close().await;
    desk_1.stop().await.unwrap();
    primary.shutdown().await.unwrap();
}

fn row<'a>(rows: &'a [ServerRow], path: &str) -> &'a ServerRow {
    rows.iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no {path} in {rows:?}"))
}

/// The parent records the instance id its secondary says it is; a secondary installed
/// again with the same certificate (a new database) is seen as a new installation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstalled_secondary_is_told_by_its_new_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, admin) = common::two_tiers(&d, TOKEN).await;
    let rows = admin.servers().await.unwrap();
    let before = row(&rows, "primary/branch-1").instance_id.clone();
    assert_eq!(before.len(), 16, "{rows:?}");
    assert_ne!(before, row(&rows, "primary").instance_id);
    let own = d.admin(branch.local_addr()).await.unwrap();
    assert_eq!(own.servers().await.unwrap()[0].instance_id, before);
    own.close().await;

    // The same secondary restarted keeps its instance id.
    let config_path = d.dir.join("branch-1.toml");
    let config = canopy::config::ServerConfig::load(&config_path).unwrap();
    branch.shutdown().await.unwrap();
    let branch = start(&config).await.unwrap();
    let up = |rows: &[ServerRow]| rows.iter().all(|r| r.status == ServerStatus::Active);
    wait_for_tree(&admin, Duration::from_secs(30), "the branch back", |rows| {
        rows.len() == 2 && up(rows)
    })
    .await
    .unwrap();
    let rows = admin.servers().await.unwrap();
    assert_eq!(row(&rows, "primary/branch-1").instance_id, before);

    // Installed again: a new database under the same certificate and config.
    branch.shutdown().await.unwrap();
    std::fs::remove_file(&config.data).unwrap();
    let text = std::fs::read_to_string(&config_path).unwrap();
    let config = d.write_config("branch-1", &text).await.unwrap();
    let branch = start(&config).await.unwrap();
    let event = wait_event(&admin, EventKind::SecondaryReinstalled, "branch-1").await;
    assert!(event.message.contains(&before), "{}", event.message);
    let rows = wait_for_tree(&admin, Duration::from_secs(30), "the new branch", |rows| {
        rows.len() == 2 && up(rows) && row(rows, "primary/branch-1").instance_id != before
    })
    .await
    .unwrap();
    let after = row(&rows, "primary/branch-1").instance_id.clone();
    assert_eq!(after.len(), 16);
    assert!(event.message.contains(&after), "{}", event.message);
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

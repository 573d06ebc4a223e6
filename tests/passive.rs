//! Passive secondaries over real QUIC: a secondary in a DMZ that may not connect out is
//! registered with its address, and its parent connects to it. Shown two levels down, with
//! a secondary of its own: a group task from the primary reaches the devices of both and
//! their results come back, across a restart of the passive secondary. A server that is not
//! the pinned parent is refused when it dials it.

mod common;

use canopy::cli::deployment::{
    Deployment, config_text, free_port, parent_of, start, tree, wait_for_tree,
};
use canopy::model::task::DeviceState;
use canopy::model::{EventKind, ServerRow, ServerStatus};
use common::{
    LIMIT, create_task, named_fleet, start_task, status_of, tree_scope, until, wait_event,
};

const TOKEN: &str = "passive-tests-token-0123456789";

fn enrolling(text: String) -> String {
    format!("{text}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n")
}

fn row<'a>(rows: &'a [ServerRow], path: &str) -> &'a ServerRow {
    rows.iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no {path} in {rows:#?}"))
}

fn all_active(rows: &[ServerRow], n: usize) -> bool {
    rows.len() == n && rows.iter().all(|r| r.status == ServerStatus::Active)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_secondary_two_levels_down_with_its_own_secondary() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, admin) = common::two_tiers(&d, TOKEN).await;

    // dmz waits for branch-1 to connect to it: its config names no address.
    let dmz_port = free_port().unwrap();
    d.add_server("dmz", dmz_port, None).await.unwrap();
    let dmz_text = enrolling(format!(
        "{}\n[parent]\npassive = true\nfingerprint = \"{}\"\n",
        config_text("dmz", dmz_port, None),
        branch.node.fingerprint
    ));
    let dmz_config = d.write_config("dmz", &dmz_text).await.unwrap();
    let dmz = start(&dmz_config).await.unwrap();
    let dmz_address = format!("127.0.0.1:{dmz_port}");
    let bad = d
        .register_as(
            branch.local_addr(),
            "dmz",
            "Managed devices",
            Some("dmz:0".into()),
        )
        .await
        .unwrap_err();
    assert!(format!("{bad:#}").contains("--passive"), "{bad:#}");
    d.register_as(
        branch.local_addr(),
        "dmz",
        "Managed devices",
        Some(dmz_address.clone()),
    )
    .await
    .unwrap();
    // dmz's own secondary connects to it as any secondary does.
    let link = Some(parent_of(&dmz));
    d.add_server("dmz-a", 0, link).await.unwrap();
    let config = d
        .write_config("dmz-a", &enrolling(config_text("dmz-a", 0, link)))
        .await
        .unwrap();
    d.register(dmz.local_addr(), "dmz-a", "Managed devices")
        .await
        .unwrap();
    let dmz_a = start(&config).await.unwrap();

    let rows = wait_for_tree(&admin, LIMIT, "the whole tree up", |rows| {
        all_active(rows, 4)
    })
    .await
    .unwrap();
    let passive = row(&rows, "primary/branch-1/dmz");
    assert!(passive.passive, "{passive:#?}");
    assert_eq!(passive.address.as_deref(), Some(dmz_address.as_str()));
    assert!(!row(&rows, "primary/branch-1/dmz/dmz-a").passive);
    assert!(!row(&rows, "primary/branch-1").passive);

    // The passive secondary's own view of its link.
    let dmz_admin = d.admin(dmz.local_addr()).await.unwrap();
    let status = match dmz_admin
        .call(canopy::wire::msg::AdminRequest::ServerStatus)
        .await
        .unwrap()
    {
        canopy::wire::msg::AdminResponse::Status(status) => status,
        other => panic!("unexpected {other:?}"),
    };
    let parent = status
        .parent
        .expect("a passive secondary has a parent link");
    assert_eq!(parent.health, "up", "{parent:?}");
    assert!(parent.address.starts_with("passive"), "{parent:?}");

    // Devices below the passive secondary and below its secondary.
    let fleet_dmz = named_fleet(&d, "fleet-dmz", &dmz_address, TOKEN, 3, "").await;
    let at_a = dmz_a.local_addr().to_string();
    let fleet_a = named_fleet(&d, "fleet-dmz-a", &at_a, TOKEN, 2, "").await;
    let spec = common::simulate_spec("dmz sweep", tree_scope("Managed devices"), 50, [1, 0, 0]);
    create_task(&admin, spec).await;
    start_task(&admin, "dmz sweep", None).await;
    let run = common::wait_tree_finished(&admin, "dmz sweep", 5).await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 5, "{run:#?}");
    let below = common::results_at(&admin, "dmz sweep", "branch-1/dmz/dmz-a").await;
    assert_eq!(below.len(), 2, "{below:#?}");

    // dmz restarts on its port: branch-1 connects to it again, and a new run gets through.
    dmz_admin.close().await;
    dmz.shutdown().await.unwrap();
    wait_for_tree(&admin, LIMIT, "dmz seen down", |rows| {
        rows.iter()
            .any(|r| r.path == "primary/branch-1/dmz" && r.status != ServerStatus::Active)
    })
    .await
    .unwrap();
    let dmz = start(&dmz_config).await.unwrap();
    wait_for_tree(&admin, LIMIT, "dmz back", |rows| all_active(rows, 4))
        .await
        .unwrap();
    until("the devices back at dmz", || async {
        fleet_dmz.counts().connected == 3
    })
    .await;
    start_task(&admin, "dmz sweep", None).await;
    let run = common::wait_tree_finished(&admin, "dmz sweep", 5).await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 5, "{run:#?}");

    // The primary holds dmz's certificate too, but dmz pins branch-1: it refuses the
    // primary's connection, and the primary says why. branch-1's link is not disturbed.
    std::fs::copy(d.certs.join("dmz.pem"), d.certs.join("dmz-again.pem")).unwrap();
    d.register_as(
        primary.local_addr(),
        "dmz-again",
        "Managed devices",
        Some(dmz_address.clone()),
    )
    .await
    .unwrap();
    let dmz_admin = d.admin(dmz.local_addr()).await.unwrap();
    wait_event(
        &dmz_admin,
        EventKind::ParentRefused,
        "is not the parent's this server pins",
    )
    .await;
    let refused = wait_event(
        &admin,
        EventKind::SecondaryRefused,
        "cannot connect to the passive secondary dmz-again",
    )
    .await;
    assert!(
        refused.message.contains("not the parent"),
        "{}",
        refused.message
    );
    let rows = tree(&admin).await.unwrap();
    assert_eq!(
        status_of(&rows, "primary/branch-1/dmz"),
        Some(ServerStatus::Active)
    );
    assert_eq!(
        status_of(&rows, "primary/dmz-again"),
        Some(ServerStatus::Inactive)
    );

    dmz_admin.close().await;
    admin.close().await;
    fleet_dmz.stop().await.unwrap();
    fleet_a.stop().await.unwrap();
    dmz_a.shutdown().await.unwrap();
    dmz.shutdown().await.unwrap();
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

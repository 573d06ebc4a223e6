//! Events up the tree over real QUIC: each server's events reach the primary once each, with
//! the path of the server they happened on (a secondary's secondary, a virtual server two
//! levels down), across a restart in the middle; `event list` filters them by server.

mod common;

use std::time::Duration;

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{Deployment, config_text, parent_of, start, wait_for_tree};
use canopy::model::{Event, EventFilter, EventKind, ServerStatus};
use canopy::wire::msg::{AdminRequest, AdminResponse, GroupRequest};
use common::{create_vserver, until};

const TOKEN: &str = "events-tests-token-0123456789";

fn path(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

async fn list(admin: &AdminClient, at: Option<&str>, filter: EventFilter) -> Vec<Event> {
    let request = AdminRequest::EventList {
        after: None,
        limit: canopy::wire::msg::PAGE_MAX,
        filter,
    };
    match admin.call_at(at, request).await.unwrap() {
        AdminResponse::Events { events, .. } => events,
        other => panic!("unexpected {other:?}"),
    }
}

async fn create_group(admin: &AdminClient, at: &str, name: &str) {
    let create = GroupRequest::Create {
        path: format!("Managed devices/{name}"),
    };
    admin
        .call_at(Some(at), AdminRequest::Group(create))
        .await
        .unwrap();
}

/// The primary's events of `kind` from the server at `origin` whose message has `text`.
async fn at_primary(admin: &AdminClient, origin: &str, text: &str) -> Vec<Event> {
    let filter = EventFilter {
        server: Some(path(origin)),
        kind: Some(EventKind::GroupChanged),
        ..EventFilter::default()
    };
    list(admin, None, filter)
        .await
        .into_iter()
        .filter(|e| e.message.contains(text))
        .collect()
}

async fn arrives_once(admin: &AdminClient, origin: &str, text: &str) {
    until(&format!("{text} from {origin} at the primary"), || async {
        !at_primary(admin, origin, text).await.is_empty()
    })
    .await;
    assert_eq!(at_primary(admin, origin, text).await.len(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_servers_events_reach_the_primary_once_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, admin) = common::two_tiers(&d, TOKEN).await;
    // branch-1's own secondary, and a virtual server it hosts.
    let link = Some(parent_of(&branch));
    d.add_server("branch-1a", 0, link).await.unwrap();
    let text = config_text("branch-1a", 0, link);
    let config = d.write_config("branch-1a", &text).await.unwrap();
    d.register(branch.local_addr(), "branch-1a", "Managed devices")
        .await
        .unwrap();
    let below = start(&config).await.unwrap();
    let branch_admin = d.admin(branch.local_addr()).await.unwrap();
    create_vserver(&branch_admin, "tenant-b", "Managed devices").await;
    wait_for_tree(&admin, Duration::from_secs(30), "the tree up", |rows| {
        rows.len() == 4 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();

    create_group(&admin, "branch-1/branch-1a", "Lyon").await;
    create_group(&admin, "branch-1/tenant-b", "Tenant office").await;
    create_group(&admin, "branch-1", "Branch office").await;
    arrives_once(&admin, "branch-1/branch-1a", "Lyon").await;
    arrives_once(&admin, "branch-1/tenant-b", "Tenant office").await;
    arrives_once(&admin, "branch-1", "Branch office").await;

    // By server: branch-1's own, or with everything below it.
    let own = EventFilter {
        server: Some(path("branch-1")),
        ..EventFilter::default()
    };
    let events = list(&admin, None, own.clone()).await;
    assert!(
        events.iter().all(|e| e.origin == ["branch-1"]),
        "{events:?}"
    );
    let subtree = EventFilter {
        subtree: true,
        ..own
    };
    let events = list(&admin, None, subtree).await;
    for origin in ["branch-1", "branch-1/branch-1a", "branch-1/tenant-b"] {
        assert!(
            events.iter().any(|e| e.origin == path(origin)),
            "nothing from {origin}"
        );
    }
    // The tenant's own log holds its own events only, as its administrators see it.
    let tenant = list(&admin, Some("branch-1/tenant-b"), EventFilter::default()).await;
    assert!(!tenant.is_empty());
    assert!(tenant.iter().all(|e| e.origin.is_empty()), "{tenant:?}");

    // branch-1 stops and comes back on its address: nothing is sent up twice, and new
    // events still come.
    let port = branch.local_addr().port();
    branch_admin.close().await;
    branch.shutdown().await.unwrap();
    let text = std::fs::read_to_string(d.dir.join("branch-1.toml"))
        .unwrap()
        .replace("127.0.0.1:0\"", &format!("127.0.0.1:{port}\""));
    let config_1 = d.write_config("branch-1", &text).await.unwrap();
    assert_eq!(config_1.listen.port(), port);
    // Made while its parent is down: it goes up once the link is back.
    let direct = d.admin(below.local_addr()).await.unwrap();
    let create = GroupRequest::Create {
        path: "Managed devices/Grenoble".into(),
    };
    direct.call(AdminRequest::Group(create)).await.unwrap();
    direct.close().await;
    let branch = start(&config_1).await.unwrap();
    // Seen from branch-1 itself: the primary shows its last report until a new one comes.
    let branch_admin = d.admin(branch.local_addr()).await.unwrap();
    wait_for_tree(
        &branch_admin,
        Duration::from_secs(60),
        "branch-1's links back",
        |rows| rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active),
    )
    .await
    .unwrap();
    branch_admin.close().await;
    create_group(&admin, "branch-1/tenant-b", "Second office").await;
    arrives_once(&admin, "branch-1/tenant-b", "Second office").await;
    arrives_once(&admin, "branch-1/branch-1a", "Grenoble").await;
    for (origin, text) in [
        ("branch-1/branch-1a", "Lyon"),
        ("branch-1/tenant-b", "Tenant office"),
        ("branch-1", "Branch office"),
    ] {
        assert_eq!(at_primary(&admin, origin, text).await.len(), 1, "{text}");
    }
    below.shutdown().await.unwrap();
    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

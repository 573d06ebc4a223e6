//! Administration groups over the real admin API: QUIC, TLS, a real redb file, a restart.

use canopy::cli::client::{AdminClient, ClientError};
use canopy::cli::deployment::{Deployment, free_port, parent_of, start, tree};
use canopy::wire::msg::{
    AdminRequest, AdminResponse, ErrorKind, GroupRequest, GroupView, PAGE_MAX,
};

async fn group(client: &AdminClient, request: GroupRequest) -> Result<String, ClientError> {
    match client.call(AdminRequest::Group(request)).await? {
        AdminResponse::Done { message } => Ok(message),
        other => panic!("unexpected {other:?}"),
    }
}

/// Every group, page by page.
async fn list(client: &AdminClient) -> Vec<GroupView> {
    client.groups().await.unwrap()
}

/// One page of at most `limit` groups after the group path `after`, and its `next`.
async fn page(
    client: &AdminClient,
    after: Option<String>,
    limit: u32,
) -> (Vec<GroupView>, Option<String>) {
    let request = AdminRequest::Group(GroupRequest::List { after, limit });
    match client.call(request).await.unwrap() {
        AdminResponse::Groups { groups, next } => (groups, next),
        other => panic!("unexpected {other:?}"),
    }
}

async fn paths(client: &AdminClient) -> Vec<String> {
    list(client).await.into_iter().map(|g| g.path).collect()
}

fn create(path: &str) -> GroupRequest {
    GroupRequest::Create { path: path.into() }
}

/// Asserts that `request` is refused with `kind` and a message containing `text`, and that
/// the tree did not change.
async fn refused(client: &AdminClient, request: GroupRequest, kind: ErrorKind, text: &str) {
    let before = list(client).await;
    match group(client, request.clone()).await {
        Err(ClientError::Server { kind: got, message }) => {
            assert_eq!(got, kind, "{request:?}: {message}");
            assert!(message.contains(text), "{request:?}: {message:?}");
        }
        other => panic!("{request:?} was not refused: {other:?}"),
    }
    assert_eq!(list(client).await, before, "{request:?} changed the tree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_a_tree_that_secondaries_follow_and_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let config = d
        .add_server("primary", free_port().unwrap(), None)
        .await
        .unwrap();
    let primary = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();

    // A new server has the two roots, empty.
    let roots = list(&admin).await;
    assert_eq!(
        roots,
        vec![
            GroupView {
                id: 1,
                path: "Managed devices".into(),
                depth: 0,
                subgroups: 0,
                devices: 0,
                secondaries: 0,
            },
            GroupView {
                id: 2,
                path: "Unassigned devices".into(),
                depth: 0,
                subgroups: 0,
                devices: 0,
                secondaries: 0,
            },
        ]
    );

    // Nested groups.
    let message = group(&admin, create("Managed devices/Europe"))
        .await
        .unwrap();
    assert_eq!(message, "group \"Managed devices/Europe\" created");
    for path in [
        "Managed devices/Europe/Paris",
        " /Managed devices/Europe/Berlin/ ",
        "Managed devices/Asia",
        "Managed devices/Asia/Tokyo",
    ] {
        group(&admin, create(path)).await.unwrap();
    }
    assert_eq!(
        paths(&admin).await,
        [
            "Managed devices",
            "Managed devices/Asia",
            "Managed devices/Asia/Tokyo",
            "Managed devices/Europe",
            "Managed devices/Europe/Berlin",
            "Managed devices/Europe/Paris",
            "Unassigned devices",
        ]
    );
    let europe = list(&admin)
        .await
        .into_iter()
        .find(|g| g.path == "Managed devices/Europe")
        .unwrap();
    assert_eq!((europe.depth, europe.subgroups), (1, 2));

    // Refusals say why and change nothing.
    refused(
        &admin,
        create("Managed devices/Europe/Paris"),
        ErrorKind::AlreadyExists,
        "a group named \"Paris\" already exists in \"Managed devices/Europe\"",
    )
    .await;
    refused(
        &admin,
        create("Managed devices/Nowhere/Paris"),
        ErrorKind::NotFound,
        "no group \"Managed devices/Nowhere\"",
    )
    .await;
    refused(
        &admin,
        create(&format!("Managed devices/{}", "x".repeat(101))),
        ErrorKind::InvalidInput,
        "at most 100",
    )
    .await;
    refused(
        &admin,
        create("Unassigned devices/Later"),
        ErrorKind::InvalidInput,
        "has no subgroups",
    )
    .await;
    refused(
        &admin,
        GroupRequest::Rename {
            path: "Managed devices".into(),
            new_name: "Everything".into(),
        },
        ErrorKind::InvalidInput,
        "root group and cannot be renamed",
    )
    .await;
    refused(
        &admin,
        GroupRequest::Delete {
            path: "Unassigned devices".into(),
        },
        ErrorKind::InvalidInput,
        "root group and cannot be deleted",
    )
    .await;

    // Rename and move; `list` shows the new paths.
    group(
        &admin,
        GroupRequest::Rename {
            path: "Managed devices/Asia".into(),
            new_name: "APAC".into(),
        },
    )
    .await
    .unwrap();
    let message = group(
        &admin,
        GroupRequest::Move {
            path: "Managed devices/Europe/Berlin".into(),
            new_parent: "Managed devices/APAC".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        message,
        "group \"Managed devices/Europe/Berlin\" moved to \"Managed devices/APAC/Berlin\""
    );
    assert_eq!(
        paths(&admin).await,
        [
            "Managed devices",
            "Managed devices/APAC",
            "Managed devices/APAC/Berlin",
            "Managed devices/APAC/Tokyo",
            "Managed devices/Europe",
            "Managed devices/Europe/Paris",
            "Unassigned devices",
        ]
    );
    refused(
        &admin,
        GroupRequest::Move {
            path: "Managed devices/APAC".into(),
            new_parent: "Managed devices/APAC/Tokyo".into(),
        },
        ErrorKind::InvalidInput,
        "under itself or one of its own subgroups",
    )
    .await;
    refused(
        &admin,
        GroupRequest::Move {
            path: "Managed devices/APAC".into(),
            new_parent: "Unassigned devices".into(),
        },
        ErrorKind::InvalidInput,
        "has no subgroups",
    )
    .await;

    // A secondary placed in Europe: Europe cannot be deleted, and it follows a rename.
    d.add_server("branch-1", 0, Some(parent_of(&primary)))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices/Europe")
        .await
        .unwrap();
    group(
        &admin,
        GroupRequest::Delete {
            path: "Managed devices/Europe/Paris".into(),
        },
    )
    .await
    .unwrap();
    refused(
        &admin,
        GroupRequest::Delete {
            path: "Managed devices/Europe".into(),
        },
        ErrorKind::InvalidInput,
        "group \"Managed devices/Europe\" is not empty: 1 secondary",
    )
    .await;
    let message = group(
        &admin,
        GroupRequest::Rename {
            path: "Managed devices/Europe".into(),
            new_name: "EMEA".into(),
        },
    )
    .await
    .unwrap();
    assert!(message.contains("1 secondary"), "{message}");
    let rows = tree(&admin).await.unwrap();
    let branch = rows.iter().find(|r| r.path == "primary/branch-1").unwrap();
    assert_eq!(branch.group, "Managed devices/EMEA");
    let emea = list(&admin)
        .await
        .into_iter()
        .find(|g| g.path == "Managed devices/EMEA")
        .unwrap();
    assert_eq!((emea.subgroups, emea.secondaries), (0, 1));

    // Deleting an empty group works.
    let message = group(
        &admin,
        GroupRequest::Delete {
            path: "Managed devices/APAC/Tokyo".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(message, "group \"Managed devices/APAC/Tokyo\" deleted");
    refused(
        &admin,
        GroupRequest::Delete {
            path: "Managed devices/APAC/Tokyo".into(),
        },
        ErrorKind::NotFound,
        "no group \"Managed devices/APAC/Tokyo\"",
    )
    .await;
    let before = list(&admin).await;
    admin.close().await;
    primary.shutdown().await.unwrap();

    // Groups, and the secondary's place, survive a restart.
    let primary = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    assert_eq!(list(&admin).await, before);
    assert_eq!(
        paths(&admin).await,
        [
            "Managed devices",
            "Managed devices/APAC",
            "Managed devices/APAC/Berlin",
            "Managed devices/EMEA",
            "Unassigned devices",
        ]
    );
    let rows = tree(&admin).await.unwrap();
    let branch = rows.iter().find(|r| r.path == "primary/branch-1").unwrap();
    assert_eq!(branch.group, "Managed devices/EMEA");
    admin.close().await;
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_may_list_groups_but_not_change_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    admin
        .call(AdminRequest::AccountCreate {
            name: "auditor-1".into(),
            password: canopy::wire::msg::Secret("auditor password".into()),
            role: canopy::model::Role::Auditor,
        })
        .await
        .unwrap();
    let mut auditor = AdminClient::connect(primary.local_addr(), d.ca().unwrap())
        .await
        .unwrap();
    auditor
        .login("auditor-1", "auditor password")
        .await
        .unwrap();
    assert_eq!(list(&auditor).await.len(), 2);
    let err = group(&auditor, create("Managed devices/Europe"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                kind: ErrorKind::Forbidden,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(list(&admin).await.len(), 2);
    auditor.close().await;
    admin.close().await;
    primary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_come_in_pages_in_tree_order_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let primary = start(&d.add_server("primary", 0, None).await.unwrap())
        .await
        .unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    // 25 groups: five parents with four subgroups each. "p1 x" and "p1-x" sort before
    // "p1/c0" as strings (' ' and '-' come before '/'), but after p1's subtree in the tree.
    let mut created = Vec::new();
    for parent in ["p0", "p1", "p1 x", "p1-x", "p2"] {
        created.push(format!("Managed devices/{parent}"));
        for child in 0..4 {
            created.push(format!("Managed devices/{parent}/c{child}"));
        }
    }
    for path in &created {
        group(&admin, create(path)).await.unwrap();
    }
    let mut expected = vec!["Managed devices".to_string()];
    expected.extend(created);
    expected.push("Unassigned devices".into());

    // One page holds everything: the tree's order, and nothing follows.
    let (whole, next) = page(&admin, None, PAGE_MAX).await;
    let whole_paths: Vec<&str> = whole.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(whole_paths, expected);
    assert_eq!(next, None);

    // Pages of 10, each cursor the path of the page's last group: every group once, in order.
    let mut paged = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (groups, next) = page(&admin, after, 10).await;
        pages += 1;
        assert!(groups.len() == 10 || next.is_none(), "{}", groups.len());
        assert_eq!(
            next.as_ref(),
            next.as_ref().and(groups.last().map(|g| &g.path))
        );
        paged.extend(groups);
        match next {
            Some(path) => after = Some(path),
            None => break,
        }
    }
    assert_eq!((pages, &paged), (3, &whole));

    // The cursor is a position, not a group: it holds after the group it names is deleted.
    let (first, next) = page(&admin, None, 5).await;
    assert_eq!(next.as_deref(), Some("Managed devices/p0/c2"));
    group(
        &admin,
        GroupRequest::Delete {
            path: "Managed devices/p0/c2".into(),
        },
    )
    .await
    .unwrap();
    let (second, _) = page(&admin, next, 2).await;
    assert_eq!(first.len(), 5);
    let second: Vec<&str> = second.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(second, ["Managed devices/p0/c3", "Managed devices/p1"]);

    // A limit beyond PAGE_MAX is capped (all 26 fit); a limit of 0 still gives one group.
    let (capped, next) = page(&admin, None, u32::MAX).await;
    assert_eq!((capped.len(), next), (26, None));
    let (one, next) = page(&admin, None, 0).await;
    assert_eq!(one.len(), 1);
    assert_eq!(next.as_deref(), Some("Managed devices"));
    admin.close().await;
    primary.shutdown().await.unwrap();
}

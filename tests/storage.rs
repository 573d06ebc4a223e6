//! What a server keeps on disk: who may read it (files 0600, directories 0700).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use canopy::cli::deployment::Deployment;
use canopy::model::task::{DeviceState, TaskType};
use canopy::wire::msg::{AdminRequest, AdminResponse, ScopeSpec, VirtualServerRequest};
use common::{create_task, start_task, task_spec, wait_finished};

const TOKEN: &str = "storage-tests-token-0123456789";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every path given has exactly `want` as its permission bits.
fn assert_modes(paths: &[&Path], want: u32) {
    let wrong: Vec<String> = paths
        .iter()
        .filter(|p| mode(p) != want)
        .map(|p| format!("{} is {:o}", p.display(), mode(p)))
        .collect();
    assert!(wrong.is_empty(), "want {want:o}: {wrong:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_secrets_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = common::enrolling_primary(&d, TOKEN).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let data = dir.path().join("data");
    let db = data.join("primary.redb");

    // A virtual server: its directory and database beside the host's.
    let create = VirtualServerRequest::Create {
        name: "tenant-a".into(),
        group: "Managed devices".into(),
    };
    match admin
        .call(AdminRequest::VirtualServer(create))
        .await
        .unwrap()
    {
        AdminResponse::VirtualServer(_) => {}
        other => panic!("unexpected {other:?}"),
    }
    let tenants = data.join("primary.redb.vservers");

    // A backup, into a directory the server creates.
    let backups = dir.path().join("backups");
    let spec = task_spec(
        "backup",
        TaskType::Backup {
            directory: Some(backups.display().to_string()),
        },
        ScopeSpec::Server,
    );
    create_task(&admin, spec).await;
    start_task(&admin, "backup", None).await;
    let run = wait_finished(&admin, "backup").await;
    assert_eq!(run.counters.count(DeviceState::Succeeded), 1, "{run:?}");
    let copies: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");

    assert_modes(&[&data, &tenants, &backups], 0o700);
    assert_modes(
        &[
            &db,
            &data.join("primary.redb.secret-key"),
            &tenants.join("tenant-a.redb"),
            &tenants.join("tenant-a.redb.secret-key"),
            &copies[0],
            // The config the deployment wrote holds an enrollment token.
            &dir.path().join("primary.toml"),
        ],
        0o600,
    );

    admin.close().await;
    server.shutdown().await.unwrap();

    // A database left world-readable by an older version is tightened when it is opened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = db.clone();
    tokio::task::spawn_blocking(move || canopy::store::Store::open_server(&path)?.close())
        .await
        .unwrap()
        .unwrap();
    assert_modes(&[&db], 0o600);
}

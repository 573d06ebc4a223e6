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

    // A backup, into a directory the server creates inside its `backups` directory.
    let backups = server.node.config.backups.join("nightly");
    let spec = task_spec(
        "backup",
        TaskType::Backup {
            directory: Some("nightly".into()),
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

/// A tmpfs of its own, unmounted (lazily, so a file still open cannot keep it) when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_survived_and_no_acknowledged_result_is_lost() {
    let Some(disk) = SmallDisk::mount("16m") else {
        eprintln!("skipped: cannot mount a tmpfs here (this test needs root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let data = disk.path().join("primary.redb");
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        canopy::cli::deployment::config_text("primary", 0, None)
    )
    .replace("data/primary.redb", &data.display().to_string());
    let config = d.write_config("primary", &text).await.unwrap();
    canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    let server = canopy::cli::deployment::start(&config).await.unwrap();
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();
    const DEVICES: u32 = 40;
    let fleet = common::fleet(&d, addr, TOKEN, DEVICES, 3).await;
    let spec = common::simulate_spec(
        "T",
        common::group_scope("Managed devices", true),
        1500,
        [1, 0, 0],
    );
    create_task(&admin, spec).await;

    // The run starts, then the disk fills up while the devices work.
    start_task(&admin, "T", None).await;
    let filler = disk.path().join("filler");
    fill(&filler);
    let mut refused = None;
    for i in 0..400 {
        let scope = common::group_scope("Managed devices", true);
        let spec = common::simulate_spec(&format!("while full {i}"), scope, 1, [1, 0, 0]);
        let request = AdminRequest::Task(canopy::wire::msg::TaskRequest::Create(Box::new(spec)));
        if let Err(e) = admin.call(request).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let refused = refused.expect("a write fails while the disk is full");
    eprintln!("while the disk was full: {refused}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    // Space again: the server carries on, and every device's result is stored once.
    std::fs::remove_file(&filler).unwrap();
    let run = wait_finished(&admin, "T").await;
    assert_eq!(
        run.counters.count(DeviceState::Succeeded),
        u64::from(DEVICES),
        "{run:?}"
    );
    assert_eq!(common::results(&admin, "T").await.len(), DEVICES as usize);
    let spec = common::simulate_spec(
        "after",
        common::group_scope("Managed devices", true),
        1,
        [1, 0, 0],
    );
    create_task(&admin, spec).await;

    fleet.stop().await.unwrap();
    admin.close().await;
    server.shutdown().await.unwrap();

    // Restarted, the server has every result it acknowledged.
    let server = canopy::cli::deployment::start(&config).await.unwrap();
    let admin = d.admin(server.local_addr()).await.unwrap();
    let records = common::results(&admin, "T").await;
    assert_eq!(records.len(), DEVICES as usize);
    assert!(records.iter().all(|r| r.state == DeviceState::Succeeded));
    admin.close().await;
    server.shutdown().await.unwrap();
    drop(disk);
}

/// A virtual server's database left behind (a delete interrupted by a crash, a file that
/// could not be removed) is never taken over by a new virtual server of the same name: its
/// creation is refused, saying which file to move away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_virtual_server_never_takes_over_a_database_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = common::enrolling_primary(&d, TOKEN).await;
    let admin = d.admin(server.local_addr()).await.unwrap();
    let create = || {
        AdminRequest::VirtualServer(VirtualServerRequest::Create {
            name: "tenant-a".into(),
            group: "Managed devices".into(),
        })
    };
    let delete = || {
        AdminRequest::VirtualServer(VirtualServerRequest::Delete {
            name: "tenant-a".into(),
        })
    };
    admin.call(create()).await.unwrap();
    let file = dir.path().join("data/primary.redb.vservers/tenant-a.redb");
    let kept = dir.path().join("tenant-a.redb.kept");
    std::fs::copy(&file, &kept).unwrap();
    admin.call(delete()).await.unwrap();
    assert!(!file.exists());

    // The deleted tenant's database is back where a new tenant-a would keep its own.
    std::fs::copy(&kept, &file).unwrap();
    match admin.call(create()).await {
        Err(canopy::cli::client::ClientError::Server { kind, message }) => {
            assert_eq!(
                kind,
                canopy::wire::msg::ErrorKind::AlreadyExists,
                "{message}"
            );
            assert!(message.contains("tenant-a.redb"), "{message}");
        }
        other => panic!("a new tenant took over the old one's database: {other:?}"),
    }
    std::fs::remove_file(&file).unwrap();
    match admin.call(create()).await.unwrap() {
        AdminResponse::VirtualServer(view) => assert_eq!(view.name, "tenant-a"),
        other => panic!("unexpected {other:?}"),
    }
    admin.close().await;
    server.shutdown().await.unwrap();
}

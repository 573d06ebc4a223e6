use super::*;
use crate::wire::msg::LocalTaskDef;

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    store: Store,
    desk: Desk,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("agent.redb");
    let store = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || Store::open_agent(&data))
            .await
            .unwrap()
            .unwrap()
    };
    for (task_id, name) in [(7, "Nightly scan"), (8, "Twin"), (9, "Twin")] {
        let def = LocalTaskDef {
            task_id,
            name: name.into(),
            revision: 2,
            application: "Endpoint Security".into(),
            payload: TaskPayload::Inventory,
            schedule: Schedule::Manually,
        };
        store.store_local_task("dev", def).await.unwrap();
    }
    let desk = Desk::new(store.clone(), "dev".into(), &data).unwrap();
    Fixture {
        _dir: dir,
        data,
        store,
        desk,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn spool_files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool_dir(data))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn paths_next_to_the_database() {
    let data = Path::new("/var/lib/canopy/agent.redb");
    assert_eq!(
        spool_dir(data),
        Path::new("/var/lib/canopy/agent.redb.edits")
    );
    assert_eq!(
        snapshot_path(data),
        Path::new("/var/lib/canopy/agent.redb.local-tasks.json")
    );
}

#[test]
fn resolve_by_id_then_name() {
    let tasks = [(7, "Nightly scan"), (8, "Twin"), (9, "Twin"), (10, "7")];
    let tasks = tasks.iter().map(|(id, name)| (*id, *name));
    assert_eq!(resolve(tasks.clone(), "7"), Ok(7));
    assert_eq!(resolve(tasks.clone(), "#8"), Ok(8));
    assert_eq!(resolve(tasks.clone(), " Nightly scan "), Ok(7));
    let e = resolve(tasks.clone(), "Twin").unwrap_err();
    assert!(e.contains("ids 8, 9"), "{e}");
    let e = resolve(tasks.clone(), "nightly scan").unwrap_err();
    assert!(e.contains("no local task"), "{e}");
    assert!(resolve(tasks, "11").is_err());
}

#[tokio::test]
async fn request_file_is_private_and_complete() {
    let f = fixture().await;
    assert_eq!(mode(&spool_dir(&f.data)), 0o700);
    let e = write_edit_request(&f.data, "7", "sometimes").unwrap_err();
    assert!(e.to_string().contains("sometimes"), "{e}");
    assert!(write_edit_request(&f.data, "  ", "manual").is_err());
    assert!(
        spool_files(&f.data).is_empty(),
        "nothing written for a bad request"
    );

    let path = write_edit_request(&f.data, "Nightly scan", "WEEKLY:Mon@9:00").unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(is_request_name(&name), "{name}");
    assert_eq!(spool_files(&f.data), [name]);
    assert_eq!(mode(&path), 0o600);
    let request: EditRequest =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(request.task, "Nightly scan");
    assert_eq!(request.schedule, "weekly:mon@09:00");

    // A spool made too open is restricted again.
    std::fs::set_permissions(spool_dir(&f.data), std::fs::Permissions::from_mode(0o755)).unwrap();
    write_edit_request(&f.data, "7", "manual").unwrap();
    assert_eq!(mode(&spool_dir(&f.data)), 0o700);
    f.store.close().unwrap();
}

#[tokio::test]
async fn valid_request_becomes_a_pending_edit() {
    let f = fixture().await;
    let path = write_edit_request(&f.data, "Nightly scan", "weekly:mon@09:00").unwrap();
    // Half-written files of a writer are not looked at.
    std::fs::write(spool_dir(&f.data).join(".x.json.1234.tmp"), "{").unwrap();

    let done = f.desk.pick_up().await.unwrap();
    assert_eq!(
        done,
        PickedUp {
            accepted: 1,
            unchanged: 0,
            rejected: 0
        }
    );
    assert!(!path.exists());
    assert_eq!(spool_files(&f.data), [".x.json.1234.tmp"]);
    let task = f.store.local_tasks("dev").await.unwrap().remove(0);
    assert_eq!(
        task.pending_edit,
        Some(PendingEdit {
            base_revision: 2,
            schedule: Schedule::parse("weekly:mon@09:00").unwrap(),
        })
    );
    // The link hears of it.
    tokio::time::timeout(Duration::from_secs(1), f.desk.edited())
        .await
        .unwrap();

    // The snapshot shows it, readable by its owner only.
    f.desk.write_snapshot().await.unwrap();
    assert_eq!(mode(&snapshot_path(&f.data)), 0o600);
    let snapshot = read_snapshot(&f.data).unwrap().unwrap();
    assert_eq!(snapshot.device_id, "dev");
    assert_eq!(snapshot.tasks.len(), 3);
    let edit = snapshot.tasks[0].pending_edit.as_ref().unwrap();
    assert_eq!(
        (edit.base_revision, edit.schedule.as_str()),
        (2, "weekly:mon@09:00")
    );
    assert_eq!(snapshot.tasks[0].schedule, "manual");

    // The schedule a task already has (with nothing pending) changes nothing.
    write_edit_request(&f.data, "8", "manual").unwrap();
    let done = f.desk.pick_up().await.unwrap();
    assert_eq!(done.unchanged, 1);
    assert_eq!(spool_files(&f.data), [".x.json.1234.tmp"]);
    assert!(
        f.store.local_tasks("dev").await.unwrap()[1]
            .pending_edit
            .is_none()
    );
    f.store.close().unwrap();
}

#[tokio::test]
async fn the_revision_the_user_saw_is_the_base() {
    let f = fixture().await;
    f.desk.write_snapshot().await.unwrap();
    let path = write_edit_request(&f.data, "Nightly scan", "app-start").unwrap();
    let request: EditRequest =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(request.base_revision, Some(2));
    // An administrator's change arrives before the agent takes the request.
    let def = LocalTaskDef {
        task_id: 7,
        name: "Nightly scan".into(),
        revision: 3,
        application: "Endpoint Security".into(),
        payload: TaskPayload::Inventory,
        schedule: Schedule::Immediately,
    };
    f.store.store_local_task("dev", def).await.unwrap();
    assert_eq!(f.desk.pick_up().await.unwrap().accepted, 1);
    let edit = f.store.local_tasks("dev").await.unwrap()[0]
        .pending_edit
        .clone()
        .unwrap();
    assert_eq!(edit.base_revision, 2, "the server must see the race");
    f.store.close().unwrap();
}

#[tokio::test]
async fn invalid_requests_are_moved_aside_with_the_reason() {
    let f = fixture().await;
    let spool = spool_dir(&f.data);
    let unknown = write_edit_request(&f.data, "Nobody", "manual").unwrap();
    let ambiguous = write_edit_request(&f.data, "Twin", "manual").unwrap();
    let garbage = spool.join("0000000000001-garbage.json");
    std::fs::write(&garbage, "task = 7\n").unwrap();
    let bad_schedule = spool.join("0000000000002-bad.json");
    let request = EditRequest {
        task: "7".into(),
        schedule: "every full moon".into(),
        base_revision: None,
        requested_at_ms: 2,
    };
    std::fs::write(&bad_schedule, serde_json::to_string(&request).unwrap()).unwrap();

    let done = f.desk.pick_up().await.unwrap();
    assert_eq!(
        done,
        PickedUp {
            accepted: 0,
            unchanged: 0,
            rejected: 4
        }
    );
    for (path, reason) in [
        (&unknown, "no local task \"Nobody\""),
        (&ambiguous, "give the id"),
        (&garbage, "not a change request"),
        (&bad_schedule, "every full moon"),
    ] {
        assert!(!path.exists());
        let text = std::fs::read_to_string(with_suffix(path, REJECTED_SUFFIX)).unwrap();
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("rejected: ") && last.contains(reason),
            "{text}"
        );
    }
    // Rejected files are not looked at again, and nothing became pending.
    assert_eq!(f.desk.pick_up().await.unwrap(), PickedUp::default());
    let (waiting, rejected) = spooled(&f.data).unwrap();
    assert_eq!((waiting.len(), rejected.len()), (0, 4));
    let tasks = f.store.local_tasks("dev").await.unwrap();
    assert!(tasks.iter().all(|t| t.pending_edit.is_none()));
    f.store.close().unwrap();
}

#[tokio::test]
async fn the_running_agent_polls_the_spool() {
    let f = fixture().await;
    let desk = std::sync::Arc::new(f.desk);
    let (stop, stopped) = watch::channel(false);
    let spool = tokio::spawn(run_spool(desk.clone(), stopped.clone()));
    let snapshots = tokio::spawn(run_snapshots(desk.clone(), stopped));
    let path = write_edit_request(&f.data, "#9", "monthly:1@08:00").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let snapshot = read_snapshot(&f.data).unwrap();
        let pending = snapshot.is_some_and(|s| s.tasks[2].pending_edit.is_some());
        if pending && !path.exists() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send_replace(true);
    spool.await.unwrap();
    snapshots.await.unwrap();
    f.store.close().unwrap();
}

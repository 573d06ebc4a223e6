//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod binary;
pub mod process;
pub mod raw_agent;

use std::time::Duration;

use canopy::cli::client::AdminClient;
use canopy::model::{Event, EventKind, ServerRow, ServerStatus};
use canopy::wire::msg::{AdminRequest, AdminResponse};

/// How long any test waits for the tree to settle before it fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// The status of the server at `path` in `rows`, if listed.
pub fn status_of(rows: &[ServerRow], path: &str) -> Option<ServerStatus> {
    rows.iter().find(|r| r.path == path).map(|r| r.status)
}

/// The server's newest 1000 events of its own (not those of the servers below it), oldest
/// first.
pub async fn events(client: &AdminClient) -> Vec<Event> {
    let own = canopy::model::EventFilter {
        server: Some(Vec::new()),
        ..canopy::model::EventFilter::default()
    };
    match client
        .call(AdminRequest::EventList {
            after: None,
            limit: 1000,
            filter: own,
        })
        .await
        .unwrap()
    {
        AdminResponse::Events { events, .. } => events,
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits until `check` holds, polling; fails the test after `LIMIT`.
pub async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the server's event log has an event of `kind` whose message contains `text`.
pub async fn wait_event(client: &AdminClient, kind: EventKind, text: &str) -> Event {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let all = events(client).await;
        if let Some(e) = all
            .iter()
            .find(|e| e.kind == kind && e.message.contains(text))
        {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind:?} event with {text:?} in {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- Tasks ----

use canopy::model::schedule::{Schedule, ScheduleOptions};
use canopy::model::task::{DeviceRunRecord, Notify, RestartPolicy, TaskPayload, TaskType};
use canopy::wire::msg::{RunView, ScopeSpec, TaskRequest, TaskSpec, TaskView};

/// A simulated task of `duration_ms` with the given outcome weights, default settings.
pub fn simulate_spec(
    name: &str,
    scope: ScopeSpec,
    duration_ms: u32,
    weights: [u32; 3],
) -> TaskSpec {
    task_spec(
        name,
        TaskType::Device(TaskPayload::Simulate {
            duration_ms,
            succeeded: weights[0],
            warning: weights[1],
            failed: weights[2],
            need_restart_percent: 0,
        }),
        scope,
    )
}

pub fn task_spec(name: &str, task_type: TaskType, scope: ScopeSpec) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        task_type,
        application: None,
        scope,
        restart: RestartPolicy::default(),
        schedule: Schedule::Manually,
        schedule_options: ScheduleOptions::default(),
        account: None,
        notify: Notify::default(),
        store_history_days: 30,
        comment: None,
    }
}

pub fn group_scope(path: &str, include_subgroups: bool) -> ScopeSpec {
    ScopeSpec::Group {
        path: path.into(),
        include_subgroups,
        include_secondaries: false,
    }
}

pub async fn create_task(admin: &AdminClient, spec: TaskSpec) -> TaskView {
    match admin
        .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
        .await
        .unwrap()
    {
        AdminResponse::Task(view) => *view,
        other => panic!("unexpected {other:?}"),
    }
}

/// Starts `task` (for `devices` if given); the run and the entries skipped.
pub async fn start_task(
    admin: &AdminClient,
    task: &str,
    devices: Option<Vec<String>>,
) -> (RunView, Vec<String>) {
    let request = TaskRequest::Start {
        task: task.into(),
        devices,
    };
    match admin.call(AdminRequest::Task(request)).await.unwrap() {
        AdminResponse::TaskStarted { run, skipped } => (run, skipped),
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn stats(admin: &AdminClient, task: &str) -> RunView {
    let request = TaskRequest::Stats {
        task: task.into(),
        run: None,
    };
    match admin.call(AdminRequest::Task(request)).await.unwrap() {
        AdminResponse::TaskStats(run) => run,
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn show_task(admin: &AdminClient, task: &str) -> TaskView {
    let request = TaskRequest::Show { task: task.into() };
    match admin.call(AdminRequest::Task(request)).await.unwrap() {
        AdminResponse::Task(view) => *view,
        other => panic!("unexpected {other:?}"),
    }
}

/// The per-device records of the task's last run, with details (every page).
pub async fn results(admin: &AdminClient, task: &str) -> Vec<DeviceRunRecord> {
    let request = TaskRequest::Results {
        task: task.into(),
        run: None,
        state: None,
        details: true,
        server: None,
        after: None,
        limit: canopy::wire::msg::PAGE_MAX,
    };
    admin.results(request).await.unwrap().1
}

/// Waits until every targeted device of the task's last run has finished.
pub async fn wait_finished(admin: &AdminClient, task: &str) -> RunView {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let run = stats(admin, task).await;
        if run.counters.finished() == run.counters.total() {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {task} did not finish: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The error a request gets.
pub async fn refused(admin: &AdminClient, request: TaskRequest) -> String {
    match admin.call(AdminRequest::Task(request)).await {
        Err(canopy::cli::client::ClientError::Server { message, .. }) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A simulated fleet of `devices` enrolled with `token`, once every device is connected.
pub async fn fleet(
    d: &canopy::cli::deployment::Deployment,
    server: std::net::SocketAddr,
    token: &str,
    devices: u32,
    seed: u64,
) -> canopy::agent::Agents {
    let fleet = canopy::agent::Agents::start(
        d.agent_config("fleet", server, Some(token)).unwrap(),
        Some(canopy::agent::Simulation { devices, seed }),
    )
    .await
    .unwrap();
    until(&format!("{devices} devices connected"), || async {
        fleet.counts().connected == devices as usize
    })
    .await;
    fleet
}

/// A group task scope with secondary and virtual servers included.
pub fn tree_scope(path: &str) -> ScopeSpec {
    ScopeSpec::Group {
        path: path.into(),
        include_subgroups: true,
        include_secondaries: true,
    }
}

/// The per-device records of the task's last run held by the server at `server` below.
pub async fn results_at(admin: &AdminClient, task: &str, server: &str) -> Vec<DeviceRunRecord> {
    let request = TaskRequest::Results {
        task: task.into(),
        run: None,
        state: None,
        details: false,
        server: Some(server.into()),
        after: None,
        limit: canopy::wire::msg::PAGE_MAX,
    };
    admin.results(request).await.unwrap().1
}

/// Waits until the task's last run has `devices` devices, all finished, across the tree.
pub async fn wait_tree_finished(admin: &AdminClient, task: &str, devices: u64) -> RunView {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let run = stats(admin, task).await;
        if run.counters.total() == devices && run.counters.finished() == devices {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {task} did not finish on {devices} devices: {run:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A primary on loopback that enrolls devices presenting `token` into "Managed devices".
pub async fn enrolling_primary(
    d: &canopy::cli::deployment::Deployment,
    token: &str,
) -> canopy::server::RunningServer {
    use canopy::cli::deployment::{config_text, start};
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{token}\"\ngroup = \"Managed devices\"\n",
        config_text("primary", 0, None)
    );
    let config = d.write_config("primary", &text).await.unwrap();
    canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    start(&config).await.unwrap()
}

/// A fleet named `name` of `n` simulated devices at `address` (as an agent config gives
/// it), whose agent config ends with `extra`, once all are connected.
pub async fn named_fleet(
    d: &canopy::cli::deployment::Deployment,
    name: &str,
    address: &str,
    token: &str,
    n: u32,
    extra: &str,
) -> canopy::agent::Agents {
    drop(d.agent_config_at(name, address, Some(token)).unwrap());
    let path = d.dir.join(format!("{name}.agent.toml"));
    let text = std::fs::read_to_string(&path).unwrap() + extra;
    std::fs::write(&path, text).unwrap();
    let config = canopy::agent::config::AgentConfig::load(&path).unwrap();
    let seed = name.len() as u64;
    let fleet =
        canopy::agent::Agents::start(config, Some(canopy::agent::Simulation { devices: n, seed }))
            .await
            .unwrap();
    until(&format!("{name}: {n} devices connected"), || async {
        fleet.counts().connected == n as usize
    })
    .await;
    fleet
}

/// A primary and its secondary "branch-1", both enrolling devices with `token` into
/// "Managed devices", once the branch is up; with an administrator logged in at the primary.
pub async fn two_tiers(
    d: &canopy::cli::deployment::Deployment,
    token: &str,
) -> (
    canopy::server::RunningServer,
    canopy::server::RunningServer,
    AdminClient,
) {
    two_tiers_with(d, token, "").await
}

/// [`two_tiers`], with `extra` at the end of both servers' configs.
pub async fn two_tiers_with(
    d: &canopy::cli::deployment::Deployment,
    token: &str,
    extra: &str,
) -> (
    canopy::server::RunningServer,
    canopy::server::RunningServer,
    AdminClient,
) {
    use canopy::cli::deployment::{config_text, parent_of, start, wait_for_tree};
    let text = |name: &str, parent| {
        format!(
            "{}\n[[enrollment]]\ntoken = \"{token}\"\ngroup = \"Managed devices\"\n{extra}",
            config_text(name, 0, parent)
        )
    };
    d.add_server("primary", 0, None).await.unwrap();
    let config = d
        .write_config("primary", &text("primary", None))
        .await
        .unwrap();
    let primary = start(&config).await.unwrap();
    let link = Some(parent_of(&primary));
    d.add_server("branch-1", 0, link).await.unwrap();
    let config = d
        .write_config("branch-1", &text("branch-1", link))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let branch = start(&config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, Duration::from_secs(30), "the branch up", |rows| {
        rows.len() == 2
            && rows
                .iter()
                .all(|r| r.status == canopy::model::ServerStatus::Active)
    })
    .await
    .unwrap();
    (primary, branch, admin)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Asserts that no file under `dir` holds `secret`, but those named `except`; returns the
/// files searched.
pub fn assert_in_no_file(
    dir: &std::path::Path,
    secret: &str,
    except: &[&str],
) -> Vec<std::path::PathBuf> {
    let files = files_under(dir);
    for file in &files {
        if except.iter().any(|name| file.ends_with(name)) {
            continue;
        }
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
    files
}

/// A virtual server `name` of the server `admin` is logged in to, placed in `group`; its
/// enrollment token.
pub async fn create_vserver(admin: &AdminClient, name: &str, group: &str) -> String {
    let create = canopy::wire::msg::VirtualServerRequest::Create {
        name: name.into(),
        group: group.into(),
    };
    match admin
        .call(AdminRequest::VirtualServer(create))
        .await
        .unwrap()
    {
        AdminResponse::VirtualServer(view) => view.enrollment_token.0,
        other => panic!("unexpected {other:?}"),
    }
}

//! A server killed with SIGKILL and started again: its peers must learn of the restart at once
//! (a stateless reset from a key kept across restarts) rather than wait out their idle
//! timeout, and a stop given afterwards must reach every device still running the run.
//! Everything below the killed server runs with the default link timers, as an
//! administrator would run it.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canopy::agent::run::CANCELLED_BY_ADMIN;
use canopy::cli::client::AdminClient;
use canopy::cli::deployment::{Deployment, free_port, parent_of, start, wait_for_tree};
use canopy::model::task::DeviceState;
use canopy::model::{Fingerprint, RunRef, ServerStatus};
use canopy::wire::msg::{AdminRequest, AdminResponse, TaskRequest};
use common::{create_task, simulate_spec, start_task, stats, tree_scope, until};

const TOKEN: &str = "restart-tests-token-0123456789ab";
/// Devices on the killed middle server and on the secondary below it.
const DEVICES: u32 = 10;
/// How long after the restart every peer below may take to be connected again.
const RECONNECT_BOUND: Duration = Duration::from_secs(8);

/// A server config with the default link timers (30 s idle timeout, 5 s keep-alive).
fn server_text(name: &str, port: u16, parent: Option<(SocketAddr, Fingerprint)>) -> String {
    let mut text = format!(
        "name = \"{name}\"\ndata = \"data/{name}.redb\"\nlisten = \"127.0.0.1:{port}\"\n\n\
         [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{name}.pem\"\nkey = \"certs/{name}.key\"\n\n\
         [[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n"
    );
    if let Some((addr, fingerprint)) = parent {
        text.push_str(&format!(
            "\n[parent]\naddress = \"{}\"\nport = {}\nfingerprint = \"{fingerprint}\"\n",
            addr.ip(),
            addr.port()
        ));
    }
    text
}

/// A simulated fleet on `server` with the agent's default link timers.
async fn fleet(d: &Deployment, name: &str, server: SocketAddr, seed: u64) -> canopy::agent::Agents {
    let path = d.dir.join(format!("{name}.agent.toml"));
    let text = format!(
        "server = \"{server}\"\nca = \"certs/ca.pem\"\ndata = \"data/{name}.agent.redb\"\n\
         name = \"{name}\"\ntoken = \"{TOKEN}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    let config = canopy::agent::config::AgentConfig::load(&path).unwrap();
    let agents = canopy::agent::Agents::start(
        config,
        Some(canopy::agent::Simulation {
            devices: DEVICES,
            seed,
        }),
    )
    .await
    .unwrap();
    until("the fleet connected", || async {
        agents.counts().connected == DEVICES as usize
    })
    .await;
    agents
}

struct Process(Child);

impl Process {
    fn serve(d: &Deployment, name: &str) -> Process {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.dir.join(format!("{name}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .current_dir(&d.dir)
            .args(["serve", "--config", &format!("{name}.toml")])
            .env("CANOPY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Process(child)
    }

    /// SIGKILL: no close frame reaches any peer.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Devices the server at `addr` counts as connected now, or `None` if it does not answer.
async fn connected_devices(d: &Deployment, addr: SocketAddr) -> Option<usize> {
    let admin = d.admin(addr).await.ok()?;
    let devices = admin.devices(None, true).await.ok();
    admin.close().await;
    Some(devices?.iter().filter(|dv| dv.connected).count())
}

async fn stop(admin: &AdminClient, task: &str) {
    let request = TaskRequest::Stop { task: task.into() };
    match admin.call(AdminRequest::Task(request)).await.unwrap() {
        AdminResponse::TaskStats(_) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_of_a_killed_server_reconnect_at_once_and_a_stop_reaches_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    d.add_server("primary", 0, None).await.unwrap();
    let config = d
        .write_config("primary", &server_text("primary", 0, None))
        .await
        .unwrap();
    let primary = start(&config).await.unwrap();
    let port = free_port().unwrap();
    let middle_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let link = Some(parent_of(&primary));
    d.add_server("branch-1", port, link).await.unwrap();
    d.write_config("branch-1", &server_text("branch-1", port, link))
        .await
        .unwrap();
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await
        .unwrap();
    let middle = Process::serve(&d, "branch-1");
    let middle_link = Some((middle_addr, d.fingerprint("branch-1").unwrap()));
    d.add_server("branch-1a", 0, middle_link).await.unwrap();
    let leaf_config = d
        .write_config("branch-1a", &server_text("branch-1a", 0, middle_link))
        .await
        .unwrap();
    until("the middle secondary answering", || async {
        d.admin(middle_addr).await.is_ok()
    })
    .await;
    d.register(middle_addr, "branch-1a", "Managed devices")
        .await
        .unwrap();
    let leaf = start(&leaf_config).await.unwrap();
    let admin = d.admin(primary.local_addr()).await.unwrap();
    wait_for_tree(&admin, common::LIMIT, "every link", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await
    .unwrap();
    let on_middle = fleet(&d, "middle-fleet", middle_addr, 5).await;
    let on_leaf = fleet(&d, "leaf-fleet", leaf.local_addr(), 6).await;

    // Long enough that no device finishes before the stop.
    let spec = simulate_spec("Long run", tree_scope("Managed devices"), 90_000, [1, 0, 0]);
    create_task(&admin, spec).await;
    start_task(&admin, "Long run", None).await;
    until("every device below the middle running", || async {
        let run = stats(&admin, "Long run").await;
        let running = |path: &str| {
            run.servers.iter().any(|s| {
                s.reported
                    && s.path == path
                    && s.counters.count(DeviceState::Running) == DEVICES as u64
            })
        };
        running("primary/branch-1") && running("primary/branch-1/branch-1a")
    })
    .await;

    middle.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted_ms = canopy::clock::now_ms();
    let restarted = Instant::now();
    let _middle = Process::serve(&d, "branch-1");
    // Measured up to well past the idle timeout, so a failure says how long it took.
    let deadline = restarted + Duration::from_secs(45);
    let (mut devices_back, mut leaf_back) = (None, None);
    while (devices_back.is_none() || leaf_back.is_none()) && Instant::now() < deadline {
        if devices_back.is_none()
            && connected_devices(&d, middle_addr).await == Some(DEVICES as usize)
        {
            devices_back = Some(restarted.elapsed());
        }
        let since = leaf.node.parent_link().and_then(|l| l.connected_since);
        if leaf_back.is_none() && since.is_some_and(|at| at >= restarted_ms) {
            leaf_back = Some(restarted.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("after the restart: devices back in {devices_back:?}, secondary in {leaf_back:?}");
    for (what, took) in [("its devices", devices_back), ("its secondary", leaf_back)] {
        assert!(
            took.is_some_and(|t| t <= RECONNECT_BOUND),
            "{what} reconnected after {took:?}, not within {RECONNECT_BOUND:?}"
        );
    }

    stop(&admin, "Long run").await;
    for path in ["branch-1", "branch-1/branch-1a"] {
        let request = TaskRequest::Results {
            task: "Long run".into(),
            run: None,
            state: None,
            details: false,
            server: Some(path.into()),
            after: None,
            limit: canopy::wire::msg::PAGE_MAX,
        };
        let deadline = Instant::now() + common::LIMIT;
        loop {
            let AdminResponse::TaskResults { records, .. } = admin
                .call(AdminRequest::Task(request.clone()))
                .await
                .unwrap()
            else {
                panic!("unexpected answer");
            };
            if records.len() == DEVICES as usize && records.iter().all(|r| r.state.is_finished()) {
                assert!(
                    records
                        .iter()
                        .all(|r| r.state == DeviceState::Failed
                            && r.description == CANCELLED_BY_ADMIN),
                    "{path}: every running device must end cancelled: {records:#?}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: the stop did not reach every device: {records:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    admin.close().await;
    on_middle.stop().await.unwrap();
    on_leaf.stop().await.unwrap();
    leaf.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
}

/// A stop given while a device that runs the run is away reaches it when it connects again:
/// its order comes again, then the cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_given_while_a_device_is_away_reaches_it_when_it_connects_again() {
    use canopy::wire::msg::{AgentToServer, RunResult, ServerToAgent};
    use common::raw_agent::{RawAgent, RawIdentity, facts};
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        canopy::cli::deployment::config_text("primary", 0, None)
    );
    let config = d.write_config("primary", &text).await.unwrap();
    canopy::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30).unwrap();
    let primary = start(&config).await.unwrap();
    let addr = primary.local_addr();
    let admin = d.admin(addr).await.unwrap();
    let id = RawIdentity::new("away");
    let mut agent = RawAgent::connect(&d, addr, &id, Some(TOKEN), facts("away"), None).await;
    assert!(matches!(agent.next().await, ServerToAgent::Accepted { .. }));

    let scope = common::group_scope("Managed devices", true);
    create_task(&admin, simulate_spec("long", scope, 600_000, [1, 0, 0])).await;
    let (run, _) = start_task(&admin, "long", None).await;
    let order = loop {
        if let ServerToAgent::Run(order) = agent.next().await {
            break order;
        }
    };
    assert_eq!(order.run, RunRef::Ordered(run.run_id));
    let run = order.run;
    agent.send(&AgentToServer::Received { run }).await;
    agent.send(&AgentToServer::Started { run, at: 1 }).await;
    until("the device runs the run", || async {
        stats(&admin, "long")
            .await
            .counters
            .count(DeviceState::Running)
            == 1
    })
    .await;
    agent.close().await;
    until("the device is away", || async {
        connected_devices(&d, addr).await == Some(0)
    })
    .await;
    stop(&admin, "long").await;

    // Back: the order again (it may have missed it), then the cancel.
    let mut agent = RawAgent::connect(&d, addr, &id, Some(TOKEN), facts("away"), None).await;
    let mut seen = Vec::new();
    loop {
        let msg = agent.next().await;
        seen.push(format!("{msg:?}"));
        if msg == (ServerToAgent::Cancel { run }) {
            break;
        }
        assert!(seen.len() < 10, "no cancel in {seen:#?}");
    }
    let result = RunResult {
        run,
        started: 1,
        finished: 2,
        outcome: canopy::model::task::Outcome::failed(CANCELLED_BY_ADMIN),
    };
    agent.send(&AgentToServer::Result(result)).await;
    until("the device ended cancelled", || async {
        stats(&admin, "long")
            .await
            .counters
            .count(DeviceState::Failed)
            == 1
    })
    .await;
    agent.close().await;
    primary.shutdown().await.unwrap();
}

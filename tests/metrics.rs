//! Prometheus metrics over real HTTP on loopback: a primary hosting a virtual server and
//! its secondary, each physical one with a simulated fleet, scraped before and after a
//! group task's run over the tree; every exposition is parsed by an OpenMetrics parser,
//! which refuses a malformed one. And the `[metrics]` address refused when it is not one,
//! or when its port is taken.

mod common;

use std::net::SocketAddr;

use canopy::cli::deployment::{Deployment, start};
use canopy::wire::msg::TaskRequest;
use common::{create_task, simulate_spec, start_task, tree_scope, until, wait_tree_finished};
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "metrics-tests-token-0123456789";
const PRIMARY_DEVICES: u32 = 4;
const BRANCH_DEVICES: u32 = 3;

/// One scrape, parsed.
struct Scrape(MetricsExposition<OpenMetricsType, OpenMetricsValue>);

/// A `GET` of `path` over plain HTTP/1.1: the status line, the headers and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_string())
}

async fn scrape(addr: SocketAddr) -> Scrape {
    let (head, body) = get(addr, "/metrics").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    // A whole body, not chunks: what follows the headers is the exposition.
    assert!(head.contains("content-length:"), "{head}");
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&body)
        .unwrap_or_else(|e| panic!("not OpenMetrics: {e:?}\n{body}"));
    Scrape(parsed)
}

impl Scrape {
    /// The sum of the values of the samples of `family` with all of `labels` (counters and
    /// gauges); `None` if there is none.
    fn value(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = self.0.families.get(family)?;
        let mut sum = None;
        for sample in family.iter_samples() {
            let set = sample.get_labelset().unwrap();
            if labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
            {
                let value = match &sample.value {
                    OpenMetricsValue::Counter(c) => c.value.as_f64(),
                    OpenMetricsValue::Gauge(g) => g.as_f64(),
                    other => panic!(
                        "{}: not a counter or a gauge: {other:?}",
                        family.family_name
                    ),
                };
                *sum.get_or_insert(0.0) += value;
            }
        }
        sum
    }

    /// [`Scrape::value`], 0 when there is no such sample.
    fn count(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(family, labels).unwrap_or(0.0)
    }

    /// How many observations the histogram of `family` for `server` holds.
    fn observations(&self, family: &str, server: &str) -> u64 {
        let family = &self.0.families[family];
        assert_eq!(family.family_type, OpenMetricsType::Histogram);
        family
            .iter_samples()
            .filter(|s| s.get_labelset().unwrap().get_label_value("server") == Some(server))
            .map(|s| match &s.value {
                OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0),
                other => panic!("not a histogram: {other:?}"),
            })
            .sum()
    }

    /// Every family is Canopy's, of the type its name says, with the `server` label on
    /// every sample and no label that names a device, a task or a run.
    fn check_conventions(&self) {
        for (name, family) in &self.0.families {
            assert!(name.starts_with("canopy_"), "{name}");
            // Counters are named without `_total` in the family, with it in the samples.
            let counter = family.family_type == OpenMetricsType::Counter;
            assert_eq!(counter, is_counted(name), "{name}");
            assert!(!name.ends_with("_total"), "{name}");
            for label in family.get_label_names() {
                assert!(
                    ["server", "state", "child", "kind", "outcome", "reason"]
                        .contains(&label.as_str()),
                    "{name}: label {label}"
                );
            }
            for sample in family.iter_samples() {
                let set = sample.get_labelset().unwrap();
                assert!(set.get_label_value("server").is_some(), "{name}");
                assert!(
                    set.iter_values().all(|v| !v.starts_with("sim-")),
                    "{name}: a device's name as a label"
                );
            }
        }
    }
}

/// The families that count things that happen.
fn is_counted(name: &str) -> bool {
    [
        "canopy_results_received",
        "canopy_results_stored",
        "canopy_admin_requests",
        "canopy_handshakes_refused",
        "canopy_events",
    ]
    .contains(&name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_s_metrics_move_with_its_devices_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, admin) =
        common::two_tiers_with(&d, TOKEN, "\n[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let at_primary = primary.metrics_addr().unwrap();
    let at_branch = branch.metrics_addr().unwrap();
    assert!(at_primary.ip().is_loopback() && at_branch.ip().is_loopback());
    assert_ne!(at_primary.port(), 0);
    common::create_vserver(&admin, "tenant-a", "Managed devices").await;
    let address = |s: &canopy::server::RunningServer| s.local_addr().to_string();
    let _fleets = (
        common::named_fleet(
            &d,
            "fleet-p",
            &address(&primary),
            TOKEN,
            PRIMARY_DEVICES,
            "",
        )
        .await,
        common::named_fleet(&d, "fleet-b", &address(&branch), TOKEN, BRANCH_DEVICES, "").await,
    );

    // Devices known and connected equal each fleet; the virtual server is on its host's page.
    let devices = |s: &Scrape, server: &str, state: &str| {
        s.value("canopy_devices", &[("server", server), ("state", state)])
    };
    until("every device counted connected", || async {
        let p = scrape(at_primary).await;
        let b = scrape(at_branch).await;
        devices(&p, "primary", "connected") == Some(PRIMARY_DEVICES.into())
            && devices(&b, "branch-1", "connected") == Some(BRANCH_DEVICES.into())
    })
    .await;
    let before_p = scrape(at_primary).await;
    let before_b = scrape(at_branch).await;
    before_p.check_conventions();
    before_b.check_conventions();
    assert_eq!(
        devices(&before_p, "primary", "known"),
        Some(PRIMARY_DEVICES.into())
    );
    assert_eq!(devices(&before_p, "primary", "pending"), Some(0.0));
    assert_eq!(
        devices(&before_b, "branch-1", "known"),
        Some(BRANCH_DEVICES.into())
    );
    assert_eq!(devices(&before_p, "tenant-a", "known"), Some(0.0));
    assert_eq!(devices(&before_b, "primary", "known"), None);
    let up = |s: &Scrape, child: &str| {
        s.value(
            "canopy_child_link_up",
            &[("server", "primary"), ("child", child)],
        )
    };
    until("the tenant's link up", || async {
        up(&scrape(at_primary).await, "tenant-a") == Some(1.0)
    })
    .await;
    assert_eq!(up(&before_p, "branch-1"), Some(1.0));

    // A group task over the tree: every device's result received and stored once, by the
    // server the device is connected to.
    let results = |s: &Scrape, family: &str, server: &str| s.count(family, &[("server", server)]);
    let spec = simulate_spec("metered", tree_scope("Managed devices"), 50, [1, 0, 0]);
    create_task(&admin, spec).await;
    start_task(&admin, "metered", None).await;
    let total = u64::from(PRIMARY_DEVICES + BRANCH_DEVICES);
    wait_tree_finished(&admin, "metered", total).await;
    let refused = common::refused(
        &admin,
        TaskRequest::Start {
            task: "no such task".into(),
            devices: None,
        },
    )
    .await;
    assert!(!refused.is_empty());
    // The branch's run completes there, its statistics reach the primary, and its link
    // settles: nothing of the primary's log left to apply, no statistics unacknowledged.
    let lag = |s: &Scrape, child: &str| {
        s.value(
            "canopy_child_replication_lag_entries",
            &[("server", "primary"), ("child", child)],
        )
    };
    until("the links settled", || async {
        let p = scrape(at_primary).await;
        let b = scrape(at_branch).await;
        let runs = |s: &Scrape, server| {
            s.count("canopy_runs", &[("server", server), ("state", "completed")])
        };
        lag(&p, "branch-1") == Some(0.0)
            && lag(&p, "tenant-a") == Some(0.0)
            && runs(&p, "primary") == 1.0
            && runs(&b, "branch-1") == 1.0
            && b.value(
                "canopy_parent_statistics_unacknowledged_runs",
                &[("server", "branch-1")],
            ) == Some(0.0)
    })
    .await;
    let after_p = scrape(at_primary).await;
    let after_b = scrape(at_branch).await;
    after_p.check_conventions();
    after_b.check_conventions();
    for family in ["canopy_results_received", "canopy_results_stored"] {
        assert_eq!(
            results(&after_p, family, "primary") - results(&before_p, family, "primary"),
            f64::from(PRIMARY_DEVICES),
            "{family}"
        );
        assert_eq!(
            results(&after_b, family, "branch-1") - results(&before_b, family, "branch-1"),
            f64::from(BRANCH_DEVICES),
            "{family}"
        );
    }
    assert_eq!(
        after_p.value(
            "canopy_runs",
            &[("server", "primary"), ("state", "running")]
        ),
        Some(0.0)
    );
    assert_eq!(up(&after_p, "branch-1"), Some(1.0));
    assert_eq!(
        after_b.value(
            "canopy_parent_statistics_lag_seconds",
            &[("server", "branch-1")]
        ),
        Some(0.0)
    );
    // The primary reports to no parent.
    assert_eq!(
        after_p.value(
            "canopy_parent_statistics_unacknowledged_runs",
            &[("server", "primary")]
        ),
        None
    );

    // Administration requests by kind and outcome.
    let requests = |kind: &str, outcome: &str| {
        after_p.count(
            "canopy_admin_requests",
            &[("server", "primary"), ("kind", kind), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("task create", "ok"), 1.0);
    assert_eq!(requests("task start", "ok"), 1.0);
    assert_eq!(requests("task start", "not_found"), 1.0);
    assert!(requests("login", "ok") >= 1.0);
    assert!(requests("task stats", "ok") >= 1.0);

    // Events by kind, where they happened.
    let events = |s: &Scrape, server: &str, kind: &str| {
        s.count("canopy_events", &[("server", server), ("kind", kind)])
    };
    assert_eq!(events(&after_p, "primary", "server-started"), 1.0);
    assert_eq!(events(&after_p, "primary", "run-started"), 1.0);
    assert!(events(&after_p, "primary", "run-finished") >= 1.0);
    assert!(events(&after_p, "primary", "secondary-connected") >= 1.0);
    assert!(events(&after_b, "branch-1", "parent-connected") >= 1.0);

    // Every store's commits, the tenant's included.
    for server in ["primary", "tenant-a"] {
        assert!(after_p.observations("canopy_store_commit_duration_seconds", server) > 0);
        assert!(after_p.observations("canopy_store_commit_batch_size", server) > 0);
    }
    assert!(after_b.observations("canopy_store_commit_duration_seconds", "branch-1") > 0);

    // A secondary the primary does not know is refused, by reason.
    let parent = Some(canopy::cli::deployment::parent_of(&primary));
    let stranger = d.add_server("stranger", 0, parent).await.unwrap();
    let stranger = start(&stranger).await.unwrap();
    until("the stranger refused", || async {
        scrape(at_primary).await.count(
            "canopy_handshakes_refused",
            &[("server", "primary"), ("reason", "not_registered")],
        ) >= 1.0
    })
    .await;
    stranger.shutdown().await.unwrap();

    // Nothing else is served there.
    let (head, _) = get(at_primary, "/").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");

    branch.shutdown().await.unwrap();
    primary.shutdown().await.unwrap();
    // The listener is gone with the server.
    assert!(tokio::net::TcpStream::connect(at_primary).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_taken_metrics_address_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    d.add_server("primary", 0, None).await.unwrap();
    let with = |listen: &str| {
        format!(
            "{}\n[metrics]\nlisten = \"{listen}\"\n",
            canopy::cli::deployment::config_text("primary", 0, None)
        )
    };
    let e = d
        .write_config("primary", &with("nonsense"))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("`metrics.listen`"), "{e:#}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = d
        .write_config("primary", &with(&format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    let e = match start(&config).await {
        Ok(_) => panic!("started with its metrics port taken"),
        Err(e) => e,
    };
    assert!(format!("{e:#}").contains("metrics.listen"), "{e:#}");
    // Nothing was left open: the same config starts once the port is free.
    drop(taken);
    let server = start(&config).await.unwrap();
    assert_eq!(server.metrics_addr().map(|a| a.port()), Some(port));
    server.shutdown().await.unwrap();
}

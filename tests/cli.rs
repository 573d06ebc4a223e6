//! The `canopy` binary as an administrator uses it: separate processes, real files.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{Canopy, PASSWORD, config, free_port, write};

#[test]
fn an_administrator_builds_a_tree_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    c.ok(&["pki", "init", "--dir", "certs"], None);
    let (_, err) = c.fails(&["pki", "init", "--dir", "certs"], None);
    assert!(err.contains("already exists"), "{err}");
    c.ok(
        &[
            "pki",
            "issue",
            "--dir",
            "certs",
            "--name",
            "primary",
            "--san",
            "127.0.0.1",
        ],
        None,
    );
    c.ok(
        &["pki", "issue", "--dir", "certs", "--name", "branch-1"],
        None,
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(tmp.path().join("certs/branch-1.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let fingerprint = c
        .ok(&["pki", "fingerprint", "certs/primary.pem"], None)
        .trim()
        .to_string();
    assert_eq!(fingerprint.len(), 64);

    let primary_port = free_port();
    write(
        &tmp.path().join("primary.toml"),
        &config("primary", primary_port, None),
    );
    write(
        &tmp.path().join("branch-1.toml"),
        &config(
            "branch-1",
            free_port(),
            Some((primary_port as u32, &fingerprint)),
        ),
    );
    let out = c.ok(
        &[
            "account",
            "bootstrap",
            "--config",
            "primary.toml",
            "--user",
            "admin",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.contains("administrator admin created"), "{out}");
    let (_, err) = c.fails(
        &[
            "account",
            "bootstrap",
            "--config",
            "primary.toml",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(err.contains("accounts exist already"), "{err}");

    let primary = c.serve("primary.toml");
    let server = format!("127.0.0.1:{primary_port}");
    c.login_when_up(&server);
    let (_, err) = c.fails(
        &[
            "login",
            "--server",
            &server,
            "--ca",
            "certs/ca.pem",
            "--user",
            "admin",
            "--password-stdin",
        ],
        Some("wrong password\n"),
    );
    assert!(err.contains("wrong user name or password"), "{err}");
    // The failed login did not overwrite the good session.
    c.ok(
        &[
            "server",
            "add-secondary",
            "--name",
            "branch-1",
            "--group",
            "Managed devices",
            "--cert",
            "certs/branch-1.pem",
        ],
        None,
    );
    let (_, err) = c.fails(
        &[
            "server",
            "add-secondary",
            "--name",
            "again",
            "--cert",
            "certs/branch-1.pem",
        ],
        None,
    );
    assert!(err.contains("already registered"), "{err}");

    let branch = c.serve("branch-1.toml");
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows: serde_json::Value =
            serde_json::from_str(&c.ok(&["server", "list", "--json"], None)).unwrap();
        let active = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "Active")
            .count();
        if active == 2 {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "branch-1 never became active: {rows}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rows[1]["path"], "primary/branch-1");
    assert_eq!(rows[1]["depth"], 1);
    let table = c.ok(&["server", "list"], None);
    assert!(
        table.contains("primary/branch-1") && table.contains("Active"),
        "{table}"
    );
    let events = c.ok(&["event", "list"], None);
    assert!(
        events.contains("connection to the secondary branch-1 established"),
        "{events}"
    );
    // branch-1's own events come up to the primary, shown with its path.
    let from_branch = ["event", "list", "--server", "primary/branch-1"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events = c.ok(&from_branch, None);
        let line = events
            .lines()
            .find(|l| l.contains("connection to the parent server primary established"));
        if let Some(line) = line {
            assert!(line.contains(" primary/branch-1 "), "{events}");
            assert!(
                !events.contains("connection to the secondary branch-1"),
                "{events}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{events}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, err) = c.fails(&["event", "list", "--server", "branch-1"], None);
    assert!(err.contains("starting with \"primary\""), "{err}");
    let (code, err) = c.fails(&["event", "list", "--kind", "nothing"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run-finished"), "{err}");

    // `group list` asks for pages until the last and prints every group, once.
    let groups: Vec<String> = (0..30)
        .map(|i| format!("Managed devices/g{i:02}"))
        .collect();
    for path in &groups {
        c.ok(&["group", "create", path], None);
    }
    let table = c.ok(&["group", "list"], None);
    assert!(
        groups.iter().all(|g| table.matches(g).count() == 1),
        "{table}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&c.ok(&["group", "list", "--json"], None)).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(32), "{listed}");
    let accounts = c.ok(&["account", "list"], None);
    assert!(accounts.contains("admin"), "{accounts}");

    assert!(branch.terminate(), "branch-1 exits 0 on SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.ok(&["server", "list"], None).contains("Inactive") {
        assert!(Instant::now() < deadline, "branch-1 never shown Inactive");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.ok(&["logout"], None);
    let (_, err) = c.fails(&["server", "list"], None);
    assert!(err.contains("canopy login"), "{err}");
    assert!(primary.terminate(), "primary exits 0 on SIGTERM");
}

#[test]
fn bad_config_and_bad_arguments_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    write(
        &tmp.path().join("bad.toml"),
        &config("primary", 13000, Some((70000, "abc"))),
    );
    let (code, err) = c.fails(&["serve", "--config", "bad.toml"], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("`parent.port`") && err.contains("70000"),
        "{err}"
    );
    let (_, err) = c.fails(&["serve", "--config", "missing.toml"], None);
    assert!(
        err.contains("missing.toml") && err.contains("cannot read"),
        "{err}"
    );
    let (code, err) = c.fails(&["server", "add-secondary", "--cert", "x.pem"], None);
    assert_eq!(code, 2, "usage errors exit 2");
    assert!(err.contains("--name"), "{err}");
    let (_, err) = c.fails(&["pki", "issue", "--dir", "certs", "--name", "x"], None);
    assert!(err.contains("ca.pem"), "{err}");
}

#[test]
fn the_example_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let primary = canopy::config::ServerConfig::load(&root.join("config/primary.toml")).unwrap();
    assert_eq!(primary.enrollment.len(), 1);
    let agent = canopy::agent::config::AgentConfig::load(&root.join("config/agent.toml")).unwrap();
    assert_eq!((agent.server_port, agent.applications.len()), (13000, 1));
    // The secondaries' examples carry a placeholder fingerprint, and say so when loaded.
    for name in [
        "secondary.toml",
        "secondary-of-secondary.toml",
        "secondary-dmz.toml",
    ] {
        let err = canopy::config::ServerConfig::load(&root.join("config").join(name))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`parent.fingerprint`"), "{err}");
        let text = std::fs::read_to_string(root.join("config").join(name)).unwrap();
        let text = text.replace(
            &text[text.find("sha256:REPLACE").unwrap()..]
                .lines()
                .next()
                .unwrap()
                .trim_end_matches('"')
                .to_string(),
            &"ab".repeat(32),
        );
        let config =
            canopy::config::ServerConfig::parse(&text, Path::new(name), &root.join("config"))
                .unwrap();
        let parent = config.parent.unwrap();
        assert_eq!(
            parent.dial.is_none(),
            name == "secondary-dmz.toml",
            "{name}"
        );
    }
}

#[test]
fn bench_connect_runs_at_a_tiny_size() {
    // A smoke check that the scenario works end to end, not a timed assertion.
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    let out = c.ok(
        &[
            "bench",
            "connect",
            "--devices",
            "20",
            "--runs",
            "1",
            "--json",
        ],
        None,
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["scenario"], "connect");
    assert_eq!(report["devices"], 20);
    for figure in [
        "cold_connect_s",
        "reconnect_storm_s",
        "server_kib_per_device",
        "cold_server_us_per_device",
        "idle_server_us_per_device_s",
    ] {
        assert!(
            report[figure]["median"].as_f64().unwrap().is_finite(),
            "{figure}: {report}"
        );
    }
}

#[test]
fn bench_ingest_runs_at_a_tiny_size() {
    // A smoke check that the scenario works end to end, not a timed assertion.
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    let args = [
        "bench",
        "ingest",
        "--devices",
        "20",
        "--runs",
        "1",
        "--json",
    ];
    let report: serde_json::Value = serde_json::from_str(&c.ok(&args, None)).unwrap();
    assert_eq!(report["scenario"], "ingest");
    assert_eq!(report["counters_exact"], true);
    assert!(
        report["results_per_s"]["median"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

#[test]
fn the_demo_prints_the_whole_tree_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    let out = c.ok(&["demo", "--json"], None);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let servers = report["servers"].as_array().unwrap();
    let shape: Vec<(String, u64, String)> = servers
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["depth"].as_u64().unwrap(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("primary".into(), 0, "Active".into()),
            ("primary/branch-1".into(), 1, "Active".into()),
            ("primary/branch-1/branch-1a".into(), 2, "Active".into()),
            ("primary/branch-2".into(), 1, "Active".into()),
            ("primary/tenant-a".into(), 1, "Active".into()),
        ]
    );
    // One statistics row per server, each with its own devices, adding up to the totals.
    let rows = report["statistics"].as_array().unwrap();
    let per_server: Vec<(String, u64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["total"].as_u64().unwrap(),
                r["reported"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_server,
        vec![
            ("primary".into(), 100, true),
            ("primary/branch-1".into(), 100, true),
            ("primary/branch-1/branch-1a".into(), 100, true),
            ("primary/branch-2".into(), 100, true),
            ("primary/tenant-a".into(), 50, true),
        ]
    );
    let totals = &report["totals"];
    assert_eq!(totals["total"], 450, "{totals}");
    for state in ["succeeded", "warning", "failed"] {
        let sum: u64 = rows
            .iter()
            .map(|r| r["counts"][state].as_u64().unwrap())
            .sum();
        assert_eq!(totals[state].as_u64().unwrap(), sum, "{state}");
    }
    let task = &report["task"];
    // State names as `--state` takes them, counters by state name (not a bare array).
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["targeted"], 450, "{task}");
    assert_eq!(task["completion_percent"], 100.0, "{task}");
    let by_state = task["counters"]["by_state"].as_object().unwrap();
    let mut names: Vec<&str> = by_state.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = [
        "pending",
        "scheduled",
        "running",
        "succeeded",
        "warning",
        "failed",
        "paused",
    ];
    expected.sort_unstable();
    assert_eq!(names, expected, "{task}");
    let sum: u64 = by_state.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(sum, 450);
    for state in ["pending", "scheduled", "running"] {
        assert_eq!(by_state[state], 0, "nothing {state}: {task}");
    }
    for record in report["statistics"].as_array().unwrap() {
        assert!(record["counts"].is_object(), "{record}");
    }
}

#[test]
fn bench_fanout_and_change_run_at_a_tiny_size() {
    // A smoke check that both hierarchy scenarios work end to end, not a timed assertion.
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    let args = [
        "bench",
        "fanout",
        "--devices",
        "40",
        "--runs",
        "1",
        "--json",
    ];
    let report: serde_json::Value = serde_json::from_str(&c.ok(&args, None)).unwrap();
    assert_eq!(report["scenario"], "fanout", "{report}");
    assert_eq!(report["devices"], 40);
    assert_eq!(report["servers"].as_array().unwrap().len(), 7, "{report}");
    assert_eq!(report["reached_100"], true);
    let finite = |v: &serde_json::Value| v["median"].as_f64().is_some_and(f64::is_finite);
    for figure in ["first_ms", "p50_ms", "p99_ms", "p100_ms"] {
        assert!(finite(&report[figure]), "{figure}: {report}");
    }
    let tiers = report["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 3, "{report}");
    let devices: u64 = tiers.iter().map(|t| t["devices"].as_u64().unwrap()).sum();
    assert_eq!(devices, 40);
    for tier in tiers {
        assert!(finite(&tier["p100_ms"]), "{tier}");
        // A tier is complete no later than the whole tree.
        assert!(
            tier["p100_ms"]["median"].as_f64().unwrap()
                <= report["p100_ms"]["median"].as_f64().unwrap(),
            "{report}"
        );
    }

    let args = [
        "bench",
        "change",
        "--secondaries",
        "3",
        "--runs",
        "1",
        "--json",
    ];
    let report: serde_json::Value = serde_json::from_str(&c.ok(&args, None)).unwrap();
    assert_eq!(report["scenario"], "change", "{report}");
    assert_eq!(report["secondaries"], 3);
    assert_eq!(report["all_applied"], true);
    for figure in ["edit_ms", "all_polled_ms", "all_stamped_ms"] {
        assert!(finite(&report[figure]), "{figure}: {report}");
    }
}

#[test]
fn bench_catchup_runs_at_a_tiny_size() {
    // A smoke check, not a timed assertion: the trimmed run sends a snapshot, the other
    // replays, and both bring the child to the primary's state.
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    let args = [
        "bench",
        "catchup",
        "--entries",
        "60",
        "--tasks",
        "3",
        "--keep",
        "5",
        "--json",
    ];
    let report: serde_json::Value = serde_json::from_str(&c.ok(&args, None)).unwrap();
    assert_eq!(report["scenario"], "catchup", "{report}");
    assert_eq!(report["trimmed"]["snapshot"], true, "{report}");
    assert_eq!(report["kept"]["snapshot"], false, "{report}");
    assert_eq!(report["trimmed"]["entries_written"], 60, "{report}");
    assert!(
        report["trimmed"]["entries_held"].as_u64().unwrap() <= 6,
        "{report}"
    );
    assert!(
        report["kept"]["entries_held"].as_u64().unwrap() > 60,
        "{report}"
    );
    for run in ["trimmed", "kept"] {
        let ms = report[run]["catch_up_ms"]["median"].as_f64().unwrap();
        assert!(ms.is_finite() && ms > 0.0, "{report}");
    }
}

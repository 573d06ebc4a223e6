//! The binary's log output and exit statuses, as processes: a primary logging JSON (its
//! config's `[log]`) and its secondary (`--log-format json`), a simulated fleet, a run
//! waited for with `task start --wait` (status 3 when devices failed, 0 when none did), and
//! every line each server wrote parsed as JSON and checked for the server it came from.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::process::{Canopy, PASSWORD, Server, config, free_port, write};

const TOKEN: &str = "a-token-of-at-least-16-chars";

/// The lines of a JSON log that do not say which server wrote them, exactly once.
fn lines_without_server(log: &str, server: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        let target = value["target"].as_str().unwrap_or_default();
        assert!(value["timestamp"].is_string(), "{line}");
        assert!(value["level"].is_string(), "{line}");
        // Lines from other crates (quinn, rustls) come from tasks those crates spawn.
        if !target.starts_with("canopy") {
            continue;
        }
        let times_in_server = value["spans"].as_array().map_or(0, |spans| {
            spans
                .iter()
                .filter(|span| span["name"] == "server" && span["server"] == server)
                .count()
        });
        // Once: a thread that enters its server's span inside another's says it twice.
        if times_in_server != 1 {
            missing.push(line.to_string());
        }
    }
    missing
}

#[test]
fn json_logs_name_their_server_and_a_waited_run_sets_the_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    c.ok(&["pki", "init", "--dir", "certs"], None);
    for name in ["primary", "branch-1"] {
        c.ok(&["pki", "issue", "--dir", "certs", "--name", name], None);
    }
    let fingerprint = c
        .ok(&["pki", "fingerprint", "certs/primary.pem"], None)
        .trim()
        .to_string();
    let port = free_port();
    let mut primary = config("primary", port, None);
    primary.push_str(&format!(
        "[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n\
         [log]\nformat = \"json\"\nlevel = \"info\"\n"
    ));
    write(&tmp.path().join("primary.toml"), &primary);
    write(
        &tmp.path().join("branch-1.toml"),
        &config("branch-1", free_port(), Some((port as u32, &fingerprint))),
    );
    c.ok(
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
    let primary = c.serve("primary.toml");
    let address = format!("127.0.0.1:{port}");
    c.login_when_up(&address);
    c.ok(
        &[
            "server",
            "add-secondary",
            "--name",
            "branch-1",
            "--cert",
            "certs/branch-1.pem",
        ],
        None,
    );
    let branch_log = std::fs::File::create(tmp.path().join("branch-1.toml.log")).unwrap();
    let branch = Server {
        child: c
            .cmd(&["--log-format", "json", "serve", "--config", "branch-1.toml"])
            .stdout(Stdio::null())
            .stderr(branch_log)
            .spawn()
            .unwrap(),
    };
    write(
        &tmp.path().join("agent.toml"),
        &format!(
            "server = \"{address}\"\nca = \"certs/ca.pem\"\ndata = \"data/agent.redb\"\n\
             token = \"{TOKEN}\"\n[link]\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n"
        ),
    );
    let fleet = Server {
        child: c
            .cmd(&["agent", "--config", "agent.toml", "--simulate", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    // The fleet in, and branch-1 connected.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let devices: serde_json::Value =
            serde_json::from_str(&c.ok(&["device", "list", "--json"], None)).unwrap();
        let servers: serde_json::Value =
            serde_json::from_str(&c.ok(&["server", "list", "--json"], None)).unwrap();
        let connected = devices
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["connected"] == true)
            .count();
        let linked = servers
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "Active");
        if connected == 4 && linked && servers.as_array().unwrap().len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{devices} {servers}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every device fails: the waited run exits 3, its statistics printed first.
    let create = |name: &str, outcomes: &str| {
        c.ok(
            &[
                "task",
                "create",
                "--name",
                name,
                "--type",
                "simulate",
                "--duration-ms",
                "50",
                "--outcomes",
                outcomes,
                "--group",
                "Managed devices",
            ],
            None,
        );
    };
    create("Doomed", "0,0,1");
    let out = c.run(&["task", "start", "Doomed", "--wait"], None);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("failed        4"), "{stdout}");
    assert!(
        stderr.contains("ended with 4 of 4 devices failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    // Not a terminal: plain progress lines, by state.
    assert!(
        stderr.contains("4/4 devices finished: 4 failed"),
        "{stderr}"
    );
    assert!(!stderr.contains('\r'), "{stderr}");
    // None failed: 0.
    create("Fine", "1,0,0");
    let out = c.run(&["task", "start", "Fine", "--wait", "--json"], None);
    assert_eq!(out.status.code(), Some(0));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["run"]["counters"]["by_state"]["succeeded"], 4, "{run}");
    // A usage error: 2.
    assert_eq!(c.run(&["task", "start"], None).status.code(), Some(2));

    // A failed login is a warning in the primary's log.
    let _ = c.run(
        &[
            "login",
            "--server",
            &address,
            "--ca",
            "certs/ca.pem",
            "--user",
            "admin",
            "--password-stdin",
            "--session",
            "other.toml",
        ],
        Some("not the password\n"),
    );
    drop(fleet);
    assert!(branch.terminate(), "branch-1 stops cleanly");
    assert!(primary.terminate(), "the primary stops cleanly");

    for (server, file) in [
        ("primary", "primary.toml.log"),
        ("branch-1", "branch-1.toml.log"),
    ] {
        let log = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        assert!(log.lines().count() >= 3, "{server}: {log}");
        let missing = lines_without_server(&log, server);
        assert!(
            missing.is_empty(),
            "{server}: lines without their server, or with it twice:\n{}",
            missing.join("\n")
        );
    }
    let primary_log = std::fs::read_to_string(tmp.path().join("primary.toml.log")).unwrap();
    assert!(primary_log.contains("\"level\":\"WARN\""), "{primary_log}");
    assert!(primary_log.contains("login-failed") || primary_log.contains("login failed"));
}

#[test]
fn a_missing_certificate_names_its_config_key_once() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    c.ok(&["pki", "init", "--dir", "certs"], None);
    c.ok(
        &["pki", "issue", "--dir", "certs", "--name", "primary"],
        None,
    );
    std::fs::remove_file(tmp.path().join("certs/primary.pem")).unwrap();
    write(
        &tmp.path().join("primary.toml"),
        &config("primary", free_port(), None),
    );
    let (status, stderr) = c.fails(&["serve", "--config", "primary.toml"], None);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("config key tls.cert: "), "{stderr}");
    assert!(stderr.contains("certs/primary.pem"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

//! The `canopy` binary as an administrator uses it: separate processes, real files.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "a long admin password";

struct Canopy {
    dir: PathBuf,
}

impl Canopy {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
        cmd.current_dir(&self.dir)
            .env("CANOPY_SESSION", self.dir.join("session.toml"))
            .env_remove("CANOPY_PASSWORD")
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            // A command that fails before reading its input closes the pipe; its exit
            // status and message tell what happened.
            let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "canopy {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], stdin: Option<&str>) -> (i32, String) {
        let out = self.run(args, stdin);
        assert!(!out.status.success(), "canopy {args:?} should have failed");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Logs in as admin as soon as the server at `server` answers (its log is shown if it
    /// never does).
    fn login_when_up(&self, server: &str) {
        let login = [
            "login",
            "--server",
            server,
            "--ca",
            "certs/ca.pem",
            "--user",
            "admin",
            "--password-stdin",
        ];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.run(&login, Some(&format!("{PASSWORD}\n")));
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "login never worked: {} {}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.join("primary.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn serve(&self, config: &str) -> Server {
        let log = std::fs::File::create(self.dir.join(format!("{config}.log"))).unwrap();
        let child = self
            .cmd(&["serve", "--config", config])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Server { child }
    }
}

struct Server {
    child: Child,
}

impl Server {
    /// SIGTERM, then the exit status: a clean shutdown exits 0.
    fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn config(name: &str, port: u16, parent: Option<(u32, &str)>) -> String {
    let mut text = format!(
        "name = \"{name}\"\ndata = \"data/{name}.redb\"\nlisten = \"127.0.0.1:{port}\"\n\
         [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{name}.pem\"\nkey = \"certs/{name}.key\"\n\
         [link]\nkeep_alive_ms = 1000\nidle_timeout_ms = 5000\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n"
    );
    if let Some((port, fingerprint)) = parent {
        text.push_str(&format!(
            "[parent]\naddress = \"localhost\"\nport = {port}\nfingerprint = \"{fingerprint}\"\n"
        ));
    }
    text
}

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
    for name in ["secondary.toml", "secondary-of-secondary.toml"] {
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
        canopy::config::ServerConfig::parse(&text, Path::new(name), &root.join("config")).unwrap();
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
    assert_eq!(task["state"], "Completed", "{task}");
    assert_eq!(task["targeted"], 450, "{task}");
    assert_eq!(task["completion_percent"], 100.0, "{task}");
    let by_state: Vec<u64> = task["counters"]["by_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(by_state.iter().sum::<u64>(), 450);
    assert_eq!(
        by_state[..3],
        [0, 0, 0],
        "nothing pending, scheduled or running"
    );
}

#[test]
fn tasks_from_the_command_line_and_the_password_never_leaks() {
    const PLANTED: &str = "Planted-Task-Pass-4711";
    const TOKEN: &str = "cli-task-token-0123456789";
    let tmp = tempfile::tempdir().unwrap();
    let c = Canopy {
        dir: tmp.path().to_path_buf(),
    };
    c.ok(&["pki", "init", "--dir", "certs"], None);
    let issue = ["pki", "issue", "--dir", "certs", "--name", "primary"];
    c.ok(&issue, None);
    let port = free_port();
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config("primary", port, None)
    );
    write(&tmp.path().join("primary.toml"), &text);
    let bootstrap = [
        "account",
        "bootstrap",
        "--config",
        "primary.toml",
        "--password-stdin",
    ];
    c.ok(&bootstrap, Some(&format!("{PASSWORD}\n")));
    // Logs at their most talkative, so that a leak anywhere would show.
    let log = std::fs::File::create(tmp.path().join("primary.log")).unwrap();
    let server = Server {
        child: c
            .cmd(&["serve", "--config", "primary.toml"])
            .env("CANOPY_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    };
    let address = format!("127.0.0.1:{port}");
    c.login_when_up(&address);
    write(
        &tmp.path().join("agent.toml"),
        &format!(
            "server = \"{address}\"\nca = \"certs/ca.pem\"\ndata = \"data/agent.redb\"\n\
             token = \"{TOKEN}\"\n[link]\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n"
        ),
    );
    let agent_log = std::fs::File::create(tmp.path().join("agent.log")).unwrap();
    let agent = Server {
        child: c
            .cmd(&["agent", "--config", "agent.toml", "--simulate", "12"])
            .env("CANOPY_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(agent_log)
            .spawn()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: serde_json::Value =
            serde_json::from_str(&c.ok(&["device", "list", "--json"], None)).unwrap();
        let connected = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["connected"] == true)
            .count();
        if connected == 12 {
            break;
        }
        assert!(Instant::now() < deadline, "devices never connected");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A task for a list imported from a .txt file (sim-N has address 10.0.0.N+1), run under a
    // specified account whose password comes on stdin.
    write(
        &tmp.path().join("devices.txt"),
        "10.0.0.1\n10.0.0.3-10.0.0.5\nsim-00011\n",
    );
    let mut outputs = Vec::new();
    let create = [
        "task",
        "create",
        "--name",
        "list task",
        "--type",
        "simulate",
        "--duration-ms",
        "50",
        "--outcomes",
        "1,0,0",
        "--devices-file",
        "devices.txt",
        "--account",
        "svc-backup",
        "--password-stdin",
    ];
    outputs.push(c.ok(&create, Some(&format!("{PLANTED}\n"))));
    let shown = c.ok(&["task", "show", "list task"], None);
    let password_line = shown.lines().find(|l| l.starts_with("password")).unwrap();
    assert_eq!(
        password_line.split_whitespace().last(),
        Some("set"),
        "{shown}"
    );
    assert!(shown.contains("svc-backup"), "{shown}");
    outputs.push(shown);
    outputs.push(c.ok(&["task", "show", "list task", "--json"], None));
    outputs.push(c.ok(&["task", "list"], None));
    outputs.push(c.ok(&["task", "list", "--json"], None));
    let started = c.ok(&["task", "start", "list task", "--wait"], None);
    assert!(started.contains("succeeded"), "{started}");
    outputs.push(started);
    let stats: serde_json::Value =
        serde_json::from_str(&c.ok(&["task", "stats", "list task", "--json"], None)).unwrap();
    assert_eq!(stats["targeted"], 5, "{stats}");
    assert_eq!(stats["completion_percent"], 100.0, "{stats}");
    let results: serde_json::Value =
        serde_json::from_str(&c.ok(&["task", "results", "list task", "--json"], None)).unwrap();
    let mut names: Vec<&str> = results
        .as_array()
        .or_else(|| results["records"].as_array())
        .unwrap()
        .iter()
        .map(|r| r["device_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "sim-00000",
            "sim-00002",
            "sim-00003",
            "sim-00004",
            "sim-00011"
        ]
    );
    let failed = c.ok(&["task", "results", "list task", "--state", "failed"], None);
    assert!(!failed.contains("sim-0"), "{failed}");

    // Bad input: clear errors, nothing created.
    let (_, err) = c.fails(
        &[
            "task",
            "create",
            "--name",
            "x",
            "--type",
            "bogus",
            "--group",
            "Managed devices",
        ],
        None,
    );
    assert!(err.contains("bogus"), "{err}");
    let (_, err) = c.fails(
        &[
            "task",
            "create",
            "--name",
            "x",
            "--type",
            "inventory",
            "--group",
            "Nowhere/At all",
        ],
        None,
    );
    assert!(err.contains("does not exist"), "{err}");
    let listed: serde_json::Value =
        serde_json::from_str(&c.ok(&["task", "list", "--json"], None)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Export (to standard output and to a file), import in two phases, copy: the password
    // is in none of them, and the file is among the files searched below.
    let exported = c.ok(&["task", "export", "list task"], None);
    assert!(exported.starts_with("canopy-task-export 1\n"), "{exported}");
    outputs.push(exported);
    let out = [
        "task",
        "export",
        "list task",
        "--out",
        "list-task.canopy-task",
    ];
    outputs.push(c.ok(&out, None));
    let (_, err) = c.fails(&out, None);
    assert!(err.contains("cannot create"), "never overwritten: {err}");
    let preview = c.ok(&["task", "import", "list-task.canopy-task"], None);
    assert!(preview.contains("list task (1)"), "{preview}");
    assert!(preview.contains("nothing created"), "{preview}");
    outputs.push(preview);
    let (_, err) = c.fails(
        &["task", "import", "list-task.canopy-task", "--commit"],
        None,
    );
    assert!(err.contains("needs the task's scope"), "{err}");
    let commit = [
        "task",
        "import",
        "list-task.canopy-task",
        "--commit",
        "--group",
        "Managed devices",
    ];
    let imported = c.ok(&commit, None);
    assert!(
        imported.contains("created task \"list task (1)\""),
        "{imported}"
    );
    outputs.push(imported);
    let copied = c.ok(&["task", "copy", "list task", "--json"], None);
    let copied: serde_json::Value = serde_json::from_str(&copied).unwrap();
    assert_eq!(copied["name"], "list task (2)", "{copied}");
    assert_eq!(
        copied["password_set"], true,
        "a copy keeps its sealed password"
    );
    outputs.push(copied.to_string());

    // History: an edit with a comment, the diff (a password is only "changed"), delete and
    // restore.
    let edit = [
        "task",
        "edit",
        "list task",
        "--keep-days",
        "10",
        "--account",
        "svc-backup",
        "--password-stdin",
        "--comment",
        "shorter history",
    ];
    outputs.push(c.ok(&edit, Some(&format!("{PLANTED}-2\n"))));
    let history = c.ok(&["task", "history", "list task"], None);
    assert!(history.contains("shorter history"), "{history}");
    assert!(history.contains("created"), "{history}");
    outputs.push(history);
    let diff = c.ok(&["task", "diff", "list task", "1"], None);
    assert!(diff.contains("store history"), "{diff}");
    assert!(diff.contains("changed"), "{diff}");
    outputs.push(diff);
    outputs.push(c.ok(&["task", "diff", "list task", "1", "2", "--json"], None));
    outputs.push(c.ok(
        &[
            "task",
            "delete",
            "list task (2)",
            "--comment",
            "a copy too many",
        ],
        None,
    ));
    let deleted = c.ok(&["task", "list", "--deleted"], None);
    assert!(deleted.contains("list task (2)"), "{deleted}");
    outputs.push(deleted);
    outputs.push(c.ok(&["task", "restore", "list task (2)"], None));

    // The Change tasks password wizard, as a script: the previous password matches one task;
    // the restored copy's is forced; the imported task has none and waits for a choice.
    let wizard = [
        "task",
        "credentials",
        "--account",
        "svc-backup",
        "--password-stdin",
        "--with-previous",
        "--force",
        "list task (2)",
        "--json",
    ];
    let answer = c.ok(&wizard, Some(&format!("{PLANTED}-3\n{PLANTED}-2\n")));
    let results: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let outcome = |name: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["task_name"] == name)
            .map(|r| r["outcome"].clone())
            .unwrap_or_else(|| panic!("no {name} in {results}"))
    };
    assert!(outcome("list task")["Replaced"].is_object(), "{results}");
    assert!(outcome("list task (2)")["Forced"].is_object(), "{results}");
    assert_eq!(
        outcome("list task (1)")["ChoiceNeeded"]["reason"],
        "the task has no password set",
        "{results}"
    );
    outputs.push(answer);
    let history = c.ok(&["task", "history", "list task"], None);
    assert!(
        history.contains("password changed (the previous one matched)"),
        "{history}"
    );
    outputs.push(history);
    let started = c.ok(&["task", "start", "list task", "--wait"], None);
    assert!(started.contains("succeeded"), "{started}");
    outputs.push(started);

    drop(agent);
    assert!(server.terminate(), "clean shutdown");
    for output in &outputs {
        assert!(
            !output.contains(PLANTED),
            "CLI output shows the password: {output}"
        );
    }
    let files = common::assert_in_no_file(tmp.path(), PLANTED, &[]);
    assert!(files.iter().any(|f| f.ends_with("primary.redb")));
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

//! README's "A tree by hand", run as written: the shell block's commands, one by one, by
//! bash, with the built `canopy` first on the PATH, in a copy of the repository's `config/`.
//! A command ending in `&` is started in the background (a `canopy serve` is waited for
//! until its log says it started); any other is retried for a while until it succeeds, as
//! an administrator would after waiting for a link to come up. Then the tree, the device
//! and the run are checked. The example configs' fixed ports (13000 to 13002) are used:
//! no other test uses them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a command may keep failing (a link not up yet) before the test fails.
const RETRY_FOR: Duration = Duration::from_secs(40);
/// How long one command may run (`task start --wait` waits for the whole tree's run).
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// The commands of the first `sh` block after `heading` in `readme`, continuation lines
/// joined, comment and blank lines left out.
fn shell_block(readme: &str, heading: &str) -> Vec<String> {
    let section = &readme[readme.find(heading).expect("the README has the section")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("```").expect("the block ends")];
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// The processes started in the background, stopped at the end whatever happens.
struct Background(Vec<(String, Child, PathBuf)>);

impl Drop for Background {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            // SIGTERM first: the servers shut down cleanly on it.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for (_, child, _) in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Background {
    fn logs(&self) -> String {
        self.0
            .iter()
            .map(|(cmd, _, log)| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                format!("--- {cmd}\n{text}")
            })
            .collect()
    }
}

struct Shell {
    dir: PathBuf,
    path: String,
}

impl Shell {
    fn command(&self, line: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(line)
            .current_dir(&self.dir)
            .env("PATH", &self.path)
            .env("HOME", &self.dir)
            .env("CANOPY_SESSION", self.dir.join("session.toml"))
            .env("CANOPY_PASSWORD", "walk-through password")
            .env("NO_COLOR", "1")
            .env_remove("CANOPY_LOG")
            .env_remove("CANOPY_LOG_FORMAT")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `line` to its end (at most `COMMAND_LIMIT`): its exit status and output.
    fn run(&self, line: &str) -> (Option<i32>, String) {
        let out = self.dir.join("out.txt");
        let file = std::fs::File::create(&out).unwrap();
        let mut child = self
            .command(line)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + COMMAND_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, std::fs::read_to_string(&out).unwrap_or_default())
    }

    /// Runs `line` until it succeeds; its output.
    fn succeed(&self, line: &str, background: &Background) -> String {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let (status, output) = self.run(line);
            if status == Some(0) {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "`{line}` kept failing ({status:?}): {output}\n{}",
                background.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn start(&self, line: &str, background: &mut Background) {
        let log = self
            .dir
            .join(format!("background-{}.log", background.0.len()));
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .command(&format!("exec {line}"))
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        background.0.push((line.to_string(), child, log.clone()));
        if line.starts_with("canopy serve") {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(" started on ")
            {
                assert!(
                    Instant::now() < deadline,
                    "`{line}` did not start:\n{}",
                    background.logs()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn copy_configs(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn the_readme_walk_through_works_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = shell_block(&readme, "## A tree by hand");
    assert!(commands.len() >= 15, "{commands:?}");

    let tmp = tempfile::tempdir().unwrap();
    copy_configs(&root.join("config"), &tmp.path().join("config"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_canopy")).parent().unwrap();
    let shell = Shell {
        dir: tmp.path().to_path_buf(),
        path: format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    };
    let mut background = Background(Vec::new());
    let mut outputs = Vec::new();
    for line in &commands {
        match line.strip_suffix('&') {
            Some(line) => shell.start(line.trim(), &mut background),
            None => outputs.push((line.clone(), shell.succeed(line, &background))),
        }
    }
    let output_of = |prefix: &str| {
        outputs
            .iter()
            .find(|(line, _)| line.starts_with(prefix))
            .map(|(_, out)| out.clone())
            .unwrap_or_else(|| panic!("no command {prefix:?} in the walk-through"))
    };

    // The tree: three servers, every link up.
    let list = shell.succeed("canopy server list --json", &background);
    let rows: serde_json::Value = serde_json::from_str(&list).unwrap();
    let rows = rows.as_array().unwrap();
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["primary", "primary/branch-1", "primary/branch-1/branch-1a"],
        "{list}"
    );
    assert!(rows.iter().all(|r| r["status"] == "Active"), "{list}");

    // The run reached the agent's device, and ended across the tree.
    let started = output_of("canopy task start");
    assert!(started.contains("1/1 devices finished"), "{started}");
    let stats = shell.succeed("canopy task stats Inventory --json", &background);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["state"], "completed", "{stats}");
    assert_eq!(stats["counters"]["by_state"]["succeeded"], 1, "{stats}");
    let by_server = output_of("canopy task stats \"Inventory\" --by-server");
    assert!(
        by_server.contains("primary/branch-1/branch-1a"),
        "{by_server}"
    );
    // The primary's own event says the run ended with the tree's counts.
    let ended = shell.succeed("canopy event list --kind run-finished --json", &background);
    let events: serde_json::Value = serde_json::from_str(&ended).unwrap();
    let at_primary: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["origin"].as_array().is_some_and(|o| o.is_empty()))
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(at_primary.len(), 1, "{ended}");
    assert!(
        at_primary[0].starts_with("task \"Inventory\" run 1 finished")
            && at_primary[0].ends_with(": 1 succeeded, 0 warning, 0 failed of 1; 0 need a restart"),
        "{ended}"
    );
    let devices = output_of("canopy device list");
    assert!(devices.contains("Managed devices"), "{devices}");

    // Logs written to a file have no colour codes.
    let logs = background.logs();
    assert!(!logs.contains('\x1b'), "{logs}");

    // A server that does not answer is named: branch-1a killed, a request relayed to it
    // through branch-1 fails with branch-1's word for it (before the client's own 30 s);
    // and a login where nothing listens says so after 10 s. Both at once.
    let leaf = background
        .0
        .iter_mut()
        .find(|(line, _, _)| line.contains("secondary-of-secondary"))
        .unwrap();
    leaf.1.kill().unwrap();
    leaf.1.wait().unwrap();
    let (relayed, nowhere) = std::thread::scope(|s| {
        let relayed = s.spawn(|| shell.run("canopy --at branch-1/branch-1a server status"));
        let nowhere = shell.run(
            "canopy login --server 127.0.0.1:13003 --ca certs/ca.pem --user admin \
             --session elsewhere.toml",
        );
        (relayed.join().unwrap(), nowhere)
    });
    assert_eq!(relayed.0, Some(1), "{relayed:?}");
    assert!(
        relayed
            .1
            .contains("branch-1a did not answer within 15 s (asked by branch-1)"),
        "{relayed:?}"
    );
    assert_eq!(nowhere.0, Some(1), "{nowhere:?}");
    assert!(
        nowhere
            .1
            .contains("cannot connect to 127.0.0.1:13003: no answer within 10 s"),
        "{nowhere:?}"
    );
}

//! Task account passwords through the binary: a password planted in a task is searched for
//! in every file of the deployment (databases, keys, logs, export files, the session) and in
//! every CLI output, through creation, runs, export, import, copy, history, diffs, and the
//! Change tasks password wizard, scripted and on a terminal.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::process::{Canopy, PASSWORD, Server, config, free_port, write};

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

    // The wizard on a terminal, step by step: the previous password now matches two tasks;
    // the imported one, with no password, gets the new one forced.
    let new = format!("{PLANTED}-4");
    let previous = format!("{PLANTED}-3");
    let dialogue = [
        ("Account name: ", "svc-backup"),
        ("New password: ", new.as_str()),
        ("New password again: ", new.as_str()),
        (
            "Previous password (Enter if not known): ",
            previous.as_str(),
        ),
        ("no action? ", "f"),
    ];
    let shown = c.on_terminal(&["task", "credentials"], &dialogue);
    let step_3 = shown
        .split("Step 3 of 3: results")
        .nth(1)
        .unwrap_or_else(|| panic!("no step 3: {shown}"));
    assert_eq!(step_3.matches("password replaced").count(), 2, "{shown}");
    assert!(step_3.contains("list task (1)"), "{shown}");
    assert!(step_3.contains("new password forced"), "{shown}");
    outputs.push(shown);

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

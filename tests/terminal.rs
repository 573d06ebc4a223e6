//! What devices send reaches the administrator's terminal as text, never as control
//! sequences: the `canopy` binary, run as a process, prints a device's name, facts and result
//! with escape characters shown as `\u{1b}`, not sent to the terminal.

mod common;

use std::path::Path;

use canopy::cli::deployment::Deployment;
use canopy::model::task::Outcome;
use canopy::wire::msg::{AgentToServer, RunResult, ServerToAgent};
use common::binary::canopy;
use common::raw_agent::{RawAgent, RawIdentity, facts};
use common::{create_task, simulate_spec, start_task};

const TOKEN: &str = "terminal-tests-token-0123456789";
/// Clears the screen, sets the window title, and rings the bell.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;owned\u{7}";

/// Runs `canopy ARGS`, which must succeed; its standard output.
fn output(dir: &Path, args: &[&str]) -> String {
    let out = canopy(dir, &dir.join("session.toml"), args, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "canopy {args:?}: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "canopy {args:?} wrote an escape to stderr"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_send_control_sequences_to_the_administrator_s_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let server = common::enrolling_primary(&d, TOKEN).await;
    let addr = server.local_addr();
    let admin = d.admin(addr).await.unwrap();

    // A line break in a name would draw a row of its own in a table.
    let mut sent = facts(&format!("desk{HOSTILE}\nFAKE-ROW"));
    sent.os = format!("linux{HOSTILE}");
    sent.tags = vec![format!("tag{HOSTILE}")];
    let identity = RawIdentity::new("desk");
    let mut agent = RawAgent::connect(&d, addr, &identity, Some(TOKEN), sent, None).await;
    assert!(matches!(agent.next().await, ServerToAgent::Accepted { .. }));
    let scope = common::group_scope("Managed devices", true);
    create_task(&admin, simulate_spec("probe", scope, 10, [1, 0, 0])).await;
    start_task(&admin, "probe", None).await;
    let order = loop {
        if let ServerToAgent::Run(order) = agent.next().await {
            break order;
        }
    };
    let result = RunResult {
        run: order.run,
        started: 1,
        finished: 2,
        outcome: Outcome::failed(format!("failed{HOSTILE}")),
    };
    agent.send(&AgentToServer::Result(result)).await;
    while !matches!(agent.next().await, ServerToAgent::ResultStored { .. }) {}

    let session = dir.path().join("session.toml");
    let out = common::binary::login(dir.path(), &session, &addr.to_string(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = identity.device_id.clone();
    for args in [
        vec!["device", "list"],
        vec!["device", "show", id.as_str()],
        vec!["task", "results", "probe", "--details"],
        vec!["event", "list"],
    ] {
        let text = output(dir.path(), &args);
        assert!(
            !text.contains(['\u{1b}', '\u{7}']),
            "canopy {args:?} sent control characters: {text:?}"
        );
        assert!(text.contains("\\u{1b}"), "canopy {args:?}: {text}");
        assert!(
            !text.lines().any(|l| l.starts_with("FAKE-ROW")),
            "canopy {args:?} printed a device's line break: {text}"
        );
    }
    agent.close().await;
    admin.close().await;
    server.shutdown().await.unwrap();
}

//! Unit tests of the text `canopy task ...` prints and of the JSON of a run.

use super::*;
use crate::model::task::{Details, DeviceRunRecord, DeviceState};
use crate::wire::msg::NextStart;

#[test]
fn show_prints_every_property_and_no_password() {
    let text = show_text(&view(TaskType::Device(TaskPayload::Command {
        program: "/bin/echo".into(),
        args: vec!["hello world".into(), "-n".into()],
        time_limit_secs: 60,
    })));
    for expected in [
        "id                3\n",
        "kind              task for specific devices\n",
        "program           /bin/echo\n",
        "arguments         'hello world' -n\n",
        "time limit        60 s\n",
        "entries           10.0.0.1, ghost\n",
        "unmatched         ghost\n",
        "restart           ask the user every 5 min, restart anyway after 60 min\n",
        "random delay      within 10 minutes\n",
        "time limit (run)  1 hour 30 minutes\n",
        "account           svc\n",
        "password          set\n",
        "store history     30 days\n",
        "revision          4\n",
        "last run          run 7 completed: 4/4 devices finished (100.0%)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    let mut default_account = view(TaskType::Maintenance);
    default_account.account_name = None;
    default_account.password_set = false;
    let text = show_text(&default_account);
    assert!(
        text.contains("account           default account\n"),
        "{text}"
    );
    assert!(!text.contains("password"), "{text}");
}

#[test]
fn list_groups_by_application() {
    let mut a = view(TaskType::Device(TaskPayload::Inventory));
    a.application = "Endpoint Security".into();
    a.last_run = None;
    let mut b = view(TaskType::Maintenance);
    b.id = 4;
    b.name = "Compact".into();
    b.kind = TaskKind::Server;
    b.application = "Administration Server".into();
    let manual = Schedule::Manually.to_string();
    let expected = format!(
        "\
Administration Server
  ID  NAME     KIND    TYPE         LAST RUN          SCHEDULE  NEXT START
  4   Compact  server  maintenance  completed 100.0%  {manual}  -

Endpoint Security
  ID  NAME     KIND     TYPE       LAST RUN   SCHEDULE  NEXT START
  3   Nightly  devices  inventory  never run  {manual}  -
"
    );
    assert_eq!(list_text(&[a, b]), expected);
    assert_eq!(list_text(&[]), "no tasks\n");
}

#[test]
fn stats_and_results() {
    let run = run_view([1, 2, 3, 4, 5, 6, 7], RunState::Running);
    let text = stats_text(&run);
    for expected in [
        "run           7\n",
        "state         running\n",
        "targeted      28\n",
        "pending       1\n",
        "scheduled     2\n",
        "paused        7\n",
        "need restart  2\n",
        "completion    53.6%\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    let json = stats_json(&run).unwrap();
    assert_eq!(json["targeted"], 28);
    assert_eq!(json["run_id"], 7);
    assert!((json["completion_percent"].as_f64().unwrap() - 53.571).abs() < 0.01);

    let mut record = DeviceRunRecord::pending("d1".into(), "web-1".into());
    record.state = DeviceState::Failed;
    record.tries = 1;
    record.description = "exit code 3".into();
    record.started = Some(0);
    record.details = Some(Details::Command {
        exit_code: Some(3),
        stdout: "out".into(),
        stderr: String::new(),
        stdout_truncated: true,
        stderr_truncated: false,
    });
    let text = results_text(&run, &[record], true);
    let expected = "\
DEVICE  STATE   TRIES  DESCRIPTION  STARTED                  FINISHED  PROGRESS  RESTART NEEDED
web-1   failed  1      exit code 3  1970-01-01 00:00:00 UTC  -         0%        no
1 devices shown; run 7 of task Scan running, 53.6% complete

web-1:
  exit code 3
  stdout (truncated):
    out
";
    assert_eq!(text, expected);
}

/// A run of primary with branch-1 reporting and branch-1a not heard from yet.
fn tree_run() -> RunView {
    let server = |path: &str, depth, task_id, by_state, reported| ServerStatsView {
        path: String::from(path),
        depth,
        task_id,
        counters: RunCounters {
            by_state,
            need_restart: 0,
            progress: 0,
        },
        reported,
    };
    let mut run = run_view([5, 0, 1, 10, 1, 1, 0], RunState::Running);
    run.servers = vec![
        server("primary", 0, 3, [0, 0, 1, 8, 1, 0, 0], true),
        server("primary/branch-1", 1, 12, [1, 0, 0, 2, 0, 1, 0], true),
        server(
            "primary/branch-1/branch-1a",
            2,
            0,
            [4, 0, 0, 0, 0, 0, 0],
            false,
        ),
    ];
    run
}

#[test]
fn stats_by_server() {
    let run = tree_run();
    let expected = "\
PATH                            DEPTH  TASK ID  PENDING  SCHEDULED  RUNNING  SUCCEEDED  WARNING  FAILED  PAUSED  TOTAL  NOTE
primary                         0      3        0        0          1        8          1        0       0       10
  primary/branch-1              1      12       1        0          0        2          0        1       0       4
    primary/branch-1/branch-1a  2      -        4        0          0        0          0        0       0       4      not reported yet (devices counted as pending)
total                                           5        0          1        10         1        1       0       18
run 7 of task Scan (id 3) running: 12/18 devices finished (66.7%)
";
    assert_eq!(servers_text(&run), expected);

    let json = stats_json(&run).unwrap();
    let servers = json["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[2]["path"], "primary/branch-1/branch-1a");
    assert_eq!(servers[2]["depth"], 2);
    assert_eq!(servers[2]["reported"], false);
    assert_eq!(servers[2]["counts"]["pending"], 4);
    assert_eq!(servers[1]["task_id"], 12);
    assert_eq!(servers[1]["counts"]["failed"], 1);
    assert_eq!(servers[1]["total"], 4);
    assert_eq!(json["targeted"], 18);
    // A lone server still has the array, empty or with its own row.
    let lone = stats_json(&run_view([1, 0, 0, 0, 0, 0, 0], RunState::Running)).unwrap();
    assert_eq!(lone["servers"], serde_json::json!([]));

    let text = stats_text(&run);
    assert!(
            text.contains(
                "servers       3 taking part, 1 not reported yet (devices counted as pending); see --by-server\n"
            ),
            "{text}"
        );
    assert!(!stats_text(&run_view([0; 7], RunState::Running)).contains("servers"));

    let mut inherited = tree_run();
    inherited.inherited_from = Some("primary (task 3)".into());
    let text = stats_text(&inherited);
    assert!(
        text.contains("task          Scan (id 3), inherited from primary (task 3)\n"),
        "{text}"
    );
    assert!(servers_text(&inherited).contains(", inherited from primary (task 3)\n"));
}

#[test]
fn the_progress_bar() {
    let counters = |by_state| RunCounters {
        by_state,
        need_restart: 0,
        progress: 0,
    };
    let cases = [
        (
            [10, 0, 0, 0, 0, 0, 0],
            "[....................] 0/10 devices finished: 10 pending",
        ),
        (
            [400, 0, 88, 500, 0, 12, 0],
            "[##########..........] 512/1000 devices finished: 400 pending, 88 running, \
             500 succeeded, 12 failed",
        ),
        (
            [0, 0, 0, 1, 1, 1, 0],
            "[####################] 3/3 devices finished: 1 succeeded, 1 warning, 1 failed",
        ),
        ([0; 7], "[####################] 0/0 devices finished"),
    ];
    for (by_state, line) in cases {
        assert_eq!(progress_bar(&counters(by_state)), line);
    }
}

#[test]
fn a_schedule_says_whose_clock_it_runs_on_and_when_it_starts_next() {
    let mut task = view(TaskType::Device(TaskPayload::Inventory));
    task.schedule = crate::model::schedule::Schedule::parse("weekly:fri@19:00").unwrap();
    task.device_clock = true;
    task.next_start = Some(NextStart::DeviceTime(
        crate::model::schedule::LocalDateTime::parse("2026-12-04T19:00").unwrap(),
    ));
    let text = show_text(&task);
    for expected in [
        "schedule          every Friday at 19:00, each device's local time\n",
        "next start        2026-12-04 19:00, each device's local time\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    let list = list_text(std::slice::from_ref(&task));
    assert!(list.contains("NEXT START"), "{list}");
    assert!(list.contains("2026-12-04 19:00 device time"), "{list}");

    task.device_clock = false;
    task.next_start = Some(NextStart::ServerTime {
        at: 0,
        text: "2026-12-04 13:00 EST".into(),
    });
    let text = show_text(&task);
    assert!(
        text.contains("next start        2026-12-04 13:00 EST, the server's time\n"),
        "{text}"
    );
    task.next_start = None;
    assert!(show_text(&task).contains("next start        none to come\n"));
}

#[test]
fn results_of_a_run_with_servers_below_say_where_the_others_are() {
    let hint = results_below_hint(&tree_run(), "Quick scan").unwrap();
    assert_eq!(
        hint,
        "These are the devices of this server. The 2 servers below hold the records of their \
         own 8 devices: see `canopy task stats 'Quick scan' --by-server`, then \
         `canopy task results 'Quick scan' --server PATH`."
    );
    let mut alone = tree_run();
    alone.servers.truncate(1);
    assert_eq!(results_below_hint(&alone, "Quick scan"), None);
}

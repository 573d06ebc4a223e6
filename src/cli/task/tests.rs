//! Unit tests of `canopy task ...`: the command line, the requests it makes, and the paths of
//! `--server`; those of the text for people are in `tests/render.rs`.

use clap::Parser;

use super::args::*;
use super::render::*;
use super::settings::*;
use super::*;
use crate::cli::{Cli, Command};
use crate::model::schedule::{LocalDateTime, RandomDelay, Schedule, ScheduleOptions};
use crate::model::task::{
    DEFAULT_STORE_HISTORY_DAYS, Notify, RestartPolicy, RunCounters, TaskKind, TaskPayload, TaskType,
};
use crate::wire::msg::{AccountSpec, ScopeSpec, Secret, ServerStatsView, TaskSpec};

mod render;

/// `canopy task` with these arguments; `line` is split at whitespace, `extra` is appended
/// as is (for values with spaces).
fn parse_with(line: &str, extra: &[&str]) -> Result<TaskCommand, clap::Error> {
    let argv = ["canopy", "task"]
        .into_iter()
        .chain(line.split_whitespace())
        .chain(extra.iter().copied());
    match Cli::try_parse_from(argv)?.command {
        Command::Task(cmd) => Ok(cmd),
        other => panic!("not a task command: {other:?}"),
    }
}

fn parse(line: &str) -> Result<TaskCommand, clap::Error> {
    parse_with(line, &[])
}

fn no_password() -> impl FnMut(PasswordFrom, &str) -> anyhow::Result<Secret> {
    |from, _| panic!("no password should be read (asked from {from:?})")
}

fn create_with(line: &str, extra: &[&str]) -> anyhow::Result<TaskSpec> {
    match parse_with(&format!("create {line}"), extra)? {
        TaskCommand::Create(args) => create_spec(&args, &mut no_password()),
        other => panic!("{other:?}"),
    }
}

fn create(line: &str) -> anyhow::Result<TaskSpec> {
    create_with(line, &[])
}

fn create_err(line: &str) -> String {
    format!("{:#}", create(line).expect_err("should be refused"))
}

fn edit_args(line: &str) -> EditArgs {
    match parse(&format!("edit {line}")).unwrap() {
        TaskCommand::Edit(args) => *args,
        other => panic!("{other:?}"),
    }
}

fn run_view(by_state: [u64; 7], state: RunState) -> RunView {
    RunView {
        run_id: 7,
        task_id: 3,
        task_name: "Scan".into(),
        revision: 1,
        state,
        started: 0,
        started_by: "admin".into(),
        stopped: None,
        finished: None,
        counters: RunCounters {
            by_state,
            need_restart: 2,
            progress: 0,
        },
        servers: Vec::new(),
        inherited_from: None,
        occurrence: None,
        paused: None,
        after_run: None,
    }
}

fn view(task_type: TaskType) -> TaskView {
    TaskView {
        id: 3,
        name: "Nightly".into(),
        kind: TaskKind::DeviceList,
        task_type,
        application: "Canopy agent".into(),
        scope: Scope::DeviceList {
            entries: vec!["10.0.0.1".into(), "ghost".into()],
            device_ids: vec!["d1".into()],
            unmatched: vec!["ghost".into()],
        },
        scope_text: "2 entries".into(),
        restart: RestartPolicy::AskUser {
            repeat_minutes: 5,
            force_after_minutes: Some(60),
        },
        schedule: Schedule::Manually,
        schedule_options: ScheduleOptions {
            run_missed: false,
            random_delay: RandomDelay::Within { seconds: 600 },
            time_limit_secs: Some(5400),
            cancel_from: None,
        },
        account_name: Some("svc".into()),
        password_set: true,
        notify: Notify::ErrorsOnly,
        store_history_days: 30,
        created: 0,
        modified: 0,
        revision: 4,
        changed_by: "admin".into(),
        last_run: Some(run_view([0, 0, 0, 3, 0, 1, 0], RunState::Completed)),
        device_clock: false,
        next_start: None,
    }
}

#[test]
fn restart_policies_parse() {
    assert_eq!(parse_restart("no"), Ok(RestartPolicy::DoNotRestart));
    assert_eq!(parse_restart("yes"), Ok(RestartPolicy::Restart));
    let ask = |repeat_minutes, force_after_minutes| {
        Ok(RestartPolicy::AskUser {
            repeat_minutes,
            force_after_minutes,
        })
    };
    assert_eq!(parse_restart("ask"), ask(5, None));
    assert_eq!(parse_restart("ask:"), ask(5, None));
    assert_eq!(parse_restart("ask:1"), ask(1, None));
    assert_eq!(parse_restart("ask:1440"), ask(1440, None));
    assert_eq!(parse_restart("ask:10:60"), ask(10, Some(60)));
    assert_eq!(parse_restart("ask::60"), ask(5, Some(60)));
}

#[test]
fn bad_restart_policies_are_refused() {
    let bad = "maybe No no:5 yes:1 ask:0 ask:1441 ask:-1 ask:x ask:5: ask:5:0 ask:5:x \
                   ask:5:10:1 ask:99999";
    for bad in bad.split_whitespace().chain([""]) {
        assert!(parse_restart(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(parse_restart("ask:0").unwrap_err().contains("1 to 1440"));
}

#[test]
fn a_command_task_for_a_group_with_defaults() {
    let spec = create_with(
        "--name Update --type command --program /usr/bin/apt-get --arg update --arg -y \
             --no-secondaries",
        &["--group", "Managed devices/Branch"],
    )
    .unwrap();
    assert_eq!(
        spec,
        TaskSpec {
            name: "Update".into(),
            task_type: TaskType::Device(TaskPayload::Command {
                program: "/usr/bin/apt-get".into(),
                args: vec!["update".into(), "-y".into()],
                time_limit_secs: 3600,
            }),
            application: None,
            scope: ScopeSpec::Group {
                path: "Managed devices/Branch".into(),
                include_subgroups: true,
                include_secondaries: false,
            },
            restart: RestartPolicy::DoNotRestart,
            schedule: Schedule::Manually,
            schedule_options: ScheduleOptions::default(),
            account: None,
            notify: Notify::ErrorsOnly,
            store_history_days: DEFAULT_STORE_HISTORY_DAYS,
            comment: None,
        }
    );
}

#[test]
fn every_setting_is_carried() {
    let spec = create_with(
        "--name Sim --type simulate --duration-ms 50 --outcomes 1,2,3 \
             --need-restart-percent 10 --device sim-0001 --restart ask:15:120 \
             --schedule weekly:mon,fri@18:00 --run-missed --random-delay 7 \
             --stop-after 30 --cancel-schedule-from 2030-02-28T23:59 \
             --account svc --no-password --notify all --keep-days 3650",
        &["--application", "Endpoint Security"],
    )
    .unwrap();
    assert_eq!(
        spec.task_type,
        TaskType::Device(TaskPayload::Simulate {
            duration_ms: 50,
            succeeded: 1,
            warning: 2,
            failed: 3,
            need_restart_percent: 10,
        })
    );
    assert_eq!(
        spec.scope,
        ScopeSpec::Local {
            device: "sim-0001".into()
        }
    );
    assert_eq!(spec.application.as_deref(), Some("Endpoint Security"));
    assert_eq!(
        spec.restart,
        RestartPolicy::AskUser {
            repeat_minutes: 15,
            force_after_minutes: Some(120)
        }
    );
    assert_eq!(
        spec.schedule,
        Schedule::parse("weekly:mon,fri@18:00").unwrap()
    );
    assert_eq!(
        spec.schedule_options,
        ScheduleOptions {
            run_missed: true,
            random_delay: RandomDelay::Within { seconds: 420 },
            time_limit_secs: Some(1800),
            cancel_from: Some(LocalDateTime::parse("2030-02-28T23:59").unwrap()),
        }
    );
    assert_eq!(
        spec.account,
        Some(AccountSpec {
            name: "svc".into(),
            password: None
        })
    );
    assert_eq!(spec.notify, Notify::All);
    assert_eq!(spec.store_history_days, 3650);
}

#[test]
fn simulate_defaults_and_notify_none() {
    let spec = create("--name Sim --type simulate --where tag=sim --notify none").unwrap();
    assert_eq!(
        spec.task_type,
        TaskType::Device(TaskPayload::Simulate {
            duration_ms: 1000,
            succeeded: 90,
            warning: 5,
            failed: 5,
            need_restart_percent: 0,
        })
    );
    assert_eq!(
        spec.scope,
        ScopeSpec::Selection {
            conditions: vec!["tag=sim".into()]
        }
    );
    assert_eq!(spec.notify, Notify::Off);
}

#[test]
fn server_tasks_need_the_server_scope() {
    let spec = create("--name B --type backup --backup-dir /var/backups --server").unwrap();
    assert_eq!(
        spec.task_type,
        TaskType::Backup {
            directory: Some("/var/backups".into())
        }
    );
    assert_eq!(spec.scope, ScopeSpec::Server);
    let spec = create("--name M --type maintenance --server").unwrap();
    assert_eq!(spec.task_type, TaskType::Maintenance);

    let e = create_err("--name B --type backup");
    assert!(e.contains("give --server"), "{e}");
    let e = create_err("--name B --type backup --group Managed");
    assert!(e.contains("give --server"), "{e}");
    let e = create_err("--name I --type inventory --server");
    assert!(e.contains("runs on devices"), "{e}");
}

#[test]
fn no_scope_lists_the_choices() {
    let e = create_err("--name I --type inventory");
    for flag in "--group --devices --devices-file --where --device --server".split(' ') {
        assert!(e.contains(flag), "{e}");
    }
}

#[test]
fn two_scopes_are_refused() {
    let e = create_err("--name I --type inventory --group G --device d");
    assert!(e.contains("--group and --device were given"), "{e}");
    let e = create_err("--name I --type inventory --no-subgroups --device d");
    assert!(
        e.contains("--no-subgroups applies only with --group"),
        "{e}"
    );
}

#[test]
fn type_parameters_are_checked() {
    let e = create_err("--name S --type scan --group G");
    assert!(e.contains("a scan task needs at least one --path"), "{e}");
    let e = create_err("--name C --type command --group G");
    assert!(e.contains("needs --program"), "{e}");
    let e = create_err(
        "--name S --type scan --path /srv --program /bin/true --duration-ms 5 --group G",
    );
    assert!(
        e.contains(
            "--program (a command parameter), --duration-ms (a simulate parameter) do not \
                 apply to a scan task"
        ),
        "{e}"
    );
    let e = create_err("--name I --type inventory --backup-dir /x --group G");
    assert!(
        e.contains("--backup-dir (a backup parameter) does not apply"),
        "{e}"
    );

    let hash = "AB".repeat(32);
    let spec = create(&format!(
        "--name S --type scan --path /srv --path /home --blocklist {hash} --group G"
    ))
    .unwrap();
    assert_eq!(
        spec.task_type,
        TaskType::Device(TaskPayload::Scan {
            paths: vec!["/srv".into(), "/home".into()],
            blocklist: vec!["ab".repeat(32)],
        })
    );
    for bad in [
        "--type scan --blocklist abc",
        "--type simulate --outcomes 1,2",
        "--type simulate --outcomes 0,0,0",
        "--type command --time-limit 0",
    ] {
        assert!(parse(&format!("create --name S {bad}")).is_err(), "{bad}");
    }
}

#[test]
fn clap_refuses_unknown_values() {
    for bad in [
        "--type reboot",
        "--type inventory --notify some",
        "--type inventory --keep-days 0",
        "--type inventory --keep-days 3651",
        "--type inventory --restart ask:0",
        "--type inventory --schedule sometimes",
        "--type inventory --cancel-schedule-from 2030-02-30T00:00",
        "--type simulate --need-restart-percent 101",
    ] {
        let line = format!("create --name X --server {bad}");
        assert!(parse(&line).is_err(), "{line} was accepted");
    }
    assert!(parse("results T --state done").is_err());
    assert!(parse("results T --state failed").is_ok());
    let e = parse("create --name X --type reboot")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("command, scan, inventory, simulate, backup, maintenance"),
        "{e}"
    );
}

#[test]
fn a_password_cannot_be_given_on_the_command_line() {
    for bad in [
        "--account svc --password secret",
        "--account svc --password=secret",
        "--account svc --password-stdin secret",
        "--account svc --password-stdin=secret",
        "--account svc --no-password=secret",
        // The password flags need an account, and exclude each other.
        "--password-stdin",
        "--no-password",
        "--account svc --password-stdin --no-password",
    ] {
        let line = format!("create --name X --type inventory --device d {bad}");
        assert!(parse(&line).is_err(), "{line} was accepted");
    }
    assert!(parse("edit X --account svc --password secret").is_err());
    assert!(parse("edit X --default-account --account svc").is_err());
}

#[test]
fn the_account_password_is_read_from_where_it_is_told() {
    let line = "create --name X --type inventory --device d --account svc";
    let TaskCommand::Create(args) = parse(&format!("{line} --password-stdin")).unwrap() else {
        panic!()
    };
    let mut asked = Vec::new();
    let spec = create_spec(&args, &mut |from, account: &str| {
        asked.push((from, account.to_string()));
        Ok(Secret("pw".into()))
    })
    .unwrap();
    assert_eq!(asked, [(PasswordFrom::Stdin, "svc".to_string())]);
    assert_eq!(spec.account.unwrap().password, Some(Secret("pw".into())));

    // Without a flag it is asked for on the terminal...
    let TaskCommand::Create(args) = parse(line).unwrap() else {
        panic!()
    };
    let mut asked = None;
    create_spec(&args, &mut |from, _: &str| {
        asked = Some(from);
        Ok(Secret("pw".into()))
    })
    .unwrap();
    assert_eq!(asked, Some(PasswordFrom::Prompt));

    // ...but only once the rest of the command was found right.
    let TaskCommand::Create(args) =
        parse("create --name X --type inventory --account svc").unwrap()
    else {
        panic!()
    };
    assert!(create_spec(&args, &mut no_password()).is_err());

    assert_eq!(first_line(&b"pw one\r\nnext\n"[..]).unwrap(), "pw one");
    assert_eq!(first_line(&b"pw"[..]).unwrap(), "pw");
    assert_eq!(first_line(&b""[..]).unwrap(), "");
}

#[test]
fn device_lists_come_from_flags_and_files() {
    let spec = create_with(
        "--name I --type inventory --devices 10.0.1.0/24",
        &["--devices", "10.0.0.1, web-1"],
    )
    .unwrap();
    assert_eq!(
        spec.scope,
        ScopeSpec::Devices {
            entries: vec!["10.0.1.0/24".into(), "10.0.0.1".into(), "web-1".into()]
        }
    );

    let dir = tempfile::tempdir().unwrap();
    let with_file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        create(&format!(
            "--name I --type inventory --devices-file {}",
            path.display()
        ))
    };
    let spec = with_file(
        "devices.txt",
        "\u{feff}10.0.0.1\r\n\n  web-1  \n10.0.0.5-10.0.0.9\n",
    )
    .unwrap();
    assert_eq!(
        spec.scope,
        ScopeSpec::Devices {
            entries: vec![
                "10.0.0.1".into(),
                "web-1".into(),
                "10.0.0.5-10.0.0.9".into()
            ]
        }
    );

    let e = format!(
        "{:#}",
        with_file("big.txt", &"10.0.0.1\n".repeat(120_000)).unwrap_err()
    );
    assert!(e.contains("larger than 1 MiB"), "{e}");
    let many: Vec<String> = (0..1001)
        .map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let e = format!("{:#}", with_file("many.txt", &many.join("\n")).unwrap_err());
    assert!(e.contains("--devices-file") && e.contains("1000"), "{e}");
    let e = format!("{:#}", with_file("empty.txt", "\n \n").unwrap_err());
    assert!(e.contains("no devices"), "{e}");

    let e = create_err("--name I --type inventory --devices-file /nonexistent/list.txt");
    assert!(e.contains("/nonexistent/list.txt"), "{e}");
    let e = create_err("--name I --type inventory --where tag");
    assert!(e.contains("KEY=VALUE"), "{e}");
}

#[test]
fn edit_sets_only_what_is_given() {
    let args = edit_args("Nightly --name Weekly --notify all --keep-days 7");
    assert!(!args.needs_current());
    assert_eq!(
        edit_changes(&args, None).unwrap(),
        TaskChanges {
            name: Some("Weekly".into()),
            notify: Some(Notify::All),
            store_history_days: Some(7),
            comment: None,
            ..TaskChanges::default()
        }
    );
    let args = edit_args("Nightly --type scan --path /srv --group G --restart yes");
    assert!(!args.needs_current());
    let changes = edit_changes(&args, None).unwrap();
    assert_eq!(
        changes.task_type,
        Some(TaskType::Device(TaskPayload::Scan {
            paths: vec!["/srv".into()],
            blocklist: vec![]
        }))
    );
    assert!(matches!(changes.scope, Some(ScopeSpec::Group { .. })));
    assert_eq!(changes.restart, Some(RestartPolicy::Restart));

    let args = edit_args("Nightly --default-account");
    assert_eq!(edit_account(&args, &mut no_password()).unwrap(), Some(None));
    let args = edit_args("Nightly --account svc --no-password");
    assert_eq!(
        edit_account(&args, &mut no_password()).unwrap(),
        Some(Some(AccountSpec {
            name: "svc".into(),
            password: None
        }))
    );
    let args = edit_args("Nightly");
    assert_eq!(edit_changes(&args, None).unwrap(), TaskChanges::default());
    assert_eq!(edit_account(&args, &mut no_password()).unwrap(), None);
}

#[test]
fn edit_checks_types_and_scopes() {
    for bad in [
        "--type backup --group G",
        "--type inventory --server",
        "--type inventory --program /bin/true",
        "--group G --server",
        "--no-secondaries",
    ] {
        let args = edit_args(&format!("Nightly {bad}"));
        assert!(edit_changes(&args, None).is_err(), "{bad} was accepted");
    }
}

#[test]
fn edit_keeps_the_parameters_and_options_not_given() {
    let current = view(TaskType::Device(TaskPayload::Command {
        program: "/bin/echo".into(),
        args: vec!["hi".into()],
        time_limit_secs: 60,
    }));
    let args = edit_args("Nightly --time-limit 600 --run-missed --stop-after 0");
    assert!(args.needs_current());
    let changes = edit_changes(&args, Some(&current)).unwrap();
    assert_eq!(
        changes.task_type,
        Some(TaskType::Device(TaskPayload::Command {
            program: "/bin/echo".into(),
            args: vec!["hi".into()],
            time_limit_secs: 600,
        }))
    );
    assert_eq!(
        changes.schedule_options,
        Some(ScheduleOptions {
            run_missed: true,
            random_delay: RandomDelay::Within { seconds: 600 },
            time_limit_secs: None,
            cancel_from: None,
        })
    );
    // Without the current task, those are left out.
    let changes = edit_changes(&args, None).unwrap();
    assert_eq!(changes.task_type, None);
    assert_eq!(changes.schedule_options, None);

    let args = edit_args("Nightly --run-missed=false --random-delay 0");
    let options = edit_changes(&args, Some(&current))
        .unwrap()
        .schedule_options
        .unwrap();
    assert!(!options.run_missed);
    assert_eq!(options.random_delay, RandomDelay::Off);
    assert_eq!(options.time_limit_secs, Some(5400));

    // A parameter of another type than the task's.
    let args = edit_args("Nightly --path /srv");
    let e = format!("{:#}", edit_changes(&args, Some(&current)).unwrap_err());
    assert!(e.contains("does not apply to a command task"), "{e}");

    // --run-missed does not swallow the task's name.
    let args = edit_args("--run-missed Nightly");
    assert_eq!(args.task, "Nightly");
    assert_eq!(args.settings.run_missed, Some(true));
}

#[test]
fn stats_and_results_by_server_parse() {
    let TaskCommand::Stats {
        by_server, json, ..
    } = parse("stats Scan --by-server").unwrap()
    else {
        panic!()
    };
    assert!(by_server && !json);
    let TaskCommand::Results { server, .. } =
        parse("results Scan --server primary/branch-1/branch-1a").unwrap()
    else {
        panic!()
    };
    assert_eq!(server.as_deref(), Some("primary/branch-1/branch-1a"));
    let TaskCommand::Results { server, .. } = parse("results Scan").unwrap() else {
        panic!()
    };
    assert_eq!(server, None);
}

#[test]
fn the_server_path_is_taken_below_the_server_asked() {
    let below = |asked, path| server_below(asked, path).unwrap();
    assert_eq!(
        below("primary", "primary/branch-1/branch-1a").as_deref(),
        Some("branch-1/branch-1a")
    );
    assert_eq!(
        below("primary", "primary/branch-1").as_deref(),
        Some("branch-1")
    );
    assert_eq!(below("primary", "primary"), None);
    assert_eq!(below("primary", "/primary/"), None);
    // Already below: sent as given.
    assert_eq!(
        below("primary", "branch-1/branch-1a").as_deref(),
        Some("branch-1/branch-1a")
    );
    // With --at branch-1, the paths start with branch-1.
    assert_eq!(
        below("branch-1", "branch-1/branch-1a").as_deref(),
        Some("branch-1a")
    );
    for bad in ["", "/", "primary//b", " "] {
        let e = server_below("primary", bad).unwrap_err().to_string();
        assert!(e.contains("--server"), "{bad:?}: {e}");
    }
}

/// Splits a shell line at whitespace, keeping 'quoted' parts whole.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    for (i, part) in line.split('\'').enumerate() {
        if i % 2 == 1 {
            words.push(part.to_string());
        } else {
            words.extend(part.split_whitespace().map(str::to_string));
        }
    }
    words
}

#[test]
fn the_help_examples_parse() {
    let examples = CREATE_EXAMPLES.split("\n\n").next().unwrap();
    for example in examples.replace("\\\n", " ").lines().skip(1) {
        let argv = shell_words(&example.replace("<SHA256>", &"0".repeat(64)));
        let Command::Task(TaskCommand::Create(args)) = Cli::try_parse_from(&argv).unwrap().command
        else {
            panic!("{example}")
        };
        create_spec(&args, &mut no_password()).unwrap();
    }
    for example in EDIT_EXAMPLES.lines().skip(1) {
        let example = example.split(['(', '<']).next().unwrap();
        let argv = shell_words(example);
        assert_eq!(argv[..2], ["canopy", "task"]);
        Cli::try_parse_from(&argv).unwrap();
    }
}

#[test]
fn the_command_line_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

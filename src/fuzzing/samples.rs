//! Real values of every decoded type, as the runtime makes them: what the seeds encode.

use crate::model::device::{Application, DeviceFacts, DeviceRecord, DeviceView, Enrollment};
use crate::model::group::{Group, MANAGED_DEVICES};
use crate::model::link::{Audience, Change, LogEntry, StatsRow};
use crate::model::schedule::{
    LocalDateTime, PeriodUnit, RandomDelay, Schedule, ScheduleOptions, TimeOfDay, WeekOfMonth,
    Weekday,
};
use crate::model::scope::{IpRange, Scope, Selection};
use crate::model::task::{
    ChangedBy, Details, DeviceRunRecord, DeviceState, Inherited, Inventory, Notify, Outcome,
    Package, RestartPolicy, RunCounters, RunRecord, RunState, ScanMatch, SealedSecret, TaskAccount,
    TaskKind, TaskPayload, TaskRecord, TaskSettings, TaskType,
};
use crate::model::{
    Account, Event, EventKind, Fingerprint, Role, RunRef, SecondaryRecord, ServerRow, ServerStatus,
    Severity,
};
use crate::wire::msg::{
    AccountSpec, AccountView, ForwardedRequest, GroupView, LocalTaskDef, NextStart, ParentLinkView,
    RunOrder, RunResult, RunView, ScheduledTaskDef, ScopeSpec, Secret, ServerStatsView,
    ServerStatusView, TaskChanges, TaskSpec, TaskView, VirtualServerView,
};

pub(super) const NOW: i64 = 1_767_225_600_000;

pub(super) fn schedules() -> Vec<Schedule> {
    let at = TimeOfDay {
        hour: 18,
        minute: 30,
    };
    let start = LocalDateTime {
        year: 2026,
        month: 12,
        day: 1,
        time: at,
    };
    vec![
        Schedule::Manually,
        Schedule::Immediately,
        Schedule::AtApplicationStart,
        Schedule::AfterTask { task_id: 4 },
        Schedule::Once { at: start },
        Schedule::Every {
            every: 15,
            unit: PeriodUnit::Minutes,
            start,
        },
        Schedule::ByDaysOfWeek {
            days: vec![Weekday::Monday, Weekday::Friday],
            at,
        },
        Schedule::Monthly { day: 31, at },
        Schedule::MonthDays {
            week: WeekOfMonth::Last,
            weekday: Weekday::Sunday,
            at,
        },
    ]
}

pub(super) fn payloads() -> Vec<TaskPayload> {
    vec![
        TaskPayload::Command {
            program: "/usr/bin/apt-get".into(),
            args: vec!["-y".into(), "upgrade".into()],
            time_limit_secs: 3600,
        },
        TaskPayload::Scan {
            paths: vec!["/home".into(), "/tmp".into()],
            blocklist: vec!["ab".repeat(32)],
        },
        TaskPayload::Inventory,
        TaskPayload::Simulate {
            duration_ms: 250,
            succeeded: 90,
            warning: 5,
            failed: 5,
            need_restart_percent: 10,
        },
    ]
}

pub(super) fn scopes() -> Vec<Scope> {
    vec![
        Scope::Group {
            group_id: 3,
            include_subgroups: true,
            include_secondaries: true,
        },
        Scope::DeviceList {
            entries: vec!["10.1.0.5".into(), "10.2.0.0/24".into(), "files".into()],
            device_ids: vec!["dev-1".into(), "dev-2".into()],
            unmatched: vec!["10.2.0.0/24".into()],
        },
        Scope::Selection(Selection {
            group: Some((3, false)),
            tag: Some("finance".into()),
            os: Some("debian".into()),
            ip_range: Some(IpRange {
                first: [10, 1, 0, 0].into(),
                last: [10, 1, 255, 255].into(),
            }),
            application: Some("Endpoint Security".into()),
            connected: Some(true),
        }),
        Scope::Local {
            device_id: "dev-1".into(),
        },
        Scope::Server,
    ]
}

pub(super) fn tasks() -> Vec<TaskRecord> {
    let mut tasks = Vec::new();
    let settings = |schedule: Schedule| TaskSettings {
        restart: RestartPolicy::AskUser {
            repeat_minutes: 30,
            force_after_minutes: Some(240),
        },
        schedule,
        schedule_options: ScheduleOptions {
            run_missed: true,
            random_delay: RandomDelay::Within { seconds: 600 },
            time_limit_secs: Some(5400),
            cancel_from: None,
        },
        account: TaskAccount::Specified {
            name: "svc-patch".into(),
            password: Some(SealedSecret {
                nonce: [7; 12],
                ciphertext: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            }),
        },
        notify: Notify::All,
        store_history_days: 30,
    };
    for (i, ((payload, scope), schedule)) in payloads()
        .into_iter()
        .zip(scopes())
        .zip(schedules())
        .enumerate()
    {
        let id = i as u64 + 1;
        tasks.push(TaskRecord {
            id,
            name: format!("Task {id}"),
            task_type: TaskType::Device(payload),
            application: "Canopy agent".into(),
            scope,
            settings: settings(schedule),
            created: NOW,
            modified: NOW + 1000,
            revision: 3,
            changed_by: ChangedBy::Administrator("admin".into()),
            last_run: Some(9),
            inherited: (i == 0).then(|| Inherited {
                parent: "primary".into(),
                parent_task_id: 41,
                parent_revision: 2,
            }),
        });
    }
    tasks.push(TaskRecord {
        id: 20,
        name: "Nightly backup".into(),
        task_type: TaskType::Backup {
            directory: Some("nightly".into()),
        },
        application: "Administration Server".into(),
        scope: Scope::Server,
        settings: TaskSettings::default(),
        created: NOW,
        modified: NOW,
        revision: 1,
        changed_by: ChangedBy::DeviceUser,
        last_run: None,
        inherited: None,
    });
    tasks
}

pub(super) fn counters() -> RunCounters {
    RunCounters {
        by_state: [3, 1, 2, 40, 2, 1, 1],
        need_restart: 4,
        progress: 140,
    }
}

pub(super) fn runs() -> Vec<RunRecord> {
    let base = RunRecord {
        run_id: 9,
        task_id: 1,
        task_name: "Task 1".into(),
        notify: Notify::ErrorsOnly,
        revision: 3,
        started: NOW,
        started_by: "admin".into(),
        stopped: None,
        finished: Some(NOW + 60_000),
        counters: counters(),
        version: 17,
        parent_run: Some(5),
        occurrence: None,
        device_clock: false,
        paused: None,
        after_run: None,
    };
    let scheduled = RunRecord {
        run_id: 10,
        parent_run: None,
        occurrence: Some(at(2026, 12, 4, 19, 0)),
        device_clock: true,
        paused: Some(NOW + 5_000),
        ..base.clone()
    };
    let chained = RunRecord {
        run_id: 11,
        task_id: 2,
        after_run: Some(9),
        ..base.clone()
    };
    vec![base, scheduled, chained]
}

pub(super) fn outcomes() -> Vec<Outcome> {
    let outcome = |state, details| Outcome {
        state,
        description: "exit code 0".into(),
        progress: 100,
        need_restart: state == DeviceState::Warning,
        details,
    };
    vec![
        outcome(
            DeviceState::Succeeded,
            Details::Command {
                exit_code: Some(0),
                stdout: "Reading package lists...\nDone\n".into(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: true,
            },
        ),
        outcome(
            DeviceState::Warning,
            Details::Scan {
                files_scanned: 1200,
                unreadable: 3,
                matches: vec![ScanMatch {
                    path: "/tmp/x.bin".into(),
                    sha256: "ab".repeat(32),
                }],
            },
        ),
        outcome(
            DeviceState::Succeeded,
            Details::Inventory(Inventory {
                os: "Debian GNU/Linux 13".into(),
                hostname: "ws-0001".into(),
                addresses: vec!["10.1.0.5".into(), "fe80::1".into()],
                packages: vec![Package {
                    name: "openssl".into(),
                    version: "3.5.1-1".into(),
                }],
            }),
        ),
        Outcome::failed("interrupted"),
    ]
}

pub(super) fn records() -> Vec<DeviceRunRecord> {
    let mut records = vec![DeviceRunRecord::pending("dev-3".into(), "paris-01".into())];
    for (i, outcome) in outcomes().into_iter().enumerate() {
        records.push(DeviceRunRecord {
            device_id: format!("dev-{i}"),
            device_name: format!("ws-{i:04}"),
            state: outcome.state,
            tries: 1,
            description: outcome.description,
            started: Some(NOW),
            finished: Some(NOW + 5000),
            progress: outcome.progress,
            need_restart: outcome.need_restart,
            details: Some(outcome.details),
        });
    }
    records
}

pub(super) fn facts() -> DeviceFacts {
    DeviceFacts {
        display_name: "ws-0001".into(),
        dns_name: "ws-0001.corp.example.com".into(),
        addresses: vec!["10.1.0.5/24".into(), "fe80::1%eth0".into()],
        os: "Debian GNU/Linux 13 (trixie)".into(),
        agent_version: "0.1.0".into(),
        tags: vec!["finance".into()],
        applications: vec![Application {
            name: "Endpoint Security".into(),
            running: true,
        }],
        time_zone: "Europe/Berlin".into(),
    }
}

pub(super) fn devices() -> Vec<DeviceRecord> {
    vec![DeviceRecord {
        id: "7f3c9a20-ws-0001".into(),
        fingerprint: Fingerprint([0x5a; 32]),
        name: "ws-0001".into(),
        enrollment: Enrollment::Approved,
        group_id: 3,
        facts: facts(),
        tags: vec!["finance".into(), "floor-2".into()],
        enrolled: NOW,
        last_seen: Some(NOW + 9000),
    }]
}

pub(super) fn device_views() -> Vec<DeviceView> {
    devices()
        .iter()
        .map(|d| DeviceView::of(d, "Managed devices/Branch".into(), true))
        .collect()
}

pub(super) fn groups() -> Vec<Group> {
    let mut groups = Group::roots().to_vec();
    groups.push(Group {
        id: 3,
        parent: Some(MANAGED_DEVICES),
        name: "Branch".into(),
    });
    groups.push(Group {
        id: 4,
        parent: Some(3),
        name: "Paris".into(),
    });
    groups
}

pub(super) fn server_rows() -> Vec<ServerRow> {
    vec![
        ServerRow {
            path: "branch-1".into(),
            depth: 0,
            name: "branch-1".into(),
            group: String::new(),
            status: ServerStatus::Active,
            version: "0.1.0".into(),
            instance_id: "5c3a0e1f2b4d6879".into(),
            address: None,
            last_connected: None,
            devices: 120,
            virtual_server: false,
            passive: true,
        },
        ServerRow {
            path: "branch-1/branch-1a".into(),
            depth: 1,
            name: "branch-1a".into(),
            group: "Managed devices".into(),
            status: ServerStatus::Inactive,
            version: "0.1.0".into(),
            instance_id: "5c3a0e1f2b4d6879".into(),
            address: Some("127.0.0.1:13002".into()),
            last_connected: Some(NOW),
            devices: 40,
            virtual_server: true,
            passive: false,
        },
    ]
}

pub(super) fn secondaries() -> Vec<SecondaryRecord> {
    vec![SecondaryRecord {
        name: "branch-1".into(),
        group_id: MANAGED_DEVICES,
        cert_der: vec![0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01],
        fingerprint: Fingerprint([0xa5; 32]),
        registered_at: NOW,
        last_connected: Some(NOW + 1),
        version: "0.1.0".into(),
        instance_id: "9e8d7c6b5a493827".into(),
        address: Some("127.0.0.1:13001".into()),
        subtree: server_rows(),
        devices: 120,
        virtual_server: false,
        disabled: false,
        enrollment_token: String::new(),
        passive: Some("dmz.example.org:13000".into()),
    }]
}

pub(super) fn accounts() -> Vec<Account> {
    vec![Account {
        name: "admin".into(),
        role: Role::Administrator,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        created: NOW,
    }]
}

pub(super) fn events() -> Vec<Event> {
    vec![Event {
        seq: 12,
        time: NOW,
        severity: Severity::Warning,
        kind: EventKind::DeviceResult,
        message: "device ws-0001: task \"Task 1\" ended with a warning".into(),
        origin: vec!["branch-1".into(), "branch-1a".into()],
    }]
}

pub(super) fn changes() -> Vec<Change<TaskRecord>> {
    let task = tasks().remove(0);
    vec![
        Change::TaskUpsert {
            task_id: task.id,
            revision: task.revision,
            task,
        },
        Change::TaskDelete { task_id: 2 },
        Change::RunStart {
            task_id: 1,
            run_id: 9,
            revision: 3,
            occurrence: None,
        },
        Change::RunStop {
            task_id: 1,
            run_id: 9,
        },
        Change::Revoke(revocation()),
        Change::Noop,
        Change::RunPause {
            task_id: 1,
            run_id: 9,
            paused: true,
        },
        Change::ChainStart {
            task_id: 2,
            run_id: 10,
            revision: 1,
            after_run: 9,
        },
    ]
}

pub(super) fn revocation() -> crate::model::server::Revocation {
    crate::model::server::Revocation {
        fingerprint: crate::model::Fingerprint([0x5a; 32]),
        name: "branch-2".into(),
        by: "primary".into(),
        revoked_at: NOW,
        reason: "removed by admin".into(),
    }
}

pub(super) fn log_entries() -> Vec<LogEntry<TaskRecord>> {
    changes()
        .into_iter()
        .enumerate()
        .map(|(i, change)| LogEntry {
            change,
            audience: if i % 2 == 0 {
                Audience::Group {
                    group_id: 3,
                    include_subgroups: true,
                }
            } else {
                Audience::AllChildren
            },
        })
        .collect()
}

pub(super) fn stats_rows() -> Vec<StatsRow> {
    vec![
        StatsRow::own(1, 9, counters(), 17, 0x1234_5678_9abc),
        StatsRow {
            path: vec!["branch-1a".into()],
            depth: 1,
            task_id: 4,
            run_id: 2,
            counters: counters(),
            version: 5,
            epoch: 77,
        },
    ]
}

pub(super) fn orders() -> Vec<RunOrder> {
    payloads()
        .into_iter()
        .enumerate()
        .map(|(i, payload)| RunOrder {
            run: if i % 2 == 0 {
                RunRef::Ordered(9 + i as u64)
            } else {
                occurrence_of(1 + i as u64)
            },
            task_id: 1 + i as u64,
            task_name: format!("Task {}", i + 1),
            application: "Canopy agent".into(),
            payload,
            time_limit_secs: (i % 2 == 1).then_some(90),
            account: sample_account(i),
        })
        .collect()
}

pub(super) fn results() -> Vec<RunResult> {
    outcomes()
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| RunResult {
            run: if i % 2 == 0 {
                RunRef::Ordered(9)
            } else {
                occurrence_of(3)
            },
            started: NOW,
            finished: NOW + 5000,
            outcome,
        })
        .collect()
}

/// Every other sample runs under a specified account, one of them without its password.
fn sample_account(i: usize) -> TaskAccount {
    match i % 4 {
        1 => TaskAccount::Specified {
            name: "svc-run".into(),
            password: Some(SealedSecret {
                nonce: [3; 12],
                ciphertext: vec![9; 24],
            }),
        },
        3 => TaskAccount::Specified {
            name: "svc-run".into(),
            password: None,
        },
        _ => TaskAccount::Default,
    }
}

/// An occurrence of task `task_id`, as a device names it.
pub(super) fn occurrence_of(task_id: u64) -> RunRef {
    RunRef::Occurrence {
        task_id,
        key: at(2026, 12, 4, 19, 0),
    }
}

fn at(year: i16, month: u8, day: u8, hour: u8, minute: u8) -> LocalDateTime {
    LocalDateTime {
        year,
        month,
        day,
        time: TimeOfDay { hour, minute },
    }
}

/// Tasks devices run on their own schedule, one per timed schedule of the samples.
pub(super) fn scheduled_tasks() -> Vec<ScheduledTaskDef> {
    schedules()
        .into_iter()
        .filter(|schedule| schedule.is_timed())
        .enumerate()
        .map(|(i, schedule)| ScheduledTaskDef {
            task_id: 20 + i as u64,
            name: format!("Scheduled {i}"),
            revision: 2,
            since: NOW,
            application: "Canopy agent".into(),
            payload: TaskPayload::Inventory,
            schedule,
            run_missed: i % 2 == 0,
            delay_window_secs: 600 * i as u32,
            time_limit_secs: Some(3600),
            cancel_from: (i == 1).then(|| at(2030, 1, 1, 0, 0)),
            account: sample_account(i),
        })
        .collect()
}

pub(super) fn local_tasks() -> Vec<LocalTaskDef> {
    schedules()
        .into_iter()
        .take(3)
        .map(|schedule| LocalTaskDef {
            task_id: 7,
            name: "Nightly scan".into(),
            revision: 2,
            application: "Canopy agent".into(),
            payload: payloads().remove(1),
            schedule,
        })
        .collect()
}

pub(super) fn task_specs() -> Vec<TaskSpec> {
    let scopes = vec![
        ScopeSpec::Group {
            path: "Managed devices/Branch".into(),
            include_subgroups: true,
            include_secondaries: false,
        },
        ScopeSpec::Devices {
            entries: vec!["10.1.0.5".into(), "10.2.0.0/24".into(), "files.corp".into()],
        },
        ScopeSpec::Selection {
            conditions: vec!["tag=finance".into(), "ip=10.1.0.0/16".into()],
        },
        ScopeSpec::Local {
            device: "ws-0001".into(),
        },
        ScopeSpec::Server,
    ];
    scopes
        .into_iter()
        .zip(payloads().into_iter().cycle())
        .zip(schedules())
        .map(|((scope, payload), schedule)| TaskSpec {
            name: "Patch Tuesday".into(),
            task_type: TaskType::Device(payload),
            application: Some("Endpoint Security".into()),
            scope,
            restart: RestartPolicy::Restart,
            schedule,
            schedule_options: ScheduleOptions::default(),
            account: Some(AccountSpec {
                name: "svc-patch".into(),
                password: Some(Secret("correct horse battery".into())),
            }),
            notify: Notify::Off,
            store_history_days: 90,
            comment: None,
        })
        .collect()
}

pub(super) fn task_changes() -> TaskChanges {
    TaskChanges {
        name: Some("Patch Wednesday".into()),
        schedule: Some(schedules().remove(6)),
        account: Some(None),
        store_history_days: Some(10),
        comment: None,
        ..TaskChanges::default()
    }
}

pub(super) fn run_view() -> RunView {
    RunView {
        run_id: 9,
        task_id: 1,
        task_name: "Task 1".into(),
        revision: 3,
        state: RunState::Running,
        started: NOW,
        started_by: "admin".into(),
        stopped: None,
        finished: None,
        counters: counters(),
        servers: vec![ServerStatsView {
            path: "primary/branch-1".into(),
            depth: 1,
            task_id: 4,
            counters: counters(),
            reported: true,
        }],
        inherited_from: Some("primary".into()),
        occurrence: None,
        paused: Some(NOW + 5_000),
        after_run: Some(8),
    }
}

pub(super) fn task_view() -> TaskView {
    let task = tasks().remove(2);
    TaskView {
        id: task.id,
        name: task.name,
        kind: TaskKind::Selection,
        task_type: task.task_type,
        application: task.application,
        scope: task.scope,
        scope_text: "devices tagged \"finance\"".into(),
        restart: task.settings.restart,
        schedule: task.settings.schedule,
        schedule_options: task.settings.schedule_options,
        account_name: Some("svc-patch".into()),
        password_set: true,
        notify: task.settings.notify,
        store_history_days: 30,
        created: NOW,
        modified: NOW,
        revision: 3,
        changed_by: "admin".into(),
        last_run: Some(run_view()),
        device_clock: true,
        next_start: Some(NextStart::DeviceTime(at(2026, 12, 4, 19, 0))),
    }
}

pub(super) fn status() -> ServerStatusView {
    ServerStatusView {
        name: "branch-1".into(),
        software_version: "0.1.0".into(),
        listen: "127.0.0.1:13001".into(),
        fingerprint: Fingerprint([0xa5; 32]).to_string(),
        started: NOW,
        parent: Some(ParentLinkView {
            address: "127.0.0.1:13000".into(),
            health: "Degraded".into(),
            consecutive_failures: 3,
            last_error: Some("timed out".into()),
            connected_since: None,
        }),
        secondaries: 1,
        devices: 120,
        devices_connected: 97,
        devices_pending: 4,
    }
}

pub(super) fn group_views() -> Vec<GroupView> {
    vec![GroupView {
        id: 3,
        path: "Managed devices/Branch".into(),
        depth: 1,
        subgroups: 1,
        devices: 12,
        secondaries: 1,
    }]
}

pub(super) fn account_views() -> Vec<AccountView> {
    accounts().iter().map(AccountView::from).collect()
}

pub(super) fn vserver() -> VirtualServerView {
    VirtualServerView {
        name: "tenant-a".into(),
        group: "Managed devices".into(),
        enabled: true,
        created: NOW,
        devices: 3,
        devices_connected: 2,
        enrollment_token: Secret("tenant-a-enrollment-token".into()),
        data: "/var/lib/canopy/vservers/tenant-a.redb".into(),
    }
}

pub(super) fn forwarded(request: crate::wire::msg::AdminRequest) -> ForwardedRequest {
    ForwardedRequest {
        path: vec!["branch-1".into(), "branch-1a".into()],
        user: "admin".into(),
        role: Role::Operator,
        request,
    }
}

/// One result of each kind the Change tasks password wizard gives.
pub(super) fn credential_results() -> Vec<crate::wire::msg::CredentialsResult> {
    use crate::wire::msg::{CredentialOutcome as O, CredentialsResult};
    let outcomes = [
        O::Replaced { revision: 2 },
        O::Forced { revision: 3 },
        O::CredentialsDeleted { revision: 4 },
        O::NoAction,
        O::ChoiceNeeded {
            reason: "the previous password does not match".into(),
        },
    ];
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| CredentialsResult {
            task_id: 10 + i as u64,
            task_name: format!("Task {i}"),
            outcome,
        })
        .collect()
}

//! The seed corpus: real inputs for each target, made from real values (`samples`) and the
//! config files of `config/`, so the fuzzers start from what peers, files and users send.
//! `make fuzz-seeds` writes them to `fuzz/corpus/TARGET/seed-NAME`; the tests check that each
//! passes its target's checks and is accepted.

use serde::Serialize;

use super::links::RAW;
use super::requests::{admin_requests, admin_responses};
use super::samples::{self as s, NOW};
use super::stored::TYPES;
use crate::model::{Fingerprint, RunRef};
use crate::wire::PROTOCOL_VERSION;
use crate::wire::codec;
use crate::wire::msg::{
    AdminCall, AdminHello, AdminWelcome, AgentHello, AgentToServer, ChildHello, ChildMsg,
    ParentMsg, Secret, ServerToAgent,
};

/// One seed: the target it is for, a name for its file, and its bytes. Every seed is
/// accepted by its target but those whose name starts with `bad-`, which it refuses.
#[derive(Clone, Debug)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    hellos(&mut out);
    links(&mut out);
    stored(&mut out);
    files(&mut out);
    out
}

fn push(out: &mut Vec<Seed>, target: &'static str, name: String, bytes: Vec<u8>) {
    out.push(Seed {
        target,
        name,
        bytes,
    });
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value).unwrap_or_default()
}

/// `body` as a frame: its length, big-endian, then the bytes.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A hello frame as `wire::write_hello` writes it, claiming `version`.
fn hello_frame<T: Serialize>(version: u32, body: &T) -> Vec<u8> {
    let mut bytes = b"CNPY".to_vec();
    bytes.extend_from_slice(&version.to_be_bytes());
    bytes.extend_from_slice(&encode(body));
    frame(&bytes)
}

fn with_selector(selector: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(bytes);
    out
}

fn hellos(out: &mut Vec<Seed>) {
    let child = ChildHello {
        name: "branch-1".into(),
        software_version: "0.1.0".into(),
        instance_id: "5c3a0e1f2b4d6879".into(),
        last_applied: 41,
        parent_epoch: 0x1234_5678,
        epoch: 0x9abc_def0,
    };
    let admin = [
        AdminHello {
            client_version: "0.1.0".into(),
            virtual_server: None,
        },
        AdminHello {
            client_version: "0.1.0".into(),
            virtual_server: Some("tenant-a".into()),
        },
    ];
    let agent = AgentHello {
        device_id: "7f3c9a20-ws-0001".into(),
        virtual_server: Some("primary/tenant-a".into()),
        token: Some(Secret("change-me-branch-enrollment-token".into())),
        facts: s::facts(),
    };
    let mut seeds = vec![
        ("fed", 0, hello_frame(PROTOCOL_VERSION, &child)),
        (
            "bad-old-version",
            0,
            hello_frame(PROTOCOL_VERSION - 1, &child),
        ),
        ("admin", 1, hello_frame(PROTOCOL_VERSION, &admin[0])),
        ("admin-vserver", 1, hello_frame(PROTOCOL_VERSION, &admin[1])),
        ("agent", 2, hello_frame(PROTOCOL_VERSION, &agent)),
        ("bad-not-a-hello", 1, frame(b"GET / HTTP/1.1\r\n")),
    ];
    let mut pending = agent.clone();
    pending.token = None;
    pending.virtual_server = None;
    seeds.push(("agent-pending", 2, hello_frame(PROTOCOL_VERSION, &pending)));
    for (name, selector, bytes) in seeds {
        push(out, "hello", name.into(), with_selector(selector, &bytes));
    }
}

/// Seeds of one message type of a link: each message alone in a stream (with varied chunk
/// sizes for the interrupted read), all of them in one stream, and each alone as a raw value.
fn messages<T: Serialize>(
    out: &mut Vec<Seed>,
    target: &'static str,
    kind: &str,
    index: u8,
    values: &[T],
) {
    let mut all = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let body = encode(value);
        let framed = frame(&body);
        let chunk = ((i * 5) % 16) as u8;
        all.extend_from_slice(&framed);
        push(
            out,
            target,
            format!("{kind}-{i:02}"),
            with_selector(index | chunk << 4, &framed),
        );
        push(
            out,
            target,
            format!("{kind}-{i:02}-raw"),
            with_selector(index | RAW, &body),
        );
    }
    push(
        out,
        target,
        format!("{kind}-all"),
        with_selector(index | 2 << 4, &all),
    );
}

fn links(out: &mut Vec<Seed>) {
    let welcome = ParentMsg::Welcome {
        parent_name: "primary".into(),
        registered_name: "branch-1".into(),
        group: "Managed devices".into(),
        log_epoch: 0x1234_5678,
        log_last_seq: 57,
        events_held: 300,
        snapshot_from: Some(41),
    };
    let mut parent = vec![welcome.clone()];
    for (seq, change) in s::changes().into_iter().enumerate() {
        parent.push(ParentMsg::Change {
            seq: seq as u64 + 42,
            change: Box::new(change),
        });
    }
    parent.push(ParentMsg::StatsAck {
        run_id: 9,
        report_id: 3,
    });
    parent.push(ParentMsg::EventsAck(312));
    for (id, request) in admin_requests().into_iter().step_by(5).enumerate() {
        parent.push(ParentMsg::Request {
            id: id as u64,
            request: Box::new(s::forwarded(request)),
        });
    }
    messages(out, "fed_link", "parent", 0, &parent);
    messages(out, "fed_link", "welcome", 2, &[welcome]);
    let mut child = vec![
        ChildMsg::Subtree {
            devices: 120,
            rows: s::server_rows(),
        },
        ChildMsg::Ack(57),
        ChildMsg::Resume(41),
        ChildMsg::Stats {
            run_id: 9,
            report_id: 3,
            rows: s::stats_rows(),
        },
        ChildMsg::Events {
            events: s::events(),
        },
    ];
    for (id, response) in admin_responses().into_iter().step_by(4).enumerate() {
        child.push(ChildMsg::Response {
            id: id as u64,
            response: Box::new(response),
        });
    }
    messages(out, "fed_link", "child", 1, &child);

    let calls: Vec<AdminCall> = admin_requests()
        .into_iter()
        .enumerate()
        .map(|(i, request)| AdminCall {
            token: (i > 0).then(|| Secret("0f1e2d3c4b5a69788796a5b4c3d2e1f0".into())),
            request,
            at: if i % 3 == 2 {
                vec!["branch-1".into()]
            } else {
                Vec::new()
            },
        })
        .collect();
    messages(out, "admin_link", "call", 0, &calls);
    messages(out, "admin_link", "response", 1, &admin_responses());
    let welcome = AdminWelcome {
        server_name: "primary".into(),
        software_version: "0.1.0".into(),
    };
    messages(out, "admin_link", "welcome", 2, &[welcome]);

    let mut from_agent = vec![
        AgentToServer::Received {
            run: RunRef::Ordered(9),
        },
        AgentToServer::Started {
            run: s::occurrence_of(3),
            at: NOW,
        },
    ];
    from_agent.extend(s::results().into_iter().map(AgentToServer::Result));
    from_agent.push(AgentToServer::LocalTaskEdit {
        task_id: 7,
        base_revision: 2,
        schedule: s::schedules().remove(6),
    });
    from_agent.push(AgentToServer::Progress {
        run: RunRef::Ordered(9),
        percent: 42,
        paused: true,
    });
    messages(out, "agent_link", "from-agent", 0, &from_agent);
    let mut to_agent = vec![
        ServerToAgent::Accepted {
            server_name: "branch-1".into(),
            group: "Managed devices/Branch".into(),
            revoked: vec![Fingerprint([0x5a; 32])],
        },
        ServerToAgent::Pending,
        ServerToAgent::Rejected {
            reason: "unknown device".into(),
        },
    ];
    to_agent.extend(s::orders().into_iter().map(ServerToAgent::Run));
    to_agent.push(ServerToAgent::ResultStored {
        run: RunRef::Ordered(9),
    });
    to_agent.push(ServerToAgent::Cancel {
        run: s::occurrence_of(3),
    });
    to_agent.push(ServerToAgent::Pause {
        run: RunRef::Ordered(9),
    });
    to_agent.push(ServerToAgent::Resume {
        run: s::occurrence_of(3),
    });
    to_agent.extend(s::local_tasks().into_iter().map(ServerToAgent::LocalTask));
    to_agent.push(ServerToAgent::LocalTaskDeleted { task_id: 7 });
    let scheduled = s::scheduled_tasks();
    let task_ids = scheduled.iter().map(|t| t.task_id).collect();
    to_agent.extend(
        scheduled
            .into_iter()
            .map(|t| ServerToAgent::ScheduledTask(Box::new(t))),
    );
    to_agent.push(ServerToAgent::ScheduledTasks { task_ids });
    messages(out, "agent_link", "to-agent", 1, &to_agent);
}

fn stored(out: &mut Vec<Seed>) {
    use crate::store::agent::{Identity, LocalRun, LocalRunState, LocalTask, PendingEdit};
    let mut add = |kind: &str, values: Vec<Vec<u8>>| {
        let Some(index) = TYPES.iter().position(|t| *t == kind) else {
            return;
        };
        for (i, bytes) in values.into_iter().enumerate() {
            let name = format!(
                "{}-{i:02}",
                kind.to_ascii_lowercase().replace(['<', '>'], "-")
            );
            push(
                out,
                "store_values",
                name,
                with_selector(index as u8, &bytes),
            );
        }
    };
    fn all<T: Serialize>(values: Vec<T>) -> Vec<Vec<u8>> {
        values.iter().map(encode).collect()
    }
    add("TaskRecord", all(s::tasks()));
    add("RunRecord", all(s::runs()));
    add("DeviceRunRecord", all(s::records()));
    add("Revocation", all(vec![s::revocation()]));
    let revisions = s::tasks()
        .into_iter()
        .enumerate()
        .map(|(i, task)| crate::model::revision::TaskRevision {
            revision: task.revision,
            at: NOW,
            by: "admin".into(),
            action: match i % 5 {
                0 => crate::model::revision::RevisionAction::Created,
                1 => crate::model::revision::RevisionAction::RolledBack { to: 2 },
                2 => crate::model::revision::RevisionAction::PasswordChanged { forced: true },
                3 => crate::model::revision::RevisionAction::CredentialsDeleted,
                _ => crate::model::revision::RevisionAction::Copied {
                    from: "Scan".into(),
                },
            },
            comment: (i % 2 == 0).then(|| "fixed the path".to_string()),
            task,
        })
        .collect();
    add("TaskRevision", all(revisions));
    add("DeviceRecord", all(s::devices()));
    add("Group", all(s::groups()));
    add("Vec<Group>", vec![encode(&s::groups())]);
    add("SecondaryRecord", all(s::secondaries()));
    add("Account", all(s::accounts()));
    add("Event", all(s::events()));
    add("LogEntry", all(s::log_entries()));
    add("StatsRow", all(s::stats_rows()));
    add("RunOrder", all(s::orders()));
    add(
        "Identity",
        vec![encode(&Identity {
            device_id: "7f3c9a20-ws-0001".into(),
            cert_der: vec![0x30, 0x82, 0x01, 0x22],
            key_der: vec![0x30, 0x51, 0x02, 0x01],
        })],
    );
    let runs: Vec<LocalRun> = s::orders()
        .into_iter()
        .zip(s::results())
        .zip([
            LocalRunState::Received,
            LocalRunState::Started,
            LocalRunState::Finished,
        ])
        .map(|((order, result), state)| LocalRun {
            order,
            state,
            started: (state != LocalRunState::Received).then_some(NOW),
            result: (state == LocalRunState::Finished).then_some(result),
            acknowledged: false,
        })
        .collect();
    add("LocalRun", all(runs));
    let tasks: Vec<LocalTask> = s::local_tasks()
        .into_iter()
        .map(|def| LocalTask {
            pending_edit: Some(PendingEdit {
                base_revision: def.revision,
                schedule: s::schedules().remove(7),
            }),
            def,
        })
        .collect();
    add("LocalTask", all(tasks));
}

/// A fingerprint in the form `canopy pki fingerprint` prints, for the example configs.
fn fingerprint() -> String {
    Fingerprint([0xa5; 32]).to_string()
}

fn files(out: &mut Vec<Seed>) {
    let configs = [
        ("primary", include_str!("../../config/primary.toml")),
        ("secondary", include_str!("../../config/secondary.toml")),
        (
            "secondary-of-secondary",
            include_str!("../../config/secondary-of-secondary.toml"),
        ),
        (
            "secondary-dmz",
            include_str!("../../config/secondary-dmz.toml"),
        ),
    ];
    for (name, text) in configs {
        // The examples of secondaries hold a placeholder where the parent's fingerprint goes.
        if !text.contains("REPLACE-WITH") {
            push(out, "server_config", name.into(), text.as_bytes().to_vec());
        } else {
            let bad = format!("bad-{name}-placeholder");
            push(out, "server_config", bad, text.as_bytes().to_vec());
            let fixed: String = text
                .lines()
                .map(|line| match line.starts_with("fingerprint") {
                    true => format!("fingerprint = \"{}\"\n", fingerprint()),
                    false => format!("{line}\n"),
                })
                .collect();
            let name = format!("{name}-fingerprint");
            push(out, "server_config", name, fixed.into_bytes());
        }
    }
    let agent = include_str!("../../config/agent.toml");
    push(
        out,
        "agent_config",
        "agent".into(),
        agent.as_bytes().to_vec(),
    );
    let other = "server = \"[::1]:13000/tenant-a\"\nca = \"ca.pem\"\ndata = \"a.redb\"\n\
                 name = \"ws-0042\"\ntime_zone = \"Europe/Berlin\"\n\n[[application]]\n\
                 name = \"Office Suite\"\nprocess = \"soffice.bin\"\n\n[[application]]\n\
                 name = \"Backup\"\nrunning = false\n";
    push(out, "agent_config", "vserver-process".into(), other.into());

    let lists = [
        ("addresses", "10.1.0.5\n10.1.0.6\n2001:db8::7\n"),
        (
            "mixed",
            "\u{feff}# branch office\n10.1.0.0/24\n\n10.2.0.1 - 10.2.0.99\nfiles.corp.example.com.\nws-0001\n",
        ),
        (
            "ipv6",
            "fe80::/64\n2001:db8::1-2001:db8::ff\n::ffff:10.0.0.1\n",
        ),
        ("crlf", "ws-0001\r\nws-0002\r\n# done\r\n"),
    ];
    for (name, text) in lists {
        push(out, "device_list", name.into(), text.into());
    }
    let selections = [
        ("tag", "tag=finance"),
        (
            "group",
            "group=Managed devices/Branch\nsubgroups=no\nconnected=yes",
        ),
        (
            "all-keys",
            "group=/Managed devices/Branch/Paris/\nsubgroups=yes\ntag=t1\nos=debian\nip=10.1.0.0/16\napp=Endpoint Security\nconnected=no",
        ),
        ("ip-range", "IP = 10.1.0.1-10.1.0.9\nOS=Linux"),
        ("ipv6", "ip=2001:db8::7"),
    ];
    for (name, text) in selections {
        push(out, "selection", name.into(), text.into());
    }
    for (i, schedule) in s::schedules().iter().enumerate() {
        push(
            out,
            "local_edit",
            format!("schedule-{i:02}"),
            schedule.spec().into(),
        );
    }
    let request = crate::agent::local::EditRequest {
        task: "#7".into(),
        schedule: "weekly:mon,fri@18:00".into(),
        base_revision: Some(2),
        requested_at_ms: NOW,
    };
    let json = serde_json::to_string_pretty(&request).unwrap_or_default();
    push(out, "local_edit", "request".into(), json.into_bytes());
    let snapshot = crate::agent::local::Snapshot {
        device_id: "7f3c9a20-ws-0001".into(),
        written_at_ms: NOW,
        tasks: s::local_tasks()
            .into_iter()
            .map(|def| crate::agent::local::SnapshotTask {
                task_id: def.task_id,
                name: def.name,
                revision: def.revision,
                application: def.application,
                schedule: def.schedule.spec(),
                schedule_text: def.schedule.to_string(),
                payload: def.payload,
                pending_edit: None,
            })
            .collect(),
    };
    let json = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
    push(out, "local_edit", "snapshot".into(), json.into_bytes());
    for (i, task) in s::local_tasks().into_iter().enumerate() {
        let exported = crate::model::export::ExportedTask {
            name: task.name,
            application: task.application,
            schedule: task.schedule.spec(),
            account: (i % 2 == 1).then(|| "svc-scan".to_string()),
            account_password_set: i % 2 == 1,
            notify: crate::model::task::Notify::ErrorsOnly,
            keep_days: 30,
            exported_from: "primary".into(),
            exported_at: "2026-11-30 12:00:00 UTC".into(),
            restart: crate::model::task::RestartPolicy::default(),
            schedule_options: crate::model::schedule::ScheduleOptions::default(),
            parameters: task.payload,
        };
        if let Ok(file) = crate::model::export::encode(&exported) {
            push(
                out,
                "task_export",
                format!("task-{i:02}"),
                file.into_bytes(),
            );
        }
    }
}

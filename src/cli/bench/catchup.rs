//! `bench catchup`: a child away while the primary's change log grows by many entries, then
//! back: how long until it holds the primary's state, with the log trimmed (it is sent a
//! snapshot of the state) and with every entry kept (it replays them all).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::change::login_patiently;
use super::figures::{machine, print_figures, spread};
use super::process::cpu_seconds;
use super::{bench_server_text, group_task, instant_success};
use crate::cli::client::AdminClient;
use crate::cli::deployment::{Deployment, wait_for_tree};
use crate::model::{EventFilter, EventKind, ServerStatus};
use crate::wire::msg::{
    AdminRequest, AdminResponse, TaskChanges, TaskRequest, VirtualServerRequest,
};

/// The child away: a virtual server, disabled while the log grows.
const CHILD: &str = "vs-away";

/// Admin connections that edit the tasks side by side while the child is away.
const EDITORS: usize = 8;

/// What one catch-up measured.
struct CatchUp {
    /// Entries written to the log while the child was away.
    written: u64,
    write_s: f64,
    /// Entries the primary's log holds when the child comes back.
    held: u64,
    snapshot: bool,
    /// From enabling the child until every task's copy shows the last edit.
    catch_up_ms: f64,
    /// CPU of this process (the primary and the child) over the catch-up.
    cpu_ms: f64,
}

/// `bench catchup`: `entries` edits of `tasks` group tasks while a virtual server is away,
/// with `keep` entries kept by the trimmed log; then the same with every entry kept.
pub(super) async fn catchup(entries: u64, tasks: u32, keep: u64, json: bool) -> anyhow::Result<()> {
    let machine = machine();
    if !json {
        println!(
            "bench catchup: 1 primary (in this process) with {tasks} group tasks (include_secondaries) and 1 virtual server, {CHILD}, that inherits them; {CHILD} is disabled, the tasks are edited {entries} times in all ({EDITORS} admin connections side by side), then {CHILD} is enabled and every copy is polled until it shows the last edit; once with change_log.keep = {keep} (trimmed every second: {CHILD} is sent a snapshot) and once with every entry kept (it replays them); machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
    }
    let trimmed = one(entries, tasks, Some(keep), json).await?;
    let kept = one(entries, tasks, None, json).await?;
    let figure = |r: &CatchUp| {
        serde_json::json!({
            "entries_written": r.written,
            "write_s": r.write_s,
            "entries_held": r.held,
            "snapshot": r.snapshot,
            "catch_up_ms": spread(&[r.catch_up_ms]),
            "cpu_ms": spread(&[r.cpu_ms]),
        })
    };
    let summary = serde_json::json!({
        "scenario": "catchup",
        "entries": entries,
        "tasks": tasks,
        "keep": keep,
        "machine": machine,
        "trimmed": figure(&trimmed),
        "kept": figure(&kept),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for (name, key) in [
            ("trimmed log, snapshot", "trimmed"),
            ("every entry kept, replay", "kept"),
        ] {
            let s = &summary[key];
            println!(
                "{name}: {} entries written in {:.1} s; the log held {} when {CHILD} came back",
                s["entries_written"],
                s["write_s"].as_f64().unwrap_or(f64::NAN),
                s["entries_held"]
            );
            print_figures(
                s,
                &[
                    ("  caught up", "catch_up_ms", "ms"),
                    ("  CPU (primary and child)", "cpu_ms", "ms"),
                ],
            );
        }
    }
    Ok(())
}

/// One catch-up on a primary of its own: trimmed to `keep`, or every entry kept (`None`).
async fn one(entries: u64, tasks: u32, keep: Option<u64>, json: bool) -> anyhow::Result<CatchUp> {
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    crate::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30)?;
    let (keep, every) = match keep {
        Some(keep) => (keep, 1),
        None => (u64::MAX / 2, 86_400),
    };
    let text = bench_server_text("primary", 0, None)
        + &format!("\n[change_log]\nkeep = {keep}\ntrim_every_s = {every}\n");
    let config = d.write_config("primary", &text).await?;
    let primary = crate::cli::deployment::start(&config).await?;
    let addr = primary.local_addr();
    let admin = d.admin(addr).await?;
    let create = VirtualServerRequest::Create {
        name: CHILD.into(),
        group: "Managed devices".into(),
    };
    admin.call(AdminRequest::VirtualServer(create)).await?;
    let names: Vec<String> = (1..=tasks).map(|i| format!("task {i:03}")).collect();
    for name in &names {
        let spec = group_task(name, instant_success(), true);
        admin
            .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
            .await?;
    }
    let up = |rows: &[crate::model::ServerRow]| {
        rows.len() == 2 && rows.iter().all(|r| r.status == ServerStatus::Active)
    };
    wait_for_tree(&admin, Duration::from_secs(60), "the virtual server up", up).await?;
    caught_up(&admin, &names, 1, Instant::now()).await?;
    let disable = VirtualServerRequest::Disable { name: CHILD.into() };
    admin.call(AdminRequest::VirtualServer(disable)).await?;

    let before = primary.node.store.log_state().await?.last_seq;
    let started = Instant::now();
    let mut editors = tokio::task::JoinSet::new();
    let per_editor = entries.div_ceil(EDITORS as u64);
    for e in 0..EDITORS {
        let client = login_patiently(&d, addr).await?;
        let names = names.clone();
        let first = e as u64 * per_editor;
        let last = ((e as u64 + 1) * per_editor).min(entries);
        editors.spawn(async move {
            for i in first..last {
                // Each edit is one entry of the log; the last days are those of the last edit.
                let edit = TaskRequest::Edit {
                    task: names[(i % names.len() as u64) as usize].clone(),
                    changes: Box::new(TaskChanges {
                        store_history_days: Some(2 + (i % 7) as u32),
                        ..Default::default()
                    }),
                };
                client.call(AdminRequest::Task(edit)).await?;
            }
            client.close().await;
            anyhow::Ok(())
        });
    }
    while let Some(done) = editors.join_next().await {
        done??;
    }
    let write_s = started.elapsed().as_secs_f64();
    let store = &primary.node.store;
    let last_seq = store.log_state().await?.last_seq;
    let written = last_seq - before;
    if keep < u64::MAX / 2 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.log_trimmed().await? + keep < last_seq {
            if Instant::now() > deadline {
                bail!("the log was not trimmed within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let held = last_seq - store.log_trimmed().await?;
    // What each copy must show: the primary's own days and revision now.
    let mut expected = Vec::new();
    for name in &names {
        let view = show(&admin, None, name).await?;
        expected.push((name.clone(), view.store_history_days));
    }

    let cpu = cpu_seconds("self");
    let enabled = Instant::now();
    let enable = VirtualServerRequest::Enable { name: CHILD.into() };
    admin.call(AdminRequest::VirtualServer(enable)).await?;
    caught_up_to(&admin, &expected, enabled).await?;
    let catch_up_ms = enabled.elapsed().as_secs_f64() * 1000.0;
    let cpu_ms = (cpu_seconds("self") - cpu) * 1000.0;
    let snapshot = sent_snapshot(&admin).await?;
    if !json {
        println!(
            "{}: {written} entries in {write_s:.1} s, {held} held; {CHILD} caught up in {catch_up_ms:.0} ms ({})",
            if keep < u64::MAX / 2 {
                "trimmed"
            } else {
                "kept"
            },
            if snapshot { "snapshot" } else { "replay" }
        );
    }
    admin.close().await;
    primary.shutdown().await?;
    Ok(CatchUp {
        written,
        write_s,
        held,
        snapshot,
        catch_up_ms,
        cpu_ms,
    })
}

async fn show(
    admin: &AdminClient,
    at: Option<&str>,
    task: &str,
) -> anyhow::Result<crate::wire::msg::TaskView> {
    let request = AdminRequest::Task(TaskRequest::Show { task: task.into() });
    match admin.call_at(at, request).await? {
        AdminResponse::Task(view) => Ok(*view),
        other => bail!("unexpected answer to task show: {other:?}"),
    }
}

/// Waits until every task of `names` has a copy on the child.
async fn caught_up(
    admin: &AdminClient,
    names: &[String],
    days: u32,
    since: Instant,
) -> anyhow::Result<()> {
    let expected: Vec<(String, u32)> = names.iter().map(|n| (n.clone(), days)).collect();
    caught_up_to(admin, &expected, since).await
}

/// Waits until each task's copy on the child shows its `store_history_days`.
async fn caught_up_to(
    admin: &AdminClient,
    expected: &[(String, u32)],
    since: Instant,
) -> anyhow::Result<()> {
    let limit = Duration::from_secs(600);
    for (task, days) in expected {
        loop {
            let last = match show(admin, Some(CHILD), task).await {
                Ok(view) if view.store_history_days == *days => break,
                Ok(view) => format!("store_history_days {}", view.store_history_days),
                Err(e) => format!("{e:#}"),
            };
            if since.elapsed() > limit {
                bail!("{CHILD}'s copy of {task} not up to date after {limit:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

/// Whether the primary's event log says it sent the child a snapshot.
async fn sent_snapshot(admin: &AdminClient) -> anyhow::Result<bool> {
    let request = AdminRequest::EventList {
        after: None,
        limit: crate::wire::msg::PAGE_MAX,
        filter: EventFilter {
            kind: Some(EventKind::ReplayStarted),
            ..Default::default()
        },
    };
    match admin.call(request).await.context("event list")? {
        AdminResponse::Events { events, .. } => Ok(events
            .iter()
            .any(|e| e.message.contains(&format!("sending {CHILD} a snapshot")))),
        other => bail!("unexpected answer to event list: {other:?}"),
    }
}

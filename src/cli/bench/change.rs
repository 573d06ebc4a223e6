//! `bench change`: virtual servers on one primary inherit a group task; the time until every
//! copy shows an edit made at the primary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::figures::{Machine, machine, print_figures, spread};
use super::{bench_server_text, group_task, instant_success};
use crate::cli::client::AdminClient;
use crate::cli::deployment::{Deployment, wait_for_tree};
use crate::model::ServerStatus;
use crate::wire::msg::{
    AdminRequest, AdminResponse, TaskChanges, TaskRequest, TaskView, VirtualServerRequest,
};

/// One copy of the task, as first seen with what was waited for.
struct Seen {
    server: String,
    /// Milliseconds from the request that was being waited on.
    at_ms: f64,
    view: TaskView,
    polls: u32,
    /// Round-trip time of those polls, summed.
    rtt_ms: f64,
}

/// Polls the copy of `task` on every server of `names` (virtual servers of the server
/// `clients` are logged in to) until it exists and, with `days`, shows that
/// `store_history_days`. Each server is asked in a loop of its own: a request, then
/// `poll`, then the next; the clients share the servers out.
async fn copies(
    clients: &[Arc<AdminClient>],
    names: &[String],
    task: &str,
    days: Option<u32>,
    since: Instant,
    poll: Duration,
) -> anyhow::Result<Vec<Seen>> {
    let limit = Duration::from_secs(120);
    let mut set = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let client = clients[i % clients.len()].clone();
        let (server, task) = (name.clone(), task.to_string());
        set.spawn(async move {
            let (mut polls, mut rtt_ms) = (0u32, 0.0);
            loop {
                let request = AdminRequest::Task(TaskRequest::Show { task: task.clone() });
                let asked = Instant::now();
                let answer = client.call_at(Some(&server), request).await;
                let at = Instant::now();
                polls += 1;
                rtt_ms += (at - asked).as_secs_f64() * 1000.0;
                let last = match answer {
                    Ok(AdminResponse::Task(view))
                        if days.is_none_or(|d| view.store_history_days == d) =>
                    {
                        return Ok(Seen {
                            server,
                            at_ms: (at - since).as_secs_f64() * 1000.0,
                            view: *view,
                            polls,
                            rtt_ms,
                        });
                    }
                    Ok(AdminResponse::Task(view)) => {
                        format!("store_history_days {}", view.store_history_days)
                    }
                    Ok(other) => format!("{other:?}"),
                    Err(e) => e.to_string(),
                };
                if at - since > limit {
                    bail!("{server}: not there after {limit:?}; last answer: {last}");
                }
                tokio::time::sleep(poll).await;
            }
        });
    }
    let mut seen = Vec::new();
    while let Some(result) = set.join_next().await {
        seen.push(result??);
    }
    Ok(seen)
}

pub(super) struct ChangeRun {
    /// The edit request's round trip at the primary.
    pub(super) edit_ms: f64,
    /// From sending the edit until a poll saw it on the first, the median, the last copy.
    pub(super) first_polled_ms: f64,
    pub(super) median_polled_ms: f64,
    pub(super) all_polled_ms: f64,
    /// The copies' own `modified` minus the primary's, both stamped by the servers (same
    /// clock, 1 ms resolution): the median and the last.
    pub(super) median_stamped_ms: f64,
    pub(super) all_stamped_ms: f64,
    pub(super) polls: u32,
    pub(super) poll_rtt_ms: f64,
}

/// What `bench change` reports (`--json` prints it; the text prints its figures).
pub(super) fn summary(
    secondaries: u32,
    runs: u32,
    poll_ms: u64,
    machine: &Machine,
    create_all_ms: f64,
    all: &[ChangeRun],
) -> serde_json::Value {
    let figure = |f: fn(&ChangeRun) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    serde_json::json!({
        "scenario": "change",
        "secondaries": secondaries,
        "virtual_servers": true,
        "runs": runs,
        "poll_ms": poll_ms,
        "machine": machine,
        "create_all_ms": create_all_ms,
        "edit_ms": figure(|r| r.edit_ms),
        "first_polled_ms": figure(|r| r.first_polled_ms),
        "median_polled_ms": figure(|r| r.median_polled_ms),
        "all_polled_ms": figure(|r| r.all_polled_ms),
        "median_stamped_ms": figure(|r| r.median_stamped_ms),
        "all_stamped_ms": figure(|r| r.all_stamped_ms),
        "poll_rtt_ms": figure(|r| r.poll_rtt_ms),
        "all_applied": true,
    })
}

/// `bench change`: how fast a task edit at the primary reaches every server below it.
pub(super) async fn change(
    secondaries: u32,
    runs: u32,
    poll_ms: u64,
    json: bool,
) -> anyhow::Result<()> {
    let machine = machine();
    // At most this many servers are polled over one admin connection.
    const PER_CLIENT: u32 = 25;
    let pollers = secondaries.div_ceil(PER_CLIENT);
    if !json {
        println!(
            "bench change: 1 primary (in this process) and {secondaries} virtual servers on it: in-process children over an in-process link running the same replication logic, each with its own redb file; no devices"
        );
        println!(
            "a group task with include_secondaries; per run its store_history_days is edited at the primary; every copy is polled through the primary from the moment the edit is sent (task show forwarded to each virtual server, {pollers} admin connection(s), one loop per server: request, {poll_ms} ms pause, request); a poll adds up to one round trip plus {poll_ms} ms; {runs} runs after a warm-up; machine: {} cores, {} GiB",
            machine.cores, machine.memory_gib
        );
    }
    let dir = tempfile::Builder::new().prefix("canopy-bench-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    crate::net::pki::issue_server(&d.certs, "primary", &["127.0.0.1".into()], 30)?;
    let config = d
        .write_config("primary", &bench_server_text("primary", 0, None))
        .await?;
    let primary = crate::cli::deployment::start(&config).await?;
    let addr = primary.local_addr();
    let admin = d.admin(addr).await?;
    let names: Vec<String> = (1..=secondaries).map(|i| format!("vs-{i:03}")).collect();
    for name in &names {
        let create = VirtualServerRequest::Create {
            name: name.clone(),
            group: "Managed devices".into(),
        };
        admin.call(AdminRequest::VirtualServer(create)).await?;
    }
    wait_for_tree(
        &admin,
        Duration::from_secs(120),
        "every virtual server linked",
        |rows| {
            rows.len() == names.len() + 1 && rows.iter().all(|r| r.status == ServerStatus::Active)
        },
    )
    .await?;
    let mut clients = Vec::new();
    for _ in 0..pollers {
        clients.push(Arc::new(login_patiently(&d, addr).await?));
    }
    let poll = Duration::from_millis(poll_ms);
    const TASK: &str = "change";
    let spec = group_task(TASK, instant_success(), true);
    let created = Instant::now();
    admin
        .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
        .await?;
    let seen = copies(&clients, &names, TASK, None, created, poll).await?;
    let create_all_ms = seen.iter().map(|s| s.at_ms).fold(0.0, f64::max);
    if !json {
        println!(
            "task created: every copy seen within {create_all_ms:.1} ms (polled; not one of the figures)"
        );
    }
    let mut revisions: std::collections::HashMap<String, u32> = seen
        .iter()
        .map(|s| (s.server.clone(), s.view.revision))
        .collect();
    let mut all = Vec::new();
    for i in 0..=runs {
        let days = 2 + i;
        let changes = TaskChanges {
            store_history_days: Some(days),
            ..Default::default()
        };
        let edit = TaskRequest::Edit {
            task: TASK.into(),
            changes: Box::new(changes),
        };
        // The copies are polled from the moment the edit is sent, not from its answer.
        let sent = Instant::now();
        let edited = async {
            let answer = admin.call(AdminRequest::Task(edit)).await;
            let edit_ms = sent.elapsed().as_secs_f64() * 1000.0;
            match answer? {
                AdminResponse::Task(view) => Ok((view, edit_ms)),
                other => bail!("unexpected answer to task edit: {other:?}"),
            }
        };
        let polled = copies(&clients, &names, TASK, Some(days), sent, poll);
        let ((edited, edit_ms), seen) =
            tokio::try_join!(edited, polled).with_context(|| format!("edit {i}"))?;
        for s in &seen {
            let before = revisions.get(&s.server).copied().unwrap_or(0);
            if s.view.revision <= before || !s.view.scope_text.starts_with("inherited from") {
                bail!(
                    "{}'s copy shows the edit with revision {} (was {before}), scope {:?}",
                    s.server,
                    s.view.revision,
                    s.view.scope_text
                );
            }
            revisions.insert(s.server.clone(), s.view.revision);
        }
        let polled = spread(&seen.iter().map(|s| s.at_ms).collect::<Vec<_>>());
        let stamped = spread(
            &seen
                .iter()
                .map(|s| (s.view.modified - edited.modified) as f64)
                .collect::<Vec<_>>(),
        );
        let polls: u32 = seen.iter().map(|s| s.polls).sum();
        let r = ChangeRun {
            edit_ms,
            first_polled_ms: polled.min,
            median_polled_ms: polled.median,
            all_polled_ms: polled.max,
            median_stamped_ms: stamped.median,
            all_stamped_ms: stamped.max,
            polls,
            poll_rtt_ms: seen.iter().map(|s| s.rtt_ms).sum::<f64>() / f64::from(polls.max(1)),
        };
        if i > 0 {
            if !json {
                println!(
                    "run {i}: edit answered in {:.1} ms; seen on the first copy at {:.1} ms, the median at {:.1} ms, all {secondaries} at {:.1} ms; stamped by the servers: median {:.0} ms, last {:.0} ms; {} polls, round trip {:.1} ms on average",
                    r.edit_ms,
                    r.first_polled_ms,
                    r.median_polled_ms,
                    r.all_polled_ms,
                    r.median_stamped_ms,
                    r.all_stamped_ms,
                    r.polls,
                    r.poll_rtt_ms
                );
            }
            all.push(r);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let summary = summary(secondaries, runs, poll_ms, &machine, create_all_ms, &all);
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_figures(
            &summary,
            &[
                ("edit request round trip", "edit_ms", "ms"),
                ("first copy seen (polled)", "first_polled_ms", "ms"),
                ("median copy seen (polled)", "median_polled_ms", "ms"),
                ("all copies seen (polled)", "all_polled_ms", "ms"),
                ("median copy (stamped)", "median_stamped_ms", "ms"),
                ("last copy (stamped)", "all_stamped_ms", "ms"),
                ("poll round trip", "poll_rtt_ms", "ms"),
            ],
        );
    }
    for client in clients {
        if let Ok(client) = Arc::try_unwrap(client) {
            client.close().await;
        }
    }
    admin.close().await;
    primary.shutdown().await?;
    Ok(())
}

/// Logs in, waiting out the server's login guard: one address gets a burst of logins, then
/// one every few seconds, and 500 virtual servers take 20 polling connections.
pub(super) async fn login_patiently(
    d: &Deployment,
    addr: std::net::SocketAddr,
) -> anyhow::Result<crate::cli::client::AdminClient> {
    let mut tries = 0;
    loop {
        match d.admin(addr).await {
            Err(e) if tries < 40 && format!("{e:#}").contains("too many login attempts") => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            done => return done,
        }
    }
}

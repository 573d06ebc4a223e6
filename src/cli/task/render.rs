//! The text `canopy task ...` prints for people, and the JSON of a run for scripts.

use std::collections::BTreeMap;

use super::super::table;
use crate::model::format_time;
use crate::model::schedule::{LocalDateTime, duration_text};
use crate::model::scope::Scope;
use crate::model::task::{
    Details, DeviceRunRecord, DeviceState, Notify, RestartPolicy, RunCounters, TaskKind,
    TaskPayload, TaskType,
};
use crate::wire::msg::{NextStart, RunView, TaskView};

const PROGRESS_BAR_WIDTH: usize = 20;

/// `[#####.....] 512/1000 devices finished: 500 succeeded, 12 failed, 488 pending`: the
/// run's devices across the tree, and the states that hold any.
pub(super) fn progress_bar(counters: &RunCounters) -> String {
    let (finished, total) = (counters.finished(), counters.total());
    let filled = match total {
        0 => PROGRESS_BAR_WIDTH,
        total => {
            (finished.min(total) as u128 * PROGRESS_BAR_WIDTH as u128 / total as u128) as usize
        }
    };
    let states: Vec<String> = DeviceState::ALL
        .iter()
        .filter(|s| counters.count(**s) > 0)
        .map(|s| format!("{} {}", counters.count(*s), s.as_str()))
        .collect();
    let mut line = format!(
        "[{}{}] {finished}/{total} devices finished",
        "#".repeat(filled),
        ".".repeat(PROGRESS_BAR_WIDTH - filled)
    );
    if !states.is_empty() {
        line.push_str(": ");
        line.push_str(&states.join(", "));
    }
    line
}

fn short_kind(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Group => "group",
        TaskKind::DeviceList => "devices",
        TaskKind::Selection => "selection",
        TaskKind::Local => "local",
        TaskKind::Server => "server",
    }
}

fn last_run_cell(run: Option<&RunView>) -> String {
    match run {
        None => "never run".into(),
        Some(run) => format!(
            "{} {:.1}%",
            run.state.as_str(),
            run.counters.completion_percent()
        ),
    }
}

/// A heading per application (in name order), then its tasks.
pub(super) fn list_text(tasks: &[TaskView]) -> String {
    if tasks.is_empty() {
        return "no tasks\n".into();
    }
    let mut by_application: BTreeMap<&str, Vec<&TaskView>> = BTreeMap::new();
    for task in tasks {
        by_application
            .entry(task.application.as_str())
            .or_default()
            .push(task);
    }
    let mut out = String::new();
    for (i, (application, tasks)) in by_application.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{application}\n"));
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.name.clone(),
                    short_kind(t.kind).to_string(),
                    t.task_type.type_name().to_string(),
                    last_run_cell(t.last_run.as_ref()),
                    t.schedule.to_string(),
                    next_start_cell(t.next_start.as_ref()),
                ]
            })
            .collect();
        let table = table::render(
            &[
                "ID",
                "NAME",
                "KIND",
                "TYPE",
                "LAST RUN",
                "SCHEDULE",
                "NEXT START",
            ],
            &rows,
        );
        for line in table.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// The next start in a list: "-" when there is none to come.
fn next_start_cell(next: Option<&NextStart>) -> String {
    match next {
        None => "-".into(),
        Some(NextStart::DeviceTime(key)) => format!("{} device time", date_time_text(key)),
        Some(NextStart::ServerTime { text, .. }) => text.clone(),
    }
}

/// `YYYY-MM-DD HH:MM`.
fn date_time_text(at: &LocalDateTime) -> String {
    local_date_time(at).replacen('T', " ", 1)
}

/// The schedule, and whose clock it runs on.
fn schedule_text(t: &TaskView) -> String {
    let timed = t.schedule.is_timed();
    match (timed, t.device_clock) {
        (false, _) => t.schedule.to_string(),
        (true, true) => format!("{}, each device's local time", t.schedule),
        (true, false) => format!("{}, the server's time", t.schedule),
    }
}

/// The next start in full.
fn next_start_text(t: &TaskView) -> String {
    match &t.next_start {
        None if t.schedule.is_timed() => "none to come".into(),
        None => "-".into(),
        Some(NextStart::DeviceTime(key)) => {
            format!("{}, each device's local time", date_time_text(key))
        }
        Some(NextStart::ServerTime { text, .. }) => format!("{text}, the server's time"),
    }
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// An argument as a shell would need it, so `arguments` reads unambiguously.
pub(super) fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn local_date_time(at: &LocalDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        at.year, at.month, at.day, at.time.hour, at.time.minute
    )
}

fn restart_text(restart: &RestartPolicy) -> String {
    match restart {
        RestartPolicy::DoNotRestart => "do not restart".into(),
        RestartPolicy::Restart => "restart the device".into(),
        RestartPolicy::AskUser {
            repeat_minutes,
            force_after_minutes,
        } => {
            let mut text = format!("ask the user every {repeat_minutes} min");
            if let Some(force) = force_after_minutes {
                text.push_str(&format!(", restart anyway after {force} min"));
            }
            text
        }
    }
}

fn notify_text(notify: Notify) -> &'static str {
    match notify {
        Notify::All => "every result",
        Notify::ErrorsOnly => "errors and warnings only",
        Notify::Off => "none",
    }
}

fn run_summary(run: &RunView) -> String {
    let c = &run.counters;
    format!(
        "run {} {}: {}/{} devices finished ({:.1}%), started {} by {}",
        run.run_id,
        run.state.as_str(),
        c.finished(),
        c.total(),
        c.completion_percent(),
        format_time(run.started),
        match &run.occurrence {
            Some(key) => format!("the schedule ({})", local_date_time(key)),
            None => run.started_by.clone(),
        }
    )
}

pub(super) fn show_text(t: &TaskView) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("kind", t.kind.as_str().to_string()),
        ("type", t.task_type.type_name().to_string()),
    ];
    match &t.task_type {
        TaskType::Device(TaskPayload::Command {
            program,
            args,
            time_limit_secs,
        }) => {
            rows.push(("program", program.clone()));
            let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
            rows.push((
                "arguments",
                if args.is_empty() {
                    "none".into()
                } else {
                    args.join(" ")
                },
            ));
            rows.push(("time limit", format!("{time_limit_secs} s")));
        }
        TaskType::Device(TaskPayload::Scan { paths, blocklist }) => {
            rows.push(("paths", or_none(paths)));
            rows.push(("blocklist", or_none(blocklist)));
        }
        TaskType::Device(TaskPayload::Inventory) | TaskType::Maintenance => {}
        TaskType::Device(TaskPayload::Simulate {
            duration_ms,
            succeeded,
            warning,
            failed,
            need_restart_percent,
        }) => {
            rows.push(("duration", format!("{duration_ms} ms")));
            rows.push((
                "outcomes",
                format!("succeeded {succeeded}, warning {warning}, failed {failed} (weights)"),
            ));
            rows.push(("needs restart", format!("{need_restart_percent}% of runs")));
        }
        TaskType::Backup { directory } => rows.push((
            "backup directory",
            directory
                .clone()
                .unwrap_or_else(|| "default (backups/ next to the database)".into()),
        )),
    }
    rows.push(("application", t.application.clone()));
    rows.push(("scope", t.scope_text.clone()));
    if let Scope::DeviceList {
        entries,
        device_ids,
        unmatched,
    } = &t.scope
    {
        rows.push(("entries", or_none(entries)));
        rows.push(("matched", format!("{} devices", device_ids.len())));
        rows.push(("unmatched", or_none(unmatched)));
    }
    rows.push(("restart", restart_text(&t.restart)));
    rows.push(("schedule", schedule_text(t)));
    rows.push(("next start", next_start_text(t)));
    let o = &t.schedule_options;
    rows.push(("run missed", if o.run_missed { "yes" } else { "no" }.into()));
    rows.push(("random delay", o.random_delay.to_string()));
    rows.push((
        "time limit (run)",
        o.time_limit_secs
            .map(duration_text)
            .unwrap_or_else(|| "none".into()),
    ));
    rows.push((
        "cancel schedule",
        o.cancel_from
            .as_ref()
            .map(|at| format!("from {}", local_date_time(at)))
            .unwrap_or_else(|| "never".into()),
    ));
    match &t.account_name {
        None => rows.push(("account", "default account".into())),
        Some(name) => {
            rows.push(("account", name.clone()));
            rows.push((
                "password",
                if t.password_set { "set" } else { "not set" }.into(),
            ));
        }
    }
    rows.push(("notify", notify_text(t.notify).into()));
    rows.push(("store history", format!("{} days", t.store_history_days)));
    rows.push(("created", format_time(t.created)));
    rows.push(("modified", format_time(t.modified)));
    rows.push(("revision", t.revision.to_string()));
    rows.push(("changed by", t.changed_by.clone()));
    rows.push((
        "last run",
        t.last_run
            .as_ref()
            .map(run_summary)
            .unwrap_or_else(|| "never run".into()),
    ));
    table::fields(&rows)
}

pub(super) fn started_text(run: &RunView, skipped: &[String]) -> String {
    let mut out = format!(
        "started run {} of task {} (id {}): {} devices targeted\n",
        run.run_id,
        run.task_name,
        run.task_id,
        run.counters.total()
    );
    for entry in skipped {
        out.push_str(&format!("skipped {entry}\n"));
    }
    out
}

pub(in crate::cli) fn stats_text(run: &RunView) -> String {
    let c = &run.counters;
    let mut task = format!("{} (id {})", run.task_name, run.task_id);
    if let Some(from) = &run.inherited_from {
        task.push_str(&format!(", inherited from {from}"));
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("run", run.run_id.to_string()),
        ("task", task),
        ("state", run.state.as_str().to_string()),
        (
            "started",
            format!("{} by {}", format_time(run.started), run.started_by),
        ),
    ];
    if let Some(key) = &run.occurrence {
        rows.push((
            "occurrence",
            format!("{} (scheduled)", local_date_time(key)),
        ));
    }
    if let Some(after) = run.after_run {
        rows.push(("after", format!("run {after} of the task it follows")));
    }
    if let Some(at) = run.paused {
        rows.push(("paused", format_time(at)));
    }
    if let Some(at) = run.stopped {
        rows.push(("stopped", format_time(at)));
    }
    if let Some(at) = run.finished {
        rows.push(("finished", format_time(at)));
    }
    // Only when servers below take part: a lone server's row is the totals.
    if run.servers.len() > 1 {
        let silent = run.servers.iter().filter(|s| !s.reported).count();
        let mut servers = format!("{} taking part", run.servers.len());
        if silent > 0 {
            servers.push_str(&format!(
                ", {silent} not reported yet (devices counted as pending)"
            ));
        }
        servers.push_str("; see --by-server");
        rows.push(("servers", servers));
    }
    rows.push(("targeted", c.total().to_string()));
    for state in DeviceState::ALL {
        rows.push((state.as_str(), c.count(state).to_string()));
    }
    rows.push(("need restart", c.need_restart.to_string()));
    rows.push(("completion", format!("{:.1}%", c.completion_percent())));
    table::fields(&rows)
}

/// The run as JSON, with its completion percentage, the number of devices targeted, and
/// one entry per server of the tree taking part with its counts by state name.
pub(in crate::cli) fn stats_json(run: &RunView) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(run)?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "completion_percent".into(),
            serde_json::json!(run.counters.completion_percent()),
        );
        object.insert("targeted".into(), serde_json::json!(run.counters.total()));
        // By state name, as in each server's row, rather than the stored array.
        object.insert(
            "counters".into(),
            serde_json::json!({
                "by_state": counts_json(&run.counters),
                "need_restart": run.counters.need_restart,
            }),
        );
        let servers: Vec<serde_json::Value> = run
            .servers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "path": s.path,
                    "depth": s.depth,
                    "task_id": s.task_id,
                    "reported": s.reported,
                    "counts": counts_json(&s.counters),
                    "need_restart": s.counters.need_restart,
                    "total": s.counters.total(),
                })
            })
            .collect();
        object.insert("servers".into(), serde_json::Value::Array(servers));
    }
    Ok(value)
}

/// `{"pending": 1, "scheduled": 0, ...}`: counters by state name, for scripts.
pub(in crate::cli) fn counts_json(counters: &RunCounters) -> serde_json::Value {
    DeviceState::ALL
        .iter()
        .map(|s| {
            (
                s.as_str().to_string(),
                serde_json::json!(counters.count(*s)),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Under `task results` for a run that reaches servers below: the records listed are this
/// server's devices only, while `task stats` counts the whole tree.
pub(super) fn results_below_hint(run: &RunView, task: &str) -> Option<String> {
    let below = run.servers.get(1..).filter(|rows| !rows.is_empty())?;
    let devices = below
        .iter()
        .map(|row| row.counters.total())
        .fold(0u64, u64::saturating_add);
    let servers = match below.len() {
        1 => "The server below holds".to_string(),
        n => format!("The {n} servers below hold"),
    };
    Some(format!(
        "These are the devices of this server. {servers} the records of their own {devices} \
         devices: see `canopy task stats {task} --by-server`, then \
         `canopy task results {task} --server PATH`.",
        task = quote(task),
    ))
}

/// `task stats --by-server`: one row per server of the tree taking part, indented by depth,
/// then the totals of the whole tree.
pub(in crate::cli) fn servers_text(run: &RunView) -> String {
    let counts = |c: &RunCounters| -> Vec<String> {
        DeviceState::ALL
            .iter()
            .map(|s| c.count(*s).to_string())
            .chain([c.total().to_string()])
            .collect()
    };
    let mut rows: Vec<Vec<String>> = run
        .servers
        .iter()
        .map(|s| {
            let mut row = vec![
                format!("{}{}", "  ".repeat(s.depth as usize), s.path),
                s.depth.to_string(),
                if s.task_id == 0 {
                    "-".into()
                } else {
                    s.task_id.to_string()
                },
            ];
            row.extend(counts(&s.counters));
            row.push(if s.reported {
                String::new()
            } else {
                "not reported yet (devices counted as pending)".into()
            });
            row
        })
        .collect();
    let mut total = vec!["total".to_string(), String::new(), String::new()];
    total.extend(counts(&run.counters));
    rows.push(total);
    let mut headers = vec!["PATH", "DEPTH", "TASK ID"];
    let states: Vec<String> = DeviceState::ALL
        .iter()
        .map(|s| s.as_str().to_uppercase())
        .collect();
    headers.extend(states.iter().map(String::as_str));
    headers.extend(["TOTAL", "NOTE"]);
    let mut out = table::render(&headers, &rows);
    let mut summary = format!(
        "run {} of task {} (id {}) {}: {}/{} devices finished ({:.1}%)",
        run.run_id,
        run.task_name,
        run.task_id,
        run.state.as_str(),
        run.counters.finished(),
        run.counters.total(),
        run.counters.completion_percent()
    );
    if let Some(from) = &run.inherited_from {
        summary.push_str(&format!(", inherited from {from}"));
    }
    out.push_str(&summary);
    out.push('\n');
    out
}

fn opt_time(t: Option<i64>) -> String {
    t.map(format_time).unwrap_or_else(|| "-".into())
}

pub(super) fn results_text(run: &RunView, records: &[DeviceRunRecord], details: bool) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.device_name.clone(),
                r.state.as_str().to_string(),
                r.tries.to_string(),
                if r.description.is_empty() {
                    "-".into()
                } else {
                    r.description.clone()
                },
                opt_time(r.started),
                opt_time(r.finished),
                format!("{}%", r.progress),
                if r.need_restart { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "DEVICE",
            "STATE",
            "TRIES",
            "DESCRIPTION",
            "STARTED",
            "FINISHED",
            "PROGRESS",
            "RESTART NEEDED",
        ],
        &rows,
    );
    out.push_str(&format!(
        "{} devices shown; run {} of task {} {}, {:.1}% complete\n",
        records.len(),
        run.run_id,
        run.task_name,
        run.state.as_str(),
        run.counters.completion_percent()
    ));
    if details {
        for record in records {
            let text = record
                .details
                .as_ref()
                .map(details_text)
                .unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{}:\n", record.device_name));
            for line in text.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out
}

fn details_text(details: &Details) -> String {
    let mut out = String::new();
    match details {
        Details::None => {}
        Details::Command {
            exit_code,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        } => {
            out.push_str(&match exit_code {
                Some(code) => format!("exit code {code}\n"),
                None => "no exit code (killed)\n".into(),
            });
            for (name, text, truncated) in [
                ("stdout", stdout, stdout_truncated),
                ("stderr", stderr, stderr_truncated),
            ] {
                if text.is_empty() {
                    continue;
                }
                let note = if *truncated { " (truncated)" } else { "" };
                out.push_str(&format!("{name}{note}:\n"));
                for line in text.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
        Details::Scan {
            files_scanned,
            unreadable,
            matches,
        } => {
            out.push_str(&format!(
                "{files_scanned} files scanned, {unreadable} unreadable, {} on the blocklist\n",
                matches.len()
            ));
            for m in matches {
                out.push_str(&format!("  {}  {}\n", m.sha256, m.path));
            }
        }
        Details::Inventory(inventory) => {
            out.push_str(&format!("os         {}\n", inventory.os));
            out.push_str(&format!("hostname   {}\n", inventory.hostname));
            out.push_str(&format!("addresses  {}\n", inventory.addresses.join(", ")));
            out.push_str(&format!("packages   {}\n", inventory.packages.len()));
            for p in &inventory.packages {
                out.push_str(&format!("  {} {}\n", p.name, p.version));
            }
        }
    }
    out
}

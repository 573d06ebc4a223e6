//! `task history`, `task diff` and `task list --deleted`: revisions as tables.

use std::path::Path;

use anyhow::bail;

use super::task_call;
use crate::cli::{print_json, table};
use crate::model::format_time;
use crate::wire::msg::{AdminResponse, RevisionView, TaskRequest};

async fn revisions(session: &Path, request: TaskRequest) -> anyhow::Result<Vec<RevisionView>> {
    match task_call(session, request).await? {
        AdminResponse::Revisions(revisions) => Ok(revisions),
        _ => bail!("unexpected answer from the server"),
    }
}

fn revisions_text(revisions: &[RevisionView], with_task: bool) -> String {
    let mut headers = vec!["REV", "TIME", "BY", "ACTION", "COMMENT"];
    if with_task {
        headers.splice(0..0, ["ID", "NAME"]);
    }
    let rows: Vec<Vec<String>> = revisions
        .iter()
        .map(|r| {
            let mut row = vec![
                r.revision.to_string(),
                format_time(r.at),
                r.by.clone(),
                r.action.to_string(),
                r.comment.clone().unwrap_or_default(),
            ];
            if with_task {
                row.splice(0..0, [format!("#{}", r.task_id), r.name.clone()]);
            }
            row
        })
        .collect();
    table::render(&headers, &rows)
}

/// `task history TASK`.
pub(super) async fn history(session: &Path, task: String, json: bool) -> anyhow::Result<()> {
    let revisions = revisions(session, TaskRequest::History { task }).await?;
    if json {
        return print_json(&revisions);
    }
    table::show(&revisions_text(&revisions, false));
    Ok(())
}

/// `task list --deleted`.
pub(super) async fn deleted(session: &Path, json: bool) -> anyhow::Result<()> {
    let deleted = revisions(session, TaskRequest::ListDeleted).await?;
    if json {
        return print_json(&deleted);
    }
    if deleted.is_empty() {
        println!("no deleted task is kept");
        return Ok(());
    }
    table::show(&revisions_text(&deleted, true));
    Ok(())
}

/// `task diff TASK FROM [TO]`.
pub(super) async fn diff(
    session: &Path,
    task: String,
    from: u32,
    to: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let answer = task_call(session, TaskRequest::Diff { task, from, to }).await?;
    let AdminResponse::TaskDiff {
        from, to, changes, ..
    } = &answer
    else {
        bail!("unexpected answer from the server");
    };
    if json {
        return print_json(&serde_json::json!({
            "from": from,
            "to": to,
            "changes": changes,
        }));
    }
    if changes.is_empty() {
        println!("revisions {from} and {to} have the same settings");
        return Ok(());
    }
    let from_header = format!("REVISION {from}");
    let to_header = format!("REVISION {to}");
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| vec![c.setting.clone(), c.before.clone(), c.after.clone()])
        .collect();
    table::show(&table::render(
        &["SETTING", &from_header, &to_header],
        &rows,
    ));
    Ok(())
}

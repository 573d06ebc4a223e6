//! Revision history: a task's revisions, the settings that differ between two of them, a
//! roll back to one (as a new revision); and the deleted tasks, kept with their history,
//! which can be restored.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::tasks::{encode, unexpected};
use super::{Refusal, Session, csrf_field, field, layout, time};
use crate::server::web::Web;
use crate::wire::msg::{AdminRequest, AdminResponse, RevisionView, TaskRequest, TaskView};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/tasks/{task}/diff", get(diff))
        .route("/tasks/{task}/rollback", post(rollback))
        .route("/tasks/deleted", get(deleted))
        .route("/tasks/deleted/restore", post(restore))
}

async fn revisions(session: &Session, request: TaskRequest) -> Result<Vec<RevisionView>, Refusal> {
    match session
        .call(Vec::new(), AdminRequest::Task(request))
        .await?
    {
        AdminResponse::Revisions(revisions) => Ok(revisions),
        _ => Err(unexpected()),
    }
}

/// The Revision history tab: each revision, a comparison with the current one and a roll
/// back to it.
pub(super) async fn history(session: &Session, task: &TaskView) -> Result<Markup, Refusal> {
    let request = TaskRequest::History {
        task: task.id.to_string(),
    };
    let revisions = revisions(session, request).await?;
    Ok(html! {
        table.history {
            thead { tr { th { "Revision" } th { "When" } th { "By" } th { "What" } th { "Comment" } th { "" } } }
            tbody {
                @for r in &revisions {
                    tr data-revision=(r.revision) {
                        td { (r.revision) } td { (time(Some(r.at))) } td { (r.by) }
                        td { (r.action.to_string()) } td { (r.comment.as_deref().unwrap_or("")) }
                        td {
                            @if r.revision != task.revision {
                                a.compare href=(format!("/tasks/{}/diff?from={}", task.id, r.revision)) { "Compare with the current revision" }
                                form.inline method="post" action=(format!("/tasks/{}/rollback", task.id)) {
                                    (csrf_field(session))
                                    input type="hidden" name="revision" value=(r.revision);
                                    " " input name="comment" placeholder="Why (optional)" aria-label="comment" size="20";
                                    " " button type="submit" { "Roll back to this revision" }
                                }
                            } @else {
                                "current"
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(serde::Deserialize)]
struct DiffQuery {
    from: u32,
    to: Option<u32>,
}

async fn diff(
    session: Session,
    Path(task): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, Refusal> {
    let request = AdminRequest::Task(TaskRequest::Diff {
        task: task.clone(),
        from: q.from,
        to: q.to,
    });
    let (task_id, from, to, changes) = match session.call(Vec::new(), request).await? {
        AdminResponse::TaskDiff {
            task_id,
            from,
            to,
            changes,
        } => (task_id, from, to, changes),
        _ => return Err(unexpected()),
    };
    let body = html! {
        p { "Revision " (from) " against revision " (to) " of "
            a href=(format!("/tasks/{task_id}?tab=history")) { "the task" } "." }
        @if changes.is_empty() {
            p.same { "The settings are the same." }
        } @else {
            table.diff {
                thead { tr { th { "Setting" } th { "Revision " (from) } th { "Revision " (to) } } }
                tbody {
                    @for c in &changes {
                        tr data-setting=(c.setting) { td { (c.setting) } td { (c.before) } td { (c.after) } }
                    }
                }
            }
        }
    };
    Ok(layout("Compare revisions", Some(&session), body).into_response())
}

async fn rollback(
    session: Session,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let revision = field(&fields, "revision")
        .and_then(|r| r.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            Refusal::Error(
                axum::http::StatusCode::BAD_REQUEST,
                "choose the revision to roll back to".into(),
            )
        })?;
    let comment = field(&fields, "comment")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let request = AdminRequest::Task(TaskRequest::Rollback {
        task: task.clone(),
        revision,
        comment,
    });
    session.call(Vec::new(), request).await?;
    Ok(Redirect::to(&format!("/tasks/{}?tab=history&saved=1", encode(&task))).into_response())
}

/// The deleted tasks, each with its last revision, and Restore.
async fn deleted(session: Session) -> Result<Response, Refusal> {
    let tasks = revisions(&session, TaskRequest::ListDeleted).await?;
    let body = html! {
        @if tasks.is_empty() {
            p { "No deleted tasks are kept." }
        }
        table.deleted {
            thead { tr { th { "Task" } th { "Deleted" } th { "By" } th { "Comment" } th { "" } } }
            tbody {
                @for t in &tasks {
                    tr data-task=(t.name) {
                        td { (t.name) " (#" (t.task_id) ")" } td { (time(Some(t.at))) } td { (t.by) }
                        td { (t.comment.as_deref().unwrap_or("")) }
                        td {
                            form.inline method="post" action="/tasks/deleted/restore" {
                                (csrf_field(&session))
                                input type="hidden" name="task" value=(t.task_id);
                                button type="submit" { "Restore" }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/tasks" { "Back to the tasks" } }
    };
    Ok(layout("Deleted tasks", Some(&session), body).into_response())
}

async fn restore(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let task = field(&fields, "task").unwrap_or_default();
    let request = AdminRequest::Task(TaskRequest::Restore {
        task: task.clone(),
        comment: Some("restored in the console".into()),
    });
    session.call(Vec::new(), request).await?;
    Ok(Redirect::to(&format!("/tasks/{}?tab=history", encode(&task))).into_response())
}

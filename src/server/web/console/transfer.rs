//! What the task list does with the tasks checked (Start, Stop, Copy, Export, Delete), and
//! Import: an export file read, what it would create shown, then created on confirmation,
//! the two phases of `task import`.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;

use super::{Refusal, Session, csrf_field, field, layout};
use crate::server::web::Web;
use crate::wire::msg::{AdminRequest, AdminResponse, ScopeSpec, TaskRequest};

pub(super) fn router() -> Router<Web> {
    Router::new().route("/tasks/import", get(import_page).post(import))
}

/// The list's buttons, on every task checked; Export on the first only (one file).
pub(super) async fn action(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let checked: Vec<String> = fields
        .iter()
        .filter(|(name, _)| name == "task")
        .map(|(_, id)| id.clone())
        .collect();
    let Some(first) = checked.first().cloned() else {
        return Err(Refusal::Error(
            StatusCode::BAD_REQUEST,
            "select the check box next to a task first".into(),
        ));
    };
    let action = field(&fields, "action").unwrap_or_default();
    if action == "export" {
        return export(&session, first).await;
    }
    for task in checked {
        let request = match action.as_str() {
            "start" => TaskRequest::Start {
                task,
                devices: None,
            },
            "stop" => TaskRequest::Stop { task },
            "copy" => TaskRequest::Copy { task, name: None },
            "delete" => TaskRequest::Delete {
                task,
                comment: Some("deleted in the web console".into()),
            },
            other => {
                return Err(Refusal::Error(
                    StatusCode::BAD_REQUEST,
                    format!("no action {other:?}"),
                ));
            }
        };
        session
            .call(Vec::new(), AdminRequest::Task(request))
            .await?;
    }
    Ok(Redirect::to("/tasks").into_response())
}

/// The task's export file, downloaded under the name the server gives it.
async fn export(session: &Session, task: String) -> Result<Response, Refusal> {
    let request = AdminRequest::Task(TaskRequest::Export { task });
    let (file, file_name) = match session.call(Vec::new(), request).await? {
        AdminResponse::Exported { file, file_name } => (file, file_name),
        _ => return Err(super::tasks::unexpected()),
    };
    let mut response = file.into_response();
    let safe: String = file_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._- ()".contains(*c))
        .collect();
    let disposition = format!("attachment; filename=\"{safe}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/toml; charset=utf-8"),
    );
    Ok(response)
}

async fn import_page(session: Session) -> Response {
    import_form(&session, "", "Managed devices", None)
}

fn import_form(session: &Session, file: &str, group: &str, problem: Option<&str>) -> Response {
    let body = html! {
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        form method="post" action="/tasks/import" {
            (csrf_field(session))
            p { label { "The export file's text " br; textarea name="file" rows="12" cols="80" { (file) } } }
            p { label { "Group whose devices it runs on " input name="group" value=(group); } }
            p { button type="submit" name="go" value="check" { "Check" } }
        }
    };
    layout("Import task", Some(session), body).into_response()
}

/// Check: what the file would create, nothing changed; Import: the task created.
async fn import(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    // A browser sends a text area's lines ended by CRLF: the file's are LF, as exported.
    let file = field(&fields, "file")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let group = field(&fields, "group").unwrap_or_else(|| "Managed devices".into());
    let commit = field(&fields, "go").as_deref() == Some("import");
    let request = AdminRequest::Task(TaskRequest::Import {
        file: file.clone().into_bytes(),
        commit,
        scope: commit.then(|| ScopeSpec::Group {
            path: group.clone(),
            include_subgroups: true,
            include_secondaries: false,
        }),
    });
    let view = match session.call(Vec::new(), request).await {
        Ok(AdminResponse::Imported(view)) => view,
        Ok(_) => return Err(super::tasks::unexpected()),
        Err(Refusal::Error(_, problem)) => {
            return Ok(import_form(&session, &file, &group, Some(&problem)));
        }
        Err(refusal) => return Err(refusal),
    };
    if commit {
        return Ok(Redirect::to("/tasks").into_response());
    }
    let page = html! {
        table.import {
            tr { th { "Name" } td { (view.name) } }
            tr { th { "Type" } td { (view.task_type.type_name()) } }
            tr { th { "Application" } td { (view.application) } }
            tr { th { "Exported from" } td { (view.exported_from) " at " (view.exported_at) } }
        }
        form method="post" action="/tasks/import" {
            (csrf_field(&session))
            input type="hidden" name="file" value=(file);
            p { label { "Group whose devices it runs on " input name="group" value=(group); } }
            p { button type="submit" name="go" value="import" { "Import" } }
        }
    };
    Ok(layout("Import task", Some(&session), page).into_response())
}

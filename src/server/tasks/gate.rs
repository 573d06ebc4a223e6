//! The rights a request about a task needs (`server::rights`), checked before the request
//! is served.

// The error of a `Reply` is the whole answer to an administrator's request, made once.
#![allow(clippy::result_large_err)]

use super::{find, history};
use crate::model::rights::Rights;
use crate::server::Node;
use crate::server::auth::Session;
use crate::server::reply::Reply;
use crate::server::rights::Gate;
use crate::wire::msg::TaskRequest;

/// The rights a request about a task needs (`server::rights`), checked before it is
/// served; lists are cut to what the caller may read where they are made, and a name not
/// found is left to the request to report.
pub(super) async fn check_rights(
    node: &Node,
    session: &Session,
    request: &TaskRequest,
) -> Reply<()> {
    // An administrator holds every right: no task is looked up twice for it.
    if session.role == crate::model::Role::Administrator {
        return Ok(());
    }
    let (key, need) = match request {
        TaskRequest::List { .. }
        | TaskRequest::ListDeleted
        | TaskRequest::Credentials(_)
        | TaskRequest::Rights { .. } => return Ok(()),
        TaskRequest::Import { commit: false, .. } | TaskRequest::Import { scope: None, .. } => {
            return Ok(());
        }
        TaskRequest::Create(spec) => {
            return Gate::load(node, session).await?.check_new_task(&spec.scope);
        }
        TaskRequest::Import {
            scope: Some(scope), ..
        } => return Gate::load(node, session).await?.check_new_task(scope),
        TaskRequest::Show { task }
        | TaskRequest::Results { task, .. }
        | TaskRequest::Stats { task, .. }
        | TaskRequest::Export { task }
        | TaskRequest::History { task }
        | TaskRequest::Diff { task, .. } => (task, Rights::READ),
        TaskRequest::Edit { task, .. }
        | TaskRequest::Delete { task, .. }
        | TaskRequest::Rollback { task, .. }
        | TaskRequest::Restore { task, .. } => (task, Rights::MODIFY),
        TaskRequest::Start { task, .. }
        | TaskRequest::Stop { task }
        | TaskRequest::Pause { task }
        | TaskRequest::Resume { task } => (task, Rights::EXECUTE),
        // A copy is a new task with the scope of the original.
        TaskRequest::Copy { task, .. } => (task, Rights::READ.with(Rights::MODIFY)),
    };
    let gate = Gate::load(node, session).await?;
    match find(node, key).await {
        Ok(task) => gate.check_task(&task, key, need),
        Err(_) => match history::deleted(node, key).await? {
            Some(task) => gate.check_task(&task, key, need),
            None => Ok(()),
        },
    }
}

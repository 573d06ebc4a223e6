//! Admin requests about administration groups. Auditors may only list them (checked by the
//! dispatcher before this runs).

use super::Node;
use super::auth::Session;
use super::reply::{error, internal, page_by_path};
use super::rights::{self, Gate};
use crate::model::group::{GroupError, GroupTree, normalize_path};
use crate::model::rights::Rights;
use crate::model::{EventKind, Severity};
use crate::store::StoreError;
use crate::store::rights::Guarded;
use crate::wire::msg::{AdminResponse, ErrorKind, GroupRequest};

pub(super) async fn handle(node: &Node, session: &Session, request: GroupRequest) -> AdminResponse {
    let gate = match Gate::load(node, session).await {
        Ok(gate) => gate,
        Err(refused) => return refused,
    };
    match &request {
        GroupRequest::List { after, limit } => {
            return match node.store.group_views().await {
                Ok(mut views) => {
                    views.retain(|g| gate.on_group(g.id).contains(Rights::READ));
                    let (groups, next) =
                        page_by_path(views, |g| g.path.as_str(), after.as_deref(), *limit);
                    AdminResponse::Groups { groups, next }
                }
                Err(e) => internal(e),
            };
        }
        GroupRequest::Rights { path, change } => {
            return rights::group_rights(node, session, path, change.clone())
                .await
                .unwrap_or_else(|e| e);
        }
        _ => {}
    }
    if let Err(refused) = check_rights(&gate, &request) {
        return refused;
    }
    // The snapshot check gives a refusal its precise kind (not found, exists already,
    // invalid). The store checks again inside its transaction, which is what counts.
    let tree = match node.store.group_tree().await {
        Ok(tree) => tree,
        Err(e) => return internal(e),
    };
    if let Err(e) = precheck(&tree, &request) {
        return refused(e);
    }
    let user = &session.user;
    let store = &node.store;
    let result = match &request {
        GroupRequest::List { .. } | GroupRequest::Rights { .. } => {
            return error(ErrorKind::Internal, "handled above");
        }
        GroupRequest::Create { path } => store.create_group(path).await.map(|_| {
            // Names match exactly, so the path as typed (trimmed) is the group's path.
            let path = normalize_path(path);
            format!("group {path:?} created")
        }),
        GroupRequest::Rename { path, new_name } => {
            store.rename_group(path, new_name).await.map(|r| {
                format!(
                    "group {:?} renamed to {:?}{}",
                    r.old_path,
                    r.new_path,
                    following(r.secondaries)
                )
            })
        }
        GroupRequest::Move { path, new_parent } => {
            store.move_group(path, new_parent).await.map(|r| {
                format!(
                    "group {:?} moved to {:?}{}",
                    r.old_path,
                    r.new_path,
                    following(r.secondaries)
                )
            })
        }
        GroupRequest::Delete { path } => store
            .delete_group(path)
            .await
            .map(|path| format!("group {path:?} deleted")),
    };
    match result {
        Ok(message) => {
            let message_by = format!("{message} by {user}");
            match about(&tree, &request) {
                Some(about) => {
                    node.event_about(Severity::Info, EventKind::GroupChanged, message_by, about)
                        .await
                }
                None => {
                    node.event(Severity::Info, EventKind::GroupChanged, message_by)
                        .await
                }
            }
            // Secondaries' group paths may have changed: tell this server's parent.
            node.bump_subtree();
            AdminResponse::Done { message }
        }
        // Passed the snapshot check but refused in the transaction: not empty, or another
        // administrator changed the tree in between.
        Err(StoreError::Rejected(message)) => error(ErrorKind::InvalidInput, message),
        Err(e) => internal(e),
    }
}

/// Modify on the group a change is about, and on the group it goes under (a new
/// group's parent, a moved group's new parent). A group not found is left to `precheck`.
// The error is the whole answer to the administrator's request, made once.
#[allow(clippy::result_large_err)]
fn check_rights(gate: &Gate, request: &GroupRequest) -> Result<(), AdminResponse> {
    let tree = gate.tree();
    let parent_of = |path: &str| {
        normalize_path(path)
            .rsplit_once('/')
            .map(|(parent, _)| parent.to_string())
    };
    let paths: Vec<String> = match request {
        GroupRequest::List { .. } | GroupRequest::Rights { .. } => Vec::new(),
        GroupRequest::Create { path } => parent_of(path).into_iter().collect(),
        GroupRequest::Rename { path, .. } | GroupRequest::Delete { path } => vec![path.clone()],
        GroupRequest::Move { path, new_parent } => vec![path.clone(), new_parent.clone()],
    };
    for path in paths {
        if let Some(id) = tree.resolve(&path) {
            gate.check_group(id, normalize_path(&path), Rights::MODIFY)?;
        }
    }
    Ok(())
}

/// The group a change is about, for who may read its event: the group renamed or moved,
/// the parent of one created or deleted.
fn about(tree: &GroupTree, request: &GroupRequest) -> Option<Guarded> {
    let path = match request {
        GroupRequest::List { .. } | GroupRequest::Rights { .. } => return None,
        GroupRequest::Rename { path, .. } | GroupRequest::Move { path, .. } => {
            normalize_path(path).to_string()
        }
        GroupRequest::Create { path } | GroupRequest::Delete { path } => {
            normalize_path(path).rsplit_once('/')?.0.to_string()
        }
    };
    tree.resolve(&path).map(Guarded::Group)
}

/// The model's checks against a snapshot of the tree.
fn precheck(tree: &GroupTree, request: &GroupRequest) -> Result<(), GroupError> {
    match request {
        GroupRequest::List { .. } | GroupRequest::Rights { .. } => Ok(()),
        GroupRequest::Create { path } => tree.check_create(path).map(drop),
        GroupRequest::Rename { path, new_name } => tree.check_rename(path, new_name).map(drop),
        GroupRequest::Move { path, new_parent } => tree.check_move(path, new_parent).map(drop),
        GroupRequest::Delete { path } => tree.check_delete(path).map(drop),
    }
}

fn following(secondaries: u64) -> String {
    match secondaries {
        0 => String::new(),
        1 => "; 1 secondary placed in it or below follows it".into(),
        n => format!("; {n} secondaries placed in it or below follow it"),
    }
}

fn refused(e: GroupError) -> AdminResponse {
    let kind = match e {
        GroupError::NotFound(_) => ErrorKind::NotFound,
        GroupError::AlreadyExists(_) => ErrorKind::AlreadyExists,
        GroupError::Invalid(_) => ErrorKind::InvalidInput,
    };
    error(kind, e.to_string())
}

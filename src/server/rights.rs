//! Access rights at the admin API (`model::rights`): what a caller may do with a group or a
//! task, checked before a request is served, lists cut to what the caller may read, and
//! `task rights` / `group rights`. A caller without read on an object is told it does not
//! exist, as for a name that is not there; one that may read it but not do what it asks is
//! refused with the right it lacks.

// The error of a `Reply` is the whole answer to an administrator's request, made once.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;

use super::Node;
use super::auth::Session;
use super::reply::{Reply, error, internal};
use crate::model::group::{GroupTree, normalize_path};
use crate::model::rights::{Grant, Principal, Rights, effective};
use crate::model::scope::Scope;
use crate::model::task::TaskRecord;
use crate::model::{EventKind, Role, Severity};
use crate::store::events::Unreadable;
use crate::store::rights::{Guarded, RightsLists};
use crate::wire::msg::{AdminResponse, ErrorKind, RightsChange, RightsView, ScopeSpec};

/// The caller, the group tree and every rights list, read once per request.
pub(super) struct Gate {
    user: String,
    role: Role,
    tree: GroupTree,
    lists: RightsLists,
}

/// The group whose rights a task follows: a group task's group; `None` for other tasks.
pub(super) fn group_of(task: &TaskRecord) -> Option<u64> {
    match &task.scope {
        Scope::Group { group_id, .. } => Some(*group_id),
        _ => None,
    }
}

impl Gate {
    pub(super) async fn load(node: &Node, session: &Session) -> Reply<Gate> {
        Ok(Gate {
            user: session.user.clone(),
            role: session.role,
            tree: node.store.group_tree().await.map_err(internal)?,
            lists: node.store.rights_lists().await.map_err(internal)?,
        })
    }

    /// An administrator: every right on everything, so nothing needs to be looked up.
    pub(super) fn unlimited(&self) -> bool {
        self.role == Role::Administrator
    }

    pub(super) fn tree(&self) -> &GroupTree {
        &self.tree
    }

    /// The caller's rights on the group `id`, inherited from its root down.
    pub(super) fn on_group(&self, id: u64) -> Rights {
        let lineage = self.tree.lineage(id);
        effective(
            &self.user,
            self.role,
            lineage.iter().map(|g| self.lists.of(Guarded::Group(*g))),
        )
    }

    /// The caller's rights on `task`: its group's for a group task, its own otherwise.
    pub(super) fn on_task(&self, task: &TaskRecord) -> Rights {
        match group_of(task) {
            Some(group) => self.on_group(group),
            None => effective(
                &self.user,
                self.role,
                [self.lists.of(Guarded::Task(task.id))],
            ),
        }
    }

    /// Whether the caller may do what `need` says with `task` (named `key` by the caller).
    pub(super) fn check_task(&self, task: &TaskRecord, key: &str, need: Rights) -> Reply<()> {
        let has = self.on_task(task);
        if !has.contains(Rights::READ) {
            return Err(error(ErrorKind::NotFound, format!("no task {key:?}")));
        }
        lacks(has, need, &format!("task {:?}", task.name), &self.user)
    }

    /// Whether the caller may do what `need` says with the group `id` (at `path`).
    pub(super) fn check_group(&self, id: u64, path: &str, need: Rights) -> Reply<()> {
        let has = self.on_group(id);
        if !has.contains(Rights::READ) {
            return Err(error(ErrorKind::NotFound, format!("no group {path:?}")));
        }
        lacks(has, need, &format!("group {path:?}"), &self.user)
    }

    /// Whether the caller may create a task of scope `scope` here: modify on its group for
    /// a group task, a role that may change tasks otherwise. A group not found is left to
    /// the request's own checks.
    pub(super) fn check_new_task(&self, scope: &ScopeSpec) -> Reply<()> {
        match scope {
            ScopeSpec::Group { path, .. } => match self.tree.resolve(path) {
                Some(id) => self.check_group(id, normalize_path(path), Rights::MODIFY),
                None => Ok(()),
            },
            _ => lacks(
                effective(&self.user, self.role, []),
                Rights::MODIFY,
                "tasks of this server",
                &self.user,
            ),
        }
    }

    /// The lists that apply to `task`, from the root group down.
    fn lists_of_task(&self, task: &TaskRecord) -> Vec<(String, Vec<(Principal, Grant)>)> {
        match group_of(task) {
            Some(group) => self.lists_of_group(group),
            None => vec![(
                format!("task {:?}", task.name),
                self.entries(Guarded::Task(task.id)),
            )],
        }
    }

    fn lists_of_group(&self, id: u64) -> Vec<(String, Vec<(Principal, Grant)>)> {
        self.tree
            .lineage(id)
            .into_iter()
            .map(|g| {
                let path = self.tree.path_of(g).unwrap_or_else(|| format!("#{g}"));
                (path, self.entries(Guarded::Group(g)))
            })
            .collect()
    }

    fn entries(&self, object: Guarded) -> Vec<(Principal, Grant)> {
        self.lists
            .of(object)
            .map(|acl| acl.entries.iter().map(|(p, g)| (p.clone(), *g)).collect())
            .unwrap_or_default()
    }
}

/// What the caller may not read of the event log: the groups and tasks (deleted ones
/// too) it may not read, and the children placed in such groups. Nothing for an
/// administrator.
pub(super) async fn hidden(node: &Node, session: &Session) -> Reply<Unreadable> {
    let mut hidden = Unreadable::default();
    if session.role == Role::Administrator {
        return Ok(hidden);
    }
    let gate = Gate::load(node, session).await?;
    for group in gate.tree.in_tree_order() {
        if !gate.on_group(group.id).contains(Rights::READ) {
            hidden.objects.insert(Guarded::Group(group.id));
        }
    }
    let tasks = node.store.tasks().await.map_err(internal)?;
    let deleted = node.store.deleted_tasks().await.map_err(internal)?;
    for task in tasks.iter().chain(deleted.iter().map(|r| &r.task)) {
        if !gate.on_task(task).contains(Rights::READ) {
            hidden.objects.insert(Guarded::Task(task.id));
        }
    }
    hidden.children = hidden_children(node, &gate).await?;
    Ok(hidden)
}

/// The secondaries and virtual servers placed in groups the caller may not read.
async fn hidden_children(node: &Node, gate: &Gate) -> Reply<HashSet<String>> {
    Ok(node
        .store
        .secondaries()
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|r| !gate.on_group(r.group_id).contains(Rights::READ))
        .map(|r| r.name)
        .collect())
}

/// The rows of `server list` the caller may see: this server, and the secondaries and
/// virtual servers (with everything below them) placed in groups it may read.
pub(super) async fn servers_visible(
    node: &Node,
    session: &Session,
    rows: Vec<crate::model::ServerRow>,
) -> Reply<Vec<crate::model::ServerRow>> {
    if session.role == Role::Administrator {
        return Ok(rows);
    }
    let gate = Gate::load(node, session).await?;
    let hidden = hidden_children(node, &gate).await?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            row.path
                .split('/')
                .nth(1)
                .is_none_or(|child| !hidden.contains(child))
        })
        .collect())
}

fn lacks(has: Rights, need: Rights, what: &str, user: &str) -> Reply<()> {
    if has.contains(need) {
        return Ok(());
    }
    Err(error(
        ErrorKind::Forbidden,
        format!(
            "{user} may not {} {what}: its rights there are {has} (see `task rights` and `group rights`)",
            need.without(has)
        ),
    ))
}

/// `task rights TASK [change]`: a group task's change goes to its group's list.
pub(super) async fn task_rights(
    node: &Node,
    session: &Session,
    task: TaskRecord,
    change: Option<RightsChange>,
) -> Reply<AdminResponse> {
    let mut gate = Gate::load(node, session).await?;
    gate.check_task(&task, &task.name, Rights::READ)?;
    let follows_group = group_of(&task).map(|g| gate.tree.path_of(g).unwrap_or_default());
    if let Some(change) = change {
        gate.check_task(&task, &task.name, Rights::MODIFY)?;
        let (object, what) = match group_of(&task) {
            Some(group) => (
                Guarded::Group(group),
                format!(
                    "group {:?} (task {:?} follows it)",
                    follows_group.clone().unwrap_or_default(),
                    task.name
                ),
            ),
            None => (Guarded::Task(task.id), format!("task {:?}", task.name)),
        };
        gate = apply(node, session, gate, object, &what, change).await?;
    }
    Ok(AdminResponse::Rights(Box::new(RightsView {
        object: format!("task {:?}", task.name),
        follows_group,
        lists: gate.lists_of_task(&task),
        yours: gate.on_task(&task),
    })))
}

/// `group rights PATH [change]`.
pub(super) async fn group_rights(
    node: &Node,
    session: &Session,
    path: &str,
    change: Option<RightsChange>,
) -> Reply<AdminResponse> {
    let mut gate = Gate::load(node, session).await?;
    let path = normalize_path(path);
    let Some(id) = gate.tree.resolve(path) else {
        return Err(error(ErrorKind::NotFound, format!("no group {path:?}")));
    };
    gate.check_group(id, path, Rights::READ)?;
    if let Some(change) = change {
        gate.check_group(id, path, Rights::MODIFY)?;
        let what = format!("group {path:?}");
        gate = apply(node, session, gate, Guarded::Group(id), &what, change).await?;
    }
    Ok(AdminResponse::Rights(Box::new(RightsView {
        object: format!("group {path:?}"),
        follows_group: None,
        lists: gate.lists_of_group(id),
        yours: gate.on_group(id),
    })))
}

/// Sets one entry, announces it, and reads the gate again.
async fn apply(
    node: &Node,
    session: &Session,
    gate: Gate,
    object: Guarded,
    what: &str,
    change: RightsChange,
) -> Reply<Gate> {
    let RightsChange { principal, grant } = change;
    if principal == Principal::Role(Role::Administrator) {
        return Err(error(
            ErrorKind::InvalidInput,
            "administrators hold every right whatever a list says: an entry for role:administrator would change nothing",
        ));
    }
    node.store
        .set_rights(object, principal.clone(), grant)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Invalid(message) => error(ErrorKind::InvalidInput, message),
            other => internal(other),
        })?;
    let message = if grant == Grant::default() {
        format!(
            "rights of {what}: the entry of {principal} removed by {}",
            session.user
        )
    } else {
        format!(
            "rights of {what}: {principal} allowed {}, denied {}, by {}",
            grant.allow, grant.deny, session.user
        )
    };
    let kind = match object {
        Guarded::Group(_) => EventKind::GroupChanged,
        Guarded::Task(_) => EventKind::TaskChanged,
    };
    node.event_about(Severity::Info, kind, message, object)
        .await;
    drop(gate);
    Gate::load(node, session).await
}

//! Operations on tasks and their runs. A task is named in the path by its id or its name.

use axum::http::{Method, StatusCode};

use super::{BASE, Comment, NumberPage, Operation, schema};
use crate::model::task::DeviceState;
use crate::wire::msg::{
    AdminRequest, CredentialsChange, RightsChange, ScopeSpec, TaskChanges, TaskRequest, TaskSpec,
};

fn task(request: TaskRequest) -> Result<AdminRequest, super::ApiError> {
    Ok(AdminRequest::Task(request))
}

pub(super) const LIST: Operation = Operation {
    path: "/tasks",
    id: "listTasks",
    tag: "tasks",
    summary: "A page of the tasks in id order, with their status and next start",
    query: Some(schema::<NumberPage>),
    response: "Tasks",
    build: |input| {
        let page: NumberPage = input.query()?;
        task(TaskRequest::List {
            limit: page.limit(),
            after: page.after,
        })
    },
    ..BASE
};

pub(super) const CREATE: Operation = Operation {
    method: Method::POST,
    path: "/tasks",
    id: "createTask",
    tag: "tasks",
    summary: "Create a task: its type, scope, schedule, account and settings",
    body: Some(schema::<TaskSpec>),
    response: "Task",
    status: StatusCode::CREATED,
    build: |input| {
        let spec: TaskSpec = input.body()?;
        task(TaskRequest::Create(Box::new(spec)))
    },
    ..BASE
};

pub(super) const SHOW: Operation = Operation {
    path: "/tasks/{task}",
    id: "showTask",
    tag: "tasks",
    summary: "A task and its last run",
    response: "Task",
    build: |input| {
        task(TaskRequest::Show {
            task: input.path("task")?,
        })
    },
    ..BASE
};

pub(super) const EDIT: Operation = Operation {
    method: Method::PATCH,
    path: "/tasks/{task}",
    id: "editTask",
    tag: "tasks",
    summary: "Change a task: each field given replaces the task's (a new revision)",
    body: Some(schema::<TaskChanges>),
    response: "Task",
    build: |input| {
        let changes: TaskChanges = input.body()?;
        task(TaskRequest::Edit {
            task: input.path("task")?,
            changes: Box::new(changes),
        })
    },
    ..BASE
};

pub(super) const DELETE: Operation = Operation {
    method: Method::DELETE,
    path: "/tasks/{task}",
    id: "deleteTask",
    tag: "tasks",
    summary: "Delete a task (kept with its history for tasks.deleted_keep_days)",
    query: Some(schema::<Comment>),
    build: |input| {
        let q: Comment = input.query()?;
        task(TaskRequest::Delete {
            task: input.path("task")?,
            comment: q.comment,
        })
    },
    ..BASE
};

#[derive(Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// Run it on these devices (names or ids): the task's scope becomes this list first.
    devices: Option<Vec<String>>,
}

pub(super) const START: Operation = Operation {
    method: Method::POST,
    path: "/tasks/{task}/start",
    id: "startTask",
    tag: "tasks",
    summary: "Start a run of the task now (on the devices given, if any)",
    body: Some(schema::<StartBody>),
    response: "TaskStarted",
    build: |input| {
        let b: StartBody = input.optional_body()?;
        task(TaskRequest::Start {
            task: input.path("task")?,
            devices: b.devices,
        })
    },
    ..BASE
};

pub(super) const STOP: Operation = Operation {
    method: Method::POST,
    path: "/tasks/{task}/stop",
    id: "stopTask",
    tag: "tasks",
    summary: "Stop the task's running run",
    response: "TaskStats",
    build: |input| {
        task(TaskRequest::Stop {
            task: input.path("task")?,
        })
    },
    ..BASE
};

pub(super) const PAUSE: Operation = Operation {
    method: Method::POST,
    path: "/tasks/{task}/pause",
    id: "pauseTask",
    tag: "tasks",
    summary: "Pause the task's running run",
    response: "TaskStats",
    build: |input| {
        task(TaskRequest::Pause {
            task: input.path("task")?,
        })
    },
    ..BASE
};

pub(super) const RESUME: Operation = Operation {
    method: Method::POST,
    path: "/tasks/{task}/resume",
    id: "resumeTask",
    tag: "tasks",
    summary: "Resume the task's paused run",
    response: "TaskStats",
    build: |input| {
        task(TaskRequest::Resume {
            task: input.path("task")?,
        })
    },
    ..BASE
};

/// Which per-device records.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultsQuery {
    /// The run; by default the last.
    run: Option<u64>,
    state: Option<DeviceState>,
    /// With each device's output.
    #[serde(default)]
    details: bool,
    /// The records held by that server of the subtree (`branch-1/branch-1a`, a row of the
    /// statistics by server), fetched through the tree.
    server: Option<String>,
    /// The device id the last page's `next` gave.
    after: Option<String>,
    limit: Option<u32>,
}

pub(super) const RESULTS: Operation = Operation {
    path: "/tasks/{task}/results",
    id: "taskResults",
    tag: "tasks",
    summary: "A page of a run's per-device results, of this server or of a server below",
    query: Some(schema::<ResultsQuery>),
    response: "TaskResults",
    build: |input| {
        let q: ResultsQuery = input.query()?;
        task(TaskRequest::Results {
            task: input.path("task")?,
            run: q.run,
            state: q.state,
            details: q.details,
            server: q.server,
            after: q.after,
            limit: q.limit.unwrap_or(crate::wire::msg::PAGE_MAX),
        })
    },
    ..BASE
};

/// Which run; by default the last.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunQuery {
    run: Option<u64>,
}

pub(super) const STATS: Operation = Operation {
    path: "/tasks/{task}/stats",
    id: "taskStats",
    tag: "tasks",
    summary: "A run's statistics across the tree, with a row per secondary server",
    query: Some(schema::<RunQuery>),
    response: "TaskStats",
    build: |input| {
        let q: RunQuery = input.query()?;
        task(TaskRequest::Stats {
            task: input.path("task")?,
            run: q.run,
        })
    },
    ..BASE
};

pub(super) const EXPORT: Operation = Operation {
    path: "/tasks/{task}/export",
    id: "exportTask",
    tag: "tasks",
    summary: "The task as an export file (never its password)",
    response: "Exported",
    build: |input| {
        task(TaskRequest::Export {
            task: input.path("task")?,
        })
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportBody {
    /// The export file's text.
    file: String,
    /// Create the task; without it, say what would be created and change nothing.
    #[serde(default)]
    commit: bool,
    /// Where the created task runs (needed with `commit`).
    scope: Option<ScopeSpec>,
}

pub(super) const IMPORT: Operation = Operation {
    method: Method::POST,
    path: "/tasks/import",
    id: "importTask",
    tag: "tasks",
    summary: "Read an export file: what it would create, or with commit the task created",
    body: Some(schema::<ImportBody>),
    response: "Imported",
    build: |input| {
        let b: ImportBody = input.body()?;
        task(TaskRequest::Import {
            file: b.file.into_bytes(),
            commit: b.commit,
            scope: b.scope,
        })
    },
    ..BASE
};

#[derive(Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CopyBody {
    /// The copy's name; by default the task's, with the next free " (N)".
    name: Option<String>,
}

pub(super) const COPY: Operation = Operation {
    method: Method::POST,
    path: "/tasks/{task}/copy",
    id: "copyTask",
    tag: "tasks",
    summary: "A new task with the type, settings and scope of this one",
    body: Some(schema::<CopyBody>),
    response: "Task",
    status: StatusCode::CREATED,
    build: |input| {
        let b: CopyBody = input.optional_body()?;
        task(TaskRequest::Copy {
            task: input.path("task")?,
            name: b.name,
        })
    },
    ..BASE
};

pub(super) const HISTORY: Operation = Operation {
    path: "/tasks/{task}/history",
    id: "taskHistory",
    tag: "tasks",
    summary: "Every revision of the task, oldest first (a deleted task's too, by its id)",
    response: "Revisions",
    build: |input| {
        task(TaskRequest::History {
            task: input.path("task")?,
        })
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DiffQuery {
    from: u32,
    /// By default the current revision.
    to: Option<u32>,
}

pub(super) const DIFF: Operation = Operation {
    path: "/tasks/{task}/diff",
    id: "taskDiff",
    tag: "tasks",
    summary: "The settings that differ between two revisions",
    query: Some(schema::<DiffQuery>),
    response: "TaskDiff",
    build: |input| {
        let q: DiffQuery = input.query()?;
        task(TaskRequest::Diff {
            task: input.path("task")?,
            from: q.from,
            to: q.to,
        })
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackBody {
    revision: u32,
    comment: Option<String>,
}

pub(super) const ROLLBACK: Operation = Operation {
    method: Method::POST,
    path: "/tasks/{task}/rollback",
    id: "rollbackTask",
    tag: "tasks",
    summary: "A new revision with the settings of an earlier one",
    body: Some(schema::<RollbackBody>),
    response: "Task",
    build: |input| {
        let b: RollbackBody = input.body()?;
        task(TaskRequest::Rollback {
            task: input.path("task")?,
            revision: b.revision,
            comment: b.comment,
        })
    },
    ..BASE
};

pub(super) const DELETED: Operation = Operation {
    path: "/deleted-tasks",
    id: "listDeletedTasks",
    tag: "tasks",
    summary: "The deleted tasks kept with their history, each by its last revision",
    response: "Revisions",
    build: |_| task(TaskRequest::ListDeleted),
    ..BASE
};

pub(super) const RESTORE: Operation = Operation {
    method: Method::POST,
    path: "/deleted-tasks/{task}/restore",
    id: "restoreTask",
    tag: "tasks",
    summary: "Bring a deleted task back with its history",
    body: Some(schema::<Comment>),
    response: "Task",
    build: |input| {
        let b: Comment = input.optional_body()?;
        task(TaskRequest::Restore {
            task: input.path("task")?,
            comment: b.comment,
        })
    },
    ..BASE
};

pub(super) const CREDENTIALS: Operation = Operation {
    method: Method::POST,
    path: "/task-credentials",
    id: "changeTaskCredentials",
    tag: "tasks",
    summary: "The Change tasks password wizard: a new password for the tasks run under an account",
    body: Some(schema::<CredentialsChange>),
    response: "Credentials",
    build: |input| {
        let change: CredentialsChange = input.body()?;
        task(TaskRequest::Credentials(Box::new(change)))
    },
    ..BASE
};

pub(super) const RIGHTS: Operation = Operation {
    path: "/tasks/{task}/rights",
    id: "taskRights",
    tag: "tasks",
    summary: "The rights lists that apply to a task (a group task's are its group's), and yours",
    response: "Rights",
    build: |input| {
        task(TaskRequest::Rights {
            task: input.path("task")?,
            change: None,
        })
    },
    ..BASE
};

pub(super) const RIGHTS_SET: Operation = Operation {
    method: Method::PUT,
    path: "/tasks/{task}/rights",
    id: "setTaskRights",
    tag: "tasks",
    summary: "Set one entry of a task's rights list (an empty grant removes it)",
    body: Some(schema::<RightsChange>),
    response: "Rights",
    build: |input| {
        let change: RightsChange = input.body()?;
        task(TaskRequest::Rights {
            task: input.path("task")?,
            change: Some(change),
        })
    },
    ..BASE
};

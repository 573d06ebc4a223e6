//! The messages of the three links: federation (server to server), devices (in `agent`)
//! and administration.

use serde::{Deserialize, Serialize};

use crate::model::device::DeviceView;
use crate::model::schedule::{Schedule, ScheduleOptions};
use crate::model::task::{DeviceRunRecord, DeviceState, TaskType};
use crate::model::{Account, Event, EventFilter, Role, ServerRow, UnixMillis};

mod agent;
mod credentials;
mod fed;
mod notify;
mod task;

pub use agent::*;
pub use credentials::*;
pub use fed::*;
pub use notify::*;
pub use task::*;

/// A value that must never be printed or logged: its `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

// ---- Administration: `canopy-admin/1` ----

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminHello {
    pub client_version: String,
    /// The virtual server to administer (its own accounts); `None`: the server itself.
    pub virtual_server: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminWelcome {
    pub server_name: String,
    pub software_version: String,
}

/// One request on its own stream: the session token (absent only for `Login`), the request,
/// and the server it is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminCall {
    pub token: Option<Secret>,
    pub request: AdminRequest,
    /// The names of the servers below the one connected to, down to the one that serves the
    /// request (relayed hop by hop, with the role the caller has here); empty: that server.
    /// A login is always served by the server connected to, where the session lives.
    pub at: Vec<String>,
}

/// Not recursive, nor is any message: a peer cannot nest a value deeper than its type, so
/// decoding needs no depth limit (a relayed request carries its path beside it instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum AdminRequest {
    Login {
        user: String,
        password: Secret,
    },
    Logout,
    ServerStatus,
    /// One page of the servers of the tree, in tree order (their paths compared name by
    /// name), after the server path `after` (see [`PAGE_MAX`]).
    ServerList {
        after: Option<String>,
        limit: u32,
    },
    /// Registers a secondary; with `passive` (`host:port`), one this server connects to.
    AddSecondary {
        name: String,
        group: String,
        cert_pem: String,
        passive: Option<String>,
    },
    RemoveSecondary {
        name: String,
    },
    /// Revokes a server certificate (PEM) for this server's whole subtree, registered here or
    /// not: from the primary, for the whole deployment. `name` labels it in events.
    RevokeCertificate {
        name: String,
        cert_pem: String,
        reason: String,
    },
    /// A page of the events `filter` matches (the whole tree's by default), oldest first:
    /// after sequence number `after`, or the newest without it.
    EventList {
        after: Option<u64>,
        limit: u32,
        filter: EventFilter,
    },
    /// One page of accounts in name order, after the account name `after` (see [`PAGE_MAX`]).
    AccountList {
        after: Option<String>,
        limit: u32,
    },
    AccountCreate {
        name: String,
        password: Secret,
        role: Role,
    },
    AccountDelete {
        name: String,
    },
    AccountSetPassword {
        name: String,
        password: Secret,
    },
    Group(GroupRequest),
    Device(DeviceRequest),
    Task(TaskRequest),
    VirtualServer(VirtualServerRequest),
    /// Notification channels (email, webhook) of a physical server.
    Notify(NotifyRequest),
}

/// Virtual servers of a physical server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum VirtualServerRequest {
    /// One page in name order, after the virtual server name `after` (see [`PAGE_MAX`]).
    List {
        after: Option<String>,
        limit: u32,
    },
    /// Creates it in `group` of this server, with its own database and an enrollment
    /// token for its devices.
    Create {
        name: String,
        group: String,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    /// Deletes it with its database.
    Delete {
        name: String,
    },
}

/// A virtual server as `canopy vserver list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualServerView {
    pub name: String,
    pub group: String,
    pub enabled: bool,
    pub created: UnixMillis,
    pub devices: u64,
    pub devices_connected: u64,
    /// Devices enroll with it at `<server>/<name>`.
    pub enrollment_token: Secret,
    pub data: String,
}

/// Tasks are named by their display name or their id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum TaskRequest {
    /// One page of tasks in id order, after the task id `after` (see [`PAGE_MAX`]).
    List {
        after: Option<u64>,
        limit: u32,
    },
    Show {
        task: String,
    },
    Create(Box<TaskSpec>),
    Edit {
        task: String,
        changes: Box<TaskChanges>,
    },
    Delete {
        task: String,
        comment: Option<String>,
    },
    /// Starts a run; with `devices`, the task's scope becomes that list first (its schedule
    /// is not changed).
    Start {
        task: String,
        devices: Option<Vec<String>>,
    },
    Stop {
        task: String,
    },
    /// Per-device records of a run (the last one by default).
    Results {
        task: String,
        run: Option<u64>,
        state: Option<DeviceState>,
        details: bool,
        /// The records held by that server of the subtree (a path of names below this
        /// server, as `--by-server` shows it), fetched through the tree.
        server: Option<String>,
        /// One page, in device id order, after the device id `after` (see [`PAGE_MAX`]).
        after: Option<String>,
        limit: u32,
    },
    Stats {
        task: String,
        run: Option<u64>,
    },
    /// Pauses the task's running run (the last one): devices that have not started it
    /// hold, executors that can pause (scan, simulate) pause, the others finish.
    Pause {
        task: String,
    },
    /// Resumes the task's paused run.
    Resume {
        task: String,
    },
    /// The task as an export file (`model::export`); device tasks only.
    Export {
        task: String,
    },
    /// Reads an export file and says what it would create, changing nothing; with `commit`
    /// (and a scope), creates the task.
    Import {
        file: Vec<u8>,
        commit: bool,
        scope: Option<ScopeSpec>,
    },
    /// A new task with the type, settings and scope of `task`, named `name` (or after the
    /// task), with the next free " (N)" suffix if the name is taken.
    Copy {
        task: String,
        name: Option<String>,
    },
    /// Every revision of a task (a deleted one's too, by its id).
    History {
        task: String,
    },
    /// The settings that differ from revision `from` to `to` (the current one if `None`).
    Diff {
        task: String,
        from: u32,
        to: Option<u32>,
    },
    /// A new revision with the settings of `revision`.
    Rollback {
        task: String,
        revision: u32,
        comment: Option<String>,
    },
    /// The deleted tasks kept with their history.
    ListDeleted,
    /// A deleted task back, by its id or name, with its history.
    Restore {
        task: String,
        comment: Option<String>,
    },
    /// The Change tasks password wizard (`CredentialsChange`).
    Credentials(Box<CredentialsChange>),
    /// The task's rights (a group task's are its group's): shown, and with `change`
    /// changed first.
    Rights {
        task: String,
        change: Option<RightsChange>,
    },
}

/// One entry of a rights list set: an empty grant removes the principal's entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RightsChange {
    pub principal: crate::model::rights::Principal,
    pub grant: crate::model::rights::Grant,
}

/// A rights list as `task rights` and `group rights` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RightsView {
    /// What the rights are of: `group "Managed devices/Paris"` or `task "Patch"`.
    pub object: String,
    /// For a group task: the group whose rights it follows.
    pub follows_group: Option<String>,
    /// The lists that apply, from the root group down to the object: the group path (or
    /// the task's name) and its entries.
    pub lists: Vec<(
        String,
        Vec<(crate::model::rights::Principal, crate::model::rights::Grant)>,
    )>,
    /// The caller's own rights on it.
    pub yours: crate::model::rights::Rights,
}

/// One revision of a task as administrators see it (never its password).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisionView {
    pub task_id: u64,
    pub name: String,
    pub revision: u32,
    pub at: UnixMillis,
    pub by: String,
    pub action: crate::model::revision::RevisionAction,
    pub comment: Option<String>,
}

/// What an import would create (or created).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportView {
    /// The name it gets here: the file's, or with the next free " (N)" suffix.
    pub name: String,
    pub task_type: TaskType,
    pub application: String,
    pub schedule: Schedule,
    pub schedule_options: ScheduleOptions,
    pub account: Option<String>,
    pub exported_from: String,
    pub exported_at: String,
    /// What the administrator must know or do ("an account password must be set").
    pub warnings: Vec<String>,
    /// The task made, with `commit`.
    pub created: Option<Box<TaskView>>,
}

/// Paging, the same for every list (tasks, a run's records, devices, events, servers,
/// accounts, groups, virtual servers): the
/// request says where the page starts (`after`, the cursor the previous answer gave) and how
/// many items it may hold (`limit`, capped by the server at `PAGE_MAX`, or `DEVICE_PAGE_MAX`
/// for devices). The server also ends a page before its items pass `PAGE_BYTES` when encoded,
/// so any page fits a frame whatever the items hold. The answer's `next` is the cursor of the
/// next page, `None` when nothing follows.
pub const PAGE_MAX: u32 = 10_000;
/// See [`PAGE_MAX`].
pub const PAGE_BYTES: usize = 1024 * 1024;
/// The largest page of devices one response carries.
pub const DEVICE_PAGE_MAX: u32 = 2000;

/// Where a page of devices ends: the (name, id) of its last device.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct DeviceCursor {
    pub name: String,
    pub id: String,
}

/// Devices are named by their display name or their id (or a unique prefix of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum DeviceRequest {
    /// One page of devices in (name, id) order, after the cursor (see [`PAGE_MAX`]).
    List {
        group: Option<String>,
        recursive: bool,
        after: Option<DeviceCursor>,
        limit: u32,
    },
    Show {
        device: String,
    },
    Move {
        device: String,
        group: String,
    },
    Tag {
        device: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    Approve {
        device: String,
        group: Option<String>,
    },
    Reject {
        device: String,
    },
    Delete {
        device: String,
    },
}

/// Administration groups. Paths are group names joined by '/', starting with
/// "Managed devices" (or the separate "Unassigned devices").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum GroupRequest {
    /// One page in tree order (their paths compared name by name), after the group path
    /// `after` (see [`PAGE_MAX`]).
    List {
        after: Option<String>,
        limit: u32,
    },
    Create {
        path: String,
    },
    Rename {
        path: String,
        new_name: String,
    },
    Move {
        path: String,
        new_parent: String,
    },
    Delete {
        path: String,
    },
    /// The group's rights: shown, and with `change` changed first.
    Rights {
        path: String,
        change: Option<RightsChange>,
    },
}

/// A group as `canopy group list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupView {
    pub id: u64,
    pub path: String,
    pub depth: u32,
    pub subgroups: u64,
    pub devices: u64,
    pub secondaries: u64,
}

impl AdminRequest {
    /// What the request does, for the audit trail and errors.
    pub fn name(&self) -> &'static str {
        match self {
            AdminRequest::Login { .. } => "login",
            AdminRequest::Logout => "logout",
            AdminRequest::ServerStatus => "server status",
            AdminRequest::ServerList { .. } => "server list",
            AdminRequest::AddSecondary { .. } => "server add-secondary",
            AdminRequest::RemoveSecondary { .. } => "server remove-secondary",
            AdminRequest::RevokeCertificate { .. } => "server revoke",
            AdminRequest::EventList { .. } => "event list",
            AdminRequest::AccountList { .. } => "account list",
            AdminRequest::AccountCreate { .. } => "account create",
            AdminRequest::AccountDelete { .. } => "account delete",
            AdminRequest::AccountSetPassword { .. } => "account passwd",
            AdminRequest::Group(GroupRequest::List { .. }) => "group list",
            AdminRequest::Group(GroupRequest::Create { .. }) => "group create",
            AdminRequest::Group(GroupRequest::Rename { .. }) => "group rename",
            AdminRequest::Group(GroupRequest::Move { .. }) => "group move",
            AdminRequest::Group(GroupRequest::Delete { .. }) => "group delete",
            AdminRequest::Group(GroupRequest::Rights { change: None, .. }) => "group rights",
            AdminRequest::Group(GroupRequest::Rights {
                change: Some(_), ..
            }) => "group rights change",
            AdminRequest::Device(DeviceRequest::List { .. }) => "device list",
            AdminRequest::Device(DeviceRequest::Show { .. }) => "device show",
            AdminRequest::Device(DeviceRequest::Move { .. }) => "device move",
            AdminRequest::Device(DeviceRequest::Tag { .. }) => "device tag",
            AdminRequest::Device(DeviceRequest::Approve { .. }) => "device approve",
            AdminRequest::Device(DeviceRequest::Reject { .. }) => "device reject",
            AdminRequest::Device(DeviceRequest::Delete { .. }) => "device delete",
            AdminRequest::Task(TaskRequest::List { .. }) => "task list",
            AdminRequest::Task(TaskRequest::Show { .. }) => "task show",
            AdminRequest::Task(TaskRequest::Create(_)) => "task create",
            AdminRequest::Task(TaskRequest::Edit { .. }) => "task edit",
            AdminRequest::Task(TaskRequest::Delete { .. }) => "task delete",
            AdminRequest::Task(TaskRequest::Start { .. }) => "task start",
            AdminRequest::Task(TaskRequest::Stop { .. }) => "task stop",
            AdminRequest::Task(TaskRequest::Results { .. }) => "task results",
            AdminRequest::Task(TaskRequest::Stats { .. }) => "task stats",
            AdminRequest::Task(TaskRequest::Pause { .. }) => "task pause",
            AdminRequest::Task(TaskRequest::Resume { .. }) => "task resume",
            AdminRequest::Task(TaskRequest::Export { .. }) => "task export",
            AdminRequest::Task(TaskRequest::Import { commit: false, .. }) => "task import",
            AdminRequest::Task(TaskRequest::Import { commit: true, .. }) => "task import --commit",
            AdminRequest::Task(TaskRequest::Copy { .. }) => "task copy",
            AdminRequest::Task(TaskRequest::History { .. }) => "task history",
            AdminRequest::Task(TaskRequest::Diff { .. }) => "task diff",
            AdminRequest::Task(TaskRequest::Rollback { .. }) => "task rollback",
            AdminRequest::Task(TaskRequest::ListDeleted) => "task list --deleted",
            AdminRequest::Task(TaskRequest::Restore { .. }) => "task restore",
            AdminRequest::Task(TaskRequest::Credentials(_)) => "task credentials",
            AdminRequest::Task(TaskRequest::Rights { change: None, .. }) => "task rights",
            AdminRequest::Task(TaskRequest::Rights {
                change: Some(_), ..
            }) => "task rights change",
            AdminRequest::VirtualServer(VirtualServerRequest::List { .. }) => "vserver list",
            AdminRequest::VirtualServer(VirtualServerRequest::Create { .. }) => "vserver create",
            AdminRequest::VirtualServer(VirtualServerRequest::Enable { .. }) => "vserver enable",
            AdminRequest::VirtualServer(VirtualServerRequest::Disable { .. }) => "vserver disable",
            AdminRequest::VirtualServer(VirtualServerRequest::Delete { .. }) => "vserver delete",
            AdminRequest::Notify(NotifyRequest::List { .. }) => "notify list",
            AdminRequest::Notify(NotifyRequest::Add(_)) => "notify add",
            AdminRequest::Notify(NotifyRequest::Remove { .. }) => "notify remove",
            AdminRequest::Notify(NotifyRequest::Test { .. }) => "notify test",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum ErrorKind {
    /// No valid session: log in first.
    Unauthenticated,
    /// The account's role does not allow this.
    Forbidden,
    NotFound,
    AlreadyExists,
    InvalidInput,
    Internal,
    /// The server is too busy to serve it now (for example checking other passwords during
    /// a flood of logins); the same request may succeed a moment later.
    Unavailable,
    /// A cap of the server's `[limits]` is reached (the message names the key).
    LimitReached,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum AdminResponse {
    Done {
        message: String,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
    LoggedIn {
        token: Secret,
        role: Role,
        expires: UnixMillis,
    },
    Status(ServerStatusView),
    /// A page of the tree's servers; `next`: the server path to ask after.
    Servers {
        servers: Vec<ServerRow>,
        next: Option<String>,
    },
    /// A page of events, oldest first; `next`: the sequence number to ask after.
    Events {
        events: Vec<Event>,
        next: Option<u64>,
    },
    /// A page of accounts; `next`: the account name to ask after.
    Accounts {
        accounts: Vec<AccountView>,
        next: Option<String>,
    },
    /// A page of groups; `next`: the group path to ask after.
    Groups {
        groups: Vec<GroupView>,
        next: Option<String>,
    },
    Devices {
        devices: Vec<DeviceView>,
        next: Option<DeviceCursor>,
    },
    Tasks {
        tasks: Vec<TaskView>,
        next: Option<u64>,
    },
    Task(Box<TaskView>),
    /// A run was started: what it targets, and what was left out and why.
    TaskStarted {
        run: RunView,
        skipped: Vec<String>,
    },
    TaskResults {
        run: RunView,
        records: Vec<DeviceRunRecord>,
        /// The device id to ask after for the next page.
        next: Option<String>,
    },
    TaskStats(RunView),
    /// A page of virtual servers; `next`: the name to ask after.
    VirtualServers {
        virtual_servers: Vec<VirtualServerView>,
        next: Option<String>,
    },
    VirtualServer(Box<VirtualServerView>),
    /// An export file, and the name to save it under.
    Exported {
        file: String,
        file_name: String,
    },
    Imported(Box<ImportView>),
    /// A task's revisions, oldest first; or the deleted tasks, each by its last revision.
    Revisions(Vec<RevisionView>),
    TaskDiff {
        task_id: u64,
        from: u32,
        to: u32,
        changes: Vec<crate::model::revision::SettingChange>,
    },
    /// What the Change tasks password wizard did to each task it found.
    Credentials(Vec<CredentialsResult>),
    Rights(Box<RightsView>),
    /// A page of notification channels; `next`: the name to ask after.
    NotifyChannels {
        channels: Vec<NotifyChannelView>,
        next: Option<String>,
    },
}

/// `canopy server status`: the server asked, and its link to its own parent if it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerStatusView {
    pub name: String,
    pub software_version: String,
    pub listen: String,
    pub fingerprint: String,
    pub started: UnixMillis,
    pub parent: Option<ParentLinkView>,
    pub secondaries: u32,
    /// Devices registered on this server, and how many are connected now.
    pub devices: u32,
    pub devices_connected: u32,
    /// Devices waiting for an administrator's decision (`device approve`/`reject`).
    pub devices_pending: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentLinkView {
    pub address: String,
    /// Connecting, Up, Degraded or Failed.
    pub health: String,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub connected_since: Option<UnixMillis>,
}

/// An account as the API shows it: never its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountView {
    pub name: String,
    pub role: Role,
    pub created: UnixMillis,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView {
            name: a.name.clone(),
            role: a.role,
            created: a.created,
        }
    }
}

//! Operations on the server and its tree, accounts, events, virtual servers, notification
//! channels, groups and devices. Group paths (`Managed devices/Paris`) hold slashes, so they
//! travel in the query or the body, never in the path.

use axum::http::{Method, StatusCode};

use super::{BASE, Operation, Page, schema};
use crate::model::{EventKind, Role, Severity};
use crate::wire::msg::{
    AdminRequest, DeviceCursor, DeviceRequest, GroupRequest, NotifyChannelSpec, NotifyRequest,
    RightsChange, Secret, VirtualServerRequest,
};

pub(super) const STATUS: Operation = Operation {
    path: "/status",
    id: "serverStatus",
    tag: "servers",
    summary: "The server: its version, address, parent link and device counts",
    response: "Status",
    build: |_| Ok(AdminRequest::ServerStatus),
    ..BASE
};

pub(super) const SERVERS: Operation = Operation {
    path: "/servers",
    id: "listServers",
    tag: "servers",
    summary: "A page of the tree's Administration Servers, in tree order, with status, devices and last connection",
    query: Some(schema::<Page>),
    response: "Servers",
    build: |input| {
        let page: Page = input.query()?;
        Ok(AdminRequest::ServerList {
            limit: page.limit(),
            after: page.after,
        })
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSecondary {
    name: String,
    /// The administration group it is placed in.
    group: String,
    /// Its certificate, PEM.
    cert_pem: String,
    /// `host:port` of a secondary this server connects to (one that may not connect out).
    passive: Option<String>,
}

pub(super) const ADD_SECONDARY: Operation = Operation {
    method: Method::POST,
    path: "/servers",
    id: "addSecondary",
    tag: "servers",
    summary: "Register a secondary Administration Server",
    body: Some(schema::<NewSecondary>),
    status: StatusCode::CREATED,
    build: |input| {
        let b: NewSecondary = input.body()?;
        Ok(AdminRequest::AddSecondary {
            name: b.name,
            group: b.group,
            cert_pem: b.cert_pem,
            passive: b.passive,
        })
    },
    ..BASE
};

pub(super) const REMOVE_SECONDARY: Operation = Operation {
    method: Method::DELETE,
    path: "/servers/{name}",
    id: "removeSecondary",
    tag: "servers",
    summary: "Remove a secondary's registration",
    build: |input| {
        Ok(AdminRequest::RemoveSecondary {
            name: input.path("name")?,
        })
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Revocation {
    /// What the certificate is called in events.
    name: String,
    cert_pem: String,
    reason: String,
}

pub(super) const REVOKE: Operation = Operation {
    method: Method::POST,
    path: "/revocations",
    id: "revokeCertificate",
    tag: "servers",
    summary: "Revoke a server certificate in this server's whole subtree",
    body: Some(schema::<Revocation>),
    build: |input| {
        let b: Revocation = input.body()?;
        Ok(AdminRequest::RevokeCertificate {
            name: b.name,
            cert_pem: b.cert_pem,
            reason: b.reason,
        })
    },
    ..BASE
};

/// Which events: every field left out matches all.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    /// Events of the server at this path below the one asked (`branch-1/branch-1a`; empty:
    /// the server asked).
    server: Option<String>,
    /// With `server`: and of every server below it.
    #[serde(default)]
    subtree: bool,
    kind: Option<EventKind>,
    /// This severity and worse.
    severity: Option<Severity>,
    /// At or after this time (milliseconds since the Unix epoch).
    since: Option<i64>,
    /// The sequence number the last page's `next` gave; without it, the newest page.
    after: Option<u64>,
    limit: Option<u32>,
}

pub(super) const EVENTS: Operation = Operation {
    path: "/events",
    id: "listEvents",
    tag: "events",
    summary: "A page of the events of the server and the servers below it, oldest first",
    query: Some(schema::<EventQuery>),
    response: "Events",
    build: |input| {
        let q: EventQuery = input.query()?;
        Ok(AdminRequest::EventList {
            after: q.after,
            limit: q.limit.unwrap_or(crate::wire::msg::PAGE_MAX),
            filter: crate::model::EventFilter {
                server: q.server.map(|path| {
                    path.split('/')
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect()
                }),
                subtree: q.subtree,
                kind: q.kind,
                severity: q.severity,
                since: q.since,
            },
        })
    },
    ..BASE
};

pub(super) const ACCOUNTS: Operation = Operation {
    path: "/accounts",
    id: "listAccounts",
    tag: "accounts",
    summary: "A page of the server's accounts in name order",
    query: Some(schema::<Page>),
    response: "Accounts",
    build: |input| {
        let page: Page = input.query()?;
        Ok(AdminRequest::AccountList {
            limit: page.limit(),
            after: page.after,
        })
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAccount {
    name: String,
    password: String,
    role: Role,
}

pub(super) const ACCOUNT_CREATE: Operation = Operation {
    method: Method::POST,
    path: "/accounts",
    id: "createAccount",
    tag: "accounts",
    summary: "Create an account with a role",
    body: Some(schema::<NewAccount>),
    status: StatusCode::CREATED,
    build: |input| {
        let b: NewAccount = input.body()?;
        Ok(AdminRequest::AccountCreate {
            name: b.name,
            password: Secret(b.password),
            role: b.role,
        })
    },
    ..BASE
};

pub(super) const ACCOUNT_DELETE: Operation = Operation {
    method: Method::DELETE,
    path: "/accounts/{name}",
    id: "deleteAccount",
    tag: "accounts",
    summary: "Delete an account and end its sessions",
    build: |input| {
        Ok(AdminRequest::AccountDelete {
            name: input.path("name")?,
        })
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewPassword {
    password: String,
}

pub(super) const ACCOUNT_PASSWORD: Operation = Operation {
    method: Method::PUT,
    path: "/accounts/{name}/password",
    id: "setAccountPassword",
    tag: "accounts",
    summary: "Set an account's password (your own, or anyone's as an administrator)",
    body: Some(schema::<NewPassword>),
    build: |input| {
        let b: NewPassword = input.body()?;
        Ok(AdminRequest::AccountSetPassword {
            name: input.path("name")?,
            password: Secret(b.password),
        })
    },
    ..BASE
};

pub(super) const VSERVERS: Operation = Operation {
    path: "/virtual-servers",
    id: "listVirtualServers",
    tag: "virtual servers",
    summary: "A page of the server's virtual servers in name order",
    query: Some(schema::<Page>),
    response: "VirtualServers",
    build: |input| {
        let page: Page = input.query()?;
        Ok(AdminRequest::VirtualServer(VirtualServerRequest::List {
            limit: page.limit(),
            after: page.after,
        }))
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewVirtualServer {
    name: String,
    /// The administration group of this server it is placed in.
    group: String,
}

pub(super) const VSERVER_CREATE: Operation = Operation {
    method: Method::POST,
    path: "/virtual-servers",
    id: "createVirtualServer",
    tag: "virtual servers",
    summary: "Create a virtual server, with its own database and an enrollment token",
    body: Some(schema::<NewVirtualServer>),
    response: "VirtualServer",
    status: StatusCode::CREATED,
    build: |input| {
        let b: NewVirtualServer = input.body()?;
        Ok(AdminRequest::VirtualServer(VirtualServerRequest::Create {
            name: b.name,
            group: b.group,
        }))
    },
    ..BASE
};

pub(super) const VSERVER_ENABLE: Operation = Operation {
    method: Method::POST,
    path: "/virtual-servers/{name}/enable",
    id: "enableVirtualServer",
    tag: "virtual servers",
    summary: "Enable a virtual server",
    response: "VirtualServer",
    build: |input| {
        Ok(AdminRequest::VirtualServer(VirtualServerRequest::Enable {
            name: input.path("name")?,
        }))
    },
    ..BASE
};

pub(super) const VSERVER_DISABLE: Operation = Operation {
    method: Method::POST,
    path: "/virtual-servers/{name}/disable",
    id: "disableVirtualServer",
    tag: "virtual servers",
    summary: "Disable a virtual server: its devices and administrators are refused",
    response: "VirtualServer",
    build: |input| {
        Ok(AdminRequest::VirtualServer(VirtualServerRequest::Disable {
            name: input.path("name")?,
        }))
    },
    ..BASE
};

pub(super) const VSERVER_DELETE: Operation = Operation {
    method: Method::DELETE,
    path: "/virtual-servers/{name}",
    id: "deleteVirtualServer",
    tag: "virtual servers",
    summary: "Delete a virtual server with its database",
    build: |input| {
        Ok(AdminRequest::VirtualServer(VirtualServerRequest::Delete {
            name: input.path("name")?,
        }))
    },
    ..BASE
};

pub(super) const NOTIFY_LIST: Operation = Operation {
    path: "/notification-channels",
    id: "listNotificationChannels",
    tag: "notifications",
    summary: "A page of the notification channels (email, webhook) and how far each has delivered",
    query: Some(schema::<Page>),
    response: "NotifyChannels",
    build: |input| {
        let page: Page = input.query()?;
        Ok(AdminRequest::Notify(NotifyRequest::List {
            limit: page.limit(),
            after: page.after,
        }))
    },
    ..BASE
};

pub(super) const NOTIFY_ADD: Operation = Operation {
    method: Method::POST,
    path: "/notification-channels",
    id: "addNotificationChannel",
    tag: "notifications",
    summary: "Add an email or webhook channel",
    body: Some(schema::<NotifyChannelSpec>),
    status: StatusCode::CREATED,
    build: |input| {
        let spec: NotifyChannelSpec = input.body()?;
        Ok(AdminRequest::Notify(NotifyRequest::Add(Box::new(spec))))
    },
    ..BASE
};

pub(super) const NOTIFY_REMOVE: Operation = Operation {
    method: Method::DELETE,
    path: "/notification-channels/{name}",
    id: "removeNotificationChannel",
    tag: "notifications",
    summary: "Remove a channel an administrator added",
    build: |input| {
        Ok(AdminRequest::Notify(NotifyRequest::Remove {
            name: input.path("name")?,
        }))
    },
    ..BASE
};

pub(super) const NOTIFY_TEST: Operation = Operation {
    method: Method::POST,
    path: "/notification-channels/{name}/test",
    id: "testNotificationChannel",
    tag: "notifications",
    summary: "Send a test message through the channel now",
    build: |input| {
        Ok(AdminRequest::Notify(NotifyRequest::Test {
            name: input.path("name")?,
        }))
    },
    ..BASE
};

pub(super) const GROUPS: Operation = Operation {
    path: "/groups",
    id: "listGroups",
    tag: "groups",
    summary: "A page of the administration groups in tree order",
    query: Some(schema::<Page>),
    response: "Groups",
    build: |input| {
        let page: Page = input.query()?;
        Ok(AdminRequest::Group(GroupRequest::List {
            limit: page.limit(),
            after: page.after,
        }))
    },
    ..BASE
};

/// A group by its path: `Managed devices/Paris`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupPath {
    path: String,
}

pub(super) const GROUP_CREATE: Operation = Operation {
    method: Method::POST,
    path: "/groups",
    id: "createGroup",
    tag: "groups",
    summary: "Create a group (its parent must exist)",
    body: Some(schema::<GroupPath>),
    status: StatusCode::CREATED,
    build: |input| {
        let b: GroupPath = input.body()?;
        Ok(AdminRequest::Group(GroupRequest::Create { path: b.path }))
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupRename {
    path: String,
    new_name: String,
}

pub(super) const GROUP_RENAME: Operation = Operation {
    method: Method::POST,
    path: "/groups/rename",
    id: "renameGroup",
    tag: "groups",
    summary: "Rename a group",
    body: Some(schema::<GroupRename>),
    build: |input| {
        let b: GroupRename = input.body()?;
        Ok(AdminRequest::Group(GroupRequest::Rename {
            path: b.path,
            new_name: b.new_name,
        }))
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupMove {
    path: String,
    new_parent: String,
}

pub(super) const GROUP_MOVE: Operation = Operation {
    method: Method::POST,
    path: "/groups/move",
    id: "moveGroup",
    tag: "groups",
    summary: "Move a group under another",
    body: Some(schema::<GroupMove>),
    build: |input| {
        let b: GroupMove = input.body()?;
        Ok(AdminRequest::Group(GroupRequest::Move {
            path: b.path,
            new_parent: b.new_parent,
        }))
    },
    ..BASE
};

pub(super) const GROUP_DELETE: Operation = Operation {
    method: Method::DELETE,
    path: "/groups",
    id: "deleteGroup",
    tag: "groups",
    summary: "Delete an empty group",
    query: Some(schema::<GroupPath>),
    build: |input| {
        let q: GroupPath = input.query()?;
        Ok(AdminRequest::Group(GroupRequest::Delete { path: q.path }))
    },
    ..BASE
};

pub(super) const GROUP_RIGHTS: Operation = Operation {
    path: "/groups/rights",
    id: "groupRights",
    tag: "groups",
    summary: "The rights lists that apply to a group, from the root down, and yours",
    query: Some(schema::<GroupPath>),
    response: "Rights",
    build: |input| {
        let q: GroupPath = input.query()?;
        Ok(AdminRequest::Group(GroupRequest::Rights {
            path: q.path,
            change: None,
        }))
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupRightsChange {
    path: String,
    change: RightsChange,
}

pub(super) const GROUP_RIGHTS_SET: Operation = Operation {
    method: Method::PUT,
    path: "/groups/rights",
    id: "setGroupRights",
    tag: "groups",
    summary: "Set one entry of a group's rights list (an empty grant removes it)",
    body: Some(schema::<GroupRightsChange>),
    response: "Rights",
    build: |input| {
        let b: GroupRightsChange = input.body()?;
        Ok(AdminRequest::Group(GroupRequest::Rights {
            path: b.path,
            change: Some(b.change),
        }))
    },
    ..BASE
};

/// A page of devices in (name, id) order.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceQuery {
    /// The devices of this group only.
    group: Option<String>,
    /// With `group`: and of its subgroups.
    #[serde(default)]
    recursive: bool,
    /// The `next` of the last page: its `name` and `id`.
    after_name: Option<String>,
    after_id: Option<String>,
    limit: Option<u32>,
}

pub(super) const DEVICES: Operation = Operation {
    path: "/devices",
    id: "listDevices",
    tag: "devices",
    summary: "A page of the server's managed devices in name order",
    query: Some(schema::<DeviceQuery>),
    response: "Devices",
    build: |input| {
        let q: DeviceQuery = input.query()?;
        let after = match (q.after_name, q.after_id) {
            (Some(name), Some(id)) => Some(DeviceCursor { name, id }),
            (None, None) => None,
            _ => {
                return Err(super::ApiError::bad_request(
                    "invalid_query",
                    "give after_name and after_id together (the `next` of the last page)",
                ));
            }
        };
        Ok(AdminRequest::Device(DeviceRequest::List {
            group: q.group,
            recursive: q.recursive,
            after,
            limit: q.limit.unwrap_or(crate::wire::msg::DEVICE_PAGE_MAX),
        }))
    },
    ..BASE
};

pub(super) const DEVICE_SHOW: Operation = Operation {
    path: "/devices/{device}",
    id: "showDevice",
    tag: "devices",
    summary: "One device, by its name or id (or a unique prefix of the id)",
    response: "Devices",
    build: |input| {
        Ok(AdminRequest::Device(DeviceRequest::Show {
            device: input.path("device")?,
        }))
    },
    ..BASE
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceMove {
    group: String,
}

pub(super) const DEVICE_MOVE: Operation = Operation {
    method: Method::POST,
    path: "/devices/{device}/move",
    id: "moveDevice",
    tag: "devices",
    summary: "Move a device to another group",
    body: Some(schema::<DeviceMove>),
    build: |input| {
        let b: DeviceMove = input.body()?;
        Ok(AdminRequest::Device(DeviceRequest::Move {
            device: input.path("device")?,
            group: b.group,
        }))
    },
    ..BASE
};

#[derive(Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceTags {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

pub(super) const DEVICE_TAG: Operation = Operation {
    method: Method::POST,
    path: "/devices/{device}/tags",
    id: "tagDevice",
    tag: "devices",
    summary: "Add and remove a device's tags",
    body: Some(schema::<DeviceTags>),
    build: |input| {
        let b: DeviceTags = input.body()?;
        Ok(AdminRequest::Device(DeviceRequest::Tag {
            device: input.path("device")?,
            add: b.add,
            remove: b.remove,
        }))
    },
    ..BASE
};

#[derive(Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceApproval {
    /// The group it joins; by default the one it asked for.
    group: Option<String>,
}

pub(super) const DEVICE_APPROVE: Operation = Operation {
    method: Method::POST,
    path: "/devices/{device}/approve",
    id: "approveDevice",
    tag: "devices",
    summary: "Approve a pending device",
    body: Some(schema::<DeviceApproval>),
    build: |input| {
        let b: DeviceApproval = input.optional_body()?;
        Ok(AdminRequest::Device(DeviceRequest::Approve {
            device: input.path("device")?,
            group: b.group,
        }))
    },
    ..BASE
};

pub(super) const DEVICE_REJECT: Operation = Operation {
    method: Method::POST,
    path: "/devices/{device}/reject",
    id: "rejectDevice",
    tag: "devices",
    summary: "Reject a pending device",
    build: |input| {
        Ok(AdminRequest::Device(DeviceRequest::Reject {
            device: input.path("device")?,
        }))
    },
    ..BASE
};

pub(super) const DEVICE_DELETE: Operation = Operation {
    method: Method::DELETE,
    path: "/devices/{device}",
    id: "deleteDevice",
    tag: "devices",
    summary: "Delete a device's registration",
    build: |input| {
        Ok(AdminRequest::Device(DeviceRequest::Delete {
            device: input.path("device")?,
        }))
    },
    ..BASE
};

//! The administrators' requests and the servers' answers the seeds are made of: one of each
//! kind, with real values (`samples`).

use super::samples::{self as s, NOW};
use crate::model::notify::{ChannelFilter, ChannelTarget};
use crate::model::task::DeviceState;
use crate::model::{EventKind, Role, Severity};
use crate::wire::msg::{
    AdminRequest, AdminResponse, DeviceCursor, DeviceRequest, ErrorKind, GroupRequest,
    NotifyChannelSpec, NotifyChannelView, NotifyRequest, ScopeSpec, Secret, TaskRequest,
    VirtualServerRequest,
};

pub(super) fn admin_requests() -> Vec<AdminRequest> {
    let name = || "branch-1".to_string();
    let task = || "Patch Tuesday".to_string();
    let device = || "ws-0001".to_string();
    let mut requests = vec![
        AdminRequest::Login {
            user: "admin".into(),
            password: Secret("correct horse battery".into()),
        },
        AdminRequest::Logout,
        AdminRequest::ServerStatus,
        AdminRequest::ServerList {
            after: Some("primary/branch-1".into()),
            limit: 500,
        },
        AdminRequest::AddSecondary {
            name: name(),
            group: "Managed devices".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            passive: Some("dmz.example.org:13000".into()),
        },
        AdminRequest::RemoveSecondary { name: name() },
        AdminRequest::RevokeCertificate {
            name: name(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            reason: "key lost".into(),
        },
        AdminRequest::EventList {
            after: Some(12),
            limit: 100,
            filter: crate::model::EventFilter {
                server: Some(vec!["branch-1".into()]),
                subtree: true,
                kind: Some(crate::model::EventKind::RunFinished),
                severity: Some(crate::model::Severity::Warning),
                since: Some(1_700_000_000_000),
            },
        },
        AdminRequest::AccountList {
            after: Some("admin".into()),
            limit: 100,
        },
        AdminRequest::AccountCreate {
            name: "ops".into(),
            password: Secret("another long password".into()),
            role: Role::Operator,
        },
        AdminRequest::AccountDelete { name: "ops".into() },
        AdminRequest::AccountSetPassword {
            name: "ops".into(),
            password: Secret("a third long password".into()),
        },
    ];
    let path = || "Managed devices/Branch".to_string();
    requests.extend(
        [
            GroupRequest::List {
                after: Some(path()),
                limit: 1000,
            },
            GroupRequest::Create { path: path() },
            GroupRequest::Rename {
                path: path(),
                new_name: "Branches".into(),
            },
            GroupRequest::Move {
                path: path(),
                new_parent: "Managed devices/Europe".into(),
            },
            GroupRequest::Delete { path: path() },
            GroupRequest::Rights {
                path: path(),
                change: None,
            },
        ]
        .map(AdminRequest::Group),
    );
    requests.extend(
        [
            DeviceRequest::List {
                group: Some(path()),
                recursive: true,
                after: Some(DeviceCursor {
                    name: device(),
                    id: "7f3c9a20-ws-0001".into(),
                }),
                limit: 2000,
            },
            DeviceRequest::Show { device: device() },
            DeviceRequest::Move {
                device: device(),
                group: path(),
            },
            DeviceRequest::Tag {
                device: device(),
                add: vec!["finance".into()],
                remove: vec!["floor-2".into()],
            },
            DeviceRequest::Approve {
                device: device(),
                group: Some(path()),
            },
            DeviceRequest::Reject { device: device() },
            DeviceRequest::Delete { device: device() },
        ]
        .map(AdminRequest::Device),
    );
    let mut tasks = vec![
        TaskRequest::List {
            after: Some(3),
            limit: 50,
        },
        TaskRequest::Show { task: task() },
    ];
    tasks.extend(
        s::task_specs()
            .into_iter()
            .map(|spec| TaskRequest::Create(Box::new(spec))),
    );
    tasks.extend([
        TaskRequest::Edit {
            task: task(),
            changes: Box::new(s::task_changes()),
        },
        TaskRequest::Delete {
            task: task(),
            comment: Some("replaced by Weekly scan".into()),
        },
        TaskRequest::History { task: task() },
        TaskRequest::Diff {
            task: task(),
            from: 1,
            to: Some(3),
        },
        TaskRequest::Rollback {
            task: task(),
            revision: 2,
            comment: None,
        },
        TaskRequest::ListDeleted,
        TaskRequest::Restore {
            task: "#7".into(),
            comment: None,
        },
        TaskRequest::Credentials(Box::new(crate::wire::msg::CredentialsChange {
            account: "svc-backup".into(),
            new_password: crate::wire::msg::Secret("n3w".into()),
            previous_password: Some(crate::wire::msg::Secret("old".into())),
            choices: vec![
                (
                    "Nightly".into(),
                    crate::wire::msg::CredentialChoice::ForceNewPassword,
                ),
                (
                    "#14".into(),
                    crate::wire::msg::CredentialChoice::DeleteCredentials,
                ),
                ("15".into(), crate::wire::msg::CredentialChoice::NoAction),
            ],
            comment: Some("rotation".into()),
        })),
        TaskRequest::Start {
            task: task(),
            devices: Some(vec!["10.1.0.5".into(), "files".into()]),
        },
        TaskRequest::Rights {
            task: task(),
            change: Some(rights_change()),
        },
        TaskRequest::Stop { task: task() },
        TaskRequest::Pause { task: task() },
        TaskRequest::Resume { task: task() },
        TaskRequest::Export { task: task() },
        TaskRequest::Import {
            file: b"canopy-task-export 1\nsha256 00\nname = \"x\"\n".to_vec(),
            commit: true,
            scope: Some(ScopeSpec::Group {
                path: "Managed devices".into(),
                include_subgroups: true,
                include_secondaries: false,
            }),
        },
        TaskRequest::Copy {
            task: task(),
            name: Some("Scan (1)".into()),
        },
        TaskRequest::Results {
            task: task(),
            run: Some(9),
            state: Some(DeviceState::Failed),
            details: true,
            server: Some("branch-1/branch-1a".into()),
            after: Some("d-0001".into()),
            limit: 100,
        },
        TaskRequest::Stats {
            task: task(),
            run: None,
        },
    ]);
    requests.extend(tasks.into_iter().map(AdminRequest::Task));
    let vserver = || "tenant-a".to_string();
    requests.extend(
        [
            VirtualServerRequest::List {
                after: None,
                limit: 10_000,
            },
            VirtualServerRequest::Create {
                name: vserver(),
                group: "Managed devices".into(),
            },
            VirtualServerRequest::Enable { name: vserver() },
            VirtualServerRequest::Disable { name: vserver() },
            VirtualServerRequest::Delete { name: vserver() },
        ]
        .map(AdminRequest::VirtualServer),
    );
    requests.extend(
        [
            NotifyRequest::List {
                after: Some("ops-mail".into()),
                limit: 100,
            },
            NotifyRequest::Add(Box::new(NotifyChannelSpec {
                name: "ops-hook".into(),
                target: ChannelTarget::Webhook {
                    url: "https://hooks.example.com/canopy".into(),
                },
                filter: ChannelFilter::default(),
                secret: Some(Secret("hook-secret".into())),
                ca_pem: None,
            })),
            NotifyRequest::Add(Box::new(NotifyChannelSpec {
                name: "ops-mail".into(),
                target: ChannelTarget::Email {
                    to: vec!["ops@example.com".into()],
                },
                filter: ChannelFilter {
                    kinds: vec![EventKind::DeviceResult],
                    min_severity: Severity::Warning,
                },
                secret: None,
                ca_pem: None,
            })),
            NotifyRequest::Remove {
                name: "ops-hook".into(),
            },
            NotifyRequest::Test {
                name: "ops-mail".into(),
            },
        ]
        .map(AdminRequest::Notify),
    );
    requests
}

fn rights_change() -> crate::wire::msg::RightsChange {
    use crate::model::rights::{Grant, Principal, Rights};
    crate::wire::msg::RightsChange {
        principal: Principal::Account("paris-op".into()),
        grant: Grant {
            allow: Rights::READ.with(Rights::EXECUTE),
            deny: Rights::MODIFY,
        },
    }
}

pub(super) fn admin_responses() -> Vec<AdminResponse> {
    vec![
        AdminResponse::Done {
            message: "group created".into(),
        },
        AdminResponse::Error {
            kind: ErrorKind::Forbidden,
            message: "an auditor may not do this".into(),
        },
        AdminResponse::LoggedIn {
            token: Secret("0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
            role: Role::Administrator,
            expires: NOW + 3_600_000,
        },
        AdminResponse::Status(s::status()),
        AdminResponse::Servers {
            servers: s::server_rows(),
            next: Some("primary/branch-1/branch-1a".into()),
        },
        AdminResponse::Events {
            events: s::events(),
            next: Some(13),
        },
        AdminResponse::Accounts {
            accounts: s::account_views(),
            next: None,
        },
        AdminResponse::Groups {
            groups: s::group_views(),
            next: Some("Managed devices/Branch".into()),
        },
        AdminResponse::Devices {
            devices: s::device_views(),
            next: None,
        },
        AdminResponse::Tasks {
            tasks: vec![s::task_view()],
            next: Some(1),
        },
        AdminResponse::Task(Box::new(s::task_view())),
        AdminResponse::TaskStarted {
            run: s::run_view(),
            skipped: vec!["ws-0002: application not running".into()],
        },
        AdminResponse::TaskResults {
            run: s::run_view(),
            records: s::records(),
            next: Some("d-0002".into()),
        },
        AdminResponse::TaskStats(s::run_view()),
        AdminResponse::VirtualServers {
            virtual_servers: vec![s::vserver()],
            next: Some("tenant-a".into()),
        },
        AdminResponse::VirtualServer(Box::new(s::vserver())),
        AdminResponse::Exported {
            file: "canopy-task-export 1\nsha256 00\nname = \"Scan\"\n".into(),
            file_name: "Scan.canopy-task".into(),
        },
        AdminResponse::Imported(Box::new(crate::wire::msg::ImportView {
            name: "Scan (1)".into(),
            task_type: s::task_view().task_type,
            application: "Canopy agent".into(),
            schedule: crate::model::schedule::Schedule::Manually,
            schedule_options: crate::model::schedule::ScheduleOptions::default(),
            account: Some("svc-scan".into()),
            exported_from: "primary".into(),
            exported_at: "2026-11-30 12:00:00 UTC".into(),
            warnings: vec!["an account password must be set".into()],
            created: Some(Box::new(s::task_view())),
        })),
        AdminResponse::Credentials(s::credential_results()),
        AdminResponse::Rights(Box::new(crate::wire::msg::RightsView {
            object: "task \"Patch\"".into(),
            follows_group: Some("Managed devices/Paris".into()),
            lists: vec![(
                "Managed devices".into(),
                vec![(rights_change().principal, rights_change().grant)],
            )],
            yours: crate::model::rights::Rights::READ,
        })),
        AdminResponse::NotifyChannels {
            channels: vec![NotifyChannelView {
                name: "ops-hook".into(),
                target: ChannelTarget::Webhook {
                    url: "https://hooks.example.com/canopy".into(),
                },
                filter: ChannelFilter::default(),
                source: "admin".into(),
                cursor: 120,
                behind: 3,
                pending: 2,
                last_delivery: Some(NOW - 60_000),
                last_error: Some("HTTP 500".into()),
                next_retry: Some(NOW + 4_000),
                skipped: 0,
            }],
            next: None,
        },
    ]
}

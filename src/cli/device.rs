//! `canopy device ...`: the managed devices of the server.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;

use super::{call, print_done, print_json, table};
use crate::model::device::DeviceView;
use crate::model::format_time;
use crate::wire::msg::{AdminRequest, AdminResponse, DeviceRequest};

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Devices of the server, or of one group (quote paths: "Managed devices/Branch").
    List {
        #[arg(long)]
        group: Option<String>,
        /// With --group: its subgroups' devices too.
        #[arg(long)]
        recursive: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every property of one device (by name, id or id prefix).
    Show {
        device: String,
        #[arg(long)]
        json: bool,
    },
    Move {
        device: String,
        #[arg(long)]
        group: String,
    },
    /// Add or remove tags.
    Tag {
        device: String,
        #[arg(long)]
        add: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Approve a pending device (optionally into a group).
    Approve {
        device: String,
        #[arg(long)]
        group: Option<String>,
    },
    Reject {
        device: String,
    },
    Delete {
        device: String,
    },
}

pub async fn run(session: &Path, cmd: DeviceCommand) -> anyhow::Result<()> {
    let request = match cmd {
        DeviceCommand::List {
            group,
            recursive,
            json,
        } => {
            let client = super::connect(session).await?;
            let devices = client.devices(group, recursive).await;
            client.close().await;
            let devices = devices?;
            if json {
                return print_json(&devices);
            }
            crate::cli::table::show(&list_table(&devices));
            return Ok(());
        }
        DeviceCommand::Show { device, json } => {
            let devices = devices(session, DeviceRequest::Show { device }).await?;
            if json {
                return print_json(&devices.first());
            }
            for d in &devices {
                crate::cli::table::show(&show(d));
            }
            return Ok(());
        }
        DeviceCommand::Move { device, group } => DeviceRequest::Move { device, group },
        DeviceCommand::Tag {
            device,
            add,
            remove,
        } => DeviceRequest::Tag {
            device,
            add,
            remove,
        },
        DeviceCommand::Approve { device, group } => DeviceRequest::Approve { device, group },
        DeviceCommand::Reject { device } => DeviceRequest::Reject { device },
        DeviceCommand::Delete { device } => DeviceRequest::Delete { device },
    };
    print_done(call(session, AdminRequest::Device(request)).await?)
}

async fn devices(session: &Path, request: DeviceRequest) -> anyhow::Result<Vec<DeviceView>> {
    match call(session, AdminRequest::Device(request)).await? {
        AdminResponse::Devices { devices, .. } => Ok(devices),
        _ => bail!("unexpected answer from the server"),
    }
}

fn list_table(devices: &[DeviceView]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.id.chars().take(8).collect(),
                d.group.clone(),
                d.enrollment.as_str().to_string(),
                if d.connected {
                    "yes".into()
                } else {
                    "no".into()
                },
                d.os.clone(),
                d.addresses.join(","),
                d.last_seen
                    .map(format_time)
                    .unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    let connected = devices.iter().filter(|d| d.connected).count();
    format!(
        "{}{} devices, {connected} connected\n",
        table::render(
            &[
                "DEVICE",
                "ID",
                "GROUP",
                "ENROLLMENT",
                "CONNECTED",
                "OS",
                "ADDRESSES",
                "LAST SEEN"
            ],
            &rows
        ),
        devices.len()
    )
}

fn show(d: &DeviceView) -> String {
    let apps: Vec<String> = d
        .applications
        .iter()
        .map(|a| {
            format!(
                "{} ({})",
                a.name,
                if a.running { "running" } else { "stopped" }
            )
        })
        .collect();
    let rows = [
        ("device", d.name.clone()),
        ("id", d.id.clone()),
        ("group", d.group.clone()),
        ("enrollment", d.enrollment.as_str().to_string()),
        (
            "connected",
            if d.connected { "yes" } else { "no" }.to_string(),
        ),
        ("dns name", d.dns_name.clone()),
        ("addresses", d.addresses.join(", ")),
        ("os", d.os.clone()),
        ("agent", d.agent_version.clone()),
        ("time zone", d.time_zone.clone()),
        ("tags", d.tags.join(", ")),
        ("applications", apps.join(", ")),
        (
            "last seen",
            d.last_seen
                .map(format_time)
                .unwrap_or_else(|| "never".into()),
        ),
        ("fingerprint", d.fingerprint.clone()),
    ];
    super::table::fields(&rows)
}

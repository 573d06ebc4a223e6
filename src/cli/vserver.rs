//! `canopy vserver ...`: virtual servers of the server you are logged in to (or of the one
//! `--at` names). A virtual server is a tenant: its own accounts, groups, devices and tasks,
//! hosted by a physical server and shown below it in `server list`.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;

use super::client::AdminClient;
use super::{connect, print_done, print_json, table};
use crate::model::format_time;
use crate::wire::msg::{AdminRequest, AdminResponse, VirtualServerRequest, VirtualServerView};

#[derive(Subcommand, Debug)]
pub enum VserverCommand {
    /// The server's virtual servers.
    List {
        /// Print JSON instead of a table (it includes the enrollment tokens).
        #[arg(long)]
        json: bool,
    },
    /// Create a virtual server, with its own database and an enrollment token for its
    /// devices; prints how agents and administrators reach it.
    Create {
        /// Its name: devices and administrators reach it at `host:port/NAME`.
        name: String,
        /// The administration group of this server it is placed in.
        #[arg(long, default_value = "Managed devices")]
        group: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Let a disabled virtual server's devices and administrators in again.
    Enable {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Refuse a virtual server's devices and administrators until it is enabled again.
    Disable {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a virtual server with its database.
    Delete { name: String },
}

pub async fn run(session_path: &Path, cmd: VserverCommand) -> anyhow::Result<()> {
    let mut client = connect(session_path).await?;
    let result = run_on(&mut client, cmd).await;
    client.close().await;
    result
}

async fn run_on(client: &mut AdminClient, cmd: VserverCommand) -> anyhow::Result<()> {
    let (request, json) = match cmd {
        VserverCommand::List { json } => {
            let views = client.virtual_servers().await?;
            if json {
                return print_json(&views);
            }
            crate::cli::table::show(&list_text(&views));
            return Ok(());
        }
        VserverCommand::Delete { name } => {
            let request = AdminRequest::VirtualServer(VirtualServerRequest::Delete { name });
            return print_done(client.call(request).await?);
        }
        VserverCommand::Create { name, group, json } => {
            let request = AdminRequest::VirtualServer(VirtualServerRequest::Create { name, group });
            let view = one(client.call(request).await?)?;
            if json {
                return print_json(&view);
            }
            let address = host_address(client).await;
            crate::cli::table::show(&created_text(&view, &address));
            return Ok(());
        }
        VserverCommand::Enable { name, json } => (VirtualServerRequest::Enable { name }, json),
        VserverCommand::Disable { name, json } => (VirtualServerRequest::Disable { name }, json),
    };
    let view = one(client.call(AdminRequest::VirtualServer(request)).await?)?;
    if json {
        return print_json(&view);
    }
    crate::cli::table::show(&view_text(&view));
    Ok(())
}

fn one(response: AdminResponse) -> anyhow::Result<VirtualServerView> {
    match response {
        AdminResponse::VirtualServer(view) => Ok(*view),
        _ => bail!("unexpected answer from the server"),
    }
}

/// The address of the server hosting the virtual server, for the agents' config: the one
/// logged in to, or with `--at` the listening address its parent recorded for it.
async fn host_address(client: &mut AdminClient) -> String {
    let Some(at) = client.forwarded_to().map(str::to_string) else {
        return client.server_addr().to_string();
    };
    // `server list` of the server logged in to, not of the one `--at` names.
    client.forward_to(None);
    let rows = client.servers().await;
    client.forward_to(Some(at.clone()));
    let address = match rows {
        Ok(rows) => rows
            .into_iter()
            .find(|r| r.path.split_once('/').map(|(_, below)| below) == Some(at.as_str()))
            .and_then(|r| r.address),
        _ => None,
    };
    address.unwrap_or_else(|| format!("<address of {at}>"))
}

fn state(enabled: bool) -> &'static str {
    if enabled { "enabled" } else { "disabled" }
}

fn list_text(views: &[VirtualServerView]) -> String {
    if views.is_empty() {
        return "no virtual servers\n".into();
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.group.clone(),
                state(v.enabled).into(),
                v.devices.to_string(),
                v.devices_connected.to_string(),
                format_time(v.created),
                v.data.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "GROUP",
            "STATE",
            "DEVICES",
            "CONNECTED",
            "CREATED",
            "DATA",
        ],
        &rows,
    )
}

/// One virtual server's properties, without its enrollment token.
fn view_rows(v: &VirtualServerView) -> Vec<(&'static str, String)> {
    vec![
        ("virtual server", v.name.clone()),
        ("group", v.group.clone()),
        ("state", state(v.enabled).into()),
        (
            "devices",
            format!(
                "{} registered, {} connected",
                v.devices, v.devices_connected
            ),
        ),
        ("created", format_time(v.created)),
        ("data", v.data.clone()),
    ]
}

fn view_text(v: &VirtualServerView) -> String {
    table::fields(&view_rows(v))
}

/// The new virtual server, its token, and how its devices and administrators reach it.
fn created_text(v: &VirtualServerView, host: &str) -> String {
    let token = &v.enrollment_token.0;
    let name = &v.name;
    let mut rows = view_rows(v);
    rows.push(("enrollment token", token.clone()));
    format!(
        "{}\n\
         Devices join it with these lines in the agent's config:\n  \
         server = \"{host}/{name}\"\n  token = \"{token}\"\n\n\
         It has no accounts yet; create its first administrator with\n  \
         canopy --at {name} account create --user NAME --role administrator\n\
         then log in to it with\n  \
         canopy login --server {host}/{name} --user NAME\n",
        table::fields(&rows)
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::wire::msg::Secret;

    fn parse(line: &str) -> Result<VserverCommand, clap::Error> {
        let argv = ["canopy", "vserver"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Vserver(cmd) => Ok(cmd),
            other => panic!("not a vserver command: {other:?}"),
        }
    }

    fn view() -> VirtualServerView {
        VirtualServerView {
            name: "tenant-a".into(),
            group: "Managed devices".into(),
            enabled: true,
            created: 0,
            devices: 3,
            devices_connected: 2,
            enrollment_token: Secret("tok-123".into()),
            data: "/var/lib/canopy/vservers/tenant-a.redb".into(),
        }
    }

    #[test]
    fn the_commands_parse() {
        assert!(matches!(
            parse("create tenant-a --group Managed").unwrap(),
            VserverCommand::Create { name, group, json: false } if name == "tenant-a" && group == "Managed"
        ));
        assert!(matches!(
            parse("create tenant-a").unwrap(),
            VserverCommand::Create { group, .. } if group == "Managed devices"
        ));
        assert!(matches!(
            parse("list --json").unwrap(),
            VserverCommand::List { json: true }
        ));
        assert!(
            matches!(parse("disable t").unwrap(), VserverCommand::Disable { name, .. } if name == "t")
        );
        assert!(parse("delete").is_err());
    }

    #[test]
    fn the_texts() {
        let list = list_text(&[view()]);
        assert!(
            list.starts_with("NAME      GROUP            STATE    DEVICES  CONNECTED"),
            "{list}"
        );
        assert!(!list.contains("tok-123"), "{list}");
        assert_eq!(list_text(&[]), "no virtual servers\n");
        assert!(!view_text(&view()).contains("tok-123"));
        let created = created_text(&view(), "10.0.0.1:13000");
        for expected in [
            "enrollment token  tok-123\n",
            "  server = \"10.0.0.1:13000/tenant-a\"\n",
            "  token = \"tok-123\"\n",
            "canopy --at tenant-a account create --user NAME --role administrator\n",
            "canopy login --server 10.0.0.1:13000/tenant-a --user NAME\n",
        ] {
            assert!(created.contains(expected), "{expected:?} not in\n{created}");
        }
    }
}

//! `canopy notify ...`: the notification channels (email, webhook) of the server you are
//! logged in to (or of the one `--at` names). Administrators only. A webhook's secret is
//! read from a file and sent once, in the request that adds the channel; nothing prints it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use super::client::AdminClient;
use super::{connect, print_done, print_json, table};
use crate::model::format_time;
use crate::model::notify::{ChannelFilter, ChannelTarget};
use crate::wire::msg::{
    AdminRequest, AdminResponse, NotifyChannelSpec, NotifyChannelView, NotifyRequest, PAGE_MAX,
    Secret,
};

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Every channel: from the config and added here, with where each is in the event log.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add an email channel: it sends through the SMTP relay of the server's config.
    AddEmail {
        name: String,
        /// A recipient; repeat for more.
        #[arg(long, required = true)]
        to: Vec<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Add a webhook: an HTTPS POST of each batch of events, signed with a shared secret.
    AddWebhook {
        name: String,
        /// An https:// URL.
        #[arg(long)]
        url: String,
        /// A file holding the shared secret (its first line).
        #[arg(long)]
        secret_file: PathBuf,
        /// The CA (PEM) the receiver's certificate must chain to; default: the system's roots.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Remove a channel added with `notify add-*` (the config's stay).
    Remove { name: String },
    /// Send a test message through a channel now.
    Test { name: String },
}

#[derive(clap::Args, Debug)]
pub struct FilterArgs {
    /// An event kind it sends (as `event list --kind` names them); repeat for more.
    /// Default: device-result and run-finished.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// The lowest severity it sends: info (the default), warning or error.
    #[arg(long)]
    min_severity: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<ChannelFilter> {
        ChannelFilter::parse(&self.kinds, self.min_severity.as_deref())
            .map_err(|e| anyhow::anyhow!("--kind/--min-severity: {e}"))
    }
}

pub async fn run(session_path: &Path, cmd: NotifyCommand) -> anyhow::Result<()> {
    // Files are read before connecting: a wrong path fails at once.
    let request = match cmd {
        NotifyCommand::List { json } => {
            let client = connect(session_path).await?;
            let result = list(&client).await;
            client.close().await;
            let channels = result?;
            if json {
                return print_json(&channels);
            }
            table::show(&list_text(&channels));
            return Ok(());
        }
        NotifyCommand::AddEmail { name, to, filter } => spec(
            name,
            ChannelTarget::Email { to },
            filter.filter()?,
            None,
            None,
        ),
        NotifyCommand::AddWebhook {
            name,
            url,
            secret_file,
            ca_file,
            filter,
        } => {
            let text = std::fs::read_to_string(&secret_file)
                .with_context(|| format!("--secret-file {}", secret_file.display()))?;
            let secret = text.lines().next().unwrap_or_default().to_string();
            if secret.is_empty() {
                bail!("--secret-file {}: the file is empty", secret_file.display());
            }
            let ca_pem = match ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("--ca-file {}", path.display()))?,
                ),
                None => None,
            };
            let target = ChannelTarget::Webhook { url };
            spec(name, target, filter.filter()?, Some(Secret(secret)), ca_pem)
        }
        NotifyCommand::Remove { name } => NotifyRequest::Remove { name },
        NotifyCommand::Test { name } => NotifyRequest::Test { name },
    };
    let client = connect(session_path).await?;
    let result = client.call(AdminRequest::Notify(request)).await;
    client.close().await;
    print_done(result?)
}

fn spec(
    name: String,
    target: ChannelTarget,
    filter: ChannelFilter,
    secret: Option<Secret>,
    ca_pem: Option<String>,
) -> NotifyRequest {
    NotifyRequest::Add(Box::new(NotifyChannelSpec {
        name,
        target,
        filter,
        secret,
        ca_pem,
    }))
}

/// Every channel, page by page.
pub async fn list(client: &AdminClient) -> anyhow::Result<Vec<NotifyChannelView>> {
    let ask = |after, limit| AdminRequest::Notify(NotifyRequest::List { after, limit });
    let channels = client
        .pages(None, PAGE_MAX, usize::MAX, ask, |response| match response {
            AdminResponse::NotifyChannels { channels, next } => Some((channels, next)),
            _ => None,
        })
        .await?;
    Ok(channels)
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

fn list_text(channels: &[NotifyChannelView]) -> String {
    if channels.is_empty() {
        return "no notification channels\n".into();
    }
    let rows: Vec<Vec<String>> = channels
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.target.kind_name().into(),
                c.target.describe(),
                c.filter.describe(),
                c.source.clone(),
                c.cursor.to_string(),
                c.behind.to_string(),
                c.pending.to_string(),
                c.skipped.to_string(),
                or_dash(c.last_delivery.map(format_time)),
                or_dash(c.last_error.clone()),
                or_dash(c.next_retry.map(format_time)),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "KIND",
            "TARGET",
            "FILTER",
            "SOURCE",
            "CURSOR",
            "BEHIND",
            "PENDING",
            "SKIPPED",
            "LAST DELIVERY",
            "LAST ERROR",
            "NEXT RETRY",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(line: &str) -> Result<NotifyCommand, clap::Error> {
        let argv = ["canopy", "notify"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Notify(cmd) => Ok(cmd),
            other => panic!("not a notify command: {other:?}"),
        }
    }

    #[test]
    fn the_commands_parse() {
        let cmd = parse("add-email ops --to a@b.c --to d@e.f --min-severity warning").unwrap();
        let NotifyCommand::AddEmail { name, to, filter } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!((name.as_str(), to.len()), ("ops", 2));
        assert_eq!(
            filter.filter().unwrap().describe(),
            "device-result,run-finished >= warning"
        );
        assert!(parse("add-email ops").is_err(), "--to is required");
        let cmd = parse("add-webhook h --url https://x/ --secret-file s --kind login-failed");
        let Ok(NotifyCommand::AddWebhook { filter, .. }) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(filter.filter().unwrap().describe(), "login-failed >= info");
        assert!(parse("add-webhook h --url https://x/").is_err());
        assert!(matches!(parse("test h").unwrap(), NotifyCommand::Test { name } if name == "h"));
    }

    #[test]
    fn the_list_shows_progress_and_no_secret() {
        let view = NotifyChannelView {
            name: "hook".into(),
            target: ChannelTarget::Webhook {
                url: "https://127.0.0.1:8443/h".into(),
            },
            filter: ChannelFilter::default(),
            source: "admin".into(),
            cursor: 12,
            behind: 3,
            pending: 2,
            last_delivery: None,
            last_error: Some("the receiver answered HTTP 500".into()),
            next_retry: Some(0),
            skipped: 0,
        };
        let text = list_text(&[view]);
        assert!(text.starts_with("NAME  KIND     TARGET"), "{text}");
        assert!(text.contains("the receiver answered HTTP 500"), "{text}");
        assert!(text.contains("1970-01-01 00:00:00 UTC"), "{text}");
        assert_eq!(list_text(&[]), "no notification channels\n");
    }
}

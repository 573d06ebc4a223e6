//! `canopy event list`: the event log of the server you are logged in to (or of the one
//! `--at` names), which holds the events of every server below it too, each with the path
//! of the server it happened on.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::{connect, print_json, table};
use crate::model::{EventFilter, EventKind, Severity, UnixMillis};
use crate::wire::msg::{AdminRequest, AdminResponse};

/// How often `--follow` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

#[derive(Subcommand, Debug)]
pub enum EventCommand {
    /// The newest events of the whole tree below the server, oldest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only events after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        /// Only the events of this server, as the PATH column of `server list` shows it
        /// (e.g. primary/branch-1); with --subtree, of every server below it too.
        #[arg(long, value_name = "PATH")]
        server: Option<String>,
        #[arg(long, requires = "server")]
        subtree: bool,
        /// Only this kind, as the KIND column shows it (e.g. run-finished).
        #[arg(long, value_parser = EventKind::parse)]
        kind: Option<EventKind>,
        /// Only this severity and worse: info, warning or error.
        #[arg(long, value_parser = Severity::parse)]
        severity: Option<Severity>,
        /// Only events since a time: RFC 3339 (2026-11-30T08:00:00Z) or a span back from
        /// now (90m, 2h, 7d).
        #[arg(long, value_parser = parse_since)]
        since: Option<UnixMillis>,
        /// After the list, print new events as they come, until interrupted.
        #[arg(long, conflicts_with = "json")]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
}

/// A time given as RFC 3339, or as a span back from now ("90m", "2h", "7d").
fn parse_since(text: &str) -> Result<UnixMillis, String> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at.as_millisecond());
    }
    let span: jiff::Span = text.parse().map_err(|_| {
        format!("{text:?} is neither a time (2026-11-30T08:00:00Z) nor a span back (90m, 2h, 7d)")
    })?;
    let now = jiff::Zoned::now();
    let back = now
        .checked_sub(span.abs())
        .map_err(|e| format!("{text:?}: {e}"))?;
    Ok(back.timestamp().as_millisecond())
}

pub async fn run(session_path: &Path, cmd: EventCommand) -> anyhow::Result<()> {
    let EventCommand::List {
        limit,
        after,
        server,
        subtree,
        kind,
        severity,
        since,
        follow,
        json,
    } = cmd;
    let client = connect(session_path).await?;
    let asked = match client.call(AdminRequest::ServerStatus).await? {
        AdminResponse::Status(status) => status.name,
        other => bail!("unexpected answer: {other:?}"),
    };
    let server = match server {
        None => None,
        Some(path) => Some(below(&asked, &path)?),
    };
    let filter = EventFilter {
        server,
        subtree,
        kind,
        severity,
        since,
    };
    let events = client.events(after, limit, filter.clone()).await;
    let events = match events {
        Ok(events) => events,
        Err(e) => {
            client.close().await;
            return Err(e.into());
        }
    };
    if json {
        client.close().await;
        return print_json(&events);
    }
    crate::cli::table::show(&table::events(&asked, &events));
    if !follow {
        client.close().await;
        return Ok(());
    }
    let mut last = match events.last() {
        Some(e) => e.seq,
        None => newest_seq(&client).await?,
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let new = client
            .events(Some(last), crate::wire::msg::PAGE_MAX, filter.clone())
            .await
            .context("following the event log")?;
        if let Some(e) = new.last() {
            last = e.seq;
        }
        if !new.is_empty() {
            print!("{}", table::event_lines(&asked, &new));
        }
    }
    client.close().await;
    Ok(())
}

/// Where `--follow` starts when the list was empty: after the newest event of any kind.
async fn newest_seq(client: &super::client::AdminClient) -> anyhow::Result<u64> {
    let newest = client.events(None, 1, EventFilter::default()).await?;
    Ok(newest.last().map_or(0, |e| e.seq))
}

/// A PATH of `server list` as names below the server asked (`asked`, its first name).
fn below(asked: &str, path: &str) -> anyhow::Result<Vec<String>> {
    let mut names = path.split('/').filter(|n| !n.is_empty());
    match names.next() {
        Some(first) if first == asked => Ok(names.map(String::from).collect()),
        _ => bail!(
            "--server {path:?}: give the PATH as `server list` shows it, starting with {asked:?} (the server asked)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_path_starts_with_the_server_asked() {
        assert_eq!(below("primary", "primary").unwrap(), Vec::<String>::new());
        assert_eq!(
            below("primary", "primary/branch-1/branch-1a").unwrap(),
            ["branch-1", "branch-1a"]
        );
        let wrong = below("primary", "branch-1").unwrap_err().to_string();
        assert!(wrong.contains("starting with \"primary\""), "{wrong}");
    }

    #[test]
    fn since_is_a_time_or_a_span_back() {
        assert_eq!(
            parse_since("2026-11-30T08:00:00Z").unwrap(),
            1_796_025_600_000
        );
        let now = jiff::Timestamp::now().as_millisecond();
        let two_hours = parse_since("2h").unwrap();
        assert!(
            (now - 2 * 3_600_000 - two_hours).abs() < 60_000,
            "{two_hours}"
        );
        assert!(parse_since("7d").unwrap() < two_hours);
        assert!(parse_since("yesterday").unwrap_err().contains("neither"));
    }
}

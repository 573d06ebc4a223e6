//! Notification channels: where a server sends the events its administrators asked for (a
//! task's notification setting decides which device results become events; a channel
//! decides which events leave the server, by email or by webhook).

use serde::{Deserialize, Serialize};

use super::task::SealedSecret;
use super::{Event, EventKind, Severity, UnixMillis};

/// The most channels a server holds, from its config and from administrators together.
pub const MAX_CHANNELS: usize = 64;
/// The most recipients of one email channel.
pub const MAX_RECIPIENTS: usize = 100;

/// Which events a channel sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelFilter {
    /// The kinds it sends; never empty.
    pub kinds: Vec<EventKind>,
    /// The lowest severity it sends.
    pub min_severity: Severity,
}

impl Default for ChannelFilter {
    /// A task's results: each device's (as the task's notification setting asks) and each
    /// run's end.
    fn default() -> Self {
        ChannelFilter {
            kinds: vec![EventKind::DeviceResult, EventKind::RunFinished],
            min_severity: Severity::Info,
        }
    }
}

impl ChannelFilter {
    /// A filter from the words of a config or a command line: kind names as `event list`
    /// spells them (none: the default kinds) and a severity name (none: info).
    pub fn parse(kinds: &[String], min_severity: Option<&str>) -> Result<ChannelFilter, String> {
        let mut filter = ChannelFilter::default();
        if !kinds.is_empty() {
            filter.kinds = Vec::new();
            for name in kinds {
                let kind = EventKind::parse(name)?;
                if !filter.kinds.contains(&kind) {
                    filter.kinds.push(kind);
                }
            }
        }
        if let Some(name) = min_severity {
            filter.min_severity = Severity::parse(name)?;
        }
        Ok(filter)
    }

    pub fn matches(&self, event: &Event) -> bool {
        event.severity >= self.min_severity && self.kinds.contains(&event.kind)
    }

    /// `device-result,run-finished >= info`.
    pub fn describe(&self) -> String {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
        format!("{} >= {}", kinds.join(","), self.min_severity.as_str())
    }
}

/// Where a channel sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum ChannelTarget {
    /// Through the server's SMTP relay (`[notify.smtp]`) to these addresses.
    Email { to: Vec<String> },
    /// An HTTPS POST of a JSON document to this `https://` URL.
    Webhook { url: String },
}

impl ChannelTarget {
    pub fn kind_name(&self) -> &'static str {
        match self {
            ChannelTarget::Email { .. } => "email",
            ChannelTarget::Webhook { .. } => "webhook",
        }
    }

    /// The recipients or the URL, for people.
    pub fn describe(&self) -> String {
        match self {
            ChannelTarget::Email { to } => to.join(", "),
            ChannelTarget::Webhook { url } => url.clone(),
        }
    }
}

/// A channel an administrator added (`canopy notify add-*`), as the server stores it: the
/// webhook's secret sealed with the server's key, never in clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredChannel {
    pub name: String,
    pub target: ChannelTarget,
    pub filter: ChannelFilter,
    /// A webhook's shared secret, sealed.
    pub secret: Option<SealedSecret>,
    /// The CA (PEM) a webhook's server certificate must chain to; `None`: the system's roots.
    pub ca_pem: Option<String>,
    pub created: UnixMillis,
    pub created_by: String,
}

/// Where a channel is in the event log, as stored after each delivery.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ChannelCursor {
    /// The last sequence number of the log it has dealt with: delivered, or not for it.
    pub after: u64,
    /// When the receiver last accepted a batch.
    pub last_delivery: Option<UnixMillis>,
    /// Events the log's retention dropped before the channel read them, in all.
    pub skipped: u64,
}

/// Checks a channel's name: a node name's characters (it goes into a header and a file of
/// the receiver's), 1 to 64.
pub fn check_channel_name(name: &str) -> Result<(), String> {
    super::check_node_name(name)
        .map_err(|_| format!("{name:?} is not a channel name: use 1 to 64 of A-Z a-z 0-9 . _ -"))
}

/// Checks an email address as far as a server can without asking it: one `@` with
/// something on both sides, no spaces, angle brackets or control characters.
pub fn check_email_address(address: &str) -> Result<(), String> {
    let bad = address.is_empty()
        || address.len() > 254
        || address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    match address.split_once('@') {
        Some((local, domain))
            if !bad && !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(format!("{address:?} is not an email address")),
    }
}

/// Checks a webhook URL: `https://` and a host; plain `http://` is refused, since the
/// events and the signature would cross the network in clear.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!(
            "{url:?} is not an https:// URL (plain http is refused: events would travel in clear)"
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} has no host, or has spaces"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, severity: Severity) -> Event {
        Event {
            seq: 1,
            time: 0,
            severity,
            kind,
            message: String::new(),
            origin: Vec::new(),
        }
    }

    #[test]
    fn the_default_filter_takes_task_results_of_any_severity() {
        let f = ChannelFilter::default();
        assert!(f.matches(&event(EventKind::DeviceResult, Severity::Info)));
        assert!(f.matches(&event(EventKind::RunFinished, Severity::Info)));
        assert!(!f.matches(&event(EventKind::LoginFailed, Severity::Error)));
        let errors = ChannelFilter::parse(&[], Some("warning")).unwrap();
        assert!(!errors.matches(&event(EventKind::DeviceResult, Severity::Info)));
        assert!(errors.matches(&event(EventKind::DeviceResult, Severity::Error)));
        let logins = ChannelFilter::parse(&["login-failed".into()], None).unwrap();
        assert_eq!(logins.kinds, [EventKind::LoginFailed]);
        assert!(ChannelFilter::parse(&["nope".into()], None).is_err());
        assert!(ChannelFilter::parse(&[], Some("loud")).is_err());
        assert_eq!(f.describe(), "device-result,run-finished >= info");
    }

    #[test]
    fn names_addresses_and_urls_are_checked() {
        assert!(check_channel_name("ops-mail").is_ok());
        assert!(check_channel_name("a b").is_err());
        assert!(check_email_address("ops@example.com").is_ok());
        for bad in ["", "ops", "@example.com", "ops@", "a b@c", "a@b@c", "<a@b>"] {
            assert!(check_email_address(bad).is_err(), "{bad}");
        }
        assert!(check_webhook_url("https://hooks.example.com/canopy").is_ok());
        assert!(check_webhook_url("https://127.0.0.1:8443").is_ok());
        let e = check_webhook_url("http://hooks.example.com/").unwrap_err();
        assert!(e.contains("https://"), "{e}");
        assert!(check_webhook_url("https:///x").is_err());
    }
}

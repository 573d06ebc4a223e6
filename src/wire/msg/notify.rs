//! `canopy notify`: the notification channels of a physical server, from its config and
//! added by administrators.

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::model::UnixMillis;
use crate::model::notify::{ChannelFilter, ChannelTarget};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum NotifyRequest {
    /// One page of channels in name order, after the channel name `after`.
    List { after: Option<String>, limit: u32 },
    /// Adds an email channel (sent through the config's `[notify.smtp]`) or a webhook.
    Add(Box<NotifyChannelSpec>),
    /// Removes a channel an administrator added (not one of the config's).
    Remove { name: String },
    /// Sends a test message through the channel now, outside its queue; answers whether
    /// the receiver accepted it.
    Test { name: String },
}

/// A channel to add.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyChannelSpec {
    pub name: String,
    pub target: ChannelTarget,
    pub filter: ChannelFilter,
    /// A webhook's shared secret (sealed with the server's key when stored, never shown).
    pub secret: Option<Secret>,
    /// The CA (PEM) a webhook's server certificate must chain to; `None`: the system's.
    pub ca_pem: Option<String>,
}

/// A channel as `canopy notify list` shows it; never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyChannelView {
    pub name: String,
    pub target: ChannelTarget,
    pub filter: ChannelFilter,
    /// "config" or "admin".
    pub source: String,
    /// The last event of the log it has dealt with.
    pub cursor: u64,
    /// Events of the log after its cursor (matching its filter or not).
    pub behind: u64,
    /// A batch delivered but not yet accepted: its size.
    pub pending: u64,
    pub last_delivery: Option<UnixMillis>,
    pub last_error: Option<String>,
    pub next_retry: Option<UnixMillis>,
    /// Events the log's retention dropped before the channel read them.
    pub skipped: u64,
}

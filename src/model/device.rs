//! Managed devices as their server knows them.

use serde::{Deserialize, Serialize};

use super::UnixMillis;
use crate::model::Fingerprint;

/// What a device reports about itself each time it connects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceFacts {
    /// The name the device proposes for itself (its host name).
    pub display_name: String,
    pub dns_name: String,
    pub addresses: Vec<String>,
    pub os: String,
    pub agent_version: String,
    /// Tags the device comes with; administrators manage them on the server afterwards.
    pub tags: Vec<String>,
    pub applications: Vec<Application>,
    /// IANA time zone name, e.g. "Europe/Berlin": tasks run on the device's local time.
    pub time_zone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    pub running: bool,
}

/// Where a device stands in enrollment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum Enrollment {
    /// Connected without a token; waits for an administrator.
    Pending,
    Approved,
    /// Refused by an administrator; told so when it connects.
    Rejected,
}

impl Enrollment {
    pub fn as_str(self) -> &'static str {
        match self {
            Enrollment::Pending => "pending",
            Enrollment::Approved => "approved",
            Enrollment::Rejected => "rejected",
        }
    }
}

/// The server's record of one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    /// Chosen by the agent at its first start, with its key; stable for the device's life.
    pub id: String,
    /// The fingerprint of the device's certificate: the key it must always present.
    pub fingerprint: Fingerprint,
    pub name: String,
    pub enrollment: Enrollment,
    pub group_id: u64,
    pub facts: DeviceFacts,
    pub tags: Vec<String>,
    pub enrolled: UnixMillis,
    pub last_seen: Option<UnixMillis>,
}

/// A device as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub group: String,
    pub enrollment: Enrollment,
    pub connected: bool,
    pub dns_name: String,
    pub addresses: Vec<String>,
    pub os: String,
    pub agent_version: String,
    pub tags: Vec<String>,
    pub applications: Vec<Application>,
    pub time_zone: String,
    pub last_seen: Option<UnixMillis>,
    pub fingerprint: String,
}

impl DeviceView {
    pub fn of(record: &DeviceRecord, group: String, connected: bool) -> DeviceView {
        DeviceView {
            id: record.id.clone(),
            name: record.name.clone(),
            group,
            enrollment: record.enrollment,
            connected,
            dns_name: record.facts.dns_name.clone(),
            addresses: record.facts.addresses.clone(),
            os: record.facts.os.clone(),
            agent_version: record.facts.agent_version.clone(),
            tags: record.tags.clone(),
            applications: record.facts.applications.clone(),
            time_zone: record.facts.time_zone.clone(),
            last_seen: record.last_seen,
            fingerprint: record.fingerprint.to_string(),
        }
    }
}

/// Checks a device id as agents send it: 8 to 64 of `0-9 a-f -`.
pub fn check_device_id(id: &str) -> Result<(), String> {
    let ok = (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{id:?} is not a device id"))
    }
}

//! Where a task runs: its scope. A device list is resolved once, when the task is created (it
//! does not pick up devices that appear later); a selection is a saved query evaluated at
//! each start, over connected devices only.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The most entries a device list may hold.
pub const MAX_LIST_ENTRIES: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// The devices of a group and, unless `include_subgroups` is off, of its subgroups; with
    /// `include_secondaries`, also those of secondary and virtual servers placed there.
    Group {
        group_id: u64,
        include_subgroups: bool,
        include_secondaries: bool,
    },
    /// A device list: the entries as the administrator gave them, and the devices they
    /// matched when the task was created.
    DeviceList {
        entries: Vec<String>,
        device_ids: Vec<String>,
        /// Entries that matched no known device, reported at creation.
        unmatched: Vec<String>,
    },
    Selection(Selection),
    /// A local task: one device.
    Local {
        device_id: String,
    },
    /// An Administration Server task: the server itself.
    Server,
}

/// An inclusive range of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

/// One entry of a device list, as parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListEntry {
    Address(IpAddr),
    Range(IpRange),
    /// A host name or DNS name: matched against known devices, and resolved as DNS.
    Name(String),
}

/// A saved query over device attributes; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// A group id, and whether its subgroups count.
    pub group: Option<(u64, bool)>,
    pub tag: Option<String>,
    /// Case-insensitive substring of the device's OS.
    pub os: Option<String>,
    pub ip_range: Option<IpRange>,
    /// An application installed on the device (running or not).
    pub application: Option<String>,
    pub connected: Option<bool>,
}

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

// Parsing and matching. (Bodies being written; signatures are the contract.)

use std::collections::HashMap;

use super::device::DeviceRecord;
use super::group::GroupTree;

impl IpRange {
    /// `first-last` (one family, first <= last) or CIDR `net/len`.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        Err(format!("{text:?}: IP ranges are not parsed yet"))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let _ = ip;
        false
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl ListEntry {
    /// An address, a range, or a name (host or DNS).
    pub fn parse(text: &str) -> Result<ListEntry, String> {
        Err(format!("{text:?}: not parsed yet"))
    }
}

/// Parses a device list, one entry per item (blank items skipped); at most
/// [`MAX_LIST_ENTRIES`]. Returns each entry as typed (trimmed) with its parse.
pub fn parse_list<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, ListEntry)>, String> {
    let _ = items.into_iter();
    Err("device lists are not parsed yet".into())
}

/// The known, approved devices a parsed list matches (ids, sorted, no duplicates), and the
/// entries (as typed) that matched none. `dns` holds what each name entry resolved to.
pub fn resolve_list(
    entries: &[(String, ListEntry)],
    devices: &[DeviceRecord],
    dns: &HashMap<String, Vec<IpAddr>>,
) -> (Vec<String>, Vec<String>) {
    let _ = (entries, devices, dns);
    (Vec::new(), Vec::new())
}

impl Selection {
    /// Builds a selection from `key=value` conditions: `group=PATH`, `subgroups=yes|no`,
    /// `tag=T`, `os=TEXT`, `ip=RANGE`, `app=NAME`, `connected=yes|no`.
    pub fn from_conditions(
        conditions: &[String],
        resolve_group: impl Fn(&str) -> Option<u64>,
    ) -> Result<Selection, String> {
        let _ = (conditions, resolve_group(""));
        Err("selections are not parsed yet".into())
    }

    pub fn matches(&self, device: &DeviceRecord, tree: &GroupTree, connected: bool) -> bool {
        let _ = (device, tree, connected);
        false
    }

    /// The selection in words, with group paths.
    pub fn describe(&self, tree: &GroupTree) -> String {
        let _ = tree;
        String::new()
    }
}

//! Where a task runs: its scope. A device list is resolved once, when the task is created (it
//! does not pick up devices that appear later); a selection is a saved query evaluated at
//! each start, over connected devices only.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The most entries a device list may hold.
pub const MAX_LIST_ENTRIES: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
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

// Parsing and matching.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::device::{DeviceRecord, Enrollment};
use super::group::GroupTree;

impl Scope {
    /// Whether a start of this scope reaches `device`, an approved device: a group's devices
    /// (and its subgroups' unless they are excluded), a list's devices as matched when the
    /// task was stored, a local task's one device. A selection is decided by the server at
    /// each start, and a server task reaches no device: false.
    pub fn reaches(&self, device: &DeviceRecord, tree: &GroupTree) -> bool {
        match self {
            Scope::Group {
                group_id,
                include_subgroups,
                ..
            } => {
                device.group_id == *group_id
                    || (*include_subgroups && tree.is_descendant(device.group_id, *group_id))
            }
            Scope::DeviceList { device_ids, .. } => device_ids.contains(&device.id),
            Scope::Local { device_id } => *device_id == device.id,
            Scope::Selection(_) | Scope::Server => false,
        }
    }
}

/// What a list entry may be, for error messages.
const ENTRY_FORMS: &str = "an IP address, an IP range (a-b or CIDR) or a host name";

/// The keys a selection condition may have.
const SELECTION_KEYS: [&str; 7] = ["group", "subgroups", "tag", "os", "ip", "app", "connected"];
const SELECTION_KEYS_TEXT: &str = "group, subgroups, tag, os, ip, app or connected";

/// An address as its family (4 or 6) and a number, so that addresses of one family compare.
fn ordinal(ip: IpAddr) -> (u8, u128) {
    match ip {
        IpAddr::V4(v4) => (4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (6, u128::from(v6)),
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// `net/len`, the whole network (host bits of `net` ignored).
fn parse_cidr(text: &str, net: &str, len: &str) -> Result<IpRange, String> {
    let net: IpAddr = net.parse().map_err(|_| {
        format!("{text:?}: {net:?} is not an IP address; a CIDR range is e.g. 10.0.0.0/24")
    })?;
    let max: u32 = if net.is_ipv4() { 32 } else { 128 };
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?}: {len:?} is not a prefix length; a CIDR range is e.g. 10.0.0.0/24"
        ));
    }
    let len = match len.parse::<u32>() {
        Ok(len) if len <= max => len,
        _ => {
            return Err(format!(
                "{text:?}: the prefix length of an {} network is at most {max}",
                family(net)
            ));
        }
    };
    Ok(match net {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            let first = u32::from(v4) & mask;
            IpRange {
                first: IpAddr::V4(first.into()),
                last: IpAddr::V4((first | !mask).into()),
            }
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            let first = u128::from(v6) & mask;
            IpRange {
                first: IpAddr::V6(first.into()),
                last: IpAddr::V6((first | !mask).into()),
            }
        }
    })
}

impl IpRange {
    /// `first-last` (one family, first <= last) or CIDR `net/len`.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let text = text.trim();
        if let Some((net, len)) = text.split_once('/') {
            return parse_cidr(text, net.trim(), len.trim());
        }
        let Some((first, last)) = text.split_once('-') else {
            return Err(format!(
                "{text:?}: not an IP range; give first-last (e.g. 10.0.0.1-10.0.0.99) or CIDR \
                 (e.g. 10.0.0.0/24)"
            ));
        };
        let address = |part: &str| -> Result<IpAddr, String> {
            let part = part.trim();
            part.parse().map_err(|_| {
                format!(
                    "{text:?}: {part:?} is not an IP address; a range is first-last, e.g. \
                     10.0.0.1-10.0.0.99"
                )
            })
        };
        let (first, last) = (address(first)?, address(last)?);
        let ((first_family, from), (last_family, to)) = (ordinal(first), ordinal(last));
        if first_family != last_family {
            return Err(format!(
                "{text:?}: both ends of a range must be of one family ({} and {} here)",
                family(first),
                family(last)
            ));
        }
        if from > to {
            return Err(format!(
                "{text:?}: the first address of a range must not be above the last"
            ));
        }
        Ok(IpRange { first, last })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (family, n) = ordinal(ip);
        let (first_family, first) = ordinal(self.first);
        let (last_family, last) = ordinal(self.last);
        family == first_family && family == last_family && first <= n && n <= last
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// A host or DNS name without its optional trailing dot: labels of 1 to 63 ASCII letters,
/// digits, '-' and '_', at most 253 characters in all.
fn host_name(text: &str) -> Option<&str> {
    let name = text.strip_suffix('.').unwrap_or(text);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(name)
}

/// Whether text that holds a '-' or '/' was meant as a range rather than a name: names hold
/// no '/', ':' or spaces, and a name is not made of digits, dots and dashes only. A name's
/// final dot is left out first, as [`host_name`] leaves it out, so that both forms read alike.
fn looks_like_range(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    text.contains(['/', ':'])
        || text.contains(char::is_whitespace)
        || text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        || text.split_once('-').is_some_and(|(a, b)| {
            a.trim().parse::<IpAddr>().is_ok() || b.trim().parse::<IpAddr>().is_ok()
        })
}

impl ListEntry {
    /// An address, a range, or a name (host or DNS).
    pub fn parse(text: &str) -> Result<ListEntry, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(format!("an empty entry; give {ENTRY_FORMS}"));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(ListEntry::Address(ip));
        }
        if text.contains(['-', '/']) {
            match IpRange::parse(text) {
                Ok(range) => return Ok(ListEntry::Range(range)),
                Err(error) if looks_like_range(text) => return Err(error),
                Err(_) => {}
            }
        }
        if text.contains(':') {
            return Err(format!("{text:?}: not a valid IPv6 address"));
        }
        if text.contains('.') && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!(
                "{text:?}: not a valid IPv4 address (four numbers from 0 to 255, e.g. 10.0.0.1)"
            ));
        }
        match host_name(text) {
            Some(name) => Ok(ListEntry::Name(name.to_string())),
            None => Err(format!("{text:?}: not {ENTRY_FORMS}")),
        }
    }

    /// What makes two entries the same: names compare without case.
    fn key(&self) -> String {
        match self {
            ListEntry::Address(ip) => format!("a:{ip}"),
            ListEntry::Range(range) => format!("r:{range}"),
            ListEntry::Name(name) => format!("n:{}", name.to_ascii_lowercase()),
        }
    }
}

/// The items of a device list file (`--devices-file`): its lines, trimmed, blank ones left
/// out, after an optional byte order mark; `None` if it is not UTF-8 text. Comment lines stay
/// for [`parse_list`], which skips them.
pub fn list_file_items(bytes: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(
        text.trim_start_matches('\u{feff}')
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Parses a device list, one entry per item (blank items skipped); at most
/// [`MAX_LIST_ENTRIES`]. Returns each entry as typed (trimmed) with its parse.
///
/// Items whose text starts with '#' are comments. Errors name the 1-based item (line) number,
/// blank and comment lines counted. An entry given again is kept once, where it first appears.
pub fn parse_list<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, ListEntry)>, String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (index, item) in items.into_iter().enumerate() {
        let text = item.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let entry = ListEntry::parse(text).map_err(|e| format!("line {}: {e}", index + 1))?;
        if seen.insert(entry.key()) {
            out.push((text.to_string(), entry));
        }
    }
    if out.len() > MAX_LIST_ENTRIES {
        return Err(format!(
            "a device list holds at most {MAX_LIST_ENTRIES} entries; this one has {}",
            out.len()
        ));
    }
    Ok(out)
}

/// The addresses a device reports that parse (a `/len` suffix or a `%zone` is ignored).
fn device_addresses(device: &DeviceRecord) -> Vec<IpAddr> {
    device
        .facts
        .addresses
        .iter()
        .filter_map(|text| {
            let text = text.trim();
            let text = text.split_once('/').map_or(text, |(ip, _)| ip);
            let text = text.split_once('%').map_or(text, |(ip, _)| ip);
            text.parse().ok()
        })
        .collect()
}

/// `a` and `b` equal ignoring case and a trailing dot (DNS names may be written absolute).
fn same_name(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    !a.is_empty()
        && a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
}

fn name_matches(name: &str, device: &DeviceRecord) -> bool {
    let dns_name = device.facts.dns_name.trim();
    same_name(name, device.name.trim())
        || same_name(name, device.facts.display_name.trim())
        || same_name(name, dns_name)
        || dns_name
            .split_once('.')
            .is_some_and(|(host, _)| same_name(name, host))
}

/// What `dns` says the name entry resolved to: by the name, the entry as typed, or else the
/// name in any case.
fn dns_answer<'d>(
    dns: &'d HashMap<String, Vec<IpAddr>>,
    name: &str,
    typed: &str,
) -> Option<&'d Vec<IpAddr>> {
    dns.get(name).or_else(|| dns.get(typed)).or_else(|| {
        dns.iter()
            .find(|(key, _)| same_name(key, name))
            .map(|(_, ips)| ips)
    })
}

/// The known, approved devices a parsed list matches (ids, sorted, no duplicates), and the
/// entries (as typed) that matched none. `dns` holds what each name entry resolved to.
pub fn resolve_list(
    entries: &[(String, ListEntry)],
    devices: &[DeviceRecord],
    dns: &HashMap<String, Vec<IpAddr>>,
) -> (Vec<String>, Vec<String>) {
    let approved: Vec<(&DeviceRecord, Vec<IpAddr>)> = devices
        .iter()
        .filter(|d| d.enrollment == Enrollment::Approved)
        .map(|d| (d, device_addresses(d)))
        .collect();
    let mut by_address: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for (index, (_, addresses)) in approved.iter().enumerate() {
        for ip in addresses {
            by_address.entry(*ip).or_default().push(index);
        }
    }
    let mut ids = BTreeSet::new();
    let mut unmatched = Vec::new();
    for (typed, entry) in entries {
        let mut hits: BTreeSet<usize> = BTreeSet::new();
        match entry {
            ListEntry::Address(ip) => {
                hits.extend(by_address.get(ip).into_iter().flatten());
            }
            ListEntry::Range(range) => {
                hits.extend(
                    approved
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, addresses))| {
                            addresses.iter().any(|ip| range.contains(*ip))
                        })
                        .map(|(index, _)| index),
                );
            }
            ListEntry::Name(name) => {
                hits.extend(
                    approved
                        .iter()
                        .enumerate()
                        .filter(|(_, (device, _))| name_matches(name, device))
                        .map(|(index, _)| index),
                );
                for ip in dns_answer(dns, name, typed).into_iter().flatten() {
                    hits.extend(by_address.get(ip).into_iter().flatten());
                }
            }
        }
        if hits.is_empty() {
            unmatched.push(typed.clone());
        }
        ids.extend(hits.into_iter().map(|index| approved[index].0.id.clone()));
    }
    (ids.into_iter().collect(), unmatched)
}

fn parse_yes_no(text: &str, key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("{text:?}: {key} is yes or no")),
    }
}

/// Case-insensitive equality, without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl Selection {
    /// Builds a selection from `key=value` conditions: `group=PATH`, `subgroups=yes|no`,
    /// `tag=T`, `os=TEXT`, `ip=RANGE`, `app=NAME`, `connected=yes|no`.
    ///
    /// Keys are case-insensitive; blank conditions are skipped; each key may be given once.
    /// `subgroups` (yes by default) goes with `group`; `ip` also takes a single address.
    pub fn from_conditions(
        conditions: &[String],
        resolve_group: impl Fn(&str) -> Option<u64>,
    ) -> Result<Selection, String> {
        let mut selection = Selection::default();
        let mut subgroups: Option<bool> = None;
        let mut seen: Vec<&str> = Vec::new();
        for condition in conditions {
            let text = condition.trim();
            if text.is_empty() {
                continue;
            }
            let Some((key, value)) = text.split_once('=') else {
                return Err(format!(
                    "{text:?}: a condition is key=value (e.g. tag=finance), with key one of \
                     {SELECTION_KEYS_TEXT}"
                ));
            };
            let typed_key = key.trim();
            let Some(key) = SELECTION_KEYS
                .iter()
                .copied()
                .find(|k| k.eq_ignore_ascii_case(typed_key))
            else {
                return Err(format!(
                    "{text:?}: unknown condition {typed_key:?}; use {SELECTION_KEYS_TEXT}"
                ));
            };
            if seen.contains(&key) {
                return Err(format!(
                    "{text:?}: {key} is given twice; a selection takes each condition once"
                ));
            }
            seen.push(key);
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("{text:?}: {key} needs a value after '='"));
            }
            match key {
                "group" => {
                    let id = resolve_group(value)
                        .ok_or_else(|| format!("group {value:?} does not exist"))?;
                    selection.group = Some((id, true));
                }
                "subgroups" => subgroups = Some(parse_yes_no(text, key, value)?),
                "tag" => selection.tag = Some(value.to_string()),
                "os" => selection.os = Some(value.to_string()),
                "ip" => {
                    let range = if value.contains(['-', '/']) {
                        IpRange::parse(value).map_err(|e| format!("ip: {e}"))?
                    } else {
                        let ip: IpAddr = value.parse().map_err(|_| {
                            format!(
                                "{text:?}: {value:?} is not an IP address or an IP range \
                                 (a-b or CIDR)"
                            )
                        })?;
                        IpRange {
                            first: ip,
                            last: ip,
                        }
                    };
                    selection.ip_range = Some(range);
                }
                "app" => selection.application = Some(value.to_string()),
                "connected" => selection.connected = Some(parse_yes_no(text, key, value)?),
                _ => unreachable!("every key of SELECTION_KEYS is handled"),
            }
        }
        if seen.is_empty() {
            return Err("a selection needs at least one condition".into());
        }
        if let Some(subgroups) = subgroups {
            match selection.group.as_mut() {
                Some((_, include)) => *include = subgroups,
                None => {
                    return Err("subgroups=yes|no goes with group=PATH; give the group too".into());
                }
            }
        }
        Ok(selection)
    }

    /// Whether every condition holds for `device` (`connected`: whether it is connected now).
    /// Devices not approved never match.
    pub fn matches(&self, device: &DeviceRecord, tree: &GroupTree, connected: bool) -> bool {
        if device.enrollment != Enrollment::Approved {
            return false;
        }
        if let Some((group, subgroups)) = self.group {
            let inside = device.group_id == group
                || (subgroups && tree.is_descendant(device.group_id, group));
            if !inside {
                return false;
            }
        }
        let tag = || {
            self.tag
                .as_ref()
                .is_none_or(|tag| device.tags.iter().any(|t| eq_ignore_case(t, tag)))
        };
        let os = || {
            self.os
                .as_ref()
                .is_none_or(|os| device.facts.os.to_lowercase().contains(&os.to_lowercase()))
        };
        let ip = || {
            self.ip_range.as_ref().is_none_or(|range| {
                device_addresses(device)
                    .into_iter()
                    .any(|ip| range.contains(ip))
            })
        };
        let app = || {
            self.application.as_ref().is_none_or(|app| {
                device
                    .facts
                    .applications
                    .iter()
                    .any(|a| eq_ignore_case(&a.name, app))
            })
        };
        tag() && os() && ip() && app() && self.connected.is_none_or(|wanted| wanted == connected)
    }

    /// The selection as the conditions [`Selection::from_conditions`] reads, so that an
    /// administrator can change it where it was given; `path_of` names a group by its id.
    pub fn conditions(&self, path_of: impl Fn(u64) -> Option<String>) -> Vec<String> {
        let mut conditions = Vec::new();
        if let Some((id, subgroups)) = self.group {
            let path = path_of(id).unwrap_or_else(|| format!("#{id}"));
            conditions.push(format!("group={path}"));
            if !subgroups {
                conditions.push("subgroups=no".into());
            }
        }
        let texts = [
            ("tag", self.tag.clone()),
            ("os", self.os.clone()),
            ("ip", self.ip_range.map(|r| r.to_string())),
            ("app", self.application.clone()),
            (
                "connected",
                self.connected.map(|c| if c { "yes" } else { "no" }.into()),
            ),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                conditions.push(format!("{key}={value}"));
            }
        }
        conditions
    }

    /// The selection in words, with group paths.
    pub fn describe(&self, tree: &GroupTree) -> String {
        let mut head = String::from("devices");
        if let Some((id, subgroups)) = self.group {
            match tree.path_of(id) {
                Some(path) => head.push_str(&format!(" in {path:?}")),
                None => head.push_str(&format!(" in group #{id}")),
            }
            head.push_str(if subgroups {
                " and subgroups"
            } else {
                " (not its subgroups)"
            });
        }
        let mut parts = Vec::new();
        if let Some(tag) = &self.tag {
            parts.push(format!("tagged {tag:?}"));
        }
        if let Some(os) = &self.os {
            parts.push(format!("OS contains {os:?}"));
        }
        if let Some(range) = &self.ip_range {
            if range.first == range.last {
                parts.push(format!("address {}", range.first));
            } else {
                parts.push(format!("address in {range}"));
            }
        }
        if let Some(app) = &self.application {
            parts.push(format!("with application {app:?}"));
        }
        match self.connected {
            Some(true) => parts.push("connected".into()),
            Some(false) => parts.push("not connected".into()),
            None => {}
        }
        match (self.group.is_some(), parts.is_empty()) {
            (false, true) => "all devices".into(),
            (true, true) => head,
            (true, false) => format!("{head}, {}", parts.join(", ")),
            (false, false) => format!("all devices, {}", parts.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests;

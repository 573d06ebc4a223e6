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

// Parsing and matching.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::device::{DeviceRecord, Enrollment};
use super::group::GroupTree;

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
/// no '/', ':' or spaces, and a name is not made of digits, dots and dashes only.
fn looks_like_range(text: &str) -> bool {
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
mod tests {
    use super::*;
    use crate::model::Fingerprint;
    use crate::model::device::{Application, DeviceFacts};
    use crate::model::group::{Group, MANAGED_DEVICES};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn range(first: &str, last: &str) -> IpRange {
        IpRange {
            first: ip(first),
            last: ip(last),
        }
    }

    fn device(id: &str, name: &str, dns_name: &str, addresses: &[&str]) -> DeviceRecord {
        DeviceRecord {
            id: id.into(),
            fingerprint: Fingerprint([0; 32]),
            name: name.into(),
            enrollment: Enrollment::Approved,
            group_id: MANAGED_DEVICES,
            facts: DeviceFacts {
                display_name: name.into(),
                dns_name: dns_name.into(),
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
                ..DeviceFacts::default()
            },
            tags: Vec::new(),
            enrolled: 0,
            last_seen: None,
        }
    }

    #[test]
    fn ranges_parse_dash_and_cidr() {
        assert_eq!(
            IpRange::parse("10.0.0.1-10.0.0.9"),
            Ok(range("10.0.0.1", "10.0.0.9"))
        );
        assert_eq!(
            IpRange::parse(" 10.0.0.1 - 10.0.0.9 "),
            Ok(range("10.0.0.1", "10.0.0.9"))
        );
        assert_eq!(
            IpRange::parse("10.0.0.5-10.0.0.5"),
            Ok(range("10.0.0.5", "10.0.0.5"))
        );
        assert_eq!(
            IpRange::parse("fe80::1-fe80::ff"),
            Ok(range("fe80::1", "fe80::ff"))
        );
        assert_eq!(
            IpRange::parse("10.1.2.3/24"),
            Ok(range("10.1.2.0", "10.1.2.255"))
        );
        assert_eq!(
            IpRange::parse("10.1.2.3/32"),
            Ok(range("10.1.2.3", "10.1.2.3"))
        );
        assert_eq!(
            IpRange::parse("0.0.0.0/0"),
            Ok(range("0.0.0.0", "255.255.255.255"))
        );
        assert_eq!(
            IpRange::parse("2001:db8::1/64"),
            Ok(range("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"))
        );
        assert_eq!(
            IpRange::parse("::/0"),
            Ok(range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(
            IpRange::parse("10.0.0.0/24").unwrap().to_string(),
            "10.0.0.0-10.0.0.255"
        );
    }

    #[test]
    fn bad_ranges_say_why() {
        assert_eq!(
            IpRange::parse("10.0.0.9-10.0.0.1"),
            Err(
                "\"10.0.0.9-10.0.0.1\": the first address of a range must not be above the last"
                    .into()
            )
        );
        let e = IpRange::parse("10.0.0.1-fe80::1").unwrap_err();
        assert!(e.contains("one family"), "{e}");
        let e = IpRange::parse("10.0.0.1-10.0.0.300").unwrap_err();
        assert!(e.contains("\"10.0.0.300\" is not an IP address"), "{e}");
        let e = IpRange::parse("10.0.0.0/33").unwrap_err();
        assert!(e.contains("at most 32"), "{e}");
        let e = IpRange::parse("fe80::/129").unwrap_err();
        assert!(e.contains("at most 128"), "{e}");
        assert!(IpRange::parse("fe80::/128").is_ok());
        assert!(IpRange::parse("10.0.0.0/99999999999999999999").is_err());
        assert!(IpRange::parse("10.0.0.0/").is_err());
        assert!(IpRange::parse("10.0.0.0/+8").is_err());
        assert!(IpRange::parse("host/8").is_err());
        assert!(IpRange::parse("10.0.0.1").is_err());
        assert!(IpRange::parse("10.0.0.1-10.0.0.2-10.0.0.3").is_err());
    }

    #[test]
    fn contains_compares_within_one_family() {
        let r = range("10.0.0.10", "10.0.1.5");
        assert!(r.contains(ip("10.0.0.10")));
        assert!(r.contains(ip("10.0.0.200")));
        assert!(r.contains(ip("10.0.1.5")));
        assert!(!r.contains(ip("10.0.1.6")));
        assert!(!r.contains(ip("10.0.0.9")));
        assert!(!r.contains(ip("::ffff:10.0.0.20")));
        let r6 = IpRange::parse("fe80::/64").unwrap();
        assert!(r6.contains(ip("fe80::1234")));
        assert!(!r6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn list_entries_parse() {
        assert_eq!(
            ListEntry::parse(" 10.0.0.1 "),
            Ok(ListEntry::Address(ip("10.0.0.1")))
        );
        assert_eq!(
            ListEntry::parse("fe80::1"),
            Ok(ListEntry::Address(ip("fe80::1")))
        );
        assert_eq!(
            ListEntry::parse("10.0.0.1-10.0.0.3"),
            Ok(ListEntry::Range(range("10.0.0.1", "10.0.0.3")))
        );
        assert_eq!(
            ListEntry::parse("10.0.0.0/30"),
            Ok(ListEntry::Range(range("10.0.0.0", "10.0.0.3")))
        );
        assert_eq!(
            ListEntry::parse("PC-Sales_01"),
            Ok(ListEntry::Name("PC-Sales_01".into()))
        );
        assert_eq!(
            ListEntry::parse("pc1.Corp.example."),
            Ok(ListEntry::Name("pc1.Corp.example".into()))
        );
        assert_eq!(ListEntry::parse("1234"), Ok(ListEntry::Name("1234".into())));
        let long_label = "a".repeat(63);
        assert!(ListEntry::parse(&long_label).is_ok());
        let name_253 = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(name_253.len(), 253);
        assert!(ListEntry::parse(&name_253).is_ok());
    }

    #[test]
    fn bad_list_entries_say_why() {
        assert_eq!(
            ListEntry::parse("not an address!"),
            Err(
                "\"not an address!\": not an IP address, an IP range (a-b or CIDR) or a host \
                 name"
                    .into()
            )
        );
        assert!(ListEntry::parse("  ").unwrap_err().contains("empty"));
        // Looks like a range: the range's own error.
        let e = ListEntry::parse("10.0.0.9-10.0.0.1").unwrap_err();
        assert!(e.contains("must not be above the last"), "{e}");
        let e = ListEntry::parse("10.0.0.1-10.0.0.256").unwrap_err();
        assert!(e.contains("is not an IP address"), "{e}");
        let e = ListEntry::parse("10.0.0.0/40").unwrap_err();
        assert!(e.contains("at most 32"), "{e}");
        let e = ListEntry::parse("10.0.0.256").unwrap_err();
        assert!(e.contains("not a valid IPv4 address"), "{e}");
        let e = ListEntry::parse("fe80::zz").unwrap_err();
        assert!(e.contains("not a valid IPv6 address"), "{e}");
        assert!(ListEntry::parse(&"a".repeat(64)).is_err());
        let name_254 = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        assert!(ListEntry::parse(&name_254).is_err());
        assert!(ListEntry::parse("a..b").is_err());
        assert!(ListEntry::parse(".").is_err());
        assert!(ListEntry::parse("héllo").is_err());
        assert!(ListEntry::parse("a b").is_err());
    }

    #[test]
    fn lists_skip_comments_number_lines_and_drop_duplicates() {
        let text = "# office PCs\n10.0.0.1\n\n  pc2  \n10.0.0.1\nPC2\n10.0.0.0/31\n";
        let list = parse_list(text.lines()).unwrap();
        assert_eq!(
            list,
            vec![
                ("10.0.0.1".to_string(), ListEntry::Address(ip("10.0.0.1"))),
                ("pc2".to_string(), ListEntry::Name("pc2".into())),
                (
                    "10.0.0.0/31".to_string(),
                    ListEntry::Range(range("10.0.0.0", "10.0.0.1"))
                ),
            ]
        );
        let e = parse_list(["10.0.0.1", "", "bad name!"]).unwrap_err();
        assert!(
            e.starts_with("line 3: \"bad name!\": not an IP address"),
            "{e}"
        );
        let e = parse_list(["# x", "10.0.0.5-10.0.0.4"]).unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        assert_eq!(parse_list(["", "  ", "# only comments"]), Ok(Vec::new()));
    }

    #[test]
    fn lists_hold_at_most_1000_entries() {
        let items: Vec<String> = (0..1001u32)
            .map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string())
            .collect();
        let ok = parse_list(items[..1000].iter().map(String::as_str)).unwrap();
        assert_eq!(ok.len(), 1000);
        // Blank lines, comments and duplicates do not count.
        let mut padded: Vec<&str> = items[..1000].iter().map(String::as_str).collect();
        padded.extend(["", "# end", "10.0.0.0"]);
        assert_eq!(parse_list(padded).unwrap().len(), 1000);
        assert_eq!(
            parse_list(items.iter().map(String::as_str)),
            Err("a device list holds at most 1000 entries; this one has 1001".into())
        );
    }

    #[test]
    fn lists_resolve_to_approved_devices() {
        let mut pending = device("pending-1", "pc9", "pc9.corp.example", &["10.0.0.9"]);
        pending.enrollment = Enrollment::Pending;
        let mut rejected = device("rejected-1", "pc8", "", &["10.0.0.8"]);
        rejected.enrollment = Enrollment::Rejected;
        let devices = vec![
            device("dev-c", "PC1", "pc1.corp.example", &["10.0.0.1", "fe80::1"]),
            device("dev-b", "pc2", "", &["10.0.0.2/24"]),
            device("dev-a", "laptop", "lap.corp.example.", &["192.168.1.7"]),
            device("dev-d", "printer", "", &["not an address", "10.0.1.50"]),
            pending,
            rejected,
        ];
        let typed = [
            "10.0.0.2",
            "10.0.0.0-10.0.0.1",
            "pc1",
            "LAPTOP",
            "Lap",
            "10.0.0.9",
            "pc8",
            "pc9",
            "nowhere",
            "10.0.1.0/24",
            "server.corp.example",
            "fe80::1",
        ];
        let entries = parse_list(typed).unwrap();
        let dns = HashMap::from([
            ("server.corp.example".to_string(), vec![ip("192.168.1.7")]),
            ("nowhere".to_string(), vec![ip("10.9.9.9")]),
        ]);
        let (ids, unmatched) = resolve_list(&entries, &devices, &dns);
        assert_eq!(ids, ["dev-a", "dev-b", "dev-c", "dev-d"]);
        assert_eq!(unmatched, ["10.0.0.9", "pc8", "pc9", "nowhere"]);

        // Each kind on its own.
        let one = |text: &str| {
            let entries = parse_list([text]).unwrap();
            resolve_list(&entries, &devices, &HashMap::new())
        };
        assert_eq!(one("PC1.CORP.EXAMPLE").0, ["dev-c"]);
        assert_eq!(one("lap.corp.example.").0, ["dev-a"]);
        assert_eq!(one("pc1").0, ["dev-c"]);
        assert_eq!(one("corp").0, Vec::<String>::new());
        assert_eq!(one("10.0.0.0/24").0, ["dev-b", "dev-c"]);
        assert_eq!(one("10.0.0.0/16").0, ["dev-b", "dev-c", "dev-d"]);
        assert_eq!(one("fe80::/64").0, ["dev-c"]);
        assert_eq!(one("10.0.0.9").1, ["10.0.0.9"]);
        // The DNS answer may be keyed in another case.
        let dns = HashMap::from([("SERVER".to_string(), vec![ip("10.0.1.50")])]);
        let entries = parse_list(["server"]).unwrap();
        assert_eq!(
            resolve_list(&entries, &devices, &dns),
            (vec!["dev-d".to_string()], Vec::new())
        );
    }

    fn tree() -> GroupTree {
        let mut groups = Group::roots().to_vec();
        groups.extend([
            Group {
                id: 3,
                parent: Some(MANAGED_DEVICES),
                name: "Sales".into(),
            },
            Group {
                id: 4,
                parent: Some(3),
                name: "Paris".into(),
            },
        ]);
        GroupTree::new(groups)
    }

    fn conditions(items: &[&str]) -> Result<Selection, String> {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        let tree = tree();
        Selection::from_conditions(&items, |path| tree.resolve(path))
    }

    #[test]
    fn selections_parse() {
        let s = conditions(&[
            " Group = Managed devices/Sales ",
            "TAG=finance",
            "os=Windows",
            "ip=10.0.0.1-10.0.0.9",
            "app=Browser",
            "connected=yes",
        ])
        .unwrap();
        assert_eq!(
            s,
            Selection {
                group: Some((3, true)),
                tag: Some("finance".into()),
                os: Some("Windows".into()),
                ip_range: Some(range("10.0.0.1", "10.0.0.9")),
                application: Some("Browser".into()),
                connected: Some(true),
            }
        );
        assert_eq!(
            s.describe(&tree()),
            "devices in \"Managed devices/Sales\" and subgroups, tagged \"finance\", OS \
             contains \"Windows\", address in 10.0.0.1-10.0.0.9, with application \
             \"Browser\", connected"
        );
        let s = conditions(&["subgroups=NO", "group=Managed devices/Sales"]).unwrap();
        assert_eq!(s.group, Some((3, false)));
        assert_eq!(
            s.describe(&tree()),
            "devices in \"Managed devices/Sales\" (not its subgroups)"
        );
        let s = conditions(&["ip=10.0.0.7", "", "connected=false"]).unwrap();
        assert_eq!(s.ip_range, Some(range("10.0.0.7", "10.0.0.7")));
        assert_eq!(
            s.describe(&tree()),
            "all devices, address 10.0.0.7, not connected"
        );
        assert_eq!(
            conditions(&["ip=10.0.0.0/8"]).unwrap().ip_range,
            Some(range("10.0.0.0", "10.255.255.255"))
        );
        let unknown_group = Selection {
            group: Some((42, true)),
            ..Selection::default()
        };
        assert_eq!(
            unknown_group.describe(&tree()),
            "devices in group #42 and subgroups"
        );
        assert_eq!(Selection::default().describe(&tree()), "all devices");
    }

    #[test]
    fn bad_selections_say_why() {
        let err = |items: &[&str]| conditions(items).unwrap_err();
        assert_eq!(err(&[]), "a selection needs at least one condition");
        assert_eq!(err(&["  "]), "a selection needs at least one condition");
        assert_eq!(
            err(&["group=Managed devices/Nowhere"]),
            "group \"Managed devices/Nowhere\" does not exist"
        );
        let e = err(&["colour=red"]);
        assert!(
            e.contains("unknown condition \"colour\"")
                && e.contains("group, subgroups, tag, os, ip, app or connected"),
            "{e}"
        );
        assert!(err(&["tag=a", "Tag=b"]).contains("given twice"));
        assert!(err(&["subgroups=no"]).contains("goes with group"));
        assert!(err(&["group=Managed devices", "subgroups=maybe"]).contains("yes or no"));
        assert!(err(&["connected=1"]).contains("yes or no"));
        assert!(err(&["tag"]).contains("key=value"));
        assert!(err(&["tag="]).contains("needs a value"));
        assert!(err(&["ip=10.0.0.9-10.0.0.1"]).contains("must not be above the last"));
        assert!(err(&["ip=printer"]).contains("not an IP address"));
    }

    #[test]
    fn selections_match() {
        let tree = tree();
        let mut d = device("dev-1", "pc1", "", &["10.0.0.5"]);
        d.group_id = 4;
        d.tags = vec!["Finance".into()];
        d.facts.os = "Microsoft Windows 11 Pro".into();
        d.facts.applications = vec![Application {
            name: "Browser".into(),
            running: false,
        }];
        let s = conditions(&[
            "group=Managed devices/Sales",
            "tag=finance",
            "os=windows 11",
            "ip=10.0.0.0/24",
            "app=browser",
            "connected=yes",
        ])
        .unwrap();
        assert!(s.matches(&d, &tree, true));
        assert!(!s.matches(&d, &tree, false));

        // Subgroups on (default) and off.
        let sales = conditions(&["group=Managed devices/Sales"]).unwrap();
        let sales_only = conditions(&["group=Managed devices/Sales", "subgroups=no"]).unwrap();
        let paris = conditions(&["group=Managed devices/Sales/Paris", "subgroups=no"]).unwrap();
        assert!(sales.matches(&d, &tree, false));
        assert!(!sales_only.matches(&d, &tree, false));
        assert!(paris.matches(&d, &tree, false));
        let mut in_sales = d.clone();
        in_sales.group_id = 3;
        assert!(sales.matches(&in_sales, &tree, false));
        assert!(sales_only.matches(&in_sales, &tree, false));
        assert!(!paris.matches(&in_sales, &tree, false));

        let mut other = d.clone();
        other.tags.clear();
        assert!(!s.matches(&other, &tree, true));
        let mut other = d.clone();
        other.facts.os = "Linux".into();
        assert!(!s.matches(&other, &tree, true));
        let mut other = d.clone();
        other.facts.addresses = vec!["10.0.1.5".into()];
        assert!(!s.matches(&other, &tree, true));
        let mut other = d.clone();
        other.facts.applications.clear();
        assert!(!s.matches(&other, &tree, true));

        // Devices not approved never match.
        let any = conditions(&["connected=yes"]).unwrap();
        assert!(any.matches(&d, &tree, true));
        for enrollment in [Enrollment::Pending, Enrollment::Rejected] {
            let mut waiting = d.clone();
            waiting.enrollment = enrollment;
            assert!(!any.matches(&waiting, &tree, true));
            assert!(!s.matches(&waiting, &tree, true));
        }
    }
}

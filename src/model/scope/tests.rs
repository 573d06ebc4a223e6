//! Unit tests of scopes: address ranges, device lists and what they resolve to, selections and
//! what they match.

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
            "\"10.0.0.9-10.0.0.1\": the first address of a range must not be above the last".into()
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

#[test]
fn a_selection_reads_back_as_its_conditions() {
    let tree = tree();
    for items in [
        &[
            "group=Managed devices/Sales",
            "subgroups=no",
            "tag=finance",
            "os=Windows",
            "ip=10.0.0.1-10.0.0.9",
            "app=Browser",
            "connected=no",
        ][..],
        &["group=Managed devices/Sales/Paris"],
        &["connected=yes"],
    ] {
        let selection = conditions(items).unwrap();
        let back = selection.conditions(|id| tree.path_of(id));
        assert_eq!(
            back,
            items.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(
            conditions(&back.iter().map(String::as_str).collect::<Vec<_>>()).unwrap(),
            selection
        );
    }
}

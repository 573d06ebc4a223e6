//! The `Inventory` task: what the device is, read from files the kernel and dpkg keep.
//!
//! Parsers are pure functions over text so they are tested on samples; missing files give
//! empty answers rather than errors, since a partial inventory beats none.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::{CANCELLED, Details, Inventory, Outcome, Package, Steering, count};
use crate::model::task::DeviceState;

/// OS name when /etc/os-release has none.
const FALLBACK_OS: &str = "Linux";

/// Collects the inventory of this device on a blocking thread.
pub(super) async fn run(cancel: &mut Steering) -> Outcome {
    let collecting = tokio::task::spawn_blocking(|| collect(Path::new("/")));
    let collected = tokio::select! {
        collected = collecting => collected,
        () = cancel.cancelled() => return Outcome::failed(CANCELLED),
    };
    match collected {
        Ok(inventory) => {
            let description = format!(
                "{}, {}",
                count(inventory.packages.len() as u64, "package", "packages"),
                count(inventory.addresses.len() as u64, "address", "addresses"),
            );
            Outcome::finished(
                DeviceState::Succeeded,
                description,
                Details::Inventory(inventory),
            )
        }
        Err(e) => Outcome::failed(format!("inventory stopped: {e}")),
    }
}

/// Reads the inventory of the system whose root is `root` ("/" on a device).
fn collect(root: &Path) -> Inventory {
    let read = |path: &str| read_text(&root.join(path));
    let mut addresses = parse_fib_trie(&read("proc/net/fib_trie"));
    addresses.extend(parse_if_inet6(&read("proc/net/if_inet6")));
    Inventory {
        os: parse_os_release(&read("etc/os-release")),
        hostname: read("proc/sys/kernel/hostname").trim().to_string(),
        addresses,
        packages: parse_dpkg_status(&read("var/lib/dpkg/status")),
    }
}

/// A file's text, lossily decoded; empty when it cannot be read.
fn read_text(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "inventory source unreadable");
            String::new()
        }
    }
}

/// PRETTY_NAME from os-release text, unquoted; [`FALLBACK_OS`] when absent or empty.
fn parse_os_release(text: &str) -> String {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("PRETTY_NAME="))
        .map(unquote)
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| FALLBACK_OS.to_string())
}

/// A shell-style os-release value: quotes removed, backslash escapes resolved.
fn unquote(value: &str) -> String {
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    let inner = if quoted {
        &value[1..value.len() - 1]
    } else {
        value
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Local IPv4 addresses: in /proc/net/fib_trie, each is the line before "/32 host LOCAL".
/// Each appears in both the main and local tables, hence the deduplication.
fn parse_fib_trie(text: &str) -> Vec<String> {
    let mut addresses: Vec<String> = Vec::new();
    let mut previous = "";
    for line in text.lines() {
        if line.trim() == "/32 host LOCAL" {
            let candidate = previous.trim().trim_start_matches(['|', '+', '-', ' ']);
            if let Ok(address) = candidate.parse::<Ipv4Addr>() {
                let address = address.to_string();
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        previous = line;
    }
    addresses
}

/// IPv6 addresses from /proc/net/if_inet6: the first field is 32 hex digits.
fn parse_if_inet6(text: &str) -> Vec<String> {
    let mut addresses: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(field) = line.split_whitespace().next() else {
            continue;
        };
        if field.len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(field, 16) else {
            continue;
        };
        let address = Ipv6Addr::from(bits).to_string();
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    addresses
}

/// Installed packages from dpkg's status file: stanzas whose Status is "install ok installed".
fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut stanza = Stanza::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            packages.extend(std::mem::take(&mut stanza).installed());
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue; // continuation of a multi-line field
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match key {
            "Package" => stanza.name = Some(value),
            "Version" => stanza.version = Some(value),
            "Status" => stanza.status = Some(value),
            _ => {}
        }
    }
    packages.extend(stanza.installed());
    packages.sort_unstable_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    packages
}

/// The fields of one dpkg status stanza that the inventory needs.
#[derive(Default)]
struct Stanza {
    name: Option<String>,
    version: Option<String>,
    status: Option<String>,
}

impl Stanza {
    /// The package, if the stanza describes an installed one.
    fn installed(self) -> Option<Package> {
        let installed = self.status.as_deref() == Some("install ok installed");
        let name = self.name.filter(|name| !name.is_empty())?;
        installed.then(|| Package {
            name,
            version: self.version.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{TaskPayload, execute};
    use super::*;

    const OS_RELEASE: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
"#;

    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.168.1.0/24 2 0 2
        |-- 192.168.1.0
           /24 link UNICAST
        |-- 192.168.1.23
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 192.168.1.23
           /32 host LOCAL
";

    const IF_INET6: &str = "\
00000000000000000000000000000001 01 80 10 80       lo
fe800000000000000a0027fffe5ad3b2 02 40 20 80     eth0
20010db8000000000000000000000042 02 40 00 80     eth0
";

    const DPKG_STATUS: &str = "\
Package: zlib1g
Status: install ok installed
Priority: optional
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.

Package: removed-thing
Status: deinstall ok config-files
Version: 2.0

Package: bash
Status: install ok installed
Version: 5.2.15-2+b2
Conffiles:
 /etc/bash.bashrc 89269e1298235f1b12b4c16e4065ad0d
 /etc/skel/.bashrc 7a1b4f1e6a2b5c0d
Description: GNU Bourne Again SHell

Package: half-installed
Status: install reinstreq half-installed
Version: 0.1
";

    fn package(name: &str, version: &str) -> Package {
        Package {
            name: name.to_string(),
            version: version.to_string(),
        }
    }

    #[test]
    fn os_release_pretty_name() {
        assert_eq!(
            parse_os_release(OS_RELEASE),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME='Alpine \\\"edge\\\"'\n"),
            "Alpine \"edge\""
        );
        assert_eq!(parse_os_release("PRETTY_NAME=Plain\n"), "Plain");
        assert_eq!(parse_os_release("NAME=x\nPRETTY_NAME=\"\"\n"), "Linux");
        assert_eq!(parse_os_release(""), "Linux");
    }

    #[test]
    fn fib_trie_local_addresses() {
        assert_eq!(parse_fib_trie(FIB_TRIE), ["127.0.0.1", "192.168.1.23"]);
        assert!(parse_fib_trie("").is_empty());
    }

    #[test]
    fn if_inet6_addresses() {
        assert_eq!(
            parse_if_inet6(IF_INET6),
            ["::1", "fe80::a00:27ff:fe5a:d3b2", "2001:db8::42"]
        );
        assert!(parse_if_inet6("garbage line\nzz00000000000000000000000000000001 01\n").is_empty());
    }

    #[test]
    fn dpkg_installed_packages_sorted() {
        let packages = parse_dpkg_status(DPKG_STATUS);
        assert_eq!(
            packages,
            [
                package("bash", "5.2.15-2+b2"),
                package("zlib1g", "1:1.2.13.dfsg-1")
            ]
        );
        assert!(parse_dpkg_status("").is_empty());
    }

    #[test]
    fn missing_files_give_empty_answers() {
        let dir = tempfile::tempdir().unwrap();
        let inventory = collect(dir.path());
        assert_eq!(
            inventory,
            Inventory {
                os: "Linux".to_string(),
                ..Inventory::default()
            }
        );
    }

    #[test]
    fn collects_from_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            ("etc/os-release", OS_RELEASE),
            ("proc/sys/kernel/hostname", "device-7\n"),
            ("proc/net/fib_trie", FIB_TRIE),
            ("proc/net/if_inet6", IF_INET6),
            ("var/lib/dpkg/status", DPKG_STATUS),
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let inventory = collect(root);
        assert_eq!(inventory.hostname, "device-7");
        assert_eq!(inventory.addresses.len(), 5);
        assert_eq!(inventory.addresses[2], "::1");
        assert_eq!(inventory.packages.len(), 2);
    }

    #[tokio::test]
    async fn real_run_succeeds() {
        let outcome = execute(&TaskPayload::Inventory, 0, Steering::unsteered(), None).await;
        assert_eq!(outcome.state, DeviceState::Succeeded);
        assert_eq!(outcome.progress, 100);
        let Details::Inventory(inventory) = &outcome.details else {
            panic!("not inventory details: {outcome:?}");
        };
        assert!(!inventory.hostname.is_empty());
        assert!(!inventory.os.is_empty());
        assert!(
            outcome.description.contains("package"),
            "{}",
            outcome.description
        );
    }
}

//! Plain-text tables for people, and the one gate every text for a terminal passes.

use std::borrow::Cow;

use crate::model::{Event, ServerRow, format_time};
use crate::wire::msg::{AccountView, ServerStatusView};

/// `text` safe for a terminal: devices and other servers choose names, descriptions and
/// outputs, so control characters (escape sequences, carriage returns, bells) and the
/// invisible bidirectional overrides are shown as escapes. New lines and tabs stay.
pub fn printable(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

/// One cell of a table or one value of [`fields`]: [`printable`], and line breaks and tabs
/// escaped too, so that what a device sent cannot draw a row or a column of its own.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escaped(text, |_| false)
}

/// `text` with every control or direction-changing character escaped but those `kept`.
fn escaped(text: &str, kept: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !kept(c))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints text for people to standard output, through [`printable`].
pub fn show(text: &str) {
    print!("{}", printable(text));
}

/// Left-aligned columns, two spaces apart, a header line first.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| one_line(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in &rows {
        out.push_str(&line(&mut row.iter().map(|cell| cell.as_ref())));
    }
    out
}

/// `key  value` lines, the values aligned: one property per line.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        let pad = width - key.chars().count();
        let line = format!("{key}{}  {}", " ".repeat(pad), one_line(value));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn opt_time(t: Option<i64>) -> String {
    t.map(format_time).unwrap_or_else(|| "never".into())
}

/// The tree, indented by depth; TYPE tells virtual servers (tenants hosted by their
/// parent) and passive ones (their parent connects to them) from physical ones, DEVICES
/// is what each server last reported managing, INSTANCE the installation it last said it
/// is (a reinstalled server has a new one).
pub fn servers(rows: &[ServerRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{}{}", "  ".repeat(r.depth as usize), r.name),
                r.path.clone(),
                r.depth.to_string(),
                if r.virtual_server {
                    "virtual"
                } else if r.passive {
                    "passive"
                } else {
                    "physical"
                }
                .into(),
                r.status.as_str().to_string(),
                r.devices.to_string(),
                if r.version.is_empty() {
                    "-".into()
                } else {
                    r.version.clone()
                },
                r.address.clone().unwrap_or_else(|| "-".into()),
                opt_time(r.last_connected),
                if r.instance_id.is_empty() {
                    "-".into()
                } else {
                    r.instance_id.clone()
                },
            ]
        })
        .collect();
    render(
        &[
            "SERVER",
            "PATH",
            "DEPTH",
            "TYPE",
            "STATUS",
            "DEVICES",
            "VERSION",
            "ADDRESS",
            "LAST CONNECTED",
            "INSTANCE",
        ],
        &body,
    )
}

pub fn status(s: &ServerStatusView) -> String {
    let mut out = format!(
        "server       {}\nversion      {}\nlisten       {} (udp)\nfingerprint  {}\nstarted      {}\nsecondaries  {} connected\ndevices      {} registered, {} connected, {} waiting for approval\n",
        s.name,
        s.software_version,
        s.listen,
        s.fingerprint,
        format_time(s.started),
        s.secondaries,
        s.devices,
        s.devices_connected,
        s.devices_pending
    );
    match &s.parent {
        None => out.push_str("parent       none (this is a primary server)\n"),
        Some(p) => {
            out.push_str(&format!("parent       {} link {}", p.address, p.health));
            if let Some(since) = p.connected_since {
                out.push_str(&format!(" since {}", format_time(since)));
            }
            if p.consecutive_failures > 0 {
                out.push_str(&format!(
                    ", {} failed attempts in a row",
                    p.consecutive_failures
                ));
            }
            if let Some(e) = &p.last_error {
                out.push_str(&format!(", last error: {e}"));
            }
            out.push('\n');
        }
    }
    out
}

/// The events of the server `asked` and below it; SERVER is the path of the server each
/// happened on, as `server list` shows it.
pub fn events(asked: &str, events: &[Event]) -> String {
    let body: Vec<Vec<String>> = events.iter().map(|e| event_row(asked, e)).collect();
    render(
        &["SEQ", "TIME", "SERVER", "SEVERITY", "KIND", "MESSAGE"],
        &body,
    )
}

/// Events as lines without a header, for `event list --follow`.
pub fn event_lines(asked: &str, events: &[Event]) -> String {
    events
        .iter()
        .map(|e| event_row(asked, e).join("  ") + "\n")
        .collect()
}

fn event_row(asked: &str, e: &Event) -> Vec<String> {
    let server = std::iter::once(asked)
        .chain(e.origin.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("/");
    vec![
        e.seq.to_string(),
        format_time(e.time),
        server,
        e.severity.as_str().to_string(),
        e.kind.as_str().to_string(),
        e.message.clone(),
    ]
}

pub fn accounts(accounts: &[AccountView]) -> String {
    let body: Vec<Vec<String>> = accounts
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.role.as_str().to_string(),
                format_time(a.created),
            ]
        })
        .collect();
    render(&["ACCOUNT", "ROLE", "CREATED"], &body)
}

#[cfg(test)]
mod tests {
    use crate::model::{ServerRow, ServerStatus};

    #[test]
    fn columns_align() {
        let t = super::render(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
    }

    #[test]
    fn servers_show_devices_and_virtual_servers() {
        let row = |path: &str, depth: u32, devices: u64, virtual_server: bool| ServerRow {
            path: path.into(),
            depth,
            name: path.rsplit('/').next().unwrap_or(path).into(),
            group: String::new(),
            status: ServerStatus::Active,
            version: String::new(),
            instance_id: if virtual_server {
                String::new()
            } else {
                "5c3a0e1f2b4d6879".into()
            },
            address: None,
            last_connected: None,
            devices,
            virtual_server,
            passive: path.ends_with("dmz"),
        };
        let t = super::servers(&[
            row("primary", 0, 200, false),
            row("primary/dmz", 1, 3, false),
            row("primary/tenant-a", 1, 12, true),
        ]);
        let expected = "\
SERVER      PATH              DEPTH  TYPE      STATUS  DEVICES  VERSION  ADDRESS  LAST CONNECTED  INSTANCE
primary     primary           0      physical  Active  200      -        -        never           5c3a0e1f2b4d6879
  dmz       primary/dmz       1      passive   Active  3        -        -        never           5c3a0e1f2b4d6879
  tenant-a  primary/tenant-a  1      virtual   Active  12       -        -        never           -
";
        assert_eq!(t, expected);
    }
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn escape_sequences_from_devices_are_shown_not_obeyed() {
        let name = "pc-1\u{1b}]0;owned\u{7}\u{1b}[2J\r\u{202e}gpj.exe";
        let shown = printable(name);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert!(shown.contains("\\u{1b}]0;owned"), "{shown}");
        assert!(shown.contains("\\u{202e}"), "{shown}");
        assert_eq!(printable("two\nlines\tand a tab"), "two\nlines\tand a tab");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }
}

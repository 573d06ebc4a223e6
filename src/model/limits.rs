//! What a server keeps of what a device sends: every string and list a device controls is cut
//! to a cap, visibly, before it is stored, listed, or copied into an event. A real agent stays
//! within these caps (its outputs are captured up to 64 KiB a stream, its scan matches up to
//! 1000), so only a misbehaving device loses anything.

use super::device::DeviceFacts;
use super::task::{Details, Outcome};

/// A device's names: display name, DNS name, host name.
pub const NAME_MAX: usize = 255;
/// Short strings: OS, agent version, time zone, an address, a tag, an application's name, a
/// package's name or version.
pub const SHORT_MAX: usize = 128;
/// Entries of a device's lists: addresses, tags, applications.
pub const LIST_MAX: usize = 64;
/// A result's one line for people, which events repeat.
pub const DESCRIPTION_MAX: usize = 1024;
/// Each captured output stream of a command.
pub const OUTPUT_MAX: usize = 64 * 1024;
/// Scan matches of one result, and the length of each path.
pub const SCAN_MATCHES_MAX: usize = 1000;
pub const PATH_MAX: usize = 1024;
/// Packages of one inventory.
pub const PACKAGES_MAX: usize = 20_000;

/// What a cut string ends with, so nobody takes it for the whole.
pub const CUT_MARK: &str = " [cut by the server]";

/// Cuts `text` to at most `max` bytes (on a character boundary); true if it was cut.
pub fn cut(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// Cuts `text` to `max` bytes and marks it as cut.
fn cut_marked(text: &mut String, max: usize) {
    if cut(text, max.saturating_sub(CUT_MARK.len())) {
        text.push_str(CUT_MARK);
    }
}

fn cut_list(list: &mut Vec<String>, entries: usize, each: usize) {
    list.truncate(entries);
    for entry in list {
        cut_marked(entry, each);
    }
}

impl DeviceFacts {
    /// The facts cut to the caps above.
    pub fn capped(mut self) -> DeviceFacts {
        cut_marked(&mut self.display_name, NAME_MAX);
        cut_marked(&mut self.dns_name, NAME_MAX);
        cut_marked(&mut self.os, SHORT_MAX);
        cut_marked(&mut self.agent_version, SHORT_MAX);
        cut(&mut self.time_zone, SHORT_MAX);
        cut_list(&mut self.addresses, LIST_MAX, SHORT_MAX);
        cut_list(&mut self.tags, LIST_MAX, SHORT_MAX);
        self.applications.truncate(LIST_MAX);
        for app in &mut self.applications {
            cut_marked(&mut app.name, SHORT_MAX);
        }
        self
    }
}

impl Outcome {
    /// The outcome cut to the caps above; a cut output says so in its `*_truncated` flag.
    pub fn capped(mut self) -> Outcome {
        cut_marked(&mut self.description, DESCRIPTION_MAX);
        self.progress = self.progress.min(100);
        match &mut self.details {
            Details::None => {}
            Details::Command {
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
                ..
            } => {
                *stdout_truncated |= cut(stdout, OUTPUT_MAX);
                *stderr_truncated |= cut(stderr, OUTPUT_MAX);
            }
            Details::Scan { matches, .. } => {
                matches.truncate(SCAN_MATCHES_MAX);
                for m in matches {
                    cut_marked(&mut m.path, PATH_MAX);
                    cut(&mut m.sha256, 64);
                }
            }
            Details::Inventory(inventory) => {
                cut_marked(&mut inventory.os, NAME_MAX);
                cut_marked(&mut inventory.hostname, NAME_MAX);
                cut_list(&mut inventory.addresses, LIST_MAX, SHORT_MAX);
                inventory.packages.truncate(PACKAGES_MAX);
                for p in &mut inventory.packages {
                    cut_marked(&mut p.name, SHORT_MAX);
                    cut_marked(&mut p.version, SHORT_MAX);
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::task::DeviceState;

    #[test]
    fn what_a_device_sends_is_cut_visibly_to_the_caps() {
        let mut text = "é".repeat(600);
        assert!(cut(&mut text, 1001));
        assert_eq!(text.len(), 1000, "on a character boundary");

        let outcome = Outcome {
            state: DeviceState::Failed,
            description: "d".repeat(1 << 20),
            progress: 250,
            need_restart: false,
            details: Details::Command {
                exit_code: Some(1),
                stdout: "o".repeat(OUTPUT_MAX + 1),
                stderr: "e".repeat(10),
                stdout_truncated: false,
                stderr_truncated: false,
            },
        }
        .capped();
        assert_eq!(outcome.description.len(), DESCRIPTION_MAX);
        assert!(outcome.description.ends_with(CUT_MARK));
        assert_eq!(outcome.progress, 100);
        match outcome.details {
            Details::Command {
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
                ..
            } => {
                assert_eq!(stdout.len(), OUTPUT_MAX);
                assert!(stdout_truncated);
                assert_eq!(stderr.len(), 10);
                assert!(!stderr_truncated);
            }
            other => panic!("{other:?}"),
        }

        let facts = DeviceFacts {
            display_name: "n".repeat(10_000),
            dns_name: "short".into(),
            addresses: vec!["a".into(); 1000],
            os: String::new(),
            agent_version: String::new(),
            tags: vec!["t".repeat(1000)],
            applications: vec![],
            time_zone: "UTC".into(),
        }
        .capped();
        assert_eq!(facts.display_name.len(), NAME_MAX);
        assert!(facts.display_name.ends_with(CUT_MARK));
        assert_eq!(facts.dns_name, "short");
        assert_eq!(facts.addresses.len(), LIST_MAX);
        assert_eq!(facts.tags[0].len(), SHORT_MAX);
    }
}

//! What a batch of events looks like to its receiver: an email's subject and body, a
//! webhook's JSON document and its signature. No I/O.

use ring::hmac;
use serde::Serialize;

use crate::model::{Event, EventKind, Severity, UnixMillis};

/// The path of the server an event happened on, from the top of this server's view: this
/// server's name and the names below it.
pub fn server_path(server: &str, event: &Event) -> String {
    let mut path = server.to_string();
    for name in &event.origin {
        path.push('/');
        path.push_str(name);
    }
    path
}

/// RFC 3339, UTC, to the millisecond.
pub fn rfc3339(ms: UnixMillis) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

/// `[canopy] primary: 3 task results (1 error)`.
pub fn subject(server: &str, events: &[Event]) -> String {
    let n = events.len();
    let results = events
        .iter()
        .all(|e| matches!(e.kind, EventKind::DeviceResult | EventKind::RunFinished));
    let what = match (results, n) {
        (true, 1) => "task result",
        (true, _) => "task results",
        (false, 1) => "event",
        (false, _) => "events",
    };
    let count = |s: Severity| events.iter().filter(|e| e.severity == s).count();
    let plural = |n: usize, word: &str| match n {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    };
    let mut notes = Vec::new();
    if count(Severity::Error) > 0 {
        notes.push(plural(count(Severity::Error), "error"));
    }
    if count(Severity::Warning) > 0 {
        notes.push(plural(count(Severity::Warning), "warning"));
    }
    let notes = match notes.is_empty() {
        true => String::new(),
        false => format!(" ({})", notes.join(", ")),
    };
    // Names and messages come from devices too: no line break may reach a header.
    format!("[canopy] {server}: {n} {what}{notes}").replace(['\r', '\n'], " ")
}

/// One line per event: time, server path, severity, kind, message.
pub fn body(server: &str, events: &[Event]) -> String {
    let mut text = String::new();
    for e in events {
        let message = e.message.replace(['\r', '\n'], " ");
        text.push_str(&format!(
            "{}  {}  {}  {}  {}\n",
            crate::model::format_time(e.time),
            server_path(server, e),
            e.severity.as_str(),
            e.kind.as_str(),
            message
        ));
    }
    text
}

#[derive(Serialize)]
struct Document<'a> {
    server: &'a str,
    channel: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    test: bool,
    events: Vec<EventDoc>,
}

#[derive(Serialize)]
struct EventDoc {
    seq: u64,
    time: String,
    server_path: String,
    severity: &'static str,
    kind: &'static str,
    message: String,
}

/// The webhook's JSON document; `test` marks `canopy notify test`'s (with no events).
pub fn document(server: &str, channel: &str, events: &[Event], test: bool) -> Vec<u8> {
    let doc = Document {
        server,
        channel,
        test,
        events: events
            .iter()
            .map(|e| EventDoc {
                seq: e.seq,
                time: rfc3339(e.time),
                server_path: server_path(server, e),
                severity: e.severity.as_str(),
                kind: e.kind.as_str(),
                message: e.message.clone(),
            })
            .collect(),
    };
    // Strings and numbers only: serializing cannot fail.
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, the `X-Canopy-Signature` header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body);
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in tag.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, severity: Severity, kind: EventKind, origin: &[&str]) -> Event {
        Event {
            seq,
            time: 1_764_558_000_000,
            severity,
            kind,
            message: format!("task \"Scan\" run 1 on sim-{seq}: x\ny"),
            origin: origin.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn subjects_count_results_and_their_severities() {
        let e = |seq, severity| event(seq, severity, EventKind::DeviceResult, &[]);
        let three = [
            e(1, Severity::Error),
            e(2, Severity::Info),
            e(3, Severity::Info),
        ];
        assert_eq!(
            subject("primary", &three),
            "[canopy] primary: 3 task results (1 error)"
        );
        let one = [e(1, Severity::Warning)];
        assert_eq!(
            subject("primary", &one),
            "[canopy] primary: 1 task result (1 warning)"
        );
        let login = [event(4, Severity::Warning, EventKind::LoginFailed, &[])];
        assert_eq!(subject("a\nb", &login), "[canopy] a b: 1 event (1 warning)");
    }

    #[test]
    fn the_body_has_one_line_per_event_with_its_path() {
        let events = [event(
            7,
            Severity::Error,
            EventKind::DeviceResult,
            &["branch-1"],
        )];
        let body = body("primary", &events);
        assert_eq!(body.lines().count(), 1);
        assert!(
            body.starts_with(
                "2025-12-01 03:00:00 UTC  primary/branch-1  error  device-result  task"
            ),
            "{body}"
        );
    }

    #[test]
    fn the_document_and_its_signature() {
        let events = [event(7, Severity::Info, EventKind::RunFinished, &["b"])];
        let doc = document("primary", "hook", &events, false);
        let value: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(value["server"], "primary");
        assert_eq!(value["channel"], "hook");
        assert!(value.get("test").is_none());
        let e = &value["events"][0];
        assert_eq!(e["seq"], 7);
        assert_eq!(e["time"], "2025-12-01T03:00:00Z");
        assert_eq!(e["server_path"], "primary/b");
        assert_eq!(
            (e["severity"].as_str(), e["kind"].as_str()),
            (Some("info"), Some("run-finished"))
        );
        let test: serde_json::Value =
            serde_json::from_slice(&document("primary", "hook", &[], true)).unwrap();
        assert_eq!(test["test"], true);
        // RFC 4231, test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

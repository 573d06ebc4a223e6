//! Secrets a console wizard holds between its steps (a task account's password, the new
//! password of the Change tasks password wizard): kept here in memory, never put back into
//! a page. Each is found by a random draft id that the page carries, and only by the
//! session that put it: an id shown to another session finds nothing. The store is bounded
//! (in all and per session, the oldest dropped first) and each secret expires, so that an
//! abandoned wizard does not keep a password for long.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

/// Secrets held at once, all sessions together.
pub(crate) const MAX_DRAFTS: usize = 1000;
/// Secrets held at once for one session: a few wizards open in tabs.
pub(crate) const MAX_PER_SESSION: usize = 8;
/// How long a secret is held after it was put.
pub(crate) const LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The secrets held, by draft id.
#[derive(Default)]
pub(crate) struct Drafts {
    held: HashMap<String, Held>,
    /// Orders the secrets by age, whatever the clock says.
    next: u64,
}

struct Held {
    /// A digest of the session's token: the token itself is not kept a second time.
    owner: [u8; 32],
    secret: String,
    put: Instant,
    order: u64,
}

impl Drafts {
    /// Holds `secret` for the session of `token`; the draft id to carry in the page, or
    /// `None` if the system's random generator failed.
    pub(crate) fn put(&mut self, token: &str, secret: String, now: Instant) -> Option<String> {
        let mut bytes = [0u8; 16];
        SystemRandom::new().fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let owner = owner_of(token);
        self.expire(now);
        while self.held.values().filter(|h| h.owner == owner).count() >= MAX_PER_SESSION {
            self.drop_oldest(|h| h.owner == owner);
        }
        while self.held.len() >= MAX_DRAFTS {
            self.drop_oldest(|_| true);
        }
        self.next += 1;
        self.held.insert(
            id.clone(),
            Held {
                owner,
                secret,
                put: now,
                order: self.next,
            },
        );
        Some(id)
    }

    /// The secret of draft `id`, still held, if the session of `token` put it.
    pub(crate) fn get(&mut self, token: &str, id: &str, now: Instant) -> Option<String> {
        self.expire(now);
        let owner = owner_of(token);
        self.held
            .get(id)
            .filter(|h| h.owner == owner)
            .map(|h| h.secret.clone())
    }

    /// The secret of draft `id`, no longer held: a secret is taken once.
    pub(crate) fn take(&mut self, token: &str, id: &str, now: Instant) -> Option<String> {
        let secret = self.get(token, id, now)?;
        self.held.remove(id);
        Some(secret)
    }

    fn expire(&mut self, now: Instant) {
        self.held
            .retain(|_, h| now.saturating_duration_since(h.put) < LIFETIME);
    }

    fn drop_oldest(&mut self, of: impl Fn(&Held) -> bool) {
        let oldest = self
            .held
            .iter()
            .filter(|(_, h)| of(h))
            .min_by_key(|(_, h)| h.order)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            self.held.remove(&id);
        }
    }
}

fn owner_of(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("canopy-console-draft\0{token}").as_bytes(),
    );
    let mut owner = [0u8; 32];
    owner.copy_from_slice(digest.as_ref());
    owner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_taken_once_by_its_session_only() {
        let mut drafts = Drafts::default();
        let now = Instant::now();
        let id = drafts.put("session-a", "pw".into(), now).unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(drafts.get("session-b", &id, now), None, "another session");
        assert_eq!(drafts.take("session-b", &id, now), None);
        assert_eq!(drafts.get("session-a", "not-an-id", now), None);
        assert_eq!(drafts.get("session-a", &id, now).as_deref(), Some("pw"));
        assert_eq!(drafts.take("session-a", &id, now).as_deref(), Some("pw"));
        assert_eq!(drafts.take("session-a", &id, now), None, "taken once");
        let other = drafts.put("session-a", "pw".into(), now).unwrap();
        assert_ne!(id, other, "a new id each time");
    }

    #[test]
    fn a_secret_expires_after_its_lifetime() {
        let mut drafts = Drafts::default();
        let now = Instant::now();
        let id = drafts.put("s", "pw".into(), now).unwrap();
        let almost = now + LIFETIME - Duration::from_secs(1);
        assert_eq!(drafts.get("s", &id, almost).as_deref(), Some("pw"));
        assert_eq!(drafts.get("s", &id, now + LIFETIME), None);
        assert!(drafts.held.is_empty(), "dropped, not only hidden");
    }

    #[test]
    fn the_store_is_bounded_per_session_and_in_all_the_oldest_dropped() {
        let mut drafts = Drafts::default();
        let now = Instant::now();
        let ids: Vec<String> = (0..MAX_PER_SESSION + 2)
            .map(|i| drafts.put("s", format!("pw-{i}"), now).unwrap())
            .collect();
        assert_eq!(drafts.held.len(), MAX_PER_SESSION);
        assert_eq!(drafts.get("s", &ids[0], now), None);
        assert_eq!(drafts.get("s", &ids[1], now), None);
        assert_eq!(drafts.get("s", &ids[2], now).as_deref(), Some("pw-2"));
        let last = ids.last().unwrap();
        assert_eq!(
            drafts.get("s", last, now),
            Some(format!("pw-{}", MAX_PER_SESSION + 1))
        );

        let mut drafts = Drafts::default();
        let first = drafts.put("session-0", "first".into(), now).unwrap();
        for i in 1..MAX_DRAFTS + 5 {
            drafts
                .put(&format!("session-{i}"), "pw".into(), now)
                .unwrap();
        }
        assert_eq!(drafts.held.len(), MAX_DRAFTS);
        assert_eq!(
            drafts.get("session-0", &first, now),
            None,
            "the oldest dropped"
        );
    }
}

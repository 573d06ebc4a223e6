//! How fast anyone may guess passwords: per source address and per account, with time passed
//! in. Refusals cost no password hashing, so a flood of guesses costs the server little.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Attempts a source address may make at once, and how often it earns another.
const SOURCE_BURST: u32 = 10;
const SOURCE_REFILL: Duration = Duration::from_secs(6);
/// Wrong passwords in a row after which an account is locked, and for how long at first; each
/// further failure after a lock doubles it, up to the maximum.
const ACCOUNT_STRIKES: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(30);
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
/// Entries kept before idle ones are forgotten, so guessing with made-up names or from many
/// addresses cannot grow the tables without bound.
const MAX_ENTRIES: usize = 10_000;
/// What each table keeps after a trim: together three quarters of the maximum, so the next
/// trim (which reads the tables whole) comes only after a quarter of it in new entries.
const KEEP_AFTER_TRIM: usize = MAX_ENTRIES * 3 / 8;

/// Why an attempt is refused before its password is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The source address used up its attempts.
    Source { retry_in: Duration },
    /// The account failed too often in a row.
    Account { retry_in: Duration },
}

impl Refusal {
    /// What the client is told: the same for known and unknown names.
    pub fn message(&self) -> String {
        match self {
            Refusal::Source { retry_in } => format!(
                "too many login attempts from this address; try again in {} s",
                retry_in.as_secs().max(1)
            ),
            Refusal::Account { retry_in } => format!(
                "too many failed logins for this account; try again in {} s",
                retry_in.as_secs().max(1)
            ),
        }
    }
}

/// The attempts of one source address: a token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    /// When the last token was earned (or the bucket was made).
    since: Instant,
}

/// The failures of one account in a row.
#[derive(Clone, Copy, Debug)]
struct Strikes {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

#[derive(Default)]
pub struct LoginGuard {
    sources: HashMap<IpAddr, Bucket>,
    accounts: HashMap<String, Strikes>,
    /// How many times the tables were trimmed (each pass reads them whole).
    trims: u64,
}

/// What a failure changed, for the event log: one line when a lock begins, not one a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockedFor(pub Duration);

impl LoginGuard {
    /// Takes one attempt of `source` for `user`, or says why not.
    pub fn admit(&mut self, user: &str, source: IpAddr, now: Instant) -> Result<(), Refusal> {
        if let Some(until) = self.accounts.get(user).and_then(|s| s.locked_until)
            && until > now
        {
            return Err(Refusal::Account {
                retry_in: until - now,
            });
        }
        let key = source_key(source);
        let bucket = self.sources.entry(key).or_insert(Bucket {
            tokens: SOURCE_BURST,
            since: now,
        });
        refill(bucket, now);
        if bucket.tokens == 0 {
            let retry_in =
                SOURCE_REFILL.saturating_sub(now.saturating_duration_since(bucket.since));
            return Err(Refusal::Source { retry_in });
        }
        bucket.tokens -= 1;
        self.forget_idle(now);
        Ok(())
    }

    /// Records a wrong password (or an unknown name); returns the lock it begins, if any.
    pub fn failed(&mut self, user: &str, now: Instant) -> Option<LockedFor> {
        let strikes = self.accounts.entry(user.to_string()).or_insert(Strikes {
            failures: 0,
            locked_until: None,
            last: now,
        });
        strikes.failures = strikes.failures.saturating_add(1);
        strikes.last = now;
        let over = strikes.failures.checked_sub(ACCOUNT_STRIKES)?;
        let lock = FIRST_LOCK
            .saturating_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .min(LONGEST_LOCK);
        strikes.locked_until = Some(now + lock);
        Some(LockedFor(lock))
    }

    /// A successful login clears the account's failures.
    pub fn succeeded(&mut self, user: &str) {
        self.accounts.remove(user);
    }

    /// Drops full buckets and accounts neither locked nor failing lately, once the tables
    /// are large; then, if still too large, the oldest entries, down to [`KEEP_AFTER_TRIM`]
    /// each.
    fn forget_idle(&mut self, now: Instant) {
        if self.sources.len() + self.accounts.len() <= MAX_ENTRIES {
            return;
        }
        self.trims += 1;
        self.sources.retain(|_, b| {
            refill(b, now);
            b.tokens < SOURCE_BURST
        });
        self.accounts.retain(|_, s| {
            s.locked_until.is_some_and(|t| t > now)
                || now.saturating_duration_since(s.last) < LONGEST_LOCK
        });
        if self.accounts.len() > KEEP_AFTER_TRIM {
            let mut by_age: Vec<(Instant, String)> = self
                .accounts
                .iter()
                .map(|(name, s)| (s.last, name.clone()))
                .collect();
            by_age.sort();
            let excess = self.accounts.len() - KEEP_AFTER_TRIM;
            for (_, name) in by_age.into_iter().take(excess) {
                self.accounts.remove(&name);
            }
        }
        if self.sources.len() > KEEP_AFTER_TRIM {
            let mut by_age: Vec<(Instant, IpAddr)> =
                self.sources.iter().map(|(ip, b)| (b.since, *ip)).collect();
            by_age.sort();
            let excess = self.sources.len() - KEEP_AFTER_TRIM;
            for (_, ip) in by_age.into_iter().take(excess) {
                self.sources.remove(&ip);
            }
        }
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.sources.len() + self.accounts.len()
    }
}

fn refill(bucket: &mut Bucket, now: Instant) {
    let elapsed = now.saturating_duration_since(bucket.since);
    let earned = (elapsed.as_millis() / SOURCE_REFILL.as_millis()) as u32;
    if earned == 0 {
        return;
    }
    bucket.tokens = bucket.tokens.saturating_add(earned).min(SOURCE_BURST);
    bucket.since += SOURCE_REFILL * earned;
    if bucket.tokens == SOURCE_BURST {
        bucket.since = now;
    }
}

/// An IPv6 address counts by its /64, which one host usually holds whole.
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_one_attempt_per_refill() {
        let (mut guard, t0) = (LoginGuard::default(), Instant::now());
        let a = ip("192.0.2.1");
        for i in 0..SOURCE_BURST {
            assert_eq!(guard.admit(&format!("u{i}"), a, t0), Ok(()));
        }
        let refused = guard.admit("u", a, t0).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Source {
                retry_in: SOURCE_REFILL
            }
        );
        assert!(refused.message().contains("from this address"));
        // Another address is not affected, and the first earns one attempt per refill.
        assert_eq!(guard.admit("u", ip("192.0.2.2"), t0), Ok(()));
        let later = t0 + SOURCE_REFILL;
        assert_eq!(guard.admit("u", a, later), Ok(()));
        assert!(guard.admit("u", a, later).is_err());
    }

    #[test]
    fn an_account_locks_after_five_failures_and_each_further_one_doubles_the_lock() {
        let (mut guard, t0) = (LoginGuard::default(), Instant::now());
        for _ in 0..ACCOUNT_STRIKES - 1 {
            assert_eq!(guard.failed("admin", t0), None);
        }
        assert_eq!(guard.failed("admin", t0), Some(LockedFor(FIRST_LOCK)));
        let refused = guard.admit("admin", ip("192.0.2.9"), t0).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Account {
                retry_in: FIRST_LOCK
            }
        );
        // Other accounts are not affected; after the lock, one more failure locks it longer.
        assert_eq!(guard.admit("other", ip("192.0.2.9"), t0), Ok(()));
        let after = t0 + FIRST_LOCK;
        assert_eq!(guard.admit("admin", ip("192.0.2.10"), after), Ok(()));
        assert_eq!(
            guard.failed("admin", after),
            Some(LockedFor(FIRST_LOCK * 2))
        );
        for _ in 0..20 {
            guard.failed("admin", after);
        }
        assert_eq!(guard.failed("admin", after), Some(LockedFor(LONGEST_LOCK)));
        // A success clears it all.
        guard.succeeded("admin");
        assert_eq!(guard.admit("admin", ip("192.0.2.11"), after), Ok(()));
        assert_eq!(guard.failed("admin", after), None);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let (mut guard, t0) = (LoginGuard::default(), Instant::now());
        for i in 0..SOURCE_BURST {
            guard
                .admit("u", ip(&format!("2001:db8::{:x}", i + 1)), t0)
                .unwrap();
        }
        assert!(guard.admit("u", ip("2001:db8::ffff"), t0).is_err());
        assert!(guard.admit("u", ip("2001:db8:0:1::1"), t0).is_ok());
        assert_eq!(source_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn made_up_names_and_addresses_do_not_grow_the_tables_without_bound() {
        let (mut guard, t0) = (LoginGuard::default(), Instant::now());
        for i in 0..50_000u32 {
            let source = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let name = format!("guess-{i}");
            if guard.admit(&name, source, t0).is_ok() {
                guard.failed(&name, t0);
            }
        }
        assert!(guard.entries() <= MAX_ENTRIES + 2, "{}", guard.entries());
        // Each trim reads the tables whole, so it must leave room for many guesses, or a
        // flood pays a sort at every guess (it did: 45,000 trims). 100,000 entries made, a
        // quarter of the maximum freed each time: about 40.
        assert!(
            guard.trims <= 50,
            "{} trims for 50,000 guesses",
            guard.trims
        );
    }
}

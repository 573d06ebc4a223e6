//! The secondary's side of its link to its parent: when to (re)connect and how healthy the
//! link is. Reconnects back off exponentially with jitter so that many children restarting at
//! once do not all hit their parent in the same instant.

use std::time::{Duration, Instant};

use rand::Rng;

/// How the link to the parent is doing, as an administrator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkHealth {
    /// Not connected yet, or reconnecting after fewer failures than the degraded threshold.
    Connecting,
    Up,
    /// Several attempts in a row have failed.
    Degraded,
    /// Many attempts in a row have failed; still retried, at the longest backoff.
    Failed,
}

impl LinkHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkHealth::Connecting => "Connecting",
            LinkHealth::Up => "Up",
            LinkHealth::Degraded => "Degraded",
            LinkHealth::Failed => "Failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkPolicy {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Consecutive failed attempts after which the link is Degraded.
    pub degraded_after: u32,
    /// Consecutive failed attempts after which the link is Failed.
    pub failed_after: u32,
}

impl Default for LinkPolicy {
    fn default() -> Self {
        LinkPolicy {
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            degraded_after: 3,
            failed_after: 10,
        }
    }
}

/// Exponential backoff with "full jitter": the n-th delay is uniform in [0, d] where
/// d = min(max, initial * 2^(n-1)). Spreading over the whole window is what turns thousands
/// of devices losing their server at once into a stream the server can absorb, instead of a
/// burst at every step of the backoff.
pub fn backoff_delay(policy: &LinkPolicy, failures: u32, rng: &mut impl Rng) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let full = policy
        .backoff_initial
        .saturating_mul(1u32 << exp)
        .min(policy.backoff_max);
    Duration::from_nanos(rng.random_range(0..=full.as_nanos() as u64))
}

#[derive(Debug)]
pub struct UpstreamLink {
    policy: LinkPolicy,
    health: LinkHealth,
    failures: u32,
    next_attempt: Option<Instant>,
    connected_at: Option<Instant>,
    last_error: Option<String>,
}

/// A change of health the runtime should record as an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    pub from: LinkHealth,
    pub to: LinkHealth,
}

impl UpstreamLink {
    /// A link that should be attempted at once.
    pub fn new(policy: LinkPolicy, now: Instant) -> Self {
        UpstreamLink {
            policy,
            health: LinkHealth::Connecting,
            failures: 0,
            next_attempt: Some(now),
            connected_at: None,
            last_error: None,
        }
    }

    pub fn health(&self) -> LinkHealth {
        self.health
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn connected_at(&self) -> Option<Instant> {
        self.connected_at
    }

    /// When the runtime should next call `poll_attempt`; `None` while connected.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_attempt
    }

    /// True when it is time to start a connection attempt. The attempt is then in flight
    /// until `handle_connected` or `handle_failure`.
    pub fn poll_attempt(&mut self, now: Instant) -> bool {
        match self.next_attempt {
            Some(at) if at <= now => {
                self.next_attempt = None;
                true
            }
            _ => false,
        }
    }

    pub fn handle_connected(&mut self, now: Instant) -> Option<HealthChange> {
        self.failures = 0;
        self.next_attempt = None;
        self.connected_at = Some(now);
        self.last_error = None;
        self.set_health(LinkHealth::Up)
    }

    /// An attempt failed, or an established link dropped. Schedules the next attempt.
    pub fn handle_failure(
        &mut self,
        now: Instant,
        error: String,
        rng: &mut impl Rng,
    ) -> Option<HealthChange> {
        let was_up = self.health == LinkHealth::Up;
        self.connected_at = None;
        self.last_error = Some(error);
        // A link that was up and dropped starts counting afresh: one drop is not a failing link.
        self.failures = if was_up {
            1
        } else {
            self.failures.saturating_add(1)
        };
        self.next_attempt = Some(now + backoff_delay(&self.policy, self.failures, rng));
        let health = if self.failures >= self.policy.failed_after {
            LinkHealth::Failed
        } else if self.failures >= self.policy.degraded_after {
            LinkHealth::Degraded
        } else {
            LinkHealth::Connecting
        };
        self.set_health(health)
    }

    fn set_health(&mut self, to: LinkHealth) -> Option<HealthChange> {
        let from = self.health;
        self.health = to;
        (from != to).then_some(HealthChange { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> LinkPolicy {
        LinkPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            degraded_after: 3,
            failed_after: 5,
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut rng = StdRng::seed_from_u64(7);
        let p = policy();
        for failures in 1..30 {
            let full = (p.backoff_initial * (1 << (failures - 1).min(20))).min(p.backoff_max);
            let d = backoff_delay(&p, failures, &mut rng);
            assert!(d <= full, "failures {failures}: {d:?} vs {full:?}");
        }
        // Full jitter: uniform over the whole window, so the mean is about half of it.
        let mean = (0..2000)
            .map(|_| backoff_delay(&p, 30, &mut rng).as_secs_f64())
            .sum::<f64>()
            / 2000.0;
        let half = p.backoff_max.as_secs_f64() / 2.0;
        assert!((mean - half).abs() < half * 0.1, "mean {mean} vs {half}");
        let spread: std::collections::HashSet<_> =
            (0..50).map(|_| backoff_delay(&p, 10, &mut rng)).collect();
        assert!(spread.len() > 40, "jitter must spread retries");
    }

    #[test]
    fn health_goes_degraded_then_failed_and_recovers() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut now = Instant::now();
        let mut link = UpstreamLink::new(policy(), now);
        assert!(link.poll_attempt(now));
        assert!(!link.poll_attempt(now), "one attempt at a time");
        let mut changes = Vec::new();
        for _ in 0..5 {
            changes.extend(link.handle_failure(now, "refused".into(), &mut rng));
            let at = link.poll_timeout().unwrap();
            assert!(at >= now);
            assert!(!link.poll_attempt(now));
            now = at;
            assert!(link.poll_attempt(now));
        }
        assert_eq!(link.health(), LinkHealth::Failed);
        assert_eq!(
            changes.iter().map(|c| c.to).collect::<Vec<_>>(),
            vec![LinkHealth::Degraded, LinkHealth::Failed]
        );
        let change = link.handle_connected(now).unwrap();
        assert_eq!(change.to, LinkHealth::Up);
        assert_eq!(link.poll_timeout(), None);
        // A single drop of a good link is not yet a degraded link.
        link.handle_failure(now, "closed".into(), &mut rng);
        assert_eq!(link.health(), LinkHealth::Connecting);
        assert_eq!(link.consecutive_failures(), 1);
    }
}

//! The `Simulate` task: a stand-in run for simulated devices, so large trees can be exercised
//! without real work.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::{CANCELLED, Details, Outcome, cancelled};
use crate::model::task::DeviceState;

/// Relative chances of each final state.
#[derive(Clone, Copy, Debug)]
pub(super) struct Weights {
    pub succeeded: u32,
    pub warning: u32,
    pub failed: u32,
}

/// Draws the end state from `seed` first, then waits `duration_ms` unless cancelled.
pub(super) async fn run(
    duration_ms: u32,
    weights: Weights,
    need_restart_percent: u8,
    seed: u64,
    cancel: &mut watch::Receiver<bool>,
) -> Outcome {
    let Some((state, need_restart)) = draw(weights, need_restart_percent, seed) else {
        return Outcome::failed("no outcome has a weight");
    };
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(duration_ms.into())) => {}
        () = cancelled(cancel) => return Outcome::failed(CANCELLED),
    }
    let description = format!("simulated {}", state.as_str());
    Outcome {
        need_restart,
        ..Outcome::finished(state, description, Details::None)
    }
}

/// The end state and restart flag for `seed`; None when every weight is zero.
fn draw(weights: Weights, need_restart_percent: u8, seed: u64) -> Option<(DeviceState, bool)> {
    let succeeded = u64::from(weights.succeeded);
    let warning = u64::from(weights.warning);
    let total = succeeded + warning + u64::from(weights.failed);
    if total == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let pick = rng.random_range(0..total);
    let state = if pick < succeeded {
        DeviceState::Succeeded
    } else if pick < succeeded + warning {
        DeviceState::Warning
    } else {
        DeviceState::Failed
    };
    let need_restart = rng.random_range(0..100u8) < need_restart_percent.min(100);
    Some((state, need_restart))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use super::super::{TaskPayload, execute};
    use super::*;

    fn simulate(duration_ms: u32, weights: [u32; 3], need_restart_percent: u8) -> TaskPayload {
        let [succeeded, warning, failed] = weights;
        TaskPayload::Simulate {
            duration_ms,
            succeeded,
            warning,
            failed,
            need_restart_percent,
        }
    }

    async fn run_simulate(payload: &TaskPayload, seed: u64) -> Outcome {
        let (_tx, rx) = watch::channel(false);
        execute(payload, seed, rx).await
    }

    #[tokio::test]
    async fn same_seed_same_outcome() {
        let payload = simulate(5, [1, 1, 1], 50);
        for seed in [0, 1, 42, u64::MAX] {
            let first = run_simulate(&payload, seed).await;
            assert_eq!(first, run_simulate(&payload, seed).await);
            assert_eq!(
                first.description,
                format!("simulated {}", first.state.as_str())
            );
            assert_eq!(first.progress, 100);
        }
    }

    #[test]
    fn states_follow_the_weights() {
        let weights = Weights {
            succeeded: 1,
            warning: 1,
            failed: 1,
        };
        let mut counts: HashMap<DeviceState, u32> = HashMap::new();
        for seed in 0..1000 {
            let (state, _) = draw(weights, 0, seed).unwrap();
            *counts.entry(state).or_default() += 1;
        }
        for state in [
            DeviceState::Succeeded,
            DeviceState::Warning,
            DeviceState::Failed,
        ] {
            let n = counts.get(&state).copied().unwrap_or(0);
            assert!((250..=420).contains(&n), "{state:?} drawn {n} times");
        }
    }

    #[test]
    fn zero_weight_states_never_drawn_and_restart_follows_percent() {
        let weights = Weights {
            succeeded: 0,
            warning: 5,
            failed: 0,
        };
        for seed in 0..200 {
            assert_eq!(draw(weights, 100, seed), Some((DeviceState::Warning, true)));
            assert_eq!(draw(weights, 0, seed), Some((DeviceState::Warning, false)));
            assert_eq!(draw(weights, 255, seed), Some((DeviceState::Warning, true)));
        }
        let restarts = (0..1000)
            .filter(|&seed| draw(weights, 30, seed).unwrap().1)
            .count();
        assert!((230..=370).contains(&restarts), "{restarts} restarts");
    }

    #[tokio::test]
    async fn all_zero_weights_fail() {
        let outcome = run_simulate(&simulate(0, [0, 0, 0], 0), 7).await;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, "no outcome has a weight");
    }

    #[tokio::test]
    async fn cancellation_interrupts_the_wait() {
        let (tx, rx) = watch::channel(false);
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(true).unwrap();
            tx
        });
        let outcome = execute(&simulate(60_000, [1, 0, 0], 0), 1, rx).await;
        assert_eq!(outcome.description, "cancelled");
        assert!(started.elapsed() < Duration::from_secs(5));
        canceller.await.unwrap();
    }
}

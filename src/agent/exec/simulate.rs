//! The `Simulate` task: a stand-in run for simulated devices, so large trees can be exercised
//! without real work.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::{CANCELLED, Details, Outcome, Steering};
use crate::model::task::DeviceState;

/// Relative chances of each final state.
#[derive(Clone, Copy, Debug)]
pub(super) struct Weights {
    pub succeeded: u32,
    pub warning: u32,
    pub failed: u32,
}

/// How often a simulated run says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Draws the end state from `seed` first, then works for `duration_ms` (time paused does
/// not count) unless cancelled, saying how far it is every second.
pub(super) async fn run(
    duration_ms: u32,
    weights: Weights,
    need_restart_percent: u8,
    seed: u64,
    steering: &mut Steering,
) -> Outcome {
    let Some((state, need_restart)) = draw(weights, need_restart_percent, seed) else {
        return Outcome::failed("no outcome has a weight");
    };
    let total = Duration::from_millis(duration_ms.into());
    let mut left = total;
    while !left.is_zero() {
        let leg = Instant::now();
        tokio::select! {
            () = tokio::time::sleep(left.min(PROGRESS_EVERY)) => {}
            () = steering.interrupted() => {}
        }
        left = left.saturating_sub(leg.elapsed());
        if left.is_zero() {
            // The outcome says 100.
            break;
        }
        let done = (total - left).as_millis() * 100 / total.as_millis().max(1);
        steering.progress(u8::try_from(done).unwrap_or(100));
        if !steering.hold().await {
            return Outcome::failed(CANCELLED);
        }
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

    use super::super::{Control, Report, TaskPayload, execute};
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
        execute(payload, seed, Steering::unsteered(), None).await
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
        let (tx, steering, _reports) = Steering::new();
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Control::Cancel).unwrap();
            tx
        });
        let outcome = execute(&simulate(60_000, [1, 0, 0], 0), 1, steering, None).await;
        assert_eq!(outcome.description, "cancelled");
        assert!(started.elapsed() < Duration::from_secs(5));
        canceller.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_run_keeps_its_progress_and_finishes_its_time_after_resuming() {
        let (control, steering, mut reports) = Steering::new();
        let payload = simulate(10_000, [1, 0, 0], 0);
        let run = tokio::spawn(async move { execute(&payload, 1, steering, None).await });
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        control.send(Control::Pause).unwrap();
        reports.wait_for(|r| r.paused).await.unwrap();
        let at_pause = reports.borrow().percent;
        assert!((24..=26).contains(&at_pause), "{at_pause}%");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!run.is_finished(), "a paused run waits");
        assert_eq!(
            *reports.borrow(),
            Report {
                percent: at_pause,
                paused: true
            }
        );
        let resumed = tokio::time::Instant::now();
        control.send(Control::Go).unwrap();
        let outcome = run.await.unwrap();
        let rest = resumed.elapsed();
        assert!(
            rest >= Duration::from_millis(7_400) && rest <= Duration::from_millis(7_600),
            "{rest:?}"
        );
        assert_eq!(
            (outcome.state, outcome.progress),
            (DeviceState::Succeeded, 100)
        );
        assert!(!reports.borrow().paused);
        assert_eq!(
            reports.borrow().percent,
            95,
            "the last second before the end"
        );
    }
}

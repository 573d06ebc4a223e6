//! Executors of task types on a device.
//!
//! [`execute`] runs one [`TaskPayload`] to its end and reports an [`Outcome`]. It never panics
//! on bad input: a payload it cannot run ends as [`DeviceState::Failed`] with a description
//! saying why, so the task engine can always record a finished state.

mod command;
mod inventory;
mod scan;
mod simulate;

use tokio::sync::watch;

pub use crate::model::task::{Details, Inventory, Outcome, Package, ScanMatch, TaskPayload};

/// Bytes of command output kept per stream; the rest is read and dropped.
pub const MAX_CAPTURE: usize = 64 * 1024;
/// Scan matches listed in [`Details::Scan`]; all are counted in the description.
pub const MAX_SCAN_MATCHES: usize = 1000;
/// The description of every executor's outcome when its run was cancelled: state Failed,
/// progress 0. Whoever asked for the cancellation may replace it with the reason.
pub const CANCELLED: &str = "cancelled";

/// Executes a payload. Never panics on bad input: a bad payload is an Outcome with state Failed
/// and a description saying why. `seed` makes `Simulate` deterministic per (device, run): the
/// same seed gives the same outcome. `cancel` turning true stops the run (an outcome that
/// [`is_cancelled`]); a dropped sender means no cancellation.
pub async fn execute(
    payload: &TaskPayload,
    seed: u64,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    if *cancel.borrow() {
        return Outcome::failed(CANCELLED);
    }
    let outcome = match payload {
        TaskPayload::Command {
            program,
            args,
            time_limit_secs,
        } => command::run(program, args, *time_limit_secs, &mut cancel).await,
        TaskPayload::Scan { paths, blocklist } => scan::run(paths, blocklist, &mut cancel).await,
        TaskPayload::Inventory => inventory::run(&mut cancel).await,
        TaskPayload::Simulate {
            duration_ms,
            succeeded,
            warning,
            failed,
            need_restart_percent,
        } => {
            let weights = simulate::Weights {
                succeeded: *succeeded,
                warning: *warning,
                failed: *failed,
            };
            simulate::run(
                *duration_ms,
                weights,
                *need_restart_percent,
                seed,
                &mut cancel,
            )
            .await
        }
    };
    tracing::debug!(task_type = payload.type_name(), state = outcome.state.as_str(), description = %outcome.description, "task run ended");
    outcome
}

/// Whether an executor ended `outcome` because its run was cancelled.
pub fn is_cancelled(outcome: &Outcome) -> bool {
    outcome.state == crate::model::task::DeviceState::Failed && outcome.description == CANCELLED
}

/// Resolves once cancellation is asked for; never if the sender is gone without asking.
pub(crate) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// "1 file", "3 files": descriptions are read by people.
fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

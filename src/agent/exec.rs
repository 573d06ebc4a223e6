//! Executors of task types on a device.
//!
//! [`execute`] runs one [`TaskPayload`] to its end and reports an [`Outcome`]. It never panics
//! on bad input: a payload it cannot run ends as [`DeviceState::Failed`] with a description
//! saying why, so the task engine can always record a finished state.

pub mod account;
mod command;
mod inventory;
mod pam;
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

/// What the runner asks of a running executor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Control {
    #[default]
    Go,
    /// An administrator paused the run: executors that can pause do, the others go on.
    Pause,
    /// Stop now; the outcome [`is_cancelled`].
    Cancel,
}

/// What a running executor says of itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// How far it is (below 100: the outcome says 100).
    pub percent: u8,
    pub paused: bool,
}

/// An executor's ends of its run: the runner's control, and its own reports.
pub struct Steering {
    control: watch::Receiver<Control>,
    report: watch::Sender<Report>,
}

impl Steering {
    /// A steering, the control to send on and the reports to read.
    pub fn new() -> (watch::Sender<Control>, Steering, watch::Receiver<Report>) {
        let (control_tx, control) = watch::channel(Control::Go);
        let (report, report_rx) = watch::channel(Report::default());
        (control_tx, Steering { control, report }, report_rx)
    }

    /// A run nobody steers: never paused or cancelled, its reports unread.
    pub fn unsteered() -> Steering {
        Steering::new().1
    }

    fn control(&self) -> Control {
        *self.control.borrow()
    }

    /// Resolves once cancellation is asked for; never if the runner is gone without asking.
    pub(crate) async fn cancelled(&mut self) {
        if self
            .control
            .wait_for(|c| *c == Control::Cancel)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the runner asks for anything but going on.
    async fn interrupted(&mut self) {
        if self.control.wait_for(|c| *c != Control::Go).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// While the run is paused, says so and waits; false when it is cancelled.
    async fn hold(&mut self) -> bool {
        if self.control() == Control::Pause {
            self.set_paused(true);
            let resumed = self
                .control
                .wait_for(|c| *c != Control::Pause)
                .await
                .is_ok();
            self.set_paused(false);
            if !resumed {
                // The runner is gone: nobody will resume it.
                return false;
            }
        }
        self.control() != Control::Cancel
    }

    /// Says whether the executor is paused.
    fn set_paused(&self, paused: bool) {
        self.report.send_if_modified(|r| {
            let changed = r.paused != paused;
            r.paused = paused;
            changed
        });
    }

    /// Says how far the run is (kept below 100).
    fn progress(&self, percent: u8) {
        self.report.send_if_modified(|r| {
            let percent = percent.min(99);
            let changed = r.percent != percent;
            r.percent = percent;
            changed
        });
    }
}

/// Executes a payload. Never panics on bad input: a bad payload is an Outcome with state Failed
/// and a description saying why. `seed` makes `Simulate` deterministic per (device, run): the
/// same seed gives the same outcome. [`Control::Cancel`] stops the run (an outcome that
/// [`is_cancelled`]); [`Control::Pause`] pauses the executors that can (scan, simulate),
/// which say so in their [`Report`] with how far they are. A program a command starts runs
/// as `run_as` if given; the other executors run in the agent.
pub async fn execute(
    payload: &TaskPayload,
    seed: u64,
    mut steering: Steering,
    run_as: Option<&account::RunAs>,
) -> Outcome {
    if steering.control() == Control::Cancel {
        return Outcome::failed(CANCELLED);
    }
    let cancel = &mut steering;
    let outcome = match payload {
        TaskPayload::Command {
            program,
            args,
            time_limit_secs,
        } => command::run(program, args, *time_limit_secs, cancel, run_as).await,
        TaskPayload::Scan { paths, blocklist } => scan::run(paths, blocklist, cancel).await,
        TaskPayload::Inventory => inventory::run(cancel).await,
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
            simulate::run(*duration_ms, weights, *need_restart_percent, seed, cancel).await
        }
    };
    tracing::debug!(task_type = payload.type_name(), state = outcome.state.as_str(), description = %outcome.description, "task run ended");
    outcome
}

/// Whether an executor ended `outcome` because its run was cancelled.
pub fn is_cancelled(outcome: &Outcome) -> bool {
    outcome.state == crate::model::task::DeviceState::Failed && outcome.description == CANCELLED
}

/// "1 file", "3 files": descriptions are read by people.
fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

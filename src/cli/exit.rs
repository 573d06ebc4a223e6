//! The binary's exit statuses, for scripts: 0 done, 1 an error, 2 a usage error (clap's), 3
//! a run waited for (`task start --wait`) that ended with failed devices or was stopped, 130
//! a wait interrupted by Ctrl-C (the run goes on).

/// Exit status of a run waited for that did not end well.
pub const RUN_FAILED: u8 = 3;
/// Exit status of a wait interrupted by SIGINT, as shells report it.
pub const INTERRUPTED: u8 = 130;

/// How a command ended other than in success or an error: `main` exits with its status and
/// prints it without "error:".
#[derive(Debug, thiserror::Error)]
pub enum Outcome {
    #[error("run {run} of task {task} ended with {failed} of {targeted} devices failed")]
    RunFailed {
        task: String,
        run: u64,
        failed: u64,
        targeted: u64,
    },
    #[error("run {run} of task {task} was stopped before every device finished")]
    RunStopped { task: String, run: u64 },
    #[error("stopped waiting; run {run} goes on (see `canopy task stats {task}`)")]
    Interrupted { task: String, run: u64 },
}

impl Outcome {
    pub fn status(&self) -> u8 {
        match self {
            Outcome::RunFailed { .. } | Outcome::RunStopped { .. } => RUN_FAILED,
            Outcome::Interrupted { .. } => INTERRUPTED,
        }
    }
}

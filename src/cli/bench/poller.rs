//! An administrator asking for a run's statistics while it goes, from a thread and tokio
//! runtime of its own: as from another process, so the answer's time is the server's, not
//! that of a client waiting behind the server's own tasks in the same runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::deployment::Deployment;
use crate::wire::msg::{AdminRequest, AdminResponse, TaskRequest};

/// How long the poller waits between an answer and its next request.
const PAUSE: Duration = Duration::from_millis(5);

/// A run to poll, and the flag that ends the polling.
struct Poll {
    task: String,
    run_id: u64,
    stop: Arc<AtomicBool>,
}

/// What polling one run found.
pub(super) struct Polled {
    /// The median and the slowest answer, in ms.
    pub(super) median_ms: f64,
    pub(super) max_ms: f64,
}

pub(super) struct StatsPoller {
    polls: mpsc::Sender<Poll>,
    results: mpsc::Receiver<anyhow::Result<Polled>>,
    thread: JoinHandle<()>,
}

/// Polling of one run, under way.
pub(super) struct Polling<'a> {
    poller: &'a StatsPoller,
    stop: Arc<AtomicBool>,
}

impl StatsPoller {
    /// Logs in to the server at `addr` as the deployment's administrator, on a new thread.
    pub(super) fn start(d: &Deployment, addr: SocketAddr) -> anyhow::Result<StatsPoller> {
        let d = Deployment {
            dir: d.dir.clone(),
            certs: d.certs.clone(),
        };
        let (polls, to_poll) = mpsc::channel::<Poll>();
        let (report, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-admin".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = report.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let admin = match d.admin(addr).await {
                        Ok(admin) => admin,
                        Err(e) => {
                            let _ = report.send(Err(e));
                            return;
                        }
                    };
                    while let Ok(poll) = to_poll.recv() {
                        let _ = report.send(poll_run(&admin, poll).await);
                    }
                    admin.close().await;
                });
            })?;
        Ok(StatsPoller {
            polls,
            results,
            thread,
        })
    }

    /// Begins asking for `task`'s run `run_id`, until [`Polling::finish`].
    pub(super) fn poll(&self, task: &str, run_id: u64) -> anyhow::Result<Polling<'_>> {
        let stop = Arc::new(AtomicBool::new(false));
        let poll = Poll {
            task: task.to_string(),
            run_id,
            stop: stop.clone(),
        };
        if self.polls.send(poll).is_err() {
            return Err(self.failure());
        }
        Ok(Polling { poller: self, stop })
    }

    /// Why the poller's thread ended: the error it reported, or that it is gone.
    fn failure(&self) -> anyhow::Error {
        match self.results.try_recv() {
            Ok(Err(e)) => e.context("the statistics poller failed"),
            _ => anyhow::anyhow!("the statistics poller ended"),
        }
    }

    pub(super) fn stop(self) {
        drop(self.polls);
        let _ = self.thread.join();
    }
}

impl Polling<'_> {
    /// Stops polling; what it found.
    pub(super) fn finish(self) -> anyhow::Result<Polled> {
        self.stop.store(true, Ordering::Relaxed);
        self.poller
            .results
            .recv_timeout(Duration::from_secs(60))
            .context("the statistics poller did not answer")?
    }
}

async fn poll_run(admin: &crate::cli::client::AdminClient, poll: Poll) -> anyhow::Result<Polled> {
    let mut times = Vec::new();
    while !poll.stop.load(Ordering::Relaxed) {
        let stats = TaskRequest::Stats {
            task: poll.task.clone(),
            run: Some(poll.run_id),
        };
        let asked = Instant::now();
        let AdminResponse::TaskStats(_) = admin.call(AdminRequest::Task(stats)).await? else {
            bail!("unexpected answer to task stats");
        };
        times.push(asked.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(PAUSE).await;
    }
    let spread = super::figures::spread(&times);
    Ok(Polled {
        median_ms: spread.median,
        max_ms: spread.max,
    })
}

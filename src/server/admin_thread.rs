//! The administration API's own thread and tokio runtime, so that an administrator's request
//! is read, answered and written without waiting behind the devices' work in the server's
//! runtime (under full ingest, thousands of device tasks are ready at once there).
//!
//! Each admin connection, its QUIC driver (moved here, see `net::driver_route`), and every
//! task it spawns run here until the server shuts down. Its packets still arrive through the
//! endpoint's driver on the server's runtime.

use std::future::Future;
use std::pin::Pin;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, watch};

type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Sends work to the admin thread; clones share it.
#[derive(Clone)]
pub(super) struct AdminRuntime {
    jobs: mpsc::UnboundedSender<Job>,
    /// Where admin connections' QUIC drivers are moved (`net::driver_route`).
    pub(super) handle: tokio::runtime::Handle,
}

/// The thread itself, stopped by [`AdminThread::stop`].
pub(super) struct AdminThread {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminRuntime {
    /// Starts the thread for the server `name`.
    pub(super) fn start(name: &str) -> std::io::Result<(AdminRuntime, AdminThread)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (stop, mut stopped) = watch::channel(false);
        // Every log line of this thread says which server it serves, once: the span has no
        // parent, though it is made inside the span of the runtime thread that starts it.
        let root = tracing::info_span!(parent: None, "server", server = %name);
        let thread = std::thread::Builder::new()
            .name(format!("admin-{name}"))
            .spawn(move || {
                let _root = root.entered();
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            job = queue.recv() => match job {
                                Some(job) => drop(tokio::spawn(job)),
                                None => break,
                            },
                            _ = stopped.wait_for(|stop| *stop) => break,
                        }
                    }
                });
                // Dropping the runtime here drops the tasks still on it: the connections of
                // a server that is shutting down.
                drop(runtime);
            })?;
        Ok((
            AdminRuntime { jobs, handle },
            AdminThread {
                stop,
                thread: Some(thread),
            },
        ))
    }

    /// Runs `job` on the admin thread; on the calling runtime once that thread has stopped
    /// (a connection accepted as the server shuts down still gets its close).
    pub(super) fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Box::pin(job)) {
            tokio::spawn(job);
        }
    }
}

impl AdminThread {
    /// Ends the thread and the admin connections' tasks, and waits for it.
    pub(super) async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for AdminThread {
    /// A server dropped without `stop` (a test that ends early) still ends the thread.
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

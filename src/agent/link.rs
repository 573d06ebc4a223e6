//! One device's link to its server: enroll, keep the connection, take run orders (acknowledging
//! each), run each at most once, and deliver every result until the server says it has
//! stored it. It also keeps the device's local tasks as the server sends them, and sends the
//! device user's changes of them (see [`super::local`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::Instrument;

use super::apps::Applications;
use super::outbox::Outbox;
use super::planner::{Planner, order_of};
use super::run::{APPLICATION_CHECK_EVERY, CANCELLED_BEFORE_START, Runner};
use super::{DeviceLinkState, Shared, client_config};
use crate::clock::now_ms;
use crate::model::device::DeviceFacts;
use crate::model::task::{Outcome, TaskAccount};
use crate::model::{Fingerprint, RunRef};
use crate::net::conn::{describe_connection_error, describe_io};
use crate::net::tls;
use crate::sched;
use crate::store::agent::{Identity, LocalRunState, LocalTaskStored, OccurrenceStart, PendingEdit};
use crate::store::sealing::{SecretKey, reseal_account};
use crate::sync::link::UpstreamLink;
use crate::wire::msg::{
    AgentHello, AgentToServer, LocalTaskDef, RunOrder, RunResult, ScheduledTaskDef, Secret,
    ServerToAgent,
};
use crate::wire::{self, FrameError, FrameReader, close};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FRAME: usize = 1024 * 1024;

pub(super) struct Device {
    index: usize,
    identity: Identity,
    facts: DeviceFacts,
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    server: SocketAddr,
    client: quinn::ClientConfig,
    /// Runs orders; its outbox carries acknowledgements, start notices and results to
    /// whichever link is up.
    runner: Runner,
    outbox_rx: mpsc::UnboundedReceiver<AgentToServer>,
    /// Delivery and start notices held a moment, kept across links (see `outbox.rs`).
    outbox: Outbox,
    /// Tells the device's planner that its scheduled tasks changed.
    schedules_changed: Arc<tokio::sync::Notify>,
}

/// How a connection attempt ended.
enum Ended {
    /// The link was up (or waiting for approval) and then dropped, or the attempt failed.
    Failed(String),
    Rejected(String),
    Shutdown,
}

impl Device {
    pub(super) fn new(
        index: usize,
        identity: Identity,
        facts: DeviceFacts,
        apps: Arc<Applications>,
        shared: Arc<Shared>,
        endpoint: quinn::Endpoint,
        server: SocketAddr,
    ) -> anyhow::Result<Device> {
        let client = client_config(&shared, &identity)?;
        let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
        let runner = Runner {
            store: shared.store.clone(),
            device_id: identity.device_id.clone(),
            outbox: outbox_tx,
            apps,
            check_every: APPLICATION_CHECK_EVERY,
            controls: Arc::default(),
            secrets: shared.secrets.clone(),
            simulated: shared.simulated,
        };
        Ok(Device {
            index,
            identity,
            facts,
            shared,
            endpoint,
            server,
            client,
            runner,
            outbox_rx,
            outbox: Outbox::default(),
            schedules_changed: Arc::default(),
        })
    }

    pub(super) async fn run(self) {
        let span = tracing::info_span!("device", device = %self.facts.display_name);
        self.run_inner().instrument(span).await
    }

    async fn run_inner(mut self) {
        self.recover().await;
        let zone = sched::zone_named(&self.facts.time_zone).unwrap_or_else(|e| {
            tracing::warn!("{e}; scheduled tasks run on UTC");
            jiff::tz::TimeZone::UTC
        });
        let planner = Planner {
            runner: self.runner.clone(),
            zone,
            missed_after: self.shared.config.missed_after,
            changed: self.schedules_changed.clone(),
            shutdown: self.shared.shutdown.clone(),
        };
        // The planner starts runs while the link comes and goes, and ends with the device.
        tokio::join!(planner.run(), self.link_loop());
    }

    /// Connects, serves the link until it drops, and connects again, until shutdown.
    async fn link_loop(&mut self) {
        let mut link = UpstreamLink::new(self.shared.config.link, Instant::now());
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            if let Some(at) = link.poll_timeout() {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = shutdown.changed() => return,
                }
            }
            if *shutdown.borrow() {
                return;
            }
            if !link.poll_attempt(Instant::now()) {
                continue;
            }
            match self.connect_and_serve(&mut link).await {
                Ended::Shutdown => return,
                Ended::Failed(reason) => {
                    tracing::debug!("link to the server down: {reason}");
                    self.shared.note_failure(&reason);
                    self.shared
                        .set_state(self.index, DeviceLinkState::Connecting);
                    link.handle_failure(Instant::now(), reason, &mut rng);
                }
                Ended::Rejected(reason) => {
                    tracing::warn!(
                        "{reason}; asking again in {:?}",
                        self.shared.config.rejected_retry
                    );
                    self.shared.set_state(self.index, DeviceLinkState::Rejected);
                    tokio::select! {
                        _ = tokio::time::sleep(self.shared.config.rejected_retry) => {}
                        _ = shutdown.changed() => return,
                    }
                    link = UpstreamLink::new(self.shared.config.link, Instant::now());
                }
            }
        }
    }

    /// After a restart: a run recorded as started but without a result was interrupted, and
    /// is reported failed rather than run again; a run received but not started is started.
    async fn recover(&mut self) {
        let runs = match self.shared.store.local_runs(&self.identity.device_id).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!("cannot read the run log: {e}");
                return;
            }
        };
        for run in runs {
            match run.state {
                LocalRunState::Started => {
                    let outcome = Outcome::failed("interrupted: the agent stopped during the run");
                    self.runner
                        .finish(run.order.run, LocalRunState::Started, None, outcome)
                        .await;
                }
                LocalRunState::Received => self.start_run(run.order),
                LocalRunState::Finished => {}
            }
        }
    }

    async fn connect_and_serve(&mut self, link: &mut UpstreamLink) -> Ended {
        // A simulated device waits for its fleet's turn; held until the server answers.
        let mut turn = match &self.shared.handshakes {
            Some(handshakes) => {
                let mut shutdown = self.shared.shutdown.clone();
                tokio::select! {
                    permit = handshakes.acquire() => match permit {
                        Ok(permit) => Some(permit),
                        Err(e) => return Ended::Failed(e.to_string()),
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return Ended::Shutdown,
                }
            }
            None => None,
        };
        let connecting =
            match self
                .endpoint
                .connect_with(self.client.clone(), self.server, "canopy-server")
            {
                Ok(c) => c,
                Err(e) => return Ended::Failed(e.to_string()),
            };
        let conn = match timeout(HELLO_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Ended::Failed(describe_connection_error(&e)),
            Err(_) => return Ended::Failed("timed out connecting".into()),
        };
        // Who the server is, before it is told anything (the hello carries the token).
        let Some(seen) =
            tls::peer_chain(&conn).and_then(|c| c.first().map(|leaf| Fingerprint::of(leaf)))
        else {
            return Ended::Failed("the server presented no certificate".into());
        };
        if let Err(reason) = self.shared.server_check.check(seen) {
            tracing::warn!("{reason}");
            conn.close(close::UNTRUSTED.into(), b"untrusted server certificate");
            return Ended::Failed(reason);
        }
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(streams) => streams,
            Err(e) => return Ended::Failed(describe_connection_error(&e)),
        };
        // Applications bound to a process are reported as they are now.
        if self.runner.apps.reads_processes() {
            self.facts.applications = self.runner.apps.snapshot_async().await;
        }
        let hello = AgentHello {
            device_id: self.identity.device_id.clone(),
            virtual_server: self.shared.config.virtual_server.clone(),
            token: self.shared.config.token.clone().map(Secret),
            facts: self.facts.clone(),
        };
        if let Err(e) = wire::write_hello(&mut send, &hello).await {
            return Ended::Failed(e.to_string());
        }
        // One reader for the stream's life: the session's select! may drop a read mid-frame.
        let mut frames = FrameReader::new(MAX_FRAME);
        // Until accepted, the server may keep us waiting for an administrator.
        loop {
            let frame = frames.read_frame::<ServerToAgent>(&mut recv).await;
            match frame {
                Ok(Some(ServerToAgent::Accepted { revoked, .. })) => {
                    if let Err(reason) = self.learn(seen).await {
                        return Ended::Failed(reason);
                    }
                    let check = &self.shared.server_check;
                    check.learn_revoked(&self.shared.store, revoked).await;
                    break;
                }
                Ok(Some(ServerToAgent::Pending)) => {
                    if let Err(reason) = self.learn(seen).await {
                        return Ended::Failed(reason);
                    }
                    self.shared.set_state(self.index, DeviceLinkState::Pending);
                    link.handle_connected(Instant::now());
                    // Waiting for an administrator is not a handshake in flight.
                    turn.take();
                }
                Ok(Some(ServerToAgent::Rejected { reason })) => return Ended::Rejected(reason),
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Ended::Failed(closed_reason(&conn, "the server closed the link"));
                }
                Err(FrameError::Io(e)) => {
                    return Ended::Failed(closed_reason(&conn, &describe_io(&e)));
                }
                Err(e) => return Ended::Failed(e.to_string()),
            }
        }
        drop(turn);
        link.handle_connected(Instant::now());
        self.shared
            .set_state(self.index, DeviceLinkState::Connected);
        let ended = self.session(&conn, send, recv, frames).await;
        if matches!(ended, Ended::Shutdown) {
            conn.close(0u32.into(), b"agent stopping");
        }
        ended
    }

    /// After the server's first answer: pins its fingerprint if the agent learns it.
    async fn learn(&self, seen: Fingerprint) -> Result<(), String> {
        let check = &self.shared.server_check;
        let learned = check.learn(&self.shared.store, seen).await;
        if let Err(reason) = &learned {
            tracing::warn!("{reason}");
        }
        learned
    }

    /// The accepted link: unacknowledged results first, then orders down and results up.
    /// `frames` is the reader `recv` was read with so far.
    async fn session(
        &mut self,
        conn: &quinn::Connection,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        mut frames: FrameReader,
    ) -> Ended {
        let key = match crate::net::link_key::link_key(conn) {
            Ok(bytes) => SecretKey::from_bytes(&bytes),
            Err(e) => return Ended::Failed(e),
        };
        match self.shared.store.local_runs(&self.identity.device_id).await {
            Ok(runs) => {
                for result in runs
                    .into_iter()
                    .filter(|r| !r.acknowledged)
                    .filter_map(|r| r.result)
                {
                    if let Err(e) =
                        wire::write_frame(&mut send, &AgentToServer::Result(result)).await
                    {
                        return Ended::Failed(e.to_string());
                    }
                }
            }
            Err(e) => tracing::error!("cannot read the run log: {e}"),
        }
        // The user's changes sent on this link, so each is sent once per link.
        let mut edits_sent = HashMap::new();
        let desk = self.shared.desk.clone();
        if desk.is_some()
            && let Err(e) = self.send_edits(&mut send, &mut edits_sent).await
        {
            return Ended::Failed(e.to_string());
        }
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let held_due = self.outbox.poll_timeout();
            let held = async {
                match held_due {
                    Some(due) => tokio::time::sleep_until(due.into()).await,
                    None => std::future::pending().await,
                }
            };
            let edited = async {
                match &desk {
                    Some(desk) => desk.edited().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = frames.read_frame::<ServerToAgent>(&mut recv) => match frame {
                    Ok(Some(ServerToAgent::Run(mut order))) => {
                        self.keep_sealed(&mut order.account, &key);
                        self.receive(order).await;
                    }
                    Ok(Some(ServerToAgent::ResultStored { run })) => {
                        self.runner.forget(run);
                        let acked = self.shared.store.update_run(&self.identity.device_id, run, |r| r.acknowledged = true).await;
                        if let Err(e) = acked {
                            tracing::error!("cannot record the acknowledgement: {e}");
                        }
                    }
                    Ok(Some(ServerToAgent::Cancel { run })) => self.cancel(run).await,
                    Ok(Some(ServerToAgent::Pause { run })) => self.runner.pause(run, true),
                    Ok(Some(ServerToAgent::Resume { run })) => self.runner.pause(run, false),
                    Ok(Some(ServerToAgent::ScheduledTask(mut def))) => {
                        self.keep_sealed(&mut def.account, &key);
                        self.scheduled_task(*def).await;
                    }
                    Ok(Some(ServerToAgent::ScheduledTasks { task_ids })) => self.scheduled_tasks(task_ids).await,
                    Ok(Some(ServerToAgent::LocalTask(def))) => self.local_task(def, &edits_sent).await,
                    Ok(Some(ServerToAgent::LocalTaskDeleted { task_id })) => self.local_task_deleted(task_id).await,
                    Ok(Some(ServerToAgent::Rejected { reason })) => return Ended::Rejected(reason),
                    Ok(Some(_)) => {}
                    Ok(None) => return Ended::Failed(closed_reason(conn, "the server closed the link")),
                    Err(FrameError::Io(e)) => return Ended::Failed(closed_reason(conn, &describe_io(&e))),
                    Err(e) => return Ended::Failed(e.to_string()),
                },
                Some(msg) = self.outbox_rx.recv() => {
                    // What else is queued goes with it.
                    let now = Instant::now();
                    let mut due = self.outbox.handle(msg, now);
                    while let Ok(msg) = self.outbox_rx.try_recv() {
                        due.extend(self.outbox.handle(msg, now));
                    }
                    if let Err(e) = write_frames(&mut send, due).await {
                        return Ended::Failed(e.to_string());
                    }
                }
                () = held => {
                    let due = self.outbox.poll_expired(Instant::now());
                    if let Err(e) = write_frames(&mut send, due).await {
                        return Ended::Failed(e.to_string());
                    }
                }
                () = edited => {
                    if let Err(e) = self.send_edits(&mut send, &mut edits_sent).await {
                        return Ended::Failed(e.to_string());
                    }
                }
                _ = shutdown.changed() => return Ended::Shutdown,
            }
        }
    }

    /// Re-seals the password of an account received on the link (sealed with `link`) with
    /// the agent's own key, before anything keeps it. One that does not open is dropped: the
    /// run then fails saying the account has no password.
    fn keep_sealed(&self, account: &mut TaskAccount, link: &SecretKey) {
        if let Err(e) = reseal_account(account, link, &self.shared.secrets) {
            tracing::error!("a task came without a usable password: {e:#}");
        }
    }

    /// Keeps a new order, acknowledges it and starts it; an order seen before is acknowledged
    /// again (the first acknowledgement may have been lost) but not run again. One that can
    /// start at once is kept as started, and its start notice is its acknowledgement.
    async fn receive(&mut self, order: RunOrder) {
        let run = order.run;
        let started = self.runner.starts_at_once(&order).await.then(now_ms);
        let known = self
            .shared
            .store
            .receive_order(&self.identity.device_id, order.clone(), started)
            .await;
        match (known, started) {
            (Ok(true), Some(started)) => {
                tracing::debug!(%run, task = %order.task_name, "order received and started");
                self.runner.spawn_started(order, started);
            }
            (Ok(new), _) => {
                // Queued before the start notice, so the server hears of them in order.
                let _ = self.runner.outbox.send(AgentToServer::Received { run });
                if new {
                    tracing::debug!(%run, task = %order.task_name, "order received");
                    self.start_run(order);
                } else {
                    tracing::debug!(%run, "order already received");
                }
            }
            (Err(e), _) => tracing::error!(%run, "cannot store an order: {e}"),
        }
    }

    /// Sends the user's pending changes not sent on this link yet.
    async fn send_edits(
        &self,
        send: &mut quinn::SendStream,
        sent: &mut HashMap<u64, PendingEdit>,
    ) -> Result<(), FrameError> {
        let tasks = match self
            .shared
            .store
            .local_tasks(&self.identity.device_id)
            .await
        {
            Ok(tasks) => tasks,
            Err(e) => {
                tracing::error!("cannot read the local tasks: {e}");
                return Ok(());
            }
        };
        for task in tasks {
            let task_id = task.def.task_id;
            let Some(edit) = task.pending_edit else {
                continue;
            };
            if sent.get(&task_id) == Some(&edit) {
                continue;
            }
            let msg = AgentToServer::LocalTaskEdit {
                task_id,
                base_revision: edit.base_revision,
                schedule: edit.schedule.clone(),
            };
            wire::write_frame(send, &msg).await?;
            tracing::debug!(
                task_id,
                base_revision = edit.base_revision,
                "user's change sent"
            );
            sent.insert(task_id, edit);
        }
        Ok(())
    }

    /// The server's current revision of a local task: it replaces the one held, and answers
    /// the user's pending change of it, if any. `sent`: the changes sent on this link.
    async fn local_task(&mut self, def: LocalTaskDef, sent: &HashMap<u64, PendingEdit>) {
        let (task_id, revision) = (def.task_id, def.revision);
        let schedule = def.schedule.clone();
        let stored = self
            .shared
            .store
            .store_local_task(&self.identity.device_id, def)
            .await;
        match stored {
            Ok(LocalTaskStored::Stale) => {
                tracing::debug!(task_id, revision, "older revision of a local task ignored");
                return;
            }
            Ok(LocalTaskStored::Stored { settled: None }) => {
                tracing::debug!(task_id, revision, "local task stored");
            }
            Ok(LocalTaskStored::Stored {
                settled: Some(edit),
            }) => {
                if edit.schedule == schedule {
                    tracing::info!(
                        task_id,
                        revision,
                        "the user's change of local task #{task_id} is in effect: {schedule}"
                    );
                } else {
                    tracing::warn!(
                        task_id,
                        revision,
                        "the user's change of local task #{task_id} ({}) was not applied: an \
                         administrator changed the task, and that change takes precedence ({schedule})",
                        edit.schedule
                    );
                    // A change settled before it was sent is still told to the server, which
                    // records that the administrator's change won over it.
                    if sent.get(&task_id) != Some(&edit) {
                        let _ = self.runner.outbox.send(AgentToServer::LocalTaskEdit {
                            task_id,
                            base_revision: edit.base_revision,
                            schedule: edit.schedule,
                        });
                    }
                }
            }
            Err(e) => {
                tracing::error!(task_id, "cannot store a local task: {e}");
                return;
            }
        }
        if let Some(desk) = &self.shared.desk {
            desk.changed();
        }
    }

    /// An administrator stopped a run. A scheduled occurrence the planner has not started
    /// yet (its randomized delay not over) is dealt with now, so it never starts: it ends
    /// "cancelled by an administrator before it started".
    async fn cancel(&mut self, run: RunRef) {
        self.runner.cancel(run).await;
        let RunRef::Occurrence { task_id, key } = run else {
            return;
        };
        let store = &self.shared.store;
        let device_id = &self.identity.device_id;
        let held = match store.scheduled_tasks(device_id).await {
            Ok(held) => held.into_iter().find(|h| h.def.task_id == task_id),
            Err(e) => {
                tracing::error!(%run, "cannot read the scheduled tasks: {e}");
                return;
            }
        };
        let Some(held) = held else {
            return;
        };
        let now = now_ms();
        let result = RunResult {
            run,
            started: now,
            finished: now,
            outcome: Outcome::failed(CANCELLED_BEFORE_START),
        };
        let skip = OccurrenceStart::Skip(order_of(&held.def, key), result.clone());
        match store.begin_occurrence(device_id, task_id, key, skip).await {
            Ok(true) => {
                tracing::debug!(%run, "scheduled run cancelled before it started");
                let _ = self.runner.outbox.send(AgentToServer::Result(result));
                self.schedules_changed.notify_one();
            }
            Ok(false) => {}
            Err(e) => tracing::error!(%run, "cannot record a cancelled occurrence: {e}"),
        }
    }

    /// The server's current revision of a task the device runs on its own schedule.
    async fn scheduled_task(&mut self, def: ScheduledTaskDef) {
        let (task_id, revision) = (def.task_id, def.revision);
        let stored = self
            .shared
            .store
            .store_scheduled_task(&self.identity.device_id, def)
            .await;
        match stored {
            Ok(true) => {
                tracing::debug!(task_id, revision, "scheduled task stored");
                self.schedules_changed.notify_one();
            }
            Ok(false) => tracing::debug!(task_id, revision, "older revision ignored"),
            Err(e) => tracing::error!(task_id, "cannot store a scheduled task: {e}"),
        }
    }

    /// Every task the device runs on its own schedule: the others are forgotten.
    async fn scheduled_tasks(&mut self, task_ids: Vec<u64>) {
        let kept = self
            .shared
            .store
            .retain_scheduled_tasks(&self.identity.device_id, task_ids)
            .await;
        match kept {
            Ok(()) => self.schedules_changed.notify_one(),
            Err(e) => tracing::error!("cannot forget scheduled tasks: {e}"),
        }
    }

    async fn local_task_deleted(&mut self, task_id: u64) {
        let deleted = self
            .shared
            .store
            .delete_local_task(&self.identity.device_id, task_id)
            .await;
        match deleted {
            Ok(true) => {
                tracing::debug!(task_id, "local task deleted");
                if let Some(desk) = &self.shared.desk {
                    desk.changed();
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(task_id, "cannot delete a local task: {e}"),
        }
    }

    fn start_run(&mut self, order: RunOrder) {
        self.runner.spawn(order);
    }
}

/// Writes `msgs` back to back, so that they share packets.
async fn write_frames(
    send: &mut quinn::SendStream,
    msgs: Vec<AgentToServer>,
) -> Result<(), FrameError> {
    for msg in msgs {
        wire::write_frame(send, &msg).await?;
    }
    Ok(())
}

fn closed_reason(conn: &quinn::Connection, fallback: &str) -> String {
    conn.close_reason()
        .map(|c| describe_connection_error(&c))
        .unwrap_or_else(|| fallback.to_string())
}

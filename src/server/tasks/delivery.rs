//! Carrying runs to devices and recording what they report: the `Node` methods the
//! admin requests, the federation links and the device links call.

use std::sync::Arc;

use tracing::Instrument;

use super::server_tasks::run_server_task;
use super::targeting::expected_servers;
use super::view::local_def;
use crate::model::scope::Scope;
use crate::model::task::{DeviceEdit, DeviceProgress, DeviceState, Notify, RunRecord, TaskRecord};
use crate::model::{Event, EventKind, RunRef, Severity, UnixMillis};
use crate::server::{Node, lock, now_ms};
use crate::store::StoreError;
use crate::store::rights::Guarded;
use crate::store::tasks::{Announce, Progressed, StartedRun};
use crate::sync::rollup::Rollup;
use crate::sync::stats::StatsTable;
use crate::wire::msg::{LocalTaskDef, ServerToAgent};

impl Node {
    /// A run over this server's whole subtree, as far as this server knows, with the rows
    /// reported from below: servers expected below that have not reported count as pending.
    pub(in crate::server) async fn rollup(&self, run: &RunRecord) -> (StatsTable, Rollup) {
        let rows = self.store.stats_rows(run.run_id).await.unwrap_or_else(|e| {
            tracing::error!("cannot read the statistics of run {}: {e}", run.run_id);
            Vec::new()
        });
        let table = StatsTable::from_rows(rows);
        let expected = expected_servers(self, run).await;
        let rollup = Rollup::of(&run.counters, run.stopped.is_some(), &table, &expected);
        (table, rollup)
    }

    /// Sends a started run's order to its devices connected now (the others get the stored
    /// order when they connect), or begins a server task; the same for the runs chained
    /// after it that start now. A run of a scheduled occurrence that devices start by
    /// themselves has no order.
    pub(in crate::server) fn deliver_run(self: &Arc<Self>, started: &StartedRun) {
        match &started.order {
            Some(order) => {
                // Never waits for a device (see `LiveDevice::offer`).
                let live = lock(&self.devices);
                for id in &started.device_ids {
                    if let Some(device) = live.get(id) {
                        device.offer(id, ServerToAgent::Run(order.clone()));
                    }
                }
            }
            // A run its devices start by themselves on their schedule, or a chained server
            // task whose server has not finished the task it follows: nothing to do now.
            None if !started.task.task_type.runs_on_server() || started.device_ids.is_empty() => {}
            None => {
                let node = self.clone();
                let task = started.task.clone();
                let run_id = started.run.run_id;
                let span = tracing::info_span!("server task", task = %task.name, run = run_id);
                tokio::spawn(
                    async move { run_server_task(&node, &task, run_id).await }.instrument(span),
                );
            }
        }
        for chained in &started.chained {
            self.deliver_run(chained);
        }
    }

    /// A device user's change to a local task of that device: applied unless an
    /// administrator changed the task since the revision the user started from. Either way
    /// the device is sent the task as it now is.
    pub(in crate::server) async fn device_edit(
        &self,
        device_id: &str,
        task_id: u64,
        base_revision: u32,
        schedule: crate::model::schedule::Schedule,
    ) {
        let decided = self
            .store
            .device_edit(task_id, device_id, base_revision, schedule, now_ms())
            .await;
        let (task, decision) = match decided {
            Ok(Some(decided)) => decided,
            Ok(None) => {
                let msg = format!(
                    "device {device_id} sent a change to task #{task_id}, which is not one of its local tasks; ignored"
                );
                self.event_about(
                    Severity::Warning,
                    EventKind::TaskChanged,
                    msg,
                    Guarded::Task(task_id),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::error!(task_id, "cannot apply a device user's change: {e}");
                return;
            }
        };
        let msg = match decision {
            DeviceEdit::Apply => format!(
                "local task {:?} (#{task_id}) changed by the user of device {device_id}: schedule {}",
                task.name, task.settings.schedule
            ),
            DeviceEdit::AdministratorWins => format!(
                "the change by the user of device {device_id} to local task {:?} (#{task_id}) was dropped: an administrator changed it since revision {base_revision}, and the administrator's change wins",
                task.name
            ),
        };
        self.event_about(
            Severity::Info,
            EventKind::TaskChanged,
            msg,
            Guarded::Task(task.id),
        )
        .await;
        if let Some(def) = local_def(&task) {
            self.tell_device(device_id, ServerToAgent::LocalTask(def))
                .await;
        }
    }

    /// Tells a device about a local task of its own as it is now (or that it is gone).
    pub(super) async fn push_local_task(&self, task: &TaskRecord, deleted: bool) {
        let Scope::Local { device_id } = &task.scope else {
            return;
        };
        let msg = match local_def(task) {
            Some(_) if deleted => ServerToAgent::LocalTaskDeleted { task_id: task.id },
            Some(def) => ServerToAgent::LocalTask(def),
            None => return,
        };
        self.tell_device(device_id, msg).await;
    }

    /// The local tasks of a device, for the device as it connects.
    pub(in crate::server) async fn local_tasks_of(&self, device_id: &str) -> Vec<LocalTaskDef> {
        match self.store.tasks().await {
            Ok(tasks) => tasks
                .iter()
                .filter(|t| matches!(&t.scope, Scope::Local { device_id: d } if d == device_id))
                .filter_map(local_def)
                .collect(),
            Err(e) => {
                tracing::error!("cannot read tasks: {e}");
                Vec::new()
            }
        }
    }

    /// Sends a message to a device if it is connected now, without waiting for it (see
    /// `LiveDevice::offer`).
    pub(in crate::server) async fn tell_device(&self, device_id: &str, msg: ServerToAgent) {
        if let Some(device) = lock(&self.devices).get(device_id) {
            device.offer(device_id, msg);
        }
    }

    /// Records a device's report about a run, and announces it as the task asks (in the
    /// same transaction: see `store::tasks::Announce`).
    pub(in crate::server) async fn device_progress(
        self: &Arc<Self>,
        device_id: &str,
        run: RunRef,
        progress: DeviceProgress,
    ) -> Result<(), StoreError> {
        let store = &self.store;
        let result = matches!(progress, DeviceProgress::Finished { .. });
        if result {
            self.metrics.result_received(self.name());
        }
        let announce = Some(Announce {
            retention: self.config.events,
            events: progress_events,
        });
        let done = match run {
            RunRef::Ordered(run_id) => {
                store
                    .record_progress(device_id, run_id, progress, now_ms(), announce)
                    .await?
            }
            RunRef::Occurrence { task_id, key } => {
                store
                    .record_occurrence_progress(
                        device_id,
                        task_id,
                        key,
                        progress,
                        now_ms(),
                        announce,
                    )
                    .await?
            }
        };
        let Some(done) = done else {
            return Ok(());
        };
        if result && done.record.state.is_finished() {
            self.metrics.result_stored(self.name());
        }
        // Tasks chained after this run start on the device now that it finished it.
        for chained in &done.chained {
            self.deliver_run(chained);
        }
        for event in &done.announced {
            Node::log_event(event.severity, event.kind, &event.message);
            self.metrics.event(self.name(), event.kind);
        }
        if done.run_finished {
            self.announce_if_finished(&done.run).await;
        }
        Ok(())
    }

    /// Writes `run-finished` once the run is over in this server's whole subtree: every
    /// device here and every server below finished (not stopped). Called when its last
    /// device here finishes and when statistics come from below; written once whoever
    /// comes last.
    pub(in crate::server) async fn announce_if_finished(&self, run: &RunRecord) {
        if run.stopped.is_some() || run.counters.finished() < run.counters.total() {
            return;
        }
        let (table, rollup) = self.rollup(run).await;
        if !rollup.is_complete() {
            return;
        }
        let c = &rollup.totals;
        // Servers below with no device in the run may send no row: not counted here.
        let below = if table.is_empty() {
            ""
        } else {
            " here and on the servers below"
        };
        let now = now_ms();
        let event = Event {
            seq: 0,
            time: now,
            severity: Severity::Info,
            kind: EventKind::RunFinished,
            message: format!(
                "task {:?} run {} finished{below}: {} succeeded, {} warning, {} failed of {}; {} need a restart",
                run.task_name,
                run.run_id,
                c.count(DeviceState::Succeeded),
                c.count(DeviceState::Warning),
                c.count(DeviceState::Failed),
                c.total(),
                c.need_restart
            ),
            origin: Vec::new(),
        };
        let about = Guarded::Task(run.task_id);
        let written = self
            .store
            .append_run_finished(run.run_id, event.clone(), about, self.config.events, now)
            .await;
        match written {
            Ok(true) => {
                Node::log_event(event.severity, event.kind, &event.message);
                self.metrics.event(self.name(), event.kind);
            }
            Ok(false) => {}
            Err(e) => tracing::error!("cannot record the end of run {}: {e}", run.run_id),
        }
    }
}

/// The events a device's report is announced with: its result as the task's notification
/// setting asks. The run's end comes after, once the whole subtree is done
/// (`Node::announce_if_finished`).
fn progress_events(done: &Progressed, now: UnixMillis) -> Vec<Event> {
    let event = |severity, kind, message| Event {
        seq: 0,
        time: now,
        severity,
        kind,
        message,
        origin: Vec::new(),
    };
    let (run_id, record) = (done.run.run_id, &done.record);
    let mut events = Vec::new();
    if record.state.is_finished() {
        let severity = match record.state {
            DeviceState::Failed => Severity::Error,
            DeviceState::Warning => Severity::Warning,
            _ => Severity::Info,
        };
        let wanted = match done.run.notify {
            Notify::All => true,
            Notify::ErrorsOnly => severity != Severity::Info,
            Notify::Off => false,
        };
        if wanted {
            let msg = format!(
                "task {:?} run {run_id} on {}: {}{}",
                done.run.task_name,
                record.device_name,
                record.state.as_str(),
                if record.description.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", record.description)
                }
            );
            events.push(event(severity, EventKind::DeviceResult, msg));
        }
    }
    events
}

//! The device agent's database: its identity, the runs it received, and the results the
//! server has not acknowledged yet. One file serves one agent, or every simulated device of
//! a `--simulate` process (keyed by device). It also keeps the device's local tasks, as the
//! server last sent them, with the device user's change that the server has not answered yet.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StrTable, entries_with_prefix, get, put, remove};
use crate::model::schedule::{LocalDateTime, Schedule};
use crate::model::{Fingerprint, RunRef, UnixMillis};
use crate::wire::msg::{LocalTaskDef, RunOrder, RunResult, ScheduledTaskDef};

/// Identities by slot: "agent" for a real agent, "sim-N" for simulated device N.
const IDENTITIES: StrTable = TableDefinition::new("identities");
/// Runs by "device id/run id".
const RUNS: StrTable = TableDefinition::new("runs");
/// Local tasks by "device id/task id" (the id zero-padded to 20 digits).
const LOCAL_TASKS: StrTable = TableDefinition::new("local_tasks");
/// Tasks the device runs on its own schedule, by "device id/task id" (zero-padded).
const SCHEDULED_TASKS: StrTable = TableDefinition::new("scheduled_tasks");
/// The fingerprint of the server learned at the first enrollment, by the `server` of the
/// config (trust on first use; see [`Store::pin_server`]).
const SERVER_PINS: StrTable = TableDefinition::new("server_pins");
/// Certificates of servers revoked in the deployment, as servers told: fingerprint to ().
const REVOKED_SERVERS: StrTable = TableDefinition::new("revoked_servers");

/// A device's identity: made at its first start and kept for its life.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    pub device_id: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8; the agent's file is readable by its owner only.
    pub key_der: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalRunState {
    /// Stored, not started yet.
    Received,
    /// Recorded as started before the executor began: if the agent dies now, the run is
    /// reported failed ("interrupted") rather than run twice.
    Started,
    Finished,
}

/// The agent's log of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalRun {
    pub order: RunOrder,
    pub state: LocalRunState,
    pub started: Option<i64>,
    pub result: Option<RunResult>,
    /// The server said it stored the result.
    pub acknowledged: bool,
}

/// "device id/run id" for an ordered run, "device id/o/task id/key" for an occurrence; so the
/// runs of a device are the keys under "device id/".
fn run_key(device_id: &str, run: RunRef) -> String {
    match run {
        RunRef::Ordered(run_id) => format!("{device_id}/{run_id:020}"),
        RunRef::Occurrence { task_id, key } => format!("{device_id}/o/{task_id:020}/{key}"),
    }
}

/// A schedule the device's user set, not confirmed by the server yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEdit {
    /// The revision the user changed: the server drops the change if an administrator
    /// changed the task since (the administrator's change wins).
    pub base_revision: u32,
    pub schedule: Schedule,
}

/// A local task of this device, as the server last sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTask {
    pub def: LocalTaskDef,
    pub pending_edit: Option<PendingEdit>,
}

/// What [`Store::store_local_task`] did with a revision from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalTaskStored {
    /// Kept (a new task, or a revision newer than or equal to the one held); `settled` is the
    /// user's pending change this revision answered (applied, or overruled by an
    /// administrator's change), which is no longer pending.
    Stored { settled: Option<PendingEdit> },
    /// Older than the revision held: ignored.
    Stale,
}

fn local_task_key(device_id: &str, task_id: u64) -> String {
    format!("{device_id}/{task_id:020}")
}

/// A task the device runs on its own schedule, as the server last sent it, with the last
/// occurrence the device dealt with (started, or found missed), so that none is started twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSchedule {
    pub def: ScheduledTaskDef,
    pub handled: Option<LocalDateTime>,
}

/// What [`Store::begin_occurrence`] keeps for an occurrence.
#[derive(Clone, Debug)]
pub enum OccurrenceStart {
    /// Kept as received, to be started now.
    Run(RunOrder),
    /// Not run (missed with "run missed tasks" off): kept finished, with this result.
    Skip(RunOrder, RunResult),
}

impl Store {
    /// Opens an agent's database with its tables.
    pub fn open_agent(path: &std::path::Path) -> Result<Store, StoreError> {
        let store = Store::open(path)?;
        store.write_blocking(|txn| {
            txn.open_table(IDENTITIES)?;
            txn.open_table(RUNS)?;
            txn.open_table(LOCAL_TASKS)?;
            txn.open_table(SCHEDULED_TASKS)?;
            txn.open_table(SERVER_PINS)?;
            txn.open_table(REVOKED_SERVERS)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The fingerprint pinned for `server` (as the config names it), if any.
    pub async fn server_pin(&self, server: &str) -> Result<Option<Fingerprint>, StoreError> {
        let server = server.to_string();
        self.read(move |txn| get(&txn.open_table(SERVER_PINS)?, &server))
            .await
    }

    /// Pins `fingerprint` for `server` unless a fingerprint is pinned already; returns the
    /// one pinned, which the caller compares with what it saw (two devices of a fleet may
    /// race to pin).
    pub async fn pin_server(
        &self,
        server: &str,
        fingerprint: Fingerprint,
    ) -> Result<Fingerprint, StoreError> {
        let server = server.to_string();
        self.write(move |txn| {
            let mut table = txn.open_table(SERVER_PINS)?;
            if let Some(pinned) = get::<Fingerprint>(&table, &server)? {
                return Ok(pinned);
            }
            put(&mut table, &server, &fingerprint)?;
            Ok(fingerprint)
        })
        .await
    }

    /// The server certificates known to be revoked.
    pub async fn revoked_servers(&self) -> Result<Vec<Fingerprint>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(REVOKED_SERVERS)?;
            Ok(super::entries::<()>(&table)?
                .into_iter()
                .filter_map(|(key, ())| key.parse().ok())
                .collect())
        })
        .await
    }

    /// Adds revoked server certificates (a set: adding one twice changes nothing).
    pub async fn add_revoked_servers(
        &self,
        fingerprints: Vec<Fingerprint>,
    ) -> Result<(), StoreError> {
        self.write(move |txn| {
            let mut table = txn.open_table(REVOKED_SERVERS)?;
            for fingerprint in &fingerprints {
                put(&mut table, &fingerprint.to_string(), &())?;
            }
            Ok(())
        })
        .await
    }

    /// The identities of `slots`, making and storing those that do not exist yet with `make`.
    pub async fn identities(
        &self,
        slots: Vec<String>,
        make: impl Fn(&str) -> Result<Identity, StoreError> + Send + Sync + 'static,
    ) -> Result<Vec<Identity>, StoreError> {
        let existing: Vec<Option<Identity>> = {
            let slots = slots.clone();
            self.read(move |txn| {
                let table = txn.open_table(IDENTITIES)?;
                slots.iter().map(|s| get::<Identity>(&table, s)).collect()
            })
            .await?
        };
        let mut made = Vec::new();
        let mut all = Vec::with_capacity(slots.len());
        for (slot, found) in slots.iter().zip(existing) {
            match found {
                Some(identity) => all.push(identity),
                None => {
                    let identity = make(slot)?;
                    made.push((slot.clone(), identity.clone()));
                    all.push(identity);
                }
            }
        }
        if !made.is_empty() {
            self.write(move |txn| {
                let mut table = txn.open_table(IDENTITIES)?;
                for (slot, identity) in &made {
                    put(&mut table, slot, identity)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(all)
    }

    /// Keeps an order the first time it arrives; `false` if this run is known already, so a
    /// repeated order is never run twice. With `started`, it is kept as started then (one
    /// write for a run that starts at once, not two).
    pub async fn receive_order(
        &self,
        device_id: &str,
        order: RunOrder,
        started: Option<UnixMillis>,
    ) -> Result<bool, StoreError> {
        let key = run_key(device_id, order.run);
        self.write(move |txn| {
            let mut runs = txn.open_table(RUNS)?;
            if get::<LocalRun>(&runs, &key)?.is_some() {
                return Ok(false);
            }
            let run = LocalRun {
                order: order.clone(),
                state: if started.is_some() {
                    LocalRunState::Started
                } else {
                    LocalRunState::Received
                },
                started,
                result: None,
                acknowledged: false,
            };
            put(&mut runs, &key, &run)?;
            Ok(true)
        })
        .await
    }

    /// Changes one run of the agent's log.
    pub async fn update_run(
        &self,
        device_id: &str,
        run: RunRef,
        change: impl FnMut(&mut LocalRun) + Send + 'static,
    ) -> Result<(), StoreError> {
        let key = run_key(device_id, run);
        let mut change = change;
        self.write(move |txn| {
            let mut runs = txn.open_table(RUNS)?;
            if let Some(mut run) = get::<LocalRun>(&runs, &key)? {
                change(&mut run);
                put(&mut runs, &key, &run)?;
            }
            Ok(())
        })
        .await
    }

    /// Every run this device has in its log, oldest first.
    pub async fn local_runs(&self, device_id: &str) -> Result<Vec<LocalRun>, StoreError> {
        let prefix = format!("{device_id}/");
        self.read(move |txn| {
            let runs = txn.open_table(RUNS)?;
            Ok(entries_with_prefix::<LocalRun>(&runs, &prefix)?
                .into_iter()
                .map(|(_, r)| r)
                .collect())
        })
        .await
    }

    /// Keeps the revision of a task the device runs on its own schedule, unless the one held
    /// is newer; the occurrence dealt with last is kept across revisions.
    pub async fn store_scheduled_task(
        &self,
        device_id: &str,
        def: ScheduledTaskDef,
    ) -> Result<bool, StoreError> {
        let key = local_task_key(device_id, def.task_id);
        self.write(move |txn| {
            let mut table = txn.open_table(SCHEDULED_TASKS)?;
            let held = get::<HeldSchedule>(&table, &key)?;
            if held.as_ref().is_some_and(|h| h.def.revision > def.revision) {
                return Ok(false);
            }
            let handled = held.and_then(|h| h.handled);
            let task = HeldSchedule {
                def: def.clone(),
                handled,
            };
            put(&mut table, &key, &task)?;
            Ok(true)
        })
        .await
    }

    /// Forgets the scheduled tasks of a device that are not in `task_ids`.
    pub async fn retain_scheduled_tasks(
        &self,
        device_id: &str,
        task_ids: Vec<u64>,
    ) -> Result<(), StoreError> {
        let prefix = format!("{device_id}/");
        self.write(move |txn| {
            let mut table = txn.open_table(SCHEDULED_TASKS)?;
            let held: Vec<(String, HeldSchedule)> = entries_with_prefix(&table, &prefix)?;
            for (key, task) in held {
                if !task_ids.contains(&task.def.task_id) {
                    remove(&mut table, &key)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// The tasks a device runs on its own schedule, by id.
    pub async fn scheduled_tasks(&self, device_id: &str) -> Result<Vec<HeldSchedule>, StoreError> {
        let prefix = format!("{device_id}/");
        self.read(move |txn| {
            let table = txn.open_table(SCHEDULED_TASKS)?;
            Ok(entries_with_prefix::<HeldSchedule>(&table, &prefix)?
                .into_iter()
                .map(|(_, t)| t)
                .collect())
        })
        .await
    }

    /// Deals with occurrence `key` of a scheduled task once: in one transaction, it becomes
    /// the last occurrence dealt with and its run goes into the run log (as received, or
    /// finished with the result of `start`). `false` if the task is gone or this occurrence
    /// or a later one was dealt with already, so an occurrence never starts twice, whatever
    /// restarts and crashes come between.
    pub async fn begin_occurrence(
        &self,
        device_id: &str,
        task_id: u64,
        key: LocalDateTime,
        start: OccurrenceStart,
    ) -> Result<bool, StoreError> {
        let task_key = local_task_key(device_id, task_id);
        let device_id = device_id.to_string();
        self.write(move |txn| {
            let mut tasks = txn.open_table(SCHEDULED_TASKS)?;
            let Some(mut task) = get::<HeldSchedule>(&tasks, &task_key)? else {
                return Ok(false);
            };
            if task.handled.is_some_and(|handled| handled >= key) {
                return Ok(false);
            }
            task.handled = Some(key);
            put(&mut tasks, &task_key, &task)?;
            let (order, state, started, result) = match start.clone() {
                OccurrenceStart::Run(order) => (order, LocalRunState::Received, None, None),
                OccurrenceStart::Skip(order, result) => {
                    let started = Some(result.started);
                    (order, LocalRunState::Finished, started, Some(result))
                }
            };
            let run = LocalRun {
                order,
                state,
                started,
                result,
                acknowledged: false,
            };
            let run_key = run_key(&device_id, run.order.run);
            put(&mut txn.open_table(RUNS)?, &run_key, &run)?;
            Ok(true)
        })
        .await
    }

    /// Keeps the revision of a local task the server sent, replacing the one held unless
    /// that one is newer. A pending user change is settled (dropped) once the server sends a
    /// revision newer than the one the change was made from, or the same revision already
    /// with the changed schedule; otherwise it stays pending.
    pub async fn store_local_task(
        &self,
        device_id: &str,
        def: LocalTaskDef,
    ) -> Result<LocalTaskStored, StoreError> {
        let key = local_task_key(device_id, def.task_id);
        self.write(move |txn| {
            let mut table = txn.open_table(LOCAL_TASKS)?;
            let held = get::<LocalTask>(&table, &key)?;
            let mut pending_edit = None;
            let mut settled = None;
            if let Some(held) = held {
                if def.revision < held.def.revision {
                    return Ok(LocalTaskStored::Stale);
                }
                if let Some(edit) = held.pending_edit {
                    let answered = def.revision > edit.base_revision
                        || (def.revision == edit.base_revision && def.schedule == edit.schedule);
                    if answered {
                        settled = Some(edit);
                    } else {
                        pending_edit = Some(edit);
                    }
                }
            }
            let task = LocalTask {
                def: def.clone(),
                pending_edit,
            };
            put(&mut table, &key, &task)?;
            Ok(LocalTaskStored::Stored { settled })
        })
        .await
    }

    /// Forgets a local task the server deleted (with any pending change); whether it was held.
    pub async fn delete_local_task(
        &self,
        device_id: &str,
        task_id: u64,
    ) -> Result<bool, StoreError> {
        let key = local_task_key(device_id, task_id);
        self.write(move |txn| {
            let mut table = txn.open_table(LOCAL_TASKS)?;
            remove(&mut table, &key)
        })
        .await
    }

    /// The local tasks of a device, by id.
    pub async fn local_tasks(&self, device_id: &str) -> Result<Vec<LocalTask>, StoreError> {
        let prefix = format!("{device_id}/");
        self.read(move |txn| {
            let table = txn.open_table(LOCAL_TASKS)?;
            Ok(entries_with_prefix::<LocalTask>(&table, &prefix)?
                .into_iter()
                .map(|(_, t)| t)
                .collect())
        })
        .await
    }

    /// Records the device user's change of a local task's schedule, made from the revision
    /// the user saw (`base_revision`; by default, or if newer, the one held now); it replaces
    /// an earlier pending change. `None` when there is nothing to change (the task already
    /// has that schedule and no change is pending). Fails with [`StoreError::Rejected`] if
    /// the device has no such task.
    pub async fn set_pending_edit(
        &self,
        device_id: &str,
        task_id: u64,
        base_revision: Option<u32>,
        schedule: Schedule,
    ) -> Result<Option<PendingEdit>, StoreError> {
        let key = local_task_key(device_id, task_id);
        self.write(move |txn| {
            let mut table = txn.open_table(LOCAL_TASKS)?;
            let Some(mut task) = get::<LocalTask>(&table, &key)? else {
                return Err(StoreError::Rejected(format!(
                    "this device has no local task #{task_id}"
                )));
            };
            if task.pending_edit.is_none() && task.def.schedule == schedule {
                return Ok(None);
            }
            let held = task.def.revision;
            let edit = PendingEdit {
                base_revision: base_revision.map_or(held, |seen| seen.min(held)),
                schedule: schedule.clone(),
            };
            task.pending_edit = Some(edit.clone());
            put(&mut table, &key, &task)?;
            Ok(Some(edit))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::task::TaskPayload;

    fn def(task_id: u64, revision: u32, schedule: &str) -> LocalTaskDef {
        LocalTaskDef {
            task_id,
            name: format!("task {task_id}"),
            revision,
            application: "Endpoint Security".into(),
            payload: TaskPayload::Inventory,
            schedule: Schedule::parse(schedule).unwrap(),
        }
    }

    fn schedule(spec: &str) -> Schedule {
        Schedule::parse(spec).unwrap()
    }

    fn expected_edit(base_revision: u32, spec: &str) -> PendingEdit {
        PendingEdit {
            base_revision,
            schedule: schedule(spec),
        }
    }

    async fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.redb");
        let store = tokio::task::spawn_blocking(move || Store::open_agent(&path))
            .await
            .unwrap()
            .unwrap();
        (dir, store)
    }

    async fn one(store: &Store, device: &str, task_id: u64) -> LocalTask {
        store
            .local_tasks(device)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.def.task_id == task_id)
            .unwrap()
    }

    #[tokio::test]
    async fn revisions_replace_older_ones_only() {
        let (_dir, store) = open().await;
        let stored = store.store_local_task("d1", def(7, 2, "manual")).await;
        assert_eq!(stored.unwrap(), LocalTaskStored::Stored { settled: None });
        // Another device's task of the same id is another task.
        store
            .store_local_task("d2", def(7, 9, "manual"))
            .await
            .unwrap();
        let stale = store.store_local_task("d1", def(7, 1, "immediately")).await;
        assert_eq!(stale.unwrap(), LocalTaskStored::Stale);
        assert_eq!(one(&store, "d1", 7).await.def.revision, 2);
        let same = store.store_local_task("d1", def(7, 2, "app-start")).await;
        assert_eq!(same.unwrap(), LocalTaskStored::Stored { settled: None });
        assert_eq!(
            one(&store, "d1", 7).await.def.schedule,
            schedule("app-start")
        );
        store
            .store_local_task("d1", def(3, 1, "manual"))
            .await
            .unwrap();
        let ids: Vec<u64> = store
            .local_tasks("d1")
            .await
            .unwrap()
            .iter()
            .map(|t| t.def.task_id)
            .collect();
        assert_eq!(ids, [3, 7]);
        assert!(store.delete_local_task("d1", 7).await.unwrap());
        assert!(!store.delete_local_task("d1", 7).await.unwrap());
        assert_eq!(store.local_tasks("d1").await.unwrap().len(), 1);
        assert_eq!(store.local_tasks("d2").await.unwrap().len(), 1);
        store.close().unwrap();
    }

    #[tokio::test]
    async fn pending_edit_lives_until_a_newer_revision() {
        let (_dir, store) = open().await;
        let unknown = store
            .set_pending_edit("d1", 7, None, schedule("manual"))
            .await;
        let e = unknown.unwrap_err().to_string();
        assert!(e.contains("no local task #7"), "{e}");

        store
            .store_local_task("d1", def(7, 3, "manual"))
            .await
            .unwrap();
        // Asking for the schedule it has already changes nothing.
        let none = store
            .set_pending_edit("d1", 7, None, schedule("manual"))
            .await;
        assert_eq!(none.unwrap(), None);
        assert_eq!(one(&store, "d1", 7).await.pending_edit, None);

        let weekly = schedule("weekly:mon@09:00");
        let edit = store
            .set_pending_edit("d1", 7, None, weekly.clone())
            .await
            .unwrap();
        let expected = PendingEdit {
            base_revision: 3,
            schedule: weekly.clone(),
        };
        assert_eq!(edit, Some(expected.clone()));
        assert_eq!(
            one(&store, "d1", 7).await.pending_edit,
            Some(expected.clone())
        );

        // An older revision is ignored, the same revision (unchanged) keeps the edit.
        store
            .store_local_task("d1", def(7, 2, "manual"))
            .await
            .unwrap();
        let same = store
            .store_local_task("d1", def(7, 3, "manual"))
            .await
            .unwrap();
        assert_eq!(same, LocalTaskStored::Stored { settled: None });
        assert_eq!(one(&store, "d1", 7).await.pending_edit, Some(expected));

        // The server's answer: a newer revision (here an administrator's, which wins).
        let newer = store
            .store_local_task("d1", def(7, 4, "monthly:1@08:00"))
            .await;
        let settled = Some(expected_edit(3, "weekly:mon@09:00"));
        assert_eq!(newer.unwrap(), LocalTaskStored::Stored { settled });
        let task = one(&store, "d1", 7).await;
        assert_eq!(task.pending_edit, None);
        assert_eq!(task.def.schedule, schedule("monthly:1@08:00"));

        // A second change replaces the first and is based on the revision held then.
        store
            .set_pending_edit("d1", 7, None, weekly.clone())
            .await
            .unwrap();
        let daily = schedule("every:1d@2030-01-01T06:00");
        let edit = store
            .set_pending_edit("d1", 7, None, daily.clone())
            .await
            .unwrap();
        assert_eq!(edit.unwrap().base_revision, 4);
        assert_eq!(
            one(&store, "d1", 7).await.pending_edit.unwrap().schedule,
            daily
        );
        // The same revision already carrying the changed schedule settles it too.
        let settled = store
            .store_local_task("d1", def(7, 4, "every:1d@2030-01-01T06:00"))
            .await;
        let edit = Some(expected_edit(4, "every:1d@2030-01-01T06:00"));
        assert_eq!(settled.unwrap(), LocalTaskStored::Stored { settled: edit });
        assert_eq!(one(&store, "d1", 7).await.pending_edit, None);
        store.close().unwrap();
    }
}

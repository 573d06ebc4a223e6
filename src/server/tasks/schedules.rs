//! What devices are told of the tasks they run by themselves on their schedule, in their own
//! time zone: every such task that reaches them, sent as they connect and again when a task
//! or the device's place changes. The randomized delay's window is resolved here, so that
//! automatic randomization counts the devices the task reaches on this server.

use std::collections::{HashMap, HashSet};

use crate::model::device::{DeviceRecord, Enrollment};
use crate::model::group::{GroupTree, UNASSIGNED_DEVICES};
use crate::model::schedule::RandomDelay;
use crate::model::task::{TaskId, TaskRecord, TaskType};
use crate::server::{Node, lock};
use crate::wire::msg::{ScheduledTaskDef, ServerToAgent};

/// One task devices run on their own schedule, with the devices it reaches here.
struct Reach {
    def: ScheduledTaskDef,
    devices: HashSet<String>,
}

/// Whether a task reaches `device` here: an inherited task every managed device, another
/// task the devices its scope reaches.
fn reaches(task: &TaskRecord, device: &DeviceRecord, tree: &GroupTree) -> bool {
    device.enrollment == Enrollment::Approved
        && if task.inherited.is_some() {
            device.group_id != UNASSIGNED_DEVICES
        } else {
            task.scope.reaches(device, tree)
        }
}

fn def_of(
    task: &TaskRecord,
    payload: &crate::model::task::TaskPayload,
    reached: u64,
) -> ScheduledTaskDef {
    let options = &task.settings.schedule_options;
    ScheduledTaskDef {
        task_id: task.id,
        name: task.name.clone(),
        revision: task.revision,
        since: task.modified,
        application: task.application.clone(),
        payload: payload.clone(),
        schedule: task.settings.schedule.clone(),
        run_missed: options.run_missed,
        delay_window_secs: crate::sched::window_secs(options.random_delay, reached),
        time_limit_secs: options.time_limit_secs,
        cancel_from: options.cancel_from,
        account: task.settings.account.clone(),
    }
}

impl Node {
    /// Every task of this server that devices run on their own schedule, with the devices
    /// each reaches.
    async fn reaches(&self) -> Vec<Reach> {
        let read = async {
            let tasks = self.store.tasks().await?;
            let devices = self.store.devices().await?;
            let tree = self.store.group_tree().await?;
            Ok::<_, crate::store::StoreError>((tasks, devices, tree))
        };
        let (tasks, devices, tree) = match read.await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!("cannot read the scheduled tasks: {e}");
                return Vec::new();
            }
        };
        tasks
            .iter()
            .filter(|task| task.runs_on_device_clock())
            .filter_map(|task| {
                let TaskType::Device(payload) = &task.task_type else {
                    return None;
                };
                let reached: HashSet<String> = devices
                    .iter()
                    .filter(|d| reaches(task, d, &tree))
                    .map(|d| d.id.clone())
                    .collect();
                lock(&self.reach_counts).insert(task.id, reached.len() as u64);
                Some(Reach {
                    def: def_of(task, payload, reached.len() as u64),
                    devices: reached,
                })
            })
            .collect()
    }

    /// What a device is sent as it connects: each task it runs on its own schedule, then
    /// the list of them (the agent forgets the others it holds). It reads the tasks and
    /// this device only, so a storm of reconnecting devices costs no scan of the registry;
    /// the registry is counted only for a task with automatic randomization.
    pub(in crate::server) async fn schedules_of(&self, device_id: &str) -> Vec<ServerToAgent> {
        let read = async {
            let tasks: Vec<TaskRecord> = self
                .store
                .tasks()
                .await?
                .into_iter()
                .filter(TaskRecord::runs_on_device_clock)
                .collect();
            if tasks.is_empty() {
                return Ok(Vec::new());
            }
            let Some(device) = self.store.device(device_id).await? else {
                return Ok(Vec::new());
            };
            let tree = self.store.group_tree().await?;
            let mut registry: Option<Vec<DeviceRecord>> = None;
            let mut defs = Vec::new();
            for task in tasks.iter().filter(|t| reaches(t, &device, &tree)) {
                let TaskType::Device(payload) = &task.task_type else {
                    continue;
                };
                let automatic =
                    task.settings.schedule_options.random_delay == RandomDelay::Automatic;
                let known = lock(&self.reach_counts).get(&task.id).copied();
                let reached = match known {
                    Some(count) => count,
                    None if automatic => {
                        if registry.is_none() {
                            registry = Some(self.store.devices().await?);
                        }
                        let all = registry.as_deref().unwrap_or_default();
                        let count = all.iter().filter(|d| reaches(task, d, &tree)).count() as u64;
                        lock(&self.reach_counts).insert(task.id, count);
                        count
                    }
                    None => 0,
                };
                defs.push(def_of(task, payload, reached));
            }
            Ok::<_, crate::store::StoreError>(defs)
        };
        let defs = read.await.unwrap_or_else(|e| {
            tracing::error!("cannot read the scheduled tasks of a device: {e}");
            Vec::new()
        });
        let task_ids = defs.iter().map(|d| d.task_id).collect();
        defs.into_iter()
            .map(|def| ServerToAgent::ScheduledTask(Box::new(def)))
            .chain([ServerToAgent::ScheduledTasks { task_ids }])
            .collect()
    }

    /// After tasks changed (`changed`: their ids, any kind; a deleted one too): each
    /// connected device is sent the changed tasks it runs on its own schedule and the list
    /// of all it runs, so it takes up new ones and forgets those that no longer reach it.
    /// Never waits for a device (see `LiveDevice::offer`).
    async fn push_schedules(&self, changed: &[TaskId]) {
        let reach = self.reaches().await;
        let mut by_device: HashMap<&str, Vec<&Reach>> = HashMap::new();
        for r in &reach {
            for device in &r.devices {
                by_device.entry(device.as_str()).or_default().push(r);
            }
        }
        let live = lock(&self.devices);
        for (id, device) in live.iter() {
            let mine = by_device
                .get(id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            for r in mine.iter().filter(|r| changed.contains(&r.def.task_id)) {
                device.offer(id, ServerToAgent::ScheduledTask(Box::new(r.def.clone())));
            }
            let task_ids = mine.iter().map(|r| r.def.task_id).collect();
            device.offer(id, ServerToAgent::ScheduledTasks { task_ids });
        }
    }

    /// After tasks changed: the server's scheduler looks again, and with `devices_told`,
    /// connected devices are told (see [`Node::push_schedules`]).
    pub(in crate::server) async fn tasks_changed(&self, changed: &[TaskId], devices_told: bool) {
        self.schedules_changed.notify_one();
        if devices_told {
            self.push_schedules(changed).await;
        }
    }

    /// After a device moved: it is sent everything it runs on its own schedule now.
    pub(in crate::server) async fn push_schedules_to(&self, device_id: &str) {
        let messages = self.schedules_of(device_id).await;
        for msg in messages {
            self.tell_device(device_id, msg).await;
        }
    }
}

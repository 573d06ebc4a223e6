//! The server's device registry, the run orders waiting for each device, and the results
//! devices sent back. A result is stored once per (run, device) whatever how often it is sent.

use super::schema::OpenTables;
use super::schema::*;
use super::{Store, StoreError, get, put, remove, values};
use crate::model::device::{DeviceFacts, DeviceRecord, Enrollment};
use crate::model::group::UNASSIGNED_DEVICES;
use crate::model::{Fingerprint, RunRef};
use crate::wire::msg::RunOrder;

mod order;
pub(crate) use order::ensure as ensure_order;
pub use order::{DEVICE_SCAN_PER_PAGE, DeviceKey};

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(DEVICES)?;
    txn.open_table(DEVICE_ORDER)?;
    txn.open_table(FINGERPRINTS)?;
    txn.open_table(PENDING_DEVICES)?;
    txn.open_table(ORDERS)?;
    txn.open_table(OWED_CANCELS)?;
    Ok(())
}

/// Writes a device's record and keeps [`PENDING_DEVICES`] in step with its enrollment, and
/// the name order with its name.
fn save(txn: &redb::WriteTransaction, record: &DeviceRecord) -> Result<(), StoreError> {
    let mut devices = txn.open_table(DEVICES)?;
    let before = get::<DeviceRecord>(&devices, &record.id)?;
    put(&mut devices, &record.id, record)?;
    drop(devices);
    order::index(txn, before.as_ref(), record)?;
    let mut pending = txn.open_table(PENDING_DEVICES)?;
    if record.enrollment == Enrollment::Pending {
        put(&mut pending, &record.id, &())?;
    } else {
        remove(&mut pending, &record.id)?;
    }
    Ok(())
}

/// What the registry says about a device that connects.
#[derive(Debug)]
pub enum Admission {
    /// Known and approved, or just enrolled with a token.
    Approved {
        record: DeviceRecord,
        new: bool,
    },
    /// Waits for an administrator; `new` when it was just registered.
    Pending {
        record: DeviceRecord,
        new: bool,
    },
    Rejected(DeviceRecord),
    /// The id is enrolled with another key.
    KeyChanged {
        record: DeviceRecord,
    },
    /// This key is enrolled under another device id.
    KeyInUse {
        other_id: String,
    },
    /// An unknown device without a token, while `max_pending` devices already wait: it is
    /// not registered.
    TooManyPending {
        max_pending: u64,
    },
    /// An unknown device, while the server already has `max_devices` registered: it is not
    /// registered.
    TooManyDevices {
        max_devices: u64,
    },
}

/// What the registry admits of devices it has not seen before (`[limits]`).
#[derive(Clone, Copy, Debug)]
pub struct DeviceCaps {
    /// Devices registered, whatever their state.
    pub max_devices: u64,
    /// Devices registered without a token, waiting for an administrator.
    pub max_pending: u64,
}

/// A valid enrollment token's group, as the config names it (`None`: Unassigned devices).
pub type TokenGroup = Option<String>;

/// An admission, with what the link needs next.
#[derive(Debug)]
pub struct Admitted {
    pub admission: Admission,
    /// The path of the device's group.
    pub group_path: String,
    /// Orders waiting for the device, oldest first.
    pub orders: Vec<RunOrder>,
    /// A token's group that does not exist (the device went to "Unassigned devices").
    pub missing_group: Option<String>,
}

/// How stale a reconnecting device's stored "last seen" may be before its admission writes
/// it again. The time is also stored when its connection ends, so it stays that exact
/// unless the server is killed while the device is connected.
pub const LAST_SEEN_PRECISION_MS: i64 = 15 * 60 * 1000;

impl Store {
    /// A known device that connects again with its enrolled key and the facts already stored,
    /// last seen less than [`LAST_SEEN_PRECISION_MS`] ago: its admission, decided from a read
    /// on the calling thread, without a write. `None` when admitting it changes the registry
    /// (a new device, another key, new facts, an old "last seen"): then
    /// [`Store::admit_device`]. A reconnect storm after a restart costs no commit this way.
    pub async fn readmit_device(
        &self,
        id: &str,
        fingerprint: Fingerprint,
        facts: &DeviceFacts,
        now: i64,
    ) -> Result<Option<Admitted>, StoreError> {
        self.read_now(|txn| {
            let Some(mut record) = get::<DeviceRecord>(&txn.open_table(DEVICES)?, id)? else {
                return Ok(None);
            };
            let recent = record
                .last_seen
                .is_some_and(|seen| now.saturating_sub(seen) < LAST_SEEN_PRECISION_MS);
            if record.fingerprint != fingerprint || record.facts != *facts || !recent {
                return Ok(None);
            }
            record.last_seen = Some(now);
            let group_id = match record.enrollment {
                Enrollment::Rejected => UNASSIGNED_DEVICES,
                _ => record.group_id,
            };
            let group_path = super::groups::tree_read(txn)?
                .path_of(group_id)
                .unwrap_or_else(|| format!("group #{group_id}"));
            let orders = txn.values_with_prefix::<RunOrder>(ORDERS, &format!("{id}/"))?;
            let admission = match record.enrollment {
                Enrollment::Approved => Admission::Approved { record, new: false },
                Enrollment::Pending => Admission::Pending { record, new: false },
                Enrollment::Rejected => Admission::Rejected(record),
            };
            Ok(Some(Admitted {
                admission,
                group_path,
                orders,
                missing_group: None,
            }))
        })
        .await
    }

    /// Admits a connecting device: updates a known one's facts, registers a new one as
    /// approved into its token's group (when it presented a valid token) or as pending.
    /// Reads what the link needs next in the same transaction: one trip per connection.
    pub async fn admit_device(
        &self,
        id: String,
        fingerprint: Fingerprint,
        facts: DeviceFacts,
        token: Option<TokenGroup>,
        caps: DeviceCaps,
        now: i64,
    ) -> Result<Admitted, StoreError> {
        self.write(move |txn| {
            let tree = super::groups::tree_in(txn)?;
            let mut missing_group = None;
            let token_group = token.as_ref().map(|group| match group {
                None => UNASSIGNED_DEVICES,
                Some(path) => tree.resolve(path).unwrap_or_else(|| {
                    missing_group = Some(path.clone());
                    UNASSIGNED_DEVICES
                }),
            });
            let admission = admit_in(txn, &id, fingerprint, &facts, token_group, caps, now)?;
            let group_id = match &admission {
                Admission::Approved { record, .. } | Admission::Pending { record, .. } => {
                    record.group_id
                }
                _ => UNASSIGNED_DEVICES,
            };
            let orders = txn.values_with_prefix::<RunOrder>(ORDERS, &format!("{id}/"))?;
            Ok(Admitted {
                admission,
                group_path: tree
                    .path_of(group_id)
                    .unwrap_or_else(|| format!("group #{group_id}")),
                orders,
                missing_group,
            })
        })
        .await
    }

    pub async fn device_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(redb::ReadableTableMetadata::len(&txn.open_table(DEVICES)?)?))
            .await
    }

    /// How many devices wait for an administrator's decision.
    pub async fn pending_device_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            Ok(redb::ReadableTableMetadata::len(
                &txn.open_table(PENDING_DEVICES)?,
            )?)
        })
        .await
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read(|txn| values(&txn.open_table(DEVICES)?)).await
    }

    pub async fn device(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        self.read_now(move |txn| get(&txn.open_table(DEVICES)?, id))
            .await
    }

    /// Applies `change` to a device; `None` if there is no such device.
    pub async fn update_device(
        &self,
        id: &str,
        change: impl FnMut(&mut DeviceRecord) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let id = id.to_string();
        let mut change = change;
        self.write(move |txn| {
            let Some(mut record) = get::<DeviceRecord>(&txn.open_table(DEVICES)?, &id)? else {
                return Ok(None);
            };
            change(&mut record)?;
            save(txn, &record)?;
            Ok(Some(record))
        })
        .await
    }

    /// Forgets a device, its key and its waiting orders. Its stored results stay.
    pub async fn delete_device(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let id = id.to_string();
        self.write(move |txn| {
            let mut devices = txn.open_table(DEVICES)?;
            let Some(record) = get::<DeviceRecord>(&devices, &id)? else {
                return Ok(None);
            };
            remove(&mut devices, &id)?;
            drop(devices);
            order::unindex(txn, &record)?;
            remove(&mut txn.open_table(PENDING_DEVICES)?, &id)?;
            remove(
                &mut txn.open_table(FINGERPRINTS)?,
                &record.fingerprint.to_string(),
            )?;
            let mut orders = txn.open_table(ORDERS)?;
            let prefix = format!("{id}/");
            let keys: Vec<String> = super::entries_with_prefix::<RunOrder>(&orders, &prefix)?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            for key in keys {
                remove(&mut orders, &key)?;
            }
            Ok(Some(record))
        })
        .await
    }

    /// The runs a device starts by itself that were stopped and that it has not reported on
    /// since: it is told to cancel them when it connects.
    pub async fn owed_cancels(&self, device_id: &str) -> Result<Vec<RunRef>, StoreError> {
        let prefix = format!("{device_id}/");
        self.read(move |txn| {
            Ok(
                super::entries_with_prefix::<RunRef>(&txn.open_table(OWED_CANCELS)?, &prefix)?
                    .into_iter()
                    .map(|(_, run)| run)
                    .collect(),
            )
        })
        .await
    }

    /// The orders a device has not answered yet, oldest first, but those of paused runs
    /// (they are sent when the run is resumed).
    pub async fn orders_for(&self, device_id: &str) -> Result<Vec<RunOrder>, StoreError> {
        let prefix = format!("{device_id}/");
        self.read(move |txn| {
            let orders = txn.open_table(ORDERS)?;
            let runs = txn.open_table(super::schema::RUNS)?;
            let mut held = Vec::new();
            for (_, order) in super::entries_with_prefix::<RunOrder>(&orders, &prefix)? {
                let paused = match order.run {
                    crate::model::RunRef::Ordered(run_id) => {
                        super::pause::is_paused(&runs, run_id)?
                    }
                    crate::model::RunRef::Occurrence { .. } => false,
                };
                if !paused {
                    held.push(order);
                }
            }
            Ok(held)
        })
        .await
    }
}

fn admit_in(
    txn: &redb::WriteTransaction,
    id: &str,
    fingerprint: Fingerprint,
    facts: &DeviceFacts,
    token_group: Option<u64>,
    caps: DeviceCaps,
    now: i64,
) -> Result<Admission, StoreError> {
    let mut devices = txn.open_table(DEVICES)?;
    let mut fingerprints = txn.open_table(FINGERPRINTS)?;
    let fp = fingerprint.to_string();
    if let Some(mut record) = get::<DeviceRecord>(&devices, id)? {
        if record.fingerprint != fingerprint {
            return Ok(Admission::KeyChanged { record });
        }
        record.facts = facts.clone();
        record.last_seen = Some(now);
        put(&mut devices, id, &record)?;
        return Ok(match record.enrollment {
            Enrollment::Approved => Admission::Approved { record, new: false },
            Enrollment::Pending => Admission::Pending { record, new: false },
            Enrollment::Rejected => Admission::Rejected(record),
        });
    }
    if let Some(other_id) = get::<String>(&fingerprints, &fp)? {
        return Ok(Admission::KeyInUse { other_id });
    }
    if redb::ReadableTableMetadata::len(&devices)? >= caps.max_devices {
        return Ok(Admission::TooManyDevices {
            max_devices: caps.max_devices,
        });
    }
    if token_group.is_none()
        && redb::ReadableTableMetadata::len(&txn.open_table(PENDING_DEVICES)?)? >= caps.max_pending
    {
        return Ok(Admission::TooManyPending {
            max_pending: caps.max_pending,
        });
    }
    let record = DeviceRecord {
        id: id.to_string(),
        fingerprint,
        name: facts.display_name.clone(),
        enrollment: if token_group.is_some() {
            Enrollment::Approved
        } else {
            Enrollment::Pending
        },
        group_id: token_group.unwrap_or(UNASSIGNED_DEVICES),
        tags: facts.tags.clone(),
        facts: facts.clone(),
        enrolled: now,
        last_seen: Some(now),
    };
    drop(devices);
    save(txn, &record)?;
    put(&mut fingerprints, &fp, &id.to_string())?;
    Ok(match record.enrollment {
        Enrollment::Approved => Admission::Approved { record, new: true },
        _ => Admission::Pending { record, new: true },
    })
}

/// Every approved device of this server outside "Unassigned devices": what an inherited
/// task reaches here.
pub(crate) fn managed_devices(
    txn: &redb::WriteTransaction,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(txn
        .values::<DeviceRecord>(DEVICES)?
        .into_iter()
        .filter(|d| d.enrollment == Enrollment::Approved && d.group_id != UNASSIGNED_DEVICES)
        .map(|d| (d.id, d.name))
        .collect())
}

/// The devices a run of `task` made here without an administrator reaches: every managed
/// device for an inherited task, the approved devices its scope reaches otherwise.
pub(crate) fn reached_devices(
    txn: &redb::WriteTransaction,
    task: &crate::model::task::TaskRecord,
) -> Result<Vec<(String, String)>, StoreError> {
    if task.inherited.is_some() {
        return managed_devices(txn);
    }
    let tree = super::groups::tree_in(txn)?;
    Ok(txn
        .values::<DeviceRecord>(DEVICES)?
        .into_iter()
        .filter(|d| d.enrollment == Enrollment::Approved && task.scope.reaches(d, &tree))
        .map(|d| (d.id, d.name))
        .collect())
}

#[cfg(test)]
mod tests;

//! The registry in display-name order: one key per device, `name \0 id`, written in the
//! transaction of every write that adds, renames or removes a device, so that a page of
//! `device list` is a range read instead of a sort of every device.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::super::schema::{DEVICE_ORDER, DEVICES};
use super::super::{Store, StoreError, get, put, remove};
use crate::model::device::DeviceRecord;

/// Rows a page reads at most when a filter skips devices: a group with few devices in a
/// large registry answers with fewer and a cursor to go on from, rather than reading all.
pub const DEVICE_SCAN_PER_PAGE: usize = 20_000;

/// Where a page of devices starts after: a device's name and id.
pub type DeviceKey = (String, String);

fn key(name: &str, id: &str) -> String {
    format!("{name}\u{0}{id}")
}

/// The name and id of an order key (ids never hold a NUL; names may).
fn parse(key: &str) -> Option<DeviceKey> {
    key.rsplit_once('\u{0}')
        .map(|(name, id)| (name.to_string(), id.to_string()))
}

/// Keeps the order in step with `record`, stored as `before` until now (`None`: new).
pub(super) fn index(
    txn: &WriteTransaction,
    before: Option<&DeviceRecord>,
    record: &DeviceRecord,
) -> Result<(), StoreError> {
    let mut order = txn.open_table(DEVICE_ORDER)?;
    if let Some(before) = before
        && before.name != record.name
    {
        remove(&mut order, &key(&before.name, &before.id))?;
    }
    put(&mut order, &key(&record.name, &record.id), &())
}

/// Takes a deleted device out of the order.
pub(super) fn unindex(txn: &WriteTransaction, record: &DeviceRecord) -> Result<(), StoreError> {
    remove(
        &mut txn.open_table(DEVICE_ORDER)?,
        &key(&record.name, &record.id),
    )?;
    Ok(())
}

/// Builds the order of a file that has none, or one out of step (a file from before it,
/// or rewritten by a migration), when the server opens it.
pub(crate) fn ensure(txn: &WriteTransaction) -> Result<(), StoreError> {
    let devices = txn.open_table(DEVICES)?;
    if txn.open_table(DEVICE_ORDER)?.len()? == devices.len()? {
        return Ok(());
    }
    txn.delete_table(DEVICE_ORDER)?;
    let mut order = txn.open_table(DEVICE_ORDER)?;
    for row in devices.iter()? {
        let (_, value) = row?;
        let record: DeviceRecord = super::super::decode(value.value())?;
        put(&mut order, &key(&record.name, &record.id), &())?;
    }
    Ok(())
}

impl Store {
    /// Devices in name order (then id) after `after`, those `keep` takes, at most `limit`,
    /// reading at most [`DEVICE_SCAN_PER_PAGE`] rows; and the key to go on from when there
    /// may be more.
    pub async fn device_page(
        &self,
        after: Option<DeviceKey>,
        limit: usize,
        keep: impl Fn(&DeviceRecord) -> bool + Send + 'static,
    ) -> Result<(Vec<DeviceRecord>, Option<DeviceKey>), StoreError> {
        self.read(move |txn| {
            let order = txn.open_table(DEVICE_ORDER)?;
            let devices = txn.open_table(DEVICES)?;
            let from = after.map(|(name, id)| key(&name, &id));
            let rows = match &from {
                Some(from) => order.range::<&str>(from.as_str()..)?,
                None => order.range::<&str>(..)?,
            };
            let mut page = Vec::new();
            let mut last_read: Option<String> = None;
            let mut read = 0;
            for row in rows {
                let (k, _) = row?;
                let k = k.value().to_string();
                if from.as_deref() == Some(k.as_str()) {
                    continue;
                }
                if page.len() == limit || read == DEVICE_SCAN_PER_PAGE {
                    return Ok((page, last_read.as_deref().and_then(parse)));
                }
                read += 1;
                if let Some((_, id)) = parse(&k)
                    && let Some(record) = get::<DeviceRecord>(&devices, &id)?
                    && keep(&record)
                {
                    page.push(record);
                }
                last_read = Some(k);
            }
            Ok((page, None))
        })
        .await
    }
}

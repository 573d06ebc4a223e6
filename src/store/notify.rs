//! Notification channels added by administrators, and every channel's cursor in the event
//! log: moved past a batch only once its receiver accepted it, so a restart neither loses
//! an event nor sends one twice (the receiver may still see a batch again if the server
//! stopped between its acceptance and this commit: `X-Canopy-Delivery` names each batch).

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::schema::{EVENTS, NOTIFY_CHANNELS, NOTIFY_CURSORS};
use super::{Store, StoreError, get, last_key_u64, put, remove, values};
use crate::model::notify::{ChannelCursor, MAX_CHANNELS, StoredChannel};

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(NOTIFY_CHANNELS)?;
    txn.open_table(NOTIFY_CURSORS)?;
    Ok(())
}

/// The cursor of `name`, made at the log's current end if it has none: a new channel does
/// not get the old log.
fn cursor_or_end(txn: &WriteTransaction, name: &str) -> Result<ChannelCursor, StoreError> {
    let mut cursors = txn.open_table(NOTIFY_CURSORS)?;
    if let Some(cursor) = get::<ChannelCursor>(&cursors, name)? {
        return Ok(cursor);
    }
    let end = last_key_u64(&txn.open_table(EVENTS)?)?.unwrap_or(0);
    let cursor = ChannelCursor {
        after: end,
        ..ChannelCursor::default()
    };
    put(&mut cursors, name, &cursor)?;
    Ok(cursor)
}

impl Store {
    /// The channels administrators added, in name order.
    pub async fn notify_channels(&self) -> Result<Vec<StoredChannel>, StoreError> {
        self.read(|txn| values(&txn.open_table(NOTIFY_CHANNELS)?))
            .await
    }

    /// Adds a channel with its cursor at the log's end; refused if the name is taken here
    /// (`taken`: the names of the config's channels, which are not stored) or `MAX_CHANNELS`
    /// exist.
    pub async fn add_notify_channel(
        &self,
        channel: StoredChannel,
        taken: Vec<String>,
    ) -> Result<ChannelCursor, StoreError> {
        self.write(move |txn| {
            let mut table = txn.open_table(NOTIFY_CHANNELS)?;
            if taken.contains(&channel.name) || table.get(channel.name.as_str())?.is_some() {
                return Err(StoreError::Rejected(format!(
                    "a notification channel named {:?} exists already",
                    channel.name
                )));
            }
            if table.len()? as usize + taken.len() >= MAX_CHANNELS {
                return Err(StoreError::Rejected(format!(
                    "this server has {MAX_CHANNELS} notification channels, the most it holds"
                )));
            }
            put(&mut table, &channel.name, &channel)?;
            drop(table);
            // A channel of that name removed earlier left no cursor: it starts at the end.
            remove(&mut txn.open_table(NOTIFY_CURSORS)?, &channel.name)?;
            cursor_or_end(txn, &channel.name)
        })
        .await
    }

    /// Removes an administrator's channel and its cursor; whether it existed.
    pub async fn remove_notify_channel(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let existed = remove(&mut txn.open_table(NOTIFY_CHANNELS)?, &name)?;
            if existed {
                remove(&mut txn.open_table(NOTIFY_CURSORS)?, &name)?;
            }
            Ok(existed)
        })
        .await
    }

    /// The cursor of channel `name`, made at the log's end the first time a channel of
    /// that name is seen (a channel new in the config).
    pub async fn notify_cursor(&self, name: &str) -> Result<ChannelCursor, StoreError> {
        let name = name.to_string();
        self.write(move |txn| cursor_or_end(txn, &name)).await
    }

    /// Stores channel `name`'s cursor, durably, unless the channel was removed meanwhile.
    pub async fn set_notify_cursor(
        &self,
        name: &str,
        cursor: ChannelCursor,
        config_channel: bool,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let stored = txn
                .open_table(NOTIFY_CHANNELS)?
                .get(name.as_str())?
                .is_some();
            if config_channel || stored {
                put(&mut txn.open_table(NOTIFY_CURSORS)?, &name, &cursor)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::notify::{ChannelFilter, ChannelTarget};
    use crate::model::{Event, EventKind, EventRetention, Severity};

    fn channel(name: &str) -> StoredChannel {
        StoredChannel {
            name: name.into(),
            target: ChannelTarget::Webhook {
                url: "https://127.0.0.1/x".into(),
            },
            filter: ChannelFilter::default(),
            secret: None,
            ca_pem: None,
            created: 0,
            created_by: "admin".into(),
        }
    }

    async fn append(store: &Store, n: usize) {
        let retention = EventRetention {
            keep: 1000,
            keep_days: 30,
        };
        for _ in 0..n {
            let event = Event {
                seq: 0,
                time: 1,
                severity: Severity::Info,
                kind: EventKind::RunFinished,
                message: "m".into(),
                origin: Vec::new(),
            };
            store.append_event(event, None, retention, 1).await.unwrap();
        }
    }

    use crate::store::tasks::tests::open_at as open;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_channel_starts_at_the_end_and_its_cursor_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = open(&path).await;
        append(&store, 3).await;
        let cursor = store
            .add_notify_channel(channel("hook"), vec!["mail".into()])
            .await
            .unwrap();
        assert_eq!(cursor.after, 3);
        let taken = store
            .add_notify_channel(channel("mail"), vec!["mail".into()])
            .await
            .unwrap_err();
        assert!(taken.to_string().contains("exists already"), "{taken}");
        assert_eq!(store.notify_cursor("mail").await.unwrap().after, 3);
        append(&store, 2).await;
        let moved = ChannelCursor {
            after: 5,
            last_delivery: Some(9),
            skipped: 0,
        };
        store.set_notify_cursor("hook", moved, false).await.unwrap();
        let closing = store.clone();
        tokio::task::spawn_blocking(move || closing.close())
            .await
            .unwrap()
            .unwrap();
        drop(store);
        let store = open(&path).await;
        assert_eq!(store.notify_cursor("hook").await.unwrap(), moved);
        assert_eq!(store.notify_channels().await.unwrap().len(), 1);
        assert!(store.remove_notify_channel("hook").await.unwrap());
        // A removed channel's late cursor write is dropped; a new one starts at the end.
        store.set_notify_cursor("hook", moved, false).await.unwrap();
        append(&store, 1).await;
        let again = store
            .add_notify_channel(channel("hook"), Vec::new())
            .await
            .unwrap();
        assert_eq!(again.after, 6);
    }
}

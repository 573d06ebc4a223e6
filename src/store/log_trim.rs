//! The change log kept small (`sync::snapshot`): what each registered child applied, kept
//! durably; the entries every one of them applied (and, beyond `keep`, the oldest whoever
//! has not) trimmed; and the snapshot a child below what was trimmed is sent instead.

use redb::{ReadableTable, WriteTransaction};

use super::schema::{CHANGE_LOG, CHILD_LOG_ACKS, REVOCATIONS, RUNS, SECONDARIES, TASKS};
use super::{META, Store, StoreError, get, put, values};
use crate::model::link::{Audience, Change};
use crate::model::task::{RunRecord, TaskRecord};
use crate::model::{Revocation, SecondaryRecord};
use crate::sync::replicate::{Cursor, LogState};
use crate::sync::snapshot::{self, Snapshot};

/// In META: the highest sequence number trimmed from the log (a `u64`; none: 0). The log's
/// last entry is never trimmed, so its last sequence number is always its last key.
const LOG_TRIMMED: &str = "log_trimmed";

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CHILD_LOG_ACKS)?;
    Ok(())
}

/// Forgets what the child `name` applied (its registration is removed).
pub(crate) fn forget_child(txn: &WriteTransaction, name: &str) -> Result<(), StoreError> {
    super::remove(&mut txn.open_table(CHILD_LOG_ACKS)?, name)?;
    Ok(())
}

fn trimmed_in(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64, StoreError> {
    Ok(get::<u64>(meta, LOG_TRIMMED)?.unwrap_or(0))
}

impl Store {
    /// The highest sequence number trimmed from the change log (0: none).
    pub async fn log_trimmed(&self) -> Result<u64, StoreError> {
        self.read(|txn| trimmed_in(&txn.open_table(META)?)).await
    }

    /// The log as a child at `cursor` starts from it, and the snapshot it is sent instead
    /// of the entries it missed if they were trimmed (see `sync::snapshot`): read with the
    /// log's last sequence number in one transaction, so it is the state at that entry.
    pub async fn log_for_child(
        &self,
        cursor: Cursor,
    ) -> Result<(LogState, Option<Snapshot>), StoreError> {
        let log = self.log_state().await?;
        if !snapshot::needs_snapshot(&cursor, &log, self.log_trimmed().await?) {
            return Ok((log, None));
        }
        self.write(move |txn| {
            let tasks: Vec<TaskRecord> = values(&txn.open_table(TASKS)?)?;
            let runs: Vec<RunRecord> = values(&txn.open_table(RUNS)?)?;
            let revocations: Vec<Revocation> = values(&txn.open_table(REVOCATIONS)?)?;
            let entries = snapshot::state_entries(revocations, tasks, runs);
            let mut log = super::change_log::state_in(txn)?;
            // Never the case for a log that made this state; a file from before the log
            // could be padded with no-ops once, so that the snapshot's numbers fit.
            while log.last_seq < entries.len() as u64 {
                let noop = crate::model::link::LogEntry {
                    change: Change::Noop,
                    audience: Audience::AllChildren,
                };
                super::change_log::append_entry(txn, noop)?;
                log.last_seq += 1;
            }
            let from = log.last_seq - entries.len() as u64;
            Ok((log, Some(Snapshot { from, entries })))
        })
        .await
    }

    /// Keeps that the child `child` applied this server's log (of epoch `epoch`) up to `seq`.
    pub async fn record_child_applied(
        &self,
        child: String,
        epoch: u64,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.write(move |txn| put(&mut txn.open_table(CHILD_LOG_ACKS)?, &child, &(epoch, seq)))
            .await
    }

    /// Trims the log past what every registered child applied, and past all but the newest
    /// `keep` entries whoever has not (`sync::snapshot::trim_point`); the last entry stays.
    /// Returns how many entries went.
    pub async fn trim_log(&self, keep: u64) -> Result<u64, StoreError> {
        self.write(move |txn| {
            let log = super::change_log::state_in(txn)?;
            let trimmed = trimmed_in(&txn.open_table(META)?)?;
            let acks = txn.open_table(CHILD_LOG_ACKS)?;
            let mut applied = Vec::new();
            for child in values::<SecondaryRecord>(&txn.open_table(SECONDARIES)?)? {
                applied.push(match get::<(u64, u64)>(&acks, &child.name)? {
                    Some((epoch, seq)) if epoch == log.epoch => seq,
                    _ => 0,
                });
            }
            drop(acks);
            let to = snapshot::trim_point(log.last_seq, trimmed, keep, applied)
                .min(log.last_seq.saturating_sub(1))
                .max(trimmed);
            if to <= trimmed {
                return Ok(0);
            }
            let mut table = txn.open_table(CHANGE_LOG)?;
            let mut removed = 0;
            loop {
                let first = table.first()?.map(|(seq, _)| seq.value());
                if first.is_none_or(|first| first > to) {
                    break;
                }
                table.pop_first()?;
                removed += 1;
            }
            drop(table);
            put(&mut txn.open_table(META)?, LOG_TRIMMED, &to)?;
            Ok(removed)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::group::MANAGED_DEVICES;
    use crate::model::scope::Scope;
    use crate::store::tasks::tests::{task, temp_store};

    fn group_task(name: &str) -> TaskRecord {
        let mut t = task(1);
        t.name = name.into();
        t.scope = Scope::Group {
            group_id: MANAGED_DEVICES,
            include_subgroups: true,
            include_secondaries: true,
        };
        t
    }

    fn secondary(name: &str) -> SecondaryRecord {
        crate::store::tasks::tests::secondary(name, MANAGED_DEVICES)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_trimmed_past_what_every_child_applied_and_beyond_keep() {
        let (_dir, store) = temp_store().await;
        for name in ["a", "b"] {
            store.add_secondary(secondary(name), 500).await.unwrap();
        }
        let first = store.log_state().await.unwrap().last_seq;
        for i in 0..10 {
            store
                .create_task(group_task(&format!("t{i}")))
                .await
                .unwrap();
        }
        let log = store.log_state().await.unwrap();
        let last = log.last_seq;
        assert_eq!(last, first + 10);
        let applied = |name: &str, epoch, seq| store.record_child_applied(name.into(), epoch, seq);

        // Nobody said what it applied: within `keep`, nothing goes.
        assert_eq!(store.trim_log(100).await.unwrap(), 0);
        applied("a", log.epoch, first + 6).await.unwrap();
        applied("b", log.epoch, first + 4).await.unwrap();
        assert_eq!(store.trim_log(100).await.unwrap(), first + 4);
        assert_eq!(store.log_trimmed().await.unwrap(), first + 4);
        // What a child applied of another log holds everything back.
        applied("b", log.epoch + 1, last).await.unwrap();
        assert_eq!(store.trim_log(100).await.unwrap(), 0);
        // Beyond `keep`, the oldest go whoever has not applied them.
        assert_eq!(store.trim_log(3).await.unwrap(), 10 - 4 - 3);
        assert_eq!(store.log_trimmed().await.unwrap(), last - 3);
        // Everyone applied everything: the last entry stays.
        applied("a", log.epoch, last).await.unwrap();
        applied("b", log.epoch, last).await.unwrap();
        store.trim_log(100).await.unwrap();
        assert_eq!(store.log_trimmed().await.unwrap(), last - 1);
        let kept = store.log_entries(0..=last, 100).await.unwrap();
        assert_eq!(kept.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [last]);
        assert_eq!(store.log_state().await.unwrap(), log);

        // A child below the trimmed start is sent the state, ending where the log ends.
        let behind = Cursor {
            last_applied: first + 2,
            epoch: log.epoch,
        };
        let (state, snapshot) = store.log_for_child(behind).await.unwrap();
        assert_eq!(state, log);
        let snapshot = snapshot.expect("a snapshot for a child behind");
        assert_eq!(snapshot.end(), last);
        assert_eq!(snapshot.entries.len(), 10);
        assert!(
            snapshot
                .entries
                .iter()
                .all(|e| matches!(e.change, Change::TaskUpsert { .. }))
        );
        // One up to date, or new to a log that was never trimmed, is sent the log.
        let current = Cursor {
            last_applied: last,
            epoch: log.epoch,
        };
        assert!(store.log_for_child(current).await.unwrap().1.is_none());

        // A removed registration no longer holds the log back.
        applied("b", log.epoch, first + 1).await.unwrap();
        store.create_task(group_task("t10")).await.unwrap();
        assert_eq!(store.trim_log(100).await.unwrap(), 0);
        store.remove_secondary("b").await.unwrap();
        assert_eq!(store.trim_log(100).await.unwrap(), 1);
    }
}

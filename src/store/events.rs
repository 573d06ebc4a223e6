//! The event log: this server's own events and those its children sent up, each with the
//! path of the server it happened on, kept within a retention; and what the log holds from
//! each child, so that every event is stored once (`sync::events_up`).

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use std::collections::HashSet;

use super::rights::Guarded;
use super::schema::{EVENT_ABOUT, EVENT_CURSORS, EVENTS, RUNS_FINISHED, run_key};
use super::{
    Store, StoreError, entries_u64, get, get_u64, last_key_u64, put, put_u64, remove_u64, signals,
};
use crate::model::{Event, EventFilter, EventRetention, UnixMillis};
use crate::sync::events_up;

/// Rows a filtered list reads at most for one page: a filter that matches little in a
/// long log answers with fewer rows and a cursor to go on from, rather than reading it all.
pub const SCAN_PER_PAGE: usize = 20_000;

/// What a caller may not read of the event log (`server::rights`): this server's own
/// events about these groups and tasks, and every event from these children (secondaries
/// and virtual servers placed in groups the caller may not read) and below them.
#[derive(Clone, Debug, Default)]
pub struct Unreadable {
    pub objects: HashSet<Guarded>,
    pub children: HashSet<String>,
}

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(EVENTS)?;
    txn.open_table(EVENT_CURSORS)?;
    txn.open_table(EVENT_ABOUT)?;
    Ok(())
}

/// Appends `event` (its `seq` assigned here), about `about` if it is about a group or a
/// task, and applies the retention, in `txn`.
pub(super) fn append_in(
    txn: &WriteTransaction,
    mut event: Event,
    about: Option<Guarded>,
    retention: EventRetention,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    let mut table = txn.open_table(EVENTS)?;
    let mut abouts = txn.open_table(EVENT_ABOUT)?;
    let seq = last_key_u64(&table)?.map_or(1, |last| last + 1);
    event.seq = seq;
    put_u64(&mut table, seq, &event)?;
    if let Some(about) = about {
        put_u64(&mut abouts, seq, &about)?;
    }
    signals::note_event(seq);
    let oldest = retention.oldest_kept(now);
    let mut len = table.len()?;
    loop {
        let too_old = match table.first()? {
            Some((_, first)) => super::decode::<Event>(first.value())?.time < oldest,
            None => break,
        };
        if len <= retention.keep.max(1) && !too_old {
            break;
        }
        match table.pop_first()? {
            Some((first, _)) => {
                remove_u64(&mut abouts, first.value())?;
            }
            None => break,
        }
        len -= 1;
    }
    Ok(seq)
}

impl Store {
    /// Appends one of this server's own events; returns its sequence number.
    pub async fn append_event(
        &self,
        event: Event,
        about: Option<Guarded>,
        retention: EventRetention,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        self.write(move |txn| append_in(txn, event.clone(), about, retention, now))
            .await
    }

    /// Writes `event`, the end of run `run_id` in this server's subtree, unless it was
    /// written before: whoever sees the run end first (its last device here, or the last
    /// statistics from below) writes it, once. Whether it was written now.
    pub async fn append_run_finished(
        &self,
        run_id: crate::model::task::RunId,
        event: Event,
        about: Guarded,
        retention: EventRetention,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let mut finished = txn.open_table(RUNS_FINISHED)?;
            if get::<UnixMillis>(&finished, &run_key(run_id))?.is_some() {
                return Ok(false);
            }
            put(&mut finished, &run_key(run_id), &now)?;
            drop(finished);
            append_in(txn, event.clone(), Some(about), retention, now)?;
            Ok(true)
        })
        .await
    }

    /// Stores events the child `child` (log epoch `epoch`) sent up: those it already holds
    /// dropped, each other with the child's name before its origin, and the highest of the
    /// child's sequence numbers held, in one transaction. Returns that number, which the
    /// child is told.
    pub async fn store_child_events(
        &self,
        child: &str,
        epoch: u64,
        events: Vec<Event>,
        retention: EventRetention,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        let child = child.to_string();
        self.write(move |txn| {
            let mut held = held_in(txn, &child, epoch)?;
            let oldest = retention.oldest_kept(now);
            for event in &events {
                if event.seq <= held {
                    continue;
                }
                held = event.seq;
                if event.time >= oldest {
                    append_in(
                        txn,
                        events_up::from_child(&child, event.clone()),
                        None,
                        retention,
                        now,
                    )?;
                }
            }
            put(&mut txn.open_table(EVENT_CURSORS)?, &child, &(epoch, held))?;
            Ok(held)
        })
        .await
    }

    /// The highest of `child`'s events held here, counted in its log epoch `epoch` (0 for
    /// another epoch: it numbers its events again).
    pub async fn events_held_from(&self, child: &str, epoch: u64) -> Result<u64, StoreError> {
        let child = child.to_string();
        self.read_now(move |txn| {
            let cursors = txn.open_table(EVENT_CURSORS)?;
            Ok(match get::<(u64, u64)>(&cursors, &child)? {
                Some((held_epoch, held)) if held_epoch == epoch => held,
                _ => 0,
            })
        })
        .await
    }

    /// The sequence number of the newest event (0: none).
    pub async fn last_event_seq(&self) -> Result<u64, StoreError> {
        self.read_now(|txn| Ok(last_key_u64(&txn.open_table(EVENTS)?)?.unwrap_or(0)))
            .await
    }

    /// At most `limit` events after `after`, oldest first: what goes up to the parent.
    pub async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(EVENTS)?;
            Ok(
                entries_u64::<Event>(&table, after.saturating_add(1).., limit as usize)?
                    .into_iter()
                    .map(|(_, e)| e)
                    .collect(),
            )
        })
        .await
    }

    /// A page of the events `filter` matches, oldest first: after `after`, or without it the
    /// newest. At most `limit`, reading at most [`SCAN_PER_PAGE`] rows; `next` is where to
    /// go on from (the last row read) when there may be more after the page.
    pub async fn event_page(
        &self,
        filter: EventFilter,
        hidden: Unreadable,
        after: Option<u64>,
        limit: u32,
    ) -> Result<(Vec<Event>, Option<u64>), StoreError> {
        let limit = limit as usize;
        self.read(move |txn| {
            let table = txn.open_table(EVENTS)?;
            let abouts = txn.open_table(EVENT_ABOUT)?;
            // An event about something the caller may not read is left out.
            let shown = |event: &Event| -> Result<bool, StoreError> {
                if !filter.matches(event) {
                    return Ok(false);
                }
                if let Some(child) = event.origin.first() {
                    return Ok(!hidden.children.contains(child));
                }
                if hidden.objects.is_empty() {
                    return Ok(true);
                }
                let about = get_u64::<Guarded>(&abouts, event.seq)?;
                Ok(about.is_none_or(|about| !hidden.objects.contains(&about)))
            };
            let mut page = Vec::new();
            match after {
                Some(after) => {
                    let mut last_read = None;
                    let mut more = false;
                    for (read, row) in table.range(after.saturating_add(1)..)?.enumerate() {
                        let (key, value) = row?;
                        if read == SCAN_PER_PAGE || page.len() == limit {
                            more = true;
                            break;
                        }
                        last_read = Some(key.value());
                        let event = super::decode::<Event>(value.value())?;
                        if shown(&event)? {
                            page.push(event);
                        }
                    }
                    Ok((page, last_read.filter(|_| more)))
                }
                None => {
                    for row in table.iter()?.rev().take(SCAN_PER_PAGE) {
                        let (_, value) = row?;
                        let event = super::decode::<Event>(value.value())?;
                        if shown(&event)? {
                            page.push(event);
                            if page.len() == limit {
                                break;
                            }
                        }
                    }
                    page.reverse();
                    Ok((page, None))
                }
            }
        })
        .await
    }
}

fn held_in(txn: &WriteTransaction, child: &str, epoch: u64) -> Result<u64, StoreError> {
    let cursors = txn.open_table(EVENT_CURSORS)?;
    Ok(match get::<(u64, u64)>(&cursors, child)? {
        Some((held_epoch, held)) if held_epoch == epoch => held,
        _ => 0,
    })
}

#[cfg(test)]
mod tests;

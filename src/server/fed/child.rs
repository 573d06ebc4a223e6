//! Drives a `ChildSession` (the parent's side of one child's link) over whatever carries the
//! link: carries out its effects against the store and the event log, and moves its
//! messages. The protocol's decisions are all in `sync::child_session`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{ChildLink, sleep_until_some};
use crate::model::Severity;
use crate::server::{Node, link_seal, now_ms};
use crate::sync::child_session::{ChildEffect, ChildSession};
use crate::sync::replicate::LogState;
use crate::wire::msg::AdminResponse;

/// Runs the parent's side of a child's link until it ends: streams the change log, stores
/// the child's subtree and statistics, relays administrators' requests. Returns why the link
/// ended.
pub(in crate::server) async fn serve_child_link(node: &Arc<Node>, link: ChildLink) -> String {
    let ChildLink {
        name,
        group_id,
        cursor,
        child_epoch,
        snapshot,
        rx,
        tx,
        requests,
        key,
    } = link;
    let mut log = node.store.signals().log_last_seq();
    let last_seq = *log.borrow_and_update();
    let epoch = match node.store.log_state().await {
        Ok(state) => state.epoch,
        Err(e) => return format!("cannot read the change log: {e}"),
    };
    let state = LogState { epoch, last_seq };
    let mut session = ChildSession::new(&name, cursor, child_epoch, state, Instant::now());
    if let Some(snapshot) = snapshot {
        let trimmed = match node.store.log_trimmed().await {
            Ok(trimmed) => trimmed,
            Err(e) => return format!("cannot read the change log: {e}"),
        };
        session.send_snapshot(snapshot, cursor, trimmed, Instant::now());
    }
    let mut applied = AppliedMark::new(epoch);
    let reason = serve(
        node,
        &mut session,
        &mut applied,
        group_id,
        child_epoch,
        (rx, tx, requests, key),
    )
    .await;
    // What the child applied, kept so that the log can be trimmed while it is away.
    applied.record(node, &session, true).await;
    reason
}

/// What was last kept of what a child applied (`Store::record_child_applied`): at most
/// every few seconds while it acknowledges, and when its link ends.
struct AppliedMark {
    epoch: u64,
    recorded: Option<u64>,
    at: Instant,
}

/// How often what a child applied is kept while it acknowledges.
const RECORD_APPLIED_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl AppliedMark {
    fn new(epoch: u64) -> Self {
        AppliedMark {
            epoch,
            recorded: None,
            at: Instant::now(),
        }
    }

    /// When what the child applied since it was last kept is next due to be kept.
    fn due(&self, session: &ChildSession) -> Option<Instant> {
        let acked = session.applied()?;
        (self.recorded != Some(acked)).then_some(self.at + RECORD_APPLIED_EVERY)
    }

    async fn record(&mut self, node: &Node, session: &ChildSession, now_too: bool) {
        let Some(acked) = session.applied() else {
            return;
        };
        let due = now_too || self.at.elapsed() >= RECORD_APPLIED_EVERY;
        if self.recorded == Some(acked) || !due {
            return;
        }
        self.at = Instant::now();
        let name = session.name().to_string();
        match node
            .store
            .record_child_applied(name, self.epoch, acked)
            .await
        {
            Ok(()) => self.recorded = Some(acked),
            Err(e) => tracing::error!("cannot keep what {} applied: {e}", session.name()),
        }
    }
}

type Channels = (
    crate::server::fed::Inbox<crate::wire::msg::ChildMsg>,
    tokio::sync::mpsc::Sender<crate::wire::msg::ParentMsg>,
    tokio::sync::mpsc::Receiver<crate::server::Relayed>,
    Arc<crate::store::sealing::SecretKey>,
);

async fn serve(
    node: &Arc<Node>,
    session: &mut ChildSession,
    applied: &mut AppliedMark,
    group_id: u64,
    child_epoch: u64,
    (mut rx, tx, mut requests, key): Channels,
) -> String {
    let mut log = node.store.signals().log_last_seq();
    // The log may have grown since the session was made.
    session.handle_log_appended(*log.borrow_and_update());
    let mut shutdown = node.shutdown.subscribe();
    let mut waiting: HashMap<u64, oneshot::Sender<AdminResponse>> = HashMap::new();
    loop {
        applied.record(node, session, false).await;
        while let Some(effect) = session.poll_effect(Instant::now()) {
            let link = (group_id, child_epoch);
            if let Err(reason) = carry_out(node, session, link, &mut waiting, effect).await {
                return reason;
            }
        }
        while let Some(msg) = session.poll_transmit() {
            let msg = link_seal::to_child(node, &key, msg);
            if tx.send(msg).await.is_err() {
                return "the link closed".into();
            }
        }
        let wake = [session.poll_timeout(), applied.due(session)]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            changed = log.changed() => {
                if changed.is_err() {
                    return "server stopping".into();
                }
                let seq = *log.borrow_and_update();
                session.handle_log_appended(seq);
            }
            msg = rx.recv() => match msg {
                Some(Ok(msg)) => session.handle_message(msg, Instant::now()),
                Some(Err(reason)) => return reason,
                None => return "the link closed".into(),
            },
            request = requests.recv() => {
                let Some((request, answer)) = request else {
                    return "replaced".into();
                };
                let id = session.handle_request(request);
                waiting.insert(id, answer);
            }
            _ = sleep_until_some(wake) => {}
            _ = shutdown.changed() => return "server stopping".into(),
        }
    }
}

/// Carries out one effect; an error ends the link with that reason.
async fn carry_out(
    node: &Node,
    session: &mut ChildSession,
    (group_id, child_epoch): (u64, u64),
    waiting: &mut HashMap<u64, oneshot::Sender<AdminResponse>>,
    effect: ChildEffect,
) -> Result<(), String> {
    match effect {
        ChildEffect::ReadLog(range) => {
            let entries = match session.snapshot_entries(&range) {
                Some(entries) => entries,
                None => read_log(node, range, session.name()).await?,
            };
            let tree = node
                .store
                .group_tree()
                .await
                .map_err(|e| format!("cannot read groups: {e}"))?;
            // By id: a rename or a move of the group leaves the child where it was.
            let child_group = tree.path_of(group_id).map(|_| group_id);
            if child_group.is_none() {
                tracing::warn!(
                    "secondary {} is placed in group #{group_id}, which no longer exists",
                    session.name()
                );
            }
            session.handle_entries(entries, child_group, |a, b| tree.is_descendant(a, b));
        }
        ChildEffect::StoreSubtree { devices, rows } => {
            let stored = node
                .store
                .update_secondary(session.name(), move |r| {
                    r.subtree = rows.clone();
                    r.devices = devices;
                })
                .await;
            if let Err(e) = stored {
                tracing::error!("cannot store the secondary's subtree: {e}");
            }
            node.bump_subtree();
        }
        ChildEffect::MergeStats {
            run_id,
            report_id,
            rows,
        } => match node
            .store
            .merge_stats(run_id, session.name().to_string(), rows)
            .await
        {
            Ok(merged) => {
                if merged.is_none() {
                    tracing::debug!(
                        "statistics of {} for run {run_id} not taken: an unknown run, or one \
                         that does not concern it",
                        session.name()
                    );
                }
                session.handle_stats_merged(run_id, report_id);
                if merged == Some(true) {
                    // The servers below may have been the last to finish the run.
                    match node.store.run(run_id).await {
                        Ok(Some(run)) => node.announce_if_finished(&run).await,
                        Ok(None) => {}
                        Err(e) => tracing::error!("cannot read run {run_id}: {e}"),
                    }
                }
            }
            // Not acknowledged: the child sends the report again.
            Err(e) => tracing::error!("cannot store statistics of run {run_id}: {e}"),
        },
        ChildEffect::Answer { id, response } => {
            if let Some(waiter) = waiting.remove(&id) {
                let _ = waiter.send(*response);
            }
        }
        ChildEffect::Event { kind, message } => {
            node.event(Severity::Info, kind, message).await;
        }
        ChildEffect::StoreEvents { events } => match node
            .store
            .store_child_events(
                session.name(),
                child_epoch,
                events,
                node.config.events,
                now_ms(),
            )
            .await
        {
            Ok(held) => session.handle_events_stored(held),
            // Not acknowledged: the child sends them again.
            Err(e) => tracing::error!("cannot store events of {}: {e}", session.name()),
        },
    }
    Ok(())
}

/// The log's entries in `range`; an error if the log was trimmed past its start since the
/// child connected (it then reconnects, and is sent a snapshot).
async fn read_log(
    node: &Node,
    range: std::ops::RangeInclusive<u64>,
    child: &str,
) -> Result<Vec<(u64, crate::store::replication::LogEntry)>, String> {
    let start = *range.start();
    let limit = (range.end() - range.start() + 1) as usize;
    let entries = node
        .store
        .log_entries(range, limit)
        .await
        .map_err(|e| format!("cannot read the change log: {e}"))?;
    match entries.first() {
        Some((first, _)) if *first != start => Err(format!(
            "the change log was trimmed past change {start}, which {child} has not applied: it \
             is sent a snapshot when it connects again"
        )),
        _ => Ok(entries),
    }
}

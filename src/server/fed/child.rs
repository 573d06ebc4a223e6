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
        mut rx,
        tx,
        mut requests,
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
    let mut shutdown = node.shutdown.subscribe();
    let mut waiting: HashMap<u64, oneshot::Sender<AdminResponse>> = HashMap::new();
    loop {
        while let Some(effect) = session.poll_effect(Instant::now()) {
            let link = (group_id, child_epoch);
            if let Err(reason) = carry_out(node, &mut session, link, &mut waiting, effect).await {
                return reason;
            }
        }
        while let Some(msg) = session.poll_transmit() {
            let msg = link_seal::to_child(node, &key, msg);
            if tx.send(msg).await.is_err() {
                return "the link closed".into();
            }
        }
        let wake = session.poll_timeout();
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
            let limit = (range.end() - range.start() + 1) as usize;
            let entries = node
                .store
                .log_entries(range, limit)
                .await
                .map_err(|e| format!("cannot read the change log: {e}"))?;
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

//! Drives a `ParentSession` (the child's side of its link to the parent) over whatever
//! carries the link: applies the parent's changes in the store and does what they ask of the
//! runtime, reads reports and the subtree, serves relayed requests. The protocol's
//! decisions are all in `sync::parent_session`.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{ParentLink, sleep_until_some};
use crate::model::link::StatsRow;
use crate::model::task::RunId;
use crate::model::{EventKind, Severity};
use crate::server::{Node, link_seal, now_ms};
use crate::sync::events_up::EventSender;
use crate::sync::parent_session::{
    InheritedRun, MAX_CHANGES_PER_APPLY, ParentEffect, ParentPolicy, ParentSession,
};
use crate::wire::msg::{AdminResponse, ServerToAgent, TaskChange};

/// Inherited runs that report at every new link, newest first.
const REPORTED_RUNS_AT_CONNECT: usize = 100;

/// Runs the child's side of an established link until it ends. Returns why it ended.
pub(in crate::server) async fn serve_parent_link(node: &Arc<Node>, link: ParentLink) -> String {
    let ParentLink {
        parent_name,
        registered_name,
        log,
        snapshot_from,
        events_held,
        mut rx,
        tx,
        key,
    } = link;
    let cursor = match node.store.parent_position().await {
        Ok(cursor) => cursor,
        Err(e) => return format!("cannot read the parent's cursor: {e}"),
    };
    let runs = reporting_runs(node).await;
    let policy = ParentPolicy::default();
    let now = Instant::now();
    let signals = node.store.signals();
    let mut newest_event = signals.last_event();
    let newest = match node.store.last_event_seq().await {
        Ok(newest) => newest,
        Err(e) => return format!("cannot read the event log: {e}"),
    };
    let events = EventSender::new(events_held, newest);
    let link = (cursor, log, snapshot_from);
    let mut session = ParentSession::new(policy, &registered_name, link, runs, events, now);
    let mut subtree = node.subtree_changed.subscribe();
    let mut shutdown = node.shutdown.subscribe();
    let (answers_tx, mut answers) = mpsc::channel::<(u64, AdminResponse)>(16);
    loop {
        while let Some(effect) = session.poll_effect(Instant::now()) {
            if let Err(reason) =
                carry_out(node, &mut session, &parent_name, &answers_tx, effect).await
            {
                return reason;
            }
        }
        while let Some(msg) = session.poll_transmit(Instant::now()) {
            if tx.send(msg).await.is_err() {
                return "the link closed".into();
            }
        }
        *crate::server::lock(&node.statistics_behind) = session.statistics_behind();
        let wake = session.poll_timeout();
        tokio::select! {
            res = subtree.changed() => {
                if res.is_err() {
                    return "server stopping".into();
                }
                session.handle_subtree_changed();
            }
            changed = newest_event.changed() => {
                if changed.is_err() {
                    return "server stopping".into();
                }
                let newest = *newest_event.borrow_and_update();
                session.handle_new_events(newest);
            }
            _ = signals.runs_changed() => {
                for (run_id, own_over) in signals.take_runs() {
                    stats_changed(node, &mut session, run_id, own_over).await;
                }
            }
            msg = rx.recv() => {
                match msg {
                    Some(Ok(msg)) => {
                        let msg = link_seal::from_parent(node, &key, msg);
                        session.handle_message(msg, Instant::now());
                    }
                    Some(Err(reason)) => return reason,
                    None => return "the link closed".into(),
                }
                // Changes already waiting are applied in the same transaction.
                for _ in 0..MAX_CHANGES_PER_APPLY {
                    match rx.try_recv() {
                        Ok(Ok(msg)) => {
                            let msg = link_seal::from_parent(node, &key, msg);
                            session.handle_message(msg, Instant::now());
                        }
                        Ok(Err(reason)) => return reason,
                        Err(_) => break,
                    }
                }
            }
            answer = answers.recv() => {
                if let Some((id, response)) = answer {
                    session.handle_answer(id, response);
                }
            }
            _ = sleep_until_some(wake) => {}
            _ = shutdown.changed() => return "server stopping".into(),
        }
    }
}

/// The recent runs that carry out the parent's runs: each reports its whole state once on a
/// new link.
async fn reporting_runs(node: &Node) -> Vec<InheritedRun> {
    let runs = match node.store.inherited_runs(REPORTED_RUNS_AT_CONNECT).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::error!("cannot read inherited runs: {e}");
            return Vec::new();
        }
    };
    let mut reporting = Vec::with_capacity(runs.len());
    for run in runs {
        if let Some(parent_run) = run.parent_run {
            let complete = node.rollup(&run).await.1.is_complete();
            reporting.push(InheritedRun {
                run_id: run.run_id,
                parent_run,
                complete,
            });
        }
    }
    reporting
}

/// A commit changed run `run_id`'s statistics; `own_over`: its own devices are done.
async fn stats_changed(node: &Node, session: &mut ParentSession, run_id: RunId, own_over: bool) {
    let known = session.parent_run_of(run_id);
    if known.is_some() && !own_over {
        // Not over here, so not over in the subtree: no need to read anything.
        session.handle_stats_changed(run_id, known, false, Instant::now());
        return;
    }
    let run = match node.store.run(run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => return,
        Err(e) => {
            tracing::error!("cannot read run {run_id}: {e}");
            return;
        }
    };
    if run.parent_run.is_none() {
        return;
    }
    let complete = own_over && node.rollup(&run).await.1.is_complete();
    session.handle_stats_changed(run_id, run.parent_run, complete, Instant::now());
}

async fn carry_out(
    node: &Arc<Node>,
    session: &mut ParentSession,
    parent_name: &str,
    answers: &mpsc::Sender<(u64, AdminResponse)>,
    effect: ParentEffect,
) -> Result<(), String> {
    match effect {
        ParentEffect::Resync {
            from,
            epoch,
            start,
            until,
            snapshot,
        } => {
            let applied = node
                .store
                .begin_resync(
                    parent_name.to_string(),
                    epoch,
                    (start, until, snapshot),
                    now_ms(),
                )
                .await
                .map_err(|e| format!("cannot start resynchronising: {e}"))?;
            if snapshot {
                let msg = format!(
                    "receiving a snapshot of the parent server {parent_name}'s state ({} \
                     entries): its change log is trimmed past the {} change(s) applied here; \
                     then dropping what it no longer has",
                    until - start,
                    from.last_applied
                );
                node.event(Severity::Info, EventKind::ReplayStarted, msg)
                    .await;
            } else if from.held_anything() {
                let msg = format!(
                    "resynchronising from the parent server {parent_name}: its change log is \
                     another one than the {} change(s) applied here counted in (it was restored \
                     from a backup or created anew); applying all {until} change(s) of its log, \
                     then dropping what it no longer has",
                    from.last_applied
                );
                node.event(Severity::Warning, EventKind::ReplayStarted, msg)
                    .await;
            }
            after_applied(node, applied).await;
            session.handle_resynced();
        }
        ParentEffect::Apply(batch) => {
            let stored = apply_changes(node, parent_name, batch).await;
            session.handle_applied(stored);
        }
        ParentEffect::ReadReport { run_id, report_id } => match report(node, run_id).await {
            Ok(read) => session.handle_report(run_id, report_id, read),
            // Not sent: the reporter sends it again when no acknowledgement comes.
            Err(e) => tracing::error!("cannot build the report of run {run_id}: {e}"),
        },
        ParentEffect::ReadSubtree => {
            let read = async {
                let devices = node.store.device_count().await?;
                let rows = node.subtree_rows().await?;
                anyhow::Ok((devices, rows))
            };
            match read.await {
                Ok((devices, rows)) => session.handle_subtree(devices, rows),
                Err(e) => tracing::error!("cannot read the subtree: {e}"),
            }
        }
        ParentEffect::ReadEvents { after, limit } => {
            match node.store.events_after(after, limit).await {
                Ok(events) => session.handle_events_read(events, Instant::now()),
                // Not sent: asked again when the batch would have been sent again.
                Err(e) => tracing::error!("cannot read events to send up: {e}"),
            }
        }
        ParentEffect::Serve { id, request } => {
            let node = node.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                let response = crate::server::admin::serve_forwarded(&node, *request).await;
                // An answer too large for the link would end it: an error goes instead.
                let response = crate::server::reply::fit(response);
                let _ = answers.send((id, response)).await;
            });
        }
    }
    Ok(())
}

/// Applies a batch of the parent's changes with the cursor, then does what they ask of the
/// runtime: orders to connected devices, cancellations, events.
async fn apply_changes(
    node: &Arc<Node>,
    parent_name: &str,
    batch: Vec<(u64, TaskChange)>,
) -> Result<(), ()> {
    let batch: Arc<[(u64, TaskChange)]> = batch.into();
    let applied = match node
        .store
        .apply_parent_changes(parent_name.to_string(), batch.clone(), now_ms())
        .await
    {
        Ok(applied) => applied,
        Err(e) if e.is_permanent() => return apply_one_by_one(node, parent_name, &batch).await,
        Err(e) => {
            tracing::error!("cannot apply the parent's changes: {e}");
            return Err(());
        }
    };
    after_applied(node, applied).await;
    Ok(())
}

/// A batch refused as a whole: each change on its own, and one that can never apply is
/// skipped with an event, so that it does not stop every change after it.
async fn apply_one_by_one(
    node: &Arc<Node>,
    parent_name: &str,
    batch: &[(u64, TaskChange)],
) -> Result<(), ()> {
    for (seq, change) in batch {
        let (seq, what) = (*seq, describe(change));
        let one: Arc<[(u64, TaskChange)]> = Arc::new([(seq, change.clone())]);
        let applied = match node
            .store
            .apply_parent_changes(parent_name.to_string(), one, now_ms())
            .await
        {
            Ok(applied) => applied,
            Err(e) if e.is_permanent() => {
                let msg = format!(
                    "change {seq} of the parent server {parent_name}'s log ({what}) cannot be applied here and was skipped: {e}"
                );
                tracing::error!("{msg}");
                node.event(Severity::Error, EventKind::ChangeSkipped, msg)
                    .await;
                match node
                    .store
                    .skip_parent_change(parent_name.to_string(), seq, now_ms())
                    .await
                {
                    Ok(applied) => applied,
                    Err(e) => {
                        tracing::error!("cannot skip the parent's change {seq}: {e}");
                        return Err(());
                    }
                }
            }
            Err(e) => {
                tracing::error!("cannot apply the parent's change {seq}: {e}");
                return Err(());
            }
        };
        after_applied(node, applied).await;
    }
    Ok(())
}

/// A change of the parent's log in words, for an event.
fn describe(change: &TaskChange) -> String {
    use crate::model::link::Change;
    match change {
        Change::TaskUpsert { task, revision, .. } => {
            format!("task {:?} #{} at revision {revision}", task.name, task.id)
        }
        Change::TaskDelete { task_id } => format!("deletion of task #{task_id}"),
        Change::RunStart {
            task_id, run_id, ..
        } => format!("start of run {run_id} of task #{task_id}"),
        Change::RunStop { task_id, run_id } => format!("stop of run {run_id} of task #{task_id}"),
        Change::ChainStart {
            task_id,
            run_id,
            after_run,
            ..
        } => format!("start of run {run_id} of task #{task_id}, after run {after_run}"),
        Change::RunPause {
            task_id,
            run_id,
            paused,
        } => format!(
            "{} of run {run_id} of task #{task_id}",
            if *paused { "pause" } else { "resumption" }
        ),
        Change::Revoke(revocation) => format!("revocation of {}", revocation.fingerprint),
        Change::Noop => "nothing".into(),
    }
}

/// What applied changes ask of the runtime: events, orders to connected devices,
/// cancellations.
async fn after_applied(node: &Arc<Node>, applied: crate::store::replication::AppliedChanges) {
    for line in applied.described {
        node.event(Severity::Info, EventKind::TaskChanged, line)
            .await;
    }
    for revocation in &applied.revoked {
        node.revoked(revocation).await;
    }
    for started in &applied.started {
        node.deliver_run(started);
    }
    if !applied.tasks_changed.is_empty() {
        node.tasks_changed(&applied.tasks_changed, true).await;
    }
    for change in applied.paused {
        node.apply_pause(change).await;
    }
    for (device_id, run) in applied.cancel {
        node.tell_device(&device_id, ServerToAgent::Cancel { run })
            .await;
    }
}

/// A run's own row and the rows held from below; `None` when the run is gone.
async fn report(
    node: &Node,
    run_id: RunId,
) -> Result<Option<(StatsRow, Vec<StatsRow>)>, crate::store::StoreError> {
    let Some(run) = node.store.run(run_id).await? else {
        return Ok(None);
    };
    let rows = node.store.stats_rows(run_id).await?;
    let epoch = node.store.log_state().await?.epoch;
    let own = StatsRow::own(run.task_id, run.run_id, run.counters, run.version, epoch);
    Ok(Some((own, rows)))
}

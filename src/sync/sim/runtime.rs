//! The simulated runtime of one server: it carries out what its sessions ask against the
//! simulated store and sends what they say, as `server::fed` does over QUIC. A batch handed
//! to the store is committed by a later step, as the store's writer would.

use rand::Rng;

use super::store::RunData;
use super::{Msg, P_STORE_FAILS, Sabotage, Sim};
use crate::model::EventKind;
use crate::model::link::StatsRow;
use crate::sync::child_session::{ChildEffect, ChildSession};
use crate::sync::parent_session::{ParentEffect, ParentSession};
use crate::sync::{inherit, stats};
use crate::wire::msg::ChildMsg;

impl Sim {
    // ---- The runtime: effects and transmits ----

    /// Carries out what `x`'s sessions ask and sends what they say, as `server::fed` does.
    pub(super) fn pump(&mut self, x: usize) {
        let now = self.now;
        let mut out: Vec<(usize, Msg)> = Vec::new();
        if self.nodes[x].vol.is_none() {
            self.nodes[x].wake = None;
            return;
        }
        let sabotage_rows = self.sabotage == Sabotage::LastReportWins;
        let is_below = |a: u64, b: u64| self.topo.is_below(a, b);
        // The links to children.
        let children: Vec<usize> = self.nodes[x]
            .vol
            .as_ref()
            .map(|v| v.children.keys().copied().collect())
            .unwrap_or_default();
        let child_epochs: std::collections::BTreeMap<usize, u64> = children
            .iter()
            .map(|&c| (c, self.nodes[c].store.epoch))
            .collect();
        for c in children {
            let node = &mut self.nodes[x];
            let Some(session) = node.vol.as_mut().and_then(|v| v.children.get_mut(&c)) else {
                continue;
            };
            // The store's watch of the log's last sequence number.
            session.handle_log_appended(node.store.log.len() as u64);
            while let Some(effect) = session.poll_effect(now) {
                match effect {
                    ChildEffect::ReadLog(range) => {
                        let entries = range
                            .filter_map(|seq| {
                                let entry = node.store.log.get(seq as usize - 1)?;
                                Some((seq, entry.clone()))
                            })
                            .collect();
                        session.handle_entries(entries, Some(self.topo.placed[c]), is_below);
                    }
                    ChildEffect::MergeStats {
                        run_id,
                        report_id,
                        rows,
                    } => {
                        // Taken only for a run that concerns the child, as the store does.
                        let audience = node
                            .store
                            .runs
                            .get(&run_id)
                            .and_then(|run| node.store.tasks.get(&run.task_id))
                            .and_then(inherit::audience);
                        let placed = Some(self.topo.placed[c]);
                        if stats::accepts_report(audience, placed, is_below) {
                            node.store.merge_stats(run_id, rows, sabotage_rows);
                        }
                        session.handle_stats_merged(run_id, report_id);
                    }
                    ChildEffect::Event { kind, .. } => {
                        if kind == EventKind::ReplayStarted {
                            self.tally.replays += 1;
                        }
                    }
                    ChildEffect::StoreEvents { events } => {
                        let epoch = child_epochs[&c];
                        let name = format!("s{c}");
                        let held = node.store.events.store_from_child(&name, epoch, events);
                        session.handle_events_stored(held);
                    }
                    ChildEffect::StoreSubtree { .. } | ChildEffect::Answer { .. } => {}
                }
            }
            while let Some(msg) = session.poll_transmit() {
                out.push((c, Msg::Down(msg)));
            }
        }
        // What commits changed, for the link to the parent (the store's signals).
        let noted = std::mem::take(&mut self.nodes[x].store.noted);
        for run_id in noted {
            let own_over = self.nodes[x]
                .store
                .runs
                .get(&run_id)
                .is_none_or(RunData::own_over);
            if let Some(vol) = self.nodes[x].vol.as_mut() {
                vol.changed_runs.insert(run_id, own_over);
            }
        }
        let has_parent = self.nodes[x]
            .vol
            .as_ref()
            .is_some_and(|v| v.parent.is_some());
        if has_parent {
            let changed = self.nodes[x]
                .vol
                .as_mut()
                .map(|v| std::mem::take(&mut v.changed_runs))
                .unwrap_or_default();
            let mut updates = Vec::new();
            for (run_id, own_over) in changed {
                let Some(run) = self.nodes[x].store.runs.get(&run_id) else {
                    continue;
                };
                let complete = own_over && self.rollup(x, run).is_complete();
                updates.push((run_id, run.parent_run, complete));
            }
            let node = &mut self.nodes[x];
            if let Some(session) = node.vol.as_mut().and_then(|v| v.parent.as_mut()) {
                for (run_id, parent_run, complete) in updates {
                    session.handle_stats_changed(run_id, parent_run, complete, now);
                }
            }
            self.pump_parent(x, &mut out);
        }
        let vol = self.nodes[x].vol.as_ref();
        let wake = vol.and_then(|v| {
            v.children
                .values()
                .filter_map(ChildSession::poll_timeout)
                .chain(v.parent.as_ref().and_then(ParentSession::poll_timeout))
                .min()
        });
        self.nodes[x].wake = wake;
        for (link, msg) in out {
            if matches!(msg, Msg::Up(ChildMsg::Stats { .. })) {
                self.tally.reports += 1;
            }
            self.send(link, msg);
        }
    }

    /// The link to the parent: its effects and messages.
    fn pump_parent(&mut self, x: usize, out: &mut Vec<(usize, Msg)>) {
        let now = self.now;
        let now_ms = self.millis();
        let devices = self.topo.devices[x] as u64;
        let node = &mut self.nodes[x];
        let Some(vol) = node.vol.as_mut() else {
            return;
        };
        let Some(session) = vol.parent.as_mut() else {
            return;
        };
        // The store's watch of the event log.
        session.handle_new_events(node.store.events.newest());
        while let Some(effect) = session.poll_effect(now) {
            match effect {
                // Committed by a later step, as the store's writer would.
                ParentEffect::Apply(batch) => vol.applying = Some(batch),
                ParentEffect::ReadReport { run_id, report_id } => {
                    let read = node.store.runs.get(&run_id).map(|run| {
                        let epoch = node.store.epoch;
                        let own =
                            StatsRow::own(run.task_id, run_id, run.counters, run.version, epoch);
                        (own, run.table.rows().cloned().collect())
                    });
                    session.handle_report(run_id, report_id, read);
                }
                ParentEffect::Resync {
                    epoch,
                    start,
                    until,
                    ..
                } => {
                    // One transaction, done at once: nothing of the parent's is being
                    // applied (a link is only set up once the batch in flight is stored).
                    node.store.begin_resync(epoch, (start, until), now_ms);
                    session.handle_resynced();
                }
                ParentEffect::ReadSubtree => session.handle_subtree(devices, Vec::new()),
                ParentEffect::Serve { .. } => {}
                ParentEffect::ReadEvents { after, limit } => {
                    let events = node.store.events.read(after, limit);
                    session.handle_events_read(events, now);
                }
            }
        }
        while let Some(msg) = session.poll_transmit(now) {
            out.push((x, Msg::Up(msg)));
        }
    }

    // ---- Durable steps ----

    /// The store's writer commits the batch being applied: its effect, the changes logged
    /// again for this server's children and the cursor, in one transaction; or fails it.
    pub(super) fn store_step(&mut self, c: usize) {
        self.touch(c);
        let fails = self.faults && self.rng.random_bool(P_STORE_FAILS);
        let now = self.millis();
        let Some(p) = self.topo.parent[c] else {
            return;
        };
        let devices = self.topo.devices[c];
        let node = &mut self.nodes[c];
        let Some(vol) = node.vol.as_mut() else {
            return;
        };
        let Some(batch) = vol.applying.take() else {
            return;
        };
        if fails {
            self.tally.store_failures += 1;
            if let Some(session) = vol.parent.as_mut() {
                session.handle_applied(Err(()));
            }
            return;
        }
        let applied = node
            .store
            .apply_batch(&format!("s{p}"), &batch, c, devices, now);
        node.store.events.record_own(&format!("s{c}"), now);
        if let Some(session) = vol.parent.as_mut() {
            session.handle_applied(Ok(()));
        }
        for (run, parent_run) in applied.started {
            let origin = self.origin.get(&(p, parent_run)).copied();
            match origin {
                Some(origin) => {
                    self.origin.insert((c, run), origin);
                }
                None => self.violation(format!("s{c} started run {run} for unknown {parent_run}")),
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for seq in &self.nodes[c].store.applied {
            if !seen.insert(*seq) {
                self.violations
                    .push(format!("s{c} applied change {seq} of its parent twice"));
                break;
            }
        }
    }
}

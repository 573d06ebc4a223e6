//! A run's counters: devices per state, need-restart and progress.

use serde::{Deserialize, Serialize};

use super::{DeviceRunRecord, DeviceState};

/// A run's statistics: devices per state and how many need a restart. Kept in the same
/// transaction as the per-device records they count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounters {
    /// Indexed like [`DeviceState::ALL`].
    pub by_state: [u64; 7],
    pub need_restart: u64,
    /// The percentages complete of the devices still running or paused, summed: with the
    /// finished devices, how far the run is ([`RunCounters::completion_percent`]).
    pub progress: u64,
}

impl RunCounters {
    fn index(state: DeviceState) -> usize {
        DeviceState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or_default()
    }

    pub fn count(&self, state: DeviceState) -> u64 {
        self.by_state[Self::index(state)]
    }

    /// Saturating: the counts of a row may come from a child, which could make them up.
    pub fn total(&self) -> u64 {
        self.by_state.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    pub fn finished(&self) -> u64 {
        DeviceState::ALL
            .iter()
            .filter(|s| s.is_finished())
            .map(|s| self.count(*s))
            .fold(0u64, u64::saturating_add)
    }

    /// How far the run is over its targeted devices, in percent: a finished device counts
    /// 100, a running or paused one the percentage its agent last reported.
    pub fn completion_percent(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => {
                let done = self.finished() as f64 * 100.0 + self.progress as f64;
                (done / total as f64).min(100.0)
            }
        }
    }

    /// What a record adds to the progress sum: only a device still at work has a share.
    fn share(record: &DeviceRunRecord) -> u64 {
        match record.state {
            DeviceState::Running | DeviceState::Paused => u64::from(record.progress.min(100)),
            _ => 0,
        }
    }

    /// Counts a record that is new.
    pub fn add(&mut self, record: &DeviceRunRecord) {
        let slot = &mut self.by_state[Self::index(record.state)];
        *slot = slot.saturating_add(1);
        if record.need_restart {
            self.need_restart = self.need_restart.saturating_add(1);
        }
        self.progress = self.progress.saturating_add(Self::share(record));
    }

    /// Moves a device from what `old` said to what `new` says.
    pub fn replace(&mut self, old: &DeviceRunRecord, new: &DeviceRunRecord) {
        let slot = &mut self.by_state[Self::index(old.state)];
        *slot = slot.saturating_sub(1);
        if old.need_restart {
            self.need_restart = self.need_restart.saturating_sub(1);
        }
        self.progress = self.progress.saturating_sub(Self::share(old));
        self.add(new);
    }

    /// The counters of a set of records, from scratch.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a DeviceRunRecord>) -> Self {
        let mut counters = RunCounters::default();
        for record in records {
            counters.add(record);
        }
        counters
    }
}

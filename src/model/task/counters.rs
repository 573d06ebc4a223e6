//! A run's counters: devices per state, need-restart and progress.

use serde::{Deserialize, Serialize};

use super::{DeviceRunRecord, DeviceState};

/// A run's statistics: devices per state and how many need a restart. Kept in the same
/// transaction as the per-device records they count.
/// In binary formats (the wire, the store) the array as it is; in JSON by state name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// [`RunCounters`] as the binary formats hold it.
#[derive(Serialize, Deserialize)]
struct Stored {
    by_state: [u64; 7],
    need_restart: u64,
    progress: u64,
}

/// [`RunCounters`] as JSON shows it: devices by state name.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RunCounters")]
struct Named {
    /// Devices in each state.
    by_state: ByState,
    /// Devices that need a restart to finish.
    need_restart: u64,
    /// The percentages complete of the devices still running or paused, summed.
    progress: u64,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ByState {
    pending: u64,
    scheduled: u64,
    running: u64,
    succeeded: u64,
    warning: u64,
    failed: u64,
    paused: u64,
}

impl Serialize for RunCounters {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let [
            pending,
            scheduled,
            running,
            succeeded,
            warning,
            failed,
            paused,
        ] = self.by_state;
        if serializer.is_human_readable() {
            Named {
                by_state: ByState {
                    pending,
                    scheduled,
                    running,
                    succeeded,
                    warning,
                    failed,
                    paused,
                },
                need_restart: self.need_restart,
                progress: self.progress,
            }
            .serialize(serializer)
        } else {
            Stored {
                by_state: self.by_state,
                need_restart: self.need_restart,
                progress: self.progress,
            }
            .serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for RunCounters {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let n = Named::deserialize(deserializer)?;
            let b = n.by_state;
            Ok(RunCounters {
                by_state: [
                    b.pending,
                    b.scheduled,
                    b.running,
                    b.succeeded,
                    b.warning,
                    b.failed,
                    b.paused,
                ],
                need_restart: n.need_restart,
                progress: n.progress,
            })
        } else {
            let s = Stored::deserialize(deserializer)?;
            Ok(RunCounters {
                by_state: s.by_state,
                need_restart: s.need_restart,
                progress: s.progress,
            })
        }
    }
}

impl schemars::JsonSchema for RunCounters {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RunCounters".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Named::json_schema(generator)
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    #[test]
    fn by_state_name_in_json_and_an_array_in_bincode() {
        let counters = RunCounters {
            by_state: [1, 2, 3, 4, 5, 6, 7],
            need_restart: 8,
            progress: 9,
        };
        let json = serde_json::to_value(counters).unwrap();
        assert_eq!(json["by_state"]["succeeded"], 4);
        assert_eq!(json["by_state"]["paused"], 7);
        assert_eq!(
            serde_json::from_value::<RunCounters>(json).unwrap(),
            counters
        );
        let config = bincode::config::standard();
        let binary = bincode::serde::encode_to_vec(counters, config).unwrap();
        let old = bincode::serde::encode_to_vec(
            Stored {
                by_state: counters.by_state,
                need_restart: 8,
                progress: 9,
            },
            config,
        )
        .unwrap();
        assert_eq!(binary, old, "the stored shape is unchanged");
        let (back, _): (RunCounters, usize) =
            bincode::serde::decode_from_slice(&binary, config).unwrap();
        assert_eq!(back, counters);
    }
}

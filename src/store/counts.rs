//! Counts the server's metrics read at each scrape, each in one read transaction and without
//! reading the device registry: runs by state, and where each registered child stands in
//! this server's change log.

use redb::{ReadableTable, ReadableTableMetadata};

use super::schema::{CHILD_LOG_ACKS, RUNS, SECONDARIES};
use super::{Store, StoreError, get};
use crate::model::task::{RunRecord, RunState};
use crate::wire::codec::decode;

/// How many runs this server keeps in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStates {
    pub running: u64,
    pub paused: u64,
    pub completed: u64,
    pub stopped: u64,
}

impl RunStates {
    /// Each state with its count, in a fixed order.
    pub fn by_state(&self) -> [(RunState, u64); 4] {
        [
            (RunState::Running, self.running),
            (RunState::Paused, self.paused),
            (RunState::Completed, self.completed),
            (RunState::Stopped, self.stopped),
        ]
    }
}

/// A registered child (a secondary or a virtual server) and what it applied of this
/// server's change log, as last kept: `(epoch, sequence number)`, `None` if never.
pub type ChildApplied = (String, Option<(u64, u64)>);

impl Store {
    /// Runs by state, over every run this server keeps (history is pruned by age, so this
    /// reads at most the runs of the retention period; no per-device record is read).
    pub async fn run_states(&self) -> Result<RunStates, StoreError> {
        self.read(|txn| {
            let runs = txn.open_table(RUNS)?;
            let mut states = RunStates::default();
            for entry in runs.iter()? {
                let (_, value) = entry?;
                let run: RunRecord = decode(value.value())?;
                let count = match run.state() {
                    RunState::Running => &mut states.running,
                    RunState::Paused => &mut states.paused,
                    RunState::Completed => &mut states.completed,
                    RunState::Stopped => &mut states.stopped,
                };
                *count += 1;
            }
            Ok(states)
        })
        .await
    }

    /// Every registered child by name, with what it applied of this server's log as kept
    /// (at most a few seconds behind a live link, and when a link ends).
    pub async fn children_applied(&self) -> Result<Vec<ChildApplied>, StoreError> {
        self.read(|txn| {
            let secondaries = txn.open_table(SECONDARIES)?;
            let acks = txn.open_table(CHILD_LOG_ACKS)?;
            let mut out = Vec::with_capacity(secondaries.len()? as usize);
            for entry in secondaries.iter()? {
                let (name, _) = entry?;
                let name = name.value().to_string();
                let applied = get::<(u64, u64)>(&acks, &name)?;
                out.push((name, applied));
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_server_counts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = tokio::task::spawn_blocking(move || Store::open_server(&path))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.run_states().await.unwrap(), RunStates::default());
        assert!(store.children_applied().await.unwrap().is_empty());
    }
}

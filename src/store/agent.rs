//! The device agent's database: its identity, the runs it received, and the results the
//! server has not acknowledged yet. One file serves one agent, or every simulated device of
//! a `--simulate` process (keyed by device).

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StrTable, entries_with_prefix, get, put};
use crate::wire::msg::{RunOrder, RunResult};

/// Identities by slot: "agent" for a real agent, "sim-N" for simulated device N.
const IDENTITIES: StrTable = TableDefinition::new("identities");
/// Runs by "device id/run id".
const RUNS: StrTable = TableDefinition::new("runs");

/// A device's identity: made at its first start and kept for its life.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    pub device_id: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8; the agent's file is readable by its owner only.
    pub key_der: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalRunState {
    /// Stored, not started yet.
    Received,
    /// Recorded as started before the executor began: if the agent dies now, the run is
    /// reported failed ("interrupted") rather than run twice.
    Started,
    Finished,
}

/// The agent's log of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalRun {
    pub order: RunOrder,
    pub state: LocalRunState,
    pub started: Option<i64>,
    pub result: Option<RunResult>,
    /// The server said it stored the result.
    pub acknowledged: bool,
}

fn run_key(device_id: &str, run_id: u64) -> String {
    format!("{device_id}/{run_id:020}")
}

impl Store {
    /// Opens an agent's database with its tables.
    pub fn open_agent(path: &std::path::Path) -> Result<Store, StoreError> {
        let store = Store::open(path)?;
        store.write_blocking(|txn| {
            txn.open_table(IDENTITIES)?;
            txn.open_table(RUNS)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The identities of `slots`, making and storing those that do not exist yet with `make`.
    pub async fn identities(
        &self,
        slots: Vec<String>,
        make: impl Fn(&str) -> Result<Identity, StoreError> + Send + Sync + 'static,
    ) -> Result<Vec<Identity>, StoreError> {
        let existing: Vec<Option<Identity>> = {
            let slots = slots.clone();
            self.read(move |txn| {
                let table = txn.open_table(IDENTITIES)?;
                slots.iter().map(|s| get::<Identity>(&table, s)).collect()
            })
            .await?
        };
        let mut made = Vec::new();
        let mut all = Vec::with_capacity(slots.len());
        for (slot, found) in slots.iter().zip(existing) {
            match found {
                Some(identity) => all.push(identity),
                None => {
                    let identity = make(slot)?;
                    made.push((slot.clone(), identity.clone()));
                    all.push(identity);
                }
            }
        }
        if !made.is_empty() {
            self.write(move |txn| {
                let mut table = txn.open_table(IDENTITIES)?;
                for (slot, identity) in &made {
                    put(&mut table, slot, identity)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(all)
    }

    /// Keeps an order the first time it arrives; `false` if this run is known already, so a
    /// repeated order is never run twice.
    pub async fn receive_order(
        &self,
        device_id: &str,
        order: RunOrder,
    ) -> Result<bool, StoreError> {
        let key = run_key(device_id, order.run_id);
        self.write(move |txn| {
            let mut runs = txn.open_table(RUNS)?;
            if get::<LocalRun>(&runs, &key)?.is_some() {
                return Ok(false);
            }
            let run = LocalRun {
                order: order.clone(),
                state: LocalRunState::Received,
                started: None,
                result: None,
                acknowledged: false,
            };
            put(&mut runs, &key, &run)?;
            Ok(true)
        })
        .await
    }

    /// Changes one run of the agent's log.
    pub async fn update_run(
        &self,
        device_id: &str,
        run_id: u64,
        change: impl FnMut(&mut LocalRun) + Send + 'static,
    ) -> Result<(), StoreError> {
        let key = run_key(device_id, run_id);
        let mut change = change;
        self.write(move |txn| {
            let mut runs = txn.open_table(RUNS)?;
            if let Some(mut run) = get::<LocalRun>(&runs, &key)? {
                change(&mut run);
                put(&mut runs, &key, &run)?;
            }
            Ok(())
        })
        .await
    }

    /// Every run this device has in its log, oldest first.
    pub async fn local_runs(&self, device_id: &str) -> Result<Vec<LocalRun>, StoreError> {
        let prefix = format!("{device_id}/");
        self.read(move |txn| {
            let runs = txn.open_table(RUNS)?;
            Ok(entries_with_prefix::<LocalRun>(&runs, &prefix)?
                .into_iter()
                .map(|(_, r)| r)
                .collect())
        })
        .await
    }
}

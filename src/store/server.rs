//! The tables of an Administration Server's database: its instance id, secondaries, accounts.

use redb::{ReadableTable, ReadableTableMetadata};

use super::schema::*;
use super::{META, Store, StoreError, get, put, remove, values};
use crate::model::Fingerprint;
use crate::model::{Account, Revocation, Role, SecondaryRecord};

/// In META: the server's instance id (a `String`), made with its database. A backup
/// restored keeps it; a server installed again with the same certificate gets a new one.
const INSTANCE_ID: &str = "instance_id";

fn ensure_instance_id(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    if get::<String>(&meta, INSTANCE_ID)?.is_none() {
        let id = format!("{:016x}", rand::random::<u64>());
        put(&mut meta, INSTANCE_ID, &id)?;
    }
    Ok(())
}

impl Store {
    /// Opens a server's database and makes sure every table exists, so reads never find a
    /// missing table.
    pub fn open_server(path: &std::path::Path) -> Result<Store, StoreError> {
        let store = Store::open(path)?;
        let restored = store.write_blocking(|txn| {
            txn.open_table(SECONDARIES)?;
            txn.open_table(ACCOUNTS)?;
            super::events::create_tables(txn)?;
            super::devices::create_tables(txn)?;
            super::devices::ensure_order(txn)?;
            super::groups::create_tables(txn)?;
            super::tasks::create_tables(txn)?;
            super::replication::create_tables(txn)?;
            super::revocations::create_tables(txn)?;
            super::notify::create_tables(txn)?;
            super::log_trim::create_tables(txn)?;
            super::rights::create_tables(txn)?;
            ensure_instance_id(txn)?;
            Ok(super::change_log::ensure_epoch(txn)?.1)
        })?;
        if restored {
            tracing::warn!(
                path = %path.display(),
                "this database is a backup copy: its change log starts a new epoch, and its \
                 children resynchronise from it"
            );
        }
        Ok(store)
    }

    /// This server's instance id (see [`INSTANCE_ID`]).
    pub async fn instance_id(&self) -> Result<String, StoreError> {
        self.read_now(|txn| {
            Ok(get::<String>(&txn.open_table(META)?, INSTANCE_ID)?.unwrap_or_default())
        })
        .await
    }

    pub async fn secondaries(&self) -> Result<Vec<SecondaryRecord>, StoreError> {
        // At most a few hundred (limits): read at once.
        self.read_now(|txn| values(&txn.open_table(SECONDARIES)?))
            .await
    }

    pub async fn secondary_by_fingerprint(
        &self,
        fingerprint: Fingerprint,
    ) -> Result<Option<SecondaryRecord>, StoreError> {
        let all = self.secondaries().await?;
        Ok(all
            .into_iter()
            .find(|s| !s.virtual_server && s.fingerprint == fingerprint))
    }

    /// Registers a secondary; refused if the name or the certificate is already registered,
    /// if the certificate is revoked, or if `max` of its kind (secondaries, or virtual
    /// servers) are registered already.
    pub async fn add_secondary(&self, record: SecondaryRecord, max: u64) -> Result<(), StoreError> {
        self.write(move |txn| {
            if !record.virtual_server
                && let Some(revoked) = super::revocations::revocation_in(txn, record.fingerprint)?
            {
                return Err(StoreError::Rejected(format!(
                    "that certificate is revoked ({}): issue the server a new certificate",
                    revoked.describe()
                )));
            }
            let mut table = txn.open_table(SECONDARIES)?;
            let existing: Vec<SecondaryRecord> = values(&table)?;
            if existing.iter().any(|s| s.name == record.name) {
                return Err(StoreError::Rejected(format!(
                    "a secondary or virtual server named {:?} is already registered",
                    record.name
                )));
            }
            if let Some(s) = existing.iter().find(|s| {
                !record.virtual_server && !s.virtual_server && s.fingerprint == record.fingerprint
            }) {
                return Err(StoreError::Rejected(format!(
                    "that certificate is already registered as secondary {:?}",
                    s.name
                )));
            }
            let of_its_kind = existing
                .iter()
                .filter(|s| s.virtual_server == record.virtual_server)
                .count() as u64;
            if of_its_kind >= max {
                let (what, key) = if record.virtual_server {
                    ("virtual servers", "limits.max_virtual_servers")
                } else {
                    ("secondaries", "limits.max_secondaries")
                };
                return Err(StoreError::LimitReached(format!(
                    "this server has its limit of {max} {what} ({key} in its config): remove one, or raise the limit"
                )));
            }
            put(&mut table, &record.name, &record)
        })
        .await
    }

    /// Applies `change` to the named secondary, if it is (still) registered.
    pub async fn update_secondary(
        &self,
        name: &str,
        change: impl FnMut(&mut SecondaryRecord) + Send + 'static,
    ) -> Result<bool, StoreError> {
        let name = name.to_string();
        let mut change = change;
        self.write(move |txn| {
            let mut table = txn.open_table(SECONDARIES)?;
            let Some(mut record) = get::<SecondaryRecord>(&table, &name)? else {
                return Ok(false);
            };
            change(&mut record);
            put(&mut table, &name, &record)?;
            Ok(true)
        })
        .await
    }

    /// Removes a registration, with the statistics rows it reported: re-registered under
    /// another name, the same server's devices must not count twice.
    pub async fn remove_secondary(
        &self,
        name: &str,
    ) -> Result<Option<SecondaryRecord>, StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let mut table = txn.open_table(SECONDARIES)?;
            let record = get::<SecondaryRecord>(&table, &name)?;
            remove(&mut table, &name)?;
            if record.is_some() {
                super::replication::drop_rows_of(txn, &name)?;
            }
            Ok(record)
        })
        .await
    }

    /// Removes a secondary's registration as [`Store::remove_secondary`] does and, in the
    /// same transaction, revokes its certificate for the whole subtree (`revocation` names
    /// who, when and why; its fingerprint and name are the registration's).
    pub async fn remove_and_revoke_secondary(
        &self,
        name: &str,
        revocation: Revocation,
    ) -> Result<Option<(SecondaryRecord, Revocation)>, StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let mut table = txn.open_table(SECONDARIES)?;
            let Some(record) = get::<SecondaryRecord>(&table, &name)? else {
                return Ok(None);
            };
            remove(&mut table, &name)?;
            drop(table);
            super::replication::drop_rows_of(txn, &name)?;
            let revocation = Revocation {
                fingerprint: record.fingerprint,
                name: record.name.clone(),
                ..revocation.clone()
            };
            if !record.virtual_server {
                super::revocations::revoke_in(txn, &revocation)?;
            }
            Ok(Some((record, revocation)))
        })
        .await
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read(|txn| values(&txn.open_table(ACCOUNTS)?)).await
    }

    pub async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let name = name.to_string();
        self.read(move |txn| get(&txn.open_table(ACCOUNTS)?, &name))
            .await
    }

    pub async fn create_account(&self, account: Account) -> Result<(), StoreError> {
        self.write(move |txn| create_account_in(txn, &account, false))
            .await
    }

    /// The bootstrap step: creates the first administrator, refused once any account exists.
    pub fn bootstrap_account(&self, account: Account) -> Result<(), StoreError> {
        self.write_blocking(move |txn| create_account_in(txn, &account, true))
    }

    /// Deletes an account; refused for the last administrator, which would lock everyone out.
    pub async fn delete_account(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let mut table = txn.open_table(ACCOUNTS)?;
            let Some(account) = get::<Account>(&table, &name)? else {
                return Ok(false);
            };
            if account.role == Role::Administrator {
                let admins = values::<Account>(&table)?
                    .iter()
                    .filter(|a| a.role == Role::Administrator)
                    .count();
                if admins <= 1 {
                    return Err(StoreError::Rejected(format!(
                        "{name} is the last administrator; create another one first"
                    )));
                }
            }
            remove(&mut table, &name)
        })
        .await
    }

    pub async fn set_account_password(&self, name: &str, hash: String) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let mut table = txn.open_table(ACCOUNTS)?;
            let Some(mut account) = get::<Account>(&table, &name)? else {
                return Ok(false);
            };
            account.password_hash = hash.clone();
            put(&mut table, &name, &account)?;
            Ok(true)
        })
        .await
    }
}

fn create_account_in(
    txn: &redb::WriteTransaction,
    account: &Account,
    only_if_first: bool,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(ACCOUNTS)?;
    if only_if_first && !table.is_empty()? {
        return Err(StoreError::Rejected(
            "accounts exist already; bootstrap only creates the first one (log in and use `canopy account create`)".into(),
        ));
    }
    if table.get(account.name.as_str())?.is_some() {
        return Err(StoreError::Rejected(format!(
            "an account named {:?} exists already",
            account.name
        )));
    }
    put(&mut table, &account.name, account)
}

//! Server certificates revoked in the deployment. Every server keeps the ones revoked at it
//! (a secondary's registration removed) and at its ancestors (from its parent's change log),
//! and logs each new one for its own children in the transaction that keeps it, so a
//! revocation goes down the whole subtree exactly as tasks do.

use redb::WriteTransaction;

use super::schema::REVOCATIONS;
use super::{Store, StoreError, get, put, values};
use crate::model::{Fingerprint, Revocation};

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(REVOCATIONS)?;
    Ok(())
}

/// Keeps `revocation` unless its certificate is revoked already (the first revocation
/// stays), and logs it for the children. Whether it was new here.
pub(crate) fn revoke_in(
    txn: &WriteTransaction,
    revocation: &Revocation,
) -> Result<bool, StoreError> {
    let mut table = txn.open_table(REVOCATIONS)?;
    let key = revocation.fingerprint.to_string();
    if get::<Revocation>(&table, &key)?.is_some() {
        return Ok(false);
    }
    put(&mut table, &key, revocation)?;
    drop(table);
    super::change_log::log_revocation(txn, revocation.clone())?;
    Ok(true)
}

/// The revocation of `fingerprint`, if it is revoked, inside a write transaction.
pub(crate) fn revocation_in(
    txn: &WriteTransaction,
    fingerprint: Fingerprint,
) -> Result<Option<Revocation>, StoreError> {
    get(&txn.open_table(REVOCATIONS)?, &fingerprint.to_string())
}

impl Store {
    /// The revocation of the certificate with `fingerprint`, if it is revoked.
    pub async fn revocation(
        &self,
        fingerprint: Fingerprint,
    ) -> Result<Option<Revocation>, StoreError> {
        self.read(move |txn| get(&txn.open_table(REVOCATIONS)?, &fingerprint.to_string()))
            .await
    }

    /// Keeps `revocation` and logs it for the children, unless its certificate is revoked
    /// already: whether it was new.
    pub async fn revoke(&self, revocation: Revocation) -> Result<bool, StoreError> {
        self.write(move |txn| revoke_in(txn, &revocation)).await
    }

    /// Every revocation this server holds, oldest first.
    pub async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let mut all: Vec<Revocation> = self
            .read(|txn| values(&txn.open_table(REVOCATIONS)?))
            .await?;
        all.sort_by_key(|r| (r.revoked_at, r.fingerprint.0));
        Ok(all)
    }
}

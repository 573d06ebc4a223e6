//! The server's device registry. (Being written: only what groups need so far.)

use crate::store::StoreError;

pub(crate) fn create_tables(_txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    Ok(())
}

/// How many devices are placed directly in the group `group_id`.
pub(crate) fn count_in_group(
    _txn: &redb::WriteTransaction,
    _group_id: u64,
) -> Result<u64, StoreError> {
    Ok(0)
}

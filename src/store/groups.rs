//! Administration groups. (Being written.)

use crate::store::StoreError;

pub(crate) fn create_tables(_txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    Ok(())
}

//! The rights lists of groups and tasks (`model::rights`), kept per server: they do not go
//! down the tree (each server's administrators set its own). A group's list stays with the
//! group whatever its name or place; a deleted task's with the task, for a restore.

use std::collections::HashMap;

use redb::WriteTransaction;

use super::schema::RIGHTS;
use super::{Store, StoreError, entries, get, put, remove};
use crate::model::rights::{Acl, Grant, Principal};

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(RIGHTS)?;
    Ok(())
}

/// Whose rights list a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Guarded {
    Group(u64),
    Task(u64),
}

impl Guarded {
    fn key(self) -> String {
        match self {
            Guarded::Group(id) => format!("g/{id:020}"),
            Guarded::Task(id) => format!("t/{id:020}"),
        }
    }

    fn of_key(key: &str) -> Option<Guarded> {
        let (kind, id) = key.split_once('/')?;
        let id = id.parse().ok()?;
        match kind {
            "g" => Some(Guarded::Group(id)),
            "t" => Some(Guarded::Task(id)),
            _ => None,
        }
    }
}

/// Every rights list of the server (they are few and small).
#[derive(Clone, Debug, Default)]
pub struct RightsLists {
    pub lists: HashMap<Guarded, Acl>,
}

impl RightsLists {
    pub fn of(&self, object: Guarded) -> Option<&Acl> {
        self.lists.get(&object)
    }
}

impl Store {
    pub async fn rights_lists(&self) -> Result<RightsLists, StoreError> {
        self.read(|txn| {
            let rows: Vec<(String, Acl)> = entries(&txn.open_table(RIGHTS)?)?;
            let lists = rows
                .into_iter()
                .filter_map(|(key, acl)| Some((Guarded::of_key(&key)?, acl)))
                .collect();
            Ok(RightsLists { lists })
        })
        .await
    }

    /// Sets `principal`'s entry in `object`'s list (an empty `grant` removes it); returns
    /// the list as it is now.
    pub async fn set_rights(
        &self,
        object: Guarded,
        principal: Principal,
        grant: Grant,
    ) -> Result<Acl, StoreError> {
        self.write(move |txn| {
            let mut table = txn.open_table(RIGHTS)?;
            let key = object.key();
            let mut acl = get::<Acl>(&table, &key)?.unwrap_or_default();
            acl.set(principal.clone(), grant)
                .map_err(StoreError::Invalid)?;
            if acl.entries.is_empty() {
                remove(&mut table, &key)?;
            } else {
                put(&mut table, &key, &acl)?;
            }
            Ok(acl)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rights::Rights;
    use crate::store::tasks::tests::temp_store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_are_kept_per_object_and_an_empty_one_goes() {
        let (_dir, store) = temp_store().await;
        let paris = Principal::Account("paris-op".into());
        let deny_all = Grant {
            allow: Rights::NONE,
            deny: Rights::ALL,
        };
        store
            .set_rights(Guarded::Group(1), paris.clone(), deny_all)
            .await
            .unwrap();
        let allow = Grant {
            allow: Rights::READ,
            deny: Rights::NONE,
        };
        store
            .set_rights(Guarded::Task(1), paris.clone(), allow)
            .await
            .unwrap();
        let lists = store.rights_lists().await.unwrap();
        assert_eq!(
            lists.of(Guarded::Group(1)).unwrap().entries[&paris],
            deny_all
        );
        assert_eq!(lists.of(Guarded::Task(1)).unwrap().entries[&paris], allow);
        assert!(lists.of(Guarded::Group(3)).is_none());
        let left = store
            .set_rights(Guarded::Task(1), paris, Grant::default())
            .await
            .unwrap();
        assert!(left.entries.is_empty());
        let lists = store.rights_lists().await.unwrap();
        assert!(lists.of(Guarded::Task(1)).is_none());
        assert_eq!(lists.lists.len(), 1);
    }
}

//! A read cache of sealed secret records.
//!
//! Entries hold ciphertext only. Every write through the service removes the entries
//! of the secret it changed after the write commits; a read that started before that
//! write cannot put its stale record back, because each insert checks that no
//! invalidation happened since the read began (an epoch counter).

use rotor_store::{Lookup, SecretRecord};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Entries kept before the cache starts over.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(crate) struct ReadCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    epoch: u64,
    entries: HashMap<Lookup, Arc<SecretRecord>>,
}

impl ReadCache {
    pub(crate) fn get(&self, key: &Lookup) -> Option<Arc<SecretRecord>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.entries.get(key).cloned()
    }

    /// The epoch to pass to [`ReadCache::insert`] for a load starting now.
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).epoch
    }

    pub(crate) fn insert(&self, key: Lookup, record: Arc<SecretRecord>, epoch: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.epoch != epoch {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(key, record);
    }

    /// Forgets a secret under both of its keys.
    pub(crate) fn invalidate(&self, name: &str, arn: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.epoch += 1;
        inner.entries.remove(&Lookup::Name(name.to_string()));
        inner.entries.remove(&Lookup::Arn(arn.to_string()));
    }
}

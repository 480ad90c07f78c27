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
    /// Name → ARN of entries cached under their ARN, so that a change known only
    /// by the secret's name (another node's event) can remove both keys.
    arns: HashMap<String, String>,
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
            inner.arns.clear();
        }
        if let Lookup::Arn(arn) = &key {
            inner.arns.insert(record.meta.name.clone(), arn.clone());
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

/// What never changes about a secret while it exists: its store id, name and ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) arn: String,
    /// The replication rule that owns the secret, when it is a destination.
    pub(crate) replica_of: Option<String>,
}

/// `SecretId` as a client wrote it → the secret's identity. Writes use it to skip
/// loading the secret: version puts and label moves do not change an identity, so
/// they leave this cache alone; only creating and purging secrets clear it. The store
/// still checks, inside each write, that the secret exists and is not deleted.
#[derive(Default)]
pub(crate) struct IdentityCache {
    inner: RwLock<HashMap<String, Identity>>,
}

impl IdentityCache {
    pub(crate) fn get(&self, secret_id: &str) -> Option<Identity> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(secret_id)
            .cloned()
    }

    pub(crate) fn insert(&self, secret_id: &str, identity: Identity) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.len() >= CAPACITY {
            inner.clear();
        }
        inner.insert(secret_id.to_string(), identity);
    }

    pub(crate) fn clear(&self) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl ReadCache {
    /// Forgets everything (after a change that touches secrets it cannot name).
    pub(crate) fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.epoch += 1;
        inner.entries.clear();
        inner.arns.clear();
    }

    /// Forgets a secret known by its name only.
    pub(crate) fn invalidate_name(&self, name: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.epoch += 1;
        if let Some(record) = inner.entries.remove(&Lookup::Name(name.to_string())) {
            inner.entries.remove(&Lookup::Arn(record.meta.arn.clone()));
        }
        if let Some(arn) = inner.arns.remove(name) {
            inner.entries.remove(&Lookup::Arn(arn));
        }
    }
}

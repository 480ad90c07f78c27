//! A read cache of sealed secret records.
//!
//! Entries hold ciphertext only. Every write through the service removes the entries
//! of the secret it changed after the write commits; a read that started before that
//! write cannot put its stale record back, because each insert checks that no
//! invalidation happened since the read began (an epoch counter).

use rotor_store::{Lookup, SecretRecord};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

/// Entries kept at most (two generations of half as many).
const CAPACITY: usize = 10_000;

/// A bounded map in two generations: inserts go to the young one; when it is full
/// it becomes the old one, and the old one is handed back to be dropped. Lookups
/// see both. Nothing is ever cleared all at once under a lock: dropping ten thousand
/// records there held every reader up for milliseconds, each time the cache filled.
struct Generations<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K, V> Default for Generations<K, V> {
    fn default() -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash, V> Generations<K, V> {
    fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.young.get(key).or_else(|| self.old.get(key))
    }

    /// Inserts; returns the generation that fell out, for the caller to drop once it
    /// has let go of its lock.
    #[must_use]
    fn insert(&mut self, key: K, value: V) -> Option<HashMap<K, V>> {
        let mut dropped = None;
        if self.young.len() >= CAPACITY / 2 && !self.young.contains_key(&key) {
            let young = std::mem::take(&mut self.young);
            dropped = Some(std::mem::replace(&mut self.old, young));
        }
        self.old.remove(&key);
        self.young.insert(key, value);
        dropped
    }

    /// Removes `key` from both generations; the value found, the younger first.
    fn remove<Q: Eq + Hash + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let old = self.old.remove(key);
        self.young.remove(key).or(old)
    }

    /// Empties both; returns what they held, to be dropped outside the lock.
    #[must_use]
    fn take(&mut self) -> [HashMap<K, V>; 2] {
        [
            std::mem::take(&mut self.young),
            std::mem::take(&mut self.old),
        ]
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[derive(Default)]
pub(crate) struct ReadCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    epoch: u64,
    entries: Generations<Lookup, Arc<SecretRecord>>,
    /// Name → ARN of entries cached under their ARN, so that a change known only
    /// by the secret's name (another node's event) can remove both keys. Kept in
    /// step with `entries`: an entry cached under its ARN has its name here in the
    /// same generation, so both fall out together.
    arns: Generations<String, String>,
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
        let dropped = {
            let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
            if inner.epoch != epoch {
                return;
            }
            let name = record.meta.name.clone();
            let arn = match &key {
                Lookup::Arn(arn) => Some(arn.clone()),
                Lookup::Name(_) => None,
            };
            let inner = &mut *inner;
            let dropped = inner.entries.insert(key, record).map(|entries| {
                // The names of the generation that fell out go with it.
                let young = std::mem::take(&mut inner.arns.young);
                (entries, std::mem::replace(&mut inner.arns.old, young))
            });
            if let Some(arn) = arn {
                inner.arns.old.remove(&name);
                inner.arns.young.insert(name, arn);
            }
            dropped
        };
        drop(dropped);
    }

    /// Forgets a secret under both of its keys.
    pub(crate) fn invalidate(&self, name: &str, arn: &str) {
        let removed = {
            let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
            inner.epoch += 1;
            inner.arns.remove(name);
            [
                inner.entries.remove(&Lookup::Name(name.to_string())),
                inner.entries.remove(&Lookup::Arn(arn.to_string())),
            ]
        };
        drop(removed);
    }

    /// Forgets everything (after a change that touches secrets it cannot name).
    pub(crate) fn clear(&self) {
        let removed = {
            let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
            inner.epoch += 1;
            let _ = inner.arns.take();
            inner.entries.take()
        };
        drop(removed);
    }

    /// Forgets a secret known by its name only.
    pub(crate) fn invalidate_name(&self, name: &str) {
        let mut removed = Vec::new();
        {
            let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
            inner.epoch += 1;
            if let Some(record) = inner.entries.remove(&Lookup::Name(name.to_string())) {
                removed.extend(inner.entries.remove(&Lookup::Arn(record.meta.arn.clone())));
                removed.push(record);
            }
            if let Some(arn) = inner.arns.remove(name) {
                removed.extend(inner.entries.remove(&Lookup::Arn(arn)));
            }
        }
        drop(removed);
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
    inner: RwLock<Generations<String, Identity>>,
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
        let dropped = self
            .inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(secret_id.to_string(), identity);
        drop(dropped);
    }

    pub(crate) fn clear(&self) {
        let removed = self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use rotor_core::model::{RotationMeta, SecretMeta};

    fn record(i: usize) -> Arc<SecretRecord> {
        Arc::new(SecretRecord {
            meta: SecretMeta {
                id: i as i64,
                name: format!("s{i}"),
                arn: format!("arn:s{i}"),
                description: None,
                kms_key_id: None,
                tags: Vec::new(),
                created: Utc::now(),
                last_changed: Utc::now(),
                deletion_date: None,
                deleted_date: None,
                rotation: RotationMeta::default(),
                replica_of: None,
                source_deleted: false,
            },
            versions: Vec::new(),
        })
    }

    fn name(i: usize) -> Lookup {
        Lookup::Name(format!("s{i}"))
    }

    #[test]
    fn stays_bounded_and_keeps_the_latest_entries() {
        let cache = ReadCache::default();
        let inserted = CAPACITY * 3 + 7;
        for i in 0..inserted {
            cache.insert(name(i), record(i), cache.epoch());
            let held = cache.inner.read().unwrap().entries.len();
            assert!(held <= CAPACITY, "{held} entries after {i} inserts");
        }
        // At least the last half of the capacity is still there, the oldest is not.
        for i in inserted - CAPACITY / 2..inserted {
            assert!(cache.get(&name(i)).is_some(), "s{i} is cached");
        }
        assert!(cache.get(&name(0)).is_none());
    }

    #[test]
    fn an_entry_under_its_arn_is_forgotten_by_name_in_either_generation() {
        let cache = ReadCache::default();
        let arn = Lookup::Arn("arn:s0".into());
        cache.insert(arn.clone(), record(0), cache.epoch());
        // Enough other entries that the first moves to the old generation.
        for i in 1..CAPACITY / 2 + 1 {
            cache.insert(name(i), record(i), cache.epoch());
        }
        assert!(
            cache.get(&arn).is_some(),
            "still cached, in the old generation"
        );
        cache.invalidate_name("s0");
        assert!(cache.get(&arn).is_none());
    }

    #[test]
    fn a_load_that_began_before_an_invalidation_is_not_cached() {
        let cache = ReadCache::default();
        let epoch = cache.epoch();
        cache.invalidate("s1", "arn:s1");
        cache.insert(name(1), record(1), epoch);
        assert!(cache.get(&name(1)).is_none());
    }

    #[test]
    fn identities_stay_bounded() {
        let cache = IdentityCache::default();
        for i in 0..CAPACITY * 2 {
            let id = Identity {
                id: i as i64,
                name: format!("s{i}"),
                arn: format!("arn:s{i}"),
                replica_of: None,
            };
            cache.insert(&format!("s{i}"), id);
        }
        assert!(cache.inner.read().unwrap().len() <= CAPACITY);
        assert_eq!(
            cache.get(&format!("s{}", CAPACITY * 2 - 1)).map(|i| i.id),
            Some(CAPACITY as i64 * 2 - 1)
        );
    }
}

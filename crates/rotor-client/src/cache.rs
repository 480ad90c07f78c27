//! The resolver's cache: what a cached entry is, when it may be served, and when it is
//! due for a refresh, decided by pure functions of the time a [`Clock`] gives, so that
//! every rule is pinned by a test with a clock the test moves.
//!
//! The rules, per reference, with its [`CachePolicy`]:
//!
//! - a fetched value is served for `ttl` (forever when there is none, until a change
//!   event or [`crate::resolver::Resolver::invalidate`] refreshes it);
//! - a failed lookup is remembered for `neg_ttl`: reads fail at once, without asking
//!   the vault again;
//! - when a refresh fails, the last value is served until `ttl + resurrect_ttl` after it
//!   was fetched, retried no more often than every `neg_ttl`; then it expires, and the
//!   failure is what reads get;
//! - a value is due for a background refresh `refresh_ahead` before it expires (at
//!   most half its ttl before), so that reads do not wait on the vault.
//!
//! The read path is a shard's read lock, a hash lookup and an `Arc` clone.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A source of time for the cache and its background refresh.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;
    /// Waits until `deadline` on this clock.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// A clock that moves only when told to, for tests: [`ManualClock::advance`] wakes every
/// sleeper whose deadline it passes.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    elapsed: tokio::sync::watch::Sender<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the moment it is made.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            elapsed: tokio::sync::watch::Sender::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.elapsed.send_modify(|e| *e += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.borrow()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.elapsed.subscribe();
        Box::pin(async move {
            while self.start + *rx.borrow_and_update() < deadline {
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        })
    }
}

/// How long values and failures are kept, for one vault or one reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CachePolicy {
    /// How long a value is served; `None`: until it is changed or invalidated.
    pub ttl: Option<Duration>,
    /// How long a failed lookup is remembered (and a failed refresh not retried).
    pub neg_ttl: Duration,
    /// How long past its ttl the last value is still served while refreshing fails.
    pub resurrect_ttl: Duration,
}

/// A resolved value, shared by every reader until it is replaced.
pub struct Resolved {
    value: secrecy::SecretString,
    version_id: Option<String>,
    generation: u64,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("value", &"[redacted]")
            .field("version_id", &self.version_id)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Resolved {
    pub(crate) fn new(
        value: secrecy::SecretString,
        version_id: Option<String>,
        generation: u64,
    ) -> Self {
        Resolved {
            value,
            version_id,
            generation,
        }
    }

    /// The value.
    pub fn expose_secret(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.value)
    }

    /// The vault's version id of the secret it came from, when the vault has them.
    pub fn version_id(&self) -> Option<&str> {
        self.version_id.as_deref()
    }

    /// Which fetch produced it: larger is newer.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// What the cache holds for one reference.
#[derive(Debug, Clone)]
pub(crate) enum State<E> {
    /// A value.
    Value {
        value: Arc<Resolved>,
        /// The fetch that last wrote this state (a failed refresh keeps the value).
        fetched: u64,
        /// When it stops being fresh (`None`: never).
        expires_at: Option<Instant>,
        /// A refresh failed: do not try again before this.
        retry_after: Option<Instant>,
    },
    /// The last lookup failed.
    Failed {
        error: E,
        until: Instant,
        fetched: u64,
    },
}

impl<E> State<E> {
    /// The fetch that last wrote this state: larger is later.
    pub(crate) fn fetched(&self) -> u64 {
        match self {
            State::Value { fetched, .. } | State::Failed { fetched, .. } => *fetched,
        }
    }
}

/// What a read finds.
#[derive(Debug)]
pub(crate) enum Read<E> {
    /// Serve this.
    Hit(Arc<Resolved>),
    /// Fail with this, without asking the vault.
    Failed(E),
    /// Ask the vault (and wait for it).
    Miss,
}

/// Whether a read at `now` may be served from `state`.
pub(crate) fn read<E: Clone>(state: &State<E>, policy: &CachePolicy, now: Instant) -> Read<E> {
    match state {
        State::Value {
            value,
            expires_at,
            retry_after,
            ..
        } => {
            let Some(expires_at) = expires_at else {
                return Read::Hit(value.clone());
            };
            if now < *expires_at {
                return Read::Hit(value.clone());
            }
            let resurrecting = now < *expires_at + policy.resurrect_ttl;
            if resurrecting && retry_after.is_some_and(|r| now < r) {
                return Read::Hit(value.clone());
            }
            Read::Miss
        }
        State::Failed { error, until, .. } if now < *until => Read::Failed(error.clone()),
        State::Failed { .. } => Read::Miss,
    }
}

/// The state after fetch number `fetched` finished at `now`: a new value, or on failure
/// the old value kept (while it may be resurrected) or the failure.
pub(crate) fn after_fetch<E>(
    old: Option<&State<E>>,
    outcome: Result<Arc<Resolved>, E>,
    policy: &CachePolicy,
    now: Instant,
    fetched: u64,
) -> State<E> {
    match outcome {
        Ok(value) => State::Value {
            value,
            fetched,
            expires_at: policy.ttl.map(|t| now + t),
            retry_after: None,
        },
        Err(error) => match old {
            Some(State::Value {
                value, expires_at, ..
            }) if expires_at.is_none_or(|e| now < e + policy.resurrect_ttl) => State::Value {
                value: value.clone(),
                fetched,
                expires_at: *expires_at,
                retry_after: Some(now + policy.neg_ttl),
            },
            _ => State::Failed {
                error,
                until: now + policy.neg_ttl,
                fetched,
            },
        },
    }
}

/// What a state gives a reader that has waited for a fetch: its value, or its failure.
pub(crate) fn serve<E: Clone>(state: &State<E>) -> Result<Arc<Resolved>, E> {
    match state {
        State::Value { value, .. } => Ok(value.clone()),
        State::Failed { error, .. } => Err(error.clone()),
    }
}

/// Whether the background refresh should fetch this entry at `now`.
pub(crate) fn is_due<E>(
    state: &State<E>,
    policy: &CachePolicy,
    refresh_ahead: Duration,
    now: Instant,
) -> bool {
    match state {
        State::Value {
            expires_at: None, ..
        } => false,
        State::Value {
            expires_at: Some(expires_at),
            retry_after,
            ..
        } => {
            let ahead = refresh_ahead.min(policy.ttl.unwrap_or_default() / 2);
            now + ahead >= *expires_at && retry_after.is_none_or(|r| now >= r)
        }
        State::Failed { until, .. } => now >= *until,
    }
}

/// FxHash (rustc's): a few cycles for a short key, where SipHash takes tens of
/// nanoseconds. Keys are reference strings the application chose, not attacker input.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxBuild;

pub(crate) struct FxHasher(u64);

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

const SHARDS: usize = 16;

/// One shard of [`Shards`].
pub(crate) type Shard<V> = RwLock<HashMap<Arc<str>, V, FxBuild>>;

/// A map split in [`SHARDS`] read-write-locked parts, so that readers of different keys
/// rarely share a lock.
pub(crate) struct Shards<V> {
    shards: Box<[Shard<V>]>,
}

impl<V> Shards<V> {
    pub(crate) fn new() -> Self {
        Shards {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(FxBuild)))
                .collect(),
        }
    }

    pub(crate) fn shard(&self, key: &str) -> &Shard<V> {
        let h = FxBuild.hash_one(key);
        &self.shards[(h >> 59) as usize % SHARDS]
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Shard<V>> {
        self.shards.iter()
    }
}

/// Reads a lock even if a panicking writer poisoned it: the data are plain values.
pub(crate) fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Writes a lock even if a panicking writer poisoned it.
pub(crate) fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Locks a mutex even if a panicking holder poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn value(g: u64) -> Arc<Resolved> {
        Arc::new(Resolved::new(SecretString::from(format!("v{g}")), None, g))
    }

    const S: Duration = Duration::from_secs(1);

    fn policy(ttl: u64, neg: u64, resurrect: u64) -> CachePolicy {
        CachePolicy {
            ttl: Some(S * ttl as u32),
            neg_ttl: S * neg as u32,
            resurrect_ttl: S * resurrect as u32,
        }
    }

    fn hit(r: Read<&'static str>) -> Option<u64> {
        match r {
            Read::Hit(v) => Some(v.generation()),
            _ => None,
        }
    }

    #[test]
    fn a_value_is_served_for_its_ttl() {
        let t0 = Instant::now();
        let p = policy(10, 0, 0);
        let s: State<&str> = after_fetch(None, Ok(value(1)), &p, t0, 1);
        assert_eq!(hit(read(&s, &p, t0 + 9 * S)), Some(1));
        assert!(matches!(read(&s, &p, t0 + 10 * S), Read::Miss));
    }

    #[test]
    fn without_a_ttl_a_value_is_served_until_replaced() {
        let t0 = Instant::now();
        let p = CachePolicy::default();
        let s: State<&str> = after_fetch(None, Ok(value(1)), &p, t0, 1);
        assert_eq!(hit(read(&s, &p, t0 + 1_000_000 * S)), Some(1));
        assert!(!is_due(&s, &p, S, t0 + 1_000_000 * S));
    }

    #[test]
    fn a_failure_is_remembered_for_neg_ttl() {
        let t0 = Instant::now();
        let p = policy(10, 5, 0);
        let s = after_fetch(None, Err("down"), &p, t0, 1);
        assert!(matches!(read(&s, &p, t0 + 4 * S), Read::Failed("down")));
        assert!(matches!(read(&s, &p, t0 + 5 * S), Read::Miss));
        assert!(!is_due(&s, &p, S, t0 + 4 * S));
        assert!(is_due(&s, &p, S, t0 + 5 * S));
    }

    #[test]
    fn a_failed_refresh_resurrects_the_last_value_then_it_expires() {
        let t0 = Instant::now();
        let p = policy(10, 2, 30);
        let fresh: State<&str> = after_fetch(None, Ok(value(1)), &p, t0, 1);
        // Refresh at expiry fails: the old value keeps being served, not retried for neg_ttl.
        let s = after_fetch(Some(&fresh), Err("down"), &p, t0 + 10 * S, 2);
        assert_eq!(hit(read(&s, &p, t0 + 11 * S)), Some(1));
        assert!(matches!(read(&s, &p, t0 + 12 * S), Read::Miss));
        // Fails again within ttl + resurrect_ttl: still the old value.
        let s = after_fetch(Some(&s), Err("down"), &p, t0 + 39 * S, 3);
        assert_eq!(hit(read(&s, &p, t0 + 40 * S - S / 10)), Some(1));
        // At ttl + resurrect_ttl the value may no longer be served: read, refresh, fail.
        assert!(matches!(read(&s, &p, t0 + 40 * S), Read::Miss));
        let s = after_fetch(Some(&s), Err("down"), &p, t0 + 41 * S, 4);
        assert!(matches!(read(&s, &p, t0 + 41 * S), Read::Failed("down")));
        assert_eq!(s.fetched(), 4);
    }

    #[test]
    fn a_value_is_due_ahead_of_expiry_but_at_most_half_its_ttl() {
        let t0 = Instant::now();
        let p = policy(60, 0, 0);
        let s: State<&str> = after_fetch(None, Ok(value(1)), &p, t0, 1);
        assert!(!is_due(&s, &p, 10 * S, t0 + 49 * S));
        assert!(is_due(&s, &p, 10 * S, t0 + 50 * S));
        let short = policy(4, 0, 0);
        let s: State<&str> = after_fetch(None, Ok(value(1)), &short, t0, 1);
        assert!(!is_due(&s, &short, 10 * S, t0 + S));
        assert!(is_due(&s, &short, 10 * S, t0 + 2 * S));
    }

    #[tokio::test]
    async fn the_manual_clock_wakes_sleepers_it_passes() {
        let clock = Arc::new(ManualClock::new());
        let deadline = clock.now() + 5 * S;
        let c = clock.clone();
        let sleeper = tokio::spawn(async move { c.sleep_until(deadline).await });
        clock.advance(4 * S);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(S);
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn resolved_debug_hides_the_value() {
        let v = Resolved::new(SecretString::from("hunter2"), Some("v1".into()), 3);
        let text = format!("{v:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[redacted]"));
    }
}

//! Resolving references to values: named vaults ([`Vaults`]), a cache with Kong's
//! `ttl`, `neg_ttl` and `resurrect_ttl` (the rules are in [`crate::cache`]), a
//! background refresh, refreshes on change events, one fetch per resource however many
//! readers wait for it, and [`Resolver::try_with`], Kong's `kong.vault.try`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rotor_client::resolver::{Resolver, VaultConfig, Vaults};
//! use std::{sync::Arc, time::Duration};
//!
//! let client = Arc::new(rotor_client::Client::new("http://127.0.0.1:8200", "token")?);
//! let vaults = Vaults::new()
//!     .with("rotor", VaultConfig::rotor(client).ttl(Duration::from_secs(300)))?
//!     .with("env", VaultConfig::env())?;
//! let resolver = Resolver::new(vaults);
//! let _refresh = resolver.spawn_refresher();
//! let password = resolver.get("{vault://rotor/%2Fapp%2Fdb/password}").await?;
//! println!("version {:?}", password.version_id());
//! # Ok(()) }
//! ```

use crate::Client;
use crate::backend::aws::AwsBackend;
use crate::backend::env::EnvBackend;
use crate::backend::file::FileBackend;
use crate::backend::rotor::RotorBackend;
use crate::backend::{Backend, BackendError, Fetched, Lookup};
use crate::cache::{
    self, CachePolicy, Clock, Read, Resolved, Shards, State, SystemClock, lock, read_lock,
    write_lock,
};
use crate::reference::{ConfigValue, OptionError, Reference, ReferenceError};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// A reference could not be resolved. Messages name references, vaults and resources,
/// never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The reference does not parse.
    #[error("{0}")]
    Reference(#[from] ReferenceError),
    /// A cache option of the reference is not a number of seconds.
    #[error("{0}")]
    Option(#[from] OptionError),
    /// No vault has the reference's name.
    #[error("no vault named {0:?} is configured")]
    UnknownVault(String),
    /// The reference tries to change an option that bounds what its vault may reach
    /// (an env vault's configured `prefix`).
    #[error("vault {vault:?} fixes its {option:?}: a reference cannot change it")]
    FixedOption {
        /// The vault.
        vault: String,
        /// The option.
        option: String,
    },
    /// The vault failed.
    #[error("vault {vault:?} could not fetch {resource:?}: {source}")]
    Backend {
        /// The vault.
        vault: String,
        /// The resource.
        resource: String,
        /// Why.
        source: BackendError,
    },
    /// The reference has a key but the value is not a JSON object.
    #[error(
        "the value of {resource:?} in vault {vault:?} is not a JSON object, so it has no field {key:?}"
    )]
    NotJsonObject {
        /// The vault.
        vault: String,
        /// The resource.
        resource: String,
        /// The key asked for.
        key: String,
    },
    /// The JSON object has no such field.
    #[error("the value of {resource:?} in vault {vault:?} has no field {key:?}")]
    MissingField {
        /// The vault.
        vault: String,
        /// The resource.
        resource: String,
        /// The key asked for.
        key: String,
    },
    /// The field is not a string.
    #[error("field {key:?} of {resource:?} in vault {vault:?} is not a string")]
    FieldNotString {
        /// The vault.
        vault: String,
        /// The resource.
        resource: String,
        /// The key asked for.
        key: String,
    },
}

/// A vault name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vault name {0:?} must be non-empty and hold no /")]
pub struct VaultNameError(pub String);

/// One named vault: where its values come from and how long they are kept, unless a
/// reference says otherwise with `?ttl=`, `?neg_ttl=`, `?resurrect_ttl=`.
#[derive(Clone)]
pub struct VaultConfig {
    backend: Arc<dyn Backend>,
    policy: CachePolicy,
    options: BTreeMap<String, String>,
    follows_changes: bool,
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("policy", &self.policy)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("follows_changes", &self.follows_changes)
            .finish_non_exhaustive()
    }
}

impl VaultConfig {
    /// A vault over any backend: no ttl (values kept until changed), no negative
    /// caching, no resurrection, not refreshed by change events.
    pub fn new(backend: impl Backend) -> Self {
        Self::from_backend(Arc::new(backend))
    }

    /// Like [`VaultConfig::new`], for a shared backend.
    pub fn from_backend(backend: Arc<dyn Backend>) -> Self {
        VaultConfig {
            backend,
            policy: CachePolicy::default(),
            options: BTreeMap::new(),
            follows_changes: false,
        }
    }

    /// A Rotor server through `client`; refreshed by [`Resolver::notify_changed`].
    pub fn rotor(client: Arc<Client>) -> Self {
        Self::new(RotorBackend::new(client)).follows_changes(true)
    }

    /// A Secrets Manager endpoint.
    pub fn aws(backend: AwsBackend) -> Self {
        Self::new(backend)
    }

    /// Environment variables.
    pub fn env() -> Self {
        Self::new(EnvBackend)
    }

    /// Files under `root`.
    pub fn file(root: impl Into<PathBuf>) -> Self {
        Self::new(FileBackend::new(root))
    }

    /// Values are served for `ttl`; zero means no expiry, as in Kong.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.policy.ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// Failed lookups are remembered for `neg_ttl`.
    pub fn neg_ttl(mut self, neg_ttl: Duration) -> Self {
        self.policy.neg_ttl = neg_ttl;
        self
    }

    /// The last value is served for `resurrect_ttl` past its ttl while refreshing fails.
    pub fn resurrect_ttl(mut self, resurrect_ttl: Duration) -> Self {
        self.policy.resurrect_ttl = resurrect_ttl;
        self
    }

    /// A backend option (`prefix` for env, `stage` for rotor and aws), which references
    /// may override.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.insert(name.to_string(), value.to_string());
        self
    }

    /// Whether [`Resolver::notify_changed`] refreshes this vault's references whose
    /// resource is the changed secret's name (the vault reads the server whose watch
    /// stream feeds the resolver).
    pub fn follows_changes(mut self, yes: bool) -> Self {
        self.follows_changes = yes;
        self
    }
}

/// The vaults references may name.
#[derive(Debug, Clone, Default)]
pub struct Vaults {
    by_name: HashMap<String, VaultConfig>,
}

impl Vaults {
    /// No vaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) vault `name`.
    pub fn insert(&mut self, name: &str, config: VaultConfig) -> Result<(), VaultNameError> {
        if name.is_empty() || name.contains('/') {
            return Err(VaultNameError(name.to_string()));
        }
        self.by_name.insert(name.to_string(), config);
        Ok(())
    }

    /// These vaults and vault `name`.
    pub fn with(mut self, name: &str, config: VaultConfig) -> Result<Self, VaultNameError> {
        self.insert(name, config)?;
        Ok(self)
    }

    /// Vault `name`.
    pub fn get(&self, name: &str) -> Option<&VaultConfig> {
        self.by_name.get(name)
    }
}

/// An error an operation classifies: [`Resolver::try_with`] refreshes the value and
/// retries once on an authentication failure.
pub trait AuthFailure {
    /// Whether the operation failed because the credentials were refused.
    fn is_auth_failure(&self) -> bool;
}

/// [`Resolver::try_with`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TryError<E> {
    /// The value could not be resolved.
    #[error("{0}")]
    Resolve(ResolveError),
    /// The operation failed (with the refreshed value, if it was retried).
    #[error("{0}")]
    Operation(E),
}

/// What one reference string resolves through.
struct RefInfo {
    vault: String,
    reference: Reference,
    fetch_key: Arc<str>,
    policy: CachePolicy,
    backend: Arc<dyn Backend>,
    lookup: Arc<Lookup>,
    follows_changes: bool,
}

struct Slot {
    info: Arc<RefInfo>,
    state: Option<State<ResolveError>>,
}

struct Flight {
    id: u64,
    done: tokio::sync::watch::Receiver<bool>,
}

#[derive(Default)]
struct Flights {
    /// Fetches under way, by fetch key.
    running: HashMap<Arc<str>, Flight>,
    /// The reference strings each fetch key serves.
    members: HashMap<Arc<str>, Vec<Arc<str>>>,
}

/// What a reader needs before it may return.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Anything the cache may serve; fetch on a miss.
    Servable,
    /// A state written by a fetch numbered above this.
    FetchedAfter(u64),
    /// A value fetched after this one.
    ValueNewerThan(u64),
}

struct Inner {
    vaults: Vaults,
    clock: Arc<dyn Clock>,
    refresh_every: Duration,
    refresh_ahead: Duration,
    slots: Shards<Slot>,
    flights: Mutex<Flights>,
    seq: AtomicU64,
}

/// Resolves references through [`Vaults`], caching as [`crate::cache`] says. Cheap to
/// clone; clones share the cache.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("refresh_every", &self.inner.refresh_every)
            .field("refresh_ahead", &self.inner.refresh_ahead)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Resolver`].
pub struct ResolverBuilder {
    vaults: Vaults,
    clock: Arc<dyn Clock>,
    refresh_every: Duration,
    refresh_ahead: Duration,
}

impl ResolverBuilder {
    /// The clock (a [`cache::ManualClock`] in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often the background refresh looks for entries about to expire (1 s).
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    /// How long before expiry an entry is refreshed (10 s, at most half its ttl).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.refresh_ahead = ahead;
        self
    }

    /// The resolver.
    pub fn build(self) -> Resolver {
        Resolver {
            inner: Arc::new(Inner {
                vaults: self.vaults,
                clock: self.clock,
                refresh_every: self.refresh_every,
                refresh_ahead: self.refresh_ahead,
                slots: Shards::new(),
                flights: Mutex::new(Flights::default()),
                seq: AtomicU64::new(0),
            }),
        }
    }
}

/// The background refresh task; stops when dropped.
#[derive(Debug)]
pub struct Refresher(tokio::task::JoinHandle<()>);

impl Drop for Refresher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn is_cache_option(name: &str) -> bool {
    matches!(name, "ttl" | "neg_ttl" | "resurrect_ttl")
}

/// Options that, once a vault's configuration sets them, bound what its references
/// reach: an env vault with `prefix = "app_"` reads `APP_*` variables only, so
/// `?prefix=` on a reference must not reach `ROTOR_TOKEN`.
fn is_bounding_option(name: &str) -> bool {
    name == "prefix"
}

impl Resolver {
    /// A resolver over `vaults` with the system clock.
    pub fn new(vaults: Vaults) -> Self {
        Self::builder(vaults).build()
    }

    /// A resolver with settings.
    pub fn builder(vaults: Vaults) -> ResolverBuilder {
        ResolverBuilder {
            vaults,
            clock: Arc::new(SystemClock),
            refresh_every: Duration::from_secs(1),
            refresh_ahead: Duration::from_secs(10),
        }
    }

    /// The value of `reference`, from the cache when it may be served, else fetched
    /// (one fetch however many readers wait).
    pub async fn get(&self, reference: &str) -> Result<Arc<Resolved>, ResolveError> {
        if let Some(found) = self.lookup_cached(reference) {
            return found;
        }
        self.resolve(reference, Want::Servable).await
    }

    /// The cached value of `reference` if it may be served now, without waiting.
    pub fn cached(&self, reference: &str) -> Option<Arc<Resolved>> {
        match self.lookup_cached(reference) {
            Some(Ok(v)) => Some(v),
            _ => None,
        }
    }

    /// The fast path: one shard read lock.
    fn lookup_cached(&self, reference: &str) -> Option<Result<Arc<Resolved>, ResolveError>> {
        let shard = read_lock(self.inner.slots.shard(reference));
        let slot = shard.get(reference)?;
        match slot.state.as_ref()? {
            State::Value {
                value,
                expires_at: None,
                ..
            } => Some(Ok(value.clone())),
            state => match cache::read(state, &slot.info.policy, self.inner.clock.now()) {
                Read::Hit(v) => Some(Ok(v)),
                Read::Failed(e) => Some(Err(e)),
                Read::Miss => None,
            },
        }
    }

    /// Refreshes `reference` now, bypassing the cache (a change event for it).
    pub async fn invalidate(&self, reference: &str) -> Result<Arc<Resolved>, ResolveError> {
        let floor = self.inner.seq.load(Ordering::SeqCst);
        self.resolve(reference, Want::FetchedAfter(floor)).await
    }

    /// Secret `name` changed: refreshes now every cached reference to it in a vault
    /// that [follows changes](VaultConfig::follows_changes). Returns how many fetches
    /// that took.
    pub async fn notify_changed(&self, name: &str) -> usize {
        let floor = self.inner.seq.load(Ordering::SeqCst);
        let mut targets: HashMap<Arc<str>, Arc<str>> = HashMap::new();
        for shard in self.inner.slots.all() {
            for (text, slot) in read_lock(shard).iter() {
                let info = &slot.info;
                if info.follows_changes && info.reference.resource() == name {
                    targets
                        .entry(info.fetch_key.clone())
                        .or_insert_with(|| text.clone());
                }
            }
        }
        self.refresh_all(
            targets
                .into_values()
                .map(|t| (t, Want::FetchedAfter(floor))),
        )
        .await
    }

    /// One pass of the background refresh: fetches every entry due (about to expire,
    /// or whose failure is no longer remembered). Returns how many fetches that took.
    pub async fn refresh_due(&self) -> usize {
        let now = self.inner.clock.now();
        let mut due: HashMap<Arc<str>, (Arc<str>, u64)> = HashMap::new();
        for shard in self.inner.slots.all() {
            for (text, slot) in read_lock(shard).iter() {
                if let Some(state) = &slot.state
                    && cache::is_due(state, &slot.info.policy, self.inner.refresh_ahead, now)
                {
                    due.entry(slot.info.fetch_key.clone())
                        .or_insert_with(|| (text.clone(), state.fetched()));
                }
            }
        }
        self.refresh_all(
            due.into_values()
                .map(|(t, fetched)| (t, Want::FetchedAfter(fetched))),
        )
        .await
    }

    async fn refresh_all(&self, targets: impl Iterator<Item = (Arc<str>, Want)>) -> usize {
        let mut tasks = tokio::task::JoinSet::new();
        for (text, want) in targets {
            let this = self.clone();
            tasks.spawn(async move {
                let _ = this.resolve(&text, want).await;
            });
        }
        let mut n = 0;
        while tasks.join_next().await.is_some() {
            n += 1;
        }
        n
    }

    /// Starts the background refresh: every `refresh_every`, [`Resolver::refresh_due`].
    pub fn spawn_refresher(&self) -> Refresher {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let clock = self.inner.clock.clone();
        let every = self.inner.refresh_every;
        Refresher(tokio::spawn(async move {
            loop {
                clock.sleep_until(clock.now() + every).await;
                let Some(inner) = weak.upgrade() else { return };
                Resolver { inner }.refresh_due().await;
            }
        }))
    }

    /// Kong's `kong.vault.try`: runs `op` with the current value of `reference`; if it
    /// fails with an authentication failure, fetches the value again bypassing the cache
    /// (unless another reader already did) and runs `op` once more with it.
    pub async fn try_with<T, E, F, Fut>(&self, reference: &str, op: F) -> Result<T, TryError<E>>
    where
        E: AuthFailure,
        F: FnMut(Arc<Resolved>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.try_with_classifier(reference, E::is_auth_failure, op)
            .await
    }

    /// [`Resolver::try_with`] with the authentication failures told apart by
    /// `is_auth_failure`.
    pub async fn try_with_classifier<T, E, C, F, Fut>(
        &self,
        reference: &str,
        is_auth_failure: C,
        mut op: F,
    ) -> Result<T, TryError<E>>
    where
        C: Fn(&E) -> bool,
        F: FnMut(Arc<Resolved>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let first = self.get(reference).await.map_err(TryError::Resolve)?;
        let generation = first.generation();
        match op(first).await {
            Err(e) if is_auth_failure(&e) => {
                let fresh = self
                    .resolve(reference, Want::ValueNewerThan(generation))
                    .await
                    .map_err(TryError::Resolve)?;
                op(fresh).await.map_err(TryError::Operation)
            }
            other => other.map_err(TryError::Operation),
        }
    }

    /// The slow path: registers the reference, then joins or starts the fetch its
    /// resource needs until the slot satisfies `want`.
    async fn resolve(
        &self,
        reference: &str,
        mut want: Want,
    ) -> Result<Arc<Resolved>, ResolveError> {
        loop {
            let mut done = {
                let mut flights = lock(&self.inner.flights);
                let (info, state) = self.slot(&mut flights, reference)?;
                if let Some(state) = &state {
                    match want {
                        Want::Servable => {
                            match cache::read(state, &info.policy, self.inner.clock.now()) {
                                Read::Hit(v) => return Ok(v),
                                Read::Failed(e) => return Err(e),
                                Read::Miss => {}
                            }
                        }
                        Want::FetchedAfter(floor) if state.fetched() > floor => {
                            return cache::serve(state);
                        }
                        Want::FetchedAfter(_) => {}
                        Want::ValueNewerThan(g) => match state {
                            State::Value { value, .. } if value.generation() > g => {
                                return Ok(value.clone());
                            }
                            _ => want = Want::FetchedAfter(state.fetched()),
                        },
                    }
                }
                let floor = match want {
                    Want::FetchedAfter(f) => f,
                    _ => 0,
                };
                match flights.running.get(&info.fetch_key) {
                    Some(flight) => {
                        if flight.id > floor {
                            // This fetch will do: what it writes is what we return.
                            want = Want::FetchedAfter(flight.id - 1);
                        }
                        flight.done.clone()
                    }
                    None => {
                        let id = self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
                        let done = self.start_fetch(&mut flights, &info, id);
                        want = Want::FetchedAfter(id - 1);
                        done
                    }
                }
            };
            // A fetch that ends (or whose task is gone) changes or drops the sender.
            while !*done.borrow_and_update() {
                if done.changed().await.is_err() {
                    break;
                }
            }
        }
    }

    /// The slot of `reference`, registering it first. Called with the flights lock held,
    /// so that a fetch's list of references and the slots it writes agree.
    fn slot(
        &self,
        flights: &mut Flights,
        reference: &str,
    ) -> Result<(Arc<RefInfo>, Option<State<ResolveError>>), ResolveError> {
        let shard = self.inner.slots.shard(reference);
        if let Some(slot) = read_lock(shard).get(reference) {
            return Ok((slot.info.clone(), slot.state.clone()));
        }
        let info = Arc::new(self.register(reference)?);
        let key: Arc<str> = Arc::from(reference);
        flights
            .members
            .entry(info.fetch_key.clone())
            .or_default()
            .push(key.clone());
        write_lock(shard).insert(
            key,
            Slot {
                info: info.clone(),
                state: None,
            },
        );
        Ok((info, None))
    }

    fn register(&self, text: &str) -> Result<RefInfo, ResolveError> {
        let reference = Reference::parse(text)?;
        let vault = self
            .inner
            .vaults
            .get(reference.name())
            .ok_or_else(|| ResolveError::UnknownVault(reference.name().to_string()))?;
        let policy = CachePolicy {
            ttl: match reference.ttl()? {
                Some(t) => (!t.is_zero()).then_some(t),
                None => vault.policy.ttl,
            },
            neg_ttl: reference.neg_ttl()?.unwrap_or(vault.policy.neg_ttl),
            resurrect_ttl: reference
                .resurrect_ttl()?
                .unwrap_or(vault.policy.resurrect_ttl),
        };
        let mut options = vault.options.clone();
        for (name, values) in reference.config() {
            if let ([ConfigValue::Text(t)], false) = (values.as_slice(), is_cache_option(name)) {
                if is_bounding_option(name)
                    && vault.options.get(name).is_some_and(|fixed| fixed != t)
                {
                    return Err(ResolveError::FixedOption {
                        vault: reference.name().to_string(),
                        option: name.clone(),
                    });
                }
                options.insert(name.clone(), t.clone());
            }
        }
        let lookup = Lookup {
            resource: reference.resource().to_string(),
            version: reference.version(),
            options,
        };
        Ok(RefInfo {
            vault: reference.name().to_string(),
            fetch_key: Arc::from(reference.fetch_identity().to_string()),
            policy,
            backend: vault.backend.clone(),
            lookup: Arc::new(lookup),
            follows_changes: vault.follows_changes,
            reference,
        })
    }

    /// Starts fetch `id` for `info`'s resource in a task of its own, so that it
    /// completes (and fills the cache) even if every reader gives up waiting.
    fn start_fetch(
        &self,
        flights: &mut Flights,
        info: &Arc<RefInfo>,
        id: u64,
    ) -> tokio::sync::watch::Receiver<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        flights.running.insert(
            info.fetch_key.clone(),
            Flight {
                id,
                done: rx.clone(),
            },
        );
        let inner = self.inner.clone();
        let info = info.clone();
        tokio::spawn(async move {
            let backend = info.backend.clone();
            let lookup = info.lookup.clone();
            // A panicking backend fails this fetch, not the resolver.
            let outcome = match tokio::spawn(async move { backend.fetch(&lookup).await }).await {
                Ok(r) => r,
                Err(e) => Err(BackendError::new(
                    crate::backend::BackendErrorKind::Unavailable,
                    format!("the vault backend failed: {e}"),
                )),
            };
            let now = inner.clock.now();
            let mut flights = lock(&inner.flights);
            let members = flights
                .members
                .get(&info.fetch_key)
                .cloned()
                .unwrap_or_default();
            for text in members {
                let mut shard = write_lock(inner.slots.shard(&text));
                if let Some(slot) = shard.get_mut(&text) {
                    let result = extract(&slot.info, &outcome, id);
                    slot.state = Some(cache::after_fetch(
                        slot.state.as_ref(),
                        result,
                        &slot.info.policy,
                        now,
                        id,
                    ));
                }
            }
            flights.running.remove(&info.fetch_key);
            drop(flights);
            let _ = tx.send(true);
        });
        rx
    }
}

/// The value a reference gets from a fetch of its resource: all of it, or its KEY field
/// of the JSON object (Kong's flat lookup: the field must be a string).
fn extract(
    info: &RefInfo,
    outcome: &Result<Fetched, BackendError>,
    generation: u64,
) -> Result<Arc<Resolved>, ResolveError> {
    let fetched = outcome.as_ref().map_err(|e| ResolveError::Backend {
        vault: info.vault.clone(),
        resource: info.lookup.resource.clone(),
        source: e.clone(),
    })?;
    let raw = secrecy::ExposeSecret::expose_secret(&fetched.value);
    let Some(key) = info.reference.key() else {
        return Ok(Arc::new(Resolved::new(
            secrecy::SecretString::from(raw),
            fetched.version_id.clone(),
            generation,
        )));
    };
    let err = |make: fn(String, String, String) -> ResolveError| {
        make(
            info.vault.clone(),
            info.lookup.resource.clone(),
            key.to_string(),
        )
    };
    let mut doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw).map_err(|_| {
            err(|vault, resource, key| ResolveError::NotJsonObject {
                vault,
                resource,
                key,
            })
        })?;
    match doc.remove(key) {
        Some(serde_json::Value::String(s)) => Ok(Arc::new(Resolved::new(
            secrecy::SecretString::from(s),
            fetched.version_id.clone(),
            generation,
        ))),
        Some(_) => Err(err(|vault, resource, key| ResolveError::FieldNotString {
            vault,
            resource,
            key,
        })),
        None => Err(err(|vault, resource, key| ResolveError::MissingField {
            vault,
            resource,
            key,
        })),
    }
}

#[cfg(test)]
mod tests;

//! Principals, their credentials and policies: authentication, and the management
//! operations (`rotor principal|token|access-key|policy`).
//!
//! The access configuration is small, so it is kept in memory: a snapshot read from
//! the store at start and again after every change made through this service.
//! Tokens are stored only as keyed hashes; secret access keys are sealed like secret
//! values and opened into memory, since SigV4 needs them to verify signatures.
//!
//! Management needs the `admin` capability on a `sys/...` path:
//! `sys/principals/NAME`, `sys/policies/NAME`, `sys/tokens/PRINCIPAL`,
//! `sys/access-keys/PRINCIPAL`; a statement on `**` or `sys/**` grants all of it.
//! Handing rights on is bounded by what the granter holds: attaching policy P needs
//! `admin` on the principal and on `sys/policies/P`, and writing or attaching a
//! policy needs every capability it allows, on every path it allows it on
//! ([`Caller::authorize_grant`]). A delegated admin can pass on its own rights,
//! never more.

use crate::caller::Caller;
use chrono::{DateTime, Duration, Utc};
use rotor_core::clock::Clock;
use rotor_core::policy::{self, Capability, Policy};
use rotor_core::{Error, ErrorKind, Result};
use rotor_crypto::sigv4::SigningKey;
use rotor_crypto::{Envelope, SealedRef};
use rotor_store::{AccessMutation, AccessSnapshot, Mutation, SealedValue, Store, TokenRow};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The name of the principal created on first start.
pub const ROOT: &str = "root";

/// The root policy is fixed, as Vault's is: changing or deleting it could leave
/// nobody able to administer the server.
fn refuse_root_policy(name: &str) -> Result<()> {
    if name == ROOT {
        return Err(Error::invalid_request(
            "The root policy can't be changed or deleted",
        ));
    }
    Ok(())
}

const ACCESS_KEY_AAD: &str = "rotor:access-key";

/// A principal as management commands show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalInfo {
    /// Name.
    pub name: String,
    /// `service` or `person`.
    pub kind: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Attached policies.
    pub policies: Vec<String>,
    /// Ids of its live (not revoked, not expired) tokens.
    pub tokens: Vec<String>,
    /// Its access key ids.
    pub access_keys: Vec<String>,
}

/// A token as management commands show it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Owner.
    pub principal: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Expiry.
    pub expires: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked: Option<DateTime<Utc>>,
}

/// Credentials made on first start (or taken from the environment).
pub struct RootCredentials {
    /// Bearer token.
    pub token: SecretString,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
}

impl std::fmt::Debug for RootCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

struct Principal {
    name: String,
    policies: Arc<[Policy]>,
}

#[derive(Default)]
struct State {
    principals: HashMap<i64, Principal>,
    tokens: HashMap<Vec<u8>, TokenRow>,
    keys: HashMap<String, AccessKey>,
    snapshot: AccessSnapshot,
    policies: HashMap<String, Policy>,
}

/// A stored access key, opened: its principal, its secret, and the SigV4 signing key
/// last derived from it (one scope at a time: clients sign for one day, region and
/// service, so the four HMACs of a derivation run once a day, not per request). The
/// state is rebuilt whenever keys change, so a derived key never outlives its secret.
struct AccessKey {
    principal: i64,
    secret: SecretString,
    derived: std::sync::Mutex<Option<(String, Arc<SigningKey>)>>,
}

impl AccessKey {
    fn signing_key(&self, scope: &SigningScope<'_>) -> Arc<SigningKey> {
        let mut derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((held, key)) = derived.as_ref()
            && scope.is(held)
        {
            return key.clone();
        }
        let key = Arc::new(scope.derive(&self.secret));
        *derived = Some((scope.to_string(), key.clone()));
        key
    }
}

/// The scope of a SigV4 credential: `DATE/REGION/SERVICE`.
#[derive(Debug, Clone, Copy)]
pub struct SigningScope<'a> {
    /// `YYYYMMDD`.
    pub date: &'a str,
    /// The region signed for.
    pub region: &'a str,
    /// The service signed for.
    pub service: &'a str,
}

impl SigningScope<'_> {
    fn derive(&self, secret: &SecretString) -> SigningKey {
        SigningKey::derive(secret.expose_secret(), self.date, self.region, self.service)
    }

    /// Whether `held` (a scope's [`ToString`]) is this scope, without allocating.
    fn is(&self, held: &str) -> bool {
        let mut parts = held.split('/');
        parts.next() == Some(self.date)
            && parts.next() == Some(self.region)
            && parts.next() == Some(self.service)
            && parts.next().is_none()
    }
}

impl std::fmt::Display for SigningScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.date, self.region, self.service)
    }
}

/// Who a long-lived request acts for, checked again as access changes (see
/// [`AccessService::session`]).
pub struct Session {
    caller: Caller,
    /// The keyed hash of the bearer token; `None` for a caller fixed in advance.
    credential: Option<Vec<u8>>,
    generation: u64,
}

impl Session {
    /// A session for a caller known in advance (the server's own work, tests): never
    /// checked again.
    pub fn fixed(caller: Caller) -> Self {
        Session {
            caller,
            credential: None,
            generation: 0,
        }
    }

    /// The caller as last checked.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

/// Short-lived credentials scoped to one rotation: a bearer token and an AWS key
/// pair with a session token. Kept in memory only; they die with the server.
pub struct ScopedCredentials {
    /// Bearer token for the native API.
    pub token: SecretString,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Session token (`AWS_SESSION_TOKEN`).
    pub session_token: SecretString,
    /// When they stop working.
    pub expires: DateTime<Utc>,
}

impl std::fmt::Debug for ScopedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

struct Scoped {
    caller: Caller,
    expires: DateTime<Utc>,
}

#[derive(Default)]
struct ScopedState {
    /// By keyed hash of the token.
    tokens: HashMap<Vec<u8>, Scoped>,
    /// By access key id: the secret key, the keyed hash of the session token.
    keys: HashMap<String, (SecretString, Vec<u8>, Scoped)>,
}

/// Authentication and access management.
pub struct AccessService {
    store: Arc<dyn Store>,
    envelope: Arc<Envelope>,
    clock: Arc<dyn Clock>,
    state: RwLock<Arc<State>>,
    scoped: std::sync::Mutex<ScopedState>,
    /// Bumped after every reload: open streams re-check their caller when it moves.
    generation: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for AccessService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessService").finish_non_exhaustive()
    }
}

fn unauthenticated(message: &str) -> Error {
    Error::new(ErrorKind::Unauthenticated, message)
}

impl AccessService {
    /// Loads the access configuration from `store`.
    pub async fn load(
        store: Arc<dyn Store>,
        envelope: Arc<Envelope>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let service = AccessService {
            store,
            envelope,
            clock,
            state: RwLock::default(),
            scoped: Default::default(),
            generation: tokio::sync::watch::Sender::new(0),
        };
        service.reload().await?;
        Ok(service)
    }

    /// Reads the access configuration again (another node may have changed it).
    pub async fn refresh(&self) -> Result<()> {
        self.reload().await
    }

    async fn reload(&self) -> Result<()> {
        let snapshot = self.store.access().await?;
        let mut state = State::default();
        for (name, doc) in &snapshot.policies {
            match serde_json::from_str::<Policy>(doc) {
                Ok(p) => {
                    state.policies.insert(name.clone(), p);
                }
                Err(e) => {
                    tracing::error!(policy = %name, error = %e, "stored policy does not parse; ignoring it")
                }
            }
        }
        for p in &snapshot.principals {
            let policies: Vec<Policy> = p
                .policies
                .iter()
                .filter_map(|n| state.policies.get(n).cloned())
                .collect();
            state.principals.insert(
                p.id,
                Principal {
                    name: p.name.clone(),
                    policies: policies.into(),
                },
            );
        }
        for t in &snapshot.tokens {
            state.tokens.insert(t.hash.clone(), t.clone());
        }
        for k in &snapshot.access_keys {
            let sealed = SealedRef {
                ciphertext: &k.sealed.ciphertext,
                wrapped_key: &k.sealed.wrapped_key,
                algorithm: &k.sealed.algorithm,
                key_id: &k.sealed.key_id,
            };
            match self.envelope.open_parts(ACCESS_KEY_AAD, &k.id, sealed) {
                Ok(secret) => match String::from_utf8(secret.to_vec()) {
                    Ok(s) => {
                        state.keys.insert(
                            k.id.clone(),
                            AccessKey {
                                principal: k.principal_id,
                                secret: SecretString::from(s),
                                derived: Default::default(),
                            },
                        );
                    }
                    Err(_) => tracing::error!(access_key = %k.id, "stored access key is not UTF-8"),
                },
                Err(e) => {
                    tracing::error!(access_key = %k.id, error = %e, "cannot open stored access key")
                }
            }
        }
        let changed = {
            let old = &self.state().snapshot;
            let keys = |s: &AccessSnapshot| -> Vec<(String, i64)> {
                s.access_keys
                    .iter()
                    .map(|k| (k.id.clone(), k.principal_id))
                    .collect()
            };
            old.principals != snapshot.principals
                || old.policies != snapshot.policies
                || old.tokens != snapshot.tokens
                || keys(old) != keys(&snapshot)
        };
        state.snapshot = snapshot;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
        if changed {
            self.generation.send_modify(|g| *g += 1);
        }
        Ok(())
    }

    /// Moves whenever principals, policies, tokens or keys change (here or, after a
    /// refresh, on another node): a long-lived request (a watch stream, a long poll)
    /// authenticates its credential again when it does.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn state(&self) -> Arc<State> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn change(&self, m: AccessMutation) -> Result<()> {
        let result = self
            .store
            .apply(Mutation::Access(m), self.clock.now())
            .await;
        self.reload().await?;
        result.map(|_| ())
    }

    fn caller_of(state: &State, principal_id: i64) -> Option<Caller> {
        state
            .principals
            .get(&principal_id)
            .map(|p| Caller::new(&p.name, p.policies.clone()))
    }

    /// Principal `name` as a caller with its current policies, for work done on its
    /// behalf without a request (an event subscription's deliveries); `None` when no
    /// principal has that name.
    pub fn principal(&self, name: &str) -> Option<Caller> {
        self.state()
            .principals
            .values()
            .find(|p| p.name == name)
            .map(|p| Caller::new(&p.name, p.policies.clone()))
    }

    /// The caller a bearer token stands for; `Unauthenticated` when it is unknown,
    /// expired or revoked.
    pub fn authenticate_token(&self, token: &str) -> Result<Caller> {
        self.authenticate_hash(&self.envelope.token_hash(token))
    }

    /// A session for a long-lived request (a watch stream, a long poll) made with
    /// `token`: [`AccessService::check`] authenticates it again whenever access
    /// changes, so a revoked token or a detached policy takes effect on the open
    /// request too.
    pub fn session(&self, token: &str) -> Result<Session> {
        let hash = self.envelope.token_hash(token);
        let generation = *self.generation.borrow();
        let caller = self.authenticate_hash(&hash)?;
        Ok(Session {
            caller,
            credential: Some(hash),
            generation,
        })
    }

    /// The session's caller as of now: authenticated again, with its current
    /// policies, when access changed since it was last checked (and when its
    /// credential may have expired); `Unauthenticated` once the token is revoked or
    /// expired, or its principal gone.
    pub fn check<'s>(&self, session: &'s mut Session) -> Result<&'s Caller> {
        let Some(hash) = &session.credential else {
            return Ok(&session.caller);
        };
        let generation = *self.generation.borrow();
        // Expiry moves with the clock, not with changes: a token that can expire
        // (and a scoped one) is checked every time.
        let unchanged = generation == session.generation
            && self
                .state()
                .tokens
                .get(hash.as_slice())
                .is_some_and(|row| row.expires.is_none());
        if !unchanged {
            session.caller = self.authenticate_hash(hash)?;
            session.generation = generation;
        }
        Ok(&session.caller)
    }

    fn authenticate_hash(&self, hash: &[u8]) -> Result<Caller> {
        let state = self.state();
        let Some(row) = state.tokens.get(hash) else {
            return self.scoped_token(hash);
        };
        // The map lookup found it by hash; compare again in constant time all the same.
        if aws_lc_rs_free_eq(&row.hash, hash).is_err() {
            return Err(unauthenticated("The token is not valid"));
        }
        if row.revoked.is_some() {
            return Err(unauthenticated("The token has been revoked"));
        }
        if row.expires.is_some_and(|e| e <= self.clock.now()) {
            return Err(unauthenticated("The token has expired"));
        }
        Self::caller_of(&state, row.principal_id)
            .ok_or_else(|| unauthenticated("The token's principal no longer exists"))
    }

    /// The secret key of an access key id and the caller it stands for. A scoped
    /// key needs its session token (`X-Amz-Security-Token`) and must not have expired.
    pub fn access_key(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Option<(SecretString, Caller)> {
        let state = self.state();
        if let Some(key) = state.keys.get(access_key_id) {
            return Some((key.secret.clone(), Self::caller_of(&state, key.principal)?));
        }
        self.scoped_key(access_key_id, session_token)
    }

    /// The SigV4 signing key of an access key id for `scope`, and the caller it stands
    /// for, as [`AccessService::access_key`] finds them. A stored key's derivation is
    /// kept for the next request of the same scope; a scoped key's is made each time.
    pub fn signing_key(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        scope: &SigningScope<'_>,
    ) -> Option<(Arc<SigningKey>, Caller)> {
        let state = self.state();
        if let Some(key) = state.keys.get(access_key_id) {
            let caller = Self::caller_of(&state, key.principal)?;
            return Some((key.signing_key(scope), caller));
        }
        let (secret, caller) = self.scoped_key(access_key_id, session_token)?;
        Some((Arc::new(scope.derive(&secret)), caller))
    }

    fn scoped_key(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Option<(SecretString, Caller)> {
        let hash = self.envelope.token_hash(session_token?);
        let mut scoped = self.scoped.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        scoped.keys.retain(|_, (_, _, s)| s.expires > now);
        let (secret, session, s) = scoped.keys.get(access_key_id)?;
        rotor_crypto::constant_time_eq(session, &hash).then(|| (secret.clone(), s.caller.clone()))
    }

    fn scoped_token(&self, hash: &[u8]) -> Result<Caller> {
        let mut scoped = self.scoped.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        scoped.tokens.retain(|_, s| s.expires > now);
        scoped
            .tokens
            .get(hash)
            .map(|s| s.caller.clone())
            .ok_or_else(|| unauthenticated("The token is not valid"))
    }

    /// Issues credentials that live for `ttl` and allow only what `policy` allows,
    /// as principal `name`: what a rotator gets to call back for one secret.
    pub fn issue_scoped(&self, name: &str, policy: Policy, ttl: Duration) -> ScopedCredentials {
        let token = rotor_crypto::random::token("rtr_");
        let access_key_id = rotor_crypto::random::access_key_id();
        let secret_access_key = rotor_crypto::random::token("");
        let session_token = rotor_crypto::random::token("rts_");
        let expires = self.clock.now() + ttl;
        // A rotator's reads are the rotation's, not a consumer's.
        let caller = Caller::new(name, Arc::from(vec![policy])).untracked();
        let mut scoped = self.scoped.lock().unwrap_or_else(|e| e.into_inner());
        scoped.tokens.insert(
            self.envelope.token_hash(&token),
            Scoped {
                caller: caller.clone(),
                expires,
            },
        );
        scoped.keys.insert(
            access_key_id.clone(),
            (
                SecretString::from(secret_access_key.clone()),
                self.envelope.token_hash(&session_token),
                Scoped { caller, expires },
            ),
        );
        ScopedCredentials {
            token: token.into(),
            access_key_id,
            secret_access_key: secret_access_key.into(),
            session_token: session_token.into(),
            expires,
        }
    }

    /// Ends scoped credentials before their expiry (the rotation step is over).
    pub fn revoke_scoped(&self, credentials: &ScopedCredentials) {
        let mut scoped = self.scoped.lock().unwrap_or_else(|e| e.into_inner());
        scoped
            .tokens
            .remove(&self.envelope.token_hash(credentials.token.expose_secret()));
        scoped.keys.remove(&credentials.access_key_id);
    }

    /// Makes sure the root principal exists, allowed everything, with the given
    /// credentials (`ROTOR_*ROOT*` variables), or with new ones on first start, which
    /// are returned so the caller can show them once.
    pub async fn bootstrap(
        &self,
        token: Option<&str>,
        key: Option<(&str, &str)>,
    ) -> Result<Option<RootCredentials>> {
        let first = !self
            .state()
            .snapshot
            .principals
            .iter()
            .any(|p| p.name == ROOT);
        let root_policy = Policy {
            name: ROOT.into(),
            statements: vec![policy::Statement {
                effect: policy::Effect::Allow,
                capabilities: Capability::ALL.to_vec(),
                paths: vec!["**".into()],
            }],
        };
        if !first && self.state().policies.get(ROOT) != Some(&root_policy) {
            // A store from before a capability was added (`exec`): root keeps
            // holding every capability there is.
            self.store_policy(&root_policy).await?;
        }
        if first {
            self.change(AccessMutation::CreatePrincipal {
                name: ROOT.into(),
                kind: "person".into(),
            })
            .await?;
            self.store_policy(&root_policy).await?;
            self.change(AccessMutation::Attach {
                principal: ROOT.into(),
                policy: ROOT.into(),
            })
            .await?;
        }
        let mut generated = None;
        let token = match (token, first) {
            (Some(t), _) => Some(t.to_string()),
            (None, true) => Some(rotor_crypto::random::token("rtr_")),
            (None, false) => None,
        };
        let key = match (key, first) {
            (Some((id, secret)), _) => Some((id.to_string(), secret.to_string())),
            (None, true) => Some((
                rotor_crypto::random::access_key_id(),
                rotor_crypto::random::token(""),
            )),
            (None, false) => None,
        };
        if let Some(t) = &token
            && !self
                .state()
                .tokens
                .contains_key(&self.envelope.token_hash(t))
        {
            self.insert_token(ROOT, t, None).await?;
        }
        if let Some((id, secret)) = &key {
            match self.state().keys.get(id) {
                Some(known) if known.secret.expose_secret() == secret => {}
                Some(_) => {
                    return Err(Error::invalid_request(format!(
                        "access key {id} already exists with another secret"
                    )));
                }
                None => self.insert_access_key(ROOT, id, secret).await?,
            }
        }
        if first && let (Some(t), Some((id, secret))) = (token, key) {
            generated = Some(RootCredentials {
                token: SecretString::from(t),
                access_key_id: id,
                secret_access_key: SecretString::from(secret),
            });
        }
        Ok(generated)
    }

    async fn insert_token(
        &self,
        principal: &str,
        token: &str,
        expires: Option<DateTime<Utc>>,
    ) -> Result<String> {
        let id = format!("tok_{}", hex_id());
        self.change(AccessMutation::CreateToken {
            id: id.clone(),
            principal: principal.into(),
            hash: self.envelope.token_hash(token),
            expires,
        })
        .await?;
        Ok(id)
    }

    async fn insert_access_key(&self, principal: &str, id: &str, secret: &str) -> Result<()> {
        let sealed = self
            .envelope
            .seal(ACCESS_KEY_AAD, id, secret.as_bytes())
            .map_err(|_| Error::internal("encryption failed"))?;
        self.change(AccessMutation::CreateAccessKey {
            id: id.into(),
            principal: principal.into(),
            sealed: SealedValue {
                ciphertext: sealed.ciphertext,
                wrapped_key: sealed.wrapped_key,
                algorithm: sealed.algorithm,
                key_id: sealed.key_id,
                digest: Vec::new(),
            },
        })
        .await
    }

    async fn store_policy(&self, policy: &Policy) -> Result<()> {
        policy.validate()?;
        let document =
            serde_json::to_string(policy).map_err(|_| Error::internal("policy encoding failed"))?;
        self.change(AccessMutation::PutPolicy {
            name: policy.name.clone(),
            document,
        })
        .await
    }

    /// `rotor principal create`.
    pub async fn create_principal(&self, caller: &Caller, name: &str, kind: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &format!("sys/principals/{name}"))?;
        policy::validate_policy_name(name)?;
        if !["service", "person"].contains(&kind) {
            return Err(Error::invalid_parameter(format!(
                "Principal kind must be service or person, got {kind:?}"
            )));
        }
        self.change(AccessMutation::CreatePrincipal {
            name: name.into(),
            kind: kind.into(),
        })
        .await
    }

    /// `rotor principal delete`.
    pub async fn delete_principal(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &format!("sys/principals/{name}"))?;
        if name == caller.name() {
            return Err(Error::invalid_request(
                "You can't delete the principal you are signed in as",
            ));
        }
        self.change(AccessMutation::DeletePrincipal { name: name.into() })
            .await
    }

    /// `rotor principal list`.
    pub fn list_principals(&self, caller: &Caller) -> Result<Vec<PrincipalInfo>> {
        caller.authorize(Capability::Admin, "sys/principals")?;
        let state = self.state();
        let now = self.clock.now();
        Ok(state
            .snapshot
            .principals
            .iter()
            .map(|p| PrincipalInfo {
                name: p.name.clone(),
                kind: p.kind.clone(),
                created: p.created,
                policies: p.policies.clone(),
                tokens: state
                    .snapshot
                    .tokens
                    .iter()
                    .filter(|t| {
                        t.principal_id == p.id
                            && t.revoked.is_none()
                            && t.expires.is_none_or(|e| e > now)
                    })
                    .map(|t| t.id.clone())
                    .collect(),
                access_keys: state
                    .snapshot
                    .access_keys
                    .iter()
                    .filter(|k| k.principal_id == p.id)
                    .map(|k| k.id.clone())
                    .collect(),
            })
            .collect())
    }

    /// `rotor policy put`: needs `admin` on `sys/policies/NAME`, and every right the
    /// policy allows (it may already be attached to principals, who would gain them).
    pub async fn put_policy(&self, caller: &Caller, policy: &Policy) -> Result<()> {
        caller.authorize(Capability::Admin, &format!("sys/policies/{}", policy.name))?;
        refuse_root_policy(&policy.name)?;
        policy.validate()?;
        caller.authorize_grant(policy)?;
        self.store_policy(policy).await
    }

    /// `rotor policy get`.
    pub fn get_policy(&self, caller: &Caller, name: &str) -> Result<Policy> {
        caller.authorize(Capability::Admin, &format!("sys/policies/{name}"))?;
        self.state()
            .policies
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No policy named {name}")))
    }

    /// `rotor policy list`.
    pub fn list_policies(&self, caller: &Caller) -> Result<Vec<Policy>> {
        caller.authorize(Capability::Admin, "sys/policies")?;
        let state = self.state();
        let mut all: Vec<Policy> = state.policies.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// `rotor policy delete`.
    pub async fn delete_policy(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &format!("sys/policies/{name}"))?;
        refuse_root_policy(name)?;
        self.change(AccessMutation::DeletePolicy { name: name.into() })
            .await
    }

    /// `rotor policy attach`: needs `admin` on the principal and on the policy, and
    /// every right the policy allows.
    pub async fn attach(&self, caller: &Caller, principal: &str, policy: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &format!("sys/principals/{principal}"))?;
        caller.authorize(Capability::Admin, &format!("sys/policies/{policy}"))?;
        let grant = self
            .state()
            .policies
            .get(policy)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No policy named {policy}")))?;
        caller.authorize_grant(&grant)?;
        self.change(AccessMutation::Attach {
            principal: principal.into(),
            policy: policy.into(),
        })
        .await
    }

    /// `rotor policy detach`.
    pub async fn detach(&self, caller: &Caller, principal: &str, policy: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &format!("sys/principals/{principal}"))?;
        if principal == ROOT && policy == ROOT {
            return Err(Error::invalid_request(
                "The root policy can't be detached from the root principal",
            ));
        }
        self.change(AccessMutation::Detach {
            principal: principal.into(),
            policy: policy.into(),
        })
        .await
    }

    /// `rotor token create`: a new 256-bit token for `principal`, valid for `ttl`
    /// (forever when `None`). The token is returned once and stored only as a hash.
    pub async fn create_token(
        &self,
        caller: &Caller,
        principal: &str,
        ttl: Option<Duration>,
    ) -> Result<(TokenInfo, SecretString)> {
        caller.authorize(Capability::Admin, &format!("sys/tokens/{principal}"))?;
        if ttl.is_some_and(|t| t <= Duration::zero()) {
            return Err(Error::invalid_parameter("A token's TTL must be positive"));
        }
        let token = rotor_crypto::random::token("rtr_");
        let expires = ttl.map(|t| self.clock.now() + t);
        let id = self.insert_token(principal, &token, expires).await?;
        let info = self
            .token_info(&id)
            .ok_or_else(|| Error::internal("token vanished after creation"))?;
        Ok((info, SecretString::from(token)))
    }

    fn token_info(&self, id: &str) -> Option<TokenInfo> {
        let state = self.state();
        let t = state.snapshot.tokens.iter().find(|t| t.id == id)?;
        let principal = state
            .principals
            .get(&t.principal_id)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        Some(TokenInfo {
            id: t.id.clone(),
            principal,
            created: t.created,
            expires: t.expires,
            revoked: t.revoked,
        })
    }

    /// The id of a token given either as its id or as the token itself.
    fn token_id(&self, id_or_token: &str) -> Option<String> {
        let state = self.state();
        if state.snapshot.tokens.iter().any(|t| t.id == id_or_token) {
            return Some(id_or_token.to_string());
        }
        state
            .tokens
            .get(&self.envelope.token_hash(id_or_token))
            .map(|t| t.id.clone())
    }

    /// `rotor token lookup`: allowed for admins, and for anyone about their own token.
    pub fn lookup_token(&self, caller: &Caller, id_or_token: &str) -> Result<TokenInfo> {
        let info = self
            .token_id(id_or_token)
            .and_then(|id| self.token_info(&id))
            .ok_or_else(|| Error::not_found("No such token"))?;
        if info.principal != caller.name() {
            caller.authorize(Capability::Admin, &format!("sys/tokens/{}", info.principal))?;
        }
        Ok(info)
    }

    /// `rotor token revoke`.
    pub async fn revoke_token(&self, caller: &Caller, id_or_token: &str) -> Result<TokenInfo> {
        let info = self.lookup_token(caller, id_or_token)?;
        caller.authorize(Capability::Admin, &format!("sys/tokens/{}", info.principal))?;
        self.change(AccessMutation::RevokeToken {
            id: info.id.clone(),
        })
        .await?;
        self.token_info(&info.id)
            .ok_or_else(|| Error::internal("token vanished after revocation"))
    }

    /// `rotor access-key create`: a new key pair for `principal`; the secret is
    /// returned once and stored sealed.
    pub async fn create_access_key(
        &self,
        caller: &Caller,
        principal: &str,
    ) -> Result<(String, SecretString)> {
        caller.authorize(Capability::Admin, &format!("sys/access-keys/{principal}"))?;
        let id = rotor_crypto::random::access_key_id();
        let secret = rotor_crypto::random::token("");
        self.insert_access_key(principal, &id, &secret).await?;
        Ok((id, SecretString::from(secret)))
    }

    /// `rotor access-key delete`.
    pub async fn delete_access_key(&self, caller: &Caller, access_key_id: &str) -> Result<()> {
        let state = self.state();
        let owner = state
            .keys
            .get(access_key_id)
            .and_then(|k| state.principals.get(&k.principal))
            .map(|p| p.name.clone())
            .ok_or_else(|| Error::not_found(format!("No access key {access_key_id}")))?;
        caller.authorize(Capability::Admin, &format!("sys/access-keys/{owner}"))?;
        self.change(AccessMutation::DeleteAccessKey {
            id: access_key_id.into(),
        })
        .await
    }
}

fn hex_id() -> String {
    rotor_crypto::random::bytes::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Constant-time equality of two byte strings.
fn aws_lc_rs_free_eq(a: &[u8], b: &[u8]) -> std::result::Result<(), ()> {
    rotor_crypto::constant_time_eq(a, b).then_some(()).ok_or(())
}

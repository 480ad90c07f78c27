//! The secret operations.

use crate::cache::{Identity, IdentityCache, ReadCache};
use crate::caller::Caller;
use crate::{consumers, replication};
use chrono::{DateTime, Duration, Utc};
use rotor_core::clock::{Clock, SystemClock};
use rotor_core::filter::{self, Filter};
use rotor_core::label::{self, AWSCURRENT};
use rotor_core::model::{self, SecretMeta, Tag, VersionMeta};
use rotor_core::name::{self, SecretRef};
use rotor_core::password::PasswordSpec;
use rotor_core::policy::Capability;
use rotor_core::value::SecretValue;
use rotor_core::{Error, ErrorKind, Result};
use rotor_crypto::{Envelope, MasterKey, SealedRef};
use rotor_store::{
    Listing, Lookup, Mutation, NewVersion, Outcome, SealedValue, SecretRecord, SecretSummary,
    Store, StoredVersion,
};
use std::sync::Arc;

/// The default account id in ARNs: the AWS documentation's example account.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";
/// Default recovery window of `DeleteSecret`.
pub const DEFAULT_RECOVERY_DAYS: i64 = 30;

/// How long an answer waits for a finished rotation's record to close
/// ([`SecretService::settled`]): normally a moment.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// `CreateSecret`.
#[derive(Debug, Default)]
pub struct CreateSecret {
    /// Name.
    pub name: String,
    /// Region for the ARN (from the request's SigV4 scope).
    pub region: String,
    /// `ClientRequestToken`: the first version's id. Generated when absent.
    pub token: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// KMS key id, kept and echoed.
    pub kms_key_id: Option<String>,
    /// First value; none creates a secret without versions.
    pub value: Option<SecretValue>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// The answer to a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// The first version's id, when a value was given.
    pub version_id: Option<String>,
}

/// `PutSecretValue`.
#[derive(Debug)]
pub struct PutValue {
    /// Which secret.
    pub secret_id: String,
    /// Version id; generated when absent.
    pub token: Option<String>,
    /// The value.
    pub value: SecretValue,
    /// Labels for the new version; `AWSCURRENT` when absent.
    pub stages: Option<Vec<String>>,
}

/// The answer to a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// The version's id.
    pub version_id: String,
    /// Its labels.
    pub stages: Vec<String>,
}

/// A version's value, as `GetSecretValue` returns it.
#[derive(Debug)]
pub struct VersionValue {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Version id.
    pub version_id: String,
    /// The value.
    pub value: SecretValue,
    /// Labels.
    pub stages: Vec<String>,
    /// When the version was created.
    pub created: DateTime<Utc>,
}

/// `DescribeSecret`.
#[derive(Debug, Clone)]
pub struct Description {
    /// Metadata.
    pub meta: SecretMeta,
    /// Each labeled version and its labels.
    pub versions_to_stages: Vec<(String, Vec<String>)>,
    /// The day (midnight UTC, as AWS gives it) its current value was last read over an
    /// API, as far as the reader registry knows.
    pub last_accessed: Option<DateTime<Utc>>,
}

/// Sort order of listings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// What listings are sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Creation date.
    #[default]
    CreatedDate,
    /// Last change.
    LastChangedDate,
    /// Name.
    Name,
}

/// `ListSecrets`.
#[derive(Debug, Clone, Default)]
pub struct ListSecrets {
    /// Include secrets scheduled for deletion.
    pub include_planned_deletion: bool,
    /// Filters, all of which must match.
    pub filters: Vec<Filter>,
    /// Order.
    pub sort_order: SortOrder,
    /// Sort key.
    pub sort_by: SortBy,
    /// Only names starting with this (the native API's `prefix`).
    pub prefix: Option<String>,
}

/// `DeleteSecret`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// When it is (or was) removed for good.
    pub deletion_date: DateTime<Utc>,
}

/// One failed entry of `BatchGetSecretValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// The id as given.
    pub secret_id: String,
    /// What went wrong.
    pub error: Error,
}

/// The secret service.
pub struct SecretService {
    store: Arc<dyn Store>,
    envelope: Arc<Envelope>,
    clock: Arc<dyn Clock>,
    account_id: String,
    /// Every cache of the service lives here, and is invalidated only in this file.
    cache: ReadCache,
    identities: IdentityCache,
    /// Replication rules, loaded on first use and after each change through here.
    rules: std::sync::RwLock<Option<Arc<Vec<crate::replication::Rule>>>>,
    /// Principals, for work done on their behalf (a replication rule's copies).
    principals: std::sync::OnceLock<Arc<crate::AccessService>>,
    /// Reads waiting to be written to the consumer registry.
    readers: consumers::ReadTracker,
}

impl std::fmt::Debug for SecretService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretService")
            .field("account_id", &self.account_id)
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

fn not_found() -> Error {
    Error::not_found("Secrets Manager can't find the specified secret.")
}

/// The refusal of an ARN the caller may not use: the same whether a secret has it.
fn arn_refused(caller: &Caller, capability: Capability, arn: &str) -> Error {
    Error::new(
        ErrorKind::AccessDenied,
        format!(
            "{} is not allowed to {capability} the secret {arn}",
            caller.name()
        ),
    )
}

/// The names an ARN that names no secret could have stood for: its resource part,
/// and that part without a 6-character suffix (a full ARN of a secret since gone).
fn arn_names(arn: &str) -> impl Iterator<Item = &str> {
    let resource = arn.splitn(7, ':').nth(6).unwrap_or("");
    let without_suffix = resource
        .rsplit_once('-')
        .filter(|(_, suffix)| suffix.len() == 6)
        .map(|(name, _)| name);
    std::iter::once(resource).chain(without_suffix)
}

fn marked_for_deletion() -> Error {
    Error::invalid_request(
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

impl SecretService {
    /// A service over `store`, sealing with `master`.
    pub fn new(
        store: Arc<dyn Store>,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        account_id: &str,
    ) -> Self {
        SecretService {
            store,
            envelope: Arc::new(Envelope::new(master)),
            clock,
            account_id: account_id.to_string(),
            cache: ReadCache::default(),
            identities: IdentityCache::default(),
            rules: Default::default(),
            principals: std::sync::OnceLock::new(),
            readers: Default::default(),
        }
    }

    /// A service over `store` with a fresh random master key, on the system clock:
    /// for `--dev` (over an ephemeral store) and tests.
    pub fn with_random_key(store: Arc<dyn Store>, account_id: &str) -> Self {
        Self::new(
            store,
            MasterKey::generate(),
            Arc::new(SystemClock),
            account_id,
        )
    }

    /// Checks that this service's master key is the one the store's data was sealed
    /// with (recording it when the store is new), so that a server given the wrong
    /// key refuses to start instead of failing every read.
    pub async fn check_master_key(&self) -> Result<()> {
        let known = self.store.master_keys().await?;
        let mine = self.envelope.key_id().to_string();
        if known.is_empty() {
            self.store
                .apply(Mutation::RecordMasterKey { key_id: mine }, self.clock.now())
                .await?;
            return Ok(());
        }
        if known.contains(&mine) {
            return Ok(());
        }
        Err(Error::invalid_request(format!(
            "the data in this store was sealed with master key {}, but the configured master key is {mine}",
            known.join(", ")
        )))
    }

    /// Gives the service its principals, so that what it does for one (a replication
    /// rule's copies) is authorized with that principal's current policies. Until
    /// then no principal is known, and nothing is done in anyone's name.
    pub fn bind_access(&self, access: &Arc<crate::AccessService>) {
        let _ = self.principals.set(access.clone());
    }

    /// Principal `name` with its current policies, if it exists.
    pub(crate) fn principal(&self, name: &str) -> Option<Caller> {
        self.principals.get()?.principal(name)
    }

    /// The envelope sealing this service's values, for services that seal with the
    /// same master key.
    pub fn envelope(&self) -> Arc<Envelope> {
        self.envelope.clone()
    }

    /// The store under this service.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The clock this service uses.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The account id used in ARNs.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The current time by this service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Commits pending writes and closes the store.
    pub async fn close(&self) {
        self.store.close().await;
    }

    async fn load(&self, key: Lookup) -> Result<Option<Arc<SecretRecord>>> {
        if let Some(hit) = self.cache.get(&key) {
            return Ok(Some(hit));
        }
        let epoch = self.cache.epoch();
        let Some(record) = self.store.load(&key).await? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        self.cache.insert(key, record.clone(), epoch);
        Ok(Some(record))
    }

    /// Finds a secret by name, full ARN or partial ARN (the ARN without its
    /// six-character suffix).
    pub async fn resolve(&self, secret_id: &str) -> Result<Arc<SecretRecord>> {
        match SecretRef::parse(secret_id)? {
            SecretRef::Name(name) => self
                .load(Lookup::Name(name.to_string()))
                .await?
                .ok_or_else(not_found),
            SecretRef::Arn { full, resource } => {
                if let Some(r) = self.load(Lookup::Arn(full.to_string())).await? {
                    return Ok(r);
                }
                let r = self
                    .load(Lookup::Name(resource.to_string()))
                    .await?
                    .ok_or_else(not_found)?;
                let partial_of_it =
                    r.meta.arn.len() == full.len() + 7 && r.meta.arn.starts_with(full);
                if partial_of_it {
                    Ok(r)
                } else {
                    Err(not_found())
                }
            }
        }
    }

    /// Resolves `secret_id` for `caller`, who must have `capability` on the secret's
    /// name. A caller without the capability learns nothing, not even whether the
    /// secret exists: a plain name is checked before the lookup, and an ARN, whose
    /// name is known only once found, gets the same refusal whether it names a secret
    /// or not.
    async fn authorized(
        &self,
        caller: &Caller,
        capability: Capability,
        secret_id: &str,
    ) -> Result<Arc<SecretRecord>> {
        if let SecretRef::Name(name) = SecretRef::parse(secret_id)? {
            caller.authorize(capability, name)?;
            let record = self.resolve(secret_id).await?;
            caller.authorize(capability, &record.meta.name)?;
            return Ok(record);
        }
        match self.resolve(secret_id).await {
            Ok(record) if caller.may(capability, &record.meta.name) => Ok(record),
            Ok(_) => Err(arn_refused(caller, capability, secret_id)),
            Err(e) if e.kind == ErrorKind::ResourceNotFound => {
                if arn_names(secret_id).any(|n| caller.may(capability, n)) {
                    Err(e)
                } else {
                    Err(arn_refused(caller, capability, secret_id))
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn authorized_live(
        &self,
        caller: &Caller,
        capability: Capability,
        secret_id: &str,
    ) -> Result<Arc<SecretRecord>> {
        let record = self.authorized(caller, capability, secret_id).await?;
        if record.meta.is_deleted() {
            return Err(marked_for_deletion());
        }
        Ok(record)
    }

    /// The identity of the secret `secret_id` names, for writes: from the identity
    /// cache when possible, so a write does not have to load the secret first.
    async fn identity(
        &self,
        caller: &Caller,
        capability: Capability,
        secret_id: &str,
    ) -> Result<Identity> {
        let by_name = matches!(SecretRef::parse(secret_id)?, SecretRef::Name(_));
        if by_name {
            caller.authorize(capability, secret_id)?;
        }
        if let Some(identity) = self.identities.get(secret_id) {
            if !by_name && !caller.may(capability, &identity.name) {
                return Err(arn_refused(caller, capability, secret_id));
            }
            caller.authorize(capability, &identity.name)?;
            return Ok(identity);
        }
        let record = if by_name {
            self.resolve(secret_id).await?
        } else {
            self.authorized(caller, capability, secret_id).await?
        };
        let identity = Identity {
            id: record.meta.id,
            name: record.meta.name.clone(),
            arn: record.meta.arn.clone(),
            replica_of: record.meta.replica_of.clone(),
        };
        self.identities.insert(secret_id, identity.clone());
        caller.authorize(capability, &identity.name)?;
        Ok(identity)
    }

    async fn apply_to(&self, record: &SecretRecord, mutation: Mutation) -> Result<Outcome> {
        self.apply(&record.meta.name, &record.meta.arn, mutation)
            .await
    }

    pub(crate) async fn apply(&self, name: &str, arn: &str, mutation: Mutation) -> Result<Outcome> {
        let purge = |m: &Mutation| matches!(m, Mutation::Purge { .. });
        let (purges, wide) = match &mutation {
            Mutation::Atomic(all) => (
                all.iter().any(purge),
                // Replicas and marks touch other secrets too.
                all.iter().any(|m| {
                    matches!(
                        m,
                        Mutation::MarkSourceDeleted { .. } | Mutation::MarkReplica { .. }
                    )
                }),
            ),
            m => (purge(m), false),
        };
        let result = self.store.apply(mutation, self.clock.now()).await;
        self.cache.invalidate(name, arn);
        if wide {
            self.cache.clear();
        }
        if purges {
            self.identities.clear();
        }
        result
    }

    pub(crate) fn new_version(
        &self,
        arn: &str,
        token: Option<String>,
        value: &SecretValue,
        stages: Vec<String>,
    ) -> Result<NewVersion> {
        let id = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        name::validate_version_id(&id)?;
        let plain = value.to_tagged_bytes();
        let sealed = self
            .envelope
            .seal(arn, &id, &plain)
            .map_err(|_| Error::internal("encryption failed"))?;
        Ok(NewVersion {
            source: None,
            id,
            stages,
            sealed: SealedValue {
                ciphertext: sealed.ciphertext,
                wrapped_key: sealed.wrapped_key,
                algorithm: sealed.algorithm,
                key_id: sealed.key_id,
                digest: self.envelope.value_digest(&plain),
            },
        })
    }

    /// `CreateSecret`.
    pub async fn create(&self, caller: &Caller, req: CreateSecret) -> Result<Created> {
        name::validate_name(&req.name)?;
        caller.authorize(Capability::Write, &req.name)?;
        model::validate_tags(&req.tags)?;
        if req.tags.len() > model::MAX_TAGS {
            return Err(Error::validation(format!(
                "A secret can have at most {} tags",
                model::MAX_TAGS
            )));
        }
        if req
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2048)
        {
            return Err(Error::validation(
                "Description must be at most 2048 characters long",
            ));
        }
        if let Some(token) = &req.token {
            name::validate_version_id(token)?;
        }
        name::validate_region(&req.region)?;
        let suffix = name::arn_suffix(rotor_crypto::random::bytes::<6>());
        let arn = name::arn(&req.region, &self.account_id, &req.name, &suffix);
        let first_version = match &req.value {
            Some(v) => {
                Some(self.new_version(&arn, req.token.clone(), v, vec![AWSCURRENT.to_string()])?)
            }
            None => None,
        };
        let version_id = first_version.as_ref().map(|v| v.id.clone());
        let replicas = match (&req.value, &version_id) {
            (Some(value), Some(id)) => {
                self.replication()
                    .replicas(&req.name, &arn, id, value)
                    .await?
            }
            _ => crate::replication::Replicas::default(),
        };
        let mut mutation = Mutation::CreateSecret {
            name: req.name.clone(),
            arn,
            description: req.description,
            kms_key_id: req.kms_key_id,
            tags: req.tags,
            first_version,
        };
        if !replicas.mutations.is_empty() {
            let mut all = vec![mutation];
            all.extend(replicas.mutations);
            mutation = Mutation::Atomic(all);
        }
        let out = self.store.apply(mutation, self.clock.now()).await;
        self.forget_replicas(&replicas.touched);
        let out = match out? {
            Outcome::All(mut all) if !all.is_empty() => all.swap_remove(0),
            other => other,
        };
        let Outcome::Created { arn, .. } = out else {
            return Err(Error::internal(
                "store answered a create with something else",
            ));
        };
        self.cache.invalidate(&req.name, &arn);
        Ok(Created {
            arn,
            name: req.name,
            version_id,
        })
    }

    /// `PutSecretValue`.
    pub async fn put_value(&self, caller: &Caller, req: PutValue) -> Result<PutResult> {
        let secret = self
            .identity(caller, Capability::Write, &req.secret_id)
            .await?;
        let stages = match req.stages {
            Some(s) if s.is_empty() => {
                return Err(Error::validation("VersionStages must hold 1 to 20 labels"));
            }
            Some(s) => s,
            None => vec![AWSCURRENT.to_string()],
        };
        crate::replication::refuse_replica(&secret.name, secret.replica_of.as_deref())?;
        let current = stages.iter().any(|s| s == AWSCURRENT);
        let version = self.new_version(&secret.arn, req.token, &req.value, stages)?;
        let version_id = version.id.clone();
        let mut mutation = Mutation::PutVersion {
            secret: secret.id,
            version,
        };
        let replicas = if current {
            self.replication()
                .replicas(&secret.name, &secret.arn, &version_id, &req.value)
                .await?
        } else {
            crate::replication::Replicas::default()
        };
        if !replicas.mutations.is_empty() {
            let mut all = vec![mutation];
            all.extend(replicas.mutations);
            mutation = Mutation::Atomic(all);
        }
        let out = self.apply(&secret.name, &secret.arn, mutation).await;
        self.forget_replicas(&replicas.touched);
        // A version id already taken by another value: AWS's own words.
        let out = out.map_err(|e| match e.kind {
            ErrorKind::ResourceExists => Error::exists(format!(
                "You can't use ClientRequestToken {version_id} because that value is already in use for a version of secret {}.",
                secret.arn
            )),
            _ => e,
        });
        let out = match out? {
            Outcome::All(mut all) if !all.is_empty() => all.swap_remove(0),
            other => other,
        };
        let stages = match out {
            Outcome::Version {
                labels,
                replayed,
                rotates,
            } => {
                if rotates && !replayed && labels.iter().any(|l| l == AWSCURRENT) {
                    self.rotated_by_hand(&secret).await?;
                }
                labels
            }
            _ => Vec::new(),
        };
        Ok(PutResult {
            arn: secret.arn,
            name: secret.name,
            version_id,
            stages,
        })
    }

    /// `GetSecretValue`: by version id, by label (default `AWSCURRENT`), or both,
    /// which must then name the same version.
    pub async fn get_value(
        &self,
        caller: &Caller,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<VersionValue> {
        let record = self
            .authorized_live(caller, Capability::Read, secret_id)
            .await?;
        let stage = match (version_id, stage) {
            (None, None) => Some(AWSCURRENT),
            (_, s) => s,
        };
        let matches = |v: &StoredVersion| {
            version_id.is_none_or(|id| v.id == id)
                && stage.is_none_or(|s| v.labels.iter().any(|l| l == s))
        };
        // The record holds labeled versions only; a deprecated one is asked for by id.
        let loaded;
        let version = match record.versions.iter().find(|v| matches(v)) {
            Some(v) => v,
            None => {
                loaded = match version_id {
                    Some(id) => self
                        .store
                        .load_version(record.meta.id, id)
                        .await?
                        .filter(|v| matches(v)),
                    None => None,
                };
                loaded.as_ref().ok_or_else(|| {
                    let what = match (version_id, stage) {
                        (Some(id), Some(s)) => format!("VersionId: {id} and staging label: {s}"),
                        (Some(id), None) => format!("VersionId: {id}"),
                        (None, Some(s)) => format!("staging label: {s}"),
                        (None, None) => String::new(),
                    };
                    Error::not_found(format!(
                        "Secrets Manager can't find the specified secret value for {what}"
                    ))
                })?
            }
        };
        // A read of AWSCURRENT (what an application does) makes the reader a consumer
        // of that version; a read by id or of another label (a rotation function, a
        // tool, a fallback) does not.
        let reads_current = version_id.is_none() && stage == Some(AWSCURRENT);
        if reads_current && let Some(address) = caller.reader_address() {
            self.readers.seen(
                record.meta.id,
                caller.name_arc(),
                address,
                &version.id,
                self.clock.now(),
            );
        }
        let sealed = &version.sealed;
        let plain = self
            .envelope
            .open_parts(
                &record.meta.arn,
                &version.id,
                SealedRef {
                    ciphertext: &sealed.ciphertext,
                    wrapped_key: &sealed.wrapped_key,
                    algorithm: &sealed.algorithm,
                    key_id: &sealed.key_id,
                },
            )
            .map_err(|e| {
                tracing::error!(secret = %record.meta.name, version = %version.id, error = %e, "cannot decrypt version");
                Error::internal("The stored value could not be decrypted")
            })?;
        Ok(VersionValue {
            arn: record.meta.arn.clone(),
            name: record.meta.name.clone(),
            version_id: version.id.clone(),
            value: SecretValue::from_tagged_bytes(&plain)?,
            stages: version.labels.clone(),
            created: version.created,
        })
    }

    /// `BatchGetSecretValue` by ids: values for those found, an error for each other.
    pub async fn batch_get(
        &self,
        caller: &Caller,
        ids: &[String],
    ) -> (Vec<VersionValue>, Vec<BatchError>) {
        let mut values = Vec::new();
        let mut errors = Vec::new();
        for id in ids {
            match self.get_value(caller, id, None, None).await {
                Ok(v) => values.push(v),
                Err(error) => errors.push(BatchError {
                    secret_id: id.clone(),
                    error,
                }),
            }
        }
        (values, errors)
    }

    /// `UpdateSecret`: description and KMS key id, and with a value a new
    /// `AWSCURRENT` version. Returns the new version's id, if any.
    pub async fn update(
        &self,
        caller: &Caller,
        secret_id: &str,
        token: Option<String>,
        description: Option<String>,
        kms_key_id: Option<String>,
        value: Option<SecretValue>,
    ) -> Result<(String, String, Option<String>)> {
        let record = self
            .authorized_live(caller, Capability::Write, secret_id)
            .await?;
        if value.is_some() {
            crate::replication::refuse_replica(
                &record.meta.name,
                record.meta.replica_of.as_deref(),
            )?;
        }
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2048)
        {
            return Err(Error::validation(
                "Description must be at most 2048 characters long",
            ));
        }
        if description.is_some() || kms_key_id.is_some() {
            self.apply_to(
                &record,
                Mutation::UpdateMeta {
                    secret: record.meta.id,
                    description,
                    kms_key_id,
                },
            )
            .await?;
        }
        let mut version_id = None;
        if let Some(value) = value {
            let put = self
                .put_value(
                    caller,
                    PutValue {
                        secret_id: record.meta.arn.clone(),
                        token,
                        value,
                        stages: None,
                    },
                )
                .await?;
            version_id = Some(put.version_id);
        }
        Ok((
            record.meta.arn.clone(),
            record.meta.name.clone(),
            version_id,
        ))
    }

    /// `UpdateSecretVersionStage`.
    pub async fn update_stage(
        &self,
        caller: &Caller,
        secret_id: &str,
        stage: &str,
        move_to: Option<String>,
        remove_from: Option<String>,
    ) -> Result<(String, String)> {
        let record = self
            .authorized_live(caller, Capability::Write, secret_id)
            .await?;
        for id in [&move_to, &remove_from].into_iter().flatten() {
            name::validate_version_id(id)?;
        }
        crate::replication::refuse_replica(&record.meta.name, record.meta.replica_of.as_deref())?;
        let replicas = match (&move_to, stage == AWSCURRENT) {
            (Some(to), true) => self.replication().replicas_of_version(&record, to).await?,
            _ => crate::replication::Replicas::default(),
        };
        let mut mutation = Mutation::MoveLabel {
            secret: record.meta.id,
            label: stage.to_string(),
            move_to,
            remove_from,
        };
        if !replicas.mutations.is_empty() {
            let mut all = vec![mutation];
            all.extend(replicas.mutations);
            mutation = Mutation::Atomic(all);
        }
        let out = self.apply_to(&record, mutation).await;
        self.forget_replicas(&replicas.touched);
        out?;
        Ok((record.meta.arn.clone(), record.meta.name.clone()))
    }

    /// `ListSecretVersionIds`: versions newest first; deprecated (unlabeled) ones only
    /// when asked.
    pub async fn list_versions(
        &self,
        caller: &Caller,
        secret_id: &str,
        include_deprecated: bool,
    ) -> Result<(Arc<SecretRecord>, Vec<VersionMeta>)> {
        let record = self
            .authorized(caller, Capability::Describe, secret_id)
            .await?;
        let mut versions: Vec<VersionMeta> = self
            .store
            .list_versions(record.meta.id)
            .await?
            .into_iter()
            .rev()
            .filter(|v| include_deprecated || !v.labels.is_empty())
            .collect();
        if let Some(token) = self.pending_stub(&record).await? {
            versions.insert(
                0,
                VersionMeta {
                    source: None,
                    id: token,
                    labels: vec![label::AWSPENDING.to_string()],
                    created: record.meta.last_changed,
                },
            );
        }
        Ok((record, versions))
    }

    /// `record`, or, when its latest rotation has moved `AWSCURRENT`, the secret as that
    /// rotation left it: waiting (up to [`SETTLE`]) while the rotation's record has not
    /// closed yet, and read afresh when `record` was read before it closed. AWS clients
    /// see a rotation end when `AWSCURRENT` moves, and act on it at once (describe it,
    /// rotate again): the answers must not lag behind.
    pub async fn settled(&self, record: Arc<SecretRecord>) -> Result<Arc<SecretRecord>> {
        if record.meta.rotation.rotator.is_none() {
            return Ok(record);
        }
        let holder = |r: &SecretRecord, label: &str| {
            r.versions
                .iter()
                .find(|v| v.labels.iter().any(|l| l == label))
                .map(|v| v.id.clone())
        };
        let current = holder(&record, AWSCURRENT);
        let deadline = std::time::Instant::now() + SETTLE;
        loop {
            let Some(latest) = self.store.rotations(record.meta.id, 1).await?.pop() else {
                return Ok(record);
            };
            if current.as_deref() != Some(latest.token.as_str()) {
                return Ok(record);
            }
            let closing = latest.status == model::RotationStatus::Running
                && latest.step == model::Step::FinishSecret;
            if !closing {
                // Read before the record closed: the label it releases, or the date
                // it sets, would lag.
                let stale = holder(&record, label::AWSPENDING) == current
                    || record.meta.rotation.last_rotated.is_none_or(|t| {
                        latest.finished.is_some_and(|f| t < f) || t < latest.started
                    });
                if !stale {
                    return Ok(record);
                }
                return match self
                    .store
                    .load(&Lookup::Name(record.meta.name.clone()))
                    .await?
                {
                    Some(fresh) => Ok(Arc::new(fresh)),
                    None => Ok(record),
                };
            }
            if std::time::Instant::now() >= deadline {
                return Ok(record);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The day (midnight UTC, as AWS gives it) each of `secrets` (store ids) had its
    /// current value last read over an API, as far as the reader registry knows.
    pub async fn last_accessed(
        &self,
        secrets: &[i64],
    ) -> Result<std::collections::HashMap<i64, DateTime<Utc>>> {
        let mut out: std::collections::HashMap<i64, DateTime<Utc>> = Default::default();
        for c in self.store.consumers(secrets).await? {
            if c.kind != rotor_store::ConsumerKind::Reader {
                continue;
            }
            let Some(day) = c.last_seen.date_naive().and_hms_opt(0, 0, 0) else {
                continue;
            };
            let day = day.and_utc();
            let latest = out.entry(c.secret).or_insert(day);
            *latest = (*latest).max(day);
        }
        Ok(out)
    }

    /// `DescribeSecret`.
    pub async fn describe(&self, caller: &Caller, secret_id: &str) -> Result<Description> {
        let record = self
            .authorized(caller, Capability::Describe, secret_id)
            .await?;
        let record = self.settled(record).await?;
        let mut versions_to_stages: Vec<(String, Vec<String>)> = record
            .versions
            .iter()
            .filter(|v| !v.labels.is_empty())
            .map(|v| (v.id.clone(), v.labels.clone()))
            .collect();
        if let Some(token) = self.pending_stub(&record).await? {
            versions_to_stages.push((token, vec![label::AWSPENDING.to_string()]));
        }
        let last_accessed = self
            .last_accessed(&[record.meta.id])
            .await?
            .remove(&record.meta.id);
        Ok(Description {
            meta: record.meta.clone(),
            versions_to_stages,
            last_accessed,
        })
    }

    /// `ListSecrets`, unpaginated: filtered and sorted.
    /// Secrets the caller may not `list` are left out, not refused.
    pub async fn list(&self, caller: &Caller, req: &ListSecrets) -> Result<Vec<SecretSummary>> {
        // The store reads only the names a prefix, or the name filters, allow.
        let prefix = [req.prefix.clone(), filter::name_prefix(&req.filters)]
            .into_iter()
            .flatten()
            .max_by_key(String::len);
        let listing = Listing {
            include_deleted: req.include_planned_deletion,
            ..Listing::default()
        };
        let listing = listing.under(prefix.as_deref().unwrap_or_default());
        let mut all: Vec<SecretSummary> = self
            .store
            .list(&listing)
            .await?
            .into_iter()
            .filter(|s| {
                req.prefix
                    .as_deref()
                    .is_none_or(|p| s.meta.name.starts_with(p))
            })
            .filter(|s| caller.may(Capability::List, &s.meta.name))
            .filter(|s| filter::matches_all(&req.filters, &s.meta))
            .collect();
        match req.sort_by {
            SortBy::CreatedDate => all.sort_by_key(|a| (a.meta.created, a.meta.id)),
            SortBy::LastChangedDate => all.sort_by(|a, b| {
                (a.meta.last_changed, a.meta.id).cmp(&(b.meta.last_changed, b.meta.id))
            }),
            SortBy::Name => all.sort_by(|a, b| a.meta.name.cmp(&b.meta.name)),
        }
        if req.sort_order == SortOrder::Desc {
            all.reverse();
        }
        Ok(all)
    }

    /// `DeleteSecret`: schedule deletion after a 7–30 day window (default 30), or
    /// delete at once with `force`.
    pub async fn delete(
        &self,
        caller: &Caller,
        secret_id: &str,
        recovery_days: Option<i64>,
        force: bool,
    ) -> Result<Deleted> {
        // AWS checks the window before the conflict with a forced delete.
        let days = recovery_days.unwrap_or(DEFAULT_RECOVERY_DAYS);
        if !(7..=30).contains(&days) {
            return Err(Error::invalid_parameter(
                "RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            ));
        }
        if force && recovery_days.is_some() {
            return Err(Error::invalid_parameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        let record = self
            .authorized(caller, Capability::Delete, secret_id)
            .await?;
        crate::replication::refuse_replica(&record.meta.name, record.meta.replica_of.as_deref())?;
        // Destinations are never deleted with their source: they are marked.
        let marks = self
            .replication()
            .source_marks(&record.meta.name, true)
            .await?;
        let with_marks = |m: Mutation| match &marks {
            Some(mark) => Mutation::Atomic(vec![m, mark.clone()]),
            None => m,
        };
        let now = self.clock.now();
        let deletion_date = if force {
            self.apply_to(
                &record,
                with_marks(Mutation::Purge {
                    secret: record.meta.id,
                }),
            )
            .await?;
            now
        } else {
            if record.meta.is_deleted() {
                return Err(Error::invalid_request(
                    "You can't delete this secret because it is already scheduled for deletion.",
                ));
            }
            let date = now + Duration::days(days);
            self.apply_to(
                &record,
                with_marks(Mutation::ScheduleDeletion {
                    secret: record.meta.id,
                    deletion_date: date,
                }),
            )
            .await?;
            date
        };
        Ok(Deleted {
            arn: record.meta.arn.clone(),
            name: record.meta.name.clone(),
            deletion_date,
        })
    }

    /// `RestoreSecret`.
    pub async fn restore(&self, caller: &Caller, secret_id: &str) -> Result<(String, String)> {
        let record = self
            .authorized(caller, Capability::Delete, secret_id)
            .await?;
        let restore = Mutation::Restore {
            secret: record.meta.id,
        };
        let mutation = match self
            .replication()
            .source_marks(&record.meta.name, false)
            .await?
        {
            Some(mark) => Mutation::Atomic(vec![restore, mark]),
            None => restore,
        };
        self.apply_to(&record, mutation).await?;
        Ok((record.meta.arn.clone(), record.meta.name.clone()))
    }

    /// `TagResource`.
    pub async fn tag(&self, caller: &Caller, secret_id: &str, tags: Vec<Tag>) -> Result<()> {
        model::validate_tags(&tags)?;
        let record = self
            .authorized(caller, Capability::Write, secret_id)
            .await?;
        self.apply_to(
            &record,
            Mutation::Tag {
                secret: record.meta.id,
                tags,
            },
        )
        .await?;
        Ok(())
    }

    /// `UntagResource`.
    pub async fn untag(&self, caller: &Caller, secret_id: &str, keys: Vec<String>) -> Result<()> {
        let record = self
            .authorized(caller, Capability::Write, secret_id)
            .await?;
        self.apply_to(
            &record,
            Mutation::Untag {
                secret: record.meta.id,
                keys,
            },
        )
        .await?;
        Ok(())
    }

    /// Keeps this node's caches in step with changes made by other nodes sharing
    /// the store: follows the events outbox and forgets what each event touched.
    /// Only needed when several servers share one store (PostgreSQL).
    pub fn follow_other_nodes(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut feed = me.store.event_feed();
            let mut after = *feed.borrow_and_update();
            loop {
                if feed.changed().await.is_err() {
                    return;
                }
                loop {
                    const PAGE: usize = 1000;
                    let events = match me.store.events(after, PAGE as i64).await {
                        Ok(events) => events,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read events to refresh caches");
                            break;
                        }
                    };
                    let Some(last) = events.last().map(|e| e.seq) else {
                        break;
                    };
                    after = last;
                    for e in &events {
                        if e.kind.starts_with("replication.rule")
                            || e.kind.starts_with("replication.source")
                        {
                            *me.rules.write().unwrap_or_else(|p| p.into_inner()) = None;
                            me.identities.clear();
                            me.cache.clear();
                        } else if e.kind == "secret.purged" {
                            me.identities.clear();
                        }
                        if let Some(name) = &e.secret {
                            me.cache.invalidate_name(name);
                        }
                    }
                    // A short page is the end: no query more to find it empty (on
                    // every node, at every commit of any node).
                    if events.len() < PAGE {
                        break;
                    }
                }
            }
        })
    }

    /// Forgets the cached records of secrets named in events about to be handed
    /// to a watcher.
    pub(crate) fn forget_secrets<'a>(&self, names: impl Iterator<Item = &'a str>) {
        for name in names {
            self.cache.invalidate_name(name);
        }
    }

    /// Resolves `secret_id` for `caller`, who needs `capability` on it.
    pub(crate) async fn resolve_for(
        &self,
        caller: &Caller,
        capability: Capability,
        secret_id: &str,
    ) -> Result<Arc<SecretRecord>> {
        self.authorized(caller, capability, secret_id).await
    }

    /// Replaces a secret's rotation configuration and schedule.
    pub(crate) async fn set_rotation(
        &self,
        record: &SecretRecord,
        rotation: model::RotationMeta,
    ) -> Result<()> {
        self.apply_to(
            record,
            Mutation::SetRotation {
                secret: record.meta.id,
                rotation,
            },
        )
        .await
        .map(|_| ())
    }

    /// Applies a rotation mutation of secret `name`.
    pub(crate) async fn apply_rotation(
        &self,
        name: &str,
        arn: &str,
        mutation: Mutation,
    ) -> Result<Outcome> {
        self.apply(name, arn, mutation).await
    }

    /// The version a running, failed or cancelled rotation is making, while it has
    /// no value yet: AWS shows it with `AWSPENDING` from the moment `RotateSecret`
    /// is called, and rotation functions check for it.
    async fn pending_stub(&self, record: &SecretRecord) -> Result<Option<String>> {
        let pending_held = record
            .versions
            .iter()
            .any(|v| v.labels.iter().any(|l| l == label::AWSPENDING));
        if pending_held || record.meta.rotation.rotator.is_none() {
            return Ok(None);
        }
        let Some(latest) = self.store.rotations(record.meta.id, 1).await?.pop() else {
            return Ok(None);
        };
        if latest.status == model::RotationStatus::Succeeded
            || self
                .store
                .load_version(record.meta.id, &latest.token)
                .await?
                .is_some()
        {
            return Ok(None);
        }
        Ok(Some(latest.token))
    }

    /// A manual change of `AWSCURRENT` counts as a rotation: the next one is due a
    /// full interval later.
    async fn rotated_by_hand(&self, secret: &crate::cache::Identity) -> Result<()> {
        let record = self.resolve(&secret.name).await?;
        if !record.meta.rotation.enabled {
            return Ok(());
        }
        let mut meta = record.meta.rotation.clone();
        let now = self.clock.now();
        meta.last_rotated = Some(now);
        crate::rotation::reschedule(&mut meta, now, now)?;
        self.set_rotation(&record, meta).await
    }

    /// `GetRandomPassword`.
    pub fn random_password(&self, spec: &PasswordSpec) -> Result<String> {
        rotor_crypto::random::password(spec)
    }

    /// Removes secrets whose recovery window has passed. Returns how many went.
    pub async fn purge_due(&self) -> Result<usize> {
        let now = self.clock.now();
        let due: Vec<SecretMeta> = self
            .store
            .list(&Listing::deletion_due(now))
            .await?
            .into_iter()
            .map(|s| s.meta)
            .collect();
        for meta in &due {
            let r = self
                .store
                .apply(Mutation::Purge { secret: meta.id }, now)
                .await;
            self.cache.invalidate(&meta.name, &meta.arn);
            if let Err(e) = r
                && e.kind != ErrorKind::ResourceNotFound
            {
                return Err(e);
            }
        }
        Ok(due.len())
    }
}

impl SecretService {
    /// Deletes outbox events older than `retention`, in batches of [`PRUNE_BATCH`],
    /// keeping what subscriptions have not delivered, each consumer's latest
    /// acknowledgement and the newest event (see [`Mutation::PruneEvents`]).
    pub async fn prune_events(&self, retention: chrono::Duration) -> Result<()> {
        let now = self.clock.now();
        self.store
            .apply(
                Mutation::PruneEvents {
                    older_than: now - retention,
                    limit: PRUNE_BATCH,
                },
                now,
            )
            .await
            .map(|_| ())
    }
}

/// Outbox events deleted at once by [`SecretService::prune_events`], so that pruning
/// a large backlog never holds the writer long.
pub const PRUNE_BATCH: i64 = 10_000;

/// Checks one label given by a client (after alias resolution where the API allows it).
pub fn check_label(label_name: &str) -> Result<()> {
    label::validate_label(label_name)
}

/// Replication: planned by [`replication::Planner`], applied here, where the caches
/// its writes invalidate live.
impl SecretService {
    /// The replication rules (loaded once, then after each change made here).
    pub(crate) async fn rule_set(&self) -> Result<Arc<Vec<replication::Rule>>> {
        if let Some(rules) = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(rules);
        }
        let rows = self.store().rules().await?;
        let rules = Arc::new(
            rows.iter()
                .map(replication::Rule::from_row)
                .collect::<Result<Vec<_>>>()?,
        );
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Some(rules.clone());
        Ok(rules)
    }

    fn forget_rules(&self) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.identities.clear();
        self.cache.clear();
    }

    /// Forgets cached records of destinations just written.
    fn forget_replicas(&self, names: &[String]) {
        if !names.is_empty() {
            self.cache.clear();
        }
    }

    fn replication(&self) -> replication::Planner<'_> {
        replication::Planner::new(self)
    }

    /// Adds a replication rule and replicates its sources at once. Needs `read` on
    /// each source named outright, and `share` on the destination (on every name
    /// under a destination prefix). Secrets under a source prefix are authorized one
    /// by one whenever they are copied.
    pub async fn add_rule(
        &self,
        caller: &Caller,
        spec: replication::RuleSpec,
    ) -> Result<(replication::RuleInfo, Vec<replication::Repair>)> {
        let rule = replication::Rule::new(
            &spec.name,
            spec.kind,
            spec.source.as_deref(),
            &spec.destination,
            spec.template.as_deref(),
        )?;
        let mut rule = rule;
        rule.owner = caller.name().to_string();
        for source in rule.sources() {
            if !replication::is_prefix(&source) {
                caller.authorize(Capability::Read, &source)?;
            }
        }
        replication::authorize_all(caller, Capability::Share, &rule.destination)?;
        let existing = self.rule_set().await?;
        replication::check_new(&rule, &existing)?;
        let row = rotor_store::RuleRow {
            name: rule.name.clone(),
            kind: match rule.kind {
                replication::Kind::Copy => "copy".into(),
                replication::Kind::Merge => "merge".into(),
            },
            source: rule.source.clone(),
            destination: rule.destination.clone(),
            template: rule.template_text.clone(),
            created: self.now(),
            created_by: caller.name().to_string(),
        };
        let result = self
            .store()
            .apply(Mutation::PutRule { rule: row.clone() }, self.now())
            .await;
        self.forget_rules();
        result?;
        let repairs = self.sync_rule(&rule).await?;
        Ok((replication::info(&rule, &row), repairs))
    }

    /// Rules whose destination the caller may describe.
    pub async fn list_rules(&self, caller: &Caller) -> Result<Vec<replication::RuleInfo>> {
        let rows = self.store().rules().await?;
        let mut out = Vec::new();
        for row in &rows {
            let rule = replication::Rule::from_row(row)?;
            if replication::may_all(caller, Capability::Describe, &rule.destination) {
                out.push(replication::info(&rule, row));
            }
        }
        Ok(out)
    }

    /// One rule.
    pub async fn rule(&self, caller: &Caller, name: &str) -> Result<replication::RuleInfo> {
        let rows = self.store().rules().await?;
        let row = rows
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| Error::not_found(format!("No replication rule named {name} exists")))?;
        let rule = replication::Rule::from_row(row)?;
        replication::authorize_all(caller, Capability::Describe, &rule.destination)?;
        Ok(replication::info(&rule, row))
    }

    /// Removes a rule; its destinations stay, writable again. Needs `share` on the
    /// destination.
    pub async fn remove_rule(&self, caller: &Caller, name: &str) -> Result<()> {
        let rule = self.rule(caller, name).await?;
        replication::authorize_all(caller, Capability::Share, &rule.destination)?;
        let result = self
            .store()
            .apply(
                Mutation::DeleteRule {
                    name: name.to_string(),
                },
                self.now(),
            )
            .await;
        self.forget_rules();
        result.map(|_| ())
    }

    /// Brings every destination the caller may `share` back in step with its
    /// sources. Returns what it repaired.
    pub async fn sync_replicas(&self, caller: &Caller) -> Result<Vec<replication::Repair>> {
        self.forget_rules();
        let rules = self.rule_set().await?;
        let mut repairs = Vec::new();
        for rule in rules.iter() {
            if replication::may_all(caller, Capability::Share, &rule.destination) {
                repairs.extend(self.sync_rule(rule).await?);
            }
        }
        Ok(repairs)
    }

    /// Repairs one rule's destinations, each in one atomic write.
    async fn sync_rule(&self, rule: &replication::Rule) -> Result<Vec<replication::Repair>> {
        let mut repairs = Vec::new();
        for planned in self.replication().repairs(rule).await? {
            let result = self
                .store()
                .apply(Mutation::Atomic(planned.mutations), self.now())
                .await;
            self.forget_replicas(std::slice::from_ref(&planned.destination));
            result?;
            if let Some(version) = planned.version {
                tracing::info!(rule = %rule.name, destination = %planned.destination, %version, "replica repaired");
                repairs.push(replication::Repair {
                    rule: rule.name.clone(),
                    destination: planned.destination,
                    version,
                });
            }
        }
        Ok(repairs)
    }
}

/// The consumer registry (see [`consumers`]).
impl SecretService {
    /// Records that `reg.consumer` uses version `reg.version_id` of `reg.secret`, and
    /// renews its lease. Needs `read` on the secret (what the consumer needed to get
    /// the value); the version must exist, and a consumer id belongs to the principal
    /// that first registered it.
    pub async fn register_consumer(
        &self,
        caller: &Caller,
        reg: &consumers::Registration,
    ) -> Result<consumers::Registered> {
        consumers::validate_consumer(&reg.consumer)?;
        name::validate_version_id(&reg.version_id)?;
        let lease = consumers::validate_lease(reg.lease_secs)?;
        let record = self
            .resolve_for(caller, Capability::Read, &reg.secret)
            .await?;
        if self
            .store()
            .load_version(record.meta.id, &reg.version_id)
            .await?
            .is_none()
        {
            return Err(Error::not_found(format!(
                "Secret {} has no version {}",
                record.meta.name, reg.version_id
            )));
        }
        let before = self
            .store()
            .consumers(&[record.meta.id])
            .await?
            .into_iter()
            .find(|r| r.consumer == reg.consumer);
        if let Some(row) = &before
            && row.principal != caller.name()
        {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "Consumer {} of {} is registered by another principal",
                    reg.consumer, record.meta.name
                ),
            ));
        }
        let now = self.now();
        let expires = now + chrono::Duration::seconds(lease);
        let row = rotor_store::ConsumerRow {
            secret: record.meta.id,
            consumer: reg.consumer.clone(),
            kind: rotor_store::ConsumerKind::Registered,
            version_id: reg.version_id.clone(),
            principal: caller.name().to_string(),
            host: reg.host.clone(),
            first_seen: now,
            last_seen: now,
            expires: Some(expires),
        };
        let mut writes = vec![Mutation::ReportConsumers {
            consumers: vec![row],
        }];
        // An event when it starts using a version, not for every heartbeat.
        let adopted = before
            .is_none_or(|r| r.version_id != reg.version_id || r.expires.is_some_and(|e| e <= now));
        if adopted {
            writes.push(consumers::ack_event(
                &reg.consumer,
                &reg.version_id,
                reg.host.as_deref(),
                &record.meta.name,
            ));
        }
        self.store().apply(Mutation::Atomic(writes), now).await?;
        Ok(consumers::Registered {
            name: record.meta.name.clone(),
            expires,
        })
    }

    /// Consumer `consumer` of `secret_id` leaves (a clean exit): it is gone at once and
    /// blocks nothing. Needs `read` on the secret; only the principal that registered
    /// it can end it. Returns the secret's name.
    pub async fn deregister_consumer(
        &self,
        caller: &Caller,
        secret_id: &str,
        consumer: &str,
    ) -> Result<String> {
        consumers::validate_consumer(consumer)?;
        let record = self
            .resolve_for(caller, Capability::Read, secret_id)
            .await?;
        self.store()
            .apply(
                Mutation::EndConsumer {
                    secret: record.meta.id,
                    consumer: consumer.to_string(),
                    principal: caller.name().to_string(),
                },
                self.now(),
            )
            .await?;
        Ok(record.meta.name.clone())
    }

    /// The consumers of `secret_id` and of its replicas, by version, live and gone.
    /// Needs `describe`.
    pub async fn consumers(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<consumers::Consumers> {
        let record = self
            .resolve_for(caller, Capability::Describe, secret_id)
            .await?;
        self.consumers_of(&record).await
    }

    /// The consumers of `record` and its replicas, for the server's own decisions (a
    /// rotation's gates): not authorized here.
    pub(crate) async fn consumers_of(&self, record: &SecretRecord) -> Result<consumers::Consumers> {
        let mut replicas = Vec::new();
        for rule in self.rule_set().await?.iter() {
            if rule.kind != replication::Kind::Copy {
                continue;
            }
            let Some(destination) = rule.destination_of(&record.meta.name) else {
                continue;
            };
            if let Some(dest) = self
                .store()
                .load(&rotor_store::Lookup::Name(destination.clone()))
                .await?
            {
                replicas.push((dest.meta.id, destination));
            }
        }
        consumers::view(self.store().as_ref(), record, &replicas, self.now()).await
    }

    /// Writes the reads noted since the last call to the registry (see
    /// [`consumers::ReadTracker`]). Returns how many rows it wrote.
    pub async fn flush_reads(&self) -> Result<usize> {
        self.readers.flush(self.store.as_ref(), self.now()).await
    }

    /// Writes the reads noted to the registry every `every`, until the task is
    /// aborted (call [`SecretService::flush_reads`] once more at shutdown).
    pub fn spawn_read_tracking(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.flush_reads().await {
                    tracing::warn!(error = %e, "cannot record readers in the consumer registry");
                }
            }
        })
    }

    /// Forgets consumers gone for more than [`consumers::FORGET_AFTER_HOURS`].
    pub async fn prune_consumers(&self) -> Result<()> {
        let now = self.now();
        let before = now - chrono::Duration::hours(consumers::FORGET_AFTER_HOURS);
        self.store
            .apply(Mutation::PruneConsumers { before }, now)
            .await
            .map(|_| ())
    }
}

//! Subscriptions: what they deliver where, and managing them (`admin` on
//! `sys/subscriptions/NAME`, and `exec` there for a command).

use super::{Events, KEY_AAD, KINDS};
use crate::caller::Caller;
use chrono::{DateTime, Utc};
use rotor_core::policy::Capability;
use rotor_core::{Error, Result};
use rotor_store::{DeliveryRow, Mutation, SealedValue, SubscriptionRow};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Target {
    /// POST each event, signed, to `url`.
    Webhook {
        /// `http://` or `https://`.
        url: String,
        /// Longest a delivery may take.
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
    /// Run `command` with each event on standard input.
    Exec {
        /// The program and its arguments.
        command: Vec<String>,
        /// Longest a run may take; the command is killed after it.
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
}

/// How long a delivery may take unless its subscription says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl Target {
    /// `webhook` or `exec`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Exec { .. } => "exec",
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Target::Webhook { url, .. } => crate::hooks::check_destination(url)?,
            Target::Exec { command, .. } => {
                if command.first().is_none_or(String::is_empty) {
                    return Err(Error::invalid_parameter(
                        "An exec hook needs a command (a list of arguments)",
                    ));
                }
            }
        }
        let ms = match self {
            Target::Webhook { timeout_ms, .. } | Target::Exec { timeout_ms, .. } => *timeout_ms,
        };
        if !(1..=600_000).contains(&ms) {
            return Err(Error::invalid_parameter(
                "timeout_ms must be between 1 and 600000",
            ));
        }
        Ok(())
    }

    pub(super) fn timeout(&self) -> Duration {
        match self {
            Target::Webhook { timeout_ms, .. } | Target::Exec { timeout_ms, .. } => {
                Duration::from_millis(*timeout_ms)
            }
        }
    }
}

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// 1 to 64 letters, digits, `-` or `_`.
    pub name: String,
    /// Secrets whose name starts with this; empty for every secret.
    pub prefix: String,
    /// Event kinds (or families, `rotation.*`); empty for all.
    pub kinds: Vec<String>,
    /// Where to deliver.
    pub target: Target,
    /// Deliver the events after this one; by default only events from now on.
    pub from_seq: Option<i64>,
}

/// A subscription as listings show it (never its signing key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// Name.
    pub name: String,
    /// Path prefix.
    pub prefix: String,
    /// Event kinds; empty for all.
    pub kinds: Vec<String>,
    /// Where it delivers.
    pub target: Target,
    /// Every event up to this one has been delivered or dead-lettered.
    pub cursor: i64,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// The principal that created it, whose view of events it gets.
    pub created_by: String,
}

impl SubscriptionInfo {
    pub(super) fn from_row(row: &SubscriptionRow) -> Result<Self> {
        let target: Target = serde_json::from_str(&row.target)
            .map_err(|_| Error::internal("stored subscription target is not valid"))?;
        if target.kind() != row.target_kind {
            return Err(Error::internal(
                "stored subscription target has the wrong kind",
            ));
        }
        Ok(SubscriptionInfo {
            name: row.name.clone(),
            prefix: row.prefix.clone(),
            kinds: row.kinds.clone(),
            target,
            cursor: row.cursor,
            created: row.created,
            created_by: row.created_by.clone(),
        })
    }

    /// Whether the subscription takes events of `kind`.
    pub(super) fn wants(&self, kind: &str) -> bool {
        self.kinds.is_empty()
            || self.kinds.iter().any(|k| match k.strip_suffix(".*") {
                Some(family) => kind
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => k == kind,
            })
    }
}

fn validate_name(name: &str) -> Result<()> {
    rotor_core::name::validate_identifier("subscription", name, 64, "-_")
}

fn validate_kind(kind: &str) -> Result<()> {
    let known = match kind.strip_suffix(".*") {
        Some(family) => KINDS
            .iter()
            .any(|k| k.split_once('.').is_some_and(|(f, _)| f == family)),
        None => KINDS.contains(&kind),
    };
    if known {
        Ok(())
    } else {
        Err(Error::invalid_parameter(format!(
            "Unknown event kind {kind:?}; one of {}, or a family such as rotation.*",
            KINDS.join(", ")
        )))
    }
}

pub(super) fn admin_path(name: &str) -> String {
    format!("sys/subscriptions/{name}")
}

impl Events {
    pub(super) async fn row(&self, name: &str) -> Result<Option<SubscriptionRow>> {
        Ok(self
            .store()
            .subscriptions()
            .await?
            .into_iter()
            .find(|s| s.name == name))
    }

    fn no_such(name: &str) -> Error {
        Error::not_found(format!("No subscription named {name} exists"))
    }

    /// Creates a subscription owned by `caller`. Returns it, and a webhook's signing
    /// key, shown only this once.
    pub async fn create_subscription(
        &self,
        caller: &Caller,
        req: NewSubscription,
    ) -> Result<(SubscriptionInfo, Option<SecretString>)> {
        validate_name(&req.name)?;
        caller.authorize(Capability::Admin, &admin_path(&req.name))?;
        if let Target::Exec { .. } = req.target {
            // Running a command on the server is a right of its own.
            caller.authorize(Capability::Exec, &admin_path(&req.name))?;
        }
        for kind in &req.kinds {
            validate_kind(kind)?;
        }
        req.target.validate()?;
        let cursor = match req.from_seq {
            Some(seq) if seq < 0 => {
                return Err(Error::invalid_parameter("from_seq must not be negative"));
            }
            Some(seq) => seq,
            None => self.last_seq().await?,
        };
        let (key, shown) = match req.target {
            Target::Webhook { .. } => {
                let key = rotor_crypto::random::token("whk_");
                let sealed = self
                    .service
                    .envelope()
                    .seal(KEY_AAD, &req.name, key.as_bytes())
                    .map_err(|_| Error::internal("encryption failed"))?;
                (
                    Some(SealedValue {
                        ciphertext: sealed.ciphertext,
                        wrapped_key: sealed.wrapped_key,
                        algorithm: sealed.algorithm,
                        key_id: sealed.key_id,
                        digest: Vec::new(),
                    }),
                    Some(SecretString::from(key)),
                )
            }
            Target::Exec { .. } => (None, None),
        };
        let target = serde_json::to_string(&req.target)
            .map_err(|_| Error::internal("subscription target could not be encoded"))?;
        let now = self.service.now();
        let row = SubscriptionRow {
            name: req.name.clone(),
            prefix: req.prefix,
            kinds: req.kinds,
            target_kind: req.target.kind().to_string(),
            target,
            key,
            cursor,
            created: now,
            created_by: caller.name().to_string(),
        };
        let info = SubscriptionInfo::from_row(&row)?;
        self.store()
            .apply(Mutation::PutSubscription { subscription: row }, now)
            .await?;
        self.changes.send_modify(|g| *g += 1);
        tracing::info!(subscription = %info.name, kind = info.target.kind(), "subscription created");
        Ok((info, shown))
    }

    /// Every subscription the caller may manage.
    pub async fn subscriptions(&self, caller: &Caller) -> Result<Vec<SubscriptionInfo>> {
        self.store()
            .subscriptions()
            .await?
            .iter()
            .filter(|s| caller.may(Capability::Admin, &admin_path(&s.name)))
            .map(SubscriptionInfo::from_row)
            .collect()
    }

    /// One subscription.
    pub async fn subscription(&self, caller: &Caller, name: &str) -> Result<SubscriptionInfo> {
        caller.authorize(Capability::Admin, &admin_path(name))?;
        let row = self.row(name).await?.ok_or_else(|| Self::no_such(name))?;
        SubscriptionInfo::from_row(&row)
    }

    /// Removes a subscription and its delivery log; a delivery under way finishes,
    /// but nothing more is delivered.
    pub async fn delete_subscription(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &admin_path(name))?;
        self.store()
            .apply(
                Mutation::DeleteSubscription {
                    name: name.to_string(),
                },
                self.service.now(),
            )
            .await?;
        self.changes.send_modify(|g| *g += 1);
        tracing::info!(subscription = %name, "subscription deleted");
        Ok(())
    }

    /// The last `limit` delivery attempts of a subscription, newest first; only
    /// dead-lettered events with `dead_only`.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        name: &str,
        limit: i64,
        dead_only: bool,
    ) -> Result<Vec<DeliveryRow>> {
        caller.authorize(Capability::Admin, &admin_path(name))?;
        if self.row(name).await?.is_none() {
            return Err(Self::no_such(name));
        }
        let limit = limit.clamp(1, 1000);
        if !dead_only {
            return self.store().deliveries(Some(name), limit).await;
        }
        // The store filters by subscription only: look further back for dead ones.
        let mut dead: Vec<DeliveryRow> = self
            .store()
            .deliveries(Some(name), 100_000)
            .await?
            .into_iter()
            .filter(|d| d.status == "dead")
            .collect();
        dead.truncate(limit as usize);
        Ok(dead)
    }
}

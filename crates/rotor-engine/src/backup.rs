//! What a backup holds and whether it restores: a survey of a store (every secret,
//! every version, every label), written into a backup as its [`Manifest`] and checked
//! again, with every value decrypted, before a backup is trusted.
//!
//! The digest covers each version's identity and the digest of its sealed value, and
//! each label's place, so that a backup whose content changed after it was taken no
//! longer matches its manifest. Values are never read in the clear, except to prove
//! that they open, and never leave this module.

use crate::audit::{Checkpoint, Verdict};
use chrono::{DateTime, Utc};
use rotor_core::label::AWSCURRENT;
use rotor_core::{Error, Result};
use rotor_crypto::{Envelope, SealedRef};
use rotor_store::{Listing, Lookup, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The format a manifest describes.
pub const FORMAT: &str = "rotor-backup-1";

/// What a backup holds, as recorded when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the backup was taken.
    pub taken_at: DateTime<Utc>,
    /// The backend it was taken from.
    pub backend: String,
    /// What it holds.
    pub counts: Counts,
    /// SHA-256 over every version's identity and sealed digest and every label.
    pub digest: String,
    /// The master keys its values are sealed under (ids, never keys).
    pub key_ids: Vec<String>,
    /// The last entry of the audit log the store keeps, if it keeps one.
    pub audit_head: Option<AuditHead>,
}

/// How many of each thing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Secrets, those scheduled for deletion too.
    pub secrets: u64,
    /// Versions, deprecated ones too.
    pub versions: u64,
    /// Labels.
    pub labels: u64,
}

/// The last entry of an audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Its sequence number.
    pub seq: i64,
    /// Its MAC.
    pub mac: String,
}

/// What a survey found.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// What the store holds.
    pub counts: Counts,
    /// The digest a manifest records.
    pub digest: String,
    /// The master keys the values are sealed under.
    pub key_ids: Vec<String>,
    /// The last entry of the store's audit log, if any.
    pub audit_head: Option<AuditHead>,
    /// What is wrong: a value that does not open, a secret without exactly one
    /// `AWSCURRENT`, an audit chain that does not verify. Empty when all is well.
    pub problems: Vec<String>,
}

impl Survey {
    /// The manifest of a backup with this content.
    pub fn manifest(&self, backend: &str, taken_at: DateTime<Utc>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            taken_at,
            backend: backend.into(),
            counts: self.counts,
            digest: self.digest.clone(),
            key_ids: self.key_ids.clone(),
            audit_head: self.audit_head.clone(),
        }
    }

    /// Where this survey and `manifest` disagree.
    pub fn differences(&self, manifest: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        if manifest.format != FORMAT {
            out.push(format!("unknown backup format {:?}", manifest.format));
        }
        if self.counts != manifest.counts {
            out.push(format!(
                "the manifest counts {:?}, the backup holds {:?}",
                manifest.counts, self.counts
            ));
        }
        if self.digest != manifest.digest {
            out.push("the backup's content does not match its manifest's digest".into());
        }
        if self.audit_head != manifest.audit_head {
            out.push("the audit chain's last entry is not the one the manifest records".into());
        }
        out
    }
}

/// Surveys `store`: counts, digest, key ids, and the invariants every store keeps.
/// With `envelope`, every version is decrypted too (and the audit chain verified):
/// what proves a backup restores. `progress` hears how many secrets of how many are
/// done, after each.
pub async fn survey(
    store: &dyn Store,
    envelope: Option<&Envelope>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Survey> {
    let mut survey = Survey::default();
    let mut digest = rotor_crypto::sha256_stream();
    let mut key_ids = BTreeSet::new();
    let secrets = store.list(&Listing::all()).await?;
    let total = secrets.len() as u64;
    for (done, summary) in secrets.into_iter().enumerate() {
        progress(done as u64, total);
        let name = summary.meta.name.clone();
        let Some(record) = store.load(&Lookup::Name(name.clone())).await? else {
            survey
                .problems
                .push(format!("{name}: listed but cannot be loaded"));
            continue;
        };
        survey.counts.secrets += 1;
        let versions = store.list_versions(record.meta.id).await?;
        let mut current = 0;
        for meta in &versions {
            let Some(version) = store.load_version(record.meta.id, &meta.id).await? else {
                survey
                    .problems
                    .push(format!("{name}: version {} cannot be loaded", meta.id));
                continue;
            };
            survey.counts.versions += 1;
            survey.counts.labels += version.labels.len() as u64;
            current += version.labels.iter().filter(|l| *l == AWSCURRENT).count();
            key_ids.insert(version.sealed.key_id.clone());
            let mut labels = version.labels.clone();
            labels.sort();
            digest.update(
                format!(
                    "{name}\t{}\t{}\t{}\n",
                    version.id,
                    hex::encode(&version.sealed.digest),
                    labels.join(",")
                )
                .as_bytes(),
            );
            if let Some(envelope) = envelope {
                let sealed = &version.sealed;
                let opened = envelope.open_parts(
                    &record.meta.arn,
                    &version.id,
                    SealedRef {
                        ciphertext: &sealed.ciphertext,
                        wrapped_key: &sealed.wrapped_key,
                        algorithm: &sealed.algorithm,
                        key_id: &sealed.key_id,
                    },
                );
                if opened.is_err() {
                    survey.problems.push(format!(
                        "{name}: version {} does not decrypt with this master key",
                        version.id
                    ));
                }
            }
        }
        if !versions.is_empty() && current != 1 {
            survey.problems.push(format!(
                "{name}: {current} versions carry AWSCURRENT, where one must"
            ));
        }
    }
    progress(total, total);
    survey.digest = hex::encode(digest.finish());
    survey.key_ids = key_ids.into_iter().collect();
    let entries = store.audit_entries(0).await?;
    if let Some((seq, line)) = entries.last() {
        let mac = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["mac"].as_str().map(str::to_string))
            .unwrap_or_default();
        survey.audit_head = Some(AuditHead { seq: *seq, mac });
        if let Some(envelope) = envelope {
            let text: String = entries.iter().map(|(_, l)| format!("{l}\n")).collect();
            let head = survey.audit_head.clone().map(|h| Checkpoint {
                first: entries[0].0,
                seq: h.seq,
                mac: h.mac,
            });
            if let Verdict::Broken { line, reason } = crate::audit::verify(envelope, &text, head) {
                survey.problems.push(format!(
                    "the audit log kept in the store breaks at line {line}: {reason}"
                ));
            }
        }
    }
    Ok(survey)
}

/// A manifest from its JSON.
pub fn parse_manifest(text: &str) -> Result<Manifest> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid_request(format!("the backup's manifest is unreadable: {e}")))
}

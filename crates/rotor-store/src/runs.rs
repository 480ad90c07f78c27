//! What both backends' group commit shares about a run of puts: the state of each
//! secret the run touches, read once and changed in memory, and the decision of every
//! put in arrival order (so each outcome is what the puts would give one after
//! another), before anything is written.

use crate::errors::refuse_if_deleted_date;
use crate::{NewVersion, Outcome};
use chrono::{DateTime, Utc};
use rotor_core::label::LabelBoard;
use rotor_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};

/// One put of a run.
pub(crate) struct Put {
    pub(crate) secret: i64,
    pub(crate) version: NewVersion,
    pub(crate) now: DateTime<Utc>,
}

/// What a run knows of one of its secrets.
pub(crate) struct SecretState {
    pub(crate) name: String,
    pub(crate) deletion_date: Option<i64>,
    pub(crate) rotates: bool,
    pub(crate) next_seq: i64,
    pub(crate) count: i64,
    pub(crate) oldest: Option<i64>,
    /// The labels as stored, and as the run leaves them.
    pub(crate) before: LabelBoard,
    pub(crate) board: LabelBoard,
    /// When the run last changed the secret, if it did.
    pub(crate) last_changed: Option<DateTime<Utc>>,
}

/// Existing versions' digests by secret and version id.
pub(crate) type Digests = HashMap<(i64, String), Vec<u8>>;

/// Decides each put in order against `states` and `digests` (both updated): its
/// outcome, and the accepted puts with the sequence number each takes.
pub(crate) fn decide<'a>(
    puts: &'a [Put],
    states: &mut BTreeMap<i64, SecretState>,
    digests: &mut Digests,
) -> (Vec<Result<Outcome>>, Vec<(&'a Put, i64)>) {
    let mut results = Vec::with_capacity(puts.len());
    let mut accepted = Vec::new();
    for put in puts {
        let Some(state) = states.get_mut(&put.secret) else {
            results.push(Err(Error::not_found(
                "Secrets Manager can't find the specified secret.",
            )));
            continue;
        };
        if let Err(e) = refuse_if_deleted_date(state.deletion_date) {
            results.push(Err(e));
            continue;
        }
        let id = &put.version.id;
        if let Some(digest) = digests.get(&(put.secret, id.clone())) {
            results.push(if *digest == put.version.sealed.digest {
                Ok(Outcome::Version {
                    labels: state.board.labels_of(id),
                    replayed: true,
                    rotates: state.rotates,
                })
            } else {
                Err(Error::exists(format!(
                    "A version with ClientRequestToken {id} already exists with a different value; \
                     you can't modify an existing version, only create a new one"
                )))
            });
            continue;
        }
        let mut next = state.board.clone();
        if let Err(e) = next.put_version(id, &put.version.stages) {
            results.push(Err(e));
            continue;
        }
        state.board = next;
        state.next_seq += 1;
        state.count += 1;
        state.last_changed = Some(put.now);
        digests.insert((put.secret, id.clone()), put.version.sealed.digest.clone());
        accepted.push((put, state.next_seq));
        results.push(Ok(Outcome::Version {
            labels: state.board.labels_of(id),
            replayed: false,
            rotates: state.rotates,
        }));
    }
    (results, accepted)
}

/// The events an accepted put appends: `version.put`, and `replication.applied` when
/// it is a replica's copy, with the same detail.
pub(crate) fn events<'a>(
    put: &Put,
    state: &'a SecretState,
) -> Vec<(&'static str, &'a str, serde_json::Value)> {
    let source: Option<serde_json::Value> = put
        .version
        .source
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let labels = state.board.labels_of(&put.version.id);
    let replica = source.is_some();
    let detail = serde_json::json!({"version": put.version.id, "labels": labels, "source": source});
    let mut out = vec![("version.put", state.name.as_str(), detail.clone())];
    if replica {
        out.push(("replication.applied", state.name.as_str(), detail));
    }
    out
}

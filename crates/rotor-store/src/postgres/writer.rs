//! PostgreSQL's write path: each mutation in a transaction of its own ([`Change`],
//! which also buffers the events it appends until just before the commit), run again
//! from the start after a deadlock or serialization failure ([`Abort::Conflict`]), up
//! to [`MAX_ATTEMPTS`] times with a growing, jittered [`backoff`]; then the feed moves
//! on to the events committed.

use super::apply::apply;
use super::{MAX_ATTEMPTS, PgStore, db_error, events, shutting_down};
use crate::{Mutation, Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::{Error, Result};
use sqlx::Transaction;
use sqlx::postgres::{PgConnection, Postgres};
use std::time::Duration;

/// Why a mutation's transaction ends without committing.
#[derive(Debug)]
pub(crate) enum Abort {
    /// Another transaction got in the way (PostgreSQL rolled this one back to break a
    /// deadlock, or for a serialization failure): running the mutation again from the
    /// start may succeed.
    Conflict,
    /// The answer to give the caller: the mutation is refused, or the store failed.
    Refuse(Error),
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Refuse(e)
    }
}

/// The result of a step of a mutation.
pub(crate) type Tx<T> = std::result::Result<T, Abort>;

/// SQLSTATEs after which PostgreSQL has rolled the transaction back and running it
/// again is safe: `serialization_failure`, `deadlock_detected`.
const RETRYABLE: [&str; 2] = ["40001", "40P01"];

pub(super) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A database error inside a mutation: a conflict to retry, or a failure.
pub(crate) fn db(e: sqlx::Error) -> Abort {
    if sqlstate(&e).is_some_and(|code| RETRYABLE.contains(&code.as_str())) {
        tracing::debug!(error = %e, "transaction conflict");
        return Abort::Conflict;
    }
    Abort::Refuse(db_error(e))
}

/// A `ResourceExists` from a unique constraint, with a message that names the thing.
pub(crate) fn taken(a: Abort, what: impl FnOnce() -> String) -> Abort {
    match a {
        Abort::Refuse(e) if e.kind == rotor_core::ErrorKind::ResourceExists => {
            Abort::Refuse(Error::exists(what()))
        }
        other => other,
    }
}

/// One mutation's transaction, with the events it appends: they are numbered and
/// written just before the commit, so that the event counter stays locked briefly.
pub(crate) struct Change {
    pub(super) tx: Transaction<'static, Postgres>,
    pub(super) events: Vec<events::Pending>,
}

impl Change {
    /// The transaction's connection.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Appends an event, written with the transaction.
    pub(crate) fn emit(
        &mut self,
        now: DateTime<Utc>,
        kind: &str,
        secret: Option<&str>,
        detail: serde_json::Value,
    ) {
        self.events.push(events::Pending {
            at: millis(now),
            kind: kind.to_string(),
            secret: secret.map(str::to_string),
            detail: detail.to_string(),
        });
    }
}

/// A short wait before trying again, growing with `attempt`, with jitter so that two
/// nodes that collided do not collide again in step.
pub(super) fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let jitter = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 5;
    Duration::from_millis((2u64 << attempt.min(6)) + jitter)
}

impl PgStore {
    /// Runs `mutation` in a transaction of its own, again from the start after a
    /// conflict, and moves the feed on to the events it committed.
    pub(super) async fn apply_mutation(
        &self,
        mutation: Mutation,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let mut attempt = 0;
        loop {
            if self.pool.is_closed() {
                return Err(shutting_down());
            }
            attempt += 1;
            match self.attempt(&mutation, now).await {
                Ok((outcome, last)) => {
                    if let Some(seq) = last {
                        events::advance(&self.feed, seq);
                    }
                    return Ok(outcome);
                }
                Err(Abort::Refuse(e)) => return Err(e),
                Err(Abort::Conflict) if attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(Abort::Conflict) => {
                    tracing::warn!(attempts = attempt, "mutation kept conflicting; giving up");
                    return Err(Error::internal(
                        "The store is too busy to complete the request; try again",
                    ));
                }
            }
        }
    }

    /// One try: the outcome and the last event number committed, if any.
    async fn attempt(&self, mutation: &Mutation, now: DateTime<Utc>) -> Tx<(Outcome, Option<i64>)> {
        let tx = self.pool.begin().await.map_err(db)?;
        let mut change = Change {
            tx,
            events: Vec::new(),
        };
        let done = async {
            let outcome = apply(&mut change, mutation.clone(), now).await?;
            let last = events::flush(&mut change).await?;
            Ok::<_, Abort>((outcome, last))
        }
        .await;
        match done {
            Ok(done) => {
                change.tx.commit().await.map_err(db)?;
                Ok(done)
            }
            Err(e) => {
                // Explicitly, so that the locks are gone before a retry or the answer.
                let _ = change.tx.rollback().await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_and_stays_short() {
        assert!(backoff(1) < backoff(5));
        assert!(backoff(100) <= std::time::Duration::from_millis(132));
    }
}

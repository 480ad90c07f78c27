//! PostgreSQL's write path, with group commit: mutations queue in [`Lanes`] (a
//! secret's always in the same one); a lane takes every mutation waiting and runs them
//! in one transaction ([`Change`], which also buffers the events they append until
//! just before the commit), a run of puts applied together and any other mutation
//! alone, each in a savepoint, so a batch costs a few statements, one WAL flush and
//! one turn at the event counter, and a refused mutation rolls back alone. A mutation
//! that meets a deadlock or serialization failure ([`Abort::Conflict`]) runs again in
//! the next batch, up to [`MAX_ATTEMPTS`] times, after a growing, jittered
//! [`backoff`]; callers hear back once the batch has committed and the feed has moved
//! on to its events.

use super::apply::{apply, secrets_of};
use super::puts;
use super::{MAX_ATTEMPTS, MAX_BATCH, PgStore, db_error, events, shutting_down};
use crate::{Mutation, Outcome, millis};
use chrono::{DateTime, Utc};
use rotor_core::{Error, Result};
use sqlx::Transaction;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

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

/// A batch's transaction, with the events its mutations append: they are numbered
/// and written with the batch's last statement before the commit (the flush, or a run
/// of puts' own write), so that the event counter stays locked briefly.
pub(crate) struct Change {
    pub(super) tx: Transaction<'static, Postgres>,
    pub(super) events: Vec<events::Pending>,
    /// Whether a statement may number and write the events appended so far itself
    /// (saving the batch a round trip while its rows are locked): only when the batch
    /// is one unit, with no savepoint to roll them back to.
    pub(super) events_inline: bool,
    /// The last event number a statement of the batch wrote, that way.
    pub(super) written: Option<i64>,
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

/// A mutation waiting for its lane, and who waits for its outcome.
pub(super) struct Job {
    pub(super) mutation: Mutation,
    pub(super) now: DateTime<Utc>,
    /// Transactions it has been in that ended in a conflict.
    conflicts: u32,
    pub(super) reply: oneshot::Sender<Result<Outcome>>,
}

impl Job {
    /// `mutation`, made at `now`, and where its outcome will be awaited.
    pub(super) fn new(
        mutation: Mutation,
        now: DateTime<Utc>,
    ) -> (Job, oneshot::Receiver<Result<Outcome>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            mutation,
            now,
            conflicts: 0,
            reply,
        };
        (job, answer)
    }
}

/// The lanes mutations are committed through: a task each, with a queue. A secret's
/// mutations always take the same lane ([`lane_of`]), so lanes of one node never wait
/// for each other's row locks, only for the event counter at commit.
pub(super) struct Lanes {
    queues: std::sync::RwLock<Option<Arc<[mpsc::Sender<Job>]>>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The lanes' own connections.
    pool: PgPool,
}

impl Lanes {
    /// Starts `count` lanes committing through `pool` (theirs alone) and moving
    /// `feed` on.
    pub(super) fn start(pool: &PgPool, feed: &Arc<watch::Sender<i64>>, count: usize) -> Lanes {
        let mut queues = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
            queues.push(tx);
            tasks.push(tokio::spawn(lane(pool.clone(), feed.clone(), rx)));
        }
        Lanes {
            queues: std::sync::RwLock::new(Some(queues.into())),
            tasks: std::sync::Mutex::new(tasks),
            pool: pool.clone(),
        }
    }

    /// Takes no more mutations, and waits for the lanes to commit those queued.
    pub(super) async fn stop(&self) {
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        self.pool.close().await;
    }

    /// Ends the lanes at once (the store is dropped without being closed).
    pub(super) fn abort(&self) {
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            task.abort();
        }
    }
}

/// The lane of a mutation: by the lowest secret it locks, so that one secret's
/// changes queue behind each other in one lane; the others all in lane 0.
fn lane_of(mutation: &Mutation, lanes: usize) -> usize {
    let mut ids = Vec::new();
    secrets_of(mutation, &mut ids);
    ids.iter()
        .min()
        .map_or(0, |id| id.rem_euclid(lanes as i64) as usize)
}

impl Lanes {
    /// Hands `job` to its lane (or answers it, once the lanes have stopped).
    pub(super) async fn submit(&self, job: Job) {
        let queues = self
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(queues) = queues else {
            let _ = job.reply.send(Err(shutting_down()));
            return;
        };
        let queue = &queues[lane_of(&job.mutation, queues.len())];
        if let Err(mpsc::error::SendError(job)) = queue.send(job).await {
            let _ = job.reply.send(Err(shutting_down()));
        }
        // The queues are held no longer than the send: a lane ends once every sender
        // is gone.
    }
}

impl PgStore {
    /// Hands `mutation` to its lane, or a put to the writer node when another node is
    /// it ([`super::forward`]), and waits until it is committed, or refused.
    pub(super) async fn apply_mutation(
        &self,
        mutation: Mutation,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let (job, answer) = Job::new(mutation, now);
        match &self.forward {
            Some(forward) if matches!(job.mutation, Mutation::PutVersion { .. }) => {
                forward.submit(job).await
            }
            _ => self.lanes.submit(job).await,
        }
        answer.await.map_err(|_| shutting_down())?
    }
}

/// A lane: takes every job waiting (up to [`MAX_BATCH`]) and commits them together in
/// one transaction (group commit: one WAL flush and one turn at the event counter for
/// the lot), each unit in a savepoint of its own so that a refused one rolls back
/// alone. Jobs that met a conflict go first into the next batch, after a short wait.
/// When the last batch waited for its locks (other nodes were writing the same
/// secrets), the next one waits up to [`GATHER`] for as many more jobs as that one
/// carried.
async fn lane(pool: PgPool, feed: Arc<watch::Sender<i64>>, mut queue: mpsc::Receiver<Job>) {
    let mut again: Vec<Job> = Vec::new();
    let mut last_size = 0;
    let mut locked_in = Duration::ZERO;
    loop {
        let mut batch = std::mem::take(&mut again);
        if batch.is_empty() {
            match queue.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if last_size > 1 && locked_in >= CONTENDED {
            // Other nodes hold the rows: this batch would wait for them anyway, and
            // the writers of the last one are about to send their next writes. A
            // moment's wait for them makes the batches, which take turns at the rows
            // with the other nodes', bigger and fewer.
            let target = (batch.len() + last_size).min(MAX_BATCH);
            let deadline = tokio::time::Instant::now() + GATHER;
            while batch.len() < target {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(job)) => batch.push(job),
                    _ => break,
                }
            }
        }
        last_size = batch.len();
        let (started, size) = (std::time::Instant::now(), batch.len());
        again = commit_batch(&pool, &feed, batch, &mut locked_in).await;
        crate::record_commit("postgres", size, started);
        if let Some(worst) = again.iter().map(|j| j.conflicts).max() {
            tokio::time::sleep(backoff(worst)).await;
        }
    }
}

/// How long a batch waits for more writes when its rows are contended.
const GATHER: Duration = Duration::from_millis(1);

/// How long taking a batch's locks has to take to count as contended (uncontended,
/// it is one round trip: a fraction of a millisecond).
const CONTENDED: Duration = Duration::from_micros(500);

/// What became of one job in a batch.
enum Done {
    /// Applied in the transaction: answered once it commits.
    Applied(Job, Outcome),
    /// Refused: answered whatever becomes of the transaction.
    Refused(Job, Error),
}

/// Runs `batch` in one transaction. Returns the jobs to run again (conflicts).
async fn commit_batch(
    pool: &PgPool,
    feed: &watch::Sender<i64>,
    batch: Vec<Job>,
    locked_in: &mut Duration,
) -> Vec<Job> {
    let begun = std::time::Instant::now();
    let tx = pool.begin_with(begin_and_lock(&batch)).await;
    *locked_in = begun.elapsed();
    let tx = match tx {
        Ok(tx) => tx,
        Err(e) => return settle(batch, db(e)),
    };
    let units = units(batch);
    // A unit alone needs no savepoint: its transaction is its own.
    let savepoints = units.len() > 1;
    let mut change = Change {
        tx,
        events: Vec::new(),
        events_inline: !savepoints,
        written: None,
    };
    let mut done = Vec::new();
    let mut again = Vec::new();
    let mut rest = units.into_iter();
    while let Some(unit) = rest.next() {
        let mark = change.events.len();
        let tried = async {
            if savepoints {
                statement(&mut change, "SAVEPOINT unit").await?;
            }
            match puts_of(&unit) {
                Some(run) => puts::apply_run(&mut change, &run).await,
                None => {
                    let job = &unit[0];
                    let outcome = apply(&mut change, job.mutation.clone(), job.now).await?;
                    Ok(vec![Ok(outcome)])
                }
            }
        }
        .await;
        let boundary = match tried {
            Ok(results) => {
                for (job, result) in unit.into_iter().zip(results) {
                    done.push(match result {
                        Ok(outcome) => Done::Applied(job, outcome),
                        Err(e) => Done::Refused(job, e),
                    });
                }
                "RELEASE unit"
            }
            Err(failed) => {
                change.events.truncate(mark);
                if !savepoints {
                    let _ = change.tx.rollback().await;
                    return settle(unit, failed);
                }
                match failed {
                    Abort::Refuse(e) => {
                        done.extend(unit.into_iter().map(|job| Done::Refused(job, e.clone())))
                    }
                    Abort::Conflict => again.extend(unit.into_iter().map(|mut job| {
                        job.conflicts += 1;
                        job
                    })),
                }
                "ROLLBACK TO unit; RELEASE unit"
            }
        };
        if savepoints && let Err(e) = statement(&mut change, boundary).await {
            // The transaction is in an unknown state: none of it stands.
            let _ = change.tx.rollback().await;
            let mut left = undo(done);
            left.extend(rest.flatten());
            let mut retry = settle(left, e);
            retry.extend(again);
            return retry;
        }
    }
    let committed = async {
        let last = events::flush(&mut change).await?.or(change.written);
        change.tx.commit().await.map_err(db)?;
        Ok::<_, Abort>(last)
    }
    .await;
    match committed {
        Ok(last) => {
            // Watchers wait on the last committed event: moved before anyone hears
            // back, so the feed never trails an acknowledged write.
            if let Some(seq) = last {
                events::advance(feed, seq);
            }
            for d in done {
                match d {
                    Done::Applied(job, outcome) => {
                        let _ = job.reply.send(Ok(outcome));
                    }
                    Done::Refused(job, e) => {
                        let _ = job.reply.send(Err(e));
                    }
                }
            }
            again
        }
        Err(e) => {
            let mut retry = settle(undo(done), e);
            retry.extend(again);
            retry
        }
    }
}

/// A batch in the units its savepoints cover: each run of consecutive puts together
/// (applied as one, [`puts::apply_run`]), any other mutation alone.
fn units(batch: Vec<Job>) -> Vec<Vec<Job>> {
    let mut units: Vec<Vec<Job>> = Vec::new();
    let is_put = |job: &Job| matches!(job.mutation, Mutation::PutVersion { .. });
    for job in batch {
        match units.last_mut() {
            Some(run) if is_put(&job) && run.iter().all(is_put) => run.push(job),
            _ => units.push(vec![job]),
        }
    }
    units
}

/// The puts of a unit that is a run of puts.
fn puts_of(unit: &[Job]) -> Option<Vec<puts::Put>> {
    unit.iter()
        .map(|job| match &job.mutation {
            Mutation::PutVersion { secret, version } => Some(puts::Put {
                secret: *secret,
                version: version.clone(),
                now: job.now,
            }),
            _ => None,
        })
        .collect()
}

/// One statement of the batch's own (a savepoint's start or end).
async fn statement(change: &mut Change, sql: &'static str) -> Tx<()> {
    sqlx::raw_sql(sql)
        .execute(change.conn())
        .await
        .map(|_| ())
        .map_err(db)
}

/// The statement that opens a batch's transaction and, in the same round trip, locks
/// every secret the batch changes, in id order, before any job runs: batches of other
/// lanes and nodes then wait for each other instead of deadlocking, and each of the
/// batch's statements after it sees what the previous holder of a lock committed.
/// (Sent as a simple query, which takes no parameters: the ids are integers.)
fn begin_and_lock(batch: &[Job]) -> sqlx::AssertSqlSafe<String> {
    let mut ids = Vec::new();
    batch.iter().for_each(|j| secrets_of(&j.mutation, &mut ids));
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return sqlx::AssertSqlSafe("BEGIN".into());
    }
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    sqlx::AssertSqlSafe(format!(
        "BEGIN; SELECT id FROM secrets WHERE id IN ({}) ORDER BY id FOR UPDATE",
        ids.join(", ")
    ))
}

/// The jobs of a transaction that did not commit: the refused ones are answered (their
/// refusal stands), the applied ones are to be settled again.
fn undo(done: Vec<Done>) -> Vec<Job> {
    let mut rest = Vec::new();
    for d in done {
        match d {
            Done::Applied(job, _) => rest.push(job),
            Done::Refused(job, e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    rest
}

/// Jobs whose transaction ended with `failed`: after a conflict they run again
/// (returned), up to [`MAX_ATTEMPTS`] transactions each; otherwise they are answered
/// with the failure.
fn settle(jobs: Vec<Job>, failed: Abort) -> Vec<Job> {
    match failed {
        Abort::Refuse(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
            Vec::new()
        }
        Abort::Conflict => {
            let mut again = Vec::new();
            for mut job in jobs {
                job.conflicts += 1;
                if job.conflicts < MAX_ATTEMPTS {
                    again.push(job);
                } else {
                    tracing::warn!(
                        attempts = job.conflicts,
                        "mutation kept conflicting; giving up"
                    );
                    let _ = job.reply.send(Err(Error::internal(
                        "The store is too busy to complete the request; try again",
                    )));
                }
            }
            again
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

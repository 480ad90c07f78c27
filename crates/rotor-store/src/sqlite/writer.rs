//! The SQLite write path: one writer task, on a thread of its own, owns the only
//! writing connection. It takes every job waiting in its queue (up to [`MAX_BATCH`]),
//! groups consecutive puts into one unit, runs each unit in a savepoint of one
//! `BEGIN IMMEDIATE` transaction, commits once, moves the event feed on, and only then
//! answers each caller (group commit).

use super::apply::apply;
use super::{MAX_BATCH, events, migrate, puts};
use crate::errors::db_error;
use crate::{Mutation, Outcome};
use chrono::{DateTime, Utc};
use rotor_core::{Error, Result};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// What the writer is asked to do.
pub(super) enum Job {
    Apply {
        // Boxed: mutations are large, and the queue holds many jobs.
        mutation: Box<Mutation>,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Result<Outcome>>,
    },
    Close(oneshot::Sender<()>),
}

/// Hands `mutation` to the writer and waits until it is committed, or refused.
pub(super) async fn submit(
    writer: &mpsc::Sender<Job>,
    mutation: Mutation,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let (reply, answer) = oneshot::channel();
    writer
        .send(Job::Apply {
            mutation: Box::new(mutation),
            now,
            reply,
        })
        .await
        .map_err(|_| Error::internal("The store is shutting down"))?;
    answer
        .await
        .map_err(|_| Error::internal("The store is shutting down"))?
}

/// Asks the writer to finish the jobs ahead of this one and close its connection, and
/// waits for it.
pub(super) async fn stop(writer: &mpsc::Sender<Job>) {
    let (done, wait) = oneshot::channel();
    if writer.send(Job::Close(done)).await.is_ok() {
        let _ = wait.await;
    }
}

/// Starts the writer on a thread of its own with a single-threaded runtime: its many
/// short waits on SQLite then do not queue behind the server's request tasks.
/// Returns once the connection is open and migrated.
pub(super) async fn spawn_writer(
    options: SqliteConnectOptions,
    feed: tokio::sync::watch::Sender<i64>,
) -> Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel(4096);
    let (ready_tx, ready_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("rotor-sqlite-writer".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the writer runtime");
                    let _ = ready_tx.send(Err(Error::internal("cannot start the store's writer")));
                    return;
                }
            };
            runtime.block_on(async move {
                let opened = async {
                    let mut conn = SqliteConnection::connect_with(&options)
                        .await
                        .map_err(db_error)?;
                    migrate(&mut conn).await?;
                    feed.send_replace(events::last(&mut conn).await?);
                    Ok::<_, Error>(conn)
                }
                .await;
                match opened {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        writer_loop(conn, rx, feed).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| Error::internal(format!("cannot start the store's writer thread: {e}")))?;
    ready_rx
        .await
        .map_err(|_| Error::internal("the store's writer stopped while opening"))??;
    Ok(tx)
}

async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    feed: tokio::sync::watch::Sender<i64>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Apply {
                    mutation,
                    now,
                    reply,
                } => batch.push((*mutation, now, reply)),
                Job::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let (started, size) = (std::time::Instant::now(), batch.len());
            run_batch(&mut conn, batch, &feed).await;
            crate::record_commit("sqlite", size, started);
        }
        if let Some(done) = close {
            let _ = conn.close().await;
            let _ = done.send(());
            return;
        }
    }
}

type Pending = (Mutation, DateTime<Utc>, oneshot::Sender<Result<Outcome>>);

/// What one savepoint of a batch covers: a run of consecutive puts, applied together,
/// or any other single mutation.
enum Unit {
    Puts(Vec<(puts::Put, oneshot::Sender<Result<Outcome>>)>),
    One(Box<Pending>),
}

fn units(batch: Vec<Pending>) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    for (mutation, now, reply) in batch {
        match mutation {
            Mutation::PutVersion { secret, version } => {
                let put = (
                    puts::Put {
                        secret,
                        version,
                        now,
                    },
                    reply,
                );
                match units.last_mut() {
                    Some(Unit::Puts(run)) => run.push(put),
                    _ => units.push(Unit::Puts(vec![put])),
                }
            }
            other => units.push(Unit::One(Box::new((other, now, reply)))),
        }
    }
    units
}

async fn run_batch(
    conn: &mut SqliteConnection,
    batch: Vec<Pending>,
    feed: &tokio::sync::watch::Sender<i64>,
) {
    // Each unit runs in its own savepoint, so a failed one rolls back alone. The
    // statement that ends one savepoint also opens the next: one round trip each.
    let units = units(batch);
    let mut done: Vec<(oneshot::Sender<Result<Outcome>>, Result<Outcome>)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<Result<Outcome>>> = Vec::new();
    let begun = sqlx::raw_sql("BEGIN IMMEDIATE; SAVEPOINT unit")
        .execute(&mut *conn)
        .await;
    let mut broken = begun.err().map(db_error);
    let last = units.len().saturating_sub(1);
    for (i, unit) in units.into_iter().enumerate() {
        if broken.is_some() {
            match unit {
                Unit::Puts(run) => waiting.extend(run.into_iter().map(|(_, reply)| reply)),
                Unit::One(one) => waiting.push(one.2),
            }
            continue;
        }
        let kept = match unit {
            Unit::One(one) => {
                let (mutation, now, reply) = *one;
                let result = apply(conn, mutation, now).await;
                let ok = result.is_ok();
                done.push((reply, result));
                ok
            }
            Unit::Puts(run) => {
                let (items, replies): (Vec<_>, Vec<_>) = run.into_iter().unzip();
                match puts::apply_run(conn, &items).await {
                    // Refused puts wrote nothing; the accepted ones are kept.
                    Ok(results) => {
                        done.extend(replies.into_iter().zip(results));
                        true
                    }
                    Err(e) => {
                        done.extend(replies.into_iter().map(|r| (r, Err(e.clone()))));
                        false
                    }
                }
            }
        };
        let boundary = match (kept, i == last) {
            (true, false) => "RELEASE unit; SAVEPOINT unit",
            (false, false) => "ROLLBACK TO unit; RELEASE unit; SAVEPOINT unit",
            (true, true) => "RELEASE unit; COMMIT",
            (false, true) => "ROLLBACK TO unit; RELEASE unit; COMMIT",
        };
        if let Err(e) = sqlx::raw_sql(boundary).execute(&mut *conn).await {
            broken = Some(db_error(e));
        }
    }
    if let Some(err) = broken {
        // The transaction is in an unknown state: roll it all back and fail everyone,
        // including those whose own change had succeeded.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        for reply in done.into_iter().map(|(r, _)| r).chain(waiting) {
            let _ = reply.send(Err(err.clone()));
        }
        return;
    }
    // Watchers wait on the last committed event: moved before anyone hears back,
    // so the feed never trails an acknowledged write.
    if let Ok(seq) = events::last(conn).await {
        feed.send_if_modified(|last| {
            let newer = seq != *last;
            *last = seq;
            newer
        });
    }
    for (reply, result) in done {
        let _ = reply.send(result);
    }
}

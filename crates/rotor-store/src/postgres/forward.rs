//! Write forwarding between nodes sharing one PostgreSQL: puts go to one node, the
//! writer, which commits them in its own batches, so that the nodes' writes share
//! group commits instead of taking turns at the same rows in small ones (each batch
//! costs PostgreSQL about the same whatever it carries).
//!
//! The writer is whoever holds the [`WRITER_LEASE`] (its holder is the node's
//! advertised address); every node configured for forwarding tries to take it every
//! [`ELECT_EVERY`]. A node that is not the writer sends the puts waiting into one
//! request over a TCP connection to it, and hears back once they are committed. Who
//! commits never matters for correctness: every node's transactions lock, check and
//! number events the same way. So when the writer cannot be reached, or the
//! connection breaks with puts unanswered, those puts are committed locally: a put the
//! writer did commit is then a replay (same version id, same value), which changes
//! nothing. Only puts are forwarded: they are the volume, and idempotent.
//!
//! Nodes prove to each other that they hold the same key (derived from the master
//! key) without sending it: each side answers the other's fresh nonce with an
//! HMAC-SHA256, and every frame after that carries an HMAC under a key of that session
//! over its direction, its sequence number and its body. Values travel sealed, as they
//! are stored; the channel is not encrypted, so version ids and labels cross it in
//! clear: listen on a private network.

use super::events;
use super::writer::{Job, Lanes};
use super::{MAX_BATCH, shutting_down};
use crate::{Mutation, NewVersion, Outcome, SealedValue, millis};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use rotor_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The lease whose holder commits the other nodes' puts.
pub const WRITER_LEASE: &str = "writer";

/// How long the writer lease lasts without renewal.
const LEASE_MS: i64 = 3_000;

/// How often each node renews, or tries to take, the writer lease.
const ELECT_EVERY: Duration = Duration::from_millis(1_000);

/// How long a connection to the writer may take to open, handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a connection may stay silent while puts sent on it wait for an answer,
/// before they are committed locally instead.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a writer that could not be reached is not tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The largest frame accepted.
const MAX_FRAME: usize = 16 << 20;

/// What a connection starts with, so that anything else is refused at once.
const MAGIC: &[u8; 8] = b"rotorfw1";

const NONCE: usize = 32;
const TAG: usize = 32;

/// Which way a frame goes: part of what its HMAC covers, so that a frame cannot be
/// sent back to its sender.
const TO_WRITER: u8 = 1;
const FROM_WRITER: u8 = 2;

/// How a node takes part in forwarding.
pub struct ForwardConfig {
    /// Where it listens for other nodes' puts.
    pub listen: SocketAddr,
    /// The address other nodes reach it at (by default, the address it listens on).
    pub advertise: Option<String>,
    /// The key the nodes share (derived from the master key).
    pub key: hmac::Key,
}

impl std::fmt::Debug for ForwardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardConfig")
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

/// What forwarding has done on a node so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Whether this node holds the writer lease.
    pub writer: bool,
    /// Whether this node's puts go to another node, the writer.
    pub forwards: bool,
    /// Puts this node sent to the writer.
    pub sent: u64,
    /// Puts other nodes sent to this one.
    pub received: u64,
    /// Puts sent that were committed locally after all (the writer was unreachable).
    pub fell_back: u64,
}

/// What the node's forwarding tasks share.
struct Shared {
    key: hmac::Key,
    /// The writer's address, when another node is the writer.
    target: RwLock<Option<String>>,
    writer: AtomicBool,
    sent: AtomicU64,
    received: AtomicU64,
    fell_back: AtomicU64,
}

impl Shared {
    fn target(&self) -> Option<String> {
        self.target
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_target(&self, target: Option<String>) {
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = target;
    }
}

/// A node's forwarding: its listener, its election and the queue of puts to send.
pub(super) struct Forward {
    me: String,
    shared: Arc<Shared>,
    lanes: Arc<Lanes>,
    queue: mpsc::Sender<Job>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Forward {
    /// Listens at `config.listen` and starts taking part in the election.
    pub(super) async fn start(
        config: ForwardConfig,
        pool: &PgPool,
        lanes: &Arc<Lanes>,
        feed: &Arc<watch::Sender<i64>>,
    ) -> Result<Forward> {
        if config.listen.ip().is_unspecified() && config.advertise.is_none() {
            return Err(Error::invalid_parameter(format!(
                "Forwarding listens on {}, which other nodes cannot reach by that address: give the address they can (cluster_advertise)",
                config.listen
            )));
        }
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            Error::internal(format!(
                "Cannot listen for forwarded writes on {}: {e}",
                config.listen
            ))
        })?;
        let me = match config.advertise {
            Some(address) => address,
            None => listener
                .local_addr()
                .map_err(|e| Error::internal(format!("Cannot read the forwarding address: {e}")))?
                .to_string(),
        };
        let shared = Arc::new(Shared {
            key: config.key,
            target: RwLock::new(None),
            writer: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            fell_back: AtomicU64::new(0),
        });
        let (queue, waiting) = mpsc::channel(MAX_BATCH * 4);
        let tasks = vec![
            tokio::spawn(serve(listener, shared.clone(), lanes.clone(), feed.clone())),
            tokio::spawn(elect(
                shared.clone(),
                lanes.clone(),
                pool.clone(),
                me.clone(),
            )),
            tokio::spawn(send(shared.clone(), lanes.clone(), feed.clone(), waiting)),
        ];
        tracing::info!(address = %me, "forwarding writes between nodes");
        Ok(Forward {
            me,
            shared,
            lanes: lanes.clone(),
            queue,
            tasks: Mutex::new(tasks),
        })
    }

    /// Hands a put to the writer when another node is it, else to this node's lanes.
    pub(super) async fn submit(&self, job: Job) {
        if self.shared.target().is_none() {
            return self.lanes.submit(job).await;
        }
        if let Err(mpsc::error::SendError(job)) = self.queue.send(job).await {
            self.lanes.submit(job).await;
        }
    }

    pub(super) fn stats(&self) -> ForwardStats {
        let s = &self.shared;
        ForwardStats {
            writer: s.writer.load(Ordering::Relaxed),
            forwards: s.target().is_some(),
            sent: s.sent.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            fell_back: s.fell_back.load(Ordering::Relaxed),
        }
    }

    /// Stops listening, sending and electing, and gives the lease up so that another
    /// node takes over at its next try. Puts still queued here are answered as the
    /// store shutting down; those other nodes sent here are committed by them.
    pub(super) async fn stop(&self) {
        self.abort();
        self.shared.set_target(None);
        let (job, answer) = Job::new(
            Mutation::ReleaseLease {
                name: WRITER_LEASE.into(),
                holder: self.me.clone(),
            },
            Utc::now(),
        );
        self.lanes.submit(job).await;
        let _ = answer.await;
    }

    pub(super) fn abort(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Takes or renews the writer lease every [`ELECT_EVERY`]; when another node holds
/// it, that node's address becomes where puts go.
async fn elect(shared: Arc<Shared>, lanes: Arc<Lanes>, pool: PgPool, me: String) {
    loop {
        let (job, answer) = Job::new(
            Mutation::Lease {
                name: WRITER_LEASE.into(),
                holder: me.clone(),
                ttl_ms: LEASE_MS,
            },
            Utc::now(),
        );
        lanes.submit(job).await;
        let held = matches!(answer.await, Ok(Ok(Outcome::Lease { held: true, .. })));
        let target = if held {
            None
        } else {
            writer(&pool).await.filter(|w| *w != me)
        };
        if shared.writer.swap(held, Ordering::Relaxed) != held {
            tracing::info!(writer = held, "writer lease changed hands");
        }
        shared.set_target(target);
        tokio::time::sleep(ELECT_EVERY).await;
    }
}

/// The address of the node holding the writer lease, if any does.
async fn writer(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar(
        "SELECT holder FROM leases WHERE name = $1
           AND expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint",
    )
    .bind(WRITER_LEASE)
    .fetch_optional(pool)
    .await
    .inspect_err(|e| tracing::debug!(error = %e, "cannot read the writer lease"))
    .ok()
    .flatten()
}

// ---- the sending side ----

/// Sends the puts queued to the writer, all those waiting in one request, without
/// waiting for the answer to the last (the answers come back on the connection's own
/// task, [`answers`]). Puts that cannot be sent are committed locally.
async fn send(
    shared: Arc<Shared>,
    lanes: Arc<Lanes>,
    feed: Arc<watch::Sender<i64>>,
    mut queue: mpsc::Receiver<Job>,
) {
    let mut link: Option<Link> = None;
    let mut unreachable: Option<(String, Instant)> = None;
    // The connections' answer readers: they end with the connection, or with this.
    let mut readers = JoinSet::new();
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        while readers.try_join_next().is_some() {}
        let target = shared.target().filter(
            |t| !matches!(&unreachable, Some((a, until)) if a == t && Instant::now() < *until),
        );
        let Some(address) = target else {
            for job in batch {
                lanes.submit(job).await;
            }
            continue;
        };
        if !link
            .as_ref()
            .is_some_and(|l| l.address == address && !l.closed())
        {
            link = None;
            match tokio::time::timeout(CONNECT_TIMEOUT, connect(&shared.key, &address)).await {
                Ok(Ok((l, read))) => {
                    readers.spawn(answers(
                        read,
                        l.pending.clone(),
                        l.alive.clone(),
                        shared.clone(),
                        lanes.clone(),
                        feed.clone(),
                    ));
                    link = Some(l);
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".into(),
                    };
                    tracing::warn!(writer = %address, error = %why, "cannot reach the writer; committing here");
                    unreachable = Some((address, Instant::now() + RETRY_AFTER));
                    fall_back(&shared, &lanes, batch).await;
                    continue;
                }
            }
        }
        let Some(l) = link.as_mut() else { continue };
        let count = batch.len() as u64;
        match l.send(batch).await {
            Ok(()) => {
                shared.sent.fetch_add(count, Ordering::Relaxed);
            }
            Err(unsent) => {
                link = None;
                fall_back(&shared, &lanes, unsent).await;
            }
        }
    }
}

/// Commits locally puts meant for the writer.
async fn fall_back(shared: &Shared, lanes: &Lanes, jobs: Vec<Job>) {
    shared
        .fell_back
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    for job in jobs {
        lanes.submit(job).await;
    }
}

/// Requests sent and not yet answered, by id.
type Pending = Arc<Mutex<HashMap<u64, (Instant, Vec<Job>)>>>;

/// A connection to the writer, its sending half.
struct Link {
    address: String,
    out: Frames<OwnedWriteHalf>,
    next_id: u64,
    pending: Pending,
    /// Cleared when the answering half ends.
    alive: Arc<AtomicBool>,
}

impl Link {
    fn closed(&self) -> bool {
        !self.alive.load(Ordering::Relaxed)
    }

    /// Sends `batch`; gives back what was not sent.
    async fn send(&mut self, batch: Vec<Job>) -> std::result::Result<(), Vec<Job>> {
        let Some(puts) = batch.iter().map(WirePut::of).collect::<Option<Vec<_>>>() else {
            return Err(batch);
        };
        let id = self.next_id;
        self.next_id += 1;
        let body = match serde_json::to_vec(&Request { id, puts }) {
            Ok(body) => body,
            Err(_) => return Err(batch),
        };
        lock(&self.pending).insert(id, (Instant::now(), batch));
        match self.out.write(&body).await {
            Ok(()) => Ok(()),
            // Unless the answering half has already taken it back (and committed it).
            Err(_) => Err(lock(&self.pending)
                .remove(&id)
                .map(|(_, jobs)| jobs)
                .unwrap_or_default()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens a connection to the writer at `address` and proves the key both ways.
async fn connect(key: &hmac::Key, address: &str) -> io::Result<(Link, Frames<OwnedReadHalf>)> {
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mine = nonce()?;
    stream
        .write_all(&[MAGIC.as_slice(), &mine].concat())
        .await?;
    let mut theirs = [0u8; NONCE];
    let mut proof = [0u8; TAG];
    stream.read_exact(&mut theirs).await?;
    stream.read_exact(&mut proof).await?;
    hmac::verify(key, &transcript(b"writer", &mine, &theirs), &proof)
        .map_err(|_| refused("the writer does not hold this node's key"))?;
    let answer = hmac::sign(key, &transcript(b"sender", &mine, &theirs));
    stream.write_all(answer.as_ref()).await?;
    let session = session_key(key, &mine, &theirs);
    let (read, write) = stream.into_split();
    let link = Link {
        address: address.to_string(),
        out: Frames::new(write, session.clone(), TO_WRITER),
        next_id: 0,
        pending: Arc::default(),
        alive: Arc::new(AtomicBool::new(true)),
    };
    Ok((link, Frames::new(read, session, FROM_WRITER)))
}

/// Reads the writer's answers and hands each put its outcome. When the connection
/// ends, or stays silent [`ANSWER_TIMEOUT`] while puts wait, those puts are committed
/// locally.
async fn answers(
    mut frames: Frames<OwnedReadHalf>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    shared: Arc<Shared>,
    lanes: Arc<Lanes>,
    feed: Arc<watch::Sender<i64>>,
) {
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(1), frames.next()).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "connection to the writer failed");
                break;
            }
            Err(_) => {
                let oldest = lock(&pending).values().map(|(at, _)| *at).min();
                if oldest.is_some_and(|at| at.elapsed() > ANSWER_TIMEOUT) {
                    tracing::warn!("the writer stopped answering");
                    break;
                }
                continue;
            }
        };
        let response: Response = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable answer from the writer");
                break;
            }
        };
        let Some((_, jobs)) = lock(&pending).remove(&response.id) else {
            continue;
        };
        // The writer's feed had moved past these puts' events when it answered.
        events::advance(&feed, response.last_event);
        let mut results = response.results.into_iter();
        for job in jobs {
            let result = results.next().map_or_else(
                || Err(Error::internal("The writer node's answer was incomplete")),
                WireResult::into_result,
            );
            let _ = job.reply.send(result);
        }
    }
    alive.store(false, Ordering::Relaxed);
    let left: Vec<Job> = lock(&pending)
        .drain()
        .flat_map(|(_, (_, jobs))| jobs)
        .collect();
    if !left.is_empty() {
        fall_back(&shared, &lanes, left).await;
    }
}

// ---- the writer's side ----

/// Accepts other nodes' connections (each served until it closes, or this ends).
async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    lanes: Arc<Lanes>,
    feed: Arc<watch::Sender<i64>>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a forwarding connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (shared, lanes, feed) = (shared.clone(), lanes.clone(), feed.clone());
        connections.spawn(async move {
            if let Err(e) = serve_one(stream, shared, lanes, feed).await {
                tracing::warn!(%peer, error = %e, "forwarding connection closed");
            }
        });
    }
}

/// One node's connection: proves the key both ways, then commits each request's puts
/// and answers once they are committed (requests are served concurrently).
async fn serve_one(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    lanes: Arc<Lanes>,
    feed: Arc<watch::Sender<i64>>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let session = tokio::time::timeout(CONNECT_TIMEOUT, accept(&mut stream, &shared.key))
        .await
        .map_err(|_| refused("no handshake"))??;
    let (read, write) = stream.into_split();
    let mut frames = Frames::new(read, session.clone(), TO_WRITER);
    let mut out = Frames::new(write, session, FROM_WRITER);
    let (answered, mut to_send) = mpsc::channel::<Vec<u8>>(64);
    let sender = tokio::spawn(async move {
        while let Some(body) = to_send.recv().await {
            if out.write(&body).await.is_err() {
                break;
            }
        }
    });
    let mut requests = JoinSet::new();
    let read = async {
        while let Some(frame) = frames.next().await? {
            let request: Request = serde_json::from_slice(&frame)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            shared
                .received
                .fetch_add(request.puts.len() as u64, Ordering::Relaxed);
            let (lanes, feed, answered) = (lanes.clone(), feed.clone(), answered.clone());
            requests.spawn(async move {
                let response = commit(&lanes, &feed, request).await;
                if let Ok(body) = serde_json::to_vec(&response) {
                    let _ = answered.send(body).await;
                }
            });
            while requests.try_join_next().is_some() {}
        }
        Ok::<_, io::Error>(())
    };
    let result = read.await;
    // The sender has closed its half: what it sent is still answered.
    while requests.join_next().await.is_some() {}
    drop(answered);
    let _ = sender.await;
    result
}

/// The writer's half of the handshake; the session key.
async fn accept(stream: &mut TcpStream, key: &hmac::Key) -> io::Result<hmac::Key> {
    let mut hello = [0u8; MAGIC.len() + NONCE];
    stream.read_exact(&mut hello).await?;
    let (magic, theirs) = hello.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(refused("not a forwarding connection"));
    }
    let mine = nonce()?;
    let proof = hmac::sign(key, &transcript(b"writer", theirs, &mine));
    stream
        .write_all(&[mine.as_slice(), proof.as_ref()].concat())
        .await?;
    let mut answer = [0u8; TAG];
    stream.read_exact(&mut answer).await?;
    hmac::verify(key, &transcript(b"sender", theirs, &mine), &answer)
        .map_err(|_| refused("the sending node does not hold this node's key"))?;
    Ok(session_key(key, theirs, &mine))
}

/// Commits a request's puts through this node's lanes (all queued before any is
/// awaited, so that they share batches).
async fn commit(lanes: &Lanes, feed: &watch::Sender<i64>, request: Request) -> Response {
    let mut answers = Vec::with_capacity(request.puts.len());
    for put in request.puts {
        match put.into_job() {
            Ok((job, answer)) => {
                lanes.submit(job).await;
                answers.push(Ok(answer));
            }
            Err(e) => answers.push(Err(e)),
        }
    }
    let mut results = Vec::with_capacity(answers.len());
    for answer in answers {
        let result = match answer {
            Ok(answer) => answer.await.unwrap_or_else(|_| Err(shutting_down())),
            Err(e) => Err(e),
        };
        results.push(WireResult::of(result));
    }
    Response {
        id: request.id,
        results,
        last_event: *feed.borrow(),
    }
}

// ---- the wire ----

/// Puts to commit.
#[derive(Serialize, Deserialize)]
struct Request {
    id: u64,
    puts: Vec<WirePut>,
}

/// What became of a request's puts, in order, and the writer's last committed event
/// when it answered.
#[derive(Serialize, Deserialize)]
struct Response {
    id: u64,
    results: Vec<WireResult>,
    last_event: i64,
}

/// A [`Mutation::PutVersion`] on the wire.
#[derive(Serialize, Deserialize)]
struct WirePut {
    secret: i64,
    version: String,
    source: Option<String>,
    stages: Vec<String>,
    ciphertext: String,
    wrapped_key: String,
    algorithm: String,
    key_id: String,
    digest: String,
    now_ms: i64,
}

impl WirePut {
    fn of(job: &Job) -> Option<WirePut> {
        let Mutation::PutVersion { secret, version } = &job.mutation else {
            return None;
        };
        let sealed = &version.sealed;
        Some(WirePut {
            secret: *secret,
            version: version.id.clone(),
            source: version.source.clone(),
            stages: version.stages.clone(),
            ciphertext: B64.encode(&sealed.ciphertext),
            wrapped_key: B64.encode(&sealed.wrapped_key),
            algorithm: sealed.algorithm.clone(),
            key_id: sealed.key_id.clone(),
            digest: B64.encode(&sealed.digest),
            now_ms: millis(job.now),
        })
    }

    fn into_job(self) -> Result<(Job, oneshot::Receiver<Result<Outcome>>)> {
        let bytes = |field: &str| {
            B64.decode(field)
                .map_err(|_| Error::invalid_request("A forwarded put is malformed"))
        };
        let sealed = SealedValue {
            ciphertext: bytes(&self.ciphertext)?,
            wrapped_key: bytes(&self.wrapped_key)?,
            algorithm: self.algorithm,
            key_id: self.key_id,
            digest: bytes(&self.digest)?,
        };
        let now = DateTime::<Utc>::from_timestamp_millis(self.now_ms)
            .ok_or_else(|| Error::invalid_request("A forwarded put is malformed"))?;
        let mutation = Mutation::PutVersion {
            secret: self.secret,
            version: NewVersion {
                source: self.source,
                id: self.version,
                stages: self.stages,
                sealed,
            },
        };
        Ok(Job::new(mutation, now))
    }
}

/// A put's outcome on the wire.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireResult {
    Version {
        labels: Vec<String>,
        replayed: bool,
        rotates: bool,
    },
    Refused {
        kind: String,
        message: String,
    },
}

impl WireResult {
    fn of(result: Result<Outcome>) -> WireResult {
        match result {
            Ok(Outcome::Version {
                labels,
                replayed,
                rotates,
            }) => WireResult::Version {
                labels,
                replayed,
                rotates,
            },
            Ok(_) => WireResult::of(Err(Error::internal("A put had an unexpected outcome"))),
            Err(e) => WireResult::Refused {
                kind: e.kind.aws_type().into(),
                message: e.message,
            },
        }
    }

    fn into_result(self) -> Result<Outcome> {
        match self {
            WireResult::Version {
                labels,
                replayed,
                rotates,
            } => Ok(Outcome::Version {
                labels,
                replayed,
                rotates,
            }),
            WireResult::Refused { kind, message } => Err(Error::new(
                ErrorKind::from_aws_type(&kind).unwrap_or(ErrorKind::Internal),
                message,
            )),
        }
    }
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why.to_string())
}

fn nonce() -> io::Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    aws_lc_rs::rand::fill(&mut n).map_err(|_| io::Error::other("no randomness"))?;
    Ok(n)
}

/// What a side's proof signs: its role and both nonces, the sender's first.
fn transcript(role: &[u8], sender: &[u8], writer: &[u8]) -> Vec<u8> {
    [role, sender, writer].concat()
}

fn session_key(key: &hmac::Key, sender: &[u8], writer: &[u8]) -> hmac::Key {
    let derived = hmac::sign(key, &transcript(b"session", sender, writer));
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// One direction of a connection: frames of a length, a body and an HMAC over the
/// direction, the frame's sequence number and the body.
struct Frames<S> {
    io: S,
    session: hmac::Key,
    direction: u8,
    seq: u64,
    /// Bytes read and not yet taken as a frame.
    buf: Vec<u8>,
}

impl<S> Frames<S> {
    fn new(io: S, session: hmac::Key, direction: u8) -> Self {
        Frames {
            io,
            session,
            direction,
            seq: 0,
            buf: Vec::new(),
        }
    }

    fn tag(&self, body: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.session);
        ctx.update(&[self.direction]);
        ctx.update(&self.seq.to_be_bytes());
        ctx.update(body);
        ctx.sign()
    }

    /// The next whole frame in `buf`, checked.
    fn take(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(head) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*head) as usize;
        if len > MAX_FRAME {
            return Err(refused("frame too large"));
        }
        if self.buf.len() < 4 + len + TAG {
            return Ok(None);
        }
        let rest = self.buf.split_off(4 + len + TAG);
        let frame = std::mem::replace(&mut self.buf, rest);
        let (body, tag) = frame[4..].split_at(len);
        let expected = self.tag(body);
        if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), tag).is_err() {
            return Err(refused("a frame failed its check"));
        }
        self.seq += 1;
        Ok(Some(body.to_vec()))
    }
}

impl Frames<OwnedReadHalf> {
    /// The next frame, or `None` at the end of the stream. Cancel-safe: bytes read are
    /// kept until their frame is whole.
    async fn next(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            if let Some(frame) = self.take()? {
                return Ok(Some(frame));
            }
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Frames<OwnedWriteHalf> {
    async fn write(&mut self, body: &[u8]) -> io::Result<()> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| (*l as usize) <= MAX_FRAME)
            .ok_or_else(|| refused("frame too large"))?;
        let tag = self.tag(body);
        let frame = [&len.to_be_bytes()[..], body, tag.as_ref()].concat();
        self.io.write_all(&frame).await?;
        self.seq += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_cross_the_wire_unchanged() {
        let version = Ok(Outcome::Version {
            labels: vec!["AWSCURRENT".into()],
            replayed: true,
            rotates: false,
        });
        match WireResult::of(version).into_result() {
            Ok(Outcome::Version {
                labels,
                replayed,
                rotates,
            }) => assert_eq!(
                (labels, replayed, rotates),
                (vec!["AWSCURRENT".into()], true, false)
            ),
            other => panic!("unexpected {other:?}"),
        }
        let refused = WireResult::of(Err(Error::exists("version v1 of s")));
        let e = refused.into_result().expect_err("a refusal stays one");
        assert_eq!(e.kind, ErrorKind::ResourceExists);
        assert_eq!(e.message, "version v1 of s");
    }
}

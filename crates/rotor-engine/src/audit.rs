//! The audit log: every request, appended before its response is sent, in a
//! hash chain that shows any change, deletion or reordering.
//!
//! Each entry is one JSON line carrying its sequence number, the MAC of the entry
//! before it (`prev`) and its own `mac`: an HMAC, keyed from the master key, of the
//! line's bytes up to the `mac` field. A checkpoint file beside the log holds the
//! last sequence number and MAC written, so cutting entries off the end shows too.
//!
//! Sinks: a file (JSON lines, rotated by size), written by one task that batches
//! whatever entries are waiting into one write; a request is answered only once its
//! entry is written, and fails if it cannot be (fail-closed). The store sink gets the
//! same entries in the background; if it fails, later requests fail until it works.
//! Secret values never reach an entry; free-text fields that could hold one
//! (descriptions, tag values) are recorded as HMACs, which an operator can match
//! with `rotor audit hash`.

use chrono::{DateTime, Utc};
use rotor_core::{Error, Result};
use rotor_crypto::Envelope;
use rotor_store::{Mutation, Store};
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// What a request did, as the router saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// When the request arrived.
    pub time: DateTime<Utc>,
    /// The request id sent back to the client.
    pub request_id: String,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Who asked (principal name), or the credential that failed to authenticate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// `aws` or `native`.
    pub api: &'static str,
    /// The operation.
    pub operation: &'static str,
    /// The secret, as named in the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The version concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The labels concerned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// `allow`, `deny` or `unauthenticated`.
    pub decision: &'static str,
    /// HTTP status of the answer.
    pub status: u16,
    /// The error type, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `(field, HMAC)` of request fields that could hold sensitive text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashed: Vec<(String, String)>,
}

/// The HMAC an audit entry uses for a sensitive field: operators match a known value
/// against it with `rotor audit hash`.
pub fn hash_field(envelope: &Envelope, field: &str, value: &str) -> String {
    let mut data = Vec::with_capacity(field.len() + value.len() + 1);
    data.extend_from_slice(field.as_bytes());
    data.push(0);
    data.extend_from_slice(value.as_bytes());
    hex(&envelope.audit_mac(&data))
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The MAC of the first entry's predecessor.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAC_FIELD: &str = ",\"mac\":\"";

/// Where the audit log goes.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The log file.
    pub file: PathBuf,
    /// Size past which the file is rotated (renamed with its first sequence number).
    pub max_bytes: u64,
}

enum Job {
    /// The record's fields as JSON, without the enclosing braces.
    Append(String, oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<()>),
}

/// The audit log's writer.
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    envelope: Arc<Envelope>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

struct Chain {
    seq: i64,
    prev: String,
}

/// The last entry of a log file: its sequence number and MAC.
fn tail_of(path: &Path) -> Result<Option<Chain>> {
    if !is_regular(path) {
        return Ok(None);
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::internal(format!(
                "audit log {}: {e}",
                path.display()
            )));
        }
    };
    let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(last)
        .map_err(|_| Error::internal("the audit log's last line is not JSON"))?;
    match (v["seq"].as_i64(), v["mac"].as_str()) {
        (Some(seq), Some(mac)) => Ok(Some(Chain {
            seq,
            prev: mac.to_string(),
        })),
        _ => Err(Error::internal(
            "the audit log's last line has no seq or mac",
        )),
    }
}

fn checkpoint_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".checkpoint");
    PathBuf::from(p)
}

/// What a checkpoint records of the current log file: its first entry, and its last
/// entry with that entry's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence number of the file's first entry.
    pub first: i64,
    /// Sequence number of the last entry written.
    pub seq: i64,
    /// Its MAC.
    pub mac: String,
}

/// Whether `path` is a regular file (a log can also be a device, e.g. for tests).
fn is_regular(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

fn write_checkpoint(log: &Path, first: i64, chain: &Chain) -> std::io::Result<()> {
    if !is_regular(log) {
        return Ok(());
    }
    let path = checkpoint_path(log);
    let tmp = path.with_extension("tmp");
    let text = format!(
        "{{\"first\":{first},\"seq\":{},\"mac\":\"{}\"}}\n",
        chain.seq, chain.prev
    );
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// The first sequence number in a log file.
fn head_of(path: &Path) -> Option<i64> {
    if !is_regular(path) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    serde_json::from_str::<serde_json::Value>(first).ok()?["seq"].as_i64()
}

impl AuditLog {
    /// Opens the log, continuing the chain of an existing file (or of the store sink
    /// when the file is new), and starts its writer.
    pub async fn open(
        config: AuditConfig,
        store: Arc<dyn Store>,
        envelope: Arc<Envelope>,
    ) -> Result<Self> {
        if let Some(dir) = config.file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("audit dir: {e}")))?;
        }
        let chain = match tail_of(&config.file)? {
            Some(c) => c,
            None => match store.audit_entries(0).await?.last() {
                Some((seq, line)) => {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                    Chain {
                        seq: *seq,
                        prev: v["mac"].as_str().unwrap_or(GENESIS).to_string(),
                    }
                }
                None => Chain {
                    seq: 0,
                    prev: GENESIS.to_string(),
                },
            },
        };
        let (tx, rx) = mpsc::channel(8192);
        let (store_tx, store_rx) = mpsc::unbounded_channel();
        let store_failed = Arc::new(AtomicBool::new(false));
        let sink = tokio::spawn(store_sink(store, store_rx, store_failed.clone()));
        // The writer gets a thread of its own, so that waking it to write a batch does
        // not wait behind the request tasks it is holding up.
        let writer_envelope = envelope.clone();
        std::thread::Builder::new()
            .name("rotor-audit-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(writer(
                        config,
                        chain,
                        rx,
                        writer_envelope,
                        (store_tx, sink),
                        store_failed,
                    )),
                    Err(e) => tracing::error!(error = %e, "cannot start the audit writer"),
                }
            })
            .map_err(|e| Error::internal(format!("cannot start the audit writer thread: {e}")))?;
        Ok(AuditLog { tx, envelope })
    }

    /// Appends `record`; returns once it is written. An error means the request
    /// must fail.
    pub async fn append(&self, record: AuditRecord) -> Result<()> {
        // Serialized here, in the request's task, so the single writer only chains.
        let json = serde_json::to_string(&record)
            .map_err(|_| Error::internal("audit record encoding failed"))?;
        let fields = json[1..json.len() - 1].to_string();
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Job::Append(fields, reply))
            .await
            .map_err(|_| Error::internal("The audit log is closed"))?;
        done.await
            .map_err(|_| Error::internal("The audit log is closed"))?
    }

    /// The HMAC of a sensitive request field (see [`hash_field`]).
    pub fn hash(&self, field: &str, value: &str) -> String {
        hash_field(&self.envelope, field, value)
    }

    /// Writes what is queued and a final checkpoint, then stops.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// A batch for the store sink: first and last sequence numbers, and the lines.
type Chunk = (i64, i64, String);

async fn store_sink(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Chunk>,
    failed: Arc<AtomicBool>,
) {
    while let Some((first, mut last, mut lines)) = rx.recv().await {
        while let Ok((_, more_last, more)) = rx.try_recv() {
            last = more_last;
            lines.push_str(&more);
        }
        let appended = store
            .apply(Mutation::AppendAudit { first, last, lines }, Utc::now())
            .await;
        if let Err(e) = appended {
            tracing::error!(error = %e, "audit store sink failed; requests now fail until it works");
            failed.store(true, Ordering::SeqCst);
        } else {
            failed.store(false, Ordering::SeqCst);
        }
    }
}

/// Entries between checkpoints.
const CHECKPOINT_EVERY: i64 = 256;

async fn writer(
    config: AuditConfig,
    mut chain: Chain,
    mut rx: mpsc::Receiver<Job>,
    envelope: Arc<Envelope>,
    (store, sink): (mpsc::UnboundedSender<Chunk>, tokio::task::JoinHandle<()>),
    store_failed: Arc<AtomicBool>,
) {
    let open = |path: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    let mut file = open(&config.file).ok();
    let mut since_checkpoint = 0;
    let mut size = std::fs::metadata(&config.file)
        .map(|m| m.len())
        .unwrap_or(0);
    // The first entry of the current file, for checkpoints.
    let mut file_first = head_of(&config.file).unwrap_or(chain.seq + 1);
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append(fields, reply) => batch.push((fields, reply)),
                Job::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let mut text = String::with_capacity(batch.len() * 400);
            let mut seq = chain.seq;
            let mut prev = chain.prev.clone();
            for (fields, _) in &batch {
                seq += 1;
                // The MAC covers the line's bytes before the mac field.
                let mut line = format!("{{\"seq\":{seq},{fields},\"prev\":\"{prev}\"");
                let mac = hex(&envelope.audit_mac(line.as_bytes()));
                line.push_str(MAC_FIELD);
                line.push_str(&mac);
                line.push_str("\"}");
                text.push_str(&line);
                text.push('\n');
                prev = mac;
            }
            let written = match file.as_mut() {
                Some(f) => f.write_all(text.as_bytes()),
                None => Err(std::io::Error::other("audit file not open")),
            };
            let result = match written {
                Ok(()) if store_failed.load(Ordering::SeqCst) => Err(Error::internal(
                    "The audit log's store sink is failing; request refused",
                )),
                Ok(()) => Ok(()),
                Err(e) => {
                    tracing::error!(error = %e, "audit file write failed; request refused");
                    file = open(&config.file).ok();
                    Err(Error::internal(
                        "The audit log cannot be written; request refused",
                    ))
                }
            };
            let written_bytes = text.len() as u64;
            if result.is_ok() {
                since_checkpoint += seq - chain.seq;
                let _ = store.send((chain.seq + 1, seq, text));
                chain = Chain { seq, prev };
                size += written_bytes;
            }
            for (_, reply) in batch {
                let _ = reply.send(result.clone());
            }
            if since_checkpoint >= CHECKPOINT_EVERY {
                since_checkpoint = 0;
                if let Err(e) = write_checkpoint(&config.file, file_first, &chain) {
                    tracing::error!(error = %e, "audit checkpoint failed");
                }
            }
            if size > config.max_bytes {
                let rotated = config.file.with_extension(format!("{}.log", chain.seq));
                if std::fs::rename(&config.file, &rotated).is_ok() {
                    file = open(&config.file).ok();
                    size = 0;
                    file_first = chain.seq + 1;
                    let _ = write_checkpoint(&config.file, file_first, &chain);
                }
            }
        }
        if let Some(done) = close {
            if let Some(f) = file.as_mut() {
                let _ = f.sync_all();
            }
            let _ = write_checkpoint(&config.file, file_first, &chain);
            // Let the store sink write what it has been given before saying done.
            drop(store);
            let _ = sink.await;
            let _ = done.send(());
            return;
        }
    }
}

/// Where a chain breaks, or what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry checks out.
    Intact {
        /// How many entries.
        entries: usize,
        /// First and last sequence numbers.
        range: Option<(i64, i64)>,
    },
    /// The first entry that does not.
    Broken {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Checks a log's lines: each MAC, each link to the entry before, consecutive
/// sequence numbers, and the checkpoint (`(seq, mac)`) if given.
pub fn verify(envelope: &Envelope, text: &str, checkpoint: Option<Checkpoint>) -> Verdict {
    let mut prev: Option<(i64, String)> = None;
    let mut count = 0;
    let mut first = None;
    let mut checkpoint_seen = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let broken = |reason: String| Verdict::Broken { line: n, reason };
        let Some(at) = line.rfind(MAC_FIELD) else {
            return broken("no mac field".into());
        };
        let signed = &line[..at];
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => return broken("not JSON".into()),
        };
        let (Some(seq), Some(mac), Some(link)) =
            (v["seq"].as_i64(), v["mac"].as_str(), v["prev"].as_str())
        else {
            return broken("missing seq, prev or mac".into());
        };
        let expected = hex(&envelope.audit_mac(signed.as_bytes()));
        if !rotor_crypto::constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return broken(format!("entry {seq} was altered (its MAC does not match)"));
        }
        match &prev {
            Some((p_seq, p_mac)) => {
                if seq != p_seq + 1 {
                    return broken(format!(
                        "entry {seq} follows entry {p_seq}: entries are missing or out of order"
                    ));
                }
                if link != p_mac {
                    return broken(format!("entry {seq} does not link to entry {p_seq}"));
                }
            }
            None => {
                if seq == 1 && link != GENESIS {
                    return broken("the first entry does not start the chain".into());
                }
                if let Some(c) = checkpoint.as_ref().filter(|c| c.first != seq) {
                    return broken(format!(
                        "the log starts at entry {seq} but the checkpoint says it starts at entry {}",
                        c.first
                    ));
                }
                first = Some(seq);
            }
        }
        if let Some(c) = checkpoint.as_ref().filter(|c| c.seq == seq) {
            checkpoint_seen = true;
            if c.mac != mac {
                return broken(format!("entry {seq} differs from the checkpoint"));
            }
        }
        prev = Some((seq, mac.to_string()));
        count += 1;
    }
    if let Some(c) = checkpoint {
        let c_seq = c.seq;
        let last = prev.as_ref().map_or(0, |(s, _)| *s);
        if !checkpoint_seen && c_seq > last {
            return Verdict::Broken {
                line: text.lines().count() + 1,
                reason: format!(
                    "the log ends at entry {last} but the checkpoint records entry {c_seq}: entries were cut off"
                ),
            };
        }
    }
    Verdict::Intact {
        entries: count,
        range: first.zip(prev.map(|(s, _)| s)),
    }
}

/// Reads the checkpoint file written beside a log.
pub fn read_checkpoint(log: &Path) -> Option<Checkpoint> {
    let text = std::fs::read_to_string(checkpoint_path(log)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(Checkpoint {
        first: v["first"].as_i64()?,
        seq: v["seq"].as_i64()?,
        mac: v["mac"].as_str()?.to_string(),
    })
}

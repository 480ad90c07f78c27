//! The audit log: every request, appended before its response is sent, in a
//! hash chain that shows any change, deletion or reordering.
//!
//! Each entry is one JSON line carrying its sequence number, the MAC of the entry
//! before it (`prev`) and its own `mac`: an HMAC, keyed from the master key, of the
//! line's bytes up to the `mac` field. A checkpoint file beside the log holds the
//! last sequence number and MAC written, so cutting entries off the end shows too.
//!
//! Sinks: a file (JSON lines, rotated by size), to which each request's own task
//! writes its entry under a short lock before the response goes out; a request whose
//! entry cannot be written fails (fail-closed). Optionally the store keeps a copy
//! too, written in batches in the background; if that fails, later requests fail
//! until it works. (On this project's 2-core machine the store copy costs about a
//! fifth of read throughput, so it is off unless asked for.) A checkpoint is written
//! every 4,096 entries or every second, whichever comes first, and at close.
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
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

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

/// `n` in decimal, written into `buf`.
fn itoa(n: i64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
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
    /// Whether the store keeps a copy of every entry too.
    pub store_sink: bool,
}

/// The file side of the log, held by whichever request is writing.
struct Writer {
    config: AuditConfig,
    file: Option<std::fs::File>,
    chain: Chain,
    file_first: i64,
    since_checkpoint: i64,
    last_checkpoint: std::time::Instant,
    size: u64,
    buffer: String,
    store: Option<mpsc::UnboundedSender<Chunk>>,
    sink: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    writer: Mutex<Writer>,
    store_failed: Arc<AtomicBool>,
    closed: AtomicBool,
}

/// The audit log's writer.
pub struct AuditLog {
    shared: Arc<Shared>,
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

/// Cuts off a line left half-written at the end of the log by a crash (no newline
/// after it). Entries are written before the response they record is sent, so such a
/// line belongs to a request that was never answered; every complete line stays,
/// and a complete line that is not an entry still stops the server.
fn drop_torn_tail(path: &Path) -> Result<()> {
    if !is_regular(path) {
        return Ok(());
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::internal(format!(
                "audit log {}: {e}",
                path.display()
            )));
        }
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    tracing::warn!(
        file = %path.display(),
        bytes = bytes.len() - keep,
        "the audit log ends in a line cut off by a crash; removing it"
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(keep as u64).and_then(|()| f.sync_all()));
    file.map_err(|e| Error::internal(format!("audit log {}: {e}", path.display())))
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
    let mut file = private_file().write(true).truncate(true).open(&tmp)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    std::fs::rename(tmp, path)
}

/// Options that create a file readable by the server's user only: the audit log names
/// principals and secrets.
fn private_file() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).mode(0o600);
    options
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

fn open_append(path: &Path) -> Option<std::fs::File> {
    private_file().append(true).open(path).ok()
}

/// Entries between checkpoints, at most: each costs a write and a rename.
const CHECKPOINT_EVERY: i64 = 4096;
/// Time between checkpoints, at most, while entries arrive.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Writer {
    /// Chains and writes `batch` (entries' fields, in order). Whether it was written.
    fn write(&mut self, batch: &[&str], envelope: &Envelope, store_failed: &AtomicBool) -> bool {
        // One reused buffer and a stack array for the hex MAC: no allocation per entry.
        let mut text = std::mem::take(&mut self.buffer);
        text.clear();
        let mut seq = self.chain.seq;
        let mut prev = [0u8; 64];
        prev.copy_from_slice(self.chain.prev.as_bytes().get(..64).unwrap_or(&[b'0'; 64]));
        for fields in batch {
            seq += 1;
            let start = text.len();
            // The MAC covers the line's bytes before the mac field.
            text.push_str("{\"seq\":");
            text.push_str(itoa(seq, &mut [0u8; 20]));
            text.push(',');
            text.push_str(fields);
            text.push_str(",\"prev\":\"");
            text.push_str(std::str::from_utf8(&prev).unwrap_or(GENESIS));
            text.push('"');
            let mac = envelope.audit_mac(&text.as_bytes()[start..]);
            if hex::encode_to_slice(&mac, &mut prev).is_err() {
                return false;
            }
            text.push_str(MAC_FIELD);
            text.push_str(std::str::from_utf8(&prev).unwrap_or(GENESIS));
            text.push_str("\"}\n");
        }
        let prev = std::str::from_utf8(&prev).unwrap_or(GENESIS).to_string();
        if store_failed.load(Ordering::SeqCst) {
            // Refused before the file has them: the chain goes on from the last entry
            // written, with no sequence number used twice.
            self.buffer = text;
            return false;
        }
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(text.as_bytes()),
            None => Err(std::io::Error::other("audit file not open")),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "audit file write failed; requests refused");
            self.file = open_append(&self.config.file);
            self.buffer = text;
            return false;
        }
        self.size += text.len() as u64;
        self.since_checkpoint += seq - self.chain.seq;
        if let Some(store) = &self.store {
            let _ = store.send((self.chain.seq + 1, seq, text.clone()));
        }
        self.buffer = text;
        self.chain = Chain { seq, prev };
        if self.since_checkpoint >= CHECKPOINT_EVERY
            || self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
        {
            self.since_checkpoint = 0;
            self.last_checkpoint = std::time::Instant::now();
            if let Err(e) = write_checkpoint(&self.config.file, self.file_first, &self.chain) {
                tracing::error!(error = %e, "audit checkpoint failed");
            }
        }
        // Only a regular file is rotated (a device given as the log stays as it is).
        if self.size > self.config.max_bytes && is_regular(&self.config.file) {
            let rotated = self
                .config
                .file
                .with_extension(format!("{}.log", self.chain.seq));
            if std::fs::rename(&self.config.file, &rotated).is_ok() {
                self.file = open_append(&self.config.file);
                self.size = 0;
                self.file_first = self.chain.seq + 1;
                let _ = write_checkpoint(&self.config.file, self.file_first, &self.chain);
            }
        }
        true
    }
}

impl AuditLog {
    /// Opens the log, continuing the chain of an existing file (or of the store sink
    /// when the file is new).
    pub async fn open(
        config: AuditConfig,
        store: Arc<dyn Store>,
        envelope: Arc<Envelope>,
    ) -> Result<Self> {
        if let Some(dir) = config.file.parent() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::internal(format!("audit dir: {e}")))?;
        }
        drop_torn_tail(&config.file)?;
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
        let (store_tx, store_rx) = mpsc::unbounded_channel();
        let store_failed = Arc::new(AtomicBool::new(false));
        let (store_tx, sink) = if config.store_sink {
            (
                Some(store_tx),
                Some(tokio::spawn(store_sink(
                    store,
                    store_rx,
                    store_failed.clone(),
                ))),
            )
        } else {
            (None, None)
        };
        let writer = Writer {
            file: open_append(&config.file),
            file_first: head_of(&config.file).unwrap_or(chain.seq + 1),
            size: std::fs::metadata(&config.file)
                .map(|m| m.len())
                .unwrap_or(0),
            since_checkpoint: 0,
            last_checkpoint: std::time::Instant::now(),
            buffer: String::with_capacity(1024),
            chain,
            config,
            store: store_tx,
            sink,
        };
        let shared = Shared {
            writer: Mutex::new(writer),
            store_failed,
            closed: AtomicBool::new(false),
        };
        Ok(AuditLog {
            shared: Arc::new(shared),
            envelope,
        })
    }

    /// Appends `record`; returns once it is written. An error means the request
    /// must fail.
    ///
    /// The request's own task chains and writes its entry under a short lock: one
    /// small `write` each, and no hand-off to another task or thread, which on a busy
    /// machine costs more than the write.
    pub async fn append(&self, record: AuditRecord) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::internal("The audit log is closed"));
        }
        let json = serde_json::to_string(&record)
            .map_err(|_| Error::internal("audit record encoding failed"))?;
        let fields = &json[1..json.len() - 1];
        let mut writer = self.shared.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer.write(
            std::slice::from_ref(&fields),
            &self.envelope,
            &self.shared.store_failed,
        ) {
            Ok(())
        } else {
            Err(Error::internal(
                "The audit log cannot be written; request refused",
            ))
        }
    }

    /// The HMAC of a sensitive request field (see [`hash_field`]).
    pub fn hash(&self, field: &str, value: &str) -> String {
        hash_field(&self.envelope, field, value)
    }

    /// Writes a final checkpoint, waits for the store sink, then refuses further
    /// entries.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let sink = {
            let mut writer = self.shared.writer.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = writer.file.as_mut() {
                let _ = f.sync_all();
            }
            let _ = write_checkpoint(&writer.config.file, writer.file_first, &writer.chain);
            // Let the store sink write what it has been given.
            writer.store = None;
            writer.sink.take()
        };
        if let Some(sink) = sink {
            let _ = sink.await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a server killed mid-write left half an entry at the end of the
    /// log, and refused to start again ("the audit log's last line is not JSON").
    #[test]
    fn a_line_cut_off_by_a_crash_is_dropped_and_complete_lines_stay() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        std::fs::write(&log, "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,\"ma").unwrap();
        drop_torn_tail(&log).unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "{\"seq\":1}\n{\"seq\":2}\n"
        );
        drop_torn_tail(&log).unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "{\"seq\":1}\n{\"seq\":2}\n",
            "a whole log is left alone"
        );
        std::fs::write(&log, "not an entry\n").unwrap();
        drop_torn_tail(&log).unwrap();
        assert!(tail_of(&log).is_err(), "a complete bad line is not a crash");
    }
}

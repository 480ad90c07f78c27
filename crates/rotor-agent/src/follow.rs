//! Following the server: the watch stream as a channel of changed secret names, kept
//! connected across server restarts, and the reports of which version of each secret
//! is in use (consumer registrations, renewed every heartbeat).

use crate::Used;
use rotor_client::consumers::ConsumerSession;
use rotor_client::{Client, ClientError, Watch};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the watch says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This secret changed.
    Secret(String),
    /// The stream was down and is back: what it missed was replayed, but refresh
    /// everything anyway in case the server lost its events (a dev server restarted).
    Resync,
}

/// Each change is passed on at once, and again after each of these delays. The server
/// answering the read that follows an event may still hold the secret's previous
/// record in its cache for a moment: another node sharing the store until it has seen
/// the event too (within its 500 ms poll at worst), or the same server in the instant
/// between its commit (which wakes the watch) and dropping its cached copy.
const RECHECKS: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(1000)];

/// The longest wait between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A stream with no event for this long is reopened (from where it was), in case the
/// connection died silently; the server's keep-alives do not reach us through
/// [`Watch::next`].
const IDLE_REOPEN: Duration = Duration::from_secs(300);

/// Opens the watch of every secret the token may describe, from now on.
pub async fn open(client: &Client) -> Result<Watch, ClientError> {
    client.watch("", None).await
}

/// Forwards `first`'s events (or, when the server could not be reached at start, the
/// events of a stream opened later) to `tx`, reconnecting after `last_seq` whenever
/// the stream ends. Acknowledgements are left out: they change no value. Ends when
/// `tx` is closed.
pub fn spawn(
    client: Arc<Client>,
    first: Option<Watch>,
    tx: mpsc::UnboundedSender<Change>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut after = first.as_ref().map(Watch::last_seq);
        let mut stream = first;
        let mut backoff = Duration::from_millis(100);
        let mut down_since: Option<Instant> = None;
        loop {
            let Some(watch) = stream.as_mut() else {
                match client.watch("", after).await {
                    Ok(w) => {
                        if let Some(since) = down_since.take() {
                            tracing::info!(
                                after = w.last_seq(),
                                down_for = ?since.elapsed(),
                                "watch stream reconnected"
                            );
                        }
                        after = Some(w.last_seq());
                        stream = Some(w);
                        backoff = Duration::from_millis(100);
                        if tx.send(Change::Resync).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        if down_since.is_none() {
                            tracing::warn!(error = %e, "watch stream unavailable; polling until it is back");
                            down_since = Some(Instant::now());
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            };
            match tokio::time::timeout(IDLE_REOPEN, watch.next()).await {
                Ok(Ok(Some(event))) => {
                    after = Some(watch.last_seq());
                    tracing::debug!(seq = ?after, kind = event.kind, secret = ?event.secret, "change event");
                    if event.kind.starts_with("consumer.") {
                        continue;
                    }
                    if let Some(secret) = event.secret.as_deref() {
                        if tx.send(Change::Secret(secret.to_string())).is_err() {
                            return;
                        }
                        let (tx, secret) = (tx.clone(), secret.to_string());
                        tokio::spawn(async move {
                            let start = tokio::time::Instant::now();
                            for delay in RECHECKS {
                                tokio::time::sleep_until(start + delay).await;
                                if tx.send(Change::Secret(secret.clone())).is_err() {
                                    return;
                                }
                            }
                        });
                    }
                }
                Ok(Ok(None) | Err(_)) => {
                    tracing::warn!(after = ?after, "watch stream ended; reconnecting");
                    down_since = Some(Instant::now());
                    stream = None;
                }
                Err(_) => {
                    // Idle for long: reopen quietly from where we are.
                    stream = None;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    })
}

/// Wait this long after a failed report before trying again.
const REPORT_RETRY: Duration = Duration::from_secs(5);

/// Registers which version of each secret this consumer uses: at once when it
/// changes, and again every heartbeat so the server knows it is still there.
pub struct Reporter {
    session: ConsumerSession,
    retry_after: Option<Instant>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub fn new(client: &Client, consumer: String, heartbeat: Duration, lease_secs: i64) -> Self {
        Reporter {
            session: ConsumerSession::new(client, &consumer, heartbeat, lease_secs),
            retry_after: None,
        }
    }

    pub fn consumer(&self) -> &str {
        self.session.consumer()
    }

    /// The client to read through: its reads are this consumer's.
    pub fn client(&self) -> Arc<Client> {
        self.session.client().clone()
    }

    /// Reports the versions of `used` that read a vault in `rotor_vaults` (this
    /// server): those that changed, and all of them once a heartbeat is due. A secret
    /// used at several versions is reported at the first one used. Failures are
    /// retried on a later call, no sooner than [`REPORT_RETRY`].
    pub async fn report<'a>(
        &mut self,
        used: impl IntoIterator<Item = &'a Used>,
        rotor_vaults: &BTreeSet<String>,
    ) {
        if self.retry_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for u in used {
            if let (Some(vault), Some(secret), Some(version)) =
                (&u.vault, &u.resource, &u.version_id)
                && rotor_vaults.contains(vault)
            {
                wanted.entry(secret.clone()).or_insert(version.clone());
            }
        }
        match self.session.report(&wanted).await {
            Ok(()) => self.retry_after = None,
            Err(e) => {
                tracing::debug!(error = %e, "could not report the versions in use; will retry");
                self.retry_after = Some(Instant::now() + REPORT_RETRY);
            }
        }
    }

    /// Leaves every secret reported: a clean exit blocks no rotation.
    pub async fn end(&mut self) {
        self.session.end().await;
    }
}

//! The accept loop: plain TCP or TLS (rustls with aws-lc-rs), HTTP/1.1 keep-alive,
//! the [`Limits`] a client may hold (header-read and idle timeouts, a connection
//! cap), and a graceful drain: on shutdown the listener closes, in-flight requests
//! finish (up to [`DRAIN_TIMEOUT`]), then `serve` returns.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// The client's address, put in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Longest wait for in-flight requests on shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Loading a certificate or key failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file could not be read or parsed.
    #[error("TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key file could not be read, parsed, or used.
    #[error("TLS key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A certificate and key read from files, replaceable while the server runs
/// (`reload`, called on SIGHUP). New connections use the latest pair.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Certificate {
        path: cert_path.display().to_string(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        path: key_path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| key_err(e.to_string()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| key_err(e.to_string()))?;
    Ok(CertifiedKey::new(certs, signing))
}

impl ReloadableCert {
    /// Loads the pair once; fails if either file is unusable.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let pair = load_pair(cert_path, key_path)?;
        Ok(Arc::new(ReloadableCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Re-reads both files. On failure the previous pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// A rustls server configuration that always uses the latest pair.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// What one client may hold of the server: how long it may take to send a request's
/// headers, how long a kept-alive connection may sit idle, and how many connections
/// the listener holds at once. Streams (`/v1/watch`, long polls) are requests in
/// flight, never idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the first byte of a request (or from accepting the connection) to the
    /// end of its headers.
    pub header_read_timeout: Duration,
    /// Longest a connection may wait, with no request in flight, for its next one.
    pub idle_timeout: Duration,
    /// Connections held at once; more are closed as soon as they are accepted and
    /// counted in `rotor_connections_refused_total`.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 4096,
        }
    }
}

/// Serves `router` on `listener` with the default [`Limits`] until `shutdown`
/// resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ReloadableCert>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, router, tls, Limits::default(), shutdown).await
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then
/// drains: the listener closes, idle connections close, and requests in flight get
/// up to [`DRAIN_TIMEOUT`] to finish.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ReloadableCert>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = match &tls {
        Some(cert) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            cert.server_config().map_err(std::io::Error::other)?,
        ))),
        None => None,
    };
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    // Our own watchdog times header reads: hyper's timer would also end kept-alive
    // connections after the (short) header timeout.
    http.header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("rotor_connections_refused_total").increment(1);
            tracing::debug!(%peer, max, "connection refused: the server holds its maximum");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let router = router.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            let in_flight = InFlight::start(requests.clone());
            let response = router.clone().oneshot(req);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
        let http = http.clone();
        let stop = stop_rx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let watched = Watched {
                inner: stream,
                activity: activity.clone(),
            };
            match acceptor {
                None => {
                    let conn = http.serve_connection(TokioIo::new(watched), service);
                    drive(conn, &activity, limits, stop, peer).await;
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        limits.header_read_timeout,
                        acceptor.accept(watched),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    // The handshake's bytes were not a request's.
                    activity.waiting_since(Instant::now());
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    drive(conn, &activity, limits, stop, peer).await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(max as u32)).await;
    if drained.is_err() {
        tracing::warn!("some connections were still busy after the drain timeout");
    }
    Ok(())
}

/// Runs one connection until it ends, the client overstays a limit, or the server
/// stops (then in-flight requests finish and the connection closes).
async fn drive<I, S>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    activity: &Activity,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let check = activity.deadline(limits, Instant::now());
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.started.notified() => {}
            () = tokio::time::sleep_until(check.into()) => {
                if activity.overstayed(limits, Instant::now()) {
                    tracing::debug!(%peer, "connection closed: headers too slow, or idle too long");
                    return;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection is doing, as its watchdog sees it: requests in flight, when the
/// last one finished, and since when bytes of a next request have waited.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch`, plus one (0: none), since the connection has held
    /// part of a request whose headers are not complete.
    waiting: AtomicU64,
    /// Milliseconds after `epoch` at which the connection last became idle.
    idle_since: AtomicU64,
    /// Woken when an idle connection starts receiving a request: its deadline is
    /// now the (shorter) header-read timeout.
    started: tokio::sync::Notify,
}

/// How often the watchdog looks at a connection that has a request in flight.
const BUSY_CHECK: Duration = Duration::from_secs(1);

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // A new connection owes its first request's headers at once.
            waiting: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
            started: tokio::sync::Notify::new(),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn at(&self, millis: u64) -> Instant {
        self.epoch + Duration::from_millis(millis)
    }

    fn waiting_since(&self, at: Instant) {
        self.waiting.store(self.millis(at) + 1, Ordering::Relaxed);
    }

    /// Bytes arrived: with no request in flight they begin the next request.
    fn read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 && self.waiting.load(Ordering::Relaxed) == 0
        {
            self.waiting_since(Instant::now());
            self.started.notify_one();
        }
    }

    /// When the watchdog should look again.
    fn deadline(&self, limits: Limits, now: Instant) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return now + BUSY_CHECK;
        }
        match self.waiting.load(Ordering::Relaxed) {
            0 => self.at(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout,
            since => self.at(since - 1) + limits.header_read_timeout,
        }
        .max(now + Duration::from_millis(10))
    }

    fn overstayed(&self, limits: Limits, now: Instant) -> bool {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return false;
        }
        match self.waiting.load(Ordering::Relaxed) {
            0 => now >= self.at(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout,
            since => now >= self.at(since - 1) + limits.header_read_timeout,
        }
    }
}

/// One request in flight, until its response's body is done (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.waiting.store(0, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.millis(Instant::now());
        self.0.idle_since.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until it is sent.
struct Tracked {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The client's socket, telling the watchdog when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

//! `rotor server`: configuration ([`config`]), wiring the services together, then
//! serving until a signal, and shutting down.
//!
//! Persistent mode keeps its database and master key in the data directory. `--dev`
//! keeps everything in a temporary directory removed on exit. Either way the server
//! prints `rotor listening on URL` on standard output once it accepts connections.

mod config;

use anyhow::{Context, bail};
pub use config::ServerConfig;
use rotor_core::clock::SystemClock;
use rotor_crypto::MasterKey;
use rotor_engine::audit::{AuditConfig, AuditLog};
use rotor_engine::events::{self, Events};
use rotor_engine::rotation::{self, Rotations};
use rotor_engine::{AccessService, DEFAULT_ACCOUNT_ID, SecretService};
use rotor_server::App;
use rotor_server::serve::{Limits, ReloadableCert};
use rotor_store::postgres::ForwardConfig;
use rotor_store::sqlite::SqliteStore;
use secrecy::ExposeSecret;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

const DEFAULT_LISTEN: &str = "127.0.0.1:8200";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs sent to a file or a collector stay plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `rotor server`: configuration, then wiring, then serving.
pub async fn run(flags: ServerConfig) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = flags.layered()?;
    let node = wire(config).await?;
    serve(node).await
}

/// Everything a started server runs, before it listens.
struct Node {
    dev: bool,
    listen: SocketAddr,
    tls: Option<Arc<ReloadableCert>>,
    limits: Limits,
    banner: Vec<String>,
    /// Several servers share the store: follow the others' changes.
    shared_store: bool,
    purge_every: Duration,
    events_retention: chrono::Duration,
    service: Arc<SecretService>,
    rotations: Arc<Rotations>,
    events: Arc<Events>,
    audit: Option<Arc<AuditLog>>,
    app: Arc<App>,
}

/// The root credentials from the environment: `ROTOR_DEV_*` for a dev server,
/// `ROTOR_ROOT_*` for a persistent one; otherwise made up on the store's first start.
type RootCredentials = (Option<String>, Option<(String, String)>);

fn root_credentials(dev: bool) -> anyhow::Result<RootCredentials> {
    let prefix = if dev { "ROTOR_DEV_" } else { "ROTOR_ROOT_" };
    let token = env(&format!(
        "{prefix}{}",
        if dev { "ROOT_TOKEN" } else { "TOKEN" }
    ));
    let key = match (
        env(&format!("{prefix}ACCESS_KEY_ID")),
        env(&format!("{prefix}SECRET_ACCESS_KEY")),
    ) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => bail!(
            "{prefix}ACCESS_KEY_ID and {prefix}SECRET_ACCESS_KEY go together: set both or neither"
        ),
    };
    Ok((token, key))
}

/// Opens the store and the services over it, as `config` says.
async fn wire(config: ServerConfig) -> anyhow::Result<Node> {
    let listen = match config.listen {
        Some(a) => a,
        None => DEFAULT_LISTEN.parse()?,
    };
    let account_id = config
        .account_id
        .clone()
        .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_string());
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(ReloadableCert::load(c, k)?),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together: give both or neither"),
    };
    let limits = {
        let defaults = Limits::default();
        Limits {
            header_read_timeout: config
                .header_read_timeout_secs
                .map_or(defaults.header_read_timeout, |s| {
                    Duration::from_secs(s.max(1))
                }),
            idle_timeout: config
                .idle_timeout_secs
                .map_or(defaults.idle_timeout, |s| Duration::from_secs(s.max(1))),
            max_connections: config
                .max_connections
                .unwrap_or(defaults.max_connections)
                .max(1),
        }
    };
    rotor_engine::hooks::set_webhook_allow(&config.webhook_allow).context("webhook_allow")?;

    let mut banner = Vec::new();
    let (root_token, root_key) = root_credentials(config.dev)?;
    let audit_dir;
    let mut shared_store = false;
    if config.dev && config.cluster_listen.is_some() {
        bail!(
            "cluster_listen forwards writes between nodes sharing PostgreSQL: a --dev server keeps everything in memory"
        );
    }
    let service = if config.dev {
        banner.push("Development server: everything is in memory and lost on exit.".to_string());
        let store = SqliteStore::ephemeral().await?;
        audit_dir = store.scratch_dir().map(|d| d.join("audit"));
        SecretService::with_random_key(Arc::new(store), &account_id)
    } else {
        let Some(data_dir) = config.data_dir.clone() else {
            bail!(
                "a persistent server needs a data directory: set data_dir in --config, --data-dir or ROTOR_DATA_DIR (or use --dev)"
            );
        };
        if !listen.ip().is_loopback() && tls.is_none() && !config.insecure_no_tls {
            bail!(
                "refusing to listen on {listen} without TLS: give --tls-cert and --tls-key, or --insecure-no-tls if something else terminates TLS"
            );
        }
        {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
        }
        let master = match env("ROTOR_MASTER_KEY") {
            Some(b64) => MasterKey::from_base64(&b64).context("ROTOR_MASTER_KEY")?,
            None => match &config.master_key_file {
                Some(path) => MasterKey::load(path)?,
                None => MasterKey::load_or_create(&data_dir.join("master.key"))?,
            },
        };
        audit_dir = Some(data_dir.join("audit"));
        let store: Arc<dyn rotor_store::Store> = match config.storage.as_ref().map(|s| &s.0) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                shared_store = true;
                let forward = config.cluster_listen.map(|listen| ForwardConfig {
                    listen,
                    advertise: config.cluster_advertise.clone(),
                    key: master.purpose_key(b"rotor write forwarding v1"),
                });
                Arc::new(
                    rotor_store::postgres::PgStore::connect_with(url, forward)
                        .await
                        .context("connecting to PostgreSQL")?,
                )
            }
            _ if config.cluster_listen.is_some() => {
                bail!(
                    "cluster_listen forwards writes between nodes sharing PostgreSQL: it needs storage = postgres://..."
                )
            }
            // The value is not echoed: a mistyped URL still holds a password.
            Some(other) if other != "sqlite" => {
                bail!("storage must be postgres://... or sqlite")
            }
            _ => Arc::new(SqliteStore::open(&data_dir.join("rotor.db"), true).await?),
        };
        let service = SecretService::new(store, master, Arc::new(SystemClock), &account_id);
        service
            .check_master_key()
            .await
            .context("wrong master key")?;
        service
    };
    let access = AccessService::load(service.store(), service.envelope(), service.clock()).await?;
    let key = root_key
        .as_ref()
        .map(|(id, secret)| (id.as_str(), secret.as_str()));
    if let Some(made) = access.bootstrap(root_token.as_deref(), key).await? {
        if !config.dev {
            banner.push(
                "First start: a root principal was created. Its credentials are shown this once:"
                    .into(),
            );
        }
        if root_token.is_none() {
            banner.push(format!("Root token: {}", made.token.expose_secret()));
        }
        if root_key.is_none() {
            banner.push(format!("Access key id: {}", made.access_key_id));
            banner.push(format!(
                "Secret access key: {}",
                made.secret_access_key.expose_secret()
            ));
        }
    }

    let audit_on = config.audit.as_deref() != Some("off");
    let audit = match (
        audit_on,
        config
            .audit_file
            .clone()
            .or(audit_dir.map(|d| d.join("audit.log"))),
    ) {
        (true, Some(file)) => {
            let audit = AuditConfig {
                file,
                max_bytes: config.audit_max_bytes.unwrap_or(64 << 20),
                store_sink: config.audit_store.as_deref() == Some("on"),
            };
            Some(Arc::new(
                AuditLog::open(audit, service.store(), service.envelope()).await?,
            ))
        }
        _ => None,
    };
    let service = Arc::new(service);
    let access = Arc::new(access);
    let rotations = Arc::new(Rotations::new(
        service.clone(),
        access.clone(),
        rotation_settings(&config),
    ));
    let events = Arc::new(Events::new(
        service.clone(),
        access.clone(),
        delivery_settings(&config),
    ));
    let app = App::with_events(
        service.clone(),
        access,
        rotations.clone(),
        events.clone(),
        audit.clone(),
    );
    Ok(Node {
        dev: config.dev,
        listen,
        tls,
        limits,
        banner,
        shared_store,
        purge_every: Duration::from_secs(config.purge_interval_secs.unwrap_or(60).max(1)),
        events_retention: chrono::Duration::hours(
            config
                .events_retention_hours
                .unwrap_or(168)
                .clamp(1, 24 * 365 * 10) as i64,
        ),
        service,
        rotations,
        events,
        audit,
        app,
    })
}

fn rotation_settings(config: &ServerConfig) -> rotation::Settings {
    let defaults = rotation::Settings::default();
    rotation::Settings {
        max_attempts: config
            .rotation_max_attempts
            .unwrap_or(defaults.max_attempts)
            .max(1),
        backoff: config
            .rotation_backoff_ms
            .map_or(defaults.backoff, Duration::from_millis),
        step_timeout: config
            .rotation_step_timeout_ms
            .map_or(defaults.step_timeout, Duration::from_millis),
        concurrency: config.rotation_concurrency.unwrap_or(defaults.concurrency),
        lease: config
            .rotation_lease_ms
            .map_or(defaults.lease, Duration::from_millis),
        ..defaults
    }
}

fn delivery_settings(config: &ServerConfig) -> events::Settings {
    let defaults = events::Settings::default();
    events::Settings {
        max_attempts: config
            .webhook_max_attempts
            .unwrap_or(defaults.max_attempts)
            .max(1),
        backoff: config
            .webhook_backoff_ms
            .map_or(defaults.backoff, Duration::from_millis),
        ..defaults
    }
}

/// Listens, runs the background work (scheduler, dispatcher, purger, followers of
/// other nodes, certificate reloads) until SIGTERM or Ctrl-C, then drains and stops.
async fn serve(node: Node) -> anyhow::Result<ExitCode> {
    let Node {
        dev,
        listen,
        tls,
        limits,
        banner,
        shared_store,
        purge_every,
        events_retention,
        service,
        rotations,
        events,
        audit,
        app,
    } = node;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        let mut out = std::io::stdout().lock();
        for line in &banner {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "rotor listening on {scheme}://{local}")?;
        out.flush()?;
    }
    tracing::info!(%local, dev, "server started");
    let callback_host = if local.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        local
    };
    rotations.set_endpoint(&format!("{scheme}://{callback_host}"));
    let scheduler = rotations.spawn();
    let followers = shared_store.then(|| {
        let caches = service.follow_other_nodes();
        let access = app.access.clone();
        let policies = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = access.refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the access configuration");
                }
            }
        });
        (caches, policies)
    });
    let dispatcher = events.spawn();
    // Destinations that drifted while the server was down are repaired now.
    match service
        .sync_replicas(&rotor_engine::Caller::system("rotor-replication"))
        .await
    {
        Ok(repairs) => {
            if !repairs.is_empty() {
                tracing::info!(count = repairs.len(), "replicas repaired at start");
            }
            rotor_server::replication::audit_repairs(&app, "rotor-replication", &repairs).await;
        }
        Err(e) => tracing::error!(error = %e, "replica sync at start failed"),
    }
    let readers = service.spawn_read_tracking(Duration::from_millis(250));
    let health = rotations.spawn_health_metrics(Duration::from_secs(15));
    let purger = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(purge_every);
            loop {
                tick.tick().await;
                match service.purge_due().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(count = n, "removed secrets past their recovery window")
                    }
                    Err(e) => tracing::warn!(error = %e, "purge failed"),
                }
                if let Err(e) = service.prune_events(events_retention).await {
                    tracing::warn!(error = %e, "pruning the event outbox failed");
                }
                if let Err(e) = service.prune_consumers().await {
                    tracing::warn!(error = %e, "pruning the consumer registry failed");
                }
            }
        })
    };
    let reloader = tls.clone().map(|cert| {
        tokio::spawn(async move {
            let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                match cert.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate"),
                }
            }
        })
    });

    let draining = app.clone();
    let shutdown = async move {
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: draining in-flight requests");
        draining.set_draining();
    };
    rotor_server::serve::serve_with(listener, app.router(), tls, limits, shutdown).await?;
    purger.abort();
    readers.abort();
    health.abort();
    if let Err(e) = service.flush_reads().await {
        tracing::warn!(error = %e, "cannot record the last readers");
    }
    scheduler.abort();
    rotations.release_lease().await;
    if let Some((caches, policies)) = followers {
        caches.abort();
        policies.abort();
    }
    dispatcher.abort();
    if let Some(r) = reloader {
        r.abort();
    }
    if let Some(log) = &audit {
        log.close().await;
    }
    service.close().await;
    tracing::info!("stopped; pending writes committed");
    Ok(ExitCode::SUCCESS)
}

//! `rotor server`'s configuration: one struct that is at once the flags (with their
//! `ROTOR_*` variables) and the keys of the TOML file, layered: the file first, then
//! what the command line and environment give over it.

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the server stores its data. The URL carries the database password, so its
/// `Debug` shows only the scheme, and `--help` never prints the variable's value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct StorageUrl(pub String);

impl std::str::FromStr for StorageUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StorageUrl(s.to_string()))
    }
}

impl std::fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.0.split_once("://").map_or("?", |(s, _)| s);
        write!(f, "StorageUrl({scheme}://<redacted>)")
    }
}

/// `rotor server`'s configuration, in one place: each option is a flag, a `ROTOR_*`
/// variable and a key of the `--config` file (TOML), in that order of precedence.
/// `Debug` shows no password: the storage URL is redacted.
#[derive(Args, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Ephemeral in-memory server for development (credentials from ROTOR_DEV_*)
    #[arg(long)]
    #[serde(skip)]
    pub dev: bool,
    /// Configuration file (TOML)
    #[arg(long, env = "ROTOR_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8200]
    #[arg(long, env = "ROTOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database and the generated master key
    #[arg(long, env = "ROTOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where secrets are stored: `postgres://USER:PASSWORD@HOST:PORT/DB` to share one
    /// PostgreSQL between several servers; by default SQLite in the data directory
    #[arg(long, env = "ROTOR_STORAGE", hide_env_values = true)]
    pub storage: Option<StorageUrl>,
    /// Master key file (base64 of 32 bytes); generated in the data dir when unset
    #[arg(long, env = "ROTOR_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); reloaded on SIGHUP
    #[arg(long, env = "ROTOR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); reloaded on SIGHUP
    #[arg(long, env = "ROTOR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Allow listening on a non-loopback address without TLS
    #[arg(long, env = "ROTOR_INSECURE_NO_TLS")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_no_tls: bool,
    /// Account id in ARNs [default: 123456789012]
    #[arg(long, env = "ROTOR_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Seconds between sweeps that remove secrets past their recovery window [default: 60]
    #[arg(long, env = "ROTOR_PURGE_INTERVAL_SECS")]
    pub purge_interval_secs: Option<u64>,
    /// Audit log: on (default) or off
    #[arg(long, env = "ROTOR_AUDIT", value_parser = ["on", "off"])]
    pub audit: Option<String>,
    /// Audit log file [default: DATA_DIR/audit/audit.log]
    #[arg(long, env = "ROTOR_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// Keep a copy of the audit log in the store too: on or off (default)
    #[arg(long, env = "ROTOR_AUDIT_STORE", value_parser = ["on", "off"])]
    pub audit_store: Option<String>,
    /// Size in bytes past which the audit file is rotated [default: 67108864]
    #[arg(long, env = "ROTOR_AUDIT_MAX_BYTES")]
    pub audit_max_bytes: Option<u64>,
    /// Attempts of a rotation before it is marked failed [default: 5]
    #[arg(long, env = "ROTOR_ROTATION_MAX_ATTEMPTS")]
    pub rotation_max_attempts: Option<i64>,
    /// Wait before a failed rotation's second attempt, in milliseconds; doubled for
    /// each later one [default: 30000]
    #[arg(long, env = "ROTOR_ROTATION_BACKOFF_MS")]
    pub rotation_backoff_ms: Option<u64>,
    /// Longest a rotation step may take, in milliseconds [default: 120000]
    #[arg(long, env = "ROTOR_ROTATION_STEP_TIMEOUT_MS")]
    pub rotation_step_timeout_ms: Option<u64>,
    /// Rotations run at once [default: 16]
    #[arg(long, env = "ROTOR_ROTATION_CONCURRENCY")]
    pub rotation_concurrency: Option<usize>,
    /// With PostgreSQL storage: where this node listens for the other nodes' puts, which
    /// the node holding the writer lease commits in its own batches (off when unset)
    #[arg(long, env = "ROTOR_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,
    /// The address the other nodes reach this one's cluster_listen at [default: the
    /// address it listens on]
    #[arg(long, env = "ROTOR_CLUSTER_ADVERTISE")]
    pub cluster_advertise: Option<String>,
    /// How long the rotation scheduler's lease lasts without renewal, in
    /// milliseconds: with several servers, another takes over within it [default: 15000]
    #[arg(long, env = "ROTOR_ROTATION_LEASE_MS")]
    pub rotation_lease_ms: Option<u64>,
    /// Attempts at delivering an event to a webhook or command before it is
    /// dead-lettered [default: 8]
    #[arg(long, env = "ROTOR_WEBHOOK_MAX_ATTEMPTS")]
    pub webhook_max_attempts: Option<i64>,
    /// Wait before an event's second delivery attempt, in milliseconds; doubled for
    /// each later one, up to 5 minutes [default: 1000]
    #[arg(long, env = "ROTOR_WEBHOOK_BACKOFF_MS")]
    pub webhook_backoff_ms: Option<u64>,
    /// Where webhooks (subscriptions and webhook rotators) may POST: URL prefixes such
    /// as https://hooks.internal/rotor/ (repeatable, or comma-separated in the
    /// variable); every http(s) URL when unset
    #[arg(
        long,
        env = "ROTOR_WEBHOOK_ALLOW",
        value_delimiter = ',',
        value_name = "URL_PREFIX"
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook_allow: Vec<String>,
    /// Seconds a client may take to send a request's headers [default: 10]
    #[arg(long, env = "ROTOR_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a kept-alive connection may wait for its next request; streams and long
    /// polls are not idle [default: 120]
    #[arg(long, env = "ROTOR_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Hours the event outbox keeps events; older ones are pruned unless a webhook has
    /// not delivered them yet or they are a consumer's latest report [default: 168]
    #[arg(long, env = "ROTOR_EVENTS_RETENTION_HOURS")]
    pub events_retention_hours: Option<u64>,
    /// Connections held at once; more are closed on accept [default: 4096]
    #[arg(long, env = "ROTOR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

impl ServerConfig {
    /// These options over the `--config` file's: an option given as a flag or a
    /// variable wins; the file fills in the rest.
    pub fn layered(self) -> anyhow::Result<ServerConfig> {
        use figment::Figment;
        use figment::providers::Serialized;
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: ServerConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        // What was not given (an option left out, a switch left off, no list) is
        // left out of the upper layer, so it does not override the file.
        let mut given = serde_json::to_value(&self)?;
        if let Some(fields) = given.as_object_mut() {
            fields.retain(|_, v| !v.is_null());
        }
        let mut layered: ServerConfig = Figment::new()
            .merge(Serialized::defaults(file))
            .merge(Serialized::defaults(given))
            .extract()
            .with_context(|| format!("layering {} under the flags", path.display()))?;
        layered.dev = self.dev;
        layered.config = self.config;
        Ok(layered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_fills_in_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotor.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nstorage = \"postgres://u:pw@h/db\"\nwebhook_allow = [\"https://a/\"]\nmax_connections = 10\n",
        )
        .unwrap();
        let flags = ServerConfig {
            config: Some(path),
            max_connections: Some(20),
            ..Default::default()
        };
        let layered = flags.layered().unwrap();
        assert_eq!(layered.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(layered.max_connections, Some(20));
        assert_eq!(layered.webhook_allow, ["https://a/"]);
        let shown = format!("{layered:?}");
        assert!(shown.contains("postgres://<redacted>"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotor.toml");
        std::fs::write(&path, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let flags = ServerConfig {
            config: Some(path),
            ..Default::default()
        };
        assert!(flags.layered().is_err());
    }
}

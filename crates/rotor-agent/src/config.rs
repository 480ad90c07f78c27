//! `agent.toml`: the server, the vaults references may name, and the templates.
//!
//! ```toml
//! consumer_id = "web-1"            # how this agent reports itself (default HOSTNAME:PID)
//! render_interval_ms = 1000        # the periodic re-render (the polling fallback)
//! heartbeat_ms = 15000             # how often the consumer registration is renewed
//! lease_secs = 60                  # gone, to the server, this long after the last renewal
//!
//! [server]
//! addr = "https://rotor.internal:8200"   # else --addr / ROTOR_ADDR
//! token_file = "/var/run/rotor/token"    # used when --token / ROTOR_TOKEN is unset
//!
//! [vault.rotor]                    # this server; present with these defaults if unset
//! type = "rotor"
//! ttl = 60                         # seconds, as in Kong; 0: kept until a change event
//! neg_ttl = 10
//! resurrect_ttl = 86400
//!
//! [[template]]
//! source = "db.conf.tmpl"          # or contents = "..."; relative to this file
//! destination = "/etc/app/db.conf"
//! mode = "0600"
//! owner = "app:app"                # applied only when the agent runs as root
//! command = ["systemctl", "reload", "app"]   # or signal = { pid_file = "...", signal = "HUP" }
//! ```

use rotor_client::backend::BackendError;
use rotor_client::backend::aws::AwsBackend;
use rotor_client::resolver::{VaultConfig, VaultNameError, Vaults};
use rotor_client::{Client, ClientError};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::env::VarError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The name of the vault that reads this agent's server, unless configured otherwise.
pub const DEFAULT_VAULT: &str = "rotor";

/// A vault's `ttl` unless it says otherwise: Kong refreshes once a minute too.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// A vault's `neg_ttl` unless it says otherwise.
pub const DEFAULT_NEG_TTL: Duration = Duration::from_secs(10);
/// A vault's `resurrect_ttl` unless it says otherwise.
pub const DEFAULT_RESURRECT_TTL: Duration = Duration::from_secs(86_400);

/// The file could not be used: read, parsed, or its server and vaults set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of this shape.
    #[error("parsing {}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: toml::de::Error,
    },
    /// The server's `token_file` could not be read.
    #[error("reading the token file {}", .path.display())]
    TokenFile {
        /// The token file, made absolute against the file's directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No token was given, neither by the caller nor as `token_file`.
    #[error("no token: set ROTOR_TOKEN, pass --token, or set token_file")]
    NoToken,
    /// The server's address is not usable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A `[vault.NAME]` is wrong.
    #[error("vault {name:?}")]
    Vault {
        /// Its name.
        name: String,
        /// What is wrong with it.
        source: VaultError,
    },
    /// A vault's name cannot be used in references.
    #[error(transparent)]
    VaultName(#[from] VaultNameError),
}

/// One `[vault.NAME]` is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// `type` is none of those known.
    #[error("type {kind:?} is not one of rotor, aws, env, file")]
    UnknownType {
        /// The type given.
        kind: String,
    },
    /// A field that this type of vault does not take.
    #[error("a {kind} vault has no {field}")]
    UnexpectedField {
        /// The vault's type.
        kind: String,
        /// The field.
        field: &'static str,
    },
    /// A `file` vault without `root`.
    #[error("a file vault needs root")]
    NoRoot,
    /// `ttl`, `neg_ttl` or `resurrect_ttl` is negative or not finite.
    #[error("{field} must be a number of seconds, 0 or more")]
    Seconds {
        /// The field.
        field: &'static str,
    },
    /// An `aws` vault without `endpoint`.
    #[error("an aws vault needs endpoint")]
    NoEndpoint,
    /// An `aws` vault without `access_key_id`, and no `AWS_ACCESS_KEY_ID`.
    #[error("an aws vault needs access_key_id (or AWS_ACCESS_KEY_ID)")]
    NoAccessKeyId(#[source] VarError),
    /// The `secret_access_key_file` could not be read.
    #[error("reading {}", .path.display())]
    SecretAccessKeyFile {
        /// The file, made absolute against the configuration's directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An `aws` vault without `secret_access_key_file`, and no
    /// `AWS_SECRET_ACCESS_KEY`.
    #[error("an aws vault needs secret_access_key_file (or AWS_SECRET_ACCESS_KEY)")]
    NoSecretAccessKey(#[source] VarError),
    /// The `aws` vault's settings were refused (an endpoint that is not a URL).
    #[error(transparent)]
    Aws(#[from] BackendError),
}

impl AgentConfig {
    /// The consumer registration's heartbeat and lease.
    pub fn heartbeat(&self) -> (std::time::Duration, i64) {
        let every = self
            .heartbeat_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(rotor_client::consumers::DEFAULT_HEARTBEAT);
        let lease = self
            .lease_secs
            .unwrap_or(rotor_client::consumers::DEFAULT_LEASE_SECS);
        (every, lease)
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// How this agent reports itself to the server.
    pub consumer_id: Option<String>,
    /// How often every template is rendered again from the cache (milliseconds).
    pub render_interval_ms: Option<u64>,
    /// How often the consumer registration is renewed (milliseconds; 15000).
    pub heartbeat_ms: Option<u64>,
    /// How long a registration lasts without renewal (seconds; 60): once it has run
    /// out the server counts this consumer as gone.
    pub lease_secs: Option<i64>,
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
    /// Each `[vault.NAME]`.
    #[serde(default, rename = "vault")]
    pub vaults: BTreeMap<String, VaultSection>,
    /// Each `[[template]]`.
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateSection>,
    /// The file this was read from (empty when it was not).
    #[serde(skip)]
    pub path: PathBuf,
    /// The directory relative paths are taken from.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[server]`: the agent's server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Its address; the caller's when unset.
    pub addr: Option<String>,
    /// A file holding the token, used when the caller has none.
    pub token_file: Option<PathBuf>,
}

/// One `[vault.NAME]`: the fields each `type` takes are checked in [`VaultSection::build`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// rotor, aws, env or file.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds a value is kept (0: until a change event).
    pub ttl: Option<f64>,
    /// Seconds a failure is kept.
    pub neg_ttl: Option<f64>,
    /// Seconds an expired value is still used while its vault fails.
    pub resurrect_ttl: Option<f64>,
    /// rotor, aws: the label read unless a reference says otherwise.
    pub stage: Option<String>,
    /// env: prepended to variable names.
    pub prefix: Option<String>,
    /// file: the directory.
    pub root: Option<PathBuf>,
    /// aws: the endpoint.
    pub endpoint: Option<String>,
    /// aws: the region (default us-east-1).
    pub region: Option<String>,
    /// aws: the access key id (else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// aws: a file holding the secret key (else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key_file: Option<PathBuf>,
}

/// One `[[template]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSection {
    /// The template's file, relative to the configuration's directory.
    pub source: Option<PathBuf>,
    /// The template itself, instead of `source`.
    pub contents: Option<String>,
    /// The file rendered.
    pub destination: PathBuf,
    /// Its mode, in octal (default "0600").
    pub mode: Option<String>,
    /// Its `user[:group]`, applied only when the agent runs as root.
    pub owner: Option<String>,
    /// Run when the file changes.
    pub command: Option<Vec<String>>,
    /// Sent when the file changes, instead of `command`.
    pub signal: Option<SignalSection>,
}

/// A template's `signal = { pid_file = "...", signal = "HUP" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSection {
    /// The file holding the process id.
    pub pid_file: PathBuf,
    /// The signal (default HUP).
    #[serde(default = "default_signal")]
    pub signal: String,
}

fn default_signal() -> String {
    "HUP".into()
}

impl AgentConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: AgentConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        config.path = path.to_path_buf();
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(config)
    }

    /// `path` made absolute against the file's directory.
    pub fn path(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The client of the agent's server: `addr` from the file, else `addr`; `token`,
    /// else the file's `token_file`.
    pub fn client(&self, addr: &str, token: Option<&str>) -> Result<Arc<Client>, ConfigError> {
        let addr = self.server.addr.as_deref().unwrap_or(addr);
        let from_file;
        let token = match (token, &self.server.token_file) {
            (Some(t), _) => t,
            (None, Some(file)) => {
                let path = self.path(file);
                from_file = std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::TokenFile { path, source })?;
                from_file.trim()
            }
            (None, None) => return Err(ConfigError::NoToken),
        };
        Ok(Arc::new(Client::new(addr, token)?))
    }

    /// The vaults, with [`DEFAULT_VAULT`] added when the file does not configure it,
    /// and the names of those that read `client`'s server.
    pub fn vaults(&self, client: &Arc<Client>) -> Result<(Vaults, BTreeSet<String>), ConfigError> {
        let mut vaults = Vaults::new();
        let mut rotor = BTreeSet::new();
        for (name, section) in &self.vaults {
            let config =
                section
                    .build(client, &self.base_dir)
                    .map_err(|source| ConfigError::Vault {
                        name: name.clone(),
                        source,
                    })?;
            vaults.insert(name, config)?;
            if section.kind == "rotor" {
                rotor.insert(name.clone());
            }
        }
        if !self.vaults.contains_key(DEFAULT_VAULT) {
            vaults.insert(
                DEFAULT_VAULT,
                with_defaults(VaultConfig::rotor(client.clone())),
            )?;
            rotor.insert(DEFAULT_VAULT.to_string());
        }
        Ok((vaults, rotor))
    }
}

fn with_defaults(v: VaultConfig) -> VaultConfig {
    v.ttl(DEFAULT_TTL)
        .neg_ttl(DEFAULT_NEG_TTL)
        .resurrect_ttl(DEFAULT_RESURRECT_TTL)
}

fn seconds(
    field: &'static str,
    value: Option<f64>,
    default: Duration,
) -> Result<Duration, VaultError> {
    match value {
        None => Ok(default),
        Some(s) => Duration::try_from_secs_f64(s).map_err(|_| VaultError::Seconds { field }),
    }
}

impl VaultSection {
    /// The vault this section describes, over `client` when it reads this server.
    pub fn build(&self, client: &Arc<Client>, base_dir: &Path) -> Result<VaultConfig, VaultError> {
        let allowed: &[&str] = match self.kind.as_str() {
            "rotor" => &["stage"],
            "aws" => &[
                "stage",
                "endpoint",
                "region",
                "access_key_id",
                "secret_access_key_file",
            ],
            "env" => &["prefix"],
            "file" => &["root"],
            other => {
                return Err(VaultError::UnknownType {
                    kind: other.to_string(),
                });
            }
        };
        let given = [
            ("stage", self.stage.is_some()),
            ("prefix", self.prefix.is_some()),
            ("root", self.root.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            (
                "secret_access_key_file",
                self.secret_access_key_file.is_some(),
            ),
        ];
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(VaultError::UnexpectedField {
                kind: self.kind.clone(),
                field,
            });
        }
        let mut vault = match self.kind.as_str() {
            "rotor" => VaultConfig::rotor(client.clone()),
            "env" => VaultConfig::env(),
            "file" => {
                let root = self.root.as_ref().ok_or(VaultError::NoRoot)?;
                VaultConfig::file(base_dir.join(root))
            }
            _ => VaultConfig::aws(self.aws(base_dir)?),
        };
        vault = vault
            .ttl(seconds("ttl", self.ttl, DEFAULT_TTL)?)
            .neg_ttl(seconds("neg_ttl", self.neg_ttl, DEFAULT_NEG_TTL)?)
            .resurrect_ttl(seconds(
                "resurrect_ttl",
                self.resurrect_ttl,
                DEFAULT_RESURRECT_TTL,
            )?);
        if let Some(stage) = &self.stage {
            vault = vault.option("stage", stage);
        }
        if let Some(prefix) = &self.prefix {
            vault = vault.option("prefix", prefix);
        }
        Ok(vault)
    }

    fn aws(&self, base_dir: &Path) -> Result<AwsBackend, VaultError> {
        let endpoint = self.endpoint.as_deref().ok_or(VaultError::NoEndpoint)?;
        let access_key_id = match &self.access_key_id {
            Some(k) => k.clone(),
            None => std::env::var("AWS_ACCESS_KEY_ID").map_err(VaultError::NoAccessKeyId)?,
        };
        let secret = match &self.secret_access_key_file {
            Some(file) => {
                let path = base_dir.join(file);
                std::fs::read_to_string(&path)
                    .map_err(|source| VaultError::SecretAccessKeyFile { path, source })?
                    .trim()
                    .to_string()
            }
            None => {
                std::env::var("AWS_SECRET_ACCESS_KEY").map_err(VaultError::NoSecretAccessKey)?
            }
        };
        let region = self.region.as_deref().unwrap_or("us-east-1");
        Ok(AwsBackend::new(
            endpoint,
            region,
            &access_key_id,
            SecretString::from(secret),
        )?)
    }
}

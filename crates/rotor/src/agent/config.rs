//! `agent.toml`: the server, the vaults references may name, and the templates.
//!
//! ```toml
//! consumer_id = "web-1"            # how this agent reports itself (default HOSTNAME:PID)
//! render_interval_ms = 1000        # the periodic re-render (the polling fallback)
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

use anyhow::{Context, bail};
use rotor_client::Client;
use rotor_client::backend::aws::AwsBackend;
use rotor_client::resolver::{VaultConfig, Vaults};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
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

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// How this agent reports itself to the server.
    pub consumer_id: Option<String>,
    /// How often every template is rendered again from the cache (milliseconds).
    pub render_interval_ms: Option<u64>,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default, rename = "vault")]
    pub vaults: BTreeMap<String, VaultSection>,
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateSection>,
    /// The directory relative paths are taken from.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub addr: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// One `[vault.NAME]`: the fields each `type` takes are checked in [`VaultSection::build`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl: Option<f64>,
    pub neg_ttl: Option<f64>,
    pub resurrect_ttl: Option<f64>,
    /// rotor, aws: the label read unless a reference says otherwise.
    pub stage: Option<String>,
    /// env: prepended to variable names.
    pub prefix: Option<String>,
    /// file: the directory.
    pub root: Option<PathBuf>,
    /// aws: the endpoint, region and key pair (the secret key from a file, or
    /// `AWS_SECRET_ACCESS_KEY`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSection {
    pub source: Option<PathBuf>,
    pub contents: Option<String>,
    pub destination: PathBuf,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub command: Option<Vec<String>>,
    pub signal: Option<SignalSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSection {
    pub pid_file: PathBuf,
    #[serde(default = "default_signal")]
    pub signal: String,
}

fn default_signal() -> String {
    "HUP".into()
}

impl AgentConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: AgentConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
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

    /// The client of the agent's server: `addr` from the file, else `--addr`; the
    /// token from `--token`/`ROTOR_TOKEN`, else the file's `token_file`.
    pub fn client(&self, addr: &str, token: Option<&str>) -> anyhow::Result<Arc<Client>> {
        let addr = self.server.addr.as_deref().unwrap_or(addr);
        let from_file;
        let token = match (token, &self.server.token_file) {
            (Some(t), _) => t,
            (None, Some(file)) => {
                let file = self.path(file);
                from_file = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading the token file {}", file.display()))?;
                from_file.trim()
            }
            (None, None) => bail!("no token: set ROTOR_TOKEN, pass --token, or set token_file"),
        };
        Ok(Arc::new(Client::new(addr, token)?))
    }

    /// The vaults, with [`DEFAULT_VAULT`] added when the file does not configure it,
    /// and the names of those that read `client`'s server.
    pub fn vaults(&self, client: &Arc<Client>) -> anyhow::Result<(Vaults, BTreeSet<String>)> {
        let mut vaults = Vaults::new();
        let mut rotor = BTreeSet::new();
        for (name, section) in &self.vaults {
            let config = section
                .build(client, &self.base_dir)
                .with_context(|| format!("vault {name:?}"))?;
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

fn seconds(field: &str, value: Option<f64>, default: Duration) -> anyhow::Result<Duration> {
    match value {
        None => Ok(default),
        Some(s) => Duration::try_from_secs_f64(s)
            .map_err(|_| anyhow::anyhow!("{field} must be a number of seconds, 0 or more")),
    }
}

impl VaultSection {
    fn build(&self, client: &Arc<Client>, base_dir: &Path) -> anyhow::Result<VaultConfig> {
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
            other => bail!("type {other:?} is not one of rotor, aws, env, file"),
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
            bail!("a {} vault has no {field}", self.kind);
        }
        let mut vault = match self.kind.as_str() {
            "rotor" => VaultConfig::rotor(client.clone()),
            "env" => VaultConfig::env(),
            "file" => {
                let root = self.root.as_ref().context("a file vault needs root")?;
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

    fn aws(&self, base_dir: &Path) -> anyhow::Result<AwsBackend> {
        let endpoint = self
            .endpoint
            .as_deref()
            .context("an aws vault needs endpoint")?;
        let access_key_id = match &self.access_key_id {
            Some(k) => k.clone(),
            None => std::env::var("AWS_ACCESS_KEY_ID")
                .context("an aws vault needs access_key_id (or AWS_ACCESS_KEY_ID)")?,
        };
        let secret = match &self.secret_access_key_file {
            Some(file) => {
                let file = base_dir.join(file);
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
                    .trim()
                    .to_string()
            }
            None => std::env::var("AWS_SECRET_ACCESS_KEY")
                .context("an aws vault needs secret_access_key_file (or AWS_SECRET_ACCESS_KEY)")?,
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

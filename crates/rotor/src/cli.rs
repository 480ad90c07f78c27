//! The command line.

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use rotor_api::sys::{PrincipalKind, RotatorKind};
use std::path::PathBuf;

/// Reads an option's value as one of the API's enums, spelled as on the wire
/// (`service`, `random`, ...); clap has checked it is one of the possible values.
fn api_enum<T: serde::de::DeserializeOwned>(value: String) -> Result<T, serde::de::value::Error> {
    T::deserialize(serde::de::IntoDeserializer::into_deserializer(value))
}

/// Rotor: a secrets manager built around rotation.
#[derive(Parser, Debug)]
#[command(name = "rotor", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every client command.
#[derive(Args, Debug)]
pub struct Global {
    /// Server address
    #[arg(
        long,
        global = true,
        env = "ROTOR_ADDR",
        default_value = "http://127.0.0.1:8200"
    )]
    pub addr: String,
    /// Bearer token
    #[arg(long, global = true, env = "ROTOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// For people
    Human,
    /// For scripts
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server
    Server(Box<crate::server::ServerConfig>),
    /// Manage secrets
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Generate a random password
    Password(PasswordArgs),
    /// Manage principals (service accounts and people)
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Manage bearer tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage AWS-style access key pairs
    #[command(subcommand, name = "access-key")]
    AccessKey(AccessKeyCommand),
    /// Manage access policies
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check the audit log
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Register and manage rotators (what performs a rotation)
    #[command(subcommand)]
    Rotator(RotatorCommand),
    /// Configure, show and cancel a secret's rotation
    #[command(subcommand)]
    Rotation(RotationCommand),
    /// Keep secrets in step across namespaces (replication rules)
    #[command(subcommand)]
    Replicate(ReplicateCommand),
    /// Rotate a secret now with its rotator
    Rotate {
        /// Secret name or ARN
        name: String,
        /// Id of the new version (the rotation's ClientRequestToken); a UUID when unset
        #[arg(long)]
        version_id: Option<String>,
    },
    /// Print changes to secrets under a prefix as they happen, one line each
    Watch(crate::events::WatchArgs),
    /// Push changes to webhooks or local commands (redeploy hooks)
    #[command(subcommand)]
    Webhook(crate::events::WebhookCommand),
    /// Render templates of secrets to files and keep them current (a sidecar)
    Agent(crate::agent::AgentArgs),
    /// Run a command with secrets in its environment; restart it when they change
    Run(crate::agent::RunArgs),
    /// Show which version of a secret each consumer uses, live and gone
    Consumers(crate::agent::ConsumersArgs),
    /// Rotation health: overdue, failed and waiting rotations, lagging consumers
    Status,
    /// Back up, verify and restore a server's data (run on the server's machine)
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Take a consistent backup of a running (or stopped) server's SQLite store into
    /// FILE: the data as stored (values sealed under the master key), with a manifest
    Backup {
        /// The backup file to write (must not exist)
        file: PathBuf,
        /// The server's data directory
        #[arg(long, env = "ROTOR_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Prove that a backup restores: every value decrypts, every secret has one
    /// AWSCURRENT, the content matches the manifest (touches no server)
    VerifyBackup {
        /// The backup file
        file: PathBuf,
        #[command(flatten)]
        key: AuditKey,
    },
    /// Verify a backup, then make a new data directory of it
    Restore {
        /// The backup file
        file: PathBuf,
        /// The new data directory (must not hold a store yet)
        #[arg(long)]
        data_dir: PathBuf,
        /// Master key file [default: the data directory's master.key]
        #[arg(long, env = "ROTOR_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReplicateCommand {
    /// Add a rule: `--from SOURCE --to DEST` copies (a source ending in / is a prefix,
    /// mapped path by path), `--template T --to DEST` merges several sources
    Add {
        /// Rule name
        name: String,
        /// The source secret, or a prefix ending in /
        #[arg(long, conflicts_with = "template")]
        from: Option<String>,
        /// The destination secret (a prefix for a prefix source)
        #[arg(long)]
        to: String,
        /// A merge template over several sources: `${/path}`, `${/path#field}`, `|urlencode`
        #[arg(long, required_unless_present = "from")]
        template: Option<String>,
    },
    /// List rules
    List,
    /// Show a rule
    Show {
        /// Rule name
        name: String,
    },
    /// Remove a rule (its destinations stay, writable again)
    Remove {
        /// Rule name
        name: String,
    },
    /// Repair destinations that drifted from their sources
    Sync,
}

#[derive(Subcommand, Debug)]
pub enum RotatorCommand {
    /// Register a rotator; the AWS API names it arn:aws:lambda:REGION:ACCOUNT:function:NAME
    Create(Box<RotatorArgs>),
    /// List rotators
    List,
    /// Show a rotator's type and settings
    Show {
        /// Rotator name
        name: String,
    },
    /// Delete a rotator
    Delete {
        /// Rotator name
        name: String,
    },
}

/// `rotor rotator create`: each option sets one field of the type's settings, on
/// top of `--config`.
#[derive(Args, Debug)]
pub struct RotatorArgs {
    /// Rotator name (letters, digits, - and _; at most 64)
    pub name: String,
    /// What performs the rotation
    #[arg(long = "type", value_name = "TYPE",
          value_parser = PossibleValuesParser::new(rotor_engine::rotation::KINDS)
              .try_map(api_enum::<RotatorKind>))]
    pub kind: RotatorKind,
    /// webhook: the URL the signed events are POSTed to
    #[arg(long)]
    pub url: Option<String>,
    /// exec: the command, one argument per use (--command ./rotate.sh --command --verbose)
    #[arg(long = "command", value_name = "ARG", allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// lambda: the rotation function, as module.function
    #[arg(long)]
    pub handler: Option<String>,
    /// lambda: the directory holding the handler's module, on the server's machine
    /// (a relative path is made absolute here)
    #[arg(long)]
    pub code_dir: Option<PathBuf>,
    /// postgres, mysql: single-user, or alternating-users (a user and its clone take turns)
    #[arg(long, value_parser = ["single-user", "alternating-users"])]
    pub strategy: Option<String>,
    /// random, postgres, mysql: length of the new password
    #[arg(long)]
    pub length: Option<usize>,
    /// random: the JSON field of the value to replace (the whole value when unset)
    #[arg(long)]
    pub field: Option<String>,
    /// webhook, exec, lambda: longest a step may take, in milliseconds [default: 30000]
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// webhook, exec, lambda: also send Rotor's retirePrevious step, to disable the previous credential once no consumer uses it
    #[arg(long)]
    pub retire: bool,
    /// The type's settings as a JSON object; the options above are set on top of it
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// Replace a rotator of the same name
    #[arg(long)]
    pub replace: bool,
}

#[derive(Subcommand, Debug)]
pub enum RotationCommand {
    /// Configure a secret's rotation: its rotator and schedule
    #[command(group(ArgGroup::new("schedule_source").required(true).args(["every_days", "schedule"])))]
    Set {
        /// Secret name or ARN
        name: String,
        /// Rotator name
        #[arg(long)]
        rotator: String,
        /// Rotate every N days (1-1000)
        #[arg(long, value_name = "N")]
        every_days: Option<i64>,
        /// rate(N hours|days) or cron(0 H DOM MON DOW *), in UTC
        #[arg(long, value_name = "EXPR")]
        schedule: Option<String>,
        /// Length of the window a scheduled rotation runs in (1h-24h)
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
        /// Also rotate now
        #[arg(long)]
        now: bool,
        #[command(flatten)]
        adoption: AdoptionArgs,
    },
    /// Show a secret's rotation: rotator, schedule, and the latest rotation's steps
    Show {
        /// Secret name or ARN
        name: String,
    },
    /// List a secret's rotations, newest first
    History {
        /// Secret name or ARN
        name: String,
        /// How many (1-1000)
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Turn scheduled rotation off and stop a running rotation after its current step
    Cancel {
        /// Secret name or ARN
        name: String,
    },
}

/// What rotations do about a secret's consumers; each option left out keeps its
/// setting.
#[derive(Args, Debug, Default)]
pub struct AdoptionArgs {
    /// Don't wait for live consumers before invalidating the credential they use
    #[arg(long)]
    pub no_wait_for_consumers: bool,
    /// Wait for live consumers again (the default)
    #[arg(long, conflicts_with = "no_wait_for_consumers")]
    pub wait_for_consumers: bool,
    /// How long a rotation waits for its consumers (30s, 10m, 1h; at most 24h) [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = seconds)]
    pub adoption_timeout: Option<i64>,
    /// What happens when that time runs out: fail (AWSCURRENT stays) or proceed [default: fail]
    #[arg(long, value_name = "WHAT", value_parser = ["fail", "proceed"])]
    pub on_timeout: Option<String>,
    /// Retire the previous credential once every live consumer has adopted the new one
    #[arg(long)]
    pub retire_previous: bool,
    /// Leave the previous credential valid until the next rotation (the default)
    #[arg(long, conflicts_with = "retire_previous")]
    pub keep_previous: bool,
    /// How long a reader that is not a registered consumer counts as using what it last read [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = seconds)]
    pub assume_adopted_after: Option<i64>,
}

/// `30s`, `10m`, `2h`, `1d` or a number of seconds.
pub fn seconds(text: &str) -> Result<i64, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 10m or 1h"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} is not a duration such as 30s, 10m or 1h")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify an audit log's hash chain; reports the first entry where it breaks
    Verify {
        /// The audit log file
        file: PathBuf,
        #[command(flatten)]
        key: AuditKey,
        /// Checkpoint file [default: FILE.checkpoint when it exists]
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print the HMAC an audit entry records for a sensitive field's value
    Hash {
        /// Field: description or tag (KEY=VALUE)
        field: String,
        /// The value to match
        value: String,
        #[command(flatten)]
        key: AuditKey,
    },
}

/// Where the master key that keys the audit chain comes from.
#[derive(Args, Debug)]
pub struct AuditKey {
    /// Master key file
    #[arg(long, env = "ROTOR_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The server's data directory (for its master.key)
    #[arg(long, env = "ROTOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PrincipalCommand {
    /// Create a principal
    Create {
        /// Principal name
        name: String,
        /// What it is
        #[arg(long, default_value = "service",
              value_parser = PossibleValuesParser::new(["service", "person"])
                  .try_map(api_enum::<PrincipalKind>))]
        kind: PrincipalKind,
    },
    /// List principals with their policies, tokens and keys
    List,
    /// Delete a principal with its tokens and keys
    Delete {
        /// Principal name
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token for a principal (shown once)
    Create {
        /// Principal name
        principal: String,
        /// Lifetime in seconds (no expiry when unset)
        #[arg(long)]
        ttl: Option<i64>,
    },
    /// Revoke a token, given by id or value
    Revoke {
        /// Token id (tok_...) or the token itself
        token: String,
    },
    /// Show a token (by id or value), or the one in use
    Lookup {
        /// Token id (tok_...) or the token itself; the one in use when omitted
        token: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccessKeyCommand {
    /// Create an access key pair for a principal (the secret is shown once)
    Create {
        /// Principal name
        principal: String,
    },
    /// Delete an access key pair
    Delete {
        /// Access key id
        access_key_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Create or replace a policy from a JSON file ({"statements": [...]}; - for stdin)
    Put {
        /// Policy name
        name: String,
        /// The JSON document
        file: PathBuf,
    },
    /// Show a policy
    Get {
        /// Policy name
        name: String,
    },
    /// List policies
    List,
    /// Delete a policy (detaching it everywhere)
    Delete {
        /// Policy name
        name: String,
    },
    /// Attach a policy to a principal
    Attach {
        /// Policy name
        policy: String,
        /// Principal name
        principal: String,
    },
    /// Detach a policy from a principal
    Detach {
        /// Policy name
        policy: String,
        /// Principal name
        principal: String,
    },
}

#[derive(Args, Debug)]
pub struct ValueArgs {
    /// The value, as text
    #[arg(long, group = "value_source")]
    pub value: Option<String>,
    /// Read the value from a file (text)
    #[arg(long, group = "value_source")]
    pub value_file: Option<PathBuf>,
    /// Read the value from standard input
    #[arg(long, group = "value_source")]
    pub value_stdin: bool,
    /// Read a binary value from a file
    #[arg(long, group = "value_source")]
    pub binary_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Create a secret
    Create {
        /// Secret name or ARN
        name: String,
        #[command(flatten)]
        value: ValueArgs,
        /// Description
        #[arg(long)]
        description: Option<String>,
        /// Tag as KEY=VALUE (repeatable)
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Id of the first version (e.g. v1); a UUID when unset
        #[arg(long)]
        version_id: Option<String>,
    },
    /// Put a new version (it becomes current unless --stage says otherwise)
    Put {
        /// Secret name or ARN
        name: String,
        #[command(flatten)]
        value: ValueArgs,
        /// Version id (e.g. v2); a UUID when unset
        #[arg(long)]
        version_id: Option<String>,
        /// Staging label for the new version (repeatable; aliases: current, previous, pending, ACSCurrent, ACSPrevious)
        #[arg(long = "stage")]
        stages: Vec<String>,
    },
    /// Print a version's value (AWSCURRENT unless told)
    Get {
        /// Secret name or ARN
        name: String,
        #[arg(long)]
        version_id: Option<String>,
        /// Staging label or alias
        #[arg(long)]
        stage: Option<String>,
    },
    /// Show a secret's metadata
    Describe {
        /// Secret name or ARN
        name: String,
    },
    /// List secrets
    List {
        /// Only names starting with this
        #[arg(long)]
        prefix: Option<String>,
        /// Include secrets scheduled for deletion
        #[arg(long)]
        include_deleted: bool,
    },
    /// List a secret's versions
    Versions {
        /// Secret name or ARN
        name: String,
        /// Include versions without labels
        #[arg(long)]
        include_deprecated: bool,
    },
    /// After a change made by hand, retire the previous credential once no live consumer uses it
    RetirePrevious {
        /// Secret name or ARN
        name: String,
        /// Wait (up to the secret's adoption timeout) for its consumers to move on, instead of refusing at once
        #[arg(long)]
        wait: bool,
    },
    /// Move a staging label to a version, or remove it from one
    Stage {
        /// Secret name or ARN
        name: String,
        /// The label (or alias)
        label: String,
        /// Version to move it to
        #[arg(long)]
        to: Option<String>,
        /// Version to remove it from
        #[arg(long)]
        from: Option<String>,
    },
    /// Delete a secret (after a recovery window unless --force)
    Delete {
        /// Secret name or ARN
        name: String,
        /// Days before it is removed for good (7-30, default 30)
        #[arg(long)]
        recovery_window_days: Option<i64>,
        /// Delete now, without recovery
        #[arg(long)]
        force: bool,
    },
    /// Cancel a scheduled deletion
    Restore {
        /// Secret name or ARN
        name: String,
    },
    /// Add tags (KEY=VALUE) or remove them (--remove KEY)
    Tag {
        /// Secret name or ARN
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Tag key to remove (repeatable)
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct PasswordArgs {
    /// Length (1-4096)
    #[arg(long, default_value_t = 32)]
    pub length: usize,
    /// Characters never to use
    #[arg(long)]
    pub exclude_characters: Option<String>,
    #[arg(long)]
    pub exclude_numbers: bool,
    #[arg(long)]
    pub exclude_punctuation: bool,
    #[arg(long)]
    pub exclude_uppercase: bool,
    #[arg(long)]
    pub exclude_lowercase: bool,
    #[arg(long)]
    pub include_space: bool,
    /// Don't require one character of each included class
    #[arg(long)]
    pub no_require_each_type: bool,
    /// Generate locally instead of asking the server
    #[arg(long)]
    pub local: bool,
}

//! One `[[template]]`: a minijinja template whose `secret(REF)` calls resolve
//! references, rendered to a file atomically with its mode and owner, and the action
//! (a command or a signal) run when the file changes.
//!
//! Rendering is synchronous in minijinja while resolving is not, so a render runs in
//! passes: `secret()` answers from the resolver's cache, and a reference that is not
//! there yet is noted and answered with an empty string; the noted references are
//! then fetched (together) and the template rendered again, until a pass needs
//! nothing new. Once the cache is warm a render is one pass with no I/O.

use crate::Used;
use crate::config::{AgentConfig, TemplateSection};
use crate::signal::{KillError, SignalError, kill, signal_name};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use rotor_client::cache::Resolved;
use rotor_client::resolver::{ResolveError, Resolver};
use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// The name every template has inside its own environment.
const NAME: &str = "template";

/// A template needing more passes than this keeps asking for new references.
const MAX_PASSES: usize = 16;

/// The longest a template's command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A `[[template]]` cannot be used: its source, settings or syntax.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Its `source` could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file, made absolute against the configuration's directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Both or neither of `source` and `contents`.
    #[error("give either source or contents")]
    SourceOrContents,
    /// `mode` is not an octal file mode.
    #[error("mode {mode:?} is not an octal file mode such as \"0600\"")]
    Mode {
        /// The mode given.
        mode: String,
    },
    /// `owner` names a user that `/etc/passwd` does not hold.
    #[error("owner: no user {user:?} in /etc/passwd")]
    NoUser {
        /// The user.
        user: String,
    },
    /// `owner` names a user whose `/etc/passwd` entry has no numeric id.
    #[error("owner: bad /etc/passwd entry for {user:?}")]
    BadPasswdEntry {
        /// The user.
        user: String,
    },
    /// `owner` names a group that `/etc/group` does not hold.
    #[error("owner: no group {group:?} in /etc/group")]
    NoGroup {
        /// The group.
        group: String,
    },
    /// Both `command` and `signal`.
    #[error("give either command or signal, not both")]
    CommandAndSignal,
    /// A `command` without a program.
    #[error("command must name a program")]
    EmptyCommand,
    /// `signal` names no known signal.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The template engine could not be set up.
    #[error(transparent)]
    Engine(minijinja::Error),
    /// The template does not compile.
    #[error("template for {}", .destination.display())]
    Syntax {
        /// The template's destination.
        destination: PathBuf,
        /// Where and why.
        source: minijinja::Error,
    },
}

/// Rendering a template, or writing its file, failed; the file keeps its last content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RenderError {
    /// The compiled template could not be found again.
    #[error(transparent)]
    Template(minijinja::Error),
    /// The template failed: a reference that could not be resolved, an undefined
    /// name, a filter's error. The message never holds a value.
    #[error("{0}")]
    Render(minijinja::Error),
    /// A fetch of a reference panicked.
    #[error(transparent)]
    Fetch(tokio::task::JoinError),
    /// Each pass found references the pass before had not asked for.
    #[error(
        "the template asked for new references in each of {} passes",
        MAX_PASSES
    )]
    TooManyPasses,
    /// The file could not be written.
    #[error("writing {}", .destination.display())]
    Write {
        /// The file.
        destination: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The task writing the file panicked.
    #[error(transparent)]
    WriteTask(tokio::task::JoinError),
}

/// A template's action (its command or signal) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ActionError {
    /// The command could not be started.
    #[error("starting {program:?}")]
    Start {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command ran longer than [`COMMAND_TIMEOUT`] and was killed.
    #[error("{program:?} ran longer than {timeout:?}")]
    Timeout {
        /// The program.
        program: String,
        /// The time it had.
        timeout: Duration,
        /// The timer's error.
        source: tokio::time::error::Elapsed,
    },
    /// Waiting for the command failed.
    #[error(transparent)]
    Wait(std::io::Error),
    /// The command exited with a failure.
    #[error("{program:?} failed: {status}")]
    Failed {
        /// The program.
        program: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The pid file could not be read.
    #[error("reading the pid file {}", .path.display())]
    ReadPidFile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The pid file holds no process id.
    #[error("the pid file {} holds no process id", .path.display())]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        source: std::num::ParseIntError,
    },
    /// The signal could not be sent.
    #[error(transparent)]
    Kill(#[from] KillError),
}

/// What a template does when its file changes.
#[derive(Debug, Clone)]
pub enum Action {
    /// Run this program with these arguments.
    Command(Vec<String>),
    /// Send `signal` to the process whose id is in `pid_file`.
    Signal { pid_file: PathBuf, signal: String },
}

/// What `secret()` saw during one render.
#[derive(Default)]
struct Pass {
    /// What each reference resolved to, in this render.
    values: HashMap<String, Result<Arc<Resolved>, ResolveError>>,
    /// References in the order the template first used them.
    order: Vec<String>,
    /// References not resolved yet: the next pass needs them.
    missing: Vec<String>,
}

/// Whether the file was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The rendered content is what the file holds.
    Unchanged,
    /// The file was written.
    Written,
}

/// A compiled `[[template]]`, the file it renders and what it last used.
pub(crate) struct Template {
    pub destination: PathBuf,
    env: Environment<'static>,
    pass: Arc<Mutex<Pass>>,
    mode: u32,
    owner: Option<(u32, Option<u32>)>,
    pub action: Option<Action>,
    /// The content the file holds, as far as the agent knows: read from disk the
    /// first time, then what it wrote.
    last: Option<Zeroizing<String>>,
    checked_disk: bool,
    /// The references the last render used or tried to use.
    pub used: Vec<Used>,
    /// The last render's failure, so that a failure repeating every tick is logged once.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("destination", &self.destination)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

fn lock(pass: &Mutex<Pass>) -> std::sync::MutexGuard<'_, Pass> {
    pass.lock().unwrap_or_else(|e| e.into_inner())
}

impl Template {
    /// Compiles `section` (a syntax error fails here, at start) over `resolver`.
    pub fn new(
        section: &TemplateSection,
        config: &AgentConfig,
        resolver: &Resolver,
    ) -> Result<Self, TemplateError> {
        let destination = config.path(&section.destination);
        let source = match (&section.source, &section.contents) {
            (Some(path), None) => {
                let path = config.path(path);
                std::fs::read_to_string(&path)
                    .map_err(|source| TemplateError::Read { path, source })?
            }
            (None, Some(text)) => text.clone(),
            _ => return Err(TemplateError::SourceOrContents),
        };
        let mode = match &section.mode {
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| TemplateError::Mode { mode: m.clone() })?,
            None => 0o600,
        };
        let owner = match &section.owner {
            Some(o) if is_root() => Some(owner(o)?),
            Some(o) => {
                tracing::info!(destination = %destination.display(), owner = %o, "not running as root: the file keeps this process's owner");
                None
            }
            None => None,
        };
        let action = match (&section.command, &section.signal) {
            (Some(_), Some(_)) => return Err(TemplateError::CommandAndSignal),
            (Some(argv), None) if argv.first().is_none_or(String::is_empty) => {
                return Err(TemplateError::EmptyCommand);
            }
            (Some(argv), None) => Some(Action::Command(argv.clone())),
            (None, Some(s)) => Some(Action::Signal {
                pid_file: config.path(&s.pid_file),
                signal: signal_name(&s.signal)?,
            }),
            (None, None) => None,
        };
        let pass = Arc::new(Mutex::new(Pass::default()));
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .map_err(TemplateError::Engine)?,
        );
        let seen = pass.clone();
        let cache = resolver.clone();
        env.add_function(
            "secret",
            move |reference: &str| -> Result<String, minijinja::Error> {
                let mut pass = lock(&seen);
                if !pass.values.contains_key(reference) {
                    match cache.cached(reference) {
                        Some(v) => {
                            pass.values.insert(reference.to_string(), Ok(v));
                        }
                        None => {
                            if !pass.missing.iter().any(|m| m == reference) {
                                pass.missing.push(reference.to_string());
                            }
                            return Ok(String::new());
                        }
                    }
                    pass.order.push(reference.to_string());
                }
                match &pass.values[reference] {
                    Ok(v) => Ok(v.expose_secret().to_string()),
                    Err(e) => Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("secret({reference}): {e}"),
                    )),
                }
            },
        );
        env.add_template_owned(NAME, source)
            .map_err(|source| TemplateError::Syntax {
                destination: destination.clone(),
                source,
            })?;
        Ok(Template {
            destination,
            env,
            pass,
            mode,
            owner,
            action,
            last: None,
            checked_disk: false,
            used: Vec::new(),
            last_error: None,
        })
    }

    /// Renders the template, resolving what it needs through `resolver`.
    pub(crate) async fn render(
        &mut self,
        resolver: &Resolver,
    ) -> Result<Zeroizing<String>, RenderError> {
        *lock(&self.pass) = Pass::default();
        let result = self.passes(resolver).await;
        let pass = std::mem::take(&mut *lock(&self.pass));
        self.used = pass
            .order
            .iter()
            .chain(&pass.missing)
            .map(|r| Used::new(r, pass.values.get(r).and_then(|v| v.as_ref().ok())))
            .collect();
        result
    }

    async fn passes(&self, resolver: &Resolver) -> Result<Zeroizing<String>, RenderError> {
        let template = self.env.get_template(NAME).map_err(RenderError::Template)?;
        for _ in 0..MAX_PASSES {
            let out = template.render(()).map(Zeroizing::new);
            let missing = std::mem::take(&mut lock(&self.pass).missing);
            if missing.is_empty() {
                return out.map_err(RenderError::Render);
            }
            let mut fetches = tokio::task::JoinSet::new();
            for reference in missing {
                let resolver = resolver.clone();
                fetches.spawn(async move {
                    let value = resolver.get(&reference).await;
                    (reference, value)
                });
            }
            while let Some(done) = fetches.join_next().await {
                let (reference, value) = done.map_err(RenderError::Fetch)?;
                let mut pass = lock(&self.pass);
                pass.order.push(reference.clone());
                pass.values.insert(reference, value);
            }
        }
        Err(RenderError::TooManyPasses)
    }

    /// Renders the template and writes the file if its content changed.
    pub async fn refresh(&mut self, resolver: &Resolver) -> Result<Outcome, RenderError> {
        let content = self.render(resolver).await?;
        if !self.checked_disk {
            self.checked_disk = true;
            self.last = std::fs::read_to_string(&self.destination)
                .ok()
                .map(Zeroizing::new);
            if self.last.as_deref().map(String::as_str) == Some(content.as_str()) {
                // Already rendered (by an agent before this one): make sure of the
                // mode and owner, without counting it as a change. What cannot be fixed
                // in place (a link planted at the destination) is written afresh: the
                // rename replaces the link instead of following it.
                if self.fix_metadata().is_err() {
                    self.last = None;
                }
            }
        }
        if self.last.as_deref().map(String::as_str) == Some(content.as_str()) {
            return Ok(Outcome::Unchanged);
        }
        let (destination, mode, owner) = (self.destination.clone(), self.mode, self.owner);
        let bytes = content.clone();
        tokio::task::spawn_blocking(move || write_atomically(&destination, &bytes, mode, owner))
            .await
            .map_err(RenderError::WriteTask)?
            .map_err(|source| RenderError::Write {
                destination: self.destination.clone(),
                source,
            })?;
        self.last = Some(content);
        Ok(Outcome::Written)
    }

    /// Sets the mode and owner of an already rendered file. The calls act on an open
    /// descriptor, and only when that descriptor is the regular, singly linked file at
    /// the destination itself: a symlink or hard link planted there (pointing at
    /// `/etc/shadow`, say) is refused rather than followed.
    fn fix_metadata(&self) -> std::io::Result<()> {
        let file = std::fs::File::open(&self.destination)?;
        let meta = file.metadata()?;
        let entry = std::fs::symlink_metadata(&self.destination)?;
        if !entry.file_type().is_file()
            || entry.dev() != meta.dev()
            || entry.ino() != meta.ino()
            || meta.nlink() != 1
        {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file of its own (a link?): not changing its mode or owner",
                self.destination.display()
            )));
        }
        if meta.mode() & 0o7777 != self.mode {
            file.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        }
        if let Some((uid, gid)) = self.owner
            && (meta.uid() != uid || gid.is_some_and(|g| meta.gid() != g))
        {
            std::os::unix::fs::fchown(&file, Some(uid), gid)?;
        }
        Ok(())
    }

    /// Runs the template's action, if it has one.
    pub async fn act(&self) -> Result<(), ActionError> {
        match &self.action {
            None => Ok(()),
            Some(Action::Command(argv)) => {
                let program = || argv[0].clone();
                let mut child = tokio::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .env("ROTOR_TEMPLATE_DESTINATION", &self.destination)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|source| ActionError::Start {
                        program: program(),
                        source,
                    })?;
                let status = tokio::time::timeout(COMMAND_TIMEOUT, child.wait())
                    .await
                    .map_err(|source| ActionError::Timeout {
                        program: program(),
                        timeout: COMMAND_TIMEOUT,
                        source,
                    })?
                    .map_err(ActionError::Wait)?;
                if !status.success() {
                    return Err(ActionError::Failed {
                        program: program(),
                        status,
                    });
                }
                Ok(())
            }
            Some(Action::Signal { pid_file, signal }) => {
                let text = std::fs::read_to_string(pid_file).map_err(|source| {
                    ActionError::ReadPidFile {
                        path: pid_file.clone(),
                        source,
                    }
                })?;
                let pid: u32 = text.trim().parse().map_err(|source| ActionError::PidFile {
                    path: pid_file.clone(),
                    source,
                })?;
                Ok(kill(pid, signal).await?)
            }
        }
    }
}

/// Writes `content` to a temporary file beside `destination` with `mode` (and
/// `owner`), fsyncs it, renames it over `destination` and fsyncs the directory: a
/// reader sees the old file or the new one, never a part.
fn write_atomically(
    destination: &Path,
    content: &str,
    mode: u32,
    owner: Option<(u32, Option<u32>)>,
) -> std::io::Result<()> {
    let dir = match destination.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let file_name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.rotor-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits off the mode asked for.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), gid)?;
        }
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, destination)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether this process runs as root (effective uid 0), from `/proc/self/status`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `user[:group]` as ids: numbers, or names from `/etc/passwd` and `/etc/group`. A
/// user without a group gets its primary group.
fn owner(spec: &str) -> Result<(u32, Option<u32>), TemplateError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str| -> Option<Vec<String>> {
        std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
            let fields: Vec<String> = l.split(':').map(str::to_string).collect();
            (fields.first().map(String::as_str) == Some(name)).then_some(fields)
        })
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => {
            let fields = lookup("/etc/passwd", user).ok_or_else(|| TemplateError::NoUser {
                user: user.to_string(),
            })?;
            let id = |i: usize| fields.get(i).and_then(|f| f.parse::<u32>().ok());
            let uid = id(2).ok_or_else(|| TemplateError::BadPasswdEntry {
                user: user.to_string(),
            })?;
            (uid, id(3))
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup("/etc/group", g)
                .and_then(|f| f.get(2).and_then(|id| id.parse().ok()))
                .ok_or_else(|| TemplateError::NoGroup {
                    group: g.to_string(),
                })?,
        }),
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Chain;
    use rotor_client::resolver::{VaultConfig, Vaults};

    /// A resolver over vault `files`: the files of `dir`.
    fn resolver(dir: &Path) -> Resolver {
        Resolver::new(
            Vaults::new()
                .with("files", VaultConfig::file(dir.join("vault")))
                .unwrap(),
        )
    }

    fn template(dir: &Path, contents: &str, resolver: &Resolver) -> Template {
        let config = AgentConfig {
            base_dir: dir.to_path_buf(),
            ..Default::default()
        };
        let section = TemplateSection {
            source: None,
            contents: Some(contents.into()),
            destination: "out/app.conf".into(),
            mode: Some("0640".into()),
            owner: None,
            command: None,
            signal: None,
        };
        Template::new(&section, &config, resolver).unwrap()
    }

    fn vault_file(dir: &Path, name: &str, value: &str) {
        std::fs::create_dir_all(dir.join("vault")).unwrap();
        std::fs::write(dir.join("vault").join(name), value).unwrap();
    }

    #[tokio::test]
    async fn references_that_depend_on_values_are_fetched_in_further_passes() {
        let dir = tempfile::tempdir().unwrap();
        vault_file(dir.path(), "flag", "on");
        vault_file(dir.path(), "db", r#"{"user": "app", "password": "s3cr3t"}"#);
        let r = resolver(dir.path());
        let contents = "{% if secret('{vault://files/flag}') == 'on' %}user={{ secret('{vault://files/db/user}') }} password={{ secret('{vault://files/db/password}') }}{% endif %}\n";
        let mut t = template(dir.path(), contents, &r);
        assert_eq!(t.refresh(&r).await.unwrap(), Outcome::Written);
        let out = dir.path().join("out/app.conf");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "user=app password=s3cr3t\n",
            "the trailing newline is kept"
        );
        // Fetches of one pass finish in any order.
        let mut refs: Vec<&str> = t.used.iter().map(|u| u.reference.as_str()).collect();
        refs.sort_unstable();
        assert_eq!(
            refs,
            [
                "{vault://files/db/password}",
                "{vault://files/db/user}",
                "{vault://files/flag}"
            ]
        );
        let mode = std::fs::metadata(&out).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o640);

        // Rendering again with nothing changed writes nothing.
        assert_eq!(t.refresh(&r).await.unwrap(), Outcome::Unchanged);

        // A new agent finds the file as it would render it: no change, mode repaired.
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut again = template(dir.path(), contents, &r);
        assert_eq!(again.refresh(&r).await.unwrap(), Outcome::Unchanged);
        let mode = std::fs::metadata(&out).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o640);
    }

    #[tokio::test]
    async fn a_failed_reference_fails_the_render_by_name_and_leaves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        vault_file(dir.path(), "db", r#"{"password": "s3cr3t"}"#);
        let r = resolver(dir.path());
        let mut t = template(
            dir.path(),
            "a={{ secret('{vault://files/db/password}') }} b={{ secret('{vault://files/db/missing}') }}",
            &r,
        );
        let err = Chain(&t.refresh(&r).await.unwrap_err()).to_string();
        assert!(err.contains("{vault://files/db/missing}"), "{err}");
        assert!(!err.contains("s3cr3t"), "no values in errors: {err}");
        assert!(!dir.path().join("out/app.conf").exists());
        assert_eq!(
            t.used.len(),
            2,
            "both references are known, for change events"
        );

        let mut t = template(dir.path(), "{{ secret('{vault://nowhere/x}') }}", &r);
        let err = Chain(&t.refresh(&r).await.unwrap_err()).to_string();
        assert!(err.contains("no vault named \"nowhere\""), "{err}");
    }

    /// Issue 11, hole 10: the fix-up of an already rendered file followed a symlink
    /// planted at the destination, changing the mode of the file it pointed at.
    #[tokio::test]
    async fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        vault_file(dir.path(), "db", "s3cr3t");
        let r = resolver(dir.path());
        let contents = "password={{ secret('{vault://files/db}') }}";
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "password=s3cr3t").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o604)).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        let out = dir.path().join("out/app.conf");
        std::os::unix::fs::symlink(&victim, &out).unwrap();

        let mut t = template(dir.path(), contents, &r);
        assert_eq!(t.refresh(&r).await.unwrap(), Outcome::Written);
        let victim_mode = std::fs::metadata(&victim).unwrap().mode() & 0o7777;
        assert_eq!(victim_mode, 0o604, "the link's target is left alone");
        let entry = std::fs::symlink_metadata(&out).unwrap();
        assert!(entry.file_type().is_file(), "the link was replaced");
        assert_eq!(entry.mode() & 0o7777, 0o640);

        // A hard link is refused the same way.
        std::fs::remove_file(&out).unwrap();
        std::fs::hard_link(&victim, &out).unwrap();
        let mut t = template(dir.path(), contents, &r);
        assert_eq!(t.refresh(&r).await.unwrap(), Outcome::Written);
        let victim_mode = std::fs::metadata(&victim).unwrap().mode() & 0o7777;
        assert_eq!(victim_mode, 0o604, "the other link's file is left alone");
    }

    #[test]
    fn owners_are_names_or_numbers() {
        assert_eq!(owner("0").unwrap(), (0, None));
        assert_eq!(owner("root").unwrap(), (0, Some(0)));
        assert_eq!(owner("1000:1000").unwrap(), (1000, Some(1000)));
        assert!(owner("no-such-user-here").is_err());
        assert!(owner("root:no-such-group-here").is_err());
    }
}

//! What both servers need from the operating system: who we run as, a free port, a
//! random password, finding binaries and reading a log's tail for error messages.

use anyhow::{Context, bail};
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How many times a server start is retried when another process took the port
/// between our probe and the server's bind.
pub(crate) const PORT_ATTEMPTS: usize = 8;

/// Whether this process runs as root (the owner of `/proc/self` is the effective uid).
pub(crate) fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// An operating-system account, looked up in `/etc/passwd`.
pub(crate) struct OsUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl OsUser {
    pub(crate) fn lookup(name: &str) -> anyhow::Result<OsUser> {
        let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4 && fields[0] == name {
                return Ok(OsUser {
                    name: name.to_owned(),
                    uid: fields[2].parse().context("uid in /etc/passwd")?,
                    gid: fields[3].parse().context("gid in /etc/passwd")?,
                });
            }
        }
        bail!(
            "no OS user {name:?} (PostgreSQL refuses to run as root; Debian's postgresql package creates it)"
        )
    }

    /// Hands `path` (not recursively) to this user.
    pub(crate) fn chown(&self, path: &Path) -> anyhow::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to {}", path.display(), self.name))
    }
}

/// A command for `program`, run as `user` through `runuser` when given.
pub(crate) fn command(program: &Path, user: Option<&OsUser>, cwd: &Path) -> Command {
    let mut cmd = match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", &user.name, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    // The caller's directory may be one the server's account cannot enter.
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion; a failure carries what it printed.
pub(crate) fn run(cmd: &mut Command, what: &str) -> anyhow::Result<Output> {
    let output = cmd.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("probing a free port")?;
    Ok(listener.local_addr()?.port())
}

/// 32 hex characters from the kernel's random source: URL-safe and SQL-literal-safe.
pub(crate) fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The last lines of a server log, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The first of `names` found in `dirs`, then on `PATH`.
pub(crate) fn find_program(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    names.iter().find_map(|name| {
        dirs.iter()
            .chain(&path_dirs)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

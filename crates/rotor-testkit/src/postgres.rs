//! A throwaway PostgreSQL cluster: `initdb` into a temporary directory, `pg_ctl start`.

use crate::process::{self, OsUser, PORT_ATTEMPTS};
use anyhow::{Context, anyhow, bail};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tempfile::TempDir;

/// The superuser `initdb` creates.
const SUPERUSER: &str = "postgres";

/// Settings appended to `postgresql.conf`: throwaway data needs no durability, which
/// makes every commit cheap. The unix socket lives in the server's own directory.
const SETTINGS: &str = "
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 100
";

/// A PostgreSQL server of its own, for one test.
///
/// TCP connections on `127.0.0.1` authenticate with `scram-sha-256`; connections on
/// the unix socket in [`PgServer::socket_dir`] are trusted. When the test runs as
/// root, `initdb` and the server run as the `postgres` OS user (PostgreSQL refuses
/// root), and the directory belongs to that user.
pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    os_user: Option<OsUser>,
    port: u16,
    password: String,
    /// Whether the server is up; the lock also serializes pause and resume.
    running: Mutex<bool>,
}

impl PgServer {
    /// Creates a cluster in a new temporary directory and starts it on a free port,
    /// returning once it accepts connections.
    pub fn start() -> anyhow::Result<PgServer> {
        let bin = find_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("rotor-pg-")
            .tempdir()
            .context("creating the PostgreSQL directory")?;
        let os_user = if process::is_root() {
            let user = OsUser::lookup("postgres")?;
            user.chown(dir.path())?;
            Some(user)
        } else {
            None
        };
        let password = process::random_password()?;
        let mut server = PgServer {
            dir,
            bin,
            os_user,
            port: 0,
            password,
            running: Mutex::new(false),
        };
        server.init()?;
        server.start_on_free_port()?;
        Ok(server)
    }

    fn init(&self) -> anyhow::Result<()> {
        let pwfile = self.dir.path().join("pwfile");
        fs::write(&pwfile, &self.password).context("writing the password file")?;
        if let Some(user) = &self.os_user {
            user.chown(&pwfile)?;
        }
        let mut initdb = self.command("initdb");
        initdb
            .arg("--pgdata")
            .arg(self.data_dir())
            .args(["--username", SUPERUSER])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
            .args(["--encoding=UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        let result = process::run(&mut initdb, "initdb");
        fs::remove_file(&pwfile).context("removing the password file")?;
        result?;

        let conf = self.data_dir().join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .with_context(|| format!("opening {}", conf.display()))?;
        writeln!(
            file,
            "{SETTINGS}unix_socket_directories = '{}'",
            self.socket_dir().display()
        )
        .context("writing postgresql.conf")?;
        Ok(())
    }

    /// Starts the server, trying another port when someone took the one we probed.
    fn start_on_free_port(&mut self) -> anyhow::Result<()> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = process::free_port()?;
            match self.pg_ctl_start() {
                Ok(()) => {
                    *self.running.get_mut().unwrap_or_else(|e| e.into_inner()) = true;
                    return Ok(());
                }
                Err(e)
                    if process::log_tail(&self.log_path()).contains("Address already in use") =>
                {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("no free port")))
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        // A fresh log per start, so that its tail is about this attempt.
        let _ = fs::remove_file(self.log_path());
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("start")
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--log")
            .arg(self.log_path())
            .args(["--wait", "--timeout=60", "--silent"])
            .arg(format!("--options=-p {}", self.port));
        process::run(&mut pg_ctl, "pg_ctl start")
            .map(drop)
            .map_err(|e| {
                anyhow!(
                    "{e:#}\nserver log:\n{}",
                    process::log_tail(&self.log_path())
                )
            })
    }

    fn pg_ctl_stop(&self, mode: &str) -> anyhow::Result<()> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("stop")
            .arg("--pgdata")
            .arg(self.data_dir())
            .args(["--mode", mode, "--wait", "--silent"]);
        process::run(&mut pg_ctl, "pg_ctl stop").map(drop)
    }

    fn command(&self, program: &str) -> std::process::Command {
        process::command(
            &self.bin.join(program),
            self.os_user.as_ref(),
            self.dir.path(),
        )
    }

    /// Stops the server (fast shutdown); the port refuses connections until
    /// [`PgServer::resume`]. Does nothing when it is already stopped.
    pub fn pause(&self) -> anyhow::Result<()> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if *running {
            self.pg_ctl_stop("fast")?;
            *running = false;
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same data. Does nothing when
    /// it is running.
    pub fn resume(&self) -> anyhow::Result<()> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if !*running {
            self.pg_ctl_start()?;
            *running = true;
        }
        Ok(())
    }

    /// The directory of the PostgreSQL programs it was started with (`psql` is there).
    pub fn bin_dir(&self) -> &std::path::Path {
        &self.bin
    }

    /// The address the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name: `postgres`.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The superuser's password (32 random hex characters).
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// A connection URL for database `db` as the superuser, over TCP. `db` is not
    /// percent-encoded: give a plain name.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@{}:{}/{db}",
            self.password,
            self.host(),
            self.port
        )
    }

    /// The directory holding the unix socket (connections there are trusted).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if *self.running.get_mut().unwrap_or_else(|e| e.into_inner()) {
            // Immediate: the data is thrown away next, nothing needs a checkpoint.
            let _ = self.pg_ctl_stop("immediate");
        }
    }
}

impl fmt::Debug for PgServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgServer")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// The `bin` directory of the newest PostgreSQL under `/usr/lib/postgresql`, or the
/// directory of the `initdb` on `PATH`.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = version_key(&entry.file_name().to_string_lossy())?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    if let Some(initdb) = process::find_program(&["initdb"], &[])
        && let Some(bin) = initdb.parent()
    {
        return Ok(bin.to_path_buf());
    }
    bail!("PostgreSQL server binaries not found (run scripts/ensure-test-deps)")
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else is not a version directory.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn versions_order_numerically() {
        assert!(version_key("10") > version_key("9.6"));
        assert_eq!(version_key("main"), None);
    }
}

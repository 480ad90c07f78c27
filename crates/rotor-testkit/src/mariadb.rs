//! A throwaway MariaDB server: `mariadb-install-db` into a temporary directory, then
//! `mariadbd` as a child process.

use crate::process::{self, PORT_ATTEMPTS};
use anyhow::{Context, anyhow, bail};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The account with every privilege.
const SUPERUSER: &str = "root";

/// How long a start may take before it is reported as failed.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Server options shared by the bootstrap and the server: small InnoDB files and
/// buffers, and buffered writes without fsync (throwaway data; what is written
/// survives the server being killed, which is all a test needs). The default
/// `O_DIRECT` makes a start several times slower while a build competes for the disk.
const SERVER_OPTIONS: &[&str] = &[
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-flush-method=nosync",
    "--innodb-doublewrite=0",
    "--skip-name-resolve",
];

/// A MariaDB server of its own, for one test.
///
/// `root` has a random password and `mysql_native_password` authentication on every
/// host entry (`localhost`, `127.0.0.1`, `::1`); TCP connections on `127.0.0.1` check
/// it. Host names are not resolved, so accounts are matched by IP address.
pub struct MariaDb {
    dir: TempDir,
    server: PathBuf,
    as_root: bool,
    port: u16,
    password: String,
    /// The running server; `None` while paused. The lock serializes pause and resume.
    child: Mutex<Option<Child>>,
}

impl MariaDb {
    /// Creates a data directory in a new temporary directory and starts a server on a
    /// free port, returning once it accepts connections.
    pub fn start() -> anyhow::Result<MariaDb> {
        let sbin = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")];
        let server = process::find_program(&["mariadbd", "mysqld"], &sbin)
            .ok_or_else(|| anyhow!("mariadbd not found (run scripts/ensure-test-deps)"))?;
        let install_db = process::find_program(&["mariadb-install-db", "mysql_install_db"], &sbin)
            .ok_or_else(|| {
                anyhow!("mariadb-install-db not found (run scripts/ensure-test-deps)")
            })?;
        let dir = tempfile::Builder::new()
            .prefix("rotor-mariadb-")
            .tempdir()
            .context("creating the MariaDB directory")?;
        let mut db = MariaDb {
            dir,
            server,
            as_root: process::is_root(),
            port: 0,
            password: process::random_password()?,
            child: Mutex::new(None),
        };
        db.install(&install_db)?;
        db.start_on_free_port()?;
        Ok(db)
    }

    /// Creates the system tables. The bootstrap runs with the grant tables off, so
    /// `ALTER USER` is refused there: root's password goes straight into
    /// `mysql.global_priv` instead, which spares a connection after start.
    fn install(&self, install_db: &Path) -> anyhow::Result<()> {
        let init = self.dir.path().join("init.sql");
        let sql = format!(
            "UPDATE mysql.global_priv SET priv = JSON_SET(priv, '$.plugin', 'mysql_native_password', \
             '$.authentication_string', PASSWORD('{}')) WHERE User = '{SUPERUSER}';\n",
            self.password
        );
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&init)
            .and_then(|mut f| std::io::Write::write_all(&mut f, sql.as_bytes()))
            .context("writing init.sql")?;
        let mut cmd = process::command(install_db, None, self.dir.path());
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--extra-file={}", init.display()))
            // The bootstrap's temporary tables collide in a shared /tmp when several
            // servers are installed at once.
            .arg(format!("--tmpdir={}", self.dir.path().display()))
            .args(SERVER_OPTIONS);
        if self.as_root {
            cmd.arg("--user=root");
        }
        let result = process::run(&mut cmd, "mariadb-install-db");
        fs::remove_file(&init).context("removing init.sql")?;
        result.map(drop)
    }

    /// Starts the server, trying another port when someone took the one we probed.
    fn start_on_free_port(&mut self) -> anyhow::Result<()> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = process::free_port()?;
            match self.spawn_and_wait() {
                Ok(child) => {
                    *self.child.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(child);
                    return Ok(());
                }
                Err(e) if is_port_taken(&process::log_tail(&self.log_path())) => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("no free port")))
    }

    /// Spawns `mariadbd` and waits until it greets on its unix socket. The socket is
    /// created after the TCP port is bound, so TCP is ready too.
    fn spawn_and_wait(&self) -> anyhow::Result<Child> {
        let _ = fs::remove_file(self.log_path());
        let _ = fs::remove_file(self.socket_path());
        let mut cmd = Command::new(&self.server);
        // --no-defaults must come first: no my.cnf of the machine applies.
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg(format!("--tmpdir={}", self.dir.path().display()))
            .args(SERVER_OPTIONS)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.as_root {
            cmd.arg("--user=root");
        }
        let mut child = cmd.spawn().context("spawning mariadbd")?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("waiting on mariadbd")? {
                bail!(
                    "mariadbd exited ({status}) while starting; its log:\n{}",
                    process::log_tail(&self.log_path())
                );
            }
            if greets(&self.socket_path()) {
                return Ok(child);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "mariadbd did not accept connections within {START_TIMEOUT:?}; its log:\n{}",
                    process::log_tail(&self.log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server; the port refuses connections until [`MariaDb::resume`]. Does
    /// nothing when it is already stopped.
    pub fn pause(&self) -> anyhow::Result<()> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut running) = child.take() {
            // SIGKILL: InnoDB recovers what was committed on the next start.
            running.kill().context("killing mariadbd")?;
            running.wait().context("waiting on mariadbd")?;
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same data. Does nothing when
    /// it is running.
    pub fn resume(&self) -> anyhow::Result<()> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if child.is_none() {
            *child = Some(self.spawn_and_wait()?);
        }
        Ok(())
    }

    /// The address the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name: `root`.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The superuser's password (32 random hex characters).
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// A connection URL for database `db` as the superuser, over TCP. `db` is not
    /// percent-encoded: give a plain name, or `""` for none.
    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://{SUPERUSER}:{}@{}:{}/{db}",
            self.password,
            self.host(),
            self.port
        )
    }

    /// The server's unix socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.err")
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaDb")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Whether a server answers on `socket` with its handshake packet (MariaDB speaks
/// first).
fn greets(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).is_ok()
}

/// Whether a server log says the TCP port was taken.
fn is_port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("Bind on TCP/IP port")
}

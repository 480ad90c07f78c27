//! The servers under test, each a child process: Rotor (dev or persistent), the axum
//! floor and moto.

use crate::load;
use crate::requests;
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running server; killed when dropped if not stopped.
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    /// Stops the server with SIGTERM, then SIGKILL after 5 seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Spawns `cmd` and waits for a stdout line containing `marker` followed by
/// `http://HOST:PORT`; stderr goes to `log`.
pub async fn spawn_announcing(
    name: &str,
    mut cmd: Command,
    marker: &str,
    log: PathBuf,
) -> Result<Server> {
    let log_file = std::fs::File::create(&log).with_context(|| format!("create {log:?}"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("spawn {name}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split_once(marker).map(|(_, r)| r)
                && let Some(url) = rest.trim().strip_prefix("http://")
            {
                let hostport = url.trim_end_matches('/');
                let addr: SocketAddr = hostport
                    .parse()
                    .with_context(|| format!("bad address in {line:?}"))?;
                return Ok::<_, anyhow::Error>(Some(addr));
            }
        }
        Ok(None)
    })
    .await;
    let addr = match found {
        Ok(Ok(Some(addr))) => addr,
        Ok(Ok(None)) => {
            let status = child.wait().await.ok();
            bail!(
                "{name} exited ({status:?}) without announcing its address; stderr:\n{}",
                log_tail(&log, 20)
            )
        }
        Ok(Err(e)) => bail!("{name}: {e:#}; stderr:\n{}", log_tail(&log, 20)),
        Err(_) => bail!(
            "{name} did not announce its address within {START_TIMEOUT:?}; stderr:\n{}",
            log_tail(&log, 20)
        ),
    };
    // Keep reading stdout so that the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server {
        name: name.to_string(),
        addr,
        log,
        child,
    })
}

/// Polls `GET path` until it answers `ready` (a predicate on the status).
pub async fn wait_http(server: &mut Server, path: &str, ready: impl Fn(u16) -> bool) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let req = requests::get(server.addr, path, &[]).request();
        match load::once(server.addr, req).await {
            Ok((status, _)) if ready(status.as_u16()) => return Ok(()),
            _ if Instant::now() > deadline => bail!(
                "{} did not answer GET {path} within {START_TIMEOUT:?}; log:\n{}",
                server.name,
                log_tail(&server.log, 20)
            ),
            _ => {}
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!(
                "{} exited ({status}); log:\n{}",
                server.name,
                log_tail(&server.log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rotor server --dev --listen 127.0.0.1:0`, in memory; its audit log on or off.
pub async fn rotor_dev(
    rotor: &Path,
    creds: &requests::Creds,
    dir: &Path,
    audit: bool,
) -> Result<Server> {
    let mut cmd = Command::new(rotor);
    cmd.args(["server", "--dev", "--listen", "127.0.0.1:0"])
        .env("ROTOR_AUDIT", if audit { "on" } else { "off" })
        .env("ROTOR_DEV_ROOT_TOKEN", &creds.token)
        .env("ROTOR_DEV_ACCESS_KEY_ID", &creds.access_key_id)
        .env("ROTOR_DEV_SECRET_ACCESS_KEY", &creds.secret_access_key);
    let mut server = spawn_announcing(
        "rotor (dev)",
        cmd,
        "rotor listening on",
        dir.join("rotor-dev.log"),
    )
    .await?;
    wait_http(&mut server, "/healthz", |s| s == 200).await?;
    Ok(server)
}

/// `rotor server --config DIR/rotor.toml`, SQLite under DIR/data.
pub async fn rotor_persistent(rotor: &Path, creds: &requests::Creds, dir: &Path) -> Result<Server> {
    let data = dir.join("data");
    let config = dir.join("rotor.toml");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {}\n",
        serde_json::to_string(&data.to_string_lossy())?
    );
    std::fs::write(&config, toml).with_context(|| format!("write {config:?}"))?;
    let mut cmd = Command::new(rotor);
    cmd.arg("server")
        .arg("--config")
        .arg(&config)
        .env("ROTOR_ROOT_TOKEN", &creds.token)
        .env("ROTOR_ROOT_ACCESS_KEY_ID", &creds.access_key_id)
        .env("ROTOR_ROOT_SECRET_ACCESS_KEY", &creds.secret_access_key);
    let mut server = spawn_announcing(
        "rotor (persistent)",
        cmd,
        "rotor listening on",
        dir.join("rotor-persistent.log"),
    )
    .await?;
    wait_http(&mut server, "/healthz", |s| s == 200).await?;
    Ok(server)
}

/// This binary's hidden `floor` subcommand: a bare axum server.
pub async fn floor(body_size: usize, dir: &Path) -> Result<Server> {
    let exe = std::env::current_exe().context("current_exe")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "floor",
        "--listen",
        "127.0.0.1:0",
        "--body-size",
        &body_size.to_string(),
    ]);
    let mut server = spawn_announcing(
        "axum floor",
        cmd,
        "floor listening on",
        dir.join("floor.log"),
    )
    .await?;
    wait_http(&mut server, "/", |s| s == 200).await?;
    Ok(server)
}

/// `python3 -m moto.server -H 127.0.0.1 -p PORT`, polled until it answers.
pub async fn moto(python: &str, dir: &Path) -> Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = dir.join("moto.log");
    let log_file = std::fs::File::create(&log)?;
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::from(log_file.try_clone()?))
    .stderr(Stdio::from(log_file))
    .kill_on_drop(true);
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn {python} -m moto.server"))?;
    let mut server = Server {
        name: "moto".to_string(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        log,
        child,
    };
    // Any HTTP answer means it is up.
    wait_http(&mut server, "/", |_| true).await?;
    Ok(server)
}

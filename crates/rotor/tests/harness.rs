//! Starting and stopping real `rotor server` processes.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const TOKEN: &str = "test-root-token";
pub const AKID: &str = "AKIDTEST";
pub const SECRET_KEY: &str = "test-secret-key";

/// The `rotor` binary under test: this build's, or `ROTOR_TEST_BIN` when set (to run
/// the attack suite against another build, such as the one before a fix).
pub fn bin() -> PathBuf {
    match std::env::var_os("ROTOR_TEST_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_rotor")),
    }
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub stderr_log: PathBuf,
    pub stdout_lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a server.
pub struct Launch<'a> {
    pub args: Vec<String>,
    pub envs: Vec<(&'a str, String)>,
    pub log_dir: &'a Path,
}

/// Starts `rotor server ARGS` and waits until it prints its listening line.
pub fn start(launch: Launch<'_>) -> Server {
    try_start(launch).unwrap_or_else(|e| panic!("server did not start: {e}"))
}

pub fn try_start(launch: Launch<'_>) -> Result<Server, String> {
    let stderr_log = launch.log_dir.join(format!(
        "server-{}.log",
        std::process::id() as u64 * 1000 + rand_u16() as u64
    ));
    let log = std::fs::File::create(&stderr_log).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin());
    cmd.arg("server")
        .args(&launch.args)
        .stdout(Stdio::piped())
        .stderr(log)
        .stdin(Stdio::null());
    for key in [
        "ROTOR_ROOT_TOKEN",
        "ROTOR_ROOT_ACCESS_KEY_ID",
        "ROTOR_ROOT_SECRET_ACCESS_KEY",
        "ROTOR_LISTEN",
        "ROTOR_DATA_DIR",
    ] {
        cmd.env_remove(key);
    }
    cmd.env("ROTOR_LOG", "debug");
    for (k, v) in &launch.envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("rotor listening on ") {
                    let url = url.to_string();
                    lines.push(line);
                    return Ok(Server {
                        child,
                        url,
                        stderr_log,
                        stdout_lines: lines,
                    });
                }
                lines.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                return Err(format!(
                    "exited ({status}) before listening; stdout: {lines:?}; stderr: {log}"
                ));
            }
        }
    }
}

fn rand_u16() -> u16 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (n % 65_000) as u16
}

/// A persistent server over `data_dir` with the test root credentials.
pub fn persistent(data_dir: &Path, log_dir: &Path) -> Server {
    start(Launch {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ],
        envs: root_env(),
        log_dir,
    })
}

pub fn root_env<'a>() -> Vec<(&'a str, String)> {
    vec![
        ("ROTOR_ROOT_TOKEN", TOKEN.into()),
        ("ROTOR_ROOT_ACCESS_KEY_ID", AKID.into()),
        ("ROTOR_ROOT_SECRET_ACCESS_KEY", SECRET_KEY.into()),
    ]
}

pub fn dev(log_dir: &Path) -> Server {
    start(Launch {
        args: vec!["--dev".into(), "--listen".into(), "127.0.0.1:0".into()],
        envs: vec![
            ("ROTOR_DEV_ROOT_TOKEN", TOKEN.into()),
            ("ROTOR_DEV_ACCESS_KEY_ID", AKID.into()),
            ("ROTOR_DEV_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ],
        log_dir,
    })
}

/// Sends SIGTERM and waits for the exit status.
pub fn terminate(server: &mut Server) -> std::process::ExitStatus {
    signal(server, "TERM");
    wait_exit(server, Duration::from_secs(40)).expect("server exits after SIGTERM")
}

/// Sends a signal by name (`TERM`, `HUP`) with kill(1), keeping this crate free of
/// unsafe code.
pub fn signal(server: &Server, name: &str) {
    let pid = server.child.id();
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {pid} failed");
}

pub fn wait_exit(server: &mut Server, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A native API client for the server.
pub fn client(server: &Server) -> rotor_client::Client {
    rotor_client::Client::new(&server.url, TOKEN).expect("client")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn text(s: &str) -> rotor_client::NewValue {
    rotor_client::NewValue::Text(secrecy::SecretString::from(s))
}

/// A policy's statements, from their JSON list.
pub fn statements(json: &str) -> Vec<rotor_core::policy::Statement> {
    serde_json::from_str(json).expect("policy statements")
}

/// The text of a value read with the native client.
pub fn value_of(v: &rotor_api::secrets::Value) -> &str {
    v.value.as_ref().expect("a text value").expose()
}

//! Calls Rotor makes to the outside world on behalf of rotators and event
//! subscriptions: signed webhook POSTs and local commands.
//!
//! A webhook body is signed with HMAC-SHA256 under the hook's key: the
//! `x-rotor-timestamp` header holds the Unix time in seconds, and
//! `x-rotor-signature` is `sha256=` followed by the hex of
//! `HMAC(key, "{timestamp}.{body}")`, so a receiver can check both the body and its
//! age. Any 2xx answer is success; a redirect is not followed (it would re-send the
//! signed body to wherever the receiver points), so it counts as a failure.
//!
//! An operator may bound where webhooks go with [`set_webhook_allow`]: then a
//! subscription or rotator is accepted, and a delivery made, only for a URL under one
//! of the allowed prefixes.

use rotor_core::{Error, Result};
use std::sync::OnceLock;
use std::time::Duration;

/// The only variables a command inherits from the server's environment: where
/// programs are, the home directory, the locale and the temporary directory.
/// Everything else (`ROTOR_MASTER_KEY`, `ROTOR_ROOT_*`, `ROTOR_STORAGE` with its
/// password, cloud credentials) stays with the server.
const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

/// A command for `program`, started from a cleared environment plus [`INHERITED`]:
/// what rotators and hooks run. The caller adds the variables the command needs.
pub(crate) fn command(program: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// The destinations webhooks may reach, when the operator named any.
static WEBHOOK_ALLOW: OnceLock<Vec<reqwest::Url>> = OnceLock::new();

/// Bounds webhooks (subscriptions and rotators) to URLs under `prefixes`, each a URL
/// such as `https://hooks.internal:8443/rotor/`: a URL is allowed when its scheme,
/// host and port are a prefix's and its path starts with the prefix's path. Set once,
/// at start-up; an empty list (the default) allows every http(s) URL.
pub fn set_webhook_allow(prefixes: &[String]) -> Result<()> {
    let parsed = prefixes
        .iter()
        .map(|p| {
            reqwest::Url::parse(p)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| {
                    Error::invalid_parameter(format!(
                        "webhook_allow: {p:?} is not an http(s) URL prefix"
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    WEBHOOK_ALLOW
        .set(parsed)
        .map_err(|_| Error::internal("the webhook allow-list is already set"))
}

/// Checks that a webhook may POST to `url`: an http(s) URL with a host, without
/// credentials, and under the operator's allow-list when there is one. Run when a
/// webhook is configured and again before each delivery (the list may have changed
/// across a restart).
pub(crate) fn check_destination(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            Error::invalid_parameter("A webhook's url must be an http:// or https:// URL")
        })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::invalid_parameter(
            "A webhook's url must not carry credentials",
        ));
    }
    match WEBHOOK_ALLOW.get() {
        Some(allowed) if !allowed.is_empty() => {
            if allowed.iter().any(|a| under(&parsed, a)) {
                Ok(())
            } else {
                Err(Error::invalid_parameter(
                    "The webhook's url is not among the destinations this server allows (webhook_allow)",
                ))
            }
        }
        _ => Ok(()),
    }
}

fn under(url: &reqwest::Url, prefix: &reqwest::Url) -> bool {
    url.scheme() == prefix.scheme()
        && url.host_str() == prefix.host_str()
        && url.port_or_known_default() == prefix.port_or_known_default()
        && url.path().starts_with(prefix.path())
}

/// The `x-rotor-signature` value of `body` sent at `timestamp`.
pub(crate) fn signature(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!(
        "sha256={}",
        hex::encode(rotor_crypto::hmac_sha256(key, &signed))
    )
}

/// POSTs the JSON `body` to `url`, signed with `key`, with `headers` besides.
/// Errors say only whether the receiver could be reached and what it answered:
/// never its body.
pub(crate) async fn post_signed(
    url: &str,
    key: &[u8],
    body: Vec<u8>,
    timeout: Duration,
    headers: &[(&str, String)],
) -> Result<()> {
    check_destination(url)?;
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut request = http()
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("x-rotor-signature", signature(key, &timestamp, &body))
        .header("x-rotor-timestamp", &timestamp);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body).send().await.map_err(|e| {
        Error::invalid_request(format!(
            "the webhook could not be reached: {}",
            if e.is_timeout() {
                "timed out"
            } else {
                "connection failed"
            }
        ))
    })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "the webhook answered {}",
            response.status().as_u16()
        )))
    }
}

/// Runs `argv` with `input` on its standard input and `env` as its environment
/// (besides [`INHERITED`]); success is exit status 0 within `timeout`, after which
/// the command is killed. Its output is discarded.
pub(crate) async fn run_command(
    argv: &[String],
    env: &[(&str, String)],
    input: &[u8],
    timeout: Duration,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::invalid_request("the hook has no command"));
    };
    let mut cmd = command(program);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::invalid_request(format!("cannot run {program}: {}", e.kind())))?;
    let ran = tokio::time::timeout(timeout, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is fine.
            let _ = stdin.write_all(input).await;
        }
        child.wait().await
    })
    .await;
    let status = match ran {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(Error::invalid_request(format!(
                "waiting for the command failed: {}",
                e.kind()
            )));
        }
        Err(_) => {
            return Err(Error::invalid_request(format!(
                "the command took longer than {} ms and was killed",
                timeout.as_millis()
            )));
        }
    };
    if status.success() {
        return Ok(());
    }
    Err(Error::invalid_request(match status.code() {
        Some(code) => format!("the command exited with status {code}"),
        None => "the command was killed by a signal".to_string(),
    }))
}

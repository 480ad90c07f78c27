//! Signals by name, as `--signal` and a template's `signal` give them, and sending
//! them with kill(1) (the workspace has no unsafe code, so no libc).

use std::process::ExitStatus;

/// The signals that may be named.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "KILL", "ALRM", "CONT", "STOP", "TSTP", "WINCH",
];

/// A signal name that is not one of those kill(1) takes here.
#[derive(Debug, thiserror::Error)]
#[error("unknown signal {name:?}: use one of {}", SIGNALS.join(", "))]
pub struct SignalError {
    name: String,
}

/// A signal name as kill(1) takes it: `HUP`, `SIGHUP` or `hup` give `HUP`.
pub fn signal_name(name: &str) -> Result<String, SignalError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&bare) {
        return Ok(bare.to_string());
    }
    Err(SignalError {
        name: name.to_string(),
    })
}

/// Sending a signal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KillError {
    /// kill(1) could not be run.
    #[error(transparent)]
    Spawn(std::io::Error),
    /// kill(1) refused: no such process, or not permitted.
    #[error("kill -{signal} {pid} failed ({status})")]
    Failed {
        /// The signal.
        signal: String,
        /// The process.
        pid: u32,
        /// kill(1)'s exit status.
        status: ExitStatus,
    },
}

/// Sends `signal` to process `pid` with kill(1).
pub(crate) async fn kill(pid: u32, signal: &str) -> Result<(), KillError> {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(KillError::Spawn)?;
    if !status.success() {
        return Err(KillError::Failed {
            signal: signal.to_string(),
            pid,
            status,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_kill_takes_them() {
        assert_eq!(signal_name("hup").unwrap(), "HUP");
        assert_eq!(signal_name("SIGUSR1").unwrap(), "USR1");
        assert_eq!(
            signal_name("SIGFOO").unwrap_err().to_string(),
            "unknown signal \"SIGFOO\": use one of HUP, INT, QUIT, USR1, USR2, TERM, KILL, ALRM, CONT, STOP, TSTP, WINCH"
        );
    }
}

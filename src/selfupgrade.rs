//! The binary upgrade greenlight starts by itself (`SIGUSR2`, nginx's
//! convention) and the systemd readiness protocol it needs.
//!
//! Pingora's hand-off (`SIGQUIT` to the old process, `run --upgrade` for the
//! new one) needs the operator to start the new process by hand. Under
//! systemd that does not work: a process started from a shell is not in the
//! unit, and when the old main process exits systemd stops the unit. So on
//! `SIGUSR2` the running process starts its successor itself — the binary at
//! the path it was started from (where the new version was installed), with
//! its own arguments plus `--upgrade` — waits until the successor is
//! listening on `upgrade_socket` for the sockets, tells systemd the new main
//! PID (`MAINPID=`, when `NOTIFY_SOCKET` is set), and only then does what
//! `SIGQUIT` does. A successor that cannot start (bad config, missing binary)
//! aborts the upgrade: the running process keeps serving and says why.
//!
//! Owns: spawning the successor and `sd_notify` datagrams. Must not touch:
//! the listening sockets (Pingora hands them over) or any request state.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the successor may take to be ready for the sockets.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How often the successor's readiness is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// Why a self-started upgrade was abandoned.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The successor could not be started at all.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was run.
        program: String,
        /// Why not.
        source: std::io::Error,
    },
    /// It exited before taking the sockets (its own log says why).
    #[error("the new process exited before taking over ({0}); see its log lines above")]
    Exited(std::process::ExitStatus),
    /// It did not get ready in time.
    #[error("the new process was not ready within {READY_WITHIN:?}; stopped it")]
    NotReady,
}

/// Starts the successor and waits until it waits for the sockets on
/// `upgrade_socket`; returns its PID. On error nothing has changed.
pub fn start_successor(upgrade_socket: &Path) -> Result<u32, UpgradeError> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let program = args.remove(0);
    if !args.iter().any(|a| a == "--upgrade") {
        args.push("--upgrade".into());
    }
    // A socket file left from an earlier upgrade would look like readiness.
    let _ = std::fs::remove_file(upgrade_socket);
    let mut child = Command::new(&program)
        .args(&args)
        .spawn()
        .map_err(|source| UpgradeError::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(UpgradeError::Exited(status));
        }
        if upgrade_socket.exists() {
            // Not waited for: it outlives this process (dropping a `Child`
            // neither kills nor reaps it).
            return Ok(child.id());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(UpgradeError::NotReady);
        }
        std::thread::sleep(LOOK_EVERY);
    }
}

/// Sends `state` (e.g. `READY=1`, `MAINPID=123`) to systemd when it
/// supervises this process (`NOTIFY_SOCKET`, `Type=notify`); a no-op
/// otherwise. Failures are logged, never fatal.
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_to(&path, state);
    }
}

/// Sends `state` to the notify socket at `path` (`@name`: abstract).
fn notify_to(path: &std::ffi::OsStr, state: &str) {
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket (Linux).
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), Path::new(&path))
        }
    });
    if let Err(e) = sent {
        log::warn!("cannot notify systemd ({state}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_sends_one_datagram_to_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("gl-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind");
        notify_to(path.as_os_str(), "MAINPID=42");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], b"MAINPID=42");
        let _ = std::fs::remove_dir_all(dir);
    }
}

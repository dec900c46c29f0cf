//! Stopping and upgrading the proxy itself, as safely as the apps behind it.
//!
//! greenlight installs its own signal watcher in place of Pingora's:
//!
//! | signal | what happens |
//! |---|---|
//! | `TERM` | graceful stop: listeners close, WebSockets get 1001, in-flight requests finish, exit as soon as none is left (at most `shutdown_timeout`) |
//! | `QUIT` | graceful upgrade: Pingora hands the listening sockets to the new process (`run --upgrade`), then the same drain as `TERM` |
//! | `USR2` | self-started upgrade: start the successor (see `selfupgrade`), then as `QUIT`; if it cannot start, keep serving |
//! | `INT` | fast stop |
//! | `HUP` | reload (see `reload`) |
//!
//! Why not Pingora's graceful shutdown alone: it sleeps its whole grace period
//! whatever the load (pingora issues #727/#733), so systemd or Kubernetes wait
//! for nothing, and its runtime shutdown afterwards drops whatever is still in
//! flight. Here the grace period is only an upper bound: a shutdown thread
//! watches the in-flight counters of every live pool and exits the process the
//! moment they reach zero. At `shutdown_timeout` whatever is left is ended the
//! way a drain deadline ends it (see `upstream::conns`), so the exit is never
//! later than the configured bound plus a short unwind.

use crate::state::StateHandle;
use async_trait::async_trait;
use pingora::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;

/// After the deadline, how long ended connections may take to unwind.
const UNWIND: Duration = Duration::from_secs(2);
/// How often the shutdown thread re-counts in-flight work.
const RECOUNT: Duration = Duration::from_millis(20);
/// Nothing may be in flight for this long before the process exits: a
/// connection accepted just before the listeners closed gets to send its
/// request and be served.
const SETTLE: Duration = Duration::from_millis(250);

/// greenlight's replacement for Pingora's signal watcher.
pub struct Signals {
    state: StateHandle,
    timeout: Duration,
    upgrade_socket: std::path::PathBuf,
    phases: std::sync::Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
}

impl Signals {
    /// A watcher for `state`, told about Pingora's shutdown phases by `phases`.
    pub fn new(
        state: StateHandle,
        timeout: Duration,
        upgrade_socket: std::path::PathBuf,
        phases: broadcast::Receiver<ExecutionPhase>,
    ) -> Signals {
        Signals {
            state,
            timeout,
            upgrade_socket,
            phases: std::sync::Mutex::new(Some(phases)),
        }
    }

    /// Starts the thread that ends the process once nothing is in flight.
    fn start_drain(&self, why: &'static str) {
        self.state.begin_shutdown();
        let state = self.state.clone();
        let timeout = self.timeout;
        let phases = self.phases.lock().ok().and_then(|mut p| p.take());
        let spawned = std::thread::Builder::new()
            .name("greenlight-shutdown".into())
            .spawn(move || drain_and_exit(state, timeout, phases, why));
        if let Err(e) = spawned {
            log::error!("cannot start the shutdown thread ({e}); Pingora's shutdown applies");
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut quit), Ok(mut int), Ok(mut usr2)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::quit()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::user_defined2()),
        ) else {
            log::error!("cannot listen for TERM/QUIT/INT/USR2");
            return std::future::pending().await;
        };
        // Pingora asks once it runs: the listeners are up.
        crate::selfupgrade::notify("READY=1");
        loop {
            tokio::select! {
                _ = term.recv() => {
                    log::info!("SIGTERM: stopping gracefully (at most {:?})", self.timeout);
                    crate::selfupgrade::notify("STOPPING=1");
                    self.start_drain("stop");
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = quit.recv() => {
                    log::info!("SIGQUIT: handing the listening sockets to the new process, then draining");
                    self.start_drain("upgrade");
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = usr2.recv() => {
                    log::info!("SIGUSR2: starting the new process for a binary upgrade");
                    let sock = self.upgrade_socket.clone();
                    match tokio::task::spawn_blocking(move || crate::selfupgrade::start_successor(&sock)).await {
                        Ok(Ok(pid)) => {
                            log::info!("upgrade: new process {pid} is ready; handing the listening sockets to it, then draining");
                            crate::selfupgrade::notify(&format!("MAINPID={pid}"));
                            self.start_drain("upgrade");
                            return ShutdownSignal::GracefulUpgrade;
                        }
                        Ok(Err(e)) => log::error!("upgrade abandoned, still serving: {e}"),
                        Err(e) => log::error!("upgrade abandoned, still serving: {e}"),
                    }
                }
                _ = int.recv() => {
                    log::info!("SIGINT: fast stop");
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
    }
}

fn inflight(state: &StateHandle) -> (usize, usize) {
    state
        .live_pools()
        .iter()
        .fold((0, 0), |(r, w), p| (r + p.inflight(), w + p.websockets()))
}

fn drain_and_exit(
    state: StateHandle,
    timeout: Duration,
    phases: Option<broadcast::Receiver<ExecutionPhase>>,
    why: &'static str,
) {
    // Do not exit before Pingora has stopped accepting (for an upgrade: before
    // the sockets were handed over and the new process had time to take them).
    if let Some(mut rx) = phases {
        loop {
            match rx.blocking_recv() {
                Ok(ExecutionPhase::ShutdownStarted) => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    let start = Instant::now();
    let tunnels: usize = state
        .live_pools()
        .iter()
        .map(|p| p.conns().kill_tunnels())
        .sum();
    if tunnels > 0 {
        log::info!("{why}: closed {tunnels} WebSocket(s) with 1001 Going Away");
    }
    let deadline = start + timeout;
    let mut idle_since: Option<Instant> = None;
    while Instant::now() < deadline {
        if inflight(&state).0 > 0 {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= SETTLE {
            break;
        }
        std::thread::sleep(RECOUNT);
    }
    let (left, _) = inflight(&state);
    if left > 0 {
        let ended: usize = state
            .live_pools()
            .iter()
            .map(|p| p.conns().kill_inflight())
            .sum();
        log::warn!(
            "{why}: shutdown_timeout reached with {left} request(s) in flight; ended {ended} upstream connection(s)"
        );
        let unwind = Instant::now() + UNWIND;
        while Instant::now() < unwind && inflight(&state).0 > 0 {
            std::thread::sleep(RECOUNT);
        }
    }
    log::info!(
        "{why}: nothing left in flight after {:.1?}; exiting",
        start.elapsed()
    );
    log::logger().flush();
    std::process::exit(0);
}

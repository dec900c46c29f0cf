//! Draining: the background service that takes a pool from `draining` to
//! `drained`, and the state machine it drives.
//!
//! ```text
//!   idle ──switch/reload makes it active──▶ active
//!   active ──another pool becomes active, or this one is replaced/removed──▶ draining
//!   draining ──in-flight count reaches 0──────────────┐
//!   draining ──drain_timeout: end what is left, wait──┴─▶ drained (idle upstream sockets closed)
//!   draining/drained ──made active again──▶ active (a running drain notices and stops)
//! ```
//!
//! `StateHandle::apply` starts drains (it is the only writer of pool states
//! besides this service) and sends a [`DrainTicket`] here. Waiting is on the
//! pool's in-flight counter (woken by the last guard's drop) and the deadline —
//! never on a polling sleep. At the deadline every remaining upstream
//! connection of the pool is shut down (see `conns`): plain requests fail,
//! WebSocket clients get a close frame 1001 Going Away from the proxy. A pool
//! only becomes `drained` when its counter is really zero; that is what
//! `greenlight switch --wait` and the API report as safe to stop.

use super::DrainTicket;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// After the deadline, how long ended connections may take to unwind.
const AFTER_DEADLINE: Duration = Duration::from_secs(5);

/// Sends drains to the [`DrainService`].
pub type DrainSender = mpsc::UnboundedSender<DrainTicket>;

/// The background service that runs every drain to its end.
pub struct DrainService {
    rx: Mutex<Option<mpsc::UnboundedReceiver<DrainTicket>>>,
}

impl DrainService {
    /// A service and the sender `StateHandle` uses to hand it drains.
    pub fn new() -> (DrainService, DrainSender) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            DrainService {
                rx: Mutex::new(Some(rx)),
            },
            tx,
        )
    }
}

/// Runs one drain; returns true if the pool ended up drained by it.
pub async fn drain(ticket: DrainTicket) -> bool {
    let DrainTicket {
        pool,
        epoch,
        deadline,
    } = ticket;
    let started = Instant::now();
    let mut forced = 0;
    let deadline = tokio::time::Instant::from_std(deadline);
    tokio::select! {
        _ = pool.wait_idle() => {}
        _ = tokio::time::sleep_until(deadline) => {
            if !pool.drain_current(epoch) {
                return false;
            }
            forced = pool.conns.kill_inflight();
            log::warn!(
                "upstream '{}' pool '{}': drain deadline reached with {} request(s) in flight \
                 ({} WebSocket(s)); ended {forced} upstream connection(s)",
                pool.upstream,
                pool.name,
                pool.inflight(),
                pool.websockets()
            );
            if tokio::time::timeout(AFTER_DEADLINE, pool.wait_idle()).await.is_err() {
                log::error!(
                    "upstream '{}' pool '{}': {} request(s) still in flight {AFTER_DEADLINE:?} after the drain deadline",
                    pool.upstream,
                    pool.name,
                    pool.inflight()
                );
                // Keep waiting: "drained" must mean nothing is left.
                pool.wait_idle().await;
            }
        }
    }
    if !pool.finish_drain(epoch, forced) {
        return false;
    }
    let closed = pool.conns.close_idle();
    log::info!(
        "upstream '{}' pool '{}' drained in {:.1?}; closed {closed} idle upstream connection(s) — safe to stop",
        pool.upstream,
        pool.name,
        started.elapsed()
    );
    true
}

#[async_trait]
impl BackgroundService for DrainService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                ticket = rx.recv() => match ticket {
                    Some(t) => {
                        running.spawn(drain(t));
                    }
                    None => break,
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        running.abort_all();
    }
}

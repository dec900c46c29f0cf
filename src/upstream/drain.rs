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
//!
//! A reload that removes servers from a pool that goes on (still active, or
//! rebuilt because a setting changed) drains just those servers
//! ([`DrainScope::Servers`]): requests on the servers it keeps are not touched.

use super::addr::ServerAddr;
use super::{DrainScope, DrainTicket, Pool};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, Mutex};
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

/// Runs one drain; returns true if what it covers ended up drained by it.
pub async fn drain(ticket: DrainTicket) -> bool {
    let DrainTicket {
        pool,
        scope,
        deadline,
    } = ticket;
    match scope {
        DrainScope::Pool { epoch } => drain_pool(pool, epoch, deadline).await,
        DrainScope::Servers(servers) => {
            drain_servers(pool, servers, deadline).await;
            true
        }
    }
}

async fn drain_pool(pool: Arc<Pool>, epoch: u64, deadline: Instant) -> bool {
    let started = Instant::now();
    let mut forced = 0;
    let mut killed = false;
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        tokio::select! {
            _ = pool.wait_idle() => {}
            _ = tokio::time::sleep_until(deadline), if !killed => {
                if !pool.drain_current(epoch) {
                    return false;
                }
                killed = true;
                forced = pool.conns().kill_inflight();
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
        match pool.finish_drain(epoch, forced) {
            Some(true) => break,
            Some(false) => return false,
            // A request slipped in between the wake-up and the check.
            None => continue,
        }
    }
    let closed = pool.conns().close_idle();
    log::info!(
        "upstream '{}' pool '{}' drained in {:.1?}; closed {closed} idle upstream connection(s) — safe to stop",
        pool.upstream,
        pool.name,
        started.elapsed()
    );
    true
}

/// Drains the servers a reload removed from a pool that goes on serving:
/// waits (on the registry's change notification, with the deadline) until
/// none of their connections carries a request, ends what is left at the
/// deadline, then closes greenlight's idle connections to them.
async fn drain_servers(pool: Arc<Pool>, servers: Vec<(String, ServerAddr)>, deadline: Instant) {
    let started = Instant::now();
    let addrs: Vec<ServerAddr> = servers.iter().map(|(_, a)| a.clone()).collect();
    let labels = servers
        .iter()
        .map(|(l, _)| l.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let deadline = tokio::time::Instant::from_std(deadline);
    let conns = pool.conns();
    let _watching = conns.watch();
    let mut killed = false;
    // Servers a later reload put back are no longer this drain's.
    let still_removed = || -> Vec<ServerAddr> {
        addrs
            .iter()
            .filter(|a| pool.is_removed(a))
            .cloned()
            .collect()
    };
    loop {
        let changed = conns.changed();
        let left = conns.inflight_to(&still_removed());
        if left == 0 {
            break;
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline), if !killed => {
                killed = true;
                let targets = still_removed();
                if targets.is_empty() {
                    continue;
                }
                let ended = conns.kill_inflight_to(&targets);
                log::warn!(
                    "upstream '{}' pool '{}': drain deadline reached for removed server(s) {labels} \
                     with {left} request(s) in flight; ended {ended} upstream connection(s)",
                    pool.upstream,
                    pool.name,
                );
            }
            _ = tokio::time::sleep_until(deadline + AFTER_DEADLINE), if killed => {
                log::error!(
                    "upstream '{}' pool '{}': removed server(s) {labels} still carry {left} request(s) after the drain deadline",
                    pool.upstream,
                    pool.name,
                );
                break;
            }
        }
    }
    let closed = conns.close_idle_to(&still_removed());
    pool.set_removed(&servers, None);
    log::info!(
        "upstream '{}' pool '{}': removed server(s) {labels} drained in {:.1?}; closed {closed} idle upstream connection(s) — safe to stop",
        pool.upstream,
        pool.name,
        started.elapsed()
    );
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

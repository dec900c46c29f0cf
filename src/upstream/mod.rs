//! Upstreams at run time: pools of servers, round robin, and the RAII guards
//! that count what is in flight on each pool.
//!
//! A [`Pool`] is built from a [`PoolConfig`] and lives as long as some
//! snapshot or some request holds it: a reload that keeps a pool unchanged
//! hands the *same* `Arc<Pool>` to the new snapshot, so its counters keep
//! counting the requests that started before the reload. Each proxied request
//! holds one [`InflightGuard`] for its whole life (including an upgraded
//! WebSocket tunnel); dropping it decrements the count and wakes anyone
//! waiting for the pool to become empty. Nothing here does I/O.

pub mod conns;

pub mod drain;
pub mod health;

use crate::config::model::{PoolConfig, UpstreamConfig};
use conns::{ConnId, ConnRegistry, DrainKill};
use pingora::upstreams::peer::HttpPeer;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// Unique ids for pools (Pingora connection-pool group) and guards.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Where a pool is in its life; see `drain` for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolState {
    /// Never active since it was loaded: nothing to drain.
    Idle,
    /// Takes new requests.
    Active,
    /// No new requests; waiting for in-flight work to finish.
    Draining,
    /// Drained: nothing in flight, idle upstream connections closed. Safe to stop.
    Drained,
}

impl PoolState {
    /// The lowercase name used by the API, CLI and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolState::Idle => "idle",
            PoolState::Active => "active",
            PoolState::Draining => "draining",
            PoolState::Drained => "drained",
        }
    }
}

/// A pool's state with its drain timestamps, as reported.
#[derive(Clone, Debug)]
pub struct Phase {
    /// Current state.
    pub state: PoolState,
    /// Bumped on every transition, so a stale drain task knows to stop.
    pub epoch: u64,
    /// When the current or last drain started.
    pub drain_started: Option<SystemTime>,
    /// When it must end.
    pub drain_deadline: Option<SystemTime>,
    /// How long the last completed drain took.
    pub last_drain: Option<Duration>,
    /// Connections the last drain had to end at its deadline.
    pub forced: usize,
}

/// A drain to run: handed from `StateHandle::apply` to the drain service.
#[derive(Debug)]
pub struct DrainTicket {
    /// The pool.
    pub pool: Arc<Pool>,
    /// Its epoch when the drain began.
    pub epoch: u64,
    /// Monotonic deadline.
    pub deadline: Instant,
}

/// One application instance, with the Pingora peer template used to reach it.
#[derive(Debug)]
pub struct Server {
    /// As written in the config (`localhost:8082`).
    pub label: String,
    /// Resolved address.
    pub addr: std::net::SocketAddr,
    /// Active and passive health.
    pub health: health::ServerHealth,
    /// The peer handed to Pingora (cloned per request).
    peer: HttpPeer,
}

impl Server {
    /// A fresh peer for one connection attempt.
    pub fn peer(&self) -> Box<HttpPeer> {
        Box::new(self.peer.clone())
    }

    /// A peer for an upgrade (WebSocket) request: the upstream read/write
    /// timeouts are for answers, not for a tunnel that may rightly stay quiet
    /// for hours (the nginx `proxy_read_timeout` trap); `idle` (the
    /// `websocket_idle_timeout`, off by default) applies instead.
    pub fn tunnel_peer(&self, idle: Option<Duration>) -> Box<HttpPeer> {
        let mut p = self.peer.clone();
        p.options.read_timeout = idle;
        p.options.write_timeout = idle;
        Box::new(p)
    }
}

/// A pool of servers of one upstream.
#[derive(Debug)]
pub struct Pool {
    /// Upstream name.
    pub upstream: String,
    /// Pool name.
    pub name: String,
    /// The configuration it was built from (reuse is decided on equality).
    pub config: PoolConfig,
    /// Timeouts it was built with (also part of reuse equality).
    timeouts: [Duration; 3],
    /// Active health checks, if configured.
    pub health: health::SharedHealth,
    /// Passive health: failures in a row that take a server out.
    pub max_fails: u32,
    /// Passive health: for how long.
    pub fail_timeout: Duration,
    servers: Vec<Server>,
    next: AtomicUsize,
    inflight: AtomicUsize,
    websockets: AtomicUsize,
    idle: Notify,
    phase: Mutex<Phase>,
    /// Upstream connections of this pool (for drains).
    pub conns: ConnRegistry,
}

impl Pool {
    /// Builds a pool for `upstream` from its config.
    pub fn new(upstream: &UpstreamConfig, config: &PoolConfig) -> Pool {
        // Pingora's keep-alive pool is keyed by peer; a per-pool group key
        // keeps this pool's connections its own, so a drain never closes a
        // socket another pool (or a rebuilt copy of this one) is using.
        let group = next_id();
        let servers = config
            .servers
            .iter()
            .map(|s| {
                let mut peer = HttpPeer::new(s.addr, false, String::new());
                peer.options.connection_timeout = Some(upstream.connect_timeout);
                peer.options.read_timeout = Some(upstream.read_timeout);
                peer.options.write_timeout = Some(upstream.write_timeout);
                peer.group_key = group;
                Server {
                    label: s.label.clone(),
                    addr: s.addr,
                    health: health::ServerHealth::default(),
                    peer,
                }
            })
            .collect();
        Pool {
            upstream: upstream.name.clone(),
            name: config.name.clone(),
            config: config.clone(),
            timeouts: timeouts(upstream),
            health: upstream.health.clone().map(Arc::new),
            max_fails: upstream.max_fails,
            fail_timeout: upstream.fail_timeout,
            servers,
            next: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            websockets: AtomicUsize::new(0),
            idle: Notify::new(),
            phase: Mutex::new(Phase {
                state: PoolState::Idle,
                epoch: 0,
                drain_started: None,
                drain_deadline: None,
                last_drain: None,
                forced: 0,
            }),
            conns: ConnRegistry::default(),
        }
    }

    fn phase_mut(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current phase (for the API and metrics).
    pub fn phase(&self) -> Phase {
        self.phase_mut().clone()
    }

    /// Marks the pool active (a drain in progress is abandoned).
    pub fn set_active(&self) {
        let mut p = self.phase_mut();
        if p.state != PoolState::Active {
            p.state = PoolState::Active;
            p.epoch += 1;
            p.drain_deadline = None;
        }
    }

    /// Starts draining an active pool; `None` if it was not active.
    pub fn begin_drain(self: &Arc<Self>, timeout: Duration) -> Option<DrainTicket> {
        let mut p = self.phase_mut();
        if p.state != PoolState::Active {
            return None;
        }
        p.state = PoolState::Draining;
        p.epoch += 1;
        let now = SystemTime::now();
        p.drain_started = Some(now);
        p.drain_deadline = Some(now + timeout);
        Some(DrainTicket {
            pool: self.clone(),
            epoch: p.epoch,
            deadline: Instant::now() + timeout,
        })
    }

    /// Ends the drain of `epoch`; false if the pool moved on meanwhile.
    pub fn finish_drain(&self, epoch: u64, forced: usize) -> bool {
        let mut p = self.phase_mut();
        if p.epoch != epoch || p.state != PoolState::Draining {
            return false;
        }
        p.state = PoolState::Drained;
        p.epoch += 1;
        p.forced = forced;
        p.last_drain = p
            .drain_started
            .and_then(|s| SystemTime::now().duration_since(s).ok());
        true
    }

    /// True while the drain of `epoch` is still the pool's current one.
    pub fn drain_current(&self, epoch: u64) -> bool {
        let p = self.phase_mut();
        p.epoch == epoch && p.state == PoolState::Draining
    }

    /// True when this pool can serve as the pool for `config` unchanged.
    pub fn same_as(&self, upstream: &UpstreamConfig, config: &PoolConfig) -> bool {
        self.config == *config
            && self.timeouts == timeouts(upstream)
            && self.health.as_deref() == upstream.health.as_ref()
            && self.max_fails == upstream.max_fails
            && self.fail_timeout == upstream.fail_timeout
    }

    /// True when some server is up.
    pub fn any_up(&self) -> bool {
        self.servers.iter().any(|s| s.health.is_up())
    }

    /// The servers, in config order.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// The round-robin starting index for a new request.
    pub fn start_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The server for attempt `attempt` of a request that started at `start`;
    /// `None` once every server was tried.
    pub fn server_for(&self, start: usize, attempt: usize) -> Option<&Server> {
        if attempt >= self.servers.len() {
            return None;
        }
        self.servers.get((start + attempt) % self.servers.len())
    }

    /// Requests (and tunnels) in flight on this pool.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Upgraded connections (WebSockets) open on this pool.
    pub fn websockets(&self) -> usize {
        self.websockets.load(Ordering::Acquire)
    }

    /// Waits until nothing is in flight on this pool.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.inflight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

fn timeouts(u: &UpstreamConfig) -> [Duration; 3] {
    [u.connect_timeout, u.read_timeout, u.write_timeout]
}

/// Counts one request on a pool for as long as it lives.
#[derive(Debug)]
pub struct InflightGuard {
    pool: Arc<Pool>,
    websocket: bool,
    id: u64,
    attached: bool,
}

impl InflightGuard {
    /// Starts counting a request on `pool`.
    pub fn new(pool: Arc<Pool>) -> InflightGuard {
        pool.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard {
            pool,
            websocket: false,
            id: next_id(),
            attached: false,
        }
    }

    /// Records the upstream connection this request now uses, so a drain
    /// deadline can end it; the returned flag is set if that happens.
    pub fn attach(&mut self, conn: ConnId) -> DrainKill {
        self.attached = true;
        self.pool.conns.attach(self.id, conn)
    }

    /// The pool this request counts on.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Marks the request as an upgraded connection (counted until it closes).
    pub fn mark_websocket(&mut self) {
        if !self.websocket {
            self.websocket = true;
            self.pool.websockets.fetch_add(1, Ordering::AcqRel);
            self.pool.conns.mark_tunnel(self.id);
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.attached {
            self.pool.conns.detach(self.id);
        }
        if self.websocket {
            self.pool.websockets.fetch_sub(1, Ordering::AcqRel);
        }
        if self.pool.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pool.idle.notify_waiters();
        }
    }
}

/// An upstream at run time: its config and its pools.
#[derive(Debug)]
pub struct Upstream {
    /// The validated config.
    pub config: UpstreamConfig,
    /// Pools in config order.
    pub pools: Vec<Arc<Pool>>,
    /// Index of the active pool in `pools`.
    pub active: usize,
}

impl Upstream {
    /// Builds the upstream, reusing unchanged pools of `previous`.
    pub fn build(config: &UpstreamConfig, previous: Option<&Upstream>) -> Upstream {
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(|pc| {
                previous
                    .and_then(|p| p.pools.iter().find(|old| old.name == pc.name))
                    .filter(|old| old.same_as(config, pc))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Pool::new(config, pc)))
            })
            .collect();
        let active = config
            .pools
            .iter()
            .position(|p| p.name == config.active)
            .unwrap_or(0);
        if previous.is_none() {
            pools[active].set_active();
        }
        Upstream {
            config: config.clone(),
            pools,
            active,
        }
    }

    /// The pool taking new requests.
    pub fn active_pool(&self) -> &Arc<Pool> {
        &self.pools[self.active]
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::ServerConfig;
    use std::time::Duration;

    fn upstream(servers: &[&str]) -> UpstreamConfig {
        UpstreamConfig {
            name: "app".into(),
            active: "blue".into(),
            active_origin: Default::default(),
            pools: vec![PoolConfig {
                name: "blue".into(),
                servers: servers
                    .iter()
                    .map(|s| ServerConfig {
                        label: s.to_string(),
                        addr: s.parse().expect("addr"),
                    })
                    .collect(),
            }],
            drain_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            health: None,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn round_robin_visits_every_server_once_per_request() {
        let u = Upstream::build(&upstream(&["127.0.0.1:1", "127.0.0.1:2"]), None);
        let pool = u.active_pool();
        let start = pool.start_index();
        let a = pool.server_for(start, 0).map(|s| s.label.clone());
        let b = pool.server_for(start, 1).map(|s| s.label.clone());
        assert_ne!(a, b);
        assert!(pool.server_for(start, 2).is_none());
        let next = pool.start_index();
        assert_eq!(pool.server_for(next, 0).map(|s| s.label.clone()), b);
    }

    #[test]
    fn guards_count_and_unchanged_pools_survive_a_rebuild() {
        let cfg = upstream(&["127.0.0.1:1"]);
        let first = Upstream::build(&cfg, None);
        let mut g = InflightGuard::new(first.active_pool().clone());
        g.mark_websocket();
        let second = Upstream::build(&cfg, Some(&first));
        assert!(Arc::ptr_eq(first.active_pool(), second.active_pool()));
        assert_eq!(second.active_pool().inflight(), 1);
        assert_eq!(second.active_pool().websockets(), 1);
        drop(g);
        assert_eq!(second.active_pool().inflight(), 0);
        assert_eq!(second.active_pool().websockets(), 0);
        let changed = Upstream::build(&upstream(&["127.0.0.1:9"]), Some(&second));
        assert!(!Arc::ptr_eq(changed.active_pool(), second.active_pool()));
    }
}

//! Upstreams at run time: pools of servers, the choice of a server
//! ([`balance`]), TLS to the servers ([`tls`]), and the RAII guards that count
//! what is in flight on each pool.
//!
//! A [`Pool`] is one *build* of a pool from its [`PoolConfig`]; what belongs
//! to the pool's *name* (its counters, drain phase, upstream connections and
//! the health of each server) lives in a shared `PoolCore`. A reload that
//! keeps a pool unchanged hands the same `Arc<Pool>` to the new snapshot; one
//! that changes it (a server added, a timeout changed) builds a new `Pool`
//! on the *same* core. Either way the requests and WebSockets that started
//! before the reload keep counting on the pool and are not drained: only a
//! pool that stops being active drains, and only the servers a reload removed
//! from a pool drain on their own (`DrainScope::Servers`). Each proxied request
//! holds one [`InflightGuard`] for its whole life (including an upgraded
//! WebSocket tunnel); dropping it decrements the count and wakes anyone
//! waiting for the pool to become empty. Nothing here does I/O.

pub mod addr;
pub mod balance;
pub mod conns;
pub mod drain;
pub mod health;
pub mod tls;

use crate::config::model::{PoolConfig, UpstreamConfig};
use addr::ServerAddr;
use conns::{ConnId, ConnRegistry, DrainKill};
use pingora::upstreams::peer::HttpPeer;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// What a drain covers.
#[derive(Debug, Clone)]
pub enum DrainScope {
    /// The whole pool (it stopped being active); the pool's epoch when the
    /// drain began.
    Pool {
        /// Epoch at the start; a later transition makes the drain stale.
        epoch: u64,
    },
    /// Only these servers, which a reload removed from a pool that goes on.
    Servers(Vec<(String, ServerAddr)>),
}

/// A drain to run: handed from `StateHandle::apply` to the drain service.
#[derive(Debug)]
pub struct DrainTicket {
    /// The pool.
    pub pool: Arc<Pool>,
    /// The whole pool, or some of its former servers.
    pub scope: DrainScope,
    /// Monotonic deadline.
    pub deadline: Instant,
}

/// A server a reload removed from a pool, while its connections drain.
#[derive(Clone, Debug)]
pub struct RemovedServer {
    /// As it was written in the config.
    pub label: String,
    /// Its address.
    pub addr: ServerAddr,
    /// When its drain must end.
    pub deadline: SystemTime,
}

/// One application instance, with the Pingora peer template used to reach it.
#[derive(Debug)]
pub struct Server {
    /// As written in the config (`localhost:8082`).
    pub label: String,
    /// Resolved address, or a unix socket path.
    pub addr: ServerAddr,
    /// Active and passive health (kept across rebuilds of the pool).
    pub health: Arc<health::ServerHealth>,
    /// Relative share of requests (`weight`).
    pub weight: u32,
    /// Used only while every primary of the pool is down.
    pub backup: bool,
    /// Passive health: failures in a row that take this server out (its
    /// own `max_fails`, else the upstream's).
    pub max_fails: u32,
    /// Passive health: for how long.
    pub fail_timeout: Duration,
    /// Requests in flight on this server (`least_conn`, the admin API; kept
    /// across rebuilds).
    pub busy: Arc<AtomicUsize>,
    /// The TLS server name checked (`None` for plain HTTP), for logs.
    pub tls_name: Option<String>,
    /// The peer handed to Pingora, shared by every request (a copy in a
    /// box of its own per request cost about 600 instructions).
    peer: std::sync::Arc<HttpPeer>,
}

impl Server {
    /// The peer for one connection attempt (shared between requests).
    pub fn peer(&self) -> &std::sync::Arc<HttpPeer> {
        &self.peer
    }

    /// A peer for an upgrade (WebSocket) request: the upstream read/write
    /// timeouts are for answers, not for a tunnel that may rightly stay quiet
    /// for hours (the nginx `proxy_read_timeout` trap); `idle` (the
    /// `websocket_idle_timeout`, off by default) applies instead.
    pub fn tunnel_peer(&self, idle: Option<Duration>) -> Box<HttpPeer> {
        let mut p = HttpPeer::clone(&self.peer);
        p.options.read_timeout = idle;
        p.options.write_timeout = idle;
        tls::for_upgrade(&mut p);
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
    /// Balancing it was built with (also part of reuse equality).
    balance: crate::config::model::Balance,
    /// Active health checks, if configured.
    pub health: health::SharedHealth,
    /// Passive health: failures in a row that take a server out.
    pub max_fails: u32,
    /// Passive health: for how long.
    pub fail_timeout: Duration,
    servers: Vec<Server>,
    /// Chooses a server per request attempt.
    balancer: balance::Balancer,
    /// TLS to the servers, when the upstream has `tls: true` (its settings
    /// are also part of reuse equality).
    pub tls: Option<Arc<tls::PoolTls>>,
    core: Arc<PoolCore>,
}

/// What a pool name keeps across rebuilds: counters, drain phase, upstream
/// connections. Shared by every build of the pool (see the module header).
#[derive(Debug)]
struct PoolCore {
    /// Pingora connection-pool group of this pool (see [`Pool::new`]).
    group: u64,
    inflight: AtomicUsize,
    websockets: AtomicUsize,
    idle: Notify,
    /// Set by a drain while it decides that the pool is empty; a request
    /// that finds it set does not start on the pool (see [`Pool::enter`]).
    closing: AtomicBool,
    phase: Mutex<Phase>,
    /// Servers removed by a reload whose connections are still draining.
    removed: Mutex<Vec<RemovedServer>>,
    conns: ConnRegistry,
}

impl Pool {
    /// Builds a new pool for `upstream` from its config.
    pub fn new(upstream: &UpstreamConfig, config: &PoolConfig) -> Pool {
        // Pingora's keep-alive pool is keyed by peer; a per-pool group key
        // keeps this pool's connections its own, so a drain never closes a
        // socket another pool is using. Rebuilds share it (and so reuse the
        // idle connections of the servers they keep).
        let core = Arc::new(PoolCore {
            group: next_id(),
            inflight: AtomicUsize::new(0),
            websockets: AtomicUsize::new(0),
            idle: Notify::new(),
            closing: AtomicBool::new(false),
            phase: Mutex::new(Phase {
                state: PoolState::Idle,
                epoch: 0,
                drain_started: None,
                drain_deadline: None,
                last_drain: None,
                forced: 0,
            }),
            removed: Mutex::new(Vec::new()),
            conns: ConnRegistry::default(),
        });
        Pool::build(upstream, config, core, &[])
    }

    /// Builds the pool anew from a changed config, on `old`'s core: requests
    /// in flight on `old` keep counting here, and servers it keeps keep their
    /// health state.
    pub fn rebuild(upstream: &UpstreamConfig, config: &PoolConfig, old: &Pool) -> Pool {
        Pool::build(upstream, config, old.core.clone(), &old.servers)
    }

    fn build(
        upstream: &UpstreamConfig,
        config: &PoolConfig,
        core: Arc<PoolCore>,
        old: &[Server],
    ) -> Pool {
        if upstream.tls.as_ref().is_some_and(|t| !t.verify) {
            log::warn!(
                "upstream '{}' pool '{}': `verify: false`: the servers' certificates are not checked",
                upstream.name,
                config.name
            );
        }
        let tls = upstream
            .tls
            .as_ref()
            .map(|t| Arc::new(tls::PoolTls::new(t)));
        let servers: Vec<Server> = config
            .servers
            .iter()
            .map(|s| {
                let mut peer = match &tls {
                    Some(t) => t.peer(s),
                    None => plain_peer(&s.addr),
                };
                peer.options.connection_timeout = Some(upstream.connect_timeout);
                peer.options.read_timeout = Some(upstream.read_timeout);
                peer.options.write_timeout = Some(upstream.write_timeout);
                peer.group_key = core.group;
                let kept = old.iter().find(|o| o.addr == s.addr && o.label == s.label);
                Server {
                    label: s.label.clone(),
                    addr: s.addr.clone(),
                    health: kept.map_or_else(Default::default, |o| o.health.clone()),
                    busy: kept.map_or_else(Default::default, |o| o.busy.clone()),
                    weight: s.weight,
                    backup: s.backup,
                    max_fails: s.max_fails.unwrap_or(upstream.max_fails),
                    fail_timeout: s.fail_timeout.unwrap_or(upstream.fail_timeout),
                    tls_name: tls.as_ref().map(|t| t.server_name(s)),
                    peer: std::sync::Arc::new(peer),
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
            balancer: balance::Balancer::new(&upstream.balance, &servers),
            balance: upstream.balance.clone(),
            tls,
            servers,
            core,
        }
    }

    fn phase_mut(&self) -> std::sync::MutexGuard<'_, Phase> {
        lock(&self.core.phase)
    }

    /// True when `other` is a build of the same pool (same counters).
    pub fn same_pool(&self, other: &Pool) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }

    /// The upstream connections of this pool (for drains).
    pub fn conns(&self) -> &ConnRegistry {
        &self.core.conns
    }

    /// The servers of `old` (an earlier build of this pool) that this build
    /// no longer has.
    pub fn removed_since(&self, old: &Pool) -> Vec<(String, ServerAddr)> {
        old.servers
            .iter()
            .filter(|o| !self.servers.iter().any(|s| s.addr == o.addr))
            .map(|o| (o.label.clone(), o.addr.clone()))
            .collect()
    }

    /// Servers removed by a reload that are still draining.
    pub fn removed_servers(&self) -> Vec<RemovedServer> {
        lock(&self.core.removed).clone()
    }

    /// True while `addr` is listed as removed and draining (a later reload
    /// may have put it back, which ends its drain).
    pub fn is_removed(&self, addr: &ServerAddr) -> bool {
        lock(&self.core.removed).iter().any(|r| r.addr == *addr)
    }

    /// Records (or, with `None`, forgets) the drain of removed servers.
    pub fn set_removed(&self, servers: &[(String, ServerAddr)], deadline: Option<SystemTime>) {
        let mut r = lock(&self.core.removed);
        r.retain(|x| !servers.iter().any(|(_, a)| *a == x.addr));
        if let Some(deadline) = deadline {
            r.extend(servers.iter().map(|(label, addr)| RemovedServer {
                label: label.clone(),
                addr: addr.clone(),
                deadline,
            }));
        }
    }

    /// Counts a new request on this pool, unless a drain has just found the
    /// pool empty and is declaring it drained: then `None`, and the caller
    /// takes the upstream's current active pool instead. This closes the
    /// window in which a request that loaded the snapshot before a switch
    /// would start on the old pool after `--wait` said it was safe to stop.
    pub fn enter(self: &Arc<Self>) -> Option<InflightGuard> {
        let guard = InflightGuard::new(self.clone());
        // SeqCst pairs with `finish_drain`: either it sees this increment, or
        // this load sees its flag.
        if self.core.closing.load(Ordering::SeqCst) {
            return None;
        }
        Some(guard)
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
        self.core.closing.store(false, Ordering::SeqCst);
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
            scope: DrainScope::Pool { epoch: p.epoch },
            deadline: Instant::now() + timeout,
        })
    }

    /// Ends the drain of `epoch`: `Some(false)` if the pool moved on
    /// meanwhile, `None` if a request started after all (wait again).
    pub fn finish_drain(&self, epoch: u64, forced: usize) -> Option<bool> {
        let mut p = self.phase_mut();
        if p.epoch != epoch || p.state != PoolState::Draining {
            return Some(false);
        }
        // Close the door, then look: a request entering concurrently either
        // is counted here or sees the flag and goes elsewhere (`enter`).
        self.core.closing.store(true, Ordering::SeqCst);
        if self.core.inflight.load(Ordering::SeqCst) != 0 {
            self.core.closing.store(false, Ordering::SeqCst);
            return None;
        }
        p.state = PoolState::Drained;
        p.epoch += 1;
        p.forced = forced;
        p.last_drain = p
            .drain_started
            .and_then(|s| SystemTime::now().duration_since(s).ok());
        Some(true)
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
            && self.balance == upstream.balance
            && self.tls.as_ref().map(|t| &t.config) == upstream.tls.as_ref()
    }

    /// True when some server is up.
    pub fn any_up(&self) -> bool {
        self.servers.iter().any(|s| s.health.is_up())
    }

    /// The servers, in config order.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// The server for the next attempt of a request (see [`balance`]);
    /// `None` once no server is left to try.
    pub fn choose(
        &self,
        attempts: &mut balance::Attempts,
        key: Option<&crate::plan::vars::VarCx<'_>>,
    ) -> Option<usize> {
        self.balancer.choose(&self.servers, attempts, key)
    }

    /// True when the balancer reads the request (`ip_hash`, `hash:`), so a
    /// key must be passed to [`Pool::choose`] on a request's first attempt.
    pub fn needs_key(&self, attempts: &balance::Attempts) -> bool {
        self.balancer.needs_key(attempts)
    }

    /// True when a request that made `attempts` has a server left to try.
    pub fn any_left(&self, attempts: &balance::Attempts) -> bool {
        self.balancer.any_left(&self.servers, attempts)
    }

    /// Requests (and tunnels) in flight on this pool.
    pub fn inflight(&self) -> usize {
        self.core.inflight.load(Ordering::Acquire)
    }

    /// Upgraded connections (WebSockets) open on this pool.
    pub fn websockets(&self) -> usize {
        self.core.websockets.load(Ordering::Acquire)
    }

    /// Waits until nothing is in flight on this pool.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.core.idle.notified();
            if self.inflight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The peer of a plain-HTTP server: TCP, or a unix socket.
fn plain_peer(addr: &ServerAddr) -> HttpPeer {
    let inet = |a: std::net::SocketAddr| HttpPeer::new(a, false, String::new());
    match addr {
        ServerAddr::Inet(a) => inet(*a),
        ServerAddr::Unix(path) => {
            match HttpPeer::new_uds(&path.to_string_lossy(), false, String::new()) {
                Ok(p) => p,
                Err(e) => {
                    // Validation keeps paths absolute and short enough, so
                    // this is not expected; the unconnectable peer makes
                    // each request a 502 rather than a panic.
                    log::error!("unix socket server {addr}: {e}");
                    inet(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
                }
            }
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
    fn new(pool: Arc<Pool>) -> InflightGuard {
        pool.core.inflight.fetch_add(1, Ordering::SeqCst);
        InflightGuard {
            pool,
            websocket: false,
            id: next_id(),
            attached: false,
        }
    }

    /// Records the upstream connection this request now uses, so a drain
    /// deadline can end it; the returned flag is set if that happens.
    pub fn attach(&mut self, conn: ConnId, reused: bool) -> DrainKill {
        self.attached = true;
        self.pool.core.conns.attach(self.id, conn, reused)
    }

    /// The pool this request counts on.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Marks the request as an upgraded connection (counted until it closes).
    pub fn mark_websocket(&mut self) {
        if !self.websocket {
            self.websocket = true;
            self.pool.core.websockets.fetch_add(1, Ordering::AcqRel);
            self.pool.core.conns.mark_tunnel(self.id);
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let core = &self.pool.core;
        if self.attached {
            core.conns.detach(self.id);
        }
        if self.websocket {
            core.websockets.fetch_sub(1, Ordering::AcqRel);
        }
        if core.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
            core.idle.notify_waiters();
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
    /// Builds the upstream from `previous`: an unchanged pool is reused as it
    /// is, a changed one is rebuilt on the same core, a new one starts fresh.
    pub fn build(config: &UpstreamConfig, previous: Option<&Upstream>) -> Upstream {
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(
                |pc| match previous.and_then(|p| p.pools.iter().find(|old| old.name == pc.name)) {
                    Some(old) if old.same_as(config, pc) => old.clone(),
                    Some(old) => Arc::new(Pool::rebuild(config, pc, old)),
                    None => Arc::new(Pool::new(config, pc)),
                },
            )
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
        let servers: Vec<(&str, u32, bool)> = servers.iter().map(|s| (*s, 1, false)).collect();
        upstream_with(&servers, crate::config::model::Balance::RoundRobin)
    }

    /// An upstream with one pool of `(address, weight, backup)` servers.
    pub(super) fn upstream_with(
        servers: &[(&str, u32, bool)],
        balance: crate::config::model::Balance,
    ) -> UpstreamConfig {
        UpstreamConfig {
            name: "app".into(),
            active: "blue".into(),
            active_origin: Default::default(),
            pools: vec![PoolConfig {
                name: "blue".into(),
                servers: servers
                    .iter()
                    .map(|(s, weight, backup)| ServerConfig {
                        label: s.to_string(),
                        addr: addr::ServerAddr::Inet(s.parse().expect("addr")),
                        weight: *weight,
                        backup: *backup,
                        max_fails: None,
                        fail_timeout: None,
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
            balance,
            tls: None,
        }
    }

    #[test]
    fn round_robin_visits_every_server_once_per_request() {
        let u = Upstream::build(&upstream(&["127.0.0.1:1", "127.0.0.1:2"]), None);
        let pool = u.active_pool();
        let mut first = balance::Attempts::default();
        let a = pool.choose(&mut first, None);
        let b = pool.choose(&mut first, None);
        assert_ne!(a, b);
        assert!(pool.choose(&mut first, None).is_none());
        assert!(!pool.any_left(&first));
        let mut next = balance::Attempts::default();
        assert_eq!(pool.choose(&mut next, None), b);
    }

    #[test]
    fn guards_count_and_unchanged_pools_survive_a_rebuild() {
        let cfg = upstream(&["127.0.0.1:1"]);
        let first = Upstream::build(&cfg, None);
        let mut g = first.active_pool().enter().expect("open pool");
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
        // Balancing and TLS are part of what a pool was built with.
        let mut balance = cfg.clone();
        balance.balance = crate::config::model::Balance::LeastConn;
        let rebuilt = Upstream::build(&balance, Some(&second));
        assert!(!Arc::ptr_eq(rebuilt.active_pool(), second.active_pool()));
        let mut tls = cfg.clone();
        tls.tls = Some(crate::config::model::UpstreamTls {
            sni: None,
            ca: None,
            verify: false,
            http2: false,
        });
        let rebuilt = Upstream::build(&tls, Some(&second));
        assert!(!Arc::ptr_eq(rebuilt.active_pool(), second.active_pool()));
        let again = Upstream::build(&tls, Some(&rebuilt));
        assert!(Arc::ptr_eq(again.active_pool(), rebuilt.active_pool()));
    }

    #[test]
    fn a_changed_pool_is_rebuilt_on_the_same_counters_and_names_its_removed_servers() {
        let first = Upstream::build(&upstream(&["127.0.0.1:1", "127.0.0.1:2"]), None);
        let mut g = first.active_pool().enter().expect("open pool");
        g.mark_websocket();
        let changed = Upstream::build(&upstream(&["127.0.0.1:2", "127.0.0.1:3"]), Some(&first));
        let (old, new) = (first.active_pool(), changed.active_pool());
        assert!(!Arc::ptr_eq(old, new));
        assert!(new.same_pool(old));
        assert_eq!((new.inflight(), new.websockets()), (1, 1));
        assert_eq!(new.phase().state, PoolState::Active);
        let removed: Vec<String> = new.removed_since(old).into_iter().map(|(l, _)| l).collect();
        assert_eq!(removed, ["127.0.0.1:1"]);
        // The kept server keeps its health record.
        assert!(Arc::ptr_eq(
            &old.servers()[1].health,
            &new.servers()[0].health
        ));
        drop(g);
        assert_eq!(new.inflight(), 0);
    }

    #[test]
    fn a_request_cannot_enter_a_pool_a_drain_is_closing() {
        let u = Upstream::build(&upstream(&["127.0.0.1:1"]), None);
        let pool = u.active_pool();
        let ticket = pool
            .begin_drain(Duration::from_secs(1))
            .expect("was active");
        let DrainScope::Pool { epoch } = ticket.scope else {
            panic!("a pool drain")
        };
        let g = pool.enter().expect("draining pools still count requests");
        assert_eq!(pool.finish_drain(epoch, 0), None, "busy: not drained");
        drop(g);
        assert_eq!(pool.finish_drain(epoch, 0), Some(true));
        assert!(pool.enter().is_none(), "a drained pool takes no request");
        pool.set_active();
        assert!(pool.enter().is_some());
    }
}

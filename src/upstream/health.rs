//! Server health, active and passive, driving which servers get requests.
//!
//! Each [`Server`](super::Server) carries a [`ServerHealth`]: lock-free
//! counters read on every request. Two things write it:
//! - **passive** (always on unless `max_fails: 0`, like nginx's
//!   `max_fails`/`fail_timeout`): the proxy reports connect failures and 5xx
//!   responses; `max_fails` in a row take the server out for `fail_timeout`,
//!   after which it is tried again;
//! - **active** (`health:` on the upstream): [`HealthService`], one Pingora
//!   background service for the whole process, checks every server of every
//!   live pool — current, idle and draining ones, so the pre-switch check sees
//!   live state. Pools are rebuilt by reloads while services are fixed at
//!   start, so the service does not own pools: each round it asks the
//!   `StateHandle` which pools are alive, and health state lives in the pool
//!   itself (a pool unchanged by a reload keeps its state).
//!
//! A server is used when it is up by both measures. A pool whose servers are
//! all down answers 503 at once instead of waiting on connect timeouts.

use super::addr::{ServerAddr, Stream};
use crate::config::model::HealthConfig;
use crate::state::StateHandle;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// How often the service looks for due checks.
const TICK: Duration = Duration::from_millis(100);

fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The health of one server.
#[derive(Debug)]
pub struct ServerHealth {
    active_up: AtomicBool,
    active_ok: AtomicU32,
    active_fail: AtomicU32,
    passive_fail: AtomicU32,
    /// Clock millis until which passive marking keeps it out (0 = not).
    down_until: AtomicU64,
    /// Clock millis of the next active check.
    next_check: AtomicU64,
    checking: AtomicBool,
}

impl Default for ServerHealth {
    fn default() -> Self {
        ServerHealth {
            active_up: AtomicBool::new(true),
            active_ok: AtomicU32::new(0),
            active_fail: AtomicU32::new(0),
            passive_fail: AtomicU32::new(0),
            down_until: AtomicU64::new(0),
            next_check: AtomicU64::new(0),
            checking: AtomicBool::new(false),
        }
    }
}

/// Why a server is not used, for the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// Active checks failed.
    Active,
    /// Recent request failures (cool-off).
    Passive,
}

impl ServerHealth {
    /// True when the server may get requests now.
    pub fn is_up(&self) -> bool {
        self.down().is_none()
    }

    /// Why it is down, if it is.
    pub fn down(&self) -> Option<Down> {
        if !self.active_up.load(Ordering::Relaxed) {
            return Some(Down::Active);
        }
        if self.down_until.load(Ordering::Relaxed) > clock() {
            return Some(Down::Passive);
        }
        None
    }

    /// A request to this server failed (connect error or 5xx).
    pub fn request_failed(&self, max_fails: u32, fail_timeout: Duration) -> bool {
        if max_fails == 0 {
            return false;
        }
        let n = self.passive_fail.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= max_fails {
            self.passive_fail.store(0, Ordering::Relaxed);
            self.down_until
                .store(clock() + fail_timeout.as_millis() as u64, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A request to this server succeeded.
    pub fn request_ok(&self) {
        if self.passive_fail.load(Ordering::Relaxed) != 0 {
            self.passive_fail.store(0, Ordering::Relaxed);
        }
    }

    /// Records an active check result; returns `Some(up)` on a state change.
    pub fn checked(&self, ok: bool, cfg: &HealthConfig) -> Option<bool> {
        let up = self.active_up.load(Ordering::Relaxed);
        if ok {
            self.active_fail.store(0, Ordering::Relaxed);
            let n = self.active_ok.fetch_add(1, Ordering::Relaxed) + 1;
            if !up && n >= cfg.healthy_after {
                self.active_up.store(true, Ordering::Relaxed);
                // Coming back clears any passive cool-off as well.
                self.down_until.store(0, Ordering::Relaxed);
                return Some(true);
            }
        } else {
            self.active_ok.store(0, Ordering::Relaxed);
            let n = self.active_fail.fetch_add(1, Ordering::Relaxed) + 1;
            if up && n >= cfg.unhealthy_after {
                self.active_up.store(false, Ordering::Relaxed);
                return Some(false);
            }
        }
        None
    }

    fn due(&self) -> bool {
        !self.checking.load(Ordering::Relaxed) && self.next_check.load(Ordering::Relaxed) <= clock()
    }
}

/// How a check reaches a server over TLS (an upstream with `tls: true`):
/// the pool's client and the name to check.
pub struct CheckTls<'a> {
    /// The pool's health-check TLS client.
    pub connector: &'a pingora::tls::TlsConnector,
    /// The server name (SNI and certificate check).
    pub name: pingora::tls::ServerName<'static>,
}

/// One active check: `GET path` must answer a status in the expected range
/// within the timeout; over TLS when `tls` is given. `Err` says why not, for logs.
pub async fn check(
    addr: &ServerAddr,
    cfg: &HealthConfig,
    tls: Option<CheckTls<'_>>,
) -> Result<u16, String> {
    let work = async {
        let conn = addr.connect().await.map_err(|e| format!("connect: {e}"))?;
        // nginx sends `Host: localhost` over a unix socket (`$proxy_host`);
        // the check does the same, as an app's allowed-hosts list has it.
        let host = match (&tls, addr) {
            (Some(t), _) => t.name.to_str().into_owned(),
            (None, ServerAddr::Unix(_)) => "localhost".to_string(),
            (None, ServerAddr::Inet(a)) => a.to_string(),
        };
        let mut s: Box<dyn Io> = match (tls, conn) {
            (None, Stream::Tcp(tcp)) => Box::new(tcp),
            (None, Stream::Unix(unix)) => Box::new(unix),
            (Some(t), Stream::Tcp(tcp)) => Box::new(
                t.connector
                    .connect(t.name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?,
            ),
            // Validation refuses `tls: true` with unix socket servers.
            (Some(_), Stream::Unix(_)) => return Err("TLS over a unix socket".to_string()),
        };
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: greenlight-health\r\nConnection: close\r\n\r\n",
            cfg.path
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 12 {
            let n = s
                .read(&mut buf[got..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let line = std::str::from_utf8(&buf[..got]).unwrap_or("");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {line:?}"))?;
        if (cfg.expect_status.0..=cfg.expect_status.1).contains(&status) {
            Ok(status)
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(cfg.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer in {:?}", cfg.timeout)),
    }
}

/// [`check`] of one server of `pool`, over TLS when the upstream has `tls: true`.
pub async fn check_server(
    pool: &super::Pool,
    server: &super::Server,
    cfg: &HealthConfig,
) -> Result<u16, String> {
    match (&pool.tls, &server.tls_name) {
        (Some(t), Some(name)) => match pingora::tls::ServerName::try_from(name.clone()) {
            Ok(name) => {
                let tls = CheckTls {
                    connector: &t.health,
                    name,
                };
                check(&server.addr, cfg, Some(tls)).await
            }
            Err(e) => Err(format!("server name '{name}': {e}")),
        },
        _ => check(&server.addr, cfg, None).await,
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Runs the active checks of every live pool.
pub struct HealthService {
    state: StateHandle,
}

impl HealthService {
    /// The service for `state`.
    pub fn new(state: StateHandle) -> HealthService {
        HealthService { state }
    }

    fn launch_due(&self, running: &mut JoinSet<()>) {
        for pool in self.state.live_pools() {
            let Some(cfg) = pool.health.clone() else {
                continue;
            };
            for i in 0..pool.servers().len() {
                let server = &pool.servers()[i];
                if !server.health.due() {
                    continue;
                }
                server.health.checking.store(true, Ordering::Relaxed);
                let pool = pool.clone();
                let cfg = cfg.clone();
                let metrics = self.state.metrics().clone();
                running.spawn(async move {
                    let server = &pool.servers()[i];
                    let result = check_server(&pool, server, &cfg).await;
                    if let Err(why) = &result {
                        log::debug!("health check of {} failed: {why}", server.label);
                        metrics.health_check_failed(&pool.upstream, &pool.name, &server.label);
                    }
                    if let Some(up) = server.health.checked(result.is_ok(), &cfg) {
                        match &result {
                            Ok(_) => log::info!(
                                "upstream '{}' pool '{}' server {} is up again",
                                pool.upstream,
                                pool.name,
                                server.label
                            ),
                            Err(why) => log::warn!(
                                "upstream '{}' pool '{}' server {} is down: health check {} {}",
                                pool.upstream,
                                pool.name,
                                server.label,
                                cfg.path,
                                why
                            ),
                        }
                        metrics.set_server_up(&pool.upstream, &pool.name, &server.label, up);
                    }
                    server
                        .health
                        .next_check
                        .store(clock() + cfg.interval.as_millis() as u64, Ordering::Relaxed);
                    server.health.checking.store(false, Ordering::Relaxed);
                });
            }
        }
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut running = JoinSet::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.launch_due(&mut running),
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        running.abort_all();
    }
}

/// Shared so a pool can hand it to the service without cloning the config.
pub type SharedHealth = Option<Arc<HealthConfig>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        HealthConfig {
            path: "/h".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_after: 2,
            unhealthy_after: 3,
            expect_status: (200, 299),
        }
    }

    #[test]
    fn active_checks_need_streaks_both_ways() {
        let h = ServerHealth::default();
        assert!(h.is_up());
        assert_eq!(h.checked(false, &cfg()), None);
        assert_eq!(h.checked(false, &cfg()), None);
        assert_eq!(h.checked(false, &cfg()), Some(false));
        assert_eq!(h.down(), Some(Down::Active));
        assert_eq!(h.checked(true, &cfg()), None);
        assert_eq!(h.checked(true, &cfg()), Some(true));
        assert!(h.is_up());
    }

    #[test]
    fn passive_failures_take_a_server_out_for_the_cool_off() {
        let h = ServerHealth::default();
        assert!(!h.request_failed(2, Duration::from_secs(60)));
        h.request_ok();
        assert!(
            !h.request_failed(2, Duration::from_secs(60)),
            "a success resets the streak"
        );
        assert!(h.request_failed(2, Duration::from_secs(60)));
        assert_eq!(h.down(), Some(Down::Passive));
        let h = ServerHealth::default();
        assert!(h.request_failed(1, Duration::ZERO));
        assert!(h.is_up(), "a zero cool-off expires at once");
        assert!(
            !ServerHealth::default().request_failed(0, Duration::from_secs(1)),
            "0 = off"
        );
    }
}

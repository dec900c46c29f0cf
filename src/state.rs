//! The running state: one immutable [`Snapshot`] behind one `ArcSwap`, and the
//! [`StateHandle`], its only writer.
//!
//! A request loads the snapshot once (`StateHandle::load`) into its context and
//! uses that `Arc` for its whole life, so a swap never changes a request
//! half-way and never blocks it. Writers (start, reload, switch) build a
//! complete new snapshot first — router, pools, certificates — and only then
//! swap; if any part fails, nothing is swapped. Writers are serialised by a
//! mutex that no request ever takes.

use crate::accesslog::{AccessLog, LogDest, LogFormat};
use crate::acme::{AcmeManager, AcmeStatus, Challenges};
use crate::config::diag::Diagnostic;
use crate::config::model::TlsSource;
use crate::config::model::{AccessLogConfig, AccessLogFormat};
use crate::config::{Config, ConfigError, ConfigSource};
use crate::metrics::{ConfigNames, Metrics};
use crate::plan::router::Router;
use crate::tls::LoadedCert;
use crate::tls::{CertMap, CertStore, build_cert_map};
use crate::upstream::drain::DrainSender;
use crate::upstream::{DrainScope, DrainTicket, Pool, Upstream};
use arc_swap::ArcSwap;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

/// Everything a request needs, frozen at one config generation.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one on every successful apply.
    pub generation: u64,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Host + path routing.
    pub router: Router,
    /// Upstreams, indexed as the router's decisions.
    pub upstreams: Vec<Arc<Upstream>>,
}

impl Snapshot {
    /// Builds a snapshot from `config`, reusing unchanged pools of `previous`.
    pub fn build(
        config: Config,
        generation: u64,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
    ) -> Snapshot {
        let index: HashMap<String, usize> = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let prev = previous.and_then(|p| p.upstream(&u.name));
                Arc::new(Upstream::build(u, prev.map(|a| a.as_ref())))
            })
            .collect();
        Snapshot {
            generation,
            router: Router::build(&config, &index, metrics),
            config: Arc::new(config),
            upstreams,
        }
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.config.name == name)
    }

    /// Every pool of every upstream.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.upstreams.iter().flat_map(|u| u.pools.iter())
    }
}

/// Why a new configuration was not applied (the old one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Certificates could not be loaded.
    #[error("{}", crate::config::diag::render(.0).trim_end())]
    Certificates(Vec<Diagnostic>),
    /// Metrics or the access log could not be set up (start only).
    #[error("{0}")]
    Setup(String),
}

impl ApplyError {
    /// Every problem as a diagnostic line.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ApplyError::Config(c) => c.diagnostics(),
            ApplyError::Certificates(d) => d.clone(),
            ApplyError::Setup(msg) => vec![Diagnostic {
                origin: Default::default(),
                what: msg.clone(),
                fix: String::new(),
            }],
        }
    }
}

/// The cloneable control surface of the running state.
#[derive(Clone)]
pub struct StateHandle {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Snapshot>,
    certs: Arc<CertStore>,
    source: ConfigSource,
    writer: Mutex<Writer>,
    drains: Mutex<Option<DrainSender>>,
    /// The latest reload attempts, oldest first (at most [`RELOAD_HISTORY`]).
    reloads: Mutex<VecDeque<ReloadRecord>>,
    started: SystemTime,
    /// Every pool ever built that is still alive somewhere (a snapshot, a
    /// drain, a request): what a process shutdown must wait for.
    pools: Mutex<Vec<Weak<Pool>>>,
    shutting_down: AtomicBool,
    metrics: Arc<Metrics>,
    access_log: Option<Arc<AccessLog>>,
    /// Answers the CA's challenges (read by the proxy and the TLS listeners).
    challenges: Challenges,
    /// The latest ACME certificate of each `tls: acme` site.
    acme_certs: Mutex<HashMap<String, LoadedCert>>,
    /// The ACME client, when the config has an `acme` section.
    acme: Option<Arc<AcmeManager>>,
    /// Live ACME status (set once the service exists).
    acme_status: Mutex<Option<AcmeStatus>>,
    /// Fleet mode, when the config has a `cluster:` section (set at start).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

/// The ACME pieces a state starts with.
#[derive(Default)]
pub struct AcmeParts {
    /// Challenge answers shared with the proxy and listeners.
    pub challenges: Challenges,
    /// The ACME client, when configured.
    pub manager: Option<Arc<AcmeManager>>,
    /// Certificates already stored, by site.
    pub certs: HashMap<String, LoadedCert>,
}

/// State only writers touch, behind the writer lock.
#[derive(Default)]
pub struct Writer {
    /// Active pools chosen at run time for a config that cannot be rewritten
    /// (the embedded default): upstream -> pool, re-applied on every reload.
    pub active_overrides: HashMap<String, String>,
}

/// How many reload attempts [`StateHandle::reloads`] keeps.
pub const RELOAD_HISTORY: usize = 10;

/// The outcome of one reload attempt, for the API and `status`.
#[derive(Clone, Debug, Default)]
pub struct ReloadRecord {
    /// When it happened.
    pub at: Option<SystemTime>,
    /// What asked for it: `reload`, or `switch UPSTREAM to POOL`.
    pub action: String,
    /// Whether it was applied.
    pub ok: bool,
    /// The generation it produced or kept.
    pub generation: u64,
    /// Its problems (empty when ok), `file:line:col: ...` each.
    pub problems: Vec<String>,
    /// The same problems with their positions as fields.
    pub diagnostics: Vec<Diagnostic>,
    /// Changes it could not apply without a restart.
    pub restart_needed: Vec<String>,
}

impl StateHandle {
    /// Loads the configuration and certificates for the first time.
    pub fn start(source: ConfigSource) -> Result<StateHandle, ApplyError> {
        let config = source.load()?;
        let challenges = Challenges::new();
        let acme = match &config.acme {
            Some(a) => Some(Arc::new(
                AcmeManager::new(a.clone(), challenges.clone())
                    .map_err(|e| ApplyError::Setup(crate::acme::chain(&e)))?,
            )),
            None => None,
        };
        // Certificates ACME stored on earlier runs are served from the first
        // handshake; the ACME service decides later whether they need renewing.
        let mut acme_certs = HashMap::new();
        if let Some(m) = &acme {
            for site in acme_sites(&config) {
                if let Some(c) = m.stored(&site) {
                    acme_certs.insert(site, c);
                }
            }
        }
        let certs = build_cert_map(&config, true, &acme_certs).map_err(ApplyError::Certificates)?;
        let metrics = Metrics::new().map_err(|e| ApplyError::Setup(e.to_string()))?;
        let access_log = open_access_log(&config.access_log)?;
        Ok(StateHandle::from_parts(
            source,
            config,
            certs,
            Arc::new(metrics),
            access_log,
            AcmeParts {
                challenges,
                manager: acme,
                certs: acme_certs,
            },
        ))
    }

    /// Assembles a handle from an already validated config and certificates.
    pub fn from_parts(
        source: ConfigSource,
        config: Config,
        certs: CertMap,
        metrics: Arc<Metrics>,
        access_log: Option<Arc<AccessLog>>,
        acme: AcmeParts,
    ) -> StateHandle {
        let snapshot = Snapshot::build(config, 1, None, &metrics);
        metrics.config_applied(1, SystemTime::now());
        for (site, info) in &certs.sites {
            metrics.set_certificate_not_after(site, info.not_after);
        }
        let pools = snapshot.pools().map(Arc::downgrade).collect();
        StateHandle {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(snapshot),
                certs: Arc::new(CertStore::new(certs).with_metrics(metrics.clone())),
                source,
                writer: Mutex::new(Writer::default()),
                drains: Mutex::new(None),
                reloads: Mutex::new(VecDeque::new()),
                started: SystemTime::now(),
                pools: Mutex::new(pools),
                shutting_down: AtomicBool::new(false),
                metrics,
                access_log,
                challenges: acme.challenges,
                acme_certs: Mutex::new(acme.certs),
                acme: acme.manager,
                acme_status: Mutex::new(None),
                cluster: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Fleet mode's state, once set at start.
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.inner.cluster.set(cluster);
    }

    /// Fleet mode's state (`None`: no `cluster:` section).
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.inner.cluster.get()
    }

    /// The ACME challenge answers (HTTP-01 path, TLS-ALPN-01 certificates).
    pub fn challenges(&self) -> &Challenges {
        &self.inner.challenges
    }

    /// The ACME client, when configured.
    pub fn acme(&self) -> Option<&Arc<AcmeManager>> {
        self.inner.acme.as_ref()
    }

    /// Connects the ACME service's live status (for the API).
    pub fn set_acme_status(&self, status: AcmeStatus) {
        *lock(&self.inner.acme_status) = Some(status);
    }

    /// The ACME service's status, if it runs.
    pub fn acme_status(&self) -> Option<AcmeStatus> {
        lock(&self.inner.acme_status).clone()
    }

    /// Serves a new ACME certificate for `site` from the next handshake on:
    /// the whole certificate map is rebuilt and swapped; open connections are
    /// not touched. A failure keeps the current map.
    pub fn install_acme_cert(&self, site: &str, cert: LoadedCert) {
        let _writer = self.writer();
        let serial = cert.info.serial.clone();
        lock(&self.inner.acme_certs).insert(site.to_string(), cert);
        let config = self.load().config.clone();
        let acme = lock(&self.inner.acme_certs).clone();
        match build_cert_map(&config, true, &acme) {
            Ok(map) => {
                for (s, info) in &map.sites {
                    self.inner
                        .metrics
                        .set_certificate_not_after(s, info.not_after);
                }
                self.inner.certs.swap(map);
                log::info!("site '{site}': now serving ACME certificate (serial {serial})");
            }
            Err(problems) => {
                for p in problems {
                    log::error!("site '{site}': cannot install the ACME certificate: {p}");
                }
            }
        }
    }

    /// Connects the drain service; drains started before it only update states.
    pub fn set_drain_sender(&self, tx: DrainSender) {
        *lock(&self.inner.drains) = Some(tx);
    }

    /// When the process loaded its first configuration.
    pub fn started(&self) -> SystemTime {
        self.inner.started
    }

    /// The last reload attempt (a default, `at: None`, before the first).
    pub fn last_reload(&self) -> ReloadRecord {
        lock(&self.inner.reloads)
            .back()
            .cloned()
            .unwrap_or_default()
    }

    /// The latest reload attempts, newest first.
    pub fn reloads(&self) -> Vec<ReloadRecord> {
        lock(&self.inner.reloads).iter().rev().cloned().collect()
    }

    /// Records a reload attempt (done by `reload`); the oldest of more than
    /// [`RELOAD_HISTORY`] is forgotten.
    pub fn record_reload(&self, rec: ReloadRecord) {
        let mut list = lock(&self.inner.reloads);
        if list.len() == RELOAD_HISTORY {
            list.pop_front();
        }
        list.push_back(rec);
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The access log, unless it is off.
    pub fn access_log(&self) -> Option<&Arc<AccessLog>> {
        self.inner.access_log.as_ref()
    }

    /// Every pool still alive (current, draining, or held by a request),
    /// once each: of several builds of one pool (see `upstream`), the newest.
    pub fn live_pools(&self) -> Vec<Arc<Pool>> {
        let mut out: Vec<Arc<Pool>> = Vec::new();
        for p in lock(&self.inner.pools)
            .iter()
            .rev()
            .filter_map(Weak::upgrade)
        {
            if !out.iter().any(|o| o.same_pool(&p)) {
                out.push(p);
            }
        }
        out.reverse();
        out
    }

    /// Marks the process as stopping: responses stop offering keep-alive.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    /// True once a stop or upgrade began.
    pub fn shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Takes the writer lock: one reload or switch at a time.
    pub fn writer(&self) -> MutexGuard<'_, Writer> {
        lock(&self.inner.writer)
    }

    /// The current snapshot; a request calls this once.
    pub fn load(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// The SNI certificate resolver shared by the TLS listeners.
    pub fn cert_store(&self) -> Arc<CertStore> {
        self.inner.certs.clone()
    }

    /// Where the configuration is read from.
    pub fn source(&self) -> &ConfigSource {
        &self.inner.source
    }

    /// Builds everything from `config` and swaps it in, or changes nothing.
    /// The caller holds the writer lock ([`StateHandle::writer`]). Listener
    /// and admin addresses are fixed at start: a change there is returned as
    /// "restart needed" and the running ones are kept.
    pub fn apply(
        &self,
        _writer: &mut Writer,
        mut config: Config,
    ) -> Result<(Arc<Snapshot>, Vec<String>), ApplyError> {
        let old = self.inner.current.load_full();
        let mut restart = Vec::new();
        if config.listeners != old.config.listeners {
            restart.push("listeners changed: restart greenlight to apply them".to_string());
            config.keep_listeners(&old.config.listeners);
        }
        if config.admin != old.config.admin {
            restart.push("admin changed: restart greenlight to apply it".to_string());
            config.admin = old.config.admin.clone();
        }
        // Read once at start (the listeners, the proxy app, the signal
        // handler): a change is reported, and the running value kept so the
        // snapshot says what is in force.
        let l = (&config.limits, &old.config.limits);
        for (changed, what) in [
            (config.access_log != old.config.access_log, "access_log"),
            (
                config.upgrade_socket != old.config.upgrade_socket,
                "upgrade_socket",
            ),
            (
                l.0.header_timeout != l.1.header_timeout,
                "limits.header_timeout",
            ),
            (
                l.0.h2_max_concurrent_streams != l.1.h2_max_concurrent_streams,
                "limits.h2_max_concurrent_streams",
            ),
            (
                config.shutdown_timeout != old.config.shutdown_timeout,
                "shutdown_timeout",
            ),
        ] {
            if changed {
                restart.push(format!("{what} changed: restart greenlight to apply it"));
            }
        }
        // Fleet mode is set up at start (member key, watch): kept as it is.
        if config.cluster != old.config.cluster {
            restart.push("cluster changed: restart greenlight to apply it".to_string());
            config.cluster = old.config.cluster.clone();
        }
        config.limits.header_timeout = old.config.limits.header_timeout;
        config.limits.h2_max_concurrent_streams = old.config.limits.h2_max_concurrent_streams;
        config.shutdown_timeout = old.config.shutdown_timeout;
        config.access_log = old.config.access_log.clone();
        config.upgrade_socket = old.config.upgrade_socket.clone();
        // The ACME service is set up at start with its sites and account.
        if config.acme != old.config.acme || acme_sites(&config) != acme_sites(&old.config) {
            restart.push(
                "acme settings or `tls: acme` sites changed: restart greenlight to apply them"
                    .to_string(),
            );
            config.acme = old.config.acme.clone();
            for (site, old_site) in config.sites.iter_mut().zip(old.config.sites.iter()) {
                if site.name == old_site.name
                    && (site.tls == Some(TlsSource::Acme))
                        != (old_site.tls == Some(TlsSource::Acme))
                {
                    site.tls = old_site.tls.clone();
                }
            }
        }
        // Unchanged limit zones keep every client's bucket and count.
        config.zones.keep_state_of(&old.config.zones);
        let acme = lock(&self.inner.acme_certs).clone();
        let certs = build_cert_map(&config, true, &acme).map_err(ApplyError::Certificates)?;
        let metrics = &self.inner.metrics;
        // Series of names the new config no longer has go before new handles
        // are made; pools still draining keep theirs until they are gone.
        {
            let live = self.live_pools();
            let sites: Vec<&str> = config.sites.iter().map(|s| s.name.as_str()).collect();
            let route_labels: Vec<(&str, String)> = config
                .sites
                .iter()
                .flat_map(|s| {
                    s.routes
                        .iter()
                        .map(|r| (s.name.as_str(), r.location.as_written()))
                })
                .collect();
            let routes: Vec<(&str, &str)> =
                route_labels.iter().map(|(s, r)| (*s, r.as_str())).collect();
            let mut pools: Vec<(&str, &str)> = Vec::new();
            let mut servers: Vec<(&str, &str, &str)> = Vec::new();
            for u in &config.upstreams {
                for p in &u.pools {
                    pools.push((&u.name, &p.name));
                    for sv in &p.servers {
                        servers.push((&u.name, &p.name, &sv.label));
                    }
                }
            }
            for p in &live {
                pools.push((&p.upstream, &p.name));
                for sv in p.servers() {
                    servers.push((&p.upstream, &p.name, &sv.label));
                }
            }
            let listeners: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
            metrics.retain_config(&ConfigNames {
                sites: &sites,
                routes: &routes,
                pools: &pools,
                servers: &servers,
                listeners: &listeners,
            });
        }
        for (site, info) in &certs.sites {
            metrics.set_certificate_not_after(site, info.not_after);
        }
        let next = Arc::new(Snapshot::build(
            config,
            old.generation + 1,
            Some(&old),
            metrics,
        ));
        metrics.config_applied(next.generation, SystemTime::now());
        self.inner.certs.swap(certs);
        self.inner.current.store(next.clone());
        {
            let mut pools = lock(&self.inner.pools);
            pools.retain(|w| w.strong_count() > 0);
            for p in next.pools() {
                if !pools
                    .iter()
                    .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(p)))
                {
                    pools.push(Arc::downgrade(p));
                }
            }
        }
        self.start_drains(&old, &next);
        Ok((next, restart))
    }

    /// Marks the new active pools active, starts draining every pool that
    /// was active in `old` and is not (a build of) the active pool of
    /// `next`, and drains the servers a rebuilt pool no longer has.
    fn start_drains(&self, old: &Snapshot, next: &Snapshot) {
        for up in &next.upstreams {
            up.active_pool().set_active();
        }
        let tx = lock(&self.inner.drains).clone();
        let send = |ticket| {
            if let Some(tx) = &tx {
                let _ = tx.send(ticket);
            }
        };
        for up in &old.upstreams {
            let was = up.active_pool();
            let new_up = next.upstream(&up.config.name);
            if new_up.is_some_and(|n| n.active_pool().same_pool(was)) {
                continue;
            }
            let timeout = new_up.map_or(up.config.drain_timeout, |n| n.config.drain_timeout);
            if let Some(ticket) = was.begin_drain(timeout) {
                log::info!(
                    "upstream '{}' pool '{}': draining ({} in flight, {} WebSocket(s), deadline in {timeout:?})",
                    was.upstream,
                    was.name,
                    was.inflight(),
                    was.websockets()
                );
                send(ticket);
            }
        }
        for up in &next.upstreams {
            let Some(old_up) = old.upstream(&up.config.name) else {
                continue;
            };
            for pool in &up.pools {
                let Some(before) = old_up.pool(&pool.name).filter(|b| !Arc::ptr_eq(b, pool)) else {
                    continue;
                };
                // A server a reload put back stops draining.
                let back: Vec<(String, crate::upstream::addr::ServerAddr)> = pool
                    .servers()
                    .iter()
                    .filter(|s| pool.is_removed(&s.addr))
                    .map(|s| (s.label.clone(), s.addr.clone()))
                    .collect();
                pool.set_removed(&back, None);
                let removed = pool.removed_since(before);
                if removed.is_empty() {
                    continue;
                }
                let timeout = up.config.drain_timeout;
                log::info!(
                    "upstream '{}' pool '{}': server(s) {} removed; draining them (deadline in {timeout:?})",
                    pool.upstream,
                    pool.name,
                    removed
                        .iter()
                        .map(|(l, _)| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                pool.set_removed(&removed, Some(SystemTime::now() + timeout));
                send(DrainTicket {
                    pool: pool.clone(),
                    scope: DrainScope::Servers(removed),
                    deadline: std::time::Instant::now() + timeout,
                });
            }
        }
    }
}

/// Names of the sites with `tls: acme`, in file order.
pub fn acme_sites(config: &Config) -> Vec<String> {
    config
        .sites
        .iter()
        .filter(|s| s.tls == Some(TlsSource::Acme))
        .map(|s| s.name.clone())
        .collect()
}

fn open_access_log(cfg: &AccessLogConfig) -> Result<Option<Arc<AccessLog>>, ApplyError> {
    let fmt = |f: &AccessLogFormat| match f {
        AccessLogFormat::Combined => LogFormat::Combined,
        AccessLogFormat::Json => LogFormat::Json,
    };
    let (dest, format) = match cfg {
        AccessLogConfig::Off => return Ok(None),
        AccessLogConfig::Stdout(f) => (LogDest::Stdout, fmt(f)),
        AccessLogConfig::File(p, f) => (LogDest::File(p.clone()), fmt(f)),
    };
    AccessLog::new(dest, format)
        .map(|l| Some(Arc::new(l)))
        .map_err(|e| ApplyError::Setup(e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

//! Prometheus metrics: every metric name, label and help text of greenlight
//! lives in this file (the fixed value sets of enumerated labels in
//! `metrics/labels.rs`), in one registry that belongs to [`Metrics`].
//!
//! Owns: the [`Metrics`] struct (its own `prometheus::Registry`, never the
//! global default one, with the process collector registered in it), the
//! typed handles the rest of the proxy records into, and [`Metrics::render`]
//! (text exposition format for `GET /metrics`). Must not touch: the config,
//! the snapshot, pools or sockets — callers pass plain names and numbers in,
//! so this module has no dependency on the rest of the crate and does no I/O.
//!
//! Data flow:
//! - **Request path (hot).** Recording a request must not hash label strings.
//!   When a snapshot is built, the proxy calls [`Metrics::route_handles`] once
//!   per (site, route, upstream, pool) it can route to — with upstream and
//!   pool [`NONE`] for a route that answers itself, and once per site with
//!   route [`NONE`] too for answers given before a route is chosen — and
//!   caches the [`RouteMetrics`] in the snapshot, indexed like its routes. Per
//!   request it then calls [`RouteMetrics::record`] and friends: atomic adds on
//!   already-resolved children, nothing else. Connections use
//!   [`ListenerMetrics`] the same way.
//! - **Scrape time (cold).** Pool and drain state already lives in atomics in
//!   the pools; the metrics handler copies it in with [`Metrics::pool_handles`]
//!   + [`PoolMetrics::set`] just before [`Metrics::render`].
//! - **Events (cold).** Reloads, switches, health checks, certificates, ACME:
//!   plain methods that resolve labels on the spot.
//!
//! Cardinality: label values come only from the config (site, upstream, pool,
//! server, listener names; a route is labelled with its `path:` as written in
//! the config, never with a request's path) or from the small fixed sets in
//! this file. A
//! request whose host matches no site is recorded under the site [`NONE`]
//! (`"-"`); [`site_label`] maps any name that is not a known site to it. After
//! a reload, [`Metrics::retain_config`] removes every series that names a
//! site, route, upstream, pool, server or listener that is gone, so dropped names do
//! not leave stale series behind. (Chosen over per-family removal calls: one
//! rule over all families cannot forget a family added later.) Handles cached
//! by an older snapshot for a removed name keep working but are detached from
//! the registry, so in-flight requests can never resurrect a removed series.

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::proto::LabelPair;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod labels;
pub use labels::{HttpProtocol, ProxyProtocolError, SwitchResult, TlsFailure, UpstreamErrorKind};

/// The label value for "none": no site matched, no upstream or pool involved.
pub const NONE: &str = "-";

/// `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of `greenlight_request_duration_seconds`: 1 ms to 60 s.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Values of the `class` label of `greenlight_requests_total`, by index.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// Values of the `state` label of `greenlight_pool_state`.
pub const POOL_STATES: [&str; 4] = ["active", "draining", "drained", "idle"];

/// Index into [`STATUS_CLASSES`] for a status code; 0 (no response was sent)
/// and anything outside 100..=599 count as `"error"`.
pub fn status_class(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

/// The site label for `name`: `name` itself if it is one of the configured
/// sites in `known`, otherwise [`NONE`]. Never returns a value not in `known`.
pub fn site_label<'a>(known: &'a [&'a str], name: &str) -> &'a str {
    known.iter().copied().find(|k| *k == name).unwrap_or(NONE)
}

/// Building the registry failed (a programming error: duplicate or invalid name).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A family could not be created or registered.
    #[error("metric {name}: {source}")]
    Register {
        /// The family's name.
        name: &'static str,
        /// What prometheus said.
        #[source]
        source: prometheus::Error,
    },
}

/// Names still present in the configuration, for [`Metrics::retain_config`].
/// [`NONE`] is always kept; an upstream is kept while any of its pools is.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigNames<'a> {
    /// Site names.
    pub sites: &'a [&'a str],
    /// (site, route label) pairs: each route's `path:` as written.
    pub routes: &'a [(&'a str, &'a str)],
    /// (upstream, pool) pairs. Include pools that are still draining after
    /// being removed from the config if their series should stay until drained.
    pub pools: &'a [(&'a str, &'a str)],
    /// (upstream, pool, server label) triples.
    pub servers: &'a [(&'a str, &'a str, &'a str)],
    /// Listener names.
    pub listeners: &'a [&'a str],
}

/// Pre-resolved handles for one (site, route, upstream, pool): recording is only
/// atomic operations. Cheap to clone (reference-counted children).
#[derive(Clone)]
pub struct RouteMetrics {
    requests: [IntCounter; 6],
    duration: Histogram,
    received: IntCounter,
    sent: IntCounter,
    /// Absent when the route has no upstream ([`NONE`]).
    upstream: Option<UpstreamHandles>,
}

#[derive(Clone)]
struct UpstreamHandles {
    errors: [IntCounter; 5],
    websockets: IntGauge,
}

impl RouteMetrics {
    /// One finished request: `status` as sent (0 = none, counted as `error`),
    /// its total duration, and request/response bytes (headers included or
    /// not — be consistent at the call site).
    pub fn record(&self, status: u16, elapsed: Duration, bytes_received: u64, bytes_sent: u64) {
        if let Some(c) = self.requests.get(status_class(status)) {
            c.inc();
        }
        self.duration.observe(elapsed.as_secs_f64());
        self.received.inc_by(bytes_received);
        self.sent.inc_by(bytes_sent);
    }

    /// One failed attempt to talk to the upstream (also counts retries).
    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        if let Some(u) = &self.upstream {
            // Discriminants follow `ALL`, the order the handles were made in.
            if let Some(c) = u.errors.get(kind as usize) {
                c.inc();
            }
        }
    }

    /// A WebSocket tunnel opened (status 101); the gauge goes down when the
    /// returned guard is dropped. Hold it in the request context.
    pub fn websocket_opened(&self) -> GaugeGuard {
        GaugeGuard::new(self.upstream.as_ref().map(|u| u.websockets.clone()))
    }
}

/// Decrements a gauge when dropped (open WebSockets, open connections).
pub struct GaugeGuard(Option<IntGauge>);

impl GaugeGuard {
    fn new(gauge: Option<IntGauge>) -> GaugeGuard {
        if let Some(g) = &gauge {
            g.inc();
        }
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// Pre-resolved connection gauges of one listener.
#[derive(Clone)]
pub struct ListenerMetrics {
    h1: IntGauge,
    h2: IntGauge,
}

impl ListenerMetrics {
    /// A downstream connection opened; it counts until the guard is dropped.
    pub fn connection_opened(&self, protocol: HttpProtocol) -> GaugeGuard {
        GaugeGuard::new(Some(match protocol {
            HttpProtocol::H1 => self.h1.clone(),
            HttpProtocol::H2 => self.h2.clone(),
        }))
    }
}

/// A pool's state as read from the pool at scrape time.
#[derive(Clone, Debug)]
pub struct PoolSample<'a> {
    /// Requests in flight (WebSockets included).
    pub inflight: usize,
    /// Open WebSocket tunnels.
    pub websockets: usize,
    /// One of [`POOL_STATES`]; anything else sets all four to 0.
    pub state: &'a str,
    /// When the current or last drain started.
    pub drain_started: Option<SystemTime>,
    /// When it must end.
    pub drain_deadline: Option<SystemTime>,
    /// How long the last completed drain took.
    pub last_drain: Option<Duration>,
}

/// Pre-resolved gauges of one (upstream, pool).
#[derive(Clone)]
pub struct PoolMetrics {
    inflight: IntGauge,
    websockets: IntGauge,
    state: [IntGauge; 4],
    drain_started: Gauge,
    drain_deadline: Gauge,
    last_drain: Gauge,
}

impl PoolMetrics {
    /// Copies a sample in. Absent timestamps and durations are exported as 0.
    pub fn set(&self, s: &PoolSample<'_>) {
        self.inflight.set(saturating_i64(s.inflight));
        self.websockets.set(saturating_i64(s.websockets));
        for (g, name) in self.state.iter().zip(POOL_STATES) {
            g.set(i64::from(name == s.state));
        }
        self.drain_started
            .set(s.drain_started.map_or(0.0, unix_seconds));
        self.drain_deadline
            .set(s.drain_deadline.map_or(0.0, unix_seconds));
        self.last_drain
            .set(s.last_drain.map_or(0.0, |d| d.as_secs_f64()));
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch (negative before it).
fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// All of greenlight's metrics, in their own registry. Build once at start
/// and share as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    bytes_received: IntCounterVec,
    bytes_sent: IntCounterVec,
    downstream_connections: IntGaugeVec,
    websockets_open: IntGaugeVec,
    pool_inflight: IntGaugeVec,
    pool_websockets: IntGaugeVec,
    pool_state: IntGaugeVec,
    pool_drain_started: GaugeVec,
    pool_drain_deadline: GaugeVec,
    pool_last_drain: GaugeVec,
    switches: IntCounterVec,
    server_up: IntGaugeVec,
    health_check_failures: IntCounterVec,
    config_generation: IntGauge,
    reloads: IntCounterVec,
    last_reload_success: Gauge,
    certificate_not_after: GaugeVec,
    tls_handshake_failures: IntCounterVec,
    proxy_protocol_errors: IntCounterVec,
    acme_orders: IntCounterVec,
    /// `greenlight_cluster_connected`, registered in cluster mode only.
    cluster_connected: std::sync::OnceLock<IntGauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Creates a collector with `make` and registers it under `name`.
fn add<C>(
    registry: &Registry,
    name: &'static str,
    make: impl FnOnce() -> prometheus::Result<C>,
) -> Result<C, MetricsError>
where
    C: Collector + Clone + 'static,
{
    let wrap = |source| MetricsError::Register { name, source };
    let c = make().map_err(wrap)?;
    registry.register(Box::new(c.clone())).map_err(wrap)?;
    Ok(c)
}

impl Metrics {
    /// Builds the registry with every family (no series yet) and the process
    /// collector (`process_*`: CPU, memory, open fds, start time).
    ///
    /// # Errors
    /// Only on a programming error in this file (invalid or duplicate name).
    pub fn new() -> Result<Metrics, MetricsError> {
        let r = Registry::new();
        let ic = |name: &'static str, help: &str, labels: &[&str]| {
            add(&r, name, || {
                IntCounterVec::new(Opts::new(name, help), labels)
            })
        };
        let ig = |name: &'static str, help: &str, labels: &[&str]| {
            add(&r, name, || IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let fg = |name: &'static str, help: &str, labels: &[&str]| {
            add(&r, name, || GaugeVec::new(Opts::new(name, help), labels))
        };
        const UP: &[&str] = &["upstream", "pool"];
        const SERVER: &[&str] = &["upstream", "pool", "server"];
        let m = Metrics {
            requests: ic(
                "greenlight_requests_total",
                "Requests answered, by site, route, upstream, pool and status class (1xx..5xx, or error when no response was sent).",
                &["site", "route", "upstream", "pool", "class"],
            )?,
            request_duration: add(&r, "greenlight_request_duration_seconds", || {
                HistogramVec::new(
                    HistogramOpts::new(
                        "greenlight_request_duration_seconds",
                        "Time from request start to the last response byte, in seconds, by site, route and upstream.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["site", "route", "upstream"],
                )
            })?,
            upstream_errors: ic(
                "greenlight_upstream_errors_total",
                "Failed attempts to reach or read from an upstream server, by kind (refused, timeout, reset, tls, other).",
                &["upstream", "pool", "kind"],
            )?,
            bytes_received: ic(
                "greenlight_bytes_received_total",
                "Bytes received from clients, by site.",
                &["site"],
            )?,
            bytes_sent: ic(
                "greenlight_bytes_sent_total",
                "Bytes sent to clients, by site.",
                &["site"],
            )?,
            downstream_connections: ig(
                "greenlight_downstream_connections",
                "Open client connections, by listener and protocol (h1, h2).",
                &["listener", "protocol"],
            )?,
            websockets_open: ig(
                "greenlight_websockets_open",
                "Open WebSocket tunnels as counted by the proxy, by upstream and pool.",
                UP,
            )?,
            pool_inflight: ig(
                "greenlight_pool_inflight",
                "Requests in flight on a pool, WebSockets included (sampled at scrape).",
                UP,
            )?,
            pool_websockets: ig(
                "greenlight_pool_websockets",
                "WebSocket tunnels open on a pool (sampled at scrape).",
                UP,
            )?,
            pool_state: ig(
                "greenlight_pool_state",
                "1 for the pool's current state (active, draining, drained, idle), 0 for the others.",
                &["upstream", "pool", "state"],
            )?,
            pool_drain_started: fg(
                "greenlight_pool_drain_started_seconds",
                "Unix time the current or last drain of the pool started; 0 if never drained.",
                UP,
            )?,
            pool_drain_deadline: fg(
                "greenlight_pool_drain_deadline_seconds",
                "Unix time the current or last drain of the pool must end; 0 if never drained.",
                UP,
            )?,
            pool_last_drain: fg(
                "greenlight_pool_last_drain_duration_seconds",
                "How long the pool's last completed drain took, in seconds; 0 if none completed.",
                UP,
            )?,
            switches: ic(
                "greenlight_switches_total",
                "Pool switches, by upstream and result (ok, refused, forced).",
                &["upstream", "result"],
            )?,
            server_up: ig(
                "greenlight_server_up",
                "1 if the server passes health checks, 0 if not.",
                SERVER,
            )?,
            health_check_failures: ic(
                "greenlight_health_check_failures_total",
                "Failed health checks, by server.",
                SERVER,
            )?,
            config_generation: add(&r, "greenlight_config_generation", || {
                IntGauge::new(
                    "greenlight_config_generation",
                    "Generation of the running configuration; increases by one per successful apply.",
                )
            })?,
            reloads: ic(
                "greenlight_reloads_total",
                "Configuration reloads, by result (ok, error).",
                &["result"],
            )?,
            last_reload_success: add(
                &r,
                "greenlight_last_reload_success_timestamp_seconds",
                || {
                    Gauge::new(
                        "greenlight_last_reload_success_timestamp_seconds",
                        "Unix time of the last successful configuration load (start or reload).",
                    )
                },
            )?,
            certificate_not_after: fg(
                "greenlight_certificate_not_after_seconds",
                "Unix time the site's certificate expires.",
                &["site"],
            )?,
            tls_handshake_failures: ic(
                "greenlight_tls_handshake_failures_total",
                "Failed client TLS handshakes, by reason (no_certificate, protocol, timeout, other).",
                &["reason"],
            )?,
            proxy_protocol_errors: ic(
                "greenlight_proxy_protocol_errors_total",
                "Connections a proxy_protocol listener closed for want of a valid PROXY header, by listener and reason (missing, malformed, incomplete).",
                &["listener", "reason"],
            )?,
            acme_orders: ic(
                "greenlight_acme_orders_total",
                "ACME certificate orders, by site, kind (issue, renewal) and result (ok, error).",
                &["site", "kind", "result"],
            )?,
            registry: r.clone(),
            cluster_connected: std::sync::OnceLock::new(),
        };
        let process = prometheus::process_collector::ProcessCollector::for_self();
        r.register(Box::new(process))
            .map_err(|source| MetricsError::Register {
                name: "process",
                source,
            })?;
        Ok(m)
    }

    /// Fleet mode: whether the etcd session is up (the gauge exists only in
    /// cluster mode, so a single instance does not look disconnected).
    pub fn cluster_connected(&self, up: bool) {
        let gauge = self.cluster_connected.get_or_init(|| {
            let g = IntGauge::new(
                "greenlight_cluster_connected",
                "1 while this member's etcd session is up (cluster mode), 0 while disconnected.",
            )
            .expect("a valid metric name");
            if let Err(e) = self.registry.register(Box::new(g.clone())) {
                log::error!("greenlight_cluster_connected not registered: {e}");
            }
            g
        });
        gauge.set(i64::from(up));
    }

    /// Handles for requests routed to `site` / `route` / `upstream` / `pool`.
    /// Call when building a snapshot, never per request. `route` is the
    /// route's `path:` as written in the config (never a request's path).
    /// Pass [`NONE`] for the upstream and pool of answers given without an
    /// upstream (404, 421, redirects, `respond`), [`NONE`] as the route for
    /// answers given before a route was chosen, and [`NONE`] as the site when
    /// no site matched.
    pub fn route_handles(
        &self,
        site: &str,
        route: &str,
        upstream: &str,
        pool: &str,
    ) -> RouteMetrics {
        let requests = STATUS_CLASSES.map(|c| {
            self.requests
                .with_label_values(&[site, route, upstream, pool, c])
        });
        let upstream_handles = (upstream != NONE && pool != NONE).then(|| UpstreamHandles {
            errors: UpstreamErrorKind::ALL.map(|k| {
                self.upstream_errors
                    .with_label_values(&[upstream, pool, k.as_str()])
            }),
            websockets: self.websockets_open.with_label_values(&[upstream, pool]),
        });
        RouteMetrics {
            requests,
            duration: self
                .request_duration
                .with_label_values(&[site, route, upstream]),
            received: self.bytes_received.with_label_values(&[site]),
            sent: self.bytes_sent.with_label_values(&[site]),
            upstream: upstream_handles,
        }
    }

    /// Connection gauges of one listener (resolve once per listener).
    pub fn listener_handles(&self, listener: &str) -> ListenerMetrics {
        ListenerMetrics {
            h1: self
                .downstream_connections
                .with_label_values(&[listener, "h1"]),
            h2: self
                .downstream_connections
                .with_label_values(&[listener, "h2"]),
        }
    }

    /// Gauges of one pool, for [`PoolMetrics::set`] at scrape time.
    pub fn pool_handles(&self, upstream: &str, pool: &str) -> PoolMetrics {
        let l = [upstream, pool];
        PoolMetrics {
            inflight: self.pool_inflight.with_label_values(&l),
            websockets: self.pool_websockets.with_label_values(&l),
            state: POOL_STATES.map(|s| self.pool_state.with_label_values(&[upstream, pool, s])),
            drain_started: self.pool_drain_started.with_label_values(&l),
            drain_deadline: self.pool_drain_deadline.with_label_values(&l),
            last_drain: self.pool_last_drain.with_label_values(&l),
        }
    }

    /// A pool switch of `upstream` ended with `result`.
    pub fn switch(&self, upstream: &str, result: SwitchResult) {
        self.switches
            .with_label_values(&[upstream, result.as_str()])
            .inc();
    }

    /// A server's health changed (or was first checked).
    pub fn set_server_up(&self, upstream: &str, pool: &str, server: &str, up: bool) {
        self.server_up
            .with_label_values(&[upstream, pool, server])
            .set(i64::from(up));
    }

    /// One failed health check of a server.
    pub fn health_check_failed(&self, upstream: &str, pool: &str, server: &str) {
        self.health_check_failures
            .with_label_values(&[upstream, pool, server])
            .inc();
    }

    /// A configuration was applied (at start or by a reload): sets the
    /// generation and the last-success time. Start does not count as a reload.
    pub fn config_applied(&self, generation: u64, at: SystemTime) {
        self.config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.last_reload_success.set(unix_seconds(at));
    }

    /// A reload ended: `ok` counts `result="ok"`, otherwise `"error"`. Call
    /// [`Metrics::config_applied`] as well on success.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.with_label_values(&[result]).inc();
    }

    /// The certificate now served for `site` expires at `not_after`.
    pub fn set_certificate_not_after(&self, site: &str, not_after: SystemTime) {
        self.certificate_not_after
            .with_label_values(&[site])
            .set(unix_seconds(not_after));
    }

    /// A client TLS handshake failed.
    pub fn tls_handshake_failed(&self, reason: TlsFailure) {
        self.tls_handshake_failures
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// A `proxy_protocol` listener closed a connection without a valid header.
    pub fn proxy_protocol_refused(&self, listener: &str, reason: ProxyProtocolError) {
        self.proxy_protocol_errors
            .with_label_values(&[listener, reason.as_str()])
            .inc();
    }

    /// An ACME order for `site` ended: a first issue or a renewal.
    pub fn acme_order(&self, site: &str, renewal: bool, ok: bool) {
        let kind = if renewal { "renewal" } else { "issue" };
        let result = if ok { "ok" } else { "error" };
        self.acme_orders
            .with_label_values(&[site, kind, result])
            .inc();
    }

    /// Removes every series naming a site, route, upstream, pool, server or
    /// listener not in `live`; returns how many were removed. Call after each
    /// successful apply, before building the new snapshot's handles.
    pub fn retain_config(&self, live: &ConfigNames<'_>) -> usize {
        let keep = Keep::new(live);
        let mut removed = 0;
        removed += retain_vec(&self.requests, &keep);
        removed += retain_vec(&self.request_duration, &keep);
        removed += retain_vec(&self.upstream_errors, &keep);
        removed += retain_vec(&self.bytes_received, &keep);
        removed += retain_vec(&self.bytes_sent, &keep);
        removed += retain_vec(&self.downstream_connections, &keep);
        removed += retain_vec(&self.websockets_open, &keep);
        removed += retain_vec(&self.pool_inflight, &keep);
        removed += retain_vec(&self.pool_websockets, &keep);
        removed += retain_vec(&self.pool_state, &keep);
        removed += retain_vec(&self.pool_drain_started, &keep);
        removed += retain_vec(&self.pool_drain_deadline, &keep);
        removed += retain_vec(&self.pool_last_drain, &keep);
        removed += retain_vec(&self.switches, &keep);
        removed += retain_vec(&self.server_up, &keep);
        removed += retain_vec(&self.health_check_failures, &keep);
        removed += retain_vec(&self.certificate_not_after, &keep);
        removed += retain_vec(&self.acme_orders, &keep);
        removed
    }

    /// Every family in the Prometheus text exposition format (version 0.0.4,
    /// `Content-Type: text/plain; version=0.0.4`). An encoding failure is
    /// logged and yields what was encoded so far.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            log::warn!("metrics: encoding failed: {e}");
        }
        out
    }

    /// The registry, for tests and for embedding in another exporter.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// The live names, hashed once per retain.
struct Keep<'a> {
    sites: HashSet<&'a str>,
    routes: HashSet<(&'a str, &'a str)>,
    upstreams: HashSet<&'a str>,
    pools: HashSet<(&'a str, &'a str)>,
    servers: HashSet<(&'a str, &'a str, &'a str)>,
    listeners: HashSet<&'a str>,
}

impl<'a> Keep<'a> {
    fn new(live: &ConfigNames<'a>) -> Keep<'a> {
        Keep {
            sites: live.sites.iter().copied().collect(),
            routes: live.routes.iter().copied().collect(),
            upstreams: live.pools.iter().map(|(u, _)| *u).collect(),
            pools: live.pools.iter().copied().collect(),
            servers: live.servers.iter().copied().collect(),
            listeners: live.listeners.iter().copied().collect(),
        }
    }

    fn keeps(&self, labels: &[LabelPair]) -> bool {
        let get = |n: &str| labels.iter().find(|l| l.name() == n).map(|l| l.value());
        let upstream = get("upstream").unwrap_or(NONE);
        let pool = get("pool").unwrap_or(NONE);
        let site = get("site").unwrap_or(NONE);
        let ok_site = site == NONE || self.sites.contains(site);
        let ok_route = get("route").is_none_or(|r| r == NONE || self.routes.contains(&(site, r)));
        let ok_upstream = upstream == NONE || self.upstreams.contains(upstream);
        let ok_pool = pool == NONE || self.pools.contains(&(upstream, pool));
        let ok_server = get("server").is_none_or(|s| self.servers.contains(&(upstream, pool, s)));
        let ok_listener = get("listener").is_none_or(|l| self.listeners.contains(l));
        ok_site && ok_route && ok_upstream && ok_pool && ok_server && ok_listener
    }
}

/// Removes the series of `vec` that `keep` rejects; returns how many.
fn retain_vec<T: MetricVecBuilder>(vec: &MetricVec<T>, keep: &Keep<'_>) -> usize {
    let mut removed = 0;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels = metric.get_label();
            if keep.keeps(labels) {
                continue;
            }
            let map: HashMap<&str, &str> = labels.iter().map(|l| (l.name(), l.value())).collect();
            if vec.remove(&map).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests;

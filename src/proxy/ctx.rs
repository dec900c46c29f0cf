//! Per-request state ([`RequestCtx`]): what `request_filter` learns, the
//! upstream attempt, and what `logging` reads, alive until after `logging()`.

use super::{body, compress, steps, websocket};
use crate::metrics::{GaugeGuard, RouteMetrics};
use crate::state::Snapshot;
use crate::upstream::conns::DrainKill;
use crate::upstream::{InflightGuard, Pool, Upstream};
use std::sync::Arc;
use std::time::Instant;

/// Per-request state, alive until after `logging()`.
#[derive(Default)]
pub struct RequestCtx {
    pub(super) snapshot: Option<Arc<Snapshot>>,
    pub(super) site: Option<usize>,
    pub(super) upstream: Option<Arc<Upstream>>,
    pub(super) pool: Option<Arc<Pool>>,
    /// The servers this request tried and its balancing state.
    pub(super) attempts: crate::upstream::balance::Attempts,
    pub(super) server_idx: Option<usize>,
    pub(super) guard: Option<InflightGuard>,
    pub(super) tls: bool,
    pub(super) max_body: Option<u64>,
    pub(super) body_seen: u64,
    /// Request body buffering and streaming state ([`body`]).
    pub(super) body: body::BodyState,
    /// Set by a drain deadline that ended this request's upstream connection.
    pub(super) drain_kill: Option<DrainKill>,
    /// Server-to-client WebSocket framing, tracked once upgraded.
    pub(super) frames: Option<websocket::FrameTracker>,
    pub(super) started: Option<Instant>,
    pub(super) upstream_started: Option<Instant>,
    pub(super) route: Option<usize>,
    /// The answer is the site's `plain_http` redirect (its own headers).
    pub(super) plain_redirect: bool,
    /// Capture spans of the regex location that chose the route (over the
    /// request path), for the plan's later steps.
    pub(super) captures: Option<crate::plan::Captures>,
    pub(super) pool_idx: usize,
    pub(super) request_id: Option<http::HeaderValue>,
    pub(super) websocket_gauge: Option<GaugeGuard>,
    /// Set for upgrade requests: the tunnel's idle limit (`None` = none).
    pub(super) tunnel_idle: Option<Option<std::time::Duration>>,
    /// The upgraded tunnel took this request's state (see [`tunnel`]).
    pub(super) handed_over: bool,
    /// The real client IP (see [`client`]); set first thing in `request_filter`.
    pub(crate) client_ip: Option<std::net::IpAddr>,
    /// The client's `X-Forwarded-For`, its only field, as the real-IP walk
    /// read it (see [`client`]); `None` when not read, or when something
    /// may have changed it since (`upstream_request_filter`).
    pub(super) forwarded_for: Option<http::HeaderValue>,
    /// A trusted proxy named the client in `X-Real-IP`: it is passed on.
    pub(super) real_ip_from_proxy: bool,
    /// Path rewriting state, only for routes that rewrite ([`steps`]).
    /// Boxed: 280 bytes that most requests (and every WebSocket tunnel,
    /// which keeps this ctx) would otherwise carry unused.
    pub(super) steps: Option<Box<steps::StepState>>,
    /// `limit_conn` counts of this request, given back when dropped.
    pub(super) conn_guards: Vec<crate::plan::limits::ConnGuard>,
    /// The route's error pages, when it intercepts the upstream's errors.
    pub(super) intercept: Option<Arc<crate::plan::error_pages::ErrorPages>>,
    /// An intercepted answer's page, sent instead of the upstream's body.
    pub(super) page_body: Option<bytes::Bytes>,
    /// Set once a `uri:` error page took the request over (nginx's
    /// internal redirect, [`super::error_uri`]): the status every answer
    /// then goes out with; also stops a second redirect.
    pub(super) error_status: Option<u16>,
    /// Headers a forward-auth answer set for the upstream request.
    pub(super) access_headers: Option<super::access::Copied>,
    /// The response's encoder, for routes that compress it ([`compress`]).
    pub(super) encoder: Option<Box<compress::Encoder>>,
    /// The client certificate and the site's verdict, on `client_auth:`
    /// sites ([`super::client_cert`]).
    pub(super) client_cert: Option<Box<crate::tls::client_cert::ClientVars>>,
}

impl RequestCtx {
    /// The metric handles this request records into.
    pub(super) fn route_metrics(&self) -> Option<&RouteMetrics> {
        let snap = self.snapshot.as_deref()?;
        Some(match (self.site, self.route) {
            (Some(site), Some(route)) => snap
                .router
                .site(site)
                .metrics(route, self.pool_idx)
                .unwrap_or(&snap.router.site(site).local_metrics),
            (Some(site), None) => &snap.router.site(site).local_metrics,
            _ => &snap.router.none_metrics,
        })
    }

    pub(super) fn upstream_name(&self) -> &str {
        self.upstream
            .as_deref()
            .map_or("-", |u| u.config.name.as_str())
    }
    pub(super) fn pool_name(&self) -> &str {
        self.pool.as_deref().map_or("-", |p| p.name.as_str())
    }
    pub(super) fn server_tls_name(&self) -> &str {
        match (self.pool.as_deref(), self.server_idx) {
            (Some(p), Some(i)) => p
                .servers()
                .get(i)
                .and_then(|s| s.tls_name.as_deref())
                .unwrap_or("-"),
            _ => "-",
        }
    }
    pub(super) fn server_label(&self) -> &str {
        match (self.pool.as_deref(), self.server_idx) {
            (Some(p), Some(i)) => p.servers().get(i).map_or("-", |s| s.label.as_str()),
            _ => "-",
        }
    }
}

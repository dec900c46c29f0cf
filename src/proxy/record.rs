//! The end of a request: its metrics and its access-log line.
//!
//! Shared by the `logging` hook and by a WebSocket tunnel that outlived its
//! request ([`super::tunnel`]): the tunnel takes a [`RequestView`] of the
//! request when it starts (only if access logging is on) and records the
//! same line when it ends, with its byte counts and duration.

use super::{RequestCtx, error_kind, request_host};
use crate::accesslog::{Entry, WebSocketStats};
use crate::state::StateHandle;
use pingora::prelude::*;
use pingora::{Error, ErrorSource};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// What an access-log line needs from the client's request.
pub(super) struct RequestView {
    client_ip: Option<IpAddr>,
    method: String,
    path: String,
    protocol: &'static str,
    referer: Option<String>,
    user_agent: Option<String>,
    host: Option<String>,
    x_request_id: Option<String>,
}

impl RequestView {
    pub(super) fn of(session: &Session, client_ip: IpAddr) -> RequestView {
        let req = session.req_header();
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        RequestView {
            client_ip: Some(client_ip),
            method: req.method.to_string(),
            path: req
                .uri
                .path_and_query()
                .map_or_else(|| req.uri.path().to_string(), |p| p.as_str().to_string()),
            protocol: match req.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            referer: header("referer"),
            user_agent: header("user-agent"),
            host: request_host(session).map(str::to_string),
            x_request_id: header("x-request-id"),
        }
    }
}

/// How a request ended.
pub(super) struct Outcome<'a> {
    pub status: u16,
    /// Body bytes from the client (for a tunnel: everything it sent).
    pub read: u64,
    /// Body bytes to the client (for a tunnel: everything it got).
    pub sent: u64,
    pub error: Option<&'a Error>,
}

/// Records metrics, then the access-log line; `view` is only called when
/// access logging is on.
pub(super) fn record(
    state: &StateHandle,
    out: Outcome<'_>,
    ctx: &RequestCtx,
    view: impl FnOnce() -> Option<RequestView>,
) {
    let elapsed = ctx.started.map_or(Duration::ZERO, |t| t.elapsed());
    if let Some(m) = ctx.route_metrics() {
        if let Some(e) = out.error
            && matches!(e.esource(), ErrorSource::Upstream)
            && ctx.upstream_started.is_some()
        {
            m.upstream_error(error_kind(e.etype()));
        }
        m.record(out.status, elapsed, out.read, out.sent);
    }
    let Some(log) = state.access_log() else {
        return;
    };
    let Some(v) = view() else {
        return;
    };
    let site = ctx
        .site
        .and_then(|i| ctx.snapshot.as_ref().map(|s| s.router.site(i).name.clone()));
    let websocket = ctx.websocket_gauge.as_ref().map(|_| WebSocketStats {
        duration: ctx.upstream_started.map_or(elapsed, |t| t.elapsed()),
        bytes_in: out.read,
        bytes_out: out.sent,
    });
    log.log(Entry {
        time: SystemTime::now() - elapsed,
        client_ip: v.client_ip,
        method: v.method,
        path: v.path,
        protocol: v.protocol,
        status: out.status,
        bytes_sent: out.sent,
        referer: v.referer,
        user_agent: v.user_agent,
        host: v.host,
        site,
        upstream: ctx.upstream.as_ref().map(|u| u.config.name.clone()),
        pool: ctx.pool.as_ref().map(|p| p.name.clone()),
        server: ctx.server_idx.map(|_| ctx.server_label().to_string()),
        duration: elapsed,
        upstream_duration: ctx.upstream_started.map(|t| t.elapsed()),
        request_id: ctx
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or(v.x_request_id)
            .unwrap_or_else(crate::accesslog::request_id),
        websocket,
    });
}

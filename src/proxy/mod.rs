//! The Pingora `ProxyHttp` implementation: thin hooks around pure routing
//! ([`crate::plan::router`]) and header rules ([`headers`]).
//!
//! Per request: `request_filter` loads the snapshot once into [`RequestCtx`],
//! finds the real client IP ([`client_ip`]), routes, and answers locally
//! what never reaches an upstream (404, 421, 308, 413 by `Content-Length`,
//! 400/426 for a bad WebSocket handshake: [`upgrade`]);
//! `upstream_peer` has the active pool's balancer pick a server
//! (`upstream::balance`; on connect failure, one this request has not tried)
//! and takes an [`InflightGuard`] held until the ctx is dropped after
//! `logging`; an upgraded WebSocket takes the whole ctx (guard included) to
//! a task of its own once the 101 is out ([`tunnel`]); `fail_to_proxy`
//! turns errors into short pages that name the upstream (502 unreachable,
//! 504 timeout). Nothing here panics on input, and no guard of the snapshot
//! is held across an `.await`.

mod access;
mod answers;
mod autoindex;
mod body;
mod client;
mod client_cert;
mod client_limits;
mod compress;
pub mod connections;
mod ctx;
mod error_pages;
mod error_uri;
mod files;
pub mod headers;
mod limits;
mod named;
mod peer;
mod record;
mod redirects;
mod respond;
mod retry;
mod steps;
mod tunnel;
mod upgrade;
pub mod websocket;

use crate::metrics::RouteMetrics;
use crate::plan::router::{Decision, RouteInput};
use crate::state::StateHandle;
use crate::tls::SniName;
use crate::upstream::addr::ServerAddr;
use crate::upstream::conns::{ConnId, Local};
use crate::upstream::{InflightGuard, Upstream};
use answers::{error_body, error_kind, https_location, slash_location, status_for};
use async_trait::async_trait;
use bytes::Bytes;
pub use client::client_ip;
pub use ctx::RequestCtx;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, PeerRef};
use pingora::{Error, ErrorSource, ErrorType};
use respond::{respond, respond_bytes, send_answer};
use std::sync::Arc;
use std::time::Instant;

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The proxy service's logic.
pub struct GreenlightProxy {
    state: StateHandle,
}

impl GreenlightProxy {
    /// A proxy reading its routes from `state`.
    pub fn new(state: StateHandle) -> GreenlightProxy {
        GreenlightProxy { state }
    }

    /// The upstream called like `stale` in the current snapshot, with a
    /// guard on its active pool.
    fn active_now(&self, stale: &Upstream) -> Result<(Arc<Upstream>, InflightGuard)> {
        let snap = self.state.load();
        snap.upstream(&stale.config.name)
            .and_then(|u| u.active_pool().enter().map(|g| (u.clone(), g)))
            .ok_or_else(|| {
                Error::explain(
                    ErrorType::HTTPStatus(503),
                    format!("upstream '{}' has no open pool", stale.config.name),
                )
            })
    }
}

/// The host a request names: `:authority`/absolute-form first, then `Host`.
fn request_host(session: &Session) -> Option<&str> {
    let req = session.req_header();
    if let Some(a) = req.uri.authority() {
        return Some(a.as_str());
    }
    req.headers.get(http::header::HOST)?.to_str().ok()
}

#[async_trait]
impl ProxyHttp for GreenlightProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    /// The hooks greenlight implements have no await: their `_sync` forms
    /// are called without a boxed future each (vendor/README.md,
    /// pingora-proxy `hooks_are_sync`).
    fn hooks_are_sync(&self) -> bool {
        true
    }

    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {
        // Pingora's default installs its response compression module switched
        // off (level 0), which still costs every request a boxed module
        // context and three boxed filter calls that do nothing. Routes with
        // `compress:` keep their own encoder in the ctx instead ([`compress`]).
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.started = Some(Instant::now());
        // HTTP/1.1 pipelining (RFC 9112 §9.3.2), answered in order like nginx:
        // bytes read past this request are kept as the next one's start.
        session.set_pipelining_enabled(true);
        let snapshot = self.state.load();
        ctx.snapshot = Some(snapshot.clone());
        client::resolve(session, ctx, &snapshot.config.client_ip);
        // nginx's send_timeout: a client that takes no byte of the response
        // for this long is closed. Pingora bounds each body write with it
        // (HTTP/1: one piece of the body; HTTP/2: each wait for the client's
        // flow-control window), so a reader that stopped costs its buffers
        // for this long at most. Set on every request: a reload applies to
        // the next request of a kept-alive connection.
        session.set_write_timeout(Some(snapshot.config.limits.send_timeout));
        let ssl = session.digest().and_then(|d| d.ssl_digest.clone());
        ctx.tls = ssl.is_some();
        let sni = ssl
            .as_ref()
            .and_then(|s| s.extension.get::<SniName>())
            .and_then(|n| n.name.clone());
        let req = session.req_header();
        // The raw header is only needed (and only copied) to see a
        // Content-Length that Pingora dropped next to a Transfer-Encoding.
        let raw = if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
            session.as_http1().map(|h1| h1.get_headers_raw_bytes())
        } else {
            None
        };
        if !session.is_http2()
            && let Some(why) = headers::framing_problem(req, raw.as_deref())
        {
            log::warn!(
                "refused a request from {}: ambiguous body framing ({why})",
                client_ip(session, ctx)
            );
            let body = format!("400 Bad Request: {why}\n");
            return respond(session, ctx, 400, body, &[], true).await;
        }
        let limits = &snapshot.config.limits;
        if let Some((status, body)) = client_limits::apply(session, limits) {
            return respond(session, ctx, status, body, &[], true).await;
        }
        if let Err(r) = upgrade::check(session.req_header_mut()) {
            return respond(session, ctx, r.status, r.body(), &r.headers(), true).await;
        }
        if session.is_upgrade_req() {
            // A WebSocket may be quiet for hours: only its own idle limit.
            session.set_read_timeout(limits.websocket_idle_timeout);
            ctx.tunnel_idle = Some(limits.websocket_idle_timeout);
        } else {
            session.set_read_timeout(Some(limits.body_timeout));
        }
        let req = session.req_header();
        if req.version == http::Version::HTTP_11 && request_host(session).is_none() {
            // RFC 9112 §3.2: a 1.1 request without Host is a client error.
            return respond(
                session,
                ctx,
                400,
                "400 Bad Request: missing Host header\n".into(),
                &[],
                true,
            )
            .await;
        }
        let host = request_host(session).map(str::to_string);
        // ACME HTTP-01 (RFC 8555 §8.3): answered here, before redirects and
        // routing, for the right host and token only; with ACME configured,
        // nothing under the challenge path ever reaches an app.
        if snapshot.config.acme.is_some() {
            let path = session.req_header().uri.path();
            if path.starts_with(crate::acme::HTTP01_PATH_PREFIX) {
                let answer = host
                    .as_deref()
                    .and_then(|h| self.state.challenges().http01_path(h, path));
                return match answer {
                    Some(key_authorization) => {
                        respond(session, ctx, 200, key_authorization, &[], false).await
                    }
                    None => {
                        respond(
                            session,
                            ctx,
                            404,
                            "404 Not Found: no such ACME challenge\n".into(),
                            &[],
                            false,
                        )
                        .await
                    }
                };
            }
        }
        let tls = ctx.tls;
        // `None` at once unless some site has `listeners:`.
        let listener = snapshot.router.listener_of_digest(session.digest());
        // A standard method is copied without allocating.
        let method = session.req_header().method.clone();
        let route_for = |path: &str| {
            snapshot.router.route(&RouteInput {
                host: host.as_deref(),
                path,
                tls,
                sni: sni.as_deref(),
                method: &method,
                listener,
            })
        };
        let decision = route_for(session.req_header().uri.path());
        if let Some(site) = decision.site() {
            // Once, as soon as the site is known: a site's own
            // trusted_proxies name the client for everything after this
            // (checks, limits, access, answers, the proxy path). A `last`
            // rewrite routes again within the same host, so the same site.
            client::resolve_for_site(session, ctx, &snapshot, site);
            client_limits::for_site(session, snapshot.router.site(site));
            if let Some((status, body)) = client_cert::check(session, ctx, &snapshot, site) {
                return respond(session, ctx, status, body, &[], false).await;
            }
        }
        let decision = match steps::run(session, ctx, &snapshot, decision, route_for) {
            Ok(d) => d,
            Err(a) => {
                return respond_bytes(session, ctx, a.status, a.body, &a.headers, false).await;
            }
        };
        if let Some(s) = limits::apply(session, ctx, &snapshot).await {
            return respond(session, ctx, s, limits::refused_body(s), &[], false).await;
        }
        if let Some(denial) = access::check(session, ctx, &snapshot).await {
            return access::send(session, ctx, denial).await;
        }
        // `steps::run` set the route of any plan with a terminal other than
        // `upstream`; `var_cx` reads the path as the rewrites left it.
        let Some(decision) =
            named::serve_files(session, ctx, &snapshot, decision, &route_for).await?
        else {
            return Ok(true);
        };
        let (site, upstream) = match decision {
            Decision::Proxy {
                site,
                upstream: Some(upstream),
                route,
                captures,
            } => {
                ctx.route = Some(route);
                ctx.captures = captures;
                (site, upstream)
            }
            Decision::Proxy { .. } => {
                let body = "500 Internal Server Error: this route has no upstream\n";
                return respond(session, ctx, 500, body.into(), &[], false).await;
            }
            Decision::NoSite => {
                let h = host.as_deref().unwrap_or("");
                let body = format!("404 Not Found: no site serves host '{h}'\n");
                return respond(session, ctx, 404, body, &[], false).await;
            }
            Decision::NoRoute { site } => {
                ctx.site = Some(site);
                let name = &snapshot.router.site(site).name;
                let body = format!("404 Not Found: site '{name}' has no route for this path\n");
                return respond(session, ctx, 404, body, &[], false).await;
            }
            Decision::MethodNotAllowed { site, allow } => {
                ctx.site = Some(site);
                let allow = allow
                    .iter()
                    .map(http::Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let body = format!("405 Method Not Allowed: this path takes {allow}\n");
                return respond(session, ctx, 405, body, &[("allow", allow)], false).await;
            }
            Decision::HttpsOnly { site } => {
                ctx.site = Some(site);
                let name = &snapshot.router.site(site).name;
                let body = format!("404 Not Found: site '{name}' is served over https only\n");
                return respond(session, ctx, 404, body, &[], false).await;
            }
            Decision::Misdirected => {
                let body = "421 Misdirected Request: this connection was made for another host\n";
                return respond(session, ctx, 421, body.into(), &[], true).await;
            }
            Decision::Redirect { site, status } => {
                ctx.site = Some(site);
                ctx.plain_redirect = true;
                let location = match &snapshot.router.site(site).plain_redirect_to {
                    Some(to) => {
                        let cx = steps::var_cx(session, ctx, &snapshot);
                        crate::plan::answer::absolute(to.render(&cx), &cx)
                    }
                    None => https_location(&snapshot, site, host.as_deref(), session),
                };
                let reason = http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Redirect");
                let body = format!("{status} {reason}: {location}\n");
                return respond(session, ctx, status, body, &[("location", location)], false).await;
            }
            Decision::AddSlash { site } => {
                ctx.site = Some(site);
                let location = slash_location(host.as_deref(), ctx.tls, session);
                let body = format!("301 Moved Permanently: {location}\n");
                return respond(session, ctx, 301, body, &[("location", location)], false).await;
            }
        };
        let limit = match ctx.route {
            Some(route) => snapshot.router.site(site).max_body(route),
            None => snapshot.router.site(site).max_body_size,
        };
        ctx.site = Some(site);
        ctx.max_body = limit;
        ctx.upstream = snapshot.upstreams.get(upstream).cloned();
        if let (Some(limit), Some(len)) = (limit, body::declared_length(session.req_header()))
            && len > limit
        {
            // Answered before any byte goes upstream; the unread body makes
            // the connection unusable, so it is closed.
            let body = format!(
                "413 Content Too Large: the request body of {len} bytes exceeds this route's limit of {limit} bytes\n"
            );
            return respond(session, ctx, 413, body, &[], true).await;
        }
        Ok(false)
    }

    fn request_body_filter_sync(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        body::hold_unconfirmed_end(session, body, end_of_stream, &mut ctx.body);
        if let (Some(limit), Some(chunk), None) = (ctx.max_body, body.as_ref(), ctx.body.buffered) {
            ctx.body_seen += chunk.len() as u64;
            if ctx.body_seen > limit {
                // A body without Content-Length (chunked) is only known to be
                // too large while streaming: stop here, so the upstream never
                // sees a complete request, and answer 413 if nothing was sent.
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    format!("request body exceeds the limit of {limit} bytes"),
                ));
            }
        }
        Ok(())
    }

    async fn proxy_upstream_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        body::buffer_request(session, ctx).await?;
        Ok(true)
    }

    fn proxy_upstream_filter_sync(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Option<Result<bool>> {
        (!body::buffers(session, ctx)).then_some(Ok(true))
    }

    fn upstream_peer_ref_sync(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Option<Result<PeerRef>> {
        Some(self.choose_peer(session, ctx))
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // Pingora asks `upstream_peer_ref_sync` (vendor/README.md); this is
        // the trait's required form of the same answer (the default async
        // `upstream_peer_ref` comes here).
        let peer = self.choose_peer(session, ctx)?;
        Ok(Box::new(HttpPeer::clone(&peer)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let remaining = ctx.pool.as_ref().is_some_and(|p| p.any_left(&ctx.attempts));
        retry::passive_failure(ctx);
        if let Some(why) = crate::upstream::tls::handshake_failure(&e) {
            // One clear line per server; fail_to_proxy does not repeat it.
            log::error!(
                "upstream '{}' pool '{}' server {}: TLS handshake failed: {why} (name checked: {}){}",
                ctx.upstream_name(),
                ctx.pool_name(),
                ctx.server_label(),
                ctx.server_tls_name(),
                if remaining {
                    "; trying the next server"
                } else {
                    ""
                }
            );
        } else {
            log::warn!(
                "upstream '{}' pool '{}': connect to {} failed: {}{}",
                ctx.upstream_name(),
                ctx.pool_name(),
                crate::upstream::addr::describe(&peer._address),
                e.etype().as_str(),
                if remaining {
                    "; trying the next server"
                } else {
                    ""
                }
            );
        }
        if let Some(m) = ctx.route_metrics() {
            m.upstream_error(error_kind(e.etype()));
        }
        e.set_retry(remaining);
        e
    }

    fn logging_sync(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.handed_over {
            // An upgraded tunnel took this request's state; it records the
            // request when the tunnel ends.
            return;
        }
        let out = record::Outcome {
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            read: session.body_bytes_read() as u64,
            sent: session.body_bytes_sent() as u64,
            error: e,
        };
        record::record(&self.state, out, ctx, || {
            Some(record::RequestView::of(session, client_ip(session, ctx)))
        });
    }

    fn connected_to_upstream_sync(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.upstream_started.is_none() {
            ctx.upstream_started = Some(Instant::now());
        }
        // The connection's addresses are cached in Pingora's digest after
        // its first use, so a reused connection costs no syscall here.
        let cached = digest.and_then(|d| d.socket_digest.as_ref()).and_then(|s| {
            Some(ConnId {
                fd,
                local: Local::Inet(*s.local_addr()?.as_inet()?),
                peer: ServerAddr::Inet(*s.peer_addr()?.as_inet()?),
            })
        });
        if let (Some(guard), Some(conn)) =
            (ctx.guard.as_mut(), cached.or_else(|| ConnId::of_fd(fd)))
        {
            ctx.drain_kill = Some(guard.attach(conn, reused));
        }
        Ok(())
    }

    fn upstream_request_filter_sync(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let upgrade = session.is_upgrade_req();
        if headers::strip_request_hop_by_hop(upstream_request, upgrade)? {
            // The field the real-IP walk read is no longer the request's.
            ctx.forwarded_for = None;
        }
        let underscores = match (ctx.snapshot.as_deref(), ctx.site) {
            (Some(snap), Some(site)) => snap.router.site(site).underscores_in_headers,
            _ => false,
        };
        headers::drop_client_headers(upstream_request, underscores);
        body::set_upstream_framing(upstream_request, ctx)?;
        let client = client_ip(session, ctx);
        if ctx.real_ip_from_proxy {
            headers::set_real_ip(upstream_request, client)?;
        }
        headers::set_forwarded(
            upstream_request,
            Some(client),
            ctx.tls,
            client::request_host_value(session),
            ctx.forwarded_for.as_ref(),
        )?;
        // One id per request, end to end: kept if the client sent one. Kept
        // in the ctx as the header value (a reference count, not a copy).
        let id = match upstream_request.headers.get(&X_REQUEST_ID) {
            Some(v) if !v.is_empty() && v.len() <= 200 && v.to_str().is_ok() => v.clone(),
            _ => {
                let id = crate::accesslog::request_id_value();
                upstream_request.insert_header(&X_REQUEST_ID, id.clone())?;
                id
            }
        };
        ctx.request_id = Some(id);
        access::to_upstream(upstream_request, ctx)?;
        steps::to_upstream(session, upstream_request, ctx)
    }

    fn upstream_response_hidden_headers(
        &self,
        ctx: &RequestCtx,
    ) -> Option<std::sync::Arc<[http::HeaderName]>> {
        steps::hidden_at_parse(ctx)
    }

    fn upstream_response_filter_sync(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Any answer shows the server is alive. A 5xx is the app's answer
        // and does not count as a failure (nginx's default too): one broken
        // endpoint must not take a whole server out; only a status the
        // route retries on counts (`retry`).
        match retry::on_status(session, ctx, upstream_response.status.as_u16()) {
            retry::Verdict::Retry(e) => return Err(e),
            retry::Verdict::Failed => {}
            retry::Verdict::Pass => {
                if let (Some(p), Some(i)) = (ctx.pool.as_ref(), ctx.server_idx) {
                    p.servers()[i].health.request_ok();
                }
            }
        }
        if upstream_response.status.as_u16() == 101
            && let Some(g) = ctx.guard.as_mut()
        {
            g.mark_websocket();
            ctx.frames = Some(websocket::FrameTracker::default());
            ctx.websocket_gauge = ctx.route_metrics().map(RouteMetrics::websocket_opened);
        }
        headers::strip_response_hop_by_hop(upstream_response);
        redirects::apply(session, upstream_response, ctx)?;
        headers::fold_content_length(upstream_response)
    }

    fn response_filter_sync(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.intercept.is_some() {
            error_pages::intercept(upstream_response, ctx)?;
        }
        steps::to_client(session, upstream_response, ctx)?;
        if ctx.page_body.is_none() {
            // An intercepted answer's page is sent as it is.
            compress::proxied(session, upstream_response, ctx)?;
        }
        // We speak HTTP/1.1 to HTTP/1.x clients whatever version the upstream
        // used (an HTTP/1.0 app must not turn off keep-alive for the client).
        if !session.is_http2() && session.req_header().version == http::Version::HTTP_11 {
            upstream_response.set_version(http::Version::HTTP_11);
        }
        if self.state.shutting_down() {
            // Stopping: this response closes its HTTP/1.1 connection
            // (`Connection: close`); HTTP/2 clients get GOAWAY from Pingora.
            session.set_keepalive(None);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.page_body.is_some() {
            error_pages::replace_body(body, end_of_stream, ctx);
            return Ok(None);
        }
        if let Some(e) = ctx.encoder.as_mut() {
            compress::body(e, body, end_of_stream)?;
        }
        let Some(frames) = ctx.frames.as_mut() else {
            return Ok(None);
        };
        if let Some(b) = body.as_ref() {
            frames.feed(b);
        }
        let killed = ctx.drain_kill.as_ref().is_some_and(|k| k.is_killed());
        if end_of_stream && killed && frames.at_boundary() {
            // The drain deadline ended the upstream side: tell the client to
            // go away and come back (RFC 6455 §7.4.1, 1001), instead of a bare
            // connection drop it would treat as an error.
            let mut out = body.take().map(|b| b.to_vec()).unwrap_or_default();
            out.extend_from_slice(&websocket::CLOSE_GOING_AWAY);
            *body = Some(Bytes::from(out));
        }
        Ok(None)
    }

    fn wants_upgraded_tunnel(&self, _session: &Session, ctx: &RequestCtx) -> bool {
        // Every routed upgrade runs on its own small task (see `tunnel`).
        ctx.tunnel_idle.is_some() && ctx.guard.is_some()
    }

    fn upgraded_tunnel(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::proxy::TunnelRunner {
        let st = tunnel::TunnelState {
            state: self.state.clone(),
            view: self
                .state
                .access_log()
                .is_some()
                .then(|| record::RequestView::of(session, client_ip(session, ctx))),
            ctx: std::mem::take(ctx),
            hold: connections::current_connection(),
        };
        ctx.handed_over = true;
        Box::new(move |t| tunnel::spawn(t, st))
    }

    fn persist_connection_context(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        // Marks the connection as reused for the next request (a zero-sized
        // box does not allocate); the vendored Pingora uses it to tell idle
        // keep-alive connections from fresh ones at shutdown (vendor/README.md).
        Some(Box::new(()))
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        error: &Error,
        _context: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        // A failed connect or TLS handshake that is retried on another
        // server was logged by fail_to_connect, naming the server.
        matches!(
            error.etype(),
            ErrorType::ConnectRefused
                | ErrorType::ConnectTimedout
                | ErrorType::ConnectError
                | ErrorType::ConnectNoRoute
        ) || crate::upstream::tls::handshake_failure(error).is_some()
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // fail_to_proxy logs every failure with the upstream named.
        true
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = status_for(e);
        let summary = format!(
            "{} {}",
            session.req_header().method,
            session.req_header().uri.path()
        );
        let client_gone = code == 0 && matches!(e.esource(), ErrorSource::Downstream);
        if code == 504 && *e.etype() != ErrorType::ConnectTimedout {
            // An upstream timeout counts like a refused connection (connect
            // timeouts were counted in `fail_to_connect`).
            retry::passive_failure(ctx);
        }
        if client_gone {
            // The client went away mid-request: routine, not an error.
            log::debug!("{summary}: client closed the connection: {e}");
        } else if crate::upstream::tls::handshake_failure(e).is_some() {
            // fail_to_connect logged the reason, naming the server.
        } else if code >= 500 || code == 0 {
            log::error!(
                "{summary}: upstream '{}' pool '{}' server {}: {} -> {}",
                ctx.upstream_name(),
                ctx.pool_name(),
                ctx.server_label(),
                e,
                if code == 0 {
                    "connection dropped".to_string()
                } else {
                    code.to_string()
                }
            );
        }
        // A 100 Continue may have gone out before the body was read.
        if code > 0
            && session
                .response_written()
                .is_none_or(|r| r.status.is_informational())
        {
            let body = error_body(code, ctx);
            if let Err(err) = respond(session, ctx, code, body, &[], true).await {
                log::debug!("could not send the {code} page: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

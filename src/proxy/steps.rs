//! Executes a route's compiled [`Plan`](crate::plan::Plan) inside the hooks;
//! decides nothing the plan did not already say.
//!
//! - `request_filter` calls [`run`]: rewrites (re-matching routes after
//!   `last`, at most [`MAX_LAST`] times, then 500), then a local terminal
//!   (`redirect`, `respond`) becomes an [`Answer`];
//! - `upstream_request_filter` calls [`to_upstream`]: the rewritten path
//!   and the request header steps;
//! - `response_filter` and every answer greenlight makes call
//!   [`to_client`]: the response header steps (`always` ones on errors).
//!
//! A route without steps costs a plan lookup and an `is_empty` check: no
//! allocation. Per-request state ([`StepState`]) is set in the ctx (inline:
//! a box of its own cost an allocation per request) only
//! when a route rewrites.

use super::RequestCtx;
use crate::config::model::HostPattern;
use crate::plan::check::CheckAnswer;
use crate::plan::rewrite::{MAX_LAST, Outcome, PathState};
use crate::plan::router::Decision;
use crate::plan::vars::{Match, VarCx};
use crate::plan::{Captures, Plan, SitePlan, Terminal};
use crate::state::Snapshot;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

/// What rewriting left for the rest of the request.
#[derive(Debug, Default)]
pub struct StepState {
    /// The current path and query, and the last rewrite's match.
    pub path: PathState,
    /// The regex location's match and the path it matched, once a `last`
    /// rewrite routed the request again (else `RequestCtx::captures` over
    /// the request path).
    pub location: Option<(Captures, String)>,
    /// The route's rewrites ended with `break`: the current path goes
    /// upstream whole (no `upstream_path`).
    pub broke: bool,
}

impl StepState {
    /// The state before any rewrite: the request's own path (read, not
    /// copied) and its query. Boxed, as the request ctx keeps it.
    pub fn for_request(req: &RequestHeader) -> Box<StepState> {
        Box::new(StepState {
            path: PathState {
                path: None,
                args: req.uri.query().map(str::to_string),
                last: None,
            },
            ..StepState::default()
        })
    }
}

/// An answer greenlight sends itself.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body (text, or a `respond` route's bytes).
    pub body: bytes::Bytes,
    /// Extra headers (`Location`, `Content-Type`).
    pub headers: Vec<(&'static str, String)>,
}

/// The first exact host name of site `site` (`$server_name`).
fn server_name(snap: &Snapshot, site: Option<usize>) -> &str {
    site.and_then(|s| snap.config.sites.get(s))
        .and_then(|s| {
            s.hosts.iter().find_map(|h| match h {
                HostPattern::Exact(n) => Some(n.as_str()),
                _ => None,
            })
        })
        .unwrap_or("")
}

/// The variables of this request as the plan left them.
pub(super) fn var_cx<'a>(
    session: &'a Session,
    ctx: &'a RequestCtx,
    snap: &'a Snapshot,
) -> VarCx<'a> {
    let req = session.req_header();
    let server = ctx
        .pool
        .as_ref()
        .zip(ctx.server_idx)
        .and_then(|(p, i)| p.servers().get(i));
    let mut cx = VarCx {
        tls: ctx.tls,
        client_ip: Some(super::client_ip(session, ctx)),
        server_port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port()),
        server_name: server_name(snap, ctx.site),
        maps: &snap.config.maps,
        upstream_addr: server.map(|s| &s.addr),
        upstream_label: server.map(|s| s.label.as_str()),
        client_cert: ctx.client_cert.as_deref(),
        ..VarCx::of_request(req)
    };
    if let Some(st) = ctx.steps.as_ref() {
        cx.uri = st.path.path(req.uri.path());
        cx.args = st.path.args.as_deref();
        cx.last = st.path.last(req.uri.path());
        cx.location = st.location.as_ref().map(|(c, s)| Match {
            captures: c,
            subject: s,
        });
    } else {
        cx.location = ctx.captures.as_ref().map(|c| Match {
            captures: c,
            subject: req.uri.path(),
        });
    }
    cx
}

/// The plan of route `route` of site `site` (file-order indexes).
fn plan(snap: &Snapshot, site: usize, route: usize) -> Option<&Plan> {
    Some(&snap.config.sites.get(site)?.routes.get(route)?.plan)
}

/// The site's own plan.
fn site_plan(snap: &Snapshot, site: usize) -> Option<&SitePlan> {
    Some(&snap.config.sites.get(site)?.plan)
}

/// The `files:` terminal of the request's route, if it has one.
pub(super) fn files_of<'a>(
    snap: &'a Snapshot,
    ctx: &RequestCtx,
) -> Option<&'a crate::plan::files::Files> {
    match &plan_of(snap, ctx)?.terminal {
        Terminal::Files(f) => Some(f),
        _ => None,
    }
}

/// The plan of the request's route, if it has one.
fn plan_of<'a>(snap: &'a Snapshot, ctx: &RequestCtx) -> Option<&'a Plan> {
    plan(snap, ctx.site?, ctx.route?)
}

/// Runs the plan of a routed request: rewrites (routing again after
/// `last`), then a local terminal. `Ok(decision)` goes on to the upstream
/// (or to the usual answers of other decisions); `Err(answer)` is sent.
pub fn run(
    session: &Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    mut decision: Decision,
    reroute: impl Fn(&str) -> Decision,
) -> Result<Decision, Answer> {
    let mut broke = false;
    for _ in 0..=MAX_LAST {
        let Decision::Proxy {
            site,
            route,
            ref captures,
            ..
        } = decision
        else {
            // A `last` may end on no route: the site's own answer follows.
            ctx.route = None;
            if let Decision::NoRoute { site } = decision {
                // Unless the site's 404 page is a path (error_uri.rs).
                ctx.site = Some(site);
                if let Some((uri, send)) = super::error_uri::page(ctx, 404) {
                    let path = super::error_uri::take_over(session.req_header(), ctx, &uri, send);
                    decision = reroute(&path);
                    continue;
                }
            }
            return Ok(decision);
        };
        let Some(plan) = plan(snap, site, route) else {
            return Ok(decision);
        };
        let rewritten = ctx.steps.is_some();
        if !rewritten && plan.steps().is_empty() && matches!(plan.terminal, Terminal::Proxy) {
            return Ok(decision);
        }
        ctx.site = Some(site);
        ctx.route = Some(route);
        match ctx.steps.as_mut() {
            // Routed again by `last`: the match is over the rewritten path.
            Some(st) => {
                let path = st.path.path(session.req_header().uri.path()).to_string();
                st.location = captures.clone().map(|c| (c, path));
            }
            None => ctx.captures = captures.clone(),
        }
        if let Some(checks) = plan.checks() {
            let cx = var_cx(session, ctx, snap);
            if let Some((check, caps, subject)) = checks.first(&cx) {
                if let CheckAnswer::Respond(r) = &check.answer
                    && let Some((uri, send)) = super::error_uri::page(ctx, r.status)
                {
                    // nginx's error_page to a path: routed again (error_uri.rs).
                    let path = super::error_uri::take_over(session.req_header(), ctx, &uri, send);
                    decision = reroute(&path);
                    continue;
                }
                let cx = crate::plan::check::with_match(&cx, caps.as_ref(), &subject);
                return Err(match &check.answer {
                    CheckAnswer::Redirect(r) => redirect(r.status, r.location(&cx)),
                    CheckAnswer::Respond(r) => respond(r, &cx),
                });
            }
        }
        if let Some(rw) = plan.rewrites() {
            let req = session.req_header();
            let fresh = || StepState::for_request(req);
            // The request's own variables suffice unless a `to` reads the
            // connection's or the site's; `var_cx` reads the ctx, so the
            // state is taken out of it meanwhile (it is moved only then).
            let outcome = if rw.needs_connection() {
                let mut st = ctx.steps.take().unwrap_or_else(fresh);
                let outcome = rw.run(&mut st.path, &var_cx(session, ctx, snap));
                ctx.steps = Some(st);
                outcome
            } else {
                let st = ctx.steps.get_or_insert_with(fresh);
                rw.run(&mut st.path, &VarCx::of_request(req))
            };
            broke = outcome == Outcome::Break;
            match outcome {
                Outcome::Last => {
                    let own = req.uri.path();
                    let path = ctx.steps.as_ref().map_or(own, |st| st.path.path(own));
                    decision = reroute(path);
                    continue;
                }
                Outcome::Redirect { status, location } => {
                    let cx = var_cx(session, ctx, snap);
                    let location = crate::plan::answer::absolute(location, &cx);
                    return Err(redirect(status, location));
                }
                Outcome::Continue | Outcome::Break => {}
            }
        }
        if let Some(st) = ctx.steps.as_mut() {
            st.broke = broke;
        }
        return match &plan.terminal {
            // Files are served by the caller (`proxy::files`), with I/O.
            Terminal::Proxy | Terminal::Files(_) => Ok(decision),
            Terminal::Redirect(r) => {
                let location = r.location(&var_cx(session, ctx, snap));
                Err(redirect(r.status, location))
            }
            Terminal::Respond(r) => {
                if let Some((uri, send)) = super::error_uri::page(ctx, r.status) {
                    let path = super::error_uri::take_over(session.req_header(), ctx, &uri, send);
                    decision = reroute(&path);
                    continue;
                }
                Err(respond(r, &var_cx(session, ctx, snap)))
            }
        };
    }
    log::error!(
        "{}: more than {MAX_LAST} `last` rewrites: the route rules loop",
        session.req_header().uri.path()
    );
    Err(Answer {
        status: 500,
        body: "500 Internal Server Error: the rewrite rules loop\n".into(),
        headers: Vec::new(),
    })
}

fn respond(r: &crate::plan::answer::Respond, cx: &VarCx<'_>) -> Answer {
    Answer {
        status: r.status,
        body: r.body(cx),
        headers: vec![(
            "content-type",
            r.content_type.to_str().unwrap_or("text/plain").to_string(),
        )],
    }
}

/// The upstream request target when it differs from the client's: nginx
/// sends a path changed by `break` whole; else the route's prefix is
/// replaced by `upstream_path`; a path changed by an earlier route's `last`
/// goes as it is now. Made on every try from the rewrite state, with its
/// exact size, and moved into the URI: a target kept in the ctx and cloned
/// per try cost a second allocation when `Bytes` shared it (about 1.2k
/// instructions per request, callgrind).
fn upstream_target(
    st: &StepState,
    plan: Option<&Plan>,
    req: &RequestHeader,
) -> Option<bytes::Bytes> {
    let up = plan
        .and_then(Plan::rewrites)
        .and_then(|r| r.upstream_path.as_ref());
    let current = st.path.path(req.uri.path());
    let path = up.filter(|_| !st.broke).map(|up| up.apply(current));
    let changed =
        path.is_some() || current != req.uri.path() || st.path.args.as_deref() != req.uri.query();
    changed.then(|| target(path, current, st.path.args.as_deref()))
}

/// The upstream request target: `path` (the `upstream_path` result) or
/// the current path, then `?` and the arguments, if any. `Bytes::from` a
/// `Vec` whose length is its capacity takes the buffer without another
/// allocation.
fn target(path: Option<String>, current: &str, args: Option<&str>) -> bytes::Bytes {
    if let (Some(p), None) = (&path, args)
        && p.len() == p.capacity()
    {
        return bytes::Bytes::from(path.unwrap_or_default().into_bytes());
    }
    let path = path.as_deref().unwrap_or(current);
    let mut t = Vec::with_capacity(path.len() + args.map_or(0, |a| a.len() + 1));
    t.extend_from_slice(path.as_bytes());
    if let Some(a) = args {
        t.push(b'?');
        t.extend_from_slice(a.as_bytes());
    }
    bytes::Bytes::from(t)
}

fn redirect(status: u16, location: String) -> Answer {
    Answer {
        status,
        body: format!(
            "{status} {}: {location}\n",
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Redirect")
        )
        .into(),
        headers: vec![("location", location)],
    }
}

/// The request going upstream: the rewritten target, then the request
/// header steps.
pub fn to_upstream(
    session: &Session,
    req: &mut RequestHeader,
    ctx: &RequestCtx,
) -> pingora::Result<()> {
    let Some(snap) = ctx.snapshot.as_deref() else {
        return Ok(());
    };
    let plan = plan_of(snap, ctx);
    if let Some(st) = ctx.steps.as_ref()
        && let Some(target) = upstream_target(st, plan, session.req_header())
    {
        let shown = || {
            let own = session.req_header().uri.path();
            match st.path.args.as_deref() {
                Some(a) => format!("{}?{a}", st.path.path(own)),
                None => st.path.path(own).to_string(),
            }
        };
        set_target(req, target, shown)?;
    }
    super::error_uri::method(req, ctx);
    let Some(steps) = plan.and_then(Plan::request_headers) else {
        return Ok(());
    };
    // Gathered only if a value has variables.
    steps.apply(
        req,
        || Some(super::client_ip(session, ctx)),
        || var_cx(session, ctx, snap),
    )
}

/// Replaces the path and query of `req`, keeping scheme and authority.
/// `shown` names the target in the error (the bytes themselves are moved
/// into the URI).
fn set_target(
    req: &mut RequestHeader,
    target: bytes::Bytes,
    shown: impl FnOnce() -> String,
) -> pingora::Result<()> {
    let pq = http::uri::PathAndQuery::from_maybe_shared(target).map_err(|e| {
        pingora::Error::because(
            pingora::ErrorType::InternalError,
            format!("rewritten path '{}' is not a valid request target", shown()),
            e,
        )
    })?;
    // An origin-form request (HTTP/1) has only a path and query: the URI is
    // that, without `from_parts`' checks.
    if req.uri.scheme().is_none() && req.uri.authority().is_none() {
        req.set_uri(http::Uri::from(pq));
        return Ok(());
    }
    // Scheme and authority only (h2 and absolute-form requests have them):
    // the old path and query are not cloned to be dropped.
    let mut parts = http::uri::Parts::default();
    parts.scheme = req.uri.scheme().cloned();
    parts.authority = req.uri.authority().cloned();
    parts.path_and_query = Some(pq);
    let uri = http::Uri::from_parts(parts).map_err(|e| {
        pingora::Error::because(pingora::ErrorType::InternalError, "rewritten URI", e)
    })?;
    req.set_uri(uri);
    Ok(())
}

/// The response fields the request's route removes that an HTTP/1
/// upstream's answer is read without (Pingora's
/// `upstream_response_hidden_headers`); [`to_client`] still removes them (a
/// miss then), for h2 upstreams and the answers greenlight makes.
pub fn hidden_at_parse(ctx: &RequestCtx) -> Option<std::sync::Arc<[http::HeaderName]>> {
    plan_of(ctx.snapshot.as_deref()?, ctx)?.hidden().cloned()
}

/// Response header steps for an answer to the client (from the upstream
/// or made here): the route's plan, else the site's.
pub fn to_client(
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &RequestCtx,
) -> pingora::Result<()> {
    super::error_uri::status(resp, ctx)?;
    let Some(snap) = ctx.snapshot.as_deref() else {
        return Ok(());
    };
    let Some(site) = ctx.site else {
        return Ok(());
    };
    let steps = match ctx.route.and_then(|r| plan(snap, site, r)) {
        Some(p) => {
            if let Some(e) = p.expires() {
                e.apply(resp, std::time::SystemTime::now())?;
            }
            if let Some(c) = p.charset() {
                c.apply(resp)?;
            }
            p.response_headers()
        }
        None if ctx.route.is_some() => None,
        None => site_plan(snap, site).and_then(|p| p.response_headers.as_ref()),
    };
    if let Some(s) = steps {
        // Gathered only if a value has variables.
        s.apply(
            resp,
            || Some(super::client_ip(session, ctx)),
            || var_cx(session, ctx, snap),
        )?;
    }
    if ctx.plain_redirect
        && let Some(own) = site_plan(snap, site).and_then(|p| p.plain_redirect_headers.as_ref())
    {
        own.apply(
            resp,
            || Some(super::client_ip(session, ctx)),
            || var_cx(session, ctx, snap),
        )?;
    }
    Ok(())
}

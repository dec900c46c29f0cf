//! Runs a route's [`Access`] step in `request_filter`, after the rewrites
//! and checks (nginx's access phase comes after its rewrite phase, so a
//! `checks:` answer such as a CORS preflight `204` is given without
//! credentials, as in nginx) and before the route's upstream or files.
//!
//! Order with `satisfy: all` (the default): IP rules (403), basic auth
//! (401 with `WWW-Authenticate`), forward auth (its 401/403, or 500). With
//! `satisfy: any`, the first part that passes lets the request through; if
//! none does, the auth answer is given (a browser needs the 401 to ask for
//! a password), else the 403.
//!
//! Forward auth: one HTTP/1.1 subrequest per request (no body; the
//! client's method and headers, plus `X-Original-URI`, `X-Original-Method`
//! and `X-Forwarded-{Method,Proto,Host,Uri,For}`) to the auth service,
//! bounded by its `timeout`. 2xx: the `copy_headers` of its answer are set
//! on the request to the upstream ([`to_upstream`]; removed when the answer
//! lacks them, so a client cannot send its own). 401/403: the status, the
//! `WWW-Authenticate`, `Content-Type` and `Set-Cookie` fields and the body
//! (at most [`MAX_DENY_BODY`] bytes) go to the client. Anything else, or no
//! answer in time: 500 and one log line.

use super::{RequestCtx, client_ip, request_host, steps};
use crate::plan::access::{Access, AuthTarget, BasicAuth, ForwardAuth};
use crate::plan::htpasswd::basic_credentials;
use crate::state::Snapshot;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::ALPN;
use std::time::Instant;

/// The most of an auth service's denial body passed to the client.
pub const MAX_DENY_BODY: usize = 64 * 1024;

/// Headers of the client's request never sent to the auth service: the
/// connection's own (RFC 9110 §7.6.1) and the body's framing (no body goes).
const NOT_SENT: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "host",
];

/// Headers of an auth service's 401/403 passed to the client.
const PASSED_ON_DENY: [HeaderName; 3] = [
    http::header::WWW_AUTHENTICATE,
    http::header::CONTENT_TYPE,
    http::header::SET_COOKIE,
];

/// Headers an allowed request carries to the upstream: `None` removes.
pub type Copied = Box<[(HeaderName, Option<HeaderValue>)]>;

/// An answer that ends the request.
pub struct Denial {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Denial {
    fn plain(status: u16, body: &'static str) -> Denial {
        Denial {
            status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn forbidden() -> Denial {
        Denial::plain(403, "403 Forbidden: access denied\n")
    }

    fn unauthorized(b: &BasicAuth) -> Denial {
        let mut d = Denial::plain(
            401,
            "401 Unauthorized: this path needs a user name and password\n",
        );
        d.headers
            .push((http::header::WWW_AUTHENTICATE, b.challenge.clone()));
        d
    }

    fn failed() -> Denial {
        Denial::plain(
            500,
            "500 Internal Server Error: the authorization service failed\n",
        )
    }
}

/// Runs the access step of the request's route, if it has one; `Some` is
/// the answer to send instead of serving the request.
pub(super) async fn check(
    session: &Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
) -> Option<Denial> {
    let (site, route) = (ctx.site?, ctx.route?);
    let access = snap
        .config
        .sites
        .get(site)?
        .routes
        .get(route)?
        .plan
        .access()?;
    // Boxed: the checks' future (a subrequest's, about 5 KB) would otherwise
    // be part of every request's `request_filter` future, which is allocated
    // and moved per request; routes without `access:` never get here.
    Box::pin(run(access, session, ctx, snap)).await
}

async fn run(
    a: &Access,
    session: &Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
) -> Option<Denial> {
    let mut denial = None;
    if let Some(ip) = &a.ip {
        if ip.allows(client_ip(session, ctx)) {
            if a.any {
                return None;
            }
        } else if !a.any {
            return Some(Denial::forbidden());
        } else {
            denial = Some(Denial::forbidden());
        }
    }
    if let Some(b) = &a.basic {
        if basic_ok(b, session).await {
            if a.any {
                return None;
            }
        } else {
            let d = Denial::unauthorized(b);
            if !a.any {
                return Some(d);
            }
            denial = Some(d);
        }
    }
    if let Some(f) = &a.forward {
        match forward(f, session, ctx, snap).await {
            Ok(copied) => {
                ctx.access_headers = Some(copied);
                if a.any {
                    return None;
                }
            }
            Err(d) => {
                if !a.any {
                    return Some(d);
                }
                // A failed service is a 500 whatever else passed; a denial
                // by it does not hide basic auth's 401.
                if d.status == 500 || denial.as_ref().is_none_or(|x| x.status == 403) {
                    denial = Some(d);
                }
            }
        }
    }
    denial
}

/// Does the request carry a user and password of the file?
async fn basic_ok(b: &BasicAuth, session: &Session) -> bool {
    let Some(v) = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
    else {
        return false;
    };
    let Some((user, password)) = basic_credentials(v.as_bytes()) else {
        return false;
    };
    let Some(hash) = b.users.get(&user) else {
        return false;
    };
    if !hash.is_slow() {
        // apr1 / {SHA} / {PLAIN}: microseconds, checked here.
        return hash.verify(&password);
    }
    let key = b.cache_key(&user, &password);
    if b.remembered(&key, Instant::now()) {
        return true;
    }
    // bcrypt or SHA-crypt: milliseconds by design. On a blocking thread,
    // a few at a time, so this worker keeps serving other requests.
    let Ok(_slot) = b.slots.acquire().await else {
        return false;
    };
    let hash = hash.clone();
    let ok = tokio::task::spawn_blocking(move || hash.verify(&password))
        .await
        .unwrap_or(false);
    if ok {
        b.remember(key, Instant::now());
    }
    ok
}

/// The subrequest: `Ok` carries the headers to copy upstream.
async fn forward(
    f: &ForwardAuth,
    session: &Session,
    ctx: &RequestCtx,
    snap: &Snapshot,
) -> Result<Copied, Denial> {
    let what = || match &f.target {
        AuthTarget::Upstream { name, path, .. } => format!("upstream '{name}' {path}"),
        AuthTarget::Url { host, path, .. } => format!("{host}{path}"),
    };
    let summary = || {
        format!(
            "{} {}",
            session.req_header().method,
            session.req_header().uri.path()
        )
    };
    match tokio::time::timeout(f.timeout, subrequest(f, session, ctx, snap)).await {
        Ok(Ok((resp, body))) => {
            let status = resp.status.as_u16();
            if resp.status.is_success() {
                return Ok(f
                    .copy_headers
                    .iter()
                    .map(|h| (h.clone(), resp.headers.get(h).cloned()))
                    .collect());
            }
            if matches!(status, 401 | 403) {
                let headers = PASSED_ON_DENY
                    .iter()
                    .flat_map(|h| {
                        resp.headers
                            .get_all(h)
                            .iter()
                            .map(|v| (h.clone(), v.clone()))
                    })
                    .collect();
                return Err(Denial {
                    status,
                    headers,
                    body,
                });
            }
            log::error!(
                "{}: forward auth {} answered {status}: 500 (only 2xx, 401 and 403 are answers)",
                summary(),
                what()
            );
        }
        Ok(Err(e)) => log::error!("{}: forward auth {} failed: {e}: 500", summary(), what()),
        Err(_) => log::error!(
            "{}: forward auth {} gave no answer in {:?}: 500",
            summary(),
            what(),
            f.timeout
        ),
    }
    Err(Denial::failed())
}

/// Sends the subrequest and reads the answer (and a bounded body).
async fn subrequest(
    f: &ForwardAuth,
    session: &Session,
    ctx: &RequestCtx,
    snap: &Snapshot,
) -> Result<(ResponseHeader, Bytes), String> {
    let client = session.req_header();
    let path = f.target.target(|| super::steps::var_cx(session, ctx, snap));
    let (mut peer, host, _guard) = match &f.target {
        AuthTarget::Url { peer, host, .. } => (peer.as_ref().clone(), host.clone(), None),
        AuthTarget::Upstream { name, .. } => {
            let up = snap
                .upstream(name)
                .ok_or_else(|| format!("no upstream '{name}'"))?;
            let guard = up
                .active_pool()
                .enter()
                .ok_or("the upstream's pool is closing")?;
            let pool = guard.pool().clone();
            let mut attempts = Default::default();
            let idx = pool
                .choose(&mut attempts, None)
                .ok_or_else(|| format!("pool '{}' has no healthy server", pool.name))?;
            let peer = HttpPeer::clone(pool.servers()[idx].peer());
            let host = request_host(session).unwrap_or("").to_string();
            (peer, host, Some(guard))
        }
    };
    // One request per subrequest: HTTP/1.1 (h2 would need an authority
    // and buys nothing for a header-only exchange).
    peer.options.alpn = ALPN::H1;
    let mut req = RequestHeader::build(client.method.clone(), path.as_bytes(), Some(16))
        .map_err(|e| e.to_string())?;
    for (k, v) in &client.headers {
        let wanted = match &f.request_headers {
            Some(list) => list.contains(k),
            None => !NOT_SENT.contains(&k.as_str()),
        };
        if wanted && !NOT_SENT.contains(&k.as_str()) {
            req.append_header(k.clone(), v.clone())
                .map_err(|e| e.to_string())?;
        }
    }
    let original = client
        .uri
        .path_and_query()
        .map_or(client.uri.path(), |p| p.as_str())
        .to_string();
    let method = client.method.as_str().to_string();
    let set = [
        ("host", host.clone()),
        ("x-original-uri", original.clone()),
        ("x-original-method", method.clone()),
        ("x-forwarded-method", method),
        (
            "x-forwarded-proto",
            if ctx.tls { "https" } else { "http" }.into(),
        ),
        (
            "x-forwarded-host",
            request_host(session).unwrap_or("").to_string(),
        ),
        ("x-forwarded-uri", original),
        ("x-forwarded-for", client_ip(session, ctx).to_string()),
    ];
    for (k, v) in set {
        req.insert_header(k, v).map_err(|e| e.to_string())?;
    }
    req.insert_header("content-length", "0")
        .map_err(|e| e.to_string())?;
    let (mut s, _reused) = f
        .connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_request_header(Box::new(req))
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.finish_request_body()
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.read_response_header()
        .await
        .map_err(|e| format!("read: {e}"))?;
    let resp = s.response_header().cloned().ok_or("no response header")?;
    let mut body = Vec::new();
    let mut whole = true;
    while let Some(chunk) = s
        .read_response_body()
        .await
        .map_err(|e| format!("read body: {e}"))?
    {
        if body.len() + chunk.len() > MAX_DENY_BODY {
            whole = false;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    if whole {
        f.connector.release_http_session(s, &peer, None).await;
    }
    Ok((resp, Bytes::from(body)))
}

/// Sends a denial; the route's `always` response headers apply.
pub(super) async fn send(session: &mut Session, ctx: &RequestCtx, d: Denial) -> Result<bool> {
    let mut resp = ResponseHeader::build(d.status, Some(d.headers.len() + 2))?;
    for (k, v) in d.headers {
        resp.append_header(k, v)?;
    }
    if !resp.headers.contains_key(http::header::CONTENT_TYPE) {
        resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, d.body.len().to_string())?;
    steps::to_client(session, &mut resp, ctx)?;
    // HEAD: headers only (over h2 a body is a protocol error).
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(d.body), true).await?;
    }
    Ok(true)
}

/// Sets the forward-auth answer's `copy_headers` on the upstream request.
pub(super) fn to_upstream(req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    let Some(copied) = ctx.access_headers.as_deref() else {
        return Ok(());
    };
    for (name, value) in copied {
        match value {
            Some(v) => {
                req.insert_header(name.clone(), v.clone())?;
            }
            None => {
                req.remove_header(name);
            }
        }
    }
    Ok(())
}

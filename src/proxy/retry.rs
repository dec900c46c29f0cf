//! Retrying on the next server when the upstream answers with a status the
//! route lists in `retry_statuses` (nginx `proxy_next_upstream http_502 …`).
//!
//! The answer is dropped before any of it reaches the client and the
//! request goes to a server of the pool this request has not tried yet
//! (`upstream_peer` already skips tried servers). The last server's answer
//! goes to the client whatever it is, as nginx does. Like nginx, a
//! non-idempotent request (POST, PATCH, LOCK) is never retried; greenlight
//! also never retries a request that has a body, so nothing the client sent
//! has to be kept for a second try. An answer that is retried counts as a
//! failed attempt for `max_fails` (nginx counts it too), 403 and 404
//! excepted: those say nothing about the server's health.

use super::ctx::RequestCtx;
use pingora::prelude::*;
use pingora::proxy::Session;

/// What an upstream answer's status means for this request.
pub(super) enum Verdict {
    /// Not listed: the answer goes to the client and the server is alive.
    Pass,
    /// Listed but not retried (no server left, a body, a non-idempotent
    /// method): the answer goes to the client; the attempt failed.
    Failed,
    /// Listed and retried: the error makes Pingora try the next server.
    Retry(Box<Error>),
}

/// The verdict on an upstream answer with `status`.
pub(super) fn on_status(session: &mut Session, ctx: &RequestCtx, status: u16) -> Verdict {
    let listed = match (ctx.snapshot.as_deref(), ctx.site, ctx.route) {
        (Some(snap), Some(site), Some(route)) => snap
            .router
            .site(site)
            .retry_statuses(route)
            .contains(status),
        _ => false,
    };
    if !listed {
        return Verdict::Pass;
    }
    if !matches!(status, 403 | 404) {
        passive_failure(ctx);
    }
    let idempotent = session.req_header().method.is_idempotent();
    let left = ctx.pool.as_ref().is_some_and(|p| p.any_left(&ctx.attempts));
    if !idempotent || !left || !session.is_body_empty() {
        return Verdict::Failed;
    }
    log::warn!(
        "upstream '{}' pool '{}' server {} answered {status}; trying the next server",
        ctx.upstream_name(),
        ctx.pool_name(),
        ctx.server_label(),
    );
    let mut e = Error::explain(
        ErrorType::HTTPStatus(status),
        format!("upstream answered {status}, retried on the next server"),
    );
    e.set_retry(true);
    Verdict::Retry(e)
}

/// Passive health: records a failed attempt (connect error or timeout) on
/// the server the request used. A pool of one server is never marked down
/// (as in nginx): taking it out would only turn a slow answer into a 503.
pub(super) fn passive_failure(ctx: &RequestCtx) {
    if let (Some(p), Some(i)) = (ctx.pool.as_ref(), ctx.server_idx)
        && p.servers().len() > 1
        && let Some(s) = p.servers().get(i)
        && s.health.request_failed(s.max_fails, s.fail_timeout)
    {
        log::warn!(
            "upstream '{}' pool '{}' server {}: marked down for {:?} after failed requests",
            p.upstream,
            p.name,
            s.label,
            s.fail_timeout
        );
    }
}

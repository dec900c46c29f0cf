//! Runs a route's limits step ([`crate::plan::limits`]) in `request_filter`,
//! after the rewrites and before the terminal (nginx's preaccess phase, so
//! a `return` answers before any limit counts, as in nginx): a refused
//! request gets the limit's status; a request in excess without `nodelay`
//! waits here (nginx's leaky bucket); each `limit_conn` count is an RAII
//! guard kept in the ctx, so it is given back whatever ends the request —
//! an answer, an error, a client that went away, or a WebSocket's close
//! (the ctx moves into the tunnel task and is dropped when it ends).
//!
//! Also remembers the route's error pages when it intercepts the
//! upstream's errors (see [`super::error_pages`]).

use super::RequestCtx;
use crate::plan::limits::Verdict;
use crate::plan::vars::VarCx;
use crate::state::Snapshot;
use pingora::prelude::*;

/// Applies the limits of the request's route; `Some(status)` = refused.
pub(super) async fn apply(session: &Session, ctx: &mut RequestCtx, snap: &Snapshot) -> Option<u16> {
    let plan = &snap
        .config
        .sites
        .get(ctx.site?)?
        .routes
        .get(ctx.route?)?
        .plan;
    if let Some(p) = plan.error_pages().filter(|p| p.intercept) {
        ctx.intercept = Some(p.clone());
    }
    let limits = plan.limits()?;
    let zones = &snap.config.zones;
    let verdict = {
        let cx = if limits.needs_connection(zones) {
            super::steps::var_cx(session, ctx, snap)
        } else {
            VarCx::of_request(session.req_header())
        };
        limits.check(zones, &cx, std::time::Instant::now())
    };
    match verdict {
        Verdict::Refuse(status) => {
            log::debug!(
                "limited {} {} from {}: answered {status}",
                session.req_header().method,
                session.req_header().uri.path(),
                super::client_ip(session, ctx)
            );
            Some(status)
        }
        Verdict::Pass { delay, guards } => {
            ctx.conn_guards = guards;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            None
        }
    }
}

/// The short page of a refused request.
pub(super) fn refused_body(status: u16) -> String {
    format!(
        "{status} {}: too many requests from this client; try again later\n",
        http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    )
}

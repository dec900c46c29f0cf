//! Which server of the upstream's active pool a request goes to, chosen
//! without a future: Pingora calls it through `upstream_peer_ref_sync`
//! (an `async_trait` hook would box a future per request for an answer that
//! never waits), and through `upstream_peer` on the paths that still ask the
//! async form.

use super::{GreenlightProxy, RequestCtx, steps};
use pingora::prelude::*;
use pingora::proxy::PeerRef;
use pingora::{Error, ErrorType};

impl GreenlightProxy {
    /// The peer for this request (a shared one unless it is a tunnel with
    /// its own idle limit), the pool's guard taken on first use.
    pub(super) fn choose_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<PeerRef> {
        let Some(upstream) = ctx.upstream.clone() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no upstream chosen",
            ));
        };
        let pool = match &ctx.pool {
            Some(p) => p.clone(),
            None => {
                let (upstream, guard) = match upstream.active_pool().enter() {
                    Some(g) => (upstream, g),
                    // A drain closed this pool after the request loaded its
                    // snapshot: take the pool that is active now.
                    None => self.active_now(&upstream)?,
                };
                let p = guard.pool().clone();
                ctx.pool_idx = upstream.active;
                ctx.guard = Some(guard);
                ctx.body.hold = None; // counted by the guard now
                ctx.pool = Some(p.clone());
                ctx.upstream = Some(upstream);
                p
            }
        };
        // The balancer's choice among the servers that are up and not yet
        // tried by this request (`upstream::balance`).
        let tried_before = ctx.attempts.count > 0;
        // A hash key reads the variables as the route plan left them (a
        // rewritten `$uri`, the location's captures), as nginx's `hash` does.
        let snapshot = ctx.snapshot.clone();
        let mut attempts = std::mem::take(&mut ctx.attempts);
        // Built only for a balancer that reads it (round robin and
        // least_conn do not), once per request.
        let chosen = match snapshot.as_deref().filter(|_| pool.needs_key(&attempts)) {
            Some(snap) => pool.choose(&mut attempts, Some(&steps::var_cx(session, ctx, snap))),
            None => pool.choose(&mut attempts, None),
        };
        ctx.attempts = attempts;
        if let Some(idx) = chosen {
            ctx.server_idx = Some(idx);
            let server = &pool.servers()[idx];
            return Ok(match ctx.tunnel_idle {
                Some(idle) => PeerRef::Owned(server.tunnel_peer(idle)),
                None => PeerRef::Shared(server.peer().clone()),
            });
        }
        if tried_before {
            Err(Error::explain(
                ErrorType::ConnectError,
                format!("every server of pool '{}' failed", pool.name),
            ))
        } else {
            Err(Error::explain(
                ErrorType::HTTPStatus(503),
                format!("pool '{}' has no healthy server", pool.name),
            ))
        }
    }
}

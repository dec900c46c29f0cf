//! A `files:` route whose `try_files` ends in `@name` (nginx `try_files
//! $uri $uri/ @app`): files when they exist, else the request is handed to
//! the site's route whose path is `@name` — its checks, rewrites and
//! header steps run as for a matched route, then its terminal answers
//! (usually by proxying to its upstream, with the path unchanged, as
//! nginx's internal redirect to a named location keeps `$uri`). A last
//! entry that is a path (`/index.html`) is nginx's internal redirect too:
//! the request is routed again with that path, so the route that takes it
//! answers (with its `expires` and steps), and a fallback that never finds
//! a file ends in a 500 as nginx's redirection cycle does.
//!
//! A files route's 404 (or 403) with an error page `uri:` in force goes the
//! same way (`error_uri.rs`): routed again with the page's path.
//!
//! This file only chains the two plans; finding files is `files.rs`'s,
//! running a plan `steps.rs`'s.

use super::{RequestCtx, files, steps};
use crate::plan::router::Decision;
use crate::state::Snapshot;
use pingora::prelude::*;

/// Makes `uri` (a path, maybe with `?query`) the request's current path,
/// as a `last` rewrite would; returns the path. Without a query the
/// request's own stays (nginx keeps `$args`).
fn set_path(session: &Session, ctx: &mut RequestCtx, uri: String) -> String {
    let req = session.req_header();
    let st = ctx
        .steps
        .get_or_insert_with(|| steps::StepState::for_request(req));
    let path = match uri.split_once('?') {
        Some((p, q)) => {
            st.path.args = Some(q.to_string()).filter(|q| !q.is_empty());
            p.to_string()
        }
        None => uri,
    };
    st.path.path = Some(path.as_str().into());
    path
}

/// Named routes and internal redirects one request may pass through: a named route may serve files
/// and fall back to another; a config that loops ends in a 500.
const MAX_HOPS: usize = 4;

/// Serves the request's `files:` route, if its route has one, following
/// named fallbacks. `Ok(None)`: answered. `Ok(Some(decision))`: the request
/// goes on with `decision` — the one given when the route does not serve
/// files, else the named route's.
pub(super) async fn serve_files(
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    mut decision: Decision,
    reroute: impl Fn(&str) -> Decision,
) -> Result<Option<Decision>> {
    for hop in 0.. {
        let Some(f) = steps::files_of(snap, ctx) else {
            return Ok(Some(decision));
        };
        let (site, route) = match files::find(f, &steps::var_cx(session, ctx, snap)) {
            files::Outcome::Named(route) => match ctx.site {
                Some(site) if hop < MAX_HOPS => (site, route),
                _ => break,
            },
            files::Outcome::Internal(uri) if hop < MAX_HOPS => {
                let path = set_path(session, ctx, uri);
                decision = match steps::run(session, ctx, snap, reroute(&path), &reroute) {
                    Ok(d) => d,
                    Err(a) => {
                        super::respond_bytes(session, ctx, a.status, a.body, &a.headers, false)
                            .await?;
                        return Ok(None);
                    }
                };
                continue;
            }
            files::Outcome::Internal(_) => break,
            outcome => {
                if let files::Outcome::Status(code) = &outcome
                    && let Some((uri, send)) = super::error_uri::page(ctx, *code)
                {
                    // An error page with `uri:` (nginx's internal redirect
                    // to a path): routed again like a fallback path.
                    let path = super::error_uri::take_over(session.req_header(), ctx, &uri, send);
                    decision = match steps::run(session, ctx, snap, reroute(&path), &reroute) {
                        Ok(d) => d,
                        Err(a) => {
                            super::respond_bytes(session, ctx, a.status, a.body, &a.headers, false)
                                .await?;
                            return Ok(None);
                        }
                    };
                    continue;
                }
                // Boxed (about 3 KB): otherwise part of every request's
                // `request_filter` future, file route or not.
                Box::pin(files::send(session, ctx, outcome)).await?;
                return Ok(None);
            }
        };
        // Set before running the plan: a plan with nothing to run returns
        // at once, and the response steps read the route from the ctx.
        ctx.route = Some(route);
        let next = Decision::Proxy {
            site,
            upstream: snap.router.site(site).upstream_of(route),
            route,
            captures: ctx.captures.clone(),
        };
        decision = match steps::run(session, ctx, snap, next, &reroute) {
            Ok(d) => d,
            Err(a) => {
                super::respond_bytes(session, ctx, a.status, a.body, &a.headers, false).await?;
                return Ok(None);
            }
        };
    }
    log::error!(
        "{}: more than {MAX_HOPS} try_files fallbacks: the chain loops (no fallback finds a file)",
        session.req_header().uri.path()
    );
    let body = "500 Internal Server Error: the try_files fallbacks loop\n".to_string();
    super::respond(session, ctx, 500, body, &[], false).await?;
    Ok(None)
}

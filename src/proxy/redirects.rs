//! Runs a route's `rewrite_location:` rules (`plan::proxy_redirect`, nginx
//! `proxy_redirect`) on the upstream's answer, in `upstream_response_filter`:
//! only answers that came from the upstream, never greenlight's own. A route
//! without rules costs one look into its (usually empty) step list.

use super::ctx::RequestCtx;
use super::steps::var_cx;
use crate::plan::proxy_redirect::Field;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Rewrites `Location` and `Refresh` of `resp` by the route's rules.
pub(super) fn apply(
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &RequestCtx,
) -> pingora::Result<()> {
    let Some(snap) = ctx.snapshot.as_deref() else {
        return Ok(());
    };
    let Some(rules) = ctx
        .site
        .zip(ctx.route)
        .and_then(|(s, r)| snap.config.sites.get(s)?.routes.get(r))
        .and_then(|r| r.plan.proxy_redirect())
    else {
        return Ok(());
    };
    for (name, field) in [("location", Field::Location), ("refresh", Field::Refresh)] {
        let Some(value) = resp.headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let cx = var_cx(session, ctx, snap);
        if let Some(new) = rules.rewrite(field, value, &cx) {
            // A value rendered from request variables may hold bytes a header
            // cannot; the upstream's own value is kept then.
            if let Ok(v) = http::HeaderValue::from_str(&new) {
                resp.insert_header(name, v)?;
            }
        }
    }
    Ok(())
}

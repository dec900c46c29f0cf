//! `error_pages` with `uri:` (nginx `error_page 404 /404.html` where a
//! proxied location serves `/404.html`): nginx's internal redirect. An
//! answer greenlight would make with a status that has such a page is not
//! sent; the request is routed again with the page's path instead, and
//! whatever route takes it answers — an upstream, files, a `respond` —
//! with the original status (or the page's `status:`, nginx's `=200`).
//!
//! As in nginx: the method becomes GET (HEAD stays HEAD), the query is the
//! page's own (none unless it has `?…`), and a second error on the way is
//! not redirected again (nginx's `recursive_error_pages off`): it is
//! answered with its own page.
//!
//! Which answers are covered: those made before the request goes
//! upstream, where the hooks can still route it again — a `respond:` or
//! `checks:` answer and a path no route of the site takes (404)
//! (`steps::run`, which re-routes like a `last` rewrite), and a files
//! route's 404/403 (`named::serve_files`, like a `try_files` fallback).
//! Limits and access answers are not: they are made in `request_filter`
//! itself, between the plan and the files, and routing again there
//! would mean a second copy of that flow in `mod.rs`. Not covered: an upstream's own answer (with
//! `intercept_errors` only file pages apply: Pingora has sent the
//! request by then) and the 502/504 of a failed upstream (`fail_to_proxy`
//! can only write an answer, not start another proxy attempt).
//!
//! A request without `uri:` pages pays an `Option` check.

use super::RequestCtx;
use super::steps::StepState;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

/// The `uri:` page for an answer of `status` in force for the request's
/// route (or site), unless an error page already took the request over.
pub(super) fn page(ctx: &RequestCtx, status: u16) -> Option<(Box<str>, u16)> {
    if ctx.error_status.is_some() {
        return None;
    }
    let site = ctx.snapshot.as_deref()?.config.sites.get(ctx.site?)?;
    let pages = match ctx.route {
        Some(r) => site.routes.get(r)?.plan.error_pages()?,
        None => site.plan.error_pages.as_ref()?,
    };
    let (uri, send) = pages.uri(status)?;
    Some((uri.into(), send))
}

/// Makes the page's `uri` the request's current path and query (the
/// request's own query is dropped, as nginx does) and marks the request;
/// returns the path to route.
pub(super) fn take_over(req: &RequestHeader, ctx: &mut RequestCtx, uri: &str, send: u16) -> String {
    ctx.error_status = Some(send);
    let (path, args) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string()).filter(|q| !q.is_empty())),
        None => (uri, None),
    };
    let st = ctx.steps.get_or_insert_with(|| StepState::for_request(req));
    st.path.path = Some(path.into());
    st.path.args = args;
    // A route matched by the page's path has its own captures (or none).
    st.location = None;
    path.to_string()
}

/// On every answer to a taken-over request: the original status.
pub(super) fn status(resp: &mut ResponseHeader, ctx: &RequestCtx) -> Result<()> {
    if let Some(s) = ctx.error_status
        && resp.status.as_u16() != s
    {
        resp.set_status(s)?;
    }
    Ok(())
}

/// On the request to the upstream: nginx asks for the page with GET
/// (HEAD stays HEAD), and as a plain request: a WebSocket handshake that
/// ended in an error page must not become a tunnel to the page's route.
pub(super) fn method(req: &mut RequestHeader, ctx: &RequestCtx) {
    if ctx.error_status.is_none() {
        return;
    }
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        req.set_method(http::Method::GET);
    }
    if req.headers.contains_key(http::header::UPGRADE) {
        req.remove_header(&http::header::UPGRADE);
        req.remove_header(&http::header::CONNECTION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_over_sets_the_page_path_and_its_own_query_only() {
        let req = RequestHeader::build("POST", b"/missing?q=1", None).expect("req");
        let mut ctx = RequestCtx::default();
        assert_eq!(take_over(&req, &mut ctx, "/404.html", 404), "/404.html");
        let st = ctx.steps.as_ref().expect("state");
        assert_eq!(st.path.path(req.uri.path()), "/404.html");
        assert_eq!(st.path.args, None, "the request's query is dropped");
        assert_eq!(ctx.error_status, Some(404));
        let mut ctx = RequestCtx::default();
        take_over(&req, &mut ctx, "/err?code=404", 200);
        let st = ctx.steps.as_ref().expect("state");
        assert_eq!(st.path.args.as_deref(), Some("code=404"));
        assert!(
            page(&ctx, 404).is_none(),
            "a taken-over request is not redirected again"
        );
    }

    #[test]
    fn the_status_and_method_change_only_for_a_taken_over_request() {
        let mut ctx = RequestCtx::default();
        let mut resp = ResponseHeader::build(200, None).expect("resp");
        let mut req = RequestHeader::build("POST", b"/404.html", None).expect("req");
        status(&mut resp, &ctx).expect("status");
        method(&mut req, &ctx);
        assert_eq!((resp.status.as_u16(), req.method.as_str()), (200, "POST"));
        ctx.error_status = Some(404);
        status(&mut resp, &ctx).expect("status");
        method(&mut req, &ctx);
        assert_eq!((resp.status.as_u16(), req.method.as_str()), (404, "GET"));
        let mut head = RequestHeader::build("HEAD", b"/404.html", None).expect("req");
        method(&mut head, &ctx);
        assert_eq!(head.method, http::Method::HEAD);
        let mut ws = RequestHeader::build("GET", b"/404.html", None).expect("req");
        ws.insert_header("upgrade", "websocket").expect("h");
        ws.insert_header("connection", "upgrade").expect("h");
        method(&mut ws, &ctx);
        assert!(ws.headers.get("upgrade").is_none() && ws.headers.get("connection").is_none());
    }
}

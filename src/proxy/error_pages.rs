//! Sends configured error pages ([`crate::plan::error_pages`]) — the one
//! place every answer greenlight makes passes through (`respond` in
//! `mod.rs`: local answers, files routes, `fail_to_proxy`, limits) — and
//! replaces the upstream's own error answers on routes with
//! `intercept_errors` (nginx `proxy_intercept_errors on`).
//!
//! A route without pages pays an `Option` check in `respond` and
//! `response_filter`, nothing else.

use super::RequestCtx;
use crate::plan::error_pages::{ErrorPages, Page};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

/// The pages in force for the request: its route's (site's merged in),
/// else its site's (answers made before a route was chosen).
fn pages(ctx: &RequestCtx) -> Option<&ErrorPages> {
    let site = ctx.snapshot.as_deref()?.config.sites.get(ctx.site?)?;
    match ctx.route {
        Some(r) => site.routes.get(r)?.plan.error_pages().map(|p| &**p),
        None => site.plan.error_pages.as_deref(),
    }
}

/// The page for an answer of `status`, if one is configured.
pub(super) fn page(ctx: &RequestCtx, status: u16) -> Option<&Page> {
    pages(ctx)?.get(status)
}

/// Sends `page` for an answer of `status` (or the page's own status), with
/// the answer's `extra` headers other than `Content-Type`.
pub(super) async fn send(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    page: &Page,
    extra: &[(&'static str, String)],
    close: bool,
) -> Result<bool> {
    let status = page.status.unwrap_or(status);
    let mut resp = ResponseHeader::build(status, Some(3 + extra.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, page.content_type.clone())?;
    resp.insert_header(http::header::CONTENT_LENGTH, page.body.len().to_string())?;
    for (k, v) in extra {
        if !k.eq_ignore_ascii_case("content-type") {
            resp.insert_header(*k, v.as_str())?;
        }
    }
    super::send_answer(session, ctx, resp, page.body.clone(), close).await
}

/// Headers of the upstream's answer that describe its own body.
const BODY_HEADERS: [http::HeaderName; 7] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_ENCODING,
    http::header::CONTENT_RANGE,
    http::header::TRANSFER_ENCODING,
    http::header::ETAG,
    http::header::LAST_MODIFIED,
];

/// In `response_filter` of an intercepting route: an upstream answer
/// whose status has a page gets the page's headers, and its body is
/// swapped in [`replace_body`].
pub(super) fn intercept(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    // Informational answers (100 Continue) pass; the final one decides.
    let status = resp.status.as_u16();
    let Some(page) = ctx.intercept.as_ref().and_then(|p| p.get(status)) else {
        return Ok(());
    };
    // Pingora ends an answer declared empty with its header (no body call
    // follows), so its body cannot be swapped: it passes as sent.
    if resp
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
    {
        return Ok(());
    }
    let page = page.clone();
    if let Some(s) = page.status {
        resp.set_status(s)?;
    }
    for h in BODY_HEADERS {
        resp.remove_header(&h);
    }
    resp.insert_header(http::header::CONTENT_TYPE, page.content_type.clone())?;
    resp.insert_header(http::header::CONTENT_LENGTH, page.body.len().to_string())?;
    ctx.page_body = Some(page.body);
    ctx.intercept = None;
    Ok(())
}

/// In `response_body_filter`: the upstream's body is dropped and the page
/// sent at its end.
pub(super) fn replace_body(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) {
    *body = if end_of_stream {
        ctx.page_body.take()
    } else {
        None
    };
}

//! Answers greenlight writes itself (redirects, `respond`, refusals, error
//! pages): the response header, the route's or site's response header steps,
//! and the body, none for HEAD.

use super::{RequestCtx, error_pages, steps};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

/// Writes a short plain-text response and ends the request. `extra` headers
/// come after `Content-Type` (and may replace it); the route's or site's
/// response header steps apply last.
pub(super) async fn respond(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: String,
    extra: &[(&'static str, String)],
    close: bool,
) -> Result<bool> {
    respond_bytes(session, ctx, status, Bytes::from(body), extra, close).await
}

/// [`respond`] with a body of bytes (a `respond` route's `body_base64`).
pub(super) async fn respond_bytes(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Bytes,
    extra: &[(&'static str, String)],
    close: bool,
) -> Result<bool> {
    if let Some(page) = error_pages::page(ctx, status) {
        return error_pages::send(session, ctx, status, page, extra, close).await;
    }
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    if !matches!(status, 204 | 304) {
        // RFC 9110 §8.6: no Content-Length on a 204 (a `respond` may send one).
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    }
    for (k, v) in extra {
        resp.insert_header(*k, v.as_str())?;
    }
    send_answer(session, ctx, resp, body, close).await
}

/// Ends the request with `resp` and `body` (an answer greenlight makes):
/// the route's or site's response header steps apply last.
pub(super) async fn send_answer(
    session: &mut Session,
    ctx: &RequestCtx,
    mut resp: ResponseHeader,
    body: Bytes,
    close: bool,
) -> Result<bool> {
    steps::to_client(session, &mut resp, ctx)?;
    if close {
        session.set_keepalive(None);
    }
    // HEAD: the headers (Content-Length included) and no body; over h2 a
    // DATA frame on a HEAD answer is a protocol error (RFC 9113 §8.1.1).
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

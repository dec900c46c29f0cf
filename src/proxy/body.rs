//! Request body buffering (nginx's `proxy_request_buffering on`): a routed
//! request's body is read whole *before* an upstream server is chosen or
//! connected, so a client that trickles its body costs the proxy a buffer,
//! not the application a connection.
//!
//! Flow: `proxy_upstream_filter` calls [`buffer_request`]; the body goes to
//! memory up to `limits.body_buffer_size`, then to an unlinked temp file (in
//! `$TMPDIR`; nothing is left behind, even after a crash), up to the site's
//! `max_body_size` (413 beyond). Each read is bounded by `limits.body_timeout`
//! (408). A malformed body (bad chunked framing, an HTTP/2 `content-length`
//! that the DATA frames do not match) ends the request here with 400 (HTTP/2:
//! the stream is reset with PROTOCOL_ERROR by the h2 layer), so the
//! application never sees any of it. The complete body is handed to the
//! vendored pingora-proxy as a [`PreparedBody`], which sends it to each
//! server it tries from the first byte; [`set_upstream_framing`] gives the
//! upstream request a `Content-Length` of the buffered size (a chunked
//! client body is sent with a length, as nginx does).
//!
//! Only pingora-proxy's HTTP/1 upstream path sends a prepared body (an
//! HTTP/2 upstream would get an empty body), so routes to an upstream with
//! `http2: true` are not buffered: their bodies stream.
//!
//! Not buffered: routes with `request_buffering: off` (streaming uploads,
//! gRPC-like traffic), upgrade requests, and requests without a body.
//! This module reads the request ctx; it never chooses an upstream.

use super::RequestCtx;
use crate::upstream::InflightGuard;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::PreparedBody;
use pingora::{Error, ErrorType};
use std::io::SeekFrom;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// How much of a spilled body is read from its temp file at a time.
const FILE_CHUNK: usize = 64 * 1024;

/// A request's body state, kept in the request ctx.
#[derive(Default)]
pub(super) struct BodyState {
    /// The body was read whole before connecting: its size.
    pub(super) buffered: Option<u64>,
    /// Streaming an HTTP/2 body: bytes received so far.
    streamed: u64,
    /// Streaming an HTTP/2 body: its last byte, held until END_STREAM.
    held: Option<Bytes>,
    /// While the body is read (no server chosen yet), the request counts as
    /// in flight on the active pool, so that a graceful stop or upgrade
    /// waits for it as for any request; dropped when `upstream_peer` takes
    /// the real guard.
    pub(super) hold: Option<InflightGuard>,
}

/// A complete request body: in memory, or in an unlinked temp file.
pub(super) struct BufferedBody {
    /// The body while it fits `limits.body_buffer_size` (empty once spilled).
    mem: BytesMut,
    /// The frozen memory body, sent as one chunk.
    frozen: Option<Bytes>,
    /// The temp file once the body outgrew memory.
    file: Option<tokio::fs::File>,
    mem_limit: usize,
    len: u64,
    /// Reading back: the memory chunk was handed out in this pass.
    mem_sent: bool,
}

impl BufferedBody {
    fn new(mem_limit: usize) -> BufferedBody {
        BufferedBody {
            mem: BytesMut::new(),
            frozen: None,
            file: None,
            mem_limit,
            len: 0,
            mem_sent: false,
        }
    }

    /// Appends a piece; past the memory bound the body moves to a temp file.
    async fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.len += chunk.len() as u64;
        if let Some(f) = self.file.as_mut() {
            return f.write_all(chunk).await;
        }
        if self.mem.len() + chunk.len() <= self.mem_limit {
            self.mem.extend_from_slice(chunk);
            return Ok(());
        }
        // Unlinked at creation (O_TMPFILE where the system has it): the
        // space is freed when the request ends, however it ends.
        let std_file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(std::io::Error::other)??;
        let mut f = tokio::fs::File::from_std(std_file);
        f.write_all(&self.mem).await?;
        f.write_all(chunk).await?;
        self.mem = BytesMut::new();
        self.file = Some(f);
        Ok(())
    }

    /// The body is complete: flush the file, freeze the memory part.
    async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.flush().await?;
        }
        self.frozen = Some(std::mem::take(&mut self.mem).freeze());
        Ok(())
    }

    /// Whether the body went to a temp file.
    pub(super) fn spilled(&self) -> bool {
        self.file.is_some()
    }
}

#[async_trait]
impl PreparedBody for BufferedBody {
    async fn rewind(&mut self) -> Result<()> {
        self.mem_sent = false;
        if let Some(f) = self.file.as_mut() {
            f.seek(SeekFrom::Start(0)).await.map_err(|e| {
                Error::because(ErrorType::InternalError, "rewinding the body file", e)
            })?;
        }
        Ok(())
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if let Some(f) = self.file.as_mut() {
            let mut buf = BytesMut::with_capacity(FILE_CHUNK);
            let n = f.read_buf(&mut buf).await.map_err(|e| {
                Error::because(ErrorType::InternalError, "reading the body file", e)
            })?;
            return Ok((n > 0).then(|| buf.freeze()));
        }
        if self.mem_sent {
            return Ok(None);
        }
        self.mem_sent = true;
        Ok(self.frozen.clone().filter(|b| !b.is_empty()))
    }
}

/// Reads the request body whole when the route buffers bodies; on success
/// the body is set on the session for the upstream and its size kept in the
/// ctx. An error carries the status the client gets (400, 408, 413; none
/// when the client is gone).
/// Whether [`buffer_request`] has anything to do for this request: a body
/// still to read, on a route that buffers bodies, to an HTTP/1 upstream.
/// Most requests have no body: the proxy then goes on without a future.
pub(super) fn buffers(session: &mut Session, ctx: &RequestCtx) -> bool {
    if session.is_upgrade_req()
        || session.as_mut().is_body_empty()
        || session.as_mut().is_body_done()
    {
        return false;
    }
    let (Some(snap), Some(site), Some(route)) = (ctx.snapshot.as_deref(), ctx.site, ctx.route)
    else {
        return false;
    };
    // Pingora's HTTP/2 upstream path sends the client's body as it comes and
    // knows nothing of a prepared one: such routes stream.
    snap.router.site(site).buffers_body(route)
        && !ctx
            .upstream
            .as_ref()
            .is_some_and(|u| u.config.tls.as_ref().is_some_and(|t| t.http2))
}

pub(super) async fn buffer_request(session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    if !buffers(session, ctx) {
        return Ok(());
    }
    let Some(snap) = ctx.snapshot.clone() else {
        return Ok(());
    };
    ctx.body.hold = ctx.upstream.as_ref().and_then(|u| u.active_pool().enter());
    let limits = &snap.config.limits;
    if !session.is_http2() && expects_continue(session.req_header()) {
        // The client waits for this before it sends the body (RFC 9110
        // §10.1.1); the upstream gets no Expect, since the body is here.
        let cont = ResponseHeader::build(100, Some(0))?;
        session.write_response_header(Box::new(cont), false).await?;
        session
            .req_header_mut()
            .remove_header(&http::header::EXPECT);
    }
    let mut body = BufferedBody::new(limits.body_buffer_size);
    loop {
        let chunk = read_piece(session, limits.body_timeout).await?;
        let Some(chunk) = chunk else { break };
        if let Some(limit) = ctx.max_body
            && body.len + chunk.len() as u64 > limit
        {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                format!("request body exceeds the limit of {limit} bytes"),
            ));
        }
        body.push(&chunk).await.map_err(|e| {
            Error::because(ErrorType::InternalError, "buffering the request body", e)
        })?;
    }
    body.finish()
        .await
        .map_err(|e| Error::because(ErrorType::InternalError, "buffering the request body", e))?;
    log::debug!(
        "buffered a request body of {} bytes{}",
        body.len,
        if body.spilled() { " (temp file)" } else { "" }
    );
    ctx.body.buffered = Some(body.len);
    session.set_prepared_body(Box::new(body));
    Ok(())
}

/// One read of the client's body, bounded by the body timeout (Pingora bounds
/// HTTP/1 reads itself, not HTTP/2 ones), with errors turned into answers.
async fn read_piece(session: &mut Session, limit: Duration) -> Result<Option<Bytes>> {
    let h2 = session.is_http2();
    match tokio::time::timeout(limit, session.read_request_body()).await {
        Err(_) => Err(Error::explain(
            ErrorType::HTTPStatus(408),
            format!("no request body byte for {limit:?}"),
        )),
        Ok(Ok(chunk)) => Ok(chunk),
        Ok(Err(e)) => Err(match e.etype() {
            ErrorType::ReadTimedout => {
                Error::because(ErrorType::HTTPStatus(408), "reading the request body", e)
            }
            // A reset HTTP/1 connection: nobody is left to answer.
            ErrorType::ReadError if !h2 => e.into_down(),
            // Bad chunked framing, an early close, an HTTP/2 stream error:
            // the body is not what its framing promised.
            _ => Error::because(
                ErrorType::HTTPStatus(400),
                "malformed or incomplete request body",
                e,
            ),
        }),
    }
}

/// Streaming (`request_buffering: off`) an HTTP/2 body with a
/// `content-length`: its last byte is held until END_STREAM confirms the
/// length. The h2 layer resets a stream whose DATA overrun the length, but
/// only on the frame that overruns; without this, the application would
/// already have a complete request by then. An HTTP/1 body needs no such
/// care: its framing itself says where it ends.
pub(super) fn hold_unconfirmed_end(
    session: &Session,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    st: &mut BodyState,
) {
    if st.buffered.is_some() || !session.is_http2() {
        return;
    }
    let Some(declared) = declared_length(session.req_header()) else {
        return;
    };
    st.streamed += body.as_ref().map_or(0, |b| b.len() as u64);
    let mut data = match (st.held.take(), body.take()) {
        (Some(held), Some(more)) => Some(Bytes::from([&held[..], &more[..]].concat())),
        (held, more) => more.or(held),
    };
    if !end_of_stream
        && st.streamed >= declared
        && let Some(d) = data.as_mut()
        && !d.is_empty()
    {
        st.held = Some(d.split_off(d.len() - 1));
    }
    *body = data;
}

/// The request's `Content-Length`, if it has a valid one.
pub(super) fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn expects_continue(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// For a buffered body: the upstream request carries `Content-Length` of the
/// buffered size and no `Transfer-Encoding` (what nginx does).
pub(super) fn set_upstream_framing(req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    if let Some(len) = ctx.body.buffered {
        req.remove_header(&http::header::TRANSFER_ENCODING);
        req.insert_header(http::header::CONTENT_LENGTH, len.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(b: &mut BufferedBody) -> Vec<u8> {
        b.rewind().await.expect("rewind");
        let mut out = Vec::new();
        while let Some(c) = b.next_chunk().await.expect("chunk") {
            out.extend_from_slice(&c);
        }
        out
    }

    #[tokio::test]
    async fn a_small_body_stays_in_memory_and_reads_back_twice() {
        let mut b = BufferedBody::new(16);
        b.push(b"hello ").await.expect("push");
        b.push(b"world").await.expect("push");
        b.finish().await.expect("finish");
        assert!(!b.spilled());
        assert_eq!(read_all(&mut b).await, b"hello world");
        assert_eq!(read_all(&mut b).await, b"hello world", "a retry resends it");
    }

    #[tokio::test]
    async fn a_large_body_spills_to_a_file_and_reads_back_byte_exact() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut b = BufferedBody::new(1000);
        for piece in data.chunks(7000) {
            b.push(piece).await.expect("push");
        }
        b.finish().await.expect("finish");
        assert!(b.spilled());
        assert_eq!(read_all(&mut b).await, data);
        assert_eq!(read_all(&mut b).await, data, "a retry resends it");
    }
}

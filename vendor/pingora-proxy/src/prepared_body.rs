// greenlight patch: this whole file (see vendor/README.md).
//
// A request body the application read whole before it chose the upstream
// (request buffering, nginx's `proxy_request_buffering on`). Pingora alone only
// forwards the client's body as it arrives, so a client that trickles a body
// holds an upstream connection for as long as it likes. With a prepared body
// set on the [`Session`], the HTTP/1 upstream path (`proxy_h1.rs`) sends it in
// place of the client's, from its first byte on every try, and only watches
// the client for a close.

use super::*;

/// A request body ready to be sent upstream; see [`Session::set_prepared_body`].
#[async_trait]
pub trait PreparedBody: Send + Sync {
    /// Starts again from the first byte (each try of an upstream sends it whole).
    async fn rewind(&mut self) -> Result<()>;
    /// The next piece of the body; `None` after the last one.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>>;
}

pub(crate) struct Prepared {
    body: Box<dyn PreparedBody>,
    /// The body was sent whole in this try.
    sent: bool,
}

impl Session {
    /// Sends `body` upstream instead of reading the client's body, which the
    /// caller must have read to its end already. Only the HTTP/1 upstream path
    /// honours it.
    pub fn set_prepared_body(&mut self, body: Box<dyn PreparedBody>) {
        self.prepared_body = Some(Prepared { body, sent: false });
    }

    /// A new try: the prepared body (if any) starts again. Returns whether there is one.
    pub(crate) async fn restart_prepared_body(&mut self) -> Result<bool> {
        let Some(p) = self.prepared_body.as_mut() else {
            return Ok(false);
        };
        p.body.rewind().await?;
        p.sent = false;
        Ok(true)
    }

    /// Whether the request body as sent upstream is complete: the prepared
    /// body when there is one, else the client's.
    pub(crate) fn upstream_body_done(&mut self) -> bool {
        match self.prepared_body.as_ref() {
            Some(p) => p.sent,
            None => self.downstream_session.is_body_done(),
        }
    }
}

/// The next piece of the request body for the upstream: from the prepared
/// body while it lasts, then (like Pingora without one) the client's
/// `read_body_or_idle`, which now only sees a close or pipelined bytes.
/// Takes the two fields apart so that the caller's `select!` may borrow others.
pub(crate) async fn read_body_or_prepared(
    prepared: &mut Option<Prepared>,
    downstream: &mut HttpSession,
    no_body_expected: bool,
) -> Result<Option<Bytes>> {
    match prepared.as_mut() {
        Some(p) if !p.sent => {
            let chunk = p.body.next_chunk().await?;
            p.sent = chunk.is_none();
            Ok(chunk)
        }
        _ => downstream.read_body_or_idle(no_body_expected).await,
    }
}

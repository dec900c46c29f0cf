// greenlight patch: this whole file (see vendor/README.md, "Slow readers").
//! Whether the client half of an HTTP/1 upstream proxy is stuck writing.
//!
//! The two halves of `proxy_1to1` run in one task. While the client half
//! waits for the client to accept a write (its socket or its HTTP/2 stream
//! window is full), whatever the upstream half reads next only waits in
//! memory. The gate lets the upstream half see that and stop reading until
//! the write ends, so a client that stops reading holds the piece being
//! written and nothing more; a client that keeps up never blocks a write, so
//! the halves still overlap fully for it.

use std::sync::atomic::{AtomicBool, Ordering};
use pingora_http::ResponseHeader;
use tokio::sync::Notify;

/// Whether a response header may wait in the pipe together with the first
/// body piece: only for a response that announces a body of at most one
/// piece (32 KiB), so that a small answer goes out in one write (over h2,
/// one flush) while larger ones move one piece at a time.
pub(crate) fn header_may_share(header: &ResponseHeader) -> bool {
    const ONE_PIECE: u64 = 32 * 1024;
    header
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > 0 && len <= ONE_PIECE)
}

/// Shared by the two halves of one proxied request.
#[derive(Default)]
pub(crate) struct WriteGate {
    writing: AtomicBool,
    done: Notify,
}

/// Marks a write to the client as in progress until dropped (also when the
/// write is cancelled or fails).
pub(crate) struct Writing<'a>(&'a WriteGate);

impl WriteGate {
    /// A write to the client starts.
    pub(crate) fn begin(&self) -> Writing<'_> {
        self.writing.store(true, Ordering::Release);
        Writing(self)
    }

    /// Whether a write to the client is in progress. Both halves are polled by
    /// one task, so seen from the upstream half this means the write is blocked.
    pub(crate) fn is_writing(&self) -> bool {
        self.writing.load(Ordering::Acquire)
    }

    /// Resolves once a write that was in progress has ended (possibly at once,
    /// for an end that happened before; the caller checks again).
    pub(crate) async fn ended(&self) {
        self.done.notified().await
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.writing.store(false, Ordering::Release);
        self.0.done.notify_one();
    }
}

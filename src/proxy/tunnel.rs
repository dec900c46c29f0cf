//! An upgraded WebSocket, on a small task of its own once the 101 is out.
//!
//! Pingora alone keeps an upgraded connection inside its request machinery
//! for the tunnel's whole life: the connection task with its boxed request
//! future, two 64 KiB body buffers, two task channels and both parsed header
//! sets — about 63 KiB of memory per idle WebSocket in our benchmark, where
//! HAProxy needs under 6. The vendored pingora-proxy (`wants_upgraded_tunnel`,
//! `upgraded_tunnel`) hands us both streams instead, with whatever either side
//! had already sent, and the request's task ends.
//!
//! [`run`] copies bytes both ways by readiness: a read goes into one scratch
//! buffer per worker thread and is written straight on; only what the other
//! side does not take at once is kept, in a buffer of exactly that size, freed
//! as soon as it is written. An idle tunnel therefore holds no buffer at all.
//!
//! It behaves as the tunnel inside Pingora did: it ends when either side
//! ends (after passing on what that side sent), or when
//! `limits.websocket_idle_timeout` passes with nothing from one side. When a
//! drain deadline ends it (the request's `DrainKill` wakes the task), both
//! sides get a Close frame 1001, each at a frame boundary of what it was being
//! sent: the client so that it reconnects, the app (masked, as from a client)
//! so that it sees a clean close before the FIN, not a bare FIN. The
//! request's state ([`RequestCtx`]: its pool guard, WebSocket gauge, metrics
//! handles) moves here, and the request is recorded (metrics, access log)
//! when the tunnel ends; so does the client connection's listener slot.
//!
//! An upgrade the vendored Pingora does not hand over (one whose request
//! has a body, or whose 101 follows another 1xx) stays in Pingora's duplex
//! loop, where `response_body_filter` tracks frames and appends the same
//! 1001 from the same [`super::websocket`] helpers.
//!
//! The task is a connection, not a background service: like Pingora's own
//! per-connection tasks it is spawned on the proxy's runtime, and shutdown
//! reaches it the way it reaches every WebSocket. The drain at a deadline or
//! at SIGTERM wakes the task through the pool's connection registry, which
//! still lists it under the request's guard (a kill that came before the task
//! started shuts the socket down instead, as for Pingora's own tunnels); the
//! task says goodbye both ways and ends; the guard it holds is what the drain
//! and `--wait` count.

use super::RequestCtx;
use super::connections::ConnectionHold;
use super::record::{self, Outcome, RequestView};
use super::websocket::{CLOSE_GOING_AWAY, FrameTracker, close_going_away_masked};
use crate::state::StateHandle;
use pingora::protocols::Stream;
use pingora::proxy::UpgradedTunnel;
use std::cell::RefCell;
use std::future::Future;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// One read's worth; a TLS record's plaintext is at most 16 KiB.
const SCRATCH_SIZE: usize = 16 * 1024;

/// How long the goodbye (a 1001 frame, the TLS close_notify, the FINs) may
/// take before the sockets are simply dropped.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// After its Close 1001 and FIN, how long the app may take to close its side
/// (its Close reply, then its FIN) before the socket is dropped. Dropping it
/// with the reply unread would answer the app with a reset.
const APP_CLOSE_WAIT: Duration = Duration::from_secs(1);

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// What the tunnel task owns besides the two streams.
pub(super) struct TunnelState {
    pub state: StateHandle,
    pub ctx: RequestCtx,
    pub view: Option<RequestView>,
    pub hold: Option<ConnectionHold>,
}

/// One direction: the bytes read but not yet written, and how it went.
#[derive(Default)]
struct Half {
    /// Not yet written; empty (and unallocated) while the peer keeps up.
    pending: Vec<u8>,
    written: usize,
    unflushed: bool,
    /// The source ended (everything it sent is in `pending` or written).
    ended: bool,
    bytes: u64,
}

impl Half {
    fn with(first: Vec<bytes::Bytes>, ended: bool) -> Half {
        let pending = first.concat();
        Half {
            bytes: pending.len() as u64,
            pending,
            ended,
            ..Half::default()
        }
    }

    fn clear(&mut self) {
        if !self.pending.is_empty() {
            self.pending = Vec::new();
            self.written = 0;
        }
    }

    /// Writes what is still pending to `dst` and flushes it.
    async fn finish(&mut self, dst: &mut Stream) -> io::Result<()> {
        dst.write_all(&self.pending[self.written..]).await?;
        self.clear();
        dst.flush().await
    }

    /// Copies `src` to `dst` until `src` would wait (`Pending`), or has ended
    /// and all of it is written and flushed (`Ready(Ok)`), or fails.
    fn pump(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut Stream,
        dst: &mut Stream,
        mut seen: impl FnMut(&[u8]),
    ) -> Poll<io::Result<()>> {
        loop {
            while self.written < self.pending.len() {
                let n = ready!(Pin::new(&mut *dst).poll_write(cx, &self.pending[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
                self.unflushed = true;
            }
            self.clear();
            if self.unflushed {
                ready!(Pin::new(&mut *dst).poll_flush(cx))?;
                self.unflushed = false;
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            let got = SCRATCH.with(|scratch| -> Poll<io::Result<usize>> {
                let mut scratch = scratch.borrow_mut();
                let mut buf = ReadBuf::new(&mut scratch[..]);
                ready!(Pin::new(&mut *src).poll_read(cx, &mut buf))?;
                let data = buf.filled();
                seen(data);
                let mut off = 0;
                while off < data.len() {
                    match Pin::new(&mut *dst).poll_write(cx, &data[off..]) {
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        Poll::Ready(Ok(n)) => off += n,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            self.pending = data[off..].to_vec();
                            break;
                        }
                    }
                }
                Poll::Ready(Ok(data.len()))
            });
            match ready!(got)? {
                0 => self.ended = true,
                n => {
                    self.bytes += n as u64;
                    self.unflushed = true;
                }
            }
        }
    }
}

/// Runs the tunnel to its end, then records the request.
///
/// The future is the idle tunnel's memory, so two things keep it small: the
/// body is an `async move` block that uses `st` where it was captured (an
/// `async fn` would keep the argument and its moved copy, 1.1 KB each), and
/// the goodbye, which runs once at the end, is boxed then rather than sized
/// into every tunnel's future.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub(super) fn run(t: UpgradedTunnel, mut st: TunnelState) -> impl Future<Output = ()> + Send {
    async move {
        let UpgradedTunnel {
            mut downstream,
            mut upstream,
            from_downstream,
            from_upstream,
            downstream_closed,
            upstream_closed,
        } = t;
        let mut frames = st.ctx.frames.take().unwrap_or_default();
        let mut to_up = Half::with(from_downstream, downstream_closed);
        let mut to_down = Half::with(from_upstream, upstream_closed);
        if !to_down.pending.is_empty() {
            frames.feed(&to_down.pending);
        }
        // Client-to-app frame boundaries, for the app's Close 1001.
        let mut up_frames = FrameTracker::default();
        up_frames.feed(&to_up.pending);
        // From here on a drain deadline wakes this task rather than shutting the
        // upstream socket down (unless it already has).
        let switch = st.ctx.drain_kill.clone();
        let shut_already = switch.as_ref().is_some_and(|k| k.close_myself());
        let mut woken = std::pin::pin!(async {
            match &switch {
                Some(k) if !shut_already => k.woken().await,
                _ => std::future::pending().await,
            }
        });
        let mut cut = false;
        let idle = st.ctx.tunnel_idle.flatten();
        let mut timer = idle.map(|d| Box::pin(tokio::time::sleep(d)));
        let (mut heard_up, mut heard_down) = (Instant::now(), Instant::now());

        poll_fn(|cx| {
            if woken.as_mut().poll(cx).is_ready() {
                log::debug!("WebSocket tunnel: drain deadline; closing both sides with 1001");
                cut = true;
                return Poll::Ready(());
            }
            let (up_before, down_before) = (to_up.bytes, to_down.bytes);
            if let Poll::Ready(r) =
                to_up.pump(cx, &mut downstream, &mut upstream, |d| up_frames.feed(d))
            {
                log_end("client", r);
                return Poll::Ready(());
            }
            if let Poll::Ready(r) =
                to_down.pump(cx, &mut upstream, &mut downstream, |d| frames.feed(d))
            {
                log_end("upstream", r);
                return Poll::Ready(());
            }
            if let (Some(idle), Some(timer)) = (idle, timer.as_mut()) {
                let now = Instant::now();
                if to_up.bytes != up_before {
                    heard_up = now;
                }
                if to_down.bytes != down_before {
                    heard_down = now;
                }
                let deadline = heard_up.min(heard_down) + idle;
                if now >= deadline {
                    log::debug!("WebSocket tunnel idle for {idle:?}; closing it");
                    return Poll::Ready(());
                }
                if timer.deadline().into_std() != deadline {
                    timer.as_mut().reset(deadline.into());
                }
                // Registers the wake-up at the deadline.
                let _ = timer.as_mut().poll(cx);
            }
            Poll::Pending
        })
        .await;

        let killed = switch.as_ref().is_some_and(|k| k.is_killed());
        let goodbye = async {
            if cut {
                // What the client sent so far goes on; then, between two of its
                // frames, the Close (RFC 6455 §7.1.2), then the FIN.
                if to_up.finish(&mut upstream).await.is_ok() && up_frames.can_insert_close() {
                    let _ = upstream.write_all(&close_going_away_masked(mask())).await;
                }
                let _ = upstream.flush().await;
                let _ = upstream.shutdown().await;
                let _ = to_down.finish(&mut downstream).await;
            }
            if killed && to_down.pending.is_empty() && frames.can_insert_close() {
                // The drain deadline ended the upstream side: tell the client to
                // go away and come back (RFC 6455 §7.4.1), not just drop it.
                if downstream.write_all(&CLOSE_GOING_AWAY).await.is_ok() {
                    to_down.bytes += CLOSE_GOING_AWAY.len() as u64;
                }
            }
            let _ = downstream.flush().await;
            let _ = downstream.shutdown().await;
            if cut {
                let _ = tokio::time::timeout(APP_CLOSE_WAIT, until_eof(&mut upstream)).await;
            } else {
                let _ = upstream.shutdown().await;
            }
        };
        let _ = Box::pin(tokio::time::timeout(GOODBYE_TIMEOUT, goodbye)).await;
        drop((downstream, upstream));

        let TunnelState {
            state,
            ctx,
            view,
            hold,
        } = st;
        let out = Outcome {
            status: 101,
            read: to_up.bytes,
            sent: to_down.bytes,
            error: None,
        };
        record::record(&state, out, &ctx, || view);
        drop((ctx, hold));
    }
}

/// A WebSocket mask key: RFC 6455 §5.3 asks for one a script could not
/// predict; the standard library's per-process random hash keys will do.
fn mask() -> [u8; 4] {
    use std::hash::BuildHasher;
    let n = std::hash::RandomState::new().hash_one(Instant::now());
    (n as u32).to_be_bytes()
}

/// Reads and discards until the peer ends its side (or fails).
async fn until_eof(s: &mut Stream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

fn log_end(side: &str, r: io::Result<()>) {
    match r {
        Ok(()) => log::debug!("WebSocket tunnel: the {side} side ended"),
        Err(e) => log::debug!("WebSocket tunnel ended on an error: {e}"),
    }
}

/// Spawns [`run`] for `t`.
pub(super) fn spawn(t: UpgradedTunnel, st: TunnelState) {
    tokio::spawn(run(t, st));
}

//! Integration-test support for greenlight.
//!
//! Provides everything a test needs to drive the real proxy binary from the
//! outside, over loopback only:
//!
//! - [`ports`]: free loopback ports for listener addresses in test configs.
//! - [`upstream`]: a hand-rolled HTTP/1.1 upstream that records every request
//!   ([`HttpUpstream`]) and a refusing address ([`DeadUpstream`]).
//! - [`raw_upstream`]: an upstream that answers with exact scripted bytes
//!   ([`RawUpstream`]), for malformed responses a server library would not send.
//! - [`ws`]: a WebSocket echo upstream ([`WsUpstream`]) and client ([`ws_connect`]).
//! - [`tls`]: a throw-away test PKI ([`TestCa`]) and TLS client helpers.
//! - [`cdp`]: headless Chromium over the DevTools protocol (the dashboard test).
//! - [`client`]: raw HTTP/1.1 ([`H1Conn`]) and HTTP/2-over-TLS ([`H2Conn`]) clients.
//! - [`proxy`]: runs the real `greenlight` binary ([`ProxyProcess`], [`run_cli`]).
//! - [`exposition`]: a strict reader of `/metrics` ([`exposition::check_exposition`]).
//!
//! This module also holds the polling helpers ([`wait_until`],
//! [`wait_until_async`]) that replace sleeps as synchronisation, and the
//! [`timed`] wrapper that bounds every network await by [`IO_TIMEOUT`].

// Each test file uses only part of the harness; unused helpers are expected.
#![allow(dead_code, unused_imports)]

pub mod balancer;
pub mod cdp;
pub mod client;
pub mod etcd;
pub mod exposition;
pub mod h2raw;
pub mod http1;
pub mod pebble;
pub mod ports;
pub mod proxy;
pub mod raw_upstream;
pub mod tls;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

pub use client::{H1Conn, H2Conn, Response, h2_get, http_get, metric_sum, metrics_text};
pub use ports::{free_addr, free_port, free_ports};
pub use proxy::{
    KillOnDrop, ProxyProcess, StartError, TlsSite, admin_cli, fill_ports, greenlight_bin, run_cli,
    start_single_upstream, successor_pid,
};
pub use raw_upstream::RawUpstream;
pub use tls::{
    IssuedCert, NegotiatedInfo, TestCa, tls_connect, tls_connect_prefixed, tls_connect_with,
};
pub use upstream::{DeadUpstream, HttpUpstream, RecordedRequest};
pub use ws::{TlsClient, WsClient, WsClose, WsHandshake, WsUpstream, ws_connect, ws_connect_with};

/// Upper bound for a single network operation (connect, handshake, one
/// response, one message). A broken proxy makes the test fail after this
/// long instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Interval between two checks of a polled condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A byte stream the clients and servers can run over: plain TCP or TLS.
pub trait AsyncIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncIo for T {}

/// A type-erased [`AsyncIo`] stream.
pub type BoxedIo = Box<dyn AsyncIo>;

/// Where a test server listens: a TCP port, or a unix socket (an app behind
/// `unix:/path`, as gunicorn is run).
pub enum AnyListener {
    /// `127.0.0.1:port`.
    Tcp(tokio::net::TcpListener),
    /// A socket file.
    Unix(tokio::net::UnixListener),
}

impl AnyListener {
    /// The next connection, like [`accept`] (cancel-safe).
    pub async fn accept(&self) -> BoxedIo {
        match self {
            AnyListener::Tcp(l) => Box::new(accept(l).await),
            AnyListener::Unix(l) => loop {
                match l.accept().await {
                    Ok((s, _)) => return Box::new(s),
                    Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
                }
            },
        }
    }
}

/// The next connection `listener` accepts, for the test servers' accept
/// loops. An accept error (out of descriptors, say) is waited out for a
/// [`POLL_INTERVAL`] instead of retried at once, which would spin.
/// Cancel-safe, like `TcpListener::accept`, so it can stand in a `select!`.
pub async fn accept(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => return tcp,
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Returns the instant `timeout` from now, for use with [`wait_until`].
pub fn deadline_in(timeout: Duration) -> Instant {
    Instant::now() + timeout
}

/// Polls `cond` every [`POLL_INTERVAL`] until it returns true or `deadline`
/// passes; returns whether it became true.
///
/// This blocks the calling thread: inside `#[tokio::test]` (a single-threaded
/// runtime) it would also stop the test's own servers, so use
/// [`wait_until_async`] there.
pub fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Async version of [`wait_until`]: awaits `cond()` every [`POLL_INTERVAL`]
/// until it yields true or `deadline` passes; returns whether it became true.
///
/// Each evaluation of `cond` is itself bounded by the time left, so a
/// condition that hangs cannot outlive the deadline.
pub async fn wait_until_async<F, Fut>(deadline: Instant, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(true) = tokio::time::timeout(left, cond()).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Like [`wait_until_async`] but panics with `what` if the condition does not
/// become true within `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !wait_until_async(deadline_in(timeout), cond).await {
        panic!("condition not met within {timeout:?}: {what}");
    }
}

/// Awaits `fut` for at most [`IO_TIMEOUT`]; on expiry returns an
/// [`io::ErrorKind::TimedOut`] error naming `what`.
pub async fn timed<T>(what: &str, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    timed_for(IO_TIMEOUT, what, fut).await
}

/// Awaits `fut` for at most `limit`; on expiry returns an
/// [`io::ErrorKind::TimedOut`] error naming `what`.
pub async fn timed_for<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {limit:?}: {what}"),
        )),
    }
}

/// Wraps any error as an [`io::Error`] with some context.
pub(crate) fn io_err(context: &str, err: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{context}: {err}"))
}

/// Writes `data` to `root/rel`, creating the directories on the way
/// (docroots of the static-file tests).
pub fn write_file(root: &std::path::Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

//! Free loopback ports for listener addresses written into test configs.
//!
//! The proxy binds its own listeners from the YAML, so a test has to pick the
//! ports before it starts the process. These helpers bind `127.0.0.1:0`, read
//! the port the kernel chose and release it.
//!
//! # The race, and why the ports come from below the ephemeral range
//!
//! Between dropping our socket and the proxy binding the port, someone else
//! may take it. Ports the kernel hands out by itself — to every `bind(:0)` of
//! the upstreams the tests start, and to every outgoing connection of every
//! client — come from `ip_local_port_range` (32768–60999 by default), and
//! with dozens of tests in parallel an immediate reuse of a just-released
//! port there was seen. So these ports are picked from 20000–32767 instead,
//! which the kernel never hands out on its own, walking the range from a
//! per-process offset so that parallel tests never pick the same one. Each is
//! still checked by binding it. If a port is taken anyway, the proxy fails to
//! start and [`super::ProxyProcess::wait_ready`] reports the bind error from
//! its stderr: a clear failure, never a hang. Servers owned by the test
//! itself (upstreams) never need this: they bind `:0` and keep the socket.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// Returns a loopback TCP port that was free a moment ago (see the module
/// docs for the race).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// First port of the range these helpers pick from.
const FIRST: u16 = 20_000;
/// How many ports the range has (up to the default ephemeral range).
const SPAN: u32 = 12_768;

/// The next candidate, walking the range from a per-process offset.
fn next_candidate() -> u16 {
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    let _ = CURSOR.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    let n = CURSOR.fetch_add(1, Ordering::Relaxed);
    // The range, not the kernel's ephemeral one; see the module docs.
    FIRST + (n % SPAN) as u16
}

/// Returns `n` distinct free loopback ports. All sockets are held until every
/// port is chosen, so the ports cannot collide with each other.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    for _ in 0..SPAN {
        if held.len() == n {
            break;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", next_candidate())) {
            held.push(l);
        }
    }
    assert_eq!(held.len(), n, "no {n} free ports in {FIRST}..");
    held.iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Returns `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

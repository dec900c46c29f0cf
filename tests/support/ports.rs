//! Free loopback ports for listener addresses written into test configs.
//!
//! The proxy binds its own listeners from the YAML, so a test has to pick the
//! ports before it starts the process. These helpers bind `127.0.0.1:0`, read
//! the port the kernel chose and release it.
//!
//! # The race
//!
//! Between dropping our socket and the proxy binding the port, another
//! process (or another test running in parallel) may take it. The kernel
//! hands out ephemeral ports round-robin, so an immediate reuse is unlikely but
//! possible. If it happens, the proxy fails to start and
//! [`super::ProxyProcess::wait_ready`] reports the bind error from its stderr,
//! so the symptom is a clear failure, never a hang. Servers owned by the test
//! itself (upstreams) never need this: they bind `:0` and keep the socket.

use std::net::{SocketAddr, TcpListener};

/// Returns a loopback TCP port that was free a moment ago (see the module
/// docs for the race).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// Returns `n` distinct free loopback ports. All sockets are held until every
/// port is chosen, so the ports cannot collide with each other.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Returns `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

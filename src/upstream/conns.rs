//! Upstream connections a pool has opened, so that a drain can end them.
//!
//! Pingora offers no API to cancel a request or an upgraded tunnel in progress
//! (pingora issue #571), nor to evict idle connections of one server from its
//! keep-alive pool. greenlight gets both from the one thing Pingora does hand
//! out: the socket of each upstream connection (`connected_to_upstream`). At a
//! drain deadline, `shutdown(2)` on an in-flight request's upstream socket makes
//! Pingora see the upstream end the stream — a plain request fails over the
//! normal error path, and an upgraded WebSocket reaches its end, where the
//! proxy appends a close frame 1001 for the client. After a drain, the same
//! call on idle pooled sockets sends the app its FIN (so an app waiting in
//! `server.close()` can exit) and Pingora's idle watcher drops them.
//!
//! Soundness: a descriptor number can be reused once Pingora closes it. Every
//! entry therefore records the connection's local and peer address, and a
//! socket is only shut down if the descriptor *still* has exactly those two
//! addresses — the local ephemeral port makes the pair unique to that one
//! connection. A unix socket connection has no local name; its socket's
//! inode number (unique among open sockets) stands in for the local address,
//! and its peer is the server's socket path. Nothing is ever closed (the descriptor stays Pingora's); only
//! `shutdown` is called, which cannot invalidate anyone's descriptor.
//!
//! A WebSocket that greenlight's own tunnel task carries (`proxy/tunnel.rs`)
//! is ended by that task instead, when it has said so ([`KillSwitch::close_myself`]):
//! a kill wakes it, and it sends the app a Close frame 1001 before the FIN (a
//! `shutdown(2)` would send the FIN first). A second kill of the same request
//! (the shutdown timeout after a drain) shuts the socket down regardless.

use super::addr::ServerAddr;
use nix::sys::socket::{Shutdown, SockaddrStorage, getpeername, getsockname, shutdown};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One upstream connection, identified beyond its descriptor number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnId {
    /// Descriptor (owned by Pingora).
    pub fd: RawFd,
    /// Our side.
    pub local: Local,
    /// The server's address (a unix socket's path).
    pub peer: ServerAddr,
}

/// Our end of an upstream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Local {
    /// A TCP connection's local address (the ephemeral port makes it unique).
    Inet(SocketAddr),
    /// A unix socket connection: the socket's inode number.
    Unix(u64),
}

impl ConnId {
    /// Reads the addresses of a connected socket.
    pub fn of_fd(fd: RawFd) -> Option<ConnId> {
        let peer = getpeername::<SockaddrStorage>(fd).ok()?;
        if let Some(path) = peer.as_unix_addr().and_then(|u| u.path()) {
            let ino = socket_inode(fd)?;
            return Some(ConnId {
                fd,
                local: Local::Unix(ino),
                peer: ServerAddr::Unix(path.to_path_buf()),
            });
        }
        Some(ConnId {
            fd,
            local: Local::Inet(to_std(getsockname::<SockaddrStorage>(fd).ok()?)?),
            peer: ServerAddr::Inet(to_std(peer)?),
        })
    }

    /// True while `fd` is still this very connection.
    fn still_valid(&self) -> bool {
        ConnId::of_fd(self.fd).is_some_and(|now| now == *self)
    }

    /// Shuts the connection down both ways if it is still the same socket.
    pub fn shutdown(&self) -> bool {
        self.still_valid() && shutdown(self.fd, Shutdown::Both).is_ok()
    }
}

/// The inode number of socket `fd`, from `/proc/self/fd` (`socket:[N]`):
/// `fstat` would need an unsafe borrow of a descriptor Pingora owns.
fn socket_inode(fd: RawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn to_std(s: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    s.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

/// Set on a request whose upstream connection a drain deadline ended.
pub type DrainKill = Arc<KillSwitch>;

/// How a drain deadline ends one request's upstream connection.
#[derive(Debug, Default)]
pub struct KillSwitch {
    killed: AtomicBool,
    /// The tunnel task ends the connection itself when woken.
    self_closing: AtomicBool,
    wake: tokio::sync::Notify,
}

impl KillSwitch {
    /// True once a drain deadline ended (or is ending) this connection.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Says that the caller ends the connection itself when [`woken`]
    /// resolves; returns true if a kill came first (its socket is shut).
    ///
    /// [`woken`]: KillSwitch::woken
    pub fn close_myself(&self) -> bool {
        self.self_closing.store(true, Ordering::SeqCst);
        self.is_killed()
    }

    /// Resolves when a kill asks a [`close_myself`](Self::close_myself)
    /// caller to end the connection.
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

#[derive(Debug, Default)]
struct Table {
    /// Guard id -> its current upstream connection and kill flag.
    inflight: HashMap<u64, (ConnId, DrainKill), IdHash>,
    /// Guard ids whose connection is an upgraded tunnel (WebSocket).
    tunnels: std::collections::HashSet<u64, IdHash>,
    /// Every connection opened for this pool (idle ones included).
    known: HashMap<(Local, ServerAddr), RawFd>,
}

/// The connection registry of one pool.
#[derive(Debug, Default)]
pub struct ConnRegistry {
    table: Mutex<Table>,
    /// Woken whenever a request lets go of its connection, while someone
    /// watches (`watchers` > 0): the request path pays for it only then.
    released: tokio::sync::Notify,
    watchers: AtomicUsize,
}

/// Keeps [`ConnRegistry::changed`] notifications flowing while it lives.
pub struct WatchGuard<'a>(&'a ConnRegistry);

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

const PRUNE_AT: usize = 4096;

/// Hashes a guard id (a counter) with one multiplication: SipHash, the
/// default, is built to resist chosen keys, which these are not, and costs
/// more than the rest of the table work on the request path.
#[derive(Default, Clone, Copy)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits too.
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Flags each request as ended by a drain (before its socket goes, so the
/// proxy sees the flag when the EOF arrives) and shuts the socket down.
fn kill(victims: Vec<(ConnId, DrainKill)>) -> usize {
    victims
        .into_iter()
        .filter(|(c, switch)| {
            // SeqCst pairs with `close_myself`: either the tunnel sees the
            // flag, or this sees that the tunnel closes itself.
            let again = switch.killed.swap(true, Ordering::SeqCst);
            if !again && switch.self_closing.load(Ordering::SeqCst) {
                // A permit is kept if the task is not waiting right now.
                switch.wake.notify_one();
                return true;
            }
            c.shutdown()
        })
        .count()
}

impl ConnRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that request `guard` now uses connection `conn` (`reused`: a
    /// pooled connection, already known).
    pub fn attach(&self, guard: u64, conn: ConnId, reused: bool) -> DrainKill {
        let kill = DrainKill::default();
        let mut t = self.lock();
        if !reused {
            t.known.insert((conn.local, conn.peer.clone()), conn.fd);
        }
        if !reused && t.known.len() > PRUNE_AT {
            t.known.retain(|(local, peer), fd| {
                ConnId::of_fd(*fd).is_some_and(|c| c.local == *local && c.peer == *peer)
            });
        }
        t.inflight.insert(guard, (conn, kill.clone()));
        kill
    }

    /// Forgets request `guard` (it finished).
    pub fn detach(&self, guard: u64) {
        {
            let mut t = self.lock();
            t.inflight.remove(&guard);
            if !t.tunnels.is_empty() {
                t.tunnels.remove(&guard);
            }
        }
        if self.watchers.load(Ordering::SeqCst) > 0 {
            self.released.notify_waiters();
        }
    }

    /// Turns on [`changed`](Self::changed) notifications while the guard lives.
    pub fn watch(&self) -> WatchGuard<'_> {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        WatchGuard(self)
    }

    /// Resolves at the next [`detach`](Self::detach) after this call, while a
    /// [`watch`](Self::watch) guard lives (create it before checking the
    /// condition you wait for).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// Requests in flight on connections to any of `servers`.
    pub fn inflight_to(&self, servers: &[ServerAddr]) -> usize {
        self.lock()
            .inflight
            .values()
            .filter(|(c, _)| servers.contains(&c.peer))
            .count()
    }

    /// Ends the in-flight requests to any of `servers`; returns how many.
    pub fn kill_inflight_to(&self, servers: &[ServerAddr]) -> usize {
        let victims: Vec<(ConnId, DrainKill)> = self
            .lock()
            .inflight
            .values()
            .filter(|(c, _)| servers.contains(&c.peer))
            .cloned()
            .collect();
        kill(victims)
    }

    /// Shuts down the idle known connections to any of `servers` (servers a
    /// reload removed, once nothing is in flight on them); returns how many.
    pub fn close_idle_to(&self, servers: &[ServerAddr]) -> usize {
        let idle: Vec<ConnId> = {
            let mut t = self.lock();
            let busy: Vec<(Local, ServerAddr)> = t
                .inflight
                .values()
                .map(|(c, _)| (c.local, c.peer.clone()))
                .collect();
            let picked: Vec<ConnId> = t
                .known
                .iter()
                .filter(|(k, _)| servers.contains(&k.1) && !busy.contains(k))
                .map(|((local, peer), fd)| ConnId {
                    fd: *fd,
                    local: *local,
                    peer: peer.clone(),
                })
                .collect();
            for c in &picked {
                t.known.remove(&(c.local, c.peer.clone()));
            }
            picked
        };
        idle.into_iter().filter(ConnId::shutdown).count()
    }

    /// Marks request `guard`'s connection as an upgraded tunnel.
    pub fn mark_tunnel(&self, guard: u64) {
        self.lock().tunnels.insert(guard);
    }

    /// Ends every upgraded tunnel (WebSocket) of this pool; returns how many.
    pub fn kill_tunnels(&self) -> usize {
        let victims: Vec<(ConnId, DrainKill)> = {
            let t = self.lock();
            t.tunnels
                .iter()
                .filter_map(|id| t.inflight.get(id).cloned())
                .collect()
        };
        kill(victims)
    }

    /// Ends every in-flight request's upstream connection; returns how many.
    pub fn kill_inflight(&self) -> usize {
        let victims: Vec<(ConnId, DrainKill)> = self.lock().inflight.values().cloned().collect();
        kill(victims)
    }

    /// Shuts down every remaining known connection (the pool is drained, so
    /// these are idle keep-alive sockets); returns how many.
    pub fn close_idle(&self) -> usize {
        let known: Vec<((Local, ServerAddr), RawFd)> = self.lock().known.drain().collect();
        known
            .into_iter()
            .filter(|((local, peer), fd)| {
                ConnId {
                    fd: *fd,
                    local: *local,
                    peer: peer.clone(),
                }
                .shutdown()
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn shutdown_reaches_the_peer_and_a_reused_number_is_left_alone() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(server.local_addr().expect("addr")).expect("c");
        let (mut accepted, _) = server.accept().expect("accept");
        let id = ConnId::of_fd(client.as_raw_fd()).expect("id");
        let reg = ConnRegistry::default();
        let kill = reg.attach(1, id.clone(), false);
        assert_eq!(reg.kill_inflight(), 1);
        assert!(kill.is_killed());
        let mut buf = [0u8; 1];
        assert_eq!(accepted.read(&mut buf).expect("eof"), 0, "peer saw FIN");

        // A stale entry whose addresses no longer match is not touched.
        let other = std::net::TcpStream::connect(server.local_addr().expect("addr")).expect("c2");
        let stale = ConnId {
            fd: other.as_raw_fd(),
            local: id.local,
            peer: id.peer.clone(),
        };
        assert!(!stale.shutdown());
    }

    #[test]
    fn unix_socket_connections_are_told_apart_by_inode() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("app.sock");
        let server = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let client = std::os::unix::net::UnixStream::connect(&path).expect("c");
        let (mut accepted, _) = server.accept().expect("accept");
        let id = ConnId::of_fd(client.as_raw_fd()).expect("id");
        assert_eq!(id.peer, ServerAddr::Unix(path.clone()));
        let other = std::os::unix::net::UnixStream::connect(&path).expect("c2");
        let (mut accepted2, _) = server.accept().expect("accept2");
        let other_id = ConnId::of_fd(other.as_raw_fd()).expect("id2");
        assert_ne!(id.local, other_id.local, "two connections, two inodes");
        // The entry of `client` used with `other`'s descriptor number: left alone.
        let stale = ConnId {
            fd: other.as_raw_fd(),
            ..id.clone()
        };
        assert!(!stale.shutdown());
        accepted2
            .set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .expect("timeout");
        let mut buf = [0u8; 1];
        assert!(accepted2.read(&mut buf).is_err(), "still open");
        let reg = ConnRegistry::default();
        reg.attach(1, id, false);
        assert_eq!(reg.inflight_to(&[ServerAddr::Unix(path)]), 1);
        assert_eq!(reg.kill_inflight(), 1);
        assert_eq!(accepted.read(&mut buf).expect("eof"), 0, "peer saw FIN");
    }

    #[tokio::test]
    async fn a_tunnel_that_closes_itself_is_woken_and_a_second_kill_shuts_its_socket() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(server.local_addr().expect("addr")).expect("c");
        let (mut accepted, _) = server.accept().expect("accept");
        accepted
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let id = ConnId::of_fd(client.as_raw_fd()).expect("id");
        let reg = ConnRegistry::default();
        let switch = reg.attach(1, id, false);
        assert!(!switch.close_myself(), "not killed yet");
        assert_eq!(reg.kill_inflight(), 1);
        assert!(switch.is_killed());
        // The permit waits for the task: woken resolves at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), switch.woken())
            .await
            .expect("woken");
        let mut buf = [0u8; 1];
        assert!(
            accepted.read(&mut buf).is_err(),
            "no FIN: the socket is the task's to end"
        );
        assert_eq!(reg.kill_inflight(), 1);
        assert_eq!(
            accepted.read(&mut buf).expect("eof"),
            0,
            "the second kill sent the FIN"
        );
    }
}

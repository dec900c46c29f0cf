//! Where an upstream server listens: an IP socket address, or the path of a
//! unix domain socket (`unix:/run/app.sock`, the shape of a gunicorn or
//! uwsgi app behind nginx).
//!
//! Parsed once by `config::validate_upstream`; everything that keys on a
//! server (health, drains, the connection registry, balancing) compares
//! these. Nothing here does I/O but [`ServerAddr::connect`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The prefix that marks a unix socket server, in the config and in
/// `$upstream_addr` (nginx writes `unix:/path` too).
pub const UNIX_PREFIX: &str = "unix:";

/// An upstream server's address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    /// `ip:port`.
    Inet(SocketAddr),
    /// An absolute path to a unix stream socket.
    Unix(PathBuf),
}

impl ServerAddr {
    /// The unix socket path, if this is one.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            ServerAddr::Unix(p) => Some(p),
            ServerAddr::Inet(_) => None,
        }
    }

    /// A stand-in IP address for the consistent-hash ring, which places
    /// nodes by socket address (`pingora-ketama`). A unix socket gets a
    /// unique-local IPv6 address derived from its path with FNV-1a: stable
    /// across restarts and machines (a fleet hashes a key to the same
    /// server), unlike std's randomly keyed hasher.
    pub fn ring_addr(&self) -> SocketAddr {
        match self {
            ServerAddr::Inet(a) => *a,
            ServerAddr::Unix(p) => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in p.as_os_str().as_encoded_bytes() {
                    h ^= u64::from(*b);
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
                let ip = std::net::Ipv6Addr::from((0xfd00_u128 << 112) | u128::from(h));
                SocketAddr::from((ip, 0))
            }
        }
    }
}

impl From<SocketAddr> for ServerAddr {
    fn from(a: SocketAddr) -> ServerAddr {
        ServerAddr::Inet(a)
    }
}

/// `ip:port`, or `unix:/path` as nginx writes `$upstream_addr`.
impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Inet(a) => write!(f, "{a}"),
            ServerAddr::Unix(p) => write!(f, "{UNIX_PREFIX}{}", p.display()),
        }
    }
}

/// A peer's address for a log line: `ip:port`, or `unix:/path` (Pingora
/// prints a unix peer as a bare path).
pub fn describe(addr: &pingora::protocols::l4::socket::SocketAddr) -> String {
    match addr.as_unix().and_then(|u| u.as_pathname()) {
        Some(p) => format!("{UNIX_PREFIX}{}", p.display()),
        None => addr.to_string(),
    }
}

/// A connection opened by [`ServerAddr::connect`].
#[derive(Debug)]
pub enum Stream {
    /// To an `ip:port`.
    Tcp(tokio::net::TcpStream),
    /// To a unix socket.
    Unix(tokio::net::UnixStream),
}

impl ServerAddr {
    /// Connects (health checks, and `switch`'s look before it moves traffic);
    /// requests go through Pingora's own connectors instead.
    pub async fn connect(&self) -> std::io::Result<Stream> {
        match self {
            ServerAddr::Inet(a) => tokio::net::TcpStream::connect(a).await.map(Stream::Tcp),
            ServerAddr::Unix(p) => tokio::net::UnixStream::connect(p).await.map(Stream::Unix),
        }
    }
}

/// Why a `unix:` server address is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum UnixAddrError {
    /// `unix:` with nothing after it, or a relative path.
    NotAbsolute,
    /// Longer than a `sockaddr_un` can hold (107 bytes on Linux).
    TooLong,
}

/// Parses the text after `unix:`. Only the syntax is checked: the socket need
/// not exist yet (the app may start after greenlight, or be restarted by
/// systemd while greenlight keeps serving; a missing socket is a 502 at
/// request time and a failed health check, like a refused TCP connect).
pub fn parse_unix(path: &str) -> Result<ServerAddr, UnixAddrError> {
    if !path.starts_with('/') {
        return Err(UnixAddrError::NotAbsolute);
    }
    // sun_path is 108 bytes including the terminating NUL.
    if path.len() > 107 {
        return Err(UnixAddrError::TooLong);
    }
    Ok(ServerAddr::Unix(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_paths_parse_and_print_like_nginx() {
        let a = parse_unix("/run/app.sock").expect("absolute");
        assert_eq!(a.to_string(), "unix:/run/app.sock");
        assert_eq!(a.unix_path(), Some(Path::new("/run/app.sock")));
        assert_eq!(parse_unix("run/app.sock"), Err(UnixAddrError::NotAbsolute));
        assert_eq!(parse_unix(""), Err(UnixAddrError::NotAbsolute));
        let long = format!("/{}", "a".repeat(107));
        assert_eq!(parse_unix(&long), Err(UnixAddrError::TooLong));
        let inet = ServerAddr::from("127.0.0.1:80".parse::<SocketAddr>().expect("addr"));
        assert_eq!(inet.to_string(), "127.0.0.1:80");
    }

    #[test]
    fn ring_addresses_are_stable_and_distinct() {
        let a = parse_unix("/run/a.sock").expect("a").ring_addr();
        let b = parse_unix("/run/b.sock").expect("b").ring_addr();
        assert_ne!(a, b);
        assert_eq!(a, parse_unix("/run/a.sock").expect("a").ring_addr());
        // Fixed value: a change would move every hash key of unix servers.
        assert_eq!(a.to_string(), "[fd00::ea4b:a7cb:7c19:9087]:0");
    }
}

//! PROXY protocol v1 (text) and v2 (binary) on a `proxy_protocol: true`
//! listener: the load balancer in front (HAProxy, AWS NLB, ...) starts every
//! connection with a header naming the client's address; greenlight reads
//! it before TLS and HTTP and makes its source address the connection's peer
//! in Pingora's socket digest, so everything above (the trusted-proxy check,
//! `client_ip`, `X-Forwarded-For`, logs) sees the client, not the balancer.
//!
//! Framing is done here (the signature, v1's CRLF within 107 bytes, v2's
//! length field), parsing by the `ppp` crate on the complete header. Bytes
//! read past the header are put back for TLS or HTTP. A connection without a
//! valid header is closed (the listener's contract says one always comes;
//! believing a client that does not send one would let it pick its address):
//! logged at debug and counted in `greenlight_proxy_protocol_errors_total`.
//! A v2 `LOCAL` header (the balancer's own health check) and v1 `UNKNOWN`
//! keep the socket's address, as the specification says.

use crate::metrics::{Metrics, ProxyProtocolError};
use pingora::protocols::GetSocketDigest;
use pingora::protocols::SocketDigest;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The text of the error that ends a connection without a valid header (the
/// TLS handshake counter skips it: it is counted here).
pub const REFUSED: &str = "refused a connection without a valid PROXY protocol header";

/// The v2 signature (12 bytes).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// A v1 header's longest form, CRLF included.
const V1_MAX: usize = 107;
/// A v2 header's fixed part: signature, version/command, family, length.
const V2_FIXED: usize = 16;

/// Reads the PROXY header of a new connection within `limit` and makes its
/// source the connection's peer; an error ends the connection.
pub async fn accept(
    stream: &mut Stream,
    listener: &str,
    limit: Duration,
    metrics: &Metrics,
) -> pingora::Result<()> {
    let outcome = match tokio::time::timeout(limit, read_header(stream)).await {
        Ok(r) => r,
        Err(_) => Err(Refusal::Incomplete("no complete header in time".into())),
    };
    match outcome {
        Ok(source) => {
            if let Some(source) = source {
                set_peer(stream, source);
            }
            Ok(())
        }
        Err(refusal) => {
            let peer = stream
                .get_socket_digest()
                .and_then(|d| d.peer_addr().map(|a| a.to_string()))
                .unwrap_or_else(|| "-".into());
            log::debug!("listener '{listener}': {REFUSED} from {peer}: {refusal}");
            if let Some(kind) = refusal.kind() {
                metrics.proxy_protocol_refused(listener, kind);
            }
            pingora::Error::e_explain(pingora::ErrorType::HandshakeError, REFUSED)
        }
    }
}

/// Why a connection was refused.
#[derive(Debug)]
enum Refusal {
    /// Closed before its first byte (a TCP health check): not counted.
    Silent,
    /// The first bytes are not a PROXY signature.
    Missing,
    /// A signature, then a header that is invalid or too long.
    Malformed(String),
    /// Closed, failed or too slow before the header ended.
    Incomplete(String),
}

impl Refusal {
    fn kind(&self) -> Option<ProxyProtocolError> {
        match self {
            Refusal::Silent => None,
            Refusal::Missing => Some(ProxyProtocolError::Missing),
            Refusal::Malformed(_) => Some(ProxyProtocolError::Malformed),
            Refusal::Incomplete(_) => Some(ProxyProtocolError::Incomplete),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Silent => f.write_str("closed before sending anything"),
            Refusal::Missing => f.write_str("the connection does not start with a PROXY header"),
            Refusal::Malformed(why) => write!(f, "malformed header: {why}"),
            Refusal::Incomplete(why) => write!(f, "incomplete header: {why}"),
        }
    }
}

/// Reads one header; `Ok(None)` for a header that names no client (v2
/// LOCAL, v1 UNKNOWN, a non-IP family). Extra bytes are put back.
async fn read_header(stream: &mut Stream) -> Result<Option<SocketAddr>, Refusal> {
    // Most headers arrive in one read with the start of the request.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| Refusal::Incomplete(e.to_string()))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                Refusal::Silent
            } else {
                Refusal::Incomplete("the connection closed".into())
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = header_length(&buf)? {
            let source = parse(&buf[..len])?;
            stream.rewind(&buf[len..]);
            return Ok(source);
        }
    }
}

/// The whole header's length once `buf` holds it; `None` while more bytes
/// are needed; an error as soon as `buf` cannot start a valid header.
fn header_length(buf: &[u8]) -> Result<Option<usize>, Refusal> {
    let prefix_of = |sig: &[u8]| buf[..buf.len().min(sig.len())] == sig[..buf.len().min(sig.len())];
    if prefix_of(V2_SIGNATURE) {
        if buf.len() < V2_FIXED {
            return Ok(None);
        }
        let len = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        return Ok((buf.len() >= len).then_some(len));
    }
    if !prefix_of(V1_PREFIX) {
        return Err(Refusal::Missing);
    }
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(at) if at + 2 <= V1_MAX => Ok(Some(at + 2)),
        Some(_) => Err(Refusal::Malformed(
            "a v1 header is longer than 107 bytes".into(),
        )),
        None if buf.len() >= V1_MAX => Err(Refusal::Malformed(
            "no CRLF within the 107 bytes of a v1 header".into(),
        )),
        None => Ok(None),
    }
}

/// Parses one complete header (`header_length` framed it).
fn parse(header: &[u8]) -> Result<Option<SocketAddr>, Refusal> {
    if header.starts_with(V2_SIGNATURE) {
        use ppp::v2::{Addresses, Command};
        let h = ppp::v2::Header::try_from(header).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if h.command == Command::Local {
            return Ok(None);
        }
        return Ok(match h.addresses {
            Addresses::IPv4(a) => Some((a.source_address, a.source_port).into()),
            Addresses::IPv6(a) => Some((a.source_address, a.source_port).into()),
            Addresses::Unspecified | Addresses::Unix(_) => None,
        });
    }
    use ppp::v1::Addresses;
    let h = ppp::v1::Header::try_from(header).map_err(|e| Refusal::Malformed(e.to_string()))?;
    Ok(match h.addresses {
        Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
        Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
        Addresses::Unknown => None,
    })
}

/// Makes `source` the connection's peer for everything above: Pingora reads
/// a session's client address from the socket digest.
fn set_peer(stream: &mut Stream, source: SocketAddr) {
    let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
    let _ = digest.peer_addr.set(Some(PingoraAddr::Inet(source)));
    if let Some(local) = stream
        .get_socket_digest()
        .and_then(|d| d.local_addr().cloned())
    {
        // Keep the cached local address: the listener lookups read it.
        let _ = digest.local_addr.set(Some(local));
    }
    stream.set_socket_digest(digest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h
    }

    fn framed(buf: &[u8]) -> Result<Option<SocketAddr>, Refusal> {
        let len = header_length(buf)?.expect("complete");
        parse(&buf[..len])
    }

    #[test]
    fn v1_headers_name_the_source() {
        let h = b"PROXY TCP4 198.51.100.20 10.0.0.1 5555 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(header_length(h).unwrap(), Some(44));
        assert_eq!(
            framed(h).unwrap(),
            Some("198.51.100.20:5555".parse().unwrap())
        );
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n";
        assert_eq!(
            framed(h).unwrap(),
            Some("[2001:db8::7]:5555".parse().unwrap())
        );
        assert_eq!(framed(b"PROXY UNKNOWN\r\n").unwrap(), None);
    }

    #[test]
    fn v2_headers_name_the_source_and_local_names_none() {
        let mut a = vec![198, 51, 100, 20, 10, 0, 0, 1];
        a.extend_from_slice(&5555u16.to_be_bytes());
        a.extend_from_slice(&443u16.to_be_bytes());
        let mut h = v2(1, 0x11, &a);
        h.extend_from_slice(b"\x16\x03\x01"); // the ClientHello that follows
        assert_eq!(header_length(&h).unwrap(), Some(28));
        assert_eq!(
            framed(&h).unwrap(),
            Some("198.51.100.20:5555".parse().unwrap())
        );
        assert_eq!(framed(&v2(0, 0x00, &[])).unwrap(), None, "LOCAL");
        // A TLV after the addresses is part of the header.
        let mut with_tlv = a.clone();
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x02, 0xab, 0xcd]);
        let h = v2(1, 0x11, &with_tlv);
        assert_eq!(header_length(&h).unwrap(), Some(33));
        assert_eq!(
            framed(&h).unwrap(),
            Some("198.51.100.20:5555".parse().unwrap())
        );
    }

    #[test]
    fn partial_headers_wait_for_more() {
        assert_eq!(header_length(b"PRO").unwrap(), None);
        assert_eq!(header_length(b"PROXY TCP4 1.2.3.4").unwrap(), None);
        assert_eq!(header_length(b"\r\n\r\n\0\r").unwrap(), None);
        let h = v2(1, 0x11, &[0; 12]);
        assert_eq!(header_length(&h[..20]).unwrap(), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small xorshift generator: deterministic, no extra dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: [&[u8]; 3] = [V2_SIGNATURE, b"PROXY TCP4 ", b"PROXY TCP6 ::1 "];
        for i in 0..20_000 {
            let mut buf = seeds[i % 3].to_vec();
            let extra = (next() % 64) as usize;
            buf.extend((0..extra).map(|_| {
                let r = next();
                // Mostly header-like bytes, sometimes anything.
                if r % 4 == 0 {
                    r as u8
                } else {
                    b"0123456789.: \r\n\x21\x11"[(r % 16) as usize]
                }
            }));
            if let Ok(Some(len)) = header_length(&buf) {
                let _ = parse(&buf[..len]);
            }
        }
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(matches!(
            header_length(b"GET / HTTP/1.1\r\n"),
            Err(Refusal::Missing)
        ));
        assert!(matches!(
            header_length(b"\x16\x03\x01\x02"),
            Err(Refusal::Missing)
        ));
        assert!(matches!(header_length(&[b'P'; 3]), Err(Refusal::Missing)));
        let long = [b"PROXY ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(header_length(&long), Err(Refusal::Malformed(_))));
        assert!(matches!(
            framed(b"PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            framed(b"PROXY GARBAGE\r\n"),
            Err(Refusal::Malformed(_))
        ));
        // Version 1 in the binary form, or an unknown command.
        let mut bad = v2(1, 0x11, &[0; 12]);
        bad[12] = 0x11;
        assert!(matches!(framed(&bad), Err(Refusal::Malformed(_))));
        let mut bad = v2(1, 0x11, &[0; 12]);
        bad[12] = 0x2f;
        assert!(matches!(framed(&bad), Err(Refusal::Malformed(_))));
        // Addresses shorter than the family needs.
        assert!(matches!(
            framed(&v2(1, 0x11, &[0; 4])),
            Err(Refusal::Malformed(_))
        ));
    }
}

//! What one access-log line says: [`Entry`], and the [`request_id`] generator.
//!
//! Owns: the plain data a request hands to the access log, and request ids.
//! Must not touch: formatting (see `format`), the writer thread, any I/O.
//! Data flow: the proxy fills an `Entry` in its `logging` hook from the
//! request context and moves it into `AccessLog::log`; the request id is made
//! once per request (`request_id()`), early, so headers and logs agree.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What an upgraded WebSocket tunnel did, once it has closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebSocketStats {
    /// How long the tunnel was open (after the 101).
    pub duration: Duration,
    /// Bytes from the client to the upstream.
    pub bytes_in: u64,
    /// Bytes from the upstream to the client.
    pub bytes_out: u64,
}

/// One finished request. Missing values are `None` (logged as `-` or `null`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When the request started.
    pub time: SystemTime,
    /// The client's address (`$remote_addr`).
    pub client_ip: Option<IpAddr>,
    /// Request method, as received.
    pub method: String,
    /// Path with query, as received.
    pub path: String,
    /// `"HTTP/1.0"`, `"HTTP/1.1"` or `"HTTP/2.0"`.
    pub protocol: &'static str,
    /// Status sent; 0 if no response was sent (logged as `000`, like nginx).
    pub status: u16,
    /// Response body bytes sent (`$body_bytes_sent`).
    pub bytes_sent: u64,
    /// `Referer` header.
    pub referer: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Host the request named (authority or `Host`).
    pub host: Option<String>,
    /// Site it was routed to (config name).
    pub site: Option<String>,
    /// Upstream (config name).
    pub upstream: Option<String>,
    /// Pool (config name).
    pub pool: Option<String>,
    /// Server label (as written in the config) of the last attempt.
    pub server: Option<String>,
    /// From request start to the end of the response.
    pub duration: Duration,
    /// From the upstream connection to the end of its response, if reached.
    pub upstream_duration: Option<Duration>,
    /// This request's id (see [`request_id`]).
    pub request_id: String,
    /// Set for requests that became WebSocket tunnels.
    pub websocket: Option<WebSocketStats>,
}

impl Default for Entry {
    /// An empty entry at the Unix epoch, for `Entry { .., ..Default::default() }`.
    fn default() -> Entry {
        Entry {
            time: UNIX_EPOCH,
            client_ip: None,
            method: String::new(),
            path: String::new(),
            protocol: "HTTP/1.1",
            status: 0,
            bytes_sent: 0,
            referer: None,
            user_agent: None,
            host: None,
            site: None,
            upstream: None,
            pool: None,
            server: None,
            duration: Duration::ZERO,
            upstream_duration: None,
            request_id: String::new(),
            websocket: None,
        }
    }
}

/// SplitMix64's finaliser: a bijection on `u64` that scatters bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // RandomState is keyed from the OS's randomness once per process.
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.finish()
    })
}

/// A new request id: 16 lowercase hex digits, unique within this process run
/// (a bijective mix of a per-process random seed plus a counter) and unlikely
/// to repeat across runs. Lock-free; one atomic add per call.
pub fn request_id() -> String {
    String::from_utf8(request_id_digits().to_vec()).unwrap_or_default()
}

/// [`request_id`] as a header value (made once, shared by the upstream
/// request and the access log).
pub fn request_id_value() -> http::HeaderValue {
    let digits = request_id_digits();
    http::HeaderValue::from_bytes(&digits).unwrap_or(http::HeaderValue::from_static("-"))
}

/// A new id's 16 lowercase hex digits.
fn request_id_digits() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // n * odd constant and + seed are bijections mod 2^64, and so is `mix`.
    let id = mix(seed().wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    // By hand: `format!` costs more than the rest of this function, and
    // collecting `char`s pushes each through UTF-8 encoding (callgrind:
    // ~330 instructions); the bytes are checked once instead.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((id >> ((15 - i) * 4)) & 0xF) as usize];
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn request_ids_are_16_hex_and_unique() {
        let ids: HashSet<String> = (0..100_000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|i| {
            i.len() == 16
                && i.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
    }
}

//! The real client IP: which peers may tell greenlight who the client is, in
//! which header, and the walk that finds the client in that header.
//!
//! Compiled once at load from `trusted_proxies` and `client_ip_from` (top
//! level, or a site's own); executed once per request at the start of
//! `request_filter`, whose result every later use reads (`X-Forwarded-For`,
//! the access log, `$remote_addr`). The walk is nginx's `realip` module with
//! `real_ip_recursive on`: a header is believed only when the connection's
//! peer is trusted; its addresses are then read right to left, trusted ones
//! skipped, and the first untrusted one is the client; when all are trusted,
//! the leftmost is. An entry that is not an address ends the walk: the last
//! address read (or the peer) is the client, since nobody trusted vouched for
//! anything left of it (and what lies left is never read, as in nginx: a
//! field need not be text as a whole, only each entry read). Addresses are
//! compared and reported in canonical form (`::ffff:192.0.2.1` is
//! `192.0.2.1`). No I/O, no allocation on the request path.

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Trusted networks as (network, mask), per address family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Masks {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// `client_ip_from`'s default.
pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which peers are believed and which header they name the client in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIpRule {
    /// Networks whose connections may name the client (`trusted_proxies`).
    trusted: Vec<IpNet>,
    /// The same as (network, mask) pairs per family: one `and` and one
    /// compare per network, where `IpNet::contains` works its mask out again
    /// on every call.
    masks: Masks,
    /// The header they name it in (`client_ip_from`).
    header: HeaderName,
}

impl Default for ClientIpRule {
    /// Nobody is trusted: the client is always the connection's peer.
    fn default() -> Self {
        ClientIpRule::new(Vec::new(), DEFAULT_HEADER)
    }
}

impl ClientIpRule {
    /// A rule trusting `trusted` to name the client in `header`.
    pub fn new(trusted: Vec<IpNet>, header: HeaderName) -> ClientIpRule {
        let mut masks = Masks::default();
        for n in &trusted {
            match n {
                IpNet::V4(v4) => {
                    let mask = u32::from(v4.netmask());
                    masks.v4.push((u32::from(v4.network()) & mask, mask));
                }
                IpNet::V6(v6) => {
                    let mask = u128::from(v6.netmask());
                    masks.v6.push((u128::from(v6.network()) & mask, mask));
                }
            }
        }
        ClientIpRule {
            trusted,
            masks,
            header,
        }
    }

    /// The header the client IP is read from.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The trusted networks, as configured.
    pub fn trusted(&self) -> &[IpNet] {
        &self.trusted
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let ip = u32::from(v4);
                self.masks.v4.iter().any(|&(net, mask)| ip & mask == net)
            }
            IpAddr::V6(v6) => {
                let ip = u128::from(v6);
                self.masks.v6.iter().any(|&(net, mask)| ip & mask == net)
            }
        }
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.resolve_read(peer, headers).0
    }

    /// [`resolve`](Self::resolve), with the header's field when the walk
    /// read it and it was the only one: `X-Forwarded-For` is appended to
    /// later (`proxy::headers::set_forwarded`), and a second lookup of a
    /// custom name in the header map costs about as much as this walk.
    pub fn resolve_read<'h>(
        &self,
        peer: IpAddr,
        headers: &'h HeaderMap,
    ) -> (IpAddr, Option<&'h http::HeaderValue>) {
        let peer = peer.to_canonical();
        // The common case (no trusted proxies, or a direct client) reads no header.
        if !self.is_trusted(peer) {
            return (peer, None);
        }
        let fields = headers.get_all(&self.header);
        let only = match fields.iter().size_hint() {
            (1, Some(1)) => fields.iter().next(),
            _ => None,
        };
        (self.walk(peer, fields.iter()), only)
    }

    /// The client named by the list in `fields`, from a trusted `peer`.
    fn walk(&self, peer: IpAddr, fields: http::header::ValueIter<'_, http::HeaderValue>) -> IpAddr {
        let mut client = peer;
        // Several fields of one header are one list, in order (RFC 9110 §5.3).
        for field in fields.rev() {
            // Entries right to left, over the bytes: no iterator adapters,
            // no text check of the whole field first (an IPv4 entry is
            // read by hand, [`last_ipv4`], and refuses anything but digits
            // and dots; other entries are checked as text alone).
            let mut rest = field.as_bytes();
            loop {
                // The common entry, an IPv4 address, in one backward pass;
                // else the last entry found by a byte search (`rfind(',')`
                // goes through the generic char searcher, which costs more
                // than this whole entry) and parsed in full.
                let (ip, left) = match last_ipv4(rest) {
                    Some((ip, left)) => (Some(ip), left),
                    None => {
                        let (left, entry) = match rest.iter().rposition(|&b| b == b',') {
                            Some(i) => (rest.get(..i), rest.get(i + 1..).unwrap_or_default()),
                            None => (None, rest),
                        };
                        let entry = trim_ows(entry);
                        if entry.is_empty() {
                            (None, left)
                        } else {
                            // An entry that is not visible ASCII text is not believed.
                            let Some(ip) = std::str::from_utf8(entry)
                                .ok()
                                .filter(|t| t.bytes().all(|b| b.is_ascii_graphic()))
                                .and_then(parse_entry)
                            else {
                                return client;
                            };
                            (Some(ip), left)
                        }
                    }
                };
                if let Some(ip) = ip {
                    client = ip;
                    if !self.is_trusted(ip) {
                        return ip;
                    }
                }
                match left {
                    Some(l) => rest = l,
                    None => break,
                }
            }
        }
        client
    }
}

/// `s` without the spaces and tabs around it (optional white space, RFC
/// 9110 §5.6.3).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The last entry of the list `rest` when it is a dotted-quad IPv4 address
/// (four decimal octets up to 255, no leading zeros, as `Ipv4Addr`'s parser
/// takes it; spaces and tabs around it), read right to
/// left in one pass, with what lies left of its comma (`None`: it was the
/// first entry). Anything else is `None`, for the general path.
fn last_ipv4(rest: &[u8]) -> Option<(IpAddr, Option<&[u8]>)> {
    let ows = |b: u8| b == b' ' || b == b'\t';
    // `i` walks left: the byte read is `rest[i - 1]`.
    let mut i = rest.len();
    while i > 0 && rest.get(i - 1).is_some_and(|&b| ows(b)) {
        i -= 1;
    }
    let mut octets = [0u8; 4];
    for slot in (0..4).rev() {
        // One octet, right to left: 1 to 3 digits, at most 255, no leading
        // zero; a dot before it unless it is the first.
        let (mut value, mut place, mut digits, mut first) = (0u32, 1u32, 0, 0u8);
        while let Some(&b) = i.checked_sub(1).and_then(|j| rest.get(j)) {
            if !b.is_ascii_digit() {
                break;
            }
            if digits == 3 {
                return None;
            }
            value += u32::from(b - b'0') * place;
            place *= 10;
            digits += 1;
            first = b;
            i -= 1;
        }
        if digits == 0 || (digits > 1 && first == b'0') || value > 255 {
            return None;
        }
        *octets.get_mut(slot)? = value as u8;
        if slot > 0 {
            if i.checked_sub(1).and_then(|j| rest.get(j)) != Some(&b'.') {
                return None;
            }
            i -= 1;
        }
    }
    while i > 0 && rest.get(i - 1).is_some_and(|&b| ows(b)) {
        i -= 1;
    }
    let ip = IpAddr::from(octets);
    match i.checked_sub(1).map(|j| (j, rest.get(j))) {
        None => Some((ip, None)),
        Some((j, Some(b','))) => Some((ip, rest.get(..j))),
        Some(_) => None,
    }
}

/// One list entry: an address, or an address with a port as some proxies
/// write it (`192.0.2.1:5678`, `[2001:db8::1]:5678`, `[2001:db8::1]`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|v6| IpAddr::V6(v6).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference the one-pass read is checked against: the standard
    /// parser's dotted quad.
    fn std_ipv4(entry: &[u8]) -> Option<IpAddr> {
        let text = std::str::from_utf8(entry).ok()?;
        text.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    }

    fn rule(trusted: &[&str], header: &'static str) -> ClientIpRule {
        ClientIpRule::new(
            trusted.iter().map(|t| t.parse().unwrap()).collect(),
            HeaderName::from_static(header),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const XFF: &str = "x-forwarded-for";

    #[test]
    fn the_one_pass_ipv4_read_agrees_with_the_general_path() {
        // The general path: the last entry, trimmed, parsed by the standard parser.
        let general = |rest: &[u8]| -> Option<(IpAddr, Option<Vec<u8>>)> {
            let (left, entry) = match rest.iter().rposition(|&b| b == b',') {
                Some(i) => (Some(rest[..i].to_vec()), &rest[i + 1..]),
                None => (None, rest),
            };
            std_ipv4(trim_ows(entry)).map(|ip| (ip, left))
        };
        let pieces: [&[u8]; 14] = [
            b"1", b"0", b"25", b"255", b"256", b"01", b"1234", b".", b",", b" ", b"\t", b":", b"a",
            b"10",
        ];
        let mut seed = 11u32;
        for _ in 0..20_000 {
            let mut list = Vec::new();
            for _ in 0..(seed % 12) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                list.extend_from_slice(pieces[(seed >> 16) as usize % pieces.len()]);
            }
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let fast = last_ipv4(&list).map(|(ip, l)| (ip, l.map(<[u8]>::to_vec)));
            // The fast read may decline what the general path takes (never
            // here: both take exactly the dotted quads), and must agree.
            assert_eq!(fast, general(&list), "{:?}", String::from_utf8_lossy(&list));
        }
        for (list, want) in [
            (&b"203.0.113.7"[..], Some("203.0.113.7")),
            (b" 10.0.0.2 ,\t192.0.2.1\t", Some("192.0.2.1")),
            (b"1.2.3.4:80", None),
            (b"x1.2.3.4", None),
            (b"1.2.3", None),
            (b"1.2.3.4.5", None),
            (b"1.2.3.04", None),
            (b"0.0.0.0", Some("0.0.0.0")),
        ] {
            assert_eq!(last_ipv4(list).map(|(ip, _)| ip), want.map(ip), "{list:?}");
        }
    }

    #[test]
    fn trust_by_masks_is_trust_by_networks() {
        let nets = [
            "10.0.0.5/8",
            "192.0.2.7/32",
            "0.0.0.0/0",
            "fd00::1/8",
            "2001:db8::7/128",
            "::/0",
            "::ffff:0:0/96",
            "172.16.0.0/12",
        ];
        let ips = [
            "10.1.2.3",
            "11.0.0.1",
            "192.0.2.7",
            "192.0.2.8",
            "172.31.255.255",
            "172.32.0.0",
            "::ffff:10.0.0.1",
            "fd12::1",
            "fe00::1",
            "2001:db8::7",
            "2001:db8::8",
            "::1",
            "0.0.0.0",
        ];
        for net in nets {
            let r = rule(&[net], XFF);
            let n: IpNet = net.parse().unwrap();
            for i in ips {
                let i = ip(i);
                let canonical = i.to_canonical();
                assert_eq!(r.is_trusted(i), n.contains(&canonical), "{net} {i}");
            }
        }
        // Several networks: any of them.
        let r = rule(&["192.0.2.0/24", "fd00::/8"], XFF);
        assert!(r.is_trusted(ip("fd00::9")) && r.is_trusted(ip("192.0.2.200")));
        assert!(!r.is_trusted(ip("198.51.100.1")));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let r = rule(&["10.0.0.0/8"], XFF);
        let h = headers(&[(XFF, "203.0.113.9"), ("x-real-ip", "198.51.100.1")]);
        assert_eq!(r.resolve(ip("192.0.2.7"), &h), ip("192.0.2.7"));
        // No trusted proxies at all: the same.
        assert_eq!(
            ClientIpRule::default().resolve(ip("10.1.1.1"), &h),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn a_trusted_peer_names_the_client() {
        let r = rule(&["10.0.0.0/8"], XFF);
        let h = headers(&[(XFF, "203.0.113.9")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn the_walk_skips_trusted_hops_and_stops_at_the_first_untrusted_one() {
        let r = rule(&["10.0.0.0/8", "192.168.0.0/16"], XFF);
        // The client forged the first two entries; 203.0.113.9 is what the
        // outermost trusted proxy saw.
        let h = headers(&[(XFF, "1.1.1.1, 6.6.6.6, 203.0.113.9, 192.168.1.1, 10.0.0.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn all_trusted_gives_the_leftmost() {
        let r = rule(&["10.0.0.0/8"], XFF);
        let h = headers(&[(XFF, "10.0.0.9, 10.0.0.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.9"));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let r = rule(&["10.0.0.0/8"], XFF);
        assert_eq!(r.resolve(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        let h = headers(&[(XFF, " , ")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn several_fields_are_one_list_in_order() {
        let r = rule(&["10.0.0.0/8"], XFF);
        let h = headers(&[(XFF, "203.0.113.9, 10.0.0.3"), (XFF, "10.0.0.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        let h = headers(&[(XFF, "6.6.6.6"), (XFF, "203.0.113.9")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn the_field_read_is_handed_back_only_when_it_was_the_only_one() {
        let r = rule(&["10.0.0.0/8"], XFF);
        let one = headers(&[(XFF, "203.0.113.9, 10.0.0.3")]);
        let (client, read) = r.resolve_read(ip("10.0.0.1"), &one);
        assert_eq!(client, ip("203.0.113.9"));
        assert_eq!(
            read.map(|v| v.as_bytes()),
            Some(&b"203.0.113.9, 10.0.0.3"[..])
        );
        // Two fields: the caller looks the header up itself.
        let two = headers(&[(XFF, "203.0.113.9"), (XFF, "10.0.0.2")]);
        assert_eq!(
            r.resolve_read(ip("10.0.0.1"), &two),
            (ip("203.0.113.9"), None)
        );
        // An untrusted peer: the header is not read at all.
        assert_eq!(
            r.resolve_read(ip("192.0.2.1"), &one),
            (ip("192.0.2.1"), None)
        );
        assert_eq!(
            r.resolve_read(ip("10.0.0.1"), &HeaderMap::new()),
            (ip("10.0.0.1"), None)
        );
    }
    #[test]
    fn a_malformed_entry_ends_the_walk_at_the_last_address_read() {
        let r = rule(&["10.0.0.0/8"], XFF);
        let h = headers(&[(XFF, "203.0.113.9, unknown, 10.0.0.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        let h = headers(&[(XFF, "999.1.1.1")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[(XFF, "203.0.113.9 10.0.0.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // Not even text: the peer.
        let mut h = HeaderMap::new();
        h.insert(XFF, http::HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap());
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        h.insert(
            XFF,
            http::HeaderValue::from_bytes(b"1.2.3.4, \xff::1").unwrap(),
        );
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // What lies left of the client is never read (nginx's walk too).
        h.insert(
            XFF,
            http::HeaderValue::from_bytes(b"\xffjunk, 203.0.113.9, 10.0.0.2").unwrap(),
        );
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn ipv6_entries_ports_and_brackets_are_read() {
        let r = rule(&["10.0.0.0/8", "fd00::/8"], XFF);
        let h = headers(&[(XFF, "2001:db8::7, fd00::2")]);
        assert_eq!(r.resolve(ip("fd00::1"), &h), ip("2001:db8::7"));
        let h = headers(&[(XFF, "[2001:db8::7]:443")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers(&[(XFF, "[2001:db8::8]")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("2001:db8::8"));
        let h = headers(&[(XFF, "203.0.113.9:5678")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn v4_mapped_addresses_are_their_ipv4_selves() {
        let r = rule(&["10.0.0.0/8"], XFF);
        let h = headers(&[(XFF, "::ffff:203.0.113.9, ::ffff:10.0.0.2")]);
        // A v4-mapped peer matches an IPv4 range, and the answer is IPv4.
        assert_eq!(r.resolve(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.9"));
        assert_eq!(
            ClientIpRule::default().resolve(ip("::ffff:192.0.2.1"), &h),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn odd_header_values_never_panic_and_give_an_address_from_the_input() {
        let r = rule(&["10.0.0.0/8"], XFF);
        for v in [
            ",,,",
            "[",
            "[]",
            "[::1",
            "::1]:80",
            "1.2.3.4:",
            ":80",
            "[1.2.3.4]:80",
            "10.0.0.2,",
            " , 10.0.0.2 ,, ",
            "fe80::1%eth0",
            "1.2.3.4.5",
            "-1.2.3.4",
        ] {
            let got = r.resolve(ip("10.0.0.1"), &headers(&[(XFF, v)]));
            assert!(
                got == ip("10.0.0.1") || v.contains(&got.to_string()),
                "{v:?} gave {got}"
            );
        }
    }

    #[test]
    fn the_one_pass_ipv4_read_agrees_with_the_standard_parser() {
        for s in [
            "0.0.0.0",
            "1.2.3.4",
            "203.0.113.7",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1..3.4",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "1.2.3.4:80",
            "1.2.3.1000",
            "99999.1.1.1",
            "-1.2.3.4",
            "+1.2.3.4",
            "",
            "::1",
            "a.b.c.d",
        ] {
            // The one-pass read also takes the spaces around an entry.
            let std = std_ipv4(trim_ows(s.as_bytes()));
            let read = last_ipv4(s.as_bytes()).map(|(ip, _)| ip);
            assert_eq!(read, std, "{s:?}");
        }
    }

    #[test]
    fn the_walk_over_bytes_handles_white_space_empty_entries_and_garbage() {
        let r = rule(&["10.0.0.0/8", "fd00::/8"], XFF);
        let peer = ip("10.0.0.1");
        for (value, want) in [
            ("203.0.113.9", "203.0.113.9"),
            ("  203.0.113.9\t", "203.0.113.9"),
            ("203.0.113.9,10.0.0.2", "203.0.113.9"),
            ("6.6.6.6 ,\t203.0.113.9 , 10.0.0.2 ", "203.0.113.9"),
            (",,203.0.113.9,,, ,", "203.0.113.9"),
            ("", "10.0.0.1"),
            (",", "10.0.0.1"),
            ("2001:db8::7 , fd00::2", "2001:db8::7"),
            ("[2001:db8::7]:443,10.0.0.2", "2001:db8::7"),
            ("10.0.0.3, 10.0.0.2", "10.0.0.3"),
            ("203.0.113.9, garbage, 10.0.0.2", "10.0.0.2"),
            ("203.0.113.9, 010.0.0.2", "10.0.0.1"),
            ("203.0.113.9, 10.0.0.2:8080", "203.0.113.9"),
            ("203.0.113.9;10.0.0.2", "10.0.0.1"),
        ] {
            let got = r.resolve(peer, &headers(&[(XFF, value)]));
            assert_eq!(got, ip(want), "{value:?}");
        }
    }

    #[test]
    fn another_header_is_read_the_same_way() {
        let r = rule(&["173.245.48.0/20"], "cf-connecting-ip");
        let h = headers(&[("cf-connecting-ip", "203.0.113.9"), (XFF, "6.6.6.6")]);
        assert_eq!(r.resolve(ip("173.245.48.5"), &h), ip("203.0.113.9"));
        // Only the configured header counts.
        let h = headers(&[(XFF, "6.6.6.6")]);
        assert_eq!(r.resolve(ip("173.245.48.5"), &h), ip("173.245.48.5"));
    }
}

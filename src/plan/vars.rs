//! The request-side values templates read ([`VarCx`]), gathered once per
//! use by `proxy::steps` from the session and the request's ctx.
//!
//! Every value is borrowed; writing a variable appends to the caller's
//! buffer and allocates nothing else. Meanings follow nginx where greenlight
//! has the same notion: `$host` is the request's host name (lowercase, no
//! port; the site's name when the request has none), `$uri` the current path
//! (after rewrites; greenlight routes on the raw path, so it is not
//! percent-decoded), `$args` the current query, `$request_uri` what the
//! client sent, `$remote_addr` the client address as `proxy::client_ip`
//! resolves it, `$server_port` the port the connection arrived on.

use super::Captures;
use super::template::Var;
use pingora::http::RequestHeader;
use std::fmt::Write as _;
use std::net::IpAddr;

/// A regex match and the string it was matched on.
#[derive(Clone, Copy, Debug)]
pub struct Match<'a> {
    /// Group spans.
    pub captures: &'a Captures,
    /// The matched string.
    pub subject: &'a str,
}

/// What templates read for one request.
#[derive(Clone, Copy, Debug)]
pub struct VarCx<'a> {
    /// The request as received.
    pub req: &'a RequestHeader,
    /// Arrived over TLS.
    pub tls: bool,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The local port the request arrived on.
    pub server_port: Option<u16>,
    /// The site's first host name (`$server_name`, and `$host` without Host).
    pub server_name: &'a str,
    /// The current path.
    pub uri: &'a str,
    /// The current query string (without `?`).
    pub args: Option<&'a str>,
    /// The last regex match (a rewrite's, else the location's).
    pub last: Option<Match<'a>>,
    /// The regex location's match.
    pub location: Option<Match<'a>>,
    /// The compiled `maps:` ([`Var::Map`] indexes into it).
    pub maps: &'a [super::map::VarMap],
    /// The upstream server chosen for the request, once there is one.
    pub upstream_addr: Option<&'a crate::upstream::addr::ServerAddr>,
    /// That server as written in the config (`app.internal:8080`).
    pub upstream_label: Option<&'a str>,
    /// The client certificate on a `client_auth:` site (`$ssl_client_*`).
    pub client_cert: Option<&'a crate::tls::client_cert::ClientVars>,
}

impl<'a> VarCx<'a> {
    /// Values of `req` as received: the path and query of its URI, no match.
    pub fn of_request(req: &'a RequestHeader) -> VarCx<'a> {
        VarCx {
            req,
            tls: false,
            client_ip: None,
            server_port: None,
            server_name: "",
            uri: req.uri.path(),
            args: req.uri.query(),
            last: None,
            location: None,
            maps: &[],
            upstream_addr: None,
            upstream_label: None,
            client_cert: None,
        }
    }

    /// Appends the value of `var` to `out` (nothing when it has none).
    pub fn write(&self, var: &Var, out: &mut String) {
        match var {
            Var::Host => match request_host(self.req) {
                Some(h) => push_host(out, h),
                None => out.push_str(self.server_name),
            },
            Var::Scheme => out.push_str(if self.tls { "https" } else { "http" }),
            Var::RequestUri => out.push_str(
                self.req
                    .uri
                    .path_and_query()
                    .map_or(self.req.uri.path(), |p| p.as_str()),
            ),
            Var::Uri => out.push_str(self.uri),
            Var::Args => out.push_str(self.args.unwrap_or("")),
            Var::IsArgs => {
                if self.args.is_some_and(|a| !a.is_empty()) {
                    out.push('?');
                }
            }
            Var::Arg(name) => {
                if let Some(v) = self.args.and_then(|a| query_arg(a, name)) {
                    out.push_str(v);
                }
            }
            Var::RemoteAddr => {
                if let Some(ip) = self.client_ip {
                    push_ip(out, ip);
                }
            }
            Var::ServerPort => {
                if let Some(p) = self.server_port {
                    push_u16(out, p);
                }
            }
            Var::ServerName => out.push_str(self.server_name),
            Var::UpstreamAddr => {
                if let Some(a) = self.upstream_addr {
                    use std::fmt::Write;
                    let _ = write!(out, "{a}");
                }
            }
            Var::ProxyHost => {
                if let Some(l) = self.upstream_label {
                    out.push_str(proxy_host(l));
                }
            }
            Var::Http(name) => {
                if let Some(v) = self.req.headers.get(name).and_then(|v| v.to_str().ok()) {
                    out.push_str(v);
                }
            }
            Var::Cookie(name) => {
                if let Some(v) = self.cookie(name) {
                    out.push_str(v);
                }
            }
            Var::RequestMethod => out.push_str(self.req.method.as_str()),
            Var::Capture(i) | Var::LastNamed(i) => {
                if let Some(m) = self.last.or(self.location) {
                    out.push_str(m.captures.get(usize::from(*i), m.subject).unwrap_or(""));
                }
            }
            Var::LocationNamed(i) => {
                if let Some(m) = self.location {
                    out.push_str(m.captures.get(usize::from(*i), m.subject).unwrap_or(""));
                }
            }
            Var::Map(i) => {
                if let Some(m) = self.maps.get(usize::from(*i)) {
                    m.write(self, out);
                }
            }
            Var::SslClient(v) => v.write(self.client_cert, out),
        }
    }

    /// The value of cookie `name` in the request's `Cookie` header(s).
    fn cookie(&self, name: &str) -> Option<&'a str> {
        self.req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then_some(v)
            })
    }
}

/// The value of query parameter `name` (first one), as sent.
/// nginx's `$proxy_host` of a server written `host:port`: the port is left
/// out when it is a scheme's default (80, 443); a unix socket is
/// `localhost`, as nginx sends it.
fn proxy_host(label: &str) -> &str {
    if label.starts_with(crate::upstream::addr::UNIX_PREFIX) {
        return "localhost";
    }
    label
        .strip_suffix(":80")
        .or_else(|| label.strip_suffix(":443"))
        .unwrap_or(label)
}

pub(crate) fn query_arg<'s>(args: &'s str, name: &str) -> Option<&'s str> {
    args.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        // nginx compares argument names case-insensitively.
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// The host a request names: `:authority`/absolute-form first, then `Host`.
fn request_host(req: &RequestHeader) -> Option<&str> {
    if let Some(a) = req.uri.authority() {
        return Some(a.as_str());
    }
    req.headers.get(http::header::HOST)?.to_str().ok()
}

/// Appends a Host value lowercased, without its port or trailing dot.
fn push_host(out: &mut String, raw: &str) {
    let no_port = if raw.starts_with('[') {
        raw.find(']').map_or(raw, |i| &raw[..=i])
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let h = no_port.strip_suffix('.').unwrap_or(no_port);
    out.extend(h.chars().map(|c| c.to_ascii_lowercase()));
}

/// Appends `ip` as text: IPv4 by hand, from a table of the 256 octets into
/// a stack buffer, then one `push_str` (`core::fmt` costs more than the
/// rest of a header rule, and a `push` per character or a copy of variable
/// length per octet about as much again: callgrind, BENCHMARKS.md); IPv6
/// through `Display`.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    out.push_str(&ip_text(ip));
}

/// `ip` as text in a stack buffer, the one formatter of addresses: IPv4
/// by hand from the octet table (see [`push_ip`]), IPv6 through `Display`;
/// the longest address text, an IPv4-mapped IPv6 one, is 45 bytes.
pub fn ip_text(ip: IpAddr) -> arrayvec::ArrayString<48> {
    let mut out = arrayvec::ArrayString::new();
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 20];
            let text = v4_text(v4, &mut buf);
            let _ = out.try_push_str(std::str::from_utf8(text).unwrap_or(""));
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out
}

/// `ip` as a header value (a header rule `$remote_addr`, nginx's
/// `proxy_set_header X-Real-IP $remote_addr`): the value this thread made
/// last when the address is the same — the requests of one keep-alive
/// connection come from one client, and a clone is a reference count where
/// a new value is an allocation — else made without a `String` in between.
pub fn ip_header_value(ip: IpAddr) -> Option<http::HeaderValue> {
    LAST_IP_VALUE.with_borrow_mut(|last| {
        if let Some((seen, value)) = last.as_ref()
            && *seen == ip
        {
            return Some(value.clone());
        }
        let value = match ip {
            IpAddr::V4(v4) => {
                let mut buf = [0u8; 20];
                http::HeaderValue::from_bytes(v4_text(v4, &mut buf)).ok()?
            }
            IpAddr::V6(_) => http::HeaderValue::from_str(&ip_text(ip)).ok()?,
        };
        *last = Some((ip, value.clone()));
        Some(value)
    })
}

thread_local! {
    /// The last address [`ip_header_value`] made a value of, with it.
    static LAST_IP_VALUE: std::cell::RefCell<Option<(IpAddr, http::HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// `v4` in dotted decimal, written into `buf`: from a table of the 256
/// octets (see [`push_ip`]).
fn v4_text(v4: std::net::Ipv4Addr, buf: &mut [u8; 20]) -> &[u8] {
    // Each octet writes three bytes and a dot; its length says how many
    // count, so the next octet overwrites the rest.
    let mut len = 0;
    for octet in v4.octets() {
        let [n, a, b, c] = OCTETS[usize::from(octet)];
        if let Some(dst) = buf.get_mut(len..len + 4) {
            dst.copy_from_slice(&[a, b, c, b'.']);
        }
        len += usize::from(n);
        if let Some(dot) = buf.get_mut(len) {
            *dot = b'.';
        }
        len += 1;
    }
    // The last dot is cut.
    buf.get(..len.saturating_sub(1)).unwrap_or_default()
}

/// Every octet in decimal: its length, then up to three digits.
static OCTETS: [[u8; 4]; 256] = octet_table();

const fn octet_table() -> [[u8; 4]; 256] {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, o) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            [3, b'0' + h, b'0' + d, b'0' + o]
        } else if i >= 10 {
            [2, b'0' + d, b'0' + o, 0]
        } else {
            [1, b'0' + o, 0, 0]
        };
        i += 1;
    }
    t
}

/// Appends `n` in decimal without `core::fmt`.
pub fn push_u16(out: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || at == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(digits.get(at..).unwrap_or_default()).unwrap_or(""));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::template::{Scope, Template};

    #[test]
    fn numbers_and_addresses_are_written_as_display_writes_them() {
        for n in [0u16, 7, 10, 99, 100, 255, 1000, 8080, 65535] {
            let mut out = String::new();
            push_u16(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for ip in [
            "0.0.0.0",
            "10.2.30.255",
            "255.255.255.255",
            "1.20.100.9",
            "100.10.1.0",
            "127.0.0.1",
            "203.0.113.7",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
            let value = ip_header_value(ip).expect("value");
            assert_eq!(value.to_str().expect("text"), ip.to_string());
            // Again (the thread's last value), and after another address.
            assert_eq!(ip_header_value(ip), Some(value.clone()));
            let other = IpAddr::from([192, 0, 2, 1]);
            assert_eq!(ip_header_value(other).expect("other"), "192.0.2.1");
            assert_eq!(ip_header_value(ip), Some(value));
        }
        // Every octet value in every position, after text already there.
        for o in 0..=255u8 {
            for ip in [
                [o, 0, 0, 0],
                [1, o, 22, 3],
                [255, 255, o, 9],
                [7, 100, 10, o],
            ] {
                let ip = IpAddr::from(ip);
                let mut out = String::from("x, ");
                push_ip(&mut out, ip);
                assert_eq!(out, format!("x, {ip}"));
            }
        }
    }

    fn req(target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", target.as_bytes(), None).expect("req");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("hdr");
        }
        r
    }

    fn render(t: &str, cx: &VarCx<'_>) -> String {
        Template::parse(t, &Scope::default())
            .expect("template")
            .render(cx)
    }

    #[test]
    fn request_values_render_like_nginx() {
        let r = req(
            "/a/b?page=2&Q=x",
            &[
                ("Host", "Example.COM:8443"),
                ("Cookie", "a=1; sid=abc"),
                ("X-Real-IP", "1.2.3.4"),
            ],
        );
        let cx = VarCx {
            tls: true,
            client_ip: "192.0.2.7".parse().ok(),
            server_port: Some(8443),
            server_name: "example.com",
            ..VarCx::of_request(&r)
        };
        assert_eq!(
            render("$scheme://$host:$server_port$request_uri", &cx),
            "https://example.com:8443/a/b?page=2&Q=x"
        );
        assert_eq!(render("$uri$is_args$args", &cx), "/a/b?page=2&Q=x");
        assert_eq!(render("[$arg_page|$arg_q|$arg_none]", &cx), "[2|x|]");
        assert_eq!(render("$cookie_sid $cookie_none.", &cx), "abc .");
        assert_eq!(
            render("$http_x_real_ip $http_host", &cx),
            "1.2.3.4 Example.COM:8443"
        );
        assert_eq!(
            render("$remote_addr $request_method $server_name", &cx),
            "192.0.2.7 POST example.com"
        );
        let bare = req("/", &[]);
        let cx = VarCx {
            server_name: "site.test",
            ..VarCx::of_request(&bare)
        };
        assert_eq!(render("$host|$is_args|$args|$1", &cx), "site.test|||");
    }

    #[test]
    fn captures_read_the_last_match_and_named_location_groups() {
        let r = req("/x", &[]);
        let loc = Captures::from_spans(vec![Some((0, 9)), Some((5, 9))]);
        let last = Captures::from_spans(vec![Some((0, 3)), Some((1, 3))]);
        let loc_scope = [("tail".to_string(), 1)];
        let t = Template::parse(
            "$1-$tail",
            &Scope {
                location: &loc_scope,
                ..Scope::default()
            },
        )
        .expect("template");
        let only_location = VarCx {
            location: Some(Match {
                captures: &loc,
                subject: "/old/page",
            }),
            ..VarCx::of_request(&r)
        };
        assert_eq!(t.render(&only_location), "page-page");
        let after_rewrite = VarCx {
            last: Some(Match {
                captures: &last,
                subject: "/ab",
            }),
            ..only_location
        };
        assert_eq!(t.render(&after_rewrite), "ab-page");
    }

    #[test]
    fn proxy_host_is_the_server_as_written_without_a_default_port() {
        assert_eq!(super::proxy_host("app.internal:80"), "app.internal");
        assert_eq!(super::proxy_host("api.example:443"), "api.example");
        assert_eq!(super::proxy_host("127.0.0.1:3000"), "127.0.0.1:3000");
        assert_eq!(super::proxy_host("[::1]:8080"), "[::1]:8080");
        assert_eq!(super::proxy_host("unix:/run/app.sock"), "localhost");
    }
}

//! Header rules between client and upstream, as pure functions.
//!
//! Forwarding (what nginx users set by hand with `proxy_set_header`):
//! `Host` is preserved as the client sent it; `X-Forwarded-For` gets the client
//! address appended (nginx's `$proxy_add_x_forwarded_for`); `X-Forwarded-Proto`
//! and `X-Forwarded-Host` are set to what this hop saw, replacing any value a
//! client sent. Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every
//! header it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Upgrade`) are
//! removed in both directions — except that a WebSocket upgrade keeps
//! `Upgrade` and `Connection: upgrade` so it works with no configuration (the
//! nginx site we replace needed four lines for this; what counts as an
//! upgrade is decided in `upgrade`). Headers a client may not set are
//! dropped ([`drop_client_headers`]). `Transfer-Encoding` and
//! `Content-Length` framing is Pingora's job, except that a repeated
//! identical response `Content-Length` is folded into one here.

use http::header::{CONNECTION, CONTENT_LENGTH, FORWARDED, HeaderName, TE, UPGRADE};
use pingora::Result;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

// Names as `HeaderName` constants: a lookup or removal by `&str` parses the
// name first, on every request.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
// Inserted by these typed names too: a `&str` name is checked and made a
// `HeaderName` on every insert (callgrind: ~120 instructions each). On
// HTTP/1 a typed name goes out in the request's spelling style
// (vendor/pingora-http/src/case_forms.rs).
pub(super) const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`: dropped from clients, set by [`set_real_ip`].
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The headers named in the `Connection` header(s), except `upgrade` when
/// `keep_upgrade` (and `keep-alive` and `close`, removed anyway or naming
/// no header). Over the bytes: `Connection: keep-alive`, what most HTTP/1.1
/// clients send, names nothing and costs no `HeaderName` (nor the generic
/// `str` splitter, about 500 instructions per request; callgrind).
fn connection_named(headers: &http::HeaderMap, keep_upgrade: bool) -> Vec<HeaderName> {
    let mut named = Vec::new();
    for v in headers.get_all(CONNECTION) {
        for t in v.as_bytes().split(|&b| b == b',') {
            let t = t.trim_ascii();
            if t.is_empty()
                || t.eq_ignore_ascii_case(b"keep-alive")
                || t.eq_ignore_ascii_case(b"close")
                || (keep_upgrade && t.eq_ignore_ascii_case(b"upgrade"))
            {
                continue;
            }
            if let Ok(h) = HeaderName::from_bytes(t) {
                named.push(h);
            }
        }
    }
    named
}

/// Removes hop-by-hop headers from a request; keeps a WebSocket upgrade.
/// `true`: `Connection` named `X-Forwarded-For`, which is gone now (Pingora
/// refuses such a request before it gets here; this keeps the answer right
/// should that change).
pub fn strip_request_hop_by_hop(req: &mut RequestHeader, upgrade: bool) -> Result<bool> {
    if !has_any(
        &req.headers,
        &[&CONNECTION, &KEEP_ALIVE, &PROXY_CONNECTION, &TE, &UPGRADE],
    ) {
        if upgrade {
            req.insert_header(CONNECTION, "upgrade")?;
        }
        return Ok(false);
    }
    let mut dropped_xff = false;
    if req.headers.contains_key(CONNECTION) {
        for h in connection_named(&req.headers, upgrade) {
            dropped_xff |= h == XFF;
            req.remove_header(&h);
        }
        req.remove_header(&CONNECTION);
    }
    for h in [&KEEP_ALIVE, &PROXY_CONNECTION, &TE] {
        if req.headers.contains_key(h) {
            req.remove_header(h);
        }
    }
    if upgrade {
        req.insert_header(CONNECTION, "upgrade")?;
    } else if req.headers.contains_key(UPGRADE) {
        req.remove_header(&UPGRADE);
    }
    Ok(dropped_xff)
}

/// Whether `headers` holds any of `names`: one pass over the message's few
/// names instead of a hashed lookup per name (four or five lookups cost about
/// 500 instructions on every request and response that has none of them).
fn has_any(headers: &http::HeaderMap, names: &[&HeaderName]) -> bool {
    headers.keys().any(|k| names.contains(&k))
}

/// Removes hop-by-hop headers from a response (not from a 101 Switching
/// Protocols, whose `Upgrade`/`Connection` complete the handshake).
pub fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    if resp.status.as_u16() == 101
        || !has_any(
            &resp.headers,
            &[&CONNECTION, &KEEP_ALIVE, &PROXY_CONNECTION, &UPGRADE],
        )
    {
        return;
    }
    if resp.headers.contains_key(CONNECTION) {
        for h in connection_named(&resp.headers, false) {
            resp.remove_header(&h);
        }
        resp.remove_header(&CONNECTION);
    }
    for h in [&KEEP_ALIVE, &PROXY_CONNECTION, &UPGRADE] {
        if resp.headers.contains_key(h) {
            resp.remove_header(h);
        }
    }
}

/// Removes request headers a client must not be able to set:
///
/// - names with an underscore (`X_Forwarded_For`), like nginx's default
///   `underscores_in_headers off`: many app frameworks (CGI, PHP, Rack,
///   WSGI) map `-` and `_` to the same variable, so `X_Forwarded_For` could
///   pass for the `X-Forwarded-For` greenlight sets. A site with
///   `underscores_in_headers: true` keeps them (`underscores`);
/// - `X-Real-IP` and `Forwarded` (RFC 7239): they claim a client address,
///   and greenlight reports the address in `X-Forwarded-For`. Also from a
///   trusted proxy: it passes its own client's headers on unchanged unless it
///   sets them itself (Cloudflare and most load balancers do not set
///   `X-Real-IP`), so keeping them would let a client pick its address.
///   When `client_ip_from: x-real-ip` says a trusted proxy sets it, the
///   upstream gets the address greenlight resolved from it
///   ([`set_real_ip`]); a route may set it itself (`$remote_addr`).
pub fn drop_client_headers(req: &mut RequestHeader, underscores: bool) {
    // One pass over the names decides whether anything goes: two lookups
    // and a scan cost about 500 instructions per request that drops nothing.
    let drop = |n: &HeaderName| {
        *n == X_REAL_IP || *n == FORWARDED || (!underscores && n.as_str().contains('_'))
    };
    if !req.headers.keys().any(drop) {
        return;
    }
    let names: Vec<HeaderName> = req.headers.keys().filter(|n| drop(n)).cloned().collect();
    for n in &names {
        req.remove_header(n);
    }
}

/// Folds a `Content-Length` the upstream repeated (two header lines, or a
/// list such as `5, 5`) into one header. Pingora accepts identical repeats
/// (RFC 9110 §8.6) and answers 502 for differing ones before this runs, but
/// forwards the repeats as they came: h2 clients then see a malformed
/// response (RFC 9113 §8.1.1) and Node's HTTP client refuses it.
pub fn fold_content_length(resp: &mut ResponseHeader) -> Result<()> {
    let mut values = resp.headers.get_all(CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    if values.next().is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let Some(one) = first
        .to_str()
        .ok()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
    else {
        return Ok(());
    };
    resp.insert_header(CONTENT_LENGTH, one)
}

/// Sets `X-Real-IP` to the client greenlight resolved.
pub fn set_real_ip(req: &mut RequestHeader, client: IpAddr) -> Result<()> {
    match crate::plan::vars::ip_header_value(client) {
        Some(value) => req.insert_header(&X_REAL_IP, value),
        None => Ok(()),
    }
}

/// Sets `X-Forwarded-For` (appended), `-Proto` and `-Host`. `client` is the
/// real client IP: like nginx's `$proxy_add_x_forwarded_for` after its
/// `realip` module, the received list is kept and the client greenlight
/// believes is appended, so the last entry is always that client (what an
/// app trusting one proxy hop reads) and the hops before stay visible.
/// `read` is the header's only field when the caller already has it and
/// knows `req` still holds it as it was (else it is looked up here).
pub fn set_forwarded(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    tls: bool,
    host: Option<http::HeaderValue>,
    read: Option<&http::HeaderValue>,
) -> Result<()> {
    if let Some(ip) = client {
        let ip = crate::plan::vars::ip_text(ip);
        // The fields received (text only), then the client; made at its
        // exact size, which `Bytes` takes as it is (a spare capacity costs
        // it an allocation of its own).
        let all = read.is_none().then(|| req.headers.get_all(&XFF));
        let fields = || {
            read.into_iter()
                .chain(all.iter().flat_map(|a| a.iter()))
                .filter(|p| p.to_str().is_ok())
        };
        let len = fields().map(|p| p.len() + 2).sum::<usize>() + ip.len();
        let mut value = Vec::with_capacity(len);
        for p in fields() {
            value.extend_from_slice(p.as_bytes());
            value.extend_from_slice(b", ");
        }
        value.extend_from_slice(ip.as_bytes());
        let value =
            http::HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).map_err(|e| {
                pingora::Error::because(pingora::ErrorType::InternalError, "X-Forwarded-For", e)
            })?;
        req.insert_header(&XFF, value)?;
    }
    // Static values: a `&str` is copied into a new allocation and checked
    // on every request.
    const HTTPS: http::HeaderValue = http::HeaderValue::from_static("https");
    const HTTP: http::HeaderValue = http::HeaderValue::from_static("http");
    req.insert_header(&XFP, if tls { HTTPS } else { HTTP })?;
    match host {
        Some(h) => req.insert_header(&XFH, h)?,
        None => {
            if req.headers.contains_key(&XFH) {
                req.remove_header(&XFH);
            }
        }
    }
    Ok(())
}

/// Why an HTTP/1.x request's body framing is refused (RFC 9112 §6.1, §6.3).
///
/// Policy (nginx's, not HAProxy's): anything ambiguous is a 400 and the
/// connection is closed; nothing ambiguous is ever forwarded, so the upstream
/// and greenlight can never disagree on where a request ends.
/// `raw` is the request header as received: Pingora drops `Content-Length`
/// from the parsed header when `Transfer-Encoding` is present (HAProxy's
/// choice), so that conflict is only visible in the raw bytes.
pub fn framing_problem(req: &RequestHeader, raw: Option<&[u8]>) -> Option<&'static str> {
    let te: Vec<&[u8]> = req
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let cl: Vec<&[u8]> = req
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if !te.is_empty() {
        if req.version == http::Version::HTTP_10 {
            return Some("Transfer-Encoding in an HTTP/1.0 request");
        }
        if !cl.is_empty() || raw.is_some_and(|r| raw_has_header(r, b"content-length")) {
            return Some("both Content-Length and Transfer-Encoding");
        }
        if te.len() > 1 || !te[0].trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Some("a Transfer-Encoding other than exactly `chunked`");
        }
    }
    if let Some(first) = cl.first() {
        if !cl.iter().all(|v| v == first) {
            return Some("differing Content-Length values");
        }
        let v = first.trim_ascii();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Some("a Content-Length that is not a number");
        }
    }
    None
}

/// True if a header line of the raw request header is named `name`
/// (lowercase), ignoring the request line.
fn raw_has_header(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|b| *b == b'\n').skip(1).any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()..].trim_ascii_start().first() == Some(&b':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).expect("req");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("hdr");
        }
        r
    }

    fn get<'a>(r: &'a RequestHeader, k: &str) -> Option<&'a str> {
        r.headers.get(k).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.199.250",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            let mut s = String::new();
            crate::plan::vars::push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn forwarded_for_is_appended_and_proto_host_are_replaced() {
        let mut r = req(&[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
        ]);
        set_forwarded(
            &mut r,
            "127.0.0.1".parse().ok(),
            false,
            Some(http::HeaderValue::from_static("app.test")),
            None,
        )
        .expect("set");
        assert_eq!(get(&r, "x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
        assert_eq!(get(&r, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&r, "x-forwarded-host"), Some("app.test"));
        // The field the caller read is used as it is (no lookup), an IPv6
        // client is written in full, and TLS says https.
        let seen = http::HeaderValue::from_static("198.51.100.2");
        let ip = "2001:db8::ffff:1".parse().ok();
        set_forwarded(&mut r, ip, true, None, Some(&seen)).expect("set");
        assert_eq!(
            get(&r, "x-forwarded-for"),
            Some("198.51.100.2, 2001:db8::ffff:1")
        );
        assert_eq!(get(&r, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&r, "x-forwarded-host"), None);
    }

    #[test]
    fn connection_names_are_read_over_bytes_and_keep_alive_names_nothing() {
        let h = |v: &'static str| {
            let mut m = http::HeaderMap::new();
            m.append(CONNECTION, http::HeaderValue::from_static(v));
            m
        };
        assert!(connection_named(&h("keep-alive"), false).is_empty());
        assert!(connection_named(&h(" Keep-Alive , close ,,"), false).is_empty());
        let named = connection_named(&h("keep-alive, X-Trace ,\tupgrade"), true);
        assert_eq!(named, [HeaderName::from_static("x-trace")]);
        let named = connection_named(&h("Upgrade,x-a"), false);
        assert_eq!(
            named,
            [
                HeaderName::from_static("upgrade"),
                HeaderName::from_static("x-a")
            ]
        );
        // A token that is no header name names nothing.
        assert!(connection_named(&h("a b"), false).is_empty());
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut r = req(&[
            ("Connection", "close, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("X-Kept", "yes"),
        ]);
        let dropped_xff = strip_request_hop_by_hop(&mut r, false).expect("strip");
        for h in ["connection", "x-secret", "keep-alive", "te", "upgrade"] {
            assert!(get(&r, h).is_none(), "{h} should be gone");
        }
        assert_eq!(get(&r, "x-kept"), Some("yes"));
        assert!(!dropped_xff, "X-Forwarded-For was not named");
        // Named, it goes, and the caller is told (its read copy is stale).
        let mut r = req(&[
            ("Connection", "keep-alive, x-forwarded-for"),
            ("X-Forwarded-For", "203.0.113.9"),
        ]);
        assert!(strip_request_hop_by_hop(&mut r, false).expect("strip"));
        assert_eq!(get(&r, "x-forwarded-for"), None);
    }

    #[test]
    fn each_hop_by_hop_field_alone_is_found_and_removed() {
        // The one-pass check (`has_any`) must know every name on its own.
        for name in [
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
            "TE",
            "Upgrade",
        ] {
            let mut r = req(&[(name, "x"), ("X-Kept", "yes")]);
            strip_request_hop_by_hop(&mut r, false).expect("strip");
            assert!(get(&r, name).is_none(), "request {name} should be gone");
            assert_eq!(get(&r, "x-kept"), Some("yes"));
        }
        for name in ["Connection", "Keep-Alive", "Proxy-Connection", "Upgrade"] {
            let mut resp = ResponseHeader::build(200, None).expect("resp");
            resp.append_header(name, "x").expect("h");
            resp.append_header("X-Kept", "yes").expect("h");
            strip_response_hop_by_hop(&mut resp);
            assert!(
                resp.headers.get(name).is_none(),
                "response {name} should be gone"
            );
            assert!(resp.headers.get("x-kept").is_some());
        }
        // None of them: nothing changes; an upgrade still gets its Connection.
        let mut r = req(&[("X-Kept", "yes")]);
        assert!(!strip_request_hop_by_hop(&mut r, false).expect("strip"));
        assert_eq!(r.headers.len(), 1);
        let mut r = req(&[("X-Kept", "yes")]);
        strip_request_hop_by_hop(&mut r, true).expect("strip");
        assert_eq!(get(&r, "connection"), Some("upgrade"));
    }

    #[test]
    fn ambiguous_framing_is_named() {
        let mk = |v: http::Version, h: &[(&str, &str)]| {
            let mut r = req(h);
            r.set_version(v);
            framing_problem(&r, None)
        };
        const HTTP_10: http::Version = http::Version::HTTP_10;
        const HTTP_11: http::Version = http::Version::HTTP_11;
        assert_eq!(mk(HTTP_11, &[("Content-Length", "3")]), None);
        assert_eq!(mk(HTTP_11, &[("Transfer-Encoding", "Chunked")]), None);
        assert_eq!(
            mk(HTTP_11, &[("Content-Length", "3"), ("Content-Length", "3")]),
            None
        );
        assert!(
            mk(
                HTTP_11,
                &[("Content-Length", "3"), ("Transfer-Encoding", "chunked")]
            )
            .is_some()
        );
        assert!(mk(HTTP_11, &[("Transfer-Encoding", "xchunked")]).is_some());
        assert!(mk(HTTP_11, &[("Transfer-Encoding", "chunked, identity")]).is_some());
        assert!(
            mk(
                HTTP_11,
                &[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked")
                ]
            )
            .is_some()
        );
        assert!(mk(HTTP_11, &[("Content-Length", "3"), ("Content-Length", "4")]).is_some());
        assert!(mk(HTTP_11, &[("Content-Length", "+3")]).is_some());
        assert!(mk(HTTP_10, &[("Transfer-Encoding", "chunked")]).is_some());
        let te = req(&[("Transfer-Encoding", "chunked")]);
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(
            framing_problem(&te, Some(raw)).is_some(),
            "CL seen in the raw header"
        );
        let raw = b"POST /content-length: HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            framing_problem(&te, Some(raw)),
            None,
            "the request line is not a header"
        );
    }

    #[test]
    fn a_websocket_upgrade_keeps_upgrade_and_connection() {
        let mut r = req(&[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
        ]);
        strip_request_hop_by_hop(&mut r, true).expect("strip");
        assert_eq!(get(&r, "upgrade"), Some("websocket"));
        assert_eq!(get(&r, "connection"), Some("upgrade"));
    }

    #[test]
    fn underscored_and_client_address_headers_are_dropped() {
        let mut r = req(&[
            ("X_Forwarded_For", "203.0.113.1"),
            ("x_api_key", "k"),
            ("X-Real-IP", "203.0.113.2"),
            ("Forwarded", "for=203.0.113.3"),
            ("X-Kept", "yes"),
        ]);
        let mut kept = r.clone();
        drop_client_headers(&mut r, false);
        let names: Vec<&str> = r.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        drop_client_headers(&mut kept, true);
        let names: Vec<&str> = kept.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x_forwarded_for", "x_api_key", "x-kept"]);
    }

    #[test]
    fn a_repeated_content_length_is_folded_into_one() {
        for values in [&["5", "5"][..], &["5, 5"], &[" 5 ,5"]] {
            let mut r = ResponseHeader::build(200, None).expect("resp");
            for v in values {
                r.append_header("Content-Length", *v).expect("h");
            }
            fold_content_length(&mut r).expect("fold");
            let all: Vec<_> = r.headers.get_all("content-length").iter().collect();
            assert_eq!(all, ["5"], "{values:?}");
        }
        let mut r = ResponseHeader::build(200, None).expect("resp");
        r.append_header("Content-Length", "7").expect("h");
        fold_content_length(&mut r).expect("fold");
        assert_eq!(
            r.headers.get("content-length").map(|v| v.as_bytes()),
            Some(&b"7"[..])
        );
    }

    #[test]
    fn responses_lose_hop_by_hop_headers_except_on_101() {
        let mut ok = ResponseHeader::build(200, None).expect("resp");
        ok.append_header("Connection", "close").expect("h");
        ok.append_header("Keep-Alive", "timeout=5").expect("h");
        strip_response_hop_by_hop(&mut ok);
        assert!(ok.headers.get("connection").is_none());
        assert!(ok.headers.get("keep-alive").is_none());
        let mut up = ResponseHeader::build(101, None).expect("resp");
        up.append_header("Connection", "Upgrade").expect("h");
        up.append_header("Upgrade", "websocket").expect("h");
        strip_response_hop_by_hop(&mut up);
        assert!(up.headers.get("upgrade").is_some());
    }
}

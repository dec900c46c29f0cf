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
//! nginx site we replace needed four lines for this). `Transfer-Encoding` and
//! `Content-Length` framing is Pingora's job.

use http::header::{CONNECTION, HeaderName, TE, UPGRADE};
use pingora::Result;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

const KEEP_ALIVE: &str = "keep-alive";
const PROXY_CONNECTION: &str = "proxy-connection";
const XFF: &str = "x-forwarded-for";
const XFP: &str = "x-forwarded-proto";
const XFH: &str = "x-forwarded-host";

/// Names listed in the `Connection` header(s), lowercased.
fn connection_tokens(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Removes hop-by-hop headers from a request; keeps a WebSocket upgrade.
pub fn strip_request_hop_by_hop(req: &mut RequestHeader, upgrade: bool) -> Result<()> {
    for name in connection_tokens(&req.headers) {
        if upgrade && name == "upgrade" {
            continue;
        }
        if let Ok(h) = HeaderName::from_bytes(name.as_bytes()) {
            req.remove_header(&h);
        }
    }
    req.remove_header(KEEP_ALIVE);
    req.remove_header(PROXY_CONNECTION);
    req.remove_header(&TE);
    req.remove_header(&CONNECTION);
    if upgrade {
        req.insert_header(CONNECTION, "upgrade")?;
    } else {
        req.remove_header(&UPGRADE);
    }
    Ok(())
}

/// Removes hop-by-hop headers from a response (not from a 101 Switching
/// Protocols, whose `Upgrade`/`Connection` complete the handshake).
pub fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    if resp.status.as_u16() == 101 {
        return;
    }
    for name in connection_tokens(&resp.headers) {
        if let Ok(h) = HeaderName::from_bytes(name.as_bytes()) {
            resp.remove_header(&h);
        }
    }
    resp.remove_header(KEEP_ALIVE);
    resp.remove_header(PROXY_CONNECTION);
    resp.remove_header(&CONNECTION);
    resp.remove_header(&UPGRADE);
}

/// Sets `X-Forwarded-For` (appended), `-Proto` and `-Host`.
pub fn set_forwarded(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    tls: bool,
    host: Option<&str>,
) -> Result<()> {
    if let Some(ip) = client {
        let prior: Vec<String> = req
            .headers
            .get_all(XFF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let value = if prior.is_empty() {
            ip.to_string()
        } else {
            format!("{}, {ip}", prior.join(", "))
        };
        req.insert_header(XFF, value)?;
    }
    req.insert_header(XFP, if tls { "https" } else { "http" })?;
    match host {
        Some(h) => req.insert_header(XFH, h)?,
        None => {
            req.remove_header(XFH);
        }
    }
    Ok(())
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
    fn forwarded_for_is_appended_and_proto_host_are_replaced() {
        let mut r = req(&[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
        ]);
        set_forwarded(&mut r, "127.0.0.1".parse().ok(), false, Some("app.test")).expect("set");
        assert_eq!(get(&r, "x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
        assert_eq!(get(&r, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&r, "x-forwarded-host"), Some("app.test"));
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
        strip_request_hop_by_hop(&mut r, false).expect("strip");
        for h in ["connection", "x-secret", "keep-alive", "te", "upgrade"] {
            assert!(get(&r, h).is_none(), "{h} should be gone");
        }
        assert_eq!(get(&r, "x-kept"), Some("yes"));
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

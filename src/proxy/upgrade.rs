//! Which client requests are upgrades, and whether a WebSocket opening
//! handshake is well formed, decided before anything goes upstream.
//!
//! An `Upgrade` header counts only on an HTTP/1.1 request that also names
//! `upgrade` in `Connection` (RFC 9110 §7.8: the sender must send both, and an
//! HTTP/1.0 `Upgrade` is ignored); otherwise it is removed here, so the
//! request is proxied as a plain one and no `Connection: upgrade` is invented
//! for the upstream. A WebSocket upgrade must then be the handshake of
//! RFC 6455 §4.2.1 — `GET`, one `Sec-WebSocket-Key` that is base64 of 16
//! bytes, `Sec-WebSocket-Version: 13` — or it is answered here: 400 for a
//! malformed handshake, 426 with `Sec-WebSocket-Version: 13` for another
//! version (§4.4). The app never sees a handshake it could misread.
//! Other upgrade protocols pass as before.

use base64::Engine as _;
use http::header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use pingora::http::RequestHeader;

/// A refused handshake: the status and the reason shown to the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400, or 426 for an unsupported WebSocket version.
    pub status: u16,
    /// What is wrong, for the response body.
    pub why: &'static str,
}

impl Refusal {
    /// The plain-text response body.
    pub fn body(&self) -> String {
        match self.status {
            426 => format!("426 Upgrade Required: {}\n", self.why),
            _ => format!("400 Bad Request: {}\n", self.why),
        }
    }

    /// Extra response headers: the version greenlight speaks, with a 426.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self.status {
            426 => vec![("sec-websocket-version", "13".to_string())],
            _ => Vec::new(),
        }
    }
}

/// True if any `name` header lists `token` (case-insensitive).
fn lists(req: &RequestHeader, name: &http::HeaderName, token: &str) -> bool {
    req.headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Drops an `Upgrade` that does not make an upgrade request, and checks a
/// WebSocket handshake (see the module docs).
pub fn check(req: &mut RequestHeader) -> Result<(), Refusal> {
    if !req.headers.contains_key(UPGRADE) {
        return Ok(());
    }
    if req.version != http::Version::HTTP_11 || !lists(req, &CONNECTION, "upgrade") {
        req.remove_header(&UPGRADE);
        return Ok(());
    }
    if !lists(req, &UPGRADE, "websocket") {
        return Ok(());
    }
    let bad = |why| Err(Refusal { status: 400, why });
    if req.method != http::Method::GET {
        return bad("a WebSocket handshake must be a GET");
    }
    let keys: Vec<_> = req.headers.get_all(SEC_WEBSOCKET_KEY).iter().collect();
    let [key] = keys.as_slice() else {
        return bad("a WebSocket handshake needs exactly one Sec-WebSocket-Key");
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.as_bytes().trim_ascii());
    if !decoded.is_ok_and(|k| k.len() == 16) {
        return bad("Sec-WebSocket-Key must be 16 bytes in base64");
    }
    let versions: Vec<_> = req.headers.get_all(SEC_WEBSOCKET_VERSION).iter().collect();
    match versions.as_slice() {
        [] => bad("a WebSocket handshake needs Sec-WebSocket-Version"),
        [v] if v.as_bytes().trim_ascii() == b"13" => Ok(()),
        _ => Err(Refusal {
            status: 426,
            why: "this server speaks WebSocket version 13 only",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/", None).expect("req");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("hdr");
        }
        r
    }

    fn ws(extra: &[(&str, &str)]) -> RequestHeader {
        let mut h = vec![
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
        ];
        h.extend_from_slice(extra);
        req("GET", &h)
    }

    #[test]
    fn a_valid_handshake_passes_untouched() {
        let mut r = ws(&[("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13")]);
        assert_eq!(check(&mut r), Ok(()));
        assert!(r.headers.contains_key(UPGRADE));
    }

    #[test]
    fn upgrade_without_the_connection_token_or_on_http_10_is_dropped() {
        let mut r = req("GET", &[("Upgrade", "websocket")]);
        assert_eq!(check(&mut r), Ok(()));
        assert!(!r.headers.contains_key(UPGRADE));
        let mut r = ws(&[]);
        r.set_version(http::Version::HTTP_10);
        assert_eq!(check(&mut r), Ok(()));
        assert!(!r.headers.contains_key(UPGRADE));
    }

    #[test]
    fn malformed_handshakes_get_400_and_other_versions_426() {
        let v13 = ("Sec-WebSocket-Version", "13");
        for h in [
            vec![v13],
            vec![("Sec-WebSocket-Key", "c2hvcnQ="), v13],
            vec![("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!=="), v13],
            vec![("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Key", KEY), v13],
            vec![("Sec-WebSocket-Key", KEY)],
        ] {
            assert_eq!(check(&mut ws(&h)).map_err(|r| r.status), Err(400), "{h:?}");
        }
        let mut post = ws(&[("Sec-WebSocket-Key", KEY), v13]);
        post.set_method(http::Method::POST);
        assert_eq!(check(&mut post).map_err(|r| r.status), Err(400));
        let refused = check(&mut ws(&[
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "8"),
        ]))
        .expect_err("426");
        assert_eq!(refused.status, 426);
        assert_eq!(refused.headers()[0].1, "13");
    }

    #[test]
    fn other_upgrade_protocols_are_not_checked() {
        let mut r = req("GET", &[("Upgrade", "h2c"), ("Connection", "Upgrade")]);
        assert_eq!(check(&mut r), Ok(()));
        assert!(r.headers.contains_key(UPGRADE));
    }
}

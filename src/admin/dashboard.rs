//! The live deploy dashboard: `GET /` of the admin listener.
//!
//! One self-contained page (`dashboard.html`: HTML, CSS and script in one
//! file, compiled in with `include_str!`; no CDN, no build step, works
//! offline). It shows each upstream's pools (state, drain countdown, requests
//! in flight, open WebSockets, servers and their health), a large "safe to
//! stop" light for the pool to stop next with the next command to run, the
//! sites and certificates, and the last reloads with a rejected config's
//! problems and positions; its switch and reload buttons POST to the
//! existing API after a confirmation step.
//!
//! **Refresh: a 1 s poll of `GET /api/status`, not Server-Sent Events.**
//! `EventSource` cannot send an `Authorization` header, so with a token SSE
//! would need the token in the URL (logged, kept in history) or a cookie
//! (sent on cross-site requests too: what the [`super::guard`] design
//! avoids); the page's `fetch` sends `Authorization: Bearer` like the CLI.
//! Pingora's `ServeHttp` answers with a whole body, so a stream would also
//! need a second server path. And every poll answer is the complete picture:
//! a lost one costs nothing, a reconnect needs no catching up, and a small
//! JSON a second on the admin port is negligible.
//!
//! Every verdict the page shows is the API's: the light is the pool's
//! `safe_to_stop` (the rule `greenlight switch --wait` uses, see
//! [`super::safe_to_stop`]), the next step is the upstream's `next`; the
//! script only lays them out.
//!
//! The page itself carries no data, so it is served without the token (a
//! browser cannot add a bearer header to a navigation); the Host and Origin
//! rules of [`super::guard`] still apply to it. Its script then asks for the
//! token when the API answers 401 and keeps it in `sessionStorage`. Served
//! with a Content-Security-Policy that allows only this page's own inline
//! script and style (by hash) and same-origin `fetch`, and forbids framing
//! (the buttons must not be clickjacked).

use base64::Engine;
use http::{Response, StatusCode};
use std::sync::OnceLock;

/// The page, as compiled in.
pub const PAGE: &str = include_str!("dashboard.html");

/// The text between `<tag>` and `</tag>` (the page has one of each).
fn inline(tag: &str) -> &'static str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    PAGE.find(&open)
        .map(|start| start + open.len())
        .and_then(|start| {
            PAGE[start..]
                .find(&close)
                .map(|len| &PAGE[start..start + len])
        })
        .unwrap_or("")
}

fn sha256_source(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// The Content-Security-Policy: this page's inline script and style only
/// (by hash), `fetch` to this origin only, no framing, no forms, no plugins.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            sha256_source(inline("script")),
            sha256_source(inline("style"))
        )
    })
}

/// The page with its security headers.
pub fn response() -> Response<Vec<u8>> {
    let body = PAGE.as_bytes().to_vec();
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header("content-security-policy", content_security_policy())
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_hashes_the_pages_own_script_and_style() {
        assert!(inline("script").contains("function poll"));
        assert!(inline("style").contains(".light"));
        let csp = content_security_policy();
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        // No external resource: the page works offline.
        for needle in ["http://", "https://", "src=\"//"] {
            assert!(!PAGE.contains(needle), "the page must not load {needle}");
        }
    }
}

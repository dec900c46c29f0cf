//! The per-request client limits of `limits:` checked before routing: 414
//! for an overlong target, 431 for too many or too large header fields; and
//! the keep-alive settings of the connection (`keepalive_timeout`,
//! `keepalive_requests`), set on every request so that a reload applies to
//! the next request of a kept-alive connection; a site's own
//! `keepalive_timeout` replaces the global one once the site is known.

use crate::config::model::LimitsConfig;
use pingora::proxy::Session;

/// Applies `limits` to the request: `Some((status, body))` refuses it.
pub(super) fn apply(session: &mut Session, limits: &LimitsConfig) -> Option<(u16, String)> {
    let req = session.req_header();
    let target_len = req.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > limits.max_uri_length {
        let body = format!(
            "414 URI Too Long: the request target has {target_len} bytes; the limit is {}\n",
            limits.max_uri_length
        );
        return Some((414, body));
    }
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if req.headers.len() > limits.max_headers || header_bytes > limits.max_header_size {
        let body = format!(
            "431 Request Header Fields Too Large: {} fields, {header_bytes} bytes (limits: {} fields, {} bytes)\n",
            req.headers.len(),
            limits.max_headers,
            limits.max_header_size
        );
        return Some((431, body));
    }
    if session.get_keepalive().is_some() {
        // Only shorten what the client's own Connection header allowed.
        session.set_keepalive(Some(limits.keepalive_timeout.as_secs().max(1)));
    }
    if session.get_keepalive_reuses_remaining().is_none() {
        // The first request of an HTTP/1.1 connection (HTTP/2 has no
        // count): Pingora counts the reuses down from here and closes the
        // connection after the last one's answer.
        session.set_keepalive_reuses_remaining(Some(limits.keepalive_requests - 1));
    }
    None
}

/// A site's own `keepalive_timeout` (HTTP/1.1: an HTTP/2 connection carries
/// every site's streams, so `limits.keepalive_timeout` stays its idle
/// limit): zero closes the connection after this answer, as nginx's
/// `keepalive_timeout 0` does; a longer or shorter wait replaces the global.
pub(super) fn for_site(session: &mut Session, site: &crate::plan::router::SiteRoutes) {
    let Some(t) = site.keepalive_timeout else {
        return;
    };
    if session.get_keepalive().is_none() {
        return; // the client (or an earlier limit) already ends it
    }
    if t.is_zero() {
        session.set_keepalive(None);
    } else {
        session.set_keepalive(Some(t.as_secs().max(1)));
    }
}

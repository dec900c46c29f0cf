//! What greenlight answers when a request cannot be proxied: the status for
//! an error, the short page that names the upstream, the metrics label of a
//! failed attempt, and the `https://` location of a plain-listener redirect.
//! Pure functions of the error and the request's ctx; the hooks in `mod.rs`
//! send them.

use super::RequestCtx;
use crate::metrics::UpstreamErrorKind;
use crate::plan::router as route;
use crate::state::Snapshot;
use pingora::prelude::*;
use pingora::{Error, ErrorSource, ErrorType};

/// The metrics label for a failed upstream attempt.
pub(super) fn error_kind(t: &ErrorType) -> UpstreamErrorKind {
    use ErrorType::*;
    match t {
        ConnectRefused | ConnectNoRoute => UpstreamErrorKind::Refused,
        ConnectTimedout | ReadTimedout | WriteTimedout => UpstreamErrorKind::Timeout,
        TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert => UpstreamErrorKind::Tls,
        ConnectionClosed | ReadError | WriteError => UpstreamErrorKind::Reset,
        _ => UpstreamErrorKind::Other,
    }
}

/// The status a failed request gets (0 = the client is gone, send nothing).
pub(super) fn status_for(e: &Error) -> u16 {
    use ErrorType::*;
    match (e.etype(), e.esource()) {
        (HTTPStatus(c), _) => *c,
        (ConnectTimedout | ReadTimedout | WriteTimedout, ErrorSource::Upstream) => 504,
        (ConnectTimedout, _) => 504,
        (_, ErrorSource::Upstream) => 502,
        (ReadError | WriteError | ConnectionClosed, ErrorSource::Downstream) => 0,
        (ReadTimedout, ErrorSource::Downstream) => 408,
        (_, ErrorSource::Downstream) => 400,
        (ConnectRefused | ConnectNoRoute | ConnectError, _) => 502,
        _ => 500,
    }
}

/// `404 Not Found\n`: the short page of a status.
pub(super) fn plain_status(code: u16) -> String {
    format!(
        "{code} {}\n",
        http::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    )
}

pub(super) fn error_body(code: u16, ctx: &RequestCtx) -> String {
    let (up, pool) = (ctx.upstream_name(), ctx.pool_name());
    match code {
        502 => format!(
            "502 Bad Gateway: greenlight could not get a response from upstream '{up}' (pool '{pool}')\n"
        ),
        504 => {
            format!("504 Gateway Timeout: upstream '{up}' (pool '{pool}') did not answer in time\n")
        }
        413 => "413 Content Too Large: the request body exceeds this route's limit\n".to_string(),
        503 => format!(
            "503 Service Unavailable: upstream '{up}' (pool '{pool}') has no healthy server right now\n"
        ),
        400 => "400 Bad Request\n".to_string(),
        408 => "408 Request Timeout\n".to_string(),
        c => format!(
            "{c} {}\n",
            http::StatusCode::from_u16(c)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        ),
    }
}

/// nginx's auto-redirect of a `proxy_pass` location asked for without its
/// trailing slash: `scheme://host[:port]/path/?query`, with the Host as
/// received (lowercase, without port; the local address without one) and the
/// connection's local port unless it is the scheme's default — what nginx
/// sends with its defaults (`absolute_redirect`, `port_in_redirect` on).
pub(super) fn slash_location(host: Option<&str>, tls: bool, session: &Session) -> String {
    let local = session.server_addr().and_then(|a| a.as_inet()).copied();
    let host = match (host, local) {
        (Some(h), _) => route::normalize_host(h).into_owned(),
        (None, Some(std::net::SocketAddr::V6(a))) => format!("[{}]", a.ip()),
        (None, Some(a)) => a.ip().to_string(),
        (None, None) => String::new(),
    };
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    let port = match local.map(|a| a.port()) {
        Some(p) if p != default_port => format!(":{p}"),
        _ => String::new(),
    };
    let uri = &session.req_header().uri;
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}/{query}", uri.path())
}

/// `https://host[:port]/path?query` for a redirect from a plain listener.
pub(super) fn https_location(
    snapshot: &Snapshot,
    site: usize,
    host: Option<&str>,
    session: &Session,
) -> String {
    let fallback = snapshot.config.sites.get(site).and_then(|s| {
        s.hosts.iter().find_map(|h| match h {
            crate::config::model::HostPattern::Exact(n) => Some(n.clone()),
            _ => None,
        })
    });
    let host = host
        .map(|h| route::normalize_host(h).into_owned())
        .or(fallback)
        .unwrap_or_default();
    let port = match snapshot.config.https_port() {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    };
    let pq = session
        .req_header()
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str());
    format!("https://{host}{port}{pq}")
}

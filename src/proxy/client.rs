//! The request's real client IP, found once per request at the start of
//! `request_filter` ([`resolve`]) and read everywhere after through
//! [`client_ip`]: `X-Forwarded-For`, `X-Real-IP`, the access log, and the
//! rules that depend on the client. The rule itself (trusted proxies, the
//! header, the walk) is [`crate::plan::client_ip`]; this file only applies it
//! to a Pingora session. The connection's peer is the socket's address, or
//! the PROXY protocol header's source on a `proxy_protocol` listener (the
//! listener replaced it before any request was read).

use super::RequestCtx;
use crate::plan::client_ip::ClientIpRule;
use crate::state::Snapshot;
use pingora::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

/// The client of this request: the address a trusted proxy named, else the
/// connection's peer.
pub fn client_ip(session: &Session, ctx: &RequestCtx) -> IpAddr {
    ctx.client_ip.unwrap_or_else(|| peer_ip(session))
}

/// The connection's peer (after PROXY protocol), in canonical form.
pub(super) fn peer_ip(session: &Session) -> IpAddr {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip().to_canonical())
}

/// Sets the request's client IP under `rule`.
pub(super) fn resolve(session: &Session, ctx: &mut RequestCtx, rule: &ClientIpRule) {
    let peer = peer_ip(session);
    let (client, read) = rule.resolve_read(peer, &session.req_header().headers);
    ctx.client_ip = Some(client);
    // Kept for `set_forwarded`, which appends to this very header.
    ctx.forwarded_for = read
        .filter(|_| rule.header() == super::headers::XFF)
        .cloned();
    // The header test first: it is rarely `X-Real-IP`, and the CIDR walk
    // costs more.
    ctx.real_ip_from_proxy = rule.header() == super::headers::X_REAL_IP && rule.is_trusted(peer);
}

/// Resolves again when the routed site has its own rule (a site without
/// one keeps the top level's answer, found before routing).
pub(super) fn resolve_for_site(
    session: &Session,
    ctx: &mut RequestCtx,
    snapshot: &Snapshot,
    site: usize,
) {
    if let Some(rule) = snapshot
        .config
        .sites
        .get(site)
        .and_then(|s| s.client_ip.as_ref())
    {
        resolve(session, ctx, rule);
    }
}

/// The request's host (`:authority`, else `Host`) as a header value: the
/// client's `Host` field itself (a reference count, where a `&str` value is
/// copied and checked again).
pub(super) fn request_host_value(session: &Session) -> Option<http::HeaderValue> {
    let req = session.req_header();
    if let Some(a) = req.uri.authority() {
        return http::HeaderValue::from_str(a.as_str()).ok();
    }
    let host = req.headers.get(http::header::HOST)?;
    host.to_str().is_ok().then(|| host.clone())
}

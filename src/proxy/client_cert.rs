//! Client certificates after routing: the routed site's `client_auth:`
//! judges the certificate the connection carries, refuses the request as
//! nginx does (400), and leaves the values `$ssl_client_*` read in the ctx.
//!
//! The TLS layer never refuses a handshake for a certificate (see
//! `tls::client_auth`): the request's site decides, here, before any of its
//! steps run (nginx checks at the same point, before its phases). A request
//! whose Host names another site than its SNI was already answered 421 by
//! the router, so the site judged is the one the client's TLS session was
//! set up for.

use super::ctx::RequestCtx;
use crate::state::Snapshot;
use crate::tls::SniName;
use crate::tls::client_cert::ClientVars;
use pingora::proxy::Session;

/// Judges the connection's certificate for `site`; the answer to send when
/// the request is refused. A site without `client_auth:` (and a plain-HTTP
/// request) costs one `Option` check.
pub(super) fn check(
    session: &Session,
    ctx: &mut RequestCtx,
    snapshot: &Snapshot,
    site: usize,
) -> Option<(u16, String)> {
    if !ctx.tls {
        return None;
    }
    let auth = snapshot.config.sites.get(site)?.client_auth.as_ref()?;
    let peer = session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .and_then(|s| s.extension.get::<SniName>())
        .and_then(|n| n.client_cert.clone());
    let verdict = match &peer {
        Some(p) => p.verdict(auth),
        None => crate::tls::client_auth::Verdict::None,
    };
    ctx.client_cert = Some(Box::new(ClientVars { peer, verdict }));
    let refusal = auth.refusal(verdict)?;
    // The site's error pages and response headers apply to the answer.
    ctx.site = Some(site);
    Some((400, refusal.body().to_string()))
}

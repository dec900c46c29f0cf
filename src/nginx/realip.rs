//! nginx's real-IP module → `trusted_proxies` and `client_ip_from`.
//!
//! `set_real_ip_from` lists the peers whose header is believed;
//! `real_ip_header` names the header (nginx's default is `X-Real-IP`);
//! greenlight always walks the header from the right past trusted
//! addresses (`real_ip_recursive on`).

use super::convert::{ClientIp, Ctx, RealIp};
use super::directives::shown;

/// The greenlight keys for the real-IP directives in force, if any.
pub(crate) fn client_ip(ctx: &mut Ctx<'_>, r: &RealIp<'_>) -> Option<ClientIp> {
    let first = r.from.list.first()?;
    let mut trusted = Vec::new();
    for d in &r.from.list {
        let v = d.arg0();
        if v == "unix:" {
            ctx.note(d, "'set_real_ip_from unix:' is not needed: greenlight does not listen on unix sockets");
            continue;
        }
        if v.contains('$')
            || !v
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ".:/".contains(c))
        {
            ctx.warn(
                d,
                format!("'{}' is not an address or CIDR greenlight can read (host names are not resolved here); left out, so that peer's header is not believed", shown(d)),
            );
            continue;
        }
        if !trusted.iter().any(|t| t == v) {
            trusted.push(v.to_string());
        }
    }
    let from = match r.header {
        None => Some("x-real-ip".to_string()),
        Some(h) => {
            let v = h.arg0().to_ascii_lowercase();
            if v == "proxy_protocol" {
                ctx.note(
                    h,
                    "'real_ip_header proxy_protocol' is built in: a listener with `proxy_protocol: true` takes the client address from the PROXY header, so no header is believed here (trusted_proxies: [])",
                );
                return Some(ClientIp {
                    trusted: Vec::new(),
                    from: None,
                    at: ctx.at(h),
                });
            } else {
                Some(v)
            }
        }
    };
    if let Some(rec) = r.recursive
        && rec.arg0() == "off"
    {
        ctx.note(
            rec,
            "'real_ip_recursive off': greenlight always skips trusted addresses from the right of the header (like 'on'); the result differs only when a trusted proxy's own address is the last one in it",
        );
    }
    if trusted.is_empty() {
        return None;
    }
    Some(ClientIp {
        trusted,
        from: from.filter(|f| f != "x-forwarded-for"),
        at: ctx.at(first),
    })
}

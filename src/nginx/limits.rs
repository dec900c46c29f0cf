//! Client limits: nginx's client timeouts, header buffers and HTTP/2 stream
//! limit become greenlight's global `limits:` section.
//!
//! nginx sets these per `http`, `server` (and some per `location`) block;
//! greenlight has one value for every client. When the nginx configuration
//! uses several values (counting nginx's default where a server does not set
//! one), the largest is kept, so no client that nginx served is refused, and
//! every other value is warned about. A limit nginx never sets is not
//! emitted: greenlight's own default applies (the README lists where those
//! differ from nginx's).

use super::addr::{self, format_duration};
use super::convert::{Ctx, Setting};
use super::directives::shown;
use super::parse::Directive;

/// Where a directive stands: greenlight's limits are global, nginx's are
/// inherited from `http` by servers and from servers by locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Scope {
    /// The main or `http` level.
    #[default]
    Http,
    /// Inside the n-th `server` block.
    Server(usize),
    /// Inside a location of the n-th `server` block.
    Location(usize),
}

/// A greenlight `limits.*` key the converter can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitKey {
    HeaderTimeout,
    MaxUriLength,
    MaxHeaderSize,
    KeepaliveTimeout,
    BodyTimeout,
    SendTimeout,
    H2Streams,
    KeepaliveRequests,
}

impl LimitKey {
    /// In the order of `config/example.yaml`.
    const ALL: [LimitKey; 8] = [
        LimitKey::HeaderTimeout,
        LimitKey::MaxUriLength,
        LimitKey::MaxHeaderSize,
        LimitKey::KeepaliveTimeout,
        LimitKey::KeepaliveRequests,
        LimitKey::BodyTimeout,
        LimitKey::SendTimeout,
        LimitKey::H2Streams,
    ];

    /// A number of things, not a time or a size.
    fn is_count(self) -> bool {
        matches!(self, LimitKey::H2Streams | LimitKey::KeepaliveRequests)
    }

    fn key(self) -> &'static str {
        match self {
            LimitKey::HeaderTimeout => "header_timeout",
            LimitKey::MaxUriLength => "max_uri_length",
            LimitKey::MaxHeaderSize => "max_header_size",
            LimitKey::KeepaliveTimeout => "keepalive_timeout",
            LimitKey::BodyTimeout => "body_timeout",
            LimitKey::SendTimeout => "send_timeout",
            LimitKey::H2Streams => "h2_max_concurrent_streams",
            LimitKey::KeepaliveRequests => "keepalive_requests",
        }
    }

    /// nginx's value where the configuration does not set one.
    fn nginx_default(self) -> u64 {
        match self {
            LimitKey::HeaderTimeout | LimitKey::BodyTimeout | LimitKey::SendTimeout => 60_000,
            LimitKey::KeepaliveTimeout => 75_000,
            LimitKey::MaxUriLength => 8 * 1024,
            LimitKey::MaxHeaderSize => 4 * 8 * 1024,
            LimitKey::H2Streams => 128,
            LimitKey::KeepaliveRequests => 1000,
        }
    }

    fn format(self, v: u64) -> String {
        match self {
            LimitKey::HeaderTimeout
            | LimitKey::KeepaliveTimeout
            | LimitKey::BodyTimeout
            | LimitKey::SendTimeout => format_duration(v),
            LimitKey::MaxUriLength | LimitKey::MaxHeaderSize => format_size(v),
            LimitKey::H2Streams | LimitKey::KeepaliveRequests => v.to_string(),
        }
    }
}

/// One value nginx sets for a limit.
#[derive(Debug, Clone)]
pub(crate) struct LimitSeen<'a> {
    key: LimitKey,
    /// Milliseconds, bytes or a count.
    value: u64,
    d: &'a Directive,
    scope: Scope,
    /// Extra words for the comment (how the value was derived).
    detail: Option<String>,
}

/// One emitted `limits:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitLine {
    /// `key: value`.
    pub text: String,
    /// Its comment.
    pub why: String,
}

/// Records `d` when it is a client limit greenlight has a key for; returns
/// false when it is not one.
pub(crate) fn record<'a>(ctx: &mut Ctx<'a>, d: &'a Directive) -> bool {
    let name = d.name.as_str();
    let key = match name {
        "client_header_timeout" => LimitKey::HeaderTimeout,
        "client_body_timeout" => LimitKey::BodyTimeout,
        "send_timeout" => LimitKey::SendTimeout,
        "keepalive_timeout" => LimitKey::KeepaliveTimeout,
        "http2_max_concurrent_streams" => LimitKey::H2Streams,
        "keepalive_requests" => LimitKey::KeepaliveRequests,
        "large_client_header_buffers" => {
            header_buffers(ctx, d);
            return true;
        }
        _ => return false,
    };
    let args: Vec<&str> = d.args.iter().map(String::as_str).collect();
    let value = match (key, args.as_slice()) {
        (LimitKey::H2Streams | LimitKey::KeepaliveRequests, [n]) => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0 && *n <= u64::from(u32::MAX)),
        (LimitKey::KeepaliveTimeout, [t, header]) => {
            ctx.warn(
                d,
                format!("the second value of '{}' (the 'Keep-Alive: timeout={header}' response header) was not converted: greenlight does not send that header", shown(d)),
            );
            addr::parse_duration(t)
        }
        (_, [t]) if !key.is_count() => addr::parse_duration(t),
        _ => None,
    };
    match value {
        // A server's `keepalive_timeout 0` becomes its site's (see `resolve`).
        Some(0) if key == LimitKey::KeepaliveTimeout && matches!(ctx.scope, Scope::Server(_)) => {
            push(ctx, key, 0, d, None)
        }
        Some(0) if key == LimitKey::KeepaliveTimeout => ctx.warn(
            d,
            "'keepalive_timeout 0' (no keep-alive) is only converted in a server block (a site's keepalive_timeout: 0); here greenlight keeps idle client connections open for limits.keepalive_timeout, its default",
        ),
        Some(v) if v > 0 => push(ctx, key, v, d, None),
        _ => {
            let what = if key.is_count() {
                "a number above zero"
            } else {
                "a time above zero (like 30s, 5m)"
            };
            ctx.warn(
                d,
                format!(
                    "'{}' is not {what}, so limits.{} was not set from it",
                    shown(d),
                    key.key()
                ),
            );
        }
    }
    true
}

/// `large_client_header_buffers NUMBER SIZE`: the request line must fit one
/// buffer (414 beyond, like greenlight's `max_uri_length`, which counts the
/// target only) and the whole header NUMBER of them (`max_header_size`).
fn header_buffers<'a>(ctx: &mut Ctx<'a>, d: &'a Directive) {
    let parsed = match d.args.as_slice() {
        [n, size] => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .zip(size_bytes(size).filter(|s| *s > 0)),
        _ => None,
    };
    let Some((n, size)) = parsed else {
        ctx.warn(
            d,
            format!(
                "'{}' is not a number and a size (like 4 8k), so limits.max_uri_length and max_header_size were not set from it",
                shown(d)
            ),
        );
        return;
    };
    let detail = format!("{n} buffers of {}", format_size(size));
    push(ctx, LimitKey::MaxUriLength, size, d, None);
    push(
        ctx,
        LimitKey::MaxHeaderSize,
        n.saturating_mul(size),
        d,
        Some(detail),
    );
}

fn push<'a>(
    ctx: &mut Ctx<'a>,
    key: LimitKey,
    value: u64,
    d: &'a Directive,
    detail: Option<String>,
) {
    let scope = ctx.scope;
    ctx.limits.push(LimitSeen {
        key,
        value,
        d,
        scope,
        detail,
    });
}

/// Per nginx server block (its index), the `keepalive_timeout` its site
/// gets because it differs from the global one.
pub(crate) type SiteKeepalive<'a> = Vec<(usize, Setting<'a, String>)>;

/// The `limits:` lines for everything recorded, warning about every value
/// that greenlight's single global value replaces. `servers` is the number
/// of nginx server blocks (a limit not set on every one of them keeps the
/// http-level value, or nginx's default, somewhere). `keepalive_timeout`
/// is also a site key: a server block's own value becomes its site's.
pub(crate) fn resolve<'a>(
    ctx: &mut Ctx<'a>,
    servers: usize,
) -> (Vec<LimitLine>, SiteKeepalive<'a>) {
    let seen = std::mem::take(&mut ctx.limits);
    let mut lines = Vec::new();
    let mut site_keepalive = Vec::new();
    for key in LimitKey::ALL {
        let of_key: Vec<&LimitSeen<'_>> = seen.iter().filter(|s| s.key == key).collect();
        if of_key.is_empty() {
            continue;
        }
        if key == LimitKey::KeepaliveTimeout {
            let (line, per_site) = keepalive(ctx, &of_key, servers);
            lines.extend(line);
            site_keepalive = per_site;
            continue;
        }
        let mut overriding: Vec<usize> = of_key
            .iter()
            .filter_map(|s| match s.scope {
                Scope::Server(n) => Some(n),
                _ => None,
            })
            .collect();
        overriding.sort_unstable();
        overriding.dedup();
        let base_applies = overriding.len() < servers;
        let http_level = of_key.iter().any(|s| s.scope == Scope::Http);
        // The values nginx uses somewhere; None is nginx's default.
        let mut candidates: Vec<(u64, Option<&LimitSeen<'_>>)> = of_key
            .iter()
            .filter(|s| s.scope != Scope::Http || base_applies)
            .map(|s| (s.value, Some(*s)))
            .collect();
        if base_applies && !http_level {
            candidates.push((key.nginx_default(), None));
        }
        let Some(value) = candidates.iter().map(|(v, _)| *v).max() else {
            continue;
        };
        // Credit the first directive with that value (nginx's default only
        // when no directive has it).
        let source = candidates
            .iter()
            .filter(|(v, _)| *v == value)
            .find_map(|(_, s)| *s);
        let shown_value = key.format(value);
        let agree = candidates.iter().all(|(v, _)| *v == value);
        let why = match (source, agree) {
            (Some(s), true) => {
                let mut why = format!("from {}", ctx.at(s.d));
                if let Some(detail) = &s.detail {
                    why.push_str(&format!(" ({detail})"));
                }
                why
            }
            (Some(s), false) => format!(
                "from {}: the largest value this nginx configuration uses (see the warnings)",
                ctx.at(s.d)
            ),
            (None, _) => "nginx's default, in force where it is not set: the largest value this nginx configuration uses (see the warnings)".to_string(),
        };
        for s in of_key.iter().filter(|s| s.value != value) {
            let default = if source.is_none() {
                ", nginx's default"
            } else {
                ""
            };
            ctx.warn(
                s.d,
                format!(
                    "'{}' was not converted as written: greenlight has one limits.{} for every client, set to {shown_value}{default}, the largest value this nginx configuration uses",
                    shown(s.d),
                    key.key()
                ),
            );
        }
        lines.push(LimitLine {
            text: format!("{}: {shown_value}", key.key()),
            why,
        });
    }
    (lines, site_keepalive)
}

/// Gives each site made from a server block with its own keep-alive value
/// (`servers[n]` is block n) that value.
pub(crate) fn give_sites<'a>(
    sites: &mut [super::convert::Site<'a>],
    servers: &[&'a Directive],
    keepalive: SiteKeepalive<'a>,
) {
    for (n, value) in keepalive {
        let Some(server) = servers.get(n) else {
            continue;
        };
        for site in sites.iter_mut().filter(|s| std::ptr::eq(s.server, *server)) {
            site.keepalive = Some(value.clone());
        }
    }
}

/// `keepalive_timeout`: the global value is the one server blocks without
/// their own inherit (the http level's, or nginx's 75s); each server block
/// with another value gives its site that value (`0`: no keep-alive).
/// Values in locations stay warnings: greenlight's is per site.
fn keepalive<'a>(
    ctx: &mut Ctx<'a>,
    of_key: &[&LimitSeen<'a>],
    servers: usize,
) -> (Option<LimitLine>, SiteKeepalive<'a>) {
    let key = LimitKey::KeepaliveTimeout;
    let http = of_key.iter().find(|s| s.scope == Scope::Http);
    let mut own: Vec<&LimitSeen<'a>> = Vec::new();
    for s in of_key
        .iter()
        .filter(|s| matches!(s.scope, Scope::Server(_)))
    {
        // The last one of a block wins, as in nginx's merge.
        own.retain(|o| o.scope != s.scope);
        own.push(s);
    }
    let base_applies = own.len() < servers;
    let (global, why) = match (http, base_applies) {
        (Some(h), _) => (h.value, format!("from {}", ctx.at(h.d))),
        (None, true) => (key.nginx_default(), "nginx's default".to_string()),
        (None, false) => {
            // Every block sets its own: the global only bounds HTTP/2.
            let s = own.iter().max_by_key(|s| s.value).copied();
            match s {
                Some(s) => (s.value, format!("from {}", ctx.at(s.d))),
                None => return (None, Vec::new()),
            }
        }
    };
    let mut per_site = Vec::new();
    for s in &own {
        if s.value != global
            && let Scope::Server(n) = s.scope
        {
            let value = if s.value == 0 {
                "0".to_string()
            } else {
                key.format(s.value)
            };
            per_site.push((n, Setting { value, d: s.d }));
        }
    }
    for s in of_key.iter() {
        let Scope::Location(n) = s.scope else {
            continue;
        };
        let server = own
            .iter()
            .find(|o| o.scope == Scope::Server(n))
            .map_or(global, |o| o.value);
        if s.value == server {
            continue;
        }
        ctx.warn(
            s.d,
            format!(
                "'{}' in a location was not converted: greenlight's keepalive_timeout is per site (its server block's value applies)",
                shown(s.d)
            ),
        );
    }
    let line = (http.is_some() || !per_site.is_empty() || !base_applies).then(|| LimitLine {
        text: format!("{}: {}", key.key(), key.format(global)),
        why: if per_site.is_empty() {
            why
        } else {
            format!("{why}; server blocks with their own value have it on their site")
        },
    });
    (line, per_site)
}

/// An nginx size (`512`, `8k`, `1m`, `1g`) in bytes.
fn size_bytes(s: &str) -> Option<u64> {
    let (num, mult) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                _ => return None,
            };
            (s.get(..i)?, mult)
        }
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Bytes as a greenlight size with the largest exact unit.
fn format_size(b: u64) -> String {
    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;
    if b >= G && b.is_multiple_of(G) {
        format!("{}g", b / G)
    } else if b >= M && b.is_multiple_of(M) {
        format!("{}m", b / M)
    } else if b >= K && b.is_multiple_of(K) {
        format!("{}k", b / K)
    } else {
        b.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_write_like_nginx_and_greenlight() {
        assert_eq!(size_bytes("16k"), Some(16 * 1024));
        assert_eq!(size_bytes("1M"), Some(1 << 20));
        assert_eq!(size_bytes("512"), Some(512));
        assert_eq!(size_bytes("k"), None);
        assert_eq!(size_bytes("8x"), None);
        assert_eq!(format_size(64 * 1024), "64k");
        assert_eq!(format_size(1 << 20), "1m");
        assert_eq!(format_size(1500), "1500");
    }
}

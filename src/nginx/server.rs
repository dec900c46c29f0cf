//! Analysis of one `server` block: its listens, names, certificates,
//! redirects to https, and the routes made from its locations.

use std::net::Ipv4Addr;

use super::addr::{self, BadAddr, ListenAddr};
use super::convert::{
    Ctx, Host, HttpLevel, Inherit, Listeners, Route, Target, TargetKey, UpstreamDef, common,
    set_cert,
};
use super::directives::shown;
use super::limits::Scope;
use super::parse::Directive;

/// What one `server` block contributes.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo<'a> {
    /// The `server` directive.
    pub d: &'a Directive,
    /// Some listen has `ssl`.
    pub has_tls: bool,
    /// Some listen is plain HTTP.
    pub has_plain: bool,
    /// The first plain-HTTP listen.
    pub first_plain_listen: Option<&'a Directive>,
    /// A listen with `default_server`.
    pub listen_default: Option<&'a Directive>,
    /// The first `server_name`.
    pub server_name: Option<&'a Directive>,
    /// Host names, lower-case, in order.
    pub hosts: Vec<Host<'a>>,
    /// The `server_name` with `_`.
    pub catch_all: Option<&'a Directive>,
    /// `ssl_certificate` in force (own or http level).
    pub cert: Option<&'a Directive>,
    /// `ssl_certificate_key` in force (own or http level).
    pub key: Option<&'a Directive>,
    /// Server-level settings (http level included).
    pub inh: Inherit<'a>,
    /// Routes from its locations.
    pub routes: Vec<Route<'a>>,
    /// `return 301 https://$host$request_uri` (server level, `location /`
    /// or certbot's `if ($host = ...)`), with the status code.
    pub redirects: Vec<(&'a Directive, u16)>,
    /// `if ($scheme = http) { return 301 https://... }`.
    pub scheme_redirect: Option<(&'a Directive, u16)>,
}

/// Directives that make a location answer by itself (so a missing
/// `proxy_pass` needs no extra warning).
const CONTENT_HANDLERS: &[&str] = &[
    "root",
    "alias",
    "try_files",
    "index",
    "autoindex",
    "fastcgi_pass",
    "uwsgi_pass",
    "scgi_pass",
    "grpc_pass",
    "memcached_pass",
    "stub_status",
    "empty_gif",
    "internal",
    "deny",
];

/// Analyses a `server` block.
pub(crate) fn analyze<'a>(
    ctx: &mut Ctx<'a>,
    d: &'a Directive,
    http: &HttpLevel<'a>,
    defs: &[UpstreamDef<'a>],
    listeners: &mut Listeners<'a>,
) -> ServerInfo<'a> {
    let ssl_on = d
        .children()
        .iter()
        .any(|c| c.name == "ssl" && c.arg0() == "on");
    let mut info = ServerInfo {
        d,
        has_tls: false,
        has_plain: false,
        first_plain_listen: None,
        listen_default: None,
        server_name: None,
        hosts: Vec::new(),
        catch_all: None,
        cert: None,
        key: None,
        inh: http.inh.clone(),
        routes: Vec::new(),
        redirects: Vec::new(),
        scheme_redirect: None,
    };
    let mut cert = None;
    let mut key = None;
    let mut locations = Vec::new();
    let mut returns = Vec::new();
    let mut ifs = Vec::new();
    let mut saw_listen = false;
    for c in d.children() {
        match (c.name.as_str(), c.block.is_some()) {
            ("listen", false) => {
                saw_listen = true;
                listen(ctx, c, ssl_on, &mut info, listeners);
            }
            ("server_name", false) => server_name(ctx, c, &mut info),
            ("ssl_certificate", false) => set_cert(ctx, &mut cert, c),
            ("ssl_certificate_key", false) => set_cert(ctx, &mut key, c),
            ("ssl", false) if c.arg0() == "on" => ctx.note(
                c,
                "'ssl on' is obsolete nginx syntax; the listens of this server were converted as TLS listeners",
            ),
            ("location", true) => locations.push(c),
            ("return", false) => returns.push(c),
            ("if", true) => ifs.push(c),
            _ => {
                if !common(ctx, c, &mut info.inh) {
                    ctx.unsupported(c);
                }
            }
        }
    }
    if !saw_listen {
        let a = "0.0.0.0:80".to_string();
        listeners.add(ctx, a.clone(), a, None, ssl_on, d);
        if ssl_on {
            info.has_tls = true;
        } else {
            info.has_plain = true;
            info.first_plain_listen = Some(d);
        }
        ctx.note(
            d,
            "this server block has no 'listen': nginx listens on *:80 by default, so a listener 0.0.0.0:80 was emitted",
        );
    }
    info.cert = cert.or(http.cert);
    info.key = key.or(http.key);

    let own = exact_hosts(&info.hosts);
    for i in ifs {
        match if_redirect(i, &own) {
            Some((IfKind::Host, code)) => info.redirects.push((i, code)),
            Some((IfKind::Scheme, code)) if info.has_plain => info.scheme_redirect = Some((i, code)),
            Some((IfKind::Scheme, _)) => ctx.note(
                i,
                "this redirect of plain-HTTP requests is never used: the server only listens with TLS",
            ),
            None => ctx.warn(i, if_warning(i)),
        }
    }
    let host_ifs = !info.redirects.is_empty();
    for r in returns {
        if let Some(code) = https_redirect(r, &own) {
            info.redirects.push((r, code));
        } else if host_ifs && r.args.len() == 1 && r.arg0() == "404" {
            ctx.note(
                r,
                "'return 404' is certbot's answer for hosts it does not redirect; not needed: greenlight answers unknown hosts itself",
            );
        } else {
            ctx.warn(r, return_warning(r));
        }
    }
    let inh = info.inh.clone();
    let outer = ctx.scope;
    if let Scope::Server(n) = outer {
        ctx.scope = Scope::Location(n);
    }
    for l in locations {
        location(ctx, l, &inh, defs, &mut info);
    }
    ctx.scope = outer;
    info
}

fn exact_hosts(hosts: &[Host<'_>]) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| !h.name.starts_with('*'))
        .map(|h| h.name.clone())
        .collect()
}

fn listen<'a>(
    ctx: &mut Ctx<'a>,
    c: &'a Directive,
    ssl_on: bool,
    info: &mut ServerInfo<'a>,
    listeners: &mut Listeners<'a>,
) {
    let Some(arg) = c.args.first() else {
        ctx.warn(c, "listen needs an address or port; ignored");
        return;
    };
    let mut tls = ssl_on;
    let mut http2 = false;
    let mut quic = false;
    let mut dual_stack = false;
    let mut tuning: Vec<&str> = Vec::new();
    for f in c.args.iter().skip(1) {
        let (flag, value) = f.split_once('=').unwrap_or((f.as_str(), ""));
        match flag {
            "ssl" => tls = true,
            "http2" => http2 = true,
            "default_server" | "default" => {
                info.listen_default.get_or_insert(c);
            }
            "ipv6only" => dual_stack = value == "off",
            "quic" | "http3" => quic = true,
            "proxy_protocol" => ctx.warn(
                c,
                format!("listen parameter 'proxy_protocol' is not supported: greenlight does not read the PROXY protocol, so clients behind the load balancer would show its address; turn PROXY protocol off in front of {arg}"),
            ),
            "reuseport" | "backlog" | "rcvbuf" | "sndbuf" | "deferred" | "bind" | "fastopen"
            | "so_keepalive" | "accept_filter" | "setfib" | "multipath" => tuning.push(f),
            "spdy" => ctx.note(c, "listen parameter 'spdy' is obsolete; greenlight offers HTTP/2 on TLS listeners"),
            _ => ctx.warn(
                c,
                format!("listen parameter '{f}' is not supported and was not converted"),
            ),
        }
    }
    if !tuning.is_empty() {
        let (what, verb) = if tuning.len() == 1 {
            ("parameter", "is")
        } else {
            ("parameters", "are")
        };
        ctx.note(
            c,
            format!(
                "listen {what} '{}' {verb} not needed: greenlight sets up its sockets itself",
                tuning.join(" ")
            ),
        );
    }
    if quic {
        ctx.warn(
            c,
            format!("'listen {arg} quic' was not converted: HTTP/3 (QUIC) is not supported by greenlight yet; clients fall back to HTTP/2 over TLS"),
        );
        return;
    }
    if http2 {
        if tls {
            ctx.note(
                c,
                "listen parameter 'http2' is built in: greenlight offers HTTP/2 on TLS listeners through ALPN",
            );
        } else {
            ctx.warn(
                c,
                format!("listen parameter 'http2' on the plain listener {arg} (HTTP/2 without TLS) is not supported: greenlight offers HTTP/2 on TLS listeners only"),
            );
        }
    }
    let (key, address, edit) = match addr::parse_listen(arg) {
        ListenAddr::Ok(a) => (a.clone(), a, None),
        ListenAddr::Localhost(a) => {
            ctx.note(
                c,
                format!("listen {arg} became {a} (greenlight listens on IP addresses)"),
            );
            (a.clone(), a, None)
        }
        ListenAddr::Unix => {
            ctx.warn(
                c,
                format!("listen {arg} (a unix socket) is not supported by greenlight and was not converted"),
            );
            return;
        }
        ListenAddr::Bad(bad) => {
            ctx.warn(
                c,
                format!(
                    "listen {arg}: {}; a placeholder address was emitted that you must edit",
                    bad.reason()
                ),
            );
            let edit = format!(
                "{}; put the address to listen on",
                bad.reason_at(&ctx.at(c))
            );
            (format!("unparsed {arg}"), bad.placeholder(), Some(edit))
        }
    };
    let bound = address.clone();
    listeners.add(ctx, key, address, edit, tls, c);
    if dual_stack {
        dual_stack_listener(ctx, c, &bound, tls, listeners);
    }
    if tls {
        info.has_tls = true;
    } else {
        info.has_plain = true;
        info.first_plain_listen.get_or_insert(c);
    }
}

/// `listen [::]:PORT ipv6only=off` is one nginx socket for IPv6 and IPv4.
/// greenlight's `[::]` listeners are IPv6-only (nginx's default,
/// `ipv6only=on`), so the IPv4 half becomes its own `0.0.0.0:PORT` listener;
/// the two bind side by side.
fn dual_stack_listener<'a>(
    ctx: &mut Ctx<'a>,
    c: &'a Directive,
    address: &str,
    tls: bool,
    listeners: &mut Listeners<'a>,
) {
    let arg = c.arg0();
    match address.parse::<std::net::SocketAddr>() {
        Ok(a) if a.is_ipv6() && a.ip().is_unspecified() => {
            let v4 = format!("0.0.0.0:{}", a.port());
            ctx.note(
                c,
                format!("listen {arg} ipv6only=off (one socket for IPv6 and IPv4) became two listeners, {address} and {v4}: greenlight's [::] listeners are IPv6-only"),
            );
            listeners.add(ctx, v4.clone(), v4, None, tls, c);
        }
        _ => ctx.note(
            c,
            format!("listen parameter 'ipv6only=off' is not needed: it only matters on the [::] wildcard, and {arg} is not one"),
        ),
    }
}

fn server_name<'a>(ctx: &mut Ctx<'a>, c: &'a Directive, info: &mut ServerInfo<'a>) {
    info.server_name.get_or_insert(c);
    let push = |info: &mut ServerInfo<'a>, name: String| {
        if !info.hosts.iter().any(|h| h.name == name) {
            info.hosts.push(Host { name, d: c });
        }
    };
    for n in &c.args {
        let lower = n.to_ascii_lowercase();
        if n == "_" {
            info.catch_all.get_or_insert(c);
        } else if n.is_empty() {
            ctx.note(
                c,
                "server_name \"\" (requests without a Host header) is not needed: greenlight sends those to the default site",
            );
        } else if n.starts_with('~') {
            ctx.warn(
                c,
                format!("server_name '{n}' is a regular expression, which greenlight does not support: it matches exact names and '*.' wildcards; add the names it should match to the site's hosts"),
            );
        } else if n.contains('$') {
            ctx.warn(
                c,
                format!("server_name '{n}' uses a variable, which greenlight does not support; list the host names instead"),
            );
        } else if let Some(rest) = lower.strip_prefix('.').filter(|r| addr::is_dns_name(r)) {
            push(info, rest.to_string());
            push(info, format!("*.{rest}"));
            ctx.note(
                c,
                format!("server_name '{n}' became hosts '{rest}' and '*.{rest}': nginx matches subdomains of any depth, greenlight's '*.' matches one label (a.{rest}, not a.b.{rest})"),
            );
        } else if let Some(rest) = lower.strip_prefix("*.").filter(|r| addr::is_dns_name(r)) {
            push(info, lower.clone());
            ctx.note(
                c,
                format!("server_name '{n}': nginx matches subdomains of any depth, greenlight's '*.' matches one label (a.{rest}, not a.b.{rest})"),
            );
        } else if lower.ends_with(".*") {
            ctx.warn(
                c,
                format!("server_name '{n}' (a wildcard at the end) is not supported by greenlight; list the full host names instead"),
            );
        } else if addr::is_dns_name(&lower) {
            push(info, lower);
        } else {
            ctx.warn(
                c,
                format!("server_name '{n}' is not a valid host name and was left out"),
            );
        }
    }
}

/// Recognises `return 301 https://$host$request_uri` (also 302/303/307/308,
/// `$server_name`, `$http_host`, or the server's only host name written out).
pub(crate) fn https_redirect(d: &Directive, own_hosts: &[String]) -> Option<u16> {
    if d.name != "return" {
        return None;
    }
    let [code, url] = d.args.as_slice() else {
        return None;
    };
    let code: u16 = code
        .parse()
        .ok()
        .filter(|c| matches!(c, 301 | 302 | 303 | 307 | 308))?;
    let host = url.strip_prefix("https://")?.strip_suffix("$request_uri")?;
    let same_host = matches!(host, "$host" | "$server_name" | "$http_host")
        || matches!(own_hosts, [only] if only.eq_ignore_ascii_case(host));
    same_host.then_some(code)
}

enum IfKind {
    /// `if ($host = name)`, as certbot writes it.
    Host,
    /// `if ($scheme = http)` and equivalents.
    Scheme,
}

fn if_condition(i: &Directive) -> Vec<String> {
    let joined = i.args.join(" ");
    let t = joined.trim();
    let t = t.strip_prefix('(').unwrap_or(t);
    let t = t.strip_suffix(')').unwrap_or(t);
    t.split_whitespace().map(str::to_string).collect()
}

fn if_redirect(i: &Directive, own: &[String]) -> Option<(IfKind, u16)> {
    let [only] = i.children() else {
        return None;
    };
    let cond = if_condition(i);
    let cond: Vec<&str> = cond.iter().map(String::as_str).collect();
    match cond.as_slice() {
        ["$host", "=", h] => {
            let code = https_redirect(only, &[h.to_string()])?;
            Some((IfKind::Host, code))
        }
        ["$scheme", "=", "http"]
        | ["$scheme", "!=", "https"]
        | ["$https", "="]
        | ["$https", "!=", "on"]
        | ["$server_port", "=", "80"] => {
            let code = https_redirect(only, own)?;
            Some((IfKind::Scheme, code))
        }
        _ => None,
    }
}

fn count(d: &Directive) -> usize {
    d.children().iter().map(|c| 1 + count(c)).sum()
}

fn if_warning(i: &Directive) -> String {
    format!(
        "directive 'if ({})' is not supported: greenlight has no conditions, so the {} directive(s) inside it were not converted; move that logic into the app",
        if_condition(i).join(" "),
        count(i)
    )
}

fn return_warning(r: &Directive) -> String {
    let code = r.arg0();
    if code.starts_with('3') && r.args.len() == 2 {
        format!(
            "directive '{}' is not supported: greenlight only redirects plain HTTP to https on the same host and path (plain_http: redirect on a TLS site); do other redirects in the app",
            shown(r)
        )
    } else {
        format!(
            "directive '{}' is not supported: greenlight does not answer requests itself (it proxies them), so this response is not carried over",
            shown(r)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocKind {
    Prefix,
    Exact,
    Regex,
    Named,
}

fn location_args(d: &Directive) -> Option<(LocKind, String)> {
    match d.args.as_slice() {
        [m, p] => match m.as_str() {
            "=" => Some((LocKind::Exact, p.clone())),
            "^~" => Some((LocKind::Prefix, p.clone())),
            "~" | "~*" => Some((LocKind::Regex, p.clone())),
            _ => None,
        },
        [p] => {
            if p.starts_with('@') {
                Some((LocKind::Named, p.clone()))
            } else if let Some(rest) = p.strip_prefix("^~") {
                Some((LocKind::Prefix, rest.to_string()))
            } else if let Some(rest) = p.strip_prefix('=') {
                Some((LocKind::Exact, rest.to_string()))
            } else if p.starts_with('~') {
                Some((LocKind::Regex, p.clone()))
            } else {
                Some((LocKind::Prefix, p.clone()))
            }
        }
        _ => None,
    }
}

fn location<'a>(
    ctx: &mut Ctx<'a>,
    d: &'a Directive,
    parent: &Inherit<'a>,
    defs: &[UpstreamDef<'a>],
    info: &mut ServerInfo<'a>,
) {
    let spec = d.args.join(" ");
    let Some((kind, path)) = location_args(d) else {
        ctx.warn(
            d,
            format!("location '{spec}' is not a valid nginx location; not converted"),
        );
        return;
    };
    match kind {
        LocKind::Regex => {
            ctx.warn(
                d,
                format!("location '{spec}' uses a regular expression: greenlight routes are path prefixes, so this block and its {} directive(s) were not converted; add prefix routes for the paths it should serve", count(d)),
            );
            return;
        }
        LocKind::Named => {
            ctx.warn(
                d,
                format!("named location '{path}' is only reached through try_files or error_page, which greenlight does not have; its {} directive(s) were not converted", count(d)),
            );
            return;
        }
        LocKind::Prefix | LocKind::Exact => {}
    }
    if path.starts_with("/.well-known/acme-challenge") {
        ctx.warn(
            d,
            format!("location '{spec}' answered certbot's HTTP challenges and was not converted: greenlight does not serve files; with `tls: acme` greenlight gets its certificates itself, otherwise renew with certbot's standalone or DNS mode"),
        );
        return;
    }
    let own = exact_hosts(&info.hosts);
    let mut inh = parent.clone();
    let mut pass: Option<&'a Directive> = None;
    let mut explained = false;
    let mut redirect_here = false;
    let mut nested = Vec::new();
    let mut own_body = None;
    for c in d.children() {
        match (c.name.as_str(), c.block.is_some()) {
            ("proxy_pass", false) => {
                match pass {
                    Some(first) => {
                        let at = ctx.at(first);
                        ctx.warn(c, format!("a second proxy_pass in one location is ignored (the first is at {at})"));
                    }
                    None => pass = Some(c),
                }
            }
            ("location", true) => nested.push(c),
            ("return", false) => {
                explained = true;
                match https_redirect(c, &own) {
                    Some(code) if kind == LocKind::Prefix && path == "/" => {
                        info.redirects.push((c, code));
                        redirect_here = true;
                    }
                    _ => ctx.warn(c, return_warning(c)),
                }
            }
            ("if", true) => ctx.warn(c, if_warning(c)),
            _ => {
                if common(ctx, c, &mut inh) {
                    if c.name == "client_max_body_size" {
                        own_body = Some(c);
                    }
                    continue;
                }
                if CONTENT_HANDLERS.contains(&c.name.as_str()) {
                    explained = true;
                }
                ctx.unsupported(c);
            }
        }
    }
    if let (Some(c), Some(b)) = (own_body, inh.body.as_ref()) {
        let site = info
            .inh
            .body
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_else(|| "1m".to_string());
        if b.value != site {
            ctx.warn(
                c,
                format!("client_max_body_size {} in location '{spec}' is not supported per route: greenlight applies the site's max_body_size ({site}) to every route; raise the site's value if this route needs more", b.value),
            );
        }
    }
    match pass {
        Some(p) => {
            if let Some(prev) = info.routes.iter().find(|r| r.path == path) {
                let at = ctx.at(prev.loc);
                ctx.warn(
                    d,
                    format!("location '{spec}' would be route '{path}', which already exists (from {at}); not converted"),
                );
            } else if let Some(target) = proxy_target(ctx, p, defs, &path, kind == LocKind::Exact) {
                let mut notes = Vec::new();
                if kind == LocKind::Exact {
                    ctx.warn(
                        d,
                        format!("exact location '= {path}' became a prefix route: greenlight routes are prefixes, so every path under {path} now matches it too"),
                    );
                    notes.push(format!("was '= {path}' (exact) in nginx"));
                }
                notes.extend(target.route_note.clone());
                let comment = (!notes.is_empty()).then(|| notes.join("; "));
                info.routes.push(Route {
                    path: path.clone(),
                    loc: d,
                    comment,
                    target,
                    timeouts: inh.timeouts.clone(),
                    upstream: 0,
                });
            }
        }
        None if !explained && !redirect_here && nested.is_empty() => ctx.warn(
            d,
            format!("location '{spec}' has no proxy_pass, so no route was created for it (greenlight routes only proxy)"),
        ),
        None => {}
    }
    for n in nested {
        location(ctx, n, &inh, defs, info);
    }
}

fn placeholder<'a>(
    ctx: &mut Ctx<'a>,
    p: &'a Directive,
    url: &str,
    mut bad: BadAddr,
    default_port: u16,
) -> Target<'a> {
    bad.port.get_or_insert(default_port);
    ctx.warn(
        p,
        format!(
            "proxy_pass {url}: {}; a placeholder upstream address was emitted that you must edit",
            bad.reason()
        ),
    );
    Target {
        key: TargetKey::Edit(url.to_string()),
        d: p,
        addr: bad.placeholder(),
        edit: Some(format!(
            "{}; put the upstream's host:port",
            bad.reason_at(&ctx.at(p))
        )),
        comment: None,
        route_note: None,
        hint: "app".to_string(),
    }
}

/// Name hint for an inline upstream: "app" for local addresses, the host
/// name otherwise.
fn host_hint(addr: &str) -> String {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() || host == "localhost" {
        "app".to_string()
    } else {
        host.to_string()
    }
}

fn proxy_target<'a>(
    ctx: &mut Ctx<'a>,
    p: &'a Directive,
    defs: &[UpstreamDef<'a>],
    loc_path: &str,
    exact: bool,
) -> Option<Target<'a>> {
    let [url] = p.args.as_slice() else {
        ctx.warn(p, "proxy_pass needs exactly one URL; not converted");
        return None;
    };
    let lower = url.to_ascii_lowercase();
    let (https, rest) = if lower.starts_with("http://") {
        (false, url.get(7..).unwrap_or(""))
    } else if lower.starts_with("https://") {
        (true, url.get(8..).unwrap_or(""))
    } else {
        let problem = if url.starts_with('$') {
            "is an nginx variable, which is only known per request"
        } else {
            "is not an http:// URL"
        };
        return Some(placeholder(
            ctx,
            p,
            url,
            BadAddr::new(None, url, problem),
            80,
        ));
    };
    let (authority, uri) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..)),
        None => (rest, None),
    };
    let authority = authority.strip_suffix("$request_uri").unwrap_or(authority);
    let default_port = if https { 443 } else { 80 };
    if authority.starts_with("unix:") {
        let bad = BadAddr::new(
            None,
            rest,
            "is a unix socket, which greenlight upstreams do not support (make the app listen on a TCP port)",
        );
        return Some(placeholder(ctx, p, url, bad, default_port));
    }
    let (key, addr, hint) = match defs.iter().position(|u| u.name == authority) {
        Some(i) if !authority.contains(':') => (
            TargetKey::Named(i),
            String::new(),
            defs.get(i).map(|u| u.name.clone()).unwrap_or_default(),
        ),
        _ => match addr::parse_upstream_addr(authority, default_port) {
            Ok(a) => (TargetKey::Addr(a.clone()), a.clone(), host_hint(&a)),
            Err(bad) => return Some(placeholder(ctx, p, url, bad, default_port)),
        },
    };
    let mut comment = None;
    let mut route_note = None;
    if https {
        ctx.warn(
            p,
            format!("proxy_pass {url}: https:// upstreams are not supported: greenlight speaks plain HTTP to upstreams for now, so it will send plain HTTP to {authority}; point it at the upstream's plain-HTTP port"),
        );
        comment = Some(format!(
            "EDIT: nginx used https:// for this upstream ({}); greenlight speaks plain HTTP to it",
            ctx.at(p)
        ));
    }
    match uri {
        Some(u) if u.contains('$') => ctx.warn(
            p,
            format!("proxy_pass {url} builds the upstream path from variables, which greenlight does not support: it forwards the request path unchanged"),
        ),
        Some(u) if u != loc_path => {
            let (sample, nginx_sent) = if exact {
                (loc_path.to_string(), u.to_string())
            } else {
                let sample = if loc_path.ends_with('/') {
                    format!("{loc_path}example")
                } else {
                    format!("{loc_path}/example")
                };
                let tail = sample.get(loc_path.len()..).unwrap_or("");
                let sent = format!("{u}{tail}");
                (sample, sent)
            };
            route_note = Some(format!(
                "nginx sent {sample} to the upstream as {nginx_sent}; greenlight sends {sample}"
            ));
            ctx.warn(
                p,
                format!("proxy_pass {url}: nginx replaced the location prefix '{loc_path}' with '{u}', but greenlight forwards the path unchanged and this rewrite is not carried over: a request for {sample} now reaches the upstream as {sample}, not {nginx_sent}; make the app accept the full path"),
            );
        }
        _ => {}
    }
    Some(Target {
        key,
        d: p,
        addr,
        edit: None,
        comment,
        route_note,
        hint,
    })
}

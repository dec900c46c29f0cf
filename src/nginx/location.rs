//! One `location` block becomes one route: its match (nginx location
//! syntax goes into `path:` as written), what it ends in (`proxy_pass` →
//! an upstream, `return` → a redirect or a fixed answer), its rewrites and
//! the header steps nginx had in force there (see `headers.rs`).

use std::net::Ipv4Addr;

use super::addr::{self, BadAddr};
use super::answer;
use super::convert::{
    Answer, Ctx, Inherit, Rewrite, Route, Target, TargetKey, UpTls, UpstreamDef, common,
};
use super::headers;
use super::parse::Directive;
use super::server::{ServerInfo, https_redirect};
use super::vars;

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
];

/// How a location matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocKind {
    /// `location /p`.
    Prefix,
    /// `location ^~ /p`.
    PrefixNoRegex,
    /// `location = /p`.
    Exact,
    /// `location ~ re`.
    Regex,
    /// `location ~* re`.
    RegexNoCase,
    /// `location @name`.
    Named,
}

fn location_args(d: &Directive) -> Option<(LocKind, String)> {
    match d.args.as_slice() {
        [m, p] => match m.as_str() {
            "=" => Some((LocKind::Exact, p.clone())),
            "^~" => Some((LocKind::PrefixNoRegex, p.clone())),
            "~" => Some((LocKind::Regex, p.clone())),
            "~*" => Some((LocKind::RegexNoCase, p.clone())),
            _ => None,
        },
        [p] => {
            if p.starts_with('@') {
                Some((LocKind::Named, p.clone()))
            } else if let Some(rest) = p.strip_prefix("^~") {
                Some((LocKind::PrefixNoRegex, rest.to_string()))
            } else if let Some(rest) = p.strip_prefix('=') {
                Some((LocKind::Exact, rest.to_string()))
            } else if let Some(rest) = p.strip_prefix("~*") {
                Some((LocKind::RegexNoCase, rest.to_string()))
            } else if let Some(rest) = p.strip_prefix('~') {
                Some((LocKind::Regex, rest.to_string()))
            } else {
                Some((LocKind::Prefix, p.clone()))
            }
        }
        _ => None,
    }
}

/// The `path:` value for a location.
fn path_value(kind: LocKind, path: &str) -> String {
    match kind {
        LocKind::Prefix | LocKind::Named => path.to_string(),
        LocKind::PrefixNoRegex => format!("^~ {path}"),
        LocKind::Exact => format!("= {path}"),
        LocKind::Regex => format!("~ {path}"),
        LocKind::RegexNoCase => format!("~* {path}"),
    }
}

/// Converts a `location` block (and its nested locations) into routes.
pub(crate) fn location<'a>(
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
    let regex = matches!(kind, LocKind::Regex | LocKind::RegexNoCase);
    // A named location becomes a route `path: "@name"`, which only a files
    // route's `try_files … @name` reaches (see files.rs).
    if !regex && kind != LocKind::Named && !path.starts_with('/') {
        ctx.note(
            d,
            format!("location '{spec}' never matches in nginx (request paths start with '/'; a regex needs '~'), so it was left out"),
        );
        return;
    }
    // certbot's webroot: greenlight answers the challenges itself under
    // `tls: acme`; otherwise it is served as nginx did. In a plain-only
    // block it is set aside (`info.webroot`): that block usually becomes a
    // TLS site's `plain_http` redirect, and the route goes to that site
    // with `scheme: http` (see `plain::place_webroots`).
    let webroot = path.starts_with("/.well-known/acme-challenge") && !info.has_tls;
    if path.starts_with("/.well-known/acme-challenge") && ctx.acme {
        ctx.note(
            d,
            format!("location '{spec}' answered certbot's HTTP challenges and is not needed: with `tls: acme` greenlight answers them itself"),
        );
        return;
    }
    if super::access::is_auth_target(info.d, d) {
        // Its proxy_pass became the `forward_auth` of the routes whose
        // auth_request names it (see `access.rs`); never a public route.
        return;
    }
    let captures = if regex {
        vars::named_groups(&path)
    } else {
        Vec::new()
    };
    let own = info.own_hosts();
    let mut inh = parent.child();
    let mut pass: Option<&'a Directive> = None;
    let mut ret: Option<&'a Directive> = None;
    let mut rewrites: Vec<&'a Directive> = Vec::new();
    let mut if_rules = Vec::new();
    let mut method_ifs: Vec<(String, &'a Directive)> = Vec::new();
    let mut checks = Vec::new();
    let mut explained = false;
    let mut nested = Vec::new();
    let mut default_type = None;
    let mut alias = None;
    let mut try_files = None;
    let mut empty_gif = None;
    for c in d.children() {
        match (c.name.as_str(), c.block.is_some()) {
            ("proxy_pass", false) => match pass {
                Some(first) => {
                    let at = ctx.at(first);
                    ctx.warn(
                        c,
                        format!("a second proxy_pass in one location is ignored (the first is at {at})"),
                    );
                }
                None => pass = Some(c),
            },
            ("location", true) => nested.push(c),
            ("return", false) => {
                explained = true;
                match ret {
                    Some(_) => ctx.note(c, "a second 'return' in one location is never reached"),
                    None => ret = Some(c),
                }
            }
            ("rewrite", false) => rewrites.push(c),
            ("alias", false) => alias = Some(c),
            ("try_files", false) => try_files = Some(c),
            ("empty_gif", false) => (explained, empty_gif) = (true, Some(c)),
            ("if", true) => match (super::server::if_rewrite(ctx, c), method_if(c)) {
                (Some(rule), _) => if_rules.push(rule),
                (None, Some(m)) => method_ifs.push((m, c)),
                (None, None) => match super::checks::check_if(ctx, c, &inh.set_vars, &captures) {
                    Some(Some(check)) => {
                        if !rewrites.is_empty() || !if_rules.is_empty() {
                            ctx.note(
                                c,
                                "greenlight runs a route's checks before its rewrites; in nginx this `if` came after a rewrite, so it tests the path before that rewrite",
                            );
                        }
                        checks.push(check);
                    }
                    Some(None) => {}
                    None => ctx.warn(c, super::server::if_warning(c)),
                },
            },
            ("default_type", false) => default_type = Some(c),
            ("set_real_ip_from" | "real_ip_header" | "real_ip_recursive", false) => ctx.warn(
                c,
                format!("'{}' in a location is not supported: greenlight resolves the client address per site (trusted_proxies), so the server's settings apply here", super::directives::shown(c)),
            ),
            _ => {
                if common(ctx, c, &mut inh) {
                    continue;
                }
                if CONTENT_HANDLERS.contains(&c.name.as_str()) {
                    explained = true;
                }
                ctx.unsupported(c);
            }
        }
    }
    // A body limit set in this location or an enclosing one becomes the
    // route's `max_body_size` when it differs from the site's.
    let site_body = info.inh.body.as_ref().map_or("1m", |s| s.value.as_str());
    let route_body = inh
        .body
        .as_ref()
        .filter(|b| b.value != site_body)
        .map(|b| (b.value.clone(), ctx.at(b.d)));
    let access = super::access::of(ctx, &inh.access, info.d);
    let mut files = None;
    let value = path_value(kind, &path);
    let mut route_answer = None;
    let mut target = None;
    if let Some(r) = ret {
        // `return` runs in nginx's rewrite phase, before the content
        // (proxy_pass) phase: the answer wins.
        let to_https = https_redirect(r, &own).filter(|_| kind == LocKind::Prefix && path == "/");
        if let Some(code) = to_https {
            info.redirects.push((r, code));
        } else if let Some(a) = answer::of_return(ctx, r, &inh.set_vars, &captures) {
            route_answer = Some(a);
            if let Some(p) = pass {
                ctx.note(
                    p,
                    "this proxy_pass is never used: the location's 'return' answers first (as in nginx)",
                );
            }
        }
    } else if empty_gif.is_some() {
        route_answer = Some(super::answer::empty_gif());
    } else if let Some(p) = pass {
        target = proxy_target(ctx, p, defs, &path, kind, &inh);
    } else if !explained && access.as_ref().is_some_and(|a| a.denies_all()) {
        // `deny all` and nothing else answers: nginx refuses every
        // request (files or scripts there are never reached).
        route_answer = Some(Answer::Respond {
            status: 403,
            body: None,
            content_type: None,
        });
    } else if !explained && (alias.is_some() || inh.root.is_some()) && info.runs_scripts {
        // Serving this root as files would send the scripts' source for the
        // paths nginx gave the script runner (unconverted).
        ctx.warn(
            d,
            format!("location '{spec}' serves files, but this server runs scripts (fastcgi/uwsgi/scgi), which greenlight does not: its files were not made a `files:` route, so script sources are never sent"),
        );
        explained = true;
    } else if !explained && (alias.is_some() || inh.root.is_some()) {
        // No other content handler: nginx serves files here.
        files = super::files::files_of(
            ctx,
            kind,
            inh.root,
            alias,
            inh.index,
            try_files,
            &inh.set_vars,
            &captures,
            &inh.files,
        );
        explained = true;
    } else if !explained && nested.is_empty() && rewrites.is_empty() {
        ctx.warn(
            d,
            format!("location '{spec}' has no proxy_pass, so no route was created for it (greenlight routes proxy, redirect or answer)"),
        );
    }
    // nginx's `expires` also stamps proxied answers and `return`s (2xx and
    // redirects), which the route's own `expires:` does.
    let route_expires = inh
        .files
        .expires
        .as_ref()
        .filter(|_| files.is_none())
        .map(|(_, v)| v.clone())
        .filter(|v| v != "off");
    let has_terminal = target.is_some() || route_answer.is_some() || files.is_some();
    let mut rules = if_rules;
    for r in &rewrites {
        if let Some(rule) = answer::of_rewrite(ctx, r, &inh.set_vars, &captures) {
            rules.push(rule);
        }
    }
    answer::flagless_rewrites(ctx, &rewrites);
    if !has_terminal
        && !explained
        && !rules.is_empty()
        && rules
            .iter()
            .all(|r| r.flag == "redirect" || r.flag == "permanent")
    {
        // A location that only redirects by rewrite: when no rule matches,
        // nginx serves its default root, where nothing is found: 404.
        route_answer = Some(Answer::Respond {
            status: 404,
            body: None,
            content_type: None,
        });
    }
    if target.is_some() || route_answer.is_some() || files.is_some() {
        if let Some(prev) = info.routes.iter().find(|r| r.path == value) {
            let at = ctx.at(prev.loc);
            ctx.warn(
                d,
                format!("location '{spec}' would be route '{value}', which already exists (from {at}); not converted"),
            );
        } else {
            let mut route_answer = route_answer;
            let (req, mut resp) = headers::steps(ctx, &inh, target.as_ref(), &captures);
            if let Some(Answer::Respond { content_type, .. }) = &mut route_answer {
                // nginx answers `return` with `default_type` (or an
                // add_header Content-Type): carry it into the answer.
                if let Some(i) = resp
                    .add
                    .iter()
                    .position(|(n, _, _)| n.eq_ignore_ascii_case("content-type"))
                {
                    let (_, v, _) = resp.add.remove(i);
                    *content_type = Some(v);
                } else if let Some(t) = default_type {
                    *content_type = Some(t.arg0().to_string());
                }
            }
            let mut upstream_path = target.as_ref().and_then(|t| t.upstream_path.clone());
            if kind == LocKind::Exact
                && let Some(to) = upstream_path.take()
            {
                // `upstream_path` is for prefix routes; an exact route
                // replaces its whole path, which is a rewrite. Last, like
                // nginx, which ignores the proxy_pass URI once a `break`
                // rewrite has changed the path.
                rules.push(Rewrite {
                    from: format!("^{}$", answer::regex_escape(&path)),
                    to,
                    flag: "break",
                    at: ctx.at(d),
                });
            }
            if let Some(r) = target.as_ref().and_then(|t| t.path_rewrite.clone()) {
                rules.push(r);
            }
            super::ratelimit::record_route(ctx, d, &inh.rate, inh.root);
            let compress = super::compress::def(ctx, &inh.gzip, files.is_some());
            // nginx's empty_gif answers GET and HEAD only (405 otherwise).
            let gif = matches!(route_answer, Some(Answer::Bytes { .. }));
            let route = Route {
                path: value,
                methods: gif.then(|| vec!["GET".into(), "HEAD".into()]),
                plain_only: false,
                expires: route_expires,
                charset: inh.files.charset.clone(),
                loc: d,
                comment: None,
                target,
                answer: route_answer,
                files: files.take(),
                upstream_path,
                rewrites: rules,
                checks: std::mem::take(&mut checks),
                req,
                resp,
                request_buffering: inh.request_buffering.as_ref().map(|s| s.value),
                max_body_size: route_body.clone(),
                retry: inh.retry.as_ref().map(|r| (r.value.clone(), ctx.at(r.d))),
                timeouts: inh.timeouts.clone(),
                upstream: 0,
                access: access.clone(),
                compress,
            };
            if webroot {
                info.webroot.push(route);
            } else {
                info.routes.push(route);
                let base = info.routes.len() - 1;
                for (method, i) in &method_ifs {
                    if let Some(r) = method_route(ctx, info, base, method, i, &inh, &captures) {
                        info.routes.push(r);
                    }
                }
                method_ifs.clear();
            }
        }
    }
    for (_, i) in &method_ifs {
        ctx.warn(i, super::server::if_warning(i));
    }
    for n in nested {
        location(ctx, n, &inh, defs, info);
    }
}

/// `if ($request_method = M) { … }` whose body only sets response headers
/// and may `return`: the method, upper-cased.
fn method_if(i: &Directive) -> Option<String> {
    let joined = i.args.join(" ");
    let cond = joined.trim().trim_start_matches('(').trim_end_matches(')');
    let words: Vec<&str> = cond.split_whitespace().collect();
    let ["$request_method", "=", m] = words[..] else {
        return None;
    };
    let m = m
        .trim_matches(|c| c == '\'' || c == '"')
        .to_ascii_uppercase();
    let body_ok = i.children().iter().all(|c| {
        matches!(
            c.name.as_str(),
            "add_header" | "return" | "more_set_headers"
        )
    });
    (body_ok && !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic())).then_some(m)
}

/// The route for requests with `method` in the location of route `base`:
/// the `if`'s own response headers (an `if` with `add_header` inherits none,
/// as nginx's `if` blocks do) and its `return`, else the base route's
/// target.
fn method_route<'a>(
    ctx: &mut Ctx<'a>,
    info: &ServerInfo<'a>,
    base: usize,
    method: &str,
    i: &'a Directive,
    inh: &super::convert::Inherit<'a>,
    captures: &[String],
) -> Option<Route<'a>> {
    let base = info.routes.get(base)?;
    let mut own = inh.child();
    let mut ret = None;
    for c in i.children() {
        match c.name.as_str() {
            "return" => ret = ret.or(Some(c)),
            // Framing: greenlight sets Content-Length of its answers itself.
            "add_header" if c.arg0().eq_ignore_ascii_case("content-length") => ctx.note(
                c,
                format!(
                    "'{}' is not needed: greenlight frames its answers itself",
                    super::directives::shown(c)
                ),
            ),
            _ => {
                common(ctx, c, &mut own);
            }
        }
    }
    let mut route = base.clone();
    route.methods = Some(vec![method.to_string()]);
    route.loc = i;
    route.comment = Some(format!("if ($request_method = {method})"));
    let (_, mut resp) = headers::steps(ctx, &own, base.target.as_ref(), captures);
    if let Some(r) = ret {
        let mut a = answer::of_return(ctx, r, &inh.set_vars, captures)?;
        if let Answer::Respond { content_type, .. } = &mut a
            && let Some(at) = resp
                .add
                .iter()
                .position(|(n, _, _)| n.eq_ignore_ascii_case("content-type"))
        {
            let (_, v, _) = resp.add.remove(at);
            *content_type = Some(v);
        }
        route.answer = Some(a);
        route.target = None;
        route.upstream_path = None;
        route.rewrites = Vec::new();
        route.req = Default::default();
    }
    route.resp = resp;
    ctx.note(
        i,
        format!("'if ($request_method = {method})' became a route of this location for {method} requests (methods: [{method}])"),
    );
    Some(route)
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
        upstream_path: None,
        path_rewrite: None,
        hint: "app".to_string(),
        tls: None,
        proxy_host: String::new(),
        redirects: Vec::new(),
    }
}

/// `proxy_pass ${APP_URL}` in an envsubst template: an upstream whose one
/// server is `{$APP_URL}`, read from the environment at load (greenlight
/// takes `http://host:port` URLs there). nginx sends that URL's host as
/// `Host`; `$proxy_host` is the same at request time.
fn env_target<'a>(ctx: &mut Ctx<'a>, p: &'a Directive, raw: &str, name: &str) -> Target<'a> {
    let addr = format!("{{${name}}}");
    ctx.note(
        p,
        format!("proxy_pass {raw}: the URL comes from the environment variable {name} (an envsubst template): the upstream's server is '{addr}', read at load; it must be http://host:port (https:// needs `tls: true` on the upstream)"),
    );
    Target {
        key: TargetKey::Addr(addr.clone()),
        d: p,
        addr,
        edit: None,
        comment: None,
        upstream_path: None,
        path_rewrite: None,
        hint: name.to_ascii_lowercase(),
        tls: None,
        proxy_host: "$proxy_host".to_string(),
        redirects: Vec::new(),
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

/// The TLS settings of an `https://` upstream from the `proxy_ssl_*`
/// directives in force.
fn up_tls(ctx: &mut Ctx<'_>, p: &Directive, authority: &str, inh: &Inherit<'_>) -> UpTls {
    let sni = inh.ssl.name.map(|d| d.arg0().to_string()).and_then(|n| {
        let (v, unknown) = vars::resolve(&n, &inh.set_vars, &[]);
        if v == "$proxy_host" {
            None
        } else if !unknown.is_empty() || v.contains('$') {
            if let Some(d) = inh.ssl.name {
                ctx.warn(d, format!("proxy_ssl_name '{n}' depends on the request, which greenlight's `sni:` cannot: the upstream's host name is sent instead"));
            }
            None
        } else {
            Some(v)
        }
    });
    let no_verify = inh.ssl.verify.is_some_and(|d| d.arg0() == "off");
    let ca = inh.ssl.ca.map(|d| d.arg0().to_string());
    if inh.ssl.verify.is_none() {
        let host = authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority);
        let ip = host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok();
        if ca.is_none() && (ip || !host.contains('.') || host == "localhost") {
            ctx.note(
                p,
                format!("proxy_pass {}: nginx did not check this upstream's certificate (proxy_ssl_verify is off by default) and '{host}' is an internal server whose certificate would not pass greenlight's check against the system roots, so the upstream got `verify: false` like nginx; set `ca:` to its CA to check it", p.arg0()),
            );
            return UpTls {
                sni,
                ca,
                no_verify: true,
            };
        } else {
            ctx.note(
                p,
                format!("proxy_pass {}: greenlight checks the upstream's certificate (nginx did not unless proxy_ssl_verify on); a self-signed upstream needs `ca:` or `verify: false`", p.arg0()),
            );
        }
    }
    UpTls { sni, ca, no_verify }
}

/// A `proxy_pass` URI with variables: nginx sends it as the whole request
/// URI. Becomes a final `break` rewrite: `PREFIX$request_uri` puts PREFIX
/// before the path; anything else replaces the path (with the regex
/// location's captures); the query is kept only when nginx kept it
/// (`$is_args$args` or `$request_uri`).
fn variable_uri(
    ctx: &mut Ctx<'_>,
    p: &Directive,
    uri: &str,
    kind: LocKind,
    loc_path: &str,
    inh: &Inherit<'_>,
) -> Option<Rewrite> {
    let captures = if matches!(kind, LocKind::Regex | LocKind::RegexNoCase) {
        vars::named_groups(loc_path)
    } else {
        Vec::new()
    };
    let (u, unknown) = vars::resolve(uri, &inh.set_vars, &captures);
    if !unknown.is_empty() {
        ctx.warn(
            p,
            format!("proxy_pass {}: the upstream path uses {}, which greenlight does not know, so the request path is forwarded unchanged", p.arg0(), vars::list(&unknown)),
        );
        return None;
    }
    let (from, to) = if let Some(prefix) = u.strip_suffix("$request_uri") {
        ("^(.*)$".to_string(), format!("{prefix}$1"))
    } else {
        let (path, keep_query) = match u.strip_suffix("?$args") {
            Some(path) => (path.to_string(), true),
            None => (u.clone(), false),
        };
        let from = match kind {
            LocKind::Regex => loc_path.to_string(),
            LocKind::RegexNoCase => format!("(?i){loc_path}"),
            _ => "^.*$".to_string(),
        };
        let to = if keep_query || path.contains('?') {
            path
        } else {
            format!("{path}?")
        };
        (from, to)
    };
    Some(Rewrite {
        from,
        to,
        flag: "break",
        at: ctx.at(p),
    })
}

fn proxy_target<'a>(
    ctx: &mut Ctx<'a>,
    p: &'a Directive,
    defs: &[UpstreamDef<'a>],
    loc_path: &str,
    kind: LocKind,
    inh: &Inherit<'a>,
) -> Option<Target<'a>> {
    let [raw] = p.args.as_slice() else {
        ctx.warn(p, "proxy_pass needs exactly one URL; not converted");
        return None;
    };
    let (url, unknown) = vars::resolve(raw, &inh.set_vars, &[]);
    if let Some(name) = super::envsubst::whole(&url) {
        return Some(env_target(ctx, p, raw, name));
    }
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
            &url,
            BadAddr::new(None, &url, problem),
            80,
        ));
    };
    // `unix:/run/app.sock:/uri`: the socket path ends at the first ':'.
    let split = match rest.strip_prefix("unix:") {
        Some(path) => Some(5 + path.find(':').unwrap_or(path.len())),
        None => rest.find('/'),
    };
    let (authority, uri) = match split {
        Some(i) => (
            rest.get(..i).unwrap_or(""),
            rest.get(i..)
                .map(|u| u.strip_prefix(':').unwrap_or(u))
                .filter(|u| !u.is_empty()),
        ),
        None => (rest, None),
    };
    let (authority, uri) = match authority.strip_suffix("$request_uri") {
        Some(a) => (a, Some("$request_uri")),
        None => (authority, uri),
    };
    let default_port = if https { 443 } else { 80 };
    if authority.starts_with("unix:") && https {
        let bad = BadAddr::new(
            None,
            rest,
            "is HTTPS over a unix socket, which greenlight does not speak (plain http://unix: is supported)",
        );
        return Some(placeholder(ctx, p, &url, bad, default_port));
    }
    if authority.contains('$') {
        let names: Vec<String> = vars::refs(authority).into_iter().map(|r| r.name).collect();
        let _ = unknown;
        let bad = BadAddr::new(
            None,
            &url,
            format!(
                "names its server with {}, which is only known per request (a `map` or a variable greenlight does not have)",
                vars::list(&names)
            ),
        );
        return Some(placeholder(ctx, p, &url, bad, default_port));
    }
    let (key, addr, hint) = match defs.iter().position(|u| u.name == authority) {
        Some(i) if !authority.contains(':') => (
            TargetKey::Named(i),
            String::new(),
            defs.get(i).map(|u| u.name.clone()).unwrap_or_default(),
        ),
        _ if authority.starts_with("unix:") => match addr::parse_unix_upstream(authority) {
            Ok(a) => (TargetKey::Addr(a.clone()), a, "app".to_string()),
            Err(bad) => return Some(placeholder(ctx, p, &url, bad, default_port)),
        },
        _ => match addr::parse_upstream_addr(authority, default_port) {
            Ok(a) => (TargetKey::Addr(a.clone()), a.clone(), host_hint(&a)),
            Err(bad) => return Some(placeholder(ctx, p, &url, bad, default_port)),
        },
    };
    let tls = https.then(|| up_tls(ctx, p, authority, inh));
    let mut upstream_path = None;
    let mut path_rewrite = None;
    // nginx refuses a URI part in a named location as in a regex one.
    let regex = matches!(kind, LocKind::Regex | LocKind::RegexNoCase | LocKind::Named);
    match uri {
        Some("$request_uri") | None => {}
        Some("/$request_uri") => ctx.note(
            p,
            format!("proxy_pass {raw}: nginx sent '/' followed by the request URI (a double slash); greenlight forwards the request path unchanged"),
        ),
        Some(u) if u.contains('$') => path_rewrite = variable_uri(ctx, p, u, kind, loc_path, inh),
        Some(_) if regex => ctx.note(
            p,
            format!("proxy_pass {raw}: nginx does not allow a URI part in a regex location (nginx -t rejects it), so it was left out"),
        ),
        Some(u) if kind == LocKind::Exact => {
            if u != loc_path {
                upstream_path = Some(u.to_string());
            }
        }
        Some(u) if u != loc_path => upstream_path = Some(u.to_string()),
        Some(_) => {}
    }
    let host_set = inh
        .proxy_headers
        .list
        .iter()
        .any(|d| d.arg0().eq_ignore_ascii_case("host"));
    let pass = super::redirects::PassUrl {
        url: &url,
        variable: raw.contains('$'),
        has_uri: uri.is_some(),
        location: if regex { "" } else { loc_path },
    };
    let redirects = super::redirects::rules(ctx, inh, &pass, host_set);
    Some(Target {
        redirects,
        key,
        d: p,
        addr,
        edit: None,
        comment: None,
        upstream_path,
        path_rewrite,
        hint,
        tls,
        // nginx's `$proxy_host` for a unix socket is `localhost`.
        proxy_host: if authority.starts_with("unix:") {
            "localhost".to_string()
        } else {
            authority
                .to_ascii_lowercase()
                .trim_end_matches(if https { ":443" } else { ":80" })
                .to_string()
        },
    })
}

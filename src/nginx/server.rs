//! Analysis of one `server` block: its listens, names, certificates,
//! redirects to https, and the routes made from its locations.

use super::addr::{self, ListenAddr};
use super::answer;
use super::convert::{
    Answer, Ctx, Host, HttpLevel, Inherit, Listeners, Rewrite, Route, UpstreamDef, common, set_cert,
};
use super::directives::shown;
use super::limits::Scope;
use super::location::location;
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
    /// certbot's webroot location of a plain-only block, kept apart so the
    /// block still reads as a redirect (see `plain::place_webroots`).
    pub webroot: Vec<Route<'a>>,
    /// `return 301 https://$host$request_uri` (server level, `location /`
    /// or certbot's `if ($host = ...)`), with the status code.
    pub redirects: Vec<(&'a Directive, u16)>,
    /// `if ($scheme = http) { return 301 https://... }`.
    pub scheme_redirect: Option<(&'a Directive, u16)>,
    /// A server-level `return` that is not the https redirect: the whole
    /// server answers it (nginx runs it before choosing a location).
    pub answer: Option<(&'a Directive, Answer)>,
    /// Server-level `rewrite` rules (run before every route's own).
    pub rewrites: Vec<Rewrite>,
    /// Server-level `if … return`s: the site's `checks:`.
    pub checks: Vec<super::checks::CheckDef>,
    /// The server sets its own real-IP directives.
    pub real_ip_own: bool,
    /// Some location runs scripts (fastcgi/uwsgi/scgi): its files must not
    /// be served as files (their source would be sent).
    pub runs_scripts: bool,
    /// The listener keys of its `listen` directives.
    pub listen_keys: Vec<String>,
    /// `if ($host = name) { return 3xx URL; }` to another URL than the
    /// https one: that name answers the redirect on every path (host, the
    /// `if`, status, target).
    pub host_redirects: Vec<(String, &'a Directive, u16, String)>,
    /// Client certificates asked (`ssl_verify_client` …), when it has TLS.
    pub client_auth: Option<super::client_auth::ClientAuthOut<'a>>,
}

impl ServerInfo<'_> {
    /// The exact host names.
    pub fn own_hosts(&self) -> Vec<String> {
        exact_hosts(&self.hosts)
    }
}

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
        webroot: Vec::new(),
        redirects: Vec::new(),
        scheme_redirect: None,
        answer: None,
        rewrites: Vec::new(),
        checks: Vec::new(),
        listen_keys: Vec::new(),
        host_redirects: Vec::new(),
        client_auth: None,
        runs_scripts: runs_scripts(d),
        real_ip_own: d.children().iter().any(|c| {
            matches!(
                c.name.as_str(),
                "set_real_ip_from" | "real_ip_header" | "real_ip_recursive"
            )
        }),
    };
    info.inh = http.inh.child();
    let mut cert = None;
    let mut key = None;
    let mut client_auth = super::client_auth::ClientAuthDirs::default();
    let mut locations = Vec::new();
    let mut returns = Vec::new();
    let mut ifs = Vec::new();
    let mut rewrites = Vec::new();
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
            (_, false) if client_auth.record(c) => {}
            ("ssl", false) if c.arg0() == "on" => ctx.note(
                c,
                "'ssl on' is obsolete nginx syntax; the listens of this server were converted as TLS listeners",
            ),
            ("location", true) => locations.push(c),
            ("return", false) => returns.push(c),
            ("rewrite", false) => rewrites.push(c),
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
        info.listen_keys.push(a.clone());
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
    info.client_auth =
        super::client_auth::convert(ctx, &client_auth.over(&http.client_auth), info.has_tls);

    let own = exact_hosts(&info.hosts);
    for i in ifs {
        match if_redirect(i, &own) {
            Some((IfKind::Host, code)) => info.redirects.push((i, code)),
            Some((IfKind::Scheme, code)) if info.has_plain => info.scheme_redirect = Some((i, code)),
            Some((IfKind::Scheme, _)) => ctx.note(
                i,
                "this redirect of plain-HTTP requests is never used: the server only listens with TLS",
            ),
            None => match (if_rewrite(ctx, i), host_redirect(i, &info.hosts)) {
                (Some(rule), _) => info.rewrites.push(rule),
                (None, Some(r)) => info.host_redirects.push(r),
                (None, None) => match super::checks::check_if(ctx, i, &info.inh.set_vars, &[]) {
                    Some(Some(check)) => info.checks.push(check),
                    Some(None) => {}
                    None => ctx.warn(i, if_warning(i)),
                },
            },
        }
    }
    let host_ifs = !info.redirects.is_empty();
    // A server-level `return` to https answers before any location.
    let mut whole_server: Option<&'a Directive> = None;
    for r in returns {
        if info.answer.is_some() {
            ctx.note(r, "a second server-level 'return' is never reached");
        } else if let Some(code) = https_redirect(r, &own) {
            info.redirects.push((r, code));
            whole_server = Some(r);
        } else if host_ifs && r.args.len() == 1 && r.arg0() == "404" {
            ctx.note(
                r,
                "'return 404' is certbot's answer for hosts it does not redirect; not needed: greenlight answers unknown hosts itself",
            );
        } else if let Some(a) = answer::of_return(ctx, r, &info.inh.set_vars, &[]) {
            info.answer = Some((r, a));
        }
    }
    for r in &rewrites {
        if let Some(code) = https_rewrite(r) {
            info.redirects.push((r, code));
        } else if let Some(rule) = answer::of_rewrite(ctx, r, &info.inh.set_vars, &[]) {
            info.rewrites.push(rule);
        }
    }
    answer::flagless_rewrites(ctx, &rewrites);
    let inh = info.inh.clone();
    let outer = ctx.scope;
    if let Scope::Server(n) = outer {
        ctx.scope = Scope::Location(n);
    }
    if let Some((r, a)) = info.answer.clone() {
        // nginx answers at server level before it looks at locations.
        if !locations.is_empty() {
            ctx.note(
                r,
                format!("'{}' answers every request of this server before any location is chosen, so its {} location(s) are not used (as in nginx)", shown(r), locations.len()),
            );
        }
        let (req, resp) = super::headers::steps(ctx, &inh, None, &[]);
        info.routes.push(Route {
            comment: Some("a server-level return".to_string()),
            answer: Some(a),
            req,
            resp,
            timeouts: inh.timeouts.clone(),
            ..Route::bare("/".to_string(), r)
        });
    } else if let Some(r) = whole_server.filter(|_| !locations.is_empty()) {
        ctx.note(
            r,
            format!("'{}' answers every request of this server before any location is chosen, so its {} location(s) are not used (as in nginx)", shown(r), locations.len()),
        );
    } else {
        for l in locations {
            location(ctx, l, &inh, defs, &mut info);
        }
        super::server_root::add(ctx, d, &inh, &mut info);
        super::files::link_named(ctx, &mut info.routes);
    }
    if !info.rewrites.is_empty() {
        server_rewrites(d, &mut info);
    }
    ctx.scope = outer;
    info
}

/// Server-level rewrites run in nginx before a location is chosen. Each
/// becomes the first rule of every proxied route, and a regex route of its
/// own (answering 404 when the rule does not apply, as nginx's empty
/// server root would) for paths no other route takes. `break` at server
/// level ends the server's rewrites and then chooses a location with the
/// new path: greenlight's `last`.
fn server_rewrites<'a>(d: &'a Directive, info: &mut ServerInfo<'a>) {
    let rules: Vec<Rewrite> = info
        .rewrites
        .iter()
        .cloned()
        .map(|mut r| {
            if r.flag == "break" {
                r.flag = "last";
            }
            r
        })
        .collect();
    for r in info.routes.iter_mut().filter(|r| r.target.is_some()) {
        let mut all = rules.clone();
        all.append(&mut r.rewrites);
        r.rewrites = all;
    }
    for rule in rules {
        let path = format!("~ {}", rule.from);
        if info.routes.iter().any(|r| r.path == path) {
            continue;
        }
        info.routes.push(Route {
            comment: Some(format!("the server-level rewrite at {}", rule.at)),
            answer: Some(Answer::Respond {
                status: 404,
                body: None,
                content_type: None,
            }),
            rewrites: vec![rule],
            ..Route::bare(path, d)
        });
    }
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
    let mut proxy_protocol = false;
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
            "proxy_protocol" => proxy_protocol = true,
            "reuseport" | "backlog" | "rcvbuf" | "sndbuf" | "deferred" | "bind" | "fastopen"
            | "so_keepalive" | "accept_filter" | "setfib" | "multipath" => tuning.push(f),
            "spdy" => ctx.note(
                c,
                "listen parameter 'spdy' is obsolete; greenlight offers HTTP/2 on TLS listeners",
            ),
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
    listeners.add(ctx, key.clone(), address, edit, tls, c);
    info.listen_keys.push(key.clone());
    if proxy_protocol {
        listeners.set_proxy_protocol(&key);
    }
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
        } else if n.starts_with('~') && super::envsubst::has_refs(n) {
            // `~.${DOMAIN}`: a regex only once the environment is read,
            // so it cannot be compiled here; greenlight's `check` does.
            let name = super::envsubst::to_greenlight(n);
            ctx.note(
                c,
                format!("server_name '{n}' is filled in by envsubst: it became '{name}', which greenlight reads from its environment at load"),
            );
            push(info, name);
        } else if n.starts_with('~') {
            // Checked as greenlight's `check` will: an expression it cannot
            // compile (`~.${VAR}` in an envsubst template) is left out here
            // instead of making the output fail `check`.
            match crate::config::validate_match::parse_host_pattern(n) {
                Ok(_) => push(info, n.clone()),
                Err(e) => ctx.warn(c, format!("server_name '{n}' was left out: {}", e.what)),
            }
        } else if super::envsubst::has_refs(n) && super::envsubst::literal_but_refs(n) {
            let name = super::envsubst::to_greenlight(n);
            ctx.note(
                c,
                format!("server_name '{n}' is filled in by envsubst: it became '{name}', which greenlight reads from its environment at load"),
            );
            push(info, name);
        } else if n.contains('$') {
            ctx.warn(
                c,
                format!("server_name '{n}' uses a variable, which greenlight does not support; list the host names instead"),
            );
        } else if let Some(rest) = lower.strip_prefix('.').filter(|r| addr::is_dns_name(r)) {
            push(info, rest.to_string());
            push(info, format!("*.{rest}"));
        } else if lower
            .strip_prefix("*.")
            .or_else(|| lower.strip_suffix(".*"))
            .is_some_and(addr::is_dns_name)
        {
            push(info, lower.clone());
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
        || own_hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
    same_host.then_some(code)
}

enum IfKind {
    /// `if ($host = name)`, as certbot writes it.
    Host,
    /// `if ($scheme = http)` and equivalents.
    Scheme,
}

/// True when a block below `d` hands requests to a script runner.
fn runs_scripts(d: &Directive) -> bool {
    d.children().iter().any(|c| {
        matches!(c.name.as_str(), "fastcgi_pass" | "uwsgi_pass" | "scgi_pass") || runs_scripts(c)
    })
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
        ["$host", "~" | "~*", _] => {
            let code = https_redirect(only, &[])?;
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

/// `if ($host = name) { return 3xx URL; }` for one of the block's own
/// names (www to the bare name, the usual case): the name, the `if`, the
/// status and the target.
fn host_redirect<'a>(
    i: &'a Directive,
    hosts: &[Host<'_>],
) -> Option<(String, &'a Directive, u16, String)> {
    let [only] = i.children() else {
        return None;
    };
    let cond = if_condition(i);
    let ["$host", "=", h] = cond.iter().map(String::as_str).collect::<Vec<_>>()[..] else {
        return None;
    };
    let h = h
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    let [code, url] = only.args.as_slice() else {
        return None;
    };
    let code: u16 = code
        .parse()
        .ok()
        .filter(|c| matches!(c, 301 | 302 | 303 | 307 | 308))?;
    let (to, unknown) = super::vars::resolve(url, &Default::default(), &[]);
    let own = hosts.iter().any(|x| x.name == h);
    (only.name == "return" && unknown.is_empty() && own).then_some((h, i, code, to))
}

/// `if ($uri ~ RE) { return 3xx URL; }` (also `$request_uri`, `~*`): a
/// redirecting rewrite. `return` does not add the query, so `to` ends in `?`.
pub(crate) fn if_rewrite(ctx: &mut Ctx<'_>, i: &Directive) -> Option<Rewrite> {
    let [only] = i.children() else {
        return None;
    };
    let cond = if_condition(i);
    let (var, op, re) = match cond
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [v, op @ ("~" | "~*"), re] => (v.to_string(), *op, re.to_string()),
        _ => return None,
    };
    if !matches!(var.as_str(), "$uri" | "$request_uri") || only.name != "return" {
        return None;
    }
    let [code, url] = only.args.as_slice() else {
        return None;
    };
    let flag = match code.as_str() {
        "301" | "308" => "permanent",
        "302" | "303" | "307" => "redirect",
        _ => return None,
    };
    let captures = super::vars::named_groups(&re);
    let (to, unknown) = super::vars::resolve(url, &Default::default(), &captures);
    if !unknown.is_empty() {
        return None;
    }
    if code != "301" && code != "302" {
        ctx.note(
            i,
            format!(
                "'{}' became a redirecting rewrite, which answers {}",
                shown(only),
                if flag == "permanent" { 301 } else { 302 }
            ),
        );
    }
    let re = if op == "~*" { format!("(?i){re}") } else { re };
    Some(Rewrite {
        from: re,
        to: if to.contains('?') {
            to
        } else {
            format!("{to}?")
        },
        flag,
        at: ctx.at(i),
    })
}

/// `rewrite ^ https://$host$request_uri? permanent` (and `^(.*)$ …$1`):
/// the redirect to https, as a status code.
pub(crate) fn https_rewrite(d: &Directive) -> Option<u16> {
    let (re, to, flag) = match d.args.as_slice() {
        [re, to, flag] => (re.as_str(), to.as_str(), flag.as_str()),
        _ => return None,
    };
    let code = match flag {
        "permanent" => 301,
        "redirect" => 302,
        _ => return None,
    };
    let host = to.strip_prefix("https://")?;
    let same = ["$host", "$server_name", "$http_host"].iter().any(|h| {
        host == format!("{h}$request_uri?")
            || (re == "^(.*)$" && (host == format!("{h}$1") || host == format!("{h}$1?")))
    });
    (same && matches!(re, "^" | "^(.*)$" | "^/(.*)$" | "^.*$" | "(.*)")).then_some(code)
}

fn count(d: &Directive) -> usize {
    d.children().iter().map(|c| 1 + count(c)).sum()
}

/// The warning for an `if` that is not one of the converted shapes.
pub(crate) fn if_warning(i: &Directive) -> String {
    format!(
        "directive 'if ({})' is not supported: greenlight's checks (`if` whose block is one `return`) only answer requests, so the {} directive(s) inside it were not converted; move that logic into the app",
        if_condition(i).join(" "),
        count(i)
    )
}

//! Rate and connection limits and error pages: `limit_req_zone`,
//! `limit_conn_zone` (http level) become the top-level `limit_req_zones:` /
//! `limit_conn_zones:`; `limit_req`, `limit_conn`, their `*_status`,
//! `error_page` and `proxy_intercept_errors` (any level, inherited as nginx
//! does: a level with its own `limit_req`, `limit_conn` or `error_page`
//! drops the outer ones) become keys of each route.
//!
//! A refused request keeps nginx's status: `status: 503` unless
//! `limit_req_status` / `limit_conn_status` says otherwise (greenlight's own
//! default is 429). An `error_page` URI is resolved to a file the way nginx
//! would serve it: from the route of the same server whose location takes
//! the URI and serves files (`location = /50x.html { root …; }`), else from
//! the `root` in force in the route's location. A URI whose location does
//! not serve files (it proxies, or answers) becomes `{uri: PATH}`: the
//! site's routes answer it, as nginx's internal redirect does.

use super::convert::{Ctx, Route};
use super::inherit::Level;
use super::parse::Directive;
use super::yaml::{Out, quoted, scalar};
use std::collections::HashMap;

/// nginx's status for a refused request.
const NGINX_STATUS: u16 = 503;

/// Inherited settings of this module.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateInherit<'a> {
    /// `limit_req` in force.
    pub req: Level<'a>,
    /// `limit_conn` in force.
    pub conn: Level<'a>,
    /// `limit_req_status`.
    pub req_status: Option<&'a Directive>,
    /// `limit_conn_status`.
    pub conn_status: Option<&'a Directive>,
    /// `error_page` in force.
    pub pages: Level<'a>,
    /// `proxy_intercept_errors`.
    pub intercept: Option<&'a Directive>,
}

impl RateInherit<'_> {
    /// What a nested level starts with.
    pub fn child(&self) -> Self {
        let mut c = self.clone();
        c.req = self.req.child();
        c.conn = self.conn.child();
        c.pages = self.pages.child();
        c
    }
}

/// A zone line for the YAML.
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    text: String,
    at: String,
}

/// One error page of a route: statuses, the URI, its answer status.
#[derive(Debug, Clone)]
struct PageDef<'a> {
    d: &'a Directive,
    codes: Vec<u16>,
    uri: String,
    status: Option<u16>,
    root: Option<String>,
}

/// What a route emits.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteLimits<'a> {
    req: Vec<String>,
    conn: Vec<String>,
    pages: Vec<PageDef<'a>>,
    /// Resolved `error_pages` entries (status → file, or → `uri:` when
    /// the true flag says a route that does not serve files answers it).
    resolved: Vec<(u16, String, Option<u16>, bool)>,
    intercept: bool,
}

/// Zones and per-location limits collected while converting.
#[derive(Debug, Default)]
pub(crate) struct RateState<'a> {
    req_zones: Vec<Zone>,
    conn_zones: Vec<Zone>,
    /// By the address of the route's `location` directive.
    routes: HashMap<usize, RouteLimits<'a>>,
}

fn key_of(d: &Directive) -> usize {
    std::ptr::from_ref(d) as usize
}

/// `name=value` arguments of `d`.
fn param<'d>(d: &'d Directive, name: &str) -> Option<&'d str> {
    d.args
        .iter()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

/// Handles this module's directives at any level; false for others.
pub(crate) fn record<'a>(ctx: &mut Ctx<'a>, d: &'a Directive, inh: &mut RateInherit<'a>) -> bool {
    match d.name.as_str() {
        "limit_req_zone" | "limit_conn_zone" => {
            zone(ctx, d);
            true
        }
        "limit_req" => {
            inh.req.push(d);
            true
        }
        "limit_conn" => {
            inh.conn.push(d);
            true
        }
        "limit_req_status" => {
            inh.req_status = Some(d);
            true
        }
        "limit_conn_status" => {
            inh.conn_status = Some(d);
            true
        }
        "error_page" => {
            inh.pages.push(d);
            true
        }
        "proxy_intercept_errors" => {
            inh.intercept = Some(d);
            true
        }
        _ => false,
    }
}

fn zone<'a>(ctx: &mut Ctx<'a>, d: &'a Directive) {
    let at = ctx.at(d);
    let Some((name, size)) = param(d, "zone").and_then(|z| z.split_once(':')) else {
        ctx.warn(
            d,
            format!("{} needs `zone=NAME:SIZE`; not converted", d.name),
        );
        return;
    };
    let key = d.arg0();
    let key = if key.contains('$') {
        quoted(key)
    } else {
        scalar(key)
    };
    if d.name == "limit_conn_zone" {
        let text = format!("{}: {{key: {key}}}", scalar(name));
        ctx.rate.conn_zones.push(Zone {
            name: name.into(),
            text,
            at,
        });
        return;
    }
    let Some(rate) = param(d, "rate") else {
        ctx.warn(d, "limit_req_zone needs `rate=`; not converted");
        return;
    };
    let text = format!(
        "{}: {{key: {key}, rate: {rate}, size: {}}}",
        scalar(name),
        scalar(size)
    );
    ctx.rate.req_zones.push(Zone {
        name: name.into(),
        text,
        at,
    });
}

fn status_of(ctx: &mut Ctx<'_>, d: Option<&Directive>) -> u16 {
    let Some(d) = d else { return NGINX_STATUS };
    match d.arg0().parse::<u16>() {
        Ok(n) if (400..=599).contains(&n) => n,
        _ => {
            ctx.warn(
                d,
                format!(
                    "{} '{}' is not a status from 400 to 599; nginx's 503 is kept",
                    d.name,
                    d.arg0()
                ),
            );
            NGINX_STATUS
        }
    }
}

/// Records what the route made from location `loc` emits, from `inh`.
pub(crate) fn record_route<'a>(
    ctx: &mut Ctx<'a>,
    loc: &'a Directive,
    inh: &RateInherit<'a>,
    root: Option<&'a Directive>,
) {
    let mut out = RouteLimits::default();
    let req_status = status_of(ctx, inh.req_status);
    for d in inh.req.list.clone() {
        let Some(zone) = param(d, "zone") else {
            ctx.warn(d, "limit_req needs `zone=NAME`; not converted");
            continue;
        };
        if !ctx.rate.req_zones.iter().any(|z| z.name == zone) {
            ctx.warn(
                d,
                format!(
                    "limit_req zone '{zone}' has no limit_req_zone in the http block; not converted"
                ),
            );
            continue;
        }
        let mut parts = vec![format!("zone: {}", scalar(zone))];
        if let Some(b) = param(d, "burst") {
            parts.push(format!("burst: {b}"));
        }
        if d.args.iter().any(|a| a == "nodelay") {
            parts.push("nodelay: true".into());
        } else if let Some(n) = param(d, "delay") {
            parts.push(format!("delay: {n}"));
        }
        parts.push(format!("status: {req_status}"));
        out.req.push(format!("{{{}}}", parts.join(", ")));
    }
    let conn_status = status_of(ctx, inh.conn_status);
    for d in inh.conn.list.clone() {
        match d.args.as_slice() {
            [zone, _] if !ctx.rate.conn_zones.iter().any(|z| z.name == *zone) => ctx.warn(
                d,
                format!("limit_conn zone '{zone}' has no limit_conn_zone in the http block; not converted"),
            ),
            [zone, n] if n.parse::<u32>().is_ok_and(|n| n > 0) => out.conn.push(format!(
                "{{zone: {}, max: {n}, status: {conn_status}}}",
                scalar(zone)
            )),
            _ => ctx.warn(d, "limit_conn needs `ZONE NUMBER`; not converted"),
        }
    }
    for d in inh.pages.list.clone() {
        if let Some(p) = page(ctx, d, root) {
            out.pages.push(p);
        }
    }
    out.intercept = inh.intercept.is_some_and(|d| d.arg0() == "on");
    ctx.rate.routes.insert(key_of(loc), out);
}

fn page<'a>(ctx: &mut Ctx<'a>, d: &'a Directive, root: Option<&Directive>) -> Option<PageDef<'a>> {
    let (uri, rest) = d.args.split_last()?;
    let mut codes = Vec::new();
    let mut status = None;
    for a in rest {
        if let Some(s) = a.strip_prefix('=') {
            match s.parse::<u16>() {
                Ok(n) => status = Some(n),
                Err(_) => {
                    ctx.warn(d, "'error_page … = URI' (the status of the page's own answer) is not supported: give the status, like `=200`; not converted");
                    return None;
                }
            }
        } else if let Ok(n) = a.parse::<u16>() {
            codes.push(n);
        }
    }
    if !uri.starts_with('/') || codes.is_empty() {
        ctx.warn(d, format!("'{}' is not converted: greenlight's error pages are files (a URI served from a root); a named location or another URL is not supported", super::directives::shown(d)));
        return None;
    }
    Some(PageDef {
        codes,
        uri: uri.clone(),
        status,
        root: root.map(|r| r.arg0().trim_end_matches('/').to_string()),
        d,
    })
}

/// Resolves the error page URIs of `routes` (one server's) to files.
pub(crate) fn resolve_pages<'a>(ctx: &mut Ctx<'a>, routes: &[Route<'a>]) {
    for r in routes {
        let Some(mut lim) = ctx.rate.routes.get(&key_of(r.loc)).cloned() else {
            continue;
        };
        if lim.pages.is_empty() || !lim.resolved.is_empty() {
            continue;
        }
        for p in &lim.pages {
            let file = match file_for(routes, &p.uri) {
                Ok(f) => f.or_else(|| p.root.as_ref().map(|r| format!("{r}{}", p.uri))),
                Err(()) => {
                    // nginx's internal redirect to a path a proxied (or
                    // answering) location serves: `uri:`, which greenlight
                    // routes the same way.
                    if lim.intercept {
                        ctx.warn(p.d, format!("the error page '{}' is a path nginx proxies: it becomes `uri:`, which greenlight uses for the answers it makes itself (files 404, `respond`), not for the upstream's own errors that proxy_intercept_errors replaced", p.uri));
                    }
                    for c in &p.codes {
                        lim.resolved.push((*c, p.uri.clone(), p.status, true));
                    }
                    continue;
                }
            };
            match file {
                Some(f) => {
                    for c in &p.codes {
                        lim.resolved.push((*c, f.clone(), p.status, false));
                    }
                }
                None => {
                    ctx.warn(p.d, format!("the error page '{}' is served by no root greenlight knows (nginx's compiled-in default); not converted: add `error_pages` with the file's path", p.uri));
                }
            }
        }
        ctx.rate.routes.insert(key_of(r.loc), lim);
    }
}

/// Where nginx's internal redirect to `uri` lands among `routes` (exact
/// first, then the longest prefix; regex locations are not judged): the
/// file a files route serves for it, `Err` for a route that does not serve
/// files, `Ok(None)` when no route takes it.
fn file_for(routes: &[Route<'_>], uri: &str) -> Result<Option<String>, ()> {
    let mut best: Option<(usize, &Route<'_>, &str)> = None;
    for r in routes {
        let (rank, prefix) = match r.path.split_once(' ') {
            Some(("=", p)) if uri == p => (usize::MAX, p),
            Some(("^~", p)) if uri.starts_with(p) => (p.len(), p),
            None if uri.starts_with(r.path.as_str()) => (r.path.len(), r.path.as_str()),
            _ => continue,
        };
        if best.as_ref().is_none_or(|(b, _, _)| rank > *b) {
            best = Some((rank, r, prefix));
        }
    }
    let Some((_, r, prefix)) = best else {
        return Ok(None);
    };
    match r.files.as_ref().map(|f| (&f.root, &f.alias)) {
        Some((Some(root), _)) => Ok(Some(format!("{}{uri}", root.trim_end_matches('/')))),
        Some((None, Some(alias))) => Ok(Some(format!("{alias}{}", &uri[prefix.len()..]))),
        _ => Err(()),
    }
}

/// Writes the top-level zones.
pub(crate) fn zones(out: &mut Out, st: &RateState<'_>) {
    for (key, list) in [
        ("limit_req_zones:", &st.req_zones),
        ("limit_conn_zones:", &st.conn_zones),
    ] {
        if list.is_empty() {
            continue;
        }
        out.line(0, key, None);
        for z in list {
            out.line(1, &z.text, Some(&format!("from {}", z.at)));
        }
        out.blank();
    }
}

/// Writes a route's limits and error pages at indent 4.
pub(crate) fn route(out: &mut Out, st: &RateState<'_>, r: &Route<'_>) {
    let Some(l) = st.routes.get(&key_of(r.loc)) else {
        return;
    };
    let known = |z: &str, list: &[Zone]| {
        list.iter()
            .any(|x| z.contains(&format!("zone: {},", scalar(&x.name))))
    };
    let req: Vec<&String> = l.req.iter().filter(|z| known(z, &st.req_zones)).collect();
    if !req.is_empty() {
        let list: Vec<&str> = req.iter().map(|s| s.as_str()).collect();
        out.line(4, &format!("limit_req: [{}]", list.join(", ")), None);
    }
    let conn: Vec<&String> = l.conn.iter().filter(|z| known(z, &st.conn_zones)).collect();
    if !conn.is_empty() {
        let list: Vec<&str> = conn.iter().map(|s| s.as_str()).collect();
        out.line(4, &format!("limit_conn: [{}]", list.join(", ")), None);
    }
    if !l.resolved.is_empty() {
        out.line(4, "error_pages:", None);
        for (code, file, status, uri) in &l.resolved {
            let v = match (status, uri) {
                (Some(s), false) => format!("{{file: {}, status: {s}}}", quoted(file)),
                (None, false) => quoted(file),
                (Some(s), true) => format!("{{uri: {}, status: {s}}}", quoted(file)),
                (None, true) => format!("{{uri: {}}}", quoted(file)),
            };
            out.line(5, &format!("{code}: {v}"), None);
        }
    }
    if l.intercept && l.resolved.iter().any(|p| !p.3) {
        out.line(4, "intercept_errors: true", None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ImportOptions, import_str};

    fn convert(text: &str) -> (String, Vec<String>) {
        let out = import_str("t.conf", text, &ImportOptions::default()).expect("converts");
        (
            out.yaml,
            out.warnings.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn limits_keep_nginxs_status_and_inheritance() {
        let (y, w) = convert(
            "http { limit_req_zone $binary_remote_addr zone=a:1m rate=5r/s;\n\
             server { listen 80; server_name x.test; limit_req zone=a burst=3;\n\
             location / { proxy_pass http://127.0.0.1:3000; }\n\
             location /b/ { limit_req zone=nope; limit_conn c 1; proxy_pass http://127.0.0.1:3000; } } }\n",
        );
        assert!(
            y.contains("  a: {key: \"$binary_remote_addr\", rate: 5r/s, size: 1m}"),
            "{y}"
        );
        assert!(
            y.contains("limit_req: [{zone: a, burst: 3, status: 503}]"),
            "nginx's 503 kept: {y}"
        );
        assert_eq!(
            y.matches("limit_req:").count(),
            1,
            "/b/ drops the server's: {y}"
        );
        for want in [
            "t.conf:4: limit_req zone 'nope' has no limit_req_zone in the http block",
            "t.conf:4: limit_conn zone 'c' has no limit_conn_zone in the http block",
        ] {
            assert!(w.iter().any(|x| x.contains(want)), "{want}: {w:#?}");
        }
    }

    #[test]
    fn error_pages_resolve_through_the_location_that_serves_them() {
        let (y, w) = convert(
            "server { listen 80; server_name x.test; root /srv/www;\n\
             error_page 500 502 /50x.html; error_page 404 =200 /nf.html; error_page 403 http://e.test/;\n\
             proxy_intercept_errors on;\n\
             location /app/ { proxy_pass http://127.0.0.1:3000; }\n\
             location = /50x.html { root /usr/share/nginx/html; } }\n",
        );
        assert!(
            y.contains("          502: \"/usr/share/nginx/html/50x.html\"\n"),
            "{y}"
        );
        assert!(
            y.contains("          404: {file: \"/srv/www/nf.html\", status: 200}\n"),
            "no location takes /nf.html: the root in force: {y}"
        );
        assert!(y.contains("        intercept_errors: true\n"), "{y}");
        assert!(
            w.iter()
                .any(|x| x.contains("t.conf:2: 'error_page 403 http://e.test/' is not converted")),
            "{w:#?}"
        );
    }
}

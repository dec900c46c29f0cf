//! Compiles the plan keys of sites and routes — `request_headers`,
//! `response_headers`, `upstream_path`, `rewrite`, `redirect`, `respond` —
//! into [`crate::plan`] values, reporting every bad template, regex, header
//! name or status at its line and column (a template problem points at the
//! character in the value where it is).
//!
//! Called by `validate` for each site and route; it reads only the file
//! structs it is given and never touches running state.

use super::diag::{Diagnostics, Pos};
use super::file::{
    FileHeaderValue, FileRedirect, FileRequestHeaders, FileRespond, FileResponseHeaders, FileRoute,
    FileSite, Scalar,
};
use super::validate::pos;
use super::values::closest;
use crate::plan::answer::{Body, DEFAULT_CONTENT_TYPE, REDIRECT_STATUSES, Redirect, Respond};
use crate::plan::check::{Check, Checks};
use crate::plan::headers::{
    HeaderVal, RequestHeaderSteps, ResponseHeaderEntry, ResponseHeaderSteps,
};
use crate::plan::location::Location;
use crate::plan::rewrite::{Flag, Rewrites, Rule, UpstreamPath};
use crate::plan::template::{KNOWN, Scope, Template, TemplateError};
use crate::plan::{Plan, SitePlan, Step, Terminal};
use http::{HeaderName, HeaderValue};
use indexmap::IndexMap;
use serde_saphyr::Spanned;
use std::collections::HashSet;
use std::sync::Arc;

/// A site's header steps, merged into each of its routes.
#[derive(Default)]
pub(super) struct SiteSteps {
    request: RequestHeaderSteps,
    response: ResponseHeaderSteps,
    /// The variables `maps:` defines, which every template may read.
    maps: Vec<String>,
    /// The site's `checks:`, run before each route's own.
    checks: Vec<Arc<Check>>,
    /// The site's `access:`, which routes inherit key by key.
    pub(super) access: crate::plan::access::Access,
    /// The site's `compress:`, which routes start from.
    compress: Option<crate::plan::compress::Compress>,
    /// The site's `rewrite_location:`, for routes without their own.
    proxy_redirect: Option<Arc<crate::plan::proxy_redirect::ProxyRedirect>>,
}

/// Headers greenlight itself keeps right (framing, hop-by-hop): no rule may
/// set, add or remove them.
const MANAGED: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "keep-alive",
];

/// The position of byte `offset` of `text`, the value of `s` (positioned
/// at `fallback` when the parser gave it none). A quoted value starts one
/// column after its quote; a value over several lines is pointed at whole.
pub(super) fn at_offset<T>(s: &Spanned<T>, fallback: Pos, text: &str, offset: usize) -> Pos {
    let p = pos(s);
    if p.line == 0 {
        return fallback;
    }
    if text.contains('\n') {
        return p;
    }
    let quoted = s.referenced.span().len() as usize > text.chars().count();
    let chars = text.get(..offset).map_or(0, |t| t.chars().count());
    Pos {
        line: p.line,
        col: p.col + u32::from(quoted) + chars as u32,
    }
}

/// Reports a template problem at its character.
pub(super) fn template_error(e: &TemplateError, text: &str, at: Pos, ds: &mut Diagnostics) {
    let fix = match text[e.offset..].strip_prefix('$') {
        Some(rest) if e.what.starts_with("unknown") => {
            let name: String = rest
                .trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let names = [
                "host",
                "scheme",
                "request_uri",
                "uri",
                "args",
                "query_string",
                "is_args",
                "remote_addr",
                "server_port",
                "server_name",
                "request_method",
            ];
            match closest(&name, names.into_iter()) {
                Some(c) => format!("did you mean `${c}`? Known variables: {KNOWN}"),
                None => format!("known variables: {KNOWN}"),
            }
        }
        _ => format!("write a variable as `$name` or `${{name}}`; known variables: {KNOWN}"),
    };
    ds.error(at, format!("{} in '{text}'", e.what), fix);
}

/// Parses the template `text` (the value of `s`), reporting a problem.
pub(super) fn template<T>(
    s: &Spanned<T>,
    fallback: Pos,
    text: &str,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Option<Template> {
    Template::parse(text, scope)
        .map_err(|e| template_error(&e, text, at_offset(s, fallback, text, e.offset), ds))
        .ok()
}

fn header_value<T>(
    s: &Spanned<T>,
    fallback: Pos,
    text: &str,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Option<HeaderVal> {
    HeaderVal::compile(text, scope)
        .map_err(|e| template_error(&e, text, at_offset(s, fallback, text, e.offset), ds))
        .ok()
}

fn header_name(name: &str, at: Pos, ds: &mut Diagnostics) -> Option<HeaderName> {
    let Ok(n) = HeaderName::from_bytes(name.trim().as_bytes()) else {
        ds.error(
            at,
            format!("'{name}' is not a header name"),
            "use letters, digits and `-`, like `X-Frame-Options`",
        );
        return None;
    };
    if MANAGED.contains(&n.as_str()) {
        ds.error(
            at,
            format!("greenlight manages '{name}' itself (message framing and hop-by-hop headers)"),
            "remove this entry",
        );
        return None;
    }
    Some(n)
}

fn removals(list: &Option<Spanned<Vec<Spanned<String>>>>, ds: &mut Diagnostics) -> Vec<HeaderName> {
    let Some(list) = list else { return Vec::new() };
    list.value
        .iter()
        .filter_map(|n| header_name(&n.value, pos(n), ds))
        .collect()
}

fn request_headers(
    f: &Spanned<FileRequestHeaders>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> RequestHeaderSteps {
    let list = |m: &Option<Spanned<IndexMap<String, Spanned<Scalar>>>>, ds: &mut Diagnostics| {
        let Some(m) = m else { return Vec::new() };
        m.value
            .iter()
            .filter_map(|(k, v)| {
                let n = header_name(k, pos(v), ds);
                let val = header_value(v, pos(v), &v.value.0, scope, ds);
                Some((n?, val?))
            })
            .collect()
    };
    RequestHeaderSteps {
        set: list(&f.value.set, ds),
        add: list(&f.value.add, ds),
        remove: removals(&f.value.remove, ds),
    }
}

pub(super) fn response_headers(
    f: &Spanned<FileResponseHeaders>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> ResponseHeaderSteps {
    let list = |m: &Option<Spanned<IndexMap<String, Spanned<FileHeaderValue>>>>,
                ds: &mut Diagnostics| {
        let Some(m) = m else { return Vec::new() };
        let mut out = Vec::new();
        for (k, v) in &m.value {
            let at = pos(v);
            for u in &v.value.unknown {
                ds.error(
                    pos(u),
                    format!("unknown key '{}' in the value of header '{k}'", u.value),
                    "write `{value: ..., always: true}`",
                );
            }
            let name = header_name(k, at, ds);
            let Some(value) = &v.value.value else {
                ds.error(
                    at,
                    format!("header '{k}' has no `value`"),
                    "add `value: ...`",
                );
                continue;
            };
            let val = header_value(value, at, &value.value.0, scope, ds);
            if let (Some(name), Some(value)) = (name, val) {
                out.push(ResponseHeaderEntry {
                    name,
                    value,
                    always: v.value.always.as_ref().is_some_and(|a| a.value),
                });
            }
        }
        out
    };
    ResponseHeaderSteps {
        add: list(&f.value.add, ds),
        set: list(&f.value.set, ds),
        remove: removals(&f.value.remove, ds),
    }
}

/// The site-level header steps of `site`.
pub(super) fn site_steps(site: &FileSite, maps: &[String], ds: &mut Diagnostics) -> SiteSteps {
    let scope = Scope {
        maps,
        ..Scope::default()
    };
    SiteSteps {
        maps: maps.to_vec(),
        checks: super::validate_checks::checks(&site.checks, &scope, ds),
        access: Default::default(), // compiled by validate_access (it needs the upstreams)
        request: site
            .request_headers
            .as_ref()
            .map(|f| request_headers(f, &scope, ds))
            .unwrap_or_default(),
        response: site
            .response_headers
            .as_ref()
            .map(|f| response_headers(f, &scope, ds))
            .unwrap_or_default(),
        compress: site
            .compress
            .as_ref()
            .and_then(|c| super::validate_compress::compress(c, None, ds)),
        proxy_redirect: site
            .rewrite_location
            .as_ref()
            .and_then(|f| super::validate_proxy_redirect::proxy_redirect(f, &scope, ds)),
    }
}

/// The site's own plan (for answers made without a route).
pub(super) fn site_plan(
    steps: &SiteSteps,
    plain_redirect_headers: Option<crate::plan::headers::ResponseHeaderSteps>,
) -> Arc<SitePlan> {
    Arc::new(SitePlan {
        response_headers: (!steps.response.is_empty()).then(|| steps.response.clone()),
        error_pages: None,
        plain_redirect_headers: plain_redirect_headers.filter(|h| !h.is_empty()),
    })
}

/// Named groups of a regex, with their index.
pub(super) fn group_names(re: &regex::Regex) -> Vec<(String, usize)> {
    re.capture_names()
        .enumerate()
        .filter_map(|(i, n)| Some((n?.to_string(), i)))
        .collect()
}

/// The literal path of a route's location (exact or prefix), or `None`
/// for a regex location.
fn literal_prefix(location: &Location) -> Option<&str> {
    match location {
        Location::Exact(p) | Location::Prefix(p) | Location::PrefixNoRegex(p) => Some(p),
        Location::Regex(_) | Location::Named(_) => None,
    }
}

fn rewrites(
    r: &FileRoute,
    location: Option<&Location>,
    loc: &[(String, usize)],
    maps: &[String],
    ds: &mut Diagnostics,
) -> Rewrites {
    let mut out = Rewrites::default();
    if let (Some(up), Some(location)) = (&r.upstream_path, location) {
        match literal_prefix(location) {
            None => ds.error(
                pos(up),
                "`upstream_path` needs a prefix route; this route's path is a regex",
                "use `rewrite:` with `flag: break` to build the path from the regex",
            ),
            Some(_) if !up.value.starts_with('/') => ds.error(
                pos(up),
                format!("upstream_path '{}' does not start with '/'", up.value),
                "write it like `/v1/`, or `/` to strip the route's prefix",
            ),
            Some(prefix) => {
                out.upstream_path = Some(UpstreamPath {
                    prefix_len: prefix.len(),
                    replace: up.value.as_str().into(),
                })
            }
        }
    }
    let Some(list) = &r.rewrite else { return out };
    let mut rules = Vec::new();
    for rw in &list.value {
        let rw = &rw.value;
        let from = match regex::Regex::new(&rw.from.value) {
            Ok(re) => Some(re),
            Err(e) => {
                let why = e.to_string();
                let last = why.lines().last().unwrap_or("").trim().to_string();
                ds.error(
                    pos(&rw.from),
                    format!("'{}' is not a valid regex: {last}", rw.from.value),
                    "fix the pattern (Rust regex syntax, close to PCRE without look-around)",
                );
                None
            }
        };
        let flag = match rw.flag.as_ref().map(|f| f.value.trim()) {
            None | Some("break") => Some(Flag::Break),
            Some("last") => Some(Flag::Last),
            Some("redirect") => Some(Flag::Redirect),
            Some("permanent") => Some(Flag::Permanent),
            Some(other) => {
                ds.error(
                    rw.flag.as_ref().map(pos).unwrap_or_default(),
                    format!("rewrite flag '{other}' is not known"),
                    "use `break`, `last`, `redirect` or `permanent`",
                );
                None
            }
        };
        let names = from.as_ref().map(group_names).unwrap_or_default();
        let scope = Scope {
            last: &names,
            location: loc,
            maps,
        };
        let to = template(&rw.to, pos(&rw.to), &rw.to.value, &scope, ds);
        if let (Some(from), Some(to), Some(flag)) = (from, to, flag) {
            rules.push(Rule::new(from, to, flag));
        }
    }
    out.rules = rules.into();
    out
}

fn status<T>(
    s: &Spanned<T>,
    text: &str,
    ok: impl Fn(u16) -> bool,
    fix: &str,
    ds: &mut Diagnostics,
) -> Option<u16> {
    match text.trim().parse::<u16>() {
        Ok(n) if ok(n) => Some(n),
        _ => {
            ds.error(
                pos(s),
                format!("'{text}' is not a status allowed here"),
                fix,
            );
            None
        }
    }
}

/// Compiles `redirect: {to, status}` (a route's, or a check's answer).
pub(super) fn redirect_of(
    rd: &Spanned<FileRedirect>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Option<Redirect> {
    let st = rd.value.status.as_ref().map_or(Some(302), |s| {
        status(
            s,
            &s.value.0,
            |n| REDIRECT_STATUSES.contains(&n),
            "use 301, 302, 303, 307 or 308",
            ds,
        )
    });
    let to = template(
        &rd.value.to,
        pos(&rd.value.to),
        &rd.value.to.value,
        scope,
        ds,
    );
    Some(Redirect {
        to: to?,
        status: st?,
    })
}

/// Compiles `respond: {status, body, content_type}`.
pub(super) fn respond_of(
    rs: &Spanned<FileRespond>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Option<Respond> {
    let st = rs.value.status.as_ref().map_or(Some(200), |s| {
        status(
            s,
            &s.value.0,
            |n| (200..=599).contains(&n),
            "use a status from 200 to 599",
            ds,
        )
    });
    let body = match (&rs.value.body, &rs.value.body_base64) {
        (Some(b), None) => Some(template(b, pos(b), &b.value.0, scope, ds).map(Body::Text)),
        (None, Some(b)) => Some(super::validate_answer::binary_body(b, ds).map(Body::Binary)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            ds.error(
                pos(rs),
                "`respond` has both `body` and `body_base64`",
                "keep one: `body` for text, `body_base64` for bytes",
            );
            Some(None)
        }
    };
    let content_type = match &rs.value.content_type {
        None => Some(HeaderValue::from_static(DEFAULT_CONTENT_TYPE)),
        Some(c) => HeaderValue::from_str(c.value.trim())
            .map_err(|_| {
                ds.error(
                    pos(c),
                    format!("'{}' is not a valid Content-Type value", c.value),
                    "write a media type like `application/json`",
                )
            })
            .ok(),
    };
    match (st, body, content_type) {
        (Some(status), None, Some(content_type)) => Some(Respond {
            status,
            body: None,
            content_type,
        }),
        (Some(status), Some(Some(body)), Some(content_type)) => Some(Respond {
            status,
            body: Some(body),
            content_type,
        }),
        _ => None,
    }
}

/// Compiles a route's plan (site steps merged in) and returns its upstream
/// name for the router, `None` when the route answers itself.
pub(super) fn route_plan(
    r: &Spanned<FileRoute>,
    location: Option<&Location>,
    site: &SiteSteps,
    upstreams: &HashSet<&str>,
    ds: &mut Diagnostics,
) -> (Option<String>, Arc<Plan>) {
    let f = &r.value;
    let loc = location
        .and_then(Location::pattern)
        .map(|p| group_names(p.regex()))
        .unwrap_or_default();
    let scope = Scope {
        last: &[],
        location: &loc,
        maps: &site.maps,
    };
    let terminals = [
        f.upstream.is_some(),
        f.redirect.is_some(),
        f.respond.is_some(),
        f.files.is_some(),
    ];
    let count = terminals.iter().filter(|t| **t).count();
    if count != 1 {
        let what = if count == 0 {
            format!(
                "route '{}' has no `upstream`, `redirect`, `respond` or `files`",
                f.path.value
            )
        } else {
            format!(
                "route '{}' has more than one of `upstream`, `redirect`, `respond` and `files`",
                f.path.value
            )
        };
        ds.error(pos(&f.path), what, "give the route exactly one of them");
    }
    let terminal = if let Some(up) = &f.upstream {
        if !upstreams.contains(up.value.as_str()) {
            let fix = match closest(&up.value, upstreams.iter().copied()) {
                Some(c) => format!("did you mean '{c}'? Upstreams are defined under `upstreams:`"),
                None => "define it under `upstreams:`".to_string(),
            };
            ds.error(pos(up), format!("unknown upstream '{}'", up.value), fix);
        }
        Terminal::Proxy
    } else if let Some(rd) = &f.redirect {
        redirect_of(rd, &scope, ds).map_or(Terminal::Proxy, Terminal::Redirect)
    } else if let Some(rs) = &f.respond {
        respond_of(rs, &scope, ds).map_or(Terminal::Proxy, Terminal::Respond)
    } else if let Some(fs) = &f.files {
        super::validate_files::files(fs, location, &scope, ds)
            .map_or(Terminal::Proxy, Terminal::Files)
    } else {
        Terminal::Proxy
    };
    if let (Some(r), false) = (&f.rewrite_location, f.upstream.is_some()) {
        ds.error(
            pos(r),
            "`rewrite_location` only applies to a route with an `upstream`",
            "remove it: greenlight's own redirects are already absolute",
        );
    }
    if let (Some(up), false) = (&f.upstream_path, f.upstream.is_some()) {
        ds.error(
            pos(up),
            "`upstream_path` only applies to a route with an `upstream`",
            "remove it, or proxy the route to an upstream",
        );
    }
    let mut steps = Vec::new();
    let own = super::validate_checks::checks(&f.checks, &scope, ds);
    if !site.checks.is_empty() || !own.is_empty() {
        let list: Vec<Arc<Check>> = site.checks.iter().cloned().chain(own).collect();
        steps.push(Step::Checks(Checks { list: list.into() }));
    }
    let rw = rewrites(f, location, &loc, &site.maps, ds);
    if !rw.is_empty() {
        steps.push(Step::Rewrite(rw));
    }
    let access = super::validate_access::access(&f.access, &site.access, upstreams, ds);
    if !access.is_empty() {
        steps.push(Step::Access(access));
    }
    let req = f
        .request_headers
        .as_ref()
        .map(|h| request_headers(h, &scope, ds))
        .unwrap_or_default();
    let req = RequestHeaderSteps::merge(&site.request, &req);
    if !req.is_empty() {
        steps.push(Step::RequestHeaders(req));
    }
    let resp = f
        .response_headers
        .as_ref()
        .map(|h| response_headers(h, &scope, ds))
        .unwrap_or_default();
    let resp = ResponseHeaderSteps::merge(&site.response, &resp);
    if !resp.is_empty() {
        steps.push(Step::ResponseHeaders(resp));
    }
    if let Some(c) = &f.charset {
        match crate::plan::charset::Charset::parse(&c.value) {
            Ok(Some(x)) => steps.push(Step::Charset(x)),
            Ok(None) => {}
            Err(why) => ds.error(
                pos(c),
                why,
                "write a charset name such as `utf-8`, or `off`",
            ),
        }
    }
    if let Some(e) = &f.expires {
        match crate::plan::expires::parse(&e.value.0) {
            Ok(Some(x)) => steps.push(Step::Expires(x)),
            Ok(None) => {}
            Err(why) => ds.error(
                pos(e),
                why,
                "write `30d`, `12h`, `-1` (no-cache), `max`, `epoch`, `off` or `modified +1h`",
            ),
        }
    }
    let compress = match &f.compress {
        Some(c) => {
            super::validate_compress::check_route(c, f.files.is_some(), ds);
            super::validate_compress::compress(c, site.compress.as_ref(), ds)
        }
        None => site.compress.clone(),
    };
    if let Some(c) = compress {
        steps.push(Step::Compress(c));
    }
    let redirects = match &f.rewrite_location {
        Some(own) => super::validate_proxy_redirect::proxy_redirect(own, &scope, ds),
        None => site.proxy_redirect.clone(),
    };
    if let Some(r) = redirects {
        steps.push(Step::ProxyRedirect(r));
    }
    let upstream = f.upstream.as_ref().map(|u| u.value.clone());
    (upstream, Arc::new(Plan::new(steps, terminal)))
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::plan::{Step, Terminal};
    use std::path::Path;

    fn check(routes: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\nsites:\n  s:\n    hosts: [a.test]\n    response_headers: {{add: {{X-Site: s}}}}\n    routes:\n{routes}upstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_route_needs_exactly_one_terminal() {
        let e = check("      - {path: /}\n").expect_err("none");
        assert!(
            e.contains(
                "g.yaml:7:16: route '/' has no `upstream`, `redirect`, `respond` or `files`"
            ),
            "{e}"
        );
        let e = check("      - {path: /, upstream: u, respond: {status: 204}}\n").expect_err("two");
        assert!(e.contains("more than one of"), "{e}");
        let cfg = check("      - {path: /, respond: {status: 204}}\n").expect("respond");
        let plan = &cfg.sites[0].routes[0].plan;
        assert!(matches!(&plan.terminal, Terminal::Respond(r) if r.status == 204));
        assert_eq!(cfg.sites[0].routes[0].upstream, None);
    }

    #[test]
    fn bad_regexes_flags_statuses_and_managed_headers_are_reported_together() {
        let e = check(concat!(
            "      - path: /\n",
            "        upstream: u\n",
            "        rewrite: [{from: \"^/(a\", to: /b}, {from: a, to: b, flag: stop}]\n",
            "        request_headers: {set: {Content-Length: \"1\", \"Bad Name\": x}}\n",
            "      - {path: /r, redirect: {to: /x, status: 200}}\n",
        ))
        .expect_err("invalid");
        for want in [
            "is not a valid regex",
            "rewrite flag 'stop' is not known",
            "greenlight manages 'Content-Length'",
            "'Bad Name' is not a header name",
            "'200' is not a status allowed here",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn site_headers_are_merged_into_every_route_plan() {
        let cfg = check(concat!(
            "      - {path: /, upstream: u}\n",
            "      - {path: /x, upstream: u, response_headers: {add: {X-Route: r}}}\n",
        ))
        .expect("valid");
        let names = |i: usize| -> Vec<String> {
            let plan = &cfg.sites[0].routes[i].plan;
            plan.response_headers()
                .map(|h| h.add.iter().map(|e| e.name.to_string()).collect())
                .unwrap_or_default()
        };
        assert_eq!(names(0), ["x-site"]);
        assert_eq!(names(1), ["x-site", "x-route"]);
        assert!(cfg.sites[0].plan.response_headers.is_some());
        let plain = check("      - {path: /, upstream: u}\n").expect("valid");
        assert!(
            plain.sites[0].routes[0]
                .plan
                .steps()
                .iter()
                .all(|s| matches!(s, Step::ResponseHeaders(_))),
        );
        // The `all` above also holds for no steps at all: the site's header
        // must really be there.
        assert!(
            matches!(plain.sites[0].routes[0].plan.steps(), [Step::ResponseHeaders(h)]
                if h.add.iter().map(|e| e.name.as_str()).eq(["x-site"])),
            "a route without steps of its own carries the site's response headers"
        );
    }
}

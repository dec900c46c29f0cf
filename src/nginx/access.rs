//! nginx `allow`/`deny`, `satisfy`, `auth_basic`, `auth_basic_user_file`
//! and `auth_request` → a route's `access:`.
//!
//! nginx inherits each of them from http to server to location, a level
//! with its own `allow`/`deny` dropping the outer list ([`AccessInh`] keeps
//! what is in force); every route gets the whole `access:` in force at its
//! location, so no site-level key is needed. `auth_request /p` becomes
//! `forward_auth: {url: …}` when the `internal` location that answers `/p`
//! proxies to a literal `http(s)://host[:port][/path]`; that location is
//! then not a route of its own (it must never be public). The htpasswd
//! file's path is kept; greenlight reads it at load, so a missing file is
//! said now.

use super::convert::Ctx;
use super::directives::shown;
use super::inherit::Level;
use super::parse::Directive;
use super::yaml::{Out, quoted, scalar};

/// The access directives in force at a level.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessInh<'a> {
    /// `allow` / `deny` in order.
    pub ip: Level<'a>,
    /// `auth_basic "realm"` or `auth_basic off`.
    pub basic: Option<&'a Directive>,
    /// `auth_basic_user_file`.
    pub user_file: Option<&'a Directive>,
    /// `auth_request /p` or `auth_request off`.
    pub request: Option<&'a Directive>,
    /// `satisfy any|all`.
    pub satisfy: Option<&'a Directive>,
}

impl<'a> AccessInh<'a> {
    /// What a nested level starts with.
    pub fn child(&self) -> Self {
        AccessInh {
            ip: self.ip.child(),
            ..self.clone()
        }
    }
}

/// Records an access directive; false when `d` is not one.
pub(crate) fn record<'a>(d: &'a Directive, a: &mut AccessInh<'a>) -> bool {
    match d.name.as_str() {
        "allow" | "deny" => a.ip.push(d),
        "auth_basic" => a.basic = Some(d),
        "auth_basic_user_file" => a.user_file = Some(d),
        "auth_request" => a.request = Some(d),
        "satisfy" => a.satisfy = Some(d),
        _ => return false,
    }
    true
}

/// A route's `access:` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccessDef {
    /// (`allow`?, network or `all`).
    pub ip: Vec<(bool, String)>,
    /// (realm, users file).
    pub basic: Option<(String, String)>,
    /// The auth service's URL.
    pub forward: Option<String>,
    /// `satisfy any`.
    pub any: bool,
}

impl AccessDef {
    /// True when every client is refused whatever else is checked
    /// (`satisfy all`, the first rule `deny all`).
    pub fn denies_all(&self) -> bool {
        !self.any
            && self
                .ip
                .first()
                .is_some_and(|(allow, n)| !allow && n == "all")
    }
}

/// The `access:` in force for a location of server `server`, or `None`.
pub(crate) fn of<'a>(
    ctx: &mut Ctx<'a>,
    a: &AccessInh<'a>,
    server: &'a Directive,
) -> Option<AccessDef> {
    let mut def = AccessDef::default();
    for d in &a.ip.list {
        let allow = d.name == "allow";
        let net = d.arg0();
        if net.starts_with("unix:") {
            ctx.note(
                d,
                format!(
                    "'{}' is for Unix socket listeners, which greenlight does not have; left out",
                    shown(d)
                ),
            );
            continue;
        }
        def.ip.push((allow, truncated(net)));
    }
    if let Some(b) = a.basic.filter(|b| b.arg0() != "off") {
        match a.user_file {
            Some(f) => {
                let path = f.arg0().to_string();
                if !std::path::Path::new(&path).is_file() {
                    // Nothing is lost (the path is kept, and `check` names
                    // the file until it is there): a step to take, a note.
                    ctx.note(
                        f,
                        format!("the users file '{path}' is not on this machine: copy it here before running greenlight (it is read at load, and `greenlight check` refuses the config until it is there)"),
                    );
                }
                def.basic = Some((b.arg0().to_string(), path));
            }
            None => ctx.warn(
                b,
                format!("'{}' has no auth_basic_user_file in force; not converted (nginx refuses every request here)", shown(b)),
            ),
        }
    }
    if let Some(r) = a.request.filter(|r| r.arg0() != "off") {
        def.forward = forward_url(ctx, r, server);
    }
    if def
        .ip
        .first()
        .is_some_and(|(allow, net)| *allow && net == "all")
    {
        // A list that begins with `allow all` lets everyone in (certbot's
        // webroot location writes it): no rule to emit.
        def.ip.clear();
    }
    def.any = a.satisfy.is_some_and(|s| s.arg0() == "any");
    (!def.ip.is_empty() || def.basic.is_some() || def.forward.is_some()).then_some(def)
}

/// nginx ignores address bits past the prefix (with a warning at start);
/// greenlight refuses them, so they are cleared here.
fn truncated(net: &str) -> String {
    match net.parse::<ipnet::IpNet>() {
        Ok(n) if n.addr() != n.network() => n.trunc().to_string(),
        _ => net.to_string(),
    }
}

/// The `internal` location of `server` that answers `path` (exact first,
/// then the longest prefix), if any.
pub(crate) fn internal_location<'a>(server: &'a Directive, path: &str) -> Option<&'a Directive> {
    let locs = || {
        server
            .children()
            .iter()
            .filter(|c| c.name == "location" && c.children().iter().any(|x| x.name == "internal"))
    };
    locs()
        .find(|l| {
            matches!(l.args.as_slice(), [m, p] if m == "=" && p == path)
                || matches!(l.args.as_slice(), [p] if p.strip_prefix('=') == Some(path))
        })
        .or_else(|| {
            locs()
                .filter(|l| matches!(l.args.as_slice(), [p] if path.starts_with(p.as_str())))
                .max_by_key(|l| l.arg0().len())
        })
}

/// True when `loc` is an `internal` location some `auth_request` of
/// `server` uses: it becomes that `forward_auth`, never a public route.
pub(crate) fn is_auth_target(server: &Directive, loc: &Directive) -> bool {
    fn requests<'a>(d: &'a Directive, out: &mut Vec<&'a str>) {
        for c in d.children() {
            if c.name == "auth_request" && c.arg0() != "off" {
                out.push(c.arg0());
            }
            requests(c, out);
        }
    }
    let mut paths = Vec::new();
    requests(server, &mut paths);
    paths
        .iter()
        .any(|p| internal_location(server, p).is_some_and(|l| std::ptr::eq(l, loc)))
}

/// `auth_request /p` → the URL its internal location proxies to.
fn forward_url(ctx: &mut Ctx<'_>, r: &Directive, server: &Directive) -> Option<String> {
    let path = r.arg0();
    let Some(loc) = internal_location(server, path) else {
        ctx.warn(
            r,
            format!("'{}': no internal location of this server answers '{path}'; not converted, so these paths are not protected", shown(r)),
        );
        return None;
    };
    let pass = loc.children().iter().find(|c| c.name == "proxy_pass");
    let Some(pass) = pass else {
        ctx.warn(
            r,
            format!("'{}': its location has no proxy_pass; not converted, so these paths are not protected", shown(r)),
        );
        return None;
    };
    let url = pass.arg0();
    // Variables may follow the host (`/check$request_uri`: greenlight's
    // `forward_auth` path is a template); the host itself must be literal.
    let authority = url
        .split_once("://")
        .map_or("", |(_, r)| r.split('/').next().unwrap_or(""));
    let literal = (url.starts_with("http://") || url.starts_with("https://"))
        && !authority.contains('$')
        && super::vars::refs(url).iter().all(|v| {
            !v.name.starts_with(|c: char| c.is_ascii_digit()) && super::vars::known(&v.name, &[])
        });
    let ok = literal
        && url
            .parse::<http::Uri>()
            .is_ok_and(|u| u.authority().is_some());
    if !ok {
        ctx.warn(
            r,
            format!("'{}': its location proxies to '{url}', which is not a literal http(s) URL (variables or an upstream block); write `access: {{forward_auth: {{upstream: NAME, path: /PATH}}}}` by hand — these paths are not protected until then", shown(r)),
        );
        return None;
    }
    // No URI part: nginx sends the subrequest's own path; with one, the
    // URI replaces the part of the path the location matched.
    let has_uri = url
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    let full = match loc.args.as_slice() {
        _ if !has_uri => format!("{url}{path}"),
        [p] if !p.starts_with('=') => {
            format!("{url}{}", path.strip_prefix(p.as_str()).unwrap_or(""))
        }
        _ => url.to_string(),
    };
    ctx.note(
        loc,
        format!("internal location '{}' answered auth_request: it became the `forward_auth` of the routes that use it, not a route", loc.args.join(" ")),
    );
    Some(full)
}

/// Writes `access:` at `indent` (route level).
pub(crate) fn emit(out: &mut Out, indent: usize, a: &AccessDef) {
    out.line(indent, "access:", None);
    if !a.ip.is_empty() {
        let rules: Vec<String> =
            a.ip.iter()
                .map(|(allow, n)| {
                    format!(
                        "{{{}: {}}}",
                        if *allow { "allow" } else { "deny" },
                        quoted(n)
                    )
                })
                .collect();
        out.line(indent + 1, &format!("ip: [{}]", rules.join(", ")), None);
    }
    if let Some((realm, file)) = &a.basic {
        out.line(
            indent + 1,
            &format!(
                "basic_auth: {{realm: {}, users_file: {}}}",
                quoted(realm),
                quoted(file)
            ),
            None,
        );
    }
    if let Some(url) = &a.forward {
        out.line(
            indent + 1,
            &format!("forward_auth: {{url: {}}}", quoted(url)),
            None,
        );
    }
    if a.any {
        out.line(indent + 1, &format!("satisfy: {}", scalar("any")), None);
    }
}

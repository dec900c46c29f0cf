//! What plain HTTP does in the imported config: where a port-80 redirect
//! sends its hosts, and which site answers unknown hosts there.
//!
//! nginx keeps one default server per port. A TLS site is usually the
//! default on 443, while port 80's default is the redirect block — which may
//! send every name to one host (`return 301 https://example.com$request_uri`)
//! or, as certbot writes it, redirect only the names it lists and answer
//! 404 to the rest. greenlight says the first with
//! `plain_http: {redirect: 301, to: URL}` and the second with
//! `default: https` (the TLS catch-all only) or `default: http`.

use super::convert::{Ctx, PlainHttp, Site};
use super::directives::shown;
use super::parse::Directive;
use super::server::ServerInfo;

/// The host part and the target of a redirect to `https://HOST$request_uri`
/// (also `return`'s and `rewrite`'s other spellings), when HOST is not the
/// request's own: `$server_name` is the block's first name (`first`), a
/// literal name stays. `None` for `$host`/`$http_host` and shapes not known.
pub(crate) fn fixed_target(d: &Directive, first: Option<&str>) -> Option<(String, String)> {
    let ret = if d.name == "if" {
        d.children().first()?
    } else {
        d
    };
    let url = match ret.name.as_str() {
        "return" | "rewrite" => ret.args.get(1)?,
        _ => return None,
    };
    let rest = url.strip_prefix("https://")?;
    let (host, tail) = match rest.strip_prefix('$') {
        Some(var) => {
            let end = var
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(var.len());
            let name = &var[..end];
            let host = match name {
                "server_name" => first?.to_ascii_lowercase(),
                _ => return None,
            };
            (host, &var[end..])
        }
        None => {
            let end = rest.find(['$', '/']).unwrap_or(rest.len());
            (rest[..end].to_ascii_lowercase(), &rest[end..])
        }
    };
    let same_uri = matches!(tail, "$request_uri" | "$request_uri?")
        || (ret.name == "rewrite" && matches!(tail, "$1" | "$1?"));
    (same_uri && !host.is_empty()).then(|| {
        let to = format!("https://{host}$request_uri");
        (host, to)
    })
}

/// The `plain_http:` text of a redirect with status `code` for a site with
/// `hosts`: the short form when it keeps the request's host (or the target
/// is the site's only name and the site answers no unknown hosts), the map
/// form otherwise.
pub(crate) fn redirect_mode(
    code: u16,
    target: Option<(String, String)>,
    site: &Site<'_>,
) -> String {
    let only_name = |h: &str| matches!(site.hosts.as_slice(), [one] if one.name == h);
    match target {
        Some((host, to)) if !(only_name(&host) && site.default.is_none()) => {
            format!("{{redirect: {code}, to: {}}}", super::yaml::quoted(&to))
        }
        _ if code == 308 => "redirect".to_string(),
        _ => format!("redirect {code}"),
    }
}

/// False when `d` is `if ($host ~ re) { … }` (or `~*`) and `re` does not
/// match `host`; true otherwise (nginx then applied `d` to that name).
pub(crate) fn regex_if_matches(d: &Directive, host: &str) -> bool {
    if d.name != "if" {
        return true;
    }
    let joined = d.args.join(" ");
    let cond = joined.trim().trim_start_matches('(').trim_end_matches(')');
    let mut words = cond.split_whitespace();
    let (Some("$host"), Some(op @ ("~" | "~*")), Some(re)) =
        (words.next(), words.next(), words.next())
    else {
        return true;
    };
    let re = re.trim_matches('"');
    let re = if op == "~*" {
        format!("(?i){re}")
    } else {
        re.to_string()
    };
    regex::Regex::new(&re).map_or(true, |r| r.is_match(host))
}

/// The names of `site` that nginx answered 404 on plain HTTP (`not_found`):
/// all of them make the site `plain_http: not_found`; some of them move to
/// a site of their own that says so.
pub(crate) fn not_found_sites<'a>(
    ctx: &mut Ctx<'a>,
    site: &mut Site<'a>,
    not_found: &[String],
    names: &mut super::addr::Names,
) -> Vec<Site<'a>> {
    let (nf, keep): (Vec<_>, Vec<_>) = site
        .hosts
        .iter()
        .cloned()
        .partition(|h| not_found.contains(&h.name));
    let Some(first) = nf.first() else {
        return Vec::new();
    };
    let mode = PlainHttp {
        mode: "not_found".to_string(),
        detail: "nginx's plain-HTTP block redirected only names its `if ($host ~ …)` matched and answered this one 404".to_string(),
    };
    if keep.is_empty() {
        site.plain_http = Some(mode);
        return Vec::new();
    }
    ctx.note(
        first.d,
        format!("the plain-HTTP redirect's `if ($host ~ …)` does not match {}: nginx answered it 404 on plain HTTP, so it became a site of its own with plain_http: not_found", first.name),
    );
    let mut own = site.clone();
    own.name = names.alloc(&first.name, "site");
    own.hosts = nf;
    own.default = None;
    own.default_on = "true";
    own.plain_http = Some(mode);
    site.hosts = keep;
    vec![own]
}

/// True when the block answers unknown hosts on its plain port with 404:
/// its only redirects are certbot's `if ($host = name)` ones and it neither
/// proxies nor answers anything itself.
fn answers_unknown_with_404(s: &ServerInfo<'_>) -> bool {
    s.routes.is_empty()
        && s.scheme_redirect.is_none()
        && s.answer.is_none()
        && !s.redirects.is_empty()
        && s.redirects.iter().all(|(d, _)| d.name == "if")
}

/// `plain_http` of a TLS site that no plain-HTTP block names: nginx sent
/// plain requests for its hosts to the plain port's default server. When
/// that block answers unknown names 404 (certbot's), so does the site
/// (`not_found`); otherwise that default answers them (`default`).
pub(crate) fn from_plain_default<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
) -> Option<PlainHttp> {
    match plain_default(infos) {
        Some(p) if answers_unknown_with_404(p) => Some(PlainHttp {
            mode: "not_found".to_string(),
            detail: format!(
                "nginx's plain-HTTP default server ({}) answered these names 404",
                ctx.at(p.d)
            ),
        }),
        Some(p) => Some(PlainHttp {
            mode: "default".to_string(),
            detail: format!(
                "no plain-HTTP block names these hosts: nginx's plain default server ({}) answered them",
                ctx.at(p.d)
            ),
        }),
        None => None,
    }
}

/// nginx's default server for plain HTTP: the first block with
/// `default_server` that listens plain, else the first that listens plain.
pub(crate) fn plain_default<'s, 'a>(infos: &'s [ServerInfo<'a>]) -> Option<&'s ServerInfo<'a>> {
    let plain = |s: &&ServerInfo<'a>| s.has_plain || !s.has_tls;
    infos
        .iter()
        .filter(plain)
        .find(|s| s.listen_default.is_some())
        .or_else(|| infos.iter().find(plain))
}

/// Narrows the default site to TLS listeners (`default: https`) where
/// nginx's plain default server is another block, and makes that block's
/// site the plain default (`default: http`) when it became one.
/// `plain_source[i]` is the directive the plain behaviour of `sites[i]`
/// came from (its own server, a merged plain twin, or a redirect block).
pub(crate) fn scope_defaults<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
    sites: &mut [Site<'a>],
    plain_source: &[Option<&'a Directive>],
) {
    let Some(p) = plain_default(infos) else {
        return;
    };
    // Two defaults already split the kinds of listener between them.
    if sites.iter().filter(|s| s.default.is_some()).count() != 1 {
        return;
    }
    let Some(d) = sites.iter().position(|s| s.default.is_some()) else {
        return;
    };
    // Which sites stand for the plain default block.
    let stands: Vec<bool> = sites
        .iter()
        .zip(plain_source)
        .map(|(s, src)| s.server == p.d || *src == Some(p.d))
        .collect();
    let plain_site = if answers_unknown_with_404(p) {
        None
    } else if stands.get(d).copied().unwrap_or(false) {
        return;
    } else {
        stands.iter().position(|&x| x)
    };
    let d_has_tls = sites.get(d).is_some_and(|s| s.tls.is_some());
    if !d_has_tls && plain_site.is_none() {
        // A plain-only default: nginx's port default is another block
        // that no site stands for; leave it as it is.
        return;
    }
    let at = ctx.at(p.d);
    if let Some(s) = sites.get_mut(d) {
        s.default_on = "https";
    }
    match plain_site.and_then(|i| sites.get_mut(i)) {
        None => {
            ctx.note(
                p.d,
                "this server block is nginx's default on its plain-HTTP port and answers unknown hosts 404, so the default site is the catch-all on TLS listeners only (default: https)",
            );
        }
        Some(s) => {
            s.default_on = "http";
            if s.default.is_none() {
                s.default = Some(format!(
                    "nginx's default server on its plain-HTTP port ({at})"
                ));
            }
        }
    }
}

/// Gives each site the certbot webroot locations of the plain-HTTP block
/// its plain behaviour came from (`plain_source`, as in `scope_defaults`):
/// on a TLS site they become `scheme: http` routes, served on plain HTTP
/// while every other path still gets the redirect, as nginx's port-80
/// block did; a plain site's own block keeps them as ordinary routes. A
/// webroot no site takes is a warning: certbot's renewals would fail.
pub(crate) fn place_webroots<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
    sites: &mut [Site<'a>],
    plain_source: &[Option<&'a Directive>],
) {
    let mut placed: Vec<&'a Directive> = Vec::new();
    for (site, src) in sites.iter_mut().zip(plain_source) {
        let block = match site.tls {
            None => Some(site.server),
            Some(_) => src.filter(|d| !std::ptr::eq(*d, site.server)),
        };
        let Some(info) = block.and_then(|b| {
            infos
                .iter()
                .find(|i| std::ptr::eq(i.d, b) && !i.webroot.is_empty())
        }) else {
            continue;
        };
        for r in &info.webroot {
            if let Some(other) = site.routes.iter().find(|x| x.path == r.path) {
                let at = ctx.at(other.loc);
                ctx.warn(
                    r.loc,
                    format!("certbot's webroot location '{}' was not converted: the site already has that route (from {at}), and greenlight keeps one route per path", r.path),
                );
                continue;
            }
            let mut r = r.clone();
            r.plain_only = site.tls.is_some();
            site.routes.push(r);
        }
        placed.push(info.d);
    }
    let mut warned: Vec<&'a Directive> = Vec::new();
    for info in infos.iter().filter(|i| !i.webroot.is_empty()) {
        let seen = |l: &[&'a Directive]| l.iter().any(|d| std::ptr::eq(*d, info.d));
        if seen(&placed) || seen(&warned) {
            continue;
        }
        warned.push(info.d);
        for r in &info.webroot {
            ctx.warn(
                r.loc,
                format!("location '{}' served certbot's webroot challenges on plain HTTP and was not converted: no site takes this block's plain requests; `certbot renew --webroot` would fail; import with --acme EMAIL (greenlight obtains and renews the certificates itself) or renew with certbot's standalone or DNS mode", r.path),
            );
        }
    }
}

/// Response headers a plain-HTTP block that only redirects sets itself
/// (`add_header`, `more_set_headers` at server level): returned for
/// [`place_redirect_headers`]. HSTS is a note and not returned: browsers
/// ignore it over plain HTTP (RFC 6797 section 8.1).
pub(crate) fn redirect_headers<'a>(ctx: &mut Ctx<'a>, s: &ServerInfo<'a>) -> Vec<&'a Directive> {
    let mut out = Vec::new();
    for c in s.d.children() {
        if !matches!(c.name.as_str(), "add_header" | "more_set_headers") {
            continue;
        }
        let hsts = c.args.iter().any(|a| {
            a.to_ascii_lowercase()
                .starts_with("strict-transport-security")
        });
        if hsts {
            ctx.note(
                c,
                format!("'{}' on a plain-HTTP redirect is not needed: browsers ignore HSTS received over plain HTTP", shown(c)),
            );
        } else {
            out.push(c);
        }
    }
    out
}

/// Gives each TLS site whose `plain_http` redirect came from a block in
/// `pending` (block, its header directives) those headers, as
/// `plain_http: {redirect, response_headers}` (nginx sends them on that
/// redirect: `add_header` on 3xx, `more_set_headers` always). Headers no
/// site takes, or that cannot be written, are a warning.
pub(crate) fn place_redirect_headers<'a>(
    ctx: &mut Ctx<'a>,
    sites: &mut [Site<'a>],
    plain_source: &[Option<&'a Directive>],
    pending: &[(&'a Directive, Vec<&'a Directive>)],
) {
    let mut placed: Vec<&'a Directive> = Vec::new();
    for (block, headers) in pending.iter().filter(|(_, h)| !h.is_empty()) {
        let Some(own) = redirect_headers_of(ctx, headers) else {
            continue;
        };
        let text = headers_text(&own);
        for site in sites.iter_mut().filter(|s| std::ptr::eq(s.server, *block)) {
            // The block's own site (hosts no TLS site serves): its
            // redirect route carries them.
            for r in site.routes.iter_mut() {
                if matches!(r.answer, Some(super::convert::Answer::Redirect { .. })) {
                    r.resp.add.extend(own.add.iter().cloned());
                    r.resp.set.extend(own.set.iter().cloned());
                    placed.push(block);
                }
            }
        }
        for (site, src) in sites.iter_mut().zip(plain_source) {
            let from_block = src.is_some_and(|d| std::ptr::eq(d, *block));
            let Some(p) = site.plain_http.as_mut().filter(|_| from_block) else {
                continue;
            };
            let mode = p.mode.trim();
            let map = if let Some(code) = mode.strip_prefix("redirect") {
                let code = code.trim();
                let code = if code.is_empty() { "308" } else { code };
                format!("{{redirect: {code}, response_headers: {text}}}")
            } else if let Some(open) = mode
                .strip_suffix('}')
                .filter(|m| m.starts_with("{redirect"))
            {
                format!("{open}, response_headers: {text}}}")
            } else {
                continue;
            };
            p.mode = map;
            placed.push(block);
        }
    }
    for (block, headers) in pending {
        if placed.iter().any(|d| std::ptr::eq(*d, *block)) {
            continue;
        }
        for c in headers {
            ctx.warn(
                c,
                format!("'{}' is not sent: this block's redirect did not become a TLS site's plain_http, which is where greenlight keeps a redirect's own headers", shown(c)),
            );
        }
    }
}

/// The response headers of a redirect block's header directives; `None`
/// (with a warning each) when one cannot be carried over.
fn redirect_headers_of(
    ctx: &mut Ctx<'_>,
    headers: &[&Directive],
) -> Option<super::convert::Headers> {
    let mut out = super::convert::Headers::default();
    let known = |v: &str| {
        super::vars::refs(v).iter().all(|r| {
            !r.name.starts_with(|c: char| c.is_ascii_digit()) && super::vars::known(&r.name, &[])
        })
    };
    let mut ok = true;
    for c in headers {
        let pairs: Vec<(String, String)> = match (c.name.as_str(), c.args.as_slice()) {
            ("add_header", [n, v] | [n, v, _]) => vec![(n.clone(), v.clone())],
            ("more_set_headers", args) if !args.iter().any(|a| a.starts_with('-')) => args
                .iter()
                .filter_map(|a| super::headers::more_header(a))
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        let valid = !pairs.is_empty()
            && pairs.iter().all(|(n, v)| {
                !v.is_empty() && known(v) && http::HeaderName::from_bytes(n.as_bytes()).is_ok()
            });
        if !valid {
            ok = false;
            ctx.warn(
                c,
                format!("'{}' on a plain-HTTP redirect was not converted (a header name and a value with known variables are needed)", shown(c)),
            );
            continue;
        }
        for (n, v) in pairs {
            if c.name == "add_header" {
                out.add.push((n, v, false));
            } else {
                out.set.push((n, v));
            }
        }
    }
    (ok && !out.is_empty()).then_some(out)
}

/// `{add: {…}, set: {…}}`: `plain_http`'s `response_headers` in flow form.
fn headers_text(h: &super::convert::Headers) -> String {
    let pair = |n: &str, v: &str| format!("{}: {}", super::yaml::scalar(n), super::yaml::quoted(v));
    let mut parts = Vec::new();
    if !h.add.is_empty() {
        let add: Vec<String> = h.add.iter().map(|(n, v, _)| pair(n, v)).collect();
        parts.push(format!("add: {{{}}}", add.join(", ")));
    }
    if !h.set.is_empty() {
        let set: Vec<String> = h.set.iter().map(|(n, v)| pair(n, v)).collect();
        parts.push(format!("set: {{{}}}", set.join(", ")));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Splits the names a server-level `if ($host = name) { return 3xx URL; }`
/// answers out of `site` into sites of their own whose one route redirects
/// (nginx runs that `if` before choosing a location, so the name never
/// reaches one). Returns the new sites, named through `names`.
pub(crate) fn host_redirect_sites<'a>(
    ctx: &mut Ctx<'a>,
    info: &ServerInfo<'a>,
    site: &mut Site<'a>,
    names: &mut super::addr::Names,
) -> Vec<Site<'a>> {
    let mut out = Vec::new();
    for (host, i, code, to) in &info.host_redirects {
        let Some(at) = site.hosts.iter().position(|h| &h.name == host) else {
            continue;
        };
        if site.hosts.len() == 1 && site.default.is_none() {
            // The whole site is that name: its routes are never used.
            ctx.warn(
                i,
                format!("'if ($host = {host})' redirects every request of this server block, so its locations are never used in nginx; move the redirect into a `redirect` route"),
            );
            continue;
        }
        let h = site.hosts.remove(at);
        ctx.note(
            i,
            format!("'if ($host = {host}) {{ return {code} … }}' became a site of its own for {host} whose every path redirects"),
        );
        let mut own = site.clone();
        own.name = names.alloc(host, "site");
        own.hosts = vec![h];
        own.default = None;
        own.default_on = "true";
        own.client_ip = None;
        own.routes = vec![super::convert::Route {
            comment: Some("nginx answered this name before choosing a location".to_string()),
            answer: Some(super::convert::Answer::Redirect {
                to: to.clone(),
                status: *code,
            }),
            timeouts: info.inh.timeouts.clone(),
            ..super::convert::Route::bare("/".to_string(), i)
        }];
        out.push(own);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directive(text: &str) -> Directive {
        let conf = super::super::parse::parse_text(text, 0).expect("parses");
        conf.into_iter().next().expect("one directive")
    }

    #[test]
    fn only_redirects_to_another_host_have_a_target() {
        let t = |s: &str| fixed_target(&directive(s), Some("first.test")).map(|(_, to)| to);
        assert_eq!(t("return 301 https://$host$request_uri;"), None);
        assert_eq!(t("return 301 https://$http_host$request_uri;"), None);
        assert_eq!(
            t("return 301 https://$server_name$request_uri;").as_deref(),
            Some("https://first.test$request_uri")
        );
        assert_eq!(
            t("return 308 https://Canon.test$request_uri;").as_deref(),
            Some("https://canon.test$request_uri")
        );
        assert_eq!(
            t("rewrite ^(.*)$ https://canon.test$1 permanent;").as_deref(),
            Some("https://canon.test$request_uri")
        );
        assert_eq!(
            t("if ($host = a.test) { return 301 https://canon.test$request_uri; }").as_deref(),
            Some("https://canon.test$request_uri")
        );
        assert_eq!(t("return 301 https://canon.test/landing;"), None);
    }
}

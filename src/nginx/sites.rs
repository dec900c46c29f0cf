//! Assembly of sites from analysed server blocks: redirect-only servers
//! become `plain_http: redirect`, each host belongs to one site, plain-HTTP
//! twins of TLS servers become `plain_http: serve`, one site is the default,
//! and TLS sites get their certificate settings.

use std::collections::HashMap;

use super::ImportOptions;
use super::convert::{Answer, Ctx, Host, Listeners, PlainHttp, Site};
use super::directives::shown;
use super::parse::Directive;
use super::server::ServerInfo;

/// Builds the sites, in source order.
/// The checks of a plain-HTTP server block that became a TLS site's
/// `plain_http` redirect: that redirect answers before any check, so each
/// one is a loss to report.
fn lost_checks(ctx: &mut Ctx<'_>, s: &ServerInfo<'_>) {
    for c in &s.checks {
        let d = s.d;
        ctx.warn(
            d,
            format!(
                "the check 'if ({})' from {} is not converted: this server block became the plain_http redirect of a TLS site, which answers before any check",
                c.condition, c.at
            ),
        );
    }
}

pub(crate) fn build<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
    listeners: &Listeners<'a>,
    opts: &ImportOptions,
) -> Vec<Site<'a>> {
    let mut redirect_servers: Vec<ServerInfo<'a>> = Vec::new();
    let mut candidates: Vec<(usize, &ServerInfo<'a>)> = Vec::new();
    // Response headers of blocks that only redirect, for their TLS sites.
    let mut pending_headers = Vec::new();
    let tls_hosts: Vec<String> = infos
        .iter()
        .filter(|s| s.has_tls && !s.routes.is_empty())
        .flat_map(|s| s.hosts.iter().map(|h| h.name.clone()))
        .collect();
    let owned: Vec<ServerInfo<'a>> = infos
        .iter()
        .flat_map(|s| redirect_site(s, &tls_hosts))
        .collect();
    let originals = infos;
    let infos = owned.as_slice();
    let tls_hosts: Vec<&str> = tls_hosts.iter().map(String::as_str).collect();
    for (i, s) in infos.iter().enumerate() {
        let redirect_only = !s.has_tls
            && (s.scheme_redirect.is_some()
                || (s.routes.is_empty() && !s.redirects.is_empty())
                || matches!(s.answer, Some((_, Answer::Redirect { .. }))));
        if redirect_only {
            pending_headers.push((s.d, super::plain::redirect_headers(ctx, s)));
        }
        let redirects_all = !s.has_tls
            && (s.scheme_redirect.is_some() || (s.routes.is_empty() && !s.redirects.is_empty()));
        if let Some(r) = to_https_elsewhere(ctx, s, &tls_hosts) {
            lost_checks(ctx, s);
            let mut s = s.clone();
            s.redirects.push(r);
            redirect_servers.push(s);
            continue;
        }
        if redirects_all {
            lost_checks(ctx, s);
            if !s.routes.is_empty() {
                ctx.warn(
                    s.d,
                    "this plain-HTTP server block redirects every request to https, so its locations were not converted",
                );
            }
            redirect_servers.push(s.clone());
            continue;
        }
        for (r, _) in &s.redirects {
            ctx.warn(
                r,
                format!("'{}' was not converted: greenlight redirects to https only as plain_http: redirect of a TLS site, taken from a plain-HTTP server block that does nothing else", shown(r)),
            );
        }
        if s.routes.is_empty() {
            ctx.warn(
                s.d,
                format!("server block{} has no location with proxy_pass, so no site was created from it", describe(s)),
            );
            continue;
        }
        candidates.push((i, s));
    }

    // Hosts belong to the first server naming them; TLS servers first, so a
    // plain-HTTP twin of a TLS server merges into it.
    let mut order = candidates.clone();
    order.sort_by_key(|(_, s)| !s.has_tls);
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut slots: Vec<Option<Site<'a>>> = infos.iter().map(|_| None).collect();
    let mut merged: HashMap<usize, &'a Directive> = HashMap::new();
    let mut binding = super::bind::Binding::default();
    for (i, s) in order {
        let mut hosts: Vec<Host<'a>> = Vec::new();
        let mut merged_into: Option<usize> = None;
        let mut all_ignored_by_nginx = true;
        for h in &s.hosts {
            match owner.get(&h.name).copied() {
                None => {
                    owner.insert(h.name.clone(), i);
                    hosts.push(h.clone());
                }
                Some(o) => {
                    let other = infos.get(o);
                    let tls_twin = !s.has_tls && other.is_some_and(|x| x.has_tls);
                    if let Some(x) =
                        other.filter(|x| tls_twin && !same_routes(x, s) && binding.split(x, s))
                    {
                        // Its own locations on its own port: nginx serves
                        // them there, so it stays a site (`bind`).
                        all_ignored_by_nginx = false;
                        ctx.note(
                            h.d,
                            format!("host '{}' is also served by the TLS server block at {}, with other locations; nginx chose between them by listen address, so the sites got `listeners:`", h.name, ctx.at(x.d)),
                        );
                        hosts.push(h.clone());
                    } else if tls_twin {
                        merged_into.get_or_insert(o);
                        if let Some(x) = other {
                            binding.also(x.d, s.d);
                        }
                    } else {
                        let at = other.map(|x| ctx.at(x.d)).unwrap_or_default();
                        if other.is_some_and(|x| same_sockets(x, s)) {
                            all_ignored_by_nginx = true;
                            ctx.note(
                                h.d,
                                format!("host '{}' is already served by the server block at {at} on the same listen addresses; nginx ignores this one too (\"conflicting server name\"), so it was left out here", h.name),
                            );
                        } else if let Some(x) = other.filter(|x| binding.split(x, s)) {
                            // nginx chose by listen address: both sites
                            // keep the host, on their own listeners (`bind`).
                            all_ignored_by_nginx = false;
                            ctx.note(
                                h.d,
                                format!("host '{}' is also served by the server block at {}; nginx chose between them by listen address, so the sites got `listeners:`", h.name, ctx.at(x.d)),
                            );
                            hosts.push(h.clone());
                        } else {
                            all_ignored_by_nginx = false;
                            ctx.warn(
                                h.d,
                                format!("host '{}' is already served by the server block at {at}; nginx chose between them by listen address, greenlight by host only, so it was left out here", h.name),
                            );
                        }
                    }
                }
            }
        }
        if let Some(o) = merged_into {
            merged.entry(o).or_insert(s.d);
            let tls = infos.get(o);
            let at = tls.map(|x| ctx.at(x.d)).unwrap_or_default();
            if hosts.is_empty() {
                let same = tls.is_some_and(|t| same_routes(t, s));
                if !same {
                    ctx.warn(
                        s.d,
                        format!("this plain-HTTP server block has the hosts of the TLS server block at {at} but different locations: greenlight serves the TLS site's routes on plain listeners too (plain_http: serve), so this block's own routes were not converted"),
                    );
                }
                continue;
            }
            ctx.warn(
                s.d,
                format!("some hosts of this plain-HTTP server block also belong to the TLS server block at {at}: they follow that site's plain_http: serve, and the other hosts form their own site"),
            );
        }
        if hosts.is_empty() && !s.hosts.is_empty() {
            if all_ignored_by_nginx {
                ctx.note(
                    s.d,
                    "every host of this server block is served by an earlier one on the same listen addresses, which is also what nginx answers with, so no site was created from it",
                );
            } else {
                ctx.warn(
                    s.d,
                    "every host of this server block is served by an earlier one, so no site was created from it",
                );
            }
            continue;
        }
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(Site {
                name: String::new(),
                server: s.d,
                hosts,
                hosts_d: s.server_name,
                default: None,
                default_on: "true",
                tls: None,
                plain_http: None,
                body: s.inh.body.clone(),
                keepalive: None,
                underscores: s.inh.underscores.clone(),
                routes: s.routes.clone(),
                client_ip: if s.real_ip_own {
                    super::realip::client_ip(ctx, &s.inh.real_ip)
                } else {
                    None
                },
                checks: s.checks.clone(),
                client_auth: None,
                listeners: Vec::new(),
            });
        }
    }

    let redirect_blocks: Vec<&Directive> = redirect_servers.iter().map(|s| s.d).collect();
    // Each listener gets nginx's default server then (`bind`).
    let bound = binding.needed() || super::bind::defaults_differ(infos, listeners);
    choose_default(ctx, infos, &mut slots, &redirect_blocks, bound);

    let redirect_refs: Vec<&ServerInfo<'a>> = redirect_servers.iter().collect();
    let redirects = RedirectMap::new(ctx, &redirect_refs, &owner, infos, originals);
    let any_plain = listeners.any_plain();
    // Before `redirect_site` turned lone redirects into routes.
    let redirected = super::site_tls::redirected_names(originals);
    let mut names = super::addr::Names::default();
    let mut sites = Vec::new();
    let mut plain_sources = Vec::new();
    for (i, slot) in slots.into_iter().enumerate() {
        let (Some(mut site), Some(info)) = (slot, infos.get(i)) else {
            continue;
        };
        site.name = names.alloc(&name_base(&site, info), "site");
        if info.has_tls {
            site.tls = Some(super::site_tls::site_tls(
                ctx,
                info,
                &site.hosts,
                &redirected,
                opts,
            ));
            site.client_auth = info.client_auth.clone();
            let (plain, source) =
                match plain_http(ctx, info, &site, merged.get(&i).copied(), &redirects) {
                    Some((p, d)) => (Some(p), d),
                    None => (None, None),
                };
            site.plain_http = plain;
            plain_sources.push(source);
            if site.plain_http.is_none() && any_plain && !site.hosts.is_empty() {
                site.plain_http = super::plain::from_plain_default(ctx, infos);
            }
        } else {
            plain_sources.push(None);
        }
        let mut split = super::plain::host_redirect_sites(ctx, info, &mut site, &mut names);
        split.extend(super::plain::not_found_sites(
            ctx,
            &mut site,
            &redirects.not_found,
            &mut names,
        ));
        sites.push(site);
        for s in split {
            plain_sources.push(None);
            sites.push(s);
        }
    }
    super::plain::scope_defaults(ctx, infos, &mut sites, &plain_sources);
    super::plain::place_webroots(ctx, infos, &mut sites, &plain_sources);
    super::plain::place_redirect_headers(ctx, &mut sites, &plain_sources, &pending_headers);
    super::bind::bind(
        ctx,
        infos,
        &mut sites,
        &mut binding,
        &redirect_servers,
        &owner,
        listeners,
    );
    sites
}

/// A plain-HTTP server that only redirects to https, for hosts no TLS site
/// serves: its own site whose one route redirects (plain_http: redirect
/// needs a TLS site to hang on).
fn redirect_site<'a>(s: &ServerInfo<'a>, tls_hosts: &[String]) -> Vec<ServerInfo<'a>> {
    let mut s = s.clone();
    let Some(&(d, status)) = s.redirects.first() else {
        return vec![s];
    };
    let (lonely, covered): (Vec<_>, Vec<_>) = s
        .hosts
        .iter()
        .cloned()
        .partition(|h| !tls_hosts.contains(&h.name));
    if s.has_tls || s.scheme_redirect.is_some() || !s.routes.is_empty() || lonely.is_empty() {
        return vec![s];
    }
    let mut rest = Vec::new();
    if !covered.is_empty() {
        // Hosts some TLS site serves stay with the redirect server (they
        // become that site's `plain_http: redirect`); the others get this one.
        let mut c = s.clone();
        c.hosts = covered;
        rest.push(c);
        s.hosts = lonely;
        // Only one of the two may stand for nginx's default server.
        s.listen_default = None;
        s.catch_all = None;
    }
    // certbot's `if ($host = x) { return 301 …; }`: the return inside.
    let ret = if d.name == "if" {
        d.children().first().unwrap_or(d)
    } else {
        d
    };
    let mut to = ret.args.get(1).cloned().unwrap_or_default();
    if ret.name == "rewrite"
        && let Some(host) = to
            .strip_prefix("https://")
            .and_then(|t| t.split('$').nth(1))
    {
        // `rewrite ^ https://$host$request_uri? permanent` and the `$1`
        // form: the same URL as a redirect.
        to = format!("https://${host}$request_uri");
    }
    s.routes.push(super::convert::Route {
        comment: Some("no TLS site serves these hosts, so the redirect is a route".to_string()),
        answer: Some(Answer::Redirect { to, status }),
        timeouts: s.inh.timeouts.clone(),
        ..super::convert::Route::bare("/".to_string(), d)
    });
    s.redirects.clear();
    rest.insert(0, s);
    rest
}

/// A plain-HTTP server that answers everything with a redirect to
/// `https://OTHER$request_uri` for hosts that TLS sites serve: greenlight's
/// `plain_http: redirect` sends them to https on the same host, whose site
/// then answers as nginx's TLS server does.
fn to_https_elsewhere<'a>(
    ctx: &mut Ctx<'a>,
    s: &ServerInfo<'a>,
    tls_hosts: &[&str],
) -> Option<(&'a Directive, u16)> {
    let (r, Answer::Redirect { to, status }) = s.answer.as_ref()? else {
        return None;
    };
    let covered =
        !s.hosts.is_empty() && s.hosts.iter().all(|h| tls_hosts.contains(&h.name.as_str()));
    if s.has_tls || !covered || !to.starts_with("https://") || !to.ends_with("$request_uri") {
        return None;
    }
    ctx.note(
        r,
        format!("'{}' became the plain_http redirect of the TLS site of these hosts (nginx's status and target), where that site answers as nginx's TLS server did", shown(r)),
    );
    Some((r, *status))
}

/// True when two server blocks listen on exactly the same addresses (so
/// nginx picks between them by name alone).
fn same_sockets(a: &ServerInfo<'_>, b: &ServerInfo<'_>) -> bool {
    let mut x = a.listen_keys.clone();
    let mut y = b.listen_keys.clone();
    x.sort();
    y.sort();
    !x.is_empty() && x == y
}

fn describe(s: &ServerInfo<'_>) -> String {
    match s.hosts.first() {
        Some(h) if s.hosts.len() > 1 => format!(" for {} and {} more", h.name, s.hosts.len() - 1),
        Some(h) => format!(" for {}", h.name),
        None if s.catch_all.is_some() => " (server_name _)".to_string(),
        None => String::new(),
    }
}

fn same_routes(a: &ServerInfo<'_>, b: &ServerInfo<'_>) -> bool {
    a.routes.len() == b.routes.len()
        && a.routes.iter().zip(&b.routes).all(|(x, y)| {
            x.path == y.path
                && x.target.as_ref().map(|t| &t.key) == y.target.as_ref().map(|t| &t.key)
                && x.answer == y.answer
                && x.timeouts.key() == y.timeouts.key()
        })
}

fn name_base(site: &Site<'_>, info: &ServerInfo<'_>) -> String {
    if let Some(h) = site.hosts.iter().find(|h| !h.name.starts_with('*')) {
        return h.name.clone();
    }
    if let Some(h) = site.hosts.first() {
        return h.name.trim_start_matches("*.").to_string();
    }
    if info.catch_all.is_some() || site.default.is_some() {
        return "default".to_string();
    }
    "site".to_string()
}

/// Which kinds of listener (TLS, plain) a block is nginx's default server
/// for when it says so: the kind of its `default_server` listen, or every
/// kind it listens on for `server_name _` and blocks without a name.
fn claimed_kinds(info: &ServerInfo<'_>, explicit: bool) -> (bool, bool) {
    match info.listen_default {
        Some(l) if explicit => {
            let tls = l.args.iter().any(|a| a == "ssl");
            (tls, !tls)
        }
        _ => (info.has_tls, info.has_plain || !info.has_tls),
    }
}

/// Without any `default_server`: nginx's first block of each port answers
/// unknown hosts. The first site listening with TLS stands for the TLS
/// ports (the plain side is settled by `plain::scope_defaults`), else the
/// first site.
fn first_default(infos: &[ServerInfo<'_>], slots: &[Option<Site<'_>>]) -> Option<usize> {
    let sites = || {
        slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i)
    };
    sites()
        .find(|&i| infos.get(i).is_some_and(|s| s.has_tls))
        .or_else(|| sites().next())
}

/// The default sites: per kind of listener (nginx keeps one per port), the
/// first block with `listen ... default_server` or `server_name _`, else
/// the first without host names. Host-less sites that are not a default
/// could never be selected and are dropped. A site that is the only
/// default is `default: true` (narrowed later by `plain::scope_defaults`).
fn choose_default<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
    slots: &mut [Option<Site<'a>>],
    redirect_blocks: &[&Directive],
    bound: bool,
) {
    // The block that took each kind: (TLS, plain).
    let mut chosen: (Option<String>, Option<String>) = (None, None);
    let take = |chosen: &mut (Option<String>, Option<String>), at: String, (t, p): (bool, bool)| {
        let took_t = t && chosen.0.is_none();
        let took_p = p && chosen.1.is_none();
        if took_t {
            chosen.0 = Some(at.clone());
        }
        if took_p {
            chosen.1 = Some(at);
        }
        match (took_t, took_p) {
            (true, true) => Some("true"),
            (true, false) => Some("https"),
            (false, true) => Some("http"),
            (false, false) => None,
        }
    };
    for (i, slot) in slots.iter_mut().enumerate() {
        let (Some(site), Some(info)) = (slot.as_mut(), infos.get(i)) else {
            continue;
        };
        let reason = match (info.listen_default, info.catch_all) {
            (Some(l), _) => format!("listen {} default_server ({})", l.arg0(), ctx.at(l)),
            (None, Some(c)) => format!("server_name _ ({})", ctx.at(c)),
            (None, None) => continue,
        };
        let first = chosen.0.clone().or(chosen.1.clone());
        match take(&mut chosen, ctx.at(info.d), claimed_kinds(info, true)) {
            Some(on) => {
                if info.listen_default.is_none()
                    && let Some(c) = info.catch_all
                {
                    ctx.note(
                        c,
                        "server_name '_' is nginx's catch-all convention: the site became a default site",
                    );
                }
                site.default = Some(reason);
                site.default_on = on;
            }
            None if bound => {}
            None => {
                let first = first.unwrap_or_default();
                ctx.warn(
                    info.d,
                    format!("this server block is also a default server in nginx ({reason}), but greenlight has one default site per kind of listener: the one from {first}"),
                );
            }
        }
    }
    for (i, slot) in slots.iter_mut().enumerate() {
        let Some(info) = infos.get(i) else { continue };
        let Some(site) = slot.as_mut() else { continue };
        if !site.hosts.is_empty() || site.default.is_some() {
            continue;
        }
        if let Some(on) = take(&mut chosen, ctx.at(info.d), claimed_kinds(info, false)) {
            site.default = Some("no server_name: nginx used it as the default server".to_string());
            site.default_on = on;
            ctx.note(
                info.d,
                "this server block has no server_name, so it became a default site",
            );
        } else {
            ctx.warn(
                info.d,
                "this server block has no server_name and is not the default site, so greenlight could never select it; it was not converted (add a server_name)",
            );
            *slot = None;
        }
    }
    // No server says `default_server`, has `server_name _` or lacks a name:
    // nginx then answers unknown hosts with the first server block of the
    // port, so the first site is the default.
    if chosen.0.is_none()
        && chosen.1.is_none()
        && let Some(i) = first_default(infos, slots)
        && let Some(Some(site)) = slots.get_mut(i)
        && let Some(info) = infos.get(i)
    {
        chosen.0 = Some(ctx.at(info.d));
        site.default =
            Some("the first server block: nginx's default server for its port".to_string());
        ctx.note(
            info.d,
            "no server block says default_server, so nginx answers unknown hosts with the first block of each port: this one became the default site",
        );
    }
    // A default_server on the plain port only: nginx's TLS port still has
    // its own default, its first server block.
    if chosen.0.is_none()
        && chosen.1.is_some()
        && let Some(i) = slots.iter().enumerate().position(|(i, s)| {
            s.as_ref().is_some_and(|s| s.default.is_none())
                && infos.get(i).is_some_and(|info| info.has_tls)
        })
        && let Some(Some(site)) = slots.get_mut(i)
        && let Some(info) = infos.get(i)
    {
        chosen.0 = Some(ctx.at(info.d));
        site.default =
            Some("the first TLS server block: nginx's default server for its TLS port".to_string());
        site.default_on = "https";
    }
    // The only default answers every listener (narrowed later when the
    // plain port's default is another block).
    let defaults = slots
        .iter()
        .flatten()
        .filter(|s| s.default.is_some())
        .count();
    if defaults == 1
        && let Some(site) = slots.iter_mut().flatten().find(|s| s.default.is_some())
    {
        site.default_on = "true";
    }
    let chosen = chosen.0.or(chosen.1);
    for (i, info) in infos.iter().enumerate() {
        let is_site = slots.get(i).is_some_and(Option::is_some);
        let redirects = !info.redirects.is_empty()
            || info.scheme_redirect.is_some()
            || redirect_blocks.iter().any(|d| std::ptr::eq(*d, info.d));
        if is_site || redirects {
            continue;
        }
        if let Some(l) = info.listen_default.or(info.catch_all) {
            let now = match &chosen {
                Some(at) => format!("the default site (from {at})"),
                None => "greenlight's answer for unknown hosts".to_string(),
            };
            ctx.warn(
                l,
                format!("this server block was nginx's default server here but was not converted, so requests for unknown hosts now get {now}"),
            );
        }
    }
}

/// Where plain-HTTP redirect server blocks send their hosts.
struct RedirectMap<'a> {
    by_host: HashMap<String, Redirect<'a>>,
    /// Names of redirect blocks whose `if ($host ~ re)` does not match them
    /// (nginx answered them 404 on plain HTTP).
    not_found: Vec<String>,
    /// Wildcard names (`*.a.com`, `www.a.*`) of plain-HTTP redirect blocks:
    /// the TLS sites of names they cover follow them too.
    wild: HashMap<String, Redirect<'a>>,
    catch_all: Option<Redirect<'a>>,
}

/// A redirect of a plain-HTTP block: its directive, status, and the
/// block's first server name (nginx's `$server_name`).
#[derive(Clone, Copy)]
struct Redirect<'a> {
    d: &'a Directive,
    code: u16,
    first: Option<&'a str>,
    /// The plain-HTTP block itself.
    server: &'a Directive,
}

impl<'a> RedirectMap<'a> {
    /// The redirect nginx's port-80 blocks apply to `host`, by nginx's
    /// server_name order: the exact name, then the longest `*.suffix`, then
    /// the longest `prefix.*`.
    fn find(&self, host: &str) -> Option<Redirect<'a>> {
        if let Some(&r) = self.by_host.get(host) {
            return Some(r);
        }
        let longest = |m: &dyn Fn(&str) -> bool| {
            self.wild
                .iter()
                .filter(|(k, _)| m(k))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, &r)| r)
        };
        longest(&|k: &str| {
            k.strip_prefix('*')
                .is_some_and(|sfx| sfx.starts_with('.') && host.ends_with(sfx))
        })
        .or_else(|| {
            longest(&|k: &str| {
                k.strip_suffix('*')
                    .is_some_and(|pfx| pfx.ends_with('.') && host.starts_with(pfx))
            })
        })
    }

    fn new(
        ctx: &mut Ctx<'a>,
        servers: &[&ServerInfo<'a>],
        owner: &HashMap<String, usize>,
        infos: &[ServerInfo<'a>],
        originals: &[ServerInfo<'a>],
    ) -> Self {
        let mut map = RedirectMap {
            by_host: HashMap::new(),
            not_found: Vec::new(),
            wild: HashMap::new(),
            catch_all: None,
        };
        for s in originals.iter().filter(|s| !s.has_tls) {
            let Some(&(d, code)) = s.scheme_redirect.as_ref().or(s.redirects.first()) else {
                continue;
            };
            for h in s
                .hosts
                .iter()
                .filter(|h| h.name.starts_with("*.") || h.name.ends_with(".*"))
            {
                let r = Redirect {
                    d,
                    code,
                    first: s.server_name.map(Directive::arg0),
                    server: s.d,
                };
                map.wild.entry(h.name.clone()).or_insert(r);
            }
        }
        // nginx's default server of the plain port also takes plain requests
        // for names no plain block lists (a TLS site without a twin).
        let port_default = super::plain::plain_default(infos).map(|p| p.d);
        for s in servers {
            let Some(&(d, code)) = s.scheme_redirect.as_ref().or(s.redirects.first()) else {
                continue;
            };
            let first = Redirect {
                d,
                code,
                first: s.server_name.map(Directive::arg0),
                server: s.d,
            };
            if s.hosts.is_empty()
                || s.catch_all.is_some()
                || s.listen_default.is_some()
                || port_default == Some(s.d)
            {
                map.catch_all.get_or_insert(first);
            }
            for h in &s.hosts {
                let tls_owner = owner
                    .get(&h.name)
                    .and_then(|&o| infos.get(o))
                    .is_some_and(|o| o.has_tls);
                if tls_owner && !super::plain::regex_if_matches(d, &h.name) {
                    // certbot-like `if ($host ~ re)`: a name the regex does
                    // not match got the block's 404.
                    map.not_found.push(h.name.clone());
                } else if tls_owner {
                    map.by_host.entry(h.name.clone()).or_insert(first);
                } else {
                    ctx.warn(
                        h.d,
                        format!("the redirect to https for '{}' was not converted: no TLS site serves '{}'", h.name, h.name),
                    );
                }
            }
        }
        map
    }
}

/// The site's `plain_http`, with the server block it came from.
fn plain_http<'a>(
    ctx: &Ctx<'a>,
    info: &ServerInfo<'a>,
    site: &Site<'a>,
    merged: Option<&'a Directive>,
    redirects: &RedirectMap<'a>,
) -> Option<(PlainHttp, Option<&'a Directive>)> {
    let redirect = |r: Redirect<'a>| {
        let target = super::plain::fixed_target(r.d, r.first);
        let p = PlainHttp {
            // nginx's own status is kept (`return 301` stays 301).
            mode: super::plain::redirect_mode(r.code, target, site),
            detail: format!("from {} (return {})", ctx.at(r.d), r.code),
        };
        (p, Some(r.server))
    };
    if info.has_plain {
        if let Some((d, code)) = info.scheme_redirect {
            return Some(redirect(Redirect {
                d,
                code,
                first: info.server_name.map(Directive::arg0),
                server: info.d,
            }));
        }
        let d = info.first_plain_listen.unwrap_or(info.d);
        let p = PlainHttp {
            mode: "serve".to_string(),
            detail: format!("from {} (the server also listens on plain HTTP)", ctx.at(d)),
        };
        return Some((p, Some(info.d)));
    }
    if let Some(d) = merged {
        let p = PlainHttp {
            mode: "serve".to_string(),
            detail: format!(
                "from {} (a plain-HTTP server block for the same hosts)",
                ctx.at(d)
            ),
        };
        return Some((p, Some(d)));
    }
    if let Some(r) = site.hosts.iter().find_map(|h| redirects.find(&h.name)) {
        return Some(redirect(r));
    }
    redirects.catch_all.map(redirect)
}

//! Routing as a pure function: (host, path, listener kind, SNI) -> decision.
//!
//! The [`Router`] is built once per snapshot from the config (regexes are
//! compiled by `validate`, before); [`Router::route`] takes no lock and
//! allocates nothing unless a regex location matches (its capture spans).
//!
//! Host names are matched like nginx's `server_name`: the exact name, then
//! the longest leading wildcard (`*.example.com` matches names of any depth
//! below it), then the longest trailing wildcard (`www.example.*`), then the
//! `~regex` names in file order, then the default site. Which certificate a
//! TLS connection got keeps certificate semantics instead (exact name, else
//! a wildcard of one label, else the fallback — `tls::store`): the 421 check
//! compares against that.
//!
//! Paths are matched like nginx's `location`s (see [`crate::plan::location`]):
//! an exact location wins; else the longest matching prefix is found, and if
//! it is a `^~` prefix it wins; else the regex locations are tried in file
//! order and the first that matches wins; else the longest prefix. The
//! subject is the request path exactly as received, without the query
//! (not percent-decoded, slashes not merged — nginx matches its normalised
//! decoded URI; README says so). Like nginx for a `proxy_pass` location, a
//! path that is a prefix location minus its trailing slash (`/api` for
//! `/api/`) gets a 301 to the path with the slash, before any regex is
//! tried — unless some location is exactly that path.

use crate::config::Config;
use crate::config::model::{HostPattern, PlainHttp, RouteScheme};
use crate::metrics::{Metrics, NONE, RouteMetrics};
use crate::plan::Captures;
use crate::plan::location::Location;
use regex::Regex;
use std::borrow::Cow;
use std::collections::HashMap;

/// A site as the router needs it.
pub struct SiteRoutes {
    /// Site name (logs, metrics).
    pub name: String,
    /// The site has a certificate.
    pub tls: bool,
    /// Behaviour on plain listeners when `tls`.
    pub plain_http: PlainHttp,
    /// The redirect's target when `plain_http` names one (else the
    /// request's own URL on https).
    pub plain_redirect_to: Option<std::sync::Arc<crate::plan::template::Template>>,
    /// Body limit in bytes; `None` = unlimited.
    pub max_body_size: Option<u64>,
    /// Headers with `_` in their names are passed to the app.
    pub underscores_in_headers: bool,
    /// The site's own HTTP/1.1 keep-alive wait (zero: close after each answer).
    pub keepalive_timeout: Option<std::time::Duration>,
    /// The site's locations, arranged for nginx's selection order (all
    /// but `scheme: http` routes; every route when none names a scheme).
    paths: PathTable,
    /// The locations plain-HTTP requests choose from, when that differs
    /// from `paths`: on a TLS site whose `plain_http` redirects (or answers
    /// 404), its `scheme: http` routes only (`None`: none, every plain
    /// request is redirected); elsewhere every route but `scheme: https`
    /// ones (`None`: no route names a scheme, `paths` serves both).
    plain_paths: Option<PathTable>,
    /// Per route in file order: its upstream's index (`None`: answered locally).
    upstreams: Vec<Option<usize>>,
    /// Per route (file order): read request bodies whole before connecting.
    buffering: Vec<bool>,
    /// Per route (file order): its body limit (`None`: unlimited).
    body_limits: Vec<Option<u64>>,
    /// Per route (file order): upstream answers retried on the next server.
    retry: Vec<crate::plan::retry::RetryStatuses>,
    /// Per route that stands for its location in `paths` (the first of it):
    /// the routes of that location that name methods, with those methods,
    /// and the one that takes every other method. Empty when no route of
    /// the site names methods.
    by_method: Vec<MethodChoice>,
    /// Per route (file order), per pool of its upstream: metric handles.
    route_metrics: Vec<Vec<RouteMetrics>>,
    /// For requests answered locally (404, 308, 413, ...).
    pub local_metrics: RouteMetrics,
}

/// How the routes of one location split it by request method.
#[derive(Debug, Default, Clone)]
struct MethodChoice {
    /// Routes with `methods:`, in file order.
    named: Vec<(Vec<http::Method>, usize)>,
    /// The route without `methods:`, if any.
    rest: Option<usize>,
}

impl MethodChoice {
    /// The route for `method`, or `Err(allowed)` when none takes it.
    fn pick(&self, method: &http::Method) -> Result<usize, Vec<http::Method>> {
        if let Some((_, r)) = self.named.iter().find(|(m, _)| m.contains(method)) {
            return Ok(*r);
        }
        self.rest
            .ok_or_else(|| self.named.iter().flat_map(|(m, _)| m.clone()).collect())
    }
}

impl SiteRoutes {
    /// Whether route `route` reads request bodies whole before connecting
    /// upstream (`request_buffering`).
    pub fn buffers_body(&self, route: usize) -> bool {
        self.buffering.get(route).copied().unwrap_or(true)
    }

    /// Body limit of route `route` in bytes (its `max_body_size`, else the
    /// site's); `None` = unlimited.
    pub fn max_body(&self, route: usize) -> Option<u64> {
        self.body_limits
            .get(route)
            .copied()
            .unwrap_or(self.max_body_size)
    }

    /// Upstream answers route `route` retries on the next server.
    pub fn retry_statuses(&self, route: usize) -> crate::plan::retry::RetryStatuses {
        self.retry.get(route).copied().unwrap_or_default()
    }

    /// Metric handles of route `route` for pool `pool` of its upstream.
    pub fn metrics(&self, route: usize, pool: usize) -> Option<&RouteMetrics> {
        self.route_metrics.get(route)?.get(pool)
    }

    /// The upstream index of route `route` (`None`: answered locally).
    pub fn upstream_of(&self, route: usize) -> Option<usize> {
        self.upstreams.get(route).copied().flatten()
    }

    /// What the site's locations make of `path`; see the module header for
    /// the order.
    pub fn find_route(&self, path: &str) -> PathMatch {
        self.paths.find(path)
    }

    /// Whether plain-HTTP requests only see the site's `scheme: http`
    /// routes, everything else being redirected (or refused) by
    /// `plain_http`.
    fn plain_guarded(&self) -> bool {
        self.tls && self.plain_http != PlainHttp::Serve
    }
}

/// What a site's locations make of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Route `.0` (file-order index) takes it; `.1` holds the capture spans
    /// when a regex location matched.
    Route(usize, Option<Captures>),
    /// The path is prefix route `.0`'s path without its trailing slash: a
    /// 301 to the path with `/` added (nginx's auto-redirect of `proxy_pass`
    /// locations).
    AddSlash(usize),
    /// No location matches.
    None,
}

/// A site's locations, each with its route's file-order index.
#[derive(Debug, Default)]
struct PathTable {
    /// `= /p`, in file order.
    exact: Vec<(String, usize)>,
    /// `/p` and `^~ /p` (`true`), longest first.
    prefixes: Vec<(String, bool, usize)>,
    /// `~` / `~*`, in file order.
    regexes: Vec<(Regex, usize)>,
    /// Prefix locations ending in `/` (longer than `/`), without that slash:
    /// a path equal to one is redirected to the location.
    slash: Vec<(String, usize)>,
}

impl PathTable {
    fn add(&mut self, location: &Location, route: usize, proxies: bool) {
        // nginx sets auto_redirect on locations that proxy_pass only: a
        // route answered locally (`redirect`, `respond`) gets none.
        if proxies
            && let Location::Prefix(p) | Location::PrefixNoRegex(p) = location
            && let Some(bare) = p.strip_suffix('/').filter(|b| !b.is_empty())
        {
            self.slash.push((bare.to_string(), route));
        }
        match location {
            Location::Exact(p) => self.exact.push((p.clone(), route)),
            Location::Prefix(p) => self.prefixes.push((p.clone(), false, route)),
            Location::PrefixNoRegex(p) => self.prefixes.push((p.clone(), true, route)),
            Location::Regex(r) => self.regexes.push((r.regex().clone(), route)),
            // Reached through a files route's `try_files` only.
            Location::Named(_) => {}
        }
    }

    fn finish(&mut self) {
        // Stable: equal lengths keep file order (validate refuses equal paths).
        self.prefixes
            .sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
    }

    fn find(&self, path: &str) -> PathMatch {
        if let Some((_, route)) = self.exact.iter().find(|(p, _)| p == path) {
            return PathMatch::Route(*route, None);
        }
        let longest = self
            .prefixes
            .iter()
            .find(|(p, _, _)| path.starts_with(p.as_str()));
        // A prefix location equal to the path is a match, not a redirect.
        if longest.is_none_or(|(p, _, _)| p.len() < path.len())
            && let Some((_, route)) = self.slash.iter().find(|(p, _)| p == path)
        {
            return PathMatch::AddSlash(*route);
        }
        if let Some((_, true, route)) = longest {
            return PathMatch::Route(*route, None);
        }
        for (re, route) in &self.regexes {
            if re.is_match(path) {
                return PathMatch::Route(*route, Some(captures(re, path)));
            }
        }
        match longest {
            Some((_, _, route)) => PathMatch::Route(*route, None),
            None => PathMatch::None,
        }
    }
}

/// The spans of `re`'s groups over `path` (which it is known to match).
fn captures(re: &Regex, path: &str) -> Captures {
    let mut locs = re.capture_locations();
    re.captures_read(&mut locs, path);
    Captures::from_locations(locs)
}

/// Host name -> site, nginx `server_name` order.
#[derive(Debug, Default)]
struct HostTable {
    exact: HashMap<String, usize>,
    /// `*.example.com` by its suffix `.example.com`.
    leading: HashMap<String, usize>,
    /// `www.example.*` by its prefix `www.example.`.
    trailing: HashMap<String, usize>,
    /// `~regex` names, file order.
    regexes: Vec<(Regex, usize)>,
}

impl HostTable {
    fn add(&mut self, pattern: &HostPattern, site: usize) {
        match pattern {
            HostPattern::Exact(n) => {
                self.exact.insert(n.clone(), site);
            }
            HostPattern::Wildcard(sfx) => {
                self.leading.insert(sfx.clone(), site);
            }
            HostPattern::TrailingWildcard(pfx) => {
                self.trailing.insert(pfx.clone(), site);
            }
            HostPattern::Regex(r) => self.regexes.push((r.regex().clone(), site)),
        }
    }

    /// The site naming `host` (lowercase, no port), without the default.
    fn find(&self, host: &str) -> Option<usize> {
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        if !self.leading.is_empty() {
            // Leftmost dot first = longest suffix first; the `*` stands for
            // at least one character, so a leading dot does not count.
            for (dot, _) in host.match_indices('.').filter(|(d, _)| *d > 0) {
                if let Some(i) = self.leading.get(&host[dot..]) {
                    return Some(*i);
                }
            }
        }
        if !self.trailing.is_empty() {
            // Rightmost dot first = longest prefix first; something must
            // follow it.
            for (dot, _) in host.rmatch_indices('.').filter(|(d, _)| d + 1 < host.len()) {
                if let Some(i) = self.trailing.get(&host[..=dot]) {
                    return Some(*i);
                }
            }
        }
        self.regexes
            .iter()
            .find(|(re, _)| re.is_match(host))
            .map(|(_, i)| *i)
    }
}

/// Which site a host names, and the defaults, for a set of sites (every
/// site, or those of one listener: [`listeners`]).
#[derive(Debug, Default)]
struct HostView {
    hosts: HostTable,
    /// TLS sites by the names their certificates carry, with certificate
    /// semantics (`tls::store::CertMap::lookup`): exact, then one label.
    cert_exact: HashMap<String, usize>,
    cert_wildcard: HashMap<String, usize>,
    /// The default site for TLS listeners (`default: true` or `https`).
    default: Option<usize>,
    /// The default site for plain listeners (`default: true` or `http`).
    default_plain: Option<usize>,
    /// The site whose certificate a TLS client gets when its SNI names no
    /// TLS site (or it sent none): the default site's, else the first TLS
    /// site's — the same choice as `tls::store::build_cert_map`.
    cert_fallback: Option<usize>,
}

impl HostView {
    /// Adds site `i`'s names, certificate names and default.
    fn add_site(&mut self, i: usize, s: &crate::config::model::SiteConfig) {
        for h in &s.hosts {
            self.hosts.add(h, i);
            if s.tls.is_some() {
                match h {
                    HostPattern::Exact(n) => self.cert_exact.insert(n.clone(), i),
                    HostPattern::Wildcard(sfx) => self.cert_wildcard.insert(sfx.clone(), i),
                    HostPattern::TrailingWildcard(_) | HostPattern::Regex(_) => None,
                };
            }
        }
        if s.default.covers(true) {
            self.default = Some(i);
        }
        if s.default.covers(false) {
            self.default_plain = Some(i);
        }
        if s.tls.is_some() && (s.default.covers(true) || self.cert_fallback.is_none()) {
            self.cert_fallback = Some(i);
        }
    }

    /// The site whose certificate a connection with this SNI was given, by
    /// the certificate store's rules.
    fn cert_site(&self, sni: Option<&str>) -> Option<usize> {
        let named = sni.map(|n| n.trim_end_matches('.')).and_then(|n| {
            self.cert_exact.get(n).copied().or_else(|| {
                let dot = n.find('.')?;
                self.cert_wildcard.get(&n[dot..]).copied()
            })
        });
        named.or(self.cert_fallback)
    }
}

/// Host + path -> site and upstream, for one snapshot.
pub struct Router {
    sites: Vec<SiteRoutes>,
    /// Every site: what a request of a listener without its own view sees.
    all: HostView,
    /// Per listener, when some site has `listeners:` (`None`: every
    /// listener sees `all`, at the cost of one check).
    by_listener: Option<Box<listeners::ByListener>>,
    /// For requests no site takes.
    pub none_metrics: RouteMetrics,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "sites",
                &self.sites.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SiteRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteRoutes")
            .field("name", &self.name)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// What the request carries that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// `Host` header or `:authority`, as received (port allowed).
    pub host: Option<&'a str>,
    /// Request path (no query), as received.
    pub path: &'a str,
    /// Arrived on a TLS listener.
    pub tls: bool,
    /// SNI of the TLS connection, lowercase.
    pub sni: Option<&'a str>,
    /// The request method (routes may take some methods only).
    pub method: &'a http::Method,
    /// The listener it arrived on (index into the config's listeners),
    /// when the router tells listeners apart ([`Router::listener_of`]).
    pub listener: Option<usize>,
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Proxy to `upstream` (index into the snapshot's upstreams).
    Proxy {
        /// Site index.
        site: usize,
        /// Upstream index; `None` for a route whose plan answers itself
        /// (`redirect`, `respond`).
        upstream: Option<usize>,
        /// Route index within the site, in file order (for its metric
        /// handles and its plan).
        route: usize,
        /// Capture spans over [`RouteInput::path`] when a regex location
        /// matched; `None` for exact and prefix locations.
        captures: Option<Captures>,
    },
    /// No site for this host and no default site: 404.
    NoSite,
    /// The site has no route for this path: 404.
    NoRoute {
        /// Site index.
        site: usize,
    },
    /// Plain request for a TLS site with `plain_http: redirect` (308 unless
    /// another status is written).
    Redirect {
        /// Site index.
        site: usize,
        /// The redirect's status (`plain_http: redirect NNN`).
        status: u16,
    },
    /// The location's routes all name methods and none names this one: 405
    /// with `Allow`.
    MethodNotAllowed {
        /// Site index.
        site: usize,
        /// The methods the location's routes take.
        allow: Vec<http::Method>,
    },
    /// Plain request for a TLS site with `plain_http: not_found`: 404.
    HttpsOnly {
        /// Site index.
        site: usize,
    },
    /// The path names a prefix route without its trailing slash: 301 to the
    /// same URL with the slash (nginx's auto-redirect).
    AddSlash {
        /// Site index.
        site: usize,
    },
    /// TLS connection for one site carrying a request for another: 421.
    Misdirected,
}

impl Decision {
    /// The site the request was routed to, if any.
    pub fn site(&self) -> Option<usize> {
        match self {
            Decision::Proxy { site, .. }
            | Decision::NoRoute { site }
            | Decision::Redirect { site, .. }
            | Decision::MethodNotAllowed { site, .. }
            | Decision::HttpsOnly { site }
            | Decision::AddSlash { site } => Some(*site),
            Decision::NoSite | Decision::Misdirected => None,
        }
    }
}

impl Router {
    /// Builds the router; `upstream_index` maps an upstream name to its index.
    pub fn build(
        config: &Config,
        upstream_index: &HashMap<String, usize>,
        metrics: &Metrics,
    ) -> Router {
        let mut r = Router {
            sites: Vec::new(),
            all: HostView::default(),
            by_listener: listeners::ByListener::build(config),
            none_metrics: metrics.route_handles(NONE, NONE, NONE, NONE),
        };
        for (i, s) in config.sites.iter().enumerate() {
            let mut paths = PathTable::default();
            let guarded = s.tls.is_some() && s.plain_http != PlainHttp::Serve;
            let restricted = s.routes.iter().any(|rc| rc.scheme != RouteScheme::Any);
            let plain_only = s.routes.iter().any(|rc| rc.scheme == RouteScheme::Http);
            let mut plain_paths = (restricted && (plain_only || !guarded)).then(PathTable::default);
            let upstreams: Vec<Option<usize>> = s
                .routes
                .iter()
                .map(|rc| upstream_index.get(rc.upstream.as_ref()?).copied())
                .collect();
            let mut by_method: Vec<MethodChoice> = Vec::new();
            let mut first_of: HashMap<String, usize> = HashMap::new();
            if s.routes.iter().any(|rc| rc.methods.is_some()) {
                by_method.resize_with(s.routes.len(), MethodChoice::default);
            }
            for (route, rc) in s.routes.iter().enumerate() {
                // Routes of one location (validate allows them only with
                // different methods) share its entry: the first stands for it.
                let first = *first_of.entry(rc.location.identity()).or_insert(route);
                if first == route {
                    let proxies = upstreams[route].is_some();
                    if rc.scheme != RouteScheme::Http {
                        paths.add(&rc.location, route, proxies);
                    }
                    let on_plain = match rc.scheme {
                        RouteScheme::Http => true,
                        RouteScheme::Https => false,
                        RouteScheme::Any => !guarded,
                    };
                    if let (true, Some(p)) = (on_plain, plain_paths.as_mut()) {
                        p.add(&rc.location, route, proxies);
                    }
                }
                // Empty unless some route of the site names methods.
                if let Some(choice) = by_method.get_mut(first) {
                    match &rc.methods {
                        Some(m) => choice.named.push((m.clone(), route)),
                        None => choice.rest = Some(route),
                    }
                }
            }
            paths.finish();
            if let Some(p) = plain_paths.as_mut() {
                p.finish();
            }
            let buffering = s.routes.iter().map(|rc| rc.request_buffering).collect();
            let body_limits = s.routes.iter().map(|rc| rc.max_body_size).collect();
            let retry = s.routes.iter().map(|rc| rc.retry_statuses).collect();
            // A route is labelled with its `path:` as written: a name from the
            // config (unique in the site), never the request's path.
            let route_metrics = upstreams
                .iter()
                .zip(&s.routes)
                .map(|(u, rc)| {
                    let route = rc.location.as_written();
                    let Some(up) = u.and_then(|u| config.upstreams.get(u)) else {
                        // A route that answers itself (redirect, respond).
                        return vec![metrics.route_handles(&s.name, &route, NONE, NONE)];
                    };
                    up.pools
                        .iter()
                        .map(|p| metrics.route_handles(&s.name, &route, &up.name, &p.name))
                        .collect()
                })
                .collect();
            r.all.add_site(i, s);
            r.sites.push(SiteRoutes {
                name: s.name.clone(),
                tls: s.tls.is_some(),
                plain_http: s.plain_http,
                plain_redirect_to: s.plain_redirect_to.clone(),
                max_body_size: s.max_body_size,
                underscores_in_headers: s.underscores_in_headers,
                keepalive_timeout: s.keepalive_timeout,
                paths,
                plain_paths,
                upstreams,
                buffering,
                body_limits,
                retry,
                by_method,
                route_metrics,
                local_metrics: metrics.route_handles(&s.name, NONE, NONE, NONE),
            });
        }
        r
    }

    /// The site at `i`.
    pub fn site(&self, i: usize) -> &SiteRoutes {
        &self.sites[i]
    }

    /// Decides where a request goes.
    pub fn route(&self, input: &RouteInput<'_>) -> Decision {
        let view = self.view(input.listener);
        let host = input.host.map(normalize_host);
        let named = host.as_deref().and_then(|h| view.hosts.find(h));
        if let (true, Some(h)) = (input.tls, named) {
            // RFC 9110 §15.5.20: the connection was set up (and its
            // certificate chosen) for another site. Without SNI, or with
            // one that names no TLS site, that is the fallback certificate's.
            if view.cert_site(input.sni).is_some_and(|s| s != h) {
                return Decision::Misdirected;
            }
        }
        // No Host at all (HTTP/1.0) on TLS: the SNI names the site.
        let named = named.or_else(|| {
            input
                .host
                .is_none()
                .then_some(input.sni)
                .flatten()
                .filter(|_| input.tls)
                .and_then(|sni| view.hosts.find(sni))
        });
        let default = if input.tls {
            view.default
        } else {
            view.default_plain
        };
        let Some(mut site) = named.or(default) else {
            return Decision::NoSite;
        };
        if !input.tls && self.sites[site].tls && self.sites[site].plain_http == PlainHttp::Default {
            // The name is unknown to plain listeners: their default answers.
            match view.default_plain {
                Some(d) => site = d,
                None => return Decision::NoSite,
            }
        }
        let s = &self.sites[site];
        let guarded = !input.tls && s.plain_guarded();
        let found = match (input.tls, &s.plain_paths) {
            (true, _) => s.paths.find(input.path),
            (false, Some(plain)) => plain.find(input.path),
            (false, None) if guarded => PathMatch::None,
            (false, None) => s.paths.find(input.path),
        };
        if guarded && !matches!(found, PathMatch::Route(..)) {
            // Only a `scheme: http` route (certbot's webroot) is served on
            // plain HTTP; `plain_http` answers every other path.
            return match s.plain_http {
                PlainHttp::Redirect(status) => Decision::Redirect { site, status },
                _ => Decision::HttpsOnly { site },
            };
        }
        match found {
            PathMatch::Route(first, captures) => {
                let route = match s.by_method.get(first).map(|c| c.pick(input.method)) {
                    Some(Ok(r)) => r,
                    Some(Err(allow)) => return Decision::MethodNotAllowed { site, allow },
                    None => first,
                };
                Decision::Proxy {
                    site,
                    upstream: s.upstreams.get(route).copied().flatten(),
                    route,
                    captures,
                }
            }
            PathMatch::AddSlash(_) => Decision::AddSlash { site },
            PathMatch::None => Decision::NoRoute { site },
        }
    }
}

/// Lowercases a Host value and strips the port and a trailing dot; borrows
/// when nothing changes (the common case).
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let no_port = if raw.starts_with('[') {
        // IPv6 literal: keep up to and including ']'.
        raw.find(']').map_or(raw, |i| &raw[..=i])
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let trimmed = no_port.strip_suffix('.').unwrap_or(no_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

mod listeners;
#[cfg(test)]
mod tests;

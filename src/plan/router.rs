//! Routing as a pure function: (host, path, listener kind, SNI) -> decision.
//!
//! The [`Router`] is built once per snapshot from the config; [`Router::route`]
//! allocates nothing and takes no lock. Host matching: exact name first, then a
//! one-label wildcard (`*.example.com` matches `a.example.com`, not
//! `a.b.example.com`, like certificate wildcards), then the default site. Path
//! matching: the longest route prefix that the raw request path starts with
//! (plain string prefix, like an nginx prefix `location`).

use crate::config::Config;
use crate::config::model::{HostPattern, PlainHttp};
use crate::metrics::{Metrics, NONE, RouteMetrics};
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
    /// Body limit in bytes; `None` = unlimited.
    pub max_body_size: Option<u64>,
    /// Headers with `_` in their names are passed to the app.
    pub underscores_in_headers: bool,
    /// (prefix, upstream index), longest prefix first.
    routes: Vec<(String, usize)>,
    /// Per route (same order): read request bodies whole before connecting.
    buffering: Vec<bool>,
    /// Per route, per pool of its upstream: pre-resolved metric handles.
    route_metrics: Vec<Vec<RouteMetrics>>,
    /// For requests answered locally (404, 308, 413, ...).
    pub local_metrics: RouteMetrics,
}

impl SiteRoutes {
    /// Whether route `route` reads request bodies whole before connecting
    /// upstream (`request_buffering`).
    pub fn buffers_body(&self, route: usize) -> bool {
        self.buffering.get(route).copied().unwrap_or(true)
    }

    /// Metric handles of route `route` for pool `pool` of its upstream.
    pub fn metrics(&self, route: usize, pool: usize) -> Option<&RouteMetrics> {
        self.route_metrics.get(route)?.get(pool)
    }
}

/// Host + path -> site and upstream, for one snapshot.
pub struct Router {
    sites: Vec<SiteRoutes>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
    default: Option<usize>,
    /// The site whose certificate a TLS client gets when its SNI names no
    /// TLS site (or it sent none): the default site's, else the first TLS
    /// site's — the same choice as `tls::store::build_cert_map`.
    cert_fallback: Option<usize>,
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
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// What the request carries that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// `Host` header or `:authority`, as received (port allowed).
    pub host: Option<&'a str>,
    /// Request path (no query).
    pub path: &'a str,
    /// Arrived on a TLS listener.
    pub tls: bool,
    /// SNI of the TLS connection, lowercase.
    pub sni: Option<&'a str>,
}

/// The routing decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Proxy to `upstream` (index into the snapshot's upstreams).
    Proxy {
        /// Site index.
        site: usize,
        /// Upstream index.
        upstream: usize,
        /// Route index within the site (for its metric handles).
        route: usize,
    },
    /// No site for this host and no default site: 404.
    NoSite,
    /// The site has no route for this path: 404.
    NoRoute {
        /// Site index.
        site: usize,
    },
    /// Plain request for a TLS site with `plain_http: redirect`: 308.
    Redirect {
        /// Site index.
        site: usize,
    },
    /// TLS connection for one site carrying a request for another: 421.
    Misdirected,
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
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
            cert_fallback: None,
            none_metrics: metrics.route_handles(NONE, NONE, NONE),
        };
        for (i, s) in config.sites.iter().enumerate() {
            let mut sorted: Vec<_> = s
                .routes
                .iter()
                .filter_map(|rc| Some((rc, *upstream_index.get(&rc.upstream)?)))
                .collect();
            sorted.sort_by_key(|(rc, _)| std::cmp::Reverse(rc.prefix.len()));
            let buffering = sorted.iter().map(|(rc, _)| rc.request_buffering).collect();
            let routes: Vec<(String, usize)> = sorted
                .into_iter()
                .map(|(rc, u)| (rc.prefix.clone(), u))
                .collect();
            let route_metrics = routes
                .iter()
                .map(|(_, u)| {
                    let up = &config.upstreams[*u];
                    up.pools
                        .iter()
                        .map(|p| metrics.route_handles(&s.name, &up.name, &p.name))
                        .collect()
                })
                .collect();
            for h in &s.hosts {
                match h {
                    HostPattern::Exact(n) => r.exact.insert(n.clone(), i),
                    HostPattern::Wildcard(sfx) => r.wildcard.insert(sfx.clone(), i),
                };
            }
            if s.default {
                r.default = Some(i);
            }
            if s.tls.is_some() && (s.default || r.cert_fallback.is_none()) {
                r.cert_fallback = Some(i);
            }
            r.sites.push(SiteRoutes {
                name: s.name.clone(),
                tls: s.tls.is_some(),
                plain_http: s.plain_http,
                max_body_size: s.max_body_size,
                underscores_in_headers: s.underscores_in_headers,
                routes,
                buffering,
                route_metrics,
                local_metrics: metrics.route_handles(&s.name, NONE, NONE),
            });
        }
        r
    }

    /// The site at `i`.
    pub fn site(&self, i: usize) -> &SiteRoutes {
        &self.sites[i]
    }

    /// The site naming `host` exactly or by wildcard (no default).
    fn named_site(&self, host: &str) -> Option<usize> {
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        let dot = host.find('.')?;
        self.wildcard.get(&host[dot..]).copied()
    }

    /// Decides where a request goes.
    pub fn route(&self, input: &RouteInput<'_>) -> Decision {
        let host = input.host.map(normalize_host);
        let named = host.as_deref().and_then(|h| self.named_site(h));
        if let (true, Some(h)) = (input.tls, named) {
            // RFC 9110 §15.5.20: the connection was set up (and its
            // certificate chosen) for another site. Without SNI, or with
            // one that names no TLS site, that is the fallback certificate's.
            let cert_site = input
                .sni
                .and_then(|sni| self.named_site(sni))
                .filter(|&s| self.sites[s].tls)
                .or(self.cert_fallback);
            if cert_site.is_some_and(|s| s != h) {
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
                .and_then(|sni| self.named_site(sni))
        });
        let Some(site) = named.or(self.default) else {
            return Decision::NoSite;
        };
        let s = &self.sites[site];
        if !input.tls && s.tls && s.plain_http == PlainHttp::Redirect {
            return Decision::Redirect { site };
        }
        match s
            .routes
            .iter()
            .position(|(p, _)| input.path.starts_with(p.as_str()))
        {
            Some(route) => Decision::Proxy {
                site,
                upstream: s.routes[route].1,
                route,
            },
            None => Decision::NoRoute { site },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:8080"}
  https: {address: "127.0.0.1:8443", tls: true}
sites:
  main:
    hosts: [example.com, "*.example.com"]
    default: true
    tls: self_signed
    plain_http: serve
    routes:
      - {path: /, upstream: app}
      - {path: /api/, upstream: api}
      - {path: /api/v2/, upstream: app}
  secure:
    hosts: [secure.test]
    tls: self_signed
    routes:
      - {path: /only/, upstream: api}
  plain:
    hosts: [plain.test]
    routes:
      - {path: /, upstream: api}
upstreams:
  app: {active: a, pools: {a: ["127.0.0.1:1"]}}
  api: {active: a, pools: {a: ["127.0.0.1:2"]}}
"#;

    fn router() -> Router {
        let cfg = load_str(Path::new("t.yaml"), YAML).expect("valid");
        let idx = cfg
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
        Router::build(&cfg, &idx, &Metrics::new().expect("metrics"))
    }

    fn go(r: &Router, host: &str, path: &str, tls: bool, sni: Option<&str>) -> Decision {
        r.route(&RouteInput {
            host: Some(host),
            path,
            tls,
            sni,
        })
    }

    const APP: usize = 0;
    const API: usize = 1;

    #[test]
    fn longest_prefix_wins() {
        let r = router();
        let up = |p| match go(&r, "example.com", p, true, None) {
            Decision::Proxy { upstream, .. } => upstream,
            d => panic!("{d:?}"),
        };
        assert_eq!(up("/"), APP);
        assert_eq!(up("/api/users"), API);
        assert_eq!(up("/api/v2/users"), APP);
        assert_eq!(up("/apix"), APP, "plain prefix: /api/ does not match /apix");
    }

    #[test]
    fn hosts_match_exact_then_one_label_wildcard_then_default() {
        let r = router();
        assert!(matches!(
            go(&r, "plain.test", "/", false, None),
            Decision::Proxy { site: 2, .. }
        ));
        assert!(matches!(
            go(&r, "a.example.com", "/", false, None),
            Decision::Proxy { site: 0, .. }
        ));
        // Two labels deep is not the wildcard, but the default site takes it.
        assert!(matches!(
            go(&r, "a.b.example.com", "/", false, None),
            Decision::Proxy { site: 0, .. }
        ));
        assert!(matches!(
            go(&r, "unknown.test", "/", false, None),
            Decision::Proxy { site: 0, .. }
        ));
        assert!(matches!(
            go(&r, "PLAIN.test:8080", "/", false, None),
            Decision::Proxy { site: 2, .. }
        ));
        assert!(matches!(
            go(&r, "plain.test.", "/", false, None),
            Decision::Proxy { site: 2, .. }
        ));
    }

    #[test]
    fn a_request_without_host_on_tls_goes_to_the_site_of_its_sni() {
        let r = router();
        let no_host = |tls, sni| {
            r.route(&RouteInput {
                host: None,
                path: "/only/x",
                tls,
                sni,
            })
        };
        assert!(matches!(
            no_host(true, Some("secure.test")),
            Decision::Proxy { site: 1, .. }
        ));
        // Without SNI (or on plain HTTP) the default site answers.
        assert!(matches!(
            no_host(true, None),
            Decision::NoRoute { site: 0 } | Decision::Proxy { site: 0, .. }
        ));
        assert!(matches!(
            no_host(false, Some("secure.test")),
            Decision::Proxy { site: 0, .. }
        ));
    }

    #[test]
    fn tls_site_on_plain_listener_redirects_unless_serve() {
        let r = router();
        assert_eq!(
            go(&r, "secure.test", "/only/x", false, None),
            Decision::Redirect { site: 1 }
        );
        assert!(matches!(
            go(&r, "example.com", "/", false, None),
            Decision::Proxy { .. }
        ));
        assert!(matches!(
            go(&r, "secure.test", "/only/x", true, Some("secure.test")),
            Decision::Proxy { .. }
        ));
    }

    #[test]
    fn no_route_and_misdirected() {
        let r = router();
        assert_eq!(
            go(&r, "secure.test", "/other", true, Some("secure.test")),
            Decision::NoRoute { site: 1 }
        );
        assert_eq!(
            go(&r, "secure.test", "/only/", true, Some("example.com")),
            Decision::Misdirected
        );
    }

    #[test]
    fn without_a_matching_sni_the_fallback_certificate_decides() {
        let r = router();
        // No SNI, or one that names no site: the default site's certificate
        // was presented, and it does not cover secure.test.
        for sni in [None, Some("nope.test")] {
            assert_eq!(
                go(&r, "secure.test", "/only/", true, sni),
                Decision::Misdirected,
                "{sni:?}"
            );
            assert!(matches!(
                go(&r, "a.example.com", "/", true, sni),
                Decision::Proxy { site: 0, .. }
            ));
            // A Host that names no site goes to the default site, as ever.
            assert!(matches!(
                go(&r, "unknown.test", "/", true, sni),
                Decision::Proxy { site: 0, .. }
            ));
        }
        // The SNI of a site without TLS got the fallback certificate too.
        assert_eq!(
            go(&r, "plain.test", "/", true, Some("plain.test")),
            Decision::Misdirected
        );
        // Plain HTTP has no certificate: unchanged.
        assert!(matches!(
            go(&r, "secure.test", "/only/", false, None),
            Decision::Redirect { .. }
        ));
        assert!(matches!(
            go(&r, "plain.test", "/", false, None),
            Decision::Proxy { site: 2, .. }
        ));
    }

    #[test]
    fn without_default_an_unknown_host_has_no_site() {
        let yaml = YAML.replace("    default: true\n", "");
        let cfg = load_str(Path::new("t.yaml"), &yaml).expect("valid");
        let idx = [("app".to_string(), 0), ("api".to_string(), 1)]
            .into_iter()
            .collect();
        let r = Router::build(&cfg, &idx, &Metrics::new().expect("metrics"));
        assert_eq!(go(&r, "unknown.test", "/", false, None), Decision::NoSite);
        assert_eq!(
            r.route(&RouteInput {
                host: None,
                path: "/",
                tls: false,
                sni: None
            }),
            Decision::NoSite
        );
    }

    #[test]
    fn hosts_normalize_without_allocating_when_clean() {
        assert!(matches!(
            normalize_host("example.com"),
            Cow::Borrowed("example.com")
        ));
        assert_eq!(normalize_host("Example.COM:443"), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("example.com."), "example.com");
    }
}

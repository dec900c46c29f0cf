//! Unit tests of [`super::Router`]: host order, nginx location order,
//! captures, certificate fallback and 421.

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
    router_of(YAML)
}

/// The router of a config text (which must be valid).
fn router_of(yaml: &str) -> Router {
    let cfg = load_str(Path::new("t.yaml"), yaml).expect("valid");
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
        method: &http::Method::GET,
        listener: None,
    })
}

const APP: usize = 0;
const API: usize = 1;

#[test]
fn longest_prefix_wins() {
    let r = router();
    let up = |p| match go(&r, "example.com", p, true, None) {
        Decision::Proxy { upstream, .. } => upstream.expect("proxied"),
        d => panic!("{d:?}"),
    };
    assert_eq!(up("/"), APP);
    assert_eq!(up("/api/users"), API);
    assert_eq!(up("/api/v2/users"), APP);
    assert_eq!(up("/apix"), APP, "plain prefix: /api/ does not match /apix");
}

#[test]
fn hosts_match_exact_then_wildcard_of_any_depth_then_default() {
    let r = router();
    assert!(matches!(
        go(&r, "plain.test", "/", false, None),
        Decision::Proxy { site: 2, .. }
    ));
    assert!(matches!(
        go(&r, "a.example.com", "/", false, None),
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
            method: &http::Method::GET,
            listener: None,
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
        Decision::Redirect {
            site: 1,
            status: 308
        }
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
            sni: None,
            method: &http::Method::GET,
            listener: None,
        }),
        Decision::NoSite
    );
}

/// nginx has a default server per port: `default: https` / `http` give TLS
/// and plain listeners each their own catch-all (or none).
#[test]
fn each_kind_of_listener_has_its_own_default() {
    let build = |yaml: &str| {
        let cfg = load_str(Path::new("t.yaml"), yaml).expect("valid");
        let idx = [("app".to_string(), 0), ("api".to_string(), 1)]
            .into_iter()
            .collect();
        Router::build(&cfg, &idx, &Metrics::new().expect("metrics"))
    };
    let site_of = |d: Decision| match d {
        Decision::Proxy { site, .. } | Decision::NoRoute { site } => Some(site),
        Decision::NoSite => None,
        other => panic!("unexpected {other:?}"),
    };
    let https_only = YAML.replace("    default: true\n", "    default: https\n");
    let r = build(&https_only);
    assert_eq!(site_of(go(&r, "unknown.test", "/", true, None)), Some(0));
    assert_eq!(go(&r, "unknown.test", "/", false, None), Decision::NoSite);
    let split = https_only.replace(
        "    hosts: [plain.test]\n",
        "    hosts: [plain.test]\n    default: http\n",
    );
    let r = build(&split);
    assert_eq!(site_of(go(&r, "unknown.test", "/", true, None)), Some(0));
    assert_eq!(site_of(go(&r, "unknown.test", "/", false, None)), Some(2));
    // Two defaults for the same kind of listener are refused.
    let two = YAML.replace(
        "    hosts: [plain.test]\n",
        "    hosts: [plain.test]\n    default: http\n",
    );
    let err = load_str(Path::new("t.yaml"), &two).expect_err("two plain defaults");
    assert!(
        err.to_string()
            .contains("both the default site on plain listeners"),
        "{err}"
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

const ORDER_YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:8080"}
sites:
  order:
    hosts: [order.test]
    routes:
      - {path: /, upstream: app}
      - {path: "= /exact", upstream: app}
      - {path: "^~ /static/", upstream: app}
      - {path: "~ \\.php$", upstream: app}
      - {path: "~* \\.(png|JPG)$", upstream: app}
      - {path: /docs/, upstream: app}
      - {path: "~ ^/docs/(?<page>[a-z]+)/(\\d+)$", upstream: app}
      - {path: "~ ^/docs/", upstream: app}
      - {path: /exact, upstream: app}
  noroot:
    hosts: [noroot.test]
    routes:
      - {path: "= /only", upstream: app}
      - {path: "~ ^/re/", upstream: app}
upstreams:
  app: {active: a, pools: {a: ["127.0.0.1:1"]}}
"#;

fn build(yaml: &str) -> Router {
    let cfg = load_str(Path::new("t.yaml"), yaml).expect("valid");
    let idx = cfg
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| (u.name.clone(), i))
        .collect();
    Router::build(&cfg, &idx, &Metrics::new().expect("metrics"))
}

/// The route (file-order index) and captures a path gets on `host`.
fn pick(r: &Router, host: &str, path: &str) -> Option<(usize, Option<Captures>)> {
    match go(r, host, path, false, None) {
        Decision::Proxy {
            route, captures, ..
        } => Some((route, captures)),
        Decision::NoRoute { .. } => None,
        d => panic!("{path}: {d:?}"),
    }
}

#[test]
fn a_prefix_without_its_trailing_slash_is_redirected_before_regexes() {
    let yaml = ORDER_YAML.replace(
        "      - {path: /exact, upstream: app}\n",
        "      - {path: /exact, upstream: app}\n      - {path: \"~ ^/static$\", upstream: app}\n      - {path: /both/, upstream: app}\n      - {path: /both, upstream: app}\n",
    );
    let r = build(&yaml);
    let d = |p| go(&r, "order.test", p, false, None);
    // `^~ /static/` and `/docs/`: their bare paths get the slash, even
    // though a regex would match `/static` (nginx does not try them).
    assert_eq!(d("/static"), Decision::AddSlash { site: 0 });
    assert_eq!(d("/docs"), Decision::AddSlash { site: 0 });
    // A location equal to the path is a match, not a redirect.
    assert!(matches!(d("/both"), Decision::Proxy { route: 11, .. }));
    assert!(matches!(d("/both/x"), Decision::Proxy { route: 10, .. }));
    // `/` is not redirected to `//`, nor other paths.
    assert!(matches!(d("/"), Decision::Proxy { route: 0, .. }));
    assert!(matches!(d("/stat"), Decision::Proxy { route: 0, .. }));
    assert!(matches!(d("/static/"), Decision::Proxy { route: 2, .. }));
}

#[test]
fn locations_are_chosen_in_nginx_order() {
    let r = build(ORDER_YAML);
    let route = |p| pick(&r, "order.test", p).map(|(route, _)| route);
    // Exact wins over the prefix of the same path and over everything else.
    assert_eq!(route("/exact"), Some(1));
    assert_eq!(route("/exact/x"), Some(8));
    // A regex wins over the longest plain prefix ...
    assert_eq!(route("/exact.php"), Some(3));
    assert_eq!(route("/docs/"), Some(7));
    // ... but not over a `^~` prefix, which stops the search.
    assert_eq!(route("/static/a.php"), Some(2));
    assert_eq!(route("/static/a.png"), Some(2));
    // `~*` ignores case, `~` does not.
    assert_eq!(route("/img/A.PNG"), Some(4));
    assert_eq!(route("/img/a.jpg"), Some(4));
    assert_eq!(route("/x.PHP"), Some(0), "no regex: the longest prefix");
    // Regexes in file order: the first that matches wins.
    assert_eq!(route("/docs/intro/42"), Some(6));
    assert_eq!(route("/docs/Intro/42"), Some(7));
    assert_eq!(route("/docs/x/y"), Some(7));
    // No regex matches: the longest prefix.
    assert_eq!(route("/other"), Some(0));
}

#[test]
fn without_a_matching_location_the_site_has_no_route() {
    let r = build(ORDER_YAML);
    let route = |p| pick(&r, "noroot.test", p).map(|(route, _)| route);
    assert_eq!(route("/only"), Some(0));
    assert_eq!(route("/only/"), None, "exact means exact");
    assert_eq!(route("/re/x"), Some(1));
    assert_eq!(route("/"), None);
}

#[test]
fn a_regex_location_yields_numbered_and_named_captures() {
    let r = build(ORDER_YAML);
    let path = "/docs/intro/42";
    let (route, captures) = pick(&r, "order.test", path).expect("routed");
    assert_eq!(route, 6);
    let c = captures.expect("a regex location captures");
    assert_eq!(c.get(0, path), Some(path));
    assert_eq!(c.get(1, path), Some("intro"));
    assert_eq!(c.get(2, path), Some("42"));
    assert_eq!(c.get(3, path), None);
    let cfg = load_str(Path::new("t.yaml"), ORDER_YAML).expect("valid");
    let page = cfg.sites[0].routes[6].location.capture_index("page");
    assert_eq!(page.and_then(|i| c.get(i, path)), Some("intro"));
    // A regex without groups still captures the whole match ($0).
    let (_, c) = pick(&r, "order.test", "/a/b.php").expect("routed");
    assert_eq!(c.expect("regex").spans(), vec![Some((4, 8))]);
    // Exact and prefix locations capture nothing.
    assert_eq!(pick(&r, "order.test", "/exact"), Some((1, None)));
    assert_eq!(pick(&r, "order.test", "/other"), Some((0, None)));
}

const HOSTS_YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:8080"}
sites:
  exact:
    hosts: [a.example.com, www.example.com]
    routes: [{path: /, upstream: app}]
  leading_short:
    hosts: ["*.example.com"]
    routes: [{path: /, upstream: app}]
  leading_long:
    hosts: ["*.b.example.com"]
    routes: [{path: /, upstream: app}]
  trailing_short:
    hosts: ["www.*"]
    routes: [{path: /, upstream: app}]
  trailing_long:
    hosts: ["www.example.*"]
    routes: [{path: /, upstream: app}]
  regex_first:
    hosts: ["~^api\\d+\\."]
    routes: [{path: /, upstream: app}]
  regex_second:
    hosts: ["~^api"]
    routes: [{path: /, upstream: app}]
  catchall:
    default: true
    routes: [{path: /, upstream: app}]
upstreams:
  app: {active: a, pools: {a: ["127.0.0.1:1"]}}
"#;

#[test]
fn hosts_are_chosen_in_nginx_server_name_order() {
    let r = build(HOSTS_YAML);
    let site = |h| match go(&r, h, "/", false, None) {
        Decision::Proxy { site, .. } => r.site(site).name.clone(),
        d => panic!("{h}: {d:?}"),
    };
    assert_eq!(site("a.example.com"), "exact");
    // Leading wildcards match any depth; the longest wins.
    assert_eq!(site("x.example.com"), "leading_short");
    assert_eq!(site("x.a.example.com"), "leading_short");
    assert_eq!(site("x.b.example.com"), "leading_long");
    assert_eq!(site("y.x.b.example.com"), "leading_long");
    assert_eq!(site("b.example.com"), "leading_short");
    // Exact before wildcards; leading before trailing.
    assert_eq!(site("www.example.com"), "exact");
    assert_eq!(site("www.example.com.example.com"), "leading_short");
    // Trailing wildcards: any depth after, the longest wins.
    assert_eq!(site("www.example.org"), "trailing_long");
    assert_eq!(site("www.example.co.uk"), "trailing_long");
    assert_eq!(site("www.other.org"), "trailing_short");
    assert_eq!(site("www.example"), "trailing_short");
    // Regex names in file order, case-insensitive, on the normalised host.
    assert_eq!(site("api1.test"), "regex_first");
    assert_eq!(site("API1.Test:8080"), "regex_first");
    assert_eq!(site("apix.test"), "regex_second");
    // A wildcard needs a label in place of its `*`: the bare name and the
    // bare `www` are not theirs. The catch-all takes what no name matches.
    assert_eq!(site("example.com"), "catchall");
    assert_eq!(site("www"), "catchall");
    assert_eq!(site("unknown.org"), "catchall");
    assert!(matches!(
        r.route(&RouteInput {
            host: None,
            path: "/",
            tls: false,
            sni: None,
            method: &http::Method::GET,
            listener: None,
        }),
        Decision::Proxy { site: 7, .. }
    ));
}

const CERT_YAML: &str = r#"
listeners:
  https: {address: "127.0.0.1:8443", tls: true}
sites:
  fallback:
    default: true
    tls: self_signed
    routes: [{path: /, upstream: app}]
  wild:
    hosts: ["*.example.com"]
    tls: self_signed
    routes: [{path: /, upstream: app}]
  tail:
    hosts: ["www.example.*"]
    tls: self_signed
    routes: [{path: /, upstream: app}]
upstreams:
  app: {active: a, pools: {a: ["127.0.0.1:1"]}}
"#;

#[test]
fn the_421_check_uses_certificate_semantics_while_routing_uses_nginx_ones() {
    let r = build(CERT_YAML);
    let tls = |host, sni| go(&r, host, "/", true, Some(sni));
    // One label below the wildcard: its certificate was presented.
    assert!(matches!(
        tls("a.example.com", "a.example.com"),
        Decision::Proxy { site: 1, .. }
    ));
    // Deeper names route to the wildcard site, but their SNI got the
    // fallback certificate (certificate wildcards cover one label): 421.
    assert_eq!(
        tls("a.b.example.com", "a.b.example.com"),
        Decision::Misdirected
    );
    // On a connection made for a one-label name, the deeper name is served.
    assert!(matches!(
        tls("a.b.example.com", "x.example.com"),
        Decision::Proxy { site: 1, .. }
    ));
    // A trailing wildcard can name no certificate: only the fallback's.
    assert_eq!(
        tls("www.example.org", "www.example.org"),
        Decision::Misdirected
    );
    // A name no site has goes to the catch-all, whose certificate it got.
    assert!(matches!(
        tls("other.org", "other.org"),
        Decision::Proxy { site: 0, .. }
    ));
    // Plain HTTP has no certificate to compare.
    assert!(matches!(
        go(&r, "www.example.org", "/", false, None),
        Decision::Redirect {
            site: 2,
            status: 308
        }
    ));
}

/// Routes of one location split it by method: the named ones take theirs,
/// the one without `methods` every other; with none such, 405 and `Allow`.
#[test]
fn routes_of_one_location_choose_by_method() {
    let yaml = YAML.replace(
        "      - {path: /api/, upstream: api}\n",
        "      - {path: /api/, upstream: api}\n      - {path: /api/, methods: [OPTIONS], respond: {status: 204}}\n      - {path: = /only, methods: [GET, HEAD], upstream: app}\n      - {path: = /only, methods: [POST], upstream: api}\n",
    );
    let cfg = load_str(Path::new("t.yaml"), &yaml).expect("valid");
    let idx = [("app".to_string(), 0), ("api".to_string(), 1)]
        .into_iter()
        .collect();
    let r = Router::build(&cfg, &idx, &Metrics::new().expect("metrics"));
    let with = |path: &str, method: &http::Method| {
        r.route(&RouteInput {
            host: Some("example.com"),
            path,
            tls: true,
            sni: Some("example.com"),
            method,
            listener: None,
        })
    };
    let route_of = |d: Decision| match d {
        Decision::Proxy { route, .. } => route,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(route_of(with("/api/x", &http::Method::GET)), 1);
    assert_eq!(route_of(with("/api/x", &http::Method::OPTIONS)), 2);
    assert_eq!(route_of(with("/only", &http::Method::HEAD)), 3);
    assert_eq!(route_of(with("/only", &http::Method::POST)), 4);
    assert_eq!(
        with("/only", &http::Method::PUT),
        Decision::MethodNotAllowed {
            site: 0,
            allow: vec![http::Method::GET, http::Method::HEAD, http::Method::POST],
        }
    );
    // A method named twice for one location is refused.
    let twice = yaml.replace("methods: [POST]", "methods: [POST, GET]");
    let err = load_str(Path::new("t.yaml"), &twice).expect_err("GET twice");
    assert!(
        err.to_string().contains("must name different methods"),
        "{err}"
    );
}

#[test]
fn scheme_routes_choose_by_how_the_request_arrived() {
    let yaml = r#"
listeners:
  http: {address: "127.0.0.1:8080"}
  https: {address: "127.0.0.1:8443", tls: true}
sites:
  redirecting:
    hosts: [r.test]
    tls: self_signed
    plain_http: redirect 301
    routes:
      - {path: /, upstream: app}
      - {path: /.well-known/acme-challenge/, upstream: api, scheme: http}
  serving:
    hosts: [s.test]
    tls: self_signed
    plain_http: serve
    routes:
      - {path: /, upstream: app}
      - {path: /tls/, upstream: api, scheme: https}
      - {path: /plain/, upstream: api, scheme: http}
  refusing:
    hosts: [n.test]
    tls: self_signed
    plain_http: not_found
    routes:
      - {path: /, upstream: app}
upstreams:
  app: {active: a, pools: {a: ["127.0.0.1:1"]}}
  api: {active: a, pools: {a: ["127.0.0.1:2"]}}
"#;
    let r = router_of(yaml);
    let up = |d: Decision| match d {
        Decision::Proxy { upstream, .. } => upstream,
        other => panic!("unexpected {other:?}"),
    };
    let challenge = "/.well-known/acme-challenge/tok";
    // Plain: the webroot route is served, everything else redirected.
    assert_eq!(up(go(&r, "r.test", challenge, false, None)), Some(API));
    assert_eq!(
        go(&r, "r.test", "/x", false, None),
        Decision::Redirect {
            site: 0,
            status: 301
        }
    );
    // TLS: the plain-only route does not exist, `/` takes the path.
    assert_eq!(
        up(go(&r, "r.test", challenge, true, Some("r.test"))),
        Some(APP)
    );
    // plain_http: serve: each scheme sees its own routes and the shared ones.
    assert_eq!(
        up(go(&r, "s.test", "/tls/a", true, Some("s.test"))),
        Some(API)
    );
    assert_eq!(up(go(&r, "s.test", "/tls/a", false, None)), Some(APP));
    assert_eq!(up(go(&r, "s.test", "/plain/a", false, None)), Some(API));
    assert_eq!(
        up(go(&r, "s.test", "/plain/a", true, Some("s.test"))),
        Some(APP)
    );
    assert_eq!(up(go(&r, "s.test", "/", false, None)), Some(APP));
    // No scheme route: not_found stays 404 on every plain path.
    assert_eq!(
        go(&r, "n.test", challenge, false, None),
        Decision::HttpsOnly { site: 2 }
    );
    // `scheme: https` on a site without TLS is never chosen: refused.
    let bad = yaml.replace("    tls: self_signed\n    plain_http: not_found\n", "");
    let bad = bad.replace(
        "{path: /, upstream: app}\nupstreams",
        "{path: /, upstream: app}\n      - {path: /t/, upstream: app, scheme: https}\nupstreams",
    );
    let err = load_str(Path::new("t.yaml"), &bad).expect_err("https on plain site");
    assert!(err.to_string().contains("scheme: https"), "{err}");
    let odd = yaml.replace("scheme: http}", "scheme: ftp}");
    let err = load_str(Path::new("t.yaml"), &odd).expect_err("ftp");
    assert!(err.to_string().contains("'ftp'"), "{err}");
}

#[test]
fn plain_http_default_hands_plain_requests_to_the_plain_default_site() {
    let yaml = r#"
listeners:
  http: {address: "127.0.0.1:8080"}
  https: {address: "127.0.0.1:8443", tls: true}
sites:
  plainsite:
    hosts: [p.test]
    default: http
    routes: [{path: /, upstream: api}]
  secure:
    hosts: [s.test]
    default: https
    tls: self_signed
    plain_http: default
    routes: [{path: /, upstream: app}]
upstreams:
  app: {active: a, pools: {a: ["127.0.0.1:1"]}}
  api: {active: a, pools: {a: ["127.0.0.1:2"]}}
"#;
    let r = router_of(yaml);
    let up = |d: Decision| match d {
        Decision::Proxy { site, upstream, .. } => (site, upstream),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(up(go(&r, "s.test", "/x", false, None)), (0, Some(API)));
    assert_eq!(
        up(go(&r, "s.test", "/x", true, Some("s.test"))),
        (1, Some(APP))
    );
    // No plain default: nothing answers the name on plain HTTP.
    let none = yaml.replace("    default: http\n", "");
    let r = router_of(&none);
    assert_eq!(go(&r, "s.test", "/x", false, None), Decision::NoSite);
}

//! Matching like nginx, through the real binary: every `location` kind
//! (`= /p`, `/p`, `^~ /p`, `~ re`, `~* re`) chosen in nginx's order over
//! HTTP/1.1 and h2 over TLS, and every host form (`*.example.com` at any
//! depth, `www.example.*`, `~regex`, a catch-all default site without
//! hosts). Each route has an upstream of its own, so the `x-upstream`
//! header of the answer says which route took the request.

use crate::support::tls::insecure_client_config;
use crate::support::*;
use std::net::SocketAddr;

const YAML: &str = r#"
access_log: off
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  paths:
    hosts: [paths.test]
    tls: {cert: "{DIR}/paths.crt", key: "{DIR}/paths.key"}
    plain_http: serve
    routes:
      - {path: /, upstream: root}
      - {path: "= /exact", upstream: exact}
      - {path: /exact, upstream: prefix}
      - {path: "^~ /static/", upstream: noregex}
      - {path: "~ \\.php$", upstream: regex}
      - {path: "~* \\.(png|jpg)$", upstream: iregex}
  wild:
    hosts: ["*.example.com"]
    tls: {cert: "{DIR}/wild.crt", key: "{DIR}/wild.key"}
    plain_http: serve
    routes: [{path: /, upstream: wild}]
  tail:
    hosts: ["www.example.*"]
    routes: [{path: /, upstream: tail}]
  re:
    hosts: ["~^api\\d+\\.internal$"]
    routes: [{path: /, upstream: re}]
  catch:
    default: true
    tls: self_signed
    plain_http: serve
    routes: [{path: /, upstream: catch}]
upstreams:
  root: {active: p, pools: {p: ["127.0.0.1:{ROOT}"]}}
  exact: {active: p, pools: {p: ["127.0.0.1:{EXACT}"]}}
  prefix: {active: p, pools: {p: ["127.0.0.1:{PREFIX}"]}}
  noregex: {active: p, pools: {p: ["127.0.0.1:{NOREGEX}"]}}
  regex: {active: p, pools: {p: ["127.0.0.1:{REGEX}"]}}
  iregex: {active: p, pools: {p: ["127.0.0.1:{IREGEX}"]}}
  wild: {active: p, pools: {p: ["127.0.0.1:{WILD}"]}}
  tail: {active: p, pools: {p: ["127.0.0.1:{TAIL}"]}}
  re: {active: p, pools: {p: ["127.0.0.1:{RE}"]}}
  catch: {active: p, pools: {p: ["127.0.0.1:{CATCH}"]}}
"#;

const UPSTREAMS: [&str; 10] = [
    "root", "exact", "prefix", "noregex", "regex", "iregex", "wild", "tail", "re", "catch",
];

/// Path (with query) -> the upstream whose route nginx would choose (checked
/// against nginx 1.22.1 with the same locations, except where marked).
const PATH_CASES: &[(&str, &str)] = &[
    // `= /exact` beats the prefix `/exact` and every regex.
    ("/exact", "exact"),
    ("/exact?q=1.php", "exact"),
    ("/exact/more", "prefix"),
    // A regex beats the longest plain prefix ...
    ("/exact.php", "regex"),
    // ... but not a `^~` prefix.
    ("/static/app.php", "noregex"),
    ("/static/logo.PNG", "noregex"),
    // `~*` ignores case; `~` does not.
    ("/img/logo.PNG", "iregex"),
    ("/img/logo.jpg", "iregex"),
    ("/index.PHP", "root"),
    // Regexes see the path without the query.
    ("/page?x=.php", "root"),
    ("/a.php?x=.png", "regex"),
    // The path as received, not percent-decoded: nginx decodes first and
    // picks `iregex` here (README, "Matching").
    ("/img/logo%2Epng", "root"),
    ("/other", "root"),
];

struct Matching {
    ca: TestCa,
    ups: Vec<HttpUpstream>,
    http: SocketAddr,
    https: SocketAddr,
    /// Kept alive for the test's duration.
    #[allow(dead_code)]
    proxy: ProxyProcess,
}

impl Matching {
    async fn start() -> Matching {
        let ca = TestCa::new();
        ca.issue_to(&["paths.test"], ca.dir(), "paths");
        ca.issue_to(&["*.example.com"], ca.dir(), "wild");
        let mut ups = Vec::new();
        for name in UPSTREAMS {
            ups.push(HttpUpstream::start(name).await);
        }
        let ports = free_ports(3);
        let mut values = vec![("HTTP", ports[0]), ("HTTPS", ports[1]), ("ADMIN", ports[2])];
        let keys: Vec<String> = UPSTREAMS.iter().map(|n| n.to_uppercase()).collect();
        for (key, up) in keys.iter().zip(&ups) {
            values.push((key.as_str(), up.port()));
        }
        let yaml = fill_ports(
            &YAML.replace("{DIR}", &ca.dir().display().to_string()),
            &values,
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let https: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let proxy = ProxyProcess::start_ready(&yaml, &[http, https])
            .await
            .expect("greenlight starts");
        Matching {
            ca,
            ups,
            http,
            https,
            proxy,
        }
    }

    /// The upstream that answered, after checking it got the path unchanged.
    fn answered_by(&self, r: &Response, path: &str, what: &str) -> String {
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let up = r.header("x-upstream").expect("x-upstream").to_string();
        assert_eq!(r.json()["path"], path, "{what}: forwarded unchanged");
        up
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_are_chosen_in_nginx_order_over_h1() {
    let m = Matching::start().await;
    let mut c = H1Conn::connect(m.http).await.expect("connect");
    for (path, want) in PATH_CASES {
        let r = c.get(path, "paths.test").await.expect("response");
        assert_eq!(m.answered_by(&r, path, path), *want, "h1 {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_are_chosen_in_nginx_order_over_h2_and_tls() {
    let m = Matching::start().await;
    let mut c = H2Conn::connect(m.https, "paths.test", &m.ca.cert_pem())
        .await
        .expect("h2");
    for (path, want) in PATH_CASES {
        let r = c.get(path).await.expect("response");
        assert_eq!(m.answered_by(&r, path, path), *want, "h2 {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_forms_are_matched_like_nginx_server_names() {
    let m = Matching::start().await;
    let mut c = H1Conn::connect(m.http).await.expect("connect");
    for (host, want) in [
        // `*.example.com` takes names of any depth (nginx), not one label.
        ("a.example.com", "wild"),
        ("deep.er.example.com", "wild"),
        // `www.example.*` takes any ending; the leading wildcard comes first.
        ("www.example.org", "tail"),
        ("www.example.co.uk", "tail"),
        ("www.example.com", "wild"),
        // `~regex` names, case-insensitive, port ignored.
        ("api7.internal", "re"),
        ("API12.Internal:8080", "re"),
        // The catch-all default site has no hosts and takes the rest.
        ("api.internal", "catch"),
        ("example.com", "catch"),
        ("127.0.0.1", "catch"),
    ] {
        let r = c.get("/x", host).await.expect("response");
        assert_eq!(m.answered_by(&r, "/x", host), want, "Host {host}");
    }
    for up in &m.ups {
        let want = match up.name() {
            "wild" => 3,
            "tail" | "re" => 2,
            "catch" => 3,
            _ => 0,
        };
        assert_eq!(up.request_count(), want, "requests at {}", up.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_certificate_still_has_one_label_wildcards() {
    let m = Matching::start().await;
    // On a connection made for a name the wildcard certificate covers, a
    // deeper name of the same site is served (h2 coalescing is allowed
    // where the routing says it is the same site).
    let mut c = H2Conn::connect(m.https, "a.example.com", &m.ca.cert_pem())
        .await
        .expect("h2");
    c.set_authority("deep.er.example.com");
    let r = c.get("/x").await.expect("response");
    assert_eq!(m.answered_by(&r, "/x", "deep name"), "wild");
    // With the deep name as SNI the certificate store (one-label
    // wildcards, unchanged) presents the catch-all's certificate: that
    // connection cannot carry the wildcard site's requests.
    let insecure = insecure_client_config(&["h2"]);
    let mut c = H2Conn::connect_with(m.https, "deep.er.example.com", insecure)
        .await
        .expect("h2");
    assert!(
        !c.tls
            .subject_alt_names
            .contains(&"*.example.com".to_string()),
        "the fallback certificate: {:?}",
        c.tls.subject_alt_names
    );
    let r = c.get("/x").await.expect("response");
    assert_eq!(r.status, 421, "{}", r.text());
    // The catch-all site without hosts has a self-signed certificate and
    // serves any other name over TLS.
    let insecure = insecure_client_config(&["h2"]);
    let mut c = H2Conn::connect_with(m.https, "unknown.test", insecure)
        .await
        .expect("h2");
    let r = c.get("/x").await.expect("response");
    assert_eq!(m.answered_by(&r, "/x", "catch-all over TLS"), "catch");
    assert_eq!(
        m.ups
            .iter()
            .find(|u| u.name() == "wild")
            .map(HttpUpstream::request_count),
        Some(1),
        "no misdirected request reached the wildcard site"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_asked_for_without_its_slash_is_redirected_like_nginx() {
    let m = Matching::start().await;
    // nginx answers `/static` for `location ^~ /static/ { proxy_pass … }`
    // with a 301 to the absolute URL with the slash, query kept, port
    // included when it is not the scheme's default; no upstream is asked.
    let mut c = H1Conn::connect(m.http).await.expect("connect");
    let r = c.get("/static?v=1", "Paths.Test").await.expect("response");
    assert_eq!(r.status, 301, "{}", r.text());
    let want = format!("http://paths.test:{}/static/?v=1", m.http.port());
    assert_eq!(r.header("location"), Some(want.as_str()));
    let mut c = H2Conn::connect(m.https, "paths.test", &m.ca.cert_pem())
        .await
        .expect("h2");
    let r = c.get("/static").await.expect("response");
    assert_eq!(r.status, 301, "{}", r.text());
    let want = format!("https://paths.test:{}/static/", m.https.port());
    assert_eq!(r.header("location"), Some(want.as_str()));
    // The same path with the slash is routed.
    let r = c.get("/static/").await.expect("response");
    assert_eq!(m.answered_by(&r, "/static/", "with slash"), "noregex");
    let asked: usize = m.ups.iter().map(HttpUpstream::request_count).sum();
    assert_eq!(asked, 1, "the redirects reached no upstream");
}

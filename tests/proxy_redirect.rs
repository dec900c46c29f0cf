//! `rewrite_location:` (nginx `proxy_redirect`) through the real binary: an
//! upstream answers redirects whose `Location`/`Refresh` name its own
//! address or `http://`, and the client gets them rewritten — over HTTP/1.1
//! and h2, with prefix, regex, inherited, `off` and relative cases.

use crate::support::*;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  app:
    hosts: [app.test]
    tls: {cert: "{DIR}/app.crt", key: "{DIR}/app.key"}
    plain_http: serve
    rewrite_location:
      - {from: "http://", to: "https://"}
    routes:
      - {path: /, upstream: web}
      - path: /one/
        upstream: web
        upstream_path: /two/
        rewrite_location:
          - {from: "http://127.0.0.1:{APP}/two/", to: /one/}
      - path: /re/
        upstream: web
        rewrite_location:
          - {from: "~^http://backend(:\\d+)?/(.*)$", to: "$scheme://$host/re/$2"}
      - {path: /off/, upstream: web, rewrite_location: off}
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{APP}"]}}
"#;

struct Fixture {
    site: TlsSite,
    app: HttpUpstream,
}

impl Fixture {
    async fn start() -> Fixture {
        let app = HttpUpstream::start("app").await;
        let site = TlsSite::start(YAML, &["app.test"], "app", &[("APP", app.port())]).await;
        Fixture { site, app }
    }

    /// A GET of `path` over HTTP/1.1 whose upstream answers 302 with `headers`.
    async fn h1(&self, path: &str, headers: &[&str]) -> Response {
        let mut c = H1Conn::connect(self.site.http).await.expect("connect");
        let sent: Vec<(&str, &str)> = headers.iter().map(|h| ("X-Reply-Header", *h)).collect();
        c.request("GET", path, "app.test", &sent, b"")
            .await
            .expect("response")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_redirects_are_rewritten_by_the_first_matching_rule() {
    let f = Fixture::start().await;
    let app = f.app.port();
    let http = f.site.http.port();

    // The site's rule: the app's http:// becomes https://, Refresh too.
    let r = f
        .h1(
            "/status/302",
            &[
                "Location: http://app.test/x",
                "Refresh: 0; url=http://app.test/y",
            ],
        )
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://app.test/x"));
    assert_eq!(r.header("refresh"), Some("0; url=https://app.test/y"));

    // nginx's `default` spelled out: the upstream's URL prefix becomes the
    // route's, made absolute with the request's host and port.
    let loc = format!("Location: http://127.0.0.1:{app}/two/p?q=1");
    let r = f.h1("/one/p?reply_status=301", &[&loc]).await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("http://app.test:{http}/one/p?q=1").as_str())
    );
    let seen = f.app.last_request().expect("request");
    assert_eq!(seen.path, "/two/p?reply_status=301");

    // A route with its own rules does not inherit the site's; `off` has none.
    let r = f
        .h1("/one/p?reply_status=302", &["Location: http://elsewhere/x"])
        .await;
    assert_eq!(r.header("location"), Some("http://elsewhere/x"));
    let r = f
        .h1("/off/p?reply_status=302", &["Location: http://app.test/x"])
        .await;
    assert_eq!(r.header("location"), Some("http://app.test/x"));

    // A relative Location no rule matches is passed as sent.
    let r = f.h1("/status/302", &["Location: /relative"]).await;
    assert_eq!(r.header("location"), Some("/relative"));

    // A 201's Location is rewritten as well (nginx rewrites any answer's).
    let r = f
        .h1("/status/201", &["Location: http://app.test/new/1"])
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("location"), Some("https://app.test/new/1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_rule_rewrites_over_h2_with_its_groups_and_variables() {
    let f = Fixture::start().await;
    let mut c = H2Conn::connect(f.site.https, "app.test", &f.site.ca.cert_pem())
        .await
        .expect("h2");
    let r = c
        .request(
            "GET",
            "/re/p?reply_status=302",
            &[("x-reply-header", "Location: http://backend:8080/a/b?c")],
            b"",
        )
        .await
        .expect("response");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://app.test/re/a/b?c"));
    // Not matching the regex: unchanged (the site's rule is not inherited).
    let r = c
        .request(
            "GET",
            "/re/p?reply_status=302",
            &[("x-reply-header", "Location: http://app.test/z")],
            b"",
        )
        .await
        .expect("response");
    assert_eq!(r.header("location"), Some("http://app.test/z"));
}

//! `checks:` (nginx `if (…) { return …; }`) and `maps:` (nginx `map`)
//! through the real binary, over HTTP/1.1 and h2 over TLS, with a reflecting
//! upstream: which requests a check answers and which reach the app, a
//! map's value in a response header, a request header and a condition.

use crate::support::*;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
maps:
  cache_control:
    source: "$uri"
    default: "max-age=3600"
    values:
      "/": "no-cache"
      "~^/blog/(?<slug>[a-z]+)/image$": "max-age=86400, slug=$slug"
      "~*\\.JSON$": "no-store"
  redirect_port:
    source: "$host:$server_port"
    values: {"legacy.test:{HTTP}": ":{HTTPS}"}
sites:
  app:
    hosts: [app.test, legacy.test]
    tls: {cert: "{DIR}/app.crt", key: "{DIR}/app.key"}
    plain_http: serve
    checks:
      - if: "$http_x_forwarded_proto = http"
        redirect: {to: "https://$host$request_uri", status: 301}
      - if: "$redirect_port"
        redirect: {to: "https://localhost$redirect_port$request_uri", status: 301}
    response_headers:
      add: {Cache-Control: "$cache_control"}
    routes:
      - path: /
        upstream: web
        request_headers: {set: {X-Cache-Policy: "$cache_control"}}
      - path: /api/
        upstream: web
        checks:
          - if: '$http_authorization = ""'
            respond: {status: 403, body: "no token\n"}
          - if: "$http_user_agent ~* ^(curl|wget)/([0-9]+)"
            respond: {status: 429, body: "slow down, $1 $2\n"}
          - if: "$arg_v !~ ^[0-9]*$"
            respond: {status: 400, body: "bad v\n"}
          - if: '$http_user_agent ~ ^docker/1\.(5(?!\.[0-9]-dev))'
            respond: {status: 404, body: "old docker $1\n"}
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{WEB}"]}}
"#;

struct Fixture {
    site: TlsSite,
    web: HttpUpstream,
}

impl Fixture {
    async fn start() -> Fixture {
        let web = HttpUpstream::start("web").await;
        let site = TlsSite::start(
            YAML,
            &["app.test", "legacy.test"],
            "app",
            &[("WEB", web.port())],
        )
        .await;
        Fixture { site, web }
    }

    async fn h1(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut c = H1Conn::connect(self.site.http).await.expect("connect");
        c.request("GET", path, host, headers, b"")
            .await
            .expect("response")
    }

    async fn h2(&self, path: &str) -> Response {
        let mut c = H2Conn::connect(self.site.https, "app.test", &self.site.ca.cert_pem())
            .await
            .expect("h2 connect");
        c.get(path).await.expect("h2 response")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_answer_in_order_and_let_the_rest_through() {
    let f = Fixture::start().await;
    let token = ("Authorization", "Bearer t");

    // No token: the first check answers, the app sees nothing.
    let before = f.web.request_count();
    let r = f.h1("app.test", "/api/x", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (403, "no token\n"));
    assert_eq!(f.web.request_count(), before, "a check's answer is local");

    // A regex check: its groups reach the answer; case-insensitive.
    let r = f
        .h1("app.test", "/api/x", &[token, ("User-Agent", "CURL/8.1")])
        .await;
    assert_eq!((r.status, r.text().as_str()), (429, "slow down, CURL 8\n"));

    // `!~`: a digit-only argument passes, anything else is refused.
    let r = f.h1("app.test", "/api/x?v=12", &[token]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.web.last_request().expect("seen").path, "/api/x?v=12");
    let r = f.h1("app.test", "/api/x?v=1a", &[token]).await;
    assert_eq!(r.status, 400);

    // PCRE look-ahead (nginx's docker-registry check): 1.5 is refused,
    // 1.5.1-dev is not, and the group reaches the answer.
    let r = f
        .h1(
            "app.test",
            "/api/x",
            &[token, ("User-Agent", "docker/1.5.0")],
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (404, "old docker 5\n"));
    let r = f
        .h1(
            "app.test",
            "/api/x",
            &[token, ("User-Agent", "docker/1.5.1-dev")],
        )
        .await;
    assert_eq!(r.status, 200, "the look-ahead lets it through");

    // The site's checks run on every route, before the route's own.
    let r = f
        .h1("app.test", "/api/x?a=1", &[("X-Forwarded-Proto", "http")])
        .await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://app.test/api/x?a=1"));
    let r = f
        .h1("app.test", "/page", &[("X-Forwarded-Proto", "https")])
        .await;
    assert_eq!(r.status, 200, "another value passes");

    // Over h2 the same plan runs.
    let r = f.h2("/api/x").await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_choose_values_for_headers_and_conditions() {
    let f = Fixture::start().await;
    // Exact key, regex key with a named group, case-insensitive regex, default.
    for (path, want) in [
        ("/", "no-cache"),
        ("/blog/rust/image", "max-age=86400, slug=rust"),
        ("/data/x.json", "no-store"),
        ("/other", "max-age=3600"),
    ] {
        let r = f.h1("app.test", path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some(want), "{path}");
        let seen = f.web.last_request().expect("seen");
        assert_eq!(seen.header("x-cache-policy"), Some(want), "{path} upstream");
    }
    let r = f.h2("/blog/go/image").await;
    assert_eq!(r.header("cache-control"), Some("max-age=86400, slug=go"));

    // A map over `$host:$server_port` feeds a bare-variable check: only
    // the host it names is redirected.
    let r = f.h1("legacy.test", "/p?q=1", &[]).await;
    assert_eq!(r.status, 301);
    let want = format!("https://localhost:{}/p?q=1", f.site.https.port());
    assert_eq!(r.header("location"), Some(want.as_str()));
    let r = f.h1("app.test", "/p", &[]).await;
    assert_eq!(r.status, 200, "an empty map value is false");
}

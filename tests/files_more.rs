//! `files:` routes, issue #16 point 1 continued, through the real binary:
//! `expires` on files, proxied and redirect answers (and not on errors),
//! `autoindex` listings (escaped names, no dotfiles, no symlink out of the
//! root, 403 without it), and `try_files … @app` handing what is not a file
//! to a named route's upstream with that route's request headers — while
//! existing files, HEAD and ranges still come from disk — and a fallback
//! path routed again as nginx's internal redirect.

use crate::support::*;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  site:
    hosts: [more.test]
    tls: {cert: "{DIR}/more.crt", key: "{DIR}/more.key"}
    plain_http: serve
    routes:
      - path: /
        files: {root: "{WWW}", try_files: ["$uri", "$uri/", "@app"]}
        expires: 1h
      - path: "@app"
        upstream: web
        request_headers: {set: {X-From: named-app, X-Uri: "$uri"}}
        response_headers: {add: {X-Route: app}}
      - path: /list/
        files: {root: "{WWW}", autoindex: true}
        expires: epoch
      - path: /nolist/
        files: {alias: "{WWW}/list/"}
      - path: /api/
        upstream: web
        expires: max
      - path: /old
        redirect: {to: /new, status: 301}
        expires: 30d
      - path: /mod/
        files: {root: "{WWW}"}
        expires: modified +1h
      - path: /spa/
        files: {root: "{WWW}", try_files: ["$uri", "@spa"]}
      - path: /strict/
        files: {root: "{WWW}", try_files: ["$uri", "=404"]}
      - path: /spa2/
        files: {root: "{WWW}", try_files: ["$uri", "/index.html"]}
      - path: /loop/
        files: {root: "{WWW}", try_files: ["$uri", "/loop/missing"]}
      - path: "@spa"
        files: {root: "{WWW}", try_files: ["/spa/index.html", "=404"]}
      - path: /cs/
        files: {root: "{WWW}"}
        charset: utf-8
      - path: = /cs-answer
        respond: {status: 200, body: "<p>hi</p>", content_type: text/html}
        charset: koi8-r
      - path: /csapi/
        upstream: web
        charset: utf-8
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{WEB}"]}}
"#;

struct Fixture {
    site: TlsSite,
    web: HttpUpstream,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        write_file(&www, "index.html", b"<h1>home</h1>\n");
        write_file(&www, "app.css", b"body{color:red}\n");
        write_file(&www, "list/b.txt", b"bee\n");
        write_file(&www, "list/a <&> \"q\".txt", b"odd\n");
        write_file(&www, "list/.hidden", b"secret\n");
        write_file(&www, "list/sub/x.txt", b"x\n");
        write_file(&www, "mod/m.txt", b"m\n");
        write_file(&www, "cs/a.html", b"<p>a</p>\n");
        write_file(&www, "cs/b.json", b"{}\n");
        write_file(&www, "spa/index.html", b"<div id=app></div>\n");
        write_file(&www, "strict/index.html", b"not by $uri\n");
        write_file(dir.path(), "outside.txt", b"outside the root\n");
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), www.join("list/escape"))
            .expect("symlink");
        let web = HttpUpstream::start("web").await;
        let yaml = YAML.replace("{WWW}", &www.display().to_string());
        let site = TlsSite::start(&yaml, &["more.test"], "more", &[("WEB", web.port())]).await;
        Fixture {
            site,
            web,
            _dir: dir,
        }
    }

    async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut c = H1Conn::connect(self.site.http).await.expect("connect");
        c.request(method, path, "more.test", headers, b"")
            .await
            .expect("response")
    }

    async fn get(&self, path: &str) -> Response {
        self.req("GET", path, &[]).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_files_falls_back_to_a_named_route_s_upstream() {
    let f = Fixture::start().await;
    // A file that exists is served from disk, with its range and HEAD.
    let r = f.get("/app.css").await;
    assert_eq!((r.status, r.text().as_str()), (200, "body{color:red}\n"));
    assert_eq!(r.header("x-upstream"), None, "not proxied");
    assert_eq!(f.web.request_count(), 0);
    let r = f.req("GET", "/app.css", &[("Range", "bytes=0-3")]).await;
    assert_eq!((r.status, r.text().as_str()), (206, "body"));
    let r = f.req("HEAD", "/app.css", &[]).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("16")));
    assert!(r.body.is_empty());
    assert_eq!(f.get("/").await.text(), "<h1>home</h1>\n", "$uri/ -> index");
    // `$uri/` matches a directory (nginx): without its slash, the 301.
    let r = f.get("/list").await;
    assert_eq!((r.status, r.header("x-upstream")), (301, None));
    assert!(r.header("location").is_some_and(|l| l.ends_with("/list/")));
    // `$uri` is a file test even for a path ending in `/`.
    assert_eq!(f.get("/strict/").await.status, 404);

    // What is not a file goes to the named route, path and query unchanged,
    // with the named route's request and response headers.
    let r = f.get("/users/42?tab=1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("web"));
    assert_eq!(r.header("x-route"), Some("app"));
    let seen = f.web.last_request().expect("proxied");
    assert_eq!(seen.path, "/users/42?tab=1");
    assert_eq!(seen.header("x-from"), Some("named-app"));
    assert_eq!(seen.header("x-uri"), Some("/users/42"));
    // Other methods too (nginx looks for the file first, then hands over).
    let r = f
        .req("POST", "/api-login", &[("Content-Length", "0")])
        .await;
    assert_eq!(r.header("x-upstream"), Some("web"));
    assert_eq!(f.web.last_request().expect("proxied").method, "POST");
    let r = f.req("POST", "/app.css", &[("Content-Length", "0")]).await;
    assert_eq!(r.status, 405, "a file that exists is not posted to");

    // A named route may serve files itself.
    assert_eq!(f.get("/spa/deep/link").await.text(), "<div id=app></div>\n");

    // A fallback path is nginx's internal redirect: routed again, so the
    // route that takes `/index.html` answers, with its `expires`.
    let r = f.get("/spa2/deep/link").await;
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>\n"));
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    // A fallback that never finds a file: nginx's redirection cycle, a 500.
    assert_eq!(f.get("/loop/x").await.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_sets_nginx_s_headers_on_successful_answers() {
    let f = Fixture::start().await;
    let r = f.get("/app.css").await;
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    let exp = r.header("expires").expect("expires");
    let at = httpdate::parse_http_date(exp).expect("an HTTP date");
    let ahead = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(ahead.as_secs() > 3000 && ahead.as_secs() <= 3600, "{exp}");
    let etag = r.header("etag").expect("etag").to_string();
    let r = f.req("GET", "/app.css", &[("If-None-Match", &etag)]).await;
    assert_eq!(
        (r.status, r.header("cache-control")),
        (304, Some("max-age=3600"))
    );

    let r = f.get("/api/x").await;
    assert_eq!(r.header("x-upstream"), Some("web"));
    assert_eq!(r.header("cache-control"), Some("max-age=315360000"));
    assert_eq!(r.header("expires"), Some("Thu, 31 Dec 2037 23:55:55 GMT"));
    let r = f.get("/old").await;
    assert_eq!(
        (r.status, r.header("cache-control")),
        (301, Some("max-age=2592000"))
    );
    let r = f.get("/list/").await;
    assert_eq!(r.header("expires"), Some("Thu, 01 Jan 1970 00:00:01 GMT"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let r = f.get("/list/missing.txt").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("expires"), None, "errors get no expires");
    // `modified +1h` counts from the file's mtime (just written): ~1h left.
    let r = f.get("/mod/m.txt").await;
    let cc = r.header("cache-control").expect("cache-control");
    let age: u64 = cc
        .strip_prefix("max-age=")
        .and_then(|n| n.parse().ok())
        .expect(cc);
    assert!(age > 3000 && age <= 3600, "{cc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoindex_lists_a_directory_safely() {
    let f = Fixture::start().await;
    let r = f.get("/list/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html"));
    let page = r.text();
    assert!(page.contains("<title>Index of /list/</title>"), "{page}");
    let sub = page.find("href=\"sub/\"").expect("the subdirectory");
    let a = page
        .find("href=\"a%20%3C%26%3E%20%22q%22.txt\">a &lt;&amp;&gt; &quot;q&quot;.txt</a>")
        .expect("escaped name");
    let b = page.find("href=\"b.txt\"").expect("b.txt");
    assert!(sub < a && a < b, "directories first, then by name: {page}");
    assert!(!page.contains("hidden"), "no dotfile: {page}");
    assert!(
        !page.contains("escape"),
        "no symlink out of the root: {page}"
    );
    assert_eq!(f.get("/list/sub").await.status, 301);
    let r = f.req("HEAD", "/list/", &[]).await;
    assert!(r.status == 200 && r.body.is_empty());
    // The listed link leads to the file; the hidden and escaping ones do not.
    assert_eq!(f.get("/list/b.txt").await.text(), "bee\n");
    assert_eq!(f.get("/list/.hidden").await.status, 404);
    assert_eq!(f.get("/list/escape").await.status, 404);
    // Without autoindex: nginx's 403.
    assert_eq!(f.get("/nolist/").await.status, 403);
}

/// `charset:` names the charset on text answers that name none — a file,
/// greenlight's own answer — and leaves other types alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charset_labels_text_answers_only() {
    let f = Fixture::start().await;
    let ct = |r: &Response| r.header("content-type").map(str::to_string);
    let r = f.get("/cs/a.html").await;
    assert_eq!(r.status, 200);
    assert_eq!(ct(&r).as_deref(), Some("text/html; charset=utf-8"));
    let r = f.get("/cs/b.json").await;
    assert_eq!(ct(&r).as_deref(), Some("application/json"));
    let r = f.get("/cs-answer").await;
    assert_eq!(ct(&r).as_deref(), Some("text/html; charset=koi8-r"));
    let r = f.get("/csapi/x").await;
    assert_eq!(r.header("x-upstream"), Some("web"));
    assert_eq!(
        ct(&r).as_deref(),
        Some("application/json"),
        "not a text type"
    );
    // A route without `charset:` is left as it was.
    let r = f.get("/").await;
    assert_eq!(ct(&r).as_deref(), Some("text/html"));
}

/// certbot's webroot next to a TLS site whose plain requests redirect
/// (with headers of that redirect's own):
/// a `scheme: http` route serves the challenge files over plain HTTP, every
/// other plain path still gets the redirect, and over TLS the same path is
/// the app's (the plain-only route does not exist there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_only_route_serves_certbot_s_webroot_beside_the_redirect() {
    const WEBROOT: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  site:
    hosts: [webroot.test]
    tls: {cert: "{DIR}/webroot.crt", key: "{DIR}/webroot.key"}
    plain_http: {redirect: 301, response_headers: {set: {X-Plain: redirect}}}
    routes:
      - path: /
        upstream: web
      - path: /.well-known/acme-challenge/
        scheme: http
        files: {root: "{WWW}"}
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{WEB}"]}}
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(
        dir.path(),
        ".well-known/acme-challenge/tok",
        b"tok.thumbprint",
    );
    let web = HttpUpstream::start("web").await;
    let yaml = WEBROOT.replace("{WWW}", &dir.path().display().to_string());
    let site = TlsSite::start(&yaml, &["webroot.test"], "webroot", &[("WEB", web.port())]).await;
    let plain = |path: &'static str| async move {
        let mut c = H1Conn::connect(site.http).await.expect("connect");
        c.get(path, "webroot.test").await.expect("response")
    };
    let r = plain("/.well-known/acme-challenge/tok").await;
    assert_eq!((r.status, r.text().as_str()), (200, "tok.thumbprint"));
    assert_eq!(web.request_count(), 0, "served from the webroot");
    assert_eq!(r.header("x-plain"), None, "the redirect's own header");
    let r = plain("/.well-known/acme-challenge/none").await;
    assert_eq!(r.status, 404, "a missing token is the files route's 404");
    let r = plain("/app?x=1").await;
    assert_eq!(r.status, 301);
    let to = format!("https://webroot.test:{}/app?x=1", site.https.port());
    assert_eq!(r.header("location"), Some(to.as_str()));
    assert_eq!(r.header("x-plain"), Some("redirect"));
    // Over TLS the challenge path is the app's.
    let mut h2 = H2Conn::connect(site.https, "webroot.test", &site.ca.cert_pem())
        .await
        .expect("h2");
    let r = h2
        .get("/.well-known/acme-challenge/tok")
        .await
        .expect("h2 get");
    assert_eq!((r.status, r.header("x-upstream")), (200, Some("web")));
    assert_eq!(r.header("x-plain"), None);
    assert_eq!(web.request_count(), 1);
}

//! Answers that nginx sites lean on and greenlight makes itself (the
//! `pages` work): a binary `respond` body (nginx `empty_gif`) and error
//! pages whose target is a path the site's routes answer (nginx
//! `error_page 404 /404.html` with `/404.html` proxied), through the real
//! binary over HTTP/1.1 and h2 over TLS, with a reflecting upstream.

use crate::support::*;

/// nginx's `empty_gif`: a 1x1 transparent GIF, 43 bytes.
const EMPTY_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x01\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x01\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x4c\x01\x00\x3b";

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
    error_pages: {404: {uri: /404.html}}
    routes:
      - {path: /, upstream: web}
      - path: /static/
        files: {root: "{WWW}"}
      - {path: /missing, respond: {status: 404, body: "not sent\n"}}
      - {path: /gone, respond: {status: 410}}
      - path: /teapot
        respond: {status: 404}
        error_pages: {404: {uri: "/local?from=teapot", status: 200}}
      - {path: = /local, respond: {status: 200, body: "local page $args\n"}}
      - path: /loop
        respond: {status: 404}
        error_pages: {404: {uri: /loop2}}
      - {path: /loop2, respond: {status: 404, body: "second error\n"}}
      - path: /checked
        checks: [{if: "$arg_deny", respond: {status: 404}}]
        upstream: web
      - path: /private/
        access: {ip: [{deny: all}]}
        upstream: web
      - path: = /pixel.gif
        methods: [GET, HEAD]    # as the importer writes nginx's empty_gif
        respond:
          content_type: image/gif
          body_base64: R0lGODlhAQABAIABAAAAAP///yH5BAEAAAEALAAAAAABAAEAAAICTAEAOw==
  bare:
    hosts: [bare.test]
    error_pages: {404: {uri: /404.html}}
    routes:
      - {path: = /404.html, upstream: web}
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{WEB}"]}}
"#;

struct Pages {
    site: TlsSite,
    web: HttpUpstream,
    _www: tempfile::TempDir,
}

impl Pages {
    async fn start() -> Pages {
        let web = HttpUpstream::start("web").await;
        let www = tempfile::tempdir().expect("tempdir");
        write_file(www.path(), "static/here.txt", b"here\n");
        let yaml = YAML.replace("{WWW}", &www.path().display().to_string());
        let site = TlsSite::start(&yaml, &["app.test"], "app", &[("WEB", web.port())]).await;
        Pages {
            site,
            web,
            _www: www,
        }
    }

    async fn h1(&self, method: &str, path: &str) -> Response {
        let mut c = H1Conn::connect(self.site.http).await.expect("connect");
        c.request(method, path, "app.test", &[], b"")
            .await
            .expect("response")
    }

    async fn h2(&self, method: &str, path: &str) -> Response {
        let mut c = H2Conn::connect(self.site.https, "app.test", &self.site.ca.cert_pem())
            .await
            .expect("h2 connect");
        c.request(method, path, &[], b"")
            .await
            .expect("h2 response")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base64_respond_body_is_sent_byte_for_byte_with_its_type_and_length() {
    let p = Pages::start().await;
    for r in [
        p.h1("GET", "/pixel.gif").await,
        p.h2("GET", "/pixel.gif").await,
    ] {
        assert_eq!(r.status, 200, "{}", r.version);
        assert_eq!(r.body, EMPTY_GIF, "{}", r.version);
        assert_eq!(r.header("content-type"), Some("image/gif"), "{}", r.version);
        assert_eq!(r.header("content-length"), Some("43"), "{}", r.version);
    }
    // HEAD: the same headers, no body (the h1 client would read 43 bytes
    // that should not be there as the start of the next answer).
    let mut c = H1Conn::connect(p.site.http).await.expect("connect");
    let r = c
        .request("HEAD", "/pixel.gif", "app.test", &[], b"")
        .await
        .expect("head");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("43"));
    assert_eq!(r.header("content-type"), Some("image/gif"));
    let next = c.get("/pixel.gif", "app.test").await.expect("next answer");
    assert_eq!(next.status, 200);
    assert_eq!(next.body, EMPTY_GIF, "the HEAD answer sent no body bytes");
    let r = p.h2("HEAD", "/pixel.gif").await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("43"));
    // nginx's empty_gif takes GET and HEAD only.
    assert_eq!(p.h1("POST", "/pixel.gif").await.status, 405);
    assert!(
        p.web.last_request().is_none(),
        "answered without the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uri_error_page_is_answered_by_the_route_of_its_path_with_the_original_status() {
    let p = Pages::start().await;
    // A files route's 404: the upstream serves /404.html, sent as 404;
    // GET, and the page's own (empty) query, as nginx's internal redirect.
    for r in [
        p.h1("GET", "/static/nope.txt?q=1").await,
        p.h2("GET", "/static/nope.txt?q=1").await,
    ] {
        assert_eq!(r.status, 404, "{}", r.version);
        assert_eq!(r.header("x-upstream"), Some("web"), "{}", r.version);
        let seen = p
            .web
            .last_request()
            .expect("the upstream got the page request");
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            ("GET", "/404.html")
        );
    }
    assert_eq!(p.h1("GET", "/static/here.txt").await.text(), "here\n");
    // A WebSocket handshake: the page is asked for as a plain request.
    let mut c = H1Conn::connect(p.site.http).await.expect("connect");
    let ws = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let r = c
        .request("GET", "/static/nope.txt", "app.test", &ws, b"")
        .await
        .expect("response");
    assert_eq!(r.status, 404);
    let seen = p.web.last_request().expect("page request");
    assert_eq!(seen.path, "/404.html");
    assert_eq!(
        seen.header("upgrade"),
        None,
        "no tunnel to the page's route"
    );
    // A `respond` 404, asked with POST: the page is asked for with GET.
    let r = p.h1("POST", "/missing").await;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("not sent"), "{}", r.text());
    let seen = p.web.last_request().expect("page request");
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/404.html")
    );
    // HEAD stays HEAD.
    let r = p.h1("HEAD", "/missing").await;
    assert_eq!((r.status, r.body.len()), (404, 0));
    assert_eq!(p.web.last_request().expect("head").method, "HEAD");
    // A check's answer too.
    let r = p.h1("GET", "/checked?deny=1").await;
    assert_eq!((r.status, r.header("x-upstream")), (404, Some("web")));
    assert_eq!(p.web.last_request().expect("page").path, "/404.html");
    let r = p.h1("GET", "/checked").await;
    assert_eq!(r.status, 200);
    assert_eq!(p.web.last_request().expect("proxied").path, "/checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uri_error_page_takes_its_status_and_query_and_never_redirects_twice() {
    let p = Pages::start().await;
    // `status: 200` (nginx's `=200`), and the page's own query.
    let r = p.h1("GET", "/teapot?x=1").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "local page from=teapot\n")
    );
    // An error while answering the page is not redirected again
    // (nginx's recursive_error_pages off): its own answer, status kept.
    let r = p.h2("GET", "/loop").await;
    assert_eq!((r.status, r.text().as_str()), (404, "second error\n"));
    // A path no route of the site takes: its 404 page's route answers.
    let mut c = H1Conn::connect(p.site.http).await.expect("connect");
    let r = c.get("/nowhere?x=1", "bare.test").await.expect("response");
    assert_eq!((r.status, r.header("x-upstream")), (404, Some("web")));
    let seen = p.web.last_request().expect("the page request");
    assert_eq!(seen.path, "/404.html");
    // An access refusal is answered as before (not covered: see README).
    let r = p.h1("GET", "/private/x").await;
    assert_eq!(r.status, 403);
    // HEAD of an answer greenlight makes: headers only, over h2 too (a
    // DATA frame on a HEAD answer is a stream error there).
    let mut h2 = H2Conn::connect(p.site.https, "app.test", &p.site.ca.cert_pem())
        .await
        .expect("h2 connect");
    let r = h2
        .request("HEAD", "/private/x", &[], b"")
        .await
        .expect("h2 HEAD of a refusal");
    assert_eq!((r.status, r.body.len()), (403, 0));
    p.web.clear_requests();
    // A status without a page: greenlight's own short page.
    let r = p.h1("GET", "/gone").await;
    assert_eq!((r.status, r.text().as_str()), (410, "410 Gone\n"));
    assert!(p.web.last_request().is_none(), "nothing went upstream");
}

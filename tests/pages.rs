//! Answers that nginx sites lean on and greenlight makes itself (the
//! `pages` work): a binary `respond` body (nginx `empty_gif`), through the
//! real binary over HTTP/1.1 and h2 over TLS, with a reflecting upstream.

use crate::support::*;

/// nginx's `empty_gif`: a 1x1 transparent GIF, 43 bytes.
const EMPTY_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x01\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

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
    routes:
      - {path: /, upstream: web}
      - path: = /pixel.gif
        respond:
          content_type: image/gif
          body_base64: R0lGODlhAQABAIABAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{WEB}"]}}
"#;

struct Pages {
    site: TlsSite,
    web: HttpUpstream,
}

impl Pages {
    async fn start() -> Pages {
        let web = HttpUpstream::start("web").await;
        let site = TlsSite::start(YAML, &["app.test"], "app", &[("WEB", web.port())]).await;
        Pages { site, web }
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
    assert!(
        p.web.last_request().is_none(),
        "answered without the upstream"
    );
}

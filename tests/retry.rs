//! `retry_statuses` (nginx `proxy_next_upstream http_502 …`) through the
//! real binary: an answer with a listed status from one server is dropped
//! and the request goes to the next server, over HTTP/1.1 and h2; the last
//! server's answer reaches the client whatever it is; an unlisted status,
//! a POST and a request with a body are never retried.

use crate::support::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `status` and closes; counts
/// the requests it answered.
struct Fixed {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Fixed {
    async fn start(status: u16) -> Fixed {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 6\r\nx-upstream: fixed-{status}\r\nconnection: close\r\n\r\nfixed\n"
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        Fixed { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

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
    retry_statuses: [502, 504]
    routes:
      - {path: /, upstream: mixed}
      - {path: /only503/, upstream: mixed, retry_statuses: [503]}
      - {path: /none/, upstream: mixed, retry_statuses: []}
      - {path: /allbad/, upstream: allbad}
upstreams:
  mixed:
    active: main
    max_fails: 100
    pools: {main: ["127.0.0.1:{BAD}", "127.0.0.1:{GOOD}"]}
  allbad:
    active: main
    max_fails: 100
    pools: {main: ["127.0.0.1:{BAD}", "127.0.0.1:{BAD2}"]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_status_goes_to_the_next_server_and_the_last_answer_reaches_the_client() {
    let bad = Fixed::start(502).await;
    let bad2 = Fixed::start(504).await;
    let good = HttpUpstream::start("good").await;
    let site = TlsSite::start(
        YAML,
        &["app.test"],
        "app",
        &[
            ("BAD", bad.port),
            ("BAD2", bad2.port),
            ("GOOD", good.port()),
        ],
    )
    .await;

    // Round robin sends every other request to the 502 server: each of
    // those is retried on the good one, so the client only sees 200s.
    for i in 0..4 {
        let r = http_get(site.http, "app.test", &format!("/r{i}"))
            .await
            .expect("answer");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    let mut h2 = H2Conn::connect(site.https, "app.test", &site.ca.cert_pem())
        .await
        .expect("h2 connect");
    for i in 0..4 {
        let r = h2.get(&format!("/h{i}")).await.expect("h2 answer");
        assert_eq!(r.status, 200, "h2 request {i}");
    }
    assert_eq!(
        good.request_count(),
        8,
        "every request ended on the good server"
    );
    assert!(bad.hits() >= 3, "the bad server was tried: {}", bad.hits());

    // Both servers answer a listed status: the last answer goes through.
    let r = http_get(site.http, "app.test", "/allbad/x")
        .await
        .expect("answer");
    assert!(matches!(r.status, 502 | 504), "{}", r.status);
    assert_eq!(bad2.hits(), 1, "the second server was tried once");

    // Unlisted on this route (503 only): the 502 goes to the client. Two
    // requests, so one of them lands on the bad server.
    let before = bad.hits();
    let mut statuses = Vec::new();
    for path in ["/none/a", "/none/b", "/only503/a", "/only503/b"] {
        statuses.push(
            http_get(site.http, "app.test", path)
                .await
                .expect("answer")
                .status,
        );
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![200, 200, 502, 502],
        "no retry on unlisted statuses"
    );
    assert_eq!(bad.hits(), before + 2);

    // POST and a GET with a body are never retried.
    let before = good.request_count();
    let mut statuses = Vec::new();
    for (method, body) in [
        ("POST", &b"x=1"[..]),
        ("POST", b"x=2"),
        ("GET", b"ab"),
        ("GET", b"cd"),
    ] {
        let mut c = H1Conn::connect(site.http).await.expect("connect");
        let r = c
            .request(method, "/b", "app.test", &[], body)
            .await
            .expect("answer");
        statuses.push(r.status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![200, 200, 502, 502],
        "requests with a body are not retried"
    );
    assert_eq!(good.request_count(), before + 2);
}

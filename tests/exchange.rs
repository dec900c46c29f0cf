//! One proxied request, client side, through the real binary: what the
//! sequential exchange for body-less requests (vendored pingora-proxy,
//! `proxy_h1_sequential.rs`, issue #15) must keep from Pingora's two-task pipe,
//! and what must still take the pipe. A body sent after the header still
//! streams; HEAD, GET with `Expect` and responses of every framing come whole
//! on a kept connection; pipelined requests are answered in order; an upstream
//! that closes mid-response gives the client a truncated response, not a hang;
//! a client that leaves while its answer is awaited frees the upstream
//! connection at once.

use crate::support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that misbehaves by request path: `/cut/length` and
/// `/cut/chunked` send part of a response and close; `/hang` never answers
/// and counts the proxy closing the connection.
struct CutUpstream {
    addr: SocketAddr,
    heads: Arc<AtomicUsize>,
    closed_while_waiting: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CutUpstream {
    async fn start() -> CutUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(AtomicUsize::new(0));
        let closed_while_waiting = Arc::new(AtomicUsize::new(0));
        let (h, c) = (heads.clone(), closed_while_waiting.clone());
        let task = tokio::spawn(async move {
            loop {
                let tcp = accept(&listener).await;
                tokio::spawn(serve(tcp, h.clone(), c.clone()));
            }
        });
        CutUpstream {
            addr,
            heads,
            closed_while_waiting,
            task,
        }
    }
}

impl Drop for CutUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut tcp: TcpStream, heads: Arc<AtomicUsize>, closed: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    heads.fetch_add(1, Ordering::SeqCst);
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head.split(' ').nth(1).unwrap_or("").to_string();
    let partial: &[u8] = match target.as_str() {
        "/cut/length" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        "/cut/chunked" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"
        }
        _ => {
            // `/hang`: no answer; the proxy closing its side is what counts.
            let mut rest = [0u8; 64];
            if matches!(tcp.read(&mut rest).await, Ok(0) | Err(_)) {
                closed.fetch_add(1, Ordering::SeqCst);
            }
            return;
        }
    };
    let _ = tcp.write_all(partial).await;
    let _ = tcp.flush().await;
    // Dropping the stream closes the connection mid-response.
}

struct Bench {
    ca: TestCa,
    web: HttpUpstream,
    cut: CutUpstream,
    http: SocketAddr,
    https: SocketAddr,
    _proxy: ProxyProcess,
}

impl Bench {
    async fn start() -> Bench {
        let ca = TestCa::new();
        ca.issue_to(&["app.test"], ca.dir(), "app");
        let web = HttpUpstream::start("web").await;
        let cut = CutUpstream::start().await;
        let ports = free_ports(3);
        let yaml = format!(
            r#"
access_log: off
listeners:
  http: {{address: "127.0.0.1:{http}"}}
  https: {{address: "127.0.0.1:{https}", tls: true}}
admin: {{address: "127.0.0.1:{admin}"}}
sites:
  app:
    hosts: [app.test]
    default: true
    tls: {{cert: "{dir}/app.crt", key: "{dir}/app.key"}}
    plain_http: serve
    routes:
      - {{path: /, upstream: web}}
      - {{path: /stream/, upstream: web, request_buffering: off}}
      - {{path: /cut/, upstream: cut}}
      - {{path: /hang, upstream: cut}}
upstreams:
  web: {{active: main, pools: {{main: ["127.0.0.1:{web}"]}}}}
  cut: {{active: main, pools: {{main: ["127.0.0.1:{cut}"]}}}}
"#,
            http = ports[0],
            https = ports[1],
            admin = ports[2],
            dir = ca.dir().display(),
            web = web.port(),
            cut = cut.addr.port(),
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let https: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let proxy = ProxyProcess::start_ready(&yaml, &[http, https])
            .await
            .expect("greenlight starts");
        Bench {
            ca,
            web,
            cut,
            http,
            https,
            _proxy: proxy,
        }
    }

    async fn h2(&self) -> H2Conn {
        H2Conn::connect(self.https, "app.test", &self.ca.cert_pem())
            .await
            .expect("h2 connection")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_sent_after_the_header_still_streams_to_the_upstream() {
    let b = Bench::start().await;
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(
        b"POST /stream/late HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .expect("head");
    eventually(
        IO_TIMEOUT,
        "the request starts upstream before any body",
        || async { b.web.request_heads() == 1 },
    )
    .await;
    c.send_raw(b"3\r\nabc\r\n").await.expect("first chunk");
    assert_eq!(b.web.request_count(), 0, "the body is not complete yet");
    c.send_raw(b"4\r\ndefg\r\n0\r\n\r\n")
        .await
        .expect("last chunk");
    let r = c.read_response().await.expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.web.last_request().expect("arrived").body, b"abcdefg");
    // The same connection goes on with a body-less request.
    let r = c.get("/after", "app.test").await.expect("after");
    assert_eq!(r.json()["path"], "/after");

    // Over h2, DATA after HEADERS, the same.
    let mut h2 = b.h2().await;
    let r = h2
        .request("POST", "/stream/h2", &[], b"hello")
        .await
        .expect("h2 post");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.web.last_request().expect("arrived").body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_less_requests_of_every_kind_are_answered_whole_on_a_kept_connection() {
    let b = Bench::start().await;
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    let r = c
        .request("HEAD", "/bytes?n=100", "app.test", &[], &[])
        .await
        .expect("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100"));
    assert!(r.body.is_empty());
    let r = c
        .request(
            "GET",
            "/expect",
            "app.test",
            &[("Expect", "100-continue")],
            &[],
        )
        .await
        .expect("GET with Expect and no body");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/expect");
    // Larger than one 32 KiB piece: streamed in several.
    let r = c.get("/bytes?n=100000", "app.test").await.expect("big");
    assert_eq!(r.body.len(), 100_000);
    assert_eq!(r.body, crate::support::upstream::pattern_bytes(100_000));
    let r = c
        .get("/chunked?n=5000&chunk=700", "app.test")
        .await
        .expect("chunked");
    assert_eq!(r.body.len(), 5000);
    let r = c.get("/status/204", "app.test").await.expect("204");
    assert_eq!(r.status, 204);
    assert!(!c.server_will_close());
    assert_eq!(
        b.web.accepted_connections(),
        1,
        "every answer was read to its end, so one upstream connection served all"
    );

    let mut h2 = b.h2().await;
    let r = h2
        .request("HEAD", "/bytes?n=100", &[], &[])
        .await
        .expect("h2 HEAD");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = h2.get("/bytes?n=70000").await.expect("h2 big");
    assert_eq!(r.body.len(), 70_000);
    // A chunked upstream answer: its `Transfer-Encoding` must not reach an
    // h2 client (the h2 crate resets a stream whose header has one), which
    // the vendored pingora-core now checks in one pass before removing.
    let r = h2
        .get("/chunked?n=5000&chunk=700")
        .await
        .expect("h2 chunked");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 5000);
    assert_eq!(r.header("transfer-encoding"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_head_and_get_are_answered_in_order() {
    let b = Bench::start().await;
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(
        b"HEAD /bytes?n=10 HTTP/1.1\r\nHost: app.test\r\n\r\nGET /second HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await
    .expect("one write");
    let first = c.read_response_to("HEAD").await.expect("first");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-length"), Some("10"));
    let second = c.read_response().await.expect("second");
    assert_eq!(
        second.json()["path"],
        "/second",
        "answers come in request order"
    );
    assert!(!c.server_will_close());
}

/// True if `err` is the end of the connection, not a client-side timeout.
fn ended(err: &std::io::Error) -> bool {
    err.kind() != std::io::ErrorKind::TimedOut
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_closes_mid_response_gives_a_truncated_response_not_a_hang() {
    let b = Bench::start().await;
    for path in ["/cut/length", "/cut/chunked"] {
        let mut c = H1Conn::connect(b.http).await.expect("connect");
        let err = c
            .get(path, "app.test")
            .await
            .expect_err("a truncated response cannot be read whole");
        assert!(ended(&err), "{path}: the client waited instead: {err}");
        assert!(
            c.wait_closed_by_peer(IO_TIMEOUT).await,
            "{path}: the client connection is closed"
        );

        let err = b
            .h2()
            .await
            .get(path)
            .await
            .expect_err("an h2 stream cut short is reset");
        assert!(
            ended(&err),
            "{path} over h2: the client waited instead: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_while_its_answer_is_awaited_frees_the_upstream_connection() {
    let b = Bench::start().await;
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(b"GET /hang HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .expect("request");
    eventually(IO_TIMEOUT, "the request reaches the upstream", || async {
        b.cut.heads.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(c);
    eventually(
        IO_TIMEOUT,
        "the proxy closes the upstream connection once the client is gone",
        || async { b.cut.closed_while_waiting.load(Ordering::SeqCst) == 1 },
    )
    .await;

    // Over h2: a stream the client resets.
    let mut h2 = b.h2().await;
    let pending = tokio::spawn(async move { h2.get("/hang").await });
    eventually(
        IO_TIMEOUT,
        "the h2 request reaches the upstream",
        || async { b.cut.heads.load(Ordering::SeqCst) == 2 },
    )
    .await;
    pending.abort();
    eventually(
        IO_TIMEOUT,
        "the proxy closes the upstream connection once the h2 client is gone",
        || async { b.cut.closed_while_waiting.load(Ordering::SeqCst) == 2 },
    )
    .await;
}

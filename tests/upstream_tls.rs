//! HTTPS upstreams through the real binary: `tls: true` with a pinned test CA
//! over HTTP/1.1 and, with `http2: true`, HTTP/2 (a body included); an IP
//! literal server with a certificate for its IP, and `sni:` for a name; a
//! wrong certificate gives 502 and one clear log line; `verify: false`
//! accepts it (with a warning at load); health checks speak TLS too.

use crate::support::*;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

async fn start(upstream: &str) -> (ProxyProcess, SocketAddr, SocketAddr) {
    start_single_upstream("api", upstream).await
}

/// The lines of the proxy's log that contain `needle`.
fn lines_with(p: &ProxyProcess, needle: &str) -> Vec<String> {
    p.stderr()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_ca_carries_requests_and_health_checks_over_tls() {
    let ca = TestCa::new();
    let up =
        HttpUpstream::start_tls("secure", ca.server_config(&["localhost"], &["http/1.1"])).await;
    let (p, http, admin) = start(&format!(
        "    active: main\n    tls: true\n    ca: {}\n    health: {{path: /status/204, interval: 100ms, timeout: 1s, unhealthy_after: 1}}\n    pools: {{main: [\"localhost:{}\"]}}\n",
        ca.ca_path().display(),
        up.port()
    ))
    .await;
    for i in 0..3 {
        let r = http_get(http, "a.test", &format!("/tls{i}"))
            .await
            .expect("resp");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-upstream"), Some("secure"));
    }
    // The checks reach the TLS server (a plain-HTTP check would fail the
    // handshake, count a failure and mark the only server down).
    let u = &up;
    eventually(IO_TIMEOUT, "three health checks over TLS", || async move {
        u.requests()
            .iter()
            .filter(|r| r.path == "/status/204")
            .count()
            >= 3
    })
    .await;
    let failures = metric_sum(
        &metrics_text(admin).await,
        "greenlight_health_check_failures_total",
        |_| true,
    );
    assert_eq!(failures, 0.0);
    let r = http_get(http, "a.test", "/after").await.expect("resp");
    assert_eq!(r.status, 200);
    assert!(lines_with(&p, "TLS handshake").is_empty(), "{}", p.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_literal_needs_a_certificate_for_the_ip_or_an_sni_name() {
    let ca = TestCa::new();
    let by_ip =
        HttpUpstream::start_tls("by-ip", ca.server_config(&["127.0.0.1"], &["http/1.1"])).await;
    let by_name = HttpUpstream::start_tls(
        "by-name",
        ca.server_config(&["api.internal"], &["http/1.1"]),
    )
    .await;
    let (_p, http, _) = start(&format!(
        "    active: main\n    tls: true\n    ca: {}\n    pools: {{main: [\"127.0.0.1:{}\"]}}\n",
        ca.ca_path().display(),
        by_ip.port()
    ))
    .await;
    let r = http_get(http, "a.test", "/ip").await.expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("by-ip"));
    let (_p2, http2, _) = start(&format!(
        "    active: main\n    tls: true\n    sni: api.internal\n    ca: {}\n    pools: {{main: [\"127.0.0.1:{}\"]}}\n",
        ca.ca_path().display(),
        by_name.port()
    ))
    .await;
    let r = http_get(http2, "a.test", "/sni").await.expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("by-name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_certificate_is_a_502_with_one_clear_log_line() {
    let ca = TestCa::new();
    let stranger = TestCa::new();
    let wrong_ca = HttpUpstream::start_tls(
        "wrong-ca",
        stranger.server_config(&["localhost"], &["http/1.1"]),
    )
    .await;
    let wrong_name = HttpUpstream::start_tls(
        "wrong-name",
        ca.server_config(&["other.test"], &["http/1.1"]),
    )
    .await;
    for (up, reason) in [
        (&wrong_ca, "certificate not signed by a trusted CA"),
        (&wrong_name, "certificate does not match the server name"),
    ] {
        let (p, http, admin) = start(&format!(
            "    active: main\n    tls: true\n    ca: {}\n    pools: {{main: [\"localhost:{}\"]}}\n",
            ca.ca_path().display(),
            up.port()
        ))
        .await;
        let r = http_get(http, "a.test", "/x").await.expect("resp");
        assert_eq!(r.status, 502, "{}", r.text());
        let tls_errors = metric_sum(
            &metrics_text(admin).await,
            "greenlight_upstream_errors_total",
            |labels| labels.contains("kind=\"tls\""),
        );
        assert_eq!(tls_errors, 1.0, "counted as a TLS error");
        assert_eq!(up.request_count(), 0, "no request went to {}", up.name());
        let server = format!("localhost:{}", up.port());
        assert!(
            p.wait_for_stderr(reason, IO_TIMEOUT).await,
            "{}",
            p.stderr()
        );
        let lines = lines_with(&p, &server);
        assert_eq!(lines.len(), 1, "one line for the failure: {lines:#?}");
        let line = &lines[0];
        for part in [
            "upstream 'api' pool 'main' server",
            "TLS handshake failed",
            reason,
            "(name checked: localhost)",
        ] {
            assert!(line.contains(part), "{part:?} in {line}");
        }
        assert!(
            lines_with(&p, "Fail to proxy").is_empty(),
            "no Pingora dump: {}",
            p.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_wrong_certificate_is_skipped_for_the_next_with_one_line() {
    let ca = TestCa::new();
    let bad =
        HttpUpstream::start_tls("bad", ca.server_config(&["other.test"], &["http/1.1"])).await;
    let good =
        HttpUpstream::start_tls("good", ca.server_config(&["localhost"], &["http/1.1"])).await;
    let (p, http, _) = start(&format!(
        "    active: main\n    tls: true\n    ca: {}\n    pools: {{main: [\"localhost:{}\", \"localhost:{}\"]}}\n",
        ca.ca_path().display(),
        bad.port(),
        good.port()
    ))
    .await;
    // Round robin starts at the bad server: the first request is retried.
    for i in 0..2 {
        let r = http_get(http, "a.test", &format!("/r{i}"))
            .await
            .expect("resp");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    let lines = lines_with(&p, &format!("localhost:{}", bad.port()));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("TLS handshake failed: certificate does not match the server name")
            && lines[0].ends_with("; trying the next server"),
        "{}",
        lines[0]
    );
    assert!(
        lines_with(&p, "Fail to proxy").is_empty(),
        "no Pingora dump: {}",
        p.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_false_accepts_any_certificate_and_says_so_at_load() {
    let stranger = TestCa::new();
    let up = HttpUpstream::start_tls(
        "unchecked",
        stranger.server_config(&["nowhere"], &["http/1.1"]),
    )
    .await;
    let (p, http, _) = start(&format!(
        "    active: main\n    tls: true\n    verify: false\n    pools: {{main: [\"localhost:{}\"]}}\n",
        up.port()
    ))
    .await;
    let r = http_get(http, "a.test", "/v").await.expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("unchecked"));
    assert_eq!(
        lines_with(
            &p,
            "`verify: false`: the servers' certificates are not checked"
        )
        .len(),
        1,
        "{}",
        p.stderr()
    );
}

/// What the h2-or-h1 TLS test server saw: (protocol, path, body length).
type Seen = Arc<Mutex<Vec<(String, String, usize)>>>;

/// A TLS server offering `h2` and `http/1.1` by ALPN that answers each
/// request with `x-proto: <protocol>`.
async fn h2_capable_upstream(ca: &TestCa) -> (SocketAddr, Seen, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(ca.server_config(&["localhost"], &["h2", "http/1.1"]));
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let tcp = accept(&listener).await;
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    serve_h2(tls, log).await;
                } else {
                    serve_h1_once(tls, log).await;
                }
            });
        }
    });
    (addr, seen, task)
}

async fn serve_h2(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, log: Seen) {
    let Ok(mut conn) = h2::server::handshake(tls).await else {
        return;
    };
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        let log = log.clone();
        tokio::spawn(async move {
            let path = req.uri().path().to_string();
            let mut body = req.into_body();
            let mut len = 0;
            while let Some(Ok(chunk)) = body.data().await {
                len += chunk.len();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            log.lock().expect("log").push(("h2".into(), path, len));
            let resp = http::Response::builder()
                .status(200)
                .header("x-proto", "h2")
                .header("content-length", "2")
                .body(())
                .expect("response");
            if let Ok(mut send) = respond.send_response(resp, false) {
                let _ = send.send_data(Bytes::from_static(b"ok"), true);
            }
        });
    }
}

async fn serve_h1_once(mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, log: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("-").to_string();
    log.lock().expect("log").push(("http/1.1".into(), path, 0));
    let _ = tls
        .write_all(b"HTTP/1.1 200 OK\r\nx-proto: http/1.1\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .await;
    let _ = tls.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_true_speaks_h2_to_the_upstream_and_carries_a_body() {
    let ca = TestCa::new();
    let (addr, seen, task) = h2_capable_upstream(&ca).await;
    let upstream = |h2: bool| {
        format!(
            "    active: main\n    tls: true\n    ca: {}\n{}    pools: {{main: [\"localhost:{}\"]}}\n",
            ca.ca_path().display(),
            if h2 { "    http2: true\n" } else { "" },
            addr.port()
        )
    };
    // Default: HTTP/1.1 even to a server that would speak h2.
    let (_p, http, _) = start(&upstream(false)).await;
    let r = http_get(http, "a.test", "/one").await.expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-proto"), Some("http/1.1"));
    let (_p2, http2, _) = start(&upstream(true)).await;
    let r = http_get(http2, "a.test", "/two").await.expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-proto"), Some("h2"));
    let body = vec![b'x'; 40_000];
    let mut c = H1Conn::connect(http2).await.expect("connect");
    let r = c
        .request("POST", "/upload", "a.test", &[], &body)
        .await
        .expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-proto"), Some("h2"));
    let got = seen.lock().expect("log").clone();
    assert!(
        got.contains(&("h2".to_string(), "/upload".to_string(), 40_000)),
        "the whole body reached the h2 upstream: {got:?}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_reaches_a_tls_upstream_over_http1_even_with_http2_on() {
    let ca = TestCa::new();
    // The server would pick h2 if it were offered: an upgrade must not offer it.
    let ws =
        WsUpstream::start_tls("ws", ca.server_config(&["localhost"], &["h2", "http/1.1"])).await;
    let (_p, http, _) = start(&format!(
        "    active: main\n    tls: true\n    http2: true\n    ca: {}\n    pools: {{main: [\"localhost:{}\"]}}\n",
        ca.ca_path().display(),
        ws.port()
    ))
    .await;
    let mut c = ws_connect(&format!("ws://a.test:{}/chat", http.port()), None)
        .await
        .expect("upgrade through the proxy");
    assert_eq!(c.recv_text().await.expect("greeting"), "hello from ws");
    c.send_text("over tls").await.expect("send");
    assert_eq!(c.recv_text().await.expect("echo"), "over tls");
    c.close(1000).await.expect("close");
}

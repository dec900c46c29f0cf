//! Core proxying through the real binary: routing, forwarded headers, body
//! limits, upstream failures, HTTP/2 over TLS with SNI certificates, and
//! WebSockets over ws:// and wss://.

use crate::fixture::Scene;
use crate::support::*;
use std::time::Duration;

fn upstream_of(r: &Response) -> String {
    r.header("x-upstream").unwrap_or("<none>").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_longest_prefix() {
    let s = Scene::start().await;
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    for (host, path, want) in [
        ("app.test", "/", "web"),
        ("app.test", "/api/users", "api"),
        ("app.test", "/apix", "web"),
        ("x.wild.test", "/api/", "api"),
        ("plain.test", "/", "api"),
        ("nobody.test", "/", "web"), // the default site
    ] {
        let r = c.get(path, host).await.expect("response");
        assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
        assert_eq!(upstream_of(&r), want, "{host}{path}");
        assert_eq!(
            r.json()["path"],
            path,
            "the path reaches the upstream unchanged"
        );
    }
    assert!(s.web.accepted_connections() + s.api.accepted_connections() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_reach_the_upstream_and_hop_by_hop_ones_do_not() {
    let s = Scene::start().await;
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    let r = c
        .request(
            "GET",
            "/api/h",
            "App.Test:8080",
            &[
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-Proto", "https"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "secret"),
                ("Keep-Alive", "timeout=5"),
            ],
            b"",
        )
        .await
        .expect("response");
    assert_eq!(r.status, 200);
    let seen = s.api.last_request().expect("the upstream got the request");
    assert_eq!(seen.header("host"), Some("App.Test:8080"), "Host preserved");
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("App.Test:8080"));
    assert_eq!(seen.header("x-hop"), None);
    assert_eq!(seen.header("keep-alive"), None);

    let (r, _) = h2_get(s.https, "app.test", "/api/h2", &s.root())
        .await
        .expect("h2");
    assert_eq!(r.status, 200);
    let seen = s.api.last_request().expect("h2 request arrived");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        seen.header("host"),
        Some("app.test"),
        "h2 :authority becomes Host"
    );
    assert_eq!(seen.version, "HTTP/1.1", "HTTP/1.1 to the upstream");
}

/// The hop-by-hop fields greenlight leaves to Pingora (its own strip covers
/// `Connection` and what it names, `Keep-Alive`, `Proxy-Connection`, `TE`,
/// `Upgrade`) still never reach the upstream, alone or together, over h1 and
/// h2: the vendored pingora-proxy skips its removals only when a request has
/// none of them (issue #15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_fields_left_to_pingora_do_not_reach_the_upstream() {
    let s = Scene::start().await;
    let fields = [
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "HTTP2-Settings",
        "Trailer",
    ];
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    for field in fields {
        let r = c
            .request(
                "GET",
                "/api/one",
                "app.test",
                &[(field, "x"), ("X-Kept", "1")],
                b"",
            )
            .await
            .expect("response");
        assert_eq!(r.status, 200, "{field}: {}", r.text());
        let seen = s.api.last_request().expect("the upstream got the request");
        assert_eq!(seen.header(field), None, "{field} reached the upstream");
        assert_eq!(seen.header("x-kept"), Some("1"));
    }
    let all: Vec<(&str, &str)> = fields.iter().map(|f| (*f, "x")).collect();
    let r = c
        .request("GET", "/api/all", "app.test", &all, b"")
        .await
        .expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.api.last_request().expect("the upstream got the request");
    for field in fields {
        assert_eq!(seen.header(field), None, "{field} (among others)");
    }

    let mut h2 = H2Conn::connect(s.https, "app.test", &s.root())
        .await
        .expect("h2");
    let r = h2
        .request(
            "GET",
            "/api/h2",
            &[("proxy-authorization", "x"), ("x-kept", "1")],
            b"",
        )
        .await
        .expect("h2 response");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.api.last_request().expect("h2 request arrived");
    assert_eq!(seen.header("proxy-authorization"), None);
    assert_eq!(seen.header("x-kept"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_never_reach_the_upstream() {
    let s = Scene::start().await;
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    let small = c
        .request("POST", "/api/small", "app.test", &[], &[b'a'; 1000])
        .await
        .expect("small");
    assert_eq!(small.status, 200, "a body under 1k passes");
    assert_eq!(small.json()["body_len"], 1000);

    let mut c = H1Conn::connect(s.http).await.expect("connect");
    let big = c
        .request("POST", "/api/big", "app.test", &[], &[b'a'; 2000])
        .await
        .expect("413");
    assert_eq!(big.status, 413);
    assert!(big.text().contains("exceeds"), "{}", big.text());

    // Without Content-Length the limit applies while streaming.
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    let mut raw =
        b"POST /api/chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'b'; 512]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.send_raw(&raw).await.expect("send");
    let r = c.read_response().await.expect("answer");
    assert_eq!(r.status, 413);
    let paths: Vec<String> = s.api.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        !paths.iter().any(|p| p == "/api/big" || p == "/api/chunked"),
        "{paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_gets_502_naming_it_and_a_slow_one_504() {
    let s = Scene::start().await;
    let r = http_get(s.http, "app.test", "/dead/x").await.expect("502");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("upstream 'dead'"), "{}", r.text());
    assert!(
        s.proxy
            .wait_for_stderr("upstream 'dead' pool 'main'", IO_TIMEOUT)
            .await,
        "the log names the upstream"
    );

    let r = http_get(s.http, "app.test", "/slow?ms=3000")
        .await
        .expect("504");
    assert_eq!(r.status, 504);
    assert!(r.text().contains("upstream 'slow'"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_over_to_the_next_server() {
    let s = Scene::start().await;
    for i in 0..6 {
        let r = http_get(s.http, "app.test", &format!("/flaky/{i}"))
            .await
            .expect("resp");
        assert_eq!(r.status, 200, "request {i} fails over: {}", r.text());
        assert_eq!(upstream_of(&r), "web");
    }
    assert!(
        s.proxy
            .wait_for_stderr("trying the next server", IO_TIMEOUT)
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_negotiates_h2_and_serves_the_certificate_of_the_sni() {
    let s = Scene::start().await;
    let (r, tls) = h2_get(s.https, "app.test", "/", &s.root())
        .await
        .expect("h2");
    assert_eq!(tls.alpn_str(), Some("h2"));
    assert!(tls.subject_alt_names.contains(&"app.test".to_string()));
    assert_eq!(r.status, 200);
    assert_eq!(upstream_of(&r), "web");

    let (_, tls) = h2_get(s.https, "secure.test", "/", &s.root())
        .await
        .expect("h2");
    assert_eq!(tls.subject_alt_names, vec!["secure.test".to_string()]);

    let (r, tls) = h2_get(s.https, "x.wild.test", "/api/", &s.root())
        .await
        .expect("wild");
    assert!(tls.subject_alt_names.contains(&"*.wild.test".to_string()));
    assert_eq!(upstream_of(&r), "api");

    // HTTP/1.1 over TLS is offered too.
    let mut c = H1Conn::connect_tls(s.https, "app.test", &s.root())
        .await
        .expect("h1 tls");
    let r = c.get("/", "app.test").await.expect("resp");
    assert_eq!(r.status, 200);
    assert_eq!(c.tls.as_ref().and_then(|t| t.alpn_str()), Some("http/1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_another_site_on_a_tls_connection_is_misdirected() {
    let s = Scene::start().await;
    let mut c = H1Conn::connect_tls(s.https, "app.test", &s.root())
        .await
        .expect("tls");
    let r = c.get("/", "secure.test").await.expect("resp");
    assert_eq!(r.status, 421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_site_redirects_plain_requests_to_https() {
    let s = Scene::start().await;
    let r = http_get(s.http, "secure.test", "/a/b?c=d")
        .await
        .expect("resp");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://secure.test:{}/a/b?c=d", s.https.port()).as_str())
    );
    assert_eq!(s.web.request_count(), 0, "a redirect never reaches the app");
}

/// `plain_http: redirect 301` keeps the status an imported nginx
/// `return 301 https://$host$request_uri` had (the default is 308); the map
/// form sends every name to one host (`return 301 https://canon$request_uri`),
/// and `default: https` leaves unknown hosts on plain listeners without a
/// site (nginx's certbot block answering them 404) while TLS listeners still
/// have their catch-all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_with_the_status_and_target_written_or_refuses() {
    let ca = TestCa::new();
    ca.issue_to(&["old.test"], ca.dir(), "old");
    ca.issue_to(&["canon.test", "www.canon.test"], ca.dir(), "canon");
    let web = HttpUpstream::start("web").await;
    let ports = free_ports(3);
    let yaml = fill_ports(
        &r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  old:
    hosts: [old.test]
    tls: {cert: "{DIR}/old.crt", key: "{DIR}/old.key"}
    plain_http: redirect 301
    routes: [{path: /, upstream: web}]
  canon:
    hosts: [canon.test, www.canon.test]
    default: https
    tls: {cert: "{DIR}/canon.crt", key: "{DIR}/canon.key"}
    plain_http: {redirect: 302, to: "https://canon.test$request_uri"}
    routes: [{path: /, upstream: web}]
  api:
    hosts: [api.test]
    tls: {cert: "{DIR}/old.crt", key: "{DIR}/old.key"}
    plain_http: not_found
    routes: [{path: /, upstream: web}]
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{WEB}"]}}
"#
        .replace("{DIR}", &ca.dir().display().to_string()),
        &[
            ("HTTP", ports[0]),
            ("HTTPS", ports[1]),
            ("ADMIN", ports[2]),
            ("WEB", web.port()),
        ],
    );
    let http: std::net::SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let https: std::net::SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let _proxy = ProxyProcess::start_ready(&yaml, &[http, https])
        .await
        .expect("greenlight starts");
    let r = http_get(http, "old.test", "/a/b?c=d").await.expect("resp");
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("https://old.test:{}/a/b?c=d", https.port()).as_str())
    );
    let r = http_get(http, "www.canon.test", "/a/b?c=d")
        .await
        .expect("resp");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("https://canon.test/a/b?c=d"));
    // `not_found`: never served over plain HTTP, not even redirected.
    let r = http_get(http, "api.test", "/a").await.expect("resp");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("https only"), "{}", r.text());
    assert_eq!(r.header("location"), None);
    // No site is the default on plain listeners: unknown hosts get 404 there.
    let r = http_get(http, "unknown.test", "/").await.expect("resp");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(web.request_count(), 0, "a redirect never reaches the app");
    // On TLS listeners `canon` is the catch-all.
    let mut c = H1Conn::connect_tls(https, "canon.test", &ca.cert_pem())
        .await
        .expect("tls");
    let r = c.get("/", "unknown.test").await.expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(web.request_count(), 1);
}

async fn exchange(ws: &mut WsClient, rounds: usize) {
    for i in 0..rounds {
        let msg = format!("message {i}");
        ws.send_text(&msg).await.expect("send");
        assert_eq!(ws.recv_text().await.expect("echo"), msg);
    }
    ws.send_binary(&[0, 1, 2, 255]).await.expect("send bin");
    assert_eq!(
        ws.recv_binary().await.expect("echo bin"),
        vec![0, 1, 2, 255]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_work_over_ws_and_wss_without_configuration() {
    let s = Scene::start().await;
    let url = format!("ws://app.test:{}/ws/chat", s.http.port());
    let mut ws = ws_connect(&url, None).await.expect("ws upgrade");
    assert_eq!(ws.status, 101);
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws");
    exchange(&mut ws, 5).await;

    let url = format!("wss://app.test:{}/ws/secure", s.https.port());
    let mut wss = ws_connect(&url, Some(TlsClient::trusting(&s.root())))
        .await
        .expect("wss upgrade");
    assert_eq!(wss.recv_text().await.expect("hello"), "hello from ws");
    exchange(&mut wss, 5).await;

    let hs = s.ws.handshakes();
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[1].path, "/ws/secure");
    assert_eq!(hs[1].header("x-forwarded-proto"), Some("https"));
    assert_eq!(hs[1].header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(s.ws.wait_for_open(2, IO_TIMEOUT).await);
}

/// Pingora issue #946: data sent by either side right after the 101 could
/// race the switch to tunnel mode and tear the connection down. The client
/// sends before reading anything, many times over, and every frame must
/// arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_survives_traffic_right_after_the_101() {
    let s = Scene::start().await;
    let url = format!("ws://app.test:{}/ws/race", s.http.port());
    for round in 0..20 {
        let mut ws = ws_connect(&url, None).await.expect("upgrade");
        ws.send_text(&format!("early {round}"))
            .await
            .expect("early send");
        assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws");
        assert_eq!(
            ws.recv_text().await.expect("echo"),
            format!("early {round}")
        );
        exchange(&mut ws, 3).await;
    }
    // Idle for a moment, then still alive: the tunnel was not torn down.
    let mut ws = ws_connect(&url, None).await.expect("upgrade");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws");
    tokio::time::sleep(Duration::from_millis(300)).await; // idle time is the behaviour under test
    exchange(&mut ws, 2).await;
}

/// A client that sends its first frame in the same write as the upgrade
/// request (before the 101; RFC 6455 says wait, some clients do not): the
/// bytes the proxy read along with the request are handed to the tunnel and
/// reach the app, before anything the client sends later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_with_the_upgrade_request_reaches_the_app() {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::{Message, protocol::Role};
    let s = Scene::start().await;
    let mut tcp = tokio::net::TcpStream::connect(s.http).await.expect("tcp");
    let mut bytes = b"GET /ws/pipelined HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    // A masked text frame "early" (mask 1,2,3,4).
    let mask = [1u8, 2, 3, 4];
    bytes.extend_from_slice(&[0x81, 0x80 | 5]);
    bytes.extend_from_slice(&mask);
    bytes.extend(b"early".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&bytes).await.expect("send");
    // Read the 101 byte by byte, so that no frame is read with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(IO_TIMEOUT, tcp.read(&mut b))
            .await
            .expect("101 in time")
            .expect("read");
        assert_eq!(n, 1, "connection closed in the 101: {head:?}");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let msg = tokio::time::timeout(IO_TIMEOUT, ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            texts.push(t.to_string());
        }
    }
    assert_eq!(texts, ["hello from ws", "early"]);
    ws.send(Message::text("later")).await.expect("send later");
    let echo = tokio::time::timeout(IO_TIMEOUT, ws.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("frame");
    assert_eq!(echo, Message::text("later"));
}

/// An upgrade the app does not accept: its answer (here a plain 200) reaches
/// the client as it is, with its body, and the connection goes on serving
/// requests. greenlight reads the answer to an upgrade itself before handing
/// a tunnel over; anything but a 101 goes back to the usual response path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_the_app_refuses_gets_the_apps_answer() {
    let s = Scene::start().await;
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let r = c
        .request("GET", "/not-a-socket", "app.test", &upgrade, &[])
        .await
        .expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(upstream_of(&r), "web");
    assert_eq!(r.json()["path"], "/not-a-socket");
    let next = c.get("/after", "app.test").await.expect("next request");
    assert_eq!(next.status, 200);
    assert_eq!(next.json()["path"], "/after");
}

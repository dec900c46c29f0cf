//! Client limits: 414 for an overlong target, 431 for too many or too large
//! header fields, an idle keep-alive connection closed at its timeout, a
//! connection closed after `keepalive_requests` requests.

use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

async fn start() -> (HttpUpstream, SocketAddr, ProxyProcess) {
    let app = HttpUpstream::start("app").await;
    let ports = free_ports(2);
    let yaml = format!(
        "limits:\n  header_timeout: 1s\n  max_uri_length: 1k\n  max_headers: 20\n  max_header_size: 4k\n  keepalive_timeout: 1s\n  keepalive_requests: 3\nlisteners:\n  http: {{address: \"127.0.0.1:{}\"}}\nadmin: {{address: \"127.0.0.1:{}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        ports[0],
        ports[1],
        app.port()
    );
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let p = ProxyProcess::start_ready(&yaml, &[http])
        .await
        .expect("starts");
    (app, http, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_targets_and_headers_get_414_and_431() {
    let (app, http, _p) = start().await;
    let long = format!("/{}", "a".repeat(1100));
    let r = http_get(http, "a.test", &long).await.expect("414");
    assert_eq!(r.status, 414);
    let ok = http_get(http, "a.test", &format!("/{}", "a".repeat(900)))
        .await
        .expect("ok");
    assert_eq!(ok.status, 200);

    let many: Vec<(String, String)> = (0..25).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut c = H1Conn::connect(http).await.expect("connect");
    let r = c
        .request("GET", "/", "a.test", &refs, b"")
        .await
        .expect("431");
    assert_eq!(r.status, 431);

    let big = "x".repeat(5000);
    let mut c = H1Conn::connect(http).await.expect("connect");
    let r = c
        .request("GET", "/", "a.test", &[("X-Big", &big)], b"")
        .await
        .expect("431");
    assert_eq!(r.status, 431);
    assert_eq!(
        app.request_count(),
        1,
        "only the acceptable request reached the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_is_closed_at_its_timeout() {
    let (_app, http, _p) = start().await;
    let mut c = H1Conn::connect(http).await.expect("connect");
    assert_eq!(c.get("/", "a.test").await.expect("ok").status, 200);
    assert!(
        c.wait_closed_by_peer(Duration::from_secs(4)).await,
        "the 1s keep-alive timeout closes the idle connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closes_after_keepalive_requests_requests() {
    let (app, http, _p) = start().await;
    let mut c = H1Conn::connect(http).await.expect("connect");
    for i in 1..=3 {
        let r = c.get(&format!("/k{i}"), "a.test").await.expect("answer");
        assert_eq!(r.status, 200);
        let close = r
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        assert_eq!(
            close,
            i == 3,
            "request {i}: Connection: close only on the 3rd"
        );
    }
    assert!(
        c.wait_closed_by_peer(Duration::from_secs(4)).await,
        "closed after the 3rd answer"
    );
    // A new connection starts a new count.
    let mut c = H1Conn::connect(http).await.expect("connect");
    let r = c.get("/k4", "a.test").await.expect("answer");
    assert!(
        !r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "the first request of a new connection keeps it open"
    );
    assert_eq!(app.request_count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_while_a_normal_client_is_served() {
    let (_app, http, _p) = start().await;
    let mut slow = H1Conn::connect(http).await.expect("connect");
    let trickle = trickle_header(&mut slow, b"GET / HTTP/1.1\r\nHost: a.test\r\n");
    let normal = async {
        let r = http_get(http, "a.test", "/normal").await.expect("served");
        assert_eq!(r.status, 200);
    };
    let (cut_after, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(8), trickle),
        normal
    );
    let cut_after = cut_after.expect("the slow client was cut");
    assert!(
        cut_after < Duration::from_secs(5),
        "cut after {cut_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_on_a_kept_alive_connection_is_cut_too() {
    let (_app, http, _p) = start().await;
    let mut c = H1Conn::connect(http).await.expect("connect");
    assert_eq!(c.get("/first", "a.test").await.expect("ok").status, 200);
    // Each byte comes well within the per-read timeout; only a bound on the
    // whole header (keep-alive 1s + header 1s) stops this.
    let trickle = trickle_header(&mut c, b"GET /second HTTP/1.1\r\nHost: a.test\r\n");
    let cut_after = tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the slow keep-alive client was cut");
    assert!(
        cut_after < Duration::from_secs(6),
        "cut after {cut_after:?}"
    );
}

/// The slowloris attack: `start`, then one more header byte every 200 ms,
/// forever; resolves with how long it took until the proxy cut it.
async fn trickle_header(c: &mut H1Conn, start: &[u8]) -> Duration {
    c.send_raw(start).await.expect("start");
    let t = std::time::Instant::now();
    loop {
        // The pace of the attack under test, not synchronisation.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if c.send_raw(b"X").await.is_err() {
            return t.elapsed();
        }
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the ')'.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_does_not_spin_and_recovers() {
    let app = HttpUpstream::start("app").await;
    let ports = free_ports(2);
    let yaml = format!(
        "access_log: off\nlisteners:\n  http: {{address: \"127.0.0.1:{}\"}}\nadmin: {{address: \"127.0.0.1:{}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        ports[0],
        ports[1],
        app.port()
    );
    let http: std::net::SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let bin = greenlight_bin().display().to_string();
    let script = format!("ulimit -n 96 && exec {bin} run -c \"$0\"");
    let mut p = ProxyProcess::start_with_bin(
        std::path::Path::new("/bin/sh"),
        &yaml,
        &["-c", &script, "{config}"],
        &[],
    )
    .expect("spawn");
    p.wait_ready(&[http])
        .await
        .expect("starts under a low fd limit");
    // Hold idle connections until accept() fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..200 {
        match tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(http),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    assert!(
        p.wait_for_stderr("Too many open files", IO_TIMEOUT).await,
        "the proxy ran out of descriptors ({} connections held)",
        held.len()
    );
    // Exhausted for a while: the accept loop must not burn a core.
    let before = cpu_ticks(p.pid());
    let t = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await; // the exhausted period under test
    let used = cpu_ticks(p.pid()) - before;
    let ticks_per_sec = 100; // USER_HZ on Linux
    assert!(
        (used as f64) < 0.5 * t.elapsed().as_secs_f64() * ticks_per_sec as f64,
        "{used} CPU ticks in {:?} while out of descriptors",
        t.elapsed()
    );
    drop(held);
    eventually(
        Duration::from_secs(10),
        "it serves again once descriptors are free",
        || async { matches!(http_get(http, "a.test", "/back").await, Ok(r) if r.status == 200) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_outlives_the_upstream_read_timeout() {
    let (http, _ws, _p) = ws_scene("").await;
    let mut c = ws_connect(&format!("ws://a.test:{}/chat", http.port()), None)
        .await
        .expect("ws");
    assert_eq!(c.recv_text().await.expect("hello"), "hello from ws");
    // Idle for longer than the upstream read timeout: the behaviour under test.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.send_text("still there?").await.expect("send");
    assert_eq!(c.recv_text().await.expect("echo"), "still there?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_idle_timeout_closes_a_quiet_tunnel_when_configured() {
    let (http, ws, _p) = ws_scene("limits: {websocket_idle_timeout: 1s}\n").await;
    let mut c = ws_connect(&format!("ws://a.test:{}/chat", http.port()), None)
        .await
        .expect("ws");
    assert_eq!(c.recv_text().await.expect("hello"), "hello from ws");
    c.send_text("active").await.expect("send");
    assert_eq!(c.recv_text().await.expect("echo"), "active");
    c.set_timeout(Duration::from_secs(5));
    let t = std::time::Instant::now();
    assert!(c.recv_text().await.is_err(), "the quiet tunnel is closed");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "after about 1s: {:?}",
        t.elapsed()
    );
    assert!(ws.wait_for_open(0, IO_TIMEOUT).await);
}

async fn ws_scene(extra: &str) -> (std::net::SocketAddr, WsUpstream, ProxyProcess) {
    let ws = WsUpstream::start("ws").await;
    let ports = free_ports(2);
    let yaml = format!(
        "{extra}access_log: off\nlisteners:\n  http: {{address: \"127.0.0.1:{}\"}}\nadmin: {{address: \"127.0.0.1:{}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, read_timeout: 1s, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        ports[0],
        ports[1],
        ws.port()
    );
    let http: std::net::SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let p = ProxyProcess::start_ready(&yaml, &[http])
        .await
        .expect("starts");
    (http, ws, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_clients_are_told_the_stream_limit_and_idle_connections_close() {
    let ca = TestCa::new();
    let cert = ca.issue_to(&["a.test"], ca.dir(), "a");
    let app = HttpUpstream::start("app").await;
    let ports = free_ports(2);
    let yaml = format!(
        "access_log: off\nlimits: {{h2_max_concurrent_streams: 7, keepalive_timeout: 1s}}\nlisteners:\n  https: {{address: \"127.0.0.1:{}\", tls: true}}\nadmin: {{address: \"127.0.0.1:{}\"}}\nsites:\n  s: {{hosts: [a.test], tls: {{cert: \"{}\", key: \"{}\"}}, routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        ports[0],
        ports[1],
        cert.cert_path.display(),
        cert.key_path.display(),
        app.port()
    );
    let https: std::net::SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let _p = ProxyProcess::start_ready(&yaml, &[https])
        .await
        .expect("starts");
    let (tls, info) = tls_connect(https, "a.test", &["h2"], &ca.cert_pem())
        .await
        .expect("tls");
    assert_eq!(info.alpn_str(), Some("h2"));
    let (mut client, mut conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    let req = http::Request::get("https://a.test/").body(()).expect("req");
    let (resp, _) = client.send_request(req, true).expect("send");
    let resp = tokio::select! {
        r = resp => r.expect("response"),
        _ = &mut conn => panic!("connection ended"),
    };
    assert_eq!(resp.status(), 200);
    assert_eq!(
        conn.max_concurrent_send_streams(),
        7,
        "SETTINGS_MAX_CONCURRENT_STREAMS"
    );
    // With no stream open, the connection is idle: closed after the
    // keep-alive timeout (1s here), as nginx does.
    let t = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(6), conn).await;
    assert!(ended.is_ok(), "the idle h2 connection was not closed");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "closed only when idle for the timeout: {:?}",
        t.elapsed()
    );
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_closes_connections_over_its_max_and_recovers() {
    let app = HttpUpstream::start("app").await;
    let ports = free_ports(2);
    let yaml = format!(
        "access_log: off\nlisteners:\n  http: {{address: \"127.0.0.1:{}\", max_connections: 3}}\nadmin: {{address: \"127.0.0.1:{}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        ports[0],
        ports[1],
        app.port()
    );
    let http: std::net::SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let p = ProxyProcess::start_ready(&yaml, &[http])
        .await
        .expect("starts");
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = H1Conn::connect(http).await.expect("connect");
        let r = c.get(&format!("/held{i}"), "a.test").await.expect("served");
        assert_eq!(r.status, 200);
        held.push(c);
    }
    let mut fourth = H1Conn::connect(http)
        .await
        .expect("tcp accept still happens");
    assert!(
        fourth.wait_closed_by_peer(Duration::from_secs(3)).await,
        "the connection over the limit is closed"
    );
    assert!(p.wait_for_stderr("max_connections", IO_TIMEOUT).await);
    drop(held.pop());
    eventually(IO_TIMEOUT, "a slot frees up", || async {
        matches!(http_get(http, "a.test", "/again").await, Ok(r) if r.status == 200)
    })
    .await;
}

/// A site's own `keepalive_timeout` replaces the global one for the
/// connection it answered on: `0` closes after the answer, `1s` closes an
/// idle connection long before the global 30s would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_own_keepalive_timeout_replaces_the_global_one() {
    let app = HttpUpstream::start("app").await;
    let (http, admin) = (free_port(), free_port());
    let yaml = format!(
        "access_log: off\nlimits: {{keepalive_timeout: 30s}}\nlisteners:\n  http: {{address: \"127.0.0.1:{http}\"}}\nadmin: {{address: \"127.0.0.1:{admin}\"}}\nsites:\n  long: {{hosts: [long.test], routes: [{{path: /, upstream: u}}]}}\n  short: {{hosts: [short.test], keepalive_timeout: 1s, routes: [{{path: /, upstream: u}}]}}\n  off: {{hosts: [off.test], keepalive_timeout: 0, routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        app.port()
    );
    let addr: SocketAddr = ([127, 0, 0, 1], http).into();
    let _p = ProxyProcess::start_ready(&yaml, &[addr])
        .await
        .expect("start");
    let close = |r: &Response| {
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    };

    // `long` keeps the connection; the next request on it, for `off`, ends it.
    let mut c = H1Conn::connect(addr).await.expect("connect");
    let r = c.get("/1", "long.test").await.expect("answer");
    assert!(r.status == 200 && !close(&r), "long keeps it open");
    let r = c
        .get("/2", "off.test")
        .await
        .expect("answer on the same connection");
    assert_eq!(r.status, 200);
    assert!(
        close(&r),
        "keepalive_timeout: 0 answers with Connection: close"
    );
    assert!(
        c.wait_closed_by_peer(Duration::from_secs(4)).await,
        "and closes"
    );

    // `short`: idle for its 1s, not the global 30s.
    let mut c = H1Conn::connect(addr).await.expect("connect");
    let r = c.get("/3", "short.test").await.expect("answer");
    assert!(r.status == 200 && !close(&r));
    assert!(
        c.wait_closed_by_peer(Duration::from_secs(5)).await,
        "the site's 1s keep-alive closed the idle connection"
    );
}

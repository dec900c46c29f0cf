//! Upstream servers on unix sockets (`unix:/path`, a gunicorn/Django app
//! behind nginx): proxied over HTTP/1.1 and h2, `$upstream_addr`, health
//! checks over the socket, a socket that vanishes, balancing, a blue/green
//! switch that drains a unix pool, and a WebSocket through the socket.

use crate::support::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const TLS_YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  app:
    hosts: [app.test]
    tls: {cert: "{DIR}/app.crt", key: "{DIR}/app.key"}
    plain_http: serve
    response_headers:
      add: {X-Served-By: "$upstream_addr"}
    routes: [{path: /, upstream: web}]
upstreams:
  web: {active: main, pools: {main: ["unix:{SOCK}"]}}
"#;

fn sock(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// The `/api/upstreams` entry of `server` (its label) in the first pool.
async fn server_health(admin: SocketAddr, server: &str) -> serde_json::Value {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let r = c
        .get("/api/upstreams", &admin.to_string())
        .await
        .expect("api");
    r.json()["upstreams"][0]["pools"][0]["health"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["server"] == server).cloned())
        .unwrap_or_else(|| panic!("{server} in the API: {}", r.text()))
}

fn unix(path: &Path) -> String {
    format!("unix:{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_app_serves_h1_and_h2_and_is_named_like_nginx() {
    let dir = tempfile::tempdir().expect("dir");
    let path = sock(&dir, "app.sock");
    let app = HttpUpstream::start_unix("gunicorn", &path).await;
    let yaml = TLS_YAML.replace("{SOCK}", &path.display().to_string());
    let site = TlsSite::start(&yaml, &["app.test"], "app", &[]).await;

    let r = http_get(site.http, "app.test", "/h1?x=1")
        .await
        .expect("h1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("gunicorn"));
    assert_eq!(r.header("x-served-by"), Some(unix(&path).as_str()));
    let seen = app.last_request().expect("request");
    assert_eq!(seen.path, "/h1?x=1");
    // greenlight passes the client's Host (an app's allowed hosts name the
    // site, not `localhost` as nginx's default `$proxy_host` would send).
    assert_eq!(seen.header("host"), Some("app.test"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    let (r, tls) = h2_get(site.https, "app.test", "/h2", &site.ca.cert_pem())
        .await
        .expect("h2");
    assert_eq!(tls.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-served-by"), Some(unix(&path).as_str()));
    let seen = app.last_request().expect("request");
    assert_eq!(seen.path, "/h2");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_socket_is_a_502_and_health_checks_follow_the_socket() {
    let dir = tempfile::tempdir().expect("dir");
    let path = sock(&dir, "app.sock");
    // The socket does not exist yet when greenlight starts: that is fine.
    let (p, http, admin) = start_single_upstream(
        "app",
        &format!(
            "    active: main\n    pools: {{main: [\"unix:{}\"]}}\n    health: {{path: /status/204, interval: 100ms, timeout: 500ms, healthy_after: 1, unhealthy_after: 1}}\n    max_fails: 0\n",
            path.display()
        ),
    )
    .await;
    let label = unix(&path);
    eventually(IO_TIMEOUT, "the check finds no socket", || async {
        server_health(admin, &label).await["up"] == false
    })
    .await;
    let r = http_get(http, "a.test", "/").await.expect("resp");
    assert_eq!(r.status, 503, "no healthy server: {}", r.text());

    // The app starts: the next checks bring the server up.
    let app = HttpUpstream::start_unix("app", &path).await;
    eventually(IO_TIMEOUT, "the check reaches the socket", || async {
        server_health(admin, &label).await["up"] == true
    })
    .await;
    assert!(
        app.requests()
            .iter()
            .any(|r| r.path == "/status/204" && r.header("host") == Some("localhost")),
        "checks went over the socket with Host: localhost: {:?}",
        app.requests()
    );
    let r = http_get(http, "a.test", "/up").await.expect("resp");
    assert_eq!(r.status, 200, "{}", r.text());

    // The app goes away and takes its socket file with it.
    app.stop().await;
    std::fs::remove_file(&path).expect("rm socket");
    eventually(IO_TIMEOUT, "the check marks it down", || async {
        server_health(admin, &label).await["up"] == false
    })
    .await;
    // Metrics name the server as the API does.
    let text = metrics_text(admin).await;
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("server=\"{label}\""))),
        "a series labelled {label}"
    );
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_vanished_socket_is_a_502_with_a_log_line() {
    let dir = tempfile::tempdir().expect("dir");
    let path = sock(&dir, "gone.sock");
    let (p, http, _) = start_single_upstream(
        "app",
        &format!(
            "    active: main\n    pools: {{main: [\"unix:{}\"]}}\n",
            path.display()
        ),
    )
    .await;
    let mark = p.log_mark();
    let r = http_get(http, "a.test", "/").await.expect("resp");
    assert_eq!(r.status, 502, "{}", r.text());
    let line = format!("connect to unix:{} failed", path.display());
    assert!(
        p.wait_for_stderr_after(mark, &line, IO_TIMEOUT).await,
        "{line:?} in the log: {}",
        p.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_servers_are_balanced_and_a_switch_drains_a_unix_pool() {
    let dir = tempfile::tempdir().expect("dir");
    let (pa, pb) = (sock(&dir, "a.sock"), sock(&dir, "b.sock"));
    let a = HttpUpstream::start_unix("a", &pa).await;
    let b = HttpUpstream::start_unix("b", &pb).await;
    let green = HttpUpstream::start("green").await;
    let (_p, http, admin) = start_single_upstream(
        "app",
        &format!(
            "    active: blue\n    balance: {{hash: \"$request_uri\"}}\n    pools:\n      blue: [{{address: \"unix:{}\", weight: 2}}, \"unix:{}\"]\n      green: [\"127.0.0.1:{}\"]\n",
            pa.display(),
            pb.display(),
            green.port()
        ),
    )
    .await;
    let served = |path: String| async move {
        let r = http_get(http, "a.test", &path).await.expect("response");
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("x-upstream").unwrap_or("-").to_string()
    };
    // The hash ring places both sockets: keys spread, and each key sticks.
    let mut by_key = Vec::new();
    for i in 0..24 {
        by_key.push(served(format!("/k{i}")).await);
    }
    assert!(by_key.iter().any(|s| s == "a") && by_key.iter().any(|s| s == "b"));
    for (i, first) in by_key.iter().enumerate().take(6) {
        assert_eq!(&served(format!("/k{i}")).await, first, "key /k{i} sticks");
    }

    let slow = tokio::spawn(async move { http_get(http, "a.test", "/slow?ms=2000").await });
    let (ra, rb) = (&a, &b);
    eventually(IO_TIMEOUT, "the slow request is on blue", || async move {
        [ra, rb]
            .iter()
            .any(|u| u.requests().iter().any(|r| r.path.starts_with("/slow")))
    })
    .await;
    let o = admin_cli(admin, &["switch", "app", "green"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(served("/after".into()).await, "green");
    let r = slow.await.expect("task").expect("slow response");
    assert_eq!(r.status, 200, "the request in flight finished on blue");
    eventually(IO_TIMEOUT, "blue is drained", || async move {
        let mut c = H1Conn::connect(admin).await.expect("admin");
        let r = c
            .get("/api/upstreams", &admin.to_string())
            .await
            .expect("api");
        r.json()["upstreams"][0]["pools"][0]["state"] == "drained"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_runs_through_a_unix_socket() {
    let dir = tempfile::tempdir().expect("dir");
    let path = sock(&dir, "ws.sock");
    let ws = WsUpstream::start_unix("ws", &path).await;
    let (_p, http, _) = start_single_upstream(
        "app",
        &format!(
            "    active: main\n    pools: {{main: [\"unix:{}\"]}}\n",
            path.display()
        ),
    )
    .await;
    let url = format!("ws://a.test:{}/ws/chat", http.port());
    let mut c = ws_connect(&url, None).await.expect("ws upgrade");
    assert_eq!(c.status, 101);
    assert_eq!(c.recv_text().await.expect("hello"), "hello from ws");
    for i in 0..3 {
        let msg = format!("m{i}");
        c.send_text(&msg).await.expect("send");
        assert_eq!(c.recv_text().await.expect("echo"), msg);
    }
    assert!(ws.wait_for_open(1, IO_TIMEOUT).await);
    assert_eq!(ws.handshakes()[0].path, "/ws/chat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_deadline_ends_a_websocket_on_a_unix_socket() {
    let dir = tempfile::tempdir().expect("dir");
    let path = sock(&dir, "blue.sock");
    let blue = WsUpstream::start_unix("ws-blue", &path).await;
    let green = WsUpstream::start("ws-green").await;
    let (_p, http, admin) = start_single_upstream(
        "app",
        &format!(
            "    active: blue\n    drain_timeout: 1s\n    pools:\n      blue: [\"unix:{}\"]\n      green: [\"127.0.0.1:{}\"]\n",
            path.display(),
            green.port()
        ),
    )
    .await;
    let url = format!("ws://a.test:{}/ws", http.port());
    let mut ws = ws_connect(&url, None).await.expect("ws upgrade");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws-blue");
    // The switch waits for blue: the tunnel is found by its unix connection
    // (the registry tells it apart by the socket's inode) and ended at 1 s.
    let o = admin_cli(admin, &["switch", "app", "green", "--wait"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let close = ws.expect_close().await.expect("close frame");
    assert_eq!(close.code, Some(1001), "Going Away");
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let r = c
        .get("/api/upstreams", &admin.to_string())
        .await
        .expect("api");
    let pool = r.json()["upstreams"][0]["pools"][0].clone();
    assert_eq!(pool["state"], "drained", "{pool}");
    assert_eq!(pool["last_drain_forced"], 1, "{pool}");
    assert!(
        blue.wait_for_open(0, IO_TIMEOUT).await,
        "blue's side closed"
    );
    assert_eq!(blue.closes_received(), vec![Some(1001)]);
}

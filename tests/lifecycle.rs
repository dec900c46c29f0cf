//! The proxy's own lifecycle: SIGTERM drains and exits as soon as nothing is
//! left, SIGQUIT + `run --upgrade` hands the listening sockets to a new
//! process without refusing a single connection.

use crate::support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn yaml(http: u16, admin: u16, app: u16, ws: u16, sock: &str) -> String {
    format!(
        r#"
shutdown_timeout: 10s
upgrade_socket: "{sock}"
listeners:
  http: {{address: "127.0.0.1:{http}"}}
admin: {{address: "127.0.0.1:{admin}"}}
sites:
  app:
    hosts: [app.test]
    default: true
    routes: [{{path: /, upstream: app}}, {{path: /ws, upstream: ws}}]
upstreams:
  app: {{active: main, pools: {{main: ["127.0.0.1:{app}"]}}}}
  ws: {{active: main, pools: {{main: ["127.0.0.1:{ws}"]}}}}
"#
    )
}

struct Scene {
    app: HttpUpstream,
    ws: WsUpstream,
    http: SocketAddr,
    proxy: ProxyProcess,
    yaml: String,
    _dir: tempfile::TempDir,
}

async fn scene() -> Scene {
    let app = HttpUpstream::start("app").await;
    let ws = WsUpstream::start("ws").await;
    let ports = free_ports(2);
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("upgrade.sock");
    let yaml = yaml(
        ports[0],
        ports[1],
        app.port(),
        ws.port(),
        &sock.display().to_string(),
    );
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let proxy = ProxyProcess::start_ready(&yaml, &[http])
        .await
        .expect("starts");
    Scene {
        app,
        ws,
        http,
        proxy,
        yaml,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_an_idle_proxy_exits_at_once() {
    let mut s = scene().await;
    assert_eq!(
        http_get(s.http, "app.test", "/").await.expect("ok").status,
        200
    );
    let t = Instant::now();
    s.proxy.signal("TERM").expect("term");
    let status = s
        .proxy
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exited");
    assert!(status.success(), "{status:?}");
    // Far below shutdown_timeout (10s) and Pingora's own grace period.
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_closes_websockets_with_1001() {
    let mut s = scene().await;
    let url = format!("ws://app.test:{}/ws", s.http.port());
    let mut ws = ws_connect(&url, None).await.expect("ws");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws");
    let mut slow = H1Conn::connect(s.http).await.expect("connect");
    slow.send_raw(b"GET /slow?ms=1200 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .expect("send");
    assert!(s.app.wait_for_open_connections(1, IO_TIMEOUT).await);
    let t = Instant::now();
    s.proxy.signal("TERM").expect("term");
    let close = ws.expect_close().await.expect("close frame");
    assert_eq!(close.code, Some(1001));
    let r = slow
        .read_response()
        .await
        .expect("the slow response arrives");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "no keep-alive while stopping"
    );
    let status = s
        .proxy
        .wait_exit(Duration::from_secs(8))
        .await
        .expect("exited");
    assert!(status.success());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "it waited for the request: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "and exited right after: {took:?}"
    );
    assert!(s.ws.wait_for_open(0, IO_TIMEOUT).await);
    assert_eq!(
        s.ws.closes_received(),
        vec![Some(1001)],
        "the app got 1001 too"
    );
    assert!(s.proxy.stderr().contains("closed 1 WebSocket(s) with 1001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_during_startup_does_not_kill_the_process() {
    let ports = free_ports(2);
    let app = HttpUpstream::start("app").await;
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("u.sock").display().to_string();
    let y = yaml(ports[0], ports[1], app.port(), app.port(), &sock);
    let mut p = ProxyProcess::start(&y).expect("spawn");
    // As early as the process says anything: before its config is loaded.
    assert!(p.wait_for_stderr("starting: loading", IO_TIMEOUT).await);
    p.signal("HUP").expect("hup");
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    p.wait_ready(&[http]).await.expect("still starts");
    assert_eq!(
        http_get(http, "app.test", "/").await.expect("ok").status,
        200
    );
}

/// Two client loops opening a new connection per request (so every accept
/// is exercised), counting what was served and what failed.
struct ClientLoops {
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl ClientLoops {
    /// Starts the loops and returns once traffic flows.
    async fn start(addr: SocketAddr) -> ClientLoops {
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let loops = (0..2)
            .map(|_| {
                let (stop, refused, served) = (stop.clone(), refused.clone(), served.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Acquire) {
                        match http_get(addr, "app.test", "/up").await {
                            Ok(r) if r.status == 200 => served.fetch_add(1, Ordering::Relaxed),
                            _ => refused.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        let l = ClientLoops {
            stop,
            refused,
            served,
            loops,
        };
        l.wait_for_more("traffic flows").await;
        l
    }

    /// Waits until 20 more requests were served.
    async fn wait_for_more(&self, what: &str) {
        let before = self.served.load(Ordering::Acquire);
        eventually(IO_TIMEOUT, what, || async {
            self.served.load(Ordering::Acquire) > before + 20
        })
        .await;
    }

    /// After an upgrade: waits until 20 more requests were served, stops the
    /// loops, and asserts that not one request failed (`log` for the message).
    async fn served_on_and_none_failed(self, what: &str, log: impl Fn() -> String) {
        self.wait_for_more(what).await;
        self.stop.store(true, Ordering::Release);
        for l in self.loops {
            l.await.expect("loop");
        }
        assert_eq!(
            self.refused.load(Ordering::Acquire),
            0,
            "refused or failed connections during the upgrade\n{}",
            log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_hands_over_the_sockets_without_refusing_a_connection() {
    let mut old = scene().await;
    let traffic = ClientLoops::start(old.http).await;
    let new = ProxyProcess::start_with_bin(
        &greenlight_bin(),
        &old.yaml,
        &["run", "--upgrade", "-c", "{config}"],
        &[],
    )
    .expect("new process");
    old.proxy.signal("QUIT").expect("quit");
    let status = old
        .proxy
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("old exits");
    assert!(status.success(), "{status:?}\n{}", old.proxy.stderr());
    traffic
        .served_on_and_none_failed("the new process serves", || new.stderr())
        .await;
    assert!(old.app.request_count() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigusr2_starts_the_successor_itself_and_no_connection_is_refused() {
    let mut old = scene().await;
    let traffic = ClientLoops::start(old.http).await;
    let mark = old.proxy.log_mark();
    old.proxy.signal("USR2").expect("usr2");
    assert!(
        old.proxy
            .wait_for_stderr_after(
                mark,
                "is ready; handing the listening sockets",
                Duration::from_secs(20)
            )
            .await,
        "{}",
        old.proxy.stderr()
    );
    let log = old.proxy.stderr();
    let pid = successor_pid(&log);
    let _successor = KillOnDrop(pid);
    assert_ne!(pid as u32, old.proxy.pid());
    let status = old
        .proxy
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("old exits");
    assert!(status.success(), "{status:?}\n{}", old.proxy.stderr());
    traffic
        .served_on_and_none_failed("the successor serves", || old.proxy.stderr())
        .await;
    // The successor really is another process, alive after the old one.
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_with_a_successor_that_cannot_start_keeps_serving() {
    let mut s = scene().await;
    // The successor reads the same file: break it, so it exits at once.
    s.proxy.write_config("listeners: [").expect("write");
    let mark = s.proxy.log_mark();
    s.proxy.signal("USR2").expect("usr2");
    assert!(
        s.proxy
            .wait_for_stderr_after(
                mark,
                "upgrade abandoned, still serving",
                Duration::from_secs(20)
            )
            .await,
        "{}",
        s.proxy.stderr()
    );
    assert_eq!(
        http_get(s.http, "app.test", "/still")
            .await
            .expect("ok")
            .status,
        200
    );
    assert!(
        s.proxy
            .wait_exit(Duration::from_millis(300))
            .await
            .is_none(),
        "still running"
    );
}

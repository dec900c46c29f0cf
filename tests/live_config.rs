//! Live configuration and blue/green: switching pools under load, draining
//! (long requests, WebSockets, the 1001 deadline), reloads that keep serving,
//! the `switch --wait` safe-to-stop signal, and the admin API's guards.

use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  app:
    hosts: [app.test]
    default: true
    routes:
      - {path: /, upstream: app}
      - {path: /ws, upstream: ws}
upstreams:
  app:
    active: blue   # the live pool: `greenlight switch` rewrites this value
    drain_timeout: {DRAIN}s
    pools:
      blue: ["127.0.0.1:{BLUE}"]
      green: ["127.0.0.1:{GREEN}"]
  ws:
    active: blue
    drain_timeout: {DRAIN}s
    pools:
      blue: ["127.0.0.1:{WSBLUE}"]
      green: ["127.0.0.1:{WSGREEN}"]
"#;

struct BlueGreen {
    blue: HttpUpstream,
    green: HttpUpstream,
    ws_blue: WsUpstream,
    ws_green: WsUpstream,
    http: SocketAddr,
    admin: SocketAddr,
    proxy: ProxyProcess,
    yaml: String,
}

impl BlueGreen {
    async fn start(drain_secs: u64) -> BlueGreen {
        let blue = HttpUpstream::start("blue").await;
        let green = HttpUpstream::start("green").await;
        let ws_blue = WsUpstream::start("ws-blue").await;
        let ws_green = WsUpstream::start("ws-green").await;
        let ports = free_ports(2);
        let yaml = fill_ports(
            YAML,
            &[
                ("HTTP", ports[0]),
                ("ADMIN", ports[1]),
                ("BLUE", blue.port()),
                ("GREEN", green.port()),
                ("WSBLUE", ws_blue.port()),
                ("WSGREEN", ws_green.port()),
                ("DRAIN", drain_secs as u16),
            ],
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
            .await
            .expect("greenlight starts");
        BlueGreen {
            blue,
            green,
            ws_blue,
            ws_green,
            http,
            admin,
            proxy,
            yaml,
        }
    }

    /// Runs the real CLI against this proxy's admin API (off the runtime).
    async fn cli(&self, args: &[&str]) -> std::process::Output {
        admin_cli(self.admin, args).await
    }

    async fn api(&self, method: &str, path: &str, body: &str) -> Response {
        let mut c = H1Conn::connect(self.admin).await.expect("admin connect");
        c.request(
            method,
            path,
            &self.admin.to_string(),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
        .expect("admin answer")
    }

    async fn pool(&self, upstream: &str, pool: &str) -> Value {
        let r = self.api("GET", "/api/upstreams", "").await;
        assert_eq!(r.status, 200);
        r.json()["upstreams"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["name"] == upstream))
            .and_then(|u| u["pools"].as_array())
            .and_then(|p| p.iter().find(|p| p["name"] == pool))
            .cloned()
            .expect("pool in the API")
    }
}

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_under_load_fails_no_request_and_sends_new_ones_to_green() {
    let bg = BlueGreen::start(10).await;
    let stop = Arc::new(AtomicBool::new(false));
    let switched_at: Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
    let failures = Arc::new(AtomicUsize::new(0));
    let late_on_blue = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, switched_at, failures, late_on_blue, total) = (
            stop.clone(),
            switched_at.clone(),
            failures.clone(),
            late_on_blue.clone(),
            total.clone(),
        );
        let addr = bg.http;
        clients.push(tokio::spawn(async move {
            let mut conn = H1Conn::connect(addr).await.expect("connect");
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                match conn.get("/load", "app.test").await {
                    Ok(r) if r.status == 200 => {
                        let after_switch = switched_at
                            .lock()
                            .expect("lock")
                            .is_some_and(|t| started > t);
                        if after_switch && r.header("x-upstream") != Some("green") {
                            late_on_blue.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        conn = H1Conn::connect(addr).await.expect("reconnect");
                    }
                }
                total.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    eventually(IO_TIMEOUT, "load reaches blue", || async {
        bg.blue.request_count() > 50
    })
    .await;
    let o = bg
        .cli(&["switch", "app", "green", "--wait", "--timeout", "10s"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    *switched_at.lock().expect("lock") = Some(Instant::now());
    let before = total.load(Ordering::Acquire);
    eventually(IO_TIMEOUT, "load continues on green", || async {
        total.load(Ordering::Acquire) > before + 200
    })
    .await;
    stop.store(true, Ordering::Release);
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(failures.load(Ordering::Acquire), 0, "no request failed");
    assert_eq!(
        late_on_blue.load(Ordering::Acquire),
        0,
        "after the switch returned, only green"
    );
    assert!(bg.green.request_count() > 200);
    assert!(out(&o).contains("safe to stop"), "{}", out(&o));
    // The switch rewrote the file, so a reload keeps green.
    let text = std::fs::read_to_string(bg.proxy.config_path()).expect("config");
    assert!(text.contains("active: green   # the live pool"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_request_on_blue_finishes_and_wait_returns_only_after_it() {
    let bg = BlueGreen::start(10).await;
    let addr = bg.http;
    let slow = tokio::spawn(async move {
        let r = http_get(addr, "app.test", "/slow?ms=1500")
            .await
            .expect("slow");
        (r, Instant::now())
    });
    eventually(
        IO_TIMEOUT,
        "the slow request is in flight on blue",
        || async { bg.pool("app", "blue").await["inflight"] == 1 },
    )
    .await;
    let o = bg.cli(&["switch", "app", "green", "--wait"]).await;
    let wait_returned = Instant::now();
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let (r, finished) = slow.await.expect("slow task");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("blue"), "it finished on blue");
    assert!(
        finished <= wait_returned,
        "--wait returned before the request finished"
    );
    assert!(
        out(&o).contains("1 in flight"),
        "progress was shown: {}",
        out(&o)
    );
    let r = http_get(bg.http, "app.test", "/after")
        .await
        .expect("after");
    assert_eq!(r.header("x-upstream"), Some("green"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_websocket_survives_the_switch_and_reloads_then_gets_1001_at_the_deadline() {
    let bg = BlueGreen::start(3).await;
    let url = format!("ws://app.test:{}/ws", bg.http.port());
    let mut ws = ws_connect(&url, None).await.expect("ws");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws-blue");
    ws.send_text("before").await.expect("send");
    assert_eq!(ws.recv_text().await.expect("echo"), "before");

    // 20 unrelated reloads: add and remove a route.
    for i in 0..20 {
        let yaml = if i % 2 == 0 {
            bg.yaml.replace(
                "      - {path: /ws, upstream: ws}\n",
                "      - {path: /ws, upstream: ws}\n      - {path: /extra, upstream: app}\n",
            )
        } else {
            bg.yaml.clone()
        };
        bg.proxy.write_config(&yaml).expect("write");
        let r = bg.api("POST", "/api/reload", "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        ws.send_text(&format!("reload {i}")).await.expect("send");
        assert_eq!(ws.recv_text().await.expect("echo"), format!("reload {i}"));
    }

    let o = bg.cli(&["switch", "ws", "green", "--wait"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("1 WebSocket(s)"), "{}", out(&o));
    // The switch command returned only after the deadline ended the socket.
    let close = ws.expect_close().await.expect("close frame");
    assert_eq!(close.code, Some(1001), "Going Away");
    let p = bg.pool("ws", "blue").await;
    assert_eq!(p["state"], "drained");
    assert_eq!(p["websockets"], 0);
    assert_eq!(p["last_drain_forced"], 1);
    assert!(
        bg.ws_blue.wait_for_open(0, IO_TIMEOUT).await,
        "blue's side was closed too"
    );
    // ... with a Close 1001 of its own before the FIN.
    assert_eq!(bg.ws_blue.closes_received(), vec![Some(1001)]);

    // A reconnecting client lands on green.
    let mut ws = ws_connect(&url, None).await.expect("reconnect");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws-green");
    assert_eq!(bg.ws_green.open_websockets(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_drain_blue_has_no_connection_from_greenlight() {
    let bg = BlueGreen::start(10).await;
    let mut c = H1Conn::connect(bg.http).await.expect("connect");
    for _ in 0..5 {
        assert_eq!(c.get("/ka", "app.test").await.expect("ok").status, 200);
    }
    assert!(
        bg.blue.open_connections() >= 1,
        "keep-alive connection to blue is pooled"
    );
    let o = bg.cli(&["switch", "app", "green", "--wait"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        bg.blue.wait_for_open_connections(0, IO_TIMEOUT).await,
        "blue still has {} connection(s) from greenlight",
        bg.blue.open_connections()
    );
    // The client's own keep-alive connection to greenlight is untouched.
    let r = c
        .get("/ka", "app.test")
        .await
        .expect("same client connection");
    assert_eq!(r.header("x-upstream"), Some("green"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_with_a_broken_file_keeps_serving_and_a_fixed_file_applies() {
    let mut bg = BlueGreen::start(10).await;
    let mark = bg.proxy.log_mark();
    let broken = bg.yaml.replace("    active: blue", "    active: [blue");
    bg.proxy.write_config(&broken).expect("write");
    bg.proxy.signal("HUP").expect("hup");
    assert!(
        bg.proxy
            .wait_for_stderr_after(
                mark,
                "reload rejected, still serving the previous configuration",
                IO_TIMEOUT
            )
            .await,
        "{}",
        bg.proxy.stderr()
    );
    let log = bg.proxy.stderr();
    let path = bg.proxy.config_path().display().to_string();
    assert!(
        log.contains(&format!("{path}:14:13: ")),
        "the problem has its line: {log}"
    );
    let r = http_get(bg.http, "app.test", "/still")
        .await
        .expect("still serving");
    assert_eq!(r.header("x-upstream"), Some("blue"));
    let status = bg.api("GET", "/api/status", "").await.json();
    assert_eq!(status["last_reload"]["ok"], false);
    assert_eq!(status["generation"], 1);

    let mark = bg.proxy.log_mark();
    bg.proxy
        .write_config(&bg.yaml.replace("    active: blue", "    active: green"))
        .expect("write");
    bg.proxy.signal("HUP").expect("hup");
    assert!(
        bg.proxy
            .wait_for_stderr_after(mark, "configuration reloaded: generation 2", IO_TIMEOUT)
            .await
    );
    let r = http_get(bg.http, "app.test", "/now").await.expect("green");
    assert_eq!(r.header("x-upstream"), Some("green"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_reloads_under_load_fail_no_request() {
    let bg = BlueGreen::start(10).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (stop, failures, total, addr) =
            (stop.clone(), failures.clone(), total.clone(), bg.http);
        clients.push(tokio::spawn(async move {
            let mut conn = H1Conn::connect(addr).await.expect("connect");
            while !stop.load(Ordering::Acquire) {
                match conn.get("/r", "app.test").await {
                    Ok(r) if r.status == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        conn = H1Conn::connect(addr).await.expect("reconnect");
                    }
                }
                total.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 0..50 {
        // Alternate a real change (drain timeout) so every reload builds anew.
        let yaml = bg.yaml.replace(
            "drain_timeout: 10s",
            &format!("drain_timeout: {}s", 10 + i % 2),
        );
        bg.proxy.write_config(&yaml).expect("write");
        let r = bg.api("POST", "/api/reload", "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["generation"], i + 2);
    }
    stop.store(true, Ordering::Release);
    for c in clients {
        c.await.expect("client");
    }
    assert!(total.load(Ordering::Acquire) > 50);
    assert_eq!(failures.load(Ordering::Acquire), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_to_a_dead_pool_is_refused_unless_forced() {
    let bg = BlueGreen::start(10).await;
    let dead = DeadUpstream::new();
    let yaml = bg.yaml.replace(
        &format!("green: [\"127.0.0.1:{}\"]", bg.green.port()),
        &format!("green: [\"127.0.0.1:{}\"]", dead.port()),
    );
    bg.proxy.write_config(&yaml).expect("write");
    assert_eq!(bg.api("POST", "/api/reload", "").await.status, 200);
    let o = bg.cli(&["switch", "app", "green"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("no server is reachable"), "{}", out(&o));
    assert_eq!(
        http_get(bg.http, "app.test", "/x")
            .await
            .expect("ok")
            .header("x-upstream"),
        Some("blue"),
        "nothing changed"
    );
    let o = bg.cli(&["switch", "app", "green", "--force"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(bg.pool("app", "green").await["state"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_errors_precisely() {
    let bg = BlueGreen::start(10).await;
    let r = bg
        .api("POST", "/api/upstreams/nope/switch", r#"{"pool":"green"}"#)
        .await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("unknown upstream 'nope'")
    );
    let r = bg
        .api("POST", "/api/upstreams/app/switch", r#"{"pool":"purple"}"#)
        .await;
    assert_eq!(r.status, 404);
    let r = bg
        .api("POST", "/api/upstreams/app/switch", "{not json")
        .await;
    assert_eq!(r.status, 400);
    let r = bg
        .api("POST", "/api/upstreams/app/switch", r#"{"pool": 3}"#)
        .await;
    assert_eq!(r.status, 400);
    let r = bg.api("GET", "/api/nothing", "").await;
    assert_eq!(r.status, 404);
    let r = bg.api("DELETE", "/api/reload", "").await;
    assert_eq!(r.status, 405);
    let status = bg.api("GET", "/api/status", "").await.json();
    assert_eq!(status["generation"], 1);
    assert_eq!(status["upstreams"][0]["pools"][0]["state"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protects_the_admin_api_and_is_required_off_loopback() {
    let dir = tempfile::tempdir().expect("tmp");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("token");
    let ports = free_ports(2);
    let base = format!(
        "listeners:\n  http: {{address: \"127.0.0.1:{}\"}}\nadmin: {{address: \"{{ADMIN}}\"TOKEN}}\nsites:\n  s: {{hosts: [a.test], routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [127.0.0.1:9]}}}}\n",
        ports[0]
    );
    // Off loopback without a token: refused before anything starts.
    let open = base.replace("{ADMIN}", "0.0.0.0:1").replace("TOKEN", "");
    let (_d, path) = proxy::temp_config(&open);
    let o = run_cli(&["run", "-c", &path.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("without a token"));

    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let yaml = base
        .replace("{ADMIN}", &admin.to_string())
        .replace("TOKEN", &format!(", token_file: \"{}\"", token.display()));
    let _p = ProxyProcess::start_ready(&yaml, &[admin])
        .await
        .expect("starts");
    let mut c = H1Conn::connect(admin).await.expect("connect");
    let r = c
        .get("/api/status", &admin.to_string())
        .await
        .expect("answer");
    assert_eq!(r.status, 401);
    let mut c = H1Conn::connect(admin).await.expect("connect");
    let r = c
        .request(
            "GET",
            "/api/status",
            &admin.to_string(),
            &[("Authorization", "Bearer wrong!")],
            b"",
        )
        .await
        .expect("answer");
    assert_eq!(r.status, 401);
    let mut c = H1Conn::connect(admin).await.expect("connect");
    let r = c
        .request(
            "GET",
            "/api/status",
            &admin.to_string(),
            &[("Authorization", "Bearer s3cret")],
            b"",
        )
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    let o = run_cli(&[
        "status",
        "--admin",
        &admin.to_string(),
        "--token-file",
        &token.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("UPSTREAM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_removes_a_busy_pool_lets_its_request_finish() {
    let bg = BlueGreen::start(10).await;
    let addr = bg.http;
    let slow = tokio::spawn(async move { http_get(addr, "app.test", "/slow?ms=1500").await });
    eventually(IO_TIMEOUT, "in flight on blue", || async {
        bg.pool("app", "blue").await["inflight"] == 1
    })
    .await;
    // blue disappears from the file; green becomes active.
    let yaml = bg
        .yaml
        .replace(
            &format!("      blue: [\"127.0.0.1:{}\"]\n", bg.blue.port()),
            "",
        )
        .replacen("    active: blue", "    active: green", 1);
    bg.proxy.write_config(&yaml).expect("write");
    let r = bg.api("POST", "/api/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Gone from the file, but its drain stays visible until it ends.
    let p = bg.pool("app", "blue").await;
    assert_eq!(p["removed"], true, "{p}");
    assert_eq!(p["state"], "draining", "{p}");
    assert_eq!(p["inflight"], 1, "{p}");
    let done = slow
        .await
        .expect("task")
        .expect("the request on the removed pool");
    assert_eq!(done.status, 200);
    assert_eq!(done.header("x-upstream"), Some("blue"));
    let next = http_get(bg.http, "app.test", "/next").await.expect("next");
    assert_eq!(next.header("x-upstream"), Some("green"));
    assert!(
        bg.proxy
            .wait_for_stderr("pool 'blue' drained", IO_TIMEOUT)
            .await,
        "the removed pool drained: {}",
        bg.proxy.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_listeners_says_restart_and_keeps_the_rest() {
    let bg = BlueGreen::start(10).await;
    let other = free_port();
    let yaml = bg
        .yaml
        .replace(
            &format!("127.0.0.1:{}\"}}\nadmin", bg.http.port()),
            &format!("127.0.0.1:{other}\"}}\nadmin"),
        )
        .replacen("    active: blue", "    active: green", 1);
    assert_ne!(yaml, bg.yaml);
    bg.proxy.write_config(&yaml).expect("write");
    let r = bg.api("POST", "/api/reload", "").await;
    assert_eq!(r.status, 200);
    let notes = r.json()["restart_needed"].to_string();
    assert!(notes.contains("listeners changed"), "{notes}");
    // The running listener still serves, and the rest of the file applied.
    let res = http_get(bg.http, "app.test", "/x")
        .await
        .expect("old listener");
    assert_eq!(res.header("x-upstream"), Some("green"));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", other)).is_err(),
        "nothing half-applied"
    );
}

/// Gives pool `blue` of upstream `ws` a second server (b) by a reload, and
/// opens one WebSocket on each of blue's two servers (round robin).
async fn ws_on_two_blue_servers(bg: &BlueGreen) -> (WsUpstream, WsClient, WsClient) {
    let blue_b = WsUpstream::start("ws-blue-b").await;
    bg.proxy
        .write_config(&two_blue_servers(bg, &blue_b))
        .expect("write");
    let r = bg.api("POST", "/api/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let url = format!("ws://app.test:{}/ws", bg.http.port());
    let mut on_a = None;
    let mut on_b = None;
    for _ in 0..4 {
        let mut ws = ws_connect(&url, None).await.expect("ws");
        match ws.recv_text().await.expect("hello").as_str() {
            "hello from ws-blue" if on_a.is_none() => on_a = Some(ws),
            "hello from ws-blue-b" if on_b.is_none() => on_b = Some(ws),
            _ => ws.close(1000).await.expect("close spare"),
        }
    }
    assert!(bg.ws_blue.wait_for_open(1, IO_TIMEOUT).await);
    (
        blue_b,
        on_a.expect("a socket on a"),
        on_b.expect("a socket on b"),
    )
}

/// The test config with `blue_b` as a second server of `ws`'s pool blue.
fn two_blue_servers(bg: &BlueGreen, blue_b: &WsUpstream) -> String {
    let one = format!("      blue: [\"127.0.0.1:{}\"]\n", bg.ws_blue.port());
    let two = format!(
        "      blue: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
        bg.ws_blue.port(),
        blue_b.port()
    );
    assert!(bg.yaml.contains(&one));
    bg.yaml.replace(&one, &two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_changes_a_pool_keeps_its_websockets_and_drains_only_removed_servers() {
    let bg = BlueGreen::start(2).await;
    let (blue_b, mut on_a, mut on_b) = ws_on_two_blue_servers(&bg).await;

    // A reload removes server b and changes a setting of the pool: the pool
    // is rebuilt, but only b drains.
    let mark = bg.proxy.log_mark();
    let changed = bg.yaml.replace(
        "    drain_timeout: 2s\n    pools:\n      blue: [\"127.0.0.1:",
        "    drain_timeout: 2s\n    read_timeout: 45s\n    pools:\n      blue: [\"127.0.0.1:",
    );
    assert_ne!(changed, bg.yaml, "the edit applies");
    bg.proxy.write_config(&changed).expect("write");
    let r = bg.api("POST", "/api/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = bg.pool("ws", "blue").await;
    assert_eq!(p["state"], "active", "{p}");
    assert_eq!(p["websockets"], 2, "both still counted on the pool: {p}");
    let removed = p["removed_servers"].as_array().cloned().unwrap_or_default();
    assert_eq!(removed.len(), 1, "{p}");
    assert_eq!(removed[0]["server"], format!("127.0.0.1:{}", blue_b.port()));

    // At the deadline the socket on the removed server gets 1001 ...
    on_b.set_timeout(IO_TIMEOUT * 2);
    let close = on_b.expect_close().await.expect("close frame");
    assert_eq!(close.code, Some(1001), "Going Away");
    assert!(blue_b.wait_for_open(0, IO_TIMEOUT).await, "b's side closed");
    assert!(
        bg.proxy
            .wait_for_stderr_after(mark, "removed server(s)", IO_TIMEOUT)
            .await
    );
    // ... and the one on the kept server goes on as if nothing happened.
    on_a.send_text("still here").await.expect("send");
    assert_eq!(on_a.recv_text().await.expect("echo"), "still here");
    let p = bg.pool("ws", "blue").await;
    assert_eq!(p["state"], "active", "{p}");
    assert_eq!(p["websockets"], 1, "{p}");
    eventually(IO_TIMEOUT, "the removed server's drain is over", || async {
        bg.pool("ws", "blue").await["removed_servers"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(bg.ws_blue.open_websockets(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_gives_up_at_its_timeout_and_a_later_sighup_keeps_the_switch() {
    let mut bg = BlueGreen::start(30).await;
    let addr = bg.http;
    let slow = tokio::spawn(async move { http_get(addr, "app.test", "/slow?ms=4000").await });
    eventually(IO_TIMEOUT, "in flight on blue", || async {
        bg.pool("app", "blue").await["inflight"] == 1
    })
    .await;
    let o = bg
        .cli(&["switch", "app", "green", "--wait", "--timeout", "1s"])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("timed out"), "{}", out(&o));
    assert!(out(&o).contains("still draining"), "{}", out(&o));
    // The switch itself happened; blue is still finishing its request.
    assert_eq!(bg.pool("app", "blue").await["state"], "draining");
    let r = http_get(bg.http, "app.test", "/new").await.expect("new");
    assert_eq!(r.header("x-upstream"), Some("green"));
    assert_eq!(slow.await.expect("task").expect("slow").status, 200);

    // A SIGHUP re-reads the file, which the switch rewrote: green stays.
    let mark = bg.proxy.log_mark();
    bg.proxy.signal("HUP").expect("hup");
    assert!(
        bg.proxy
            .wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await
    );
    let r = http_get(bg.http, "app.test", "/after-hup")
        .await
        .expect("ok");
    assert_eq!(r.header("x-upstream"), Some("green"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_command_reports_problems_and_exits_1() {
    let bg = BlueGreen::start(5).await;
    bg.proxy
        .write_config(&bg.yaml.replace("drain_timeout: 5s", "drain_timeout: soon"))
        .expect("write");
    let o = bg.cli(&["reload"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(".yaml:15:"),
        "a file:line:col position: {}",
        out(&o)
    );
    let r = bg.api("POST", "/api/reload", "").await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    // Still serving the old configuration.
    let ok = http_get(bg.http, "app.test", "/").await.expect("ok");
    assert_eq!(ok.header("x-upstream"), Some("blue"));
    bg.proxy.write_config(&bg.yaml).expect("write back");
    let o = bg.cli(&["reload"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("configuration reloaded"), "{}", out(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_server_put_back_before_its_deadline_keeps_its_websockets() {
    let bg = BlueGreen::start(2).await;
    let (blue_b, _on_a, mut on_b) = ws_on_two_blue_servers(&bg).await;
    let mark = bg.proxy.log_mark();
    bg.proxy.write_config(&bg.yaml).expect("write");
    let r = bg.api("POST", "/api/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = bg.pool("ws", "blue").await;
    assert_eq!(
        p["removed_servers"].as_array().map(Vec::len),
        Some(1),
        "{p}"
    );
    // Put back before its 2 s deadline.
    bg.proxy
        .write_config(&two_blue_servers(&bg, &blue_b))
        .expect("write");
    let r = bg.api("POST", "/api/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = bg.pool("ws", "blue").await;
    assert_eq!(
        p["removed_servers"].as_array().map(Vec::len),
        Some(0),
        "{p}"
    );
    // The drain ends at its deadline with nothing to end.
    let done = format!("removed server(s) 127.0.0.1:{} drained in", blue_b.port());
    assert!(
        bg.proxy
            .wait_for_stderr_after(mark, &done, IO_TIMEOUT)
            .await,
        "{}",
        bg.proxy.stderr()
    );
    assert!(
        !bg.proxy.stderr()[mark..].contains("drain deadline reached for removed server(s)"),
        "{}",
        bg.proxy.stderr()
    );
    on_b.send_text("still here").await.expect("send");
    assert_eq!(on_b.recv_text().await.expect("echo"), "still here");
    assert_eq!(blue_b.open_websockets(), 1);
    assert_eq!(bg.pool("ws", "blue").await["websockets"], 2);
}

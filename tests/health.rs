//! Upstream health: active checks take a dead server out and bring it back
//! without a reload; passive marking works with active checks off; a pool
//! with no healthy server fails fast with 503.

use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

fn yaml(http: u16, admin: u16, a: u16, b: u16, extra: &str) -> String {
    format!(
        "listeners:\n  http: {{address: \"127.0.0.1:{http}\"}}\nadmin: {{address: \"127.0.0.1:{admin}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: app}}]}}\nupstreams:\n  app:\n    active: main\n    pools: {{main: [\"127.0.0.1:{a}\", \"127.0.0.1:{b}\"]}}\n{extra}"
    )
}

async fn health_of(admin: SocketAddr, server_port: u16) -> serde_json::Value {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let r = c
        .get("/api/upstreams", &admin.to_string())
        .await
        .expect("api");
    let pools = r.json()["upstreams"][0]["pools"].clone();
    pools[0]["health"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|h| {
                    h["server"]
                        .as_str()
                        .is_some_and(|s| s.ends_with(&format!(":{server_port}")))
                })
                .cloned()
        })
        .expect("server in the API")
}

/// The sum of every `greenlight_upstream_errors_total` series (0 before the
/// first error creates one).
async fn upstream_errors(admin: SocketAddr) -> f64 {
    metric_sum(
        &metrics_text(admin).await,
        "greenlight_upstream_errors_total",
        |_| true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_take_a_dead_server_out_and_bring_it_back() {
    let a = HttpUpstream::start("a").await;
    let b = HttpUpstream::start("b").await;
    let b_port = b.port();
    let ports = free_ports(2);
    let extra = "    health: {path: /status/204, interval: 100ms, timeout: 500ms, healthy_after: 2, unhealthy_after: 2, expect_status: 2xx}\n    max_fails: 0\n";
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let p = ProxyProcess::start_ready(
        &yaml(ports[0], ports[1], a.port(), b_port, extra),
        &[http, admin],
    )
    .await
    .expect("starts");
    // Traffic runs, and b serves part of it, before b dies.
    let mut sent = 0;
    let b_seen = &b;
    eventually(IO_TIMEOUT, "b serves proxied traffic", || {
        sent += 1;
        let path = format!("/before-{sent}");
        async move {
            let r = http_get(http, "a.test", &path).await.expect("resp");
            assert_eq!(r.status, 200);
            b_seen
                .requests()
                .iter()
                .any(|r| r.path.starts_with("/before-"))
        }
    })
    .await;
    b.stop().await;
    // Traffic goes on while the checks notice: until then a request sent
    // to b is refused and retried on a.
    let mut during = 0;
    eventually(IO_TIMEOUT, "b is marked down", || {
        during += 1;
        let path = format!("/during-{during}");
        async move {
            let r = http_get(http, "a.test", &path).await.expect("resp");
            assert_eq!(r.status, 200, "failover while b is not yet marked down");
            health_of(admin, b_port).await["up"] == false
        }
    })
    .await;
    assert_eq!(
        health_of(admin, b_port).await["down_reason"],
        "health check"
    );
    // Avoidance, not failover: with b marked down no request even tries it,
    // so no connect error is counted or logged (a router that ignored
    // health would try b for about every other request, be refused, and
    // retry on a: the responses alone cannot tell).
    let errors = upstream_errors(admin).await;
    let mark = p.log_mark();
    for i in 0..10 {
        let r = http_get(http, "a.test", &format!("/after-{i}"))
            .await
            .expect("resp");
        assert_eq!(r.status, 200, "traffic avoids the dead server");
        assert_eq!(r.header("x-upstream"), Some("a"));
    }
    assert_eq!(
        upstream_errors(admin).await,
        errors,
        "no request tried the server marked down"
    );
    let b2 = HttpUpstream::start_at("b", b_port).await;
    eventually(IO_TIMEOUT, "b is up again", || async {
        health_of(admin, b_port).await["up"] == true
    })
    .await;
    // The "is up again" line is logged after the traffic above, so every
    // line that traffic caused is in the log by the time it appears.
    assert!(
        p.wait_for_stderr_after(mark, "is up again", IO_TIMEOUT)
            .await,
        "{}",
        p.stderr()
    );
    let log = p.stderr();
    let after = &log[mark..log[mark..]
        .find("is up again")
        .map_or(log.len(), |i| mark + i)];
    let refused = format!("connect to 127.0.0.1:{b_port} failed");
    assert!(
        !after.contains(&refused),
        "a request tried b while it was marked down:\n{after}"
    );
    eventually(
        IO_TIMEOUT,
        "b gets traffic again without a reload",
        || async {
            let _ = http_get(http, "a.test", "/back").await;
            b2.requests().iter().any(|r| r.path == "/back")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_marking_takes_a_failing_server_out_without_active_checks() {
    let a = HttpUpstream::start("a").await;
    let dead = DeadUpstream::new();
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let extra = "    max_fails: 1\n    fail_timeout: 30s\n";
    let p = ProxyProcess::start_ready(
        &yaml(ports[0], ports[1], a.port(), dead.port(), extra),
        &[http, admin],
    )
    .await
    .expect("starts");
    for i in 0..4 {
        let r = http_get(http, "a.test", &format!("/p{i}"))
            .await
            .expect("resp");
        assert_eq!(r.status, 200, "failover hides the dead server");
    }
    assert_eq!(
        health_of(admin, dead.port()).await["down_reason"],
        "failed requests"
    );
    assert!(p.wait_for_stderr("marked down for 30s", IO_TIMEOUT).await);
    let tries = p.stderr().matches("trying the next server").count();
    for i in 0..6 {
        http_get(http, "a.test", &format!("/q{i}"))
            .await
            .expect("resp");
    }
    assert_eq!(
        p.stderr().matches("trying the next server").count(),
        tries,
        "a server in cool-off is not tried at all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_without_a_healthy_server_fails_fast_with_503() {
    let a = HttpUpstream::start("a").await;
    let b = HttpUpstream::start("b").await;
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    // Both answer the health path with 500: both go down.
    let extra =
        "    health: {path: /status/500, interval: 100ms, timeout: 500ms, unhealthy_after: 1}\n";
    let _p = ProxyProcess::start_ready(
        &yaml(ports[0], ports[1], a.port(), b.port(), extra),
        &[http, admin],
    )
    .await
    .expect("starts");
    eventually(IO_TIMEOUT, "both down", || async {
        health_of(admin, a.port()).await["up"] == false
            && health_of(admin, b.port()).await["up"] == false
    })
    .await;
    let t = std::time::Instant::now();
    let r = http_get(http, "a.test", "/x").await.expect("503");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("no healthy server"), "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(!a.requests().iter().any(|r| r.path == "/x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_errors_do_not_mark_a_server_down_and_a_lone_server_is_never_taken_out() {
    // 5xx answers are the app's: they leave both servers in (nginx counts
    // only errors and timeouts too).
    let a = HttpUpstream::start("a").await;
    let b = HttpUpstream::start("b").await;
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let extra = "    max_fails: 1\n    fail_timeout: 30s\n";
    let _p = ProxyProcess::start_ready(
        &yaml(ports[0], ports[1], a.port(), b.port(), extra),
        &[http, admin],
    )
    .await
    .expect("starts");
    for _ in 0..6 {
        let r = http_get(http, "a.test", "/status/500").await.expect("resp");
        assert_eq!(r.status, 500, "the app's own answer, not a 503");
    }
    assert_eq!(health_of(admin, a.port()).await["up"], true);
    assert_eq!(health_of(admin, b.port()).await["up"], true);
    assert_eq!(a.request_count() + b.request_count(), 6);
    assert!(
        a.request_count() > 0 && b.request_count() > 0,
        "both still used"
    );

    // A pool of one server that refuses connections: each request gets a
    // 502 naming it, never a 503 "no healthy server" from a passive mark.
    let dead = DeadUpstream::new();
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let one = yaml(ports[0], ports[1], dead.port(), 0, extra).replace(", \"127.0.0.1:0\"", "");
    let _p = ProxyProcess::start_ready(&one, &[http, admin])
        .await
        .expect("starts");
    for _ in 0..3 {
        let r = http_get(http, "a.test", "/x").await.expect("resp");
        assert_eq!(r.status, 502);
    }
    assert_eq!(health_of(admin, dead.port()).await["up"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_its_own_max_fails_is_marked_down_by_its_own_count() {
    // nginx `server … max_fails=1 fail_timeout=30s` beside servers that
    // follow the upstream's `max_fails: 5`: one failure takes the first out,
    // the same failures leave the second in.
    let a = HttpUpstream::start("a").await;
    let strict = DeadUpstream::new();
    let lenient = DeadUpstream::new();
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let yaml = format!(
        "listeners:\n  http: {{address: \"127.0.0.1:{}\"}}\nadmin: {{address: \"127.0.0.1:{}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: app}}]}}\nupstreams:\n  app:\n    active: main\n    max_fails: 5\n    fail_timeout: 30s\n    pools:\n      main:\n        - \"127.0.0.1:{}\"\n        - {{address: \"127.0.0.1:{}\", max_fails: 1, fail_timeout: 30s}}\n        - \"127.0.0.1:{}\"\n",
        ports[0],
        ports[1],
        a.port(),
        strict.port(),
        lenient.port()
    );
    let p = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("starts");
    for i in 0..3 {
        let r = http_get(http, "a.test", &format!("/p{i}"))
            .await
            .expect("resp");
        assert_eq!(r.status, 200, "failover hides the dead servers");
    }
    let s = health_of(admin, strict.port()).await;
    assert_eq!(s["down_reason"], "failed requests", "{s}");
    // The lenient server failed too (so `up` below is its own count's
    // verdict, not a server that was never tried).
    let failed = format!("connect to 127.0.0.1:{} failed", lenient.port());
    assert!(p.wait_for_stderr(&failed, IO_TIMEOUT).await, "{failed}");
    let l = health_of(admin, lenient.port()).await;
    assert_eq!(l["up"], true, "under its upstream's max_fails: {l}");
}

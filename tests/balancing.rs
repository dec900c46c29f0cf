//! Balancing through the real binary: weights split traffic exactly (smooth
//! weighted round robin), `least_conn` avoids a server busy with a slow
//! request, `ip_hash` and `hash: $request_uri` keep a client / a URI on one
//! server, a backup serves only while the primary is down, and a blue/green
//! switch with weights still drains the old pool.

use crate::support::*;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

async fn start(upstream: &str) -> (ProxyProcess, SocketAddr, SocketAddr) {
    start_single_upstream("app", upstream).await
}

/// Which upstream served a GET of `path` (its `x-upstream`).
async fn served_by(http: SocketAddr, path: &str) -> String {
    let r = http_get(http, "a.test", path).await.expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-upstream").unwrap_or("-").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_three_to_one_split_requests_exactly_and_interleaved() {
    let a = HttpUpstream::start("a").await;
    let b = HttpUpstream::start("b").await;
    let (_p, http, _) = start(&format!(
        "    active: main\n    pools:\n      main:\n        - {{address: \"127.0.0.1:{}\", weight: 3}}\n        - \"127.0.0.1:{}\"\n",
        a.port(),
        b.port()
    ))
    .await;
    let mut order = String::new();
    for i in 0..40 {
        order.push_str(&served_by(http, &format!("/w{i}")).await);
    }
    // Smooth weighted round robin (nginx): a a b a, never a a a b.
    assert_eq!(order, "aaba".repeat(10));
    assert_eq!((a.request_count(), b.request_count()), (30, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_sends_new_requests_past_a_server_busy_with_a_slow_one() {
    let a = HttpUpstream::start("a").await;
    let b = HttpUpstream::start("b").await;
    let (_p, http, admin) = start(&format!(
        "    active: main\n    balance: least_conn\n    read_timeout: 120s\n    pools:\n      main: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
        a.port(),
        b.port()
    ))
    .await;
    // One request that the upstream holds (far longer than the test runs:
    // it is dropped at the end, never awaited).
    let slow = tokio::spawn(async move { http_get(http, "a.test", "/slow?ms=600000").await });
    let (a2, b2) = (&a, &b);
    eventually(
        IO_TIMEOUT,
        "the slow request reached a server",
        || async move { a2.request_count() + b2.request_count() == 1 },
    )
    .await;
    let (busy, other) = if a.request_count() == 1 {
        ("a", "b")
    } else {
        ("b", "a")
    };
    // Round robin would send every other one to the busy server.
    let other_port = if other == "a" { a.port() } else { b.port() };
    for i in 0..8 {
        // The previous request is counted until the proxy has finished
        // with it (after the response): wait for that, or it would tie.
        eventually(IO_TIMEOUT, "the previous request left", || async move {
            server_view(admin, other_port).await["inflight"] == 0
        })
        .await;
        assert_eq!(
            served_by(http, &format!("/q{i}")).await,
            other,
            "request {i}"
        );
    }
    let busy_port = if busy == "a" { a.port() } else { b.port() };
    assert_eq!(server_view(admin, busy_port).await["inflight"], 1);
    let busy_count = if busy == "a" { &a } else { &b }.request_count();
    assert_eq!(busy_count, 1, "only the slow request went to {busy}");
    slow.abort();
}

/// A GET of `path` sent from the local address `from` (any 127.x.y.z).
async fn get_from(from: &str, http: SocketAddr, path: &str) -> String {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind source");
    let tcp = timed("connect", async { sock.connect(http).await })
        .await
        .expect("connect");
    let mut c = H1Conn::from_stream(tcp);
    let r = c.get(path, "a.test").await.expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-upstream").unwrap_or("-").to_string()
}

/// Upstreams `a`, `b` and `c`, and their addresses as a YAML flow list.
async fn three_upstreams() -> ([HttpUpstream; 3], String) {
    let ups = [
        HttpUpstream::start("a").await,
        HttpUpstream::start("b").await,
        HttpUpstream::start("c").await,
    ];
    let list = ups
        .iter()
        .map(|u| format!("\"127.0.0.1:{}\"", u.port()))
        .collect::<Vec<_>>()
        .join(", ");
    (ups, list)
}

/// Upstreams `a`, `b` and `c` in one pool balanced by `balance` (its YAML
/// value), and the proxy in front of them.
async fn start_three(balance: &str) -> ([HttpUpstream; 3], ProxyProcess, SocketAddr) {
    let (ups, list) = three_upstreams().await;
    let (p, http, _) = start(&format!(
        "    active: main\n    balance: {balance}\n    pools:\n      main: [{list}]\n"
    ))
    .await;
    (ups, p, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_hash_keeps_each_client_network_on_one_server() {
    let (_ups, _p, http) = start_three("ip_hash").await;
    let mut used = HashSet::new();
    for net in 1..=16 {
        let first = get_from(&format!("127.0.{net}.1"), http, "/x").await;
        for (host, path) in [(1, "/y"), (9, "/z?q=1"), (1, "/w")] {
            // Same /24 (any host in it), any path: the same server.
            let again = get_from(&format!("127.0.{net}.{host}"), http, path).await;
            assert_eq!(again, first, "client network 127.0.{net}.0/24");
        }
        used.insert(first);
    }
    // 16 networks over 3 servers all landing on one: about 1 in 14 million.
    assert!(used.len() > 1, "client networks spread: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_on_the_request_uri_keeps_each_uri_on_one_server() {
    let (_ups, _p, http) = start_three("{hash: \"$request_uri\"}").await;
    let mut owner: HashMap<String, String> = HashMap::new();
    for round in 0..3 {
        for n in 0..20 {
            let uri = format!("/item/{n}?v={}", n % 3);
            let s = served_by(http, &uri).await;
            match owner.get(&uri) {
                Some(first) => assert_eq!(&s, first, "{uri} in round {round}"),
                None => {
                    owner.insert(uri, s);
                }
            }
        }
    }
    let used: HashSet<&String> = owner.values().collect();
    assert!(used.len() > 1, "URIs spread over the servers: {used:?}");
}

/// The hash key reads the variables as the route plan left them: `$uri`
/// after the route's rewrite (nginx evaluates `hash` after rewrites), so
/// every path of one rewritten URI lands on one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_on_uri_sees_the_rewritten_path() {
    let (_ups, list) = three_upstreams().await;
    let ports = free_ports(2);
    let yaml = format!(
        r#"listeners:
  http: {{address: "127.0.0.1:{}"}}
admin: {{address: "127.0.0.1:{}"}}
sites:
  s:
    hosts: [a.test]
    routes:
      - path: /
        upstream: app
        rewrite: [{{from: "^/(u[0-9]+)/.*$", to: "/$1", flag: break}}]
upstreams:
  app: {{active: main, balance: {{hash: "$uri"}}, pools: {{main: [{list}]}}}}
"#,
        ports[0], ports[1]
    );
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let _p = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("greenlight starts");
    let mut owner: HashMap<u32, String> = HashMap::new();
    for id in 0..12u32 {
        for page in ["a", "b", "c", "d", "e", "f"] {
            let s = served_by(http, &format!("/u{id}/{page}")).await;
            let first = owner.entry(id).or_insert_with(|| s.clone());
            assert_eq!(&s, first, "/u{id}/{page}: every page of u{id} is /u{id}");
        }
    }
    let used: HashSet<&String> = owner.values().collect();
    assert!(used.len() > 1, "ids spread over the servers: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_serves_only_while_the_primary_is_down() {
    let primary = HttpUpstream::start("primary").await;
    let backup = HttpUpstream::start("backup").await;
    let port = primary.port();
    // Active checks only (max_fails: 0), so that "down" and "back" are
    // the checks' verdicts, logged.
    let (p, http, _) = start(&format!(
        "    active: main\n    max_fails: 0\n    health: {{path: /status/204, interval: 100ms, timeout: 500ms, healthy_after: 1, unhealthy_after: 1}}\n    pools:\n      main:\n        - \"127.0.0.1:{port}\"\n        - {{address: \"127.0.0.1:{}\", backup: true}}\n",
        backup.port()
    ))
    .await;
    for i in 0..10 {
        assert_eq!(served_by(http, &format!("/up{i}")).await, "primary");
    }
    // Health checks go to every server, backups included; requests do not.
    let proxied = |u: &HttpUpstream| {
        u.requests()
            .iter()
            .filter(|r| r.path != "/status/204")
            .count()
    };
    assert_eq!(proxied(&backup), 0, "the backup took nothing");
    primary.stop().await;
    // Until the check notices, a request refused by the primary is retried
    // on the backup; either way every request is answered.
    let mut n = 0;
    eventually(IO_TIMEOUT, "the backup takes over", || {
        n += 1;
        let path = format!("/down{n}");
        async move { served_by(http, &path).await == "backup" }
    })
    .await;
    assert!(
        p.wait_for_stderr(&format!("server 127.0.0.1:{port} is down"), IO_TIMEOUT)
            .await
    );
    for i in 0..5 {
        assert_eq!(served_by(http, &format!("/still{i}")).await, "backup");
    }
    let back = HttpUpstream::start_at("primary", port).await;
    let mut n = 0;
    eventually(IO_TIMEOUT, "the primary takes its traffic back", || {
        n += 1;
        let path = format!("/back{n}");
        async move { served_by(http, &path).await == "primary" }
    })
    .await;
    let before = proxied(&backup);
    for i in 0..10 {
        assert_eq!(served_by(http, &format!("/again{i}")).await, "primary");
    }
    assert_eq!(
        back.requests()
            .iter()
            .filter(|r| r.path.starts_with("/again"))
            .count(),
        10
    );
    assert_eq!(proxied(&backup), before, "nothing more to the backup");
}

/// The admin API's entry for the server on `port` of the first pool.
async fn server_view(admin: SocketAddr, port: u16) -> serde_json::Value {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let r = c
        .get("/api/upstreams", &admin.to_string())
        .await
        .expect("api");
    let health = r.json()["upstreams"][0]["pools"][0]["health"].clone();
    health
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|h| h["server"] == format!("127.0.0.1:{port}").as_str())
                .cloned()
        })
        .expect("server in the API")
}

async fn pool_state(admin: SocketAddr, pool: &str) -> String {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let r = c
        .get("/api/upstreams", &admin.to_string())
        .await
        .expect("api");
    let pools = r.json()["upstreams"][0]["pools"].clone();
    pools
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == pool).cloned())
        .map(|p| p["state"].as_str().unwrap_or("-").to_string())
        .expect("pool in the API")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_between_weighted_pools_moves_traffic_and_drains_the_old_one() {
    let blue = [
        HttpUpstream::start("b1").await,
        HttpUpstream::start("b2").await,
    ];
    let green = [
        HttpUpstream::start("g1").await,
        HttpUpstream::start("g2").await,
    ];
    let (_p, http, admin) = start(&format!(
        "    active: blue\n    drain_timeout: 30s\n    pools:\n      blue:\n        - {{address: \"127.0.0.1:{}\", weight: 3}}\n        - \"127.0.0.1:{}\"\n      green:\n        - \"127.0.0.1:{}\"\n        - {{address: \"127.0.0.1:{}\", weight: 2}}\n",
        blue[0].port(),
        blue[1].port(),
        green[0].port(),
        green[1].port()
    ))
    .await;
    let mut order = String::new();
    for i in 0..8 {
        order.push_str(&served_by(http, &format!("/blue{i}")).await);
        order.push(' ');
    }
    assert_eq!(order, "b1 b1 b2 b1 ".repeat(2));
    // A request in flight on blue while the switch happens.
    let slow = tokio::spawn(async move { http_get(http, "a.test", "/slow?ms=3000").await });
    let b = &blue;
    eventually(IO_TIMEOUT, "the slow request is on blue", || async move {
        b.iter()
            .any(|u| u.requests().iter().any(|r| r.path.starts_with("/slow")))
    })
    .await;
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let r = c
        .request(
            "POST",
            "/api/upstreams/app/switch",
            &admin.to_string(),
            &[("Content-Type", "application/json")],
            br#"{"pool":"green"}"#,
        )
        .await
        .expect("switch");
    assert_eq!(r.status, 200, "{}", r.text());
    // The request in flight keeps blue draining (its answer takes 3 s).
    assert_eq!(pool_state(admin, "blue").await, "draining");
    let mut order = String::new();
    for i in 0..6 {
        order.push_str(&served_by(http, &format!("/green{i}")).await);
        order.push(' ');
    }
    // Green's own weights: g2 twice for each g1, interleaved.
    assert_eq!(order, "g2 g1 g2 ".repeat(2));
    let r = slow.await.expect("task").expect("slow response");
    assert_eq!(r.status, 200, "the request in flight finished on blue");
    let on = r.header("x-upstream").unwrap_or("-");
    assert!(
        on == "b1" || on == "b2",
        "the answer in flight came from blue, not {on}"
    );
    eventually(IO_TIMEOUT, "blue is drained", || async move {
        pool_state(admin, "blue").await == "drained"
    })
    .await;
}

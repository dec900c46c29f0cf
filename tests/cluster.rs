//! Fleet mode against a real 3-member etcd cluster (Debian's etcd, on loopback
//! free ports) and three real greenlight processes sharing blue/green/red
//! upstreams: a switch through one member reaches all three; two concurrent
//! switches to different pools give one winner and one conflict, never a
//! mixed fleet; with etcd's quorum lost or etcd gone a switch is refused and
//! every member keeps serving, and when etcd is back they converge on the
//! stored key; `switch --wait` waits for every member and stops counting one
//! killed mid-drain once its lease expires; a switch of the fleet under HTTP
//! load with WebSockets open fails no request and cuts no WebSocket; with
//! etcd authentication on, the right password connects and a wrong one is
//! reported as `disconnected` with etcd's reason; over TLS only the
//! configured CA is trusted. Every
//! wait is a bounded poll.

use crate::support::etcd::EtcdCluster;
use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
admin:
  address: "127.0.0.1:{ADMIN}"
sites:
  app: {hosts: [app.test], default: true, routes: [{path: /, upstream: app}]}
upstreams:
  app:
    active: blue
    pools:
      blue: ["127.0.0.1:{BLUE}"]
      green: ["127.0.0.1:{GREEN}"]
      red: ["127.0.0.1:{RED}"]
cluster:
  etcd: ETCD
  prefix: /greenlight/test
  lease_ttl: 2s
"#;

/// How long the fleet may take to show a change (propagation is measured in
/// milliseconds; this only bounds a failing test).
const CONVERGE: Duration = Duration::from_secs(15);

struct Member {
    http: SocketAddr,
    admin: SocketAddr,
    proxy: ProxyProcess,
}

struct Fleet {
    etcd: EtcdCluster,
    _pools: Vec<HttpUpstream>,
    members: Vec<Member>,
}

impl Fleet {
    async fn start() -> Fleet {
        let etcd = EtcdCluster::start(3).await;
        let pools = vec![
            HttpUpstream::start("blue").await,
            HttpUpstream::start("green").await,
            HttpUpstream::start("red").await,
        ];
        let mut members = Vec::new();
        for _ in 0..3 {
            let ports = free_ports(2);
            let yaml = fill_ports(
                YAML,
                &[
                    ("HTTP", ports[0]),
                    ("ADMIN", ports[1]),
                    ("BLUE", pools[0].port()),
                    ("GREEN", pools[1].port()),
                    ("RED", pools[2].port()),
                ],
            )
            .replace("ETCD", &etcd.yaml_list());
            let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
            let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
            let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
                .await
                .expect("greenlight starts");
            members.push(Member { http, admin, proxy });
        }
        let fleet = Fleet {
            etcd,
            _pools: pools,
            members,
        };
        fleet
            .wait_all(
                |v| {
                    v["cluster"] == "connected"
                        && v["members"].as_array().is_some_and(|m| m.len() == 3)
                },
                "three connected members",
            )
            .await;
        fleet
    }

    /// Polls every member's `/api/cluster` until `cond` holds for all.
    async fn wait_all(&self, cond: impl Fn(&Value) -> bool, what: &str) {
        let ok = wait_until_async(deadline_in(CONVERGE), || async {
            for m in &self.members {
                if !cond(&cluster_view(m.admin).await) {
                    return false;
                }
            }
            true
        })
        .await;
        assert!(
            ok,
            "not every member reached: {what}\n{}",
            self.report().await
        );
    }

    /// Polls until every member proxies to `pool`.
    async fn wait_serving(&self, pool: &str) {
        let ok = wait_until_async(deadline_in(CONVERGE), || async {
            for m in &self.members {
                if serving(m.http).await != pool {
                    return false;
                }
            }
            true
        })
        .await;
        assert!(
            ok,
            "the fleet does not serve {pool}\n{}",
            self.report().await
        );
    }

    /// What each member serves now.
    async fn serving_now(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.members {
            out.push(serving(m.http).await);
        }
        out
    }

    async fn report(&self) -> String {
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            out.push_str(&format!(
                "--- member {i} serves {}: {}\n{}\n",
                serving(m.http).await,
                cluster_view(m.admin).await,
                tail(&m.proxy.stderr())
            ));
        }
        out + &self.etcd.log()
    }

    /// The pool `<prefix>/active/app` names in etcd now.
    async fn stored_pool(&self) -> Option<String> {
        let mut c = self.etcd.client().await;
        let r = etcd(c.get("/greenlight/test/active/app", None)).await;
        r.kvs()
            .first()
            .and_then(|kv| greenlight::cluster::switch::pool_of(kv.value()))
    }
}

/// One etcd request of the test itself, bounded by [`IO_TIMEOUT`].
async fn etcd<T>(fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> T {
    tokio::time::timeout(IO_TIMEOUT, fut)
        .await
        .expect("etcd answers in time")
        .expect("etcd answers")
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().rev().take(15).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

async fn serving(http: SocketAddr) -> String {
    match http_get(http, "app.test", "/").await {
        Ok(r) if r.status == 200 => r.header("x-upstream").unwrap_or("").to_string(),
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e}"),
    }
}

async fn admin_call(admin: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    let mut c = H1Conn::connect(admin).await.expect("admin connect");
    let headers: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[("Content-Type", "application/json")]
    };
    timed(
        "admin answer",
        c.request(method, path, &admin.to_string(), headers, body.as_bytes()),
    )
    .await
    .expect("admin answer")
}

async fn cluster_view(admin: SocketAddr) -> Value {
    let r = admin_call(admin, "GET", "/api/cluster", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn switch(admin: SocketAddr, pool: &str) -> Response {
    admin_call(
        admin,
        "POST",
        "/api/upstreams/app/switch",
        &format!(r#"{{"pool":"{pool}"}}"#),
    )
    .await
}

async fn connected_gauge(admin: SocketAddr) -> Option<String> {
    let r = admin_call(admin, "GET", "/metrics", "").await;
    r.text().lines().find_map(|l| {
        l.strip_prefix("greenlight_cluster_connected ")
            .map(str::to_string)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_through_one_member_reaches_all_three_and_concurrent_switches_never_mix_them() {
    let f = Fleet::start().await;
    assert_eq!(f.serving_now().await, ["blue", "blue", "blue"]);
    assert_eq!(
        connected_gauge(f.members[0].admin).await.as_deref(),
        Some("1")
    );

    // A long request held on member 2's blue: `switch --wait` through member
    // 0 must return only after it finished, naming the member it waits for.
    let http2 = f.members[2].http;
    let slow = tokio::spawn(async move {
        let r = http_get(http2, "app.test", "/slow?ms=1500")
            .await
            .expect("slow");
        (r, std::time::Instant::now())
    });
    let admin2 = f.members[2].admin;
    let held = wait_until_async(deadline_in(IO_TIMEOUT), || async move {
        let r = admin_call(admin2, "GET", "/api/upstreams", "").await;
        r.json()["upstreams"][0]["pools"][0]["inflight"] == 1
    })
    .await;
    assert!(held, "the slow request is in flight on member 2's blue");
    let o = admin_cli(
        f.members[0].admin,
        &["switch", "app", "green", "--wait", "--timeout", "20s"],
    )
    .await;
    let wait_returned = std::time::Instant::now();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{text}\n{}", f.report().await);
    assert!(
        !text.contains("already active"),
        "{text}\n{}",
        f.report().await
    );
    let (r, finished) = slow.await.expect("slow task");
    assert_eq!(r.header("x-upstream"), Some("blue"), "it finished on blue");
    assert!(
        finished <= wait_returned,
        "--wait returned before the request on member 2 finished:\n{text}"
    );
    let member2 = cluster_view(admin2).await["member"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    assert!(
        text.contains(&format!("{member2}: draining — 1 in flight")),
        "progress names member 2: {text}"
    );
    assert!(text.contains("is drained on all 3 member(s)"), "{text}");
    let revision = cluster_view(admin2).await["revision"]
        .as_i64()
        .expect("revision");
    assert!(revision > 0);
    f.wait_serving("green").await;
    assert_eq!(f.stored_pool().await.as_deref(), Some("green"));
    // Any member tells the fleet: all applied the switch, blue drained.
    f.wait_all(
        |v| v["safe_to_stop"] == true && v["revision"] == revision,
        "switch applied and blue drained",
    )
    .await;
    let v = cluster_view(f.members[2].admin).await;
    let propagation: Vec<&Value> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| &m["propagation_ms"])
        .collect();
    eprintln!("switch propagation (ms after the etcd write answered), per member: {propagation:?}");
    assert!(propagation.iter().all(|p| p.is_number()), "{v}");
    // `greenlight status` on any member shows the fleet.
    let o = admin_cli(f.members[1].admin, &["status"]).await;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("fleet: connected to etcd at")
            && text.contains(&format!("switch revision {revision}"))
            && text.contains("safe to stop: yes"),
        "{text}"
    );
    assert_eq!(
        text.matches(&format!("yes (rev {revision})")).count(),
        3,
        "{text}"
    );
    let o = admin_cli(f.members[1].admin, &["status", "--json"]).await;
    let j: Value = serde_json::from_slice(&o.stdout).expect("status --json");
    assert_eq!(
        j["cluster"]["members"].as_array().map(Vec::len),
        Some(3),
        "{j}"
    );
    assert!(
        !j["upstreams"].is_null(),
        "the status itself is still there: {j}"
    );

    // Two operators at once, through two members, to two different pools.
    let mut conflicts = 0;
    for round in 0..5 {
        let (a, b) = tokio::join!(
            switch(f.members[1].admin, "blue"),
            switch(f.members[2].admin, "red")
        );
        let codes = (a.status, b.status);
        for r in [&a, &b] {
            assert!(
                r.status == 200 || (r.status == 409 && r.json()["conflict"] == true),
                "round {round}: {} {}",
                r.status,
                r.text()
            );
        }
        assert_ne!(
            codes,
            (409, 409),
            "round {round}: nobody won: {} / {}",
            a.text(),
            b.text()
        );
        if codes.0 == 409 || codes.1 == 409 {
            conflicts += 1;
            let loser = if codes.0 == 409 { &a } else { &b };
            assert!(loser.text().contains("conflict"), "{}", loser.text());
        }
        // The fleet ends on the stored pool, every member the same.
        let stored = f.stored_pool().await.expect("a stored pool");
        let winner = if codes.0 == 200 && codes.1 == 409 {
            "blue"
        } else if codes.1 == 200 && codes.0 == 409 {
            "red"
        } else {
            stored.as_str()
        };
        assert_eq!(stored, winner, "round {round}");
        f.wait_serving(&stored).await;
        let rev = cluster_view(f.members[0].admin).await["revision"].clone();
        f.wait_all(
            |v| v["all_applied"] == true && v["revision"] == rev,
            "the round's switch applied",
        )
        .await;
        if conflicts > 0 {
            break;
        }
        // Back to green for the next round.
        assert_eq!(switch(f.members[0].admin, "green").await.status, 200);
        f.wait_serving("green").await;
    }
    assert!(conflicts > 0, "no round had two overlapping switches");

    // A reload keeps the fleet's stored pool (the file still says blue), and
    // a changed `cluster:` section is reported and not applied.
    let stored = f.stored_pool().await.expect("a stored pool");
    let m = &f.members[0];
    let text = std::fs::read_to_string(m.proxy.config_path()).expect("config");
    m.proxy
        .write_config(&text.replace("/greenlight/test", "/greenlight/other"))
        .expect("write config");
    let r = admin_call(m.admin, "POST", "/api/reload", "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains("cluster changed: restart greenlight to apply it"),
        "{}",
        r.text()
    );
    assert_eq!(serving(m.http).await, stored);
    assert_eq!(cluster_view(m.admin).await["prefix"], "/greenlight/test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_quorum_a_switch_is_refused_the_fleet_keeps_serving_and_converges_after() {
    let mut f = Fleet::start().await;
    assert_eq!(switch(f.members[0].admin, "green").await.status, 200);
    f.wait_serving("green").await;

    // One etcd member down: quorum kept, switches work.
    f.etcd.kill_member(0);
    let dead = &f.etcd.endpoints()[0];
    f.wait_all(
        |v| {
            v["cluster"] == "connected"
                && !v["endpoint"]
                    .as_str()
                    .unwrap_or(dead)
                    .ends_with(dead.as_str())
        },
        "reconnected to a live etcd member",
    )
    .await;
    let r = switch(f.members[1].admin, "blue").await;
    assert_eq!(r.status, 200, "{}", r.text());
    f.wait_serving("blue").await;

    // Two down: no quorum. A switch is refused and changes nothing anywhere.
    f.etcd.kill_member(1);
    let r = switch(f.members[2].admin, "green").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("etcd is unreachable or has no quorum"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("never switches alone"), "{}", r.text());
    assert_eq!(f.serving_now().await, ["blue", "blue", "blue"]);

    // All down: every member says so, keeps serving, refuses to switch.
    f.etcd.kill_member(2);
    f.wait_all(|v| v["cluster"] == "disconnected", "cluster: disconnected")
        .await;
    for m in &f.members {
        assert_eq!(connected_gauge(m.admin).await.as_deref(), Some("0"));
        assert!(
            m.proxy.stderr().contains("cluster: disconnected from etcd"),
            "{}",
            m.proxy.stderr()
        );
    }
    let r = switch(f.members[0].admin, "red").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(f.serving_now().await, ["blue", "blue", "blue"]);
    let o = admin_cli(f.members[0].admin, &["status"]).await;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("fleet: DISCONNECTED (") && text.contains("switches are refused"),
        "{text}"
    );

    // etcd back, and someone (etcdctl, say) stored another pool meanwhile:
    // every member reconnects and converges on the stored key.
    f.etcd.start_all();
    assert!(f.etcd.wait_healthy(CONVERGE).await, "{}", f.etcd.log());
    let mut c = f.etcd.client().await;
    etcd(c.put("/greenlight/test/active/app", "red", None)).await;
    f.wait_serving("red").await;
    f.wait_all(
        |v| v["cluster"] == "connected" && v["all_applied"] == true,
        "reconnected and applied",
    )
    .await;
    for m in &f.members {
        assert_eq!(connected_gauge(m.admin).await.as_deref(), Some("1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_wait_stops_counting_a_member_killed_mid_drain_and_names_it() {
    let mut f = Fleet::start().await;
    // A request that would hold member 2's blue for a minute.
    let http2 = f.members[2].http;
    let _slow = tokio::spawn(async move { http_get(http2, "app.test", "/slow?ms=60000").await });
    let admin2 = f.members[2].admin;
    let held = wait_until_async(deadline_in(IO_TIMEOUT), || async move {
        let r = admin_call(admin2, "GET", "/api/upstreams", "").await;
        r.json()["upstreams"][0]["pools"][0]["inflight"] == 1
    })
    .await;
    assert!(held, "the slow request is in flight on member 2's blue");
    let member2 = cluster_view(admin2).await["member"]
        .as_str()
        .expect("member id")
        .to_string();
    let admin0 = f.members[0].admin;
    let wait = tokio::spawn(async move {
        admin_cli(
            admin0,
            &["switch", "app", "green", "--wait", "--timeout", "30s"],
        )
        .await
    });
    // Member 2 drains (its request holds blue), then dies.
    let draining = wait_until_async(deadline_in(CONVERGE), || async {
        let v = cluster_view(admin0).await;
        v["members"].as_array().is_some_and(|ms| {
            ms.iter().any(|m| {
                m["id"] == member2.as_str() && m["draining"] == serde_json::json!(["app/blue"])
            })
        })
    })
    .await;
    assert!(draining, "member 2 drains blue\n{}", f.report().await);
    assert!(
        !wait.is_finished(),
        "--wait returned while member 2 still drained"
    );
    f.members[2].proxy.kill().await;
    let o = wait.await.expect("cli task");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "member {member2} left the fleet (its lease expired)"
        )),
        "{text}"
    );
    assert!(text.contains("is drained on all 2 member(s)"), "{text}");
}

const LOAD_YAML: &str = r#"
access_log: off
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
admin:
  address: "127.0.0.1:{ADMIN}"
sites:
  app:
    hosts: [app.test]
    default: true
    routes: [{path: /, upstream: app}, {path: /ws, upstream: ws}]
upstreams:
  app: {active: blue, pools: {blue: ["127.0.0.1:{BLUE}"], green: ["127.0.0.1:{GREEN}"]}}
  ws: {active: blue, pools: {blue: ["127.0.0.1:{WSBLUE}"], green: ["127.0.0.1:{WSGREEN}"]}}
cluster:
  etcd: ETCD
  prefix: /greenlight/load
  lease_ttl: 2s
"#;

/// A fleet switch of both upstreams under HTTP load through all three
/// members, with WebSockets open through each: not one request fails, the
/// open WebSockets keep working on blue (which drains), and new ones go to
/// green. The load is bounded in count and time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_switch_under_load_fails_no_request_and_cuts_no_websocket() {
    let etcd = EtcdCluster::start(3).await;
    let (blue, green) = (
        HttpUpstream::start("blue").await,
        HttpUpstream::start("green").await,
    );
    let (ws_blue, ws_green) = (
        WsUpstream::start("ws-blue").await,
        WsUpstream::start("ws-green").await,
    );
    let mut members = Vec::new();
    for _ in 0..3 {
        let ports = free_ports(2);
        let yaml = fill_ports(
            LOAD_YAML,
            &[
                ("HTTP", ports[0]),
                ("ADMIN", ports[1]),
                ("BLUE", blue.port()),
                ("GREEN", green.port()),
                ("WSBLUE", ws_blue.port()),
                ("WSGREEN", ws_green.port()),
            ],
        )
        .replace("ETCD", &etcd.yaml_list());
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
            .await
            .expect("greenlight starts");
        members.push(Member { http, admin, proxy });
    }
    let connected = wait_until_async(deadline_in(CONVERGE), || async {
        for m in &members {
            let v = cluster_view(m.admin).await;
            if v["cluster"] != "connected" || v["members"].as_array().map(Vec::len) != Some(3) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(connected, "three connected members");

    // A WebSocket through each member, on blue.
    let mut sockets = Vec::new();
    for m in &members {
        let url = format!("ws://app.test:{}/ws", m.http.port());
        let mut ws = ws_connect(&url, None).await.expect("ws");
        assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws-blue");
        sockets.push(ws);
    }

    // Load: one client per member, each request on a kept-alive connection
    // (a new one after any close), until told to stop or a bound is hit.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for m in &members {
        let (addr, stop) = (m.http, stop.clone());
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut pools) =
                (0u32, Vec::new(), std::collections::BTreeSet::new());
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let mut conn = H1Conn::connect(addr).await.ok();
            for i in 0..20_000u32 {
                if stop.load(std::sync::atomic::Ordering::Relaxed)
                    || std::time::Instant::now() > deadline
                {
                    break;
                }
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => {
                        conn = H1Conn::connect(addr).await.ok();
                        match conn.as_mut() {
                            Some(c) => c,
                            None => {
                                failed.push(format!("{i}: connect"));
                                continue;
                            }
                        }
                    }
                };
                match c.get(&format!("/load/{i}"), "app.test").await {
                    Ok(r) if r.status == 200 => {
                        ok += 1;
                        pools.insert(r.header("x-upstream").unwrap_or("?").to_string());
                        if r.header("connection")
                            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                        {
                            conn = None;
                        }
                    }
                    Ok(r) => failed.push(format!("{i}: {}", r.status)),
                    Err(e) => {
                        failed.push(format!("{i}: {e}"));
                        conn = None;
                    }
                }
            }
            (ok, failed, pools)
        }));
    }
    // Some load on blue first.
    let before = blue.request_count();
    let busy = wait_until_async(deadline_in(CONVERGE), || async {
        blue.request_count() >= before + 1000
    })
    .await;
    assert!(busy, "the load reached blue");

    for up in ["app", "ws"] {
        let r = admin_call(
            members[0].admin,
            "POST",
            &format!("/api/upstreams/{up}/switch"),
            r#"{"pool": "green"}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{up}: {}", r.text());
    }
    // The whole fleet serves green, under the same load.
    let on_green = green.request_count();
    let moved = wait_until_async(deadline_in(CONVERGE), || async {
        for m in &members {
            if serving(m.http).await != "green" {
                return false;
            }
        }
        green.request_count() >= on_green + 1000
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(moved, "the fleet did not move to green");
    let mut total = 0;
    for (i, task) in load.into_iter().enumerate() {
        let (ok, failed, pools) = task.await.expect("load task");
        assert!(
            failed.is_empty(),
            "member {i}: {} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(
            pools.contains("blue") && pools.contains("green"),
            "member {i}: {pools:?}"
        );
        total += ok;
    }
    eprintln!("{total} requests through the fleet switch, 0 failed");

    // The WebSockets opened before still talk to blue; new ones reach green.
    for (i, ws) in sockets.iter_mut().enumerate() {
        ws.send_text(&format!("still here {i}"))
            .await
            .expect("send");
        assert_eq!(
            ws.recv_text().await.expect("echo"),
            format!("still here {i}"),
            "member {i}"
        );
    }
    assert_eq!(ws_blue.open_websockets(), 3, "none was cut");
    for m in &members {
        let url = format!("ws://app.test:{}/ws", m.http.port());
        let mut ws = ws_connect(&url, None).await.expect("ws");
        assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws-green");
    }
    drop(etcd);
}

/// The dashboard of any member shows the fleet (a real browser): connected,
/// every member and whether it applied the switch and drained the old pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_fleet() {
    // First, so that a missing Chromium fails with its one line.
    let mut b = crate::support::cdp::Browser::launch(1280, 900).await;
    let f = Fleet::start().await;
    let r = switch(f.members[0].admin, "green").await;
    assert_eq!(r.status, 200, "{}", r.text());
    f.wait_all(
        |v| v["safe_to_stop"] == true,
        "switch applied and blue drained",
    )
    .await;
    b.navigate(
        &format!("http://{}/", f.members[2].admin),
        Duration::from_secs(30),
    )
    .await;
    let v = b
        .wait_for(
            "the fleet section with three members",
            "(() => { const s = document.getElementById('fleet'); return { hidden: s.hidden, \
             state: (s.querySelector('.fleet-state') || {}).textContent || '', \
             rows: [...s.querySelectorAll('tbody tr')].map((r) => r.textContent) }; })()",
            Duration::from_secs(30),
            |v| v["hidden"] == false && v["rows"].as_array().is_some_and(|r| r.len() == 3),
        )
        .await;
    let state = v["state"].as_str().unwrap_or_default();
    assert!(
        state.starts_with("connected to etcd") && state.contains("safe to stop: yes"),
        "{v:#}"
    );
    for row in v["rows"].as_array().into_iter().flatten() {
        let row = row.as_str().unwrap_or_default();
        assert!(
            row.contains("yes (revision") && row.contains(" ms"),
            "{row}"
        );
    }
    b.close().await;
}

/// etcd with authentication on: a member with the right `username` and
/// `password` connects and switches; one with a wrong password says
/// `disconnected` with etcd's reason, serves its file's pool, and refuses to
/// switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_authentication_is_used_and_a_wrong_password_is_reported() {
    let cluster = EtcdCluster::start(1).await;
    {
        let mut c = cluster.client().await;
        etcd(c.user_add("root", "root-pass", None)).await;
        etcd(c.user_grant_role("root", "root")).await;
        etcd(c.user_add("greenlight", "fleet-pass", None)).await;
        etcd(c.role_add("fleet")).await;
        let perm = etcd_client::Permission::read_write("/greenlight/").with_prefix();
        etcd(c.role_grant_permission("fleet", perm)).await;
        etcd(c.user_grant_role("greenlight", "fleet")).await;
        etcd(c.auth_enable()).await;
    }
    let (blue, green) = (
        HttpUpstream::start("blue").await,
        HttpUpstream::start("green").await,
    );
    let start = |password: &'static str| {
        let ports = free_ports(2);
        let yaml = fill_ports(
            YAML,
            &[
                ("HTTP", ports[0]),
                ("ADMIN", ports[1]),
                ("BLUE", blue.port()),
                ("GREEN", green.port()),
                ("RED", green.port()),
            ],
        )
        .replace("ETCD", &cluster.yaml_list())
        .replace(
            "  lease_ttl: 2s\n",
            &format!("  lease_ttl: 2s\n  username: greenlight\n  password: \"{password}\"\n"),
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        (yaml, http, admin)
    };
    let (yaml, http, admin) = start("fleet-pass");
    let _good = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("starts");
    let (yaml, bad_http, bad_admin) = start("wrong-pass");
    let bad = ProxyProcess::start_ready(&yaml, &[bad_http, bad_admin])
        .await
        .expect("starts");

    let ok = wait_until_async(deadline_in(CONVERGE), || async {
        cluster_view(admin).await["cluster"] == "connected"
    })
    .await;
    assert!(ok, "{}", cluster_view(admin).await);
    let r = switch(admin, "green").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ok = wait_until_async(deadline_in(CONVERGE), || async {
        serving(http).await == "green"
    })
    .await;
    assert!(ok, "the authenticated member applied its own switch");

    // Its first attempt fails with etcd's reason.
    let told = wait_until_async(deadline_in(CONVERGE), || async {
        let v = cluster_view(bad_admin).await;
        let why = v["error"].as_str().unwrap_or_default().to_ascii_lowercase();
        v["cluster"] == "disconnected" && (why.contains("auth") || why.contains("password"))
    })
    .await;
    assert!(told, "{}", cluster_view(bad_admin).await);
    assert_eq!(
        serving(bad_http).await,
        "blue",
        "the file's pool, not the fleet's"
    );
    let r = switch(bad_admin, "green").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        bad.stderr().contains("cluster:"),
        "the failure is logged: {}",
        bad.stderr()
    );
}

/// etcd whose clients must use TLS: a member given the CA that issued
/// etcd's certificate (`ca:`; bare endpoints then mean https) connects and
/// switches; one given another CA refuses the certificate and reads
/// `disconnected` with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_is_trusted_through_the_configured_ca_only() {
    let ca = crate::support::tls::TestCa::new();
    let leaf = ca.issue_files(&["127.0.0.1", "localhost"]);
    let other = crate::support::tls::TestCa::new();
    let cluster = EtcdCluster::start_tls(1, leaf.cert_path.clone(), leaf.key_path.clone()).await;
    let (blue, green) = (
        HttpUpstream::start("blue").await,
        HttpUpstream::start("green").await,
    );
    let start = |ca_path: &std::path::Path| {
        let ports = free_ports(2);
        let yaml = fill_ports(
            YAML,
            &[
                ("HTTP", ports[0]),
                ("ADMIN", ports[1]),
                ("BLUE", blue.port()),
                ("GREEN", green.port()),
                ("RED", green.port()),
            ],
        )
        .replace("ETCD", &cluster.yaml_list())
        .replace(
            "  lease_ttl: 2s\n",
            &format!("  lease_ttl: 2s\n  ca: \"{}\"\n", ca_path.display()),
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        (yaml, http, admin)
    };
    let (yaml, http, admin) = start(&ca.ca_path());
    let _good = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("starts");
    let (yaml, _, bad_admin) = start(&other.ca_path());
    let _bad = ProxyProcess::start_ready(&yaml, &[bad_admin])
        .await
        .expect("starts");

    let ok = wait_until_async(deadline_in(CONVERGE), || async {
        cluster_view(admin).await["cluster"] == "connected"
    })
    .await;
    assert!(ok, "{}", cluster_view(admin).await);
    let r = switch(admin, "green").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ok = wait_until_async(deadline_in(CONVERGE), || async {
        serving(http).await == "green"
    })
    .await;
    assert!(ok, "the member that trusts etcd's CA switched");

    let refused = wait_until_async(deadline_in(CONVERGE), || async {
        let v = cluster_view(bad_admin).await;
        v["cluster"] == "disconnected" && v["error"] != "not connected yet"
    })
    .await;
    assert!(refused, "{}", cluster_view(bad_admin).await);
    let why = cluster_view(bad_admin).await["error"].to_string();
    assert!(
        why.contains("certificate"),
        "the reason names the certificate: {why}"
    );
    let r = switch(bad_admin, "green").await;
    assert_eq!(r.status, 503, "{}", r.text());
}

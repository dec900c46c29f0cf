//! Fleet mode against a real 3-member etcd cluster (Debian's etcd, on loopback
//! free ports) and three real greenlight processes sharing blue/green/red
//! upstreams: a switch through one member reaches all three; two concurrent
//! switches to different pools give one winner and one conflict, never a
//! mixed fleet; with etcd's quorum lost or etcd gone a switch is refused and
//! every member keeps serving, and when etcd is back they converge on the
//! stored key; `switch --wait` waits for every member and stops counting one
//! killed mid-drain once its lease expires (more in `cluster_more.rs`).
//! Every wait is a bounded poll.

use crate::support::etcd::EtcdCluster;
use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) const YAML: &str = r#"
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
pub(crate) const CONVERGE: Duration = Duration::from_secs(15);

pub(crate) struct Member {
    pub(crate) http: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) proxy: ProxyProcess,
}

pub(crate) struct Fleet {
    etcd: EtcdCluster,
    _pools: Vec<HttpUpstream>,
    pub(crate) members: Vec<Member>,
}

/// One greenlight of a fleet on `template`: its own `{HTTP}` and `{ADMIN}`
/// ports, `fills` (upstream ports), `ETCD` replaced by `etcd`'s endpoints;
/// started and listening.
pub(crate) async fn start_member(
    template: &str,
    etcd: &EtcdCluster,
    fills: &[(&str, u16)],
) -> Member {
    let ports = free_ports(2);
    let mut all = vec![("HTTP", ports[0]), ("ADMIN", ports[1])];
    all.extend_from_slice(fills);
    let yaml = fill_ports(template, &all).replace("ETCD", &etcd.yaml_list());
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("greenlight starts");
    Member { http, admin, proxy }
}

/// Polls every member's `/api/cluster` (at most [`CONVERGE`]) until `cond`
/// holds for all of them.
pub(crate) async fn all_members(members: &[Member], cond: impl Fn(&Value) -> bool) -> bool {
    wait_until_async(deadline_in(CONVERGE), || async {
        for m in members {
            if !cond(&cluster_view(m.admin).await) {
                return false;
            }
        }
        true
    })
    .await
}

/// Polls until the slow request is in flight on blue of the member whose
/// admin API is `admin`.
async fn blue_holds_one(admin: SocketAddr) {
    let held = wait_until_async(deadline_in(IO_TIMEOUT), || async move {
        let r = admin_call(admin, "GET", "/api/upstreams", "").await;
        r.json()["upstreams"][0]["pools"][0]["inflight"] == 1
    })
    .await;
    assert!(held, "the slow request is in flight on member 2's blue");
}

impl Fleet {
    pub(crate) async fn start() -> Fleet {
        let etcd = EtcdCluster::start(3).await;
        let pools = vec![
            HttpUpstream::start("blue").await,
            HttpUpstream::start("green").await,
            HttpUpstream::start("red").await,
        ];
        let fills = [
            ("BLUE", pools[0].port()),
            ("GREEN", pools[1].port()),
            ("RED", pools[2].port()),
        ];
        let mut members = Vec::new();
        for _ in 0..3 {
            members.push(start_member(YAML, &etcd, &fills).await);
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
    pub(crate) async fn wait_all(&self, cond: impl Fn(&Value) -> bool, what: &str) {
        let ok = all_members(&self.members, cond).await;
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
pub(crate) async fn etcd<T>(
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> T {
    tokio::time::timeout(IO_TIMEOUT, fut)
        .await
        .expect("etcd answers in time")
        .expect("etcd answers")
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().rev().take(15).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

pub(crate) async fn serving(http: SocketAddr) -> String {
    match http_get(http, "app.test", "/").await {
        Ok(r) if r.status == 200 => r.header("x-upstream").unwrap_or("").to_string(),
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e}"),
    }
}

pub(crate) async fn admin_call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Response {
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

pub(crate) async fn cluster_view(admin: SocketAddr) -> Value {
    let r = admin_call(admin, "GET", "/api/cluster", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

pub(crate) async fn switch(admin: SocketAddr, pool: &str) -> Response {
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
    blue_holds_one(admin2).await;
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
    blue_holds_one(admin2).await;
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

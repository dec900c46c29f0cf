//! Fleet mode, continued (`cluster.rs` has the fixture): a switch of the
//! fleet under HTTP load with WebSockets open fails no request and cuts no
//! WebSocket; the dashboard of any member shows the fleet (a real browser);
//! with etcd authentication on, the right password connects and a wrong one
//! reads `disconnected` with etcd's reason; over TLS only the configured CA
//! is trusted. Every wait is a bounded poll; the load is bounded in count
//! and time.

use crate::cluster::{
    CONVERGE, Fleet, YAML, admin_call, all_members, cluster_view, etcd, serving, start_member,
    switch,
};
use crate::support::etcd::EtcdCluster;
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

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
    let fills = [
        ("BLUE", blue.port()),
        ("GREEN", green.port()),
        ("WSBLUE", ws_blue.port()),
        ("WSGREEN", ws_green.port()),
    ];
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(start_member(LOAD_YAML, &etcd, &fills).await);
    }
    let connected = all_members(&members, |v| {
        v["cluster"] == "connected" && v["members"].as_array().map(Vec::len) == Some(3)
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
    let creds = |password: &str| format!("  username: greenlight\n  password: \"{password}\"\n");
    let (_good, http, admin) = member_with(&cluster, &blue, &green, &creds("fleet-pass")).await;
    let (bad, bad_http, bad_admin) =
        member_with(&cluster, &blue, &green, &creds("wrong-pass")).await;
    connects_and_switches(
        http,
        admin,
        "the authenticated member applied its own switch",
    )
    .await;

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
    let ca_line = |path: std::path::PathBuf| format!("  ca: \"{}\"\n", path.display());
    let (_good, http, admin) = member_with(&cluster, &blue, &green, &ca_line(ca.ca_path())).await;
    let (_bad, _, bad_admin) =
        member_with(&cluster, &blue, &green, &ca_line(other.ca_path())).await;
    connects_and_switches(http, admin, "the member that trusts etcd's CA switched").await;

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

/// One member of `cluster` with `cluster_extra` added to its `cluster:`
/// section (credentials, a CA), started and listening.
async fn member_with(
    cluster: &EtcdCluster,
    blue: &HttpUpstream,
    green: &HttpUpstream,
    cluster_extra: &str,
) -> (ProxyProcess, SocketAddr, SocketAddr) {
    let template = YAML.replace(
        "  lease_ttl: 2s\n",
        &format!("  lease_ttl: 2s\n{cluster_extra}"),
    );
    let fills = [
        ("BLUE", blue.port()),
        ("GREEN", green.port()),
        ("RED", green.port()),
    ];
    let m = start_member(&template, cluster, &fills).await;
    (m.proxy, m.http, m.admin)
}

/// The member at `http`/`admin` connects to etcd and its switch to green
/// is applied (`why`: which member, for the failure message).
async fn connects_and_switches(http: SocketAddr, admin: SocketAddr, why: &str) {
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
    assert!(ok, "{why}");
}

//! Client limits: 414 for an overlong target, 431 for too many or too large
//! header fields, an idle keep-alive connection closed at its timeout.

use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

async fn start() -> (HttpUpstream, SocketAddr, ProxyProcess) {
    let app = HttpUpstream::start("app").await;
    let ports = free_ports(2);
    let yaml = format!(
        "limits:\n  max_uri_length: 1k\n  max_headers: 20\n  max_header_size: 4k\n  keepalive_timeout: 1s\nlisteners:\n  http: {{address: \"127.0.0.1:{}\"}}\nadmin: {{address: \"127.0.0.1:{}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
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

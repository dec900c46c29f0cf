//! Per-route metrics through the real binary: requests and latency carry a
//! `route` label naming the route's `path:` as written in the config (never
//! the request's path), answers given before a route is chosen count under
//! `route="-"`, and a reload that drops a route drops its series.

use crate::support::exposition::{Exposition, check_exposition};
use crate::support::*;
use std::net::SocketAddr;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  shop:
    hosts: [shop.test]
    routes:
      - {path: /, upstream: app}
      - {path: /api/, upstream: app, upstream_path: /}
      - {path: "~* [.]png$", upstream: app}
      - {path: "= /ping", respond: {body: "pong\n"}}
upstreams:
  app: {active: blue, pools: {blue: ["127.0.0.1:{UP}"]}}
"#;

/// `/metrics`, read strictly (label values here hold `=`, `*`, `[`, which
/// prometheus-parse misreads).
async fn scrape(admin: SocketAddr) -> Exposition {
    let text = metrics_text(admin).await;
    check_exposition(&text).unwrap_or_else(|e| panic!("/metrics: {e}\n{text}"))
}

fn requests(s: &Exposition, route: &str, class: &str) -> f64 {
    s.value(
        "greenlight_requests_total",
        &[("site", "shop"), ("route", route), ("class", class)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_latency_are_labelled_with_the_configured_route() {
    let up = HttpUpstream::start("blue").await;
    let ports = free_ports(2);
    let (http, admin): (SocketAddr, SocketAddr) = (
        ([127, 0, 0, 1], ports[0]).into(),
        ([127, 0, 0, 1], ports[1]).into(),
    );
    let yaml = fill_ports(
        YAML,
        &[("HTTP", ports[0]), ("ADMIN", ports[1]), ("UP", up.port())],
    );
    let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("starts");

    for path in ["/api/users", "/api/orders/7", "/api/x?y=1"] {
        assert_eq!(
            http_get(http, "shop.test", path).await.expect("api").status,
            200
        );
    }
    let r = http_get(http, "shop.test", "/api/status/503")
        .await
        .expect("503");
    assert_eq!(r.status, 503);
    assert_eq!(
        http_get(http, "shop.test", "/img/a.PNG")
            .await
            .expect("png")
            .status,
        200
    );
    assert_eq!(
        http_get(http, "shop.test", "/about")
            .await
            .expect("root")
            .status,
        200
    );
    let ping = http_get(http, "shop.test", "/ping").await.expect("ping");
    assert_eq!((ping.status, ping.text().as_str()), (200, "pong\n"));
    // `/api` is a prefix route without its slash: nginx's 301 to `/api/`,
    // answered before a route is chosen.
    assert_eq!(
        http_get(http, "shop.test", "/api")
            .await
            .expect("301")
            .status,
        301
    );

    eventually(IO_TIMEOUT, "every request is counted", || async {
        let s = scrape(admin).await;
        requests(&s, "/api/", "2xx") == 3.0
            && requests(&s, "/api/", "5xx") == 1.0
            && requests(&s, "~* [.]png$", "2xx") == 1.0
            && requests(&s, "/", "2xx") == 1.0
            && requests(&s, "= /ping", "2xx") == 1.0
            && requests(&s, "-", "3xx") == 1.0
    })
    .await;
    let s = scrape(admin).await;
    // The route that answers itself has no upstream.
    assert_eq!(
        s.value(
            "greenlight_requests_total",
            &[("route", "= /ping"), ("upstream", "-"), ("pool", "-")]
        ),
        1.0
    );
    assert_eq!(
        s.value(
            "greenlight_requests_total",
            &[("route", "/api/"), ("upstream", "app"), ("pool", "blue")]
        ),
        4.0
    );
    let count = |route| {
        s.value(
            "greenlight_request_duration_seconds_count",
            &[("site", "shop"), ("route", route), ("upstream", "app")],
        )
    };
    assert_eq!(count("/api/"), 4.0);
    assert_eq!(count("~* [.]png$"), 1.0);
    let text = metrics_text(admin).await;
    for raw in ["/api/users", "/api/orders", "/img/a.PNG", "/about"] {
        assert!(!text.contains(raw), "a request path became a label: {raw}");
    }

    // A reload that drops `/api/` drops its series; the others stay.
    proxy
        .write_config(&yaml.replace(
            "      - {path: /api/, upstream: app, upstream_path: /}\n",
            "",
        ))
        .expect("write config");
    let out = admin_cli(admin, &["reload"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = metrics_text(admin).await;
    assert!(!text.contains("route=\"/api/\""), "{text}");
    assert!(text.contains("route=\"= /ping\""), "{text}");
    let after = scrape(admin).await;
    assert_eq!(requests(&after, "~* [.]png$", "2xx"), 1.0);
}

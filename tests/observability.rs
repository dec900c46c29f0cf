//! Observability through the real binary: /metrics is valid text format
//! line by line (a strict check, as a standard Prometheus parser skips what
//! it cannot read), agrees with that parser, and moves with traffic,
//! WebSockets and switches; random paths and hosts add no series; the access
//! log's combined line matches nginx's format exactly, its JSON form parses,
//! and SIGUSR1 reopens it.

use crate::support::exposition::check_exposition;
use crate::support::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;

struct Obs {
    web: HttpUpstream,
    green: HttpUpstream,
    ws: WsUpstream,
    http: SocketAddr,
    admin: SocketAddr,
    proxy: ProxyProcess,
}

async fn start(access_log: &str) -> Obs {
    let web = HttpUpstream::start("web").await;
    let green = HttpUpstream::start("green").await;
    let ws = WsUpstream::start("ws").await;
    let ports = free_ports(2);
    let yaml = format!(
        r#"
access_log: {access_log}
listeners:
  http: {{address: "127.0.0.1:{http}"}}
admin: {{address: "127.0.0.1:{admin}"}}
sites:
  one:
    hosts: [one.test]
    routes: [{{path: /, upstream: web}}, {{path: /ws, upstream: ws}}]
  two:
    hosts: [two.test]
    routes: [{{path: /, upstream: web}}]
upstreams:
  web:
    active: blue
    pools: {{blue: ["127.0.0.1:{w}"], green: ["127.0.0.1:{g}"]}}
  ws: {{active: main, pools: {{main: ["127.0.0.1:{s}"]}}}}
"#,
        http = ports[0],
        admin = ports[1],
        w = web.port(),
        g = green.port(),
        s = ws.port()
    );
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("starts");
    Obs {
        web,
        green,
        ws,
        http,
        admin,
        proxy,
    }
}

/// Scrapes `/metrics` and checks the text strictly ([`check_exposition`])
/// before handing it to prometheus-parse, which skips lines it cannot parse
/// instead of failing; so the two must also agree on how many samples there
/// are.
async fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let r = c
        .get("/metrics", &admin.to_string())
        .await
        .expect("metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    let text = r.text();
    let strict = check_exposition(&text)
        .unwrap_or_else(|e| panic!("/metrics is not valid text format: {e}\n{text}"));
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    // prometheus-parse folds the `_bucket` lines of one histogram series (and
    // the quantile lines of one summary series) into one sample.
    assert_eq!(
        scrape.samples.len(),
        strict.sample_lines - strict.grouped_lines + strict.groups,
        "prometheus-parse skipped or merged sample lines\n{text}"
    );
    let grouped: usize = scrape
        .samples
        .iter()
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(h) => h.len(),
            prometheus_parse::Value::Summary(q) => q.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(grouped, strict.grouped_lines, "bucket lines lost\n{text}");
    assert!(strict.sample_lines > 0, "no samples at all\n{text}");
    scrape
}

#[test]
fn the_exposition_check_is_strict() {
    let head = "# HELP a_total A.\n# TYPE a_total counter\n";
    let ok =
        format!("{head}a_total{{x=\"1\",y=\"q\\\"\\n\\\\\"}} 3\na_total{{x=\"2\",}} 1e3 1700\n");
    let got = check_exposition(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.sample_lines, 2);
    let h = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n";
    let got = check_exposition(h).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((got.sample_lines, got.grouped_lines, got.groups), (4, 2, 1));
    for bad in [
        "a_total 1\n".to_string(),
        "# HELP a_total A.\na_total 1\n".into(),
        "# TYPE a_total counter\na_total 1\n".into(),
        format!("{head}a-total 1\n"),
        format!("{head}a_total{{x=\"1}} 1\n"),
        format!("{head}a_total{{x=1}} 1\n"),
        format!("{head}a_total{{x=\"\\t\"}} 1\n"),
        format!("{head}a_total{{1x=\"1\"}} 1\n"),
        format!("{head}a_total{{x=\"1\"y=\"2\"}} 1\n"),
        format!("{head}a_total{{x=\"1\",x=\"2\"}} 1\n"),
        format!("{head}a_total one\n"),
        format!("{head}a_total 0x10\n"),
        format!("{head}a_total 1 2 3\n"),
        format!("{head}a_total 1\na_total 2\n"),
        format!("{head}a_total{{}}1\n"),
        "# HELP a_total A.\n# TYPE a_total countr\na_total 1\n".into(),
        "# HELP h A.\n# TYPE h histogram\nh_bucket 1\n".into(),
        format!("{head}a_total 1\n# HELP b B.\n# TYPE b gauge\nb 1\na_total{{x=\"1\"}} 2\n"),
        format!("{head}a_total 1\n# HELP a_total again.\n"),
    ] {
        assert!(check_exposition(&bad).is_err(), "accepted {bad:?}");
    }
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn series(s: &prometheus_parse::Scrape) -> BTreeSet<String> {
    s.samples
        .iter()
        .filter(|x| !x.metric.starts_with("process_"))
        .map(|x| {
            let mut l: Vec<String> = x.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            l.sort();
            format!("{}{{{}}}", x.metric, l.join(","))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic_websockets_and_switches() {
    let o = start("off").await;
    let before = scrape(o.admin).await;
    let ok = [
        ("site", "one"),
        ("upstream", "web"),
        ("pool", "blue"),
        ("class", "2xx"),
    ];
    assert_eq!(value(&before, "greenlight_requests_total", &ok), 0.0);
    for i in 0..5 {
        assert_eq!(
            http_get(o.http, "one.test", &format!("/{i}"))
                .await
                .expect("ok")
                .status,
            200
        );
    }
    for _ in 0..3 {
        http_get(o.http, "two.test", "/status/503")
            .await
            .expect("503");
    }
    // A request is counted when it is logged, just after its last byte went
    // out: the client can be a moment ahead of the counter.
    eventually(IO_TIMEOUT, "every request is counted", || async {
        let s = scrape(o.admin).await;
        value(&s, "greenlight_requests_total", &ok) == 5.0
            && value(
                &s,
                "greenlight_requests_total",
                &[("site", "two"), ("class", "5xx")],
            ) == 3.0
    })
    .await;
    let after = scrape(o.admin).await;
    assert!(
        value(
            &after,
            "greenlight_request_duration_seconds_count",
            &[("site", "one")]
        ) >= 5.0
    );
    assert_eq!(value(&after, "greenlight_config_generation", &[]), 1.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 0.0);

    let url = format!("ws://one.test:{}/ws", o.http.port());
    let mut ws = ws_connect(&url, None).await.expect("ws");
    ws.recv_text().await.expect("hello");
    let open = scrape(o.admin).await;
    assert_eq!(
        value(&open, "greenlight_websockets_open", &[("upstream", "ws")]),
        1.0
    );
    assert_eq!(
        value(&open, "greenlight_pool_websockets", &[("upstream", "ws")]),
        1.0
    );
    ws.close(1000).await.expect("close");
    assert!(o.ws.wait_for_open(0, IO_TIMEOUT).await);
    eventually(IO_TIMEOUT, "the WebSocket gauge goes down", || async {
        value(
            &scrape(o.admin).await,
            "greenlight_websockets_open",
            &[("upstream", "ws")],
        ) == 0.0
    })
    .await;

    assert_eq!(o.web.request_count(), 8, "blue served every request");
    assert_eq!(
        o.green.request_count(),
        0,
        "green is idle before the switch"
    );

    let blue_active = [("upstream", "web"), ("pool", "blue"), ("state", "active")];
    assert_eq!(value(&open, "greenlight_pool_state", &blue_active), 1.0);
    let o2 = run_cli(&[
        "switch",
        "web",
        "green",
        "--wait",
        "--admin",
        &o.admin.to_string(),
    ]);
    assert_eq!(
        o2.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let switched = scrape(o.admin).await;
    assert_eq!(value(&switched, "greenlight_pool_state", &blue_active), 0.0);
    assert_eq!(
        value(
            &switched,
            "greenlight_pool_state",
            &[("upstream", "web"), ("pool", "blue"), ("state", "drained")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &switched,
            "greenlight_switches_total",
            &[("upstream", "web"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(value(&switched, "greenlight_config_generation", &[]), 2.0);
    // After the switch traffic goes to green, and is counted under green.
    let r = http_get(o.http, "one.test", "/after-switch")
        .await
        .expect("ok");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("green"));
    assert_eq!(o.green.request_count(), 1);
    let green_ok = [
        ("site", "one"),
        ("upstream", "web"),
        ("pool", "green"),
        ("class", "2xx"),
    ];
    eventually(IO_TIMEOUT, "the request is counted under green", || async {
        value(
            &scrape(o.admin).await,
            "greenlight_requests_total",
            &green_ok,
        ) == 1.0
    })
    .await;
    assert_eq!(
        value(&scrape(o.admin).await, "greenlight_requests_total", &ok),
        5.0,
        "blue's count did not move"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_and_hosts_add_no_series() {
    let o = start("off").await;
    // Warm every series a request can create: proxied, 404 no site, 404 no route.
    http_get(o.http, "one.test", "/").await.expect("ok");
    http_get(o.http, "nobody.test", "/").await.expect("404");
    eventually(IO_TIMEOUT, "the warm-up requests are counted", || async {
        let s = scrape(o.admin).await;
        value(&s, "greenlight_requests_total", &[("site", "-")]) == 1.0
            && value(&s, "greenlight_requests_total", &[("site", "one")]) == 1.0
    })
    .await;
    let base = series(&scrape(o.admin).await);
    let mut c = H1Conn::connect(o.http).await.expect("connect");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..5000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let host = if i % 2 == 0 {
            format!("h{seed:x}.test")
        } else {
            "one.test".into()
        };
        let r = c.get(&format!("/p/{seed:x}"), &host).await.expect("answer");
        assert!(r.status == 200 || r.status == 404);
        if c.server_will_close() {
            c = H1Conn::connect(o.http).await.expect("reconnect");
        }
    }
    let after = series(&scrape(o.admin).await);
    let new: Vec<&String> = after.difference(&base).collect();
    assert!(new.is_empty(), "new series appeared: {new:?}");
    assert!(o.web.request_count() >= 2500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combined_access_log_line_is_nginx_exactly_and_sigusr1_reopens_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("access.log");
    let mut o = start(&format!(
        "{{path: \"{}\", format: combined}}",
        path.display()
    ))
    .await;
    let mut c = H1Conn::connect(o.http).await.expect("connect");
    let r = c
        .request(
            "GET",
            "/hello?x=1",
            "one.test",
            &[
                ("User-Agent", "curl/8.0 \"quoted\""),
                ("Referer", "http://ref.test/"),
            ],
            b"",
        )
        .await
        .expect("ok");
    let body_len = r.body.len();
    let want_tail = format!(
        "\"GET /hello?x=1 HTTP/1.1\" 200 {body_len} \"http://ref.test/\" \"curl/8.0 \\x22quoted\\x22\""
    );
    eventually(IO_TIMEOUT, "the line is written", || async {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("GET /hello"))
    })
    .await;
    let text = std::fs::read_to_string(&path).expect("log");
    let line = text
        .lines()
        .find(|l| l.contains("GET /hello"))
        .expect("line");
    // 127.0.0.1 - - [25/Nov/2026:16:54:03 +0000] "GET ..." 200 N "ref" "ua"
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with(&want_tail),
        "{line}\nwanted tail: {want_tail}"
    );
    let ts = &line[line.find('[').expect("[") + 1..line.find(']').expect("]")];
    assert_eq!(ts.len(), 26, "dd/Mon/yyyy:hh:mm:ss +0000: {ts}");
    assert!(ts.ends_with(" +0000"));

    // logrotate: move the file, signal, and the next line lands in a new file.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).expect("rotate");
    o.proxy.signal("USR1").expect("usr1");
    eventually(IO_TIMEOUT, "a fresh file receives new lines", || async {
        let _ = http_get(o.http, "one.test", "/after-rotate").await;
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("/after-rotate"))
    })
    .await;
    assert!(
        !std::fs::read_to_string(&rotated)
            .expect("old")
            .contains("/after-rotate")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_access_log_parses_and_names_the_route() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("access.json");
    let o = start(&format!("{{path: \"{}\", format: json}}", path.display())).await;
    http_get(o.http, "one.test", "/json").await.expect("ok");
    eventually(IO_TIMEOUT, "written", || async {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("/json"))
    })
    .await;
    let text = std::fs::read_to_string(&path).expect("log");
    let v: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("line")).expect("json");
    assert_eq!(v["site"], "one");
    assert_eq!(v["upstream"], "web");
    assert_eq!(v["pool"], "blue");
    assert_eq!(v["status"], 200);
    assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let seen = o.web.last_request().expect("upstream");
    assert_eq!(
        seen.header("x-request-id"),
        v["request_id"].as_str(),
        "the same id went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_client_connections_are_gauged_by_listener_and_protocol() {
    let o = start("off").await;
    let gauge = |s: &prometheus_parse::Scrape, proto: &str| {
        value(
            s,
            "greenlight_downstream_connections",
            &[("listener", "http"), ("protocol", proto)],
        )
    };
    let mut a = H1Conn::connect(o.http).await.expect("a");
    let mut b = H1Conn::connect(o.http).await.expect("b");
    assert_eq!(a.get("/a", "one.test").await.expect("a").status, 200);
    assert_eq!(b.get("/b", "one.test").await.expect("b").status, 200);
    // Idle keep-alive connections still count: the scrape itself is on the admin listener.
    assert_eq!(gauge(&scrape(o.admin).await, "h1"), 2.0);
    drop(a);
    drop(b);
    eventually(
        IO_TIMEOUT,
        "closed connections are gone from the gauge",
        || async { gauge(&scrape(o.admin).await, "h1") == 0.0 },
    )
    .await;
}

/// An upgraded WebSocket runs on a task of its own once the 101 is out (see
/// `src/proxy/tunnel.rs`): its client connection must still be counted, and
/// its access-log line is written when it closes, with the bytes of both
/// directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_counted_while_open_and_logged_when_it_closes() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("access.json");
    let o = start(&format!("{{path: \"{}\", format: json}}", path.display())).await;
    let gauge = |s: &prometheus_parse::Scrape| {
        value(
            s,
            "greenlight_downstream_connections",
            &[("listener", "http"), ("protocol", "h1")],
        )
    };
    let url = format!("ws://one.test:{}/ws/logged", o.http.port());
    let mut ws = ws_connect(&url, None).await.expect("ws");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws");
    ws.send_text("0123456789").await.expect("send");
    assert_eq!(ws.recv_text().await.expect("echo"), "0123456789");
    assert_eq!(
        gauge(&scrape(o.admin).await),
        1.0,
        "the WebSocket's connection counts"
    );
    // Lines are written in order by one writer: once a request made after
    // the upgrade is in the file, a line for the WebSocket would be too.
    http_get(o.http, "one.test", "/after-upgrade")
        .await
        .expect("ok");
    eventually(IO_TIMEOUT, "the later request is logged", || async {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("/after-upgrade"))
    })
    .await;
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("/ws/logged"),
        "an open WebSocket is not logged yet"
    );
    ws.close(1000).await.expect("close");
    eventually(IO_TIMEOUT, "the WebSocket is logged", || async {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("/ws/logged"))
    })
    .await;
    let text = std::fs::read_to_string(&path).expect("log");
    let line = text
        .lines()
        .find(|l| l.contains("/ws/logged"))
        .expect("line");
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(v["status"], 101);
    assert_eq!(v["upstream"], "ws");
    // Client to app: the 10-byte text frame (2 + 4 mask + 10) and the close
    // frame with its code (2 + 4 + 2); app to client: "hello from ws"
    // (2 + 13), the echo (2 + 10) and the close reply (2 + 2).
    let (bytes_in, bytes_out) = (
        v["websocket"]["bytes_in"].as_u64().expect("bytes_in"),
        v["websocket"]["bytes_out"].as_u64().expect("bytes_out"),
    );
    assert_eq!(bytes_in, 16 + 8, "bytes from the client");
    assert_eq!(bytes_out, 15 + 12 + 4, "bytes to the client");
    assert!(v["websocket"]["duration_seconds"].as_f64().is_some());
    eventually(
        IO_TIMEOUT,
        "its connection is gone from the gauge",
        || async { gauge(&scrape(o.admin).await) == 0.0 },
    )
    .await;
}

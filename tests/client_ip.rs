//! The real client IP through the real binary: `trusted_proxies` and
//! `client_ip_from` (spoofing from an untrusted peer, the recursive walk,
//! other headers, site overrides), and PROXY protocol v1/v2 listeners, plain
//! and TLS, HTTP/1.1 and h2. The upstream reports the `X-Forwarded-For` and
//! `X-Real-IP` it received; the JSON access log reports `client_ip`.
//! Everything is on loopback: a peer is made "untrusted" by trusting only
//! ranges that exclude 127.0.0.1.

use crate::support::*;
use std::net::SocketAddr;
use std::path::PathBuf;

/// greenlight with a plain listener, a TLS one, and the same two with
/// `proxy_protocol: true`, in front of one recording upstream.
struct RealIp {
    _ca: TestCa,
    root: String,
    web: HttpUpstream,
    http: SocketAddr,
    https: SocketAddr,
    pp_http: SocketAddr,
    pp_https: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
    proxy: ProxyProcess,
}

/// `top` is YAML put at the top level (the client-IP keys).
async fn start(top: &str) -> RealIp {
    let ca = TestCa::new();
    ca.issue_to(&["app.test"], ca.dir(), "app");
    let web = HttpUpstream::start("web").await;
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("access.json");
    let p = free_ports(5);
    let yaml = format!(
        r#"
{top}
access_log: {{path: "{log}", format: json}}
listeners:
  http: {{address: "127.0.0.1:{p0}"}}
  https: {{address: "127.0.0.1:{p1}", tls: true}}
  pp_http: {{address: "127.0.0.1:{p2}", proxy_protocol: true}}
  pp_https: {{address: "127.0.0.1:{p3}", tls: true, proxy_protocol: true}}
admin: {{address: "127.0.0.1:{p4}"}}
sites:
  app:
    hosts: [app.test]
    tls: {{cert: "{dir}/app.crt", key: "{dir}/app.key"}}
    plain_http: serve
    routes: [{{path: /, upstream: web}}]
  cf:
    hosts: [cf.test]
    client_ip_from: cf-connecting-ip
    routes: [{{path: /, upstream: web}}]
  real:
    hosts: [real.test]
    client_ip_from: X-Real-IP
    routes: [{{path: /, upstream: web}}]
  strict:
    hosts: [strict.test]
    trusted_proxies: [10.0.0.0/8]
    routes:
      - {{path: /, upstream: web}}
      - path: /check/
        upstream: web
        checks: [{{if: "$remote_addr = 203.0.113.7", respond: {{status: 403}}}}]
upstreams:
  web: {{active: main, pools: {{main: ["127.0.0.1:{w}"]}}}}
"#,
        log = log.display(),
        dir = ca.dir().display(),
        p0 = p[0],
        p1 = p[1],
        p2 = p[2],
        p3 = p[3],
        p4 = p[4],
        w = web.port(),
    );
    let addr = |i: usize| -> SocketAddr { ([127, 0, 0, 1], p[i]).into() };
    let proxy = ProxyProcess::start_ready(&yaml, &[addr(0), addr(1), addr(2), addr(3)])
        .await
        .expect("greenlight starts");
    RealIp {
        root: ca.cert_pem(),
        _ca: ca,
        web,
        http: addr(0),
        https: addr(1),
        pp_http: addr(2),
        pp_https: addr(3),
        admin: addr(4),
        log,
        _dir: dir,
        proxy,
    }
}

impl RealIp {
    /// What the upstream saw for the request to `path`.
    fn seen(&self, path: &str) -> RecordedRequest {
        self.web
            .requests()
            .into_iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("the upstream got no request for {path}"))
    }

    /// The access log's `client_ip` for the request to `path`.
    async fn logged_client(&self, path: &str) -> String {
        let needle = format!("\"path\":\"{path}\"");
        eventually(IO_TIMEOUT, "the access log line is written", || async {
            std::fs::read_to_string(&self.log).is_ok_and(|t| t.contains(&needle))
        })
        .await;
        let text = std::fs::read_to_string(&self.log).expect("log");
        let line = text.lines().find(|l| l.contains(&needle)).expect("line");
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        v["client_ip"].as_str().unwrap_or("<none>").to_string()
    }

    /// One HTTP/1.1 GET on the plain listener with `headers`.
    async fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) {
        let mut c = H1Conn::connect(self.http).await.expect("connect");
        let r = c
            .request("GET", path, host, headers, b"")
            .await
            .expect("response");
        assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_choose_its_client_ip() {
    // 127.0.0.1 is not in the trusted range: every header it sends is a claim.
    let s = start("trusted_proxies: [10.0.0.0/8, \"fd00::/8\"]").await;
    let spoof = [
        ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
        ("X-Real-IP", "198.51.100.9"),
        ("CF-Connecting-IP", "198.51.100.10"),
        ("Forwarded", "for=198.51.100.11"),
    ];
    s.get("app.test", "/spoof", &spoof).await;
    let seen = s.seen("/spoof");
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 10.0.0.2, 127.0.0.1"),
        "the claim is kept for the record, the peer appended"
    );
    assert_eq!(
        seen.header("x-real-ip"),
        None,
        "a client's X-Real-IP is dropped"
    );
    assert_eq!(seen.header("forwarded"), None);
    assert_eq!(s.logged_client("/spoof").await, "127.0.0.1");

    // Another header named by a site is not believed either.
    s.get("cf.test", "/spoof-cf", &spoof).await;
    assert_eq!(s.logged_client("/spoof-cf").await, "127.0.0.1");
    s.get("real.test", "/spoof-real", &spoof).await;
    assert_eq!(s.seen("/spoof-real").header("x-real-ip"), None);
    assert_eq!(s.logged_client("/spoof-real").await, "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_peer_names_the_client_through_several_trusted_hops() {
    let s =
        start("trusted_proxies: [127.0.0.1, 10.0.0.0/8]\nclient_ip_from: x-forwarded-for").await;
    // Right to left: 10.0.0.3 and 10.0.0.2 are trusted hops, 203.0.113.7 is
    // the client; 6.6.6.6 is whatever the client itself claimed.
    let xff = "6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3";
    s.get("app.test", "/hops", &[("X-Forwarded-For", xff)])
        .await;
    assert_eq!(
        s.seen("/hops").header("x-forwarded-for"),
        Some("6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3, 203.0.113.7"),
        "the received list, then the client greenlight believes"
    );
    assert_eq!(s.logged_client("/hops").await, "203.0.113.7");

    // A `Connection` that names other fields leaves the list to pass on
    // (the field the walk read is what is appended to); one that names
    // X-Forwarded-For is refused (Pingora's rule: a client may not have a
    // proxy drop the header that says who it is) and reaches no upstream.
    let xff = ("X-Forwarded-For", "198.51.100.1, 203.0.113.7");
    s.get(
        "app.test",
        "/other",
        &[("Connection", "keep-alive, X-Other"), xff],
    )
    .await;
    assert_eq!(
        s.seen("/other").header("x-forwarded-for"),
        Some("198.51.100.1, 203.0.113.7, 203.0.113.7")
    );
    assert_eq!(s.logged_client("/other").await, "203.0.113.7");
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    let r = c
        .request(
            "GET",
            "/named",
            "app.test",
            &[("Connection", "X-Forwarded-For"), xff],
            b"",
        )
        .await
        .expect("response");
    assert_eq!(r.status, 400);
    assert!(s.web.requests().iter().all(|r| r.path != "/named"));

    // All trusted: the leftmost. Several header fields are one list.
    s.get(
        "app.test",
        "/all-trusted",
        &[
            ("X-Forwarded-For", "10.9.9.9"),
            ("X-Forwarded-For", "10.0.0.2"),
        ],
    )
    .await;
    assert_eq!(s.logged_client("/all-trusted").await, "10.9.9.9");
    assert_eq!(
        s.seen("/all-trusted").header("x-forwarded-for"),
        Some("10.9.9.9, 10.0.0.2, 10.9.9.9"),
        "both fields, in order, then the client"
    );

    // IPv6 and v4-mapped entries.
    s.get(
        "app.test",
        "/v6",
        &[("X-Forwarded-For", "2001:db8::7, ::ffff:10.0.0.2")],
    )
    .await;
    assert_eq!(s.logged_client("/v6").await, "2001:db8::7");
    assert_eq!(
        s.seen("/v6").header("x-forwarded-for"),
        Some("2001:db8::7, ::ffff:10.0.0.2, 2001:db8::7")
    );

    // A malformed entry ends the walk at the last address read.
    s.get(
        "app.test",
        "/garbage",
        &[("X-Forwarded-For", "203.0.113.7, bogus, 10.0.0.2")],
    )
    .await;
    assert_eq!(s.logged_client("/garbage").await, "10.0.0.2");

    // A site with its own trusted_proxies does not trust 127.0.0.1.
    s.get(
        "strict.test",
        "/strict",
        &[("X-Forwarded-For", "203.0.113.7")],
    )
    .await;
    assert_eq!(s.logged_client("/strict").await, "127.0.0.1");
    assert_eq!(
        s.seen("/strict").header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    // Its checks read the same client (127.0.0.1), not the top level's.
    s.get(
        "strict.test",
        "/check/x",
        &[("X-Forwarded-For", "203.0.113.7")],
    )
    .await;

    // The same over h2 (TLS listener).
    let mut h2 = H2Conn::connect(s.https, "app.test", &s.root)
        .await
        .expect("h2");
    let r = h2
        .request(
            "GET",
            "/h2",
            &[("x-forwarded-for", "198.51.100.3, 10.0.0.2")],
            b"",
        )
        .await
        .expect("h2 response");
    assert_eq!(r.status, 200);
    assert_eq!(s.logged_client("/h2").await, "198.51.100.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cf_connecting_ip_and_x_real_ip_are_read_when_a_site_says_so() {
    let s = start("trusted_proxies: [127.0.0.0/8]").await;
    s.get(
        "cf.test",
        "/cf",
        &[
            ("CF-Connecting-IP", "198.51.100.4"),
            ("X-Forwarded-For", "6.6.6.6"),
        ],
    )
    .await;
    assert_eq!(s.logged_client("/cf").await, "198.51.100.4");
    let seen = s.seen("/cf");
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("6.6.6.6, 198.51.100.4")
    );
    assert_eq!(
        seen.header("x-real-ip"),
        None,
        "only set when it is the source"
    );

    s.get("real.test", "/real", &[("X-Real-IP", "192.0.2.55")])
        .await;
    assert_eq!(s.logged_client("/real").await, "192.0.2.55");
    let seen = s.seen("/real");
    assert_eq!(
        seen.header("x-real-ip"),
        Some("192.0.2.55"),
        "kept from a trusted proxy"
    );
    assert_eq!(seen.header("x-forwarded-for"), Some("192.0.2.55"));
}

/// A PROXY v1 header from `src:5555` to greenlight's port 443.
fn v1(src: std::net::IpAddr) -> Vec<u8> {
    let (family, dst) = if src.is_ipv4() {
        ("TCP4", "127.0.0.1")
    } else {
        ("TCP6", "::1")
    };
    format!("PROXY {family} {src} {dst} 5555 443\r\n").into_bytes()
}

/// A PROXY v2 header: `PROXY` command from `src:5555`, or `LOCAL` for `None`.
fn v2(src: Option<std::net::IpAddr>) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let mut addrs = Vec::new();
    match src {
        None => h.extend_from_slice(&[0x20, 0x00]),
        Some(std::net::IpAddr::V4(a)) => {
            h.extend_from_slice(&[0x21, 0x11]);
            addrs.extend_from_slice(&a.octets());
            addrs.extend_from_slice(&[127, 0, 0, 1]);
        }
        Some(std::net::IpAddr::V6(a)) => {
            h.extend_from_slice(&[0x21, 0x21]);
            addrs.extend_from_slice(&a.octets());
            addrs.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        }
    }
    if src.is_some() {
        addrs.extend_from_slice(&5555u16.to_be_bytes());
        addrs.extend_from_slice(&443u16.to_be_bytes());
    }
    h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    h.extend_from_slice(&addrs);
    h
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().expect("ip")
}

/// A plain connection to `addr` that starts with `prefix`.
async fn plain_with(addr: SocketAddr, prefix: &[u8]) -> H1Conn {
    let mut c = H1Conn::connect(addr).await.expect("connect");
    c.send_raw(prefix).await.expect("send the PROXY header");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_names_the_client_on_plain_and_tls_listeners_over_h1_and_h2() {
    let s = start("trusted_proxies: [10.0.0.0/8]").await;

    // v1 on a plain listener; the client's own X-Forwarded-For is a claim
    // (198.51.100.20 is not trusted), and a second request on the same
    // connection has the same client.
    let mut c = plain_with(s.pp_http, &v1(ip("198.51.100.20"))).await;
    for path in ["/pp-v1", "/pp-v1-again"] {
        let r = c
            .request(
                "GET",
                path,
                "app.test",
                &[("X-Forwarded-For", "6.6.6.6")],
                b"",
            )
            .await
            .expect("response");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(s.logged_client(path).await, "198.51.100.20");
        assert_eq!(
            s.seen(path).header("x-forwarded-for"),
            Some("6.6.6.6, 198.51.100.20")
        );
    }

    // v2 over IPv6 on a plain listener.
    let mut c = plain_with(s.pp_http, &v2(Some(ip("2001:db8::20")))).await;
    let r = c.get("/pp-v2-v6", "app.test").await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(s.logged_client("/pp-v2-v6").await, "2001:db8::20");

    // v2 LOCAL (the balancer's own check): the socket's address.
    let mut c = plain_with(s.pp_http, &v2(None)).await;
    let r = c.get("/pp-local", "app.test").await.expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.logged_client("/pp-local").await, "127.0.0.1");

    // The PROXY source is the peer the trust check sees: a trusted balancer
    // address lets its X-Forwarded-For name the client.
    let mut c = plain_with(s.pp_http, &v1(ip("10.1.2.3"))).await;
    let r = c
        .request(
            "GET",
            "/pp-trusted",
            "app.test",
            &[("X-Forwarded-For", "203.0.113.50")],
            b"",
        )
        .await
        .expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.logged_client("/pp-trusted").await, "203.0.113.50");

    // v1 before TLS, HTTP/1.1.
    let (tls, _) = tls_connect_prefixed(
        s.pp_https,
        &v1(ip("198.51.100.21")),
        "app.test",
        tls::client_config(&s.root, &["http/1.1"]),
    )
    .await
    .expect("TLS after a PROXY header");
    let mut c = H1Conn::from_stream(tls);
    let r = c.get("/pp-tls-h1", "app.test").await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(s.logged_client("/pp-tls-h1").await, "198.51.100.21");
    assert_eq!(
        s.seen("/pp-tls-h1").header("x-forwarded-proto"),
        Some("https")
    );

    // v2 before TLS, h2: every stream of the connection has the client.
    let mut h2 = H2Conn::connect_prefixed(
        s.pp_https,
        &v2(Some(ip("198.51.100.22"))),
        "app.test",
        tls::client_config(&s.root, &["h2"]),
    )
    .await
    .expect("h2 after a PROXY header");
    for path in ["/pp-h2-a", "/pp-h2-b"] {
        let r = h2.get(path).await.expect("h2 response");
        assert_eq!(r.status, 200);
        assert_eq!(s.logged_client(path).await, "198.51.100.22");
        assert_eq!(
            s.seen(path).header("x-forwarded-for"),
            Some("198.51.100.22")
        );
    }

    // The listeners without proxy_protocol take no header.
    s.get("app.test", "/no-pp", &[]).await;
    assert_eq!(s.logged_client("/no-pp").await, "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_valid_proxy_header_is_closed_and_counted() {
    let s = start("").await;
    // Plain HTTP straight to a proxy_protocol listener: no answer, closed.
    let mut c = plain_with(s.pp_http, b"GET /sneaky HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
    assert!(
        c.wait_closed_by_peer(IO_TIMEOUT).await,
        "closed without an answer"
    );
    // A PROXY signature with garbage after it.
    let mut c = plain_with(s.pp_http, b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET /garbage HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
    assert!(
        c.wait_closed_by_peer(IO_TIMEOUT).await,
        "closed without an answer"
    );
    // A v2 header whose version nibble is wrong.
    let mut bad = v2(Some(ip("198.51.100.1")));
    bad[12] = 0x11;
    let mut c = plain_with(s.pp_http, &bad).await;
    assert!(
        c.wait_closed_by_peer(IO_TIMEOUT).await,
        "closed without an answer"
    );
    // TLS with no PROXY header first. The start-up readiness probe (a bare
    // connect) counts one failed handshake on the other TLS listener, and
    // none on this one (a connection closed before its first byte).
    let tls_failures =
        |text: &str| metric_sum(text, "greenlight_tls_handshake_failures_total", |_| true);
    eventually(
        IO_TIMEOUT,
        "the readiness probe's handshake is counted",
        || async { tls_failures(&metrics_text(s.admin).await) == 1.0 },
    )
    .await;
    let err = tls_connect(s.pp_https, "app.test", &["h2"], &s.root).await;
    assert!(err.is_err(), "a ClientHello is not a PROXY header");

    assert!(
        !s.web
            .requests()
            .iter()
            .any(|r| r.path == "/sneaky" || r.path == "/garbage"),
        "nothing reached the upstream"
    );
    let count = |text: &str, listener: &str, reason: &str| {
        metric_sum(text, "greenlight_proxy_protocol_errors_total", |l| {
            l.contains(&format!("listener=\"{listener}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
    };
    eventually(IO_TIMEOUT, "the refusals are counted", || async {
        let text = metrics_text(s.admin).await;
        count(&text, "pp_http", "missing") == 1.0
            && count(&text, "pp_http", "malformed") == 2.0
            && count(&text, "pp_https", "missing") == 1.0
    })
    .await;
    let text = metrics_text(s.admin).await;
    assert_eq!(
        tls_failures(&text),
        1.0,
        "not counted as a failed TLS handshake:\n{text}"
    );
    // The listeners still serve clients that send a header, and the others.
    let mut c = plain_with(s.pp_http, &v1(ip("198.51.100.30"))).await;
    assert_eq!(
        c.get("/after", "app.test").await.expect("response").status,
        200
    );
    s.get("app.test", "/plain-after", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_new_trusted_proxies_and_says_restart_for_proxy_protocol() {
    let mut s = start("trusted_proxies: [10.0.0.0/8]").await;
    let claim = [("X-Forwarded-For", "203.0.113.7")];
    s.get("app.test", "/before", &claim).await;
    assert_eq!(s.logged_client("/before").await, "127.0.0.1");

    let plain = format!("http: {{address: \"127.0.0.1:{}\"}}", s.http.port());
    let yaml = std::fs::read_to_string(s.proxy.config_path())
        .expect("config")
        .replace(
            "trusted_proxies: [10.0.0.0/8]",
            "trusted_proxies: [127.0.0.1]",
        )
        .replace(&plain, &plain.replace("\"}", "\", proxy_protocol: true}"));
    assert!(yaml.contains("proxy_protocol: true}\n  https"), "{yaml}");
    let mark = s.proxy.log_mark();
    s.proxy.write_config(&yaml).expect("write");
    s.proxy.signal("HUP").expect("hup");
    assert!(
        s.proxy
            .wait_for_stderr_after(mark, "listeners changed", IO_TIMEOUT)
            .await,
        "{}",
        s.proxy.stderr()
    );
    // The trust applies to the next request; the listener is unchanged
    // until a restart (it still takes requests without a PROXY header).
    eventually(IO_TIMEOUT, "the new trusted_proxies apply", || async {
        let path = format!("/after-{}", s.web.request_count());
        s.get("app.test", &path, &claim).await;
        s.logged_client(&path).await == "203.0.113.7"
    })
    .await;
}

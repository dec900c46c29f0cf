//! Sites bound to listeners (`sites.<name>.listeners`): nginx picks a server
//! block by the address:port first, so one host may go to different apps on
//! different ports, each port has its own default server, and each TLS port
//! presents the certificates of its own sites.

use crate::support::*;
use std::net::SocketAddr;

const PLAIN: &str = r#"
listeners:
  front: {address: "127.0.0.1:{A}"}
  back: {address: "127.0.0.1:{B}"}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  front_app:
    hosts: [same.test]
    listeners: [front]
    routes: [{path: /, upstream: one}]
  back_app:
    hosts: [same.test]
    listeners: [back]
    routes: [{path: /, upstream: two}]
  front_default:
    listeners: [front]
    default: true
    routes: [{path: /, upstream: three}]
  back_default:
    hosts: [other.test]
    listeners: [back]
    default: true
    routes: [{path: /, upstream: one}]
upstreams:
  one: {active: p, pools: {p: ["127.0.0.1:{ONE}"]}}
  two: {active: p, pools: {p: ["127.0.0.1:{TWO}"]}}
  three: {active: p, pools: {p: ["127.0.0.1:{THREE}"]}}
"#;

/// The upstream that answered `host` on `addr`.
async fn answered_by(addr: SocketAddr, host: &str) -> String {
    let r = http_get(addr, host, "/").await.expect("response");
    assert_eq!(r.status, 200, "{host} on {addr}: {}", r.text());
    r.header("x-upstream").expect("x-upstream").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_goes_to_the_site_of_the_listener_it_arrived_on() {
    let (one, two, three) = (
        HttpUpstream::start("one").await,
        HttpUpstream::start("two").await,
        HttpUpstream::start("three").await,
    );
    let ports = free_ports(3);
    let yaml = fill_ports(
        PLAIN,
        &[
            ("A", ports[0]),
            ("B", ports[1]),
            ("ADMIN", ports[2]),
            ("ONE", one.port()),
            ("TWO", two.port()),
            ("THREE", three.port()),
        ],
    );
    let a: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let b: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let _p = ProxyProcess::start_ready(&yaml, &[a, b])
        .await
        .expect("greenlight starts");
    assert_eq!(answered_by(a, "same.test").await, "one");
    assert_eq!(answered_by(b, "same.test").await, "two");
    // Each listener's own default site takes the names it does not know.
    assert_eq!(answered_by(a, "unknown.test").await, "three");
    assert_eq!(answered_by(b, "unknown.test").await, "one");
    // A name known on one listener only is unknown on the other.
    assert_eq!(answered_by(a, "other.test").await, "three");
    // The status API names each site's listeners.
    let admin: SocketAddr = ([127, 0, 0, 1], ports[2]).into();
    let host = format!("127.0.0.1:{}", ports[2]);
    let r = http_get(admin, &host, "/api/status").await.expect("status");
    let status = r.json();
    let sites = status["sites"].as_array().expect("sites");
    assert_eq!(
        sites[0]["listeners"],
        serde_json::json!(["front"]),
        "{status}"
    );
    assert_eq!(
        sites[1]["listeners"],
        serde_json::json!(["back"]),
        "{status}"
    );
}

const MIXED: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
  alt: {address: "127.0.0.1:{ALT}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  plain:
    hosts: [same.test]
    listeners: [http]
    routes: [{path: /, upstream: one}]
  secure:
    hosts: [same.test, a.test]
    listeners: [https]
    tls: {cert: "{DIR}/a.crt", key: "{DIR}/a.key"}
    routes: [{path: /, upstream: two}]
  secure_alt:
    hosts: [same.test, b.test]
    listeners: [alt]
    tls: {cert: "{DIR}/b.crt", key: "{DIR}/b.key"}
    routes: [{path: /, upstream: three}]
upstreams:
  one: {active: p, pools: {p: ["127.0.0.1:{ONE}"]}}
  two: {active: p, pools: {p: ["127.0.0.1:{TWO}"]}}
  three: {active: p, pools: {p: ["127.0.0.1:{THREE}"]}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listeners_present_their_own_sites_certificates() {
    let (one, two, three) = (
        HttpUpstream::start("one").await,
        HttpUpstream::start("two").await,
        HttpUpstream::start("three").await,
    );
    let ca = TestCa::new();
    ca.issue_to(&["same.test", "a.test"], ca.dir(), "a");
    ca.issue_to(&["same.test", "b.test"], ca.dir(), "b");
    let ports = free_ports(4);
    let yaml = fill_ports(
        &MIXED.replace("{DIR}", &ca.dir().display().to_string()),
        &[
            ("HTTP", ports[0]),
            ("HTTPS", ports[1]),
            ("ALT", ports[2]),
            ("ADMIN", ports[3]),
            ("ONE", one.port()),
            ("TWO", two.port()),
            ("THREE", three.port()),
        ],
    );
    let addrs: Vec<SocketAddr> = ports[..3]
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let _p = ProxyProcess::start_ready(&yaml, &addrs)
        .await
        .expect("greenlight starts");
    // Plain: the plain site, not a redirect to the TLS site of that name.
    assert_eq!(answered_by(addrs[0], "same.test").await, "one");
    for (addr, want, san) in [(addrs[1], "two", "a.test"), (addrs[2], "three", "b.test")] {
        let (r, tls) = crate::support::client::https_get(addr, "same.test", "/", &ca.cert_pem())
            .await
            .expect("TLS response");
        assert!(
            tls.subject_alt_names.iter().any(|n| n == san),
            "{addr}: this listener's site's certificate: {:?}",
            tls.subject_alt_names
        );
        assert_eq!(r.status, 200, "{addr}: {}", r.text());
        assert_eq!(r.header("x-upstream"), Some(want), "{addr}");
        // Without SNI (an IP address): the listener's own site's
        // certificate, and its site answers, no 421.
        let config = crate::support::tls::insecure_client_config(&["http/1.1"]);
        let mut c = H1Conn::connect_tls_with(addr, "127.0.0.1", config)
            .await
            .expect("TLS without SNI");
        let tls = c.tls.clone().expect("TLS info");
        assert!(
            tls.subject_alt_names.iter().any(|n| n == san),
            "{addr} without SNI: {:?}",
            tls.subject_alt_names
        );
        let r = c.get("/", "same.test").await.expect("response");
        assert_eq!(
            r.header("x-upstream"),
            Some(want),
            "{addr} without SNI: {}",
            r.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rebinds_sites_and_an_overlap_is_rejected() {
    let (one, two, three) = (
        HttpUpstream::start("one").await,
        HttpUpstream::start("two").await,
        HttpUpstream::start("three").await,
    );
    let ports = free_ports(3);
    let fills = [
        ("A", ports[0]),
        ("B", ports[1]),
        ("ADMIN", ports[2]),
        ("ONE", one.port()),
        ("TWO", two.port()),
        ("THREE", three.port()),
    ];
    let yaml = fill_ports(PLAIN, &fills);
    let a: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let b: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let mut p = ProxyProcess::start_ready(&yaml, &[a, b])
        .await
        .expect("greenlight starts");
    assert_eq!(answered_by(a, "same.test").await, "one");
    // Swap the two sites' listeners.
    let swapped = yaml
        .replace(
            "listeners: [front]\n    routes: [{path: /, upstream: one}]",
            "listeners: [back]\n    routes: [{path: /, upstream: one}]",
        )
        .replacen(
            "listeners: [back]\n    routes: [{path: /, upstream: two}]",
            "listeners: [front]\n    routes: [{path: /, upstream: two}]",
            1,
        );
    assert_ne!(swapped, yaml);
    let mark = p.log_mark();
    p.write_config(&swapped).expect("write");
    p.signal("HUP").expect("hup");
    assert!(
        p.wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await,
        "{}",
        p.stderr()
    );
    assert_eq!(answered_by(a, "same.test").await, "two");
    assert_eq!(answered_by(b, "same.test").await, "one");
    // Both on `front`: refused, the running bindings stay.
    let overlap = swapped.replace(
        "listeners: [back]\n    routes: [{path: /, upstream: one}]",
        "listeners: [front]\n    routes: [{path: /, upstream: one}]",
    );
    let mark = p.log_mark();
    p.write_config(&overlap).expect("write");
    p.signal("HUP").expect("hup");
    assert!(
        p.wait_for_stderr_after(
            mark,
            "reload rejected, still serving the previous configuration",
            IO_TIMEOUT
        )
        .await,
        "{}",
        p.stderr()
    );
    assert!(
        p.stderr()
            .contains("is named by sites 'front_app' and 'back_app' on listener 'front'"),
        "{}",
        p.stderr()
    );
    assert_eq!(answered_by(a, "same.test").await, "two");
}

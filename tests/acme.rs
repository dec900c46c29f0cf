//! Automatic HTTPS through the real binary against Pebble (Let's Encrypt's
//! test CA): issuance by HTTP-01 and TLS-ALPN-01, renewal that swaps the
//! certificate under open connections, a restart that reuses the stored
//! certificate, a CA that is down, and the challenge path's 404s.

use crate::support::pebble::{Pebble, PebbleOptions};
use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

struct Acme {
    app: HttpUpstream,
    ws: WsUpstream,
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    yaml: String,
}

fn yaml(
    ports: &[u16],
    app: u16,
    ws: u16,
    directory: &str,
    ca: &Path,
    storage: &Path,
    challenge: &str,
) -> String {
    format!(
        r#"
access_log: off
certs_dir: "{certs}"
acme:
  email: ops@app.test
  directory: "{directory}"
  ca_root: "{ca}"
  storage: "{storage}"
  challenge: {challenge}
listeners:
  http: {{address: "127.0.0.1:{http}"}}
  https: {{address: "127.0.0.1:{https}", tls: true}}
admin: {{address: "127.0.0.1:{admin}"}}
sites:
  app:
    hosts: [app.test]
    tls: acme
    plain_http: redirect
    routes: [{{path: /, upstream: app}}, {{path: /ws, upstream: ws}}]
upstreams:
  app: {{active: main, pools: {{main: ["127.0.0.1:{app}"]}}}}
  ws: {{active: main, pools: {{main: ["127.0.0.1:{ws}"]}}}}
"#,
        certs = storage.parent().unwrap_or(storage).display(),
        ca = ca.display(),
        storage = storage.display(),
        http = ports[0],
        https = ports[1],
        admin = ports[2],
    )
}

async fn scene(challenge: &str, validity: Option<u64>, dir: &Path) -> (Acme, Pebble) {
    let app = HttpUpstream::start("app").await;
    let ws = WsUpstream::start("ws").await;
    let ports = free_ports(3);
    let pebble = tokio::task::spawn_blocking({
        let (h, t) = (ports[0], ports[1]);
        move || {
            Pebble::start(PebbleOptions {
                http_port: h,
                tls_port: t,
                validity_secs: validity,
            })
        }
    })
    .await
    // A panic in the start (pebble missing, say) fails the test with its own
    // message, not a second one about the task.
    .unwrap_or_else(|e| match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(e) => panic!("pebble start task: {e}"),
    });
    let storage = dir.join("acme");
    let y = yaml(
        &ports,
        app.port(),
        ws.port(),
        &pebble.directory_url(),
        &pebble.ca_pem_path(),
        &storage,
        challenge,
    );
    let a = Acme {
        app,
        ws,
        http: ([127, 0, 0, 1], ports[0]).into(),
        https: ([127, 0, 0, 1], ports[1]).into(),
        admin: ([127, 0, 0, 1], ports[2]).into(),
        yaml: y,
    };
    (a, pebble)
}

/// `yaml` with the site answering plain HTTP itself instead of redirecting,
/// so that any request the challenge handler let through would reach the app
/// (with `redirect` it would get a 308 and the app would never see it).
fn serving_plain_http(yaml: &str) -> String {
    assert!(yaml.contains("plain_http: redirect"), "{yaml}");
    yaml.replace("plain_http: redirect", "plain_http: serve")
}

/// The serial of the certificate served for app.test if it chains to `root`.
async fn served_by(addr: SocketAddr, root: &str) -> Option<String> {
    tls_connect(addr, "app.test", &["http/1.1"], root)
        .await
        .ok()
        .map(|(_, info)| info.serial)
}

async fn certificates(admin: SocketAddr) -> serde_json::Value {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    c.get("/api/certificates", &admin.to_string())
        .await
        .expect("api")
        .json()["certificates"][0]
        .clone()
}

const ISSUE: Duration = Duration::from_secs(30);

/// What Pebble logs for each HTTP-01 validation attempt (it logs nothing
/// comparable for TLS-ALPN-01).
const PEBBLE_HTTP01: &str = "Attempting to validate w/ HTTP";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_a_certificate_that_is_served_and_reused_after_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, pebble) = scene("http-01", None, dir.path()).await;
    let root = pebble.issued_root_pem();
    let mut proxy = ProxyProcess::start_ready(&a.yaml, &[a.http, a.https, a.admin])
        .await
        .expect("starts");
    // Start-up does not wait for the CA: a temporary certificate is served.
    assert!(
        proxy.wait_for_stderr("self-signed", IO_TIMEOUT).await,
        "{}",
        proxy.stderr()
    );
    eventually(ISSUE, "the ACME certificate is served", || async {
        served_by(a.https, &root).await.is_some()
    })
    .await;
    let (r, tls) = h2_get(a.https, "app.test", "/hello", &root)
        .await
        .expect("h2 with the ACME certificate");
    assert_eq!(r.status, 200);
    assert!(tls.subject_alt_names.contains(&"app.test".to_string()));
    let c = certificates(a.admin).await;
    assert_eq!(c["source"], "acme");
    assert!(
        c["issuer"].as_str().is_some_and(|i| i.contains("Pebble")),
        "{c}"
    );
    assert!(c["acme"]["last_error"].is_null(), "{c}");
    assert_eq!(pebble.order_count(), 1);
    assert!(
        pebble.log().contains(PEBBLE_HTTP01),
        "validated over HTTP-01:\n{}",
        pebble.log()
    );
    let metrics = metrics_text(a.admin).await;
    assert!(
        metrics
            .contains("greenlight_acme_orders_total{kind=\"issue\",result=\"ok\",site=\"app\"} 1"),
        "{metrics}"
    );
    let serial = tls.serial.clone();

    // Restart: the stored certificate is served at once, no new order.
    proxy.stop(Duration::from_secs(5)).await;
    let _proxy = ProxyProcess::start_ready(&a.yaml, &[a.http, a.https, a.admin])
        .await
        .expect("restarts");
    assert_eq!(
        served_by(a.https, &root).await.as_deref(),
        Some(serial.as_str()),
        "served from the first handshake"
    );
    // Wait for the ACME service's decision (a renewal date), then check it
    // decided not to order.
    eventually(IO_TIMEOUT, "the service scheduled the renewal", || async {
        certificates(a.admin).await["acme"]["next_attempt"].is_number()
    })
    .await;
    let c = certificates(a.admin).await;
    assert!(
        c["acme"]["last_attempt"].is_null(),
        "no order attempted: {c}"
    );
    assert!(
        c["acme"]["next_attempt"].as_f64() < c["not_after"].as_f64(),
        "renewal before expiry: {c}"
    );
    assert_eq!(
        pebble.order_count(),
        1,
        "no order while the stored certificate is valid"
    );
    assert!(a.app.request_count() >= 1);
}

/// `tls: {acme: [names]}` on a catch-all site (no `hosts`, nginx's default
/// server without a server_name): the certificate carries the listed names
/// and is served for them and for any other name the site answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_all_site_gets_a_certificate_for_the_names_it_lists() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, pebble) = scene("http-01", None, dir.path()).await;
    let root = pebble.issued_root_pem();
    let from = "    hosts: [app.test]\n    tls: acme\n";
    assert!(a.yaml.contains(from), "{}", a.yaml);
    let yaml = a
        .yaml
        .replace(from, "    default: true\n    tls: {acme: [app.test]}\n");
    let _proxy = ProxyProcess::start_ready(&yaml, &[a.http, a.https, a.admin])
        .await
        .expect("starts");
    eventually(ISSUE, "the ACME certificate is served", || async {
        served_by(a.https, &root).await.is_some()
    })
    .await;
    let (r, tls) = h2_get(a.https, "app.test", "/hello", &root)
        .await
        .expect("h2 with the ACME certificate");
    assert_eq!(r.status, 200);
    assert_eq!(tls.subject_alt_names, ["app.test".to_string()]);
    // The catch-all answers other names with the same certificate.
    let (_, other) = tls_connect_with(
        a.https,
        "other.test",
        crate::support::tls::insecure_client_config(&["http/1.1"]),
    )
    .await
    .expect("the same certificate for a name it does not carry");
    assert_eq!(other.serial, tls.serial);
    assert_eq!(pebble.order_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues_a_certificate_with_only_the_tls_listener_used() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, pebble) = scene("tls-alpn-01", None, dir.path()).await;
    let root = pebble.issued_root_pem();
    // Without `email` the account is made with no contact (Pebble, like
    // Let's Encrypt, accepts that).
    let yaml = serving_plain_http(&a.yaml).replace("  email: ops@app.test\n", "");
    assert!(!yaml.contains("email"), "{yaml}");
    let proxy = ProxyProcess::start_ready(&yaml, &[a.http, a.https])
        .await
        .expect("starts");
    eventually(ISSUE, "the ACME certificate is served", || async {
        served_by(a.https, &root).await.is_some()
    })
    .await;
    assert!(
        proxy
            .stderr()
            .contains("answered an ACME tls-alpn-01 validation"),
        "validated over TLS-ALPN-01 on the TLS listener"
    );
    assert!(
        !a.app
            .requests()
            .iter()
            .any(|r| r.path.contains("acme-challenge")),
        "no HTTP-01 used"
    );
    // The challenge handler answers HTTP-01 before any app could see it, so
    // only the CA knows whether it tried: Pebble logs each HTTP-01 attempt.
    let log = pebble.log();
    assert!(
        !log.contains(PEBBLE_HTTP01),
        "Pebble validated over HTTP-01:\n{log}"
    );
    assert_eq!(
        log.matches("POST /chalZ/").count(),
        1,
        "one challenge was triggered:\n{log}"
    );
    let (r, _) = h2_get(a.https, "app.test", "/x", &root).await.expect("h2");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_swaps_the_certificate_under_open_connections() {
    let dir = tempfile::tempdir().expect("tmp");
    // 15 s certificates: renewal is due when a third is left (about 5 s).
    let (a, pebble) = scene("http-01", Some(15), dir.path()).await;
    let root = pebble.issued_root_pem();
    let _proxy = ProxyProcess::start_ready(&a.yaml, &[a.http, a.https])
        .await
        .expect("starts");
    eventually(ISSUE, "first certificate", || async {
        served_by(a.https, &root).await.is_some()
    })
    .await;
    let first = served_by(a.https, &root).await.expect("serial");
    let url = format!("wss://app.test:{}/ws", a.https.port());
    let mut ws = ws_connect(&url, Some(TlsClient::trusting(&root)))
        .await
        .expect("wss");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws");
    let mut h2 = H2Conn::connect(a.https, "app.test", &root)
        .await
        .expect("h2");
    assert_eq!(h2.get("/before").await.expect("h2").status, 200);
    eventually(ISSUE, "a renewed certificate is served", || async {
        served_by(a.https, &root).await.is_some_and(|s| s != first)
    })
    .await;
    // The connections opened before the swap are still fine.
    ws.send_text("still here").await.expect("send");
    assert_eq!(ws.recv_text().await.expect("echo"), "still here");
    assert_eq!(
        h2.get("/after").await.expect("same h2 connection").status,
        200
    );
    assert!(pebble.order_count() >= 2);
    assert_eq!(a.ws.open_websockets(), 1);
}

/// Waits until the API shows an "unreachable" ACME error with a retry
/// scheduled at least 50 s after the attempt (backoff, not a tight loop);
/// returns the certificate entry.
async fn wait_for_unreachable_with_backoff(admin: SocketAddr) -> serde_json::Value {
    eventually(ISSUE, "the failure is visible in the API", || async {
        certificates(admin).await["acme"]["last_error"].is_string()
    })
    .await;
    let c = certificates(admin).await;
    let err = c["acme"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("unreachable"), "{err}");
    let next = c["acme"]["next_attempt"]
        .as_f64()
        .expect("a retry is scheduled");
    let last = c["acme"]["last_attempt"].as_f64().expect("attempted");
    assert!(
        next - last >= 50.0,
        "backoff, not a tight loop: {next} - {last}"
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_is_down_keeps_the_current_certificate_and_schedules_a_retry() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, pebble) = scene("http-01", None, dir.path()).await;
    let dead = DeadUpstream::new();
    let y = a.yaml.replace(
        &pebble.directory_url(),
        &format!("https://127.0.0.1:{}/dir", dead.port()),
    );
    let _proxy = ProxyProcess::start_ready(&y, &[a.http, a.https, a.admin])
        .await
        .expect("starts anyway");
    let c = wait_for_unreachable_with_backoff(a.admin).await;
    // Still serving with the temporary certificate.
    let (_, info) = tls_connect_with(
        a.https,
        "app.test",
        tls::insecure_client_config(&["http/1.1"]),
    )
    .await
    .expect("handshake");
    assert!(info.subject_alt_names.contains(&"app.test".to_string()));
    assert_eq!(c["source"], "acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_path_answers_only_real_tokens_and_never_reaches_the_app() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, _pebble) = scene("http-01", None, dir.path()).await;
    let yaml = serving_plain_http(&a.yaml);
    let _proxy = ProxyProcess::start_ready(&yaml, &[a.http])
        .await
        .expect("starts");
    for (host, path) in [
        ("app.test", "/.well-known/acme-challenge/not-a-token"),
        ("other.test", "/.well-known/acme-challenge/abc"),
        ("app.test", "/.well-known/acme-challenge/../../etc/passwd"),
        ("app.test", "/.well-known/acme-challenge/%2e%2e%2fsecret"),
        ("app.test", "/.well-known/acme-challenge/"),
    ] {
        let r = http_get(a.http, host, path).await.expect("answer");
        assert_eq!(r.status, 404, "{host}{path}");
    }
    assert!(
        !a.app
            .requests()
            .iter()
            .any(|r| r.path.contains("acme-challenge")),
        "nothing reached the app"
    );
    // Everything else on the plain listener reaches the app: so would a
    // challenge request the handler let through.
    let r = http_get(a.http, "app.test", "/page").await.expect("served");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("app"));
    let paths: Vec<String> = a.app.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/page"], "only /page reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_keeps_the_issued_certificate_serving_and_says_why() {
    let dir = tempfile::tempdir().expect("tmp");
    // 15 s certificates: renewal is due when a third is left (about 5 s).
    let (a, mut pebble) = scene("http-01", Some(15), dir.path()).await;
    let root = pebble.issued_root_pem();
    let _proxy = ProxyProcess::start_ready(&a.yaml, &[a.http, a.https, a.admin])
        .await
        .expect("starts");
    eventually(ISSUE, "first certificate", || async {
        served_by(a.https, &root).await.is_some()
    })
    .await;
    let first = served_by(a.https, &root).await.expect("serial");
    assert!(certificates(a.admin).await["acme"]["last_error"].is_null());
    // The CA goes away before the renewal is due.
    pebble.stop();
    wait_for_unreachable_with_backoff(a.admin).await;
    assert_eq!(
        served_by(a.https, &root).await.as_deref(),
        Some(first.as_str()),
        "the issued certificate is still the one served"
    );
    let metrics = metrics_text(a.admin).await;
    for series in [
        "greenlight_acme_orders_total{kind=\"issue\",result=\"ok\",site=\"app\"} 1",
        "greenlight_acme_orders_total{kind=\"renewal\",result=\"error\",site=\"app\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
}

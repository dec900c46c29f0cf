//! `greenlight import-nginx` end to end: the operator's nginx site (the
//! fixture we replace) is imported, checked, given test addresses, run, and
//! serves an h2 request and a WebSocket through the real binary.

use crate::support::*;
use std::net::SocketAddr;

fn fixture() -> String {
    format!(
        "{}/src/nginx/testdata/websocket-app.conf",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_site_imports_checks_and_proxies_http_and_websockets() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_path = dir.path().join("imported.yaml");
    let out = out_path.display().to_string();
    let o = run_cli(&["import-nginx", &fixture(), "-o", &out]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let warnings = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        warnings.contains("websocket-app.conf:4: listen X.Y.255.3:443"),
        "{warnings}"
    );
    assert!(
        warnings.contains("note: 'ssl_stapling' is not needed with rustls"),
        "{warnings}"
    );

    // As imported, the redacted address must be fixed first; check says where.
    let o = run_cli(&["check", "-c", &out]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains(&format!("{out}:7:14: 'EDIT-ME:443'")), "{err}");
    assert!(
        err.contains("placeholder left by `greenlight import-nginx`"),
        "{err}"
    );

    // The operator's edits: a real address, their certificate, the app's port.
    let ca = TestCa::new();
    let cert = ca.issue_to(&["example.com"], ca.dir(), "example");
    let app = HttpUpstream::start("node").await;
    let ws_app = WsUpstream::start("node-ws").await;
    let ports = free_ports(2);
    let https: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let yaml = std::fs::read_to_string(&out_path)
        .expect("imported yaml")
        .replace("EDIT-ME:443", &https.to_string())
        .replace(
            "/etc/letsencrypt/live/example.com/fullchain.pem",
            &cert.cert_path.display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/example.com/privkey.pem",
            &cert.key_path.display().to_string(),
        )
        .replace("localhost:8082", &format!("localhost:{}", app.port()))
        + &format!("\nadmin:\n  address: \"{admin}\"\n");
    let proxy = ProxyProcess::start_ready(&yaml, &[https, admin])
        .await
        .expect("the imported config runs");

    let (r, tls) = h2_get(https, "example.com", "/hello", &ca.cert_pem())
        .await
        .expect("h2 through the imported site");
    assert_eq!(tls.alpn_str(), Some("h2"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("node"));
    let seen = app.last_request().expect("the app got it");
    assert_eq!(seen.header("host"), Some("example.com"));

    // Point the same site at the WebSocket app and reload, as an operator would.
    proxy
        .write_config(&yaml.replace(
            &format!("localhost:{}", app.port()),
            &format!("localhost:{}", ws_app.port()),
        ))
        .expect("write");
    let mut c = H1Conn::connect(admin).await.expect("admin");
    let rr = c
        .request(
            "POST",
            "/api/reload",
            &admin.to_string(),
            &[("Content-Type", "application/json")],
            b"",
        )
        .await
        .expect("reload");
    assert_eq!(rr.status, 200, "{}", rr.text());
    let url = format!("wss://example.com:{}/socket", https.port());
    let mut ws = ws_connect(&url, Some(TlsClient::trusting(&ca.cert_pem())))
        .await
        .expect("wss through the imported site");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from node-ws");
    ws.send_text("ping").await.expect("send");
    assert_eq!(ws.recv_text().await.expect("echo"), "ping");
}

#[test]
fn import_exit_codes_follow_the_contract() {
    let dir = tempfile::tempdir().expect("tmp");
    let broken = dir.path().join("broken.conf");
    std::fs::write(&broken, "server {\n  listen 80\n  server_name a;\n").expect("write");
    let o = run_cli(&["import-nginx", &broken.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("broken.conf:2:"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let empty = dir.path().join("empty.conf");
    std::fs::write(&empty, "events {}\n").expect("write");
    let o = run_cli(&["import-nginx", &empty.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
}

/// Issue #13, point 9, end to end: an nginx site that uses the mapped
/// directives (exact and regex locations, `return`, `proxy_pass` with a
/// URI part, `rewrite`, `proxy_set_header`, `add_header … always`) is
/// imported, run by the real binary and answers like nginx would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_site_answers_like_nginx() {
    let app = HttpUpstream::start("app").await;
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let up = app.port();
    let conf = format!(
        "server {{\n  listen {http};\n  server_name app.test;\n\
           add_header X-Frame-Options DENY always;\n\
           location = /healthz {{ default_type text/plain; return 200 \"ok\\n\"; }}\n\
           location /old/ {{ return 301 https://$host/new/; }}\n\
           location /api/ {{ proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Custom hello;\n\
             proxy_pass http://127.0.0.1:{up}/v1/; }}\n\
           location ~ ^/r/(.*)$ {{ rewrite ^/r/(.*)$ /rewritten/$1 break; proxy_pass http://127.0.0.1:{up}; }}\n\
         }}\n"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let conf_path = dir.path().join("site.conf");
    std::fs::write(&conf_path, conf).expect("write");
    let out_path = dir.path().join("site.yaml");
    let o = run_cli(&[
        "import-nginx",
        &conf_path.display().to_string(),
        "-o",
        &out_path.display().to_string(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        stderr
            .lines()
            .all(|l| l.contains(" note: ") || l.starts_with("wrote ")),
        "no warnings expected: {stderr}"
    );
    let yaml = std::fs::read_to_string(&out_path).expect("yaml")
        + &format!("\nadmin:\n  address: \"{admin}\"\n");
    let o = run_cli(&["check", "-c", &out_path.display().to_string()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("the imported config runs");

    let mut c = H1Conn::connect(http).await.expect("connect");
    let r = c
        .request("GET", "/healthz", "app.test", &[], b"")
        .await
        .expect("healthz");
    assert_eq!((r.status, r.text()), (200, "ok\n".to_string()));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));

    let r = c
        .request("GET", "/old/x", "app.test", &[], b"")
        .await
        .expect("old");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://app.test/new/"));

    let r = c
        .request("GET", "/api/users?q=1", "app.test", &[], b"")
        .await
        .expect("api");
    assert_eq!(r.status, 200);
    let seen = app.last_request().expect("the app got /api/");
    assert_eq!(seen.path, "/v1/users?q=1");
    assert_eq!(seen.header("x-custom"), Some("hello"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{up}").as_str())
    );

    let r = c
        .request("GET", "/r/abc", "app.test", &[], b"")
        .await
        .expect("rewrite");
    assert_eq!(r.status, 200);
    let seen = app.last_request().expect("the app got /r/");
    assert_eq!(seen.path, "/rewritten/abc");
}

//! `{$NAME}` references in the configuration, through the real binary: the
//! listen port, the host name and the upstream (written as a URL, the way an
//! environment variable usually holds it) come from greenlight's
//! environment, a reload reads them again, and `check` names an unset one
//! at its line and column.

use crate::support::proxy::temp_config;
use crate::support::*;
use std::net::SocketAddr;

const YAML: &str = r#"
access_log: off
listeners:
  http: {address: "127.0.0.1:{$GL_TEST_HTTP_PORT}"}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  app:
    hosts: ["{$GL_TEST_DOMAIN}", "www.{$GL_TEST_DOMAIN}"]
    response_headers:
      set: {X-Env: "{$GL_TEST_LABEL:no label}"}
    routes:
      - {path: /, upstream: app}
      - {path: /nginx-host/, upstream: app, request_headers: {set: {Host: $proxy_host}}}
upstreams:
  app: {active: main, pools: {main: ["{$GL_TEST_APP}"]}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_port_and_upstream_come_from_the_environment() {
    let app = HttpUpstream::start("app").await;
    let [http, admin] = [free_port(), free_port()];
    let yaml = YAML.replace("{ADMIN}", &admin.to_string());
    let app_url = format!("http://127.0.0.1:{}/", app.port());
    let env = [
        ("GL_TEST_HTTP_PORT", http.to_string()),
        ("GL_TEST_DOMAIN", "env.example".to_string()),
        ("GL_TEST_APP", app_url),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut proxy =
        ProxyProcess::start_with_bin(&greenlight_bin(), &yaml, &["run", "-c", "{config}"], &env)
            .expect("spawn");
    let addr: SocketAddr = ([127, 0, 0, 1], http).into();
    proxy
        .wait_ready(&[addr])
        .await
        .expect("listens on the port from the environment");

    for host in ["env.example", "www.env.example"] {
        let r = http_get(addr, host, "/hello").await.expect("get");
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.header("x-upstream"), Some("app"));
        assert_eq!(r.header("x-env"), Some("no label"), "the default");
    }
    let r = http_get(addr, "other.example", "/hello")
        .await
        .expect("get");
    assert_eq!(r.status, 404, "only the names from the environment");

    // A reload reads the references again (same environment, new text).
    let mark = proxy.log_mark();
    proxy
        .write_config(&yaml.replace("{path: /, upstream: app}", "{path: /v2/, upstream: app}"))
        .expect("write");
    proxy.signal("HUP").expect("hup");
    assert!(
        proxy
            .wait_for_stderr_after(
                mark,
                "configuration reloaded",
                std::time::Duration::from_secs(10)
            )
            .await,
        "{}",
        proxy.stderr()
    );
    eventually(
        std::time::Duration::from_secs(10),
        "the reloaded routes",
        || async {
            http_get(addr, "env.example", "/hello")
                .await
                .is_ok_and(|r| r.status == 404)
        },
    )
    .await;
    let r = http_get(addr, "env.example", "/v2/x").await.expect("get");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn check_names_an_unset_variable_at_its_line_and_column() {
    let (_dir, path) = temp_config(&YAML.replace("{ADMIN}", "9"));
    let out = run_cli(&["check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let at = format!(
        "{}:4:30: environment variable GL_TEST_HTTP_PORT is not set",
        path.display()
    );
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("GL_TEST_APP is not set"), "{err}");
    assert!(!err.contains("GL_TEST_LABEL"), "it has a default: {err}");
}

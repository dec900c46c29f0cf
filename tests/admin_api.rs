//! The admin API against a web page the operator has open: cross-site
//! requests (forms, `text/plain` fetches, foreign `Origin`, `Sec-Fetch-Site:
//! cross-site`) and DNS rebinding (`Host: evil.example:PORT`) are refused
//! with 403 and change nothing, while the CLI and a same-origin page (a
//! dashboard served by the admin listener) still work. Also: a switch to the
//! pool already active changes nothing.

use crate::support::*;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
admin:
  address: "127.0.0.1:{ADMIN}"
  allowed_hosts: [admin.test]
sites:
  app: {hosts: [app.test], default: true, routes: [{path: /, upstream: app}]}
upstreams:
  app:
    active: blue
    pools:
      blue: ["127.0.0.1:{BLUE}"]
      green: ["127.0.0.1:{GREEN}"]
      dead: ["127.0.0.1:{DEAD}"]
"#;

struct Admin {
    _blue: HttpUpstream,
    _green: HttpUpstream,
    http: SocketAddr,
    admin: SocketAddr,
    proxy: ProxyProcess,
}

impl Admin {
    async fn start() -> Admin {
        let blue = HttpUpstream::start("blue").await;
        let green = HttpUpstream::start("green").await;
        let dead = DeadUpstream::new();
        let ports = free_ports(2);
        let yaml = fill_ports(
            YAML,
            &[
                ("HTTP", ports[0]),
                ("ADMIN", ports[1]),
                ("BLUE", blue.port()),
                ("GREEN", green.port()),
                ("DEAD", dead.port()),
            ],
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
            .await
            .expect("greenlight starts");
        Admin {
            _blue: blue,
            _green: green,
            http,
            admin,
            proxy,
        }
    }

    /// One admin request with exactly these headers (Host included).
    async fn call(
        &self,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut c = H1Conn::connect(self.admin).await.expect("admin connect");
        timed(
            "admin answer",
            c.request(method, path, host, headers, body.as_bytes()),
        )
        .await
        .expect("admin answer")
    }

    fn host(&self) -> String {
        self.admin.to_string()
    }

    async fn serving(&self) -> String {
        http_get(self.http, "app.test", "/x")
            .await
            .expect("proxy answers")
            .header("x-upstream")
            .unwrap_or("")
            .to_string()
    }

    async fn generation(&self) -> u64 {
        let r = self.call("GET", "/api/status", &self.host(), &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["generation"].as_u64().expect("generation")
    }

    async fn cli(&self, args: &[&str]) -> std::process::Output {
        admin_cli(self.admin, args).await
    }
}

fn refused(r: &Response, rule: &str) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let msg = r.json()["error"].as_str().unwrap_or("").to_string();
    assert!(msg.contains(rule), "error should name {rule:?}: {msg}");
}

/// Request header fields, as [`Admin::call`] takes them.
type Headers<'a> = &'a [(&'a str, &'a str)];

const SWITCH_TO_DEAD: &str = r#"{"pool":"dead","force":true}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_rebinding_requests_are_refused_and_change_nothing() {
    let a = Admin::start().await;
    let file_before = std::fs::read(a.proxy.config_path()).expect("read config");
    let generation = a.generation().await;
    assert_eq!(a.serving().await, "blue");
    let host = a.host();
    let path = "/api/upstreams/app/switch";

    // What a page on another site sends with `fetch(url, {method: "POST",
    // body})` or a form: a "simple" request, no preflight.
    let r = a
        .call(
            "POST",
            path,
            &host,
            &[
                ("Content-Type", "text/plain;charset=UTF-8"),
                ("Origin", "http://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            SWITCH_TO_DEAD,
        )
        .await;
    refused(&r, "Origin");
    // Each rule alone is enough: (path, headers, body, what the error names).
    let json = ("Content-Type", "application/json");
    let one_rule: [(&str, Headers, &str, &str); 5] = [
        (
            path,
            &[("Content-Type", "text/plain")],
            SWITCH_TO_DEAD,
            "Content-Type: application/json",
        ),
        (
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "pool=dead&force=true",
            "Content-Type: application/json",
        ),
        (
            "/api/reload",
            &[("Content-Type", "text/plain")],
            "",
            "Content-Type: application/json",
        ),
        (
            path,
            &[json, ("Origin", "http://evil.example")],
            SWITCH_TO_DEAD,
            "Origin 'http://evil.example'",
        ),
        (
            path,
            &[json, ("Sec-Fetch-Site", "cross-site")],
            SWITCH_TO_DEAD,
            "Sec-Fetch-Site",
        ),
    ];
    for (to, headers, body, rule) in one_rule {
        let r = a.call("POST", to, &host, headers, body).await;
        refused(&r, rule);
    }

    // DNS rebinding: the page's own name now points at 127.0.0.1, so its
    // requests reach the API with `Host: evil.example:PORT`.
    let rebound = format!("evil.example:{}", a.admin.port());
    for read in ["/api/status", "/metrics", "/api/upstreams"] {
        let r = a.call("GET", read, &rebound, &[], "").await;
        refused(&r, "admin.allowed_hosts");
        assert!(!r.text().contains("greenlight_"), "no metrics leak");
    }
    let r = a
        .call(
            "POST",
            path,
            &rebound,
            &[("Content-Type", "application/json")],
            SWITCH_TO_DEAD,
        )
        .await;
    refused(&r, "admin.allowed_hosts");
    let r = a
        .call(
            "GET",
            "/api/status",
            &host,
            &[("Origin", "http://evil.example")],
            "",
        )
        .await;
    refused(&r, "Origin");

    // Nothing changed: traffic, generation, file.
    assert_eq!(a.serving().await, "blue");
    assert_eq!(a.generation().await, generation);
    assert_eq!(
        std::fs::read(a.proxy.config_path()).expect("read config"),
        file_before,
        "the config file was not rewritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_a_same_origin_page_still_work() {
    let a = Admin::start().await;
    let host = a.host();
    let port = a.admin.port();

    // A dashboard served from the admin listener: same-origin fetches with
    // the JSON content type, under the address or `localhost:PORT`.
    for name in [host.clone(), format!("localhost:{port}")] {
        let origin = format!("http://{name}");
        let page = [
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
            ("Content-Type", "application/json"),
        ];
        let r = a.call("GET", "/api/status", &name, &page, "").await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let r = a.call("GET", "/metrics", &name, &page[1..2], "").await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let r = a.call("POST", "/api/reload", &name, &page, "").await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    // A typed URL (Sec-Fetch-Site: none) and a name from allowed_hosts.
    let listed = format!("admin.test:{port}");
    let r = a
        .call(
            "GET",
            "/api/status",
            &listed,
            &[("Sec-Fetch-Site", "none")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = a
        .call(
            "POST",
            "/api/upstreams/app/switch",
            &host,
            &[
                ("Origin", &format!("http://{host}")),
                ("Sec-Fetch-Site", "same-origin"),
                ("Content-Type", "application/json"),
            ],
            r#"{"pool":"green"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(a.serving().await, "green");

    // The CLI.
    let o = a.cli(&["status"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = a.cli(&["reload"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = a.cli(&["switch", "app", "blue"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(a.serving().await, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_to_the_active_pool_changes_nothing() {
    let a = Admin::start().await;
    let path = a.proxy.config_path().to_path_buf();
    let bytes = std::fs::read(&path).expect("read");
    let meta = std::fs::metadata(&path).expect("stat");
    let generation = a.generation().await;

    let o = a.cli(&["switch", "app", "blue"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("already active"), "{stdout}");
    let r = a
        .call(
            "POST",
            "/api/upstreams/app/switch",
            &a.host(),
            &[("Content-Type", "application/json")],
            r#"{"pool":"blue"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["already_active"], true);

    assert_eq!(a.generation().await, generation, "no new generation");
    let after = std::fs::metadata(&path).expect("stat");
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert_eq!(after.ino(), meta.ino(), "the file was not replaced");
    assert_eq!(after.mtime_nsec(), meta.mtime_nsec());
    assert_eq!(after.mtime(), meta.mtime());
    assert_eq!(a.serving().await, "blue");
}

#[test]
fn a_bad_allowed_hosts_entry_is_a_check_error_at_its_position() {
    let yaml = "admin:\n  address: 127.0.0.1:9090\n  allowed_hosts: [ok.test, \"http://admin.test\"]\nsites:\n  s: {hosts: [a.test], routes: [{path: /, upstream: u}]}\nupstreams:\n  u: {active: p, pools: {p: [127.0.0.1:2]}}\n";
    let (_dir, path) = crate::support::proxy::temp_config(yaml);
    let p = path.display().to_string();
    let out = run_cli(&["check", "-c", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{p}:3:28: admin.allowed_hosts: 'http://admin.test' has a scheme"
        )),
        "{err}"
    );
}
